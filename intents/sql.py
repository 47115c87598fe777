"""The intents app's hand-written statements, by name: the claim, renewal and release of in-flight
slots (intents.gates) and an executor batch's read and writes (intents.executor).

Table names come from the models, status and kind values from their enums; the generic builders
(``case_by_id``, ``typed``, ``ModelColumns``, ``write_together``) are in mmproject/sql.py. Why by
hand: docs/decisions.md, "Figures behind the hot paths". Each statement is run on PostgreSQL and SQLite by
tests/test_named_statements.py.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.utils import timezone

from exchanges.models import ExchangeAccount
from ledger.amounts import to_db
from mmproject.sql import ModelColumns, case_by_id, quote, typed

from .models import Intent, IntentKind, IntentSlot, IntentStatus, TrackedOrder, TrackedOrderStatus
from .tracked_orders import EXCHANGE_FIELDS

INTENT, SLOT, TRACKED = (quote(m._meta.db_table) for m in (Intent, IntentSlot, TrackedOrder))
NEW, IN_FLIGHT = IntentStatus.NEW.value, IntentStatus.IN_FLIGHT.value
CREATE, CANCEL = IntentKind.CREATE.value, IntentKind.CANCEL.value
ACCOUNT_SCOPE_PREFIX = "account:"


def locking(sql: str) -> str:
    """``sql`` with its rows locked, skipping those another claimer holds (PostgreSQL; SQLite's
    immediate transaction serialises claimers instead)."""
    return sql + (" FOR UPDATE SKIP LOCKED" if connection.vendor == "postgresql" else "")


def free_slots_sql() -> str:
    """The free slots (id, scope), global and of every account, locked. Parameters: the global
    scope, its limit, the account scopes' LIKE pattern, their limit, now.

    A slot is free when its lease is over (or it has none): a claim's lease, or the hold of a slot
    whose request timed out (``hold_slots_of_sql``: no intent, a lease until the hold ends)."""
    return locking(
        f'SELECT id, scope FROM {SLOT} WHERE ((scope = %s AND "index" < %s) '
        f'OR (scope LIKE %s AND "index" < %s)) AND (lease_until IS NULL OR lease_until < %s) ORDER BY scope, "index"'
    )


# Two ordered walks of the active-status index, each stopping at its limit: the lapsed claims (a
# handful at most), then the new intents, oldest first (one walk with both conditions OR-ed read
# and sorted the whole backlog: docs/decisions.md, "The claim's walk").
CLAIMABLE = (f"i.status = '{IN_FLIGHT}' AND i.lease_until < %s",
             f"i.status = '{NEW}' AND (i.not_before IS NULL OR i.not_before <= %s)")
CANCELS_ONLY = f"AND i.kind = '{CANCEL}' "


def candidates_sql(condition: str, accounts: int, kinds: str = "") -> str:
    """The oldest intents meeting ``condition`` of ``accounts`` accounts whose strategy key has
    nothing else in flight (parameters: now, the account ids, the limit), locked on PostgreSQL."""
    return locking(
        f"SELECT i.id, i.account_id, i.strategy_key, i.status FROM {INTENT} i WHERE {condition} "
        f"AND i.account_id IN ({', '.join(['%s'] * accounts)}) {kinds}"
        f"AND NOT EXISTS (SELECT 1 FROM {INTENT} j WHERE j.strategy_key = i.strategy_key "
        f"   AND j.status = '{IN_FLIGHT}' AND j.id <> i.id) "
        "ORDER BY i.id LIMIT %s"
    )


def both_walks_sql(accounts: int, kinds: str) -> str:
    """PostgreSQL: both walks of ``CLAIMABLE`` in one statement, lapsed claims first (each a CTE: a
    locking clause cannot stand in a UNION's branch). Parameters: those of each walk, twice."""
    lapsed, fresh = (candidates_sql(condition, accounts, kinds) for condition in CLAIMABLE)
    return f"WITH lapsed AS ({lapsed}), fresh AS ({fresh}) SELECT 0, * FROM lapsed UNION ALL SELECT 1, * FROM fresh"


WALK_SETTINGS = "SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true)"


def in_list(n: int) -> str:
    return ", ".join(["%s"] * n)


def free_slots_of_sql(n_intents: int) -> str:
    """Slots still pointing at any of ``n_intents`` intents are freed. Parameters: the intent ids."""
    return f"UPDATE {SLOT} SET intent_id = NULL, lease_until = NULL WHERE intent_id IN ({in_list(n_intents)})"


def hold_slots_of_sql(n_intents: int) -> str:
    """Slots of ``n_intents`` intents let go of their intents but stay taken until each one's hold
    ends (their lease; the CASE reads the rows as they were). Parameters: (intent id, hold end) for
    each, then the intent ids."""
    whens = " ".join([f"WHEN %s THEN {typed('timestamp with time zone')}"] * n_intents)
    return (f"UPDATE {SLOT} SET lease_until = CASE intent_id {whens} END, intent_id = NULL "
            f"WHERE intent_id IN ({in_list(n_intents)})")


def take_slots_sql(slot_case: str, n_slots: int) -> str:
    """Point ``n_slots`` slots at their intents (``slot_case``: a CASE by slot id) with a lease.
    Parameters: the CASE's, the lease's end, the slot ids."""
    return f"UPDATE {SLOT} SET intent_id = {slot_case}, lease_until = %s WHERE id IN ({in_list(n_slots)})"


def mark_claimed_sql(token_case: str, n_intents: int) -> str:
    """Intents in flight under their claim token (a CASE by id) and lease. Parameters: the CASE's,
    the lease's end, now, the intent ids."""
    return (f"UPDATE {INTENT} SET status = '{IN_FLIGHT}', claim_token = {token_case}, "
            f"lease_until = %s, attempts = attempts + 1, updated_at = %s WHERE id IN ({in_list(n_intents)})")


def track_creates_sql(intent_pks: list[int], *, now: datetime) -> tuple[str, list]:
    """The statement writing the tracked order (``pending_create``) of each create intent among
    ``intent_pks`` (not empty), unless it has one: the claim writes them in its transaction, so from
    then on the order is tracked and no longer stands as an unclaimed intent (strategy.cycle reads
    both, unclaimed intents first, so an order is never in neither)."""
    return (
        f"INSERT INTO {TRACKED} (client_order_id, strategy_key, account_id, symbol, side, price, "
        "amount, filled, layer, status, exchange_order_id, hanging, last_fill_at, created_at, updated_at) "
        "SELECT client_order_id, strategy_key, account_id, symbol, side, price, amount, %s, COALESCE(layer, 0), "
        f"%s, '', %s, NULL, created_at, %s FROM {INTENT} "
        f"WHERE id IN ({in_list(len(intent_pks))}) AND kind = '{CREATE}' ON CONFLICT DO NOTHING",
        [to_db(Decimal(0), connection.vendor), TrackedOrderStatus.PENDING_CREATE.value, False,
         connection.ops.adapt_datetimefield_value(now), *intent_pks],
    )


def claim_pairs(claims) -> tuple[str, list]:
    """``(id, claim_token) IN (...)`` over ``claims`` (row values: PostgreSQL and SQLite alike)."""
    return (f"(id, claim_token) IN ({', '.join(['(%s, %s)'] * len(claims))})",
            [p for c in claims for p in (c.intent_pk, c.token)])


def renew_intents_sql(pairs: str) -> str:
    """Renew the lease of live claims (``pairs``: ``claim_pairs``). Parameters: the new lease's end,
    the pairs', the in-flight status, now. Returns the renewed ids."""
    return f"UPDATE {INTENT} SET lease_until = %s WHERE {pairs} AND status = %s AND lease_until > %s RETURNING id"


def renew_slots_sql(n_intents: int) -> str:
    """Renew the live slots of ``n_intents`` intents. Parameters: the lease's end, the ids, now.
    Returns the intent id of each slot renewed."""
    return (f"UPDATE {SLOT} SET lease_until = %s WHERE intent_id IN ({in_list(n_intents)}) AND lease_until > %s "
            "RETURNING intent_id")


def end_leases_sql(n_intents: int) -> str:
    """End the leases of ``n_intents`` intents now (they are reclaimed as lapsed claims). Parameters:
    now, the ids."""
    return f"UPDATE {INTENT} SET lease_until = %s WHERE id IN ({in_list(n_intents)})"


def release_intents_sql(status: str, not_before: str, error: str, finished: str, exchange_order_id: str,
                        pairs: str) -> str:
    """End claims with their outcomes (each a CASE by id). Parameters: the CASEs' in this order with
    now after ``error``, the pairs', the in-flight status. Returns the released ids."""
    return (f"UPDATE {INTENT} SET status = {status}, not_before = {not_before}, claim_token = '', "
            f"lease_until = NULL, last_error = {error}, updated_at = %s, finished_at = {finished}, "
            f"exchange_order_id = {exchange_order_id} WHERE {pairs} AND status = %s RETURNING id")


_INTENT = ModelColumns(Intent)
_TRACKED = ModelColumns(TrackedOrder)
_ACCOUNT = ModelColumns(ExchangeAccount)
_BATCH_ENDS = (_INTENT.width, _INTENT.width + _TRACKED.width)


def read_batch_sql(n_intents: int) -> str:
    """``n_intents`` intents with their tracked orders (if any) and accounts. Parameters: the intent ids."""
    return (f"SELECT {_INTENT.columns('i')}, {_TRACKED.columns('t')}, {_ACCOUNT.columns('a')} FROM {_INTENT.name} i "
            f"LEFT JOIN {_TRACKED.name} t ON t.client_order_id = i.client_order_id "
            f"JOIN {_ACCOUNT.name} a ON a.id = i.account_id WHERE i.id IN ({in_list(n_intents)})")


def write_sent_at_sql(n_intents: int) -> str:
    """Set ``sent_at`` of ``n_intents`` intents. Parameters: the time (or None), the intent ids."""
    return f"UPDATE {INTENT} SET sent_at = %s WHERE id IN ({in_list(n_intents)})"


def read_batch(pks: list[int]) -> tuple[dict[int, Intent], dict[str, TrackedOrder], dict[int, ExchangeAccount]]:
    """The intents ``pks`` (by pk), their tracked orders (by client order id) and their accounts
    (by pk), in one statement rather than three querysets: ~4x faster (docs/decisions.md, "Figures behind the
    hot paths")."""
    with connection.cursor() as cur:
        cur.execute(read_batch_sql(len(pks)), pks)
        rows = cur.fetchall()
    intents, tracked, accounts = {}, {}, {}
    tracked_at, account_at = _BATCH_ENDS
    for row in rows:
        intent = _INTENT.load(row[:tracked_at])
        intents[intent.pk] = intent
        if row[tracked_at] is not None:
            order = _TRACKED.load(row[tracked_at:account_at])
            tracked[order.client_order_id] = order
        if intent.account_id not in accounts:
            accounts[intent.account_id] = _ACCOUNT.load(row[account_at:])
    return intents, tracked, accounts


def write_sent_at(pks: list[int], sent_at) -> None:
    """Set (or clear) ``sent_at`` of intents ``pks``; by hand: ~30% faster than the ORM's update
    (docs/decisions.md, "Figures behind the hot paths")."""
    if pks:
        with connection.cursor() as cur:
            cur.execute(write_sent_at_sql(len(pks)), [connection.ops.adapt_datetimefield_value(sent_at), *pks])


def tracked_writes(rows: list[TrackedOrder]) -> list[tuple[str, list]]:
    """The statement saving the exchange's view (``tracked_orders.EXCHANGE_FIELDS``) of several tracked orders
    (none without rows)."""
    if not rows:
        return []
    vendor = connection.vendor
    adapt = connection.ops.adapt_datetimefield_value
    assert EXCHANGE_FIELDS == ("status", "filled", "exchange_order_id", "last_fill_at", "updated_at")
    pks = [r.pk for r in rows]
    parts = [case_by_id(pks, [getattr(r.status, "value", r.status) for r in rows]),
             case_by_id(pks, [to_db(r.filled, vendor) for r in rows], typed("numeric")),
             case_by_id(pks, [r.exchange_order_id for r in rows]),
             case_by_id(pks, [adapt(r.last_fill_at) for r in rows], typed("timestamp with time zone"))]
    now = timezone.now()
    for row in rows:
        row.updated_at = now
    return [(
        f"UPDATE {TRACKED} SET status = {parts[0][0]}, filled = {parts[1][0]}, "
        f"exchange_order_id = {parts[2][0]}, last_fill_at = {parts[3][0]}, updated_at = %s "
        f"WHERE id IN ({', '.join(['%s'] * len(rows))})",
        [*parts[0][1], *parts[1][1], *parts[2][1], *parts[3][1], adapt(now), *pks],
    )]
