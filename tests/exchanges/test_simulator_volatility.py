"""The simulator's volatility: a standard deviation per second, scaled to the step length, per market."""
import importlib
import statistics
from decimal import ROUND_HALF_UP, Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from exchanges.models import SimMarket
from exchanges.simulator import config, engine
from exchanges.simulator.services import simulator_advance, simulator_market_ensure
from mmproject.cli import UsageError

pytestmark = pytest.mark.embedded

TICK, LOT = Decimal("0.01"), Decimal("0.00001")


def _path(volatility: Decimal, step_seconds: Decimal, steps: int, *, seed=3, symbol="BTC/USDT",
          start=Decimal("30000")) -> list[engine.Step]:
    path, price = [], start
    for number in range(1, steps + 1):
        step = engine.next_step(seed=seed, symbol=symbol, number=number, price=price, start_price=start,
                                volatility=volatility, tick=TICK, step_volume=Decimal("0.3"), lot=LOT,
                                step_seconds=step_seconds)
        path.append(step)
        price = step.close
    return path


def _per_second_sd(prices: list[Decimal], step_seconds: Decimal) -> float:
    moves = [float(b / a - 1) for a, b in zip(prices, prices[1:])]
    return statistics.pstdev(moves) / float(step_seconds) ** 0.5


@pytest.mark.parametrize("volatility", ["0.0001", "0.00115"], ids=["default-1bp", "stressed"])
@pytest.mark.parametrize("step_ms", [1000, 250, 5000])
def test_realised_per_second_sd_matches_the_setting_whatever_the_step_length(volatility, step_ms):
    volatility, step_seconds = Decimal(volatility), Decimal(step_ms) / 1000
    path = _path(volatility, step_seconds, 4000)

    realised = _per_second_sd([path[0].open] + [s.close for s in path], step_seconds)

    # 4000 uniform draws: the sd's own relative error is ~0.7 %; the pull to the start adds < 1 %.
    assert realised == pytest.approx(float(volatility), rel=0.04)


def test_the_stressed_setting_is_the_old_plus_minus_0_2_percent_a_second():
    assert engine.step_half_width(Decimal("0.00115"), Decimal(1)) == pytest.approx(Decimal("0.002"), rel=Decimal("0.005"))
    path = _path(Decimal("0.00115"), Decimal(1), 2000)

    worst = max(abs(s.close / s.open - 1) for s in path)

    # the draw is within +-0.1992 %; the pull back to the start (1 % of the distance) adds a little
    assert Decimal("0.0019") < worst <= Decimal("0.0025")
    assert engine.step_half_width(Decimal("0.0001"), Decimal(1)) == Decimal("0.000173205080757")


def _old_next_step(*, seed, symbol, number, price, start_price, volatility, tick, step_volume, lot):
    """The engine before volatility was per second: a uniform move within +-volatility a step."""
    move = (engine.unit(seed, symbol, number, "move") * 2 - 1) * volatility
    pull = (start_price - price) / start_price * Decimal("0.01")
    close = max(engine.round_to_step(price * (1 + move + pull), tick), tick)
    wiggle = engine.round_to_step(price * volatility * engine.unit(seed, symbol, number, "wiggle") / 2, tick, "ROUND_UP")
    low = max(min(price, close) - wiggle, tick)
    high = max(price, close) + wiggle
    volume = engine.round_to_step(step_volume * (Decimal("0.5") + engine.unit(seed, symbol, number, "volume")), lot,
                                  "ROUND_DOWN")
    return engine.Step(number=number, open=price, close=close, low=low, high=high, volume=volume)


@pytest.mark.parametrize("volatility", ["0.00115470053838", "0.001154700538379252"],
                         ids=["documented", "migrated-0.002"])
def test_the_documented_value_gives_the_old_walk_exactly_at_one_step_a_second(volatility):
    new = _path(Decimal(volatility), Decimal(1), 1500, seed=42)
    old, price = [], Decimal("30000")
    for number in range(1, 1501):
        step = _old_next_step(seed=42, symbol="BTC/USDT", number=number, price=price, start_price=Decimal("30000"),
                              volatility=Decimal("0.002"), tick=TICK, step_volume=Decimal("0.3"), lot=LOT)
        old.append(step)
        price = step.close

    assert new == old


def test_the_path_is_deterministic_per_seed_volatility_and_step_length():
    one = _path(Decimal("0.0001"), Decimal("0.5"), 200)

    assert one == _path(Decimal("0.0001"), Decimal("0.5"), 200)
    assert one != _path(Decimal("0.0001"), Decimal("0.5"), 200, seed=4)
    assert one != _path(Decimal("0.0002"), Decimal("0.5"), 200)


def _walk(symbol: str, steps: int) -> list[Decimal]:
    prices = [SimMarket.objects.get(symbol=symbol).price]
    for _ in range(steps):
        simulator_advance(symbol, 1)
        prices.append(SimMarket.objects.get(symbol=symbol).price)
    return prices


@pytest.mark.django_db
def test_sim_symbols_override_applies_to_its_market_only(monkeypatch):
    monkeypatch.setenv("SIM_STEP_MS", "0")  # stepping on demand: one second a step
    monkeypatch.setenv("SIM_VOLATILITY", "0.0001")
    monkeypatch.setenv("SIM_SYMBOLS", "BTC/USDT=30000@0.002,ETH/USDT=2000")
    monkeypatch.setenv("SIM_BALANCES", "USDT=1")

    call_command("exchange_simulator", "--port", "8000", "--setup-only", "--seed", "5", stdout=StringIO())

    assert SimMarket.objects.get(symbol="BTC/USDT").volatility == Decimal("0.002")
    assert SimMarket.objects.get(symbol="ETH/USDT").volatility == Decimal("0.0001")
    btc = _per_second_sd(_walk("BTC/USDT", 300), Decimal(1))
    eth = _per_second_sd(_walk("ETH/USDT", 300), Decimal(1))
    # 300 steps: the estimate's relative error is ~2.6 %
    assert btc == pytest.approx(0.002, rel=0.15)
    assert eth == pytest.approx(0.0001, rel=0.15)


@pytest.mark.django_db
def test_the_command_applies_volatility_to_existing_markets_and_keeps_their_path(monkeypatch):
    simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=5, volatility="0.002")
    simulator_advance("BTC/USDT", 3)
    before = SimMarket.objects.get(symbol="BTC/USDT")
    monkeypatch.setenv("SIM_SYMBOLS", "BTC/USDT=30000")
    monkeypatch.setenv("SIM_VOLATILITY", "0.0001")  # restored after the test, whatever the command sets

    call_command("exchange_simulator", "--port", "8000", "--setup-only", "--volatility", "0.0003", stdout=StringIO())

    after = SimMarket.objects.get(symbol="BTC/USDT")
    assert after.volatility == Decimal("0.0003")
    assert (after.step, after.price) == (before.step, before.price)


@pytest.mark.django_db
@pytest.mark.parametrize("env, args", [
    ({"SIM_SYMBOLS": "BTC/USDT=30000@fast"}, []),
    ({"SIM_SYMBOLS": "BTC/USDT=30000@-0.1"}, []),
    ({"SIM_SYMBOLS": "BTCUSDT=30000"}, []),
    ({"SIM_VOLATILITY": "2"}, []),
    ({}, ["--volatility", "lots"]),
])
def test_bad_volatility_values_are_refused_as_usage_errors(monkeypatch, env, args):
    monkeypatch.setenv("SIM_VOLATILITY", "0.0001")
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(UsageError):
        call_command("exchange_simulator", "--port", "8000", "--setup-only", *args, stdout=StringIO())

    assert not SimMarket.objects.exists()


@pytest.mark.django_db
def test_a_new_market_takes_sim_volatility_and_an_existing_one_keeps_its_own(settings):
    settings.SIM_VOLATILITY = "0.0004"
    market = simulator_market_ensure(symbol="ETH/USDT", start_price="2000")
    assert market.volatility == Decimal("0.0004") and config.volatility() == Decimal("0.0004")

    settings.SIM_VOLATILITY = None
    again = simulator_market_ensure(symbol="ETH/USDT", start_price="2000", step_volume="0.5")

    assert again.volatility == Decimal("0.0004") and again.step_volume == Decimal("0.5")
    assert simulator_market_ensure(symbol="SOL/USDT", start_price="150").volatility == Decimal("0.0001")


@pytest.mark.django_db
def test_migration_turns_a_per_step_half_width_into_the_per_second_sd_with_the_same_walk():
    from django.apps import apps

    migration = importlib.import_module("exchanges.migrations.0003_simulator_volatility_per_second")
    market = simulator_market_ensure(symbol="BTC/USDT", start_price="30000", seed=42)
    SimMarket.objects.filter(pk=market.pk).update(volatility=Decimal("0.002"))  # as 0002 stored it

    migration.per_step_to_per_second(apps, None)

    migrated = SimMarket.objects.get(pk=market.pk).volatility
    assert migrated == Decimal("0.001154700538379252")
    assert engine.step_half_width(migrated, Decimal(1)) == Decimal("0.002")
    migration.per_second_to_per_step(apps, None)
    assert SimMarket.objects.get(pk=market.pk).volatility == Decimal("0.002")


def test_half_width_rounds_to_twelve_significant_digits():
    half = engine.step_half_width(Decimal("0.0001"), Decimal("0.25"))

    assert half == (Decimal("0.0001") * Decimal(3).sqrt() / 2).quantize(Decimal("1e-16"), ROUND_HALF_UP)
    assert engine.step_half_width(Decimal(0), Decimal(1)) == 0
