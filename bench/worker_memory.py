"""Memory of a tick worker holding 1,000 strategy sessions: growth per session.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mm .venv/bin/python bench/worker_memory.py   (or: make bench-memory)

Set-up: its own database (``mm_bench_rt``, dropped and re-created), SESSIONS running sessions
of 2 layers over 10 exchange accounts, funded through the ledger, with fresh stored market data.
A fresh child process (what a worker on the tick queue is) imports everything and runs one
cycle with no session due: that is the baseline. Then it runs CYCLES ticks (``tick_run``,
worker driver: trackers and intents only enqueued on the Redis broker, queues purged after)
over every session, the price moving 1% between ticks so every ladder is replaced, and reports:
- peak RSS growth over the baseline (VmHWM after resetting it through /proc/self/clear_refs),
- RSS still held after the cycles (what the worker keeps between ticks),
- Python allocations at the peak of one cycle (tracemalloc, a separate pass: it slows the run),
each divided by the number of sessions. Goal: <= 50 KiB per session.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

SESSIONS = 1000
ACCOUNTS = 10
CYCLES = 6
GOAL_KIB = 50


def _status_kib(name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise KeyError(name)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def child(cycles: int) -> dict:
    c.bootstrap(fresh=False)
    from django.utils import timezone

    from strategy.cycle import strategies_run_due
    from strategy.models import StrategySession
    from strategy.tick import tick_run

    accounts = list({s.order.exchange_account for s in StrategySession.objects.select_related("order__exchange_account")})

    written = []

    def one_tick(t: int) -> None:
        StrategySession.objects.update(next_run_at=timezone.now())
        c.store_market_data(accounts, c.START_PRICE + (300 if t % 2 else 0))
        time.sleep(0.03)  # a fresh tick slot (STRATEGY_TICK_SIZE_MS=20)
        outcome = tick_run()
        assert outcome.ran and outcome.sessions_run == SESSIONS, outcome
        written.append(outcome.intents_written)

    # Baseline: everything imported and connected, one cycle with nothing due.
    strategies_run_due(now=timezone.now() - timedelta(days=1))
    gc.collect()
    baseline = _status_kib("VmRSS")
    peak_reset = _reset_peak()
    for t in range(cycles):
        one_tick(t)
    peak = _status_kib("VmHWM") if peak_reset else None
    gc.collect()
    retained = _status_kib("VmRSS")

    tracemalloc.start()
    tracemalloc.reset_peak()
    before, _ = tracemalloc.get_traced_memory()
    one_tick(cycles)
    after, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"baseline_kib": baseline, "peak_kib": peak, "retained_kib": retained,
            "traced_peak_kib": (traced_peak - before) / 1024, "traced_retained_kib": (after - before) / 1024,
            "intents_written_per_tick": written}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=CYCLES)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is not met")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.cycles)))
        return 0

    overrides = {"STRATEGY_TICK_SIZE_MS": "20", "STRATEGY_INTENT_EXECUTION_DRIVER": "worker"}
    c.bootstrap(settings_overrides=overrides)
    c.purge_queues("tick", "intents")
    accounts = c.make_accounts("http://127.0.0.1:9", ACCOUNTS, prefix="bm")  # never called: worker driver
    c.make_sessions(accounts, SESSIONS, layers=2, cadence_s=3600)
    c.store_market_data(accounts, c.START_PRICE)
    load_before = c.load_text()
    try:
        out = subprocess.run([sys.executable, __file__, "--child", "--cycles", str(args.cycles)], env=dict(os.environ),
                             capture_output=True, text=True, timeout=900)
    finally:
        c.purge_queues("tick", "intents")
    if out.returncode != 0:
        sys.exit(f"child failed:\n{out.stderr[-4000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    load_after = c.load_text()

    per = {
        "peak RSS growth": (r["peak_kib"] - r["baseline_kib"]) / SESSIONS if r["peak_kib"] else None,
        "RSS held after the cycles": (r["retained_kib"] - r["baseline_kib"]) / SESSIONS,
        "Python allocations at the cycle's peak (tracemalloc)": r["traced_peak_kib"] / SESSIONS,
        "Python allocations held after a cycle (tracemalloc)": r["traced_retained_kib"] / SESSIONS,
    }
    worst = max(v for v in per.values() if v is not None)
    met = worst <= GOAL_KIB
    print(f"worker memory benchmark: {SESSIONS} sessions (2 layers) over {ACCOUNTS} accounts, {args.cycles} ticks "
          f"(worker driver), baseline RSS {r['baseline_kib'] / 1024:.1f} MiB; intents written per tick "
          f"{r['intents_written_per_tick']}")
    print(f"load average before {load_before}, after {load_after}")
    print()
    print("| measure | KiB per session | goal |")
    print("|---|---|---|")
    for name, value in per.items():
        shown = f"{value:.1f}" if value is not None else "n/a (no /proc/self/clear_refs)"
        print(f"| {name} | {shown} | <= {GOAL_KIB} KiB: {'met' if value is None or value <= GOAL_KIB else 'NOT met'} |")
    if args.json:
        print(json.dumps({"load_before": load_before, "load_after": load_after, "raw": r, "per_session_kib": per}))
    return 1 if args.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
