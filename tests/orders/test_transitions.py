"""Guarded transitions: an illegal one raises and changes nothing; of two concurrent ones exactly one wins."""
import threading

import pytest
from django.db import connection, transaction
from django_fsm import ConcurrentTransition

from orders.errors import IllegalTransition
from orders.models import MarketMakingOrder, OrderState, OrderTransition
from orders.services import order_transition

pytestmark = pytest.mark.embedded

ALL_TRANSITIONS = ["complete_payment", "start_withdrawal", "confirm_withdrawal", "join_campaign", "start", "stop",
                   "begin_payout", "finish_payout", "refund", "fail"]
LEGAL = {
    "payment_pending": {"complete_payment", "fail"},
    "payment_complete": {"start_withdrawal", "refund", "fail"},
    "withdrawing": {"confirm_withdrawal", "fail"},
    "withdrawal_confirmed": {"join_campaign"},
    "campaign_joined": {"start", "stop"},
    "running": {"stop"},
    "stopped": {"begin_payout"},
    "paying_out": {"finish_payout", "fail"},
    "paid_out": set(), "refunded": set(), "failed": set(),
}


def force_state(order, value):
    MarketMakingOrder.objects.filter(pk=order.pk).update(state=value)


def test_the_legal_table_covers_every_state():
    assert set(LEGAL) == set(OrderState.values)


@pytest.mark.django_db
@pytest.mark.parametrize("source", list(LEGAL))
def test_every_illegal_transition_raises_and_changes_nothing(order, source):
    force_state(order, source)
    history = OrderTransition.objects.count()
    for name in sorted(set(ALL_TRANSITIONS) - LEGAL[source]):
        with pytest.raises(IllegalTransition) as caught:
            order_transition(order_id=order.order_id, name=name, by="test", reason="x",
                             **({"at": None} if name == "start_withdrawal" else {}))
        assert caught.value.state == source and caught.value.transition == name
        fresh = MarketMakingOrder.objects.get(pk=order.pk)
        assert fresh.state == source and fresh.reason == ""
    assert OrderTransition.objects.count() == history


@pytest.mark.django_db
def test_state_cannot_be_assigned_directly(order):
    with pytest.raises(AttributeError):
        order.state = "running"


@pytest.mark.django_db
def test_transition_records_from_to_by_and_reason(order):
    order_transition(order_id=order.order_id, name="fail", by="command:test", reason="operator gave up")
    record = OrderTransition.objects.filter(order=order).last()
    assert (record.name, record.from_state, record.to_state, record.by, record.reason) == (
        "fail", "payment_pending", "failed", "command:test", "operator gave up")


@pytest.mark.django_db
def test_stale_copy_cannot_overwrite_a_newer_state(order):
    # given two copies of the order read at the same moment
    first = MarketMakingOrder.objects.get(pk=order.pk)
    second = MarketMakingOrder.objects.get(pk=order.pk)
    first.complete_payment()
    first.save()
    # when the stale copy saves a transition from the old state
    second.fail(reason="late")
    with pytest.raises(ConcurrentTransition), transaction.atomic():
        second.save()
    # then the first one's state stands
    assert MarketMakingOrder.objects.get(pk=order.pk).state == "payment_complete"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_transitions_exactly_one_wins(order):
    # given an order moving to the exchange, and a confirmation racing a failure from two threads
    force_state(order, "withdrawing")
    barrier = threading.Barrier(2)
    results = {}

    def run(name, fn):
        barrier.wait()
        try:
            fn()
            results[name] = "won"
        except IllegalTransition:
            results[name] = "lost"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=("confirm", lambda: order_transition(
            order_id=order.order_id, name="confirm_withdrawal", by="t1"))),
        threading.Thread(target=run, args=("fail", lambda: order_transition(
            order_id=order.order_id, name="fail", by="t2", reason="race"))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # then exactly one won, and the history has exactly its transition
    assert sorted(results.values()) == ["lost", "won"]
    winner = next(name for name, r in results.items() if r == "won")
    final = MarketMakingOrder.objects.get(pk=order.pk).state
    assert final == {"confirm": "withdrawal_confirmed", "fail": "failed"}[winner]
    assert list(OrderTransition.objects.filter(order=order).exclude(name="create").values_list("to_state", flat=True)) \
        == [final]
