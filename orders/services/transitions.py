"""The one way an order changes state: lock it, run the FSM transition, save, record the history."""
from __future__ import annotations

import logging

from django.db import transaction
from django_fsm import ConcurrentTransition, can_proceed

from ..errors import IllegalTransition, OrderNotFound
from ..models import MarketMakingOrder, OrderTransition

logger = logging.getLogger(__name__)

_WITH_REASON = {"fail", "refund", "stop"}


def order_lock(order_id) -> MarketMakingOrder:
    """The order, row-locked until the end of the current transaction."""
    try:
        return MarketMakingOrder.objects.select_for_update().get(order_id=order_id)
    except (MarketMakingOrder.DoesNotExist, ValueError):
        raise OrderNotFound(f"no market-making order {order_id}") from None


def apply_transition(order: MarketMakingOrder, name: str, *, by: str, reason: str = "", **kwargs) -> MarketMakingOrder:
    """Run transition ``name`` on ``order`` (locked by the caller, inside its transaction) and save.

    Raises IllegalTransition, and the caller's transaction rolls back, when the state does
    not allow it or another writer changed the state since the order was read.
    """
    method = getattr(order, name)
    source = order.state
    if not can_proceed(method):
        raise IllegalTransition(
            f"order {order.order_id} is {source}; '{name}' is not allowed from that state",
            order_id=str(order.order_id), state=source, transition=name,
        )
    if name in _WITH_REASON:
        kwargs["reason"] = reason
    method(**kwargs)
    try:
        with transaction.atomic():
            order.save()
    except ConcurrentTransition:
        raise IllegalTransition(
            f"order {order.order_id} changed state while '{name}' was running; nothing was applied",
            order_id=str(order.order_id), state=source, transition=name,
        ) from None
    OrderTransition.objects.create(
        order=order, name=name, from_state=source, to_state=order.state, by=by, reason=reason
    )
    logger.info(
        "event=order_transition order_id=%s from=%s to=%s transition=%s by=%s reason=%r",
        order.order_id, source, order.state, name, by, reason,
    )
    return order


def order_transition(*, order_id, name: str, by: str, reason: str = "", **kwargs) -> MarketMakingOrder:
    """Lock the order and apply one transition, in a transaction of its own."""
    with transaction.atomic():
        return apply_transition(order_lock(order_id), name, by=by, reason=reason, **kwargs)
