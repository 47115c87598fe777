"""Chaos: the order lifecycle under SIGKILLs of the worker, the beat and the broker (issue 18's first goal).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mm .venv/bin/python bench/chaos.py   (or: make bench-chaos)
    ... bench/chaos.py [--seed 1] [--rounds 1] [--duration 120] [--orders 10] [--no-chaos]
                       [--json] [--check]

The system as production runs it, in processes of its own: ``manage.py exchange_simulator`` (stepping one
step a second), one Celery worker on the market-making, intents and tick queues (prefork, 2 processes),
Celery beat (the tick, the lifecycle sweeper every MM_SWEEP_INTERVAL_S, reconcile), and a broker of this
benchmark's own: ``redis-server`` started here on a free loopback port with no persistence, so killing it
loses every message in it (and never touches the Redis others use on 6379). Its own PostgreSQL database
(``mm_bench_chaos``, or BENCH_DATABASE_NAME), dropped and re-created for every run.

One run, in transfer mode with the local payment provider (LIFECYCLE_ENV):
- ``--orders`` (10) orders paid in full through ``manage.py ingest_snapshots`` (their own process), which
  the jobs carry to ``running`` (funds deposited on the simulator), each quoting and filling on the moving
  market for RUN_S seconds (20-50, drawn per order from the seed, so the stops meet the kills), then
  stopped as the API stops one (``order_stop_request``: the stop recorded, then stop_mm queued);
  the stop starts the payout (MM_PAYOUT_AFTER_STOP=auto), which withdraws the funds from the exchange and
  pays them to the user: ``paid_out``. Their payment deadline is PAID_TIMEOUT_S
  (set when they are created), so a payment held up by the chaos is not refused for lateness.
- 2 orders never paid: the sweeper fails them at their deadline (MM_PAYMENT_TIMEOUT_S, 20 s).
- 1 order paid short (its base in full, half its quote): failed at its deadline, what arrived refunded.
- A chaos thread (seeded RNG, ``--seed``) kills one of worker, beat, broker with SIGKILL (its whole process
  group) every KILL_GAP_S, and starts it again after a random pause of KILL_PAUSE_S; the broker comes back
  on the same port, empty. It runs ``--duration`` seconds from the payments on (``--no-chaos``: none).
- Then everything runs quietly until every order is final (at most QUIET_MAX_S), the worker and beat are
  stopped, and ``manage.py ledger_audit`` and ``manage.py reconcile`` run in their own processes (the
  simulator still serving); their output is printed when they are not clean.

Deadlines (each order's own, as the system defines them, plus the allowance the goal gives):
- an unpaid or short-paid order: its ``expires_at``; it must be final by then + MM_SWEEP_INTERVAL_S +
  MM_JOB_LEASE_MARGIN_S (docs/lifecycle.md: "still ends within its deadline plus MM_JOB_LEASE_MARGIN_S
  plus one sweep"), plus the time the worker or broker was down in that window (nothing runs then);
- a paid order: its stop request + STOP_BUDGET_S (a stop's first poll waits up to 5 s for the exchange to be
  clear, then the payout withdraws and pays: a few seconds with nothing lost; measured with --no-chaos),
  the same allowance, and the same outage time.
An outage runs from a kill until the worker answers a ping again (worker, broker) or beat is started
again (beat: the sweeps it missed are within the allowance's one sweep once it is back).

Checks after the run: every order final, each in time; the paid orders' users received exactly what their
stop unlocked (mm-unlock entries), once per asset; the short order's user got back exactly what arrived;
nothing of ours open on the simulator; ledger_audit and reconcile exit 0. ``--check``: exit 1 when one
fails. Logs of every process are kept under MM_VAR_DIR (/tmp/var_bench_chaos by default), per run.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

ROOT = c.ROOT
QUEUES = "market-making,intents,tick"
SIM_KEY, SIM_SECRET = "chaos-api-key", "chaos-api-secret"
ACCOUNT_LABEL = "chaos-sim"
BTC_ASSET_ID = "c6d0c728-2624-429b-8e0d-d9d19b6592fa"  # Mixin's, as demo.services names them
USDT_ASSET_ID = "4d8c508b-91c5-375b-92b0-ee702ed2dac5"
SWEEP_S, LEASE_MARGIN_S, UNPAID_TIMEOUT_S = 5, 5, 20
PAID_TIMEOUT_S = 180
RUN_S = (20.0, 50.0)    # how long each paid order quotes (from running) before its stop: seeded, spread
STOP_BUDGET_S = 15.0    # a stop and its payout with nothing lost (see --no-chaos)
KILL_GAP_S = (3.0, 8.0)
KILL_PAUSE_S = (0.5, 3.0)
QUIET_MAX_S = 90.0
LIVENESS_S = 20.0    # a worker silent this long is restarted (the supervisor's liveness check)
FINAL = ("paid_out", "failed", "refunded")
# Every process of the run (worker, beat, simulator, the commands) reads these.
LIFECYCLE_ENV = {
    "MM_WITHDRAW_MODE": "transfer", "MM_PAYMENT_PROVIDER": "local", "MM_PAYOUT_AFTER_STOP": "auto",
    "MM_PAYMENT_FIRST_CHECK_S": "1", "MM_PAYMENT_CHECK_INTERVAL_S": "1", "MM_WITHDRAWAL_CHECK_INTERVAL_S": "1",
    "MM_PAYOUT_CHECK_INTERVAL_S": "1", "MM_SWEEP_INTERVAL_S": str(SWEEP_S),
    "MM_JOB_LEASE_MARGIN_S": str(LEASE_MARGIN_S), "MM_PAYMENT_TIMEOUT_S": str(UNPAID_TIMEOUT_S),
    "STRATEGY_INTENT_EXECUTION_DRIVER": "worker", "STRATEGY_TICK_SIZE_MS": "1000",
    "STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE": "2", "RECONCILE_INTERVAL_S": "30",
    "SIM_DEPOSIT_CONFIRM_S": "1", "SIM_WITHDRAW_CONFIRM_S": "1", "SIM_VOLATILITY": "0.0005",
    "SIM_API_KEY": SIM_KEY, "SIM_API_SECRET": SIM_SECRET, "SIM_BALANCES": "BTC=0,USDT=0",
    "SIM_SYMBOLS": "BTC/USDT=30000", "LOG_LEVEL": "INFO",
}
ORDER_PARAMS = dict(base_amount="0.5", quote_amount="15000", bid_spread="0.0005", ask_spread="0.0005",
                    order_amount="0.01", order_refresh_time=5, number_of_layers=2, filled_order_delay="0")


# --- processes ----------------------------------------------------------------------------------
def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:g} s")


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process and every child of it (its own session), as a crash or OOM kill would."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


class System:
    """The broker, worker and beat of one run: started, killed and started again by name."""

    def __init__(self, var: Path, tag: str, redis_port: int):
        self.var, self.tag, self.redis_port = var, tag, redis_port
        self.procs: dict[str, subprocess.Popen] = {}
        self.starts = {"broker": 0, "worker": 0, "beat": 0}
        self.lock = threading.Lock()

    def log(self, name: str) -> str:
        return str(self.var / f"{name}-{self.tag}.log")

    def start(self, name: str) -> None:
        self.starts[name] += 1
        if name == "broker":
            log = open(self.log("broker"), "ab")
            proc = subprocess.Popen(
                ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            wait_port(self.redis_port, proc, "redis-server")
        elif name == "worker":
            # As c.start_worker, logging at INFO: every job's start and end is in the log for the investigation.
            log = open(self.log(f"worker{self.starts[name]}"), "wb")
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "mmproject", "worker", "-Q", QUEUES, "-P", "prefork", "-c", "2",
                 "-n", f"chaos-{os.getpid()}@%h", "-l", "INFO", "--without-gossip", "--without-mingle",
                 "--without-heartbeat"],
                cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            proc.log_path = log.name
        else:
            proc = c.start_beat(schedule_path=str(self.var / f"beat-{self.tag}.schedule"),
                                log_path=self.log(f"beat{self.starts[name]}"))
        with self.lock:
            self.procs[name] = proc

    def kill(self, name: str) -> None:
        with self.lock:
            proc = self.procs.pop(name)
        kill_group(proc)

    def stop(self, name: str) -> None:
        with self.lock:
            proc = self.procs.pop(name, None)
        if proc is not None:
            c.stop_process(proc)

    def worker_answers(self, timeout: float) -> bool:
        from mmproject.celery import app

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:  # a connection of its own each time: the broker may be a new server since the last ping
                with app.connection_for_write() as conn:
                    replies = app.control.ping(timeout=0.5, connection=conn) or []
            except Exception:  # noqa: BLE001 - the broker is still coming back
                replies = []
            if any(str(os.getpid()) in name for r in replies for name in r):
                return True
            time.sleep(0.2)
        return False


class Chaos(threading.Thread):
    """Every KILL_GAP_S (until ``until``): SIGKILL one of worker, beat, broker; start it again after KILL_PAUSE_S.

    Also the supervisor a deployment has (systemd's Restart=always plus a liveness check), for the whole run:
    a process that exited on its own is started again, and a worker that answers no ping for LIVENESS_S
    while the broker is up is killed and started again. Each such event is recorded: the goal is that
    none is needed."""

    def __init__(self, system: System, rng: random.Random, until: float):
        super().__init__(daemon=True, name="chaos")
        self.system, self.rng, self.until = system, rng, until
        self.halt = threading.Event()
        self.kills: list[dict] = []
        self.supervised: list[dict] = []  # processes that exited or hung by themselves, restarted here
        self.outages: list[tuple[float, float]] = []  # (down, up) wall times when no job could run
        self.error: str | None = None

    def _worker_back(self, down: float, why: str) -> float:
        """Wait until the worker answers a ping. One that exits meanwhile is started again at once (a supervisor's
        Restart=always); one still running but silent for LIVENESS_S is hung: killed and started again."""
        silent_since = time.time()
        while not self.system.worker_answers(1.0):
            proc = self.system.procs.get("worker")
            exited = proc is not None and proc.poll() is not None
            if not exited and time.time() - silent_since < LIVENESS_S:
                continue
            event = {"target": "worker", "event": "exited" if exited else "hung", "after": why,
                     "at": round(time.time() - T0, 1)}
            if exited:
                event["code"] = proc.returncode
            self.supervised.append(event)
            print(f"    worker {event['event']} after {why} (+{event['at']} s): started again", flush=True)
            self.system.kill("worker")
            self.system.start("worker")
            silent_since = time.time()
        up = time.time()
        self.outages.append((down, up))
        return up

    def _supervise(self) -> None:
        for name in ("broker", "worker", "beat"):
            proc = self.system.procs.get(name)
            if proc is not None and proc.poll() is not None:
                down = time.time()
                self.supervised.append({"target": name, "event": "exited", "code": proc.returncode,
                                        "at": round(down - T0, 1)})
                print(f"    {name} exited by itself ({proc.returncode}): restarted", flush=True)
                self.system.procs.pop(name, None)
                self.system.start(name)
                if name != "beat":
                    self._worker_back(down, f"{name} exited")

    def run(self) -> None:
        try:
            next_kill = time.time() + self.rng.uniform(*KILL_GAP_S)
            next_ping = time.time() + LIVENESS_S
            while not self.halt.wait(0.5):
                self._supervise()
                now = time.time()
                if now >= next_ping:
                    next_ping = now + LIVENESS_S
                    if not self.system.worker_answers(2):
                        self._worker_back(now, "no ping")
                if now < next_kill or next_kill >= self.until:
                    continue
                target = self.rng.choice(("worker", "beat", "broker"))
                pause = self.rng.uniform(*KILL_PAUSE_S)
                down = time.time()
                self.system.kill(target)
                time.sleep(pause)
                self.system.start(target)
                up = time.time() if target == "beat" else self._worker_back(down, f"{target} kill")
                self.kills.append({"target": target, "at": round(down - T0, 1), "pause_s": round(pause, 2),
                                   "down_s": round(up - down, 2)})
                print(f"    kill {len(self.kills)}: {target} at +{down - T0:.1f} s, down {up - down:.1f} s",
                      flush=True)
                next_kill = time.time() + self.rng.uniform(*KILL_GAP_S)
                next_ping = time.time() + LIVENESS_S
        except Exception as exc:  # noqa: BLE001 - reported with the run
            self.error = repr(exc)


def outage_within(outages: list[tuple[float, float]], start: float, end: float) -> float:
    return sum(max(0.0, min(up, end) - max(down, start)) for down, up in outages)


# --- set-up -------------------------------------------------------------------------------------
def make_pair(sim_url: str):
    from exchanges.management.commands.exchange_simulator import simulator_exchange_account_ensure
    from orders.services.pairs import pair_create

    account = simulator_exchange_account_ensure(label=ACCOUNT_LABEL, exchange_id="binance", api_key=SIM_KEY,
                                                api_secret=SIM_SECRET, base_url=sim_url)
    return pair_create(symbol="BTC/USDT", base_asset_id=BTC_ASSET_ID, quote_asset_id=USDT_ASSET_ID,
                       exchange_account_id=account.pk)


def first_reconcile():
    """The account's first reconciliation, before any money is on it, as docs/reconciliation.md tells the
    operator ("run the first reconciliation ... when the books are known to be right"): its balances' baselines
    are 0. Left to beat's first run instead, the baseline is taken while the orders trade and keeps any fill the
    exchange made that the ledger has not settled yet as "float": a drift on every later run."""
    from reconciliation.services import reconcile_run

    run = reconcile_run(trigger="bench:chaos")
    return {"ok": run.ok, "baselines_set": run.baselines_set}


def make_orders(pair, n_paid: int) -> dict[str, list]:
    from django.test import override_settings

    from orders.services import order_create

    def create(kind: str, i: int):
        return order_create(user_id=str(uuid.uuid4()), pair_id=pair.pair_id, by=f"bench:chaos:{kind}{i}",
                            **ORDER_PARAMS)

    with override_settings(MM_PAYMENT_TIMEOUT_S=PAID_TIMEOUT_S):
        paid = [create("paid", i) for i in range(n_paid)]
    return {"paid": paid, "unpaid": [create("unpaid", i) for i in range(2)], "short": [create("short", 0)]}


def snapshots(orders: dict[str, list]) -> list[dict]:
    from orders.memo import encode_snapshot_memo

    def pay(order, asset_id, amount):
        return {"snapshot_id": str(uuid.uuid4()), "asset_id": asset_id, "amount": str(amount),
                "opponent_id": order.user_id, "memo": encode_snapshot_memo(order.pair.pair_id, order.order_id),
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}

    rows = []
    for order in orders["paid"]:
        rows += [pay(order, BTC_ASSET_ID, order.base_amount), pay(order, USDT_ASSET_ID, order.quote_amount)]
    for order in orders["short"]:
        rows += [pay(order, BTC_ASSET_ID, order.base_amount), pay(order, USDT_ASSET_ID, order.quote_amount / 2)]
    return rows


def stop_as_the_api(order_id: str) -> None:
    """The stop as the API makes it (api/views.py OrderStopView -> orders.services.lifecycle.order_stop_request):
    under the order's lock the session stops taking orders (``stopping``), and stop_mm is queued after commit;
    a message lost after that is picked up by the sweeper, which resumes every ``stopping`` session."""
    from orders.services.lifecycle import order_stop_request

    order_stop_request(order_id=order_id, by="bench:chaos", reason="stop requested by bench/chaos (as the API)")


def manage(*argv: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


class SendFailures(logging.Handler):
    """Counts ``event=job_enqueue_failed`` of stop_mm per order in this process (the broker was down)."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()  # the order id is in the text (mmproject.logcontext folds the args into it)
        if message.startswith("event=job_enqueue_failed job=stop_mm"):
            found = re.search(r"args=\('([0-9a-f-]{36})'", message)
            order_id = found.group(1) if found else "?"
            SEND_FAILED[order_id] = SEND_FAILED.get(order_id, 0) + 1


SEND_FAILED: dict[str, int] = {}


# --- one run ------------------------------------------------------------------------------------
T0 = 0.0


def run_once(*, seed: int, args, run_no: int) -> dict:
    global T0
    from django.core.management import call_command
    from django.db import connections

    from orders.models import MarketMakingOrder

    var = Path(os.environ["MM_VAR_DIR"])
    tag = f"r{run_no}-s{seed}-{time.strftime('%H%M%S')}"  # logs of every run kept
    connections.close_all()
    c.recreate_database(os.environ["DATABASE_URL"])
    call_command("migrate", verbosity=0, interactive=False)
    system = System(var, tag, int(os.environ["CHAOS_REDIS_PORT"]))
    sim = None
    chaos = None
    load_before = c.load_text()
    try:
        system.start("broker")
        sim, sim_url = c.start_simulator(step_ms=1000, extra_args=("--seed", str(seed)),
                                         log_path=str(var / f"simulator-{tag}.log"))
        pair = make_pair(sim_url)
        baseline_run = first_reconcile()
        system.start("worker")
        if not system.worker_answers(90):
            raise RuntimeError(f"the worker did not answer a ping within 90 s: {system.log('worker1')}")
        system.start("beat")
        orders = make_orders(pair, args.orders)
        path = var / f"snapshots-{tag}.jsonl"
        path.write_text("".join(json.dumps(s) + "\n" for s in snapshots(orders)), encoding="utf-8")
        T0 = time.time()
        chaos = Chaos(system, random.Random(seed), until=T0 + (0 if args.no_chaos else args.duration))
        chaos.start()
        ingest = manage("ingest_snapshots", "--json", str(path))
        print(f"  run {run_no} (seed {seed}): {len(orders['paid'])} paid, 2 unpaid, 1 short; ingest exit "
              f"{ingest.returncode} {ingest.stdout.strip()}", flush=True)

        # Each paid order quotes for RUN_S once running, then is stopped as the API stops one.
        stop_at: dict[str, float] = {}
        running_at: dict[str, float] = {}
        paid_ids = [str(o.order_id) for o in orders["paid"]]
        stop_rng = random.Random(f"stops-{seed}")
        run_for = {oid: stop_rng.uniform(*RUN_S) for oid in paid_ids}
        all_ids = [str(o.order_id) for group in orders.values() for o in group]
        end_by = T0 + args.duration + QUIET_MAX_S + PAID_TIMEOUT_S
        while time.time() < end_by:
            states = dict(MarketMakingOrder.objects.filter(order_id__in=all_ids).values_list("order_id", "state"))
            states = {str(k): v for k, v in states.items()}
            now = time.time()
            for oid in paid_ids:
                if states[oid] == "running" and oid not in running_at:
                    running_at[oid] = now
                if oid in running_at and oid not in stop_at and now - running_at[oid] >= run_for[oid]:
                    stop_at[oid] = time.time()
                    stop_as_the_api(oid)
            chaos_over = now >= chaos.until
            if chaos_over and all(s in FINAL for s in states.values()):
                break
            if chaos_over and now >= max(chaos.until, max(stop_at.values(), default=T0)) + QUIET_MAX_S:
                break  # what is not final by now will not be: reported as stuck
            time.sleep(0.5)
        chaos.halt.set()
        chaos.join(timeout=120)
        ended = time.time()
        for name in ("beat", "worker"):
            system.stop(name)
        load_after = c.load_text()
        audit = manage("ledger_audit")
        recon = manage("reconcile")
        result = judge(orders, stop_at=stop_at, running_at=running_at, chaos=chaos, sim_url=sim_url)
    finally:
        if chaos is not None:
            chaos.halt.set()
        for name in ("beat", "worker", "broker"):
            try:
                system.stop(name)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if sim is not None:
            c.stop_process(sim)
    result.update({
        "seed": seed, "run": run_no, "tag": tag, "t0": T0,
        "stops": {oid: round(t - T0, 1) for oid, t in stop_at.items()}, "ingest_exit": ingest.returncode,
        "seconds": round(ended - T0, 1),
        "audit_exit": audit.returncode, "audit_output": audit.stdout + audit.stderr,
        "reconcile_exit": recon.returncode, "reconcile_output": recon.stdout + recon.stderr,
        "chaos_error": chaos.error, "first_reconcile": baseline_run, "load_before": load_before,
        "load_after": load_after,
    })
    return result


def judge(orders: dict[str, list], *, stop_at: dict, running_at: dict, chaos: Chaos, sim_url: str) -> dict:
    from exchanges.models import OPEN_ORDER_STATUSES, SimOrder
    from intents import ids
    from ledger.selectors import entry_amounts
    from orders.models import MarketMakingOrder, OrderTransition, OutgoingTransfer
    from strategy.models import StrategySession

    allowance = SWEEP_S + LEASE_MARGIN_S
    rows = []
    for kind, group in orders.items():
        for order in group:
            oid = str(order.order_id)
            order = MarketMakingOrder.objects.get(order_id=oid)
            final = (OrderTransition.objects.filter(order=order, to_state__in=FINAL).order_by("at").first())
            final_at = final.at.timestamp() if final else None
            if kind == "paid":
                start = stop_at.get(oid)
                deadline = start + STOP_BUDGET_S if start else None
            else:
                start = deadline = order.expires_at.timestamp()
            late = outage = None
            in_time = False
            if final_at is not None and deadline is not None:
                outage = outage_within(chaos.outages, start, final_at)
                late = final_at - deadline
                in_time = late <= allowance + outage
            # Money: what the user received, against what the order says it owed them.
            sent: dict[str, Decimal] = {}
            for asset, amount in OutgoingTransfer.objects.filter(opponent_id=order.user_id).values_list(
                    "asset_id", "amount"):
                sent[asset] = sent.get(asset, Decimal(0)) + amount
            if kind == "paid":
                owed = {k.rsplit(":", 1)[1]: v for k, v in entry_amounts(
                    f"mm-unlock:{oid}:{a}" for a in (BTC_ASSET_ID, USDT_ASSET_ID)).items() if v > 0}
                expected_state = "paid_out"
            elif kind == "short":
                owed = {BTC_ASSET_ID: order.base_amount, USDT_ASSET_ID: order.quote_amount / 2}
                expected_state = "failed"
            else:
                owed, expected_state = {}, "failed"
            open_left = SimOrder.objects.filter(client_order_id__startswith=ids.client_order_prefix(oid),
                                                status__in=OPEN_ORDER_STATUSES).count()
            session = StrategySession.objects.filter(order=order).values_list("status", flat=True).first()
            rows.append({
                "kind": kind, "order_id": oid, "state": order.state, "session": session,
                "stop_send_failed": SEND_FAILED.get(oid, 0), "expected_state": expected_state,
                "reason": order.reason[:200], "final": order.state in FINAL, "in_time": in_time,
                "late_s": None if late is None else round(late, 1),
                "outage_s": None if outage is None else round(outage, 1),
                "from": "stop" if kind == "paid" else "expires_at",
                "ran_s": round(stop_at[oid] - running_at[oid], 1) if oid in stop_at else None,
                "paid_right": sent == owed, "sent": {k: str(v) for k, v in sent.items()},
                "owed": {k: str(v) for k, v in owed.items()}, "open_on_exchange": open_left,
                "transitions": list(OrderTransition.objects.filter(order=order).values_list("to_state", flat=True)),
            })
    kills = {t: sum(1 for k in chaos.kills if k["target"] == t) for t in ("worker", "beat", "broker")}
    fills = _fills([r["order_id"] for r in rows if r["kind"] == "paid"])
    return {"orders": rows, "kills": kills, "kill_log": chaos.kills, "supervised": chaos.supervised, "fills": fills,
            "allowance_s": allowance}


def _fills(order_ids: list[str]) -> int:
    from ledger.models import LedgerEntry

    return LedgerEntry.objects.filter(operation="settle_fill", ref_id__in=order_ids).count()


def goals(r: dict) -> list[tuple[str, bool]]:
    rows = r["orders"]
    return [
        ("every order final", all(o["final"] for o in rows)),
        ("each in its expected state", all(o["state"] == o["expected_state"] for o in rows)),
        ("each within its deadline + one sweep + lease margin (+ outage)", all(o["in_time"] for o in rows)),
        ("each user paid exactly what was owed, once", all(o["paid_right"] for o in rows)),
        ("nothing left open on the exchange", all(o["open_on_exchange"] == 0 for o in rows)),
        ("ledger_audit clean", r["audit_exit"] == 0),
        ("reconcile clean", r["reconcile_exit"] == 0),
        ("no worker hung (alive, answering no ping: only a liveness check restarts it)",
         not any(e["event"] == "hung" for e in r["supervised"])),
        ("the chaos thread ran without error", r["chaos_error"] is None),
    ]


def report(r: dict) -> bool:
    print()
    print(f"run {r['run']} seed {r['seed']}: {r['seconds']} s from the payments to the end, kills {r['kills']}, "
          f"{r['fills']} fills settled, load {r['load_before']} -> {r['load_after']}")
    print("| kind | order | state | from | late (s) | outage (s) | in time | paid right | open | path |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for o in r["orders"]:
        path = " > ".join(o["transitions"][1:])
        print(f"| {o['kind']} | {o['order_id'][:8]} | {o['state']} | {o['from']} | {o['late_s']} | {o['outage_s']} "
              f"| {'yes' if o['in_time'] else 'NO'} | {'yes' if o['paid_right'] else 'NO'} | {o['open_on_exchange']} "
              f"| {path} |")
        if not (o["final"] and o["in_time"] and o["paid_right"]):
            print(f"|   | reason: {o['reason']!r}; session {o['session']}; stop sends that failed "
                  f"{o['stop_send_failed']}; sent {o['sent']}; owed {o['owed']} |")
    for event in r["supervised"]:
        print(f"supervisor: {event}")
    for name, key in (("ledger_audit", "audit"), ("reconcile", "reconcile")):
        print(f"{name}: exit {r[f'{key}_exit']}")
        if r[f"{key}_exit"] != 0:
            print("    " + r[f"{key}_output"].strip().replace("\n", "\n    "))
    ok = True
    for name, met in goals(r):
        ok &= met
        print(f"  {name}: {'met' if met else 'NOT met'}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="seed of the chaos (which process, when, how long down) "
                        "and of the simulator's price path; run k uses seed + k - 1")
    parser.add_argument("--rounds", type=int, default=1, help="runs, each from a fresh database and broker")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of chaos from the payments on")
    parser.add_argument("--orders", type=int, default=10, help="orders paid in full (plus 2 unpaid, 1 short)")
    parser.add_argument("--no-chaos", action="store_true", help="kill nothing (the undisturbed times)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")
    args = parser.parse_args()

    os.environ.setdefault("BENCH_DATABASE_NAME", "mm_bench_chaos")
    os.environ.setdefault("MM_VAR_DIR", "/tmp/var_bench_chaos")
    port = c.free_port()
    os.environ["CHAOS_REDIS_PORT"] = str(port)
    os.environ["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{port}/0"
    for name in ("CACHE_URL", "API_THROTTLE_URL", "EXCHANGE_BUDGET_URL"):
        os.environ.pop(name, None)  # everything on this run's own Redis
    c.bootstrap(settings_overrides=LIFECYCLE_ENV, fresh=False)
    logging.getLogger().setLevel(logging.WARNING)  # the processes log at INFO to their files; this one is the report
    for handler in logging.getLogger().handlers:
        handler.setLevel(logging.WARNING)
    logging.getLogger("mmproject.jobs").addHandler(SendFailures())
    results, ok = [], True
    for k in range(args.rounds):
        r = run_once(seed=args.seed + k, args=args, run_no=k + 1)
        results.append(r)
        ok &= report(r)
    print()
    chaos_s = 0 if args.no_chaos else args.duration
    print(f"chaos benchmark: {args.orders} paid + 2 unpaid + 1 short orders, chaos {chaos_s:g} s "
          f"(kill every {KILL_GAP_S[0]:g}-{KILL_GAP_S[1]:g} s, down {KILL_PAUSE_S[0]:g}-{KILL_PAUSE_S[1]:g} s), "
          f"sweep {SWEEP_S} s, lease margin {LEASE_MARGIN_S} s, stop budget {STOP_BUDGET_S:g} s")
    for r in results:
        late = [o["late_s"] for o in r["orders"] if o["late_s"] is not None]
        by_kind = {kind: max((o["late_s"] for o in r["orders"] if o["kind"] == kind and o["late_s"] is not None),
                             default=None) for kind in ("paid", "unpaid", "short")}
        restarts = len(r["supervised"])
        print(f"  seed {r['seed']}: final {sum(o['final'] for o in r['orders'])}/{len(r['orders'])}, in time "
              f"{sum(o['in_time'] for o in r['orders'])}, kills worker/beat/broker {r['kills']['worker']}/"
              f"{r['kills']['beat']}/{r['kills']['broker']}, supervisor restarts {restarts}, "
              f"worst late (s) {by_kind}, max {max(late, default=None)}"
              f", audit {r['audit_exit']}, reconcile {r['reconcile_exit']}")
    if args.json:
        print(json.dumps({"results": results}, default=str))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
