"""Reconciliation's /metrics section: the last finished run's drifts."""
from __future__ import annotations

from datetime import datetime

from prometheus_client.core import GaugeMetricFamily

from mmproject.metrics import register_section

from .selectors import reconciliation_status


def reconciliation_families():
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
        finished = GaugeMetricFamily("mm_reconciliation_last_run_timestamp_seconds",
                                     "When the last reconciliation run finished (Unix time).")
        finished.add_metric([], datetime.fromisoformat(status["finished_at"]).timestamp())
        families.append(finished)
    return families


def register() -> None:
    register_section("reconciliation", reconciliation_families)
