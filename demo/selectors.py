"""What the live view shows: the demo order, its open orders and fills, inventory, PnL, the tick, intents.

Every amount is a canonical decimal string; PnL is computed exactly from the recorded fills.
"""
from __future__ import annotations

from decimal import Decimal

from django.db.models import Count
from django.utils import timezone

from intents.ids import strategy_key
from intents.models import OPEN_TRACKED_STATUSES, Intent, IntentStatus, TrackedFill, TrackedOrder
from ledger.amounts import canonical
from ledger.services import get_balance
from orders.models import MarketMakingOrder, OrderTransition
from strategy.models import TICK_LEASE_NAME, MarketData, StrategySession, TickLease

from .services import demo_order_latest

ZERO = Decimal(0)
LAST_FILLS = 5
PNL_PLACES = Decimal("0.00000001")


def _age_s(moment) -> float | None:
    return None if moment is None else round((timezone.now() - moment).total_seconds(), 1)


def fills_summary(*, key: str, base_code: str, quote_code: str) -> dict:
    """Fill counts and the exact base/quote deltas (fees included) of one strategy key."""
    base_delta = quote_delta = ZERO
    bought = sold = ZERO
    count = 0
    for fill in TrackedFill.objects.filter(strategy_key=key).order_by("traded_at_ms", "id").iterator():
        count += 1
        sign = 1 if fill.side == "buy" else -1
        base_delta += sign * fill.amount
        quote_delta -= sign * fill.cost
        if fill.side == "buy":
            bought += fill.amount
        else:
            sold += fill.amount
        fee_code = (fill.fee_currency or "").upper()
        if fee_code == base_code:
            base_delta -= fill.fee
        elif fee_code == quote_code:
            quote_delta -= fill.fee
    last = [
        {"side": f.side, "price": canonical(f.price), "amount": canonical(f.amount), "fee": canonical(f.fee),
         "fee_currency": f.fee_currency, "trade_id": f.trade_id}
        for f in TrackedFill.objects.filter(strategy_key=key).order_by("-traded_at_ms", "-id")[:LAST_FILLS]
    ]
    return {"count": count, "bought": canonical(bought), "sold": canonical(sold),
            "base_delta": canonical(base_delta), "quote_delta": canonical(quote_delta), "last": last,
            "_base_delta": base_delta, "_quote_delta": quote_delta}


def demo_view(order: MarketMakingOrder | None = None) -> dict:
    """Everything the live view prints, for ``order`` (default: the newest demo order)."""
    order = order or demo_order_latest()
    if order is None:
        return {"order": None}
    pair = order.pair
    key = strategy_key(order.order_id)
    base_code, quote_code = pair.base_exchange_asset.upper(), pair.quote_exchange_asset.upper()

    path = list(OrderTransition.objects.filter(order=order).order_by("at", "id").values_list("to_state", flat=True))
    session = StrategySession.objects.filter(order=order).first()
    market = MarketData.objects.filter(account_id=order.exchange_account_id, symbol=pair.symbol).first()
    mid = None
    if market is not None and market.best_bid is not None and market.best_ask is not None:
        mid = (market.best_bid + market.best_ask) / 2

    open_orders = [
        {"side": t.side, "price": canonical(t.price), "amount": canonical(t.amount), "filled": canonical(t.filled),
         "status": t.status, "layer": t.layer}
        for t in TrackedOrder.objects.filter(strategy_key=key, status__in=OPEN_TRACKED_STATUSES).order_by("-price")
    ]
    fills = fills_summary(key=key, base_code=base_code, quote_code=quote_code)
    base_delta, quote_delta = fills.pop("_base_delta"), fills.pop("_quote_delta")
    pnl = None if mid is None else canonical((base_delta * mid + quote_delta).quantize(PNL_PLACES))

    inventory = {}
    for code, asset_id in ((base_code, pair.base_asset_id), (quote_code, pair.quote_asset_id)):
        balance = get_balance(user_id=order.user_id, asset_id=asset_id)
        inventory[code] = {"available": canonical(balance.available), "locked": canonical(balance.locked),
                           "total": canonical(balance.total)}

    lease = TickLease.objects.filter(name=TICK_LEASE_NAME).first()
    intents = {row["status"]: row["n"] for row in
               Intent.objects.filter(strategy_key=key).values("status").annotate(n=Count("id")).order_by()}
    return {
        "order": {"order_id": str(order.order_id), "state": order.state, "reason": order.reason, "path": path,
                  "symbol": pair.symbol, "session": session.status if session else None},
        "uptime": None if session is None or not session.quote_samples else {
            "two_sided_pct": round(100 * session.two_sided_samples / session.quote_samples, 1),
            "samples": session.quote_samples},
        "market": None if market is None else {
            "bid": canonical(market.best_bid) if market.best_bid is not None else None,
            "ask": canonical(market.best_ask) if market.best_ask is not None else None,
            "mid": canonical(mid) if mid is not None else None, "age_s": _age_s(market.fetched_at)},
        "open_orders": open_orders,
        "fills": fills,
        "inventory": inventory,
        "pnl": {"quote": pnl, "currency": quote_code,
                "basis": "fills marked at the mid: base delta x mid + quote delta, fees included"},
        "tick": None if lease is None else {
            "last_duration_ms": lease.last_duration_ms, "ticks_run": lease.ticks_run,
            "ticks_skipped": lease.ticks_skipped, "last_finished_age_s": _age_s(lease.last_finished_at)},
        "intents": {"in_flight": intents.get(IntentStatus.IN_FLIGHT, 0), "new": intents.get(IntentStatus.NEW, 0),
                    "done": intents.get(IntentStatus.DONE, 0), "failed": intents.get(IntentStatus.FAILED, 0),
                    "superseded": intents.get(IntentStatus.SUPERSEDED, 0)},
    }
