"""Exchange services through ccxt: deposits (an account's address, a transfer arriving, its status as it
confirms), the one boundary out of ccxt's floats, lookups by client order id, and account creation."""
import time
from dataclasses import replace
from decimal import Decimal

import pytest

from exchanges.dialects import EXCHANGE_OPTIONS, LOOKUP_FETCH_ORDER, LOOKUP_ORDER_LISTS
from exchanges.errors import ExchangeSetupError, MissingCapabilities
from exchanges.models import ExchangeAccount, SimBalance
from exchanges.services import (
    RawNumbers,
    exchange_account_create,
    exchange_capabilities_check,
    exchange_decimal,
    exchange_deposit_address,
    exchange_deposit_status,
    fetch_by_client_id,
)
from exchanges.simulator.errors import TransferConflict, UnknownDepositAddress
from exchanges.simulator.services import simulator_receive_transfer

pytestmark = pytest.mark.embedded


def _btc_free(label):
    return SimBalance.objects.get(account__label=label, asset="BTC").free


def test_deposit_address_is_stable_per_account_asset_and_network(simulator):
    first = exchange_deposit_address(account_id=simulator.account.pk, asset="BTC")
    again = exchange_deposit_address(account_id=simulator.account.pk, asset="BTC")
    usdt = exchange_deposit_address(account_id=simulator.account.pk, asset="USDT", network="ETH")

    # No network asked: ccxt names binance's only through the currency list, which we do not load.
    assert first == again and first.network == "" and first.tag == ""
    assert usdt.address != first.address and usdt.network == "ETH"


def test_received_transfer_is_credited_once_and_confirmed(simulator):
    address = exchange_deposit_address(account_id=simulator.account.pk, asset="BTC")
    assert exchange_deposit_status(account_id=simulator.account.pk, asset="BTC", tx_id="tx-1") == "not_found"

    simulator_receive_transfer(address=address.address, asset="BTC", amount=Decimal("0.5"), tx_id="tx-1")
    simulator_receive_transfer(address=address.address, asset="BTC", amount=Decimal("0.5"), tx_id="tx-1")

    assert exchange_deposit_status(account_id=simulator.account.pk, asset="BTC", tx_id="tx-1") == "confirmed"
    assert _btc_free(simulator.sim_label) == Decimal("10.5")
    with pytest.raises(TransferConflict):
        simulator_receive_transfer(address=address.address, asset="BTC", amount=Decimal("0.6"), tx_id="tx-1")
    with pytest.raises(UnknownDepositAddress):
        simulator_receive_transfer(address="nobody", asset="BTC", amount=Decimal(1), tx_id="tx-2")


def test_a_transfer_stays_pending_until_its_confirmation_time(simulator, settings):
    settings.SIM_DEPOSIT_CONFIRM_S = 0.6
    address = exchange_deposit_address(account_id=simulator.account.pk, asset="BTC")

    simulator_receive_transfer(address=address.address, asset="BTC", amount=Decimal("1.25"), tx_id="tx-slow")

    assert exchange_deposit_status(account_id=simulator.account.pk, asset="BTC", tx_id="tx-slow") == "pending"
    assert _btc_free(simulator.sim_label) == Decimal(10)
    deadline = time.monotonic() + 10
    while exchange_deposit_status(account_id=simulator.account.pk, asset="BTC", tx_id="tx-slow") != "confirmed":
        assert time.monotonic() < deadline, "the deposit never confirmed"
        time.sleep(0.2)
    assert _btc_free(simulator.sim_label) == Decimal("11.25")


# --- the one boundary out of ccxt's floats -------------------------------------------------------


def test_a_money_value_is_the_exchanges_own_text_when_ccxt_kept_it_under_any_key():
    trade = {"amount": 123456789.12345679, "price": 0.1, "info": {"someKey": "123456789.123456789", "px": "0.10"}}

    assert exchange_decimal(trade, "amount") == Decimal("123456789.123456789")
    assert str(exchange_decimal(trade, "price")) == "0.10"


def test_without_the_exchanges_text_the_floats_shortest_text_is_the_value():
    order = {"amount": 0.00012345, "filled": None, "cost": 7, "info": {"a": "1.5", "b": "other"}}

    assert exchange_decimal(order, "amount") == Decimal("0.00012345")
    assert exchange_decimal(order, "filled") is None and exchange_decimal(order, "cost") == Decimal(7)
    assert exchange_decimal({"x": 1.1}, "x") == Decimal("1.1")


def test_two_different_texts_for_one_float_are_not_guessed_between():
    fee = {"cost": 0.30000000000000004}
    info = {"a": "0.30000000000000004", "b": "0.300000000000000044"}

    assert exchange_decimal(fee, "cost", info=info) == Decimal("0.30000000000000004")


def test_a_fee_and_a_balance_read_their_texts_from_the_raw_response_they_came_with(binance):
    placed = binance.create_order("BTC/USDT", "limit", "buy", "0.01", "31000", {"clientOrderId": "fee-check-1"})
    trade = next(t for t in binance.fetch_my_trades("BTC/USDT") if t["order"] == placed["id"])
    balance = binance.fetch_balance()

    assert exchange_decimal(trade["fee"], "cost", info=trade["info"]) == Decimal(str(trade["fee"]["cost"]))
    assert exchange_decimal(trade, "amount") == Decimal("0.01")
    assert exchange_decimal(balance["BTC"], "free", info=RawNumbers(balance["info"])) == Decimal("10.01") - \
        exchange_decimal(trade["fee"], "cost", info=trade["info"])


# --- lookups by client order id ------------------------------------------------------------------


@pytest.mark.parametrize("lookup", [LOOKUP_FETCH_ORDER, LOOKUP_ORDER_LISTS])
def test_an_order_is_found_by_our_client_id_open_or_closed_and_absent_is_none(binance, monkeypatch, lookup):
    monkeypatch.setitem(EXCHANGE_OPTIONS, "binance", replace(EXCHANGE_OPTIONS["binance"], lookup=lookup))
    placed = binance.create_order("BTC/USDT", "limit", "buy", "0.001", "25000", {"clientOrderId": "lookup-open-1"})

    found_open = fetch_by_client_id(binance, "BTC/USDT", "lookup-open-1")
    binance.cancel_order(None, "BTC/USDT", {"clientOrderId": "lookup-open-1"})
    found_closed = fetch_by_client_id(binance, "BTC/USDT", "lookup-open-1")

    assert (found_open["id"], found_open["status"], found_open["clientOrderId"]) == (placed["id"], "open", "lookup-open-1")
    assert (found_closed["id"], found_closed["status"]) == (placed["id"], "canceled")
    assert fetch_by_client_id(binance, "BTC/USDT", "never-placed") is None


# --- creating an account -------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_account_is_created_on_an_exchange_with_every_capability_and_its_passphrase_encrypted():
    account = exchange_account_create(label="okx-1", exchange_id="okx", api_key="k", api_secret="s",
                                      api_passphrase="pp-secret", uid="u1", sandbox=True)

    stored = ExchangeAccount.objects.get(pk=account.pk)
    assert stored.api_passphrase == "pp-secret" and "pp-secret" not in stored.api_passphrase_encrypted
    assert (stored.uid, stored.sandbox) == ("u1", True)


@pytest.mark.django_db
def test_an_exchange_without_a_needed_capability_is_refused_naming_each_missing_in_one_line():
    with pytest.raises(MissingCapabilities) as refused:
        exchange_account_create(label="paymium-1", exchange_id="paymium")

    # Without the order lists a lookup by client id needs fetchOrder, which paymium lacks too.
    message = str(refused.value)
    assert refused.value.missing == ["fetchOpenOrders", "fetchMyTrades", "fetchDeposits or fetchDepositsWithdrawals",
                                     "fetchOrder"]
    assert "\n" not in message and \
        "fetchOpenOrders, fetchMyTrades, fetchDeposits or fetchDepositsWithdrawals, fetchOrder" in message
    assert not ExchangeAccount.objects.filter(label="paymium-1").exists()


@pytest.mark.django_db
def test_an_unknown_exchange_or_a_sandbox_where_there_is_none_is_refused():
    with pytest.raises(ExchangeSetupError, match="no exchange 'binanse'"):
        exchange_account_create(label="typo", exchange_id="binanse")
    with pytest.raises(ExchangeSetupError, match="no sandbox"):
        exchange_capabilities_check(exchange_id="bitfinex", sandbox=True)
    assert not ExchangeAccount.objects.exists()
