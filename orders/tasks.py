"""The market-making queue jobs: thin shells that call one service and decide the retry.

Every job is ``acks_late``, as every task is (CELERY_TASK_ACKS_LATE: a worker lost mid-job means
redelivery, and each service is idempotent) and retries transient failures (database, uncertain provider outcome) with
Celery's exponential backoff. Polling jobs (payment check, withdrawal monitor, stop) are one chain per order
(orders.services.chains): each poll is a new message carrying the chain and attempt number, the polls are
counted on the order's row, and at the limit the job takes its failure path; Celery's retry counter counts
only the transient errors of one poll.
"""
import logging

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from . import services
from .errors import ExchangeUnavailable, ProviderError, TransferUncertain
from .outcomes import Outcome
from .services.chains import chain_poll
from .services.payout import payout_abandon, payout_advance
from .services.polling import snapshots_poll_leased
from .services.resume import lifecycle_sweep

logger = logging.getLogger(__name__)

TRANSIENT = (TransferUncertain, ExchangeUnavailable, OperationalError, InterfaceError)


def _job(name: str):
    return shared_task(
        name=name, bind=True, ignore_result=True, autoretry_for=TRANSIENT,
        retry_backoff=True, retry_backoff_max=300, retry_jitter=True, max_retries=settings.MM_JOB_MAX_RETRIES,
    )


@_job("process_market_making_snapshots")
def process_market_making_snapshots(self, snapshot_id: str):
    services.snapshot_intake(snapshot_id=snapshot_id)


@_job("check_payment_complete")
def check_payment_complete(self, order_id: str, chain: int | None = None, attempt: int = 0):
    def give_up(polls):
        return services.payment_fail(order_id=order_id, reason=f"payment still incomplete after {polls} checks",
                                     by="task:check_payment_complete")

    chain_poll(job="check_payment_complete", order_id=order_id, chain=chain, attempt=attempt,
               interval_s=settings.MM_PAYMENT_CHECK_INTERVAL_S, limit=settings.MM_PAYMENT_MAX_CHECKS,
               poll=lambda: services.payment_check(order_id=order_id), give_up=give_up)


@_job("withdraw_to_exchange")
def withdraw_to_exchange(self, order_id: str):
    services.withdrawal_start(order_id=order_id)


@_job("monitor_mixin_withdrawal")
def monitor_mixin_withdrawal(self, order_id: str, chain: int | None = None, attempt: int = 0):
    def give_up(polls):
        services.withdrawal_abandon(order_id=order_id, reason=f"deposits still unconfirmed after {polls} checks; "
                                    "funds stay locked for operator review", by="task:monitor_mixin_withdrawal")
        return Outcome.TIMEOUT

    chain_poll(job="monitor_mixin_withdrawal", order_id=order_id, chain=chain, attempt=attempt,
               interval_s=settings.MM_WITHDRAWAL_CHECK_INTERVAL_S, limit=settings.MM_WITHDRAWAL_MAX_CHECKS,
               poll=lambda: services.withdrawal_monitor(order_id=order_id), give_up=give_up)


@_job("join_campaign")
def join_campaign(self, order_id: str):
    services.campaign_join(order_id=order_id)


@_job("start_mm")
def start_mm(self, order_id: str):
    services.order_start(order_id=order_id)


@_job("stop_mm")
def stop_mm(self, order_id: str, reason: str = "stop requested", chain: int | None = None, attempt: int = 0):
    def give_up(polls):
        # Nothing to fail: the order stays running with its session stopping, and the sweeper starts a
        # new stop chain (its lease is released now) at its next run.
        logger.warning("event=stop_attempts_exhausted order_id=%s polls=%s: still open on the exchange; "
                       "the lifecycle sweeper starts the stop again", order_id, polls)
        return Outcome.STOPPING

    # Orders still open or in flight on the exchange: cancel and confirm again, backing off to 30 s.
    chain_poll(job="stop_mm", order_id=order_id, chain=chain, attempt=attempt, interval_s=min(2 ** attempt, 30),
               limit=settings.MM_STOP_MAX_RETRIES, args=(reason,), give_up=give_up, pending=Outcome.STOPPING,
               poll=lambda: services.order_stop(order_id=order_id, by="task:stop_mm", reason=reason, wait_s=5))


@_job("withdraw_to_user")
def withdraw_to_user(self, order_id: str, chain: int | None = None, attempt: int = 0):
    """The payout after stop (orders.services.payout): withdraw, confirm arrival, pay the user; one chain."""
    chain_poll(job="withdraw_to_user", order_id=order_id, chain=chain, attempt=attempt,
               interval_s=settings.MM_PAYOUT_CHECK_INTERVAL_S, limit=settings.MM_PAYOUT_MAX_CHECKS,
               poll=lambda: payout_advance(order_id=order_id),
               give_up=lambda polls: payout_abandon(order_id=order_id, polls=polls))


@shared_task(name="poll_mixin_snapshots", ignore_result=True)
def poll_mixin_snapshots():
    """The Mixin snapshot poller (beat, MIXIN_POLL_INTERVAL_S, when MM_PAYMENT_PROVIDER=mixin): one at a time
    across beats (a lease); a provider or database error is logged and the next beat polls again."""
    try:
        snapshots_poll_leased(holder="task:poll_mixin_snapshots")
    except (ProviderError, OperationalError, InterfaceError) as exc:
        logger.warning("event=snapshots_poll_failed error=%s: the next beat polls again from the same cursor", exc)


@shared_task(name="resume_market_making", ignore_result=True)
def resume_market_making():
    """The sweeper as a periodic job (beat, ``MM_SWEEP_INTERVAL_S``; ``mm_resume`` is the same service):
    one sweep at a time across beats and commands (a lease), skipped when another holds it."""

    lifecycle_sweep(holder="task:resume_market_making")
