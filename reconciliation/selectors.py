"""Reads for reconciliation: what is in scope, what the ledger says orders hold, stuck intents."""
from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q

from exchanges.models import ExchangeAccount
from intents.ids import strategy_key
from intents.models import (
    OPEN_TRACKED_STATUSES,
    Intent,
    IntentKind,
    IntentStatus,
    TrackedOrder,
    TrackedOrderStatus,
)
from ledger.amounts import exact_context
from ledger.models import Account, Operation, Posting
from ledger.selectors import posting_sums
from orders.models import (
    ORDER_REF,
    ExchangeTransfer,
    ExchangeTransferStatus,
    MarketMakingOrder,
    MarketMakingPair,
    OrderState,
    Payout,
    PayoutStatus,
)
from strategy.models import SessionStatus, StrategySession

from .models import BalanceBaseline, DriftKind, ReconciliationRun

ZERO = Decimal(0)


def order_scope() -> dict[int, set[str]]:
    """{account id: symbols} to compare with the exchange's open orders.

    Enabled accounts with tracked orders not yet final or with strategy sessions; the symbols
    are those of the tracked orders and of the sessions' pairs. Sessions of any status count,
    so an order a stopped session left on the book is still found (one read per pair).
    """
    scope: dict[int, set[str]] = defaultdict(set)
    enabled = set(ExchangeAccount.objects.filter(enabled=True).values_list("pk", flat=True))
    for account_id, symbol in TrackedOrder.objects.filter(status__in=OPEN_TRACKED_STATUSES).values_list(
            "account_id", "symbol").distinct():
        scope[account_id].add(symbol)
    for account_id, pair_account_id, symbol in StrategySession.objects.values_list(
            "order__exchange_account_id", "order__pair__exchange_account_id", "order__pair__symbol").distinct():
        scope[account_id or pair_account_id].add(symbol)
    return {account_id: symbols for account_id, symbols in scope.items() if account_id in enabled}


def tracked_open(account_id: int, symbol: str) -> dict[str, TrackedOrder]:
    """Tracked orders we believe are on the exchange's book (sent and not final), by client id."""
    rows = TrackedOrder.objects.filter(account_id=account_id, symbol=symbol,
                                       status__in=[s for s in OPEN_TRACKED_STATUSES if s != "pending_create"])
    return {row.client_order_id: row for row in rows}


def tracked_statuses(client_order_ids) -> dict[str, str]:
    """Current tracked status of each client id we know (any status)."""
    return dict(TrackedOrder.objects.filter(client_order_id__in=list(client_order_ids)).values_list(
        "client_order_id", "status"))


@dataclass(frozen=True)
class Position:
    """What the ledger says the orders on one exchange account have there, in one exchange asset."""

    account_id: int
    asset: str  # exchange currency code
    amount: Decimal
    orders: int
    # Part of ``amount`` that stopped orders released to their users in the ledger and that
    # stays on the exchange account until the operator moves it.
    released: Decimal = ZERO


def ledger_positions() -> dict[tuple[int, str], Position]:
    """{(account id, exchange asset): Position}: what the ledger says is on each exchange account.

    An order's position in an asset is the sum of the ``user_locked`` postings of the entries
    carrying its ref: its locks minus its unlocks, plus its settled fills net of fees. Two
    corrections make it what is physically on the exchange account:

    - a stopped order's unlocks are not subtracted: the stop releases its funds to the user in
      the ledger, but nothing moves them off the exchange (the operator does, and says so with
      ``reconcile --set-baseline``);
    - a transfer to the exchange still in flight (order ``withdrawing``, transfer pending or sent)
      is not there yet: its amount is subtracted until the deposit is confirmed.

    Ledger asset ids map to exchange codes through the order's pair (base and quote); a position
    in any other asset has no exchange counterpart on that account and is left out.
    """
    locked = Posting.objects.filter(account=Account.USER_LOCKED, entry__ref_type=ORDER_REF)
    sums = posting_sums(("entry__ref_id", "asset_id"), locked)
    unlocks = posting_sums(("entry__ref_id", "asset_id"), locked.filter(entry__operation=Operation.UNLOCK_FUNDS))
    ref_ids = {ref_id for (ref_id, _), amount in [*sums.items(), *unlocks.items()] if amount}
    orders = {
        str(order_id): (account_id or pair_account_id, state, {base_id: base_code, quote_id: quote_code})
        for order_id, account_id, pair_account_id, state, base_id, base_code, quote_id, quote_code in
        MarketMakingOrder.objects.filter(order_id__in=_uuids(ref_ids)).values_list(
            "order_id", "exchange_account_id", "pair__exchange_account_id", "state", "pair__base_asset_id",
            "pair__base_exchange_asset", "pair__quote_asset_id", "pair__quote_exchange_asset")
    }
    in_transit = _sum_transfers_in_transit()
    paid_out = _sum_paid_out(orders)
    totals: dict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)
    released: dict[tuple[int, str], Decimal] = defaultdict(lambda: ZERO)
    counts: dict[tuple[int, str], set[str]] = defaultdict(set)
    with exact_context():
        for ref_id, (account_id, state, codes) in orders.items():
            for asset_id, code in codes.items():
                if account_id is None or not code:
                    continue
                key = (account_id, code.upper())
                amount = sums.get((ref_id, asset_id), ZERO) - in_transit.get((ref_id, asset_id), ZERO)
                if state in RELEASED_STATES or (ref_id, asset_id) in paid_out:
                    # Released to the user in the ledger; on the exchange until its payout withdrew it.
                    freed = unlocks.get((ref_id, asset_id), ZERO).copy_negate() - paid_out.get((ref_id, asset_id), ZERO)
                    amount += freed
                    released[key] += freed
                if amount:
                    totals[key] += amount
                    counts[key].add(ref_id)
    return {key: Position(account_id=key[0], asset=key[1], amount=amount, orders=len(counts[key]),
                          released=released[key])
            for key, amount in totals.items()}


RELEASED_STATES = (OrderState.STOPPED, OrderState.PAYING_OUT, OrderState.PAID_OUT)


def _sum_paid_out(orders) -> dict[tuple[str, str], Decimal]:
    """{(order id, ledger asset id): amount} the payout after stop withdrew from the exchange: every payout
    row the exchange accepted (a payout that failed before, or whose withdrawal the exchange reports failed,
    left the money there). A row's presence also marks the order's funds as released (a payout that failed
    makes the order ``failed``, its funds still released)."""
    totals: dict[tuple[str, str], Decimal] = {}
    rows = Payout.objects.filter(order__order_id__in=_uuids(orders)).values_list(
        "order__order_id", "asset_id", "amount", "status", "withdrawal_id", "received")
    for order_id, asset_id, amount, status, withdrawal_id, received in rows:
        left = status in (PayoutStatus.WITHDRAWING, PayoutStatus.ARRIVED, PayoutStatus.PAID) or (
            status == PayoutStatus.FAILED and received is not None)
        totals[(str(order_id), asset_id)] = amount if left else ZERO
    return totals


def _sum_transfers_in_transit() -> dict[tuple[str, str], Decimal]:
    """{(order id, ledger asset id): amount} of transfers to the exchange not confirmed yet."""
    totals: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    with exact_context():
        for order_id, asset_id, amount in ExchangeTransfer.objects.filter(
                order__state=OrderState.WITHDRAWING,
                status__in=[ExchangeTransferStatus.PENDING, ExchangeTransferStatus.SENT]).values_list(
                "order__order_id", "asset_id", "amount"):
            totals[(str(order_id), asset_id)] += amount
    return totals


def _uuids(ref_ids) -> list:
    out = []
    for ref_id in ref_ids:
        try:
            out.append(uuid.UUID(ref_id))
        except ValueError:
            continue  # a ref that is not an order id names no order
    return out


def balance_scope(positions: dict[tuple[int, str], Position]) -> dict[int, set[str]]:
    """{enabled account id: exchange asset codes} whose balances are compared with the ledger.

    The base and quote codes of every pair traded on the account (by the pair or by an order),
    every asset an order position or a stored baseline names there.
    """
    scope: dict[int, set[str]] = defaultdict(set)
    for account_id, base, quote in MarketMakingPair.objects.filter(exchange_account__isnull=False).values_list(
            "exchange_account_id", "base_exchange_asset", "quote_exchange_asset"):
        scope[account_id] |= {base.upper(), quote.upper()}
    for account_id, base, quote in MarketMakingOrder.objects.filter(exchange_account__isnull=False).values_list(
            "exchange_account_id", "pair__base_exchange_asset", "pair__quote_exchange_asset").distinct():
        scope[account_id] |= {base.upper(), quote.upper()}
    for account_id, asset in positions:
        scope[account_id].add(asset)
    for account_id, asset in BalanceBaseline.objects.values_list("account_id", "asset"):
        scope[account_id].add(asset)
    enabled = set(ExchangeAccount.objects.filter(enabled=True, pk__in=list(scope)).values_list("pk", flat=True))
    return {account_id: {a for a in assets if a} for account_id, assets in scope.items() if account_id in enabled}


def baselines() -> dict[tuple[int, str], BalanceBaseline]:
    return {(b.account_id, b.asset): b for b in BalanceBaseline.objects.all()}


def closed_without_our_cancel(*, since: datetime) -> list[TrackedOrder]:
    """Tracked orders that were on the exchange and became cancelled or lost since ``since``
    though we never cancelled them: no cancel intent for them, and their session is not stopping
    or stopped (a stop cancels directly)."""
    rows = list(TrackedOrder.objects.filter(
        status__in=[TrackedOrderStatus.CANCELLED, TrackedOrderStatus.LOST], updated_at__gte=since,
    ).exclude(exchange_order_id="").order_by("id"))
    if not rows:
        return []
    ours = set(Intent.objects.filter(kind=IntentKind.CANCEL, client_order_id__in=[r.client_order_id for r in rows])
               .values_list("client_order_id", flat=True))
    stopping = {strategy_key(order_id) for order_id in StrategySession.objects.filter(
        status__in=[SessionStatus.STOPPING, SessionStatus.STOPPED],
        order__order_id__in=_uuids({r.strategy_key.split(":", 1)[-1] for r in rows}),
    ).values_list("order__order_id", flat=True)}
    return [r for r in rows if r.client_order_id not in ours and r.strategy_key not in stopping]


def previous_run(run) -> ReconciliationRun | None:
    """The last run that finished before ``run`` started (what it saw bounds what is new now)."""
    return ReconciliationRun.objects.filter(finished_at__isnull=False, started_at__lt=run.started_at).exclude(
        pk=run.pk).order_by("-started_at", "-id").first()


def intents_in_flight() -> int:
    return Intent.objects.filter(status=IntentStatus.IN_FLIGHT).count()


def intents_stuck(*, now: datetime, grace_s: float) -> list[Intent]:
    """In-flight intents whose lease ended more than ``grace_s`` ago (or that have no lease)."""
    cutoff = now - timedelta(seconds=grace_s)
    return list(Intent.objects.filter(status=IntentStatus.IN_FLIGHT).filter(
        Q(lease_until__lt=cutoff) | Q(lease_until__isnull=True)).select_related("account").order_by("id"))


def run_report(run) -> dict:
    """A run and its drifts as JSON-able values (amounts as exact decimal strings)."""
    def text(value):
        return None if value is None else format(value.normalize(), "f") if value else "0"

    drifts = run.drifts.select_related("account").order_by("id")
    return {
        "run_id": run.pk,
        "ok": run.ok,
        "trigger": run.trigger,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_s": round((run.finished_at - run.started_at).total_seconds(), 3) if run.finished_at else None,
        "counts": {"accounts": run.accounts_checked, "orders": run.orders_checked,
                   "balances": run.balances_checked, "intents_in_flight": run.intents_checked,
                   "baselines_set": run.baselines_set, "drifts": run.drift_count},
        "error": run.error,
        "drifts": [
            {"kind": d.kind, "account": d.account.label if d.account else None, "account_id": d.account_id,
             "symbol": d.symbol, "asset": d.asset, "expected": text(d.expected), "actual": text(d.actual),
             "difference": text(d.difference), "client_order_id": d.client_order_id, "intent_id": d.intent_id,
             "detail": d.detail}
            for d in drifts
        ],
    }


def reconciliation_status() -> dict:
    """The last finished run in a few numbers, for a metrics endpoint or a status command.

    ``{"run_id", "finished_at", "ok", "drifts": {kind: count for every kind}}``; a run id of None
    when no run has finished yet.
    """

    run = ReconciliationRun.objects.filter(finished_at__isnull=False).order_by("-finished_at", "-id").first()
    counts = dict.fromkeys(DriftKind.values, 0)
    if run is None:
        return {"run_id": None, "finished_at": None, "ok": None, "drifts": counts}
    counts.update({row["kind"]: row["n"] for row in run.drifts.values("kind").annotate(n=Count("id")).order_by()})
    return {"run_id": run.pk, "finished_at": run.finished_at.isoformat(), "ok": run.ok, "drifts": counts}
