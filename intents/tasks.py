"""Celery shells of the intents queue: execute one claimed intent, dispatch more."""
from celery import shared_task

from .dispatcher import intents_dispatch
from .executor import intent_execute


@shared_task(name="execute_intent", ignore_result=True, acks_late=True, soft_time_limit=20, time_limit=25)
def execute_intent(intent_pk: int, token: str):
    intent_execute(intent_pk=intent_pk, token=token)
    # A slot was freed: fill it now rather than at the next tick.
    intents_dispatch(inline=False)


@shared_task(name="dispatch_intents", ignore_result=True)
def dispatch_intents():
    intents_dispatch(inline=False)
