"""The tick coordinator: a database lease per period, then the components in order.

Components: market data, order tracking, strategies (strategy.cycle), then the intents' dispatch.
In ``worker`` mode the trackers and the dispatch are one message each, sent by name (the trackers'
message is fanned out on a tick worker into one task per market and one per exchange account) and
the strategies read the latest stored state, so a tick never waits on an exchange. In ``sync``
mode (the spec's legacy driver) trackers and intent execution run inline.
"""
from __future__ import annotations

import fcntl
import gc
import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from intents.dispatcher import intents_dispatch
from mmproject import jobs

from . import sql
from .cycle import strategies_run_due
from .metrics import tick_duration_buckets_complete, tick_duration_hits, tick_duration_observe
from .models import TICK_LEASE_NAME, TickLease
from .periods import period_start_ms, tick_period_ms
from .services import refill_mark_clear
from .selectors import tracker_targets
from .trackers import refresh_market_data, track_exchange_orders

logger = logging.getLogger(__name__)

# The advisory lock (PostgreSQL) that makes strategy cycles run one at a time across every process.
CYCLE_LOCK_KEY = 0x6D6D6379


@dataclass(frozen=True)
class TickOutcome:
    ran: bool
    slot: int
    duration_ms: int = 0
    sessions_run: int = 0
    intents_written: int = 0


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _acquire(now: datetime, slot: int) -> bool:
    # A crashed tick's lease lapses after a few periods, so ticks resume on their own.
    lease = timedelta(milliseconds=max(tick_period_ms() * 5, 5000))
    adapt = connection.ops.adapt_datetimefield_value
    for _ in range(2):
        # By hand: ~20-30% faster than the ORM's update (docs/decisions.md, "Figures behind the hot paths").
        with connection.cursor() as cur:
            cur.execute(sql.tick_acquire_sql(),
                        [_holder(), adapt(now + lease), slot, adapt(now), TICK_LEASE_NAME, slot, adapt(now)])
            taken = cur.rowcount
        if taken:
            return True
        # Not taken: held, or this slot already ran, or the row does not exist yet (the first tick).
        _, created = TickLease.objects.get_or_create(name=TICK_LEASE_NAME)
        if not created:
            break
    TickLease.objects.filter(name=TICK_LEASE_NAME).update(ticks_skipped=F("ticks_skipped") + 1)
    return False


_heap_frozen = False


def _freeze_heap_once() -> None:
    """After the first tick of a process, move everything it has loaded (Django, ccxt, the
    apps) out of the garbage collector's reach. A tick allocates many short-lived objects, so
    collections run during ticks; without this, each full one walks the whole heap of a process
    that has imported ccxt and stalls that tick (docs/decisions.md, "Figures behind the hot paths")."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()


def _release(duration_ms: int) -> None:
    if connection.vendor == "postgresql":
        # One statement: ~60% faster than the ORM's transaction (docs/decisions.md, "Figures behind the hot paths").
        _release_in_one_statement(duration_ms)
        return
    with transaction.atomic():
        released = TickLease.objects.filter(name=TICK_LEASE_NAME, holder=_holder()).update(
            lease_until=None, last_finished_at=timezone.now(), last_duration_ms=duration_ms,
            ticks_run=F("ticks_run") + 1, duration_ms_total=F("duration_ms_total") + duration_ms,
        )
        if released:
            tick_duration_observe(duration_ms)


def _release_in_one_statement(duration_ms: int) -> None:
    """``_release`` as one statement: the lease and the histogram buckets are updated together
    (the buckets only if this process held the lease), with no transaction to open and commit."""
    hits = tick_duration_hits(duration_ms)
    with connection.cursor() as cur:
        cur.execute(sql.tick_release_sql(), [timezone.now(), duration_ms, duration_ms, TICK_LEASE_NAME, _holder(), hits])
        released, bumped = cur.fetchone()
    if released and bumped < len(hits):
        tick_duration_buckets_complete(hits)


def tick_run(*, now: datetime | None = None) -> TickOutcome:
    """Run one tick if this period's slot is free; otherwise count it as skipped."""
    sync = settings.STRATEGY_INTENT_EXECUTION_DRIVER == "sync"
    with _collector_paused(not sync):
        return _tick(now or timezone.now(), sync)


@contextmanager
def _collector_paused(pause: bool):
    """No garbage collection inside a worker-mode tick: a tick's short-lived objects start
    young-generation collections that, once in a while, cascade into a full one and stall that
    tick (its p99; docs/decisions.md, "Figures behind the hot paths"). Nearly all of them are freed
    by reference counting anyway; the few cycles wait for the next collection, after the tick. A
    sync tick (seconds of exchange calls) collects as usual."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@contextmanager
def cycle_lock(*, wait: bool):
    """Strategy cycles one at a time, whoever runs them (a tick, or a refill run between ticks): two
    cycles at once could each see a level free and both fill it. Yields whether it was taken: with
    ``wait`` it always is (a tick waits the few milliseconds a refill run takes); without, it is not
    when another cycle runs (a refill run then leaves its sessions to the next tick). PostgreSQL: a
    session-level advisory lock, let go by a crashed process's connection closing; SQLite: a lock
    file in the var directory (the embedded default's processes share one machine)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)" if wait else "SELECT pg_try_advisory_lock(%s)", [CYCLE_LOCK_KEY])
            taken = True if wait else bool(cur.fetchone()[0])
        try:
            yield taken
        finally:
            if taken:
                with connection.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(%s)", [CYCLE_LOCK_KEY])
        return
    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
    with open(settings.VAR_DIR / "strategy-cycle.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def refill_run(*, now: datetime | None = None) -> TickOutcome:
    """Between ticks: run the sessions due now (woken because an order of theirs closed, so a level is
    free) at once rather than at the next tick, then dispatch their intents. Under the cycle lock, so it
    never runs beside a tick's cycle or another refill run; skipped when one runs (the tick's cycle, or
    the next tick, runs them). Its intents carry this instant, not a period slot, so they never meet a
    tick's intent ids."""
    now = now or timezone.now()
    slot = int(now.timestamp() * 1000)
    if slot % tick_period_ms() == 0:
        slot += 1  # never a period's start: that is a tick's slot
    started = time.perf_counter()
    refill_mark_clear()
    with cycle_lock(wait=False) as taken:
        if not taken:
            logger.info("event=refill_run_skipped reason=cycle_running")
            return TickOutcome(ran=False, slot=slot)
        summary = strategies_run_due(now=now, slot=slot)
    if summary.intents_written:
        if settings.STRATEGY_INTENT_EXECUTION_DRIVER == "sync":
            intents_dispatch(inline=True)
        else:
            jobs.send("dispatch_intents", expires=task_expiry())
    duration_ms = int((time.perf_counter() - started) * 1000)
    logger.info("event=refill_run duration_ms=%s sessions=%s intents=%s", duration_ms, summary.sessions_run,
                summary.intents_written)
    return TickOutcome(ran=True, slot=slot, duration_ms=duration_ms, sessions_run=summary.sessions_run,
                       intents_written=summary.intents_written)


def _tick(now: datetime, sync: bool) -> TickOutcome:
    slot = period_start_ms(now)
    if not _acquire(now, slot):
        logger.info("event=tick_skipped slot=%s", slot)
        return TickOutcome(ran=False, slot=slot)
    started = time.perf_counter()
    try:
        if sync:
            markets, accounts, last_price = tracker_targets()
            run_trackers(markets, accounts, inline=True, last_price=last_price)
        else:
            # One message: a tick worker reads which markets and accounts to track and fans it out,
            # off the tick's path, where a publish per market and account would grow with them.
            jobs.send("run_trackers", expires=task_expiry())
        with cycle_lock(wait=True):
            summary = strategies_run_due(now=now, slot=slot)
        if sync:
            intents_dispatch(inline=True)
        else:
            # An intents worker claims within the limits and enqueues the executions, so the tick's
            # own path ends when its intents are committed.
            jobs.send("dispatch_intents", expires=task_expiry())
    finally:
        duration_ms = int((time.perf_counter() - started) * 1000)
        _release(duration_ms)
    logger.info("event=tick slot=%s duration_ms=%s sessions=%s intents=%s", slot, duration_ms,
                summary.sessions_run, summary.intents_written)
    _freeze_heap_once()
    return TickOutcome(ran=True, slot=slot, duration_ms=duration_ms, sessions_run=summary.sessions_run,
                       intents_written=summary.intents_written)


def run_trackers(markets, accounts, *, inline: bool, last_price=frozenset()) -> None:
    """Refresh each (account, symbol) market's data (with its last trade price for those in
    ``last_price``) and track each account's orders: here (sync driver) or as one task each on the
    tick queue (worker driver), sent by name."""
    for account_id, symbol in markets:
        with_last = (account_id, symbol) in last_price
        if inline:
            refresh_market_data(account_id=account_id, symbol=symbol, last_price=with_last)
        else:
            jobs.send("refresh_market_data", args=[account_id, symbol, with_last], expires=task_expiry())
    for account_id in accounts:
        if inline:
            track_exchange_orders(account_id=account_id)
        else:
            jobs.send("track_exchange_orders", args=[account_id], expires=task_expiry())


def task_expiry() -> float:
    """A tracker or dispatch message older than two ticks is superseded by a newer one: let it expire."""
    return max(settings.STRATEGY_TICK_SIZE_MS / 1000 * 2, 1.0)
