"""Intents (exchange actions persisted before they are sent), in-flight slots, tracked orders.

In-flight limits live in the database as slot rows: a claim takes one free slot of the global
scope and one of the intent's exchange-account scope, each with a lease. With the partial
unique index "one in-flight intent per strategy key", the limits hold with any number of
worker processes on any number of machines; a crashed worker's claim expires with its lease.
"""
from django.db import models
from django.db.models import Q

from ledger.amounts import AmountField

from .statuses import TrackedStatus


class IntentKind(models.TextChoices):
    CREATE = "create"
    CANCEL = "cancel"


class IntentStatus(models.TextChoices):
    NEW = "new"                # persisted, waiting for a slot
    IN_FLIGHT = "in_flight"    # claimed by a worker under a lease
    DONE = "done"              # the exchange action is known to have happened (or was not needed)
    FAILED = "failed"          # gave up; reason recorded; the strategy's next cycle supersedes it
    SUPERSEDED = "superseded"  # replaced by a newer cycle before it was sent


ACTIVE_INTENT_STATUSES = (IntentStatus.NEW, IntentStatus.IN_FLIGHT)


class Intent(models.Model):
    intent_id = models.CharField(max_length=128)
    strategy_key = models.CharField(max_length=128)
    # No index and no database constraint: every read by account also filters on status
    # (intent_active_status_idx), and the deferred constraint check is paid at commit for every
    # intent a tick writes (docs/decisions.md, "What the tick writes is indexed for the tick"). The account comes from the order's own (constrained)
    # foreign key, and deleting an account with intents is still refused (PROTECT, by Django).
    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.PROTECT, related_name="intents",
                                db_index=False, db_constraint=False)
    kind = models.CharField(max_length=16, choices=IntentKind.choices)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, blank=True)
    price = AmountField(null=True, blank=True)
    amount = AmountField(null=True, blank=True)
    # A create's ladder layer: its tracked order takes it when the intent is claimed.
    layer = models.PositiveSmallIntegerField(null=True, blank=True)
    # The order this intent creates or cancels; for a create it is derived from intent_id and
    # saved before the exchange call, so an ambiguous outcome can be looked up.
    client_order_id = models.CharField(max_length=36)
    status = models.CharField(max_length=16, choices=IntentStatus.choices, default=IntentStatus.NEW)
    attempts = models.PositiveIntegerField(default=0)
    # Set just before the first exchange call: from then on, every execution looks up first.
    sent_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=36, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    exchange_order_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Indexes declared here rather than with unique=True / db_index=True on the fields: on
        # PostgreSQL those add a second (varchar_pattern_ops) index per column for LIKE queries,
        # which nothing runs, and every index is paid for on each of the thousands of rows a
        # tick writes and supersedes.
        constraints = [
            models.UniqueConstraint(fields=["intent_id"], name="intent_intent_id_uniq"),
            models.UniqueConstraint(
                fields=["strategy_key"], condition=Q(status="in_flight"), name="intent_one_in_flight_per_strategy",
            ),
        ]
        indexes = [
            # Only the active intents (the claim's, the dispatcher's and the kill switch's reads):
            # finishing an intent or superseding it writes no entry here, and the index stays the
            # size of the backlog instead of the history.
            models.Index(fields=["status", "id"], name="intent_active_status_idx",
                         condition=Q(status__in=[s.value for s in ACTIVE_INTENT_STATUSES])),
            # Status second: the cycle reads a key's unclaimed creates (status "new") among all the
            # key's finished intents (kept for STRATEGY_HISTORY_RETENTION_DAYS); everything else
            # by key reads it whole.
            models.Index(fields=["strategy_key", "status"], name="intent_key_status_idx"),
            # Only cancels are looked up by client order id (reconciliation: was this close ours?);
            # the creates a tick writes by the thousand skip it.
            models.Index(fields=["client_order_id"], name="intent_cancel_client_id_idx", condition=Q(kind=IntentKind.CANCEL.value)),
        ]

    def __str__(self):
        return f"{self.intent_id} {self.kind} {self.status}"


class IntentSlot(models.Model):
    """One unit of in-flight capacity. ``scope`` is ``global`` or ``account:{id}``."""

    scope = models.CharField(max_length=64)
    index = models.PositiveIntegerField()
    intent = models.ForeignKey(Intent, null=True, blank=True, on_delete=models.SET_NULL, related_name="slots")
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "index"], name="intent_slot_scope_index_uniq")]

    def __str__(self):
        return f"{self.scope}#{self.index}"


# The database's choices are intents.statuses.TrackedStatus, the list the pure diff reads too:
# a row always converts to what the diff expects.
TrackedOrderStatus = models.TextChoices("TrackedOrderStatus", [(s.name, s.value) for s in TrackedStatus])


OPEN_TRACKED_STATUSES = (
    TrackedOrderStatus.PENDING_CREATE,
    TrackedOrderStatus.OPEN,
    TrackedOrderStatus.PARTIALLY_FILLED,
    TrackedOrderStatus.PENDING_CANCEL,
)


class TrackedOrder(models.Model):
    """Our mirror of one exchange order, keyed by the client order id we chose."""

    client_order_id = models.CharField(max_length=36)
    strategy_key = models.CharField(max_length=128)
    # Indexed by tracked_account_status_idx (account first), so no index of its own.
    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.PROTECT, related_name="tracked_orders",
                                db_index=False)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4)
    price = AmountField()
    amount = AmountField()
    filled = AmountField(default=0)
    layer = models.PositiveSmallIntegerField(default=0)
    status = models.CharField(max_length=20, choices=TrackedOrderStatus.choices,
                              default=TrackedOrderStatus.PENDING_CREATE)
    exchange_order_id = models.CharField(max_length=64, blank=True)
    # Kept past a refresh because the opposite side filled (hanging orders).
    hanging = models.BooleanField(default=False)
    last_fill_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        # As for Intent: no LIKE indexes; strategy_key and account are the leading columns of the two below.
        constraints = [models.UniqueConstraint(fields=["client_order_id"], name="tracked_client_order_id_uniq")]
        indexes = [
            models.Index(fields=["account", "status"], name="tracked_account_status_idx"),
            models.Index(fields=["strategy_key", "status"], name="tracked_key_status_idx"),
        ]

    def __str__(self):
        return f"{self.client_order_id} {self.side} {self.amount}@{self.price} {self.status}"


class TrackedFill(models.Model):
    """One exchange trade of one of our orders, recorded once and settled into the ledger."""

    account = models.ForeignKey("exchanges.ExchangeAccount", on_delete=models.PROTECT, related_name="fills")
    trade_id = models.CharField(max_length=64)
    symbol = models.CharField(max_length=32)
    tracked_order = models.ForeignKey(TrackedOrder, on_delete=models.PROTECT, related_name="fills")
    strategy_key = models.CharField(max_length=128, db_index=True)
    side = models.CharField(max_length=4)
    price = AmountField()
    amount = AmountField()
    cost = AmountField()
    fee = AmountField(default=0)
    fee_currency = models.CharField(max_length=16, blank=True)
    traded_at_ms = models.BigIntegerField()
    ledger_entry_id = models.BigIntegerField(null=True, blank=True)
    settle_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "symbol", "trade_id"], name="tracked_fill_trade_uniq")]

    def __str__(self):
        return f"fill {self.trade_id} {self.side} {self.amount}@{self.price}"


class TradingHalt(models.Model):
    """The kill switch: while engaged, no create intent is claimed or sent; cancels still go through."""

    name = models.CharField(max_length=32, unique=True, default="global")
    engaged = models.BooleanField(default=False)
    reason = models.TextField(blank=True)
    changed_by = models.CharField(max_length=128, blank=True)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"kill switch {'ENGAGED' if self.engaged else 'off'}"
