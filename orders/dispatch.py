"""Enqueue lifecycle jobs after the surrounding transaction commits (never for a rolled-back change).

A send that fails (broker down) is logged and left to the sweeper, ``manage.py mm_resume``,
which re-dispatches every job the database says is due: the state is already committed.
"""
import logging
from functools import partial

from django.db import transaction

logger = logging.getLogger(__name__)


def _send(task_name: str, args: tuple, countdown: float | None) -> None:
    from mmproject.celery import app
    from mmproject.logcontext import order_id_of_job, order_log_context

    with order_log_context(order_id_of_job(task_name, args)):
        try:
            app.send_task(task_name, args=args, countdown=countdown)
        except Exception:
            logger.exception("event=job_enqueue_failed job=%s args=%s (mm_resume re-dispatches it)", task_name, args)
            return
        logger.info("event=job_enqueued job=%s args=%s countdown=%s", task_name, args, countdown)


def enqueue_after_commit(task_name: str, *args, countdown: float | None = None) -> None:
    """Send ``task_name(*args)`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(_send, task_name, tuple(args), countdown))
