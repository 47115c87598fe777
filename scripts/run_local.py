#!/usr/bin/env python
"""Run the whole system locally with a live demo (`make run`; the database is migrated by make).

Starts, each in its own process group with its output in ``var/logs/NAME.log``:
  simulator  ``manage.py exchange_simulator`` on a loopback port, its price walking one step a second
  web        a waitress WSGI server on ``mmproject.wsgi`` (admin, /api/, the simulator API)
  worker     one Celery worker for the queues market-making, intents and tick
  beat       Celery beat (the tick every STRATEGY_TICK_SIZE_MS)
then ``demo_setup`` (operator login, exchange account on the simulator, pair, a demo order paid
with local snapshots; the account trades through ccxt's ``binance`` class, or ``okx`` with
MM_DEMO_EXCHANGE=okx) and a live view of the order until Ctrl-C. Ctrl-C (SIGINT) or SIGTERM:
``stop_mm`` for the demo order (its exchange orders cancelled, its funds settled and unlocked),
then every child gets SIGTERM, and SIGKILL after a grace; nothing is left running (see
``shut_down``). A second Ctrl-C skips waiting for stop_mm; the next run finishes that stop.

The environment decides the database and broker (DATABASE_URL, CELERY_BROKER_URL), as for every
process of the project. Ports: MM_WEB_PORT (default 8000, or a free one if 8000 is taken) and
MM_SIM_PORT (default: a free port).

``run_local.py web --port PORT`` is the web child itself.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
LOOPBACK = "127.0.0.1"
QUEUES = "market-making,intents,tick"
STOP_WAIT_S = 5.0        # stop_mm keeps cancelling and confirming this long
# Everything is gone this long after Ctrl-C: a child still there when its share runs out gets SIGKILL
# (a Celery worker's warm shutdown takes 5-10 s here; every job is acks_late and idempotent, so a
# killed one is redelivered and applied once).
SHUTDOWN_BUDGET_S = 11.0
MIN_GRACE_S = 2.0
READY_TIMEOUT_S = 60.0   # a child's port must answer within this
REFRESH_S = 1.5          # live view period
LINE_EVERY_S = 5.0       # without a terminal: one status line this often

# The demo's settings; an explicit environment value wins, except the withdrawal mode and the
# payment provider, which the demo needs (local snapshots pay the order; `transfer` moves the paid
# funds to the simulator and starts the strategy).
DEMO_ENV_DEFAULTS = {
    "STRATEGY_TICK_SIZE_MS": "1000",
    # Two orders of the ladder on their way at once (the worker runs two tasks at a time).
    "STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE": "2",
    "MM_PAYMENT_FIRST_CHECK_S": "1",
    "MM_PAYMENT_CHECK_INTERVAL_S": "2",
    "MM_WITHDRAWAL_CHECK_INTERVAL_S": "1",
    "SIM_STEP_MS": "1000",
    # ~1 bp a second, near BTC/USDT's (the standard deviation of the relative move per second);
    # SIM_VOLATILITY=0.00115 gives the stressed +-0.2 % a step.
    "SIM_VOLATILITY": "0.0001",
    "SIM_SEED": "42",
    "SIM_BALANCES": "USDT=0,BTC=0,ETH=0",
    "SIM_SYMBOLS": "BTC/USDT=30000,ETH/USDT=2000",
    # Ctrl-C stops the demo order and leaves its funds on the exchange: `manage.py mm_payout ORDER_ID` (or the
    # admin action) pays them out to the demo user; MM_PAYOUT_AFTER_STOP=auto pays out at every stop.
    "MM_PAYOUT_AFTER_STOP": "manual",
}
DEMO_ENV_FORCED = {"MM_WITHDRAW_MODE": "transfer", "MM_PAYMENT_PROVIDER": "local"}
# MM_PAYMENT_PROVIDER=mixin: the provider pays through a local Mixin Safe stand-in (docs/mixin.md), started
# as the "mixin" child with the demo bot's keys (kept in var/mixin-standin.json) and this much of each asset.
MIXIN_STANDIN_FUND = ("c6d0c728-2624-429b-8e0d-d9d19b6592fa=10", "4d8c508b-91c5-375b-92b0-ee702ed2dac5=100000")


def log(message: str) -> None:
    print(f"run_local: {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def without_password(url: str) -> str:
    """A database or broker URL fit for the terminal: its password masked."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the supervisor dies, even by SIGKILL, so a
    killed supervisor leaves no child running (the demo order then stays running: the next
    ``make run`` reuses it and Ctrl-C stops it)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Supervisor:
    def __init__(self, var_dir: Path, env: dict[str, str]):
        self.var_dir = var_dir
        self.logs_dir = var_dir / "logs"
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.stopping = False
        self.killing = False
        self.failed = False
        self.stop_requested_at: float | None = None

    # --- signals ------------------------------------------------------------------------
    def install_signals(self) -> None:
        def request_stop(signum, frame):
            if self.killing:
                return  # already stopping every child: nothing may interrupt that
            if self.stopping:
                # A second Ctrl-C while stopping: give up waiting, go straight to killing.
                raise KeyboardInterrupt
            self.stopping = True
            self.stop_requested_at = time.monotonic()

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGHUP, request_stop)  # the terminal closed: stop as for Ctrl-C

    # --- children -----------------------------------------------------------------------
    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        path = self.logs_dir / f"{name}.log"
        with open(path, "ab") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            out.flush()
            # Own session and process group: the terminal's Ctrl-C reaches only the supervisor, which
            # stops the demo order first; stopping a group also stops a worker's pool processes.
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent)
        self.procs[name] = proc
        log(f"started {name} pid={proc.pid} (log {path})")
        return proc

    def dead_child(self) -> str | None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return name
        return None

    def wait_port(self, name: str, port: int) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and not self.stopping:
            if port_answers(port):
                return True
            if self.procs[name].poll() is not None:
                break
            time.sleep(0.1)
        if not self.stopping:
            log(f"{name} is not answering on port {port}; see {self.logs_dir / (name + '.log')}")
        return False

    def stop_children(self, names: list[str], *, grace_s: float) -> None:
        """SIGTERM each (the leader only: a Celery worker then shuts its own pool down, a warm
        shutdown), SIGKILL to the whole group of each after ``grace_s``."""
        self.killing = True
        procs = {name: self.procs[name] for name in names if name in self.procs}
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log(f"{name} did not stop within {grace_s:.1f}s; killing it")
        for proc in procs.values():
            # Also a group whose leader is gone: a worker's pool processes must not outlive it.
            self._signal_group(proc, signal.SIGKILL)
            proc.wait()

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def children_commands(*, var_dir: Path, web_port: int, sim_port: int, seed: str) -> dict[str, list[str]]:
    manage = [PY, str(ROOT / "manage.py")]
    celery = [PY, "-m", "celery", "-A", "mmproject"]
    return {
        "simulator": manage + ["exchange_simulator", "--port", str(sim_port), "--seed", seed, "--threads", "4"],
        "web": [PY, str(Path(__file__).resolve()), "web", "--port", str(web_port)],
        "worker": celery + ["worker", "-Q", QUEUES, "--concurrency", "2", "-n", f"local-{os.getpid()}@%h",
                            "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        "beat": celery + ["beat", "--loglevel", "INFO", "--schedule", str(var_dir / "celerybeat-schedule")],
    }


def demo_env(var_dir: Path) -> dict[str, str]:
    forced = dict(DEMO_ENV_FORCED)
    if os.environ.get("MM_PAYMENT_PROVIDER") == "mixin":
        forced["MM_PAYMENT_PROVIDER"] = "mixin"
    env = {**DEMO_ENV_DEFAULTS, **os.environ, **forced}
    env.update({"PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "mmproject.settings", "MM_VAR_DIR": str(var_dir)})
    return env


def mixin_standin_command(var_dir: Path, env: dict[str, str], port: int) -> list[str]:
    """The Mixin Safe stand-in child, and the MIXIN_* settings (spend key encrypted) that point the
    provider at it; the demo bot's keys are made once and kept in the var directory."""
    import json
    import secrets
    import uuid

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from exchanges.crypto import encrypt_secret
    from orders.providers.mixin_safe import spend_public_key

    path = var_dir / "mixin-standin.json"
    if not path.exists():
        path.write_text(json.dumps({"client_id": str(uuid.uuid4()), "session_id": str(uuid.uuid4()),
                                    "session_seed": secrets.token_hex(32), "spend_seed": secrets.token_hex(32)}))
    bot = json.loads(path.read_text())
    session_public = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(bot["session_seed"])).public_key()
    env.update({"MIXIN_API_BASE": f"http://{LOOPBACK}:{port}", "MIXIN_CLIENT_ID": bot["client_id"],
                "MIXIN_SESSION_ID": bot["session_id"], "MIXIN_SESSION_PRIVATE_KEY": bot["session_seed"],
                "MIXIN_SPEND_PRIVATE_KEY": encrypt_secret(bot["spend_seed"]),
                # the simulator's withdrawals (a payout after stop) reach the bot's Safe deposit addresses
                "SIM_WITHDRAW_FORWARD_URL": f"http://{LOOPBACK}:{port}/_standin/deposit"})
    os.environ.update(env)
    # This process's settings were read at django.setup(), before these: point them at the stand-in too, so
    # nothing the supervisor runs itself (the demo's setup, stop_mm at Ctrl-C) can reach a real Mixin.
    from django.conf import settings

    for name in ("MIXIN_API_BASE", "MIXIN_CLIENT_ID", "MIXIN_SESSION_ID", "MIXIN_SESSION_PRIVATE_KEY",
                 "MIXIN_SPEND_PRIVATE_KEY", "SIM_WITHDRAW_FORWARD_URL"):
        setattr(settings, name, env[name])
    for name in ("MIXIN_PIN",):  # a real bot's PIN from the shell must not ride along with the stand-in's keys
        env.pop(name, None)
        os.environ.pop(name, None)
        setattr(settings, name, "")
    fund = [arg for item in MIXIN_STANDIN_FUND for arg in ("--fund", item)]
    return [PY, "-m", "orders.providers.mixin_standin", "--port", str(port), "--client-id", bot["client_id"],
            "--session-public-key", session_public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex(),
            "--spend-public-key", spend_public_key(bot["spend_seed"]), "--django", *fund]


def log_to_file(path: Path) -> None:
    """The supervisor's own Django logs go to a file: the terminal shows only the live view."""
    import logging

    root = logging.getLogger()
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)


def warm_exchange_client(label: str) -> None:
    """Build the ccxt client of the demo account now (seconds of CPU), not when Ctrl-C needs stop_mm."""
    from exchanges.clients import exchange_client
    from exchanges.models import ExchangeAccount

    try:
        exchange_client(account_id=ExchangeAccount.objects.get(label=label).pk)
    except Exception as exc:  # stop_mm builds it again if this failed; the view must go on
        log(f"exchange client not ready yet: {type(exc).__name__}: {exc}")


def live_view(sup: Supervisor, *, order_id: str, header: list[str]) -> None:
    """Refresh the view until a stop is requested or a child dies."""
    from django.db import close_old_connections

    from demo.selectors import demo_view
    from demo.view import render_line, render_screen
    from orders.models import MarketMakingOrder

    tty = sys.stdout.isatty()
    order = MarketMakingOrder.objects.select_related("pair").get(order_id=order_id)
    last_line = 0.0
    while not sup.stopping:
        dead = sup.dead_child()
        if dead:
            log(f"{dead} exited with {sup.procs[dead].returncode}; stopping (see {sup.logs_dir / (dead + '.log')})")
            sup.failed = True
            return
        close_old_connections()
        order.refresh_from_db()
        try:
            view = demo_view(order)
        except Exception as exc:  # the view must never take the demo down (e.g. a locked SQLite read)
            view = None
            log(f"live view skipped: {type(exc).__name__}: {exc}")
        if view is not None:
            if tty:
                sys.stdout.write("\033[H\033[J" + render_screen(view, header=header))
                sys.stdout.flush()
            elif time.monotonic() - last_line >= LINE_EVERY_S:
                print(render_line(view), flush=True)
                last_line = time.monotonic()
        deadline = time.monotonic() + REFRESH_S
        while time.monotonic() < deadline and not sup.stopping:
            time.sleep(0.1)


def stop_demo_order(order_id: str, *, quiet: bool = False) -> None:
    """``stop_mm`` for the demo order, when it is in a state that can stop (running or about to start)."""
    from django.core.management import CommandError, call_command
    from django.db import close_old_connections

    from orders.models import MarketMakingOrder, OrderState

    close_old_connections()
    state = MarketMakingOrder.objects.get(order_id=order_id).state
    if state not in (OrderState.RUNNING, OrderState.CAMPAIGN_JOINED):
        if not quiet:
            log(f"demo order {order_id} is {state}: nothing to stop_mm (the next make run continues it)")
        return
    log(f"stop_mm {order_id} (cancelling its orders on the exchange, settling, unlocking)")
    started = time.monotonic()
    try:
        call_command("stop_mm", order_id, "--wait", str(STOP_WAIT_S), "--reason", "make run stopped (Ctrl-C)")
    except CommandError as exc:
        log(f"stop_mm did not finish: {exc}")
        return
    log(f"demo order {order_id} is {MarketMakingOrder.objects.get(order_id=order_id).state} "
        f"({time.monotonic() - started:.1f}s)")


def shut_down(sup: Supervisor, order_id: str | None) -> None:
    """Stop the demo order, then every child; nothing may leave the order trading.

    1. stop_mm while the worker still runs (it finishes any intent in flight).
    2. Stop beat, the worker and the web process. A worker's warm shutdown finishes the job it
       holds, which may move an order that was on its way (e.g. start_mm): 3. stop_mm again if so,
       while the simulator still answers. 4. Stop the simulator.
    """
    if order_id is not None:
        try:
            stop_demo_order(order_id)
        except KeyboardInterrupt:
            log("second interrupt: stop_mm abandoned (the next make run finishes it)")
        except Exception as exc:  # the children must be stopped whatever happened
            log(f"stop_mm failed: {type(exc).__name__}: {exc}")
    log("stopping every process")
    started = sup.stop_requested_at or time.monotonic()
    left = SHUTDOWN_BUDGET_S - (time.monotonic() - started)
    sup.stop_children(["beat", "worker", "web"], grace_s=max(MIN_GRACE_S, left - MIN_GRACE_S))
    if order_id is not None:
        try:
            stop_demo_order(order_id, quiet=True)
        except Exception as exc:
            log(f"stop_mm failed: {type(exc).__name__}: {exc}")
    sup.stop_children(["simulator", "mixin"], grace_s=MIN_GRACE_S)
    log(f"all processes stopped ({time.monotonic() - started:.1f}s)")


def run() -> int:
    var_dir = Path(os.environ.get("MM_VAR_DIR") or ROOT / "var").resolve()
    var_dir.mkdir(parents=True, exist_ok=True)
    env = demo_env(var_dir)
    os.environ.update(env)  # the supervisor reads the same database as its children
    web_port = int(env.get("MM_WEB_PORT") or (8000 if port_free(8000) else free_port()))
    sim_port = int(env.get("MM_SIM_PORT") or free_port())
    sup = Supervisor(var_dir, env)
    sup.install_signals()
    order_id = None
    try:
        commands = children_commands(var_dir=var_dir, web_port=web_port, sim_port=sim_port, seed=env["SIM_SEED"])
        if env["MM_PAYMENT_PROVIDER"] == "mixin":
            import django

            django.setup()
            mixin_port = free_port()
            sup.start("mixin", mixin_standin_command(var_dir, env, mixin_port))
            if not sup.wait_port("mixin", mixin_port):
                sup.failed = not sup.stopping
                return 1 if sup.failed else 0
        sup.start("simulator", commands.pop("simulator"))
        if not sup.wait_port("simulator", sim_port):
            sup.failed = not sup.stopping
            return 1 if sup.failed else 0
        for name, cmd in commands.items():
            sup.start(name, cmd)

        import django

        django.setup()
        log_to_file(sup.logs_dir / "supervisor.log")
        from demo.errors import DemoError
        from demo.services import demo_setup
        from exchanges.management.commands.exchange_simulator import (
            DEFAULT_API_KEY,
            DEFAULT_API_SECRET,
            simulator_exchange_id,
        )

        try:
            result = demo_setup(exchange_url=f"http://{LOOPBACK}:{sim_port}", exchange_id=simulator_exchange_id(),
                                api_key=env.get("SIM_API_KEY") or DEFAULT_API_KEY,
                                api_secret=env.get("SIM_API_SECRET") or DEFAULT_API_SECRET)
        except DemoError as exc:
            log(f"demo setup failed: {exc}")
            sup.failed = True
            return 1
        order_id = result.order_id
        log(f"demo order {order_id} ({'created' if result.order_created else 'reused'}, {result.state}); "
            f"{result.snapshots}")
        warm_exchange_client(result.exchange_account)
        if not sup.wait_port("web", web_port):
            sup.failed = not sup.stopping
            return 1 if sup.failed else 0
        admin = f"http://{LOOPBACK}:{web_port}/admin/"
        header = [
            f"make run: admin {admin}  login {result.admin_user} / {result.admin_password}   Ctrl-C stops everything",
            f"          simulator http://{LOOPBACK}:{sim_port} ({result.exchange_id})  database "
            f"{without_password(env.get('DATABASE_URL') or 'sqlite (var)')}  broker "
            f"{without_password(env.get('CELERY_BROKER_URL') or 'filesystem://')}  logs {sup.logs_dir}",
            "",
        ]
        for line in header[:2]:
            log(line.strip())
        live_view(sup, order_id=order_id, header=header)
    except KeyboardInterrupt:
        log("second interrupt: not waiting for stop_mm")
        order_id = None
    finally:
        sup.stopping = True
        shut_down(sup, order_id)
    return 1 if sup.failed else 0


def serve_web(port: int) -> int:
    """The web child: waitress on 127.0.0.1:PORT, with the admin's static files served as well."""
    import waitress
    from django.contrib.staticfiles.handlers import StaticFilesHandler

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmproject.settings")
    sys.path.insert(0, str(ROOT))
    from mmproject.wsgi import application

    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    waitress.serve(StaticFilesHandler(application), host=LOOPBACK, port=port, threads=4, ident="mm")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode")
    web = sub.add_parser("web", help="serve the web process (what run_local starts as its web child)")
    web.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.mode == "web":
        return serve_web(args.port)
    sys.path.insert(0, str(ROOT))
    return run()


def exit_now(code: int) -> None:
    """Every child is gone: exit without the interpreter's teardown of ccxt, kombu and Django
    (seconds on a loaded machine, and Ctrl-C must end everything promptly)."""
    if "django" in sys.modules:
        from django.db import connections

        connections.close_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main(sys.argv[1:]))
