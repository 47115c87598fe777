"""Admin of the ledger: balances, entries with their postings, postings by account (fee debts among them)
read-only; asset scales and exchange currency codes editable."""
from django.contrib import admin

from mmproject.admin import ReadOnlyAdmin, ReadOnlyInline

from .models import Asset, Balance, ExchangeCurrency, LedgerEntry, Posting


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("user_id", "asset_id", "available", "locked", "updated_at")
    search_fields = ("user_id", "asset_id")
    list_filter = ("asset_id",)


class PostingInline(ReadOnlyInline):
    model = Posting
    fields = ("account", "user_id", "asset_id", "amount")


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "operation", "user_id", "asset_id", "amount", "ref_type", "ref_id",
                    "idempotency_key")
    list_filter = ("operation", "ref_type")
    search_fields = ("user_id", "asset_id", "idempotency_key", "ref_id", "ref_type")
    date_hierarchy = "created_at"
    inlines = [PostingInline]


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("asset_id", "symbol", "scale")
    search_fields = ("asset_id", "symbol")


@admin.register(Posting)
class PostingAdmin(ReadOnlyAdmin):
    """Filter by account ``fee_debt`` to see the fees orders owe in a third currency (ref = the order)."""

    list_display = ("entry_id", "account", "user_id", "asset_id", "amount", "ref")
    # No filter by asset: its choices would be a DISTINCT over every posting on each page load.
    list_filter = ("account",)
    search_fields = ("user_id", "asset_id", "entry__ref_id")
    list_select_related = ("entry",)
    show_full_result_count = False

    @admin.display(description="ref")
    def ref(self, posting):
        return f"{posting.entry.ref_type}:{posting.entry.ref_id}" if posting.entry.ref_type else ""


@admin.register(ExchangeCurrency)
class ExchangeCurrencyAdmin(admin.ModelAdmin):
    """Which Mixin asset an exchange currency code is: a fee in a third currency settles only once mapped."""

    list_display = ("exchange_id", "code", "asset")
    search_fields = ("exchange_id", "code", "asset__asset_id", "asset__symbol")
    list_filter = ("exchange_id",)
