"""Market precision and limits in Decimal: round an order to the market, refuse it before any call.

Rules come from ccxt's unified market structure (``precision`` and ``limits``) in every ccxt
precision mode: TICK_SIZE (the value is the step), DECIMAL_PLACES (the value is a number of
decimals) and SIGNIFICANT_DIGITS (the value is a number of significant digits, so the step depends
on the magnitude of the number rounded). Numbers leave ccxt through exchanges.services.exchange_decimal.
"""
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

import ccxt

from ledger.amounts import parse_amount

from .errors import OrderRefused, UnknownMarket
from .services import RawNumbers, exchange_decimal


@dataclass(frozen=True)
class MarketRules:
    """A market's grid and limits. ``tick_size`` / ``step_size`` are the price and amount steps; on a
    SIGNIFICANT_DIGITS market they are None and ``price_digits`` / ``amount_digits`` give the grid."""

    symbol: str
    tick_size: Decimal | None
    step_size: Decimal | None
    min_amount: Decimal | None
    max_amount: Decimal | None
    min_price: Decimal | None
    max_price: Decimal | None
    min_cost: Decimal | None
    price_digits: int | None = None
    amount_digits: int | None = None

    def price_step(self, price: Decimal) -> Decimal:
        """The price grid's step at ``price``."""
        return self.tick_size if self.tick_size is not None else significant_step(price, self.price_digits)

    def amount_step(self, amount: Decimal) -> Decimal:
        """The amount grid's step at ``amount``."""
        return self.step_size if self.step_size is not None else significant_step(amount, self.amount_digits)


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


def significant_step(value: Decimal, digits: int) -> Decimal:
    """The step that keeps ``digits`` significant digits of ``value`` (1234.5 at 3 digits: 10)."""
    if value <= 0:
        raise OrderRefused(f"cannot place {value} on a grid of {digits} significant digits")
    return Decimal(1).scaleb(value.adjusted() - digits + 1)


def _limit(value: Decimal | None) -> Decimal | None:
    return value if value else None  # ccxt gives 0 or None for "no limit"


def _step(mode: int, value: Decimal | None, what: str, symbol: str) -> tuple[Decimal | None, int | None]:
    """(step, significant digits) of one precision value of a market, exactly one of them set."""
    if value is None or value <= 0:
        raise UnknownMarket(f"{symbol} has no {what} precision in the exchange's market data")
    if mode == ccxt.TICK_SIZE:
        return value, None
    if value != value.to_integral_value():
        raise UnknownMarket(f"{symbol}: {what} precision {value} is not a whole number of digits")
    if mode == ccxt.DECIMAL_PLACES:
        return Decimal(1).scaleb(-int(value)), None
    if mode == ccxt.SIGNIFICANT_DIGITS:
        return None, int(value)
    raise UnknownMarket(f"{symbol}: unknown ccxt precision mode {mode}")


# {id(market structure): (that structure, precision mode, its rules)}: every create reads its market's
# rules, and a market structure does not change once loaded (a reload makes new ones).
_rules_cache: dict[int, tuple[dict, int, "MarketRules"]] = {}
_RULES_CACHE_MAX = 4096


def market_rules(client: ccxt.Exchange, symbol: str) -> MarketRules:
    """The precision and limits of ``symbol`` on the client's (already loaded) markets."""
    market = (client.markets or {}).get(symbol)
    if market is None:
        raise UnknownMarket(f"{client.id} does not list {symbol!r}; check the symbol or reload markets")
    cached = _rules_cache.get(id(market))
    if cached is not None and cached[0] is market and cached[1] == client.precisionMode:
        return cached[2]
    rules = _market_rules(client, symbol, market)
    if len(_rules_cache) >= _RULES_CACHE_MAX:
        _rules_cache.clear()
    _rules_cache[id(market)] = (market, client.precisionMode, rules)
    return rules


def _market_rules(client: ccxt.Exchange, symbol: str, market: dict) -> MarketRules:
    precision, limits = market.get("precision") or {}, market.get("limits") or {}
    info = RawNumbers(market.get("info"))  # indexed once for the seven reads below
    tick, price_digits = _step(client.precisionMode, exchange_decimal(precision, "price", info=info), "price", symbol)
    step, amount_digits = _step(client.precisionMode, exchange_decimal(precision, "amount", info=info), "amount",
                                symbol)

    def limit(kind: str, bound: str) -> Decimal | None:
        return _limit(exchange_decimal(limits.get(kind) or {}, bound, info=info))

    return MarketRules(
        symbol=symbol, tick_size=tick, step_size=step,
        min_amount=limit("amount", "min"), max_amount=limit("amount", "max"),
        min_price=limit("price", "min"), max_price=limit("price", "max"), min_cost=limit("cost", "min"),
        price_digits=price_digits, amount_digits=amount_digits,
    )


def _show(value: Decimal | None) -> str:
    """A number as a person reads it in a refusal (0.00001, not 0.00001000 or 1E-5)."""
    return "none" if value is None else format(value.normalize(), "f")


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
    if amount <= 0 or price <= 0:
        raise OrderRefused(f"{rules.symbol} {side} {amount} @ {price}: amount and price must be positive")
    amount_step = rules.amount_step(amount)
    rounded_amount = _to_step(amount, amount_step, ROUND_DOWN)
    rounded_price = _to_step(price, rules.price_step(price), ROUND_FLOOR if side == "buy" else ROUND_CEILING)
    where = f"{rules.symbol} {side} {_show(amount)} @ {_show(price)}"
    if rounded_amount <= 0 or (rules.min_amount is not None and rounded_amount < rules.min_amount):
        raise OrderRefused(f"{where}: amount {_show(rounded_amount)} after rounding to {_show(amount_step)} is below "
                           f"the minimum {_show(rules.min_amount)}")
    if rules.max_amount is not None and rounded_amount > rules.max_amount:
        raise OrderRefused(f"{where}: amount {_show(rounded_amount)} is above the maximum {_show(rules.max_amount)}")
    if rounded_price <= 0 or (rules.min_price is not None and rounded_price < rules.min_price):
        raise OrderRefused(f"{where}: price {_show(rounded_price)} is below the minimum {_show(rules.min_price)}")
    if rules.max_price is not None and rounded_price > rules.max_price:
        raise OrderRefused(f"{where}: price {_show(rounded_price)} is above the maximum {_show(rules.max_price)}")
    cost = rounded_amount * rounded_price
    if rules.min_cost is not None and cost < rules.min_cost:
        raise OrderRefused(f"{where}: notional {_show(cost)} is below the minimum {_show(rules.min_cost)}")
    return LimitOrder(symbol=rules.symbol, side=side, amount=rounded_amount, price=rounded_price)
