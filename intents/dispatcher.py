"""The dispatcher: claim intents within the in-flight limits and hand them to executors."""
from __future__ import annotations

import logging

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
                intent_execute(intent_pk=claim.intent_pk, token=claim.token)
            else:
                execute_intent.apply_async(args=[claim.intent_pk, claim.token])
        dispatched += len(claims)
    if dispatched:
        logger.info("event=intents_dispatched count=%s inline=%s", dispatched, inline)
    return dispatched
