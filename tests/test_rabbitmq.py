"""The broker is only configuration: the whole order lifecycle once with RabbitMQ as the broker.

``ingest_snapshots`` (its own process, enqueueing on RabbitMQ) -> a real worker on RabbitMQ carries
the order to ``running`` -> ``stop_mm`` (its own process) -> ``stopped``; the ledger audit is clean.
The test uses its own virtual host (named after the test database) when ``rabbitmqctl`` can make
one, and purges its queues either way, so it never meets another run's messages.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connection

from ledger.selectors import audit_ledger
from ledger.services import get_balance
from mmproject.celery import INTENTS_QUEUE, MARKET_MAKING_QUEUE, TICK_QUEUE, app
from ledger.selectors import entry_amounts
from orders.models import OrderTransition, OutgoingTransfer
from strategy.models import StrategySession
from tests.orders.conftest import BTC, ETH, USDT, make_order, sim_pair, snapshot_payload, user_id  # noqa: F401
from tests.orders.test_chain import wait_for_state

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RABBITMQ_URL = os.environ.get("MM_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
def rabbitmq_url(django_db_setup):
    """An AMQP URL on a virtual host of this test database's own, its queues empty."""
    vhost = f"mm_{connection.settings_dict['NAME'].rsplit('/', 1)[-1]}"
    url = RABBITMQ_URL.rstrip("/") + "//"
    ctl = shutil.which("rabbitmqctl")
    if ctl:
        subprocess.run([ctl, "add_vhost", vhost], capture_output=True, timeout=30)
        made = subprocess.run([ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                              capture_output=True, timeout=30)
        if made.returncode == 0:
            url = f"{RABBITMQ_URL.rstrip('/')}/{vhost}"
    try:
        with app.connection_for_write(url, connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
            for queue in (MARKET_MAKING_QUEUE, INTENTS_QUEUE, TICK_QUEUE):
                try:
                    conn.channel().queue_purge(queue)
                except conn.channel_errors:  # never declared on this vhost: nothing to purge
                    pass
    except Exception as exc:  # refused, timed out, bad credentials
        pytest.fail(f"RabbitMQ is not reachable at {url} ({exc!r}); `make test` starts it "
                    "(scripts/ensure_services.sh rabbitmq)")
    return url


def manage(child_env, *argv, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env={**child_env, **env},
                          capture_output=True, text=True, timeout=120)


def test_lifecycle_runs_end_to_end_with_rabbitmq_as_the_broker(sim_pair, make_order, celery_worker,  # noqa: F811
                                                               child_env, rabbitmq_url, tmp_path, settings):
    # given a worker whose broker is RabbitMQ, in transfer mode with short intervals
    lifecycle_env = {
        "MM_WITHDRAW_MODE": "transfer", "MM_PAYMENT_FIRST_CHECK_S": "0", "MM_PAYMENT_CHECK_INTERVAL_S": "1",
        "MM_WITHDRAWAL_CHECK_INTERVAL_S": "1", "SIM_DEPOSIT_CONFIRM_S": "1",
    }
    settings.CELERY_BROKER_URL = rabbitmq_url  # what the worker fixture hands its worker
    # prefork, as in production: a solo worker on AMQP took ~10 s to receive each job a job had just queued
    worker = celery_worker(env=lifecycle_env, purge=False, pool="prefork")
    assert "transport:   amqp://" in worker.log_path.read_text()
    lifecycle_env["CELERY_BROKER_URL"] = rabbitmq_url  # and the command processes below
    order = make_order(sim_pair)
    payloads = [snapshot_payload(order, asset_id=BTC, amount="0.5001"),
                snapshot_payload(order, asset_id=USDT, amount="1000"),
                snapshot_payload(order, asset_id=ETH, amount="0.002")]
    path = tmp_path / "snapshots.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in payloads))

    # when the payment is ingested by the command, which enqueues on RabbitMQ
    ingested = manage(child_env, "ingest_snapshots", "--json", str(path), env=lifecycle_env)
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout) == {"new": 3, "known": 0, "malformed": 0}

    # then the worker carries the order to running
    wait_for_state(order, "running", worker)
    assert StrategySession.objects.get(order=order).status == "running"
    assert get_balance(user_id=order.user_id, asset_id=USDT).locked == Decimal("1000")

    # when the operator stops it
    stopped = manage(child_env, "stop_mm", "--json", str(order.order_id), env=lifecycle_env)
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["outcome"] == "stopped"

    # then it is stopped, and the worker pays its funds out to the user (withdraw_to_user, on RabbitMQ too)
    wait_for_state(order, "paid_out", worker)
    assert StrategySession.objects.get(order=order).status == "stopped"
    assert get_balance(user_id=order.user_id, asset_id=USDT).total == 0
    unlocked = entry_amounts(f"mm-unlock:{order.order_id}:{asset}" for asset in (BTC, USDT))
    assert {t.asset_id: t.amount for t in OutgoingTransfer.objects.filter(opponent_id=order.user_id)} == {
        asset: unlocked[f"mm-unlock:{order.order_id}:{asset}"] for asset in (BTC, USDT)}
    assert list(OrderTransition.objects.filter(order=order).values_list("to_state", flat=True)) == [
        "payment_pending", "payment_complete", "withdrawing", "withdrawal_confirmed", "campaign_joined",
        "running", "stopped", "paying_out", "paid_out"]
    report = audit_ledger()
    assert report.ok, report.drifts
    # and every log line of the worker and the commands that names the order carries order_id=
    logged = worker.log_path.read_text().splitlines() + ingested.stderr.splitlines() + stopped.stderr.splitlines()
    naming = [line for line in logged if str(order.order_id) in line and line[:3] in ("[20", "202")]
    assert len(naming) > 10
    assert [line for line in naming if f"order_id={order.order_id}" not in line] == []
    # a warm shutdown of a solo worker on AMQP waits out the fixture's 15 s; nothing is left to finish
    os.killpg(worker.pid, signal.SIGQUIT)
    worker.wait(timeout=15)
