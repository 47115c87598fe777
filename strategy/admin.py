"""Admin of strategy sessions, the tick lease and stored market data (all read-only)."""
from django.contrib import admin

from mmproject.admin import ReadOnlyAdmin

from .models import MarketData, StrategySession, TickLease


@admin.register(StrategySession)
class StrategySessionAdmin(ReadOnlyAdmin):
    list_display = ("order", "status", "cadence_s", "next_run_at", "started_at", "stopped_at")
    list_filter = ("status",)
    search_fields = ("order__order_id",)


@admin.register(TickLease)
class TickLeaseAdmin(ReadOnlyAdmin):
    list_display = ("name", "ticks_run", "ticks_skipped", "last_duration_ms", "last_started_at", "lease_until", "holder")


@admin.register(MarketData)
class MarketDataAdmin(ReadOnlyAdmin):
    list_display = ("symbol", "account", "best_bid", "best_ask", "price_tick", "amount_step", "min_notional",
                    "fetched_at")
