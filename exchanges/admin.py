"""Admin of exchange accounts (secret and passphrase are write-only: never shown; a halted account is shown
with its reason and resumed by an action) and a read-only simulator view."""
from django import forms
from django.contrib import admin, messages

from .errors import ExchangeSetupError
from .halts import account_resume
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


class HaltedFilter(admin.SimpleListFilter):
    title = "halted"
    parameter_name = "halted"

    def lookups(self, request, model_admin):
        return [("yes", "Halted"), ("no", "Trading")]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(halted_at__isnull=self.value() == "no")
        return queryset


@admin.register(ExchangeAccount)
class ExchangeAccountAdmin(admin.ModelAdmin):
    form = ExchangeAccountForm
    list_display = ["label", "exchange_id", "sandbox", "base_url", "enabled", "halted", "updated_at"]
    list_filter = ["exchange_id", "sandbox", "enabled", HaltedFilter]
    search_fields = ["label"]
    readonly_fields = ["halted_at", "halt_reason"]
    actions = ["resume_trading"]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not self.has_change_permission(request, obj):
            # A view-only page shows every form field's value: a decrypted secret must not be one.
            fields = [name for name in fields if name not in WRITE_ONLY]
        return fields

    @admin.display(description="halted", ordering="halted_at")
    def halted(self, account):
        if account.halted_at is None:
            return "-"
        return f"since {account.halted_at:%Y-%m-%d %H:%M:%S} UTC: {account.halt_reason[:120]}"

    @admin.action(description="Resume trading on the selected halted accounts (after fixing the key)",
                  permissions=["change"])
    def resume_trading(self, request, queryset):
        by = f"admin:{request.user.get_username()}"
        resumed = [account.label for account in queryset if account_resume(label=account.label, by=by)]
        if resumed:
            self.message_user(request, f"Resumed: {', '.join(resumed)}. Their sessions quote again from the next tick.",
                              messages.SUCCESS)
        else:
            self.message_user(request, "None of the selected accounts was halted.", messages.WARNING)


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
