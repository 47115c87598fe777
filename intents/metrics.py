"""The intents' /metrics section: intents by status and the in-flight slots."""
from __future__ import annotations

from django.db.models import Q
from prometheus_client.core import GaugeMetricFamily

from exchanges.models import ExchangeAccount
from mmproject.metrics import incremental_counts, register_section

from .gates import account_scope, in_flight_counts
from .models import ACTIVE_INTENT_STATUSES, Intent, IntentStatus


def intent_families():
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


def register() -> None:
    register_section("intents", intent_families)
