"""The only way to change a balance.

Each mutation is one transaction: lock the user's balance rows (fixed order), claim the
idempotency key by inserting the entry, update the balances and write balanced postings.

- PostgreSQL: all of that is one prepared statement (data-modifying CTEs, see
  ``ledger.sql.mutation_sql``). Called outside a transaction, the statement is its own
  transaction: one round trip per mutation, and the row lock is held only while it runs.
  Inside a caller's transaction it joins it. A first touch of a user:asset creates the
  balance row in a transaction first.
- SQLite (embedded default, one writer at a time under IMMEDIATE): the same steps as
  separate statements (``_write_stepwise``).
The statements are in ledger/sql.py. See bench/ledger.py and docs/benchmarks.md for what this
costs against a raw transaction.

Same key + same payload returns the first result with ``applied=False``; same key with a
different payload raises IdempotencyConflict; the database keeps ``available >= 0`` and
``locked >= 0`` (CHECK) whatever the Python above it does.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from psycopg.types.json import Jsonb

from mmproject.sql import server_bound

from . import sql
from .amounts import MAX_AMOUNT, canonical, exact_context, from_db, parse_amount, to_db
from .errors import IdempotencyConflict, InsufficientFunds, InvalidAmount, LedgerError
from .models import Account, Asset, Balance, LedgerEntry, Operation

logger = logging.getLogger(__name__)

ZERO = Decimal(0)


@dataclass(frozen=True)
class BalanceView:
    available: Decimal = ZERO
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.available + self.locked


@dataclass(frozen=True)
class LedgerResult:
    applied: bool
    entry: LedgerEntry
    balance: BalanceView
    balances: dict[str, BalanceView] = field(default_factory=dict)


@dataclass(frozen=True)
class _Move:
    account: str
    user_id: str
    asset_id: str
    amount: Decimal


# --- asset scale ----------------------------------------------------------------------
_scale_cache: dict[str, int] = {}


def _invalidate_scale_cache(sender, **kwargs):
    _scale_cache.clear()


post_save.connect(_invalidate_scale_cache, sender=Asset)
post_delete.connect(_invalidate_scale_cache, sender=Asset)


def asset_scale(asset_id: str) -> int:
    """The asset's number of decimals: its Asset row, or the default of 8 (as on Mixin)."""
    scale = _scale_cache.get(asset_id)
    if scale is None:

        row = Asset.objects.filter(asset_id=asset_id).values_list("scale", flat=True).first()
        scale = row if row is not None else settings.LEDGER_DEFAULT_SCALE
        _scale_cache[asset_id] = scale
    return scale


def _amount(value, asset_id: str, *, field: str = "amount", allow_zero: bool = False) -> Decimal:
    return parse_amount(value, scale=asset_scale(asset_id), field=field, allow_zero=allow_zero)


def _require_id(name: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


# --- the one mutation path ------------------------------------------------------------
def _payload_hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _lock_balances(cur, vendor: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, Decimal, Decimal]]:
    """Lock the balance rows of ``keys`` in (user_id, asset_id) order, creating missing ones.

    Used by the stepwise (SQLite) path, where the IMMEDIATE transaction is the lock."""
    params = [part for key in keys for part in key]
    lock = sql.lock_balances_sql(len(keys), vendor == "postgresql")
    cur.execute(lock, params)
    rows = {(r[0], r[1]): (r[2], from_db(r[3]), from_db(r[4])) for r in cur.fetchall()}
    missing = [key for key in keys if key not in rows]
    if missing:
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        zero = to_db(ZERO, vendor)
        cur.execute(
            sql.insert_missing_balances_sql(len(missing)),
            [p for user_id, asset_id in missing for p in (user_id, asset_id, zero, zero, now)],
        )
        # Lock all of them again in order: a concurrent creator may have won the insert.
        cur.execute(lock, params)
        rows = {(r[0], r[1]): (r[2], from_db(r[3]), from_db(r[4])) for r in cur.fetchall()}
    return rows


def _claim_key(cur, vendor: str, *, key: str, op: str, user_id: str, asset_id: str, amount: Decimal,
               ref_type: str, ref_id: str, payload_hash: str, after: BalanceView, details: dict, now):
    cur.execute(
        sql.claim_key_sql(),
        [key, op, user_id, asset_id, to_db(amount, vendor), ref_type, ref_id, payload_hash,
         to_db(after.available, vendor), to_db(after.locked, vendor),
         connection.ops.adapt_json_value(details, None), connection.ops.adapt_datetimefield_value(now)],
    )
    row = cur.fetchone()
    return row[0] if row else None


def _replay(key: str, payload_hash: str) -> LedgerResult:
    entry = LedgerEntry.objects.get(idempotency_key=key)
    if entry.payload_hash != payload_hash:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was already used for {entry.operation} of {entry.amount} "
            f"{entry.asset_id} by user {entry.user_id} (ref {entry.ref_type}:{entry.ref_id}) "
            "with a different payload"
        )
    balance = BalanceView(entry.available_after, entry.locked_after)
    return LedgerResult(applied=False, entry=entry, balance=balance, balances={entry.asset_id: balance})


def _after(op: str, keys, before: dict, deltas: dict) -> tuple[dict[tuple[str, str], BalanceView], LedgerError | None]:
    """The balances after the deltas, and why they are refused, if they are: a bucket would go
    negative (InsufficientFunds) or past what NUMERIC(38,18) stores (InvalidAmount)."""
    after: dict[tuple[str, str], BalanceView] = {}
    refusal = None
    for bkey in keys:
        available, locked = before[bkey]
        d_avail, d_locked = deltas[bkey]
        new = BalanceView(available + d_avail, locked + d_locked)
        after[bkey] = new
        if refusal is None and (new.available >= MAX_AMOUNT or new.locked >= MAX_AMOUNT):
            refusal = InvalidAmount(
                f"{op}: user {bkey[0]}'s {bkey[1]} balance would reach available={new.available} "
                f"locked={new.locked}, past the largest balance the ledger stores ({MAX_AMOUNT})"
            )
        if refusal is None and (new.available < 0 or new.locked < 0):
            bucket = "available" if new.available < 0 else "locked"
            have = available if bucket == "available" else locked
            need = (d_avail if bucket == "available" else d_locked).copy_negate()
            refusal = InsufficientFunds(
                f"{op}: user {bkey[0]} has {have} {bkey[1]} {bucket}, {need} needed",
                user_id=bkey[0], asset_id=bkey[1], bucket=bucket,
            )
    return after, refusal


def _write_stepwise(cur, *, keys, deltas, moves, claim) -> tuple[dict, int | None]:
    """SQLite (one writer at a time under IMMEDIATE): lock, check, claim the key, update, post.

    Returns the balances before the mutation and the new entry's id (None: nothing written,
    a refusal (shortfall, overflow) or the key was already used).
    """
    vendor = connection.vendor
    rows = _lock_balances(cur, vendor, keys)
    before = {bkey: (available, locked) for bkey, (_, available, locked) in rows.items()}
    after, refusal = _after(claim["op"], keys, before, deltas)
    if refusal is not None:
        return before, None
    primary = after[(claim["user_id"], claim["asset_id"])]
    entry_id = _claim_key(cur, vendor, after=primary, **claim)
    if entry_id is None:
        return before, None
    db_now = connection.ops.adapt_datetimefield_value(claim["now"])
    for bkey in keys:
        new = after[bkey]
        cur.execute(
            sql.update_balance_sql(),
            [to_db(new.available, vendor), to_db(new.locked, vendor), db_now, rows[bkey][0]],
        )
    cur.execute(
        sql.insert_postings_sql(len(moves)),
        [p for m in moves for p in (entry_id, m.account, m.user_id, m.asset_id, to_db(m.amount, vendor))],
    )
    return before, entry_id


# Balance rows this process has seen exist. Rows are never deleted in operation; if one is
# (a test flush), the statement finds it missing and the row is created again.
_known_balances: set[tuple[str, str]] = set()
_KNOWN_BALANCES_MAX = 100_000


def _create_balances(keys) -> None:
    """Zero balance rows for ``keys`` (in order), unless they exist."""
    with connection.cursor() as cur:
        cur.execute(
            sql.create_balances_sql(len(keys)),
            [p for user_id, asset_id in keys for p in (user_id, asset_id, timezone.now())],
        )


def _run_statement(*, keys, deltas, moves, claim) -> tuple[dict, int | None] | None:
    """Run the mutation statement (``sql.mutation_sql``); None when a balance row is missing
    (then nothing was written)."""
    now = claim["now"]
    params = [p for bkey in keys for p in (bkey[0], bkey[1], deltas[bkey][0], deltas[bkey][1])]
    params += [claim["key"], claim["op"], claim["amount"], claim["ref_type"], claim["ref_id"], claim["payload_hash"],
               Jsonb(claim["details"]), now, claim["user_id"], claim["asset_id"], now]
    params += [p for m in moves for p in (m.account, m.user_id, m.asset_id, m.amount)]

    # Django's cursors bind parameters client side (the statement is rebuilt as text in Python on
    # every call); server_bound's psycopg cursor on the same connection (and transaction, if any)
    # sends them separately. The statement is also prepared once per connection, so PostgreSQL does
    # not plan it on every call (unless DATABASE_PREPARED_STATEMENTS is false: mmproject.sql).
    # Results in text, as before (the numerics are read as Decimals either way).
    rows = server_bound(sql.mutation_sql(len(keys), len(moves)), params, prepare=True, binary=False)
    if len(rows) < len(keys):
        return None
    if len(_known_balances) > _KNOWN_BALANCES_MAX:
        _known_balances.clear()
    _known_balances.update(keys)
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}, rows[0][4]


def _write_postgres(*, keys, deltas, moves, claim) -> tuple[dict, int | None]:
    """Inside a transaction: create missing balance rows, then the statement."""
    if not _known_balances.issuperset(keys):
        _create_balances(keys)
    outcome = _run_statement(keys=keys, deltas=deltas, moves=moves, claim=claim)
    if outcome is None:  # a row this process thought existed is gone: create it, lock again
        _create_balances(keys)
        outcome = _run_statement(keys=keys, deltas=deltas, moves=moves, claim=claim)
    return outcome


def _apply(**kwargs) -> LedgerResult:
    # Amounts of an 18-decimal asset reach 31 digits at 1e12 units: past Decimal's default
    # 28-digit context, which would round the new balance silently.
    with exact_context():
        return _apply_exact(**kwargs)


def _apply_exact(*, op: str, key: str, user_id: str, asset_id: str, amount: Decimal, ref_type: str, ref_id: str,
           moves: list[_Move], payload_extra: dict | None = None, details: dict | None = None) -> LedgerResult:
    if not isinstance(key, str) or not key:
        raise ValueError("idempotency_key must be a non-empty string")
    if len(key) > 255:
        raise ValueError(f"idempotency_key is {len(key)} characters; the limit is 255")
    payload = {
        "op": op, "user_id": user_id, "asset_id": asset_id, "amount": canonical(amount),
        "ref_type": ref_type, "ref_id": ref_id, **(payload_extra or {}),
    }
    payload_hash = _payload_hash(payload)

    # Per (user, asset): the change to available and to locked.
    deltas: dict[tuple[str, str], list[Decimal]] = {}
    for move in moves:
        if move.account in (Account.USER_AVAILABLE, Account.USER_LOCKED):
            pair = deltas.setdefault((move.user_id, move.asset_id), [ZERO, ZERO])
            pair[0 if move.account == Account.USER_AVAILABLE else 1] += move.amount
    keys = sorted(deltas)
    now = timezone.now()
    claim = dict(key=key, op=op, user_id=user_id, asset_id=asset_id, amount=amount, ref_type=ref_type,
                 ref_id=ref_id, payload_hash=payload_hash, details=details or {}, now=now)

    outcome = None
    db = connections[DEFAULT_DB_ALIAS]  # once: every `connection.x` is a lookup through a proxy
    postgres = db.vendor == "postgresql"
    if postgres:
        db.ensure_connection()
        if db.autocommit and _known_balances.issuperset(keys):
            # Outside any transaction the one statement is its own transaction: PostgreSQL
            # commits it atomically on completion, so a mutation is a single round trip.
            outcome = _run_statement(keys=keys, deltas=deltas, moves=moves, claim=claim)
    if outcome is not None:
        return _conclude(outcome, keys=keys, deltas=deltas, claim=claim)
    with transaction.atomic():
        if postgres:
            outcome = _write_postgres(keys=keys, deltas=deltas, moves=moves, claim=claim)
        else:
            with connection.cursor() as cur:
                outcome = _write_stepwise(cur, keys=keys, deltas=deltas, moves=moves, claim=claim)
        # Inside the transaction: a refusal rolls back balance rows created for it.
        return _conclude(outcome, keys=keys, deltas=deltas, claim=claim)


def _conclude(outcome: tuple[dict, int | None], *, keys, deltas, claim) -> LedgerResult:
    """The result of a written entry, the replay of the key's first result, or the refusal raised."""
    before, entry_id = outcome
    key, payload_hash, user_id = claim["key"], claim["payload_hash"], claim["user_id"]
    after, refusal = _after(claim["op"], keys, before, deltas)
    if refusal is not None:
        # A replay of an entry that was applied when funds sufficed is still a replay.
        if LedgerEntry.objects.filter(idempotency_key=key).exists():
            return _replay(key, payload_hash)
        raise refusal
    if entry_id is None:
        return _replay(key, payload_hash)
    primary = after[(user_id, claim["asset_id"])]
    entry = LedgerEntry.from_db(connection.alias, _ENTRY_FIELDS, (
        entry_id, key, claim["op"], user_id, claim["asset_id"], claim["amount"], claim["ref_type"],
        claim["ref_id"], payload_hash, primary.available, primary.locked, claim["details"], claim["now"],
    ))
    logger.info(
        "event=ledger_mutation op=%s user_id=%s asset_id=%s amount=%s key=%s ref=%s:%s",
        claim["op"], user_id, claim["asset_id"], claim["amount"], key, claim["ref_type"], claim["ref_id"],
    )
    return LedgerResult(
        applied=True, entry=entry, balance=primary,
        balances={a: v for (u, a), v in after.items() if u == user_id},
    )


_ENTRY_FIELDS = ["id", "idempotency_key", "operation", "user_id", "asset_id", "amount", "ref_type", "ref_id",
                 "payload_hash", "available_after", "locked_after", "details", "created_at"]


def _single_asset(op: str, *, user_id, asset_id, amount, idempotency_key, ref_type, ref_id,
                  debit: tuple[str, str], credit: tuple[str, str]) -> LedgerResult:
    """A two-posting entry: ``amount`` moves from account ``debit`` to account ``credit``.

    Accounts are given as (account, user_id) pairs; system accounts have an empty user_id.
    """
    _require_id("user_id", user_id)
    _require_id("asset_id", asset_id)
    value = _amount(amount, asset_id)
    moves = [
        _Move(debit[0], debit[1], asset_id, value.copy_negate()),  # exact, unlike unary minus
        _Move(credit[0], credit[1], asset_id, value),
    ]
    return _apply(op=op, key=idempotency_key, user_id=user_id, asset_id=asset_id, amount=value,
                  ref_type=ref_type, ref_id=ref_id, moves=moves)


# --- the contract ----------------------------------------------------------------------
def credit_deposit(*, user_id: str, asset_id: str, amount, idempotency_key: str,
                   ref_type: str = "", ref_id: str = "") -> LedgerResult:
    """Money arrives from outside (a payment snapshot, a compensation)."""
    return _single_asset(Operation.CREDIT_DEPOSIT, user_id=user_id, asset_id=asset_id, amount=amount,
                         idempotency_key=idempotency_key, ref_type=ref_type, ref_id=ref_id,
                         debit=(Account.EXTERNAL, ""), credit=(Account.USER_AVAILABLE, user_id))


def debit_withdrawal(*, user_id: str, asset_id: str, amount, idempotency_key: str,
                     ref_type: str = "", ref_id: str = "") -> LedgerResult:
    """Money leaves to the outside (a refund, a payout); from available funds only."""
    return _single_asset(Operation.DEBIT_WITHDRAWAL, user_id=user_id, asset_id=asset_id, amount=amount,
                         idempotency_key=idempotency_key, ref_type=ref_type, ref_id=ref_id,
                         debit=(Account.USER_AVAILABLE, user_id), credit=(Account.EXTERNAL, ""))


def lock_funds(*, user_id: str, asset_id: str, amount, idempotency_key: str,
               ref_type: str = "", ref_id: str = "") -> LedgerResult:
    """Reserve available funds for an order (available -> locked)."""
    return _single_asset(Operation.LOCK_FUNDS, user_id=user_id, asset_id=asset_id, amount=amount,
                         idempotency_key=idempotency_key, ref_type=ref_type, ref_id=ref_id,
                         debit=(Account.USER_AVAILABLE, user_id), credit=(Account.USER_LOCKED, user_id))


def unlock_funds(*, user_id: str, asset_id: str, amount, idempotency_key: str,
                 ref_type: str = "", ref_id: str = "") -> LedgerResult:
    """Release reserved funds (locked -> available)."""
    return _single_asset(Operation.UNLOCK_FUNDS, user_id=user_id, asset_id=asset_id, amount=amount,
                         idempotency_key=idempotency_key, ref_type=ref_type, ref_id=ref_id,
                         debit=(Account.USER_LOCKED, user_id), credit=(Account.USER_AVAILABLE, user_id))


def debit_fee(*, user_id: str, asset_id: str, amount, idempotency_key: str,
              ref_type: str = "", ref_id: str = "") -> LedgerResult:
    """Charge a service fee from available funds to the fees account."""
    return _single_asset(Operation.DEBIT_FEE, user_id=user_id, asset_id=asset_id, amount=amount,
                         idempotency_key=idempotency_key, ref_type=ref_type, ref_id=ref_id,
                         debit=(Account.USER_AVAILABLE, user_id), credit=(Account.FEES, ""))


def credit_reward(*, user_id: str, asset_id: str, amount, idempotency_key: str,
                  ref_type: str = "", ref_id: str = "") -> LedgerResult:
    """Pay a reward (campaign payouts) from the rewards account to available funds."""
    return _single_asset(Operation.CREDIT_REWARD, user_id=user_id, asset_id=asset_id, amount=amount,
                         idempotency_key=idempotency_key, ref_type=ref_type, ref_id=ref_id,
                         debit=(Account.REWARDS, ""), credit=(Account.USER_AVAILABLE, user_id))


def settle_fill(*, user_id: str, exchange: str, trade_id: str, side: str, base_asset_id: str,
                quote_asset_id: str, base_amount, quote_amount, fee_asset_id: str | None = None,
                fee_amount=0, fee_owed: bool = False, idempotency_key: str | None = None, ref_type: str = "",
                ref_id: str = "") -> LedgerResult:
    """Settle one exchange fill against the user's locked funds, fee included, in one entry.

    A buy spends locked quote and receives locked base; a sell the reverse. The proceeds stay
    locked (the strategy keeps trading them) until the order is stopped and unlocked.
    The fee comes out of the locked funds; with ``fee_owed`` (a fee in a third currency, e.g. BNB,
    which the order does not hold) it is owed instead: posted to the user's ``fee_debt`` account in
    that asset, under the same ref, since a locked balance cannot go negative (docs/decisions.md,
    "Fees in a third currency").
    Key: ``fill:{exchange}:{trade_id}``, so a trade is settled once however often it is seen.
    """
    _require_id("user_id", user_id)
    _require_id("exchange", exchange)
    _require_id("trade_id", str(trade_id) if trade_id is not None else "")
    _require_id("base_asset_id", base_asset_id)
    _require_id("quote_asset_id", quote_asset_id)
    if base_asset_id == quote_asset_id:
        raise ValueError("base_asset_id and quote_asset_id must differ")
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
    base = _amount(base_amount, base_asset_id, field="base_amount")
    quote = _amount(quote_amount, quote_asset_id, field="quote_amount")
    fee_asset = fee_asset_id or quote_asset_id
    fee = _amount(fee_amount, fee_asset, field="fee_amount", allow_zero=True)
    if fee_owed and fee_asset in (base_asset_id, quote_asset_id):
        raise ValueError(f"a fee in the pair's own asset {fee_asset} is paid from locked funds; fee_owed is for a "
                         "third currency")
    key = idempotency_key or f"fill:{exchange}:{trade_id}"

    # copy_negate is exact; unary minus and multiplication round to the 28-digit default context.
    base_in, quote_out = (base, quote) if side == "buy" else (base.copy_negate(), quote.copy_negate())
    moves = [
        _Move(Account.USER_LOCKED, user_id, base_asset_id, base_in),
        _Move(Account.EXCHANGE, "", base_asset_id, base_in.copy_negate()),
        _Move(Account.USER_LOCKED, user_id, quote_asset_id, quote_out.copy_negate()),
        _Move(Account.EXCHANGE, "", quote_asset_id, quote_out),
    ]
    if fee:
        moves += [_Move(Account.FEE_DEBT if fee_owed else Account.USER_LOCKED, user_id, fee_asset, fee.copy_negate()),
                  _Move(Account.FEES, "", fee_asset, fee)]
    extra = {"exchange": exchange, "trade_id": str(trade_id), "side": side, "quote_asset_id": quote_asset_id,
             "quote_amount": canonical(quote), "fee_asset_id": fee_asset, "fee_amount": canonical(fee)}
    if fee_owed:  # only then: the payload (and hash) of every other fill stays what it always was
        extra["fee_owed"] = True
    return _apply(op=Operation.SETTLE_FILL, key=key, user_id=user_id, asset_id=base_asset_id, amount=base,
                  ref_type=ref_type, ref_id=ref_id, moves=moves, payload_extra=extra, details=extra)


def get_balance(*, user_id: str, asset_id: str) -> BalanceView:
    """The user's balance of the asset; zeros for a user:asset never touched."""
    row = Balance.objects.filter(user_id=user_id, asset_id=asset_id).values_list("available", "locked").first()
    return BalanceView(*row) if row else BalanceView()


__all__ = [
    "BalanceView", "LedgerResult", "InvalidAmount", "asset_scale", "credit_deposit", "debit_withdrawal",
    "lock_funds", "unlock_funds", "debit_fee", "credit_reward", "settle_fill", "get_balance",
]
