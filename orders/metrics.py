"""The orders' /metrics section: orders by lifecycle state."""
from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily

from mmproject.metrics import counts_by, register_section

from .models import MarketMakingOrder, OrderState


def order_families():
    family = GaugeMetricFamily("mm_orders", "Market-making orders by lifecycle state.", labels=["state"])
    counts = counts_by(MarketMakingOrder.objects, "state")
    for state in OrderState.values:
        family.add_metric([state], counts.get(state, 0))
    return [family]


def register() -> None:
    register_section("orders", order_families)
