"""Withdrawals from an exchange account through ccxt (the payout's first leg), against the simulator's
/sapi/v1/capital/withdraw endpoints: once per client id, fee out of the amount, status as it completes."""
from decimal import Decimal

import ccxt
import pytest

from exchanges.models import SimBalance, SimWithdrawal
from exchanges.services import exchange_deposit_address, exchange_withdraw, exchange_withdrawal_find
from exchanges.simulator.services import simulator_withdrawal_sent

pytestmark = pytest.mark.embedded


def _free(label, asset):
    return SimBalance.objects.get(account__label=label, asset=asset).free


def test_a_withdrawal_leaves_once_per_client_id_and_the_fee_comes_out_of_it(simulator, settings):
    settings.SIM_WITHDRAW_FEES = "BTC=0.0005"
    before = _free(simulator.sim_label, "BTC")

    first = exchange_withdraw(account_id=simulator.account.pk, asset="BTC", amount=Decimal("0.25"),
                              address="bot-btc-address", tag="memo-1", client_id="payout-1-btc")
    again = exchange_withdraw(account_id=simulator.account.pk, asset="BTC", amount=Decimal("0.25"),
                              address="bot-btc-address", tag="memo-1", client_id="payout-1-btc")

    assert first.id == again.id and first.status == "ok" and first.tx_id
    assert first.amount == Decimal("0.2495") and first.fee == Decimal("0.0005")
    assert _free(simulator.sim_label, "BTC") == before - Decimal("0.25")
    assert SimWithdrawal.objects.filter(client_id="payout-1-btc").count() == 1
    sent = simulator_withdrawal_sent(tx_id=first.tx_id)
    assert (sent.address, sent.tag, sent.amount - sent.fee) == ("bot-btc-address", "memo-1", Decimal("0.2495"))
    assert exchange_withdrawal_find(account_id=simulator.account.pk, asset="BTC", client_id="other") is None


def test_a_withdrawal_stays_pending_until_it_completes(simulator, settings):
    settings.SIM_WITHDRAW_CONFIRM_S = 30
    sent = exchange_withdraw(account_id=simulator.account.pk, asset="USDT", amount=Decimal("100"),
                             address="bot-usdt-address", client_id="payout-2-usdt")
    assert sent.status == "pending" and sent.tx_id == ""
    assert simulator_withdrawal_sent(tx_id=SimWithdrawal.objects.get(client_id="payout-2-usdt").tx_id) is None


def test_a_withdrawal_to_a_simulator_deposit_address_arrives_there(simulator):
    address = exchange_deposit_address(account_id=simulator.account.pk, asset="BTC")
    before = _free(simulator.sim_label, "BTC")
    exchange_withdraw(account_id=simulator.account.pk, asset="BTC", amount=Decimal("1"), address=address.address,
                      client_id="round-trip")
    assert _free(simulator.sim_label, "BTC") == before


def test_refusals_are_ccxt_errors_and_nothing_leaves(simulator, settings):
    settings.SIM_WITHDRAW_FEES = "BTC=0.001"
    before = _free(simulator.sim_label, "BTC")
    # (ccxt raises BadRequest for the sapi codes -4026 and -4028 whatever its table of them says)
    with pytest.raises(ccxt.BadRequest, match="insufficient balance"):
        exchange_withdraw(account_id=simulator.account.pk, asset="BTC", amount=before + 1, address="bot-btc-address",
                          client_id="too-much")
    with pytest.raises(ccxt.BadRequest, match="greater than the Commission"):
        exchange_withdraw(account_id=simulator.account.pk, asset="BTC", amount=Decimal("0.001"), address="bot-btc-address",
                          client_id="not-above-fee")
    with pytest.raises(TypeError):
        exchange_withdraw(account_id=simulator.account.pk, asset="BTC", amount=0.5, address="bot-btc-address", client_id="float")
    assert _free(simulator.sim_label, "BTC") == before
    assert not SimWithdrawal.objects.exists()
