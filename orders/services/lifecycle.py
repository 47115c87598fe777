"""Campaign stage, start and stop: the end of the lifecycle, each step idempotent."""
from __future__ import annotations

import logging
import time

from django.db import transaction

from ledger.selectors import ref_fee_debts, ref_positions
from ledger.services import unlock_funds
from mmproject.jobs import enqueue_after_commit
from strategy.services import session_start, session_stop
from strategy.stop import session_stop_begin, session_wind_down

from ..errors import IllegalTransition
from ..models import ORDER_REF, CampaignParticipation, OrderState
from ..outcomes import Outcome
from .payout import payout_after_stop
from .transitions import apply_transition, order_lock

logger = logging.getLogger(__name__)

STOP_POLL_S = 0.5


def campaign_join(*, order_id, by: str = "task:join_campaign") -> str:
    """Record the order's (local) campaign participation once and queue ``start_mm``."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state == OrderState.CAMPAIGN_JOINED:
            enqueue_after_commit("start_mm", str(order.order_id))
            return Outcome.NOOP
        if order.state != OrderState.WITHDRAWAL_CONFIRMED:
            return Outcome.NOOP
        CampaignParticipation.objects.get_or_create(order=order)
        apply_transition(order, "join_campaign", by=by, reason="local campaign participation recorded")
        enqueue_after_commit("start_mm", str(order.order_id))
    return Outcome.JOINED


def order_start(*, order_id, by: str = "task:start_mm") -> str:
    """Register the strategy session and set ``running``."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state == OrderState.RUNNING:
            session_start(order_id=order.order_id)
            return Outcome.NOOP
        if order.state != OrderState.CAMPAIGN_JOINED:
            return Outcome.NOOP
        apply_transition(order, "start", by=by, reason="strategy session registered")
        session_start(order_id=order.order_id)
    return Outcome.RUNNING


# Stopped already (its payout may have begun or ended): a second stop does nothing.
STOPPED_OR_PAYING = (OrderState.STOPPED, OrderState.PAYING_OUT, OrderState.PAID_OUT)


def _stop_begin(order_id):
    """Step 1 of a stop, in the caller's transaction: the order locked, its session taking no new order. None when
    it is stopped already; IllegalTransition when it is neither running nor waiting to start."""
    order = order_lock(order_id)
    if order.state in STOPPED_OR_PAYING:
        return None
    if order.state not in (OrderState.RUNNING, OrderState.CAMPAIGN_JOINED):
        raise IllegalTransition(f"order {order.order_id} is {order.state}; 'stop' is not allowed from that state "
                                "(only a running order, or one waiting to start)", order_id=str(order.order_id),
                                state=order.state, transition="stop")
    session_stop_begin(order_id=order.order_id)
    return order


def order_stop_request(*, order_id, by: str, reason: str = "stop requested") -> str:
    """Record a stop and queue ``stop_mm`` to carry it out: ``stopping`` (queued), or ``noop`` (stopped already).

    The session stops taking orders in this transaction (``session_stop_begin``, as step 1 of ``order_stop``)
    and the job is queued after commit. So a stop whose message the broker loses (a worker killed after it
    reserved the job, a send while the broker is down) is not forgotten: the sweeper starts ``stop_mm`` for
    every session left ``stopping``. Raises IllegalTransition as ``order_stop`` does."""
    with transaction.atomic():
        order = _stop_begin(order_id)
        if order is None:
            return Outcome.NOOP
        enqueue_after_commit("stop_mm", str(order.order_id), reason)
    logger.info("event=order_stop_requested order_id=%s by=%s", order_id, by)
    return Outcome.STOPPING


def order_stop(*, order_id, by: str, reason: str = "stop requested", wait_s: float = 0) -> str:
    """Stop an order so that nothing is left open: ``stopped``, ``noop`` or ``stopping``.

    1. Under the order lock: the session stops taking orders (``stopping``), unsent creates are
       superseded. 2. Outside any transaction: every open order of the session is cancelled on
       the exchange and the exchange is asked again until none is left; the last fills are
       settled. 3. Under the order lock again: the funds the order really holds are unlocked and
       the order becomes ``stopped``. When the exchange is not clear within ``wait_s`` seconds
       the result is ``stopping``: call again (the task retries with backoff). A second stop, or
       one racing a tick, does nothing twice: step 3 runs once, under the lock.
    Raises IllegalTransition when the order is neither running nor waiting to start.
    """
    with transaction.atomic():
        order = _stop_begin(order_id)
        if order is None:
            return Outcome.NOOP
    if order.exchange_account_id:
        deadline = time.monotonic() + wait_s
        while True:
            pass_ = session_wind_down(order_id=order.order_id, account_id=order.exchange_account_id,
                                      symbol=order.pair.symbol)
            if pass_.clear:
                break
            if time.monotonic() >= deadline:
                logger.info("event=order_stopping order_id=%s open_left=%s in_flight=%s errors=%s", order.order_id,
                            pass_.open_left, pass_.in_flight, pass_.errors)
                return Outcome.STOPPING
            time.sleep(STOP_POLL_S)
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state in STOPPED_OR_PAYING:
            return Outcome.NOOP
        apply_transition(order, "stop", by=by, reason=reason)
        session_stop(order_id=order.order_id)
        positions_unlock(order)
        payout_after_stop(order, by=by)
    return Outcome.STOPPED


def positions_unlock(order) -> None:
    """Unlock what the order really holds in each asset: its locks, plus fills, minus fees.

    Fees it owes in a third currency (e.g. BNB) are not deducted from what is unlocked: the order
    never held that asset and converting needs a price nobody agreed to. The debt stays on the
    user's fee_debt account under the order's ref and is logged here for the operator
    (docs/lifecycle.md, "Fees in a third currency at stop").
    """
    positions = ref_positions(ref_type=ORDER_REF, ref_ids=[order.order_id])
    for (_, asset_id), amount in sorted(positions.items()):
        if amount > 0:
            unlock_funds(user_id=order.user_id, asset_id=asset_id, amount=amount,
                         idempotency_key=f"mm-unlock:{order.order_id}:{asset_id}",
                         ref_type=ORDER_REF, ref_id=str(order.order_id))
    for (_, asset_id), owed in sorted(ref_fee_debts(ref_type=ORDER_REF, ref_ids=[order.order_id]).items()):
        logger.warning("event=order_fee_debt order_id=%s user_id=%s asset_id=%s owed=%s: fees charged in an asset "
                       "the order does not hold; its base and quote were unlocked in full, the debt stays recorded",
                       order.order_id, order.user_id, asset_id, owed.copy_negate())
