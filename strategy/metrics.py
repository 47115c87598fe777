"""The strategy's /metrics sections: the tick (its duration histogram is counted in the database by the
tick itself, one UPDATE per tick by the lease holder, because ticks run in worker processes the web
process never sees) and the sessions."""
from __future__ import annotations

from django.db.models import F
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from mmproject.metrics import counts_by, register_section

from .models import TICK_LEASE_NAME, SessionStatus, StrategySession, TickDurationBucket, TickLease

# Upper bounds (ms) of the tick-duration buckets; the tick period is 1000 ms by default.
# Changing them leaves the old rows unread; the new bounds count from the next tick.
TICK_DURATION_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


def tick_duration_observe(duration_ms: int) -> None:
    """Count one tick of ``duration_ms`` in every cumulative bucket it falls in (the +Inf bucket is
    ``TickLease.ticks_run``). Called by the tick's lease holder, inside its release transaction."""
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
    have = set(TickDurationBucket.objects.values_list("le_ms", flat=True))
    TickDurationBucket.objects.bulk_create(
        [TickDurationBucket(le_ms=bound, count=int(bound in hits))
         for bound in TICK_DURATION_BUCKETS_MS if bound not in have],
        ignore_conflicts=True,
    )


def tick_families():
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


def session_families():
    family = GaugeMetricFamily("mm_strategy_sessions", "Strategy sessions by status.", labels=["status"])
    counts = counts_by(StrategySession.objects, "status")
    for status in SessionStatus.values:
        family.add_metric([status], counts.get(status, 0))
    return [family]


def uptime_families():
    """Each running session's two-sided uptime as its order tracker sampled it (strategy.services.
    sessions_sample_quotes): the share of samples with an order of ours on both sides of the book."""
    ratio = GaugeMetricFamily("mm_session_two_sided_ratio",
                              "Share of a running session's tracker samples with our orders on both sides.",
                              labels=["order_id"])
    samples = CounterMetricFamily("mm_session_quote_samples", "Two-sided uptime samples of a running session.",
                                  labels=["order_id"])
    # The samples with both sides quoted, as a counter beside the samples: a rule compares their increase
    # over a window (deploy/alerts.yml, QuotingTwoSidedLow), which the lifetime ratio above cannot show.
    two_sided = CounterMetricFamily("mm_session_two_sided_samples",
                                    "Tracker samples of a running session with our orders on both sides.",
                                    labels=["order_id"])
    rows = StrategySession.objects.filter(status=SessionStatus.RUNNING).values_list(
        "order__order_id", "quote_samples", "two_sided_samples")
    for order_id, taken, both in rows:
        ratio.add_metric([str(order_id)], both / taken if taken else 0.0)
        samples.add_metric([str(order_id)], taken)
        two_sided.add_metric([str(order_id)], both)
    return [ratio, samples, two_sided]


def register() -> None:
    register_section("ticks", tick_families)
    register_section("sessions", session_families)
    register_section("uptime", uptime_families)
