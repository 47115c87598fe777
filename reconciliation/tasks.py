"""Celery shell of reconciliation: the periodic ``reconcile`` run (beat, queue ``tick``)."""
from celery import shared_task

from .services import reconcile_run


@shared_task(name="reconcile", ignore_result=True)
def reconcile():
    run = reconcile_run(trigger="beat")
    return {"run_id": run.pk, "ok": run.ok, "drifts": run.drift_count}
