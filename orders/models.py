"""Order lifecycle data: pairs, orders (FSM), payment legs, snapshots, refunds, transfers, history."""
from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django_fsm import ConcurrentTransitionMixin, FSMField, transition

from ledger.amounts import AmountField, canonical
from strategy import params as order_params

ZERO = Decimal(0)
# The ledger ref_type of everything an order locks, settles, charges and unlocks (ref_id: its id):
# the sum of an order's user_locked postings under it is what the order holds.
ORDER_REF = "mm_order"


class MarketMakingPair(models.Model):
    """A tradable pair: where it trades, which Mixin assets pay it, and what fees an order carries."""

    pair_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    exchange_account = models.ForeignKey(
        "exchanges.ExchangeAccount", on_delete=models.PROTECT, null=True, blank=True, related_name="mm_pairs"
    )
    exchange_id = models.CharField(max_length=64, help_text="ccxt exchange id, e.g. binance")
    symbol = models.CharField(max_length=64, help_text="exchange symbol, e.g. BTC/USDT")
    base_asset_id = models.CharField(max_length=64, help_text="Mixin asset id of the base asset")
    quote_asset_id = models.CharField(max_length=64, help_text="Mixin asset id of the quote asset")
    base_exchange_asset = models.CharField(max_length=32, help_text="exchange currency code of the base, e.g. BTC")
    quote_exchange_asset = models.CharField(max_length=32, help_text="exchange currency code of the quote, e.g. USDT")
    base_network = models.CharField(max_length=32, blank=True)
    quote_network = models.CharField(max_length=32, blank=True)
    enabled = models.BooleanField(default=True)
    # Fees an order pays on top of its amounts (e.g. network fees of the move to the exchange),
    # each in its own asset; the asset may be the base or quote asset itself.
    base_fee_asset_id = models.CharField(max_length=64, blank=True)
    base_fee_amount = AmountField(default=ZERO)
    quote_fee_asset_id = models.CharField(max_length=64, blank=True)
    quote_fee_amount = AmountField(default=ZERO)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(base_asset_id=models.F("quote_asset_id")), name="orders_pair_base_ne_quote"
            ),
        ]

    def __str__(self):
        return f"{self.exchange_id}:{self.symbol} ({self.pair_id})"


class OrderState(models.TextChoices):
    PAYMENT_PENDING = "payment_pending"
    PAYMENT_COMPLETE = "payment_complete"
    WITHDRAWING = "withdrawing"
    WITHDRAWAL_CONFIRMED = "withdrawal_confirmed"
    CAMPAIGN_JOINED = "campaign_joined"
    RUNNING = "running"
    STOPPED = "stopped"
    PAYING_OUT = "paying_out"
    PAID_OUT = "paid_out"
    REFUNDED = "refunded"
    FAILED = "failed"


S = OrderState
FAILABLE = [S.PAYMENT_PENDING, S.PAYMENT_COMPLETE, S.WITHDRAWING, S.PAYING_OUT]


class MarketMakingOrder(ConcurrentTransitionMixin, models.Model):
    """A user's market-making order. ``state`` only changes through the transitions below,
    called by ``orders.services.transitions`` inside a transaction that records the history."""

    order_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user_id = models.CharField(max_length=64, db_index=True, help_text="Mixin user id of the payer")
    pair = models.ForeignKey(MarketMakingPair, on_delete=models.PROTECT, related_name="orders")
    exchange_account = models.ForeignKey(
        "exchanges.ExchangeAccount", on_delete=models.PROTECT, null=True, blank=True, related_name="mm_orders"
    )
    state = FSMField(default=S.PAYMENT_PENDING, choices=OrderState.choices, protected=True, db_index=True)
    memo = models.CharField(max_length=80)

    # Required amounts.
    base_amount = AmountField()
    quote_amount = AmountField()

    # Strategy parameters (pure market making): added after the class, from strategy.params.

    expires_at = models.DateTimeField(help_text="payment deadline")
    reason = models.TextField(blank=True, help_text="why the order failed, was refunded or stopped")
    withdrawal_started_at = models.DateTimeField(null=True, blank=True)
    keep_on_exchange = models.BooleanField(
        default=False, db_default=False,
        help_text="the operator keeps the funds on the exchange after stop: no payout until one is asked for")
    # The order's one polling job chain (orders.services.chains): which job polls it, the chain's
    # generation, the polls that found it not done yet, and until when the chain counts as alive (the
    # sweeper starts a new chain only after that). Database defaults: a row written by a previous
    # release's code (during a deploy) or by hand-written SQL needs none of them.
    job_name = models.CharField(max_length=64, blank=True, default="", db_default="")
    job_chain = models.PositiveIntegerField(default=0, db_default=0)
    job_attempts = models.PositiveIntegerField(default=0, db_default=0)
    job_lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        # Staff with only the view permission inspect; this one also runs the admin actions.
        permissions = [("operate_orders", "Can stop market making and retry payment checks from the admin")]

    def __str__(self):
        return f"order {self.order_id} ({self.state})"

    # --- transitions: data only; the services run them in a transaction and save ------
    @transition(field=state, source=S.PAYMENT_PENDING, target=S.PAYMENT_COMPLETE)
    def complete_payment(self):
        pass

    @transition(field=state, source=S.PAYMENT_COMPLETE, target=S.WITHDRAWING)
    def start_withdrawal(self, *, at):
        self.withdrawal_started_at = at

    @transition(field=state, source=S.WITHDRAWING, target=S.WITHDRAWAL_CONFIRMED)
    def confirm_withdrawal(self):
        pass

    @transition(field=state, source=S.WITHDRAWAL_CONFIRMED, target=S.CAMPAIGN_JOINED)
    def join_campaign(self):
        pass

    @transition(field=state, source=S.CAMPAIGN_JOINED, target=S.RUNNING)
    def start(self):
        pass

    @transition(field=state, source=[S.RUNNING, S.CAMPAIGN_JOINED], target=S.STOPPED)
    def stop(self, *, reason: str = ""):
        self.reason = reason

    @transition(field=state, source=S.STOPPED, target=S.PAYING_OUT)
    def begin_payout(self):
        pass

    @transition(field=state, source=S.PAYING_OUT, target=S.PAID_OUT)
    def finish_payout(self):
        pass

    @transition(field=state, source=S.PAYMENT_COMPLETE, target=S.REFUNDED)
    def refund(self, *, reason: str):
        self.reason = reason

    @transition(field=state, source=FAILABLE, target=S.FAILED)
    def fail(self, *, reason: str):
        self.reason = reason


# One column per strategy parameter, as strategy.params declares it (its name, type, default and
# help); the migrations record them like any other column.
for _name, _field in order_params.model_fields().items():
    MarketMakingOrder.add_to_class(_name, _field)
del _name, _field


class OrderTransition(models.Model):
    """One state change of an order: from, to, by whom or what, why, when. Written once by the
    transition service, read-only in the admin."""

    order = models.ForeignKey(MarketMakingOrder, on_delete=models.PROTECT, related_name="transitions")
    name = models.CharField(max_length=64)
    from_state = models.CharField(max_length=32)
    to_state = models.CharField(max_length=32)
    by = models.CharField(max_length=128, help_text="task, command, admin user or API caller")
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.order_id}: {self.from_state} -> {self.to_state} by {self.by}"


class ParamChange(models.Model):
    """One strategy parameter of an order changed: old and new value as text, by whom, why, when.
    Written once by ``orders.services.order_params_update`` in the transaction that changes the
    order, read-only in the admin."""

    order = models.ForeignKey(MarketMakingOrder, on_delete=models.PROTECT, related_name="param_changes")
    name = models.CharField(max_length=64, help_text="the parameter (strategy.params.PARAMS)")
    old_value = models.TextField(help_text="the value before, as text (none: no value)")
    new_value = models.TextField(help_text="the value after, as text (none: no value)")
    by = models.CharField(max_length=128, help_text="command, admin user or API caller")
    reason = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.order_id}: {self.name} {self.old_value} -> {self.new_value} by {self.by}"


class Leg(models.TextChoices):
    BASE = "base"
    QUOTE = "quote"
    BASE_FEE = "base_fee"
    QUOTE_FEE = "quote_fee"


class PaymentState(models.Model):
    """What an order requires and has received, per leg. Each leg has its own asset; fee legs
    may share the base or quote asset. ``check_started_at`` marks the one payment-check chain."""

    order = models.OneToOneField(MarketMakingOrder, on_delete=models.PROTECT, related_name="payment")
    base_asset_id = models.CharField(max_length=64)
    base_required = AmountField()
    base_received = AmountField(default=ZERO)
    quote_asset_id = models.CharField(max_length=64)
    quote_required = AmountField()
    quote_received = AmountField(default=ZERO)
    base_fee_asset_id = models.CharField(max_length=64, blank=True)
    base_fee_required = AmountField(default=ZERO)
    base_fee_received = AmountField(default=ZERO)
    quote_fee_asset_id = models.CharField(max_length=64, blank=True)
    quote_fee_required = AmountField(default=ZERO)
    quote_fee_received = AmountField(default=ZERO)
    check_started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def legs(self) -> list[tuple[str, str, Decimal, Decimal]]:
        """(leg, asset_id, required, received), principal legs first."""
        rows = [
            (Leg.BASE, self.base_asset_id, self.base_required, self.base_received),
            (Leg.QUOTE, self.quote_asset_id, self.quote_required, self.quote_received),
        ]
        if self.base_fee_asset_id:
            rows.append((Leg.BASE_FEE, self.base_fee_asset_id, self.base_fee_required, self.base_fee_received))
        if self.quote_fee_asset_id:
            rows.append((Leg.QUOTE_FEE, self.quote_fee_asset_id, self.quote_fee_required, self.quote_fee_received))
        return rows

    def assets(self) -> set[str]:
        return {asset for _, asset, _, _ in self.legs()}

    def is_complete(self) -> bool:
        return all(received >= required for _, _, required, received in self.legs())

    def received_by_asset(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = {}
        for _, asset, _, received in self.legs():
            totals[asset] = totals.get(asset, ZERO) + received
        return totals

    def allocate(self, asset_id: str, amount: Decimal) -> dict[str, str]:
        """Add ``amount`` of ``asset_id`` to the legs of that asset: fill each leg's shortfall
        (principal legs first), and put any excess on the first leg of the asset."""
        legs = [leg for leg in self.legs() if leg[1] == asset_id]
        if not legs:
            raise ValueError(f"asset {asset_id} pays no leg of order {self.order_id}")
        allocation: dict[str, Decimal] = {}
        left = amount
        for leg, _, required, received in legs:
            take = min(left, max(required - received, ZERO))
            if take:
                allocation[leg] = take
                left -= take
        if left:
            allocation[legs[0][0]] = allocation.get(legs[0][0], ZERO) + left
        for leg, value in allocation.items():
            setattr(self, f"{leg}_received", getattr(self, f"{leg}_received") + value)
        return {leg: canonical(value) for leg, value in allocation.items()}


class SnapshotOutcome(models.TextChoices):
    RECEIVED = "received"
    CREDITED = "credited"
    REFUNDED = "refunded"
    HELD = "held"


class Snapshot(models.Model):
    """Every snapshot (incoming payment) received, once, with what became of it."""

    snapshot_id = models.CharField(max_length=64, unique=True)
    provider = models.CharField(max_length=16)
    asset_id = models.CharField(max_length=64)
    amount = AmountField()
    opponent_id = models.CharField(max_length=64, blank=True)
    memo_hex = models.TextField(blank=True)
    snapshot_created_at = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField()
    order = models.ForeignKey(
        MarketMakingOrder, on_delete=models.PROTECT, null=True, blank=True, related_name="snapshots"
    )
    outcome = models.CharField(max_length=16, choices=SnapshotOutcome.choices, default=SnapshotOutcome.RECEIVED)
    reason = models.TextField(blank=True)
    allocation = models.JSONField(default=dict, blank=True, help_text="amount added per payment leg")
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self):
        return f"snapshot {self.snapshot_id} {self.amount} {self.asset_id} ({self.outcome})"


class RefundStatus(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    COMPENSATED = "compensated"


class Refund(models.Model):
    """A refund: the ledger debit is done when the row exists; the transfer is done once ``sent``.
    A transfer the provider rejects is compensated (``{key}:compensation`` credit)."""

    key = models.CharField(max_length=200, unique=True, help_text="the ledger idempotency key of the debit")
    request_id = models.UUIDField(unique=True, help_text="provider request/trace id, derived from the key")
    order = models.ForeignKey(MarketMakingOrder, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds")
    snapshot = models.ForeignKey(Snapshot, on_delete=models.PROTECT, null=True, blank=True, related_name="refunds")
    user_id = models.CharField(max_length=64)
    asset_id = models.CharField(max_length=64)
    amount = AmountField()
    reason = models.TextField()
    status = models.CharField(max_length=16, choices=RefundStatus.choices, default=RefundStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    provider_ref = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"refund {self.key} {self.amount} {self.asset_id} ({self.status})"


class ExchangeTransferStatus(models.TextChoices):
    RESOLVED = "resolved"
    PENDING = "pending"
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class ExchangeTransfer(models.Model):
    """One asset of an order moved (or, in validation mode, only addressed) to its exchange account."""

    order = models.ForeignKey(MarketMakingOrder, on_delete=models.PROTECT, related_name="exchange_transfers")
    asset_id = models.CharField(max_length=64)
    exchange_asset = models.CharField(max_length=32)
    amount = AmountField()
    address = models.CharField(max_length=200)
    network = models.CharField(max_length=64, blank=True)
    tag = models.CharField(max_length=128, blank=True)
    request_id = models.UUIDField(unique=True)
    tx_id = models.CharField(max_length=128, blank=True)
    status = models.CharField(max_length=16, choices=ExchangeTransferStatus.choices)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "asset_id"], name="orders_exchange_transfer_order_asset_uniq"),
        ]


class CampaignParticipation(models.Model):
    """The order's local campaign participation (one per order)."""

    order = models.OneToOneField(MarketMakingOrder, on_delete=models.PROTECT, related_name="campaign")
    campaign_ref = models.CharField(max_length=128, blank=True)
    joined_at = models.DateTimeField(auto_now_add=True)


class OutgoingTransfer(models.Model):
    """The local payment provider's record of a transfer it made (to a user or an address)."""

    request_id = models.UUIDField(unique=True)
    asset_id = models.CharField(max_length=64)
    amount = AmountField()
    opponent_id = models.CharField(max_length=64, blank=True)
    address = models.CharField(max_length=200, blank=True)
    tag = models.CharField(max_length=128, blank=True)
    memo = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)


class ProviderCursor(models.Model):
    """Where a polling payment provider resumes reading snapshots."""

    provider = models.CharField(max_length=16, unique=True)
    cursor = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class SweepLease(models.Model):
    """The lease that lets one lifecycle sweep run at a time, whichever beat or command started it
    (taken by one conditional UPDATE: orders.services.resume), and what the last sweep did."""

    name = models.CharField(max_length=32, unique=True)
    holder = models.CharField(max_length=128, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_counts = models.JSONField(default=dict, blank=True)
    runs = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"sweep lease {self.name} (run {self.runs}, skipped {self.skipped})"


class PayoutStatus(models.TextChoices):
    PENDING = "pending"          # recorded; nothing sent yet
    WITHDRAWING = "withdrawing"  # the exchange accepted the withdrawal to the bot's deposit address
    ARRIVED = "arrived"          # the bot received it; the user's ledger is debited (fee + the payout refund)
    PAID = "paid"                # transferred to the user (the refund row says sent)
    FAILED = "failed"            # stopped with the reason; ``error`` says where the money is


class Payout(models.Model):
    """One asset of a stopped order paid out (orders.services.payout): withdrawn from the exchange to the
    bot's deposit address under ``client_id``, received, then transferred to the user as the refund
    ``mm-payout:{order}:{asset}``. Every step is idempotent; the row says which one is next."""

    order = models.ForeignKey(MarketMakingOrder, on_delete=models.PROTECT, related_name="payouts")
    asset_id = models.CharField(max_length=64)
    exchange_asset = models.CharField(max_length=32)
    network = models.CharField(max_length=64, blank=True)
    amount = AmountField(help_text="what leaves the exchange: the order's funds of this asset at stop")
    client_id = models.CharField(max_length=64, unique=True, help_text="the exchange withdrawal's client id")
    address = models.CharField(max_length=200, blank=True, help_text="the bot's deposit address")
    tag = models.CharField(max_length=128, blank=True)
    withdrawal_id = models.CharField(max_length=128, blank=True)
    tx_id = models.CharField(max_length=128, blank=True)
    fee = AmountField(null=True, blank=True, help_text="what the exchange kept")
    received = AmountField(null=True, blank=True, help_text="what reached the bot, paid to the user")
    status = models.CharField(max_length=16, choices=PayoutStatus.choices, default=PayoutStatus.PENDING)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["order", "asset_id"], name="orders_payout_order_asset_uniq")]

    def __str__(self):
        return f"payout {self.order_id}:{self.asset_id} {self.amount} ({self.status})"
