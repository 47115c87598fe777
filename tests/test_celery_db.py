"""A Celery worker keeps its database connection from task to task (CELERY_DB_REUSE_MAX), and
still drops one that is no longer usable (mmproject.celery: close_old_connections around tasks)."""
import time

import pytest
from django.db import connection

from intents.models import IntentStatus
from tests.factories import ExchangeAccountFactory, IntentFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def sessions_started() -> int:
    with connection.cursor() as cur:
        cur.execute("SELECT pg_stat_force_next_flush()")
        cur.execute("SELECT pg_stat_clear_snapshot()")
        cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cur.fetchone()[0]


def wait_done(intent, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        intent.refresh_from_db()
        if intent.status == IntentStatus.DONE:
            return
        time.sleep(0.1)
    raise AssertionError(f"intent still {intent.status}")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="counts PostgreSQL sessions")
def test_a_worker_runs_many_tasks_on_one_database_connection(celery_worker):
    from intents.tasks import dispatch_intents

    # Given a worker (no exchange calls: a dispatched intent is processed without one)
    celery_worker(queues=("intents",), env={"STRATEGY_EXECUTE_INTENTS": "false"})
    account = ExchangeAccountFactory()
    first = IntentFactory(cancel=True, intent_id="k:0", strategy_key="k", account=account, client_order_id="c0")
    dispatch_intents.delay()
    wait_done(first)
    time.sleep(1.5)  # the worker's backend reports its session
    before = sessions_started()

    # When it runs 30 more tasks, then one that finishes an intent (the queue is first in, first out)
    for _ in range(30):
        dispatch_intents.delay()
    last = IntentFactory(cancel=True, intent_id="k:1", strategy_key="k", account=account, client_order_id="c1")
    dispatch_intents.delay()
    wait_done(last)
    time.sleep(1.5)

    # Then it opened no new connection for them (Celery's fix-up alone reconnects for every task)
    # beyond this test's own
    assert sessions_started() - before <= 1
