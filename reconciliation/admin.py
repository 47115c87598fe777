"""Read-only admin of reconciliation: runs with their drifts, drifts by kind, balance baselines."""
from django.contrib import admin

from mmproject.admin import ReadOnlyAdmin, ReadOnlyInline

from .models import BalanceBaseline, Drift, ReconciliationRun

# Runs are records of what was found; baselines change only through ``reconcile --set-baseline``.


DRIFT_FIELDS = ("kind", "account", "symbol", "asset", "expected", "actual", "difference", "client_order_id",
                "intent_id", "detail")


class DriftInline(ReadOnlyInline):
    model = Drift
    fields = DRIFT_FIELDS


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "started_at", "finished_at", "trigger", "ok", "drift_count", "accounts_checked",
                    "orders_checked", "balances_checked", "intents_checked", "baselines_set")
    list_filter = ("ok", "trigger")
    date_hierarchy = "started_at"
    inlines = [DriftInline]


@admin.register(Drift)
class DriftAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "run", "kind", "account", "symbol", "asset", "expected", "actual",
                    "difference", "client_order_id", "intent_id")
    list_filter = ("kind", "account")
    search_fields = ("client_order_id", "intent_id", "symbol", "asset", "detail")
    date_hierarchy = "created_at"


@admin.register(BalanceBaseline)
class BalanceBaselineAdmin(ReadOnlyAdmin):
    list_display = ("account", "asset", "difference", "exchange_total", "ledger_total", "set_at", "set_by_run")
    list_filter = ("account", "asset")
