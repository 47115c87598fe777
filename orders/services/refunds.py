"""Refunds: ledger debit first, then the provider transfer with a request id derived from the key.

A retried refund reuses its request id, so the provider pays it once. A transfer the provider
rejects for good gets the compensating credit ``{key}:compensation``; an uncertain outcome
(timeout, 5xx) is retried, never compensated, because the money may have left.
"""
from __future__ import annotations

import logging
import uuid
from decimal import Decimal

from django.db import transaction
from django.db.models import F

from ledger.services import credit_deposit, debit_withdrawal

from ..errors import TransferRejected
from ..models import Refund, RefundStatus
from ..providers import get_payment_provider

logger = logging.getLogger(__name__)

# Fixed namespace: request ids must be the same on every machine and every retry.
REFUND_REQUEST_NAMESPACE = uuid.UUID("5d7c1a52-3f0e-4c8e-9a53-6f1f0b9a2d11")


def refund_request_id(key: str) -> uuid.UUID:
    return uuid.uuid5(REFUND_REQUEST_NAMESPACE, key)


def refund_create(*, key: str, user_id: str, asset_id: str, amount: Decimal, reason: str,
                  order=None, snapshot=None) -> Refund:
    """Debit the refund from the user's available funds and record it, once per key.

    Call inside the transaction that decides the refund; the transfer happens after commit.
    """
    existing = Refund.objects.filter(key=key).first()
    if existing is not None:
        return existing
    debit_withdrawal(user_id=user_id, asset_id=asset_id, amount=amount, idempotency_key=key,
                     ref_type="refund", ref_id=key)
    refund = Refund.objects.create(
        key=key, request_id=refund_request_id(key), order=order, snapshot=snapshot, user_id=user_id,
        asset_id=asset_id, amount=amount, reason=reason,
    )
    logger.info("event=refund_debited key=%s user_id=%s asset_id=%s amount=%s order_id=%s reason=%r",
                key, user_id, asset_id, amount, getattr(order, "order_id", ""), reason)
    return refund


def refund_execute(*, refund_id: int) -> str:
    """Send a pending refund through the payment provider; returns the refund's status.

    Raises TransferUncertain when the provider's answer is unknown: retry later.
    """
    refund = Refund.objects.get(pk=refund_id)
    if refund.status != RefundStatus.PENDING:
        return refund.status
    Refund.objects.filter(pk=refund_id).update(attempts=F("attempts") + 1)
    provider = get_payment_provider()
    try:
        receipt = provider.transfer(
            request_id=str(refund.request_id), asset_id=refund.asset_id, amount=refund.amount,
            opponent_id=refund.user_id, memo=f"refund: {refund.reason}"[:140],
        )
    except TransferRejected as exc:
        return _compensate(refund_id, error=str(exc))
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status == RefundStatus.PENDING:
            refund.status = RefundStatus.SENT
            refund.provider_ref = receipt.ref
            refund.error = ""
            refund.save(update_fields=["status", "provider_ref", "error", "updated_at"])
            logger.info("event=refund_sent key=%s request_id=%s provider=%s ref=%s",
                        refund.key, refund.request_id, provider.name, receipt.ref)
    return refund.status


def _compensate(refund_id: int, *, error: str) -> str:
    with transaction.atomic():
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status != RefundStatus.PENDING:
            return refund.status
        credit_deposit(user_id=refund.user_id, asset_id=refund.asset_id, amount=refund.amount,
                       idempotency_key=f"{refund.key}:compensation", ref_type="refund", ref_id=refund.key)
        refund.status = RefundStatus.COMPENSATED
        refund.error = error
        refund.save(update_fields=["status", "error", "updated_at"])
    logger.warning("event=refund_compensated key=%s user_id=%s asset_id=%s amount=%s error=%r",
                   refund.key, refund.user_id, refund.asset_id, refund.amount, error)
    return refund.status


def refund_settle_pending(*, order_id=None, snapshot_id: str | None = None) -> list[str]:
    """Execute every pending refund of an order or a snapshot; returns their statuses."""
    refunds = Refund.objects.filter(status=RefundStatus.PENDING)
    if order_id is not None:
        refunds = refunds.filter(order__order_id=order_id)
    if snapshot_id is not None:
        refunds = refunds.filter(snapshot__snapshot_id=snapshot_id)
    return [refund_execute(refund_id=pk) for pk in refunds.order_by("pk").values_list("pk", flat=True)]
