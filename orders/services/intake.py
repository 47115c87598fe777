"""Snapshot intake: record every snapshot once, then credit it to its order or refund it.

Exactly-once: the snapshot row is unique by id and locked while it is processed; only a
snapshot still ``received`` is processed, so a redelivered or concurrently delivered
snapshot credits once, increments one leg once and starts at most one payment check chain.
"""
from __future__ import annotations

import json
import logging
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ledger.amounts import parse_amount
from ledger.errors import InvalidAmount
from ledger.services import asset_scale, credit_deposit
from mmproject.jobs import enqueue_after_commit

from ..errors import InvalidSnapshot
from ..memo import InvalidMemo, decode_snapshot_memo
from ..models import (
    MarketMakingOrder,
    MarketMakingPair,
    OrderState,
    PaymentState,
    ProviderCursor,
    Snapshot,
    SnapshotOutcome,
)
from .refunds import refund_create, refund_settle_pending

logger = logging.getLogger(__name__)


# A snapshot is checked whole before anything of it touches the database: what the database would refuse
# (NUL bytes, text that is not UTF-8, NaN in the stored JSON, a value longer than its column) or could not
# hold (nesting past the JSON depth below) is an InvalidSnapshot naming the field, never a database error.
MAX_DEPTH = 32
# The Snapshot column of each record field named otherwise.
COLUMNS = {"memo": "memo_hex", "created_at": "snapshot_created_at"}
# A Mixin amount: a plain decimal string (no exponent, separators, spaces or non-ASCII digits; a sign is left
# to parse_amount, which names a negative amount as such).
AMOUNT_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
MAX_AMOUNT_CHARS = 64


def _check_value(value, path: str, depth: int = 0) -> None:
    """Every string of the record, keys included, free of NUL and valid UTF-8; numbers finite; depth bounded."""
    if depth > MAX_DEPTH:
        raise InvalidSnapshot(f"snapshot field {path} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidSnapshot(f"snapshot field {path} contains a NUL byte")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidSnapshot(f"snapshot field {path} is not valid UTF-8 text (a lone surrogate)") from None
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidSnapshot(f"snapshot field {path} is {value}, which JSON cannot hold")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_value(key, f"{path} key {key!r}"[:200], depth + 1)
            _check_value(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]", depth + 1)
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise InvalidSnapshot(f"snapshot field {path} is a {type(value).__name__}, not a JSON value")


def _text(data: dict, name: str, *, required: bool = True) -> str:
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidSnapshot(f"snapshot field {name} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise InvalidSnapshot(f"snapshot field {name} is missing or empty")
    value = value.strip()
    limit = getattr(Snapshot._meta.get_field(COLUMNS.get(name, name)), "max_length", None)
    if limit and len(value) > limit:
        raise InvalidSnapshot(f"snapshot field {name} is {len(value)} characters long, more than its {limit}")
    return value


@dataclass(frozen=True)
class SnapshotFields:
    snapshot_id: str
    asset_id: str
    amount: Decimal
    opponent_id: str
    memo_hex: str
    created_at: datetime | None


def snapshot_validate(data) -> SnapshotFields:
    """The snapshot's fields, checked; raises InvalidSnapshot naming the field and what is wrong with it."""
    if not isinstance(data, dict):
        raise InvalidSnapshot(f"a snapshot must be a JSON object, got {type(data).__name__}")
    _check_value(data, "")
    snapshot_id = _text(data, "snapshot_id")
    asset_id = _text(data, "asset_id")
    raw_amount = data.get("amount")
    if not isinstance(raw_amount, str):
        raise InvalidSnapshot(f"snapshot {snapshot_id}: amount must be a decimal string, got {raw_amount!r}"[:300])
    if len(raw_amount) > MAX_AMOUNT_CHARS or not AMOUNT_TEXT.fullmatch(raw_amount):
        raise InvalidSnapshot(f"snapshot {snapshot_id}: amount {raw_amount[:60]!r} is not a plain decimal number")
    try:
        amount = parse_amount(raw_amount, scale=asset_scale(asset_id))
    except InvalidAmount as exc:
        raise InvalidSnapshot(f"snapshot {snapshot_id}: {exc}") from None
    created_at = None
    if data.get("created_at"):
        text = _text(data, "created_at")
        try:
            created_at = parse_datetime(text) if len(text) <= 64 else None
            if created_at is not None:
                # Mixin's timestamps carry their zone; one without is taken as UTC. One that UTC cannot
                # hold (year 1 at +14:00) is refused here rather than by the database.
                created_at = (created_at if created_at.tzinfo else created_at.replace(tzinfo=dt_timezone.utc)
                              ).astimezone(dt_timezone.utc)
        except (ValueError, OverflowError):
            created_at = None
        if created_at is None:
            raise InvalidSnapshot(f"snapshot {snapshot_id}: created_at {text[:64]!r} is not a timestamp")
    return SnapshotFields(snapshot_id=snapshot_id, asset_id=asset_id, amount=amount,
                          opponent_id=_text(data, "opponent_id", required=False),
                          memo_hex=_text(data, "memo", required=False), created_at=created_at)


def snapshot_record(*, provider: str, data: dict) -> tuple[Snapshot, bool]:
    """Store a snapshot in Mixin shape once (by ``snapshot_id``) and queue its processing.

    Returns (snapshot, created). A snapshot seen again that is still unprocessed is queued
    again (its processing is idempotent), so a redelivery recovers a lost job. Raises InvalidSnapshot,
    with nothing stored, for a record ``snapshot_validate`` refuses.
    """
    fields = snapshot_validate(data)
    snapshot_id, asset_id, amount = fields.snapshot_id, fields.asset_id, fields.amount
    with transaction.atomic():
        snapshot, created = Snapshot.objects.get_or_create(
            snapshot_id=snapshot_id,
            defaults=dict(
                provider=provider, asset_id=asset_id, amount=amount, opponent_id=fields.opponent_id,
                memo_hex=fields.memo_hex, snapshot_created_at=fields.created_at, raw=data,
            ),
        )
        if not created and (snapshot.asset_id, snapshot.amount, snapshot.opponent_id) != (
                asset_id, amount, fields.opponent_id):
            raise InvalidSnapshot(
                f"snapshot {snapshot_id} was already recorded as {snapshot.amount} {snapshot.asset_id} from "
                f"{snapshot.opponent_id or '(none)'}; this delivery differs and is ignored")
        if snapshot.outcome == SnapshotOutcome.RECEIVED:
            enqueue_after_commit("process_market_making_snapshots", snapshot_id)
    logger.info("event=snapshot_recorded snapshot_id=%s provider=%s created=%s", snapshot_id, provider, created)
    return snapshot, created


def _uuid_text(value: str) -> str:
    """A Mixin id in canonical form (lowercase UUID), or the text as it is when it is not a UUID."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return value


def _find_order(snapshot: Snapshot, now) -> tuple[MarketMakingOrder | None, str]:
    """The order the snapshot pays, or the reason it pays none (then it is refunded)."""
    try:
        memo = decode_snapshot_memo(snapshot.memo_hex)
    except InvalidMemo as exc:
        return None, f"bad memo: {exc}"
    pair = MarketMakingPair.objects.filter(pair_id=memo.pair_id).first()
    if pair is None:
        return None, f"unknown pair {memo.pair_id}"
    if not pair.enabled:
        return None, f"pair {pair.symbol} ({pair.pair_id}) is disabled"
    order = MarketMakingOrder.objects.select_for_update().filter(order_id=memo.order_id, pair=pair).first()
    if order is None:
        return None, f"unknown order {memo.order_id} on pair {pair.pair_id}"
    if order.state != OrderState.PAYMENT_PENDING:
        return order, f"order {order.order_id} is {order.state}, not awaiting payment"
    if now >= order.expires_at:
        return order, f"order {order.order_id} expired at {order.expires_at.isoformat()}"
    if _uuid_text(snapshot.opponent_id) != order.user_id:
        return order, f"payer {snapshot.opponent_id or '(none)'} is not the order's user {order.user_id}"
    if snapshot.asset_id not in order.payment.assets():
        return order, f"asset {snapshot.asset_id} pays no leg of order {order.order_id}"
    return order, ""


def snapshot_process(*, snapshot_id: str) -> str:
    """Credit a received snapshot to its order's payment, or refund it with the reason stored.

    Returns the snapshot's outcome; a snapshot already processed is left as it is.
    """
    now = timezone.now()
    with transaction.atomic():
        snapshot = Snapshot.objects.select_for_update().get(snapshot_id=snapshot_id)
        if snapshot.outcome != SnapshotOutcome.RECEIVED:
            return snapshot.outcome
        order, reason = _find_order(snapshot, now)
        snapshot.order = order
        snapshot.processed_at = now
        if reason:
            _reject(snapshot, order, reason)
        else:
            _credit(snapshot, order, now)
        snapshot.save(update_fields=["order", "processed_at", "outcome", "reason", "allocation"])
    return snapshot.outcome


def _credit(snapshot: Snapshot, order: MarketMakingOrder, now) -> None:
    credit_deposit(user_id=order.user_id, asset_id=snapshot.asset_id, amount=snapshot.amount,
                   idempotency_key=f"snapshot-credit:{snapshot.snapshot_id}", ref_type="snapshot",
                   ref_id=snapshot.snapshot_id)
    payment = PaymentState.objects.select_for_update().get(order=order)
    snapshot.allocation = payment.allocate(snapshot.asset_id, snapshot.amount)
    payment.save()
    snapshot.outcome = SnapshotOutcome.CREDITED
    snapshot.reason = ""
    logger.info("event=snapshot_credited snapshot_id=%s order_id=%s asset_id=%s amount=%s allocation=%s",
                snapshot.snapshot_id, order.order_id, snapshot.asset_id, snapshot.amount, snapshot.allocation)
    # One check chain per order: only the writer that sets the mark enqueues it.
    if PaymentState.objects.filter(pk=payment.pk, check_started_at__isnull=True).update(check_started_at=now):
        enqueue_after_commit("check_payment_complete", str(order.order_id),
                             countdown=settings.MM_PAYMENT_FIRST_CHECK_S)


def _reject(snapshot: Snapshot, order: MarketMakingOrder | None, reason: str) -> None:
    snapshot.reason = reason
    payer = _uuid_text(snapshot.opponent_id)
    if not payer:
        # Nobody to pay back: the money stays with the provider's wallet and the row says why.
        snapshot.outcome = SnapshotOutcome.HELD
        snapshot.reason = f"{reason}; no payer to refund"
        logger.warning("event=snapshot_held snapshot_id=%s reason=%r", snapshot.snapshot_id, snapshot.reason)
        return
    credit_deposit(user_id=payer, asset_id=snapshot.asset_id, amount=snapshot.amount,
                   idempotency_key=f"snapshot-credit:{snapshot.snapshot_id}", ref_type="snapshot",
                   ref_id=snapshot.snapshot_id)
    refund_create(key=f"snapshot-refund:{snapshot.snapshot_id}", user_id=payer, asset_id=snapshot.asset_id,
                  amount=snapshot.amount, reason=reason, order=order, snapshot=snapshot)
    snapshot.outcome = SnapshotOutcome.REFUNDED
    logger.info("event=snapshot_rejected snapshot_id=%s order_id=%s reason=%r",
                snapshot.snapshot_id, getattr(order, "order_id", ""), reason)


def snapshot_intake(*, snapshot_id: str) -> str:
    """Process a snapshot, then send any refund it produced (also one left pending by a crash)."""
    outcome = snapshot_process(snapshot_id=snapshot_id)
    refund_settle_pending(snapshot_id=snapshot_id)
    return outcome


@dataclass(frozen=True)
class PollResult:
    received: int
    new: int
    malformed: int
    cursor: str
    deposits: int = 0  # chain deposits to the bot in the feed (not payments: skipped, logged)


def _timestamp_text(value) -> str:
    """``value`` when it is a timestamp a cursor can hold, else ""."""
    if not isinstance(value, str) or not value or len(value) > 64 or "\x00" in value:
        return ""
    try:
        return value if parse_datetime(value) else ""
    except ValueError:
        return ""


def _is_chain_deposit(item: dict) -> bool:
    """A Safe snapshot of a deposit from a chain: it carries a non-empty ``deposit`` object (``deposit_hash``,
    ``sender``; Mixin's SafeDepositView) and has no payer (``opponent_id`` empty). A transfer from a user has
    neither the object nor an empty payer, so a payment is never skipped as a deposit."""
    deposit = item.get("deposit")
    return isinstance(deposit, dict) and bool(deposit) and not item.get("opponent_id")


def snapshots_poll(*, provider) -> PollResult:
    """Read the provider's next page of snapshots after the stored cursor, record them, advance the
    cursor (a polling provider: Mixin). Outgoing transfers (negative amounts) are not payments, and neither
    are chain deposits to the bot (a snapshot with a ``deposit`` object, as Mixin's SafeSnapshot carries one:
    an exchange's withdrawal arriving at the bot's Safe deposit address for a payout after stop, seen by
    ``deposit_received``): both are skipped; a deposit is logged (``event=mixin_deposit_skipped``).

    Each record is validated before it touches the database (``snapshot_validate``): a malformed one is
    logged with its reason and skipped, the rest of the page is recorded, and the cursor moves to the
    newest timestamp of the page that is one (so one bad record never stops the poller)."""
    cursor = ProviderCursor.objects.filter(provider=provider.name).values_list("cursor", flat=True).first() or ""
    data = provider.snapshots_after(cursor)
    if not isinstance(data, list):
        data = []
    new = malformed = deposits = 0
    latest = cursor
    with transaction.atomic():
        for item in data:
            if not isinstance(item, dict):
                malformed += 1
                logger.error("event=mixin_snapshot_malformed error=%r", f"not a JSON object: {type(item).__name__}")
                continue
            # order=ASC: the last snapshot is the newest; timestamps are not compared as text.
            latest = _timestamp_text(item.get("created_at")) or latest
            if isinstance(item.get("amount"), str) and item["amount"].startswith("-"):
                continue  # our own outgoing transfer, not a payment
            if _is_chain_deposit(item):
                deposits += 1
                logger.info("event=mixin_deposit_skipped snapshot_id=%s asset_id=%s amount=%s deposit_hash=%s: a "
                            "chain deposit to the bot, not a payment", str(item.get("snapshot_id"))[:64],
                            str(item.get("asset_id"))[:64], str(item.get("amount"))[:64],
                            str(item["deposit"].get("deposit_hash"))[:200])
                continue
            record = {name: item.get(name) for name in
                      ("snapshot_id", "asset_id", "amount", "opponent_id", "memo", "created_at")}
            try:
                _, created = snapshot_record(provider=provider.name, data=record)
            except InvalidSnapshot as exc:
                malformed += 1
                logger.error("event=mixin_snapshot_malformed error=%r raw=%s", str(exc),
                             json.dumps(item, default=repr)[:2000])
            else:
                new += created
        ProviderCursor.objects.update_or_create(provider=provider.name, defaults={"cursor": latest})
    logger.info("event=snapshots_polled provider=%s received=%s new=%s malformed=%s deposits=%s cursor=%s",
                provider.name, len(data), new, malformed, deposits, latest)
    return PollResult(received=len(data), new=new, malformed=malformed, cursor=latest, deposits=deposits)
