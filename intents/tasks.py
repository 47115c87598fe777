"""Celery shells of the intents queue (execute one claimed intent, dispatch more) and of the
history retention (``prune_history``: beat, queue ``tick``)."""
import math

from celery import shared_task
from django.conf import settings

from mmproject.sql import prepared_statements

from .dispatcher import intents_dispatch, intents_lane
from .executor import intent_execute
from .retention import history_prune


def execution_time_limits() -> tuple[int, int]:
    """Soft and hard time limits of ``execute_intent``: its own intent, then a lane of
    STRATEGY_INTENT_LANE_S whose last batch (STRATEGY_INTENT_LANE_BATCH intents) may start just
    before the lane ends; each intent at most two exchange calls (a create or cancel and a lookup
    after an ambiguous answer) of up to EXCHANGE_TIMEOUT_MS; 5 s to spare. A limit below that would
    stop a batch during an exchange outage, leaving its last intents to wait for their leases."""
    calls = 2 * (1 + settings.STRATEGY_INTENT_LANE_BATCH)
    soft = math.ceil(settings.STRATEGY_INTENT_LANE_S + calls * settings.EXCHANGE_TIMEOUT_MS / 1000 + 5)
    return soft, soft + 5


_SOFT_LIMIT_S, _HARD_LIMIT_S = execution_time_limits()


@shared_task(name="execute_intent", ignore_result=True, soft_time_limit=_SOFT_LIMIT_S,
             time_limit=_HARD_LIMIT_S)
def execute_intent(intent_pk: int, token: str):
    # The claim, batch and release statements repeat for every intent: planned once per connection.
    with prepared_statements():
        intent_execute(intent_pk=intent_pk, token=token)
        # Go on with what is claimable next in this process, then fill every other free slot.
        intents_lane()
        intents_dispatch(inline=False)


@shared_task(name="dispatch_intents", ignore_result=True)
def dispatch_intents():
    with prepared_statements():
        intents_dispatch(inline=False)


@shared_task(name="prune_history", ignore_result=True)
def prune_history():
    report = history_prune()
    return {"intents": report.intents_deleted, "tracked_orders": report.tracked_orders_deleted,
            "complete": report.complete}
