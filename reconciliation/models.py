"""Reconciliation runs, the drifts each one found, and the per-account balance baselines.

A run compares our state with the exchange's: tracked orders with the exchange's open orders,
what the ledger says the orders on an exchange account hold with that account's balances,
and in-flight intents with their leases. Every drift is stored with its numbers for the admin.
"""
from django.db import models

from ledger.amounts import AmountField


class DriftKind(models.TextChoices):
    TRACKED_NOT_OPEN = "tracked_not_open"  # we track it as open; the exchange does not list it open
    UNTRACKED_OPEN = "untracked_open"      # open on the exchange with one of our prefixes; not tracked as open
    BALANCE_CHANGED = "balance_changed"    # exchange total minus ledger positions moved from its baseline
    STUCK_INTENT = "stuck_intent"          # in flight past its lease (plus grace): no worker owns it
    # closed on the exchange since the last run without any cancel of ours (tracker already caught up)
    CANCELLED_EXTERNALLY = "cancelled_externally"
    UNREACHABLE = "unreachable"            # the exchange could not be read: nothing was verified there


class ReconciliationRun(models.Model):
    trigger = models.CharField(max_length=32, help_text="command, beat, test...")
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    # None while running (or when the run crashed: see ``error``).
    ok = models.BooleanField(null=True)
    accounts_checked = models.PositiveIntegerField(default=0)
    orders_checked = models.PositiveIntegerField(default=0)
    balances_checked = models.PositiveIntegerField(default=0)
    intents_checked = models.PositiveIntegerField(default=0)
    baselines_set = models.PositiveIntegerField(default=0)
    drift_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        state = "running" if self.ok is None else ("ok" if self.ok else f"{self.drift_count} drift(s)")
        return f"reconciliation {self.pk} at {self.started_at:%Y-%m-%d %H:%M:%S} ({state})"


class Drift(models.Model):
    run = models.ForeignKey(ReconciliationRun, on_delete=models.CASCADE, related_name="drifts")
    kind = models.CharField(max_length=32, choices=DriftKind.choices)
    account = models.ForeignKey("exchanges.ExchangeAccount", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    symbol = models.CharField(max_length=32, blank=True)
    asset = models.CharField(max_length=32, blank=True)
    expected = AmountField(null=True, blank=True)
    actual = AmountField(null=True, blank=True)
    # actual - expected for balances; seconds past the lease for a stuck intent.
    difference = AmountField(null=True, blank=True)
    client_order_id = models.CharField(max_length=64, blank=True)
    intent_id = models.CharField(max_length=128, blank=True)
    detail = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["kind", "created_at"], name="recon_drift_kind_idx")]

    def __str__(self):
        where = self.symbol or self.asset
        return f"{self.kind} {where} {self.client_order_id or self.intent_id}".strip()


class BalanceBaseline(models.Model):
    """The accepted difference (exchange total - ledger positions) of one account and asset.

    An exchange account may hold the operator's own float besides the users' funds; what must
    not move unexplained is the difference. Set on the first run that sees the pair, or on
    purpose with ``reconcile --set-baseline`` (after the operator explained a change).
    """

    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.CASCADE, related_name="+")
    asset = models.CharField(max_length=32, help_text="exchange currency code, e.g. USDT")
    difference = AmountField()
    exchange_total = AmountField()
    ledger_total = AmountField()
    set_at = models.DateTimeField()
    set_by_run = models.ForeignKey(ReconciliationRun, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "asset"], name="recon_baseline_account_asset")]

    def __str__(self):
        return f"{self.account_id}:{self.asset} difference={self.difference}"
