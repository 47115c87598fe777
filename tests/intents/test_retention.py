"""History retention: only finished intents and closed, unfilled tracked orders past the cutoff go."""
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from intents.models import Intent, IntentStatus, TrackedFill, TrackedOrder, TrackedOrderStatus
from intents.retention import history_prune
from tests.factories import ExchangeAccountFactory, IntentFactory, TrackedOrderFactory

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]

OLD, RECENT = timedelta(days=40), timedelta(days=5)


@pytest.fixture
def account():
    return ExchangeAccountFactory()


def intent(account, name, status, age, *, finished=True):
    row = IntentFactory(intent_id=name, strategy_key="mm:k", account=account, client_order_id=f"c-{name}", status=status)
    at = timezone.now() - age
    # created_at is auto_now_add: set the ages with an update, as they would be after that long
    Intent.objects.filter(pk=row.pk).update(created_at=at, finished_at=at if finished else None)
    return row.pk


def tracked(account, name, status, age):
    row = TrackedOrderFactory(client_order_id=f"t-{name}", strategy_key="mm:k", account=account, price=Decimal("100"),
                              amount=Decimal("1"), status=status)
    at = timezone.now() - age
    TrackedOrder.objects.filter(pk=row.pk).update(created_at=at, updated_at=at)
    return row


def test_prune_deletes_only_finished_intents_and_unfilled_closed_orders_past_the_cutoff(account, settings):
    # Given 30 days of retention, and intents and tracked orders of every kind, old and recent
    settings.STRATEGY_HISTORY_RETENTION_DAYS = 30
    old_done = intent(account, "old-done", IntentStatus.DONE, OLD)
    old_failed = intent(account, "old-failed", IntentStatus.FAILED, OLD)
    old_superseded = intent(account, "old-superseded", IntentStatus.SUPERSEDED, OLD)
    old_new = intent(account, "old-new", IntentStatus.NEW, OLD, finished=False)
    old_in_flight = intent(account, "old-in-flight", IntentStatus.IN_FLIGHT, OLD, finished=False)
    recent_done = intent(account, "recent-done", IntentStatus.DONE, RECENT)
    old_cancelled = tracked(account, "old-cancelled", TrackedOrderStatus.CANCELLED, OLD)
    old_lost = tracked(account, "old-lost", TrackedOrderStatus.LOST, OLD)
    old_open = tracked(account, "old-open", TrackedOrderStatus.OPEN, OLD)
    old_filled = tracked(account, "old-filled", TrackedOrderStatus.FILLED, OLD)
    old_cancelled_with_fill = tracked(account, "old-partly", TrackedOrderStatus.CANCELLED, OLD)
    for order in (old_filled, old_cancelled_with_fill):
        TrackedFill.objects.create(account=account, trade_id=f"tr-{order.pk}", symbol="BTC/USDT",
                                   tracked_order=order, strategy_key="mm:k", side="buy", price=Decimal("100"),
                                   amount=Decimal("0.5"), cost=Decimal("50"), traded_at_ms=1)
    recent_cancelled = tracked(account, "recent-cancelled", TrackedOrderStatus.CANCELLED, RECENT)

    # When the history is pruned (in ranges of 2 rows, to cross range boundaries)
    report = history_prune(batch_size=2)

    # Then the old finished intents and the old unfilled closed orders are gone, nothing else
    assert report.complete and report.intents_deleted == 3 and report.tracked_orders_deleted == 2
    assert set(Intent.objects.values_list("pk", flat=True)) == {old_new, old_in_flight, recent_done}
    assert not Intent.objects.filter(pk__in=[old_done, old_failed, old_superseded]).exists()
    assert set(TrackedOrder.objects.values_list("pk", flat=True)) == {
        old_open.pk, old_filled.pk, old_cancelled_with_fill.pk, recent_cancelled.pk}
    assert not TrackedOrder.objects.filter(pk__in=[old_cancelled.pk, old_lost.pk]).exists()
    assert TrackedFill.objects.count() == 2


def test_retention_zero_keeps_everything_and_the_command_reports(account, settings, capsys):
    # Given an old finished intent and retention off
    settings.STRATEGY_HISTORY_RETENTION_DAYS = 0
    intent(account, "old-done", IntentStatus.DONE, OLD)

    # When the task's prune runs, nothing is deleted
    assert history_prune().cutoff is None
    assert Intent.objects.count() == 1

    # And the command with an explicit retention deletes it and says so
    call_command("prune_history", "--days", "30", "--json")
    result = json.loads(capsys.readouterr().out)
    assert result["intents_deleted"] == 1 and result["tracked_orders_deleted"] == 0 and result["complete"]
    assert Intent.objects.count() == 0


def test_a_spent_time_budget_stops_the_run_and_the_next_goes_on(account, settings):
    # Given two old finished intents and no time left for a run
    settings.STRATEGY_HISTORY_RETENTION_DAYS = 30
    intent(account, "a", IntentStatus.DONE, OLD)
    intent(account, "b", IntentStatus.DONE, OLD)

    stopped = history_prune(max_seconds=-1)
    assert not stopped.complete and stopped.intents_deleted == 0

    # Then a run with time finishes the work
    done = history_prune()
    assert done.complete and done.intents_deleted == 2


def test_prune_history_is_routed_to_the_tick_queue_and_scheduled_by_the_setting(settings):
    from mmproject.celery import TICK_QUEUE, _beat_schedule, app

    settings.STRATEGY_HISTORY_PRUNE_INTERVAL_S = 900

    entry = _beat_schedule()["prune-history"]

    assert app.conf.task_routes["prune_history"] == {"queue": TICK_QUEUE}
    assert entry["task"] == "prune_history" and entry["schedule"] == timedelta(seconds=900)
    assert entry["options"]["expires"] == 900
