"""The strategy app's hand-written statements, by name: the cycle's reads and writes and the tick lease.

Table and column names come from the models (``mmproject.sql.column``), status values from their
enums. Each statement has a test on every database it runs on (tests/test_named_statements.py).
Why they are written by hand rather than with the ORM: docs/decisions.md, "The strategy cycle's hot
statements are hand-written on PostgreSQL" and "Figures behind the hot paths".
"""
from __future__ import annotations

import functools

from django.db import connection

from intents import halt
from intents.models import Intent, IntentKind, IntentStatus, TrackedOrder
from ledger.models import Account, LedgerEntry, Posting
from mmproject.sql import column

from .models import StrategySession, TickDurationBucket, TickLease
from .order_rows import ORDER_REF, MarketMakingOrder, MarketMakingPair
from .params import ORDER_PARAM_FIELDS

CREATE = IntentKind.CREATE.value

# What the cycle reads of a session, its order (its ids and every strategy parameter of
# strategy.params) and the order's pair.
SESSION_FIELDS = ("pk", "cadence_s", "refreshed_at")
# A session's state of the options that keep one (the moving band's anchor, the inventory cost): read
# apart, only for the sessions whose order uses them (strategy.cycle._session_state).
STATE_FIELDS = ("band_price", "band_set_at", "inventory_base", "inventory_cost", "inventory_fill_id")
# The order's parameters the cycle reads besides the strategy's: where its reference price comes from.
SOURCE_FIELDS = ("price_source_account", "price_source_market")
ORDER_FIELDS = ("order_id", "user_id", "exchange_account_id", *ORDER_PARAM_FIELDS, *SOURCE_FIELDS)
PAIR_FIELDS = ("symbol", "base_asset_id", "quote_asset_id")
# What the cycle reads of an unclaimed create intent.
PENDING_COLUMNS = ("pk", "strategy_key", "client_order_id", "side", "price", "amount", "layer", "created_at", "sent_at")


@functools.cache
def due_sessions_sql() -> str:
    qn = connection.ops.quote_name
    session_columns = ["s.id", *(column(StrategySession, "s", name) for name in SESSION_FIELDS[1:])]
    order_columns = [column(MarketMakingOrder, "o", name) for name in ORDER_FIELDS]
    pair_columns = [column(MarketMakingPair, "p", name) for name in PAIR_FIELDS]
    base, quote = column(MarketMakingPair, "p", "base_asset_id"), column(MarketMakingPair, "p", "quote_asset_id")
    asset, amount = column(Posting, "po", "asset_id"), column(Posting, "po", "amount")
    # The order's user_locked postings under its reference, as ref_positions sums them.
    return (
        f"SELECT {', '.join(session_columns + order_columns + pair_columns)}, pos.base, pos.quote "
        f"FROM {qn(StrategySession._meta.db_table)} s "
        f"JOIN {qn(MarketMakingOrder._meta.db_table)} o ON o.id = s.{qn('order_id')} "
        f"JOIN {qn(MarketMakingPair._meta.db_table)} p ON p.id = o.{qn('pair_id')} "
        f"LEFT JOIN LATERAL (SELECT SUM(CASE WHEN {asset} = {base} THEN {amount} END) AS base, "
        f"SUM(CASE WHEN {asset} = {quote} THEN {amount} END) AS quote "
        f"FROM {qn(LedgerEntry._meta.db_table)} e JOIN {qn(Posting._meta.db_table)} po ON po.{qn('entry_id')} = e.id "
        f"WHERE {column(LedgerEntry, 'e', 'ref_type')} = '{ORDER_REF}' "
        f"AND {column(LedgerEntry, 'e', 'ref_id')} = {column(MarketMakingOrder, 'o', 'order_id')}::text "
        f"AND {column(Posting, 'po', 'account')} = '{Account.USER_LOCKED.value}') pos ON true "
        f"WHERE {column(StrategySession, 's', 'status')} = %s AND {column(StrategySession, 's', 'next_run_at')} <= %s "
        # Nothing is planned on a halted exchange account (intents.halt.account_halt).
        f"AND NOT EXISTS ({halt.account_halted_sql(column(MarketMakingOrder, 'o', 'exchange_account'))})"
    )


@functools.cache
def active_orders_sql() -> str:
    """The unclaimed creates and the tracked orders of a list of keys, as one result: a create's
    row is its pk and ``PENDING_COLUMNS`` (padded), a tracked order's row is a NULL pk, the
    columns both have in the order of ``PENDING_COLUMNS`` (strategy key .. created_at, sent_at
    NULL), then status, filled, last_fill_at, hanging."""
    qn = connection.ops.quote_name
    shared = ("strategy_key", "client_order_id", "side", "price", "amount", "layer", "created_at")
    return (
        f"SELECT i.id, {', '.join(column(Intent, 'i', f) for f in shared)}, {column(Intent, 'i', 'sent_at')}, "
        f"NULL::varchar, NULL::numeric, NULL::timestamptz, NULL::boolean FROM {qn(Intent._meta.db_table)} i "
        f"WHERE {column(Intent, 'i', 'strategy_key')} = ANY(%s::varchar[]) AND {column(Intent, 'i', 'status')} = "
        f"'{IntentStatus.NEW.value}' AND {column(Intent, 'i', 'kind')} = '{CREATE}' "
        f"UNION ALL "
        f"SELECT NULL::bigint, {', '.join(column(TrackedOrder, 't', f) for f in shared)}, NULL::timestamptz, "
        f"{', '.join(column(TrackedOrder, 't', f) for f in ('status', 'filled', 'last_fill_at', 'hanging'))} "
        f"FROM {qn(TrackedOrder._meta.db_table)} t "
        f"WHERE {column(TrackedOrder, 't', 'strategy_key')} = ANY(%s::varchar[]) "
        f"AND ({column(TrackedOrder, 't', 'status')} = ANY(%s::varchar[]) "
        f"OR ({column(TrackedOrder, 't', 'status')} = %s AND {column(TrackedOrder, 't', 'updated_at')} >= %s))"
    )


def supersede_unsent_sql() -> str:
    """PostgreSQL: creates never sent (ids as one array) superseded (parameters: status, finished_at,
    last_error, ids); the ORM took longer to build it than to bind the ids."""
    qn = connection.ops.quote_name
    return (f"UPDATE {qn(Intent._meta.db_table)} SET status = %s, finished_at = %s, last_error = %s "
            f"WHERE id = ANY(%s::bigint[]) AND status = '{IntentStatus.NEW.value}' AND sent_at IS NULL")


def schedule_next_runs_sql() -> str:
    """PostgreSQL: the sessions of a cycle (ids as one array) next due: those that refreshed (a second id
    array) ``cadence_s`` after now, refreshed now; the others (refill runs) when their refresh is due.
    Parameters: the refreshed ids, now, the refreshed ids, now, every id."""
    qn = connection.ops.quote_name
    cadence = f"{qn('cadence_s')} * interval '1 second'"
    return (f"UPDATE {qn(StrategySession._meta.db_table)} SET "
            f"{qn('next_run_at')} = CASE WHEN id = ANY(%s::bigint[]) THEN %s::timestamptz + {cadence} "
            f"ELSE {qn('refreshed_at')} + {cadence} END, "
            f"{qn('refreshed_at')} = CASE WHEN id = ANY(%s::bigint[]) THEN %s::timestamptz ELSE {qn('refreshed_at')} END "
            f"WHERE id = ANY(%s::bigint[])")


def tick_acquire_sql() -> str:
    """Take the tick lease for a slot if free and not run yet (parameters: holder, lease_until, slot,
    now, name, slot, now); plain SQL: the ORM took longer to build this update than it runs."""
    qn = connection.ops.quote_name
    return (f"UPDATE {qn(TickLease._meta.db_table)} SET holder = %s, lease_until = %s, last_slot = %s, "
            f"last_started_at = %s WHERE name = %s AND last_slot < %s AND (lease_until IS NULL OR lease_until < %s)")


def tick_release_sql() -> str:
    """PostgreSQL: release the tick lease and count the tick's histogram buckets in one statement
    (the buckets only if this holder held the lease). Parameters: finished_at, duration, duration,
    name, holder, the buckets' bounds."""
    qn = connection.ops.quote_name
    return (
        f"WITH released AS (UPDATE {qn(TickLease._meta.db_table)} SET lease_until = NULL, last_finished_at = %s, "
        f"last_duration_ms = %s, ticks_run = ticks_run + 1, duration_ms_total = duration_ms_total + %s "
        f"WHERE name = %s AND holder = %s RETURNING 1), "
        f"bumped AS (UPDATE {qn(TickDurationBucket._meta.db_table)} SET count = count + 1 "
        f"WHERE le_ms = ANY(%s::int[]) AND EXISTS (SELECT 1 FROM released) RETURNING 1) "
        f"SELECT (SELECT count(*) FROM released), (SELECT count(*) FROM bumped)"
    )


def sessions_accepting_sql(n_orders: int, halted: str) -> str:
    """The order ids among ``n_orders`` whose session runs and while the kill switch (``halted``, its
    row's query) is off. Parameters: the order ids, the running status, the halt query's parameters."""
    qn = connection.ops.quote_name
    return (
        f"SELECT o.order_id FROM {qn(StrategySession._meta.db_table)} s JOIN {qn(MarketMakingOrder._meta.db_table)} o "
        f"ON o.id = s.order_id WHERE o.order_id IN ({', '.join(['%s'] * n_orders)}) AND s.status = %s "
        f"AND NOT EXISTS ({halted})"
    )


# Every named statement, for the test that prepares each on every database it runs on.
POSTGRESQL_ONLY = (due_sessions_sql, active_orders_sql, supersede_unsent_sql, schedule_next_runs_sql, tick_release_sql)
