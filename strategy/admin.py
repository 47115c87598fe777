"""Admin of strategy sessions (read-only: sessions change through the order lifecycle)."""
from django.contrib import admin

from .models import StrategySession


@admin.register(StrategySession)
class StrategySessionAdmin(admin.ModelAdmin):
    list_display = ("order", "status", "cadence_s", "next_run_at", "started_at", "stopped_at")
    list_filter = ("status",)
    search_fields = ("order__order_id",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
