"""Celery shells of the intents queue (execute one claimed intent, dispatch more) and of the
history retention (``prune_history``: beat, queue ``tick``)."""
from celery import shared_task

from .dispatcher import intents_dispatch, intents_lane
from .executor import intent_execute


# The time limits leave room for one intent (exchange calls of up to EXCHANGE_TIMEOUT_MS each,
# a lookup after an ambiguous answer) after a lane of STRATEGY_INTENT_LANE_S.
@shared_task(name="execute_intent", ignore_result=True, acks_late=True, soft_time_limit=45, time_limit=50)
def execute_intent(intent_pk: int, token: str):
    intent_execute(intent_pk=intent_pk, token=token)
    # Go on with what is claimable next in this process, then fill every other free slot.
    intents_lane()
    intents_dispatch(inline=False)


@shared_task(name="dispatch_intents", ignore_result=True)
def dispatch_intents():
    intents_dispatch(inline=False)


@shared_task(name="prune_history", ignore_result=True)
def prune_history():
    from .retention import history_prune

    report = history_prune()
    return {"intents": report.intents_deleted, "tracked_orders": report.tracked_orders_deleted,
            "complete": report.complete}
