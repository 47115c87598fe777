"""/metrics: every family is read from the database (or the broker) at scrape time, so it is true
for work done in any process; an unreadable section or broker never fails the scrape."""
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from exchanges.models import ExchangeAccount
from intents.models import Intent, IntentSlot
from mmproject.metrics import celery_queue_depths
from strategy.metrics import TICK_DURATION_BUCKETS_MS
from reconciliation.models import Drift, ReconciliationRun
from strategy.models import SessionStatus, StrategySession, TickDurationBucket, TickLease
from tests.runtime_fixtures import make_running_order

pytestmark = pytest.mark.embedded


def scrape(client, **headers) -> dict:
    """{(sample name, ((label, value), ...)): value} of one GET /metrics."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def account(label: str) -> ExchangeAccount:
    acc = ExchangeAccount(exchange_id="binance", label=label, api_key="k", base_url="http://127.0.0.1:9")
    acc.api_secret = "s"
    acc.save()
    return acc


def intent(acc, status: str, **fields) -> Intent:
    return Intent.objects.create(intent_id=f"i-{uuid.uuid4().hex}", strategy_key=f"k-{uuid.uuid4().hex[:8]}",
                                 account=acc, kind="create", symbol="BTC/USDT", side="buy",
                                 client_order_id=uuid.uuid4().hex[:20], status=status, **fields)


@pytest.mark.slow
def test_ticks_run_by_another_process_fill_the_histogram_this_process_serves(transactional_db, child_env, client):
    # given no tick history (a lease row left by an earlier test with another period would skip these)
    TickLease.objects.all().delete()
    TickDurationBucket.objects.all().delete()
    # and two ticks in one period slot and one in the next, run by a separate process with 1 s periods
    child_env = dict(child_env, STRATEGY_TICK_SIZE_MS="1000")
    script = ("import django; django.setup()\n"
              "from datetime import datetime, timezone, timedelta\n"
              "from strategy.tick import tick_run\n"
              "now = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)\n"
              "print(tick_run(now=now).ran, tick_run(now=now).ran, tick_run(now=now + timedelta(seconds=5)).ran)\n")
    done = subprocess.run([sys.executable, "-c", script], env=child_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False", "True"]

    # when this process is scraped
    samples = scrape(client)

    # then the histogram counts the two ticks run, the skip is counted, and the sum is theirs
    lease = TickLease.objects.get(name="tick")
    assert samples[("mm_tick_duration_seconds_count", ())] == 2
    assert samples[("mm_tick_duration_seconds_bucket", (("le", "+Inf"),))] == 2
    assert samples[("mm_tick_duration_seconds_sum", ())] == pytest.approx(lease.duration_ms_total / 1000)
    assert samples[("mm_ticks_skipped_total", ())] == 1
    assert samples[("mm_tick_last_finished_timestamp_seconds", ())] == pytest.approx(lease.last_finished_at.timestamp())
    buckets = [samples[("mm_tick_duration_seconds_bucket", (("le", f"{bound / 1000:g}"),))]
               for bound in TICK_DURATION_BUCKETS_MS]
    assert buckets == sorted(buckets), "cumulative buckets never decrease"
    assert buckets[-1] == 2  # both ticks took well under 30 s
    slowest_fits = next(b for b in TICK_DURATION_BUCKETS_MS if b >= lease.last_duration_ms)
    assert samples[("mm_tick_duration_seconds_bucket", (("le", f"{slowest_fits / 1000:g}"),))] >= 1


def test_sessions_intents_in_flight_ledger_and_drifts_are_counted_from_the_database(db, client):
    # given two running orders (deposit + lock per asset each), one of them stopped
    acc, idle = account("metrics-a"), account("metrics-b")
    make_running_order(acc)
    stopped = make_running_order(acc)
    StrategySession.objects.filter(order=stopped).update(status=SessionStatus.STOPPED)
    # and intents: two new, one in flight holding a live global and account slot, one done
    now = timezone.now()
    for status in ("new", "new", "done"):
        intent(acc, status)
    flying = intent(acc, "in_flight", lease_until=now + timedelta(seconds=30))
    IntentSlot.objects.create(scope="global", index=0, intent=flying, lease_until=now + timedelta(seconds=30))
    IntentSlot.objects.create(scope=f"account:{acc.pk}", index=0, intent=flying,
                              lease_until=now + timedelta(seconds=30))
    # an expired claim holds nothing
    IntentSlot.objects.create(scope="global", index=1, intent=intent(acc, "in_flight"),
                              lease_until=now - timedelta(seconds=1))
    # and an older clean reconciliation run, then one that found two drifts
    ReconciliationRun.objects.create(trigger="test", started_at=now - timedelta(minutes=2),
                                     finished_at=now - timedelta(minutes=2), ok=True)
    run = ReconciliationRun.objects.create(trigger="test", started_at=now, finished_at=now, ok=False, drift_count=2)
    Drift.objects.create(run=run, kind="tracked_not_open", detail="gone")
    Drift.objects.create(run=run, kind="tracked_not_open", detail="gone too")

    # when /metrics is scraped
    samples = scrape(client)

    # then each family says exactly that
    assert samples[("mm_strategy_sessions", (("status", "running"),))] == 1
    assert samples[("mm_strategy_sessions", (("status", "stopped"),))] == 1
    assert samples[("mm_strategy_sessions", (("status", "stopping"),))] == 0
    assert samples[("mm_orders", (("state", "running"),))] == 2
    assert samples[("mm_intents", (("status", "new"),))] == 2
    assert samples[("mm_intents", (("status", "in_flight"),))] == 2
    assert samples[("mm_intents", (("status", "done"),))] == 1
    assert samples[("mm_intents_in_flight", ())] == 1
    per_account = "mm_intents_in_flight_per_exchange_account"
    assert samples[(per_account, (("account", "metrics-a"), ("account_id", str(acc.pk))))] == 1
    assert samples[(per_account, (("account", "metrics-b"), ("account_id", str(idle.pk))))] == 0
    assert samples[("mm_ledger_mutations_total", (("operation", "credit_deposit"),))] == 4
    assert samples[("mm_ledger_mutations_total", (("operation", "lock_funds"),))] == 4
    assert samples[("mm_ledger_mutations_total", (("operation", "settle_fill"),))] == 0
    assert samples[("mm_reconciliation_drifts", (("kind", "tracked_not_open"),))] == 2
    assert samples[("mm_reconciliation_drifts", (("kind", "balance_changed"),))] == 0
    assert samples[("mm_reconciliation_last_run_ok", ())] == 0
    assert samples[("mm_reconciliation_last_run_timestamp_seconds", ())] == pytest.approx(now.timestamp())
    assert all(value == 1 for (name, _), value in samples.items() if name == "mm_metrics_section_up")


def test_each_running_sessions_two_sided_uptime_is_a_gauge(db, client):
    # given a running session the tracker sampled 40 times, 30 of them with orders on both sides
    acc = account("metrics-uptime")
    quoting = make_running_order(acc)
    StrategySession.objects.filter(order=quoting).update(quote_samples=40, two_sided_samples=30)
    fresh = make_running_order(acc)  # not sampled yet

    samples = scrape(client)

    assert samples[("mm_session_two_sided_ratio", (("order_id", str(quoting.order_id)),))] == 0.75
    assert samples[("mm_session_quote_samples_total", (("order_id", str(quoting.order_id)),))] == 40
    assert samples[("mm_session_two_sided_ratio", (("order_id", str(fresh.order_id)),))] == 0


def test_a_table_not_migrated_yet_drops_only_its_section(db, client):
    # given the reconciliation drift table is missing (renamed inside this test's transaction)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE reconciliation_drift RENAME TO reconciliation_drift_away")
    ReconciliationRun.objects.create(trigger="test", started_at=timezone.now(), finished_at=timezone.now(), ok=True)

    # when /metrics is scraped
    samples = scrape(client)

    # then that section is reported down and left out; the others are served
    assert samples[("mm_metrics_section_up", (("section", "reconciliation"),))] == 0
    assert not any(name.startswith("mm_reconciliation") for name, _ in samples)
    assert samples[("mm_metrics_section_up", (("section", "ledger"),))] == 1
    assert ("mm_strategy_sessions", (("status", "running"),)) in samples


def test_queue_depth_counts_the_messages_waiting_on_the_configured_broker(db):
    from mmproject.celery import TICK_QUEUE, app

    # given an empty tick queue, then three messages nobody consumes
    app.finalize(auto=True)  # as a worker or the web process would: the filesystem broker makes its folders
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(TICK_QUEUE)
    for _ in range(3):
        app.send_task("reconcile", queue=TICK_QUEUE, expires=60)
    try:
        # then its depth is three and the other queues are untouched
        depths = celery_queue_depths()
        assert depths[TICK_QUEUE] == 3
        assert set(depths) == {"market-making", "intents", "tick"}
    finally:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(TICK_QUEUE)


@pytest.mark.parametrize("url", ["redis://127.0.0.1:{port}/0", "amqp://guest:guest@127.0.0.1:{port}//"])
def test_unreachable_broker_reports_minus_one_quickly(url, unused_port):
    started = timezone.now()
    depths = celery_queue_depths(broker_url=url.format(port=unused_port), timeout_s=1.0)
    assert depths == {"market-making": -1, "intents": -1, "tick": -1}
    assert timezone.now() - started < timedelta(seconds=10)


def test_metrics_token_is_required_when_set(db, client, settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert ("mm_metrics_section_up", (("section", "ledger"),)) in scrape(
        client, HTTP_AUTHORIZATION="Bearer scrape-secret")


@pytest.fixture
def unused_port():
    """A loopback TCP port nobody listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_intent_counts_stay_exact_while_only_new_rows_are_counted_again(db, settings):
    from django.db.models import Q

    from intents.models import ACTIVE_INTENT_STATUSES
    from mmproject.metrics import IncrementalCounts

    # given rows older than the settling margin: two done, one still new, one done after it
    settings.METRICS_SETTLE_AFTER_S = 0
    acc = account("metrics-inc")
    first = [intent(acc, "done"), intent(acc, "done")]
    waiting = intent(acc, "new")
    intent(acc, "superseded")
    counter = IncrementalCounts(Intent, "status", active=Q(status__in=ACTIVE_INTENT_STATUSES))

    # when counted, the rows before the active one settle; the rest are counted live
    assert counter.counts() == {"done": 2, "new": 1, "superseded": 1}
    assert counter.settled_id == first[-1].pk

    # when the waiting intent finishes and more arrive, the totals stay exact and the boundary moves on
    Intent.objects.filter(pk=waiting.pk).update(status="done")
    latest = intent(acc, "failed")
    assert counter.counts() == {"done": 3, "superseded": 1, "failed": 1}
    assert counter.settled_id == latest.pk
    assert counter.counts() == {"done": 3, "superseded": 1, "failed": 1}

    # when the table is emptied (a restore, a test flush), counting starts over
    Intent.objects.all().delete()
    assert counter.counts() == {}


def test_young_ledger_entries_are_not_settled_until_the_margin_passes(db, settings):
    from ledger import services as ledger
    from ledger.models import LedgerEntry
    from mmproject.metrics import IncrementalCounts

    for n in range(3):
        ledger.credit_deposit(user_id="u-inc", asset_id="asset-inc", amount="1", idempotency_key=f"inc:{n}")
    counter = IncrementalCounts(LedgerEntry, "operation")
    settings.METRICS_SETTLE_AFTER_S = 300
    assert counter.counts() == {"credit_deposit": 3} and counter.settled_id == 0
    settings.METRICS_SETTLE_AFTER_S = 0
    ledger.lock_funds(user_id="u-inc", asset_id="asset-inc", amount="2", idempotency_key="inc:lock")
    assert counter.counts() == {"credit_deposit": 3, "lock_funds": 1}
    assert counter.settled_id == LedgerEntry.objects.latest("pk").pk


def test_open_fills_are_counted_in_one_statement_from_the_first_one_still_open(db, settings,
                                                                                django_assert_num_queries):
    from decimal import Decimal

    from django.db.models import Q

    from intents.models import TrackedFill
    from mmproject.metrics import OpenRows
    from tests.factories import TrackedOrderFactory

    settings.METRICS_SETTLE_AFTER_S = 0  # every row is old enough to be passed once closed
    tracked = TrackedOrderFactory()

    def fill(n, entry):
        return TrackedFill.objects.create(account=tracked.account, trade_id=f"t{n}", symbol="BTC/USDT",
                                          tracked_order=tracked, strategy_key=tracked.strategy_key, side="buy",
                                          price=Decimal("30000"), amount=Decimal("0.01"), cost=Decimal("300"),
                                          traded_at_ms=n, ledger_entry_id=entry)

    fill(1, 11)
    open_one, later = fill(2, None), fill(3, 13)
    unsettled = OpenRows(TrackedFill, Q(ledger_entry_id__isnull=True), "created_at")
    with django_assert_num_queries(1):
        assert unsettled.read() == (1, open_one.created_at)
    assert unsettled.after == open_one.pk  # the settled row before it is not read again

    TrackedFill.objects.filter(pk=open_one.pk).update(ledger_entry_id=12)
    assert unsettled.read()[0] == 0 and unsettled.after == later.pk
    newest = fill(4, None)
    with django_assert_num_queries(1):
        assert unsettled.read() == (1, newest.created_at)

    # the row it starts from is gone (history pruned, a restore): it reads from the start once
    TrackedFill.objects.filter(pk__gte=later.pk).delete()
    assert unsettled.read() == (0, None) and unsettled.after == open_one.pk
