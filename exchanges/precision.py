"""Market precision and limits in Decimal: round an order to the market, refuse it before any call.

Rules are read from the exchange's raw filters when ccxt kept them (Binance's exchangeInfo
strings in ``market['info']``), otherwise from ccxt's unified floats through ``Decimal(str(x))``.
"""
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

import ccxt

from ledger.amounts import parse_amount

from .errors import OrderRefused, UnknownMarket


@dataclass(frozen=True)
class MarketRules:
    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_amount: Decimal | None
    max_amount: Decimal | None
    min_price: Decimal | None
    max_price: Decimal | None
    min_cost: Decimal | None


@dataclass(frozen=True)
class LimitOrder:
    """A limit order already rounded to the market and checked against its limits."""

    symbol: str
    side: str
    amount: Decimal
    price: Decimal

    @property
    def cost(self) -> Decimal:
        return self.amount * self.price


def _dec(value) -> Decimal | None:
    if value is None or value == "":
        return None
    result = Decimal(str(value))
    return result if result != 0 else None


def _precision_step(client: ccxt.Exchange, value) -> Decimal:
    if client.precisionMode == ccxt.TICK_SIZE:
        return Decimal(str(value))
    return Decimal(1).scaleb(-int(value))  # DECIMAL_PLACES / SIGNIFICANT_DIGITS as places


def market_rules(client: ccxt.Exchange, symbol: str) -> MarketRules:
    """The precision and limits of ``symbol`` on the client's (already loaded) markets."""
    market = (client.markets or {}).get(symbol)
    if market is None:
        raise UnknownMarket(f"{client.id} does not list {symbol!r}; check the symbol or reload markets")
    filters = {f.get("filterType"): f for f in (market.get("info") or {}).get("filters") or []}
    price_filter, lot, notional = filters.get("PRICE_FILTER"), filters.get("LOT_SIZE"), (
        filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL"))
    limits = market.get("limits") or {}
    if price_filter and lot:
        return MarketRules(
            symbol=symbol,
            tick_size=Decimal(price_filter["tickSize"]),
            step_size=Decimal(lot["stepSize"]),
            min_amount=_dec(lot.get("minQty")),
            max_amount=_dec(lot.get("maxQty")),
            min_price=_dec(price_filter.get("minPrice")),
            max_price=_dec(price_filter.get("maxPrice")),
            min_cost=_dec((notional or {}).get("minNotional") or (notional or {}).get("notional")),
        )
    return MarketRules(
        symbol=symbol,
        tick_size=_precision_step(client, market["precision"]["price"]),
        step_size=_precision_step(client, market["precision"]["amount"]),
        min_amount=_dec(limits.get("amount", {}).get("min")),
        max_amount=_dec(limits.get("amount", {}).get("max")),
        min_price=_dec(limits.get("price", {}).get("min")),
        max_price=_dec(limits.get("price", {}).get("max")),
        min_cost=_dec(limits.get("cost", {}).get("min")),
    )


def _to_step(value: Decimal, step: Decimal, rounding) -> Decimal:
    return (value / step).to_integral_value(rounding=rounding) * step


def limit_order_prepare(rules: MarketRules, *, side: str, amount, price) -> LimitOrder:
    """Round ``amount`` down to the lot and ``price`` to the tick on the passive side, then check limits.

    A buy price rounds down and a sell price up, so rounding never makes an order more
    aggressive than asked. Raises OrderRefused (before any exchange call) when the rounded
    order is below the minimum amount or notional, or outside the price or amount range.
    A float amount or price raises ledger's InvalidAmount.
    """
    if side not in ("buy", "sell"):
        raise OrderRefused(f"side must be 'buy' or 'sell', not {side!r}")
    amount = parse_amount(amount, scale=18, field="amount")
    price = parse_amount(price, scale=18, field="price")
    rounded_amount = _to_step(amount, rules.step_size, ROUND_DOWN)
    rounded_price = _to_step(price, rules.tick_size, ROUND_FLOOR if side == "buy" else ROUND_CEILING)
    where = f"{rules.symbol} {side} {amount} @ {price}"
    if rounded_amount <= 0 or (rules.min_amount is not None and rounded_amount < rules.min_amount):
        raise OrderRefused(f"{where}: amount {rounded_amount} after rounding to {rules.step_size} is below the minimum {rules.min_amount}")
    if rules.max_amount is not None and rounded_amount > rules.max_amount:
        raise OrderRefused(f"{where}: amount {rounded_amount} is above the maximum {rules.max_amount}")
    if rounded_price <= 0 or (rules.min_price is not None and rounded_price < rules.min_price):
        raise OrderRefused(f"{where}: price {rounded_price} is below the minimum {rules.min_price}")
    if rules.max_price is not None and rounded_price > rules.max_price:
        raise OrderRefused(f"{where}: price {rounded_price} is above the maximum {rules.max_price}")
    cost = rounded_amount * rounded_price
    if rules.min_cost is not None and cost < rules.min_cost:
        raise OrderRefused(f"{where}: notional {cost} is below the minimum {rules.min_cost}")
    return LimitOrder(symbol=rules.symbol, side=side, amount=rounded_amount, price=rounded_price)
