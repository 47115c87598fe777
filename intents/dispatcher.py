"""The dispatcher: claim intents within the in-flight limits and hand them to executors."""
from __future__ import annotations

import logging
import time

from django.conf import settings

from exchanges.models import ExchangeAccount
from mmproject import jobs

from .executor import intents_execute
from .gates import claim_intents, sync_slots
from .models import ACTIVE_INTENT_STATUSES, Intent

logger = logging.getLogger(__name__)

# In sync mode the tick drains the queue inline, but never forever.
SYNC_MAX_ROUNDS = 50


def intents_dispatch(*, inline: bool) -> int:
    """Claim what the limits allow; execute inline (sync driver) or enqueue on the intents queue."""
    # Every lane ends with a dispatch, so both reads stay small whatever the backlog: an EXISTS, not
    # a DISTINCT over the active intents, which reads all of them. Slot rows for every account: a
    # few rows each, and an account's first intent never waits for a dispatch that saw it.
    if not Intent.objects.filter(status__in=ACTIVE_INTENT_STATUSES).exists():
        return 0
    sync_slots(ExchangeAccount.objects.values_list("pk", flat=True))
    dispatched = 0
    for _ in range(SYNC_MAX_ROUNDS if inline else 1):
        claims = claim_intents(max_claims=settings.STRATEGY_INTENT_MAX_IN_FLIGHT)
        if not claims:
            break
        if inline:
            # One batch: its claims are renewed if the earlier executions keep the later ones waiting.
            intents_execute(claims)
        else:
            for claim in claims:
                jobs.send("execute_intent", args=[claim.intent_pk, claim.token])
        dispatched += len(claims)
    if dispatched:
        logger.info("event=intents_dispatched count=%s inline=%s", dispatched, inline)
    return dispatched


# A lane never runs longer than this many executions, whatever its time budget.
LANE_MAX_INTENTS = 200


def intents_lane(*, budget_s: float | None = None, batch: int | None = None) -> int:
    """Claim up to ``batch`` (STRATEGY_INTENT_LANE_BATCH) intents at a time and execute them in this
    process, until nothing is claimable or ``budget_s`` (STRATEGY_INTENT_LANE_S) is spent; return
    how many ran.

    An intents worker that finished its intent takes the next ones itself: a claim and a batch of
    executions (intents.executor: a few statements for the batch, not a dozen per intent), instead
    of a dispatch (a claim of every free slot), a broker message and a task delivery per intent.
    Claims go through the same gates, so every in-flight limit holds; a batch's intents are sent one
    after another, so it never has more than one request out at a time.
    """
    budget_s = settings.STRATEGY_INTENT_LANE_S if budget_s is None else budget_s
    batch = settings.STRATEGY_INTENT_LANE_BATCH if batch is None else batch
    if budget_s <= 0:
        return 0
    deadline = time.monotonic() + budget_s
    ran = 0
    while ran < LANE_MAX_INTENTS and time.monotonic() < deadline:
        claims = claim_intents(max_claims=max(1, min(batch, LANE_MAX_INTENTS - ran)))
        if not claims:
            break
        intents_execute(claims)
        ran += len(claims)
    return ran
