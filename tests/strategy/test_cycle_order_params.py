"""The strategy cycle uses the order's own parameters: refresh tolerance, max order age, hanging orders,
inventory skew and layer spread, on a stored book (no exchange: the tests play executor and tracker)."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exchanges.models import ExchangeAccount
from intents.gates import track_creates_sql
from mmproject.sql import write_together
from intents.models import Intent, IntentKind, IntentStatus, TrackedOrder, TrackedOrderStatus
from orders.models import MarketMakingOrder
from intents import ids
from strategy import cycle
from strategy.models import MarketData, StrategySession

from tests.runtime_fixtures import make_running_order

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

# The book's mid is 30000: with a 0.2 % spread the innermost buy is at 29940 and the sell at 30060.
BID, ASK = Decimal("29990"), Decimal("30010")


@pytest.fixture
def account():
    return ExchangeAccount.objects.create(exchange_id="binance", label="params")


def running_order(account, *, layers=1, base="1", quote="40000", **params):
    order = make_running_order(account, layers=layers, base=base, quote=quote, spread="0.002")
    MarketMakingOrder.objects.filter(pk=order.pk).update(**params)
    return order


def run_cycle(account, *, at, slot, bid=BID, ask=ASK):
    """One strategy cycle at ``at`` on a book stored at ``at``, every session due."""
    MarketData.objects.update_or_create(account=account, symbol="BTC/USDT", defaults=dict(
        best_bid=bid, best_ask=ask, price_tick=Decimal("0.01"), amount_step=Decimal("0.00001"),
        min_amount=Decimal("0.00001"), min_notional=Decimal("5"), fetched_at=at))
    StrategySession.objects.update(next_run_at=at)
    summary = cycle.strategies_run_due(now=at, slot=slot)
    assert summary.sessions_run == 1
    return Intent.objects.filter(intent_id__contains=f":{slot}:")


def placed(order, *, at):
    """What the executor and the tracker record once the creates are on the book."""
    key = ids.strategy_key(order.order_id)
    creates = Intent.objects.filter(strategy_key=key, kind=IntentKind.CREATE, status=IntentStatus.NEW)
    write_together([track_creates_sql(list(creates.values_list("pk", flat=True)), now=at)])  # what their claim writes
    creates.update(status=IntentStatus.DONE)
    TrackedOrder.objects.filter(strategy_key=key, status=TrackedOrderStatus.PENDING_CREATE).update(
        status=TrackedOrderStatus.OPEN, created_at=at)
    return {t.side: t for t in TrackedOrder.objects.filter(strategy_key=key, status=TrackedOrderStatus.OPEN)}


def kinds(intents):
    return sorted((i.kind, i.side or "") for i in intents)


@pytest.mark.parametrize("tolerance, kept_within", [("0.001", True), ("0", False)])
def test_orders_within_the_refresh_tolerance_are_kept_and_replaced_beyond_it(account, tolerance, kept_within):
    # given a running order whose one-layer ladder is on the book
    order = running_order(account, order_refresh_tolerance_pct=Decimal(tolerance))
    t0 = timezone.now()
    assert kinds(run_cycle(account, at=t0, slot=1)) == [("create", "buy"), ("create", "sell")]
    book = placed(order, at=t0)
    assert (book["buy"].price, book["sell"].price) == (Decimal("29940"), Decimal("30060"))

    # when the mid moves 0.05 % (within a 0.1 % tolerance)
    within = run_cycle(account, at=t0 + timedelta(seconds=2), slot=2, bid=BID + 15, ask=ASK + 15)

    # then the orders stay with a tolerance, and are replaced without one: the new orders are written with
    # the cancels (the order's funds cover both), so the book is never left without a quote
    replaced = [("cancel", ""), ("cancel", ""), ("create", "buy"), ("create", "sell")]
    if kept_within:
        assert kinds(within) == []
        # and when it moves 0.2 %, past the tolerance, both are replaced
        beyond = run_cycle(account, at=t0 + timedelta(seconds=4), slot=3, bid=BID + 60, ask=ASK + 60)
        assert kinds(beyond) == replaced
    else:
        assert kinds(within) == replaced
    # the creates are written first, so they leave before the cancels (claims go by id)
    latest = within if not kept_within else beyond
    assert [i.kind for i in latest.order_by("pk")] == ["create", "create", "cancel", "cancel"]


@pytest.mark.parametrize("max_age_s", [30, None])
def test_an_order_older_than_max_order_age_is_cancelled(account, max_age_s):
    # given a ladder placed at t0 on an order with (or without) a max order age of 30 s
    order = running_order(account, max_order_age_s=max_age_s)
    t0 = timezone.now()
    run_cycle(account, at=t0, slot=1)
    book = placed(order, at=t0)

    # when the book does not move: at 29 s nothing happens; at 30 s the orders are too old
    assert kinds(run_cycle(account, at=t0 + timedelta(seconds=29), slot=2)) == []
    aged = run_cycle(account, at=t0 + timedelta(seconds=30), slot=3)

    # then with a max age both are cancelled, without one both stay
    if max_age_s:
        assert sorted(i.client_order_id for i in aged if i.kind == "cancel") == sorted(
            t.client_order_id for t in book.values())
        assert set(TrackedOrder.objects.filter(pk__in=[t.pk for t in book.values()]).values_list(
            "status", flat=True)) == {TrackedOrderStatus.PENDING_CANCEL}
    else:
        assert kinds(aged) == []


@pytest.mark.parametrize("hanging", [True, False])
def test_hanging_orders_keep_an_order_after_the_opposite_side_filled(account, hanging):
    # given a ladder on the book whose buy then fills completely
    order = running_order(account, hanging_orders_enabled=hanging)
    t0 = timezone.now()
    run_cycle(account, at=t0, slot=1)
    book = placed(order, at=t0)
    TrackedOrder.objects.filter(pk=book["buy"].pk).update(
        status=TrackedOrderStatus.FILLED, filled=book["buy"].amount, last_fill_at=t0 + timedelta(seconds=1))

    # when the price moves out of the (zero) refresh tolerance
    intents = run_cycle(account, at=t0 + timedelta(seconds=2), slot=2, bid=BID + 30, ask=ASK + 30)

    # then a new buy is quoted either way; the sell hangs on with hanging orders, and is replaced without
    sell = TrackedOrder.objects.get(pk=book["sell"].pk)
    if hanging:
        assert kinds(intents) == [("create", "buy")]
        assert sell.hanging and sell.status == TrackedOrderStatus.OPEN
    else:
        assert kinds(intents) == [("cancel", ""), ("create", "buy"), ("create", "sell")]
        assert not sell.hanging and sell.status == TrackedOrderStatus.PENDING_CANCEL


@pytest.mark.parametrize("params, buy, sell", [
    # the order holds 1 BTC and 30000 USDT: half its value in base at the mid of 30000
    ({"inventory_skew_enabled": False, "inventory_target_base_pct": Decimal("0.8")}, "0.01", "0.01"),
    ({"inventory_skew_enabled": True, "inventory_target_base_pct": Decimal("0.5")}, "0.01", "0.01"),
    # a target of 80 % in base: buy more, sell less, within a band of 100 ladder amounts (capped at half the value)
    ({"inventory_skew_enabled": True, "inventory_target_base_pct": Decimal("0.8"),
      "inventory_range_multiplier": Decimal(100)}, "0.016", "0.004"),
    # the default band of one ladder amount: the position is far below it, all buy and no sell
    ({"inventory_skew_enabled": True, "inventory_target_base_pct": Decimal("0.8")}, "0.02", None),
])
def test_inventory_skew_sizes_bids_and_asks_from_the_orders_position(account, params, buy, sell):
    running_order(account, base="1", quote="30000", **params)

    intents = run_cycle(account, at=timezone.now(), slot=1)

    amounts = {i.side: i.amount for i in intents if i.kind == "create"}
    assert amounts.get("buy") == Decimal(buy)
    assert amounts.get("sell") == (None if sell is None else Decimal(sell))


@pytest.mark.parametrize("layer_spread, buys, sells", [
    (Decimal("0.001"), ["29940", "29910", "29880"], ["30060", "30090", "30120"]),
    # none of its own: each layer one more bid spread (0.2 %) out
    (None, ["29940", "29880", "29820"], ["30060", "30120", "30180"]),
])
def test_order_level_spread_sets_the_distance_between_layers(account, layer_spread, buys, sells):
    running_order(account, layers=3, order_level_spread=layer_spread)

    intents = run_cycle(account, at=timezone.now(), slot=1)

    prices = {side: sorted((i.price for i in intents if i.side == side), reverse=side == "buy")
              for side in ("buy", "sell")}
    assert prices == {"buy": [Decimal(p) for p in buys], "sell": [Decimal(p) for p in sells]}


# --- price band, inventory cost and price source elsewhere (issue 15) --------------------------------


def store_book(account, symbol, *, at, bid, ask):
    MarketData.objects.update_or_create(account=account, symbol=symbol, defaults=dict(
        best_bid=bid, best_ask=ask, price_tick=Decimal("0.01"), amount_step=Decimal("0.00001"),
        min_amount=Decimal("0.00001"), min_notional=Decimal("5"), fetched_at=at))


def test_a_price_source_on_another_market_gives_the_reference_and_a_stale_one_stops_quoting(account):
    # given an order priced from BTC/USDC on another account, whose mid is 30100
    source = ExchangeAccount.objects.create(exchange_id="binance", label="source")
    running_order(account, price_source_account=source.pk, price_source_market="BTC/USDC")
    t0 = timezone.now()
    store_book(source, "BTC/USDC", at=t0, bid=Decimal("30090"), ask=Decimal("30110"))
    store_book(account, "BTC/USDT", at=t0, bid=Decimal("29990"), ask=Decimal("30310"))

    # then its ladder is around 30100 (0.2 %: 30039.8 and 30160.2), not around its own market's 30150
    StrategySession.objects.update(next_run_at=t0)
    assert cycle.strategies_run_due(now=t0, slot=1).sessions_run == 1
    prices = dict(Intent.objects.filter(kind=IntentKind.CREATE).values_list("side", "price"))
    assert prices == {"buy": Decimal("30039.80"), "sell": Decimal("30160.20")}

    # and the trackers follow the source market too, but track orders only on the traded account
    from strategy.selectors import tracked_markets_and_accounts
    assert tracked_markets_and_accounts() == ([(account.pk, "BTC/USDT"), (source.pk, "BTC/USDC")], [account.pk])

    # when the source's data is stale, the session does not quote on a price it cannot trust
    later = t0 + timedelta(minutes=5)
    store_book(account, "BTC/USDT", at=later, bid=BID, ask=ASK)
    StrategySession.objects.update(next_run_at=later, refreshed_at=None)
    summary = cycle.strategies_run_due(now=later, slot=2)
    assert (summary.sessions_run, summary.sessions_stale) == (0, 1)


def test_the_inventory_cost_price_source_folds_in_each_fill_once(account):
    from intents.models import TrackedFill

    order = running_order(account, price_source_type="inventory_cost", bid_spread=Decimal("0.01"),
                          ask_spread=Decimal("0.01"))
    key = ids.strategy_key(order.order_id)
    t0 = timezone.now()
    # nothing bought yet: quoted around the mid (30000)
    first = run_cycle(account, at=t0, slot=1)
    assert dict(first.filter(kind=IntentKind.CREATE).values_list("side", "price"))["sell"] == Decimal("30300")
    book = placed(order, at=t0)

    # when it bought 0.1 at 29000 and 0.1 at 29400 (average 29200) and sold 0.1
    for n, (side, amount, cost) in enumerate([("buy", "0.1", "2900"), ("buy", "0.1", "2940"),
                                              ("sell", "0.1", "3000")]):
        TrackedFill.objects.create(account=account, trade_id=f"t{n}", symbol="BTC/USDT", strategy_key=key, side=side,
                                   tracked_order=book[side],
                                   price=Decimal(cost) / Decimal(amount), amount=Decimal(amount), cost=Decimal(cost),
                                   traded_at_ms=n)
    StrategySession.objects.update(refreshed_at=None)
    second = run_cycle(account, at=t0 + timedelta(seconds=1), slot=2, bid=Decimal("29100"), ask=Decimal("29120"))

    # then it quotes 1 % around its cost of 29200 (the buy at 28908 goes out with the cancels; the sell at
    # 29492 once the old one's base is free), and the session holds that inventory once
    assert list(second.filter(kind=IntentKind.CREATE).values_list("side", "price")) == [("buy", Decimal("28908"))]
    session = StrategySession.objects.get()
    assert (session.inventory_base, session.inventory_cost) == (Decimal("0.1"), Decimal("2920"))
    fills_seen = session.inventory_fill_id
    StrategySession.objects.update(refreshed_at=None)
    run_cycle(account, at=t0 + timedelta(seconds=2), slot=3, bid=Decimal("29100"), ask=Decimal("29120"))
    session.refresh_from_db()
    assert (session.inventory_base, session.inventory_cost, session.inventory_fill_id) == (
        Decimal("0.1"), Decimal("2920"), fills_seen)


def test_the_moving_band_is_kept_between_runs_and_switches_buys_off_above_its_ceiling(account):
    running_order(account, moving_price_band_enabled=True, price_ceiling_pct=Decimal("0.01"),
                  price_floor_pct=Decimal("0.01"), price_band_refresh_time=3600)
    t0 = timezone.now()
    assert kinds(run_cycle(account, at=t0, slot=1)) == [("create", "buy"), ("create", "sell")]
    session = StrategySession.objects.get()
    assert (session.band_price, session.band_set_at) == (Decimal("30000"), t0)
    Intent.objects.all().delete()

    # when the mid rises 1 % (to the band's ceiling of 30300) within the band's refresh time
    StrategySession.objects.update(refreshed_at=None)
    after = run_cycle(account, at=t0 + timedelta(seconds=60), slot=2, bid=Decimal("30290"), ask=Decimal("30310"))

    # then no buy is placed, and the band keeps its anchor
    assert kinds(after) == [("create", "sell")]
    session.refresh_from_db()
    assert (session.band_price, session.band_set_at) == (Decimal("30000"), t0)
