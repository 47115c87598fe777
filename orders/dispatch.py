"""Enqueue lifecycle jobs after the surrounding transaction commits (never for a rolled-back change)."""
import logging
from functools import partial

from django.db import transaction

logger = logging.getLogger(__name__)


def _send(task_name: str, args: tuple, countdown: float | None) -> None:
    from mmproject.celery import app

    app.tasks[task_name].apply_async(args=args, countdown=countdown)
    logger.info("event=job_enqueued job=%s args=%s countdown=%s", task_name, args, countdown)


def enqueue_after_commit(task_name: str, *args, countdown: float | None = None) -> None:
    """Send ``task_name(*args)`` once the current transaction commits (at once outside one)."""
    transaction.on_commit(partial(_send, task_name, tuple(args), countdown))
