"""Campaign stage, start and stop: the end of the lifecycle, each step idempotent."""
from __future__ import annotations

import logging

from django.db import transaction

from strategy.services import session_start, session_stop

from ..dispatch import enqueue_after_commit
from ..models import CampaignParticipation, OrderState
from .transitions import apply_transition, order_lock
from .withdrawal import unlock_all

logger = logging.getLogger(__name__)


def campaign_join(*, order_id, by: str = "task:join_campaign") -> str:
    """Record the order's (local) campaign participation once and queue ``start_mm``."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state == OrderState.CAMPAIGN_JOINED:
            enqueue_after_commit("start_mm", str(order.order_id))
            return "noop"
        if order.state != OrderState.WITHDRAWAL_CONFIRMED:
            return "noop"
        CampaignParticipation.objects.get_or_create(order=order)
        apply_transition(order, "join_campaign", by=by, reason="local campaign participation recorded")
        enqueue_after_commit("start_mm", str(order.order_id))
    return "joined"


def order_start(*, order_id, by: str = "task:start_mm") -> str:
    """Register the strategy session and set ``running``."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state == OrderState.RUNNING:
            session_start(order_id=order.order_id)
            return "noop"
        if order.state != OrderState.CAMPAIGN_JOINED:
            return "noop"
        apply_transition(order, "start", by=by, reason="strategy session registered")
        session_start(order_id=order.order_id)
    return "running"


def order_stop(*, order_id, by: str, reason: str = "stop requested") -> str:
    """Stop the strategy session, unlock the order's funds, set ``stopped``.

    Raises IllegalTransition when the order is neither running nor waiting to start; an
    order already stopped is left as it is.
    """
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state == OrderState.STOPPED:
            return "noop"
        apply_transition(order, "stop", by=by, reason=reason)
        session_stop(order_id=order.order_id)
        unlock_all(order)
    return "stopped"
