"""Deposits through ccxt: the address of an account, a transfer arriving, its status as it confirms."""
import time
from decimal import Decimal

import pytest

from exchanges.models import SimBalance
from exchanges.services import exchange_deposit_address, exchange_deposit_status
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
        simulator_receive_transfer(address="nobody", asset="BTC", amount=Decimal("1"), tx_id="tx-2")


def test_a_transfer_stays_pending_until_its_confirmation_time(simulator, settings):
    settings.SIM_DEPOSIT_CONFIRM_S = 0.6
    address = exchange_deposit_address(account_id=simulator.account.pk, asset="BTC")

    simulator_receive_transfer(address=address.address, asset="BTC", amount=Decimal("1.25"), tx_id="tx-slow")

    assert exchange_deposit_status(account_id=simulator.account.pk, asset="BTC", tx_id="tx-slow") == "pending"
    assert _btc_free(simulator.sim_label) == Decimal("10")
    deadline = time.monotonic() + 10
    while exchange_deposit_status(account_id=simulator.account.pk, asset="BTC", tx_id="tx-slow") != "confirmed":
        assert time.monotonic() < deadline, "the deposit never confirmed"
        time.sleep(0.2)
    assert _btc_free(simulator.sim_label) == Decimal("11.25")
