"""POST /api/orders/: bearer-token auth (401), per-field errors (400), per-user rate limit (429), creation (201)."""
import json
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from api.models import ApiToken
from orders.memo import decode_memo
from orders.models import MarketMakingOrder, OrderTransition
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

URL = "/api/orders/"


@pytest.fixture
def token(capsys):
    call_command("api_token", "create", UserFactory(username="client-a").username)
    return capsys.readouterr().out.strip()


@pytest.fixture
def body(pair, user_id):
    return dict(user_id=user_id, pair_id=str(pair.pair_id), base_amount="0.5", quote_amount="1000",
                bid_spread="0.001", ask_spread="0.001", order_amount="0.01")


def post(client, body, token=None, **headers):
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.post(URL, data=json.dumps(body) if not isinstance(body, str) else body,
                       content_type="application/json", **headers)


def test_api_creates_an_order_intent_for_a_token_holder(client, body, token):
    body["order_refresh_time"] = 5
    response = post(client, body, token)
    assert response.status_code == 201, response.content
    data = response.json()
    order = MarketMakingOrder.objects.get(order_id=data["order_id"])
    assert order.order_refresh_time == 5
    assert decode_memo(data["memo"]).order_id == uuid.UUID(data["order_id"])
    assert OrderTransition.objects.get(order=order).by.startswith("api:client-")


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer mm_not-a-token", "Token {token}", "{token}"])
def test_api_refuses_anonymous_and_bad_tokens_with_401(client, body, token, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization.format(token=token)}
    response = post(client, body, **headers)
    assert response.status_code == 401
    assert "Bearer" in response.json()["error"] and response["WWW-Authenticate"].startswith("Bearer")
    assert not MarketMakingOrder.objects.exists()


def test_api_refuses_the_token_of_an_inactive_user(client, body, token):
    get_user_model().objects.filter(pk=ApiToken.objects.get().user_id).update(is_active=False)
    assert post(client, body, token).status_code == 401


def test_a_new_token_replaces_the_old_one_and_only_its_digest_is_stored(client, body, token, capsys):
    username = ApiToken.objects.get().user.username
    call_command("api_token", "create", username)
    new = capsys.readouterr().out.strip()
    assert new != token and ApiToken.objects.count() == 1
    assert token not in ApiToken.objects.get().digest and new not in ApiToken.objects.get().digest
    assert post(client, body, token).status_code == 401
    assert post(client, body, new).status_code == 201
    call_command("api_token", "revoke", username)
    assert post(client, body, new).status_code == 401


def test_api_token_command_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("api_token", "create", "nobody")


@pytest.mark.parametrize(
    "change, field, message",
    [
        ({"base_amount": 0.5}, "base_amount", "float"),
        ({"bid_spread": "abc"}, "bid_spread", "not a decimal"),
        ({"user_id": "bob"}, "user_id", "Mixin user id"),
        ({"pair_id": str(uuid.uuid4())}, "pair_id", "no market-making pair"),
        ({"base_amount": "0.123456789"}, "base_amount", "decimal places"),
        ({"color": "red"}, "color", "unknown field"),
        ({"order_refresh_time": 0}, "order_refresh_time", "positive integer"),
        ({"amount_change_type": "log"}, "amount_change_type", "fixed or percentage"),
    ],
)
def test_api_answers_bad_input_with_400_and_the_reason_per_field(client, body, token, change, field, message):
    body.update(change)
    response = post(client, body, token)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == [field]
    assert message in errors[field][0]
    assert not MarketMakingOrder.objects.exists()


def test_api_reports_every_bad_field_at_once(client, body, token):
    del body["order_amount"]
    body.update(bid_spread="-1", ask_spread=0.1, number_of_layers="2")
    errors = post(client, body, token).json()["errors"]
    assert set(errors) == {"order_amount", "bid_spread", "ask_spread", "number_of_layers"}
    assert errors["order_amount"] == ["this field is required"]


def test_api_creates_an_order_with_every_strategy_parameter(client, body, token):
    body.update(order_level_spread="0.0004", inventory_skew_enabled=True, inventory_target_base_pct="0.3",
                inventory_range_multiplier="2", hanging_orders_enabled=True, order_refresh_tolerance_pct="0.0005",
                max_order_age_s=120)
    response = post(client, body, token)
    assert response.status_code == 201, response.content
    order = MarketMakingOrder.objects.get(order_id=response.json()["order_id"])
    assert (order.order_level_spread, order.inventory_target_base_pct, order.inventory_range_multiplier,
            order.order_refresh_tolerance_pct) == (Decimal("0.0004"), Decimal("0.3"), Decimal(2), Decimal("0.0005"))
    assert (order.inventory_skew_enabled, order.hanging_orders_enabled, order.max_order_age_s) == (True, True, 120)


def test_api_takes_null_as_none_for_the_layer_spread_and_the_max_order_age(client, body, token):
    body.update(order_level_spread=None, max_order_age_s=None)
    response = post(client, body, token)
    assert response.status_code == 201, response.content
    order = MarketMakingOrder.objects.get(order_id=response.json()["order_id"])
    assert (order.order_level_spread, order.max_order_age_s) == (None, None)


@pytest.mark.parametrize("change, message", [
    ({"inventory_skew_enabled": "yes"}, "must be true or false, got 'yes'"),
    ({"hanging_orders_enabled": 1}, "must be true or false, got 1"),
    ({"hanging_orders_enabled": None}, "must be true or false, got None"),
    ({"inventory_target_base_pct": "2"}, "must be a fraction in [0, 1]"),
    ({"inventory_target_base_pct": 0.5}, "not a float (0.5)"),
    ({"inventory_range_multiplier": "-2"}, "is negative"),
    ({"inventory_range_multiplier": 1.5}, "not a float (1.5)"),
    ({"order_refresh_tolerance_pct": 0.001}, "not a float (0.001)"),
    ({"order_refresh_tolerance_pct": "a lot"}, "is not a decimal number"),
    ({"order_level_spread": 0.0005}, "not a float (0.0005)"),
    ({"order_level_spread": "-0.0005"}, "is negative"),
    ({"max_order_age_s": 0}, "positive integer"),
    ({"max_order_age_s": 30.0}, "positive integer, got 30.0"),
    ({"max_order_age_s": "30"}, "positive integer, got '30'"),
])
def test_api_refuses_a_bad_strategy_parameter_on_its_field(client, body, token, change, message):
    body.update(change)
    response = post(client, body, token)
    assert response.status_code == 400
    [field] = change
    errors = response.json()["errors"]
    assert list(errors) == [field]
    assert errors[field][0].startswith(field) and message in errors[field][0]
    assert not MarketMakingOrder.objects.exists()


def test_api_refuses_what_the_strategy_would_refuse_with_its_message(client, body, token):
    body.update(bid_spread="1")
    response = post(client, body, token)
    assert response.status_code == 400
    [message] = response.json()["errors"]["non_field_errors"]
    assert message.startswith("the strategy refuses these parameters: bid_spread must be a fraction in [0, 1)")
    assert not MarketMakingOrder.objects.exists()


def test_api_refuses_a_body_that_is_not_a_json_object(client, token):
    for raw in ("not json", "[1, 2]"):
        response = post(client, raw, token)
        assert response.status_code == 400 and "body" in response.json()["errors"]


def test_api_refuses_a_floor_above_the_ceiling_as_a_request_error(client, body, token):
    body.update(floor_price="30000", ceiling_price="20000")
    response = post(client, body, token)
    assert response.status_code == 400
    assert "floor_price is above ceiling_price" in response.json()["errors"]["non_field_errors"][0]


def test_api_refuses_a_disabled_pair_with_409(client, body, token, pair):
    pair.enabled = False
    pair.save()
    response = post(client, body, token)
    assert response.status_code == 409 and "disabled" in response.json()["errors"]["pair_id"][0]


def test_api_accepts_only_post(client):
    assert client.get(URL).status_code == 405


def test_api_rate_limits_each_user_with_429_and_retry_after(client, body, token, settings, capsys, monkeypatch):
    # given a limit of 3 requests per minute, and a clock 15.5 s into a window (so no window ends mid-test)
    settings.API_RATE_LIMIT, settings.API_RATE_WINDOW_S = 3, 60
    # (a window of its own on every run: counters in a shared Redis cache outlive the test database)
    now = 60 * (29_000_000 + uuid.uuid4().int % 10**6) + 15.5
    monkeypatch.setattr("api.services.clock", lambda: now)
    other = UserFactory()
    call_command("api_token", "create", other.username)
    other_token = capsys.readouterr().out.strip()
    # when one user sends 4 (bad ones count too)
    statuses = [post(client, body, token).status_code for _ in range(2)] + [post(client, {}, token).status_code]
    limited = post(client, body, token)
    # then the 4th is refused with a Retry-After within the window, and another user is not affected
    assert statuses == [201, 201, 400]
    assert limited.status_code == 429
    assert limited["Retry-After"] == "45"
    assert MarketMakingOrder.objects.count() == 2
    assert post(client, body, other_token).status_code == 201
