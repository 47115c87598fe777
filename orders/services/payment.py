"""Payment completion: all legs covered -> ``payment_complete``; deadline passed -> ``failed`` + refund."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mmproject.jobs import enqueue_after_commit

from ..models import MarketMakingOrder, OrderState, PaymentState
from ..outcomes import Outcome
from .refunds import refund_create, refund_settle_pending
from .transitions import apply_transition, order_lock

logger = logging.getLogger(__name__)

COMPLETE, PENDING, FAILED, NOOP = Outcome.COMPLETE, Outcome.PENDING, Outcome.FAILED, Outcome.NOOP


def refund_received(order: MarketMakingOrder, *, reason: str) -> None:
    """Debit and record a refund of everything the order received, one per asset (inside a transaction)."""
    payment = PaymentState.objects.select_for_update().get(order=order)
    for asset_id, amount in sorted(payment.received_by_asset().items()):
        if amount > 0:
            refund_create(key=f"mm-refund:{order.order_id}:{asset_id}", user_id=order.user_id, asset_id=asset_id,
                          amount=amount, reason=reason, order=order)


def payment_check(*, order_id, by: str = "task:check_payment_complete") -> str:
    """Decide an awaiting order: complete, still pending, or failed (and refunded) at its deadline."""
    now = timezone.now()
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state != OrderState.PAYMENT_PENDING:
            outcome = NOOP
            if order.state == OrderState.PAYMENT_COMPLETE and settings.MM_WITHDRAW_MODE != "disabled":
                # A redelivered check after a crash between commit and enqueue: continue the chain.
                enqueue_after_commit("withdraw_to_exchange", str(order.order_id))
        elif order.payment.is_complete():
            apply_transition(order, "complete_payment", by=by, reason="base, quote and fee legs covered")
            outcome = COMPLETE
            if settings.MM_WITHDRAW_MODE == "disabled":
                logger.info("event=withdrawal_disabled order_id=%s state=%s", order.order_id, order.state)
            else:
                enqueue_after_commit("withdraw_to_exchange", str(order.order_id))
        elif now >= order.expires_at:
            reason = f"payment not complete by the deadline {order.expires_at.isoformat()}"
            refund_received(order, reason=reason)
            apply_transition(order, "fail", by=by, reason=reason)
            outcome = FAILED
        else:
            outcome = PENDING
    refund_settle_pending(order_id=order_id)
    logger.info("event=payment_checked order_id=%s outcome=%s", order_id, outcome)
    return outcome


def payment_fail(*, order_id, reason: str, by: str) -> str:
    """Fail an order still awaiting payment (checks exhausted) and refund what it received."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state != OrderState.PAYMENT_PENDING:
            outcome = NOOP
        else:
            refund_received(order, reason=reason)
            apply_transition(order, "fail", by=by, reason=reason)
            outcome = FAILED
    refund_settle_pending(order_id=order_id)
    return outcome
