"""The intents' /metrics sections: intents by status and the in-flight slots; intents stuck after they
were sent; fills not settled into the ledger."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from exchanges.models import ExchangeAccount
from mmproject.metrics import incremental_counts, open_rows, register_section

from .gates import account_scope, in_flight_counts
from .models import ACTIVE_INTENT_STATUSES, Intent, IntentStatus, TrackedFill


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


def stuck_families():
    """Intents sent to the exchange and still not resolved (in flight, or waiting for a retry) more than
    ``METRICS_STUCK_INTENT_S`` after they were sent; one read of the active intents' index."""
    now = timezone.now()
    found = Intent.objects.filter(
        status__in=ACTIVE_INTENT_STATUSES, sent_at__lt=now - timedelta(seconds=settings.METRICS_STUCK_INTENT_S),
    ).aggregate(n=Count("pk"), oldest=Min("sent_at"))
    stuck = GaugeMetricFamily("mm_intents_stuck", "Intents sent and unresolved (in flight or waiting to retry) "
                              "longer than METRICS_STUCK_INTENT_S.")
    stuck.add_metric([], found["n"])
    oldest = GaugeMetricFamily("mm_intents_stuck_oldest_seconds",
                               "Seconds since the oldest stuck intent was sent (0: none stuck).")
    oldest.add_metric([], (now - found["oldest"]).total_seconds() if found["oldest"] else 0.0)
    return [stuck, oldest]


def fill_families():
    """Fills recorded and not settled into the ledger (an unmapped fee currency, a ledger error):
    the order's ledger position no longer follows the exchange until an operator acts."""
    unsettled, oldest_at = open_rows(TrackedFill, Q(ledger_entry_id__isnull=True), "created_at")
    count = GaugeMetricFamily("mm_fills_unsettled", "Fills recorded and not settled into the ledger.")
    count.add_metric([], unsettled)
    oldest = GaugeMetricFamily("mm_fills_unsettled_oldest_seconds",
                               "Seconds since the oldest unsettled fill was recorded (0: none).")
    oldest.add_metric([], (timezone.now() - oldest_at).total_seconds() if oldest_at else 0.0)
    return [count, oldest]


def register() -> None:
    register_section("intents", intent_families)
    register_section("intents_stuck", stuck_families)
    register_section("fills", fill_families)
