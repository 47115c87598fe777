"""Fixtures of the reconciliation tests: a session quoting on the simulator, baselines stored."""
from decimal import Decimal

import pytest

from exchanges.models import SimBalance
from intents.models import TrackedOrder, TrackedOrderStatus
from ledger import services as ledger
from reconciliation.services import reconcile_run
from intents import ids
from strategy.tick import tick_run
from tests.runtime_fixtures import BTC, USDT, make_running_order

SIM_LABEL = "rt-sim-0"  # the simulator account behind sim.accounts[0]


@pytest.fixture
def sync_driver(settings):
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "sync"
    settings.STRATEGY_TICK_SIZE_MS = 10
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 4


@pytest.fixture
def quoting(sim, sync_driver):
    """A running order quoting a two-layer ladder (4 open orders), with more funds locked under its
    ledger ref, and a first reconciliation that stored the balance baselines. Returns (account, order)."""
    account = sim.accounts[0]
    order = make_running_order(account, layers=2)
    for asset, amount in ((BTC, "0.5"), (USDT, "15000")):
        ledger.credit_deposit(user_id=order.user_id, asset_id=asset, amount=amount,
                              idempotency_key=f"rec-in:{order.order_id}:{asset}")
        ledger.lock_funds(user_id=order.user_id, asset_id=asset, amount=amount,
                          idempotency_key=f"rec-lock:{order.order_id}:{asset}",
                          ref_type="mm_order", ref_id=str(order.order_id))
    assert tick_run().ran
    tracked = TrackedOrder.objects.filter(strategy_key=ids.strategy_key(order.order_id))
    assert sorted(t.status for t in tracked) == [TrackedOrderStatus.OPEN] * 4
    first = reconcile_run(trigger="test")
    assert first.ok and first.baselines_set == 2, list(first.drifts.values_list("detail", flat=True))
    return account, order


def sim_total(asset: str) -> Decimal:
    row = SimBalance.objects.get(account__label=SIM_LABEL, asset=asset)
    return row.free + row.locked


def sim_shift_balance(asset: str, delta: Decimal) -> None:
    """Move the exchange account's free balance of ``asset`` by ``delta``, as a transfer or a trade would."""
    from exchanges.simulator.services import simulator_set_balance

    free = SimBalance.objects.get(account__label=SIM_LABEL, asset=asset).free
    simulator_set_balance(account_label=SIM_LABEL, asset=asset, free=free + delta)


def cancel_behind_our_back(sim, account, order) -> TrackedOrder:
    """Cancel one of the session's orders on the exchange directly through ccxt; return its tracked row."""
    victim = TrackedOrder.objects.filter(strategy_key=ids.strategy_key(order.order_id)).order_by("id").first()
    sim.client(account).cancel_order(victim.exchange_order_id, "BTC/USDT")
    return victim
