"""The dispatcher: claim intents within the in-flight limits and hand them to executors."""
from __future__ import annotations

import logging
import time

from django.conf import settings

from .gates import claim_intents, sync_slots
from .models import ACTIVE_INTENT_STATUSES, Intent

logger = logging.getLogger(__name__)

# In sync mode the tick drains the queue inline, but never forever.
SYNC_MAX_ROUNDS = 50


def intents_dispatch(*, inline: bool) -> int:
    """Claim what the limits allow; execute inline (sync driver) or enqueue on the intents queue."""
    from .executor import intent_execute
    from .tasks import execute_intent

    # DISTINCT: every execution dispatches, and a backlog of thousands of intents is one row per account.
    accounts = set(Intent.objects.filter(status__in=ACTIVE_INTENT_STATUSES).order_by()
                   .values_list("account_id", flat=True).distinct())
    if not accounts:
        return 0
    sync_slots(accounts)
    dispatched = 0
    for _ in range(SYNC_MAX_ROUNDS if inline else 1):
        claims = claim_intents(max_claims=settings.STRATEGY_INTENT_MAX_IN_FLIGHT)
        if not claims:
            break
        for claim in claims:
            if inline:
                # Not fresh: the later claims of the batch waited for the earlier executions.
                intent_execute(intent_pk=claim.intent_pk, token=claim.token)
            else:
                execute_intent.apply_async(args=[claim.intent_pk, claim.token])
        dispatched += len(claims)
    if dispatched:
        logger.info("event=intents_dispatched count=%s inline=%s", dispatched, inline)
    return dispatched


# A lane never runs longer than this many executions, whatever its time budget.
LANE_MAX_INTENTS = 200


def intents_lane(*, budget_s: float | None = None) -> int:
    """Claim one intent at a time and execute it in this process, until nothing is claimable or
    ``budget_s`` (STRATEGY_INTENT_LANE_S) is spent; return how many ran.

    An intents worker that finished its intent takes the next one itself: a claim and an
    execution, instead of a dispatch (a claim of every free slot), a broker message and a task
    delivery per intent. Claims go through the same gates, so every in-flight limit holds.
    """
    from .executor import intent_execute

    budget_s = settings.STRATEGY_INTENT_LANE_S if budget_s is None else budget_s
    if budget_s <= 0:
        return 0
    deadline = time.monotonic() + budget_s
    ran = 0
    while ran < LANE_MAX_INTENTS and time.monotonic() < deadline:
        claims = claim_intents(max_claims=1)
        if not claims:
            break
        intent_execute(intent_pk=claims[0].intent_pk, token=claims[0].token, fresh=True)
        ran += 1
    return ran
