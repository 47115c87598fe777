"""Trackers: what the exchange says, stored so the strategy never waits on an exchange.

``refresh_market_data`` stores the top of one market's book and its precision rules.
``track_exchange_orders`` brings one account's tracked orders in line with the exchange: its fills are
recorded first (strategy.fills); an order that left the open list is filled when its recorded trades
add up to its amount, and is otherwise looked up by client order id and its tracked order told what
the exchange says (intents.tracked_orders decides the status; only the exchange's own "order not
found" makes it lost, never a network error); the sessions whose orders closed are woken to refill
the free slots at once (strategy.services.sessions_wake).
"""
from __future__ import annotations

import logging
from decimal import Decimal

import ccxt
from django.db.models import Sum
from django.utils import timezone

from exchanges.clients import exchange_client
from exchanges.policy import Operation, error_action
from exchanges.precision import market_rules as exchange_market_rules
from exchanges.services import dec, exchange_decimal, fetch_by_client_id
from intents import tracked_orders
from intents.models import TrackedFill, TrackedOrder

from .fills import fills_record
from .models import MarketData
from .services import sessions_sample_quotes, sessions_wake, sessions_wake_on_market_data

logger = logging.getLogger(__name__)


# The top levels of each side stored per market (one order book request per market per tick).
BOOK_LEVELS = 5


def _levels(levels) -> list[list[str]]:
    """Book levels as ``[[price, amount], ...]`` decimal strings (exact, JSON-safe)."""
    return [[str(dec(price)), str(dec(amount))] for price, amount, *_ in levels[:BOOK_LEVELS]]


def market_rules(client: ccxt.Exchange, symbol: str, *, near_price: Decimal | None) -> dict[str, Decimal]:
    """The market's grid and minimums as the strategy stores them (exchanges.precision, any ccxt
    precision mode). On a significant-digits market the steps depend on the number rounded: the
    price tick is the one at ``near_price`` (the top of the book), the amount step the one at the
    market's smallest order; ccxt truncates a larger amount to the exchange's digits when it sends it."""
    rules = exchange_market_rules(client, symbol)
    reference = near_price or rules.min_price or Decimal(1)
    smallest = rules.min_amount or (rules.min_cost / reference if rules.min_cost else Decimal(1))
    return {
        "price_tick": rules.price_step(reference),
        "amount_step": rules.amount_step(smallest),
        "min_amount": rules.min_amount or Decimal(0),
        "min_notional": rules.min_cost or Decimal(0),
        "maker_fee": exchange_decimal(client.market(symbol), "maker") or Decimal(0),
    }


def refresh_market_data(*, account_id: int, symbol: str, last_price: bool = False) -> MarketData:
    """Store the market's book top levels and rules (one order-book request); with ``last_price`` (a
    running session prices on the last trade) also the last trade price, from the ticker (a second
    request, for those markets only)."""
    client = exchange_client(account_id=account_id)
    read_from = timezone.now()
    book = client.fetch_order_book(symbol, limit=BOOK_LEVELS)
    best_bid = dec(book["bids"][0][0]) if book["bids"] else None
    best_ask = dec(book["asks"][0][0]) if book["asks"] else None
    rules = market_rules(client, symbol, near_price=best_ask or best_bid)
    defaults = {"best_bid": best_bid, "best_ask": best_ask, "fetched_at": timezone.now(),
                "bids": _levels(book["bids"]), "asks": _levels(book["asks"]), **rules}
    if last_price:
        defaults["last_price"] = exchange_decimal(client.fetch_ticker(symbol), "last")
    row, _ = MarketData.objects.update_or_create(account_id=account_id, symbol=symbol, defaults=defaults)
    # Sessions whose creates met a market past their book run now, on this newer one.
    sessions_wake_on_market_data(account_id=account_id, symbol=symbol, read_from=read_from)
    return row


def track_exchange_orders(*, account_id: int) -> dict[str, int]:
    """Bring every tracked open order of one account in line with the exchange, and record fills."""
    client = exchange_client(account_id=account_id)
    rows = list(TrackedOrder.objects.filter(account_id=account_id, status__in=tracked_orders.ON_BOOK))
    counts = {"checked": 0, "updated": 0, "lost": 0, "errors": 0, "fills": 0}
    for symbol in sorted({row.symbol for row in rows}):
        try:
            open_orders = {o.get("clientOrderId"): o for o in client.fetch_open_orders(symbol)}
        except ccxt.BaseError as exc:
            counts["errors"] += 1
            logger.warning("event=track_open_orders_failed account_id=%s symbol=%s error=%s action=%s",
                           account_id, symbol, type(exc).__name__, error_action(exc, Operation.READ))
            continue
        # Trades first: an order that left the open list and whose recorded trades add up to its amount is
        # filled, with no lookup (in a fast market most orders leave that way: a request each saved).
        try:
            counts["fills"] += fills_record(account_id=account_id, symbol=symbol, client=client)
        except ccxt.BaseError as exc:
            counts["errors"] += 1
            logger.warning("event=track_fills_failed account_id=%s symbol=%s error=%s", account_id, symbol,
                           type(exc).__name__)
        gone = [r for r in rows if r.symbol == symbol and r.client_order_id not in open_orders]
        traded = dict(TrackedFill.objects.filter(tracked_order__in=gone).values("tracked_order").annotate(
            total=Sum("amount")).values_list("tracked_order", "total")) if gone else {}
        for row in (r for r in rows if r.symbol == symbol):
            counts["checked"] += 1
            order = open_orders.get(row.client_order_id)
            if order is None:
                before = row.status
                if tracked_orders.apply_filled_by_trades(row, traded.get(row.pk, Decimal(0))):
                    counts["updated"] += row.status != before
                    continue
                try:
                    order = fetch_by_client_id(client, symbol, row.client_order_id)
                except ccxt.BaseError as exc:
                    counts["errors"] += 1
                    logger.warning("event=track_lookup_failed account_id=%s client_order_id=%s error=%s",
                                   account_id, row.client_order_id, type(exc).__name__)
                    continue
                if order is None:
                    tracked_orders.apply_absent(row)
                    counts["lost"] += 1
                    continue
            before = (row.status, row.filled)
            tracked_orders.apply_exchange_order(row, order)
            if (row.status, row.filled) != before:
                counts["updated"] += 1
    # Orders that closed (filled, cancelled, lost) free their slots: their sessions refill them on the
    # next tick, once the fills above are settled.
    sessions_wake({row.strategy_key for row in rows if row.status in tracked_orders.FINAL_TRACKED})
    sessions_sample_quotes(account_id=account_id, on_book=[(row.strategy_key, row.side) for row in rows
                                                           if row.status in tracked_orders.ON_BOOK])
    return counts
