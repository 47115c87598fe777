"""The strategy cycle: for every due session, desired orders -> diff -> intents, in bulk.

A cycle runs a constant number of queries whatever the number of sessions: one read each of
sessions, market data, balances, unclaimed create intents and tracked orders, then bulk writes.
A create intent stands for its order until it is claimed (the claim writes the tracked order,
``pending_create``); each cancel marks its order ``pending_cancel`` in the cycle's transaction, so
the next cycle sees what is on its way and a ladder never stacks. A create not yet sent when its
order is cancelled is superseded instead.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from types import SimpleNamespace

from django.conf import settings
from django.db import connection, transaction
from django.db.models import BooleanField, Case, DateTimeField, F, Q, Value, When
from django.db.models.expressions import RawSQL
from django.utils import timezone

from intents.halt import halt_engaged, halt_row_sql
from intents.models import (
    OPEN_TRACKED_STATUSES,
    Intent,
    IntentKind,
    IntentStatus,
    TrackedOrder,
    TrackedOrderStatus,
)
from ledger.selectors import ref_positions
from mmproject.sql import explicit_prepare
from orders.models import ORDER_REF

from . import order_diff, pure_mm
from .models import MarketData, SessionStatus, StrategySession
from .tick import period_start_ms

logger = logging.getLogger(__name__)


# How long stored market data stays fresh enough to quote on.
STALE_AFTER_TICKS = 5
STALE_AFTER_MIN_S = 5
RECENT_FILLS_S = 600


@dataclass(frozen=True)
class CycleSummary:
    sessions_due: int = 0
    sessions_run: int = 0
    sessions_stale: int = 0
    intents_written: int = 0
    superseded: int = 0


def strategy_key(order_id) -> str:
    return f"mm:{order_id}"


def order_id_of(key: str) -> str:
    return key.split(":", 1)[1]


def session_accepts_orders(key: str) -> bool:
    """True while new orders of a strategy key's session may leave: the session is running (not
    stopping, stopped or missing) and the kill switch is off. The last check before an executor
    sends a create."""
    return key in sessions_accepting_orders([key])


def sessions_accepting_orders(keys) -> set[str]:
    """The strategy keys among ``keys`` whose new orders may leave (``session_accepts_orders``),
    in one plain statement for a whole batch of intents (the ORM's ``Exists`` form cost more to
    build than two queries take to run)."""
    keys = list(dict.fromkeys(keys))
    if settings.STRATEGY_KILL_SWITCH or not keys:  # halt_engaged()'s setting; its row is in the statement
        return set()
    from orders.models import MarketMakingOrder

    qn = connection.ops.quote_name
    prep = MarketMakingOrder._meta.get_field("order_id").get_db_prep_value
    by_order_id = {str(uuid.UUID(order_id_of(key))): key for key in keys}
    halted, halted_params = halt_row_sql()
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT o.order_id FROM {qn(StrategySession._meta.db_table)} s JOIN {qn(MarketMakingOrder._meta.db_table)} o "
            f"ON o.id = s.order_id WHERE o.order_id IN ({', '.join(['%s'] * len(by_order_id))}) AND s.status = %s "
            f"AND NOT EXISTS ({halted})",
            [*(prep(uuid.UUID(o), connection) for o in by_order_id), SessionStatus.RUNNING.value, *halted_params],
        )
        return {by_order_id[str(uuid.UUID(str(row[0])))] for row in cur.fetchall()}


def client_order_prefix(order_id) -> str:
    """Every exchange order of one session carries this prefix (stop finds untracked ones by it)."""
    return f"mm{str(order_id).replace('-', '')[:12]}"


def client_order_id_for(order_id, intent_id: str) -> str:
    """Deterministic client order id of a create intent: prefix + 16 hex of the intent id (30 chars)."""
    return client_order_prefix(order_id) + hashlib.sha256(intent_id.encode()).hexdigest()[:16]


def _stale_before(now: datetime) -> datetime:
    ms = max(settings.STRATEGY_TICK_SIZE_MS * STALE_AFTER_TICKS, STALE_AFTER_MIN_S * 1000)
    return now - timedelta(milliseconds=ms)


def tracked_markets_and_accounts() -> tuple[list[tuple[int, str]], list[int]]:
    """The (account, symbol) markets and the accounts that running sessions trade on."""
    rows = StrategySession.objects.filter(status=SessionStatus.RUNNING).values_list(
        "order__exchange_account_id", "order__pair__symbol").distinct()
    markets = sorted({(account_id, symbol) for account_id, symbol in rows if account_id})
    return markets, sorted({account_id for account_id, _ in markets})


def params_for(order) -> pure_mm.PureMMParams:
    return pure_mm.PureMMParams(
        bid_spread=order.bid_spread,
        ask_spread=order.ask_spread,
        order_amount=order.order_amount,
        order_levels=order.number_of_layers,
        # An order without a layer spread of its own has each layer one more bid spread out.
        order_level_spread=order.bid_spread if order.order_level_spread is None else order.order_level_spread,
        amount_change_type=order.amount_change_type,
        amount_change_per_layer=order.amount_change_per_layer,
        price_source=_price_source(order.price_source_type),
        price_ceiling=order.ceiling_price,
        price_floor=order.floor_price,
        inventory_skew_enabled=order.inventory_skew_enabled,
        inventory_target_base_pct=order.inventory_target_base_pct,
        inventory_range_multiplier=order.inventory_range_multiplier,
        hanging_orders_enabled=order.hanging_orders_enabled,
        order_refresh_tolerance_pct=order.order_refresh_tolerance_pct,
        max_order_age=order.max_order_age_s,
    )


_PRICE_SOURCES = {
    "mid_price": pure_mm.PriceSource.MID, "mid": pure_mm.PriceSource.MID,
    "best_bid": pure_mm.PriceSource.BEST_BID, "best_ask": pure_mm.PriceSource.BEST_ASK,
    "last_price": pure_mm.PriceSource.LAST, "last": pure_mm.PriceSource.LAST,
}


def _price_source(value: str) -> pure_mm.PriceSource:
    try:
        return _PRICE_SOURCES[value]
    except KeyError:
        raise pure_mm.StrategyInputError(f"unknown price source {value!r}") from None


# What the cycle reads of a session, its order and the order's pair (add a field here when
# params_for or the cycle needs one). Read as values into plain objects: model instances of
# three models (with the order's FSM fields and its dates) cost more than the strategy itself.
_SESSION_FIELDS = ("pk", "cadence_s")
_ORDER_FIELDS = ("order_id", "user_id", "exchange_account_id", "bid_spread", "ask_spread", "order_amount",
                 "number_of_layers", "amount_change_type", "amount_change_per_layer", "price_source_type",
                 "ceiling_price", "floor_price", "order_level_spread", "inventory_skew_enabled",
                 "inventory_target_base_pct", "inventory_range_multiplier", "hanging_orders_enabled",
                 "order_refresh_tolerance_pct", "max_order_age_s")
_PAIR_FIELDS = ("symbol", "base_asset_id", "quote_asset_id")


def _session_of(row: tuple) -> SimpleNamespace:
    """A row of ``_SESSION_FIELDS``, ``_ORDER_FIELDS``, ``_PAIR_FIELDS`` as a session whose
    ``session.order`` and ``session.order.pair`` are attributes."""
    n_session, n_order = len(_SESSION_FIELDS), len(_ORDER_FIELDS)
    values = row[n_session:n_session + n_order]
    order = SimpleNamespace(**dict(zip(_ORDER_FIELDS, values)), row=values)
    order.ref = str(order.order_id)  # the order id as text (its ledger ref), made once a cycle
    order.pair = SimpleNamespace(**dict(zip(_PAIR_FIELDS, row[n_session + n_order:n_session + n_order + 3])))
    return SimpleNamespace(**dict(zip(_SESSION_FIELDS, row[:n_session])), order=order)


def _due_sessions(now: datetime) -> tuple[list[SimpleNamespace], dict[tuple[str, str], Decimal]]:
    """Running sessions due at ``now`` (``_session_of``), and what each one's order holds locked
    per asset, ``{(order id, asset id): amount}`` (ledger.selectors.ref_positions).

    On PostgreSQL one prepared statement reads both: the sessions with their orders and pairs,
    and each order's two positions summed in SQL (exact on NUMERIC). The ORM's two queries cost
    ~9 ms at 100 due sessions, most of it building and planning them. SQLite sums amounts (text
    there) as floats, so it reads the positions with ref_positions, which sums in Decimal.
    """
    if connection.vendor != "postgresql":
        columns = (*_SESSION_FIELDS, *(f"order__{f}" for f in _ORDER_FIELDS),
                   *(f"order__pair__{f}" for f in _PAIR_FIELDS))
        sessions = [_session_of(row) for row in StrategySession.objects.filter(
            status=SessionStatus.RUNNING, next_run_at__lte=now).values_list(*columns)]
        return sessions, ref_positions(ref_type=ORDER_REF, ref_ids=[s.order.order_id for s in sessions])
    sessions, positions = [], {}
    for row in _server_bound(_due_sessions_sql(), [SessionStatus.RUNNING.value, now], prepare=True):
        session = _session_of(row)
        sessions.append(session)
        order_key, pair = session.order.ref, session.order.pair
        positions[(order_key, pair.base_asset_id)] = row[-2] if row[-2] is not None else _ZERO
        positions[(order_key, pair.quote_asset_id)] = row[-1] if row[-1] is not None else _ZERO
    return sessions, positions


def _column(model, alias: str, name: str) -> str:
    """``alias."column"`` of the field ``name`` of ``model``, for the hand-written statements."""
    return f"{alias}.{connection.ops.quote_name(model._meta.get_field(name).column)}"


@functools.cache
def _due_sessions_sql() -> str:
    from ledger.models import Account, LedgerEntry, Posting
    from orders.models import MarketMakingOrder, MarketMakingPair

    qn = connection.ops.quote_name
    session_columns = ["s.id", _column(StrategySession, "s", "cadence_s")]
    order_columns = [_column(MarketMakingOrder, "o", name) for name in _ORDER_FIELDS]
    pair_columns = [_column(MarketMakingPair, "p", name) for name in _PAIR_FIELDS]
    base, quote = _column(MarketMakingPair, "p", "base_asset_id"), _column(MarketMakingPair, "p", "quote_asset_id")
    asset, amount = _column(Posting, "po", "asset_id"), _column(Posting, "po", "amount")
    # The order's user_locked postings under its reference, as ref_positions sums them.
    return (
        f"SELECT {', '.join(session_columns + order_columns + pair_columns)}, pos.base, pos.quote "
        f"FROM {qn(StrategySession._meta.db_table)} s "
        f"JOIN {qn(MarketMakingOrder._meta.db_table)} o ON o.id = s.{qn('order_id')} "
        f"JOIN {qn(MarketMakingPair._meta.db_table)} p ON p.id = o.{qn('pair_id')} "
        f"LEFT JOIN LATERAL (SELECT SUM(CASE WHEN {asset} = {base} THEN {amount} END) AS base, "
        f"SUM(CASE WHEN {asset} = {quote} THEN {amount} END) AS quote "
        f"FROM {qn(LedgerEntry._meta.db_table)} e JOIN {qn(Posting._meta.db_table)} po ON po.{qn('entry_id')} = e.id "
        f"WHERE {_column(LedgerEntry, 'e', 'ref_type')} = '{ORDER_REF}' "
        f"AND {_column(LedgerEntry, 'e', 'ref_id')} = {_column(MarketMakingOrder, 'o', 'order_id')}::text "
        f"AND {_column(Posting, 'po', 'account')} = '{Account.USER_LOCKED.value}') pos ON true "
        f"WHERE {_column(StrategySession, 's', 'status')} = %s AND {_column(StrategySession, 's', 'next_run_at')} <= %s"
    )


def _server_bound(sql: str, params: list, *, prepare: bool, fetch: bool = True) -> list[tuple] | int:
    """PostgreSQL: run ``sql`` on Django's connection (so in its transaction) through a
    server-side-binding cursor: parameters travel apart from the statement (arrays in binary,
    where Django's client-side cursor quotes every element into the text). With ``prepare`` the
    statement is parsed and planned once per connection; only for statements whose plan does
    not depend on the size of an array parameter: a generic plan cannot see it, and for the
    cycle's read by strategy keys it chose to filter every unclaimed intent against the whole
    list (~7 ms at 100 keys and 4,000 creates) instead of the index on (strategy_key, status).
    Results come back in binary: text timestamps were parsed in Python (~7 ms for 4,000 rows).
    Returns the rows, or with ``fetch=False`` how many rows the statement changed. Listed in
    ``connection.queries`` like Django's own statements when queries are logged."""
    import psycopg

    connection.ensure_connection()
    started = time.perf_counter()
    raw = connection.connection
    with psycopg.Cursor(raw) as cur:
        cur.execute(sql, params, prepare=prepare and explicit_prepare(raw), binary=True)
        rows = cur.fetchall() if fetch else cur.rowcount
    if connection.queries_logged:
        connection.queries_log.append({"sql": sql, "time": f"{time.perf_counter() - started:.3f}"})
    return rows


# Tracked orders are read as rows of these columns, not model instances: a cycle reads thousands.
_TRACKED_COLUMNS = ("strategy_key", "client_order_id", "side", "price", "amount", "layer", "status", "created_at",
                    "filled", "last_fill_at", "hanging")


_TRACKED_STATUS = {status.value: status for status in order_diff.TrackedStatus}
_SIDE = {side.value: side for side in pure_mm.Side}
_ZERO = Decimal(0)


def _tracked_view(row: tuple) -> order_diff.TrackedOrder:
    """A tracked-order row as the diff's value. The columns are typed (NUMERIC amounts, aware
    datetimes, choices), so only what a row can get wrong is checked: a row the diff cannot use
    (no size yet, an unknown status) raises as the validating constructor would."""
    _, client_order_id, side, price, amount, layer, status, created_at, filled, last_fill_at, hanging = row
    if side not in _SIDE or status not in _TRACKED_STATUS or not price > 0 or not amount > 0 \
            or not _ZERO <= filled <= amount:
        return order_diff.TrackedOrder(  # raises StrategyInputError saying which field is wrong
            client_order_id=client_order_id, side=side, price=price, amount=amount, layer=layer, status=status,
            created_at=created_at, filled_amount=filled, last_fill_at=last_fill_at, hanging=hanging)
    return pure_mm.trusted(
        order_diff.TrackedOrder, client_order_id=client_order_id, side=_SIDE[side], price=price, amount=amount,
        layer=layer, status=_TRACKED_STATUS[status], created_at=created_at, filled_amount=filled,
        last_fill_at=last_fill_at, hanging=hanging,
    )


@functools.lru_cache(maxsize=65536)
def _params_of(values: tuple) -> pure_mm.PureMMParams:
    return params_for(SimpleNamespace(**dict(zip(_ORDER_FIELDS, values))))


def _cached_params(order) -> pure_mm.PureMMParams:
    """``params_for(order)``, built (and validated) once per order and parameter set, not once per
    tick: keyed by the order's row as the cycle read it (``_due_sessions``)."""
    return _params_of(order.row)


def _market_inputs(market) -> tuple[pure_mm.MarketSnapshot, pure_mm.MarketRules]:
    return (pure_mm.MarketSnapshot(best_bid=market.best_bid, best_ask=market.best_ask, last_price=market.last_price),
            pure_mm.MarketRules(price_tick=market.price_tick, amount_step=market.amount_step,
                                min_amount=market.min_amount, min_notional=market.min_notional))


def strategies_run_due(*, now: datetime | None = None, slot: int | None = None) -> CycleSummary:
    """Run every running session whose next run is due; write the intents of all of them."""
    now = now or timezone.now()
    if halt_engaged():
        # Kill switch: plan nothing; cancels already written still go through.
        logger.warning("event=strategy_cycle_halted")
        return CycleSummary()
    slot = slot if slot is not None else period_start_ms(now)
    sessions, positions = _due_sessions(now)
    if not sessions:
        return CycleSummary()

    markets = {(m.account_id, m.symbol): m for m in MarketData.objects.filter(
        account_id__in={s.order.exchange_account_id for s in sessions},
        symbol__in={s.order.pair.symbol for s in sessions})}
    keys = {strategy_key(s.order.ref): s for s in sessions}
    recent = now - timedelta(seconds=RECENT_FILLS_S)
    tracked, unclaimed = _active_orders(keys, recent)

    stale_before = _stale_before(now)
    inputs: dict[tuple[int, str], tuple] = {}  # per market: its snapshot and rules, built once a cycle
    # Rows as plain dicts: building thousands of model instances costs more than writing them.
    new_intents: list[dict] = []
    unsent: dict[str, tuple[int, bool]] = {}  # client id -> (intent pk, tracked) of creates cancelled unsent
    to_cancel: list[tuple[str, str, int, str]] = []  # tracked orders to cancel: (client id, key, account, symbol)
    hang_ids: list[str] = []
    ran: list[SimpleNamespace] = []
    stale = 0
    for key, session in keys.items():
        order = session.order
        market = markets.get((order.exchange_account_id, order.pair.symbol))
        if market is None or market.fetched_at < stale_before:
            stale += 1
            continue
        # The order's own locked position (locks, fills, fees): never the user's other orders' funds.
        order_key = order.ref
        budget = pure_mm.Budget(base=max(positions.get((order_key, order.pair.base_asset_id), _ZERO), _ZERO),
                                quote=max(positions.get((order_key, order.pair.quote_asset_id), _ZERO), _ZERO))
        try:
            params = _cached_params(order)
            market_key = (order.exchange_account_id, order.pair.symbol)
            if market_key not in inputs:
                inputs[market_key] = _market_inputs(market)
            snapshot, rules = inputs[market_key]
            proposal = pure_mm.propose_orders(
                params=params, market=snapshot, rules=rules,
                balances=pure_mm.Balances(base=budget.base, quote=budget.quote), budget=budget,
            )
            diff = order_diff.diff_orders(desired=proposal.orders, tracked=[_tracked_view(t) for t in tracked[key]],
                                          params=params, budget=budget, now=now)
        except pure_mm.StrategyInputError as exc:
            logger.warning("event=strategy_input_error order_id=%s error=%s", order.order_id, exc)
            continue
        ran.append(session)
        for cancel in diff.cancel:
            cid = cancel.client_order_id
            if cid in unclaimed:
                unsent[cid] = unclaimed[cid]
            else:
                to_cancel.append((cid, key, order.exchange_account_id, order.pair.symbol))
        hang_ids.extend(diff.hang)
        for desired in diff.create:
            intent_id = f"{key}:{slot}:create:{desired.side.value}{desired.layer}"
            client_order_id = client_order_id_for(order.ref, intent_id)
            new_intents.append(dict(
                intent_id=intent_id, kind=CREATE, strategy_key=key, account_id=order.exchange_account_id,
                symbol=order.pair.symbol, side=desired.side.value, price=desired.price, amount=desired.amount,
                layer=desired.layer, client_order_id=client_order_id,
            ))

    superseded = 0
    with transaction.atomic():
        if unsent or to_cancel:
            superseded = _write_cancels(unsent, to_cancel, slot, new_intents)
        if hang_ids:
            TrackedOrder.objects.filter(_among(TrackedOrder, "client_order_id", hang_ids)).update(hanging=True, updated_at=now)
        _insert_ignoring_conflicts(Intent, new_intents, now)
        _schedule_next_runs(list(keys.values()), now)
    summary = CycleSummary(sessions_due=len(sessions), sessions_run=len(ran), sessions_stale=stale,
                           intents_written=len(new_intents), superseded=superseded)
    logger.info("event=strategy_cycle due=%s run=%s stale=%s intents=%s superseded=%s", summary.sessions_due,
                summary.sessions_run, summary.sessions_stale, summary.intents_written, summary.superseded)
    return summary


def _active_orders(keys: dict, recent: datetime) -> tuple[dict[str, list[tuple]], dict[str, tuple[int, bool]]]:
    """Per strategy key, its active orders (and those filled recently, for hanging orders) as rows
    of ``_TRACKED_COLUMNS``: the tracked orders, plus every create intent not yet claimed; and the
    intent pk of every create never sent (and whether it is tracked), by client order id.

    A create intent has no tracked order until it is claimed: the claim inserts it in the same
    transaction that takes the intent out of ``new`` (intents.gates). So the unclaimed creates are
    read first and the tracked orders second: an intent claimed between the two reads is in both
    (the tracked row wins), and none can be in neither, so a slot whose create is on its way is
    never seen empty and a ladder never stacks. The pks returned are those of the creates still
    ``new`` and never sent, which a cancel supersedes instead of sending.

    On PostgreSQL both are one statement, so one snapshot: an intent is either still ``new`` or
    already has its tracked order, never both nor neither.
    """
    rows: dict[str, dict[str, tuple]] = {key: {} for key in keys}
    if connection.vendor == "postgresql":
        pending = []
        key_list = list(keys)
        for row in _server_bound(_active_orders_sql(), [key_list, key_list, [s.value for s in OPEN_TRACKED_STATUSES],
                                                        TrackedOrderStatus.FILLED.value, recent], prepare=False):
            if row[0] is not None:  # an unclaimed create: its intent's pk, then _PENDING_COLUMNS
                pending.append(row[:9])
            else:  # a tracked order: _TRACKED_COLUMNS
                rows[row[1]][row[2]] = row[1:7] + row[9:10] + row[7:8] + row[10:13]
    else:
        pending = list(Intent.objects.filter(
            _among(Intent, "strategy_key", keys), kind=IntentKind.CREATE, status=IntentStatus.NEW,
        ).values_list(*_PENDING_COLUMNS))
        for row in TrackedOrder.objects.filter(_among(TrackedOrder, "strategy_key", keys)).filter(
                Q(status__in=OPEN_TRACKED_STATUSES) | Q(status=TrackedOrderStatus.FILLED, updated_at__gte=recent)
        ).values_list(*_TRACKED_COLUMNS):
            rows[row[0]][row[1]] = row
    unsent: dict[str, tuple[int, bool]] = {}
    for pk, key, client_order_id, side, price, amount, layer, created_at, sent_at in pending:
        if sent_at is None:
            # Never sent (unclaimed, or claimed once and back for a retry): superseded if cancelled.
            unsent[client_order_id] = (pk, client_order_id in rows[key])
        if client_order_id not in rows[key]:
            rows[key][client_order_id] = (key, client_order_id, side, price, amount, layer or 0, PENDING_CREATE,
                                          created_at, _ZERO, None, False)
    return {key: list(orders.values()) for key, orders in rows.items()}, unsent


# What the cycle reads of an unclaimed create intent.
_PENDING_COLUMNS = ("pk", "strategy_key", "client_order_id", "side", "price", "amount", "layer", "created_at", "sent_at")


@functools.cache
def _active_orders_sql() -> str:
    """The unclaimed creates and the tracked orders of a list of keys, as one result: a create's
    row is its pk and ``_PENDING_COLUMNS`` (padded), a tracked order's row is a NULL pk, the
    columns both have in the order of ``_PENDING_COLUMNS`` (strategy key .. created_at, sent_at
    NULL), then status, filled, last_fill_at, hanging."""
    qn = connection.ops.quote_name
    shared = ("strategy_key", "client_order_id", "side", "price", "amount", "layer", "created_at")
    return (
        f"SELECT i.id, {', '.join(_column(Intent, 'i', f) for f in shared)}, {_column(Intent, 'i', 'sent_at')}, "
        f"NULL::varchar, NULL::numeric, NULL::timestamptz, NULL::boolean FROM {qn(Intent._meta.db_table)} i "
        f"WHERE {_column(Intent, 'i', 'strategy_key')} = ANY(%s::varchar[]) AND {_column(Intent, 'i', 'status')} = "
        f"'{IntentStatus.NEW.value}' AND {_column(Intent, 'i', 'kind')} = '{CREATE}' "
        f"UNION ALL "
        f"SELECT NULL::bigint, {', '.join(_column(TrackedOrder, 't', f) for f in shared)}, NULL::timestamptz, "
        f"{', '.join(_column(TrackedOrder, 't', f) for f in ('status', 'filled', 'last_fill_at', 'hanging'))} "
        f"FROM {qn(TrackedOrder._meta.db_table)} t "
        f"WHERE {_column(TrackedOrder, 't', 'strategy_key')} = ANY(%s::varchar[]) "
        f"AND ({_column(TrackedOrder, 't', 'status')} = ANY(%s::varchar[]) "
        f"OR ({_column(TrackedOrder, 't', 'status')} = %s AND {_column(TrackedOrder, 't', 'updated_at')} >= %s))"
    )


def _write_cancels(unsent: dict[str, tuple[int, bool]], to_cancel: list[tuple[str, str, int, str]], slot: int,
                   new_intents: list[dict]) -> int:
    """Supersede the creates never sent (``unsent``: client order id -> (intent pk, has a tracked
    order); nothing is on the exchange) and write a cancel intent for each order of ``to_cancel``
    (client order id, strategy key, account, symbol), marking it ``pending_cancel``. Returns how
    many were superseded.

    Superseded only while still ``new`` and never sent: a create claimed since the cycle read it has
    its tracked order by now (its claim wrote it) and gets a cancel instead; one waiting for a retry
    after an ambiguous send (sent_at set) is tracked already, so it is in ``to_cancel``.
    """
    superseded = 0
    if unsent:
        pks = [pk for pk, _ in unsent.values()]
        finished = dict(status=IntentStatus.SUPERSEDED.value, finished_at=timezone.now(),
                        last_error="cancelled before it was sent")
        if connection.vendor == "postgresql":  # the ORM took longer to build it than to bind the ids
            qn = connection.ops.quote_name
            superseded = _server_bound(
                f"UPDATE {qn(Intent._meta.db_table)} SET status = %s, finished_at = %s, last_error = %s "
                f"WHERE id = ANY(%s::bigint[]) AND status = '{IntentStatus.NEW.value}' AND sent_at IS NULL",
                [*finished.values(), pks], prepare=False, fetch=False)
        else:
            superseded = Intent.objects.filter(
                _among(Intent, "id", pks, "bigint"), status=IntentStatus.NEW, sent_at__isnull=True).update(**finished)
        tracked = [cid for cid, (_, has_tracked) in unsent.items() if has_tracked]
        if tracked:
            # Claimed once and back for a retry before it was sent: its tracked order is closed too.
            TrackedOrder.objects.filter(_among(TrackedOrder, "client_order_id", tracked),
                                        status=TrackedOrderStatus.PENDING_CREATE).update(
                status=TrackedOrderStatus.CANCELLED)
        if superseded < len(pks):
            # Claimed (or superseded by a stop or the kill switch) in the meantime: cancel what is tracked.
            gone = set(Intent.objects.filter(_among(Intent, "id", pks, "bigint")).exclude(
                status=IntentStatus.SUPERSEDED).values_list("client_order_id", flat=True))
            to_cancel = to_cancel + list(TrackedOrder.objects.filter(
                _among(TrackedOrder, "client_order_id", gone), status__in=OPEN_TRACKED_STATUSES,
            ).values_list("client_order_id", "strategy_key", "account_id", "symbol"))
    if to_cancel:
        for client_order_id, key, account_id, symbol in to_cancel:
            new_intents.append(dict(
                intent_id=f"{key}:{slot}:cancel:{client_order_id}", strategy_key=key, account_id=account_id,
                kind=CANCEL, symbol=symbol, client_order_id=client_order_id,
            ))
        TrackedOrder.objects.filter(_among(TrackedOrder, "client_order_id", [c[0] for c in to_cancel])).update(
            status=TrackedOrderStatus.PENDING_CANCEL)
    return superseded


# --- Bulk writes whose cost does not grow with Django's per-row and per-parameter overhead ------
CREATE, CANCEL = IntentKind.CREATE.value, IntentKind.CANCEL.value
PENDING_CREATE = TrackedOrderStatus.PENDING_CREATE.value


def _among(model, field: str, values, db_type: str = "text"):
    """A filter ``field IN values`` over many values: one array parameter on PostgreSQL.

    Thousands of separate parameters cost more to compile and bind (client-side, in psycopg)
    than the statement costs to run. ``= ANY(array)`` rather than ``IN (SELECT unnest(...))``:
    PostgreSQL hashes a constant array, whereas the join form, when its statistics are stale
    after a burst of inserts, became a nested loop comparing every new intent with every id.
    """
    values = list(values)
    if connection.vendor == "postgresql":
        qn = connection.ops.quote_name
        column = f"{qn(model._meta.db_table)}.{qn(model._meta.get_field(field).column)}"
        return RawSQL(f"{column} = ANY(%s::{db_type}[])", [values], output_field=BooleanField())
    return Q(**{f"{field}__in": values})


def _column_default(field, now: datetime):
    """What an insert that omits ``field`` writes: ``now`` for auto_now(_add) fields, else the
    field's default as ``bulk_create`` takes it ("" for a non-null text field without one)."""
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return now
    default = field.get_default()
    return default.value if isinstance(default, Enum) else default


def _insert_ignoring_conflicts(model, rows: list[dict], now: datetime) -> None:
    """Insert ``rows`` (field values by attname), skipping conflicting rows, as
    ``bulk_create(ignore_conflicts=True)`` does.

    Omitted fields take their (constant) default; auto_now and auto_now_add fields take ``now``.
    On PostgreSQL: one ``INSERT ... SELECT FROM unnest(...)`` with one array per column, no
    model instances and a statement that does not grow with the number of rows.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        _insert_from_json(model, rows, now)
        return
    columns, selects, params = [], [], []
    constant_columns, constant_selects, constants = [], [], []
    given = set().union(*rows)  # the fields some row names; every other column is its default throughout
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        default = _column_default(field, now)
        name = field.attname
        column = connection.ops.quote_name(field.column)
        db_type = field.db_type(connection)
        if name in given:
            values = [row.get(name, default) for row in rows]
            first = values[0]
            # (count() compares in C; the type check tells 1 from Decimal("1") and True.)
            constant = values.count(first) == len(values) and all(type(v) is type(first) for v in values)
        else:
            values, first, constant = None, default, True
        if constant:
            # The same value in every row (a default, a status, the time): one parameter, not an array.
            constant_columns.append(column)
            constant_selects.append(f"%b::{db_type}")
            constants.append(first)
        else:
            columns.append(column)
            selects.append(f"%b::{db_type}[]")
            params.append(values)
    # Server-side binding: the arrays travel in binary, where Django's client-side cursor would
    # quote every element as text.
    table = connection.ops.quote_name(model._meta.db_table)
    source = f"unnest({', '.join(selects)})" if selects else "generate_series(1, %b::int)"
    if not selects:
        params.append(len(rows))
    _server_bound(
        f"INSERT INTO {table} ({', '.join(columns + constant_columns)}) "
        f"SELECT {'u.*' if selects else ''}{', ' if selects and constant_selects else ''}"
        f"{', '.join(constant_selects)} FROM {source} AS u ON CONFLICT DO NOTHING",
        constants + params,  # in the order of their placeholders: the SELECT list, then FROM
        prepare=False, fetch=False,
    )


def _insert_from_json(model, rows: list[dict], now: datetime) -> None:
    """SQLite: the rows as one JSON parameter (an array per row) read back with ``json_each``, so
    the insert is one statement at any size, as on PostgreSQL; ``bulk_create`` split it into one
    statement per ~50 rows (Django's 999-parameter cap for SQLite), 86 for a tick of 4,000 intents.
    Values are what each field gives the database (amounts as fixed text, times as text)."""
    import json

    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    defaults = {field.attname: _column_default(field, now) for field in fields}
    prep = [(field.attname, field.get_db_prep_value) for field in fields]
    values = [[to_db_value(row.get(name, defaults[name]), connection, prepared=False) for name, to_db_value in prep]
              for row in rows]
    qn = connection.ops.quote_name
    with connection.cursor() as cur:
        cur.execute(
            f"INSERT OR IGNORE INTO {qn(model._meta.db_table)} ({', '.join(qn(f.column) for f in fields)}) "
            f"SELECT {', '.join(f'json_extract(value, {chr(39)}$[{i}]{chr(39)})' for i in range(len(fields)))} "
            "FROM json_each(%s)",
            [json.dumps(values)],
        )


def _schedule_next_runs(sessions: list, now: datetime) -> None:
    """Every session of the cycle is next due ``cadence_s`` after ``now``: one UPDATE (on
    PostgreSQL a prepared one; elsewhere a case per cadence)."""
    if connection.vendor == "postgresql":
        qn = connection.ops.quote_name
        _server_bound(
            f"UPDATE {qn(StrategySession._meta.db_table)} SET {qn('next_run_at')} = "
            f"%s::timestamptz + {qn('cadence_s')} * interval '1 second' WHERE id = ANY(%s::bigint[])",
            [now, [s.pk for s in sessions]], prepare=True, fetch=False)
        return
    cadences = sorted({s.cadence_s for s in sessions})
    StrategySession.objects.filter(_among(StrategySession, "id", [s.pk for s in sessions], "bigint")).update(next_run_at=Case(
        *[When(cadence_s=cadence, then=Value(now + timedelta(seconds=cadence))) for cadence in cadences],
        default=F("next_run_at"), output_field=DateTimeField(),
    ))


def enqueue_trackers() -> None:
    """Worker driver: one message (``run_trackers``) that a tick worker fans out into the per-market
    and per-account tracker tasks. Publishing each of them from the tick cost ~1 ms apiece, and the
    tick worker also reads which markets and accounts the running sessions trade on (a join over
    every running session: ~2.5 ms at 1,000 sessions), so the tick only publishes."""
    from .tasks import run_trackers

    run_trackers.apply_async(expires=_task_expiry())


def refresh_market_data(markets, *, inline: bool) -> None:
    from .tasks import refresh_market_data as task

    for account_id, symbol in markets:
        if inline:
            from .trackers import market_data_refresh

            market_data_refresh(account_id=account_id, symbol=symbol)
        else:
            task.apply_async(args=[account_id, symbol], expires=_task_expiry())


def track_orders(accounts, *, inline: bool) -> None:
    from .tasks import track_exchange_orders as task

    for account_id in accounts:
        if inline:
            from .trackers import orders_track

            orders_track(account_id=account_id)
        else:
            task.apply_async(args=[account_id], expires=_task_expiry())


def dispatch(*, inline: bool) -> int:
    """Hand the committed intents to executors. Inline (sync driver): claim and execute here.
    Worker driver: one ``dispatch_intents`` message; an intents worker claims within the limits and
    enqueues the executions, so the tick's own path ends when its intents are committed (the claim's
    statements and a publish per claimed intent cost the tick ~10 ms). Returns what was dispatched
    here (0 when handed on)."""
    if inline:
        from intents.dispatcher import intents_dispatch

        return intents_dispatch(inline=True)
    from intents.tasks import dispatch_intents

    dispatch_intents.apply_async(expires=_task_expiry())
    return 0


def _task_expiry() -> float:
    return max(settings.STRATEGY_TICK_SIZE_MS / 1000 * 2, 1.0)
