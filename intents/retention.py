"""History retention: finished intents and closed tracked orders older than the retention go.

A running system writes an intent per order it places or cancels, for every session on every
cycle: at 1,000 sessions that is hundreds to thousands of rows a second, kept forever unless
pruned. What is pruned is only what nothing reads any more:
- intents finished (done, failed, superseded) before the cutoff; active ones stay whatever
  their age;
- tracked orders closed without a fill (cancelled, failed, lost) before the cutoff. An order
  with fills is kept with its fills: they are the record behind ledger entries.

Rows are deleted in primary-key ranges from the oldest, a transaction per range, so a run can
stop at any point (its time budget, a worker shutdown) and the next one goes on from there.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, Min, OuterRef, Q
from django.utils import timezone

from .models import Intent, IntentStatus, TrackedFill, TrackedOrder, TrackedOrderStatus

logger = logging.getLogger(__name__)

FINISHED_INTENT_STATUSES = (IntentStatus.DONE, IntentStatus.FAILED, IntentStatus.SUPERSEDED)
CLOSED_UNFILLED_STATUSES = (TrackedOrderStatus.CANCELLED, TrackedOrderStatus.FAILED, TrackedOrderStatus.LOST)
BATCH_SIZE = 5000


@dataclass(frozen=True)
class PruneReport:
    cutoff: datetime | None  # None: retention off (STRATEGY_HISTORY_RETENTION_DAYS=0)
    intents_deleted: int = 0
    tracked_orders_deleted: int = 0
    complete: bool = True  # False: the time budget ran out; the next run goes on


def history_prune(*, days: int | None = None, now: datetime | None = None, max_seconds: float = 60.0,
                  batch_size: int = BATCH_SIZE) -> PruneReport:
    """Delete the intents and tracked orders that are past the retention (see the module)."""
    days = settings.STRATEGY_HISTORY_RETENTION_DAYS if days is None else days
    if days < 0:
        raise ValueError(f"retention must be 0 (keep everything) or a number of days, not {days}")
    if days == 0:
        return PruneReport(cutoff=None)
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deadline = time.monotonic() + max_seconds
    intents, intents_done = _prune(
        Intent, Q(status__in=FINISHED_INTENT_STATUSES, finished_at__lt=cutoff), cutoff, deadline, batch_size)
    tracked, tracked_done = 0, False
    if intents_done:
        has_fills = Exists(TrackedFill.objects.filter(tracked_order=OuterRef("pk")))
        tracked, tracked_done = _prune(
            TrackedOrder, Q(status__in=CLOSED_UNFILLED_STATUSES, updated_at__lt=cutoff) & ~has_fills,
            cutoff, deadline, batch_size)
    report = PruneReport(cutoff=cutoff, intents_deleted=intents, tracked_orders_deleted=tracked,
                         complete=intents_done and tracked_done)
    logger.info("event=history_pruned cutoff=%s intents=%s tracked_orders=%s complete=%s", cutoff.isoformat(),
                intents, tracked, report.complete)
    return report


def _prune(model, prunable: Q, cutoff: datetime, deadline: float, batch_size: int) -> tuple[int, bool]:
    """Delete the ``prunable`` rows of ``model`` range by range of primary keys, from the oldest up
    to the first row created after ``cutoff`` (ids grow with creation, so nothing past it can be
    old enough). Returns (rows deleted, whether it got to the end before ``deadline``)."""
    deleted = 0
    low = model.objects.aggregate(m=Min("pk"))["m"]
    while low is not None:
        if time.monotonic() > deadline:
            return deleted, False
        first = model.objects.filter(pk__gte=low).order_by("pk").values_list("pk", "created_at").first()
        if first is None or first[1] >= cutoff:
            break
        low = first[0]
        deleted += model.objects.filter(prunable, pk__gte=low, pk__lt=low + batch_size).delete()[0]
        low += batch_size
    return deleted, True
