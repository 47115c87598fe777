#!/usr/bin/env python
"""Run the whole system locally: one Celery worker for every queue and beat.

Ctrl-C (SIGINT) or SIGTERM stops every child and waits for it; nothing is left running.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
STOP_GRACE_S = 15


def children_commands(var_dir: Path) -> dict[str, list[str]]:
    celery = [PY, "-m", "celery", "-A", "mmproject"]
    return {
        "worker": celery
        + ["worker", "-Q", "market-making,intents,tick", "--concurrency", "2", "-n", "local@%h",
           "--loglevel", "INFO"],
        "beat": celery
        + ["beat", "--loglevel", "INFO", "--schedule", str(var_dir / "celerybeat-schedule")],
    }


def main() -> int:
    var_dir = Path(os.environ.get("MM_VAR_DIR", ROOT / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs: dict[str, subprocess.Popen] = {}
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    for name, cmd in children_commands(var_dir).items():
        # Own process group: the terminal's Ctrl-C reaches only us, and we stop children in order.
        procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
        print(f"run_local: started {name} pid={procs[name].pid}", flush=True)

    exit_code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"run_local: {name} exited with {proc.returncode}; stopping", flush=True)
                exit_code = 1
                stopping = True
        time.sleep(0.2)

    print("run_local: stopping", flush=True)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"run_local: {name} did not stop in time; killing", flush=True)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print("run_local: all processes stopped", flush=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
