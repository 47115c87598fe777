"""Shared set-up of the trading-runtime benchmarks (bench/tick.py, bench/intents.py, bench/worker_memory.py).

Each benchmark calls ``bootstrap()`` before importing Django models: it points DATABASE_URL at
its own PostgreSQL database (``mm_bench_rt`` on the server of DATABASE_URL, or
BENCH_DATABASE_NAME), drops it if it exists, creates and migrates it. The Celery broker is
CELERY_BROKER_URL when it is a Redis URL, else redis://127.0.0.1:6379/8; the queues the
benchmark used are purged when it ends.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_BROKER = "redis://127.0.0.1:6379/8"
SYMBOL = "BTC/USDT"
START_PRICE = Decimal("30000")
BTC, USDT = "asset-btc", "asset-usdt"


def bench_database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mm")
    parts = urlsplit(base)
    if not parts.scheme.startswith("postgres"):
        sys.exit("the trading-runtime benchmarks measure PostgreSQL: set DATABASE_URL=postgres://...")
    name = os.environ.get("BENCH_DATABASE_NAME", "mm_bench_rt")
    return urlunsplit(parts._replace(path=f"/{name}"))


def broker_url() -> str:
    url = os.environ.get("CELERY_BROKER_URL", "")
    return url if url.startswith("redis://") else DEFAULT_BROKER


def bootstrap(*, settings_overrides: dict[str, str] | None = None, fresh: bool = True) -> str:
    """Environment for this process and its children, a fresh migrated database; returns its URL."""
    # A TERM (timeout, Ctrl-C from make) unwinds like an exception, so every finally stops its processes.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    url = bench_database_url()
    os.environ["DATABASE_URL"] = url
    os.environ["CELERY_BROKER_URL"] = broker_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmproject.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # a log line per order would measure the terminal
    os.environ.setdefault("MM_VAR_DIR", "/tmp/var_bench_rt")
    os.makedirs(os.environ["MM_VAR_DIR"], exist_ok=True)
    for name, value in (settings_overrides or {}).items():
        os.environ[name] = value
    if fresh:
        recreate_database(url)
    import django

    django.setup()
    if fresh:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
    return url


def recreate_database(url: str) -> None:
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


# --- processes --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(*, threads: int = 8, log_path: str = "/tmp/var_bench_rt/simulator.log", step_ms: int = 0,
                    extra_args: tuple[str, ...] = (), env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """``manage.py exchange_simulator`` in its own process on a free loopback port; returns (proc, base URL).

    ``step_ms`` 0 (the default): markets move only on demand; ``extra_args`` (e.g. ``--seed``) and ``env``
    (over this process's environment) go to the command as given."""
    port = free_port()
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "exchange_simulator", "--port", str(port), "--threads", str(threads),
         "--step-ms", str(step_ms), *extra_args],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exchange_simulator exited:\n{Path(log_path).read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError("exchange_simulator did not listen within 60 s")


def start_worker(*, queues: str, pool: str = "solo", concurrency: int = 1, env: dict | None = None,
                 name: str = "bench", log_path: str, cwd: Path = ROOT) -> subprocess.Popen:
    """A real Celery worker process on ``queues`` (the code of the tree ``cwd``, default this one);
    ``wait_workers_ready`` waits until it answers."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mmproject", "worker", "-Q", queues, "-P", pool,
         "-c", str(concurrency), "-n", f"{name}-{os.getpid()}@%h", "-l", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=cwd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    proc.log_path = log_path
    return proc


def start_beat(*, schedule_path: str, log_path: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.Popen:
    """Celery beat (the tick every STRATEGY_TICK_SIZE_MS, reconcile, prune) of the tree ``cwd``, as
    ``make run`` starts it; its schedule files are removed first, so it starts afresh."""
    for suffix in ("", ".db", ".dat", ".dir", ".bak"):
        Path(schedule_path + suffix).unlink(missing_ok=True)
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "mmproject", "beat", "-l", "WARNING", "--schedule", schedule_path],
        cwd=cwd, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    proc.log_path = log_path
    return proc


def wait_workers_ready(procs: list[subprocess.Popen], timeout: float = 90) -> None:
    from mmproject.celery import app

    deadline = time.monotonic() + timeout
    expected = len(procs)
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited:\n{Path(proc.log_path).read_text()[-3000:]}")
        replies = app.control.ping(timeout=1.0) or []
        if len([r for r in replies if any(str(os.getpid()) in name for name in r)]) >= expected:
            return
    raise RuntimeError("workers did not answer a ping in time")


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    except ProcessLookupError:
        pass


def purge_queues(*queues: str) -> None:
    from mmproject.celery import app

    with app.connection_for_write() as conn:
        for queue in queues:
            try:
                conn.default_channel.queue_purge(queue)
            except Exception:  # a queue never declared has nothing to purge
                pass


# --- data -------------------------------------------------------------------------------------
def make_accounts(base_url: str, n: int, *, prefix: str = "bench") -> list:
    """``n`` exchange accounts, each its own simulator account with ample balances."""
    from exchanges.models import ExchangeAccount
    from exchanges.simulator.services import simulator_account_ensure, simulator_market_ensure

    simulator_market_ensure(symbol=SYMBOL, start_price=START_PRICE, seed=7)
    accounts = []
    for i in range(n):
        key, secret = f"{prefix}-key-{i}", f"{prefix}-secret-{i}"
        simulator_account_ensure(label=f"{prefix}-sim-{i}", api_key=key, api_secret=secret,
                                 balances={"USDT": Decimal("100000000"), "BTC": Decimal("10000")})
        account = ExchangeAccount(exchange_id="binance", label=f"{prefix}-{i}", api_key=key, base_url=base_url)
        account.api_secret = secret
        account.save()
        accounts.append(account)
    return accounts


def make_sessions(accounts: list, n: int, *, layers: int = 2, cadence_s: int = 1, spread: str = "0.002",
                  order_amount: str = "0.01", fund: bool = True) -> list:
    """``n`` running orders spread over ``accounts`` round robin, their locked balances and due sessions.

    Funds go through the ledger (credit_deposit, lock_funds with the order as reference) unless
    ``fund`` is false (benchmarks that never run the strategy).
    """
    from django.utils import timezone

    from ledger import services as ledger
    from orders.models import ORDER_REF, MarketMakingOrder, MarketMakingPair, OrderState
    from strategy.models import SessionStatus, StrategySession

    now = timezone.now()
    pairs = [MarketMakingPair.objects.get_or_create(
        exchange_account=a, symbol=SYMBOL,
        defaults=dict(exchange_id="binance", base_asset_id=BTC, quote_asset_id=USDT, base_exchange_asset="BTC",
                      quote_exchange_asset="USDT"))[0] for a in accounts]
    orders = MarketMakingOrder.objects.bulk_create([
        MarketMakingOrder(user_id=f"bench-user-{i}", pair=pairs[i % len(accounts)],
                          exchange_account=accounts[i % len(accounts)], state=OrderState.RUNNING, memo="bench",
                          base_amount=Decimal("1"), quote_amount=Decimal("40000"), bid_spread=Decimal(spread),
                          ask_spread=Decimal(spread), order_amount=Decimal(order_amount),
                          order_refresh_time=cadence_s, number_of_layers=layers,
                          expires_at=now + timedelta(hours=1))
        for i in range(n)
    ], batch_size=500)
    StrategySession.objects.bulk_create([
        StrategySession(order=o, status=SessionStatus.RUNNING, cadence_s=cadence_s, next_run_at=now, started_at=now)
        for o in orders
    ], batch_size=500)
    # Funds as the order lifecycle leaves them: deposited, then locked with the order as reference.
    for o in orders if fund else ():
        for asset, amount in ((BTC, "1"), (USDT, "40000")):
            ledger.credit_deposit(user_id=o.user_id, asset_id=asset, amount=amount,
                                  idempotency_key=f"bench-in:{o.order_id}:{asset}")
            ledger.lock_funds(user_id=o.user_id, asset_id=asset, amount=amount,
                              idempotency_key=f"bench-lock:{o.order_id}:{asset}", ref_type=ORDER_REF,
                              ref_id=str(o.order_id))
    return orders


def store_market_data(accounts: list, price: Decimal, *, half_spread: Decimal = Decimal("5")) -> None:
    """The tracker's view of the book, as if it had just fetched it: best bid/ask around ``price``."""
    from django.utils import timezone

    from strategy.models import MarketData

    now = timezone.now()
    for account in accounts:
        MarketData.objects.update_or_create(account=account, symbol=SYMBOL, defaults=dict(
            best_bid=price - half_spread, best_ask=price + half_spread, price_tick=Decimal("0.01"),
            amount_step=Decimal("0.00001"), min_amount=Decimal("0.00001"), min_notional=Decimal("5"),
            fetched_at=now))


def analyze() -> None:
    """Planner statistics for the rows the set-up just bulk-loaded, as autovacuum gathers them on a
    system that has been running: without them PostgreSQL guesses a handful of ledger entries and
    filters thousands of them row by row against the tick's list of orders."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("ANALYZE")


# --- figures ----------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"
