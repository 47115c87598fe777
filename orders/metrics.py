"""The orders' /metrics sections: orders by lifecycle state, and those waiting past their state's deadline;
refunds pending and compensated; each running order's PnL and inventory (the only per-order series: the
running orders are a bounded set, finished ones leave it).

Each number is read at scrape time from the database; money is summed in Decimal (exact NUMERIC sums on
PostgreSQL) and becomes a float only as a sample value.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from intents.ids import strategy_key
from intents.models import TrackedFill
from ledger.amounts import exact_context
from ledger.selectors import ref_positions
from mmproject.metrics import counts_by, register_section
from strategy.models import MarketData

from .models import ORDER_REF, MarketMakingOrder, OrderState, Refund, RefundStatus

ZERO = Decimal(0)
# A state that waits on one job (its retries with backoff, then a sweep that re-queues it) and has no
# deadline setting of its own is overdue this long after the order entered it.
STEP_DEADLINE_S = 600
# The states an order waits in for a job, and the setting of each one's deadline: payment_pending's is
# the order's own expires_at (created_at + MM_PAYMENT_TIMEOUT_S) plus one sweep, the sweeper failing it then;
# withdrawing's MM_WITHDRAWAL_MONITOR_TIMEOUT_S after the withdrawal started; paying_out's the payout's
# checks (MM_PAYOUT_CHECK_INTERVAL_S x MM_PAYOUT_MAX_CHECKS) and STEP_DEADLINE_S after the order entered it;
# the others' STEP_DEADLINE_S after the order entered them. payment_complete waits only when a withdrawal
# mode is set (MM_WITHDRAW_MODE).
WAITING_STATES = (OrderState.PAYMENT_PENDING, OrderState.PAYMENT_COMPLETE, OrderState.WITHDRAWING,
                  OrderState.WITHDRAWAL_CONFIRMED, OrderState.CAMPAIGN_JOINED, OrderState.PAYING_OUT)


def order_families():
    family = GaugeMetricFamily("mm_orders", "Market-making orders by lifecycle state.", labels=["state"])
    counts = counts_by(MarketMakingOrder.objects, "state")
    for state in OrderState.values:
        family.add_metric([state], counts.get(state, 0))
    return [family]


def state_deadline(state: str, *, created_at, expires_at, withdrawal_started_at, entered_at):
    """When an order in the waiting ``state`` is overdue."""
    if state == OrderState.PAYMENT_PENDING:
        # the sweeper fails an unpaid order at its expires_at: overdue when one sweep later it has not
        return expires_at + timedelta(seconds=settings.MM_SWEEP_INTERVAL_S)
    if state == OrderState.WITHDRAWING:
        started = withdrawal_started_at or entered_at or created_at
        return started + timedelta(seconds=settings.MM_WITHDRAWAL_MONITOR_TIMEOUT_S)
    step_s = STEP_DEADLINE_S
    if state == OrderState.PAYING_OUT:
        step_s += settings.MM_PAYOUT_CHECK_INTERVAL_S * settings.MM_PAYOUT_MAX_CHECKS
    return (entered_at or created_at) + timedelta(seconds=step_s)


def overdue_families():
    """Orders still in a waiting state past its deadline: a job chain that died and no sweep picked up."""
    now = timezone.now()
    states = [s for s in WAITING_STATES if s != OrderState.PAYMENT_COMPLETE or settings.MM_WITHDRAW_MODE != "disabled"]
    rows = MarketMakingOrder.objects.filter(state__in=states).annotate(entered_at=Max("transitions__at")).values_list(
        "state", "created_at", "expires_at", "withdrawal_started_at", "entered_at")
    count = dict.fromkeys(states, 0)
    worst = dict.fromkeys(states, 0.0)
    for state, created_at, expires_at, withdrawal_started_at, entered_at in rows:
        late_s = (now - state_deadline(state, created_at=created_at, expires_at=expires_at,
                                       withdrawal_started_at=withdrawal_started_at,
                                       entered_at=entered_at)).total_seconds()
        if late_s > 0:
            count[state] += 1
            worst[state] = max(worst[state], late_s)
    overdue = GaugeMetricFamily("mm_orders_overdue", "Orders still in a waiting state past its deadline.",
                                labels=["state"])
    overdue_s = GaugeMetricFamily("mm_orders_overdue_max_seconds",
                                  "Seconds the most overdue order of a waiting state is past its deadline.",
                                  labels=["state"])
    for state in states:
        overdue.add_metric([state], count[state])
        overdue_s.add_metric([state], worst[state])
    return [overdue, overdue_s]


def refund_families():
    """Refunds not sent yet, and refunds whose transfer the provider refused (credited back to the user's
    balance: the user has not been paid)."""
    rows = {row["status"]: row for row in Refund.objects.filter(
        status__in=[RefundStatus.PENDING, RefundStatus.COMPENSATED]).values("status").annotate(
        n=Count("id"), oldest=Min("created_at")).order_by()}
    refunds = GaugeMetricFamily("mm_refunds", "Refunds pending (debited, transfer not sent yet) and compensated "
                                "(transfer refused, amount credited back).", labels=["status"])
    for status in (RefundStatus.PENDING, RefundStatus.COMPENSATED):
        refunds.add_metric([status], rows[status]["n"] if status in rows else 0)
    oldest = GaugeMetricFamily("mm_refund_pending_oldest_seconds", "Age of the oldest pending refund (0: none).")
    pending = rows.get(RefundStatus.PENDING)
    oldest.add_metric([], (timezone.now() - pending["oldest"]).total_seconds() if pending else 0.0)
    return [refunds, oldest]


def _fill_sums(keys) -> dict[tuple[str, str, str], list[Decimal]]:
    """{(strategy key, side, fee currency): [amount, cost, fee]} of the fills of ``keys``: summed exactly
    in SQL on PostgreSQL (one row per group); SQLite stores amounts as text and would sum floats, so
    there the fills are summed in Decimal."""
    fills = TrackedFill.objects.filter(strategy_key__in=keys)
    if connection.vendor == "postgresql":
        return {(row["strategy_key"], row["side"], row["fee_currency"]): [row["a"], row["c"], row["f"]]
                for row in fills.values("strategy_key", "side", "fee_currency").annotate(
                    a=Sum("amount"), c=Sum("cost"), f=Sum("fee")).order_by()}
    sums: dict[tuple[str, str, str], list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    with exact_context():
        for key, side, currency, amount, cost, fee in fills.values_list(
                "strategy_key", "side", "fee_currency", "amount", "cost", "fee").iterator(chunk_size=5000):
            group = sums[(key, side, currency)]
            group[0] += amount
            group[1] += cost
            group[2] += fee
    return dict(sums)


def position_families():
    """Each running order's PnL in its quote asset (base delta x mid + quote delta of its fills, fees in
    base or quote included: the order admin's and the demo's figure), the value of its funding at that
    mid (base amount x mid + quote amount: what a PnL ratio divides by) and its inventory (what it holds
    in the ledger per asset: locks, settled fills and fees)."""
    orders = list(MarketMakingOrder.objects.filter(state=OrderState.RUNNING).values_list(
        "order_id", "exchange_account_id", "base_amount", "quote_amount", "pair__symbol", "pair__base_exchange_asset",
        "pair__quote_exchange_asset", "pair__base_asset_id", "pair__quote_asset_id"))
    pnl = GaugeMetricFamily("mm_order_pnl_quote", "A running order's PnL in its quote asset, its fills marked at "
                            "the mid (fees included).", labels=["order_id"])
    value = GaugeMetricFamily("mm_order_value_quote", "A running order's funding (base amount x mid + quote "
                              "amount) at the mid.", labels=["order_id"])
    inventory = GaugeMetricFamily("mm_order_inventory", "What a running order holds in the ledger, per asset "
                                  "(exchange code).", labels=["order_id", "asset"])
    if not orders:
        return [pnl, value, inventory]
    fills = defaultdict(list)  # strategy key -> [(side, fee currency, [amount, cost, fee])]
    for (key, side, currency), totals in _fill_sums([strategy_key(row[0]) for row in orders]).items():
        fills[key].append((side, (currency or "").upper(), totals))
    markets = Q(pk__in=[])
    for account_id, symbol in {(row[1], row[4]) for row in orders}:
        markets |= Q(account_id=account_id, symbol=symbol)
    mids = {(account_id, symbol): (bid + ask) / 2 for account_id, symbol, bid, ask in MarketData.objects.filter(
        markets, best_bid__isnull=False, best_ask__isnull=False).values_list("account_id", "symbol", "best_bid",
                                                                            "best_ask")}
    held = ref_positions(ref_type=ORDER_REF, ref_ids=[row[0] for row in orders])
    with exact_context():
        for order_id, account_id, base_amount, quote_amount, symbol, base_code, quote_code, base_id, quote_id in orders:
            ref = str(order_id)
            inventory.add_metric([ref, base_code], float(held.get((ref, base_id), ZERO)))
            inventory.add_metric([ref, quote_code], float(held.get((ref, quote_id), ZERO)))
            mid = mids.get((account_id, symbol))
            if mid is None:  # no book yet: no mark
                continue
            base = quote = ZERO
            for side, currency, (amount, cost, fee) in fills[strategy_key(order_id)]:
                sign = 1 if side == "buy" else -1
                base += sign * amount
                quote -= sign * cost
                if currency == base_code.upper():
                    base -= fee
                elif currency == quote_code.upper():
                    quote -= fee
            pnl.add_metric([ref], float(base * mid + quote))
            value.add_metric([ref], float(base_amount * mid + quote_amount))
    return [pnl, value, inventory]


def register() -> None:
    register_section("orders", order_families)
    register_section("orders_overdue", overdue_families)
    register_section("refunds", refund_families)
    register_section("order_positions", position_families)
