"""`make run` from a fresh clone (on the stressed simulator market, so it trades quickly): the demo order
reaches ``running`` and trades within 90 s; SIGINT
(the terminal's Ctrl-C, sent to make's process group) ends every process within 15 s, with the
order ``stopped`` and the ledger audit clean.

The demo trades through the ccxt class MM_DEMO_EXCHANGE names (binance unless the environment running
the suite sets it): `MM_DEMO_EXCHANGE=okx pytest tests/test_make_run.py` is the same run on the OKX
dialect (not in the suite: a second whole-system run; tests/test_lifecycle_dialects.py runs the lifecycle
on both dialects, tests/demo/test_demo_exchange.py the okx demo account).

The clone reuses the virtualenv running this suite (a symlink, and ``make -o .venv/.installed`` so
make does not reinstall it) and runs on the embedded default, forced here whatever the suite runs
on: SQLite and the filesystem broker in a temporary var dir, ports picked at run time.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
TRADING_WITHIN_S = 90
STOPPED_WITHIN_S = 15
COMMAND_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def processes_in(folder: Path) -> dict[int, str]:
    """Our processes whose working directory is ``folder``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if Path(os.readlink(entry / "cwd")) != folder:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # gone meanwhile, or not ours
            continue
        if cmdline:  # a zombie has none: it has already exited
            found[int(entry.name)] = cmdline
    return found


def manage(clone: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(clone / ".venv" / "bin" / "python"), "manage.py", *args], cwd=clone, env=env,
                          capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)


def wait_until_trading(clone: Path, env: dict, make: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + TRADING_WITHIN_S
    view = None
    while time.monotonic() < deadline:
        if make.poll() is not None:
            pytest.fail(f"make run exited with {make.returncode}:\n{log.read_text()[-4000:]}")
        result = manage(clone, env, "demo_status", "--json")
        if result.returncode == 0:  # before migrate has run, there is no table to read
            view = json.loads(result.stdout)
            if view["order"] and view["order"]["state"] == "running" and view["fills"]["count"] > 0:
                return view
        time.sleep(2)
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted((Path(env["MM_VAR_DIR"]) / "logs").glob("*.log")))
    pytest.fail(f"no running demo order with fills after {TRADING_WITHIN_S}s: {view}\n{log.read_text()[-3000:]}\n{logs}")


def test_make_run_from_a_fresh_clone_trades_then_sigint_stops_the_order_and_every_process(tmp_path):
    # given a fresh clone of HEAD that reuses the built virtualenv, on the embedded default
    clone = (tmp_path / "clone").resolve()
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, timeout=COMMAND_TIMEOUT_S)
    (clone / ".venv").symlink_to(Path(sys.prefix))  # the virtualenv running this suite
    var = tmp_path / "var"
    var.mkdir()
    # The demo's market moves about 1 bp a second (SIM_VOLATILITY's realistic default): its quotes 5 bp from
    # the mid may wait a minute or more for a fill. The stressed market (about 0.2 % a step) trades them
    # within seconds, so the whole path (fills settled, then stopped with nothing open) is seen in time.
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{var}/mm.sqlite3", CELERY_BROKER_URL="filesystem://",
               MM_VAR_DIR=str(var), MM_WEB_PORT=str(free_port()), MM_SIM_PORT=str(free_port()),
               SIM_VOLATILITY="0.00115")
    log = tmp_path / "make-run.log"

    # when `make run` starts in the background
    with open(log, "wb") as out:
        make = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed", "run"], cwd=clone,
                                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    started_at = time.monotonic()
    try:
        # then the demo order runs and has filled orders within 90 s
        view = wait_until_trading(clone, env, make, log)
        trading_after = time.monotonic() - started_at
        assert view["order"]["path"][:1] == ["payment_pending"] and view["order"]["path"][-1] == "running"
        running = processes_in(clone)
        names = " ".join(running.values())
        for part in ("run_local.py", "exchange_simulator", "run_local.py web", "worker", "beat"):
            assert part in names, f"{part!r} is not running: {running}"

        # when the terminal's Ctrl-C reaches make's process group
        os.killpg(make.pid, signal.SIGINT)
        stopped_at = time.monotonic()
        make.wait(timeout=STOPPED_WITHIN_S)
        left = processes_in(clone)
        while left and time.monotonic() - stopped_at < STOPPED_WITHIN_S:
            time.sleep(0.2)
            left = processes_in(clone)
        took = time.monotonic() - stopped_at
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        for pid in processes_in(clone):
            os.kill(pid, signal.SIGKILL)

    # then every process exited within 15 s; the supervisor succeeded (make itself, interrupted,
    # re-raises SIGINT once its recipe is done: that is its exit status, as for any interrupted make)
    assert not left, f"still running {took:.1f}s after SIGINT: {left}"
    print(f"make run: trading (running, {view['fills']['count']} fills) after {trading_after:.1f}s; "
          f"every process gone {took:.1f}s after SIGINT")
    output = log.read_text()
    assert make.returncode in (0, -signal.SIGINT), output[-4000:]
    exchange = os.environ.get("MM_DEMO_EXCHANGE") or "binance"
    assert f"({exchange})  database" in output, output[-4000:]  # the header names the demo account's exchange
    assert "run_local: all processes stopped" in output and "] Error " not in output, output[-4000:]
    # and the demo order was stopped through stop_mm, leaving a clean ledger
    status = json.loads(manage(clone, env, "mm_status", "--json").stdout)
    assert status["orders"]["stopped"] == 1 and status["orders"]["running"] == 0, status
    final = json.loads(manage(clone, env, "demo_status", "--json").stdout)
    assert final["order"]["path"][-1] == "stopped" and final["open_orders"] == []
    audit = manage(clone, env, "ledger_audit")
    assert audit.returncode == 0, audit.stdout + audit.stderr
