"""reconcile_run: compare our state with the exchanges' and store every drift with its numbers.

Three checks, each read-only towards the exchange and the rest of the system:

- orders, per enabled account and symbol in scope: a tracked order we believe is on the book
  (open, partially filled, pending cancel) that the exchange does not list open is
  ``tracked_not_open`` (looked up by client id to say what the exchange knows of it); an open
  exchange order carrying a session prefix (``mm`` + 12 hex) that we do not track as live is
  ``untracked_open``. Both are confirmed against a second read of our rows, so an order the
  runtime placed or closed during the run is not reported. A tracked order that became
  cancelled or lost since the previous run without any cancel of ours is
  ``cancelled_externally`` (the trackers see a cancel behind our back within a tick).
- balances, per account and exchange asset: the exchange total (free + locked) minus what the
  ledger says the orders on that account have there; a change of that difference from its
  baseline is ``balance_changed`` (docs/reconciliation.md gives the rule).
- intents: in flight with a lease that ended more than a grace ago is ``stuck_intent``.

Any exchange read that fails is ``unreachable``: never read as "no orders" or "order gone".
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from decimal import Decimal

import ccxt
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from exchanges.clients import exchange_client
from exchanges.errors import AccountDisabled, ExchangeError
from exchanges.models import ExchangeAccount
from intents.models import TrackedOrderStatus
from ledger.amounts import exact_context
from ledger.selectors import exchange_currency_codes, ref_fee_debts
from orders.models import ORDER_REF, MarketMakingOrder
from intents.ids import client_order_prefix
from exchanges.services import RawNumbers, exchange_decimal, fetch_by_client_id
from intents.tracked_orders import ON_BOOK, status_of_exchange_order

from . import selectors
from .errors import ReconciliationCrashed
from .models import BalanceBaseline, Drift, DriftKind, ReconciliationRun

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
# A lease that ended this recently may be released by its worker right now: not stuck yet.
STUCK_INTENT_GRACE_S = 5
SESSION_PREFIX = re.compile(r"^mm[0-9a-f]{12}")
# Lookups by client id per run (one exchange call each): a mass cancel behind our back
# is still reported in full, only without the exchange's word on the orders past this budget.
MAX_LOOKUPS_PER_RUN = 200
# Tracked states in which the order is on the exchange's book as far as we know.
LIVE_STATUSES = set(ON_BOOK)
# States in which an exchange order with that client id is expected or about to be open.
NOT_ORPHAN_STATUSES = LIVE_STATUSES | {TrackedOrderStatus.PENDING_CREATE}


@dataclass
class Finding:
    kind: str
    detail: str
    account_id: int | None = None
    symbol: str = ""
    asset: str = ""
    expected: Decimal | None = None
    actual: Decimal | None = None
    difference: Decimal | None = None
    client_order_id: str = ""
    intent_id: str = ""

    def as_drift(self, run: ReconciliationRun) -> Drift:
        return Drift(run=run, kind=self.kind, account_id=self.account_id, symbol=self.symbol, asset=self.asset,
                     expected=self.expected, actual=self.actual, difference=self.difference,
                     client_order_id=self.client_order_id, intent_id=self.intent_id, detail=self.detail)


@dataclass
class _RunState:
    """What one run has seen so far: accounts, clients, lookups spent, and the counts it stores."""

    accounts: set
    clients: dict  # {account id: ccxt client or None}: one connection attempt per account per run
    lookups: int = 0
    orders: int = 0
    balances: int = 0
    intents: int = 0
    baselines_set: int = 0


def reconcile_run(*, trigger: str = "command", set_baseline: bool = False) -> ReconciliationRun:
    """Run every check once; store the run and its drifts; return the finished run.

    ``set_baseline`` accepts the current exchange-minus-ledger difference of every balance in
    scope as the new baseline (no ``balance_changed`` in that run); orders and intents are
    still checked. Raises ReconciliationCrashed (after recording it on the run) on a bug.
    """
    run = ReconciliationRun.objects.create(trigger=trigger, started_at=timezone.now())
    findings: list[Finding] = []
    counts = _RunState(accounts=set(), clients={})
    try:
        _check_intents(findings, counts)
        _check_external_cancels(findings, run=run)
        _check_orders(findings, counts)
        _check_balances(findings, counts, run=run, set_baseline=set_baseline)
    except Exception as exc:
        # What was found before the crash is kept; the run is not ok, whatever it found.
        _finish(run, findings, counts, error=f"{type(exc).__name__}: {exc}"[:4000])
        logger.exception("event=reconcile_crashed run_id=%s", run.pk)
        raise ReconciliationCrashed(f"reconciliation run {run.pk} crashed: {run.error}") from exc

    _finish(run, findings, counts)
    for f in findings:
        logger.warning("event=reconcile_drift run_id=%s kind=%s account_id=%s symbol=%s asset=%s expected=%s "
                       "actual=%s difference=%s client_order_id=%s intent_id=%s detail=%r", run.pk, f.kind,
                       f.account_id, f.symbol, f.asset, f.expected, f.actual, f.difference, f.client_order_id,
                       f.intent_id, f.detail)
    logger.info("event=reconcile_finished run_id=%s trigger=%s ok=%s drifts=%s accounts=%s orders=%s balances=%s "
                "intents=%s baselines_set=%s", run.pk, trigger, run.ok, run.drift_count, run.accounts_checked,
                run.orders_checked, run.balances_checked, run.intents_checked, run.baselines_set)
    return run


def _finish(run: ReconciliationRun, findings: list[Finding], counts: _RunState, *, error: str = "") -> None:
    with transaction.atomic():
        Drift.objects.bulk_create([f.as_drift(run) for f in findings])
        run.finished_at = timezone.now()
        run.ok = not findings and not error
        run.error = error
        run.drift_count = len(findings)
        run.accounts_checked = len(counts.accounts)
        run.orders_checked = counts.orders
        run.balances_checked = counts.balances
        run.intents_checked = counts.intents
        run.baselines_set = counts.baselines_set
        run.save()


# --- intents -------------------------------------------------------------------------------------


def _check_intents(findings: list[Finding], counts: _RunState) -> None:
    now = timezone.now()
    counts.intents = selectors.intents_in_flight()
    for intent in selectors.intents_stuck(now=now, grace_s=STUCK_INTENT_GRACE_S):
        if intent.lease_until is None:
            overdue, since = None, "no lease at all"
        else:
            overdue = Decimal(int((now - intent.lease_until).total_seconds() * 1000)).scaleb(-3)
            since = f"its lease ended at {intent.lease_until.isoformat()}, {overdue}s ago"
        what = f"{intent.kind} {intent.side} {intent.amount}@{intent.price}" if intent.kind == "create" \
            else intent.kind
        findings.append(Finding(
            kind=DriftKind.STUCK_INTENT, account_id=intent.account_id, symbol=intent.symbol,
            difference=overdue, client_order_id=intent.client_order_id, intent_id=intent.intent_id,
            detail=(f"intent {intent.intent_id} ({what}, client id {intent.client_order_id}) is in flight and "
                    f"{since} (grace {STUCK_INTENT_GRACE_S}s; {intent.attempts} attempt(s), sent "
                    f"{'at ' + intent.sent_at.isoformat() if intent.sent_at else 'not yet'}): no worker holds it"),
        ))


def _check_external_cancels(findings: list[Finding], *, run: ReconciliationRun) -> None:
    """Orders closed behind our back that the tracker already marked: gone from the book, so the
    orders check cannot see them. Reported once: from the previous run's start on, less what that
    run reported. The first run has no window and reports none."""
    previous = selectors.previous_run(run)
    if previous is None:
        return
    reported = set(previous.drifts.filter(kind=DriftKind.CANCELLED_EXTERNALLY).values_list(
        "client_order_id", flat=True))
    for row in selectors.closed_without_our_cancel(since=previous.started_at):
        if row.client_order_id in reported:
            continue
        with exact_context():
            remaining = row.amount - row.filled
        findings.append(Finding(
            kind=DriftKind.CANCELLED_EXTERNALLY, account_id=row.account_id, symbol=row.symbol,
            expected=remaining, actual=ZERO, difference=remaining.copy_negate(),
            client_order_id=row.client_order_id,
            detail=(f"tracked {row.side} {row.amount}@{row.price} filled {row.filled} ({row.strategy_key}, exchange id "
                    f"{row.exchange_order_id}) became {row.status} at {row.updated_at.isoformat()} without a cancel "
                    f"of ours (no cancel intent, session not stopping): cancelled by someone else or by the "
                    f"exchange"),
        ))


# --- orders --------------------------------------------------------------------------------------


def _describe(order: dict) -> str:
    amount, filled = exchange_decimal(order, "amount"), exchange_decimal(order, "filled")
    return (f"{order.get('status')} {order.get('side')} {amount}@{exchange_decimal(order, 'price')} "
            f"filled {filled} (exchange id {order.get('id')})")


def _unreachable(account_id: int, what: str, exc: BaseException, *, symbol: str = "",
                 client_order_id: str = "") -> Finding:
    return Finding(kind=DriftKind.UNREACHABLE, account_id=account_id, symbol=symbol, client_order_id=client_order_id,
                   detail=f"{what} failed: {type(exc).__name__}: {str(exc)[:300]}; nothing was verified there")


def _client(account_id: int, findings: list[Finding], counts: _RunState):
    if account_id not in counts.clients:
        try:
            counts.clients[account_id] = exchange_client(account_id=account_id)
        except AccountDisabled:
            counts.clients[account_id] = None  # disabled after the scope was read: out of scope
        except (ccxt.BaseError, ExchangeError, ValueError) as exc:
            # Down, or misconfigured (unknown exchange id, undecryptable secret): this account
            # cannot be checked, the others still are.
            findings.append(_unreachable(account_id, "connecting (loading markets)", exc))
            counts.clients[account_id] = None
    return counts.clients[account_id]


def _check_orders(findings: list[Finding], counts: _RunState) -> None:
    for account_id, symbols in sorted(selectors.order_scope().items()):
        client = _client(account_id, findings, counts)
        counts.accounts.add(account_id)
        if client is None:
            continue
        for symbol in sorted(symbols):
            _check_market(client, account_id, symbol, findings, counts)


NOT_LOOKED_UP = object()  # marker: the lookup budget was spent before this order


def _check_market(client, account_id: int, symbol: str, findings: list[Finding], counts: _RunState) -> None:
    # Our view first: an order placed after this read is confirmed against a second read below.
    believed = selectors.tracked_open(account_id, symbol)
    try:
        exchange_open = {o.get("clientOrderId") or "": o for o in client.fetch_open_orders(symbol)}
    except ccxt.BaseError as exc:
        findings.append(_unreachable(account_id, f"reading open orders of {symbol}", exc, symbol=symbol))
        return
    ours = {cid: o for cid, o in exchange_open.items() if SESSION_PREFIX.match(cid)}
    counts.orders += len(set(believed) | set(ours))

    missing: dict[str, tuple] = {}
    for client_order_id, row in sorted(believed.items()):
        if client_order_id in exchange_open:
            continue
        if counts.lookups >= MAX_LOOKUPS_PER_RUN:
            missing[client_order_id] = (row, NOT_LOOKED_UP)
            continue
        counts.lookups += 1
        try:
            found = fetch_by_client_id(client, symbol, client_order_id)
        except ccxt.BaseError as exc:
            findings.append(_unreachable(account_id, f"looking up {client_order_id}", exc, symbol=symbol,
                                         client_order_id=client_order_id))
            continue
        missing[client_order_id] = (row, found)

    current = selectors.tracked_statuses(set(missing) | set(ours))
    for client_order_id, (row, found) in missing.items():
        if current.get(client_order_id) not in LIVE_STATUSES:
            continue  # the tracker caught up during the run
        if row.status == TrackedOrderStatus.PENDING_CANCEL and found not in (None, NOT_LOOKED_UP) \
                and status_of_exchange_order(found) == TrackedOrderStatus.CANCELLED:
            continue  # we asked for this cancel; only the tracked row has not caught up yet
        with exact_context():
            remaining = row.amount - row.filled
        if found is NOT_LOOKED_UP:
            says = f"not looked up (budget of {MAX_LOOKUPS_PER_RUN} lookups per run spent)"
        else:
            says = _describe(found) if found else "no order with this client id (order not found)"
        findings.append(Finding(
            kind=DriftKind.TRACKED_NOT_OPEN, account_id=account_id, symbol=symbol, expected=remaining,
            actual=ZERO, difference=remaining.copy_negate(), client_order_id=client_order_id,
            detail=(f"tracked {row.status} {row.side} {row.amount}@{row.price} filled {row.filled} "
                    f"({row.strategy_key}), not open on the exchange; exchange says: {says}"),
        ))

    orphans = {cid: o for cid, o in ours.items() if current.get(cid) not in NOT_ORPHAN_STATUSES}
    owners = _owners_by_prefix(account_id) if orphans else {}
    for client_order_id, order in sorted(orphans.items()):
        amount, filled = exchange_decimal(order, "amount"), exchange_decimal(order, "filled") or ZERO
        with exact_context():
            remaining = amount - filled if amount is not None else None
        prefix = SESSION_PREFIX.match(client_order_id).group(0)
        owner = owners.get(prefix)
        tracked = current.get(client_order_id)
        findings.append(Finding(
            kind=DriftKind.UNTRACKED_OPEN, account_id=account_id, symbol=symbol, expected=ZERO, actual=remaining,
            difference=remaining, client_order_id=client_order_id,
            detail=(f"open on the exchange: {_describe(order)}; "
                    f"{'tracked as ' + tracked if tracked else 'not tracked at all'}; prefix {prefix} "
                    f"{'of order ' + owner if owner else 'matches no order on this account'}"),
        ))


def _owners_by_prefix(account_id: int) -> dict[str, str]:
    """{session prefix: 'order_id (state)'} of the orders trading on this account."""
    rows = MarketMakingOrder.objects.filter(
        Q(exchange_account_id=account_id) | Q(exchange_account__isnull=True, pair__exchange_account_id=account_id)
    ).values_list("order_id", "state")
    return {client_order_prefix(order_id): f"{order_id} ({state})" for order_id, state in rows}


# --- balances ------------------------------------------------------------------------------------


def exchange_totals(balance: dict) -> dict[str, Decimal]:
    """{currency code: free + used} from a ccxt fetch_balance result, exactly: ccxt's unified
    free and used of each currency through exchanges.services.exchange_decimal (the exchange's own
    text of each when it kept one), their total when it gives neither."""
    raw = RawNumbers(balance.get("info"))
    totals: dict[str, Decimal] = {}
    codes = set(balance.get("free") or {}) | set(balance.get("used") or {}) | set(balance.get("total") or {})
    with exact_context():
        for code in codes:
            account = balance.get(code) or {}
            free, used = exchange_decimal(account, "free", info=raw), exchange_decimal(account, "used", info=raw)
            total = (free or ZERO) + (used or ZERO) if free is not None or used is not None else \
                exchange_decimal(account, "total", info=raw)
            totals[code.upper()] = total or ZERO
    return totals


def _check_balances(findings: list[Finding], counts: _RunState, *, run: ReconciliationRun,
                    set_baseline: bool) -> None:
    positions = _with_fee_debts(selectors.ledger_positions())
    baselines = selectors.baselines()
    labels = dict(ExchangeAccount.objects.values_list("pk", "label"))
    for account_id, assets in sorted(selectors.balance_scope(positions).items()):
        counts.accounts.add(account_id)
        client = _client(account_id, findings, counts)
        if client is None:
            continue
        try:
            totals = exchange_totals(client.fetch_balance())
        except ccxt.BaseError as exc:
            findings.append(_unreachable(account_id, "reading balances", exc))
            continue
        for asset in sorted(assets):
            counts.balances += 1
            position = positions.get((account_id, asset))
            exchange_total = totals.get(asset, ZERO)
            ledger_total = position.amount if position else ZERO
            with exact_context():
                difference = exchange_total - ledger_total
            baseline = baselines.get((account_id, asset))
            if baseline is None or set_baseline:
                _baseline_store(account_id, asset, difference=difference, exchange_total=exchange_total,
                                ledger_total=ledger_total, run=run, previous=baseline)
                counts.baselines_set += 1
                continue
            with exact_context():
                change = difference - baseline.difference
                expected = ledger_total + baseline.difference
            if change:
                findings.append(Finding(
                    kind=DriftKind.BALANCE_CHANGED, account_id=account_id, asset=asset, expected=expected,
                    actual=exchange_total, difference=change,
                    detail=(f"{labels.get(account_id)} holds {exchange_total} {asset}; the ledger says its orders "
                            f"have {ledger_total} there ({position.orders if position else 0} order(s), "
                            f"{position.released if position else ZERO} of it released by stopped orders) and the "
                            f"baseline float is {baseline.difference} (set {baseline.set_at.isoformat()}), so "
                            f"{expected} was expected: changed by {change:+f}"),
                ))


def _with_fee_debts(positions: dict[tuple[int, str], selectors.Position]) -> dict[tuple[int, str], selectors.Position]:
    """``positions`` with the fees orders owe in a third currency (ledger fee_debt postings, e.g. BNB on
    Binance) counted on their account: the exchange took that asset from the account's own holdings,
    so the ledger's position there goes down by as much and the difference to the exchange stays
    put. The asset's code on the exchange is the one ledger.ExchangeCurrency maps (as at settlement)."""
    debts = ref_fee_debts(ref_type=ORDER_REF)
    if not debts:
        return positions
    accounts = {str(order_id): (account_id or pair_account_id, exchange_id or pair_exchange_id)
                for order_id, account_id, pair_account_id, exchange_id, pair_exchange_id in
                MarketMakingOrder.objects.filter(order_id__in=selectors._uuids({ref for ref, _ in debts})).values_list(
                    "order_id", "exchange_account_id", "pair__exchange_account_id", "exchange_account__exchange_id",
                    "pair__exchange_account__exchange_id")}
    codes = exchange_currency_codes(exchange_ids={exchange_id for _, exchange_id in accounts.values() if exchange_id})
    merged = dict(positions)
    with exact_context():
        for (ref_id, asset_id), owed in sorted(debts.items()):
            account_id, exchange_id = accounts.get(ref_id, (None, None))
            code = codes.get((exchange_id, asset_id))
            if account_id is None or code is None:
                logger.warning("event=reconcile_fee_debt_unplaced order_id=%s asset_id=%s owed=%s account_id=%s: no "
                               "account or exchange currency for it", ref_id, asset_id, owed, account_id)
                continue
            key = (account_id, code.upper())
            known = merged.get(key)
            merged[key] = replace(known, amount=known.amount + owed, orders=known.orders + 1) if known else \
                selectors.Position(account_id=account_id, asset=key[1], amount=owed, orders=1)
    return merged


def _baseline_store(account_id: int, asset: str, *, difference: Decimal, exchange_total: Decimal,
                    ledger_total: Decimal, run: ReconciliationRun, previous: BalanceBaseline | None) -> None:
    BalanceBaseline.objects.update_or_create(
        account_id=account_id, asset=asset,
        defaults=dict(difference=difference, exchange_total=exchange_total, ledger_total=ledger_total,
                      set_at=timezone.now(), set_by_run=run),
    )
    logger.info("event=reconcile_baseline_set run_id=%s account_id=%s asset=%s difference=%s previous=%s "
                "exchange_total=%s ledger_total=%s", run.pk, account_id, asset, difference,
                previous.difference if previous else None, exchange_total, ledger_total)
