"""Read-only admin of the ledger: balances, entries with their postings, asset scales."""
from django.contrib import admin

from mmproject.admin import ReadOnlyAdmin, ReadOnlyInline

from .models import Asset, Balance, LedgerEntry, Posting


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
