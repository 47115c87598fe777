"""Trackers: what the exchange says, stored so the strategy never waits on an exchange.

``market_data_refresh`` stores the top of one market's book and its precision rules.
``orders_track`` reconciles one account's tracked orders with the exchange: an order that left
the open list is looked up by client order id and becomes filled or cancelled; only the
exchange's own "order not found" makes it lost, never a network error.
"""
from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

import ccxt
from django.db.models import Max, Q
from django.utils import timezone

from exchanges.clients import exchange_client
from exchanges.policy import Operation, error_action
from intents.models import OPEN_TRACKED_STATUSES, TrackedFill, TrackedOrder, TrackedOrderStatus

from .models import MarketData

logger = logging.getLogger(__name__)


def dec(value) -> Decimal | None:
    """A ccxt number as an exact Decimal (through its shortest text form), or None."""
    if value is None:
        return None
    return value if isinstance(value, Decimal) else Decimal(str(value))


def market_rules(client: ccxt.Exchange, symbol: str) -> dict[str, Decimal]:
    market = client.market(symbol)
    limits = market.get("limits") or {}
    return {
        "price_tick": dec(market["precision"]["price"]),
        "amount_step": dec(market["precision"]["amount"]),
        "min_amount": dec((limits.get("amount") or {}).get("min")) or Decimal(0),
        "min_notional": dec((limits.get("cost") or {}).get("min")) or Decimal(0),
    }


def market_data_refresh(*, account_id: int, symbol: str) -> MarketData:
    client = exchange_client(account_id=account_id)
    book = client.fetch_order_book(symbol, limit=5)
    best_bid = dec(book["bids"][0][0]) if book["bids"] else None
    best_ask = dec(book["asks"][0][0]) if book["asks"] else None
    row, _ = MarketData.objects.update_or_create(
        account_id=account_id, symbol=symbol,
        defaults={"best_bid": best_bid, "best_ask": best_ask, "fetched_at": timezone.now(),
                  **market_rules(client, symbol)},
    )
    return row


STATUS_FROM_CCXT = {
    "open": TrackedOrderStatus.OPEN,
    "closed": TrackedOrderStatus.FILLED,
    "canceled": TrackedOrderStatus.CANCELLED,
    "cancelled": TrackedOrderStatus.CANCELLED,
    "expired": TrackedOrderStatus.CANCELLED,
    "rejected": TrackedOrderStatus.FAILED,
}


def tracked_status_of(order: dict) -> str:
    """Our status for a ccxt order structure (an open order with fills is partially filled)."""
    status = STATUS_FROM_CCXT.get(order.get("status") or "open", TrackedOrderStatus.OPEN)
    if status == TrackedOrderStatus.OPEN and (dec(order.get("filled")) or 0) > 0:
        return TrackedOrderStatus.PARTIALLY_FILLED
    return status


TRACKED_EXCHANGE_FIELDS = ("status", "filled", "exchange_order_id", "last_fill_at", "updated_at")


def apply_exchange_order(tracked: TrackedOrder, order: dict, *, save: bool = True) -> TrackedOrder:
    """Copy what the exchange says about an order onto its tracked row, and save it
    (``TRACKED_EXCHANGE_FIELDS``) unless ``save`` is false (an intents batch writes its rows together)."""
    status = tracked_status_of(order)
    filled = dec(order.get("filled")) or Decimal(0)
    if status == TrackedOrderStatus.OPEN and tracked.status == TrackedOrderStatus.PENDING_CANCEL:
        status = TrackedOrderStatus.PENDING_CANCEL  # the cancel is on its way
    if filled > tracked.filled:
        tracked.last_fill_at = timezone.now()
    tracked.status = status
    tracked.filled = filled
    tracked.exchange_order_id = str(order.get("id") or tracked.exchange_order_id)
    if save:
        tracked.save(update_fields=list(TRACKED_EXCHANGE_FIELDS))
    return tracked


def fetch_by_client_id(client: ccxt.Exchange, symbol: str, client_order_id: str) -> dict | None:
    """The exchange's order with our client id, or None when the exchange says it does not exist.

    Any other error (network, timeout, rate limit) propagates: it is never read as "not found".
    """
    try:
        return client.fetch_order(None, symbol, {"origClientOrderId": client_order_id})
    except ccxt.OrderNotFound:
        return None


FILL_OVERLAP_MS = 60_000


def fills_record(*, account_id: int, symbol: str, client: ccxt.Exchange | None = None,
                 strategy_key: str | None = None) -> int:
    """Record every new trade of our tracked orders on one market once, and settle it into the ledger.

    Trades are fetched from a little before the newest one recorded (or the oldest tracked order),
    so nothing between two runs is missed; the unique (account, symbol, trade id) and the ledger
    key ``fill:{exchange}:{trade_id}`` make seeing a trade twice harmless.
    """
    client = client or exchange_client(account_id=account_id)
    recent = timezone.now() - timedelta(days=1)
    tracked = TrackedOrder.objects.filter(account_id=account_id, symbol=symbol).exclude(exchange_order_id="").filter(
        Q(status__in=OPEN_TRACKED_STATUSES) | Q(updated_at__gte=recent))
    if strategy_key:
        tracked = tracked.filter(strategy_key=strategy_key)
    by_exchange_id = {t.exchange_order_id: t for t in tracked}
    if not by_exchange_id:
        return 0
    newest = TrackedFill.objects.filter(account_id=account_id, symbol=symbol).aggregate(m=Max("traded_at_ms"))["m"]
    if newest is not None:
        since = newest - FILL_OVERLAP_MS
    else:
        since = int(min(t.created_at for t in by_exchange_id.values()).timestamp() * 1000) - FILL_OVERLAP_MS
    recorded = 0
    while True:
        trades = client.fetch_my_trades(symbol, since=since, limit=500)
        for trade in trades:
            order = by_exchange_id.get(str(trade.get("order")))
            if order is not None and _fill_save(account_id, symbol, order, trade):
                recorded += 1
        if len(trades) < 500:
            break
        since = max(int(t["timestamp"]) for t in trades)
    return recorded


def _fill_save(account_id: int, symbol: str, order: TrackedOrder, trade: dict) -> bool:
    from ledger.errors import LedgerError

    from .services_fills import fill_settle

    info = trade.get("info") or {}
    fee = trade.get("fee") or {}
    fill, created = TrackedFill.objects.get_or_create(
        account_id=account_id, symbol=symbol, trade_id=str(trade["id"]),
        defaults=dict(
            tracked_order=order, strategy_key=order.strategy_key, side=trade["side"],
            price=dec(info.get("price", trade["price"])), amount=dec(info.get("qty", trade["amount"])),
            cost=dec(info.get("quoteQty", trade["cost"])),
            fee=dec(info.get("commission", fee.get("cost"))) or Decimal(0),
            fee_currency=info.get("commissionAsset") or fee.get("currency") or "",
            traded_at_ms=int(trade["timestamp"]),
        ),
    )
    if fill.ledger_entry_id is None:
        try:
            fill_settle(fill=fill)
        except (LedgerError, ValueError) as exc:
            TrackedFill.objects.filter(pk=fill.pk).update(settle_error=str(exc)[:2000])
            logger.error("event=fill_settle_failed strategy_key=%s trade_id=%s error=%s", fill.strategy_key,
                         fill.trade_id, exc)
    return created


def orders_track(*, account_id: int) -> dict[str, int]:
    """Bring every tracked open order of one account in line with the exchange, and record fills."""
    client = exchange_client(account_id=account_id)
    rows = list(TrackedOrder.objects.filter(account_id=account_id, status__in=[
        TrackedOrderStatus.OPEN, TrackedOrderStatus.PARTIALLY_FILLED, TrackedOrderStatus.PENDING_CANCEL]))
    counts = {"checked": 0, "updated": 0, "lost": 0, "errors": 0, "fills": 0}
    for symbol in sorted({row.symbol for row in rows}):
        try:
            open_orders = {o.get("clientOrderId"): o for o in client.fetch_open_orders(symbol)}
        except ccxt.BaseError as exc:
            counts["errors"] += 1
            logger.warning("event=track_open_orders_failed account_id=%s symbol=%s error=%s action=%s",
                           account_id, symbol, type(exc).__name__, error_action(exc, Operation.READ))
            continue
        for row in (r for r in rows if r.symbol == symbol):
            counts["checked"] += 1
            order = open_orders.get(row.client_order_id)
            if order is None:
                try:
                    order = fetch_by_client_id(client, symbol, row.client_order_id)
                except ccxt.BaseError as exc:
                    counts["errors"] += 1
                    logger.warning("event=track_lookup_failed account_id=%s client_order_id=%s error=%s",
                                   account_id, row.client_order_id, type(exc).__name__)
                    continue
                if order is None:
                    row.status = TrackedOrderStatus.LOST
                    row.save(update_fields=["status", "updated_at"])
                    counts["lost"] += 1
                    logger.warning("event=tracked_order_lost account_id=%s strategy_key=%s client_order_id=%s",
                                   account_id, row.strategy_key, row.client_order_id)
                    continue
            before = (row.status, row.filled)
            apply_exchange_order(row, order)
            if (row.status, row.filled) != before:
                counts["updated"] += 1
        try:
            counts["fills"] += fills_record(account_id=account_id, symbol=symbol, client=client)
        except ccxt.BaseError as exc:
            counts["errors"] += 1
            logger.warning("event=track_fills_failed account_id=%s symbol=%s error=%s", account_id, symbol,
                           type(exc).__name__)
    return counts

