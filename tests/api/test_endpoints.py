"""The user's API, endpoint by endpoint: pairs, create, my orders, one order with its payment state, history,
parameter edits, stop; bad input is a 400 naming the field; a token never reads or acts on another user's
order (404, and nothing changes)."""
import uuid
from decimal import Decimal

import pytest

from intents.ids import strategy_key
from intents.models import TrackedFill
from orders.memo import decode_memo
from orders.models import MarketMakingOrder, OrderState, OrderTransition, ParamChange
from strategy.models import SessionStatus, StrategySession
from orders.services import order_create, order_params_update, payment_fail, snapshot_intake, snapshot_record
from tests.api.conftest import make_caller
from tests.factories import OrderFactory, PairFactory, TrackedOrderFactory
from tests.orders.conftest import BTC, USDT, pay_in_full, snapshot_payload

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

ORDERS = "/api/orders/"


def url(order, tail=""):
    return f"{ORDERS}{order.order_id}/{tail}"


def make_order(pair, caller, **params):
    return order_create(user_id=caller.mixin_user_id, pair_id=pair.pair_id, base_amount="0.5", quote_amount="1000",
                        bid_spread="0.001", ask_spread="0.001", order_amount="0.01", by="test", **params)


def fresh(order):
    return MarketMakingOrder.objects.get(pk=order.pk)


# --- pairs ---------------------------------------------------------------------------------------------------
def test_pairs_lists_the_enabled_pairs_with_their_scales_and_fees(alice, pair):
    PairFactory(symbol="ETH/USDT", base_asset_id="asset-x", enabled=False)
    response = alice.get("/api/pairs/")
    assert response.status_code == 200
    [listed] = response.json()
    assert listed == {
        "pair_id": str(pair.pair_id), "symbol": "BTC/USDT", "exchange_id": "binance", "base_asset_id": BTC,
        "quote_asset_id": USDT, "base_exchange_asset": "BTC", "quote_exchange_asset": "USDT", "base_scale": 8,
        "quote_scale": 8, "base_fee_asset_id": BTC, "base_fee_amount": "0.0001",
        "quote_fee_asset_id": pair.quote_fee_asset_id, "quote_fee_amount": "0.002"}


# --- create --------------------------------------------------------------------------------------------------
def test_create_makes_an_order_intent_of_the_tokens_user_with_its_memo_and_amounts(alice, body):
    body["order_refresh_time"] = 5
    response = alice.post(ORDERS, body)
    assert response.status_code == 201, response.content
    data = response.json()
    order = MarketMakingOrder.objects.get(order_id=data["order_id"])
    assert (order.user_id, order.state, order.order_refresh_time) == (alice.mixin_user_id, "payment_pending", 5)
    assert data["user_id"] == alice.mixin_user_id and data["memo"] == order.memo
    assert decode_memo(data["memo"]).order_id == order.order_id
    assert [(leg["leg"], leg["amount"], leg["received"]) for leg in data["required"]] == [
        ("base", "0.5", "0"), ("quote", "1000", "0"), ("base_fee", "0.0001", "0"), ("quote_fee", "0.002", "0")]
    assert OrderTransition.objects.get(order=order).by == "api:alice"


def test_create_takes_the_tokens_own_user_id_in_the_body_and_refuses_another_with_403(alice, bob, body):
    assert alice.post(ORDERS, {**body, "user_id": alice.mixin_user_id.upper()}).status_code == 201
    response = alice.post(ORDERS, {**body, "user_id": bob.mixin_user_id})
    assert response.status_code == 403
    assert "is not the Mixin user this token acts for" in response.json()["error"]
    assert list(MarketMakingOrder.objects.values_list("user_id", flat=True)) == [alice.mixin_user_id]


def test_a_token_bound_to_no_mixin_user_creates_nothing_and_sees_nothing(pair, body, alice):
    unbound = make_caller("carol", None)
    make_order(pair, alice)
    response = unbound.post(ORDERS, body)
    assert response.status_code == 403 and "bound to no Mixin user" in response.json()["error"]
    assert unbound.get(ORDERS).json()["results"] == []
    assert MarketMakingOrder.objects.count() == 1


def test_create_takes_every_strategy_parameter_and_null_where_the_schema_allows_it(alice, body):
    body.update(order_level_spread="0.0004", inventory_skew_enabled=True, inventory_target_base_pct="0.3",
                hanging_orders_enabled=True, max_order_age_s=None, ceiling_price=None, price_source_type="best_bid")
    response = alice.post(ORDERS, body)
    assert response.status_code == 201, response.content
    order = MarketMakingOrder.objects.get(order_id=response.json()["order_id"])
    assert (order.order_level_spread, order.inventory_target_base_pct) == (Decimal("0.0004"), Decimal("0.3"))
    assert (order.inventory_skew_enabled, order.hanging_orders_enabled, order.max_order_age_s,
            order.ceiling_price, order.price_source_type) == (True, True, None, None, "best_bid")


@pytest.mark.parametrize("change, field, message", [
    # wrong type
    ({"base_amount": 0.5}, "base_amount", "not a float (0.5)"),
    ({"quote_amount": True}, "quote_amount", "quote_amount"),
    ({"bid_spread": 0.001}, "bid_spread", "not a float"),
    ({"pair_id": 7}, "pair_id", "pair_id must be a UUID, got 7"),
    ({"user_id": ["x"]}, "user_id", "user_id must be a UUID"),
    ({"number_of_layers": "2"}, "number_of_layers", "positive integer, got '2'"),
    ({"max_order_age_s": 30.0}, "max_order_age_s", "positive integer, got 30.0"),
    ({"hanging_orders_enabled": 1}, "hanging_orders_enabled", "must be true or false, got 1"),
    ({"hanging_orders_enabled": None}, "hanging_orders_enabled", "must be true or false, got None"),
    ({"price_source_market": 5}, "price_source_market", "market symbol"),
    ({"bid_spread": "abc"}, "bid_spread", "bid_spread"),
    # range
    ({"base_amount": "-1"}, "base_amount", "negative"),
    ({"quote_amount": "0"}, "quote_amount", "quote_amount is zero"),
    ({"base_amount": "0.123456789"}, "base_amount", "more than 8 decimal places"),
    ({"number_of_layers": 101}, "number_of_layers", "at most 100"),
    ({"order_refresh_time": 0}, "order_refresh_time", "positive integer"),
    ({"order_refresh_time": 2**31}, "order_refresh_time", "at most 2147483647"),
    ({"inventory_target_base_pct": "2"}, "inventory_target_base_pct", "fraction in [0, 1]"),
    ({"bid_spread": "0.000000001"}, "bid_spread", "decimal places"),
    # unknown value
    ({"pair_id": str(uuid.uuid4())}, "pair_id", "no market-making pair"),
    ({"amount_change_type": "log"}, "amount_change_type", "fixed or percentage"),
    ({"price_source_type": "vwap"}, "price_source_type", "price_source_type must be one of mid_price, best_bid"),
    ({"price_source_account": 987654}, "price_source_account", "there is no exchange account 987654"),
    ({"user_id": "bob"}, "user_id", "user_id must be a UUID, got 'bob'"),
    # unknown field
    ({"color": "red"}, "color", "color is not a field of this request"),
])
def test_create_answers_bad_input_with_400_naming_the_field(alice, body, change, field, message):
    response = alice.post(ORDERS, {**body, **change})
    assert response.status_code == 400, response.content
    data = response.json()
    assert data["error"] == "invalid request" and list(data["errors"]) == [field]
    assert message in data["errors"][field][0], data
    assert not MarketMakingOrder.objects.exists()


def test_create_reports_every_bad_field_at_once(alice, body):
    del body["order_amount"]
    body.update(bid_spread="-1", ask_spread=0.1, number_of_layers="2", colour="red")
    errors = alice.post(ORDERS, body).json()["errors"]
    assert set(errors) == {"order_amount", "bid_spread", "ask_spread", "number_of_layers", "colour"}
    assert errors["order_amount"] == ["order_amount is required"]


@pytest.mark.parametrize("change, message", [
    ({"bid_spread": "1"}, "the strategy refuses these parameters: bid_spread must be a fraction in [0, 1)"),
    ({"floor_price": "30000", "ceiling_price": "20000"}, "floor_price is above ceiling_price"),
])
def test_create_refuses_what_the_strategy_would_refuse_on_non_field_errors(alice, body, change, message):
    response = alice.post(ORDERS, {**body, **change})
    assert response.status_code == 400
    [problem] = response.json()["errors"]["non_field_errors"]
    assert message in problem
    assert not MarketMakingOrder.objects.exists()


def test_create_refuses_a_disabled_pair_with_409(alice, body, pair):
    pair.enabled = False
    pair.save()
    response = alice.post(ORDERS, body)
    assert response.status_code == 409 and "disabled" in response.json()["errors"]["pair_id"][0]


@pytest.mark.parametrize("raw, message", [
    ("not json", "the body is not JSON"),
    ('{"base_amount": NaN}', "NaN is not JSON"),
    ("[1, 2]", "the body must be a JSON object, got list"),
    ('"text"', "the body must be a JSON object, got str"),
    ("[" * 100_000 + "]" * 100_000, "nested deeper than 16 levels"),
    ('{"a": ' * 50_000 + "1" + "}" * 50_000, "nested deeper than 16 levels"),
    (b'{"base_amount": "\xff"}', "the body is not JSON"),
    ('{"x": "' + "a" * 3_000_000 + '"}', "larger than"),
])
def test_a_body_that_is_not_a_small_json_object_is_a_400_on_body(alice, raw, message):
    response = alice.post(ORDERS, raw)
    assert response.status_code == 400, response.content[:300]
    [problem] = response.json()["errors"]["body"]
    assert message in problem


def test_a_deep_body_of_200_kb_is_a_400_on_every_endpoint_that_takes_one(alice, pair):
    order = make_order(pair, alice, order_refresh_time=10)
    deep = '{"a": ' * 20_000 + "[" * 80_000 + "]" * 80_000 + "}" * 20_000  # 320 KB
    for method, target in (("post", ORDERS), ("patch", url(order, "params/"))):
        response = alice.call(method, target, deep)
        assert response.status_code == 400 and "nested deeper" in response.json()["errors"]["body"][0]


def test_only_json_bodies_and_the_declared_methods_are_taken(alice, body):
    empty = alice.post(ORDERS, "")  # every field missing
    assert empty.status_code == 400 and empty.json()["errors"]["pair_id"] == ["pair_id is required"]
    form = alice.client.post(ORDERS, body, HTTP_AUTHORIZATION=f"Bearer {alice.token}")
    assert form.status_code == 415
    assert alice.call("put", ORDERS, body).status_code == 405
    assert alice.call("delete", "/api/pairs/").status_code == 405


# --- my orders -----------------------------------------------------------------------------------------------
def test_my_orders_lists_only_the_tokens_users_orders_newest_first_paginated(alice, bob, pair):
    mine = [make_order(pair, alice) for _ in range(3)]
    make_order(pair, bob)
    assert [row["order_id"] for row in alice.get(ORDERS).json()["results"]] == [
        str(order.order_id) for order in reversed(mine)]
    first = alice.get(ORDERS + "?page_size=2").json()
    assert first["count"] == 3 and first["next"] and first["previous"] is None
    second = alice.get(first["next"]).json()
    listed = [row["order_id"] for row in first["results"] + second["results"]]
    assert listed == [str(order.order_id) for order in reversed(mine)]
    for query, field in (("page=3&page_size=2", "page"), ("page=x", "page"), ("page_size=0", "page_size"),
                         ("page_size=201", "page_size"), ("page_size=two", "page_size")):
        response = alice.get(f"{ORDERS}?{query}")
        assert response.status_code == 400 and list(response.json()["errors"]) == [field], query
    assert first["results"][0] | {"created_at": None, "updated_at": None, "expires_at": None} == {
        "order_id": str(mine[-1].order_id), "pair_id": str(pair.pair_id), "symbol": "BTC/USDT",
        "state": "payment_pending", "base_amount": "0.5", "quote_amount": "1000", "created_at": None,
        "updated_at": None, "expires_at": None}


# --- one order with its payment state -------------------------------------------------------------------------
def test_one_order_shows_its_payment_state_refunds_and_parameters(alice, pair, django_capture_on_commit_callbacks):
    order = make_order(pair, alice, max_order_age_s=300)
    payload = snapshot_payload(order, asset_id=BTC, amount="0.2")
    with django_capture_on_commit_callbacks(execute=False):
        snapshot_record(provider="local", data=payload)
        snapshot_intake(snapshot_id=payload["snapshot_id"])
    pending = alice.get(url(order)).json()
    assert pending["state"] == "payment_pending" and pending["payment"]["complete"] is False
    assert [(leg["leg"], leg["amount"], leg["received"]) for leg in pending["payment"]["legs"]] == [
        ("base", "0.5", "0.2"), ("quote", "1000", "0"), ("base_fee", "0.0001", "0"), ("quote_fee", "0.002", "0")]
    assert pending["refunds"] == [] and pending["memo"] == order.memo and pending["user_id"] == alice.mixin_user_id
    assert pending["params"]["max_order_age_s"] == 300 and pending["params"]["bid_spread"] == "0.001"

    with django_capture_on_commit_callbacks(execute=True):
        payment_fail(order_id=order.order_id, reason="payment deadline passed", by="test")
    failed = alice.get(url(order)).json()
    assert (failed["state"], failed["reason"]) == ("failed", "payment deadline passed")
    [refund] = failed["refunds"]
    assert (refund["asset_id"], refund["amount"], refund["reason"]) == (BTC, "0.2", "payment deadline passed")
    assert refund["status"] in ("pending", "sent")


def test_a_paid_order_shows_every_leg_received(alice, pair, django_capture_on_commit_callbacks):
    order = make_order(pair, alice)
    with django_capture_on_commit_callbacks(execute=False):
        pay_in_full(order)
    payment = alice.get(url(order)).json()["payment"]
    assert payment["complete"] is True
    assert [leg["received"] for leg in payment["legs"]] == ["0.5", "1000", "0.0001", "0.002"]


# --- history --------------------------------------------------------------------------------------------------
def test_history_shows_transitions_param_changes_payments_and_fills(alice, pair, django_capture_on_commit_callbacks):
    order = make_order(pair, alice)
    order_params_update(order_id=order.order_id, changes={"bid_spread": "0.002"}, by="api:alice", reason="wider")
    payload = snapshot_payload(order, asset_id=USDT, amount="10")
    with django_capture_on_commit_callbacks(execute=False):
        snapshot_record(provider="local", data=payload)
        snapshot_intake(snapshot_id=payload["snapshot_id"])
    key = strategy_key(order.order_id)
    tracked = TrackedOrderFactory(strategy_key=key)
    for n in range(3):
        TrackedFill.objects.create(account=tracked.account, trade_id=f"t{n}", symbol="BTC/USDT", tracked_order=tracked,
                                   strategy_key=key, side="buy", price=Decimal("30000"), amount=Decimal("0.01"),
                                   cost=Decimal("300"), fee=Decimal("0.00001"), fee_currency="BTC",
                                   traded_at_ms=1_700_000_000_000 + n, ledger_entry_id=n or None)

    history = alice.get(url(order, "history/")).json()

    assert [(t["name"], t["from_state"], t["to_state"], t["by"]) for t in history["transitions"]] == [
        ("create", "", "payment_pending", "test")]
    assert [(c["name"], c["old"], c["new"], c["by"], c["reason"]) for c in history["param_changes"]] == [
        ("bid_spread", "0.001", "0.002", "api:alice", "wider")]
    assert [(p["snapshot_id"], p["asset_id"], p["amount"], p["outcome"]) for p in history["payments"]] == [
        (payload["snapshot_id"], USDT, "10", "credited")]
    assert [(f["trade_id"], f["price"], f["fee"], f["settled"]) for f in history["fills"]] == [
        ("t2", "30000", "0.00001", True), ("t1", "30000", "0.00001", True), ("t0", "30000", "0.00001", False)]
    assert (history["fills_count"], history["fills_limit"]) == (3, 200)


# --- edit params ----------------------------------------------------------------------------------------------
def test_edit_params_changes_and_records_them(alice, pair):
    order = make_order(pair, alice)
    response = alice.patch(url(order, "params/"), {"bid_spread": "0.0008", "max_order_age_s": 60})
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["params"]["bid_spread"] == "0.0008" and data["params"]["max_order_age_s"] == 60
    assert [(c["name"], c["old"], c["new"], c["by"]) for c in data["changes"]] == [
        ("bid_spread", "0.001", "0.0008", "api:alice"), ("max_order_age_s", "none", "60", "api:alice")]
    assert fresh(order).bid_spread == Decimal("0.0008")


def test_edit_params_refuses_unknown_and_bad_parameters_naming_each_and_changes_nothing(alice, pair):
    order = make_order(pair, alice)
    response = alice.patch(url(order, "params/"), {"colour": "red", "bid_spread": 0.002, "number_of_layers": 0})
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors["colour"] == ["colour is not a strategy parameter"]
    assert "not a float" in errors["bid_spread"][0] and "positive integer" in errors["number_of_layers"][0]
    assert not ParamChange.objects.exists() and fresh(order).bid_spread == Decimal("0.001")


def test_edit_params_of_a_finished_order_is_a_409(alice, pair):
    order = OrderFactory(pair=pair, user_id=alice.mixin_user_id, state=OrderState.STOPPED)
    response = alice.patch(url(order, "params/"), {"bid_spread": "0.002"})
    assert response.status_code == 409 and response.json()["state"] == "stopped"


# --- stop -----------------------------------------------------------------------------------------------------
def test_stop_queues_the_stop_mm_job_which_stops_the_order(alice, pair, django_capture_on_commit_callbacks):
    from orders.tasks import stop_mm

    order = OrderFactory(pair=pair, user_id=alice.mixin_user_id, state=OrderState.RUNNING)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = alice.post(url(order, "stop/"))
    assert response.status_code == 202
    assert response.json() == {"order_id": str(order.order_id), "state": "running", "stop": "queued"}
    [(job, args)] = [(cb.args[0], cb.args[1]) for cb in queued]
    assert (job, args) == ("stop_mm", (str(order.order_id), "stop requested by the user (api:alice)"))
    # the stop is recorded before the message: were the message lost, the sweeper would start stop_mm again
    assert StrategySession.objects.get(order=order).status == SessionStatus.STOPPING
    from orders.services.resume import lifecycle_resume
    with django_capture_on_commit_callbacks(execute=False) as swept:
        lifecycle_resume()
    assert [cb.args[0] for cb in swept] == ["stop_mm"]
    # the job the message carries, run as the worker would
    stop_mm.apply(args=args).get()
    assert fresh(order).state == OrderState.STOPPED and fresh(order).reason == args[1]
    again = alice.post(url(order, "stop/"))
    assert again.status_code == 200 and again.json()["stop"] == "stopped"
    for state in (OrderState.PAYING_OUT, OrderState.PAID_OUT):  # stopped, then paid out
        MarketMakingOrder.objects.filter(pk=order.pk).update(state=state)
        assert alice.post(url(order, "stop/")).json() == {"order_id": str(order.order_id), "state": state,
                                                          "stop": "stopped"}


@pytest.mark.parametrize("state", [OrderState.PAYMENT_PENDING, OrderState.FAILED, OrderState.WITHDRAWING])
def test_stop_of_an_order_that_is_not_running_is_a_409(alice, pair, state, django_capture_on_commit_callbacks):
    order = OrderFactory(pair=pair, user_id=alice.mixin_user_id, state=state)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = alice.post(url(order, "stop/"))
    assert response.status_code == 409 and response.json()["state"] == state and not queued


# --- payout ---------------------------------------------------------------------------------------------------
def stopped_order_holding(pair, caller, *, base="0.5", quote="1000"):
    """A running order whose funds are locked in the ledger, stopped (its stop unlocks them: what a payout pays)."""
    from ledger import services as ledger
    from orders.services import order_stop

    order = OrderFactory(pair=pair, user_id=caller.mixin_user_id, state=OrderState.RUNNING)
    for asset, amount in ((BTC, base), (USDT, quote)):
        ledger.credit_deposit(user_id=caller.mixin_user_id, asset_id=asset, amount=amount,
                              idempotency_key=f"t-in:{order.pk}:{asset}")
        ledger.lock_funds(user_id=caller.mixin_user_id, asset_id=asset, amount=amount,
                          idempotency_key=f"t-lock:{order.pk}:{asset}", ref_type="mm_order", ref_id=str(order.order_id))
    assert order_stop(order_id=order.order_id, by="test") == "stopped"
    return fresh(order)


def test_payout_starts_paying_a_stopped_orders_funds_out_to_its_user(alice, pair, django_capture_on_commit_callbacks,
                                                                      settings):
    settings.MM_PAYOUT_AFTER_STOP = "manual"
    with django_capture_on_commit_callbacks(execute=False):
        order = stopped_order_holding(pair, alice)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = alice.post(url(order, "payout/"))
    assert response.status_code == 202, response.content
    data = response.json()
    assert (data["order_id"], data["state"]) == (str(order.order_id), "paying_out")
    assert sorted((p["asset_id"], p["amount"], p["status"]) for p in data["payouts"]) == sorted(
        [(BTC, "0.5", "pending"), (USDT, "1000", "pending")])
    assert [(cb.args[0], cb.args[1]) for cb in queued] == [("withdraw_to_user", (str(order.order_id),))]
    detail = alice.get(url(order)).json()
    assert detail["state"] == "paying_out" and len(detail["payouts"]) == 2 and detail["keep_on_exchange"] is False
    transition = order.transitions.order_by("at", "id").last()
    assert (transition.name, transition.by) == ("begin_payout", "api:alice")
    with django_capture_on_commit_callbacks(execute=False) as again:
        assert alice.post(url(order, "payout/")).status_code == 202  # already paying out: the job queued again
    assert [cb.args[0] for cb in again] == ["withdraw_to_user"]


def test_payout_of_an_order_not_stopped_or_held_by_the_operator_is_a_409(alice, pair, settings,
                                                                          django_capture_on_commit_callbacks):
    settings.MM_PAYOUT_AFTER_STOP = "manual"
    running = OrderFactory(pair=pair, user_id=alice.mixin_user_id, state=OrderState.RUNNING)
    with django_capture_on_commit_callbacks(execute=False):
        held = stopped_order_holding(pair, alice)
    MarketMakingOrder.objects.filter(pk=held.pk).update(keep_on_exchange=True)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        refused = alice.post(url(running, "payout/"))
        kept = alice.post(url(held, "payout/"))
    assert refused.status_code == 409 and refused.json()["state"] == "running"
    assert "only a stopped order is paid out" in refused.json()["error"]
    assert kept.status_code == 409 and "the operator keeps its funds on the exchange" in kept.json()["error"]
    assert fresh(held).state == OrderState.STOPPED and fresh(held).keep_on_exchange and not queued


# --- another user's order -------------------------------------------------------------------------------------
ENDPOINTS = [
    ("get", ""),
    ("get", "history/"),
    ("patch", "params/"),
    ("post", "stop/"),
    ("post", "payout/"),
]


@pytest.mark.parametrize("method, tail", ENDPOINTS, ids=[f"{m}-{t or 'detail'}" for m, t in ENDPOINTS])
def test_a_token_never_reads_or_acts_on_another_users_order(alice, bob, pair, method, tail,
                                                             django_capture_on_commit_callbacks):
    order = OrderFactory(pair=pair, user_id=bob.mixin_user_id, state=OrderState.RUNNING)
    before = MarketMakingOrder.objects.filter(pk=order.pk).values().get()
    body = {"bid_spread": "0.005"} if method == "patch" else None
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = alice.call(method, url(order, tail), body)
        unknown = alice.call(method, f"{ORDERS}{uuid.uuid4()}/{tail}", body)
        not_an_id = alice.call(method, f"{ORDERS}not-an-order/{tail}", body)
    assert response.status_code == unknown.status_code == not_an_id.status_code == 404
    assert response.json() == {"error": f"no market-making order {order.order_id}"}
    assert str(order.order_id) not in alice.get(ORDERS).content.decode()
    assert MarketMakingOrder.objects.filter(pk=order.pk).values().get() == before
    assert not queued and not ParamChange.objects.exists()
    if tail != "payout/":  # (a running order is not paid out: bob's own call is a 409)
        assert bob.call(method, url(order, tail), body).status_code in (200, 202)


# --- reads stay a constant number of queries -----------------------------------------------------------------
@pytest.mark.parametrize("orders", [1, 20])
def test_my_orders_and_one_order_read_a_constant_number_of_queries(alice, pair, orders,
                                                                   django_assert_max_num_queries):
    made = [make_order(pair, alice) for _ in range(orders)]
    with django_assert_max_num_queries(5):  # token, throttle (its upsert, its cleanup), count, page (with pairs)
        assert len(alice.get(ORDERS).json()["results"]) == orders
    with django_assert_max_num_queries(6):  # token, throttle (2), order (with pair, payment), refunds, payouts
        assert alice.get(url(made[0])).status_code == 200
