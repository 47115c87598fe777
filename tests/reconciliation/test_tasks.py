"""The periodic reconcile task: routed to the tick queue, scheduled every RECONCILE_INTERVAL_S, a thin shell."""
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from intents.models import IntentStatus
from mmproject.celery import TICK_QUEUE, _beat_schedule, app
from reconciliation.models import ReconciliationRun
from reconciliation.selectors import reconciliation_status
from reconciliation.tasks import reconcile
from tests.factories import IntentFactory

pytestmark = [pytest.mark.embedded]


def test_reconcile_is_routed_to_the_tick_queue_and_scheduled_by_the_setting(settings):
    settings.RECONCILE_INTERVAL_S = 45

    entry = _beat_schedule()["reconcile"]

    assert app.conf.task_routes["reconcile"] == {"queue": TICK_QUEUE}
    assert entry["task"] == "reconcile" and entry["schedule"] == timedelta(seconds=45)
    assert entry["options"]["expires"] == 45


@pytest.mark.django_db
def test_reconcile_task_stores_a_run_with_its_drifts():
    IntentFactory(cancel=True, intent_id="mm:t:stuck", status=IntentStatus.IN_FLIGHT,
                  lease_until=timezone.now() - timedelta(minutes=5))

    result = reconcile.apply().get()

    run = ReconciliationRun.objects.get(pk=result["run_id"])
    assert (run.trigger, run.ok, run.drift_count) == ("beat", False, 1) == ("beat", result["ok"], result["drifts"])
    assert run.drifts.get().kind == "stuck_intent"
    # and the status a metrics endpoint reads names it
    status = reconciliation_status()
    assert (status["run_id"], status["ok"]) == (run.pk, False)
    assert status["drifts"] == {"tracked_not_open": 0, "untracked_open": 0, "balance_changed": 0,
                                "stuck_intent": 1, "cancelled_externally": 0, "unreachable": 0}


@pytest.mark.slow
def test_a_worker_on_the_tick_queue_runs_the_periodic_reconcile(transactional_db, celery_worker):
    # Given a stuck intent and a worker consuming only the tick queue
    IntentFactory(cancel=True, intent_id="mm:w:stuck", status=IntentStatus.IN_FLIGHT,
                  lease_until=timezone.now() - timedelta(minutes=5))
    celery_worker(queues=(TICK_QUEUE,))

    # When beat's message is sent (routed by name, as beat sends it)
    reconcile.apply_async(expires=60)

    # Then the worker stores the run with the drift
    deadline = time.monotonic() + 60
    while not ReconciliationRun.objects.filter(trigger="beat", finished_at__isnull=False).exists():
        assert time.monotonic() < deadline, "the tick worker did not run reconcile within 60 s"
        time.sleep(0.2)
    run = ReconciliationRun.objects.get(trigger="beat")
    assert (run.ok, run.drift_count, run.drifts.get().intent_id) == (False, 1, "mm:w:stuck")
