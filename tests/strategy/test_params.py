"""strategy.params: every declared parameter is a column of the order, is accepted by the JSON API,
``mm_order create`` and the admin's add form, and reaches PureMMParams; a bad value of each is
refused by each of them with an error naming it."""
import json
import uuid
from dataclasses import fields
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.core.exceptions import ValidationError

from exchanges.models import ExchangeAccount
from orders.models import MarketMakingOrder, MarketMakingPair
from strategy import pure_mm
from strategy.params import (
    ORDER_PARAM_FIELDS, PARAMS, REQUIRED, Kind, ParamError, ParamErrors, clean_params, formfield, model_fields, params_for,
)

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

API = "/api/orders/"
ADD = "/admin/orders/marketmakingorder/add/"
BASE = dict(base_amount="0.5", quote_amount="1000", bid_spread="0.001", ask_spread="0.001", order_amount="0.01")
# A value of each kind that no parameter has as its default, as the JSON API takes it.
GOOD = {Kind.DECIMAL: "0.0003", Kind.INTEGER: 7, Kind.BOOLEAN: True, Kind.TEXT: "ETH/USDC"}
OTHER_CHOICE = {"amount_change_type": "percentage", "price_source_type": "best_bid"}


def good(param):
    """(JSON value, command-line/form text, the value stored on the order)."""
    if param.kind is Kind.CHOICE:
        value = OTHER_CHOICE[param.name]
        return value, value, value
    if param.name == "price_source_account":  # an account that exists
        value = ExchangeAccount.objects.create(exchange_id="binance", label="price source").pk
        return value, str(value), value
    value = GOOD[param.kind]
    stored = Decimal(value) if param.kind is Kind.DECIMAL else value
    return value, str(value).lower() if param.kind is Kind.BOOLEAN else str(value), stored


def bad_json(param):
    # A float for a decimal: money is Decimal, a JSON float is refused.
    return {Kind.DECIMAL: 0.5, Kind.INTEGER: 0, Kind.BOOLEAN: "yes", Kind.CHOICE: "nope", Kind.TEXT: 5}[param.kind]


def bad_text(param):
    return {Kind.DECIMAL: "abc", Kind.INTEGER: "0", Kind.BOOLEAN: "maybe", Kind.CHOICE: "nope",
            Kind.TEXT: "not a symbol"}[param.kind]


def each(params=PARAMS):
    # A walk of the schema: the same on every database, so run once, in the embedded pass (the "walk"
    # marker, deselected by make test-postgres) to keep the whole suite within CI's time.
    parametrize = pytest.mark.parametrize("param", params, ids=[p.name for p in params])
    return lambda test: pytest.mark.walk(parametrize(test))


def names_it(param, text: str) -> bool:
    return param.name in text or param.option in text


@pytest.fixture
def pair(db):
    return MarketMakingPair.objects.create(
        exchange_id="binance", symbol="BTC/USDT", base_asset_id=str(uuid.uuid4()), quote_asset_id=str(uuid.uuid4()),
        base_exchange_asset="BTC", quote_exchange_asset="USDT")


@pytest.fixture
def api(client, pair):
    """post(body overrides) -> response, as a token holder."""
    get_user_model().objects.create_user(username="params-client", password="x")
    out = StringIO()
    user_id = str(uuid.uuid4())  # the token acts for this Mixin user (issue 18)
    call_command("api_token", "create", "params-client", "--mixin-user-id", user_id, stdout=out)
    token = out.getvalue().strip()

    def post(**overrides):
        body = {"user_id": user_id, "pair_id": str(pair.pair_id), **BASE, **overrides}
        return client.post(API, data=json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    return post


@pytest.fixture
def mm_order(pair):
    """mm_order create with the given extra arguments -> the order."""
    def run(*args):
        out = StringIO()
        call_command("mm_order", "create", "--user", str(uuid.uuid4()), "--pair", str(pair.pair_id),
                     *(arg for name, value in BASE.items() for arg in (f"--{name.replace('_', '-')}", value)),
                     *args, stdout=out)
        return MarketMakingOrder.objects.get(order_id=json.loads(out.getvalue())["order_id"])
    return run


@pytest.fixture
def admin_add(admin_client, pair):
    """POST the admin's add form with the given fields (text, as a browser sends them) -> the response."""
    def post(**data):
        form = dict(user_id=str(uuid.uuid4()), pair=str(pair.pk), **BASE)
        # As the page renders them: every parameter at its default, checkboxes unticked.
        for param in PARAMS:
            if param.kind is not Kind.BOOLEAN and param.default not in (REQUIRED, None):
                form.setdefault(param.name, str(param.default))
        form.update(data)
        return admin_client.post(ADD, {k: v for k, v in form.items() if v is not False})
    return post


def reaches_the_strategy(param, order, stored):
    """The stored value is what the order's PureMMParams carry (order_refresh_time: the session's cadence)."""
    assert getattr(order, param.name) == stored
    if param.strategy is None:
        assert param.name not in ORDER_PARAM_FIELDS
        return
    strategy_value = getattr(params_for(order), param.strategy)
    assert strategy_value == stored, (param.name, strategy_value)


# --- the declaration ---------------------------------------------------------------------------------
def test_every_field_of_the_strategy_parameters_but_take_if_crossed_is_declared_once():
    declared = [param.strategy for param in PARAMS if param.strategy]
    assert len(declared) == len(set(declared))
    assert set(declared) == {f.name for f in fields(pure_mm.PureMMParams)} - {"take_if_crossed"}


@each()
def test_the_order_column_is_the_declared_one(param):
    declared, column = model_fields()[param.name], MarketMakingOrder._meta.get_field(param.name)
    assert type(column) is type(declared)
    assert column.deconstruct()[1:] == (declared.deconstruct()[1:])
    assert column.null is param.null


def test_the_columns_match_the_migrations():
    out = StringIO()
    call_command("makemigrations", "orders", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_every_problem_is_reported_at_once_and_unknown_names_are_refused():
    with pytest.raises(ParamErrors) as refused:
        clean_params({"bid_spread": "-1", "number_of_layers": 101, "colour": "red"})
    assert set(refused.value.errors) == {"bid_spread", "number_of_layers", "colour", "ask_spread", "order_amount"}
    assert refused.value.errors["number_of_layers"] == "number_of_layers must be at most 100, got 101"


def test_an_order_without_a_layer_spread_has_each_layer_one_more_bid_spread_out(pair, mm_order):
    order = mm_order()
    assert order.order_level_spread is None
    assert params_for(order).order_level_spread == order.bid_spread == Decimal("0.001")


# --- accepted everywhere ------------------------------------------------------------------------------
@each()
def test_the_api_accepts_each_parameter_and_it_reaches_the_strategy(api, param):
    value, _, stored = good(param)
    response = api(**{param.name: value})
    assert response.status_code == 201, response.content
    order = MarketMakingOrder.objects.get(order_id=response.json()["order_id"])
    reaches_the_strategy(param, order, stored)


@each()
def test_mm_order_accepts_each_parameter_and_it_reaches_the_strategy(mm_order, param):
    _, text, stored = good(param)
    order = mm_order(param.option) if param.kind is Kind.BOOLEAN else mm_order(param.option, text)
    reaches_the_strategy(param, order, stored)


@each()
def test_the_admin_form_accepts_each_parameter_and_it_reaches_the_strategy(admin_add, param):
    _, text, stored = good(param)
    response = admin_add(**{param.name: "on" if param.kind is Kind.BOOLEAN else text})
    assert response.status_code == 302, response.context["adminform"].form.errors
    order = MarketMakingOrder.objects.get()
    assert order.transitions.get().by == "admin:admin"
    reaches_the_strategy(param, order, stored)


# --- refused everywhere, naming it ----------------------------------------------------------------------
@each()
def test_the_api_refuses_a_bad_value_of_each_parameter_naming_it(api, param):
    response = api(**{param.name: bad_json(param)})
    assert response.status_code == 400
    errors = response.json()["errors"]
    [(field, [message])] = errors.items()
    assert field == param.name  # the API checks a choice on its field (price_source_type too)
    assert names_it(param, message), message
    assert not MarketMakingOrder.objects.exists()


@each()
def test_mm_order_refuses_a_bad_value_of_each_parameter_naming_it(mm_order, param):
    args = [f"{param.option}={bad_text(param)}"] if param.kind is Kind.BOOLEAN else [param.option, bad_text(param)]
    with pytest.raises(CommandError) as refused:
        mm_order(*args)
    assert names_it(param, str(refused.value)), str(refused.value)
    assert not MarketMakingOrder.objects.exists()


@each([param for param in PARAMS if param.kind is not Kind.BOOLEAN])
def test_the_admin_form_refuses_a_bad_value_of_each_parameter_naming_it(admin_add, param):
    response = admin_add(**{param.name: bad_text(param)})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    messages = " ".join(message for field_errors in errors.values() for message in field_errors)
    assert param.name in errors or "__all__" in errors, errors
    assert names_it(param, messages), messages
    assert not MarketMakingOrder.objects.exists()


@each([param for param in PARAMS if param.kind is Kind.BOOLEAN])
def test_a_flag_field_refuses_anything_but_a_yes_or_no_naming_it(param):
    # A checkbox only ever sends on or nothing; the field itself is as strict as the API.
    with pytest.raises(ValidationError) as refused:
        formfield(param.name).clean(bad_text(param))
    assert names_it(param, str(refused.value))


@each()
def test_a_bad_value_is_one_error_naming_the_parameter(param):
    # (a choice's name that is not one is the strategy's to refuse unless its column lists them: a number is not a name)
    with pytest.raises(ParamError) as refused:
        param.clean(5 if param.kind is Kind.CHOICE else bad_json(param))
    assert refused.value.field == param.name and str(refused.value).startswith(param.name)


def test_a_price_source_account_that_does_not_exist_is_refused_naming_it(api):
    response = api(price_source_account=987654)
    assert response.status_code == 400
    assert "there is no exchange account 987654" in response.json()["errors"]["price_source_account"][0]
    assert not MarketMakingOrder.objects.exists()
