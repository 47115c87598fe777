"""Shared admin bases: the read-only views of evidence (ledger, intents, runtime state, history)."""
from django.contrib import admin


class ReadOnlyMixin:
    """What the system wrote is inspected in the admin, never edited: changes go through services."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


class ReadOnlyInline(ReadOnlyMixin, admin.TabularInline):
    """A read-only table of related rows on a parent's page."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields or [f.name for f in self.model._meta.fields]
