"""The exchanges' /metrics section: each account's 429/418 answers and its pause (exchanges/budget.py).

Read from the shared budget state (Redis, or the embedded run's files), so any web process reports
what every worker process met.
"""
from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from mmproject.metrics import register_section

from .budget import budget_status
from .models import ExchangeAccount


def budget_families():
    limited = CounterMetricFamily(
        "mm_exchange_rate_limited", "Rate-limit answers (429, 418) an exchange account received; each paused "
        "every send of the account.", labels=["account_id", "account", "status"])
    paused = GaugeMetricFamily("mm_exchange_budget_paused_seconds",
                               "Seconds the account's sends are still paused after a rate-limit answer.",
                               labels=["account_id", "account"])
    for account_id, label, exchange_id in ExchangeAccount.objects.order_by("pk").values_list(
            "pk", "label", "exchange_id"):
        paused_s, counts = budget_status(account_id=account_id, exchange_id=exchange_id)
        paused.add_metric([str(account_id), label], paused_s)
        for status in ("429", "418"):
            limited.add_metric([str(account_id), label, status], counts.get(status, 0))
    return [limited, paused]


def register() -> None:
    register_section("exchanges", budget_families)
