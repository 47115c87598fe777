"""Read-only admin of API tokens: who has one, for which Mixin user, and when it was made (the token is never shown)."""
from django.contrib import admin

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Create or replace a token with ``manage.py api_token create USERNAME --mixin-user-id UUID``; revoke it here
    or with the command."""

    list_display = ("user", "prefix", "mixin_user_id", "created_at")
    fields = ("user", "prefix", "mixin_user_id", "created_at")
    readonly_fields = fields
    search_fields = ("user__username", "prefix", "mixin_user_id")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
