"""Shared admin base: the read-only views of evidence (ledger, intents, runtime state, history)."""
from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """What the system wrote is inspected in the admin, never edited: changes go through services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
