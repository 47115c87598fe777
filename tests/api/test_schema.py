"""The OpenAPI schema at /api/schema/: it validates (openapi-spec-validator), covers every route of the API,
and follows the strategy-parameter schema (a parameter declared in strategy.params is in the requests and
the order's representation with no change to the API)."""
import pytest
from openapi_spec_validator import validate

from api import serializers
from api.urls import urlpatterns
from strategy import params as order_params
from strategy.params import PARAMS, Kind, Param
from tests.api import test_endpoints

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

# Each operation of the schema and the test of tests/api/test_endpoints.py that exercises it.
TESTED = {
    "pairs_list": "test_pairs_lists_the_enabled_pairs_with_their_scales_and_fees",
    "orders_list": "test_my_orders_lists_only_the_tokens_users_orders_newest_first_paginated",
    "orders_create": "test_create_makes_an_order_intent_of_the_tokens_user_with_its_memo_and_amounts",
    "orders_retrieve": "test_one_order_shows_its_payment_state_refunds_and_parameters",
    "orders_history": "test_history_shows_transitions_param_changes_payments_and_fills",
    "orders_params_update": "test_edit_params_changes_and_records_them",
    "orders_stop": "test_stop_queues_the_stop_mm_job_which_stops_the_order",
    "orders_payout": "test_payout_starts_paying_a_stopped_orders_funds_out_to_its_user",
}


def schema(client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200, response.content[:500]
    return response.json()


def test_the_schema_is_served_without_a_token_and_validates(client):
    spec = schema(client)
    validate(spec)
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerToken"] == {
        "type": "http", "scheme": "bearer",
        "description": "a token made by `manage.py api_token create USERNAME --mixin-user-id UUID`"}


def test_every_route_is_in_the_schema_and_every_operation_has_a_test(client):
    spec = schema(client)
    routes = {"/api/" + str(p.pattern).replace("<str:order_id>", "{order_id}") for p in urlpatterns} - {"/api/schema/"}
    assert set(spec["paths"]) == routes
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert operations == set(TESTED)
    for test in TESTED.values():
        assert callable(getattr(test_endpoints, test))
    # every operation but the schema's needs the token
    assert all(op["security"] == [{"bearerToken": []}] for path in spec["paths"].values() for op in path.values())


def test_every_strategy_parameter_is_in_the_requests_and_the_order_with_its_type(client):
    components = schema(client)["components"]["schemas"]
    create, update = components["OrderCreateRequest"], components["PatchedParamsUpdateRequest"]
    assert set(create["required"]) == {"pair_id", "base_amount", "quote_amount", "bid_spread", "ask_spread",
                                       "order_amount"}
    assert set(update["properties"]) == {p.name for p in PARAMS} and "required" not in update
    assert set(components["OrderParams"]["properties"]) == {p.name for p in PARAMS}
    for param in PARAMS:
        field = create["properties"][param.name]
        kind = field.get("type") or components[field["allOf"][0]["$ref"].rsplit("/", 1)[1]]["type"]
        assert kind == {Kind.DECIMAL: "string", Kind.INTEGER: "integer", Kind.BOOLEAN: "boolean",
                        Kind.CHOICE: "string", Kind.TEXT: "string"}[param.kind], param.name
        assert field.get("nullable", False) == param.null, param.name
    assert create["properties"]["number_of_layers"] | {"description": None} == {
        "type": "integer", "minimum": 1, "maximum": 100, "default": 1, "description": None}
    assert create["properties"]["base_amount"]["format"] == "decimal"


def test_a_parameter_added_to_the_strategy_schema_is_in_the_api_with_no_api_change(client, monkeypatch):
    knob = Param("test_knob", Kind.BOOLEAN, default=False, help_text="a parameter declared only in strategy.params")
    monkeypatch.setattr(order_params, "PARAMS", (*PARAMS, knob))
    components = schema(client)["components"]["schemas"]
    for name in ("OrderCreateRequest", "PatchedParamsUpdateRequest", "OrderParams"):
        assert components[name]["properties"]["test_knob"]["type"] == "boolean", name
    refused = serializers.ParamsUpdateSerializer(data={"test_knob": "yes"})
    assert not refused.is_valid()
    assert refused.errors == {"test_knob": ["test_knob must be true or false, got 'yes'"]}
    assert serializers.ParamsUpdateSerializer(data={"test_knob": True}).is_valid()
