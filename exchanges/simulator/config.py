"""Simulator settings: read from Django settings when defined there, else from the environment."""
import os
from decimal import Decimal, InvalidOperation

from django.conf import settings


def sim_setting(name: str, default, cast=str):
    value = getattr(settings, name, None)
    if value is None:
        value = os.environ.get(name)
    if value is None or value == "":
        return default
    return cast(value)


DEFAULT_API_PASSPHRASE = "sim-api-passphrase"


def api_passphrase() -> str:
    """SIM_API_PASSPHRASE: the API passphrase the OKX dialect checks (OK-ACCESS-PASSPHRASE) for every
    simulator account (default "sim-api-passphrase"); the Binance dialect has none."""
    return sim_setting("SIM_API_PASSPHRASE", DEFAULT_API_PASSPHRASE)


def deposit_confirm_seconds() -> float:
    """SIM_DEPOSIT_CONFIRM_S: how long a received transfer stays pending before it is credited."""
    return sim_setting("SIM_DEPOSIT_CONFIRM_S", 0.0, float)


def step_ms() -> int:
    """SIM_STEP_MS: when > 0, each market advances one step per this many milliseconds of wall time."""
    return sim_setting("SIM_STEP_MS", 0, int)


DEFAULT_VOLATILITY = Decimal("0.0001")


def parse_volatility(text, what: str = "SIM_VOLATILITY") -> Decimal:
    """A volatility (standard deviation of the relative price move per second, a fraction >= 0 and < 1)."""
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError(f"{what}: {text!r} is not a decimal number") from None
    if not value.is_finite() or not 0 <= value < 1:
        raise ValueError(f"{what}: {text!r} is not a fraction in [0, 1) (e.g. 0.0001 for 1 bp a second)")
    return value


def volatility() -> Decimal:
    """SIM_VOLATILITY: standard deviation of the price's relative move per second of a new market
    (default 0.0001, ~1 bp a second, about BTC/USDT's); a market's own value overrides it."""
    return sim_setting("SIM_VOLATILITY", DEFAULT_VOLATILITY, parse_volatility)


def step_seconds() -> Decimal:
    """How long one step of the price path lasts: SIM_STEP_MS, or one second when stepping on demand."""
    interval_ms = step_ms()
    return Decimal(interval_ms) / 1000 if interval_ms > 0 else Decimal(1)


def withdraw_confirm_seconds() -> float:
    """SIM_WITHDRAW_CONFIRM_S: how long an accepted withdrawal stays processing before it completes (is sent)."""
    return sim_setting("SIM_WITHDRAW_CONFIRM_S", 0.0, float)


def withdraw_fees() -> dict[str, Decimal]:
    """SIM_WITHDRAW_FEES: the network fee of a withdrawal per asset, e.g. "BTC=0.0001,USDT=1" (default none).
    It comes out of the amount: the recipient gets amount - fee."""
    fees = {}
    for item in str(sim_setting("SIM_WITHDRAW_FEES", "")).split(","):
        if not item.strip():
            continue
        asset, _, value = item.partition("=")
        try:
            fees[asset.strip().upper()] = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"SIM_WITHDRAW_FEES: {item!r} is not ASSET=decimal") from None
    return fees


def withdraw_forward_url() -> str:
    """SIM_WITHDRAW_FORWARD_URL: where a completed withdrawal to an address the simulator does not own is
    announced (POST JSON {address, tag, asset, network, amount, tx_id}), e.g. a Mixin stand-in's deposit
    endpoint; empty: the withdrawal is only recorded (the local payment provider reads the record)."""
    return sim_setting("SIM_WITHDRAW_FORWARD_URL", "")
