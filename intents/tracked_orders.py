"""The one owner of a tracked exchange order's life (Hummingbot's client order tracker is the model).

Every status change of a ``TrackedOrder`` is decided here: what the exchange says about an order
(``apply_exchange_order``), that it is absent (``apply_absent``), and our own steps (a cancel on its
way, a create never sent, a send given up). The claim (intents.gates), the executor, the strategy
cycle, the trackers, stop and the kill switch call these functions and write no status themselves.

Functions named ``*_row`` change one row in memory and return whether it changed: the caller
saves it (``save_rows`` one by one, or the executor in its batch's one statement). Functions that
take client order ids update the database directly, in the caller's transaction.
"""
from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from exchanges.services import exchange_decimal
from mmproject.sql import among

from .models import OPEN_TRACKED_STATUSES, TrackedOrder, TrackedOrderStatus

logger = logging.getLogger(__name__)

S = TrackedOrderStatus
FINAL_TRACKED = (S.FILLED, S.CANCELLED, S.LOST, S.FAILED)
# On the book as far as we know: placed and not known closed (a cancel on its way still rests there).
ON_BOOK = (S.OPEN, S.PARTIALLY_FILLED, S.PENDING_CANCEL)

STATUS_FROM_CCXT = {
    "open": S.OPEN,
    "closed": S.FILLED,
    "canceled": S.CANCELLED,
    "cancelled": S.CANCELLED,
    "expired": S.CANCELLED,
    "rejected": S.FAILED,
}

# The columns an update from the exchange writes (the executor's batch write lists them too).
EXCHANGE_FIELDS = ("status", "filled", "exchange_order_id", "last_fill_at", "updated_at")


def status_of_exchange_order(order: dict) -> str:
    """Our status for a ccxt order structure (an open order with fills is partially filled)."""
    status = STATUS_FROM_CCXT.get(order.get("status") or "open", S.OPEN)
    if status == S.OPEN and (exchange_decimal(order, "filled") or 0) > 0:
        return S.PARTIALLY_FILLED
    return status


def apply_exchange_order(tracked: TrackedOrder, order: dict, *, save: bool = True) -> TrackedOrder:
    """Copy what the exchange says about an order onto its tracked row, and save it
    (``EXCHANGE_FIELDS``) unless ``save`` is false (an intents batch writes its rows together)."""
    status = status_of_exchange_order(order)
    filled = exchange_decimal(order, "filled") or Decimal(0)
    if status == S.OPEN and tracked.status == S.PENDING_CANCEL:
        status = S.PENDING_CANCEL  # the cancel is on its way
    if filled > tracked.filled:
        tracked.last_fill_at = timezone.now()
    tracked.status = status
    tracked.filled = filled
    tracked.exchange_order_id = str(order.get("id") or tracked.exchange_order_id)
    if save:
        tracked.save(update_fields=list(EXCHANGE_FIELDS))
    return tracked


def apply_filled_by_trades(tracked: TrackedOrder, traded: Decimal, *, save: bool = True) -> bool:
    """Our recorded trades of an order that left the open list add up to its whole amount: it is filled
    (an order never trades more than its amount), with no lookup needed. Returns whether it applied
    (trades short of the amount say nothing: the rest may have been cancelled)."""
    if traded < tracked.amount:
        return False
    if tracked.filled < tracked.amount:
        tracked.last_fill_at = timezone.now()
    tracked.status = S.FILLED
    tracked.filled = tracked.amount
    if save:
        tracked.save(update_fields=list(EXCHANGE_FIELDS))
    return True


def apply_absent(tracked: TrackedOrder, *, save: bool = True) -> TrackedOrder:
    """The exchange says it has no such order (its own "not found", never a network error): a
    create that may never have left was never placed (cancelled); anything else is lost."""
    tracked.status = S.CANCELLED if tracked.status == S.PENDING_CREATE else S.LOST
    if tracked.status == S.LOST:
        logger.warning("event=tracked_order_lost account_id=%s strategy_key=%s client_order_id=%s",
                       tracked.account_id, tracked.strategy_key, tracked.client_order_id)
    if save:
        tracked.save(update_fields=["status", "updated_at"])
    return tracked


def not_sent_row(tracked: TrackedOrder) -> bool:
    """A create that was never sent and no longer will be: nothing is on the exchange."""
    if tracked.status in FINAL_TRACKED:
        return False
    tracked.status = S.CANCELLED
    return True


def create_given_up_row(tracked: TrackedOrder) -> bool:
    """A create whose intent gave up: failed, unless the exchange already told us more."""
    if tracked.status != S.PENDING_CREATE:
        return False
    tracked.status = S.FAILED
    return True


def cancel_given_up_row(tracked: TrackedOrder) -> bool:
    """A cancel whose intent gave up: the order is still on the book as far as we know, so it is open
    again and the next cycle decides anew."""
    if tracked.status != S.PENDING_CANCEL:
        return False
    tracked.status = S.OPEN
    return True


def cancel_unsent(client_order_ids) -> int:
    """The tracked orders of creates superseded before they were sent (``pending_create``) are
    cancelled: nothing of them is on the exchange."""
    client_order_ids = list(client_order_ids)
    if not client_order_ids:
        return 0
    return TrackedOrder.objects.filter(among(TrackedOrder, "client_order_id", client_order_ids),
                                       status=S.PENDING_CREATE).update(status=S.CANCELLED)


def cancel_requested(client_order_ids) -> int:
    """A cancel intent was written for each of these orders: ``pending_cancel`` until it is done."""
    client_order_ids = list(client_order_ids)
    if not client_order_ids:
        return 0
    return TrackedOrder.objects.filter(among(TrackedOrder, "client_order_id", client_order_ids)).update(
        status=S.PENDING_CANCEL)


def mark_hanging(client_order_ids, *, now: datetime) -> int:
    """Orders the diff keeps past a refresh because the opposite side filled (hanging orders)."""
    client_order_ids = list(client_order_ids)
    if not client_order_ids:
        return 0
    return TrackedOrder.objects.filter(among(TrackedOrder, "client_order_id", client_order_ids)).update(
        hanging=True, updated_at=now)


def open_of(client_order_ids) -> list[tuple[str, str, int, str]]:
    """(client order id, strategy key, account id, symbol) of those orders still open or on their way."""
    return list(TrackedOrder.objects.filter(among(TrackedOrder, "client_order_id", list(client_order_ids)),
                                            status__in=OPEN_TRACKED_STATUSES)
                .values_list("client_order_id", "strategy_key", "account_id", "symbol"))
