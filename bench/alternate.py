"""Compare the trading-runtime benchmarks of another revision with this tree, in one run.

    python bench/alternate.py --base fbfa9ff [--rounds 2] [--only tick intents memory]

The base revision is checked out as a git worktree (var/bench-base-REV, removed afterwards) and run
with this tree's Python environment. Each round runs every benchmark on both trees, base first in odd
rounds and this tree first in even ones (so a machine that speeds up or slows down during the run
favours neither), each benchmark through its own ``--json`` output:
- tick: ``bench/tick.py --sessions 1000 --sync-sessions`` (worker driver, all and 10% requoting): p99 ms;
- intents: ``bench/intents.py``: intents/s;
- memory: ``bench/worker_memory.py``: KiB per session (the worst of its measures).
It prints every run and, per figure, the median of each tree and head / base. The benchmarks need
PostgreSQL and Redis as for ``make bench-tick`` (DATABASE_URL, CELERY_BROKER_URL; docs/benchmarks.md).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BENCHES = {
    "tick": (["bench/tick.py", "--sessions", "1000", "--sync-sessions", "--json"],
             lambda out: {f"tick p99 ms, 1,000 sessions, {'all' if r['requote'] == 'all' else '10%'} requoting":
                          r["p99_ms"] for r in out["results"] if r["driver"] == "worker"}),
    "intents": (["bench/intents.py", "--json"], lambda out: {"intents/s": out["throughput"]["rate"]}),
    # The worst of the memory benchmark's measures, as its goal reads it.
    "memory": (["bench/worker_memory.py", "--json"],
               lambda out: {"worker KiB per session (worst measure)":
                            max(v for v in out["per_session_kib"].values() if v is not None)}),
}


def run(tree: Path, bench: str) -> dict[str, float]:
    args, figures = BENCHES[bench]
    proc = subprocess.run([sys.executable, *args], cwd=tree, capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode != 0:
        raise SystemExit(f"{bench} failed in {tree}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
    return figures(json.loads(last))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the revision to compare with (e.g. a commit before a change)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHES), default=["tick", "intents", "memory"])
    parser.add_argument("--same-harness", action="store_true",
                        help="measure the base with this tree's bench/ scripts (when the harness was fixed since)")
    args = parser.parse_args()
    for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
        if name not in os.environ:
            raise SystemExit(f"set {name} (see docs/benchmarks.md)")

    rev = subprocess.run(["git", "rev-parse", "--short", args.base], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    base = ROOT / "var" / f"bench-base-{rev}"
    if base.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)
        shutil.rmtree(base, ignore_errors=True)
    subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(base), rev], cwd=ROOT, check=True)
    if args.same_harness:
        # The benchmark scripts are the instrument: both trees are measured by this tree's, so a fix to the
        # harness (e.g. tick.py's accepted intents) applies to the base too. The code measured is each tree's.
        for script in (ROOT / "bench").glob("*.py"):
            shutil.copy(script, base / "bench" / script.name)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    seen: dict[str, dict[str, list[float]]] = {"base": {}, "head": {}}
    try:
        for round_no in range(1, args.rounds + 1):
            order = [("base", base), ("head", ROOT)]
            if round_no % 2 == 0:
                order.reverse()
            for bench in args.only:
                for label, tree in order:
                    figures = run(tree, bench)
                    for figure, value in figures.items():
                        seen[label].setdefault(figure, []).append(value)
                    print(f"round {round_no} {label:4} {bench:7} "
                          + "  ".join(f"{k}: {v:.1f}" for k, v in figures.items()), flush=True)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT, check=False)

    print()
    print(f"base {rev} vs head {head}{' (uncommitted changes included)' if dirty() else ''}, "
          f"{args.rounds} rounds, medians")
    print("| figure | base | head | head / base |")
    print("|---|---|---|---|")
    for figure, values in seen["head"].items():
        b, h = statistics.median(seen["base"][figure]), statistics.median(values)
        print(f"| {figure} | {b:.1f} ({', '.join(f'{v:.1f}' for v in seen['base'][figure])}) | "
              f"{h:.1f} ({', '.join(f'{v:.1f}' for v in values)}) | {h / b:.2f} |")
    return 0


def dirty() -> bool:
    return bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    sys.exit(main())
