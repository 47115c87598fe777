"""Simulator writes: accounts, markets, orders and their fills, market steps, deposits, faults.

Locking: an order mutation locks its SimAccount row first; a market step locks its SimMarket
row, then the accounts it fills, in primary-key order. Order placement never locks a market,
so the two orders of acquisition cannot cross and two writers never deadlock.
"""
import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal

from django.db import transaction
from django.db.models import F

from ledger.amounts import canonical, parse_amount
from ledger.errors import InvalidAmount

from ..models import (
    OPEN_ORDER_STATUSES,
    SimAccount,
    SimBalance,
    SimConcurrency,
    SimDeposit,
    SimDepositAddress,
    SimDepthTaken,
    SimMarket,
    SimOrder,
    SimOrderStatus,
    SimTrade,
    SimWithdrawal,
)
from . import config, engine, queries
from . import errors as e

logger = logging.getLogger(__name__)

FAULT_KINDS = ("latency_ms", "timeout_after_accept_s", "http_5xx", "http_429", "unknown_order",
               # not faults but the account's standing: commission charged in this asset, at this price in quote
               "commission_asset", "commission_asset_price")


def now_ms() -> int:
    return int(time.time() * 1000)


def _amount(value, field: str) -> Decimal:
    return parse_amount(value, scale=18, allow_zero=True, field=field)


# --- Markets ----------------------------------------------------------------------------------


def _default_filters(price: Decimal) -> dict:
    """Filters scaled to the price: ~6 significant digits of price, lots worth ~0.1-1 quote unit."""
    exponent = price.adjusted()
    tick = max(Decimal(1).scaleb(exponent - 6), Decimal("0.00000001"))
    lot = min(max(Decimal(1).scaleb(-(exponent + 1)), Decimal("0.00000001")), Decimal(1))
    notional_unit = Decimal(10000) / price
    return {
        "tick_size": tick,
        "step_size": lot,
        "min_qty": lot,
        "max_qty": lot * 10**8,
        "min_price": tick,
        "max_price": engine.round_to_step(price * 1000, tick),
        "min_notional": Decimal(5),
        "step_volume": max(engine.round_to_step(notional_unit, lot, ROUND_DOWN), lot),
        "depth_quantity": max(engine.round_to_step(notional_unit / 2, lot, ROUND_DOWN), lot),
    }


def simulator_market_ensure(*, symbol: str, start_price, seed: int = 0, reset: bool = False, volatility=None,
                            **overrides) -> SimMarket:
    """Create the market ``symbol`` (e.g. "BTC/USDT") at ``start_price``, or return the existing one.

    With ``reset`` an existing market is put back to ``start_price`` at step 0 with the given seed.
    ``volatility``: standard deviation of the price's relative move per second (a fraction), set
    on a new or existing market; a new market without it takes SIM_VOLATILITY (default 0.0001).
    Overrides set any SimMarket field (tick_size, maker_fee, step_volume...).
    """
    start = _amount(start_price, "start_price")
    if volatility is not None:
        volatility = config.parse_volatility(volatility, "volatility")
    base, quote = symbol.upper().split("/")
    fields = {
        "exchange_symbol": f"{base}{quote}",
        "base": base,
        "quote": quote,
        "maker_fee": Decimal("0.001"),
        "taker_fee": Decimal("0.001"),
        "volatility": config.volatility() if volatility is None else volatility,
        **_default_filters(start),
        **{name: (_amount(v, name) if isinstance(v, (str, Decimal)) else v) for name, v in overrides.items()},
    }
    path = {
        "seed": seed, "start_price": start, "price": start, "step": 0,
        "day_open": start, "day_high": start, "day_low": start, "day_volume": Decimal(0),
        "day_quote_volume": Decimal(0),
    }
    with transaction.atomic():
        market, created = SimMarket.objects.select_for_update().get_or_create(
            symbol=f"{base}/{quote}", defaults={**fields, **path}
        )
        if not created and (reset or overrides or (volatility is not None and volatility != market.volatility)):
            changes = {**(path if reset else {}), **(fields if overrides else {})}
            if volatility is not None:
                changes["volatility"] = volatility
            elif "volatility" in changes:
                del changes["volatility"]  # an existing market keeps its own unless one is given
            for name, value in changes.items():
                setattr(market, name, value)
            market.save()
    _catch_up_forget()
    logger.info("sim_market_ready symbol=%s price=%s seed=%s volatility_per_s=%s created=%s", market.symbol,
                canonical(market.price), market.seed, canonical(market.volatility), created)
    return market


def _market_by_symbol(symbol: str) -> SimMarket:
    try:
        return SimMarket.objects.get(symbol=symbol.upper())
    except SimMarket.DoesNotExist:
        raise e.UnknownSimulatorMarket(f"no simulator market {symbol!r}") from None


# --- Accounts, balances, faults ---------------------------------------------------------------


def simulator_account_ensure(*, label: str, api_key: str, api_secret: str, balances: dict | None = None,
                             reset_balances: bool = False) -> SimAccount:
    """Create or reuse the account ``label``; set its credentials; seed balances.

    Balances are set only for assets the account does not hold yet, unless ``reset_balances``,
    which also cancels the account's open orders (their reserved funds no longer exist).
    """
    with transaction.atomic():
        account = SimAccount.objects.select_for_update().filter(label=label).first()
        if account is None:
            account = SimAccount(label=label, api_key=api_key)
            account.api_secret = api_secret
            account.save()
            SimConcurrency.objects.create(account=account)
        elif account.api_key != api_key or account.api_secret != api_secret:
            account.api_key = api_key
            account.api_secret = api_secret
            account.save(update_fields=["api_key", "api_secret_encrypted"])
        if reset_balances:
            SimOrder.objects.filter(account=account, status__in=OPEN_ORDER_STATUSES).update(
                status=SimOrderStatus.CANCELED, locked_remaining=Decimal(0), updated_ms=now_ms()
            )
        for asset, free in (balances or {}).items():
            amount = _amount(free, f"balance of {asset}")
            balance, created = SimBalance.objects.get_or_create(account=account, asset=asset.upper(),
                                                                 defaults={"free": amount})
            if not created and reset_balances:
                balance.free, balance.locked = amount, Decimal(0)
                balance.save(update_fields=["free", "locked"])
    logger.info("sim_account_ready label=%s account_id=%s", label, account.pk)
    return account


def _account_by_label(label: str) -> SimAccount:
    try:
        return SimAccount.objects.get(label=label)
    except SimAccount.DoesNotExist:
        raise e.UnknownSimulatorAccount(f"no simulator account {label!r}") from None


def simulator_set_faults(*, account_label: str, **faults) -> dict:
    """Set fault injection of an account; any omitted kind is cleared.

    latency_ms: added to every request; timeout_after_accept_s: an accepted new order's
    response is held this long (the client times out, the order exists); http_5xx, http_429,
    unknown_order: how many of the next signed requests (order lookups/cancels for
    unknown_order) fail that way.
    """
    unknown = set(faults) - set(FAULT_KINDS)
    if unknown:
        raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
    values = {kind: value for kind, value in faults.items() if value}
    SimAccount.objects.filter(label=account_label).update(faults=values)
    logger.info("sim_faults_set label=%s faults=%s", account_label, values)
    return values


def simulator_take_fault(*, account: SimAccount, kind: str) -> bool:
    """Consume one count of the fault ``kind`` of an account; True when it applies to this request.

    ``account`` is the row read by the request: without a count there, nothing is locked.
    """
    if not int(account.faults.get(kind) or 0):
        return False
    account_id = account.pk
    with transaction.atomic():
        account = SimAccount.objects.select_for_update().only("faults").get(pk=account_id)
        remaining = int(account.faults.get(kind) or 0)
        if remaining <= 0:
            return False
        faults = dict(account.faults)
        faults[kind] = remaining - 1
        SimAccount.objects.filter(pk=account_id).update(faults=faults)
    logger.info("sim_fault_injected account_id=%s kind=%s remaining=%s", account_id, kind, remaining - 1)
    return True


def simulator_set_balance(*, account_label: str, asset: str, free) -> None:
    account = _account_by_label(account_label)
    with transaction.atomic():
        SimAccount.objects.select_for_update().get(pk=account.pk)
        SimBalance.objects.update_or_create(account=account, asset=asset.upper(),
                                            defaults={"free": _amount(free, "free")})


# --- In-flight order requests (the exchange's view of our concurrency) ------------------------


# Plain SQL (queries.py): these run on every order request, and one atomic UPDATE each (the
# new maximum computed from the row's values before the update) is the whole point.


def simulator_request_started(*, account_id: int) -> None:
    queries.request_started(account_id)


def simulator_request_started_if_credentials(*, account_id: int, api_key: str,
                                             api_secret_encrypted: str) -> dict | None:
    """Count an order request when the account still has these credentials: its faults; None: not counted."""
    return queries.request_started_if_credentials(account_id, api_key, api_secret_encrypted)


def simulator_request_finished(*, account_id: int) -> None:
    queries.request_finished(account_id)


def simulator_max_concurrency(account_label: str) -> int:
    """The most order requests (create/cancel) of this account the simulator ever served at once."""
    return SimConcurrency.objects.get(account__label=account_label).max_in_flight


def simulator_reset_concurrency(account_label: str) -> None:
    SimConcurrency.objects.filter(account__label=account_label).update(max_in_flight=F("in_flight"))


# --- Orders -----------------------------------------------------------------------------------


def _balances_for_update(account_id: int, base: str, quote: str,
                         rows: dict[str, SimBalance] | None = None) -> dict[str, SimBalance]:
    """The account's balance rows of a market's assets (created empty if missing); the account row is locked.

    ``rows``: the existing rows when the caller already read them.
    """
    if rows is None:
        rows = queries.balances(account_id, base, quote)
    for asset in (base, quote):
        if asset not in rows:
            rows[asset] = SimBalance.objects.create(account_id=account_id, asset=asset)
    for row in rows.values():
        row.loaded = (row.free, row.locked)
    return rows


def _validate_filters(market: SimMarket, price: Decimal, qty: Decimal) -> None:
    if price < market.min_price or price > market.max_price or not engine.is_multiple(price, market.tick_size):
        raise e.filter_failure("PRICE_FILTER")
    if qty < market.min_qty or qty > market.max_qty or not engine.is_multiple(qty, market.step_size):
        raise e.filter_failure("LOT_SIZE")
    if price * qty < market.min_notional:
        raise e.filter_failure("NOTIONAL")


def _apply_fill(*, order: SimOrder, market: SimMarket, balances: dict[str, SimBalance], price: Decimal,
                qty: Decimal, is_maker: bool, at_ms: int) -> SimTrade:
    """Move balances for ``qty`` of ``order`` traded at ``price``; the fee is taken from what is received."""
    rate = market.maker_fee if is_maker else market.taker_fee
    quote_qty = price * qty
    base, quote = balances[market.base], balances[market.quote]
    paid_apart = _commission_in_own_asset(order.account_id, market, balances, quote_qty * rate)
    if order.side == "BUY":
        reserved = order.price * qty
        quote.locked -= reserved
        order.locked_remaining -= reserved
        quote.free += reserved - quote_qty  # price improvement of a taker fill comes back
        fee, fee_asset = paid_apart or (engine.commission(qty, rate), market.base)
        base.free += qty - (fee if fee_asset == market.base else 0)
    else:
        base.locked -= qty
        order.locked_remaining -= qty
        fee, fee_asset = paid_apart or (engine.commission(quote_qty, rate), market.quote)
        quote.free += quote_qty - (fee if fee_asset == market.quote else 0)
    order.executed_qty += qty
    order.cumulative_quote_qty += quote_qty
    order.status = SimOrderStatus.FILLED if order.executed_qty == order.orig_qty else SimOrderStatus.PARTIALLY_FILLED
    order.updated_ms = at_ms
    if order.status == SimOrderStatus.FILLED and order.locked_remaining:
        # Nothing is left to reserve for: release any remainder (only possible through rounding).
        (quote if order.side == "BUY" else base).locked -= order.locked_remaining
        (quote if order.side == "BUY" else base).free += order.locked_remaining
        order.locked_remaining = Decimal(0)
    return SimTrade(order=order, account_id=order.account_id, market=market, price=price, qty=qty,
                    quote_qty=quote_qty, commission=fee, commission_asset=fee_asset,
                    is_buyer=order.side == "BUY", is_maker=is_maker, time_ms=at_ms)


def _commission_in_own_asset(account_id: int, market: SimMarket, balances: dict[str, SimBalance],
                             quote_value: Decimal) -> tuple[Decimal, str] | None:
    """Binance's "pay fees with BNB": the fee worth ``quote_value`` (in the market's quote) taken in the
    asset the account's ``faults["commission_asset"]`` names, at ``faults["commission_asset_price"]``
    (that asset's price in the market's quote), from its free balance; None (the fee comes out of
    what the fill receives, as usual) when the account has no such option or, as on Binance, too
    little of that asset. The account row is locked by the caller; the asset's row joins
    ``balances``, which the caller saves."""
    option = SimAccount.objects.filter(pk=account_id).values_list("faults", flat=True).first() or {}
    asset = str(option.get("commission_asset") or "").upper()
    if not asset or asset in (market.base, market.quote):
        return None
    fee = engine.commission(quote_value / Decimal(str(option["commission_asset_price"])), Decimal(1))
    row = balances.get(asset)
    if row is None:
        row = SimBalance.objects.filter(account_id=account_id, asset=asset).first()
        if row is None:
            return None
        row.loaded = (row.free, row.locked)
        balances[asset] = row
    if row.free < fee:
        return None
    row.free -= fee
    return fee, asset


def _changed_balances(balances: dict[str, SimBalance]) -> list[SimBalance]:
    """The rows to write; a negative amount is a bug of this module: refuse to commit it."""
    changed = []
    for balance in balances.values():
        if balance.free < 0 or balance.locked < 0:
            raise AssertionError(f"simulator balance went negative: {balance}")
        if (balance.free, balance.locked) != balance.loaded:
            changed.append(balance)
    return changed


def _save_balances(balances: dict[str, SimBalance]) -> None:
    queries.save_balances(_changed_balances(balances))


def _market_depth(market: SimMarket, taken: dict | None = None):
    """The synthetic bids and asks of the market's current step, less what taker fills took from
    them in this step (``taken``: SimDepthTaken.taken of this step; None: read it)."""
    bids, asks = engine.synthetic_depth(
        seed=market.seed, symbol=market.symbol, step=market.step, price=market.price, tick=market.tick_size,
        lot=market.step_size, spread_ticks=market.spread_ticks, levels=market.depth_levels,
        depth_quantity=market.depth_quantity,
    )
    if taken is None:
        taken = _depth_taken(market)
    return _less_taken(bids, taken.get("bids")), _less_taken(asks, taken.get("asks"))


def _less_taken(levels: list[engine.Level], taken: dict | None) -> list[engine.Level]:
    if not taken:
        return levels
    left = (engine.Level(lvl.price, lvl.qty - Decimal(taken.get(canonical(lvl.price), 0))) for lvl in levels)
    return [lvl for lvl in left if lvl.qty > 0]


def _depth_taken(market: SimMarket) -> dict:
    """What taker fills took from the synthetic book at the market's current step (not locked)."""
    row = SimDepthTaken.objects.filter(market_id=market.pk, step=market.step).values_list("taken", flat=True).first()
    return row or {}


def _lock_depth_taken(market: SimMarket) -> SimDepthTaken:
    """Lock the market's SimDepthTaken row (created if missing) for a crossing order.

    ``market`` was read without a lock: when the row is of another step than it, its price and
    step are read again (a step may have been committed since), and a row of an older step is
    emptied for the current one.
    """
    row = SimDepthTaken.objects.select_for_update().filter(market_id=market.pk).first()
    if row is None:
        SimDepthTaken.objects.get_or_create(market_id=market.pk)
        row = SimDepthTaken.objects.select_for_update().get(market_id=market.pk)
    if row.step != market.step:
        market.price, market.step = SimMarket.objects.filter(pk=market.pk).values_list("price", "step").get()
        if row.step != market.step:
            row.step, row.taken = market.step, {}
    return row


def _crossing_levels(market: SimMarket, side: str, price: Decimal, taken: dict | None) -> list[engine.Level]:
    """The synthetic levels (what is left of them in this step) an order at ``price`` takes, best first.

    Every ask is at or above the best ask, every bid at or below the best bid: the levels (a hash
    each) are computed only when the order reaches the touch.
    """
    best_bid, best_ask = engine.synthetic_touch(price=market.price, tick=market.tick_size,
                                                spread_ticks=market.spread_ticks)
    if side == "BUY" and price >= best_ask:
        return [lvl for lvl in _market_depth(market, taken)[1] if lvl.price <= price]
    if side == "SELL" and price <= best_bid:
        return [lvl for lvl in _market_depth(market, taken)[0] if lvl.price >= price]
    return []


def simulator_place_order(*, account_id: int, exchange_symbol: str, side: str, order_type: str, price,
                          qty, client_order_id: str, time_in_force: str = "GTC", quote_qty=None,
                          post_only_cancels: bool = False,
                          market: SimMarket | None = None) -> tuple[SimOrder, list[SimTrade]]:
    """Place an order: validate filters and funds, take what crosses the book, rest the rest.

    LIMIT (GTC rests, IOC expires what does not cross), LIMIT_MAKER (post only) and MARKET (``qty``
    of base, or ``quote_qty`` to spend/receive in quote; it takes the displayed synthetic depth
    and expires what the book could not fill).
    The account row is locked and the market read in one statement; the request is then refused in
    Binance's order: symbol, missing parameter (empty ``side``, ``order_type``, ``qty``, ``price``),
    client order id, side, type, time in force, amounts, filters, would-take, duplicate, funds.
    ``post_only_cancels``: a LIMIT_MAKER that would take is accepted and canceled at once (OKX)
    instead of refused (Binance).
    ``market`` may be passed when the caller already read it (it is not read again).
    """
    with transaction.atomic():
        if market is None or market.exchange_symbol != exchange_symbol:
            market = queries.lock_account_and_market(account_id, exchange_symbol)
        else:
            queries.lock_account(account_id)
        if order_type == "MARKET":
            order, trades = _place_market_locked(account_id=account_id, market=market, side=side, qty=qty,
                                                 quote_qty=quote_qty, client_order_id=client_order_id)
        else:
            order, trades = _place_locked(account_id=account_id, market=market, side=side, order_type=order_type,
                                          price=price, qty=qty, client_order_id=client_order_id,
                                          time_in_force=time_in_force, post_only_cancels=post_only_cancels)
    if logger.isEnabledFor(logging.INFO):
        logger.info(
            "sim_order_placed account_id=%s order_id=%s client_order_id=%s symbol=%s side=%s price=%s qty=%s "
            "status=%s taker_fills=%s", account_id, order.pk, client_order_id, market.symbol, side,
            canonical(order.price), canonical(order.orig_qty), order.status, len(trades),
        )
    return order, trades


def _place_locked(*, account_id: int, market: SimMarket | None, side: str, order_type: str, price, qty,
                  client_order_id: str, time_in_force: str,
                  post_only_cancels: bool = False) -> tuple[SimOrder, list[SimTrade]]:
    if market is None:
        raise e.invalid_symbol()
    for name, value in (("side", side), ("type", order_type), ("quantity", qty), ("price", price)):
        if not value:
            raise e.missing_parameter(name)
    if len(client_order_id) > 36:
        raise e.bad_parameter("newClientOrderId", "more than 36 characters")
    if side not in ("BUY", "SELL"):
        raise e.bad_parameter("side")
    if order_type not in ("LIMIT", "LIMIT_MAKER"):
        raise e.SimulatorApiError(-1116, "Invalid orderType.", reason="bad_order_type")
    if time_in_force not in ("GTC", "IOC") or (order_type == "LIMIT_MAKER" and time_in_force != "GTC"):
        raise e.SimulatorApiError(-1115, "Invalid timeInForce.", reason="bad_time_in_force")
    try:
        price = _amount(price, "price")
        qty = _amount(qty, "quantity")
    except InvalidAmount:
        raise e.bad_parameter("price/quantity", "not a decimal") from None
    _validate_filters(market, price, qty)
    best_bid, best_ask = engine.synthetic_touch(price=market.price, tick=market.tick_size,
                                                spread_ticks=market.spread_ticks)
    crossing, depth_taken = [], None
    if (side == "BUY" and price >= best_ask) or (side == "SELL" and price <= best_bid):
        if order_type == "LIMIT_MAKER":
            crossing = _crossing_levels(market, side, price, None)  # it only looks: nothing locked
        else:
            # What it takes is gone for the next order until the market steps: the level's
            # remainder is read and written under the market's SimDepthTaken row lock.
            depth_taken = _lock_depth_taken(market)
            crossing = _crossing_levels(market, side, price, depth_taken.taken)
    would_take = order_type == "LIMIT_MAKER" and bool(crossing)
    if would_take and not post_only_cancels:
        raise e.would_take()
    at = now_ms()
    balances, duplicate = queries.balances_and_duplicate(account_id, market.base, market.quote, client_order_id)
    if duplicate:
        raise e.duplicate_order()
    balances = _balances_for_update(account_id, market.base, market.quote, balances)
    reserve_asset, reserve = (market.quote, price * qty) if side == "BUY" else (market.base, qty)
    if balances[reserve_asset].free < reserve:
        raise e.insufficient_balance()
    if would_take:
        # Accepted, then canceled before it could take: nothing was reserved, nothing traded.
        order = SimOrder(
            account_id=account_id, market=market, client_order_id=client_order_id, side=side, type=order_type,
            time_in_force=time_in_force, price=price, orig_qty=qty, locked_remaining=Decimal(0),
            status=SimOrderStatus.CANCELED, created_ms=at, updated_ms=at,
        )
        queries.insert_order(order)
        return order, []
    balances[reserve_asset].free -= reserve
    balances[reserve_asset].locked += reserve
    order = SimOrder(
        account_id=account_id, market=market, client_order_id=client_order_id, side=side, type=order_type,
        time_in_force=time_in_force, price=price, orig_qty=qty, locked_remaining=reserve,
        status=SimOrderStatus.NEW, created_ms=at, updated_ms=at,
    )
    if not crossing:
        # Nothing trades: the order's row is written once, in its final state, with the balances.
        if time_in_force == "IOC":
            _release(order, balances)
            order.status = SimOrderStatus.EXPIRED
        queries.insert_order(order, balances=_changed_balances(balances))
        return order, []
    queries.insert_order(order)
    trades = []
    remaining = qty
    book_side = depth_taken.taken.setdefault("asks" if side == "BUY" else "bids", {})
    for level in crossing:
        if remaining <= 0:
            break
        take = min(remaining, level.qty)
        trades.append(_apply_fill(order=order, market=market, balances=balances, price=level.price,
                                  qty=take, is_maker=False, at_ms=at))
        key = canonical(level.price)
        book_side[key] = canonical(Decimal(book_side.get(key, 0)) + take)
        remaining -= take
    depth_taken.save()
    if remaining > 0 and time_in_force == "IOC":
        _release(order, balances)
        order.status = SimOrderStatus.EXPIRED
    SimTrade.objects.bulk_create(trades)
    _save_balances(balances)
    order.save()
    return order, trades


def _market_plan(levels: list[engine.Level], *, qty: Decimal | None, quote_qty: Decimal | None,
                 lot: Decimal) -> tuple[list[tuple[engine.Level, Decimal]], bool]:
    """What a market order takes from ``levels`` (best first): [(level, quantity)], and whether it got
    all it asked for (``qty`` of base, or as much as ``quote_qty`` buys or sells, in whole lots)."""
    plan = []
    for level in levels:
        if qty is not None:
            want = qty - sum((take for _, take in plan), Decimal(0))
        else:
            left = quote_qty - sum((lvl.price * take for lvl, take in plan), Decimal(0))
            want = engine.round_to_step(left / level.price, lot, ROUND_DOWN)
        if want <= 0:
            return plan, True
        take = min(want, level.qty)
        plan.append((level, take))
        if take < level.qty:
            return plan, True
    if qty is not None:
        return plan, sum((take for _, take in plan), Decimal(0)) == qty
    return plan, False


def _place_market_locked(*, account_id: int, market: SimMarket | None, side: str, qty, quote_qty,
                         client_order_id: str) -> tuple[SimOrder, list[SimTrade]]:
    """A market order (account row locked): take the synthetic depth best first, at each level's price
    with the taker fee, until ``qty`` (base) is filled or ``quote_qty`` (quote) is spent or received;
    what the book could not fill expires. Refused in Binance's order as ``_place_locked``."""
    if market is None:
        raise e.invalid_symbol()
    if not side:
        raise e.missing_parameter("side")
    if not qty and not quote_qty:
        raise e.SimulatorApiError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                                  reason="missing_parameter")
    if qty and quote_qty:
        raise e.SimulatorApiError(-1106, "Parameter 'quoteOrderQty' sent when not required.", reason="bad_parameter")
    if len(client_order_id) > 36:
        raise e.bad_parameter("newClientOrderId", "more than 36 characters")
    if side not in ("BUY", "SELL"):
        raise e.bad_parameter("side")
    try:
        qty = _amount(qty, "quantity") if qty else None
        quote_qty = _amount(quote_qty, "quoteOrderQty") if quote_qty else None
    except InvalidAmount:
        raise e.bad_parameter("quantity/quoteOrderQty", "not a decimal") from None
    if qty is not None:
        if qty < market.min_qty or qty > market.max_qty or not engine.is_multiple(qty, market.step_size):
            raise e.filter_failure("LOT_SIZE")
        if qty * market.price < market.min_notional:
            raise e.filter_failure("NOTIONAL")
    elif quote_qty <= 0 or quote_qty < market.min_notional:
        raise e.filter_failure("NOTIONAL")
    depth_taken = _lock_depth_taken(market)
    bids, asks = _market_depth(market, depth_taken.taken)
    plan, complete = _market_plan(asks if side == "BUY" else bids, qty=qty, quote_qty=quote_qty,
                                  lot=market.step_size)
    executed = sum((take for _, take in plan), Decimal(0))
    cost = sum((level.price * take for level, take in plan), Decimal(0))
    at = now_ms()
    balances, duplicate = queries.balances_and_duplicate(account_id, market.base, market.quote, client_order_id)
    if duplicate:
        raise e.duplicate_order()
    balances = _balances_for_update(account_id, market.base, market.quote, balances)
    if side == "BUY":
        needed_asset, needed = market.quote, (cost if qty is not None else quote_qty)
    else:
        needed_asset, needed = market.base, (qty if qty is not None else executed)
    if balances[needed_asset].free < needed:
        raise e.insufficient_balance()
    # A buy pays each fill from free quote as it trades (price 0: nothing is reserved at a limit
    # price); a sell reserves the base it is about to deliver.
    order = SimOrder(
        account_id=account_id, market=market, client_order_id=client_order_id, side=side, type="MARKET",
        time_in_force="GTC", price=Decimal(0), orig_qty=qty if qty is not None else executed,
        locked_remaining=Decimal(0), status=SimOrderStatus.NEW, created_ms=at, updated_ms=at,
    )
    if side == "SELL":
        balances[market.base].free -= executed
        balances[market.base].locked += executed
        order.locked_remaining = executed
    if not plan:
        order.status = SimOrderStatus.EXPIRED
        queries.insert_order(order)
        return order, []
    queries.insert_order(order)
    book_side = depth_taken.taken.setdefault("asks" if side == "BUY" else "bids", {})
    trades = []
    for level, take in plan:
        trades.append(_apply_fill(order=order, market=market, balances=balances, price=level.price, qty=take,
                                  is_maker=False, at_ms=at))
        key = canonical(level.price)
        book_side[key] = canonical(Decimal(book_side.get(key, 0)) + take)
    depth_taken.save()
    if not complete or order.status != SimOrderStatus.FILLED:
        order.status = SimOrderStatus.EXPIRED
    SimTrade.objects.bulk_create(trades)
    _save_balances(balances)
    order.save()
    return order, trades


def _release(order: SimOrder, balances: dict[str, SimBalance]) -> None:
    asset = order.market.quote if order.side == "BUY" else order.market.base
    balances[asset].locked -= order.locked_remaining
    balances[asset].free += order.locked_remaining
    order.locked_remaining = Decimal(0)


def simulator_find_order(*, account_id: int, exchange_symbol: str, order_id=None, client_order_id=None,
                         check_symbol: bool = False) -> SimOrder | None:
    """An order of the account by exchange id or client id (the newest one with that client id).

    Its market has the symbols and assets loaded (the other fields load on access). With
    ``check_symbol`` an unknown symbol is refused (-1121) instead of finding no order.
    """
    market, order, _ = queries.find_order(account_id=account_id, exchange_symbol=exchange_symbol, order_id=order_id,
                                          client_order_id=client_order_id)
    if market is None and check_symbol:
        raise e.invalid_symbol()
    return order


def simulator_cancel_order(*, account_id: int, exchange_symbol: str, order_id=None, client_order_id=None,
                           check_symbol: bool = False) -> SimOrder:
    """Cancel an open order and release its locked funds; an unknown or closed order is -2011.

    With ``check_symbol`` an unknown symbol is refused (-1121) instead.
    """
    with transaction.atomic():
        queries.lock_account(account_id)
        market, order, balances = queries.find_order(account_id=account_id, exchange_symbol=exchange_symbol,
                                                     order_id=order_id, client_order_id=client_order_id,
                                                     balances=True)
        if market is None and check_symbol:
            raise e.invalid_symbol()
        if order is None or order.status not in OPEN_ORDER_STATUSES:
            raise e.unknown_order_sent()
        balances = _balances_for_update(account_id, market.base, market.quote, balances)
        _release(order, balances)
        order.status = SimOrderStatus.CANCELED
        order.updated_ms = now_ms()
        queries.save_order_status(order, balances=_changed_balances(balances))
    logger.info("sim_order_canceled account_id=%s order_id=%s client_order_id=%s", account_id, order.pk,
                order.client_order_id)
    return order


# --- Market steps -----------------------------------------------------------------------------


def _step_market(market: SimMarket, close: Decimal | None) -> list[SimTrade]:
    """One step of ``market`` (row locked by the caller): move the price, fill what it trades through."""
    step = engine.next_step(
        seed=market.seed, symbol=market.symbol, number=market.step + 1, price=market.price,
        start_price=market.start_price, volatility=market.volatility, tick=market.tick_size,
        step_volume=market.step_volume, lot=market.step_size, step_seconds=config.step_seconds(), close=close,
    )
    # Compared in Python: amounts are text on SQLite, where SQL would compare them as strings.
    candidates = [
        (pk, account_id)
        for pk, account_id, side, price in SimOrder.objects.filter(
            market=market, status__in=OPEN_ORDER_STATUSES
        ).values_list("pk", "account_id", "side", "price")
        if _traded_through(step, side, price)
    ]
    trades: list[SimTrade] = []
    if candidates:
        account_ids = sorted({account_id for _, account_id in candidates})
        list(SimAccount.objects.select_for_update().filter(pk__in=account_ids).order_by("pk").values_list("pk"))
        orders = list(SimOrder.objects.filter(pk__in=[pk for pk, _ in candidates], status__in=OPEN_ORDER_STATUSES))
        buys = sorted((o for o in orders if o.side == "BUY"), key=lambda o: (-o.price, o.pk))
        sells = sorted((o for o in orders if o.side == "SELL"), key=lambda o: (o.price, o.pk))
        balances = {
            account_id: _balances_for_update(account_id, market.base, market.quote)
            for account_id in account_ids
        }
        at = now_ms()
        # The step's volume is shared: its down leg fills buys, its up leg sells, each in
        # price-time priority, and what one order took is not there for the next.
        buy_volume, sell_volume = engine.leg_volumes(step, market.step_size)
        for side_orders, volume in ((buys, buy_volume), (sells, sell_volume)):
            for order in side_orders:
                if volume <= 0:
                    break
                take = min(order.orig_qty - order.executed_qty, volume)
                volume -= take
                order.market = market
                trades.append(_apply_fill(order=order, market=market, balances=balances[order.account_id],
                                          price=order.price, qty=take, is_maker=True, at_ms=at))
                order.save(update_fields=["executed_qty", "cumulative_quote_qty", "status", "updated_ms",
                                          "locked_remaining"])
        SimTrade.objects.bulk_create(trades)
        for account_balances in balances.values():
            _save_balances(account_balances)
    market.step = step.number
    market.price = step.close
    market.day_high = max(market.day_high, step.high)
    market.day_low = min(market.day_low, step.low)
    market.day_volume += step.volume
    market.day_quote_volume += step.volume * step.close
    return trades


def _traded_through(step: engine.Step, side: str, price: Decimal) -> bool:
    """A resting order fills only when the market trades through its price, not merely at it."""
    return price > step.low if side == "BUY" else price < step.high


def simulator_advance(symbol: str, steps: int = 1) -> list[SimTrade]:
    """Advance ``symbol`` along its seeded path by ``steps``; returns the fills it made."""
    trades = []
    with transaction.atomic():
        market = SimMarket.objects.select_for_update().get(pk=_market_by_symbol(symbol).pk)
        for _ in range(steps):
            trades.extend(_step_market(market, None))
        market.last_step_at = datetime.now(UTC)
        market.save()
    logger.info("sim_market_advanced symbol=%s steps=%s price=%s fills=%s", symbol, steps, market.price, len(trades))
    return trades


def simulator_move_to(symbol: str, price) -> list[SimTrade]:
    """One step that ends at ``price`` (the market trades from the current price to it)."""
    target = _amount(price, "price")
    with transaction.atomic():
        market = SimMarket.objects.select_for_update().get(pk=_market_by_symbol(symbol).pk)
        trades = _step_market(market, engine.round_to_step(target, market.tick_size))
        market.last_step_at = datetime.now(UTC)
        market.save()
    logger.info("sim_market_moved symbol=%s price=%s fills=%s", symbol, market.price, len(trades))
    return trades


# (SIM_STEP_MS, the earliest time a market of this process's last read becomes due): until
# then a request need not read the markets. A market's last_step_at only ever moves forward
# (every process steps it to its own now), so the hint can be early, never late. A market
# created or reset here clears it; one created by another process is started within a step.
_catch_up_hint: tuple[int, datetime] | None = None


def simulator_catch_up(*, max_steps: int = 100) -> None:
    """With SIM_STEP_MS > 0, advance every market by the steps of wall time since its last step."""
    global _catch_up_hint
    interval_ms = config.step_ms()
    if interval_ms <= 0:
        return
    now = datetime.now(UTC)
    hint = _catch_up_hint
    if hint is not None and hint[0] == interval_ms and now < hint[1]:
        return  # no market is due: (now - last_step_at) < interval for each of them
    earliest = None
    for market in SimMarket.objects.all():
        last = market.last_step_at
        if last is None:
            started = SimMarket.objects.filter(pk=market.pk, last_step_at__isnull=True).update(last_step_at=now)
            last = now if started else None  # None: another process started it; read it again next time
        else:
            due = int((now - last).total_seconds() * 1000 // interval_ms)
            if due > 0:
                with transaction.atomic():
                    locked = SimMarket.objects.select_for_update().get(pk=market.pk)
                    due = int((now - locked.last_step_at).total_seconds() * 1000 // interval_ms)
                    for _ in range(min(due, max_steps)):
                        _step_market(locked, None)
                    if due > 0:
                        locked.last_step_at = now
                        locked.save()
                    last = locked.last_step_at
        due_at = now if last is None else last + timedelta(milliseconds=interval_ms)
        earliest = due_at if earliest is None else min(earliest, due_at)
    _catch_up_hint = None if earliest is None else (interval_ms, earliest)


def _catch_up_forget() -> None:
    global _catch_up_hint
    _catch_up_hint = None


# --- Deposits ---------------------------------------------------------------------------------


def simulator_deposit_address(*, account_id: int, asset: str, network: str | None = None) -> SimDepositAddress:
    """The account's deposit address of ``asset`` on ``network`` (default: the asset's own chain)."""
    asset = asset.upper()
    network = (network or asset).upper()
    digest = hashlib.sha256(f"sim-deposit:{account_id}:{asset}:{network}".encode()).hexdigest()
    address, _ = SimDepositAddress.objects.get_or_create(
        account_id=account_id, asset=asset, network=network, defaults={"address": f"sim{digest[:37]}"}
    )
    return address


def simulator_receive_transfer(*, address: str, asset: str, amount: Decimal, tx_id: str) -> None:
    """A transfer arrives at ``address``: recorded once per ``tx_id``, credited once confirmed.

    Confirmation takes SIM_DEPOSIT_CONFIRM_S seconds (default 0: credited at once).
    """
    amount = parse_amount(amount, scale=18, field="amount")
    asset = asset.upper()
    owner = SimDepositAddress.objects.filter(address=address).first()
    if owner is None:
        raise e.UnknownDepositAddress(f"no simulator account owns deposit address {address!r}")
    if owner.asset != asset:
        raise e.UnknownDepositAddress(f"deposit address {address!r} is for {owner.asset}, not {asset}")
    at = now_ms()
    with transaction.atomic():
        SimAccount.objects.select_for_update().get(pk=owner.account_id)
        existing = SimDeposit.objects.filter(tx_id=tx_id).first()
        if existing is not None:
            if (existing.address, existing.asset, existing.amount) != (address, asset, amount):
                raise e.TransferConflict(
                    f"tx_id {tx_id!r} was received as {existing.amount} {existing.asset} to {existing.address}"
                )
            return
        SimDeposit.objects.create(
            account_id=owner.account_id, asset=asset, network=owner.network, address=address, tag=owner.tag,
            amount=amount, tx_id=tx_id, insert_ms=at, confirm_at_ms=at + int(config.deposit_confirm_seconds() * 1000),
        )
    logger.info("sim_transfer_received account_id=%s asset=%s amount=%s tx_id=%s", owner.account_id, asset, amount, tx_id)
    simulator_settle_deposits(account_id=owner.account_id)


def simulator_settle_deposits(*, account_id: int) -> int:
    """Credit the account's deposits whose confirmation time has come; returns how many."""
    at = now_ms()
    if not SimDeposit.objects.filter(account_id=account_id, credited=False, confirm_at_ms__lte=at).exists():
        return 0
    with transaction.atomic():
        account = SimAccount.objects.select_for_update().get(pk=account_id)
        due = list(SimDeposit.objects.filter(account=account, credited=False, confirm_at_ms__lte=at))
        for deposit in due:
            balance, _ = SimBalance.objects.get_or_create(account=account, asset=deposit.asset)
            balance.free += deposit.amount
            balance.save(update_fields=["free"])
            deposit.credited = True
            deposit.save(update_fields=["credited"])
            logger.info("sim_deposit_credited account_id=%s asset=%s amount=%s tx_id=%s", account_id,
                        deposit.asset, deposit.amount, deposit.tx_id)
    return len(due)


# --- Withdrawals ------------------------------------------------------------------------------


def simulator_withdraw(*, account_id: int, asset: str, amount, address: str, tag: str = "", network: str = "",
                       client_id: str = "") -> SimWithdrawal:
    """Accept a withdrawal: the amount leaves the account's free balance at once; the fee (SIM_WITHDRAW_FEES)
    comes out of it and the rest is sent when the withdrawal completes (SIM_WITHDRAW_CONFIRM_S).

    A repeated ``client_id`` returns the first withdrawal (nothing is debited twice); a different amount,
    asset or address under the same client id is refused.
    """
    try:
        amount = parse_amount(amount, scale=18, field="amount")
    except InvalidAmount as exc:
        raise e.bad_parameter("amount", str(exc)) from None
    asset = asset.upper()
    address = (address or "").strip()
    if not address or len(address) > 200:
        raise e.withdraw_illegal_address()
    fee = config.withdraw_fees().get(asset, Decimal(0))
    if amount <= fee:
        raise e.withdraw_not_above_fee()
    network = (network or asset).upper()
    at = now_ms()
    with transaction.atomic():
        SimAccount.objects.select_for_update().get(pk=account_id)
        if client_id:
            existing = SimWithdrawal.objects.filter(account_id=account_id, client_id=client_id).first()
            if existing is not None:
                if (existing.asset, existing.amount, existing.address, existing.tag) != (asset, amount, address, tag):
                    raise e.bad_parameter("withdrawOrderId", "was used for a different withdrawal")
                return existing
        balance = SimBalance.objects.filter(account_id=account_id, asset=asset).first()
        if balance is None or balance.free < amount:
            raise e.withdraw_insufficient_balance()
        balance.free -= amount
        balance.save(update_fields=["free"])
        withdrawal = SimWithdrawal.objects.create(
            account_id=account_id, asset=asset, network=network, address=address, tag=tag or "", amount=amount,
            fee=fee, client_id=client_id or "", tx_id=f"simwd-{hashlib.sha256(f'{account_id}:{at}:{client_id}:{address}:{amount}:{time.perf_counter_ns()}'.encode()).hexdigest()[:40]}",
            apply_ms=at, complete_at_ms=at + int(config.withdraw_confirm_seconds() * 1000))
    logger.info("sim_withdrawal_accepted account_id=%s asset=%s amount=%s fee=%s address=%s client_id=%s tx_id=%s",
                account_id, asset, amount, fee, address, client_id, withdrawal.tx_id)
    simulator_settle_withdrawals(account_id=account_id)
    withdrawal.refresh_from_db()
    return withdrawal


def simulator_settle_withdrawals(*, account_id: int | None = None) -> int:
    """Send the withdrawals whose time has come: to a simulator deposit address as a deposit there, else to
    SIM_WITHDRAW_FORWARD_URL when set (a failed announcement is tried again next time), else recorded as
    sent. Returns how many completed."""
    due = SimWithdrawal.objects.filter(completed=False, complete_at_ms__lte=now_ms())
    if account_id is not None:
        due = due.filter(account_id=account_id)
    done = 0
    for withdrawal in list(due.order_by("pk")):
        received = withdrawal.amount - withdrawal.fee
        if SimDepositAddress.objects.filter(address=withdrawal.address).exists():
            simulator_receive_transfer(address=withdrawal.address, asset=withdrawal.asset, amount=received,
                                       tx_id=withdrawal.tx_id)
        elif config.withdraw_forward_url():
            if not _forward_withdrawal(withdrawal, received):
                continue
        if SimWithdrawal.objects.filter(pk=withdrawal.pk, completed=False).update(completed=True):
            done += 1
            logger.info("sim_withdrawal_sent account_id=%s asset=%s received=%s address=%s tx_id=%s",
                        withdrawal.account_id, withdrawal.asset, received, withdrawal.address, withdrawal.tx_id)
    return done


def _forward_withdrawal(withdrawal: SimWithdrawal, received: Decimal) -> bool:
    import requests

    body = {"address": withdrawal.address, "tag": withdrawal.tag, "asset": withdrawal.asset,
            "network": withdrawal.network, "amount": canonical(received), "tx_id": withdrawal.tx_id}
    try:
        response = requests.post(config.withdraw_forward_url(), json=body, timeout=5)
    except requests.RequestException as exc:
        logger.warning("sim_withdrawal_forward_failed tx_id=%s error=%s", withdrawal.tx_id, exc)
        return False
    if response.status_code >= 300:
        logger.warning("sim_withdrawal_forward_failed tx_id=%s status=%s", withdrawal.tx_id, response.status_code)
        return False
    return True


def simulator_withdrawal_sent(*, tx_id: str) -> SimWithdrawal | None:
    """The completed withdrawal ``tx_id`` (settling what is due first), or None: how the local payment
    provider sees a withdrawal arrive at its own address."""
    withdrawal = SimWithdrawal.objects.filter(tx_id=tx_id).first()
    if withdrawal is not None and not withdrawal.completed:
        simulator_settle_withdrawals(account_id=withdrawal.account_id)
        withdrawal.refresh_from_db()
    return withdrawal if withdrawal is not None and withdrawal.completed else None
