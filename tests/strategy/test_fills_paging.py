"""Trade history is read in pages of the exchange's own size (exchanges.dialects.trades_page): a full
page means more may follow, so every fill is recorded however small the exchange's pages are."""
import time
from dataclasses import replace
from decimal import Decimal

import pytest

from exchanges.dialects import EXCHANGE_OPTIONS, trades_page
from intents.ids import client_order_prefix, strategy_key
from intents.models import TrackedFill, TrackedOrder
from strategy.fills import fills_record
from tests.runtime_fixtures import make_running_order

pytestmark = pytest.mark.embedded


def test_fills_over_several_pages_are_all_recorded_once(sim, monkeypatch):
    # Given an exchange that gives two trades a page, and five of our orders that filled at once
    account = sim.accounts[0]
    order = make_running_order(account, layers=1, session=False)
    client = sim.client(account)
    monkeypatch.setitem(EXCHANGE_OPTIONS, "binance", replace(EXCHANGE_OPTIONS["binance"], trades_page=2))
    assert trades_page(client) == 2
    for n in range(5):
        client_order_id = f"{client_order_prefix(order.order_id)}page{n:012d}"
        placed = client.create_order("BTC/USDT", "limit", "buy", "0.001", "31000", {"clientOrderId": client_order_id})
        TrackedOrder.objects.create(
            client_order_id=client_order_id, strategy_key=strategy_key(order.order_id), account=account,
            symbol="BTC/USDT", side="buy", price=Decimal(31000), amount=Decimal("0.001"), status="filled",
            exchange_order_id=placed["id"])
        time.sleep(0.005)  # pages move on by trade time: one trade per millisecond at most
    trades = client.fetch_my_trades("BTC/USDT")

    # When the fills are recorded (twice: the second run sees nothing new)
    first = fills_record(account_id=account.pk, symbol="BTC/USDT", client=client)
    again = fills_record(account_id=account.pk, symbol="BTC/USDT", client=client)

    # Then every trade is recorded exactly once, with the exchange's own figures
    assert len(trades) >= 5 and (first, again) == (len(trades), 0)
    assert set(TrackedFill.objects.values_list("trade_id", flat=True)) == {str(t["id"]) for t in trades}
    assert sum(TrackedFill.objects.values_list("amount", flat=True)) == Decimal("0.005")
