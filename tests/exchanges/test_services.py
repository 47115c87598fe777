"""Exchange services through ccxt: deposits (an account's address, a transfer arriving, its status as it
confirms), the one boundary out of ccxt's floats, lookups by client order id, and account creation."""
import time
from dataclasses import replace
from decimal import Decimal

import pytest

from exchanges.clients import build_exchange_client
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
from tests.exchanges.conftest import SIM_KEY, SIM_SECRET
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


# --- lookups by client order id ------------------------------------------------------------------


@pytest.fixture
def okx_layer(simulator):
    """Our own exchange layer on the simulator's OKX dialect: an okx account row (passphrase and all)
    built by exchanges.clients, as a real OKX account would be."""
    from exchanges.simulator.config import DEFAULT_API_PASSPHRASE

    account = ExchangeAccount(exchange_id="okx", label="okx-sim", api_key=SIM_KEY, base_url=simulator.base_url)
    account.api_secret, account.api_passphrase = SIM_SECRET, DEFAULT_API_PASSPHRASE
    account.save()
    return build_exchange_client(account)


@pytest.fixture(params=["binance", "okx_layer"])
def dialect(request, simulator):
    """Our exchange layer on each of the simulator's dialects."""
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("lookup", [LOOKUP_FETCH_ORDER, LOOKUP_ORDER_LISTS])
def test_an_order_is_found_by_our_client_id_open_or_closed_and_absent_is_none(dialect, monkeypatch, lookup):
    monkeypatch.setitem(EXCHANGE_OPTIONS, dialect.id, replace(EXCHANGE_OPTIONS[dialect.id], lookup=lookup))
    client_id = "mm0123456789ablookup" + lookup.replace("_", "")[:8]
    placed = dialect.create_order("BTC/USDT", "limit", "buy", "0.001", "25000", {"clientOrderId": client_id})

    found_open = fetch_by_client_id(dialect, "BTC/USDT", client_id)
    dialect.cancel_order(None, "BTC/USDT", {"clientOrderId": client_id})
    found_closed = fetch_by_client_id(dialect, "BTC/USDT", client_id)

    assert (found_open["id"], found_open["status"], found_open["clientOrderId"]) == (placed["id"], "open", client_id)
    assert (found_closed["id"], found_closed["status"]) == (placed["id"], "canceled")
    assert fetch_by_client_id(dialect, "BTC/USDT", "mmneverplaced0000") is None


def test_a_fill_its_fee_and_the_balance_leave_ccxt_exactly_on_both_dialects(dialect):
    placed = dialect.create_order("BTC/USDT", "limit", "buy", "0.01", "31000", {"clientOrderId": "mmfeecheck0001"})
    trades = [t for t in dialect.fetch_my_trades("BTC/USDT") if t["order"] == placed["id"]]
    balance = dialect.fetch_balance()
    raw = RawNumbers(balance["info"])

    amounts = [exchange_decimal(t, "amount") for t in trades]
    fees = [exchange_decimal(t["fee"], "cost", info=t["info"]) for t in trades]
    assert sum(amounts) == Decimal("0.01") and all(isinstance(fee, Decimal) for fee in fees)
    assert {t["fee"]["currency"] for t in trades} <= {"BTC", "USDT"}
    btc_fee = sum(fee for fee, t in zip(fees, trades) if t["fee"]["currency"] == "BTC")
    assert exchange_decimal(balance["BTC"], "free", info=raw) == Decimal("10.01") - btc_fee


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


def test_deposit_address_and_status_through_the_okx_dialect(okx_layer, simulator):
    account = ExchangeAccount.objects.get(label="okx-sim")
    address = exchange_deposit_address(account_id=account.pk, asset="BTC")

    assert exchange_deposit_status(account_id=account.pk, asset="BTC", tx_id="okx-tx-1") == "not_found"
    simulator_receive_transfer(address=address.address, asset="BTC", amount=Decimal("0.25"), tx_id="okx-tx-1")

    assert exchange_deposit_status(account_id=account.pk, asset="BTC", tx_id="okx-tx-1") == "confirmed"
    assert address == exchange_deposit_address(account_id=account.pk, asset="BTC")


def test_a_wrong_passphrase_is_one_authentication_error_before_anything_is_sent(simulator):
    import ccxt

    account = ExchangeAccount(exchange_id="okx", label="okx-wrong", api_key=SIM_KEY, base_url=simulator.base_url)
    account.api_secret, account.api_passphrase = SIM_SECRET, "not-the-passphrase"
    account.save()

    with pytest.raises(ccxt.AuthenticationError, match="(?i)passphrase"):
        build_exchange_client(account)
