"""The market-making queue jobs: thin shells that call one service and decide the retry.

Every job is ``acks_late``, as every task is (CELERY_TASK_ACKS_LATE: a worker lost mid-job means
redelivery, and each service is idempotent) and retries transient failures (database, uncertain provider outcome) with
Celery's exponential backoff. Polling jobs retry themselves at a fixed interval up to an
attempt limit.
"""
import logging

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from . import services
from .errors import ExchangeUnavailable, TransferUncertain
from .outcomes import Outcome
from .services.resume import lifecycle_resume

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
def check_payment_complete(self, order_id: str):
    outcome = services.payment_check(order_id=order_id)
    if outcome != Outcome.PENDING:
        return
    limit = settings.MM_PAYMENT_MAX_CHECKS
    if self.request.retries >= limit:
        services.payment_fail(order_id=order_id, reason=f"payment still incomplete after {limit} checks",
                              by="task:check_payment_complete")
        return
    raise self.retry(countdown=settings.MM_PAYMENT_CHECK_INTERVAL_S, max_retries=limit)


@_job("withdraw_to_exchange")
def withdraw_to_exchange(self, order_id: str):
    services.withdrawal_start(order_id=order_id)


@_job("monitor_mixin_withdrawal")
def monitor_mixin_withdrawal(self, order_id: str):
    outcome = services.withdrawal_monitor(order_id=order_id)
    if outcome != Outcome.PENDING:
        return
    limit = settings.MM_WITHDRAWAL_MAX_CHECKS
    if self.request.retries >= limit:
        services.withdrawal_abandon(order_id=order_id, reason=f"deposits still unconfirmed after {limit} checks; "
                                    "funds stay locked for operator review", by="task:monitor_mixin_withdrawal")
        return
    raise self.retry(countdown=settings.MM_WITHDRAWAL_CHECK_INTERVAL_S, max_retries=limit)


@_job("join_campaign")
def join_campaign(self, order_id: str):
    services.campaign_join(order_id=order_id)


@_job("start_mm")
def start_mm(self, order_id: str):
    services.order_start(order_id=order_id)


@_job("stop_mm")
def stop_mm(self, order_id: str, reason: str = "stop requested"):
    outcome = services.order_stop(order_id=order_id, by="task:stop_mm", reason=reason, wait_s=5)
    if outcome == Outcome.STOPPING:
        # Orders still open or in flight on the exchange: cancel and confirm again, with backoff.
        raise self.retry(countdown=min(2 ** self.request.retries, 30), max_retries=settings.MM_STOP_MAX_RETRIES)


@shared_task(name="resume_market_making", ignore_result=True)
def resume_market_making():
    """The sweeper as a periodic job (``mm_resume`` is the same service): re-queues what is due."""

    lifecycle_resume()
