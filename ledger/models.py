"""Ledger data: assets, balances (materialised from postings), entries and their postings.

Double entry: every entry writes postings that sum to zero per asset. User accounts are
``user_available`` and ``user_locked``; system accounts (external, exchange, fees, rewards)
have no materialised balance row, so no mutation ever waits on a hot system row: the audit
derives them by sum.
"""
from django.db import models
from django.db.models import FloatField
from django.db.models.functions import Cast
from django.db.models.lookups import GreaterThanOrEqual

from .amounts import AmountField
from .errors import ImmutableEntry


class Account(models.TextChoices):
    USER_AVAILABLE = "user_available", "user available"
    USER_LOCKED = "user_locked", "user locked"
    EXTERNAL = "external", "external (deposits and withdrawals)"
    EXCHANGE = "exchange", "exchange counterparty (fills)"
    FEES = "fees", "fees"
    REWARDS = "rewards", "rewards"
    # What a user owes in an asset their order does not hold (a fill's fee charged by the exchange in
    # a third currency, e.g. BNB): a system account per user, so it has no balance row and no CHECK;
    # its postings carry the order's ref (docs/decisions.md, "Fees in a third currency").
    FEE_DEBT = "fee_debt", "fee debt (fees owed in an asset the order does not hold)"


USER_ACCOUNTS = (Account.USER_AVAILABLE, Account.USER_LOCKED)


class Operation(models.TextChoices):
    CREDIT_DEPOSIT = "credit_deposit"
    DEBIT_WITHDRAWAL = "debit_withdrawal"
    LOCK_FUNDS = "lock_funds"
    UNLOCK_FUNDS = "unlock_funds"
    DEBIT_FEE = "debit_fee"
    CREDIT_REWARD = "credit_reward"
    SETTLE_FILL = "settle_fill"


class Asset(models.Model):
    """An asset's precision. An asset without a row has the default scale (8, as on Mixin)."""

    asset_id = models.CharField(max_length=64, primary_key=True)
    symbol = models.CharField(max_length=32, blank=True)
    scale = models.PositiveSmallIntegerField(default=8)

    def __str__(self):
        return f"{self.symbol or self.asset_id} (scale {self.scale})"


class ExchangeCurrency(models.Model):
    """Which Mixin asset an exchange's currency code is, for currencies no pair names: a fee charged
    in a third currency (e.g. BNB on Binance) settles in that asset only when it is mapped here."""

    exchange_id = models.CharField(max_length=64, help_text="ccxt exchange id, e.g. binance")
    code = models.CharField(max_length=32, help_text="the exchange's currency code, e.g. BNB (stored upper case)")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="exchange_currencies",
                              help_text="the Mixin asset (its scale is the ledger's precision of the fee)")

    class Meta:
        verbose_name_plural = "exchange currencies"
        constraints = [
            models.UniqueConstraint(fields=["exchange_id", "code"], name="ledger_exchange_currency_uniq"),
        ]

    def save(self, *args, **kwargs):
        self.exchange_id = self.exchange_id.strip().lower()
        self.code = self.code.strip().upper()
        super().save(*args, **kwargs)

    def __str__(self):
        return f"{self.exchange_id}:{self.code} = {self.asset_id}"


def _non_negative(field: str):
    # Cast so the check is numeric on SQLite too, where amounts are stored as text.
    return GreaterThanOrEqual(Cast(field, FloatField()), 0)


class Balance(models.Model):
    """A user's balance of one asset: a materialised view of that user's postings."""

    user_id = models.CharField(max_length=64)
    asset_id = models.CharField(max_length=64)
    available = AmountField(default=0)
    locked = AmountField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "asset_id"], name="ledger_balance_user_asset_uniq"),
            models.CheckConstraint(condition=_non_negative("available"), name="ledger_balance_available_gte_0"),
            models.CheckConstraint(condition=_non_negative("locked"), name="ledger_balance_locked_gte_0"),
        ]

    def __str__(self):
        return f"{self.user_id}:{self.asset_id} available={self.available} locked={self.locked}"

    @property
    def total(self):
        return self.available + self.locked


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise ImmutableEntry(f"{self.model.__name__} rows are append-only; they cannot be updated")

    def delete(self):
        raise ImmutableEntry(f"{self.model.__name__} rows are append-only; they cannot be deleted")


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableEntry(f"{type(self).__name__} {self.pk} is append-only; it cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutableEntry(f"{type(self).__name__} {self.pk} is append-only; it cannot be deleted")


class LedgerEntry(AppendOnlyModel):
    """One applied mutation, unique by idempotency key, with the result it returned."""

    idempotency_key = models.CharField(max_length=255, unique=True)
    operation = models.CharField(max_length=32, choices=Operation.choices)
    # Covered by the (user_id, asset_id) index: no index of its own (one less write per mutation).
    user_id = models.CharField(max_length=64)
    asset_id = models.CharField(max_length=64)
    amount = AmountField()
    ref_type = models.CharField(max_length=64, blank=True, default="")
    ref_id = models.CharField(max_length=128, blank=True, default="")
    payload_hash = models.CharField(max_length=64)
    # The balance of (user_id, asset_id) right after this entry: a replay returns it.
    available_after = AmountField()
    locked_after = AmountField()
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name_plural = "ledger entries"
        indexes = [
            models.Index(fields=["ref_type", "ref_id"], name="ledger_entry_ref_idx"),
            models.Index(fields=["user_id", "asset_id"], name="ledger_entry_user_asset_idx"),
        ]

    def __str__(self):
        return f"{self.operation} {self.amount} {self.asset_id} [{self.idempotency_key}]"


class Posting(AppendOnlyModel):
    """One leg of an entry: a signed amount on an account. Per entry and asset they sum to zero."""

    entry = models.ForeignKey(LedgerEntry, on_delete=models.PROTECT, related_name="postings")
    account = models.CharField(max_length=32, choices=Account.choices)
    user_id = models.CharField(max_length=64, blank=True, default="")
    asset_id = models.CharField(max_length=64)
    amount = AmountField()

    class Meta:
        indexes = [models.Index(fields=["user_id", "asset_id"], name="ledger_posting_user_asset_idx")]

    def __str__(self):
        return f"{self.account} {self.user_id} {self.amount} {self.asset_id}"
