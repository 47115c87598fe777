"""One polling job chain per order (``check_payment_complete``, ``monitor_mixin_withdrawal``, ``stop_mm``),
kept on the order's own row: the job, the chain's generation (``job_chain``), the polls that found the order
not done yet (``job_attempts``) and until when the chain counts as alive (``job_lease_until``).

A message of a chain carries its chain and attempt number. It runs only while the order names that chain
and that attempt; the one run that moves the count on (a compare-and-set) queues the next message. So a
message delivered twice (a worker lost after it queued the next poll), a late Celery retry of a chain the
sweeper replaced, or a second start while a chain is alive does nothing: never two chains per order.
A message without a chain (from intake, the withdrawal, the admin, the sweeper) starts a new one, unless a
chain of that job holds the lease.

Each poll is a new message, so Celery's retry counter counts only the transient errors (database,
provider) of one poll: a transient error at the 9th poll is retried like one at the 1st, and the count
that ends the chain is the order's, not Celery's.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from mmproject.jobs import enqueue_after_commit

from ..errors import OrderNotFound
from ..models import MarketMakingOrder
from ..outcomes import Outcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChainRun:
    chain: int
    attempt: int  # polls made before this one that found the order not done


def _order(order_id):
    try:
        return MarketMakingOrder.objects.filter(order_id=order_id)
    except (ValueError, ValidationError):
        raise OrderNotFound(f"no market-making order {order_id}") from None


def chain_enter(*, order_id, job: str, chain: int | None, attempt: int, lease_s: float) -> ChainRun | None:
    """Admit one run of ``job`` for the order and renew its lease; None when it must not run: a start
    while a chain of ``job`` is alive, or a message of a chain or attempt the order has moved past."""
    now = timezone.now()
    with transaction.atomic():
        row = _order(order_id).select_for_update().values("job_name", "job_chain", "job_attempts",
                                                           "job_lease_until").first()
        if row is None:
            raise OrderNotFound(f"no market-making order {order_id}")
        lease_until = now + timedelta(seconds=lease_s)
        if chain is None:
            alive = row["job_name"] == job and row["job_lease_until"] is not None and row["job_lease_until"] > now
            if alive:
                logger.info("event=job_chain_alive order_id=%s job=%s chain=%s lease_until=%s: start ignored",
                            order_id, job, row["job_chain"], row["job_lease_until"].isoformat())
                return None
            chain = row["job_chain"] + 1
            _order(order_id).update(job_name=job, job_chain=chain, job_attempts=0, job_lease_until=lease_until)
            logger.info("event=job_chain_started order_id=%s job=%s chain=%s", order_id, job, chain)
            return ChainRun(chain=chain, attempt=0)
        if (row["job_name"], row["job_chain"], row["job_attempts"]) != (job, chain, attempt):
            logger.info("event=job_chain_superseded order_id=%s job=%s chain=%s attempt=%s order_has=%s/%s/%s",
                        order_id, job, chain, attempt, row["job_name"], row["job_chain"], row["job_attempts"])
            return None
        _order(order_id).update(job_lease_until=lease_until)
        return ChainRun(chain=chain, attempt=attempt)


def chain_advance(*, order_id, job: str, run: ChainRun, lease_s: float) -> bool:
    """Count one more poll of the chain, once: True for the one run that moved the count on."""
    return bool(_order(order_id).filter(job_name=job, job_chain=run.chain, job_attempts=run.attempt).update(
        job_attempts=run.attempt + 1, job_lease_until=timezone.now() + timedelta(seconds=lease_s)))


def chain_release(*, order_id, job: str, run: ChainRun) -> None:
    """The chain ended: the sweeper may start the order's next job at once."""
    _order(order_id).filter(job_name=job, job_chain=run.chain).update(job_lease_until=None)


def chain_poll(*, job: str, order_id, chain: int | None, attempt: int, interval_s: float, limit: int,
               poll: Callable[[], str], give_up: Callable[[int], str], args: tuple = (),
               pending: str = Outcome.PENDING) -> str:
    """One poll of the order's ``job`` chain: ``poll()`` decides; while it says ``pending`` the next poll is
    queued in ``interval_s`` (``job(order_id, *args, chain, attempt)``), and at the ``limit``-th pending
    poll ``give_up(polls)`` takes the failure path. A transient error raised by either propagates: the
    task retries this same message, which this function admits again."""
    lease_s = interval_s + settings.MM_JOB_LEASE_MARGIN_S
    run = chain_enter(order_id=order_id, job=job, chain=chain, attempt=attempt, lease_s=lease_s)
    if run is None:
        return Outcome.NOOP
    outcome = poll()
    if outcome != pending:
        chain_release(order_id=order_id, job=job, run=run)
        return outcome
    polls = run.attempt + 1
    if polls >= limit:
        # The failure path first: a transient error in it retries this same message, still admitted.
        outcome = give_up(polls)
        chain_advance(order_id=order_id, job=job, run=run, lease_s=0)
        chain_release(order_id=order_id, job=job, run=run)
        return outcome
    if chain_advance(order_id=order_id, job=job, run=run, lease_s=lease_s):
        enqueue_after_commit(job, str(order_id), *args, run.chain, polls, countdown=interval_s)
    return outcome
