"""Read-only admin of intents, tracked orders, fills, in-flight slots and the kill switch."""
from django.contrib import admin

from mmproject.admin import ReadOnlyAdmin

from .models import Intent, IntentSlot, TrackedFill, TrackedOrder, TradingHalt


@admin.register(Intent)
class IntentAdmin(ReadOnlyAdmin):
    list_display = ("intent_id", "kind", "side", "price", "amount", "status", "attempts", "account", "created_at",
                    "finished_at")
    list_filter = ("status", "kind", "account")
    search_fields = ("intent_id", "strategy_key", "client_order_id", "exchange_order_id")
    date_hierarchy = "created_at"


@admin.register(TrackedOrder)
class TrackedOrderAdmin(ReadOnlyAdmin):
    list_display = ("client_order_id", "symbol", "side", "price", "amount", "filled", "status", "layer", "account",
                    "created_at")
    list_filter = ("status", "side", "account")
    search_fields = ("client_order_id", "strategy_key", "exchange_order_id")


@admin.register(TrackedFill)
class TrackedFillAdmin(ReadOnlyAdmin):
    list_display = ("trade_id", "symbol", "side", "price", "amount", "cost", "fee", "fee_currency", "ledger_entry_id",
                    "settle_error", "created_at")
    list_filter = ("side", "account")
    search_fields = ("trade_id", "strategy_key")


@admin.register(IntentSlot)
class IntentSlotAdmin(ReadOnlyAdmin):
    list_display = ("scope", "index", "intent", "lease_until")
    list_filter = ("scope",)


@admin.register(TradingHalt)
class TradingHaltAdmin(ReadOnlyAdmin):
    """Engage or release the kill switch with `manage.py kill_switch`; it is shown here."""

    list_display = ("name", "engaged", "reason", "changed_by", "changed_at")
