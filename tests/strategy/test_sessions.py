"""Strategy sessions: one per order, start and stop idempotent, due by cadence."""
from datetime import timedelta

import pytest
from django.utils import timezone

from intents.ids import strategy_key
from mmproject.celery import TICK_QUEUE, app
from strategy.cycle import due_sessions
from strategy.models import RefillMark, StrategySession
from strategy.services import refill_mark_clear, session_start, session_stop, sessions_wake
from tests.factories import ExchangeAccountFactory
from tests.runtime_fixtures import make_running_order

BTC = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"
USDT = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture
def order(db):
    import uuid
    from decimal import Decimal

    from orders.models import MarketMakingPair
    from orders.services import order_create

    pair = MarketMakingPair.objects.create(
        exchange_id="binance", symbol="BTC/USDT", base_asset_id=BTC, quote_asset_id=USDT,
        base_exchange_asset="BTC", quote_exchange_asset="USDT", base_fee_amount=Decimal(0),
    )
    return order_create(user_id=str(uuid.uuid4()), pair_id=pair.pair_id, base_amount="1", quote_amount="100",
                        bid_spread="0.001", ask_spread="0.001", order_amount="0.1", order_refresh_time=7, by="test")


def test_start_registers_one_running_session_with_the_order_cadence(order):
    first = session_start(order_id=order.order_id)
    again = session_start(order_id=order.order_id)
    assert first.pk == again.pk
    assert StrategySession.objects.filter(order=order).count() == 1
    assert (again.status, again.cadence_s, again.stopped_at) == ("running", 7, None)


def test_stop_is_idempotent_and_a_stopped_session_is_not_due(order):
    session_start(order_id=order.order_id)
    stopped = session_stop(order_id=order.order_id)
    stopped_at = stopped.stopped_at
    assert stopped.status == "stopped" and stopped_at is not None
    assert session_stop(order_id=order.order_id).stopped_at == stopped_at
    assert due_sessions(timezone.now() + timedelta(days=1))[0] == []


def test_stop_without_a_session_does_nothing(order):
    assert session_stop(order_id=order.order_id) is None
    assert not StrategySession.objects.exists()


def test_restart_after_stop_runs_again_and_is_due_at_once(order):
    session_start(order_id=order.order_id)
    session_stop(order_id=order.order_id)
    session = session_start(order_id=order.order_id)
    assert session.status == "running" and session.stopped_at is None
    assert [s.pk for s in due_sessions(timezone.now())[0]] == [session.pk]


def test_an_executor_may_send_only_while_the_session_runs_and_the_kill_switch_is_off(settings):
    # the last check before a create leaves (intents.executor): one statement on both databases
    from exchanges.models import ExchangeAccount
    from intents.halt import halt_engaged, halt_set
    from strategy.models import SessionStatus
    from intents.ids import strategy_key
    from intents.hooks import accepting
    from tests.runtime_fixtures import make_running_order

    def session_accepts_orders(key):  # what strategy.apps registered for the executor's check
        return accepting([key]) == {key}

    order = make_running_order(ExchangeAccount.objects.create(exchange_id="binance", label="send-check"))
    key = strategy_key(order.order_id)
    assert session_accepts_orders(key)

    halt_set(engaged=True, reason="test", by="test")
    assert not session_accepts_orders(key)
    assert halt_engaged()
    halt_set(engaged=False, by="test")
    assert session_accepts_orders(key)
    settings.STRATEGY_KILL_SWITCH = True
    assert not session_accepts_orders(key)
    settings.STRATEGY_KILL_SWITCH = False

    StrategySession.objects.filter(order=order).update(status=SessionStatus.STOPPING)
    assert not session_accepts_orders(key)
    assert not session_accepts_orders(strategy_key("5f0c6b1e-0000-4000-8000-000000000000"))


def test_a_batch_of_intents_checks_all_its_sessions_in_one_statement(django_assert_num_queries):
    from exchanges.models import ExchangeAccount
    from strategy.models import SessionStatus
    from intents.ids import strategy_key
    from strategy.selectors import sessions_accepting_orders
    from tests.runtime_fixtures import make_running_order

    account = ExchangeAccount.objects.create(exchange_id="binance", label="send-check-batch")
    running, stopping, other = (make_running_order(account) for _ in range(3))
    StrategySession.objects.filter(order=stopping).update(status=SessionStatus.STOPPING)
    keys = [strategy_key(o.order_id) for o in (running, stopping, other, running)]
    unknown = strategy_key("5f0c6b1e-0000-4000-8000-000000000000")

    with django_assert_num_queries(1):
        assert sessions_accepting_orders([*keys, unknown]) == {keys[0], keys[2]}
    assert sessions_accepting_orders([]) == set()


def test_a_burst_of_wakes_sends_one_refill_run_until_it_starts(settings, django_capture_on_commit_callbacks):
    # given a running session, the worker driver and an empty tick queue
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "worker"
    order = make_running_order(ExchangeAccountFactory(label="refill-burst"), layers=1)

    def queued() -> int:
        with app.connection_for_write() as conn:
            try:
                return conn.default_channel.queue_purge(TICK_QUEUE) or 0
            except Exception:  # never declared: nothing queued
                return 0

    def wake():
        StrategySession.objects.update(next_run_at=timezone.now() + timedelta(hours=1))
        with django_capture_on_commit_callbacks(execute=True):
            assert sessions_wake([strategy_key(order.order_id)]) == 1

    queued()
    # when its orders close three times before a refill run starts
    for _ in range(3):
        wake()
    # then one refill run was asked for
    assert queued() == 1
    assert RefillMark.objects.get().requested_at is not None
    # and once it started, the next wake asks for another
    refill_mark_clear()
    wake()
    assert queued() == 1
