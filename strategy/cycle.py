"""The strategy cycle: for every due session, desired orders -> diff -> intents, in bulk.

A cycle runs a constant number of queries whatever the number of sessions: one read each of
sessions, market data, balances, unclaimed create intents and tracked orders, then bulk writes.
A create intent stands for its order until it is claimed (the claim writes the tracked order,
``pending_create``); each cancel marks its order ``pending_cancel`` in the cycle's transaction, so
the next cycle sees what is on its way and a ladder never stacks. A create not yet sent when its
order is cancelled is superseded instead. Its statements are in strategy/sql.py.
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, DateTimeField, F, Q, Value, When
from django.utils import timezone

from intents import tracked_orders
from intents.halt import halt_engaged
from intents.ids import client_order_id_for, strategy_key
from intents.models import (
    OPEN_TRACKED_STATUSES, Intent, IntentKind, IntentStatus, TrackedFill, TrackedOrder, TrackedOrderStatus,
)
from ledger.selectors import ref_positions
from mmproject.sql import among, insert_ignoring_conflicts, server_bound

from . import order_diff, pure_mm, sql
from .models import MarketData, SessionStatus, StrategySession
from .order_rows import ORDER_REF
from .params import INVENTORY_COST_NAMES, params_for, reference_market
from .periods import period_start_ms
from .sql import ORDER_FIELDS, PAIR_FIELDS, PENDING_COLUMNS, SESSION_FIELDS, STATE_FIELDS

logger = logging.getLogger(__name__)

CREATE, CANCEL = IntentKind.CREATE.value, IntentKind.CANCEL.value
PENDING_CREATE = TrackedOrderStatus.PENDING_CREATE.value


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


def _stale_before(now: datetime) -> datetime:
    ms = max(settings.STRATEGY_TICK_SIZE_MS * STALE_AFTER_TICKS, STALE_AFTER_MIN_S * 1000)
    return now - timedelta(milliseconds=ms)


def _session_of(row: tuple) -> SimpleNamespace:
    """A row of ``SESSION_FIELDS``, ``ORDER_FIELDS``, ``PAIR_FIELDS`` as a session whose
    ``session.order`` and ``session.order.pair`` are attributes."""
    n_session, n_order = len(SESSION_FIELDS), len(ORDER_FIELDS)
    values = row[n_session:n_session + n_order]
    order = SimpleNamespace(**dict(zip(ORDER_FIELDS, values)), row=values)
    order.ref = str(order.order_id)  # the order id as text (its ledger ref), made once a cycle
    order.pair = SimpleNamespace(**dict(zip(PAIR_FIELDS, row[n_session + n_order:n_session + n_order + 3])))
    return SimpleNamespace(**dict(zip(SESSION_FIELDS, row[:n_session])), order=order)


def due_sessions(now: datetime) -> tuple[list[SimpleNamespace], dict[tuple[str, str], Decimal]]:
    """Running sessions due at ``now`` (``_session_of``), and what each one's order holds locked
    per asset, ``{(order id, asset id): amount}`` (ledger.selectors.ref_positions).

    On PostgreSQL one prepared statement reads both: the sessions with their orders and pairs,
    and each order's two positions summed in SQL (exact on NUMERIC): the ORM's two queries spent
    most of their time being built and planned (docs/decisions.md, "The strategy cycle's hot
    statements are hand-written on PostgreSQL"). SQLite sums amounts (text there) as floats, so it
    reads the positions with ref_positions, which sums in Decimal.
    """
    if connection.vendor != "postgresql":
        columns = (*SESSION_FIELDS, *(f"order__{f}" for f in ORDER_FIELDS),
                   *(f"order__pair__{f}" for f in PAIR_FIELDS))
        sessions = [_session_of(row) for row in StrategySession.objects.filter(
            status=SessionStatus.RUNNING, next_run_at__lte=now).exclude(
            order__exchange_account__halted_at__isnull=False).values_list(*columns)]
        return sessions, ref_positions(ref_type=ORDER_REF, ref_ids=[s.order.order_id for s in sessions])
    sessions, positions = [], {}
    for row in server_bound(sql.due_sessions_sql(), [SessionStatus.RUNNING.value, now], prepare=True):
        session = _session_of(row)
        sessions.append(session)
        order_key, pair = session.order.ref, session.order.pair
        positions[(order_key, pair.base_asset_id)] = row[-2] if row[-2] is not None else _ZERO
        positions[(order_key, pair.quote_asset_id)] = row[-1] if row[-1] is not None else _ZERO
    return sessions, positions


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


# order id -> (the order's row as the cycle read it, its PureMMParams); emptied when it grows past the bound.
_PARAMS: dict = {}
_PARAMS_BOUND = 65536


def _cached_params(order) -> pure_mm.PureMMParams:
    """``params_for(order)``, built (and validated) once per order and parameter set, not once per
    tick: kept by order id with the row it was built from (``due_sessions``), and built again when the
    row differs. Comparing the row costs less than hashing it (fresh Decimals every tick), which an
    lru_cache keyed by the row did for every session of every tick."""
    kept = _PARAMS.get(order.order_id)
    if kept is not None and kept[0] == order.row:
        return kept[1]
    params = params_for(SimpleNamespace(**dict(zip(ORDER_FIELDS, order.row))))
    if len(_PARAMS) >= _PARAMS_BOUND:
        _PARAMS.clear()
    _PARAMS[order.order_id] = (order.row, params)
    return params


def _market_inputs(market, own: dict | None) -> tuple[pure_mm.MarketSnapshot, pure_mm.MarketRules]:
    """The market's snapshot and rules; with ``own`` (our resting amount by (side, price) on this market)
    also the best prices of others, for order optimization."""
    others = {}
    if own is not None:
        others = {"others_best_bid": _best_of_others(market.bids, own, "buy"),
                  "others_best_ask": _best_of_others(market.asks, own, "sell")}
    return (pure_mm.MarketSnapshot(best_bid=market.best_bid, best_ask=market.best_ask, last_price=market.last_price,
                                   **others),
            pure_mm.MarketRules(price_tick=market.price_tick, amount_step=market.amount_step,
                                min_amount=market.min_amount, min_notional=market.min_notional,
                                maker_fee=market.maker_fee))


def _best_of_others(levels, own: dict, side: str) -> Decimal | None:
    """The best price of a stored book side at which someone else rests (our amount taken out)."""
    for price, amount in levels:
        price = Decimal(price)
        if Decimal(amount) > own.get((side, price), _ZERO):
            return price
    return None


def _own_resting(markets: set[tuple[int, str]]) -> dict[tuple[int, str], dict]:
    """Our orders on the book per market: {(account, symbol): {(side, price): remaining amount}}."""
    own: dict[tuple[int, str], dict] = {market: {} for market in markets}
    rows = TrackedOrder.objects.filter(
        account_id__in={a for a, _ in markets}, symbol__in={s for _, s in markets},
        status__in=tracked_orders.ON_BOOK,
    ).values_list("account_id", "symbol", "side", "price", "amount", "filled")
    for account_id, symbol, side, price, amount, filled in rows:
        book = own.get((account_id, symbol))
        if book is not None:
            book[(side, price)] = book.get((side, price), _ZERO) + amount - filled
    return own


def strategies_run_due(*, now: datetime | None = None, slot: int | None = None) -> CycleSummary:
    """Run every running session whose next run is due; write the intents of all of them."""
    now = now or timezone.now()
    if halt_engaged():
        # Kill switch: plan nothing; cancels already written still go through.
        logger.warning("event=strategy_cycle_halted")
        return CycleSummary()
    slot = slot if slot is not None else period_start_ms(now)
    sessions, positions = due_sessions(now)
    if not sessions:
        return CycleSummary()

    sources = {s.pk: _source_key(s.order) for s in sessions}
    markets = {(m.account_id, m.symbol): m for m in MarketData.objects.filter(
        account_id__in={s.order.exchange_account_id for s in sessions} | {a for a, _ in sources.values()},
        symbol__in={s.order.pair.symbol for s in sessions} | {m for _, m in sources.values()})}
    keys = {strategy_key(s.order.ref): s for s in sessions}
    recent = now - timedelta(seconds=RECENT_FILLS_S)
    tracked, unclaimed = _active_orders(keys, recent)

    stale_before = _stale_before(now)
    # Order optimization needs the book without our own orders: one read of them, only when a due order uses it.
    own = _own_resting(set(markets)) if any(s.order.order_optimization_enabled for s in sessions) else {}
    _session_state([s for s in sessions if s.order.moving_price_band_enabled
                    or s.order.price_source_type in INVENTORY_COST_NAMES])
    inventories = _inventories([s for s in sessions if s.order.price_source_type in INVENTORY_COST_NAMES])
    bands: dict[int, tuple] = {}  # session pk -> its moving band's new (anchor, set at)
    inputs: dict[tuple[int, str], tuple] = {}  # per market: its snapshot and rules, built once a cycle
    # Rows as plain dicts: building thousands of model instances costs more than writing them.
    new_intents: list[dict] = []
    unsent: dict[str, tuple[int, bool]] = {}  # client id -> (intent pk, tracked) of creates cancelled unsent
    to_cancel: list[tuple[str, str, int, str]] = []  # tracked orders to cancel: (client id, key, account, symbol)
    hang_ids: list[str] = []
    wakes: dict[int, datetime] = {}  # session pk -> when its deferred creates may be made (filled_order_delay)
    # Sessions that refreshed: every session not run (stale, refused input) counts as refreshed too, so
    # it is next due a cadence from now, as before.
    refreshed: set[int] = set()
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
                inputs[market_key] = _market_inputs(market, own.get(market_key))
            snapshot, rules = inputs[market_key]
            reference_market = None
            source_key = sources[session.pk]
            if source_key != market_key:
                source = markets.get(source_key)
                if source is None or source.fetched_at < stale_before:
                    stale += 1
                    logger.warning("event=strategy_price_source_stale order_id=%s account_id=%s symbol=%s",
                                   order.order_id, *source_key)
                    continue
                if source_key not in inputs:
                    inputs[source_key] = _market_inputs(source, None)
                reference_market = inputs[source_key][0]
            if session.pk in inventories:
                held, paid = inventories[session.pk][:2]
                price = pure_mm.inventory_price(held, paid)
                if reference_market is not None:
                    reference_market = dataclasses.replace(reference_market, inventory_price=price)
                else:
                    snapshot = dataclasses.replace(snapshot, inventory_price=price)
            anchor = None
            if params.moving_price_band_enabled:
                reference = (reference_market or snapshot).reference_price(params.price_source)
                anchor, anchor_at = pure_mm.moving_band_anchor(params, reference, session.band_price,
                                                               session.band_set_at, now)
                if (anchor, anchor_at) != (session.band_price, session.band_set_at):
                    bands[session.pk] = (anchor, anchor_at)
            proposal = pure_mm.propose_orders(
                params=params, market=snapshot, rules=rules,
                balances=pure_mm.Balances(base=budget.base, quote=budget.quote), budget=budget,
                reference_market=reference_market, band_anchor=anchor,
            )
            # A refresh every cadence_s; a run in between (woken: an order closed) only refills free slots.
            refresh = session.refreshed_at is None or now >= session.refreshed_at + timedelta(
                seconds=session.cadence_s)
            diff = order_diff.diff_orders(desired=proposal.orders, tracked=[_tracked_view(t) for t in tracked[key]],
                                          params=params, budget=budget, now=now,
                                          reference_price=proposal.reference_price, refresh=refresh)
        except pure_mm.StrategyInputError as exc:
            logger.warning("event=strategy_input_error order_id=%s error=%s", order.order_id, exc)
            continue
        ran.append(session)
        if refresh:
            refreshed.add(session.pk)
        if diff.wake_at is not None and diff.wake_at < now + timedelta(seconds=session.cadence_s):
            wakes[session.pk] = diff.wake_at
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
            tracked_orders.mark_hanging(hang_ids, now=now)
        insert_ignoring_conflicts(Intent, new_intents, now)
        _write_session_state(bands, {pk: state for pk, state in inventories.items() if state[3]})
        refreshed |= {s.pk for s in sessions} - {s.pk for s in ran}
        _schedule_next_runs(list(keys.values()), refreshed, now)
        if wakes:
            StrategySession.objects.filter(pk__in=list(wakes)).update(next_run_at=Case(
                *[When(pk=pk, then=Value(at)) for pk, at in wakes.items()], output_field=DateTimeField()))
    summary = CycleSummary(sessions_due=len(sessions), sessions_run=len(ran), sessions_stale=stale,
                           intents_written=len(new_intents), superseded=superseded)
    logger.info("event=strategy_cycle due=%s run=%s stale=%s intents=%s superseded=%s", summary.sessions_due,
                summary.sessions_run, summary.sessions_stale, summary.intents_written, summary.superseded)
    return summary


def _source_key(order) -> tuple[int, str]:
    """The market the order's reference price comes from: its own unless a price source names another
    account or symbol."""
    return reference_market(order.exchange_account_id, order.pair.symbol, order.price_source_account,
                            order.price_source_market)


def _session_state(sessions: list) -> None:
    """Read the kept state (``sql.STATE_FIELDS``) onto the sessions whose order uses a moving band or the
    inventory cost: one statement, none when no due session does (the cycle's one read of thousands
    of sessions leaves these columns out)."""
    if not sessions:
        return
    by_pk = {s.pk: s for s in sessions}
    for pk, *values in StrategySession.objects.filter(pk__in=list(by_pk)).values_list("pk", *STATE_FIELDS):
        by_pk[pk].__dict__.update(zip(STATE_FIELDS, values))


def _inventories(sessions: list) -> dict[int, tuple[Decimal, Decimal, int, bool]]:
    """Per session priced at its inventory cost: (bought base held, quote paid for it, last fill folded
    in, whether that changed), with the fills recorded since its last run folded in, oldest first
    (``pure_mm.inventory_cost_after``). One read of those fills for every such session."""
    if not sessions:
        return {}
    state = {s.pk: [s.inventory_base, s.inventory_cost, s.inventory_fill_id, False] for s in sessions}
    by_key = {strategy_key(s.order.ref): s.pk for s in sessions}
    rows = TrackedFill.objects.filter(
        among(TrackedFill, "strategy_key", by_key), pk__gt=min(s.inventory_fill_id for s in sessions),
    ).order_by("pk").values_list("strategy_key", "pk", "side", "amount", "cost")
    for key, pk, side, amount, cost in rows:
        held = state[by_key[key]]
        if pk <= held[2]:
            continue
        held[0], held[1] = pure_mm.inventory_cost_after(held[0], held[1], side=side, amount=amount, quote=cost)
        held[2], held[3] = pk, True
    return {pk: tuple(values) for pk, values in state.items()}


def _write_session_state(bands: dict[int, tuple], inventories: dict[int, tuple]) -> None:
    """Store the moving bands set again and the inventories that took in new fills (rare: one
    statement each, only when there is something to write)."""
    if bands:
        StrategySession.objects.filter(pk__in=list(bands)).update(
            band_price=Case(*[When(pk=pk, then=Value(price)) for pk, (price, _) in bands.items()],
                            output_field=StrategySession._meta.get_field("band_price")),
            band_set_at=Case(*[When(pk=pk, then=Value(at)) for pk, (_, at) in bands.items()],
                             output_field=DateTimeField()))
    if inventories:
        amount_field = StrategySession._meta.get_field("inventory_base")
        StrategySession.objects.filter(pk__in=list(inventories)).update(
            inventory_base=Case(*[When(pk=pk, then=Value(s[0])) for pk, s in inventories.items()],
                                output_field=amount_field),
            inventory_cost=Case(*[When(pk=pk, then=Value(s[1])) for pk, s in inventories.items()],
                                output_field=amount_field),
            inventory_fill_id=Case(*[When(pk=pk, then=Value(s[2])) for pk, s in inventories.items()],
                                   output_field=StrategySession._meta.get_field("inventory_fill_id")))


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
        for row in server_bound(sql.active_orders_sql(), [key_list, key_list, [s.value for s in OPEN_TRACKED_STATUSES],
                                                        TrackedOrderStatus.FILLED.value, recent], prepare=False):
            if row[0] is not None:  # an unclaimed create: its intent's pk, then PENDING_COLUMNS
                pending.append(row[:9])
            else:  # a tracked order: _TRACKED_COLUMNS
                rows[row[1]][row[2]] = row[1:7] + row[9:10] + row[7:8] + row[10:13]
    else:
        pending = list(Intent.objects.filter(
            among(Intent, "strategy_key", keys), kind=IntentKind.CREATE, status=IntentStatus.NEW,
        ).values_list(*PENDING_COLUMNS))
        for row in TrackedOrder.objects.filter(among(TrackedOrder, "strategy_key", keys)).filter(
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
        if connection.vendor == "postgresql":
            superseded = server_bound(sql.supersede_unsent_sql(), [*finished.values(), pks], prepare=False, fetch=False)
        else:
            superseded = Intent.objects.filter(
                among(Intent, "id", pks, "bigint"), status=IntentStatus.NEW, sent_at__isnull=True).update(**finished)
        # Claimed once and back for a retry before it was sent: its tracked order is closed too.
        tracked_orders.cancel_unsent(cid for cid, (_, has_tracked) in unsent.items() if has_tracked)
        if superseded < len(pks):
            # Claimed (or superseded by a stop or the kill switch) in the meantime: cancel what is tracked.
            gone = set(Intent.objects.filter(among(Intent, "id", pks, "bigint")).exclude(
                status=IntentStatus.SUPERSEDED).values_list("client_order_id", flat=True))
            to_cancel = to_cancel + tracked_orders.open_of(gone)
    if to_cancel:
        for client_order_id, key, account_id, symbol in to_cancel:
            new_intents.append(dict(
                intent_id=f"{key}:{slot}:cancel:{client_order_id}", strategy_key=key, account_id=account_id,
                kind=CANCEL, symbol=symbol, client_order_id=client_order_id,
            ))
        tracked_orders.cancel_requested(c[0] for c in to_cancel)
    return superseded


def _schedule_next_runs(sessions: list, refreshed: set[int], now: datetime) -> None:
    """The sessions of the cycle next due: those that refreshed (``refreshed``) ``cadence_s`` after
    ``now``, with ``refreshed_at`` now; the others (refill runs) when their refresh is due. One UPDATE
    (on PostgreSQL a prepared one; elsewhere a case per cadence)."""
    ids = [s.pk for s in sessions]
    if connection.vendor == "postgresql":
        again = list(refreshed)
        server_bound(sql.schedule_next_runs_sql(), [again, now, again, now, ids], prepare=True, fetch=False)
        return
    cadences = sorted({s.cadence_s for s in sessions})
    StrategySession.objects.filter(among(StrategySession, "id", ids, "bigint")).update(
        next_run_at=Case(
            *[When(pk__in=refreshed, cadence_s=cadence, then=Value(now + timedelta(seconds=cadence)))
              for cadence in cadences],
            *[When(cadence_s=cadence, then=F("refreshed_at") + Value(timedelta(seconds=cadence)))
              for cadence in cadences],
            default=F("next_run_at"), output_field=DateTimeField()),
        refreshed_at=Case(When(pk__in=refreshed, then=Value(now)), default=F("refreshed_at"),
                          output_field=DateTimeField()),
    )