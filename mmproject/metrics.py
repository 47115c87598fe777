"""``/metrics`` in Prometheus text format, read from the database (and the broker) at scrape time.

Every number comes from shared state, never from one process's memory, so a scrape of any web
process is true for all worker processes on all machines. Each app registers the sections it owns
(``register_section``, from its AppConfig.ready, in ``<app>/metrics.py``); this module holds what
they share: the collector, the view, counting helpers and the broker's queue depths.

A section that cannot be read (a table not migrated yet, a broker down) is left out and reported
as ``mm_metrics_section_up{section=...} 0``; the scrape itself never fails because of it.
"""
from __future__ import annotations

import hmac
import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Min, Q
from django.http import HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from mmproject.celery import INTENTS_QUEUE, MARKET_MAKING_QUEUE, TICK_QUEUE, app

logger = logging.getLogger(__name__)


def celery_queue_depths(*, broker_url: str | None = None, timeout_s: float = 2.0) -> dict[str, int]:
    """Messages waiting in each Celery queue of mmproject/celery.py; -1 when the broker is unreachable.

    One passive declare per queue on every transport (Redis: LLEN of the queue's keys; RabbitMQ:
    the queue's message_count; filesystem: its message files). A queue the broker does not know
    yet (or a filesystem broker folder not made yet) holds nothing: 0.
    """

    queues = (MARKET_MAKING_QUEUE, INTENTS_QUEUE, TICK_QUEUE)
    depths = dict.fromkeys(queues, -1)
    try:
        with app.connection_for_read(broker_url, connect_timeout=timeout_s) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
            for queue in queues:
                channel = conn.channel()
                try:
                    depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
                except (*conn.channel_errors, FileNotFoundError):
                    depths[queue] = 0
                finally:
                    try:
                        channel.close()
                    except Exception:  # a channel the broker already closed (404) needs no closing
                        pass
    except Exception as exc:  # unreachable broker: report -1, never fail the scrape
        logger.warning("event=metrics_queue_depth_failed error=%r", exc)
    return depths


def counts_by(queryset, field: str) -> dict[str, int]:
    return {row[field]: row["n"] for row in queryset.values(field).annotate(n=Count("id")).order_by()}


class IncrementalCounts:
    """Exact counts by ``field`` of an ever-growing table, in time proportional to the rows added
    lately rather than to the whole table (a full count grows with the table: docs/decisions.md,
    "Figures behind the hot paths").

    Rows up to ``settled_id`` are final (older than ``METRICS_SETTLE_AFTER_S`` and, for intents,
    no longer active): counted once per process and kept. Rows after it are counted on every
    scrape. A row whose transaction commits later than that margin after it was written, with an
    id below the boundary, would be missed; ledger and intent writes commit within seconds.
    """

    def __init__(self, model, field: str, active=None):
        self.model, self.field, self.active = model, field, active
        self.settled_id = 0
        self.settled: dict[str, int] = {}

    def counts(self) -> dict[str, int]:
        rows = self.model.objects
        if self.settled_id and not rows.filter(pk=self.settled_id).exists():
            self.settled_id, self.settled = 0, {}  # the table was emptied (a test flush, a restore)
        newer = rows.filter(pk__gt=self.settled_id)
        horizon = timezone.now() - timedelta(seconds=settings.METRICS_SETTLE_AFTER_S)
        stops = [newer.filter(created_at__gte=horizon).aggregate(m=Min("pk"))["m"]]
        if self.active is not None:
            stops.append(newer.filter(self.active).aggregate(m=Min("pk"))["m"])
        stops = [stop for stop in stops if stop is not None]
        upper = min(stops) - 1 if stops else (newer.aggregate(m=Max("pk"))["m"] or self.settled_id)
        if upper > self.settled_id:
            final = rows.filter(pk__gt=self.settled_id, pk__lte=upper)
            top = final.aggregate(m=Max("pk"))["m"]  # the boundary is a row that exists (see the check above)
            if top is not None:
                for key, n in counts_by(final, self.field).items():
                    self.settled[key] = self.settled.get(key, 0) + n
                self.settled_id = top
        counts = dict(self.settled)
        for key, n in counts_by(rows.filter(pk__gt=self.settled_id), self.field).items():
            counts[key] = counts.get(key, 0) + n
        return counts


_incremental: dict[tuple, IncrementalCounts] = {}


class OpenRows:
    """How many rows of an ever-growing table are still open, and the oldest one's ``age_field``, where
    a row is open (``open_q``) when written and closes once, never to reopen (a fill until it is
    settled). One statement per scrape, scanning by primary key only from the first row that was open
    or younger than ``METRICS_SETTLE_AFTER_S`` on the last scrape, not the whole table: the rows before
    it were closed and old then, so they still are.

    The scan starts at a row that exists (``after``); when it no longer does (a table flushed, history
    pruned) the next scrape scans from the start once. A row whose transaction commits later than the
    settle margin after it was written, with an id below the start, would be missed.
    """

    def __init__(self, model, open_q, age_field: str):
        self.model, self.open_q, self.age_field = model, open_q, age_field
        self.after = 0

    def read(self) -> tuple[int, object]:
        horizon = timezone.now() - timedelta(seconds=settings.METRICS_SETTLE_AFTER_S)
        found = self.model.objects.filter(pk__gte=self.after).aggregate(
            anchor=Count("pk", filter=Q(pk=self.after)), open=Count("pk", filter=self.open_q),
            oldest=Min(self.age_field, filter=self.open_q), first_open=Min("pk", filter=self.open_q),
            first_young=Min("pk", filter=Q(created_at__gte=horizon)), top=Max("pk"))
        if self.after and not found["anchor"]:
            self.after = 0
            return self.read()
        stops = [pk for pk in (found["first_open"], found["first_young"]) if pk is not None]
        self.after = min(stops) if stops else (found["top"] or 0)
        return found["open"], found["oldest"]


_open_rows: dict[tuple, OpenRows] = {}


def open_rows(model, open_q, age_field: str) -> tuple[int, object]:
    """``OpenRows`` of ``model``: (open rows, the oldest one's ``age_field``), one per database and table."""
    key = (connection.settings_dict["NAME"], model._meta.label, age_field)
    if key not in _open_rows:
        _open_rows[key] = OpenRows(model, open_q, age_field)
    return _open_rows[key].read()


def incremental_counts(model, field: str, active=None) -> dict[str, int]:
    """``IncrementalCounts`` of ``model`` by ``field``, one per database and table in this process."""
    key = (connection.settings_dict["NAME"], model._meta.label, field)
    if key not in _incremental:
        _incremental[key] = IncrementalCounts(model, field, active)
    return _incremental[key].counts()


def _queue_families():
    family = GaugeMetricFamily("mm_celery_queue_depth",
                               "Messages waiting in a Celery queue (-1: the broker could not be read).",
                               labels=["queue"])
    for queue, depth in celery_queue_depths().items():
        family.add_metric([queue], depth)
    return [family]


# Sections by name, in the order they are read: each app registers its own (``register_section`` in
# its AppConfig.ready), so this module imports no app.
SECTIONS = {"celery": _queue_families}


def register_section(name: str, read) -> None:
    """Add (or replace) the section ``name``: ``read()`` returns its metric families at scrape time."""
    SECTIONS[name] = read


class DatabaseCollector:
    """A prometheus_client collector that reads every section at scrape time."""

    def collect(self):
        up = GaugeMetricFamily("mm_metrics_section_up", "1 if the section was read on this scrape.",
                               labels=["section"])
        for name, read in SECTIONS.items():
            try:
                if connection.in_atomic_block:  # a failed query (table not migrated) rolls back only itself
                    with transaction.atomic():
                        families = read()
                else:
                    families = read()
            except Exception as exc:  # one unreadable section never fails the scrape
                logger.warning("event=metrics_section_failed section=%s error=%r", name, exc)
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return generate_latest(registry)


def metrics_view(request):
    """GET /metrics. With ``METRICS_TOKEN`` set, only ``Authorization: Bearer <token>`` may read it."""
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return HttpResponse("metrics need the bearer token of METRICS_TOKEN\n", status=401,
                                content_type="text/plain")
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
