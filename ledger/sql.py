"""The ledger's hand-written statements, by name: the one-statement mutation (PostgreSQL) and the
steps of the stepwise one (SQLite), for ledger.services.

Table and column names come from the models (``Balance``, ``LedgerEntry``, ``Posting``); account and
operation values are parameters, taken from the enums by the caller. Each statement is run on every
database it is for by tests/ledger/test_sql.py. Why by hand: the mutation is one round trip and one
prepared plan on PostgreSQL (ledger.services, docs/benchmarks.md "Ledger").
"""
from __future__ import annotations

import functools
from types import SimpleNamespace

from mmproject.sql import quote

from .amounts import MAX_AMOUNT
from .models import Balance, LedgerEntry, Posting


def _columns(model) -> SimpleNamespace:
    """The model's quoted column names by attname (``entry_id`` for the ``entry`` foreign key)."""
    return SimpleNamespace(**{f.attname: quote(f.column) for f in model._meta.concrete_fields})


BALANCE, ENTRY, POSTING = (quote(m._meta.db_table) for m in (Balance, LedgerEntry, Posting))
B, E, P = _columns(Balance), _columns(LedgerEntry), _columns(Posting)

ENTRY_COLUMNS = ", ".join([E.idempotency_key, E.operation, E.user_id, E.asset_id, E.amount, E.ref_type, E.ref_id,
                           E.payload_hash, E.available_after, E.locked_after, E.details, E.created_at])
POSTING_COLUMNS = f"{P.entry_id}, {P.account}, {P.user_id}, {P.asset_id}, {P.amount}"
BALANCE_COLUMNS = f"{B.user_id}, {B.asset_id}, {B.available}, {B.locked}, {B.updated_at}"


# --- PostgreSQL: one statement per mutation ------------------------------------------------------
@functools.cache
def mutation_sql(n_keys: int, n_moves: int) -> str:
    """One statement for the whole mutation: lock the balance rows in (user, asset) order, and
    only if every row exists and none would go negative (or past MAX_AMOUNT), claim the key,
    update the balances from the locked values and write the postings. Returns the locked rows
    (user_id, asset_id, available, locked) and the entry id (NULL: nothing written).

    Data-modifying CTEs run once and to completion; ``u`` and ``p`` depend on ``e``, so a key
    conflict (no ``e`` row) or a refusal (``ok`` false) writes nothing.

    Parameters: per balance key (user_id, asset_id, change of available, change of locked); the
    entry's idempotency key, operation, amount, ref_type, ref_id, payload hash, details (jsonb),
    created_at, user_id, asset_id; updated_at; per posting (account, user_id, asset_id, amount).
    """
    deltas = ", ".join(["(%s::varchar, %s::varchar, %s::numeric, %s::numeric)"] * n_keys)
    moves = ", ".join(["(%s::varchar, %s::varchar, %s::varchar, %s::numeric)"] * n_moves)
    return f"""
WITH d (user_id, asset_id, d_available, d_locked) AS (VALUES {deltas}),
b AS (
    SELECT bal.{B.id}, bal.{B.user_id}, bal.{B.asset_id}, bal.{B.available}, bal.{B.locked}
    FROM {BALANCE} bal JOIN d ON bal.{B.user_id} = d.user_id AND bal.{B.asset_id} = d.asset_id
    ORDER BY bal.{B.user_id}, bal.{B.asset_id}
    FOR UPDATE OF bal
),
n AS (
    SELECT b.id, b.user_id, b.asset_id, b.available + d.d_available AS available, b.locked + d.d_locked AS locked
    FROM b JOIN d ON b.user_id = d.user_id AND b.asset_id = d.asset_id
),
ok AS (SELECT count(*) = {n_keys} AND bool_and(available >= 0 AND locked >= 0
                                                AND available < {MAX_AMOUNT} AND locked < {MAX_AMOUNT}) AS ok
       FROM n),
e AS (
    INSERT INTO {ENTRY} ({ENTRY_COLUMNS})
    SELECT %s::varchar, %s::varchar, n.user_id, n.asset_id, %s::numeric, %s::varchar, %s::varchar, %s::varchar,
           n.available, n.locked, %s::jsonb, %s::timestamptz
    FROM n, ok WHERE ok.ok AND n.user_id = %s::varchar AND n.asset_id = %s::varchar
    ON CONFLICT ({E.idempotency_key}) DO NOTHING
    RETURNING {E.id}
),
u AS (
    UPDATE {BALANCE} bal SET {B.available} = n.available, {B.locked} = n.locked, {B.updated_at} = %s::timestamptz
    FROM n WHERE bal.{B.id} = n.id AND EXISTS (SELECT 1 FROM e)
),
p AS (
    INSERT INTO {POSTING} ({POSTING_COLUMNS})
    SELECT e.{E.id}, m.account, m.user_id, m.asset_id, m.amount
    FROM e, (VALUES {moves}) AS m (account, user_id, asset_id, amount)
)
SELECT b.user_id, b.asset_id, b.available, b.locked, (SELECT {E.id} FROM e) FROM b
"""


@functools.cache
def create_balances_sql(n_keys: int) -> str:
    """Zero balance rows for ``n_keys`` (user, asset) keys, unless they exist (PostgreSQL, before
    the mutation statement: it only locks rows that exist). Parameters: per key user_id, asset_id,
    updated_at."""
    return (f"INSERT INTO {BALANCE} ({BALANCE_COLUMNS}) VALUES "
            + ", ".join(["(%s, %s, 0, 0, %s)"] * n_keys)
            + f" ON CONFLICT ({B.user_id}, {B.asset_id}) DO NOTHING")


# --- SQLite: the same steps one by one, under the IMMEDIATE transaction's lock -------------------
@functools.cache
def lock_balances_sql(n_keys: int, for_update: bool) -> str:
    """The balance rows (user_id, asset_id, id, available, locked) of ``n_keys`` keys in (user,
    asset) order, locked ``for_update`` (PostgreSQL; SQLite's transaction is the lock).
    Parameters: per key user_id, asset_id."""
    where = " OR ".join([f"({B.user_id} = %s AND {B.asset_id} = %s)"] * n_keys)
    return (f"SELECT {B.user_id}, {B.asset_id}, {B.id}, {B.available}, {B.locked} FROM {BALANCE} "
            f"WHERE {where} ORDER BY {B.user_id}, {B.asset_id}{' FOR UPDATE' if for_update else ''}")


@functools.cache
def insert_missing_balances_sql(n_keys: int) -> str:
    """Balance rows for ``n_keys`` keys, unless they exist. Parameters: per key user_id, asset_id,
    available, locked (zero, as the database takes an amount), updated_at."""
    return (f"INSERT INTO {BALANCE} ({BALANCE_COLUMNS}) VALUES "
            + ", ".join(["(%s, %s, %s, %s, %s)"] * n_keys)
            + f" ON CONFLICT ({B.user_id}, {B.asset_id}) DO NOTHING")


@functools.cache
def claim_key_sql() -> str:
    """The entry, unless its idempotency key is taken; returns its id (no row: taken). Parameters:
    idempotency key, operation, user_id, asset_id, amount, ref_type, ref_id, payload hash,
    available_after, locked_after, details, created_at."""
    return (f"INSERT INTO {ENTRY} ({ENTRY_COLUMNS}) VALUES ({', '.join(['%s'] * 12)}) "
            f"ON CONFLICT ({E.idempotency_key}) DO NOTHING RETURNING {E.id}")


@functools.cache
def update_balance_sql() -> str:
    """One balance row's new values. Parameters: available, locked, updated_at, id."""
    return f"UPDATE {BALANCE} SET {B.available} = %s, {B.locked} = %s, {B.updated_at} = %s WHERE {B.id} = %s"


@functools.cache
def insert_postings_sql(n_moves: int) -> str:
    """An entry's postings. Parameters: per posting entry_id, account, user_id, asset_id, amount."""
    return f"INSERT INTO {POSTING} ({POSTING_COLUMNS}) VALUES " + ", ".join(["(%s, %s, %s, %s, %s)"] * n_moves)
