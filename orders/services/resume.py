"""The sweeper: re-dispatch every job the database says is due (after a broker outage, a lost message, a
chain that ran out of retries), one sweep at a time across beats and commands.

Every job is idempotent, so dispatching one that is already queued costs a no-op run; a polling chain
(payment check, withdrawal monitor, stop) that is alive holds a lease on its order (orders.services.chains)
and is left alone, so the sweeper never starts a second chain beside it.
"""
from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from mmproject.jobs import enqueue_after_commit
from strategy.models import SessionStatus

from ..models import MarketMakingOrder, OrderState, RefundStatus, Snapshot, SnapshotOutcome, SweepLease
from .refunds import refund_settle_pending

logger = logging.getLogger(__name__)

SWEEP_LEASE_NAME = "lifecycle"
STOP_RESUMED_REASON = "stop resumed by the lifecycle sweeper"

# Single-shot jobs: the state that waits on each.
NEXT_JOB = {
    OrderState.WITHDRAWAL_CONFIRMED: "join_campaign",
    OrderState.CAMPAIGN_JOINED: "start_mm",
}


def _without_live_chain(orders, job: str, now):
    """Orders with no chain of ``job`` alive (a chain's lease passes its next poll by MM_JOB_LEASE_MARGIN_S)."""
    return orders.exclude(job_name=job, job_lease_until__gt=now)


def lifecycle_resume() -> dict[str, int]:
    """Queue the next job of every order and snapshot that waits on one; send pending refunds.

    Polling jobs are started only for orders whose chain of that job is not alive; an unpaid order past
    its deadline gets a payment check, which fails it with the reason and refunds what arrived.
    """
    now = timezone.now()
    counts: dict[str, int] = {}

    def queue(job: str, *args: str) -> None:
        enqueue_after_commit(job, *args)
        counts[job] = counts.get(job, 0) + 1

    def start_chains(orders, job: str, *args: str) -> None:
        for order_id, lease_until in _without_live_chain(orders, job, now).values_list("order_id", "job_lease_until"):
            if lease_until is not None:  # the chain neither ended nor polled again in time: lost
                counts["chains_lost"] = counts.get("chains_lost", 0) + 1
                logger.warning("event=job_chain_lost order_id=%s job=%s lease_until=%s: starting a new chain",
                               order_id, job, lease_until.isoformat())
            queue(job, str(order_id), *args)

    for snapshot_id in Snapshot.objects.filter(outcome=SnapshotOutcome.RECEIVED).values_list("snapshot_id", flat=True):
        queue("process_market_making_snapshots", snapshot_id)
    # Orders with a check chain, and unpaid orders past their deadline (so they end as failed).
    pending = MarketMakingOrder.objects.filter(state=OrderState.PAYMENT_PENDING).filter(
        Q(payment__check_started_at__isnull=False) | Q(expires_at__lte=now))
    start_chains(pending, "check_payment_complete")
    if settings.MM_WITHDRAW_MODE != "disabled":
        for order_id in MarketMakingOrder.objects.filter(state=OrderState.PAYMENT_COMPLETE).values_list("order_id", flat=True):
            queue("withdraw_to_exchange", str(order_id))
    start_chains(MarketMakingOrder.objects.filter(state=OrderState.WITHDRAWING), "monitor_mixin_withdrawal")
    stopping = MarketMakingOrder.objects.filter(strategy_session__status=SessionStatus.STOPPING)
    for state, job in NEXT_JOB.items():
        waiting = MarketMakingOrder.objects.filter(state=state).exclude(pk__in=stopping.values("pk"))
        for order_id in waiting.values_list("order_id", flat=True):
            queue(job, str(order_id))
    # A stop whose chain ran out of polls (or was lost) leaves the session stopping: finish it.
    start_chains(stopping.filter(state__in=[OrderState.RUNNING, OrderState.CAMPAIGN_JOINED]), "stop_mm",
                 STOP_RESUMED_REASON)
    # A payout whose chain died (worker lost past its retries, polls used up): poll it again.
    start_chains(MarketMakingOrder.objects.filter(state=OrderState.PAYING_OUT), "withdraw_to_user")
    statuses = refund_settle_pending()
    counts["refunds_sent"] = statuses.count(RefundStatus.SENT)
    counts["refunds_still_pending"] = statuses.count(RefundStatus.PENDING)
    logger.info("event=lifecycle_resumed %s", " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return counts


def sweep_lease_take(*, holder: str, ttl_s: float, name: str = SWEEP_LEASE_NAME) -> bool:
    """Take the lease ``name`` (the sweep's by default; the Mixin poller has its own) unless another holder's
    is still running: one conditional UPDATE, atomic on PostgreSQL and SQLite alike. A holder that died
    keeps it only until ``ttl_s`` has passed."""
    now = timezone.now()
    SweepLease.objects.get_or_create(name=name)
    taken = SweepLease.objects.filter(name=name).filter(
        Q(lease_until__isnull=True) | Q(lease_until__lte=now)).update(
        holder=holder, lease_until=now + timedelta(seconds=ttl_s), last_started_at=now)
    if not taken:
        SweepLease.objects.filter(name=name).update(skipped=F("skipped") + 1)
    return bool(taken)


def sweep_lease_release(*, holder: str, counts: dict | None, name: str = SWEEP_LEASE_NAME) -> None:
    """Give the lease back; ``counts`` (what the run did) is recorded when the run finished, None when it
    failed."""
    done = SweepLease.objects.filter(name=name, holder=holder)
    if counts is None:
        done.update(lease_until=None)
    else:
        done.update(lease_until=None, last_finished_at=timezone.now(), last_counts=counts, runs=F("runs") + 1)


def lifecycle_sweep(*, holder: str) -> dict[str, int] | None:
    """``lifecycle_resume`` under the sweep lease; None (and counted as skipped) when another sweep holds it."""
    holder = f"{holder}:{socket.gethostname()}:{os.getpid()}"[:128]
    if not sweep_lease_take(holder=holder, ttl_s=max(2 * settings.MM_SWEEP_INTERVAL_S, 60)):
        lease = SweepLease.objects.filter(name=SWEEP_LEASE_NAME).values("holder", "lease_until").first()
        logger.info("event=lifecycle_sweep_skipped holder=%s lease_until=%s", lease["holder"],
                    lease["lease_until"].isoformat() if lease["lease_until"] else "")
        return None
    counts = None
    try:
        counts = lifecycle_resume()
    finally:
        sweep_lease_release(holder=holder, counts=counts)
    return counts
