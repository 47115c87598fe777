"""Admin of exchange accounts (the secret is write-only: never shown) and a read-only simulator view."""
from django import forms
from django.contrib import admin

from .models import ExchangeAccount, SimAccount, SimBalance, SimMarket, SimOrder


class ExchangeAccountForm(forms.ModelForm):
    api_secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: leave empty to keep the stored secret. Stored encrypted (Fernet).",
    )

    class Meta:
        model = ExchangeAccount
        fields = ["label", "exchange_id", "api_key", "api_secret", "base_url", "enabled"]

    def save(self, commit=True):
        account = super().save(commit=False)
        if self.cleaned_data.get("api_secret"):
            account.api_secret = self.cleaned_data["api_secret"]
        if commit:
            account.save()
        return account


@admin.register(ExchangeAccount)
class ExchangeAccountAdmin(admin.ModelAdmin):
    form = ExchangeAccountForm
    list_display = ["label", "exchange_id", "base_url", "enabled", "updated_at"]
    list_filter = ["exchange_id", "enabled"]
    search_fields = ["label"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not self.has_change_permission(request, obj):
            # A view-only page shows every form field's value: the decrypted secret must not be one.
            fields = [name for name in fields if name != "api_secret"]
        return fields


@admin.register(SimMarket)
class SimMarketAdmin(admin.ModelAdmin):
    list_display = ["symbol", "price", "step", "seed", "tick_size", "step_size", "min_notional"]


@admin.register(SimAccount)
class SimAccountAdmin(admin.ModelAdmin):
    list_display = ["label", "faults"]
    fields = ["label", "api_key", "faults"]


@admin.register(SimBalance)
class SimBalanceAdmin(admin.ModelAdmin):
    list_display = ["account", "asset", "free", "locked"]
    list_filter = ["asset"]


@admin.register(SimOrder)
class SimOrderAdmin(admin.ModelAdmin):
    list_display = ["pk", "account", "market", "client_order_id", "side", "price", "orig_qty", "executed_qty", "status"]
    list_filter = ["status", "side"]
    search_fields = ["client_order_id"]
