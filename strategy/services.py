"""Strategy session writes: start and stop, both idempotent."""
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from intents.ids import order_id_of, strategy_key
from mmproject import jobs

from .models import RefillMark, SessionStatus, StrategySession
from .order_rows import MarketMakingOrder, order_cadence_s

logger = logging.getLogger(__name__)


def session_start(*, order_id) -> StrategySession:
    """Register (or re-register) the strategy session of the order; due at once."""
    now = timezone.now()
    with transaction.atomic():
        order = MarketMakingOrder.objects.get(order_id=order_id)
        session = StrategySession.objects.select_for_update().filter(order=order).first()
        if session is None:
            session = StrategySession.objects.create(
                order=order, status=SessionStatus.RUNNING, cadence_s=order_cadence_s(order),
                next_run_at=now, started_at=now,
            )
            logger.info("event=session_started order_id=%s cadence_s=%s", order_id, session.cadence_s)
        elif session.status != SessionStatus.RUNNING:
            session.status = SessionStatus.RUNNING
            session.cadence_s = order_cadence_s(order)
            session.next_run_at = now
            session.refreshed_at = None
            session.started_at = now
            session.stopped_at = None
            session.save()
            logger.info("event=session_restarted order_id=%s", order_id)
    return session


def session_stop(*, order_id) -> StrategySession | None:
    """Stop the order's session; a session already stopped, or none at all, is left as it is."""
    with transaction.atomic():
        session = StrategySession.objects.select_for_update().filter(order__order_id=order_id).first()
        if session is None or session.status == SessionStatus.STOPPED:
            return session
        session.status = SessionStatus.STOPPED
        session.stopped_at = timezone.now()
        session.next_run_at = None
        session.save(update_fields=["status", "stopped_at", "next_run_at"])
        logger.info("event=session_stopped order_id=%s", order_id)
    return session


def session_set_cadence(*, order_id, cadence_s: int) -> bool:
    """The order's session runs every ``cadence_s`` seconds from its next run on (the cycle schedules
    each run ``cadence_s`` after it); ``next_run_at`` is left as it is. False when it has no session."""
    updated = StrategySession.objects.filter(order__order_id=order_id).update(cadence_s=cadence_s)
    if updated:
        logger.info("event=session_cadence_set order_id=%s cadence_s=%s", order_id, cadence_s)
    return bool(updated)


def sessions_wake(keys, *, at=None) -> int:
    """Run the running sessions of strategy ``keys`` now (orders of theirs closed: a slot is free, or
    their parameters changed): due at once, and, with the worker driver, a refill run sent once this
    commits (``strategy.tick.refill_run``), so they run before the next tick. A session due earlier
    keeps its time. Returns how many were moved."""
    at = at or timezone.now()
    order_ids = [order_id_of(key) for key in keys]
    moved = StrategySession.objects.filter(status=SessionStatus.RUNNING, order__order_id__in=order_ids,
                                           next_run_at__gt=at).update(next_run_at=at)
    if moved and settings.STRATEGY_INTENT_EXECUTION_DRIVER == "worker" and settings.STRATEGY_REFILL_AT_ONCE:
        transaction.on_commit(_refill_request)
    return moved


def sessions_await_market_data(keys) -> int:
    """The running sessions of strategy ``keys`` run again once their market's book, read from now on, is
    stored (intents.hooks.quotes_stale: a create of theirs met a market that had moved past the book they
    priced from; running them at once would price from the same book). Their own schedule stands: a
    refresh due meanwhile runs as usual."""
    order_ids = [order_id_of(key) for key in keys]
    return StrategySession.objects.filter(status=SessionStatus.RUNNING, order__order_id__in=order_ids).update(
        market_data_after=timezone.now())


def sessions_wake_on_market_data(*, account_id: int, symbol: str, read_from) -> int:
    """The market data tracker stored the book of (``account_id``, ``symbol``) it began reading at
    ``read_from``: the running sessions on that market waiting for a book that new run now (sessions_wake).
    One read when none waits (a partial index holds only the waiting ones)."""
    waiting = StrategySession.objects.filter(status=SessionStatus.RUNNING, market_data_after__lte=read_from,
                                             order__exchange_account_id=account_id, order__pair__symbol=symbol)
    pks = dict(waiting.values_list("pk", "order__order_id"))
    if not pks:
        return 0
    StrategySession.objects.filter(pk__in=pks, market_data_after__lte=read_from).update(market_data_after=None)
    return sessions_wake([strategy_key(order_id) for order_id in pks.values()])


def _refill_request() -> None:
    """Send one refill run unless one is waiting already: a burst of closed orders (a fast market, a
    batch of cancels) asks for one run, not one each, so refill runs never crowd out the trackers on
    the tick queue. The waiting mark is RefillMark's one row (``requested_at``); the run clears it
    before it reads the due sessions. A mark older than two ticks (its message expired or was lost)
    no longer counts."""
    now = timezone.now()
    tick_s = max(settings.STRATEGY_TICK_SIZE_MS / 1000, 1.0)
    stale = now - timedelta(seconds=2 * tick_s)
    marked = RefillMark.objects.filter(pk=1).filter(
        Q(requested_at__isnull=True) | Q(requested_at__lt=stale)).update(requested_at=now)
    if not marked:
        _, created = RefillMark.objects.get_or_create(pk=1, defaults={"requested_at": now})
        if not created:
            return  # a refill run is waiting
    # Outdated once a tick has run the sessions: expires after one tick.
    jobs.send("strategy_refill", expires=tick_s)


def refill_mark_clear() -> None:
    """A refill run starts: later wakes ask for another one."""
    RefillMark.objects.filter(pk=1).update(requested_at=None)


def sessions_sample_quotes(*, account_id: int, on_book) -> None:
    """One two-sided-uptime sample of every running session on the account: ``on_book`` lists (strategy
    key, side) of the orders on the book now. Two UPDATEs, whatever the number of sessions."""
    sides: dict[str, set[str]] = {}
    for key, side in on_book:
        sides.setdefault(key, set()).add(side)
    both = [order_id_of(key) for key, seen in sides.items() if len(seen) == 2]
    running = StrategySession.objects.filter(status=SessionStatus.RUNNING, order__exchange_account_id=account_id)
    running.update(quote_samples=F("quote_samples") + 1)
    if both:
        running.filter(order__order_id__in=both).update(two_sided_samples=F("two_sided_samples") + 1)
