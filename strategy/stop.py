"""Winding a session down so that nothing is left open on the exchange.

``session_stop_begin`` (inside the caller's order-locked transaction) moves the session to
``stopping``: the tick plans nothing more for it and the executor sends no new order for it;
creates not sent yet are superseded. ``session_wind_down`` then, outside any transaction,
waits for intents in flight, cancels every open order of the session on the exchange (the
tracked ones and any open order carrying the session's client-id prefix), confirms none is
left, and records the last fills. The caller unlocks the funds and sets ``stopped`` only when
it returns clear.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import ccxt
from django.utils import timezone

from exchanges.clients import exchange_client
from exchanges.services import fetch_by_client_id
from intents import tracked_orders
from intents.ids import client_order_prefix, strategy_key
from intents.models import OPEN_TRACKED_STATUSES, Intent, IntentKind, IntentStatus, TrackedOrder

from .fills import fills_record
from .models import SessionStatus, StrategySession

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindDown:
    clear: bool
    open_left: int = 0
    in_flight: int = 0
    cancelled: int = 0
    errors: int = 0
    fills: int = 0


def session_stop_begin(*, order_id) -> None:
    """No new order for this session from now on; unsent creates are superseded."""
    key = strategy_key(order_id)
    StrategySession.objects.filter(order__order_id=order_id, status=SessionStatus.RUNNING).update(
        status=SessionStatus.STOPPING, next_run_at=None)
    unsent = list(Intent.objects.filter(strategy_key=key, kind=IntentKind.CREATE, status=IntentStatus.NEW)
                  .values_list("client_order_id", flat=True))
    if unsent:
        Intent.objects.filter(strategy_key=key, kind=IntentKind.CREATE, status=IntentStatus.NEW).update(
            status=IntentStatus.SUPERSEDED, finished_at=timezone.now(), last_error="session stopping")
        tracked_orders.cancel_unsent(unsent)
    logger.info("event=session_stopping order_id=%s superseded=%s", order_id, len(unsent))


def session_wind_down(*, order_id, account_id: int, symbol: str) -> WindDown:
    """One pass: cancel and confirm. Clear only when nothing of the session is open or in flight."""
    key = strategy_key(order_id)
    in_flight = Intent.objects.filter(strategy_key=key, status=IntentStatus.IN_FLIGHT,
                                      lease_until__gte=timezone.now()).count()
    if in_flight:
        # A create already past its last check may still land: wait for it, then sweep it too.
        return WindDown(clear=False, in_flight=in_flight)
    client = exchange_client(account_id=account_id)
    prefix = client_order_prefix(order_id)
    cancelled = errors = 0
    try:
        open_orders = [o for o in client.fetch_open_orders(symbol) if (o.get("clientOrderId") or "").startswith(prefix)]
    except ccxt.BaseError as exc:
        logger.warning("event=stop_fetch_open_failed order_id=%s error=%s", order_id, type(exc).__name__)
        return WindDown(clear=False, errors=1)
    tracked = {t.client_order_id: t for t in TrackedOrder.objects.filter(strategy_key=key)}
    for order in open_orders:
        client_order_id = order["clientOrderId"]
        try:
            result = client.cancel_order(order.get("id"), symbol, {"clientOrderId": client_order_id})
            cancelled += 1
        except ccxt.OrderNotFound:
            result = None  # gone meanwhile (filled or cancelled): the lookup below says which
        except ccxt.BaseError as exc:
            errors += 1
            logger.warning("event=stop_cancel_failed order_id=%s client_order_id=%s error=%s", order_id,
                           client_order_id, type(exc).__name__)
            continue
        row = tracked.get(client_order_id)
        if row is None:
            logger.warning("event=stop_cancelled_untracked order_id=%s client_order_id=%s", order_id, client_order_id)
        elif result is not None:
            tracked_orders.apply_exchange_order(row, result)
    # Tracked orders that were not in the open list: learn their end from the exchange.
    open_ids = {o["clientOrderId"] for o in open_orders}
    for row in tracked.values():
        if row.status in OPEN_TRACKED_STATUSES and row.client_order_id not in open_ids:
            try:
                found = fetch_by_client_id(client, symbol, row.client_order_id)
            except ccxt.BaseError:
                errors += 1
                continue
            if found is None:
                tracked_orders.apply_absent(row)
            else:
                tracked_orders.apply_exchange_order(row, found)
    try:
        left = [o for o in client.fetch_open_orders(symbol) if (o.get("clientOrderId") or "").startswith(prefix)]
        fills = fills_record(account_id=account_id, symbol=symbol, client=client, strategy_key=key)
    except ccxt.BaseError as exc:
        logger.warning("event=stop_confirm_failed order_id=%s error=%s", order_id, type(exc).__name__)
        return WindDown(clear=False, cancelled=cancelled, errors=errors + 1)
    still_tracked_open = TrackedOrder.objects.filter(strategy_key=key, status__in=OPEN_TRACKED_STATUSES).count()
    clear = not left and not still_tracked_open and not errors
    logger.info("event=stop_pass order_id=%s cancelled=%s open_left=%s tracked_open=%s errors=%s fills=%s clear=%s",
                order_id, cancelled, len(left), still_tracked_open, errors, fills, clear)
    return WindDown(clear=clear, open_left=len(left) + still_tracked_open, cancelled=cancelled, errors=errors,
                    fills=fills)
