"""Admin of exchange accounts (secret and passphrase are write-only: never shown) and a read-only simulator view."""
from django import forms
from django.contrib import admin

from .errors import ExchangeSetupError
from .models import ExchangeAccount, SimAccount, SimBalance, SimMarket, SimOrder
from .services import exchange_capabilities_check

WRITE_ONLY = ("api_secret", "api_passphrase")


class ExchangeAccountForm(forms.ModelForm):
    api_secret = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only: leave empty to keep the stored secret. Stored encrypted (Fernet).",
    )
    api_passphrase = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False), label="API passphrase",
        help_text="ccxt's password (OKX, KuCoin, Bitget...). Write-only: leave empty to keep the stored "
                  "passphrase. Stored encrypted (Fernet).",
    )

    class Meta:
        model = ExchangeAccount
        fields = ["label", "exchange_id", "api_key", "api_secret", "api_passphrase", "uid", "sandbox", "base_url",
                  "enabled"]

    def clean(self):
        cleaned = super().clean()
        exchange_id = cleaned.get("exchange_id")
        if exchange_id:
            try:
                exchange_capabilities_check(exchange_id=exchange_id, sandbox=bool(cleaned.get("sandbox")))
            except ExchangeSetupError as exc:
                self.add_error("exchange_id", str(exc))
        return cleaned

    def save(self, commit=True):
        account = super().save(commit=False)
        for name in WRITE_ONLY:
            if self.cleaned_data.get(name):
                setattr(account, name, self.cleaned_data[name])
        if commit:
            account.save()
        return account


@admin.register(ExchangeAccount)
class ExchangeAccountAdmin(admin.ModelAdmin):
    form = ExchangeAccountForm
    list_display = ["label", "exchange_id", "sandbox", "base_url", "enabled", "updated_at"]
    list_filter = ["exchange_id", "sandbox", "enabled"]
    search_fields = ["label"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not self.has_change_permission(request, obj):
            # A view-only page shows every form field's value: a decrypted secret must not be one.
            fields = [name for name in fields if name not in WRITE_ONLY]
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
