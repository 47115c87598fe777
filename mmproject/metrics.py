"""``/metrics`` in Prometheus text format, read from the database (and the broker) at scrape time.

Every number comes from shared state, never from one process's memory, so a scrape of any web
process is true for all worker processes on all machines. The tick-duration histogram is counted
in the database by the tick itself (``tick_duration_observe``: cumulative bucket rows, one UPDATE
per tick by the lease holder) because ticks run in worker processes the web process never sees.

A section that cannot be read (a table not migrated yet, a broker down) is left out and reported
as ``mm_metrics_section_up{section=...} 0``; the scrape itself never fails because of it.
"""
from __future__ import annotations

import hmac
import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

logger = logging.getLogger(__name__)

# Upper bounds (ms) of the tick-duration buckets; the tick period is 1000 ms by default.
# Changing them leaves the old rows unread; the new bounds count from the next tick.
TICK_DURATION_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


def tick_duration_observe(duration_ms: int) -> None:
    """Count one tick of ``duration_ms`` in every cumulative bucket it falls in (the +Inf bucket is
    ``TickLease.ticks_run``). Called by the tick's lease holder, inside its release transaction."""
    from strategy.models import TickDurationBucket

    hits = tick_duration_hits(duration_ms)
    if not hits:
        return
    updated = TickDurationBucket.objects.filter(le_ms__in=hits).update(count=F("count") + 1)
    if updated < len(hits):
        tick_duration_buckets_complete(hits)


def tick_duration_hits(duration_ms: int) -> list[int]:
    """The bucket bounds a tick of ``duration_ms`` counts in (the +Inf bucket is ``ticks_run``)."""
    return [bound for bound in TICK_DURATION_BUCKETS_MS if duration_ms <= bound]


def tick_duration_buckets_complete(hits: list[int]) -> None:
    """First tick on this database (or new bounds): create the missing bucket rows, counting this
    tick in those of ``hits``."""
    from strategy.models import TickDurationBucket

    have = set(TickDurationBucket.objects.values_list("le_ms", flat=True))
    TickDurationBucket.objects.bulk_create(
        [TickDurationBucket(le_ms=bound, count=int(bound in hits))
         for bound in TICK_DURATION_BUCKETS_MS if bound not in have],
        ignore_conflicts=True,
    )


def celery_queue_depths(*, broker_url: str | None = None, timeout_s: float = 2.0) -> dict[str, int]:
    """Messages waiting in each Celery queue of mmproject/celery.py; -1 when the broker is unreachable.

    One passive declare per queue on every transport (Redis: LLEN of the queue's keys; RabbitMQ:
    the queue's message_count; filesystem: its message files). A queue the broker does not know
    yet (or a filesystem broker folder not made yet) holds nothing: 0.
    """
    from mmproject.celery import INTENTS_QUEUE, MARKET_MAKING_QUEUE, TICK_QUEUE, app

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


def _counts(queryset, field: str) -> dict[str, int]:
    return {row[field]: row["n"] for row in queryset.values(field).annotate(n=Count("id")).order_by()}


class IncrementalCounts:
    """Exact counts by ``field`` of an ever-growing table, in time proportional to the rows added
    lately rather than to the whole table (500k ledger entries cost ~170 ms per full count).

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
        from django.db.models import Max, Min
        from django.utils import timezone

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
                for key, n in _counts(final, self.field).items():
                    self.settled[key] = self.settled.get(key, 0) + n
                self.settled_id = top
        counts = dict(self.settled)
        for key, n in _counts(rows.filter(pk__gt=self.settled_id), self.field).items():
            counts[key] = counts.get(key, 0) + n
        return counts


_incremental: dict[tuple, IncrementalCounts] = {}


def incremental_counts(model, field: str, active=None) -> dict[str, int]:
    """``IncrementalCounts`` of ``model`` by ``field``, one per database and table in this process."""
    key = (connection.settings_dict["NAME"], model._meta.label, field)
    if key not in _incremental:
        _incremental[key] = IncrementalCounts(model, field, active)
    return _incremental[key].counts()


def _tick_families():
    from strategy.models import TickDurationBucket, TickLease
    from strategy.tick import TICK_LEASE_NAME

    lease = TickLease.objects.filter(name=TICK_LEASE_NAME).first()
    ticks_run = lease.ticks_run if lease else 0
    stored = dict(TickDurationBucket.objects.values_list("le_ms", "count"))
    histogram = HistogramMetricFamily(
        "mm_tick_duration_seconds", "Duration of the strategy ticks run (all workers).",
        buckets=[(f"{bound / 1000:g}", stored.get(bound, 0)) for bound in TICK_DURATION_BUCKETS_MS]
        + [("+Inf", ticks_run)],
        sum_value=(lease.duration_ms_total if lease else 0) / 1000,
    )
    skipped = CounterMetricFamily("mm_ticks_skipped", "Ticks not run: the lease was held or the slot already ran.")
    skipped.add_metric([], lease.ticks_skipped if lease else 0)
    last = GaugeMetricFamily("mm_tick_last_duration_seconds", "Duration of the last tick run.")
    last.add_metric([], (lease.last_duration_ms if lease else 0) / 1000)
    families = [histogram, skipped, last]
    if lease and lease.last_finished_at:  # alert on time() - this: ticks stopped
        finished = GaugeMetricFamily("mm_tick_last_finished_timestamp_seconds", "When the last tick finished (Unix time).")
        finished.add_metric([], lease.last_finished_at.timestamp())
        families.append(finished)
    return families


def _session_families():
    from strategy.models import SessionStatus, StrategySession

    family = GaugeMetricFamily("mm_strategy_sessions", "Strategy sessions by status.", labels=["status"])
    counts = _counts(StrategySession.objects, "status")
    for status in SessionStatus.values:
        family.add_metric([status], counts.get(status, 0))
    return [family]


def _order_families():
    from orders.models import MarketMakingOrder, OrderState

    family = GaugeMetricFamily("mm_orders", "Market-making orders by lifecycle state.", labels=["state"])
    counts = _counts(MarketMakingOrder.objects, "state")
    for state in OrderState.values:
        family.add_metric([state], counts.get(state, 0))
    return [family]


def _intent_families():
    from exchanges.models import ExchangeAccount
    from intents.gates import account_scope, in_flight_counts
    from intents.models import ACTIVE_INTENT_STATUSES, Intent, IntentStatus

    by_status = GaugeMetricFamily("mm_intents", "Intents by status.", labels=["status"])
    counts = incremental_counts(Intent, "status", active=Q(status__in=ACTIVE_INTENT_STATUSES))
    for status in IntentStatus.values:
        by_status.add_metric([status], counts.get(status, 0))
    slots = in_flight_counts()
    in_flight = GaugeMetricFamily("mm_intents_in_flight", "Intents holding an in-flight slot (lease not expired).")
    in_flight.add_metric([], slots.get("global", 0))
    per_account = GaugeMetricFamily(
        "mm_intents_in_flight_per_exchange_account",
        "Intents holding an exchange account's in-flight slot (lease not expired).",
        labels=["account_id", "account"],
    )
    for account_id, label in ExchangeAccount.objects.order_by("pk").values_list("pk", "label"):
        per_account.add_metric([str(account_id), label], slots.get(account_scope(account_id), 0))
    return [by_status, in_flight, per_account]


def _ledger_families():
    from ledger.models import LedgerEntry, Operation

    family = CounterMetricFamily("mm_ledger_mutations", "Ledger entries written, by operation.", labels=["operation"])
    counts = incremental_counts(LedgerEntry, "operation")
    for operation in Operation.values:
        family.add_metric([operation], counts.get(operation, 0))
    return [family]


def _reconciliation_families():
    from reconciliation.selectors import reconciliation_status

    status = reconciliation_status()
    drifts = GaugeMetricFamily("mm_reconciliation_drifts",
                               "Drifts found by the last finished reconciliation run, by kind.", labels=["kind"])
    for kind, count in sorted(status["drifts"].items()):
        drifts.add_metric([kind], count)
    ok = GaugeMetricFamily("mm_reconciliation_last_run_ok",
                           "1 if the last finished reconciliation run found no drift, 0 if it did, -1 if none ran.")
    ok.add_metric([], -1 if status["ok"] is None else int(status["ok"]))
    families = [drifts, ok]
    if status["finished_at"]:
        from datetime import datetime

        finished = GaugeMetricFamily("mm_reconciliation_last_run_timestamp_seconds",
                                     "When the last reconciliation run finished (Unix time).")
        finished.add_metric([], datetime.fromisoformat(status["finished_at"]).timestamp())
        families.append(finished)
    return families


def _queue_families():
    family = GaugeMetricFamily("mm_celery_queue_depth",
                               "Messages waiting in a Celery queue (-1: the broker could not be read).",
                               labels=["queue"])
    for queue, depth in celery_queue_depths().items():
        family.add_metric([queue], depth)
    return [family]


SECTIONS = {
    "ticks": _tick_families,
    "sessions": _session_families,
    "orders": _order_families,
    "intents": _intent_families,
    "ledger": _ledger_families,
    "reconciliation": _reconciliation_families,
    "celery": _queue_families,
}


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
