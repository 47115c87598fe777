"""The one owner of a tracked order's status (intents.tracked_orders): its transitions, and that no
other module writes the status."""
import ast
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from intents import tracked_orders
from intents.models import TrackedOrder, TrackedOrderStatus
from tests.factories import TrackedOrderFactory

S = TrackedOrderStatus
pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.mark.parametrize("exchange_status, filled, before, after", [
    ("open", None, S.PENDING_CREATE, S.OPEN),
    ("open", "0.004", S.OPEN, S.PARTIALLY_FILLED),
    ("open", None, S.PENDING_CANCEL, S.PENDING_CANCEL),  # our cancel is on its way
    ("closed", "0.01", S.PARTIALLY_FILLED, S.FILLED),
    ("canceled", "0.002", S.PENDING_CANCEL, S.CANCELLED),
    ("expired", None, S.OPEN, S.CANCELLED),
    ("rejected", None, S.PENDING_CREATE, S.FAILED),
])
def test_what_the_exchange_says_decides_the_status(exchange_status, filled, before, after):
    row = TrackedOrderFactory(status=before)
    tracked_orders.apply_exchange_order(row, {"id": "ex-1", "status": exchange_status, "filled": filled})
    row.refresh_from_db()
    assert row.status == after and row.exchange_order_id == "ex-1"
    assert row.filled == Decimal(filled or 0)
    assert (row.last_fill_at is not None) == bool(filled)


def test_an_absent_order_is_lost_unless_it_may_never_have_left():
    placed, unsent = TrackedOrderFactory(status=S.OPEN), TrackedOrderFactory(status=S.PENDING_CREATE)
    tracked_orders.apply_absent(placed)
    tracked_orders.apply_absent(unsent)
    assert TrackedOrder.objects.get(pk=placed.pk).status == S.LOST
    assert TrackedOrder.objects.get(pk=unsent.pk).status == S.CANCELLED


@pytest.mark.parametrize("transition, before, after", [
    (tracked_orders.not_sent_row, S.PENDING_CREATE, S.CANCELLED),
    (tracked_orders.not_sent_row, S.PENDING_CANCEL, S.CANCELLED),
    (tracked_orders.not_sent_row, S.FILLED, S.FILLED),  # a final status stays
    (tracked_orders.create_given_up_row, S.PENDING_CREATE, S.FAILED),
    (tracked_orders.create_given_up_row, S.OPEN, S.OPEN),  # the exchange already told us more
    (tracked_orders.cancel_given_up_row, S.PENDING_CANCEL, S.OPEN),
    (tracked_orders.cancel_given_up_row, S.CANCELLED, S.CANCELLED),
])
def test_our_own_steps_change_a_row_only_from_the_status_they_start_from(transition, before, after):
    row = TrackedOrderFactory.build(status=before)
    assert transition(row) == (before != after)
    assert row.status == after


def test_bulk_steps_touch_only_the_orders_named_and_in_the_right_status():
    unsent, sent, other = (TrackedOrderFactory(status=s) for s in (S.PENDING_CREATE, S.OPEN, S.PENDING_CREATE))
    assert tracked_orders.cancel_unsent([unsent.client_order_id, sent.client_order_id]) == 1
    assert tracked_orders.cancel_requested([sent.client_order_id]) == 1
    assert tracked_orders.mark_hanging([sent.client_order_id], now=timezone.now()) == 1
    assert tracked_orders.open_of([sent.client_order_id, unsent.client_order_id]) == [
        (sent.client_order_id, sent.strategy_key, sent.account_id, sent.symbol)]
    statuses = dict(TrackedOrder.objects.values_list("client_order_id", "status"))
    assert statuses == {unsent.client_order_id: S.CANCELLED, sent.client_order_id: S.PENDING_CANCEL,
                        other.client_order_id: S.PENDING_CREATE}
    assert TrackedOrder.objects.get(pk=sent.pk).hanging


def status_writes_outside_the_owner() -> list[str]:
    """Places in production code that set a tracked order's status: ``x.status = TrackedOrderStatus...``
    or an ``update(status=...)`` on TrackedOrder, anywhere but intents/tracked_orders.py."""
    root = Path(__file__).resolve().parents[2]
    found = []
    for app in ("intents", "strategy", "orders", "reconciliation", "api", "demo", "exchanges", "ledger", "mmproject"):
        for path in (root / app).rglob("*.py"):
            if "migrations" in path.parts or path.name == "tracked_orders.py":
                continue
            source = path.read_text()
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.Assign) and any(isinstance(t, ast.Attribute) and t.attr == "status"
                                                        for t in node.targets):
                    if "TrackedOrderStatus" in ast.get_source_segment(source, node.value) or "":
                        found.append(f"{path.relative_to(root)}:{node.lineno}")
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update" \
                        and any(k.arg == "status" for k in node.keywords) \
                        and "TrackedOrder" in (ast.get_source_segment(source, node.func.value) or ""):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_module_but_the_owner_writes_a_tracked_orders_status():
    assert status_writes_outside_the_owner() == []
