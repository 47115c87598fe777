"""Pure market making: (params, market, rules, balances, budget) -> desired orders; no I/O.

The pipeline follows Hummingbot's numbered tick (STYLE.md point 6):

1. base proposal: one reference price from ``price_source``;
2. layer, price and size modifiers: per-layer spread and amount change, price band
   (ceiling / floor), inventory skew from the real balances, then exchange precision
   (buy prices rounded down, sell prices rounded up, amounts rounded down to the step)
   and the minimum amount / notional;
3. budget: buys never lock more quote, sells never more base, than the order's budget;
4. drop takers: unless ``take_if_crossed``, a buy at or above the best ask and a sell at
   or below the best bid are dropped (the budget they were given is not handed on to
   outer layers: the ladder keeps the shape it was sized with).

Cancel and create are the diff's job (``strategy.order_diff``). Everything here is exact
``Decimal``; a float anywhere in the inputs raises ``FloatNotAllowed``. The module imports
neither Django nor ccxt, so it runs the same in a tick, a test or a notebook.

Conventions (documented once, used everywhere):

- every ``*_spread`` and ``*_pct`` value is a fraction: ``Decimal("0.01")`` is 1 %;
- price band, as Hummingbot: when the reference price is at or above ``price_ceiling`` no
  buy is proposed, when it is at or below ``price_floor`` no sell is proposed. Because a
  buy is always priced below the reference and a sell above it, no buy is ever priced at
  or above the ceiling and no sell at or below the floor;
- layers: layer ``i`` (0 is the innermost) is priced at
  ``reference * (1 - bid_spread - i * order_level_spread)`` for buys and
  ``reference * (1 + ask_spread + i * order_level_spread)`` for sells;
  its amount is ``order_amount + i * amount_change_per_layer`` (``fixed``) or
  ``order_amount * (1 + amount_change_per_layer) ** i`` (``percentage``, compounding);
- inventory skew, as Hummingbot's ``calculate_bid_ask_ratios_from_base_asset_ratio``:
  the base share of the real portfolio value is compared with ``inventory_target_base_pct``
  within a band of ``inventory_range_multiplier`` times one side's total ladder amount
  (capped at half of the portfolio); buy amounts are scaled by a ratio from 2 (no base at
  all) through 1 (on target) to 0 (band's upper edge), sell amounts by ``2 - ratio``;
- budget: layers are funded from the innermost outwards, as Hummingbot does; the first
  layer that does not fit whole is shrunk to what is left (rounded down to the step) and
  dropped if it then falls below the minimum amount or notional; the layers outside it get
  nothing, so the ladder has no gaps. An amount is never rounded up. Fees are not reserved
  here: the caller passes a budget net of any fee reserve;
- ``add_transaction_costs``: buy prices are lowered and sell prices raised by the market's maker
  fee (``MarketRules.maker_fee``), so a fill earns its fee back;
- ``order_optimization_enabled``: the innermost order of a side goes no further than one tick
  inside the best price of others (the book without our own orders), as Hummingbot's;
- ``minimum_spread``: a layer priced nearer the reference than this fraction is not proposed
  (and the diff cancels an active order that drifted nearer than it);
- moving price band, as Hummingbot's (``moving_price_band_enabled``): instead of the fixed ceiling and
  floor, ``band_anchor * (1 + price_ceiling_pct)`` and ``band_anchor * (1 - price_floor_pct)``, where the
  anchor is the reference price when the band was last set; ``moving_band_anchor`` sets it again every
  ``price_band_refresh_time`` seconds. The caller keeps the anchor between ticks;
- ``inventory_cost`` price source: the reference is the average price the order paid for the base it
  bought and still holds (``inventory_cost_after`` folds each fill in, as Hummingbot's inventory-cost
  delegate: a buy adds its amount and cost, a sell takes out its amount at the average cost and an
  oversold position starts again from nothing); with no bought base held, the mid price;
- price source on another market: ``reference_market`` (another symbol, or the same one on another
  exchange account) gives the reference price; the order's own market still decides what would take;
- ``ping_pong_enabled`` and ``filled_order_delay`` are the diff's (``strategy.order_diff``): a side with more
  fill, the filled side waits for the other side to fill; new orders wait the delay after a fill.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Context, Decimal, DivisionByZero, InvalidOperation, Overflow, localcontext
from enum import Enum

from ledger.exact import exact_decimal

# Enough digits for 1e12 units at 1e-18 resolution, with room for products: sums and
# products of prices and amounts are exact; only the explicit tick and step rounding rounds.
_PRECISION = 60
_CONTEXT = Context(prec=_PRECISION, traps=[InvalidOperation, DivisionByZero, Overflow])
_ZERO = Decimal(0)
_ONE = Decimal(1)
_TWO = Decimal(2)
_HALF = Decimal("0.5")


class StrategyInputError(ValueError):
    """A strategy input is missing, out of range or of the wrong type; the message says which."""


class FloatNotAllowed(StrategyInputError, TypeError):
    """A float was given where money or a ratio is expected: floats cannot represent them exactly."""


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"

    @property
    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY


# Both sides, buys first, as a tuple: iterating the enum class itself costs more, in the hot loop.
SIDES = (Side.BUY, Side.SELL)


class PriceSource(str, Enum):
    MID = "mid"
    BEST_BID = "best_bid"
    BEST_ASK = "best_ask"
    LAST = "last"
    INVENTORY_COST = "inventory_cost"


class AmountChangeType(str, Enum):
    FIXED = "fixed"
    PERCENTAGE = "percentage"


class DropReason(str, Enum):
    """Why a layer of the ladder was not proposed; the tick logs it, tests assert it."""

    NO_REFERENCE_PRICE = "no_reference_price"
    PRICE_BAND = "price_band"
    NON_POSITIVE_PRICE = "non_positive_price"
    NON_POSITIVE_AMOUNT = "non_positive_amount"
    BELOW_MIN_AMOUNT = "below_min_amount"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    BUDGET = "budget"
    TAKER = "taker"
    BELOW_MIN_SPREAD = "below_min_spread"


def to_decimal(value, *, field: str, allow_none: bool = False) -> Decimal | None:
    """``value`` as an exact finite Decimal; floats, bools, NaN and infinity are refused."""
    if value is None:
        if allow_none:
            return None
        raise StrategyInputError(f"{field} is required")
    result = exact_decimal(value, field=field, error=StrategyInputError, float_error=FloatNotAllowed)
    if not result.is_finite():
        raise StrategyInputError(f"{field} must be finite, got {result}")
    return result


@functools.cache
def _decimal_field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls) if "Decimal" in str(f.type))


def normalise_decimal_fields(instance, *, optional: tuple[str, ...] = ()) -> None:
    """Convert every Decimal-typed field of a frozen dataclass in place (validating it)."""
    for name in _decimal_field_names(type(instance)):
        value = getattr(instance, name)
        if type(value) is not Decimal or not value.is_finite():
            value = to_decimal(value, field=name, allow_none=name in optional)
            object.__setattr__(instance, name, value)


def exact():
    """A decimal context in which prices and amounts are computed without rounding."""
    return localcontext(_CONTEXT)


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    quotient = value // step  # integral, truncated toward zero
    if value < 0 and quotient * step != value:
        quotient -= 1
    return quotient * step


def _ceil_to(value: Decimal, step: Decimal) -> Decimal:
    quotient = value // step
    if value > 0 and quotient * step != value:
        quotient += 1
    return quotient * step


def trusted(cls, **values):
    """An instance of the frozen dataclass ``cls`` built without ``__post_init__``'s validation.

    Only for values this package computed itself (exact Decimals, enums, ints) or read from
    typed database columns: validation is for what comes from outside. A tick builds thousands
    of these, and their checks cost more than the strategy's arithmetic.
    """
    instance = object.__new__(cls)
    # One C call: frozen only guards __setattr__, and these dataclasses (no __slots__) keep a __dict__.
    instance.__dict__.update(values)
    return instance


def coerce_enum_field(instance, name: str, enum_type: type[Enum]) -> None:
    value = getattr(instance, name)
    if type(value) is enum_type:
        return
    try:
        object.__setattr__(instance, name, enum_type(value))
    except ValueError:
        allowed = ", ".join(member.value for member in enum_type)
        raise StrategyInputError(f"{name} must be one of {allowed}, got {value!r}") from None


@dataclass(frozen=True)
class MarketRules:
    """Exchange precision and minimums of one market, as loaded from the exchange."""

    price_tick: Decimal
    amount_step: Decimal
    min_amount: Decimal = _ZERO
    min_notional: Decimal = _ZERO
    maker_fee: Decimal = _ZERO  # fraction of a maker fill's value the exchange charges (add_transaction_costs)

    def __post_init__(self):
        normalise_decimal_fields(self)
        if not 0 <= self.maker_fee < 1:
            raise StrategyInputError(f"maker_fee must be a fraction in [0, 1), got {self.maker_fee}")
        if self.price_tick <= 0:
            raise StrategyInputError(f"price_tick must be positive, got {self.price_tick}")
        if self.amount_step <= 0:
            raise StrategyInputError(f"amount_step must be positive, got {self.amount_step}")
        if self.min_amount < 0:
            raise StrategyInputError(f"min_amount must not be negative, got {self.min_amount}")
        if self.min_notional < 0:
            raise StrategyInputError(f"min_notional must not be negative, got {self.min_notional}")

    def round_price(self, price: Decimal, side: Side) -> Decimal:
        """Buy prices round down, sell prices up: rounding never makes a quote more aggressive."""
        with exact():
            return self._round_price(price, side)

    def round_amount(self, amount: Decimal) -> Decimal:
        """Amounts round down to the step: never more than was sized or budgeted."""
        with exact():
            return _floor_to(amount, self.amount_step)

    # The underscored twins run inside the caller's exact() context: the hot path opens one.
    def _round_price(self, price: Decimal, side: Side) -> Decimal:
        return _floor_to(price, self.price_tick) if side is Side.BUY else _ceil_to(price, self.price_tick)

    def _round_amount(self, amount: Decimal) -> Decimal:
        return _floor_to(amount, self.amount_step)

    def shortfall(self, price: Decimal, amount: Decimal) -> DropReason | None:
        """The reason an order of this price and amount cannot be placed, or None."""
        if amount <= 0:
            return DropReason.NON_POSITIVE_AMOUNT
        if amount < self.min_amount:
            return DropReason.BELOW_MIN_AMOUNT
        if price * amount < self.min_notional:
            return DropReason.BELOW_MIN_NOTIONAL
        return None


@dataclass(frozen=True)
class MarketSnapshot:
    """Top of the book and last trade price; a side with no orders is None. ``others_best_bid`` and
    ``others_best_ask``: the best prices of the book without our own orders (order optimization);
    None where nobody else quotes that side."""

    best_bid: Decimal | None
    best_ask: Decimal | None
    last_price: Decimal | None = None
    others_best_bid: Decimal | None = None
    others_best_ask: Decimal | None = None
    # The order's inventory cost price (``inventory_cost_after``), for the inventory_cost price source.
    inventory_price: Decimal | None = None

    def __post_init__(self):
        normalise_decimal_fields(self, optional=("best_bid", "best_ask", "last_price", "others_best_bid",
                                                 "others_best_ask", "inventory_price"))
        for name in ("best_bid", "best_ask", "last_price", "others_best_bid", "others_best_ask", "inventory_price"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise StrategyInputError(f"{name} must be positive, got {value}")

    def reference_price(self, source: PriceSource) -> Decimal | None:
        if source is PriceSource.INVENTORY_COST:
            if self.inventory_price is not None:
                return self.inventory_price
            source = PriceSource.MID
        if source is PriceSource.MID:
            if self.best_bid is None or self.best_ask is None:
                return None
            with exact():
                return (self.best_bid + self.best_ask) / _TWO
        if source is PriceSource.BEST_BID:
            return self.best_bid
        if source is PriceSource.BEST_ASK:
            return self.best_ask
        return self.last_price


@dataclass(frozen=True)
class Balances:
    """Real holdings of the order (free plus locked in open orders); drive the inventory skew."""

    base: Decimal
    quote: Decimal

    def __post_init__(self):
        normalise_decimal_fields(self)
        if self.base < 0 or self.quote < 0:
            raise StrategyInputError(f"balances must not be negative, got {self}")


@dataclass(frozen=True)
class Budget:
    """What the order has locked: sells never sum to more ``base``, buys never to more ``quote``."""

    base: Decimal
    quote: Decimal

    def __post_init__(self):
        normalise_decimal_fields(self)
        if self.base < 0 or self.quote < 0:
            raise StrategyInputError(f"budget must not be negative, got {self}")


@dataclass(frozen=True)
class PureMMParams:
    """Parameters of pure market making; see the module docstring for their exact meaning."""

    bid_spread: Decimal
    ask_spread: Decimal
    order_amount: Decimal
    order_levels: int = 1
    order_level_spread: Decimal = _ZERO
    amount_change_type: AmountChangeType = AmountChangeType.FIXED
    amount_change_per_layer: Decimal = _ZERO
    price_source: PriceSource = PriceSource.MID
    price_ceiling: Decimal | None = None
    price_floor: Decimal | None = None
    inventory_skew_enabled: bool = False
    inventory_target_base_pct: Decimal = _HALF
    inventory_range_multiplier: Decimal = _ONE
    hanging_orders_enabled: bool = False
    order_refresh_tolerance_pct: Decimal = _ZERO
    max_order_age: Decimal | None = None
    filled_order_delay: Decimal = _ZERO
    minimum_spread: Decimal | None = None
    ping_pong_enabled: bool = False
    add_transaction_costs: bool = False
    order_optimization_enabled: bool = False
    moving_price_band_enabled: bool = False
    price_ceiling_pct: Decimal = Decimal("0.01")
    price_floor_pct: Decimal = Decimal("0.01")
    price_band_refresh_time: int = 86400
    take_if_crossed: bool = False

    def __post_init__(self):
        normalise_decimal_fields(self, optional=("price_ceiling", "price_floor", "max_order_age", "minimum_spread"))
        coerce_enum_field(self, "amount_change_type", AmountChangeType)
        coerce_enum_field(self, "price_source", PriceSource)
        for name in ("inventory_skew_enabled", "hanging_orders_enabled", "take_if_crossed", "ping_pong_enabled",
                     "add_transaction_costs", "order_optimization_enabled", "moving_price_band_enabled"):
            if not isinstance(getattr(self, name), bool):
                raise StrategyInputError(f"{name} must be a bool, got {getattr(self, name)!r}")
        levels = self.order_levels
        if not isinstance(levels, int) or isinstance(levels, bool) or levels < 1:
            raise StrategyInputError(f"order_levels must be an integer of at least 1, got {self.order_levels!r}")
        if not 0 <= self.bid_spread < 1:
            raise StrategyInputError(f"bid_spread must be a fraction in [0, 1), got {self.bid_spread}")
        if self.ask_spread < 0:
            raise StrategyInputError(f"ask_spread must not be negative, got {self.ask_spread}")
        if self.order_amount <= 0:
            raise StrategyInputError(f"order_amount must be positive, got {self.order_amount}")
        if self.order_level_spread < 0:
            raise StrategyInputError(f"order_level_spread must not be negative, got {self.order_level_spread}")
        if self.amount_change_type is AmountChangeType.PERCENTAGE:
            if self.amount_change_per_layer <= -1:
                raise StrategyInputError(
                    f"a percentage amount_change_per_layer must be above -1 (-100 %), got {self.amount_change_per_layer}"
                )
        for name in ("price_ceiling", "price_floor"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise StrategyInputError(f"{name} must be positive or None, got {value}")
        if self.price_ceiling is not None and self.price_floor is not None:
            if self.price_floor >= self.price_ceiling:
                raise StrategyInputError(
                    f"price_floor {self.price_floor} must be below price_ceiling {self.price_ceiling}"
                )
        if not 0 <= self.inventory_target_base_pct <= 1:
            raise StrategyInputError(
                f"inventory_target_base_pct is a fraction in [0, 1] (0.5 is 50 %), got {self.inventory_target_base_pct}"
            )
        if self.inventory_range_multiplier < 0:
            raise StrategyInputError(
                f"inventory_range_multiplier must not be negative, got {self.inventory_range_multiplier}"
            )
        if self.order_refresh_tolerance_pct < 0:
            raise StrategyInputError(
                f"order_refresh_tolerance_pct is a non-negative fraction, got {self.order_refresh_tolerance_pct}"
            )
        if self.max_order_age is not None and self.max_order_age <= 0:
            raise StrategyInputError(
                f"max_order_age is a positive number of seconds or None, got {self.max_order_age}"
            )
        if self.filled_order_delay < 0:
            raise StrategyInputError(
                f"filled_order_delay is a non-negative number of seconds, got {self.filled_order_delay}"
            )
        if self.minimum_spread is not None and not 0 <= self.minimum_spread < 1:
            raise StrategyInputError(f"minimum_spread must be a fraction in [0, 1) or None, got {self.minimum_spread}")
        if self.price_ceiling_pct < 0:
            raise StrategyInputError(f"price_ceiling_pct must not be negative, got {self.price_ceiling_pct}")
        if not 0 <= self.price_floor_pct < 1:
            raise StrategyInputError(f"price_floor_pct must be a fraction in [0, 1), got {self.price_floor_pct}")
        refresh = self.price_band_refresh_time
        if not isinstance(refresh, int) or isinstance(refresh, bool) or refresh < 1:
            raise StrategyInputError(f"price_band_refresh_time is a positive number of seconds, got {refresh!r}")

    def layer_amount(self, layer: int) -> Decimal:
        """The unskewed, unrounded amount of ``layer`` (0 is the innermost)."""
        with exact():
            return self._layer_amount(layer)

    def layer_price(self, reference: Decimal, side: Side, layer: int) -> Decimal:
        """The unrounded price of ``layer`` on ``side`` around ``reference``."""
        with exact():
            return self._layer_price(reference, side, layer)

    def _layer_amount(self, layer: int) -> Decimal:
        if self.amount_change_type is AmountChangeType.FIXED:
            return self.order_amount + layer * self.amount_change_per_layer
        return self.order_amount * (_ONE + self.amount_change_per_layer) ** layer

    def _layer_price(self, reference: Decimal, side: Side, layer: int) -> Decimal:
        if side is Side.BUY:
            return reference * (_ONE - self.bid_spread - layer * self.order_level_spread)
        return reference * (_ONE + self.ask_spread + layer * self.order_level_spread)


@dataclass(frozen=True)
class DesiredOrder:
    """One order the strategy wants on the book: exact, rounded to the market's precision."""

    side: Side
    price: Decimal
    amount: Decimal
    layer: int

    def __post_init__(self):
        coerce_enum_field(self, "side", Side)
        normalise_decimal_fields(self)
        if self.price <= 0 or self.amount <= 0:
            raise StrategyInputError(f"a desired order needs a positive price and amount: {self}")
        if not isinstance(self.layer, int) or isinstance(self.layer, bool) or self.layer < 0:
            raise StrategyInputError(f"layer must be a non-negative int, got {self.layer!r}")

    @property
    def notional(self) -> Decimal:
        return self.price * self.amount


@dataclass(frozen=True)
class DroppedLayer:
    side: Side
    layer: int
    reason: DropReason


@dataclass(frozen=True)
class Proposal:
    """The desired orders (buys then sells, innermost layer first) and why any layer is missing."""

    orders: tuple[DesiredOrder, ...]
    dropped: tuple[DroppedLayer, ...]
    reference_price: Decimal | None
    bid_ratio: Decimal = _ONE
    ask_ratio: Decimal = _ONE

    def side(self, side: Side) -> tuple[DesiredOrder, ...]:
        return tuple(order for order in self.orders if order.side is side)


def inventory_skew_ratios(
    *, base: Decimal, quote: Decimal, price: Decimal, target_base_fraction: Decimal, base_range: Decimal
) -> tuple[Decimal, Decimal]:
    """(bid_ratio, ask_ratio) scaling buy and sell amounts; both 1 when on target, they sum to 2.

    Hummingbot's formula in exact arithmetic. ``base_range`` is in base units. An empty
    portfolio gives (0, 0): nothing to quote with.
    """
    with exact():
        base_value = base * price
        total_value = base_value + quote
        if total_value <= 0:
            return _ZERO, _ZERO
        range_value = min(base_range * price, total_value / _TWO)
        target_value = total_value * target_base_fraction
        left = max(target_value - range_value, _ZERO)
        right = target_value + range_value
        # inventory_ratio goes 0 -> 0.5 over [left, target] and 0.5 -> 1 over [target, right].
        if base_value == target_value:
            inventory_ratio = _HALF
        elif base_value < target_value:
            if target_value == left:
                inventory_ratio = _ZERO
            else:
                inventory_ratio = _HALF * min(max((base_value - left) / (target_value - left), _ZERO), _ONE)
        else:
            if right == target_value:
                inventory_ratio = _ONE
            else:
                inventory_ratio = _HALF + _HALF * min((base_value - target_value) / (right - target_value), _ONE)
        bid_ratio = _TWO - _TWO * inventory_ratio
        return bid_ratio, _TWO - bid_ratio


def moving_band_anchor(
    params: PureMMParams, reference: Decimal | None, anchor: Decimal | None, anchor_at: datetime | None,
    now: datetime,
) -> tuple[Decimal | None, datetime | None]:
    """The moving price band's (anchor price, set at) for a tick at ``now``: kept until
    ``price_band_refresh_time`` seconds have passed since it was set, then the reference price of now
    (Hummingbot's ``MovingPriceBand``). Unchanged when the band is off or there is no reference."""
    if not params.moving_price_band_enabled or reference is None:
        return anchor, anchor_at
    if anchor is None or anchor_at is None or now >= anchor_at + timedelta(seconds=params.price_band_refresh_time):
        return reference, now
    return anchor, anchor_at


def inventory_cost_after(base: Decimal, cost: Decimal, *, side: Side | str, amount: Decimal,
                         quote: Decimal) -> tuple[Decimal, Decimal]:
    """The inventory (bought base held, quote paid for it) after one fill of ``amount`` base for
    ``quote``: a buy adds both; a sell takes its amount out at the average cost, and selling all
    of it (or more: base the order did not buy) leaves nothing. ``cost / base`` is the
    inventory_cost reference price."""
    with exact():
        if Side(side) is Side.BUY:
            return base + amount, cost + quote
        if amount >= base:
            return _ZERO, _ZERO
        return base - amount, cost - cost * amount / base


def inventory_price(base: Decimal, cost: Decimal) -> Decimal | None:
    """The average price of the bought base held, or None when none is held."""
    if base <= 0 or cost <= 0:
        return None
    with exact():
        return cost / base


def propose_orders(
    *, params: PureMMParams, market: MarketSnapshot, rules: MarketRules, balances: Balances, budget: Budget,
    reference_market: MarketSnapshot | None = None, band_anchor: Decimal | None = None,
) -> Proposal:
    """The desired ladder for one tick. Pure: same inputs, same output; no I/O.

    ``reference_market``: the market the reference price comes from when it is not the order's own;
    ``band_anchor``: the moving price band's anchor (``moving_band_anchor``), with the band on."""
    for name, value, kind in (
        ("params", params, PureMMParams),
        ("market", market, MarketSnapshot),
        ("rules", rules, MarketRules),
        ("balances", balances, Balances),
        ("budget", budget, Budget),
    ):
        if not isinstance(value, kind):
            raise StrategyInputError(f"{name} must be a {kind.__name__}, not {type(value).__name__}")
    if reference_market is not None and not isinstance(reference_market, MarketSnapshot):
        raise StrategyInputError(f"reference_market must be a MarketSnapshot, not {type(reference_market).__name__}")
    if band_anchor is not None:
        band_anchor = to_decimal(band_anchor, field="band_anchor")

    dropped: list[DroppedLayer] = []
    layers = range(params.order_levels)

    # 1. Base proposal: the reference price.
    reference = (reference_market or market).reference_price(params.price_source)
    if reference is None:
        for side in SIDES:
            dropped.extend(DroppedLayer(side, layer, DropReason.NO_REFERENCE_PRICE) for layer in layers)
        return Proposal(orders=(), dropped=tuple(dropped), reference_price=None)

    with exact():
        # 2a. Price band: a side is switched off as a whole.
        sides_on = {Side.BUY: True, Side.SELL: True}
        ceiling, floor = params.price_ceiling, params.price_floor
        if params.moving_price_band_enabled:
            anchor = reference if band_anchor is None else band_anchor
            ceiling = anchor * (_ONE + params.price_ceiling_pct)
            floor = anchor * (_ONE - params.price_floor_pct)
        if ceiling is not None and reference >= ceiling:
            sides_on[Side.BUY] = False
        if floor is not None and reference <= floor:
            sides_on[Side.SELL] = False

        # 2b. Inventory skew from the real balances.
        layer_amounts = [params._layer_amount(layer) for layer in layers]
        bid_ratio = ask_ratio = _ONE
        if params.inventory_skew_enabled:
            ladder_amount = sum((max(amount, _ZERO) for amount in layer_amounts), _ZERO)
            bid_ratio, ask_ratio = inventory_skew_ratios(
                base=balances.base,
                quote=balances.quote,
                price=reference,
                target_base_fraction=params.inventory_target_base_pct,
                base_range=ladder_amount * params.inventory_range_multiplier,
            )
        ratio = {Side.BUY: bid_ratio, Side.SELL: ask_ratio}

        # 2c. Layers, then precision and minimums.
        candidates: dict[Side, list[tuple[int, Decimal, Decimal]]] = {Side.BUY: [], Side.SELL: []}
        for side in SIDES:
            for layer in layers:
                if not sides_on[side]:
                    dropped.append(DroppedLayer(side, layer, DropReason.PRICE_BAND))
                    continue
                raw_price = params._layer_price(reference, side, layer)
                if params.add_transaction_costs:
                    # The maker fee is earned back in the price: a buy that much lower, a sell that much higher.
                    raw_price *= (_ONE - rules.maker_fee) if side is Side.BUY else (_ONE + rules.maker_fee)
                if params.order_optimization_enabled and layer == 0:
                    raw_price = _optimized(raw_price, side, market, rules.price_tick)
                price = rules._round_price(raw_price, side) if raw_price > 0 else _ZERO
                if price <= 0:
                    dropped.append(DroppedLayer(side, layer, DropReason.NON_POSITIVE_PRICE))
                    continue
                if params.minimum_spread is not None and price > 0 and \
                        abs(price - reference) < reference * params.minimum_spread:
                    dropped.append(DroppedLayer(side, layer, DropReason.BELOW_MIN_SPREAD))
                    continue
                amount = rules._round_amount(layer_amounts[layer] * ratio[side])
                reason = rules.shortfall(price, amount)
                if reason is not None:
                    dropped.append(DroppedLayer(side, layer, reason))
                    continue
                candidates[side].append((layer, price, amount))

        # 3. Budget, innermost layer first.
        funded: list[DesiredOrder] = []
        for side in SIDES:
            left = budget.quote if side is Side.BUY else budget.base
            for layer, price, amount in candidates[side]:
                cost = amount * price if side is Side.BUY else amount
                if cost > left:
                    # The first layer that does not fit whole takes what is left; outer ones get nothing.
                    amount = rules._round_amount(left / price if side is Side.BUY else left)
                    left = _ZERO
                    if rules.shortfall(price, amount) is not None:
                        dropped.append(DroppedLayer(side, layer, DropReason.BUDGET))
                        continue
                else:
                    left -= cost
                # Computed here from validated inputs: exact, rounded, positive.
                funded.append(trusted(DesiredOrder, side=side, price=price, amount=amount, layer=layer))

    # 4. Drop takers.
    orders: list[DesiredOrder] = []
    for order in funded:
        if not params.take_if_crossed and would_take(order, market):
            dropped.append(DroppedLayer(order.side, order.layer, DropReason.TAKER))
            continue
        orders.append(order)

    dropped.sort(key=lambda d: (d.side is Side.SELL, d.layer))
    return Proposal(
        orders=tuple(orders),
        dropped=tuple(dropped),
        reference_price=reference,
        bid_ratio=bid_ratio,
        ask_ratio=ask_ratio,
    )


def _optimized(price: Decimal, side: Side, market: MarketSnapshot, tick: Decimal) -> Decimal:
    """Order optimization, as Hummingbot's: the innermost order goes no further than one tick inside the
    best price of others (our own orders taken out of the book), so it tops the book without paying
    more than it must; a price already behind that stays."""
    if side is Side.BUY:
        best = market.others_best_bid
        return price if best is None else min(price, (_floor_to(best, tick) + tick))
    best = market.others_best_ask
    return price if best is None else max(price, (_ceil_to(best, tick) - tick))


def would_take(order: DesiredOrder, market: MarketSnapshot) -> bool:
    """True when the order would cross the book: a buy at or above the best ask, a sell at or below the best bid."""
    if order.side is Side.BUY:
        return market.best_ask is not None and order.price >= market.best_ask
    return market.best_bid is not None and order.price <= market.best_bid
