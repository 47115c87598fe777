"""What the ledger says the orders on each exchange account hold, exactly, on either database."""
import uuid
from decimal import Decimal

import pytest

from ledger import services as ledger
from orders.models import ExchangeTransfer, ExchangeTransferStatus, OrderState
from reconciliation.selectors import balance_scope, ledger_positions
from tests.factories import ExchangeAccountFactory, OrderFactory, PairFactory
from tests.runtime_fixtures import BTC, USDT

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def order_on(pair, n, state=OrderState.RUNNING):
    order = OrderFactory(user_id=f"rec-user-{n}", pair=pair, state=state)
    for asset, amount in ((BTC, "2.00000001"), (USDT, "123456789.12345678")):
        ledger.credit_deposit(user_id=order.user_id, asset_id=asset, amount=amount, idempotency_key=f"in:{n}:{asset}")
        ledger.lock_funds(user_id=order.user_id, asset_id=asset, amount=amount, idempotency_key=f"lock:{n}:{asset}",
                          ref_type="mm_order", ref_id=str(order.order_id))
    return order


def test_positions_sum_each_accounts_orders_by_exchange_code_exactly():
    # Given two orders on account A (one of which bought 0.5 BTC for 15000.00000001 USDT, fee 15 USDT)
    # and one order on account B whose funds were all released
    a, b = ExchangeAccountFactory(label="rec-a"), ExchangeAccountFactory(label="rec-b")
    pairs = {acc: PairFactory(exchange_account=acc, quote_exchange_asset="usdt") for acc in (a, b)}
    first, _, released = order_on(pairs[a], 1), order_on(pairs[a], 2), order_on(pairs[b], 3)
    ledger.settle_fill(user_id=first.user_id, exchange="binance", trade_id="t1", side="buy", base_asset_id=BTC,
                       quote_asset_id=USDT, base_amount="0.5", quote_amount="15000.00000001", fee_amount="15",
                       ref_type="mm_order", ref_id=str(first.order_id))
    for asset, amount in ((BTC, "2.00000001"), (USDT, "123456789.12345678")):
        ledger.unlock_funds(user_id=released.user_id, asset_id=asset, amount=amount,
                            idempotency_key=f"unlock:3:{asset}", ref_type="mm_order", ref_id=str(released.order_id))
    # and funds locked under some other ref, which no order holds
    ledger.credit_deposit(user_id="other", asset_id=BTC, amount="9", idempotency_key="o-in")
    ledger.lock_funds(user_id="other", asset_id=BTC, amount="9", idempotency_key="o-lock", ref_type="refund",
                      ref_id="x")

    positions = ledger_positions()

    assert {key: (p.amount, p.orders) for key, p in positions.items()} == {
        (a.pk, "BTC"): (Decimal("4.50000002"), 2),
        (a.pk, "USDT"): (Decimal("246898563.24691355"), 2),
    }
    # and both accounts are in the balance scope, by their pairs' exchange codes (upper case)
    assert balance_scope(positions) == {a.pk: {"BTC", "USDT"}, b.pk: {"BTC", "USDT"}}


def test_stopped_orders_keep_counting_and_transfers_in_flight_do_not_yet():
    account = ExchangeAccountFactory(label="rec-c")
    pair = PairFactory(exchange_account=account)
    # Given a stopped order whose funds (2.00000001 BTC, 123456789.12345678 USDT) the stop released in the ledger
    stopped = order_on(pair, 1, state=OrderState.STOPPED)
    for asset, amount in ((BTC, "2.00000001"), (USDT, "123456789.12345678")):
        ledger.unlock_funds(user_id=stopped.user_id, asset_id=asset, amount=amount, idempotency_key=f"stop:{asset}",
                            ref_type="mm_order", ref_id=str(stopped.order_id))
    # and an order withdrawing to the exchange: its BTC confirmed there, its USDT transfer still in flight
    withdrawing = order_on(pair, 2, state=OrderState.WITHDRAWING)
    for asset, code, status in ((BTC, "BTC", ExchangeTransferStatus.CONFIRMED),
                                (USDT, "USDT", ExchangeTransferStatus.SENT)):
        ExchangeTransfer.objects.create(order=withdrawing, asset_id=asset, exchange_asset=code, address="a",
                                        amount=Decimal("2.00000001") if asset == BTC else Decimal("123456789.12345678"),
                                        request_id=uuid.uuid4(), status=status)

    positions = ledger_positions()

    # Then the stopped order still counts what it had on the exchange; the USDT on its way does not
    btc, usdt = positions[(account.pk, "BTC")], positions[(account.pk, "USDT")]
    assert (btc.amount, btc.orders, btc.released) == (Decimal("4.00000002"), 2, Decimal("2.00000001"))
    usdt_of_one_order = Decimal("123456789.12345678")
    assert (usdt.amount, usdt.orders, usdt.released) == (usdt_of_one_order, 1, usdt_of_one_order)
