"""The live view: open orders, fill totals and a PnL computed exactly from the fills at the mid."""
from decimal import Decimal

import pytest
from django.utils import timezone

from demo.selectors import demo_view
from demo.services import BTC_ASSET_ID, DEMO_USER_ID, USDT_ASSET_ID
from demo.view import render_line, render_screen
from intents.models import TrackedFill
from strategy.models import MarketData, TickLease
from tests.factories import (
    ExchangeAccountFactory,
    IntentFactory,
    OrderFactory,
    PairFactory,
    StrategySessionFactory,
    TrackedOrderFactory,
)
from intents.ids import strategy_key

pytestmark = pytest.mark.embedded


@pytest.fixture
def running_order(db):
    account = ExchangeAccountFactory(label="view-sim", base_url="http://127.0.0.1:9")
    pair = PairFactory(exchange_account=account, base_asset_id=BTC_ASSET_ID, quote_asset_id=USDT_ASSET_ID)
    # Without payment legs or a session (the view reads no legs): a test deletes the order.
    return OrderFactory(user_id=DEMO_USER_ID, pair=pair, state="running", base_amount=Decimal("0.5"),
                        quote_amount=Decimal("15000"), bid_spread=Decimal("0.0005"), ask_spread=Decimal("0.0005"),
                        payment=None, strategy_session=None)


def add_order(order, n, side, price, amount, status="open"):
    return TrackedOrderFactory(client_order_id=f"c{n}", strategy_key=strategy_key(order.order_id),
                               account=order.exchange_account, side=side, price=Decimal(price),
                               amount=Decimal(amount), status=status)


def add_fill(order, tracked, n, side, price, amount, fee, fee_currency):
    amount, price = Decimal(amount), Decimal(price)
    TrackedFill.objects.create(account=order.exchange_account, trade_id=str(n), symbol="BTC/USDT",
                               tracked_order=tracked, strategy_key=tracked.strategy_key, side=side, price=price,
                               amount=amount, cost=amount * price, fee=Decimal(fee), fee_currency=fee_currency,
                               traded_at_ms=n)


def test_view_counts_open_orders_and_fills_and_marks_pnl_exactly_at_the_mid(running_order):
    # given one open order, a filled buy (fee in BTC) and a filled sell (fee in USDT), a book and a tick
    add_order(running_order, 1, "sell", "30015", "0.01")
    bought = add_order(running_order, 2, "buy", "29985", "0.01", status="filled")
    sold = add_order(running_order, 3, "sell", "30015.5", "0.015", status="filled")
    add_fill(running_order, bought, 1, "buy", "29985", "0.01", "0.00001", "BTC")
    add_fill(running_order, sold, 2, "sell", "30015.5", "0.015", "0.4502325", "USDT")
    MarketData.objects.create(account=running_order.exchange_account, symbol="BTC/USDT", best_bid=Decimal("30000.01"),
                              best_ask=Decimal("30000.03"), price_tick=Decimal("0.01"), amount_step=Decimal("0.00001"),
                              fetched_at=timezone.now())
    TickLease.objects.update_or_create(name="tick", defaults=dict(  # a worker test may have left one
        last_duration_ms=42, ticks_run=7, last_finished_at=timezone.now()))
    IntentFactory(cancel=True, intent_id="i1", strategy_key=strategy_key(running_order.order_id),
                  account=running_order.exchange_account, client_order_id="c1", status="in_flight")

    # when the view is read
    view = demo_view(running_order)

    # then: base delta 0.01 - 0.00001 - 0.015 = -0.00501; quote delta -299.85 + 450.2325 - 0.4502325 = 149.9322675;
    # PnL = -0.00501 x 30000.02 + 149.9322675 = -150.3001002 + 149.9322675 = -0.3678327
    assert [o["side"] for o in view["open_orders"]] == ["sell"]
    assert (view["fills"]["count"], view["fills"]["bought"], view["fills"]["sold"]) == (2, "0.01", "0.015")
    assert (view["fills"]["base_delta"], view["fills"]["quote_delta"]) == ("-0.00501", "149.9322675")
    assert view["market"]["mid"] == "30000.02"
    assert view["pnl"]["quote"] == "-0.3678327"
    assert view["tick"]["last_duration_ms"] == 42 and view["intents"]["in_flight"] == 1
    assert view["order"]["state"] == "running"
    screen = render_screen(view, header=["HEADER"])
    assert screen.startswith("HEADER\n") and "PnL       -0.3678327 USDT" in screen
    assert render_line(view) == "demo: state=running open=1 fills=2 pnl=-0.3678327 tick_ms=42 in_flight=1 " \
                                "two_sided_pct=-"  # no uptime sample taken yet


def test_view_shows_the_sessions_two_sided_uptime(running_order):
    StrategySessionFactory(order=running_order, quote_samples=200, two_sided_samples=199)

    view = demo_view(running_order)

    assert view["uptime"] == {"two_sided_pct": 99.5, "samples": 200}
    assert "both sides quoted in 99.5 % of 200 samples" in render_screen(view, header=[])
    assert render_line(view).endswith(" two_sided_pct=99.5")


def test_view_without_market_data_has_no_pnl_and_without_an_order_says_so(running_order):
    view = demo_view(running_order)
    assert view["pnl"]["quote"] is None and view["fills"]["count"] == 0
    assert "n/a (no market data yet)" in render_screen(view, header=[])
    running_order.delete()
    assert demo_view() == {"order": None}
