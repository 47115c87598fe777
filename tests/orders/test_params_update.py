"""Editing the strategy parameters of an order that is not finished (orders.services.params): every
parameter of the schema, through the service, the JSON API, ``mm_order edit`` and the admin's form,
lands on the order, is recorded once and reaches the strategy; a running order quotes the new values
on its next cycle; bad values and finished orders are refused and change nothing."""
import json
import re
import threading
import uuid
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections, transaction
from django.utils import timezone

from intents import ids
from intents.gates import track_creates_sql
from intents.models import Intent, IntentKind, IntentStatus, TrackedOrder, TrackedOrderStatus
from mmproject.sql import write_together
from orders.errors import InvalidParamChange, OrderFinished
from orders.models import MarketMakingOrder, OrderState, ParamChange
from orders.services import order_params_update
from orders.services.params import param_value_text
from orders.services.transitions import order_lock
from strategy import cycle
from strategy.models import MarketData, StrategySession
from strategy.params import PARAMS, Kind, params_for
from strategy.services import session_set_cadence
from tests.factories import ExchangeAccountFactory, OrderFactory, UserFactory
from tests.runtime_fixtures import make_running_order
from tests.strategy.test_params import bad_json, bad_text, good, names_it

pytestmark = [pytest.mark.django_db]
embedded = pytest.mark.embedded

API = "/api/orders/{}/params/"
ADMIN_ORDER = "/admin/orders/marketmakingorder/{}/change/"
ADMIN_PARAMS = "/admin/orders/marketmakingorder/{}/params/"
NOT_FINISHED = [OrderState.PAYMENT_PENDING, OrderState.PAYMENT_COMPLETE, OrderState.WITHDRAWING,
                OrderState.WITHDRAWAL_CONFIRMED, OrderState.CAMPAIGN_JOINED, OrderState.RUNNING]
FINISHED = [OrderState.STOPPED, OrderState.REFUNDED, OrderState.FAILED]
# The book's mid is 30000: a 0.2 % spread quotes 29940 / 30060, a 0.1 % one 29970 / 30030.
BID, ASK = Decimal("29990"), Decimal("30010")
# The Mixin user of the orders edited here, whom the API token acts for (a token sees only its user's orders).
EDITOR = "5a3b7c1e-0d2f-4e6a-9b8c-7d6e5f4a3b2c"


def each(params=PARAMS):
    # A walk of the schema: the same on every database, so run once, in the embedded pass (the "walk"
    # marker, deselected by make test-postgres) to keep the whole suite within CI's time.
    parametrize = pytest.mark.parametrize("param", params, ids=[p.name for p in params])
    return lambda test: pytest.mark.walk(parametrize(test))


@pytest.fixture
def account():
    return ExchangeAccountFactory(label="params-edit")


@pytest.fixture
def order(account):
    """A running order quoting one layer 0.2 % from the mid, its session due, refreshed every second."""
    return make_running_order(account, layers=1, user_id=EDITOR)


def fresh(order) -> MarketMakingOrder:
    return MarketMakingOrder.objects.get(pk=order.pk)


def values(order) -> dict:
    return {param.name: getattr(order, param.name) for param in PARAMS}


def lands_once(param, order, stored, *, by):
    """The new value is on the order, recorded once, and is what the strategy (or the session) runs with."""
    order = fresh(order)
    assert getattr(order, param.name) == stored
    [change] = ParamChange.objects.filter(order=order)
    assert (change.name, change.new_value, change.by) == (param.name, param_value_text(stored), by)
    if param.strategy:
        assert getattr(params_for(order), param.strategy) == stored
    elif param.name == "order_refresh_time":  # the session's cadence
        assert StrategySession.objects.get(order=order).cadence_s == stored
    else:  # where the reference price comes from: the cycle reads it from the order's row
        assert param.name in ("price_source_account", "price_source_market")


@pytest.fixture
def api(client):
    """patch(order_id, body) -> response, as a token holder acting for the orders' Mixin user."""
    call_command("api_token", "create", UserFactory(username="editor").username, "--mixin-user-id", EDITOR,
                 stdout=(out := StringIO()))
    token = out.getvalue().strip()

    def patch(order_id, body, **headers):
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {token}")
        return client.patch(API.format(order_id), data=body if isinstance(body, str) else json.dumps(body),
                            content_type="application/json", **headers)
    return patch


def mm_order_edit(order_id, *args) -> dict:
    out = StringIO()
    call_command("mm_order", "edit", str(order_id), *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def operator(client):
    client.force_login(UserFactory(username="edit-operator", staff=True,
                                   permissions=["view_marketmakingorder", "operate_orders"]))
    return client


@pytest.fixture
def viewer(client):
    client.force_login(UserFactory(username="edit-viewer", staff=True, permissions=["view_marketmakingorder"]))
    return client


def form_data(form, **changed) -> dict:
    """The form as the page renders it (each field at the order's value, with the value it was shown
    with), with ``changed`` fields typed over (False: an unticked checkbox, which sends nothing)."""
    data = {}
    for name, field in form.fields.items():
        shown = form.initial.get(name)
        if field.show_hidden_initial:
            data[f"initial-{name}"] = "" if shown is None else str(shown)
        value = changed.get(name, shown)
        if value is not False:
            data[name] = "on" if value is True else ("" if value is None else value)
    return data


def admin_edit(client, order, **changed):
    form = client.get(ADMIN_PARAMS.format(order.pk)).context["form"]
    return client.post(ADMIN_PARAMS.format(order.pk), form_data(form, **changed))


# --- every parameter, everywhere ---------------------------------------------------------------------
@embedded
@each()
def test_the_service_changes_each_parameter_records_it_once_and_the_strategy_gets_it(order, param):
    value, _, stored = good(param)
    old = getattr(order, param.name)

    update = order_params_update(order_id=order.order_id, changes={param.name: value}, by="test", reason="tighter")

    lands_once(param, order, stored, by="test")
    [change] = update.changes
    assert (change.old_value, change.reason) == (param_value_text(old), "tighter")


@embedded
@each()
def test_the_api_changes_each_parameter(order, api, param):
    value, _, stored = good(param)

    response = api(order.order_id, {param.name: value})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["params"][param.name] == (str(stored) if param.kind is Kind.DECIMAL else stored)
    assert [(c["name"], c["by"]) for c in body["changes"]] == [(param.name, "api:editor")]
    lands_once(param, order, stored, by="api:editor")


@embedded
@each()
def test_mm_order_edit_changes_each_parameter(order, param):
    _, text, stored = good(param)

    printed = mm_order_edit(order.order_id, param.option, text, "--reason", "desk request")

    assert [(c["name"], c["new"], c["reason"]) for c in printed["changes"]] == [
        (param.name, param_value_text(stored), "desk request")]
    lands_once(param, order, stored, by="command:mm_order")


@embedded
@each()
def test_the_admin_form_changes_each_parameter(order, operator, param):
    _, text, stored = good(param)

    response = admin_edit(operator, order, **{param.name: True if param.kind is Kind.BOOLEAN else text})

    assert response.status_code == 302, response.context["form"].errors
    assert response["Location"] == ADMIN_ORDER.format(order.pk)
    lands_once(param, order, stored, by="admin:edit-operator")


# --- what a change does ---------------------------------------------------------------------------------
@embedded
def test_a_value_equal_to_the_orders_is_not_a_change(order, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        update = order_params_update(order_id=order.order_id, changes={"bid_spread": "0.0020", "number_of_layers": 1},
                                     by="test")
    assert update.changes == () and not callbacks
    assert not ParamChange.objects.exists()


@embedded
def test_only_the_changed_parameters_are_recorded_with_their_old_values(order):
    order_params_update(order_id=order.order_id, by="test",
                        changes={"bid_spread": "0.001", "ask_spread": "0.002", "max_order_age_s": 60})
    order_params_update(order_id=order.order_id, by="test", changes={"max_order_age_s": None})

    assert list(ParamChange.objects.values_list("name", "old_value", "new_value")) == [
        ("bid_spread", "0.002", "0.001"), ("max_order_age_s", "none", "60"), ("max_order_age_s", "60", "none")]


@embedded
@pytest.mark.parametrize("state", NOT_FINISHED)
def test_an_order_that_is_not_finished_can_be_edited(account, state):
    order = OrderFactory(state=state, pair__exchange_account=account)
    order_params_update(order_id=order.order_id, changes={"bid_spread": "0.004"}, by="test")
    assert fresh(order).bid_spread == Decimal("0.004")


@embedded
def test_a_new_refresh_time_is_the_sessions_cadence_and_the_session_is_woken(
        order, django_capture_on_commit_callbacks):
    later = timezone.now() + timedelta(minutes=5)
    StrategySession.objects.filter(order=order).update(next_run_at=later)

    with django_capture_on_commit_callbacks(execute=True):
        order_params_update(order_id=order.order_id, changes={"order_refresh_time": 30}, by="test")

    session = StrategySession.objects.get(order=order)
    assert session.cadence_s == 30
    assert session.next_run_at <= timezone.now()  # woken: its next run is the next tick


@embedded
def test_setting_the_cadence_leaves_the_next_run_as_it_is(order):
    later = timezone.now() + timedelta(minutes=5)
    StrategySession.objects.filter(order=order).update(next_run_at=later)

    assert session_set_cadence(order_id=order.order_id, cadence_s=45)

    session = StrategySession.objects.get(order=order)
    assert (session.cadence_s, session.next_run_at) == (45, later)
    assert not session_set_cadence(order_id=uuid.uuid4(), cadence_s=45)


def run_cycle(account, *, at, slot):
    """One strategy cycle at ``at`` on a book stored at ``at``, every session due; the intents it wrote."""
    MarketData.objects.update_or_create(account=account, symbol="BTC/USDT", defaults=dict(
        best_bid=BID, best_ask=ASK, price_tick=Decimal("0.01"), amount_step=Decimal("0.00001"),
        min_amount=Decimal("0.00001"), min_notional=Decimal("5"), fetched_at=at))
    StrategySession.objects.filter(next_run_at__gt=at).update(next_run_at=at)
    assert cycle.strategies_run_due(now=at, slot=slot).sessions_run == 1
    return Intent.objects.filter(intent_id__contains=f":{slot}:")


def place(order, *, at):
    """What the executor and the tracker record once the creates are on the book."""
    key = ids.strategy_key(order.order_id)
    creates = Intent.objects.filter(strategy_key=key, kind=IntentKind.CREATE, status=IntentStatus.NEW)
    write_together([track_creates_sql(list(creates.values_list("pk", flat=True)), now=at)])
    creates.update(status=IntentStatus.DONE)
    TrackedOrder.objects.filter(strategy_key=key, status=TrackedOrderStatus.PENDING_CREATE).update(
        status=TrackedOrderStatus.OPEN, created_at=at)


def quoted(intents) -> dict:
    return {i.side: i.price for i in intents if i.kind == IntentKind.CREATE}


@embedded
def test_a_running_order_quotes_the_new_spread_on_the_next_cycle(account, order, django_capture_on_commit_callbacks):
    # given a running order whose 0.2 % ladder is on the book, next due in 5 minutes
    t0 = timezone.now()
    assert quoted(run_cycle(account, at=t0, slot=1)) == {"buy": Decimal("29940"), "sell": Decimal("30060")}
    place(order, at=t0)
    StrategySession.objects.filter(order=order).update(next_run_at=t0 + timedelta(minutes=5))

    # when its spreads are changed to 0.1 %
    with django_capture_on_commit_callbacks(execute=True):
        order_params_update(order_id=order.order_id, changes={"bid_spread": "0.001", "ask_spread": "0.001"},
                            by="test")

    # then its session is due now, and its next cycle replaces the ladder at the new spread, no restart
    t1 = t0 + timedelta(seconds=1)
    assert StrategySession.objects.get(order=order).next_run_at <= t1
    summary = cycle.strategies_run_due(now=t1, slot=2)
    assert summary.sessions_run == 1
    intents = Intent.objects.filter(intent_id__contains=":2:")
    assert quoted(intents) == {"buy": Decimal("29970"), "sell": Decimal("30030")}
    assert sorted(i.kind for i in intents) == ["cancel", "cancel", "create", "create"]


@embedded
def test_a_running_order_runs_on_its_new_cadence_from_its_next_run(account, order):
    order_params_update(order_id=order.order_id, changes={"order_refresh_time": 30}, by="test")
    t0 = timezone.now()
    run_cycle(account, at=t0, slot=1)
    assert StrategySession.objects.get(order=order).next_run_at == t0 + timedelta(seconds=30)


# --- refused, naming the field, changing nothing ----------------------------------------------------------
def unchanged(order, before):
    assert values(fresh(order)) == before
    assert not ParamChange.objects.exists()


@embedded
@each()
def test_the_service_refuses_a_bad_value_of_each_parameter_naming_it(order, param):
    before = values(order)
    with pytest.raises(InvalidParamChange) as refused:
        order_params_update(order_id=order.order_id, changes={"bid_spread": "0.001", param.name: bad_json(param)},
                            by="test")
    [(field, [message])] = refused.value.errors.items()
    # price_source_type: which sources exist is the strategy's to say (a check of the whole set).
    assert field == (param.name if param.name != "price_source_type" else "non_field_errors")
    assert names_it(param, message), message
    unchanged(order, before)


@embedded
@each()
def test_the_api_refuses_a_bad_value_of_each_parameter_naming_it(order, api, param):
    before = values(order)
    response = api(order.order_id, {param.name: bad_json(param)})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid request"
    [(field, [message])] = body["errors"].items()
    assert field == param.name  # the API checks a choice on its field (price_source_type too)
    assert names_it(param, message), message
    unchanged(order, before)


@embedded
@each()
def test_mm_order_edit_refuses_a_bad_value_of_each_parameter_naming_it(order, param):
    before = values(order)
    with pytest.raises(CommandError) as refused:
        mm_order_edit(order.order_id, f"{param.option}={bad_text(param)}")
    assert refused.value.returncode == 2
    assert names_it(param, str(refused.value)), str(refused.value)
    unchanged(order, before)


@embedded
@each([param for param in PARAMS if param.kind is not Kind.BOOLEAN])  # a checkbox sends on or nothing
def test_the_admin_form_refuses_a_bad_value_of_each_parameter_naming_it(order, operator, param):
    before = values(order)
    response = admin_edit(operator, order, **{param.name: bad_text(param)})
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert param.name in errors or "__all__" in errors, errors
    assert names_it(param, " ".join(m for messages in errors.values() for m in messages)), errors
    unchanged(order, before)


@embedded
@pytest.mark.parametrize("changes, message", [
    ({"floor_price": "31000", "ceiling_price": "30000"}, r"price_floor 31000(\.0*)? must be below price_ceiling 30000"),
    ({"bid_spread": "1"}, r"bid_spread must be a fraction in \[0, 1\)"),
])
def test_what_the_strategy_refuses_of_the_order_as_it_would_be_is_refused(order, api, changes, message):
    before = values(order)
    response = api(order.order_id, changes)
    assert response.status_code == 400
    [problem] = response.json()["errors"]["non_field_errors"]
    assert problem.startswith("the strategy refuses these parameters") and re.search(message, problem), problem
    unchanged(order, before)


@embedded
def test_the_strategy_check_reads_the_orders_stored_values_with_the_change(order):
    order_params_update(order_id=order.order_id, changes={"ceiling_price": "30000"}, by="test")
    with pytest.raises(InvalidParamChange, match=r"price_floor 30000(\.0*)? must be below price_ceiling"):
        order_params_update(order_id=order.order_id, changes={"floor_price": "30000"}, by="test")
    assert fresh(order).floor_price is None


@embedded
def test_the_api_names_unknown_fields_and_refuses_a_body_that_is_not_an_object(order, api):
    response = api(order.order_id, {"colour": "red", "bid_spread": "0.001"})
    assert response.status_code == 400
    assert response.json()["errors"] == {"colour": ["colour is not a strategy parameter"]}
    for body in ("[1, 2]", "not json"):
        response = api(order.order_id, body)
        assert response.status_code == 400 and list(response.json()["errors"]) == ["body"]
    assert fresh(order).bid_spread == Decimal("0.002")


@embedded
def test_the_api_answers_404_for_an_unknown_order_and_401_without_a_token(order, api):
    assert api(uuid.uuid4(), {"bid_spread": "0.001"}).status_code == 404
    response = api("not-an-order", {"bid_spread": "0.001"})
    assert response.status_code == 404 and "no market-making order" in response.json()["error"]
    assert api(order.order_id, {"bid_spread": "0.001"}, HTTP_AUTHORIZATION="Bearer mm_nope").status_code == 401
    assert fresh(order).bid_spread == Decimal("0.002")


@embedded
def test_the_params_endpoint_takes_only_patch(order, client):
    # (with a token: a request without one is a 401 first)
    call_command("api_token", "create", UserFactory(username="methods").username, "--mixin-user-id", EDITOR,
                 stdout=(out := StringIO()))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {out.getvalue().strip()}"}
    for method in (client.get, client.post, client.put):
        assert method(API.format(order.order_id), **auth).status_code == 405


@embedded
@pytest.mark.parametrize("state", FINISHED)
def test_a_finished_order_is_refused_everywhere(account, api, operator, state):
    order = OrderFactory(state=state, pair__exchange_account=account, user_id=EDITOR)
    before = values(order)

    with pytest.raises(OrderFinished, match=f"is {state}"):
        order_params_update(order_id=order.order_id, changes={"bid_spread": "0.004"}, by="test")
    response = api(order.order_id, {"bid_spread": "0.004"})
    assert response.status_code == 409 and response.json()["state"] == state
    assert f"is {state}" in response.json()["error"]
    with pytest.raises(CommandError, match=f"is {state}") as refused:
        mm_order_edit(order.order_id, "--bid-spread", "0.004")
    assert refused.value.returncode == 2
    page = operator.get(ADMIN_ORDER.format(order.pk)).content.decode()
    assert 'id="edit-params"' not in page and f"not editable: the order is {state}" in page
    response = operator.post(ADMIN_PARAMS.format(order.pk), {"bid_spread": "0.004"}, follow=True)
    assert f"is {state}" in response.content.decode()

    unchanged(order, before)


@embedded
def test_mm_order_edit_needs_an_option_and_a_known_order(order):
    with pytest.raises(CommandError, match="at least one parameter option") as refused:
        mm_order_edit(order.order_id)
    assert refused.value.returncode == 2
    with pytest.raises(CommandError, match="no market-making order") as refused:
        mm_order_edit(uuid.uuid4(), "--bid-spread", "0.001")
    assert refused.value.returncode == 2


@embedded
def test_mm_order_edit_sets_a_flag_off_and_a_value_to_none(order):
    MarketMakingOrder.objects.filter(pk=order.pk).update(hanging_orders_enabled=True, max_order_age_s=60)
    printed = mm_order_edit(order.order_id, "--hanging-orders-enabled", "false", "--max-order-age-s", "")
    assert {c["name"]: (c["old"], c["new"]) for c in printed["changes"]} == {
        "hanging_orders_enabled": ("true", "false"), "max_order_age_s": ("60", "none")}
    order = fresh(order)
    assert (order.hanging_orders_enabled, order.max_order_age_s) == (False, None)


# --- the admin: who may edit, what the page shows ------------------------------------------------------------
@embedded
def test_view_only_staff_cannot_edit_parameters(order, viewer):
    assert "Edit strategy parameters" not in viewer.get(ADMIN_ORDER.format(order.pk)).content.decode()
    assert viewer.get(ADMIN_PARAMS.format(order.pk)).status_code == 403
    assert viewer.post(ADMIN_PARAMS.format(order.pk), {"bid_spread": "0.004"}).status_code == 403
    assert fresh(order).bid_spread == Decimal("0.002")


@embedded
def test_the_order_page_links_the_form_and_lists_the_changes_read_only(order, operator):
    order_params_update(order_id=order.order_id, changes={"bid_spread": "0.0015"}, by="api:someone",
                        reason="campaign asks 0.15%")

    page = operator.get(ADMIN_ORDER.format(order.pk)).content.decode()

    assert f'href="{ADMIN_PARAMS.format(order.pk)}"' in page
    section = page[page.lower().index("strategy parameter changes"):]
    for shown in ("bid_spread", "0.002", "0.0015", "api:someone", "campaign asks 0.15%"):
        assert shown in section, shown
    assert 'name="param_changes-0-new_value"' not in page


@embedded
def test_a_form_posted_unchanged_records_nothing_and_another_edit_meanwhile_stays(order, operator):
    # given the form is open when someone else changes the ask spread
    form = operator.get(ADMIN_PARAMS.format(order.pk)).context["form"]
    order_params_update(order_id=order.order_id, changes={"ask_spread": "0.003"}, by="api:other")

    # when the operator changes only the bid spread on the page they opened before
    response = operator.post(ADMIN_PARAMS.format(order.pk), form_data(form, bid_spread="0.001"))

    # then only the bid spread is written: the other edit is not undone
    assert response.status_code == 302
    order = fresh(order)
    assert (order.bid_spread, order.ask_spread) == (Decimal("0.001"), Decimal("0.003"))
    assert list(ParamChange.objects.values_list("name", "by")) == [
        ("ask_spread", "api:other"), ("bid_spread", "admin:edit-operator")]


# --- concurrency (PostgreSQL: row locks) -------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_concurrent_edits_are_both_recorded_with_the_right_old_values(account):
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    order = make_running_order(account, layers=1)
    results, errors = [], []

    def edit(value):
        try:
            results.append(order_params_update(order_id=order.order_id, changes={"bid_spread": value}, by=value))
        except Exception as exc:  # reported below: a thread's exception would otherwise vanish
            errors.append(exc)
        finally:
            connections.close_all()

    # given the order's row is locked, two edits start and wait for it
    with transaction.atomic():
        order_lock(order.order_id)
        threads = [threading.Thread(target=edit, args=(value,)) for value in ("0.003", "0.004")]
        for thread in threads:
            thread.start()
        threads[0].join(0.5)
        assert all(thread.is_alive() for thread in threads)
    for thread in threads:
        thread.join(30)

    # then both are recorded, each with the value the other left as its old value
    assert not errors and len(results) == 2
    changes = list(ParamChange.objects.filter(order=order).order_by("id").values_list("old_value", "new_value"))
    assert len(changes) == 2
    (first_old, first_new), (second_old, second_new) = changes
    assert first_old == "0.002" and second_old == first_new and {first_new, second_new} == {"0.003", "0.004"}
    assert fresh(order).bid_spread == Decimal(second_new)
