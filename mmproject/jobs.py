"""Every Celery task is sent from here, by name: no module imports another app's tasks to enqueue.

``send`` publishes now (the trading runtime's messages: trackers, dispatch, executions);
``enqueue_after_commit`` publishes once the current transaction commits, never for a rolled-back
change (lifecycle jobs). A lifecycle send that fails (broker down) is logged and left to the
sweeper, ``manage.py mm_resume``, which re-dispatches every job the database says is due: the
state is already committed. Routes (which queue a name goes to) are in mmproject/celery.py.
"""
from __future__ import annotations

import logging
from functools import partial

from django.db import transaction

from .celery import app
from .logcontext import order_id_of_job, order_log_context

logger = logging.getLogger(__name__)


def send(task_name: str, args=(), **options) -> None:
    """Publish ``task_name(*args)`` now, with Celery's send options (``expires``, ``countdown``)."""
    app.send_task(task_name, args=list(args), **options)


def _send_logged(task_name: str, args: tuple, countdown: float | None) -> None:
    with order_log_context(order_id_of_job(task_name, args)):
        try:
            app.send_task(task_name, args=args, countdown=countdown)
        except Exception:
            logger.exception("event=job_enqueue_failed job=%s args=%s (mm_resume re-dispatches it)", task_name, args)
            return
        logger.info("event=job_enqueued job=%s args=%s countdown=%s", task_name, args, countdown)


def enqueue_after_commit(task_name: str, *args, countdown: float | None = None) -> None:
    """Send ``task_name(*args)`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(_send_logged, task_name, tuple(args), countdown))
