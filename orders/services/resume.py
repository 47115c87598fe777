"""The sweeper: re-dispatch every job the database says is due (after a broker outage or a lost message).

Every job is idempotent, so dispatching one that is already queued costs a no-op run.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from mmproject.jobs import enqueue_after_commit
from strategy.models import SessionStatus

from ..models import MarketMakingOrder, OrderState, RefundStatus, Snapshot, SnapshotOutcome
from .refunds import refund_settle_pending

logger = logging.getLogger(__name__)

NEXT_JOB = {
    OrderState.WITHDRAWING: "monitor_mixin_withdrawal",
    OrderState.WITHDRAWAL_CONFIRMED: "join_campaign",
    OrderState.CAMPAIGN_JOINED: "start_mm",
}


def lifecycle_resume() -> dict[str, int]:
    """Queue the next job of every order and snapshot that waits on one; send pending refunds."""
    counts: dict[str, int] = {}

    def queue(job: str, arg: str) -> None:
        enqueue_after_commit(job, arg)
        counts[job] = counts.get(job, 0) + 1

    for snapshot_id in Snapshot.objects.filter(outcome=SnapshotOutcome.RECEIVED).values_list("snapshot_id", flat=True):
        queue("process_market_making_snapshots", snapshot_id)
    # Orders with a check chain, and unpaid orders past their deadline (so they end as failed).
    pending = MarketMakingOrder.objects.filter(state=OrderState.PAYMENT_PENDING).filter(
        Q(payment__check_started_at__isnull=False) | Q(expires_at__lte=timezone.now()))
    for order_id in pending.values_list("order_id", flat=True):
        queue("check_payment_complete", str(order_id))
    if settings.MM_WITHDRAW_MODE != "disabled":
        for order_id in MarketMakingOrder.objects.filter(state=OrderState.PAYMENT_COMPLETE).values_list("order_id", flat=True):
            queue("withdraw_to_exchange", str(order_id))
    for state, job in NEXT_JOB.items():
        for order_id in MarketMakingOrder.objects.filter(state=state).values_list("order_id", flat=True):
            queue(job, str(order_id))
    # A stop whose job ran out of retries (or was lost) leaves the session stopping: finish it.
    stopping = MarketMakingOrder.objects.filter(state=OrderState.RUNNING, strategy_session__status=SessionStatus.STOPPING)
    for order_id in stopping.values_list("order_id", flat=True):
        queue("stop_mm", str(order_id))
    statuses = refund_settle_pending()
    counts["refunds_sent"] = statuses.count(RefundStatus.SENT)
    counts["refunds_still_pending"] = statuses.count(RefundStatus.PENDING)
    logger.info("event=lifecycle_resumed %s", " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return counts
