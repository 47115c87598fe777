"""Tick latency of the trading runtime vs the number of sessions, ``worker`` vs ``sync`` driver.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mm .venv/bin/python bench/tick.py   (or: make bench-tick)

What one tick costs from its start to its intents committed: the wall time of
``strategy.tick.tick_run`` (what the ``strategy_tick`` task runs), measured in this process,
and the CPU time this process spent in it (the part that does not depend on the machine's load;
PostgreSQL's own work is in the wall time only).

Set-up: its own database (``mm_bench_rt``, dropped and re-created), ``manage.py
exchange_simulator`` in its own process on a free loopback port, 10 exchange accounts (each
its own simulator account with 50 ms latency on every signed request), N running sessions of
2 layers spread over them (4 orders a session), the Redis broker of CELERY_BROKER_URL (default
redis://127.0.0.1:6379/8; the tick and intents queues are purged at the start and the end).

Scenarios, for each N:
- ``all requote``: before each tick every session is made due and the price moves by 1% (the
  spread is 0.2%), so every ladder is off: each session replaces its 4 orders.
- ``10% requote``: every session is quoted once, then only a tenth of them (a rotating tenth)
  is due per tick; the price they see has moved since their last run.
Drivers:
- ``worker``: trackers are only enqueued (one ``run_trackers`` message) and the strategies
  read the stored market data, which the benchmark moves itself; the tick ends with one
  ``dispatch_intents`` message on the intents queue, which no worker consumes here, so the
  intents stay unsent (a later tick supersedes them). A tick therefore writes only intents.
- ``sync`` (the legacy driver): trackers and intent execution run inline against the
  simulator; the benchmark moves the simulator's price. With 50 ms per exchange request this
  takes seconds per tick, so ``sync`` is measured at 10 and 100 sessions only.
The first two ticks of a scenario (initial quotes) are warm-up and not counted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

LATENCY_MS = 50
ACCOUNTS = 10
MOVE = Decimal("300")  # 1% of 30000; the ladder's spread is 0.2%
GOALS_MS = {"all": (200, 100), "tenth": (50, None)}  # p99 goal, stretch (worker, 1,000 sessions)
RUNTIME_TABLES = ("intents_intentslot", "intents_intent", "intents_trackedorder", "strategy_strategysession",
                  "strategy_marketdata", "strategy_ticklease", "ledger_balance")


def reset_runtime_tables() -> None:
    from django.db import connection

    # The orders of earlier scenarios stay (with their history); without sessions nothing reads them.
    with connection.cursor() as cur:
        cur.execute(f"TRUNCATE {', '.join(RUNTIME_TABLES)} RESTART IDENTITY CASCADE")


def run_scenario(*, driver: str, sessions: int, requote: str, ticks: int, base_url: str, tag: str) -> dict:
    from django.conf import settings
    from django.utils import timezone

    from exchanges.clients import exchange_clients_clear
    from exchanges.simulator.services import simulator_move_to, simulator_set_faults
    from intents.models import Intent
    from strategy.models import StrategySession
    from strategy.tick import tick_run

    reset_runtime_tables()
    exchange_clients_clear()
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = driver
    accounts = c.make_accounts(base_url, ACCOUNTS, prefix=tag)
    for i in range(ACCOUNTS):
        simulator_set_faults(account_label=f"{tag}-sim-{i}", latency_ms=LATENCY_MS)
    c.make_sessions(accounts, sessions, layers=2, cadence_s=3600)
    simulator_move_to(c.SYMBOL, c.START_PRICE)
    c.store_market_data(accounts, c.START_PRICE)
    c.analyze()

    ids = list(StrategySession.objects.values_list("id", flat=True))
    tenths = [[pk for pk in ids if pk % 10 == k] for k in range(10)]
    durations: list[float] = []
    cpu: list[float] = []
    intents = 0
    warm = 2
    for t in range(warm + ticks):
        if requote == "all" or t < warm:
            price = c.START_PRICE + (MOVE if t % 2 else 0)
            StrategySession.objects.update(next_run_at=timezone.now())
        else:
            # A tenth of the sessions is due; each sees a price 1% away from its previous run.
            k = t - warm
            price = c.START_PRICE + (MOVE if (k // 10) % 2 == 0 else 0)
            StrategySession.objects.update(next_run_at=timezone.now() + timedelta(hours=1))
            StrategySession.objects.filter(id__in=tenths[k % 10]).update(next_run_at=timezone.now())
        if driver == "worker":
            c.store_market_data(accounts, price)
        else:
            simulator_move_to(c.SYMBOL, price)
        _next_slot()
        started, cpu_started = time.perf_counter(), time.process_time()
        outcome = tick_run()
        elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        if not outcome.ran:
            raise RuntimeError("the tick did not take its lease")
        if driver == "worker":
            _exchange_accepts_everything()
        if t >= warm:
            durations.append(elapsed)
            cpu.append(cpu_s)
            intents += outcome.intents_written
    return {"driver": driver, "sessions": sessions, "requote": requote, "ticks": len(durations),
            "p50_ms": c.percentile(durations, 0.50) * 1000, "p99_ms": c.percentile(durations, 0.99) * 1000,
            "max_ms": max(durations) * 1000, "cpu_p50_ms": c.percentile(cpu, 0.50) * 1000,
            "mean_ms": sum(durations) / len(durations) * 1000,
            "intents_per_tick": intents / len(durations), "intents_total": Intent.objects.count()}


def _exchange_accepts_everything() -> None:
    """What the executor and the trackers would record if the exchange took every intent at once (not
    timed): each create is an open order, each cancel done. Without it the intents stay unsent and the
    next tick has nothing to replace (a session never requotes over its own creates in flight), so the
    tick would plan its ladders and write nothing."""
    from django.db import connection
    from django.utils import timezone

    with connection.cursor() as cur:
        cur.execute("UPDATE intents_intent SET status = 'done', finished_at = %s WHERE status IN ('new', 'in_flight')",
                    [timezone.now()])
        cur.execute("UPDATE intents_trackedorder SET status = 'open' WHERE status = 'pending_create'")
        cur.execute("UPDATE intents_trackedorder SET status = 'cancelled' WHERE status = 'pending_cancel'")


def _next_slot() -> None:
    """Wait for the next tick period so the tick takes a fresh slot (period = STRATEGY_TICK_SIZE_MS)."""
    from django.conf import settings

    period = settings.STRATEGY_TICK_SIZE_MS / 1000
    time.sleep(period - (time.time() % period) + 0.001)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--sync-sessions", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--ticks", type=int, default=30, help="measured ticks per worker scenario")
    parser.add_argument("--sync-ticks", type=int, default=3, help="measured ticks per sync scenario")
    parser.add_argument("--requote", nargs="+", choices=["all", "tenth"], default=["all", "tenth"])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")
    args = parser.parse_args()

    c.bootstrap(settings_overrides={"STRATEGY_TICK_SIZE_MS": "20", "STRATEGY_INTENT_MAX_IN_FLIGHT": "8",
                                    "STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE": "1"})
    c.purge_queues("tick", "intents")
    sim, base_url = c.start_simulator()
    load_before = c.load_text()
    results = []
    try:
        for n in args.sessions:
            for requote in args.requote:
                plan = [("worker", args.ticks)]
                if n in args.sync_sessions:
                    plan.append(("sync", args.sync_ticks))
                for driver, ticks in plan:
                    tag = f"b{driver[0]}{n}{requote[0]}"
                    result = run_scenario(driver=driver, sessions=n, requote=requote, ticks=ticks,
                                          base_url=base_url, tag=tag)
                    results.append(result)
                    print(f"  {driver:6} sessions={n:5} requote={requote:5} ticks={result['ticks']:3} "
                          f"p50={result['p50_ms']:.1f} ms p99={result['p99_ms']:.1f} ms "
                          f"tick process CPU p50={result['cpu_p50_ms']:.1f} ms "
                          f"intents/tick={result['intents_per_tick']:.0f}  (load {c.load_text()})", flush=True)
    finally:
        c.stop_process(sim)
        c.purge_queues("tick", "intents")
    load_after = c.load_text()

    print()
    print(f"tick benchmark: {ACCOUNTS} accounts, 2 layers a session, simulator latency {LATENCY_MS} ms, "
          f"broker {os.environ['CELERY_BROKER_URL']}, LOG_LEVEL={os.environ['LOG_LEVEL']}")
    print(f"load average before {load_before}, after {load_after}")
    print()
    print("| sessions | requote | worker p50 ms | worker p99 ms | worker CPU ms (p50) | sync p50 ms | sync p99 ms "
          "| sync / worker (p50) | intents/tick | goal |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for n in args.sessions:
        for requote in args.requote:
            w = next(r for r in results if r["driver"] == "worker" and r["sessions"] == n and r["requote"] == requote)
            s = next((r for r in results if r["driver"] == "sync" and r["sessions"] == n
                      and r["requote"] == requote), None)
            goal = ""
            if n == 1000:
                limit, stretch = GOALS_MS[requote]
                met = w["p99_ms"] <= limit
                ok &= met
                goal = f"worker p99 <= {limit} ms: {'met' if met else 'NOT met'}"
                if stretch:
                    goal += f"; stretch {stretch} ms: {'met' if w['p99_ms'] <= stretch else 'not met'}"
            sync_cols = (f"{s['p50_ms']:.0f} | {s['p99_ms']:.0f} | {s['p50_ms'] / w['p50_ms']:.0f}x"
                         if s else "not measured | | ")
            label = "all" if requote == "all" else "10%"
            print(f"| {n} | {label} | {w['p50_ms']:.1f} | {w['p99_ms']:.1f} | {w['cpu_p50_ms']:.1f} | {sync_cols} | "
                  f"{w['intents_per_tick']:.0f} | {goal} |")
    if args.json:
        print(json.dumps({"load_before": load_before, "load_after": load_after, "results": results}))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
