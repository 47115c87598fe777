"""Ledger write benchmark on PostgreSQL: 8 writer processes, beside a minimal raw transaction.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mm .venv/bin/python bench/ledger.py   (or: make bench-ledger)

The benchmark creates and migrates its own database (``mm_bench`` on the server of
DATABASE_URL, or BENCH_DATABASE_NAME), and empties its ledger tables before it runs.
Scenarios, each run as (a) every writer on one user:asset and (b) every writer on its own:
- ``ledger``: ``ledger.services`` credit_deposit / debit_withdrawal, alternating;
- ``raw``: the floor, a minimal psycopg transaction per mutation: row lock (SELECT ... FOR
  UPDATE), UPDATE of the balance, INSERT of an entry with a unique key, COMMIT.
Ledger and raw rounds alternate in one run and the ratio is the median of the ratios of
adjacent rounds, so it holds when the machine is noisy. Prints mutations/s, p50/p99 latency
per mutation (pooled over the rounds), the ratio, client CPU per mutation, the load average.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WRITERS = 8
GOALS = {"one": (400, 0.050), "distinct": (900, None)}  # mutations/s, p99 seconds
MIN_RATIO = 0.5

RAW_SCHEMA = """
CREATE TABLE IF NOT EXISTS bench_raw_balance (id bigint PRIMARY KEY, available numeric(38, 18) NOT NULL);
CREATE TABLE IF NOT EXISTS bench_raw_entry (
    id bigserial PRIMARY KEY, idempotency_key varchar(255) NOT NULL UNIQUE, amount numeric(38, 18) NOT NULL);
"""


def bench_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mm")
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit("bench/ledger.py measures PostgreSQL: set DATABASE_URL=postgres://...")
    name = os.environ.get("BENCH_DATABASE_NAME", "mm_bench")
    return urlunsplit(parts._replace(path=f"/{name}"))


def conninfo(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql"))


def prepare_database(url: str) -> None:
    """Create the bench database if missing, migrate it, and empty the tables the bench writes."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')

    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    with connection.cursor() as cur:
        cur.execute(RAW_SCHEMA)
        # TRUNCATE is statement-level: the append-only row triggers do not fire. Bench database only.
        cur.execute("TRUNCATE ledger_posting, ledger_ledgerentry, ledger_balance, bench_raw_entry, "
                    "bench_raw_balance RESTART IDENTITY")
    connection.close()


# --- writers ---------------------------------------------------------------------------
def ledger_writer(writer: int, shared: bool, run: str, deadline_box, barrier, results) -> None:
    from django.db import connections

    from ledger import services

    user = "bench-user" if shared else f"bench-user-{writer}"
    asset = "bench-asset"
    seq = 0

    def mutate():
        nonlocal seq
        seq += 1
        key = f"{run}-{writer}-{seq}"
        if seq % 2:
            services.credit_deposit(user_id=user, asset_id=asset, amount=Decimal("1.5"), idempotency_key=key)
        else:
            services.debit_withdrawal(user_id=user, asset_id=asset, amount=Decimal("1.5"), idempotency_key=key)

    try:
        for _ in range(5):  # warm: connection, asset scale, balance row
            mutate()
        _measure(mutate, deadline_box, barrier, results)
    finally:
        connections.close_all()


def raw_writer(writer: int, shared: bool, run: str, deadline_box, barrier, results, url: str) -> None:
    import psycopg

    row = 0 if shared else writer + 1
    seq = 0
    with psycopg.connect(conninfo(url)) as conn:
        conn.execute("INSERT INTO bench_raw_balance (id, available) VALUES (%s, 1000000) ON CONFLICT DO NOTHING",
                     [row])
        conn.commit()

        def mutate():
            nonlocal seq
            seq += 1
            amount = Decimal("1.5") if seq % 2 else Decimal("-1.5")
            with conn.cursor() as cur:
                cur.execute("SELECT available FROM bench_raw_balance WHERE id = %s FOR UPDATE", [row])
                cur.fetchone()
                cur.execute("UPDATE bench_raw_balance SET available = available + %s WHERE id = %s", [amount, row])
                cur.execute("INSERT INTO bench_raw_entry (idempotency_key, amount) VALUES (%s, %s)",
                            [f"{run}-{writer}-{seq}", amount])
            conn.commit()

        for _ in range(5):
            mutate()
        _measure(mutate, deadline_box, barrier, results)


def _measure(mutate, deadline_box, barrier, results) -> None:
    barrier.wait(60)
    deadline = deadline_box.value
    latencies = []
    cpu = time.process_time()
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        if t0 >= deadline:
            break
        mutate()
        latencies.append(time.perf_counter() - t0)
    results.put({"start": start, "end": time.perf_counter(), "latencies": latencies,
                 "cpu": time.process_time() - cpu})


def run_round(kind: str, shared: bool, seconds: float, url: str, run: str) -> dict:
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WRITERS + 1)
    deadline_box = ctx.Value("d", 0.0)
    results = ctx.Queue()
    procs = []
    for writer in range(WRITERS):
        if kind == "ledger":
            args = (writer, shared, run, deadline_box, barrier, results)
            target = ledger_writer
        else:
            args = (writer, shared, run, deadline_box, barrier, results, url)
            target = raw_writer
        procs.append(ctx.Process(target=target, args=args))
    for proc in procs:
        proc.start()
    # Everyone is warm when the barrier opens; the deadline is set just before it does.
    deadline_box.value = time.perf_counter() + 0.2 + seconds
    barrier.wait(120)
    outcomes = [results.get(timeout=seconds + 120) for _ in procs]
    for proc in procs:
        proc.join(30)
        if proc.exitcode != 0:
            raise SystemExit(f"{kind} writer exited with {proc.exitcode}")
    latencies = [x for o in outcomes for x in o["latencies"]]
    wall = max(o["end"] for o in outcomes) - min(o["start"] for o in outcomes)
    return {"latencies": latencies, "wall": wall, "rate": len(latencies) / wall,
            "cpu": sum(o["cpu"] for o in outcomes)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def combine(rounds: list[dict]) -> dict:
    """All rounds of one implementation: overall rate, pooled latency percentiles, client CPU."""
    latencies = [x for r in rounds for x in r["latencies"]]
    return {"rate": len(latencies) / sum(r["wall"] for r in rounds), "count": len(latencies),
            "p50": percentile(latencies, 0.50), "p99": percentile(latencies, 0.99),
            "client_cpu": sum(r["cpu"] for r in rounds) / len(latencies)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one measured round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating ledger/raw round pairs per scenario")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--scenarios", nargs="+", choices=["one", "distinct"], default=["one", "distinct"])
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")
    args = parser.parse_args()

    url = bench_url()
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmproject.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # a log line per mutation would measure the terminal
    import django

    django.setup()
    prepare_database(url)

    load_before = os.getloadavg()
    run_id = f"b{int(time.time())}"
    figures = {}
    for scenario, shared in (("one", True), ("distinct", False)):
        if scenario not in args.scenarios:
            continue
        rounds = {"ledger": [], "raw": []}
        for n in range(args.rounds):
            order = ("raw", "ledger") if n % 2 == 0 else ("ledger", "raw")
            for kind in order:
                rounds[kind].append(run_round(kind, shared, args.seconds, url, f"{run_id}-{scenario}-{kind}-{n}"))
        figures[scenario] = {kind: combine(rs) for kind, rs in rounds.items()}
        # Each ledger round against the raw round beside it, then the median: a burst of load
        # from elsewhere spoils one pair, not the ratio.
        figures[scenario]["ratio"] = statistics.median(
            led["rate"] / raw["rate"] for led, raw in zip(rounds["ledger"], rounds["raw"]))
    load_after = os.getloadavg()

    print(f"ledger benchmark: {WRITERS} writer processes, {args.rounds} x {args.seconds:g}s rounds per "
          f"implementation, PostgreSQL {url.rsplit('@', 1)[-1]}, LOG_LEVEL={os.environ['LOG_LEVEL']}")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; {os.cpu_count()} CPUs")
    print()
    print("| scenario | ledger mut/s | ledger p50 ms | ledger p99 ms | raw mut/s | raw p99 ms | ratio "
          "| client CPU ms/mut ledger / raw | goal |")
    print("|---|---|---|---|---|---|---|---|---|")
    ok = True
    for scenario, label in (("one", "(a) one user:asset"), ("distinct", "(b) distinct keys")):
        if scenario not in figures:
            continue
        f = figures[scenario]
        min_rate, max_p99 = GOALS[scenario]
        met = f["ledger"]["rate"] >= min_rate and f["ratio"] >= MIN_RATIO and (
            max_p99 is None or f["ledger"]["p99"] <= max_p99)
        ok &= met
        goal = f">= {min_rate}/s" + (f", p99 <= {max_p99 * 1000:.0f} ms" if max_p99 else "") + f", ratio >= {MIN_RATIO}"
        print(f"| {label} | {f['ledger']['rate']:.0f} | {f['ledger']['p50'] * 1000:.1f} | "
              f"{f['ledger']['p99'] * 1000:.1f} | {f['raw']['rate']:.0f} | {f['raw']['p99'] * 1000:.1f} | "
              f"{f['ratio']:.2f} | {f['ledger']['client_cpu'] * 1000:.2f} / {f['raw']['client_cpu'] * 1000:.2f} | "
              f"{goal}: {'met' if met else 'NOT met'} |")
    if args.json:
        print(json.dumps({"load_before": load_before, "load_after": load_after, "figures": figures}))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
