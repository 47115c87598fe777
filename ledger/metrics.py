"""The ledger's /metrics section: entries written, by operation."""
from __future__ import annotations

from prometheus_client.core import CounterMetricFamily

from mmproject.metrics import incremental_counts, register_section

from .models import LedgerEntry, Operation


def ledger_families():
    family = CounterMetricFamily("mm_ledger_mutations", "Ledger entries written, by operation.", labels=["operation"])
    counts = incremental_counts(LedgerEntry, "operation")
    for operation in Operation.values:
        family.add_metric([operation], counts.get(operation, 0))
    return [family]


def register() -> None:
    register_section("ledger", ledger_families)
