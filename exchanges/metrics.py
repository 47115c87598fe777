"""The exchanges' /metrics sections: each account's halt, its 429/418 answers, its pause and how far ahead
its request budget is booked (exchanges/budget.py).

The budget is read from its shared state (Redis, or the embedded run's files), so any web process reports
what every worker process met.
"""
from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from mmproject.metrics import register_section

from .budget import budget_booked_ahead_s, budget_status
from .models import ExchangeAccount


def budget_families():
    limited = CounterMetricFamily(
        "mm_exchange_rate_limited", "Rate-limit answers (429, 418) an exchange account received; each paused "
        "every send of the account.", labels=["account_id", "account", "status"])
    paused = GaugeMetricFamily("mm_exchange_budget_paused_seconds",
                               "Seconds the account's sends are still paused after a rate-limit answer.",
                               labels=["account_id", "account"])
    booked = GaugeMetricFamily("mm_exchange_budget_booked_ahead_seconds",
                               "How far ahead the account's request budget is booked: 0 below its share of the "
                               "exchange's rate, above it requests wait their turn.", labels=["account_id", "account"])
    for account_id, label, exchange_id in ExchangeAccount.objects.order_by("pk").values_list(
            "pk", "label", "exchange_id"):
        labels = [str(account_id), label]
        paused_s, counts = budget_status(account_id=account_id, exchange_id=exchange_id)
        paused.add_metric(labels, paused_s)
        booked.add_metric(labels, budget_booked_ahead_s(account_id=account_id, exchange_id=exchange_id))
        for status in ("429", "418"):
            limited.add_metric([*labels, status], counts.get(status, 0))
    return [limited, paused, booked]


def halt_families():
    """Apart from the budget's section: a halt is reported even while the budget's Redis is unreachable."""
    halted = GaugeMetricFamily("mm_exchange_account_halted",
                               "1 while the account is halted by a halt error (revoked key, suspended account): "
                               "nothing new is planned or sent on it until `mm_account resume`.",
                               labels=["account_id", "account"])
    for account_id, label, halted_at in ExchangeAccount.objects.order_by("pk").values_list(
            "pk", "label", "halted_at"):
        halted.add_metric([str(account_id), label], int(halted_at is not None))
    return [halted]


def register() -> None:
    register_section("exchanges", budget_families)
    register_section("exchange_halts", halt_families)
