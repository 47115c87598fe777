"""The one Celery app: reads Django settings (CELERY_ namespace), routes, beat schedule."""
import os
from datetime import timedelta

from celery import Celery
from celery.signals import task_postrun, task_prerun
from kombu import Queue
from kombu.transport import TRANSPORT_ALIASES

# filesystem:// (the embedded default) writes each message whole before a consumer can see it
# (mmproject/broker_fs.py). Set before any connection exists: every process imports this module.
TRANSPORT_ALIASES["filesystem"] = "mmproject.broker_fs:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmproject.settings")

app = Celery("mmproject")
app.config_from_object("django.conf:settings", namespace="CELERY")

MARKET_MAKING_QUEUE = "market-making"
INTENTS_QUEUE = "intents"
TICK_QUEUE = "tick"

LIFECYCLE_JOBS = (
    "process_market_making_snapshots",
    "check_payment_complete",
    "withdraw_to_exchange",
    "monitor_mixin_withdrawal",
    "join_campaign",
    "start_mm",
    "stop_mm",
    "withdraw_to_user",
)

app.conf.task_queues = (Queue(MARKET_MAKING_QUEUE), Queue(INTENTS_QUEUE), Queue(TICK_QUEUE))
app.conf.task_default_queue = MARKET_MAKING_QUEUE
app.conf.task_routes = {
    **{name: {"queue": MARKET_MAKING_QUEUE} for name in LIFECYCLE_JOBS},
    "resume_market_making": {"queue": MARKET_MAKING_QUEUE},
    "poll_mixin_snapshots": {"queue": MARKET_MAKING_QUEUE},
    "execute_intent": {"queue": INTENTS_QUEUE},
    "dispatch_intents": {"queue": INTENTS_QUEUE},
    "strategy_tick": {"queue": TICK_QUEUE},
    "strategy_refill": {"queue": TICK_QUEUE},
    "run_trackers": {"queue": TICK_QUEUE},
    "refresh_market_data": {"queue": TICK_QUEUE},
    "track_exchange_orders": {"queue": TICK_QUEUE},
    "reconcile": {"queue": TICK_QUEUE},
    "prune_history": {"queue": TICK_QUEUE},
}


def _beat_schedule():
    from django.conf import settings

    tick = timedelta(milliseconds=settings.STRATEGY_TICK_SIZE_MS)
    schedule = {
        # A tick that cannot start within one period is useless: let it expire.
        "strategy-tick": {
            "task": "strategy_tick",
            "schedule": tick,
            "options": {"expires": max(tick.total_seconds(), 1.0)},
        },
        "reconcile": {
            "task": "reconcile",
            "schedule": timedelta(seconds=settings.RECONCILE_INTERVAL_S),
            "options": {"expires": float(settings.RECONCILE_INTERVAL_S)},
        },
        # The lifecycle sweeper: one at a time across beats (its lease, orders.services.resume).
        "lifecycle-sweep": {
            "task": "resume_market_making",
            "schedule": timedelta(seconds=settings.MM_SWEEP_INTERVAL_S),
            "options": {"expires": float(settings.MM_SWEEP_INTERVAL_S)},
        },
        "prune-history": {
            "task": "prune_history",
            "schedule": timedelta(seconds=settings.STRATEGY_HISTORY_PRUNE_INTERVAL_S),
            "options": {"expires": float(settings.STRATEGY_HISTORY_PRUNE_INTERVAL_S)},
        },
    }
    if settings.MM_PAYMENT_PROVIDER == "mixin":
        # Payments arrive as Mixin snapshots: read them every few seconds (one poller at a time: its lease).
        schedule["mixin-snapshots"] = {
            "task": "poll_mixin_snapshots",
            "schedule": timedelta(seconds=settings.MIXIN_POLL_INTERVAL_S),
            "options": {"expires": float(settings.MIXIN_POLL_INTERVAL_S)},
        }
    return schedule


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(sender=None, **kwargs):
    """Around each task, what Django does around each request: drop a connection that is broken,
    left in error or older than CONN_MAX_AGE (the fix-up keeps them otherwise: CELERY_DB_REUSE_MAX)."""
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return  # run inside the caller (tests): its connection is the caller's
    from django.db import close_old_connections

    close_old_connections()


@app.on_after_configure.connect
def _configure_beat(sender, **kwargs):
    sender.conf.beat_schedule = _beat_schedule()
    # A process that only sends (a command, the web process) never finalizes the app: its first
    # send on a fresh var/ would fail because the filesystem broker's folders do not exist yet.
    _ensure_filesystem_broker_dirs()


def _ensure_filesystem_broker_dirs():
    from django.conf import settings

    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
        if folder:
            os.makedirs(folder, exist_ok=True)


app.autodiscover_tasks()


@app.on_after_finalize.connect
def _prepare_broker(sender, **kwargs):
    _ensure_filesystem_broker_dirs()
