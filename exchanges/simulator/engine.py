"""Pure arithmetic of the simulated market: the seeded price path, synthetic depth, fees.

Everything is Decimal and derived from sha256(seed, symbol, step, ...), so one seed gives one
market history whatever process computes it, and nothing here touches the database.
"""
import hashlib
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

_TWO_64 = Decimal(2**64)
COMMISSION_QUANTUM = Decimal("0.00000001")


def unit(seed: int, symbol: str, step: int, *salt) -> Decimal:
    """A deterministic number in [0, 1) for (seed, symbol, step, salt...)."""
    text = ":".join(str(part) for part in (seed, symbol, step, *salt))
    digest = hashlib.sha256(text.encode()).digest()
    return Decimal(int.from_bytes(digest[:8], "big")) / _TWO_64


def round_to_step(value: Decimal, step: Decimal, rounding=ROUND_HALF_UP) -> Decimal:
    """``value`` rounded to a multiple of ``step`` (a tick or lot size)."""
    return (value / step).quantize(Decimal(1), rounding=rounding) * step


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


@dataclass(frozen=True)
class Step:
    """One step of the market: where it opened and closed, its range, and the volume traded."""

    number: int
    open: Decimal
    close: Decimal
    low: Decimal
    high: Decimal
    volume: Decimal


# The per-step half-width is rounded to this many significant digits, so a per-second
# volatility written with a dozen digits gives one exact half-width (e.g. 0.00115470053838 at
# one step a second gives exactly the 0.002 of the uniform walk this simulator used to have).
HALF_WIDTH_DIGITS = 12
_SQRT_3 = Decimal(3).sqrt()
PULL_PER_SECOND = Decimal("0.01")


def step_half_width(volatility: Decimal, step_seconds: Decimal) -> Decimal:
    """Half-width of the uniform relative move of one step lasting ``step_seconds``.

    ``volatility`` is the standard deviation of the relative move per second; a step's standard
    deviation is that times sqrt(step_seconds), and a uniform draw in [-h, +h] has standard
    deviation h / sqrt(3). Rounded to HALF_WIDTH_DIGITS significant digits.
    """
    if volatility <= 0 or step_seconds <= 0:
        return Decimal(0)
    half = volatility * _SQRT_3 * step_seconds.sqrt()
    return half.quantize(Decimal(1).scaleb(half.adjusted() - HALF_WIDTH_DIGITS + 1))


def next_step(*, seed: int, symbol: str, number: int, price: Decimal, start_price: Decimal,
              volatility: Decimal, tick: Decimal, step_volume: Decimal, lot: Decimal,
              step_seconds: Decimal = Decimal(1), close: Decimal | None = None) -> Step:
    """Step ``number`` of the path from ``price``; ``close`` forces where it ends (tests, demos).

    ``volatility`` is the standard deviation of the price's relative move per second and a step
    lasts ``step_seconds``: the move is uniform in [-h, +h] with h = step_half_width(...)
    (standard deviation volatility * sqrt(step_seconds)), plus a weak pull back to the start
    price (1 % of the distance a second), so a long run wanders without drifting away; the
    range overshoots the move a little (up to h / 2), so a resting order at the close price is
    traded through.
    """
    half = step_half_width(volatility, step_seconds)
    if close is None:
        move = (unit(seed, symbol, number, "move") * 2 - 1) * half
        pull = (start_price - price) / start_price * (PULL_PER_SECOND * step_seconds)
        close = round_to_step(price * (1 + move + pull), tick)
    close = max(close, tick)
    wiggle = round_to_step(price * half * unit(seed, symbol, number, "wiggle") / 2, tick, ROUND_UP)
    low = max(min(price, close) - wiggle, tick)
    high = max(price, close) + wiggle
    volume = round_to_step(step_volume * (Decimal("0.5") + unit(seed, symbol, number, "volume")), lot, ROUND_DOWN)
    return Step(number=number, open=price, close=close, low=low, high=high, volume=volume)


def leg_volumes(step: Step, lot: Decimal) -> tuple[Decimal, Decimal]:
    """The step's volume split between its down leg (where bids are hit: our buys fill) and its
    up leg (where asks are lifted: our sells fill), in proportion to how far each leg went from
    the open. The two add up to ``step.volume``: no traded quantity fills two orders."""
    down, up = step.open - step.low, step.high - step.open
    if down + up <= 0:
        down = up = Decimal(1)
    buy = round_to_step(step.volume * down / (down + up), lot, ROUND_DOWN)
    return buy, step.volume - buy


@dataclass(frozen=True)
class Level:
    price: Decimal
    qty: Decimal


def synthetic_touch(*, price: Decimal, tick: Decimal, spread_ticks: int) -> tuple[Decimal, Decimal]:
    """The best bid and best ask of the synthetic book around ``price`` (no hashing: cheap to know)."""
    spread = max(spread_ticks, 1) * tick
    best_bid = round_to_step(price - spread / 2, tick, ROUND_DOWN)
    return best_bid, best_bid + spread


def synthetic_depth(*, seed: int, symbol: str, step: int, price: Decimal, tick: Decimal, lot: Decimal,
                    spread_ticks: int, levels: int, depth_quantity: Decimal) -> tuple[list[Level], list[Level]]:
    """Bids (best first) and asks (best first) of the synthetic book around ``price``."""
    best_bid, best_ask = synthetic_touch(price=price, tick=tick, spread_ticks=spread_ticks)
    gap = max(tick, round_to_step(price * Decimal("0.0005"), tick, ROUND_DOWN))
    bids, asks = [], []
    for i in range(levels):
        bid_qty = round_to_step(depth_quantity * (Decimal("0.5") + unit(seed, symbol, step, "bid", i)), lot, ROUND_DOWN)
        ask_qty = round_to_step(depth_quantity * (Decimal("0.5") + unit(seed, symbol, step, "ask", i)), lot, ROUND_DOWN)
        bid_price = best_bid - i * gap
        if bid_price > 0 and bid_qty > 0:
            bids.append(Level(bid_price, bid_qty))
        if ask_qty > 0:
            asks.append(Level(best_ask + i * gap, ask_qty))
    return bids, asks


def commission(amount: Decimal, rate: Decimal) -> Decimal:
    """The fee on ``amount`` (of the asset received) at ``rate``, rounded up to 1e-8 as exchanges do."""
    return (amount * rate).quantize(COMMISSION_QUANTUM, rounding=ROUND_UP)
