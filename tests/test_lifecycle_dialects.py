"""The whole lifecycle on both of the simulator's dialects (ccxt's own ``binance`` and ``okx`` classes):
order, payment through intake, transfer to the exchange (a deposit on the simulator), running with
fills, stop with nothing left open on the exchange (seen from outside through ccxt), ledger audit and
reconciliation clean. And a pair on a symbol the account's exchange does not list is refused on both.

The lifecycle jobs run in this process, each through its real Celery task body (``Task.apply``) in the
order they are enqueued; tests/orders/test_chain.py runs the same chain through a real worker on Binance.
The strategy runs on the ``sync`` driver, so the tick executes its intents inline.
"""
import json
from decimal import Decimal

import ccxt
import pytest
from django.core.management import call_command

from exchanges.clients import exchange_clients_clear, point_urls
from exchanges.models import SimBalance, SimDeposit
from exchanges.services import exchange_account_create
from exchanges.simulator.config import DEFAULT_API_PASSPHRASE
from exchanges.simulator.services import simulator_account_ensure, simulator_market_ensure
from intents import ids
from ledger.selectors import audit_ledger
from ledger.services import get_balance
from mmproject.celery import app
from orders.errors import InvalidOrderRequest
from orders.models import MarketMakingPair, OrderTransition, OutgoingTransfer
from orders.services import order_create
from orders.services.pairs import pair_create
from reconciliation.services import reconcile_run
from strategy.models import StrategySession
from strategy.tick import tick_run
from tests.orders.conftest import BTC, ETH, USDT, snapshot_payload
from tests.runtime_fixtures import trade_through_both_sides

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

KEY, SECRET = "life-api-key", "life-api-secret"
DIALECTS = ["binance", "okx"]


@pytest.fixture
def lifecycle_settings(settings):
    settings.MM_WITHDRAW_MODE = "transfer"
    settings.MM_PAYMENT_PROVIDER = "local"
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "sync"
    settings.STRATEGY_TICK_SIZE_MS = 10
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT = 8
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8
    return settings


def outside_client(exchange_id: str, base_url: str) -> ccxt.Exchange:
    """A plain ccxt client of the exchange, built here and not by our exchange layer."""
    config = {"apiKey": KEY, "secret": SECRET, "options": {"fetchMarkets": {"types": ["spot"]}}}
    if exchange_id == "okx":
        client = ccxt.okx(dict(config, password=DEFAULT_API_PASSPHRASE))
        client.urls["api"]["rest"] = base_url
    else:
        config["options"].update(fetchCurrencies=False, fetchMargins=False)
        client = ccxt.binance(config)
        client.urls["api"] = point_urls(client.urls["api"], base_url)
    return client


@pytest.mark.parametrize("exchange_id", DIALECTS)
def test_order_payment_transfer_fills_stop_audit_and_reconcile_on_each_dialect(
        exchange_id, transactional_db, sim_server, lifecycle_settings, jobs, tmp_path):
    # Given an exchange account of this ccxt id on the simulator (created through the capability check),
    # an exchange account there that holds nothing yet, and a BTC/USDT pair on it
    simulator_market_ensure(symbol="BTC/USDT", start_price=Decimal("30000"), seed=11, reset=True)
    simulator_account_ensure(label=f"life-{exchange_id}", api_key=KEY, api_secret=SECRET,
                             balances={"USDT": Decimal("0"), "BTC": Decimal("0")})
    exchange_clients_clear()
    account = exchange_account_create(
        label=f"life-{exchange_id}", exchange_id=exchange_id, api_key=KEY, api_secret=SECRET,
        api_passphrase=DEFAULT_API_PASSPHRASE if exchange_id == "okx" else "", base_url=sim_server.base_url)
    pair = pair_create(symbol="BTC/USDT", base_asset_id=BTC, quote_asset_id=USDT, exchange_account_id=account.pk,
                       base_fee_asset_id=BTC, base_fee_amount="0.0001", quote_fee_asset_id=ETH,
                       quote_fee_amount="0.002")
    order = order_create(user_id="1f6d1fa3-4a1f-4a38-9d3e-2b7c6a1e2f00", pair_id=pair.pair_id, base_amount="0.5",
                         quote_amount="1000", bid_spread="0.001", ask_spread="0.001", order_amount="0.013",
                         order_refresh_time=10, number_of_layers=2, filled_order_delay="0", by="test")

    # When the user pays every leg (snapshots through ingest_snapshots) and the jobs run
    path = tmp_path / "snapshots.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in (
        snapshot_payload(order, asset_id=BTC, amount="0.5001"), snapshot_payload(order, asset_id=USDT, amount="1000"),
        snapshot_payload(order, asset_id=ETH, amount="0.002"))))
    call_command("ingest_snapshots", str(path))
    jobs()

    # Then the order runs with its funds on the exchange
    order.refresh_from_db()
    assert order.state == "running", order.reason
    assert {d.asset: d.amount for d in SimDeposit.objects.all()} == {"BTC": Decimal("0.5"), "USDT": Decimal("1000")}

    # When it quotes, and the market trades through its bids, then (after a refresh) through its asks
    tick_run()
    outside = outside_client(exchange_id, sim_server.base_url)
    prefix = ids.client_order_prefix(order.order_id)

    def ours_open():
        return [o for o in outside.fetch_open_orders("BTC/USDT") if o["clientOrderId"].startswith(prefix)]

    assert len(ours_open()) == 4
    # (then both sides filled, and each exchange trade settled into the ledger once)
    trade_through_both_sides(account, order)
    running = reconcile_run(trigger="test")
    assert running.ok, list(running.drifts.values_list("detail", flat=True))

    # When the operator stops it
    call_command("stop_mm", str(order.order_id), "--wait", "30")

    # Then nothing of it is open on the exchange, it is stopped, and the ledger and exchange agree
    assert ours_open() == []
    order.refresh_from_db()
    assert order.state == "paying_out" and StrategySession.objects.get(order=order).status == "stopped"
    assert get_balance(user_id=order.user_id, asset_id=BTC).locked == 0
    assert get_balance(user_id=order.user_id, asset_id=USDT).locked == 0
    held = {asset: get_balance(user_id=order.user_id, asset_id=asset).available for asset in (BTC, USDT)}
    exchange_before = {b["asset"]: b["free"] for b in SimBalance.objects.filter(
        account__label=f"life-{exchange_id}").values("asset", "free")}
    report = audit_ledger()
    assert report.ok, report.drifts
    stopped = reconcile_run(trigger="test")
    assert stopped.ok, list(stopped.drifts.values_list("detail", flat=True))

    # When the payout job runs (started by the stop): withdrawn to the bot, arrived, paid to the user
    assert jobs() == ["withdraw_to_user"]  # one poll: the simulator completes withdrawals at once
    order.refresh_from_db()
    assert order.state == "paid_out", (order.reason, list(order.payouts.values("asset_id", "status", "error")))
    assert list(OrderTransition.objects.filter(order=order).values_list("to_state", flat=True)) == [
        "payment_pending", "payment_complete", "withdrawing", "withdrawal_confirmed", "campaign_joined",
        "running", "stopped", "paying_out", "paid_out"]
    # Then the user got exactly what the order held at stop, once each, and holds nothing more here
    paid = {t.asset_id: t.amount for t in OutgoingTransfer.objects.filter(opponent_id=order.user_id)}
    assert paid == {asset: amount for asset, amount in held.items() if amount > 0}
    assert all(get_balance(user_id=order.user_id, asset_id=a).total == 0 for a in (BTC, USDT))
    # and it left the exchange account, seen from outside through ccxt
    balance = outside.fetch_balance()
    assert Decimal(str(balance["BTC"]["free"])) == exchange_before["BTC"] - held[BTC]
    assert Decimal(str(balance["USDT"]["free"])) == exchange_before["USDT"] - held[USDT]
    # and a second run of the job pays nothing twice
    app.tasks["withdraw_to_user"].apply(args=[str(order.order_id)])
    assert OutgoingTransfer.objects.filter(opponent_id=order.user_id).count() == len(paid)
    report = audit_ledger()
    assert report.ok, report.drifts
    after = reconcile_run(trigger="test")
    assert after.ok, list(after.drifts.values_list("detail", flat=True))


# --- bad input: refused in one line, recorded, nothing stored or sent -------------------------------


def sim_account_row(exchange_id: str, base_url: str):
    simulator_account_ensure(label=f"bad-{exchange_id}", api_key=KEY, api_secret=SECRET,
                             balances={"USDT": Decimal("100")})
    exchange_clients_clear()
    return exchange_account_create(
        label=f"bad-{exchange_id}", exchange_id=exchange_id, api_key=KEY, api_secret=SECRET,
        api_passphrase=DEFAULT_API_PASSPHRASE if exchange_id == "okx" else "", base_url=base_url)


@pytest.mark.parametrize("exchange_id", DIALECTS)
def test_a_pair_on_a_symbol_the_exchange_does_not_list_is_refused_in_one_line(
        exchange_id, transactional_db, sim_server, caplog):
    simulator_market_ensure(symbol="BTC/USDT", start_price=Decimal("30000"), seed=11)
    account = sim_account_row(exchange_id, sim_server.base_url)

    with pytest.raises(InvalidOrderRequest) as refused:
        pair_create(symbol="DOGE/USDT", base_asset_id=BTC, quote_asset_id=USDT, exchange_account_id=account.pk)

    assert str(refused.value) == (f"DOGE/USDT cannot be traded on account 'bad-{exchange_id}': {exchange_id} does "
                                  "not list 'DOGE/USDT'; check the symbol or reload markets")
    assert not MarketMakingPair.objects.exists()
    assert "event=pair_refused symbol=DOGE/USDT" in caplog.text
    # a listed symbol on the same account is taken
    assert pair_create(symbol="BTC/USDT", base_asset_id=BTC, quote_asset_id=USDT,
                       exchange_account_id=account.pk).exchange_id == exchange_id


def test_a_pair_is_refused_when_its_exchange_cannot_be_asked(transactional_db):
    exchange_clients_clear()
    account = exchange_account_create(label="unreachable", exchange_id="okx", api_key=KEY, api_secret=SECRET,
                                      api_passphrase="pp", base_url="http://127.0.0.1:9")

    with pytest.raises(InvalidOrderRequest, match=r"cannot check that okx lists BTC/USDT \(account 'unreachable'\): "
                                                  r"\w+"):
        pair_create(symbol="BTC/USDT", base_asset_id=BTC, quote_asset_id=USDT, exchange_account_id=account.pk)
    assert not MarketMakingPair.objects.exists()
    exchange_clients_clear()
