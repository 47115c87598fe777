"""The account-wide request budget (exchanges/budget.py): one bucket per account shared by every process."""
import json
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal

import ccxt
import pytest
from django.test import Client

from exchanges import budget
from exchanges.budget import FileBackend, RedisBackend, attach_budget, budget_status
from exchanges.models import SimRateWindow
from exchanges.simulator.limits import REQUEST_WEIGHT, api_key_caller
from exchanges.simulator.services import simulator_set_faults
from tests.factories import SimulatedExchangeAccountFactory


@pytest.fixture
def budget_settings(settings, tmp_path):
    """A fresh key space for the buckets (the test run's Redis, or files in a temporary folder)."""
    settings.EXCHANGE_BUDGET_KEY_PREFIX = f"test-budget:{uuid.uuid4().hex[:8]}"
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        settings.EXCHANGE_BUDGET_URL = f"file://{tmp_path / 'budget'}"
    return settings


def backends(tmp_path, settings):
    found = [FileBackend(str(tmp_path / "files"))]
    if settings.CELERY_BROKER_URL.startswith("redis://"):
        found.append(RedisBackend(settings.CELERY_BROKER_URL))
    return found


@pytest.mark.embedded
def test_bookings_queue_one_after_another_on_every_backend(tmp_path, settings):
    for backend in backends(tmp_path, settings):
        key = f"test-budget:{uuid.uuid4().hex}"
        # Given an empty bucket of 100 ms per unit and no burst; when five requests of one unit book at once
        started = time.monotonic()
        waits = [backend.book(key, 100, 0, 0)[0] for _ in range(5)]
        elapsed_ms = (time.monotonic() - started) * 1000

        # Then each is due 100 ms after the one before it
        assert waits[0] <= 0
        for n in range(1, 5):
            assert 100 * n - elapsed_ms - 2 <= waits[n] <= 100 * n + 1, (type(backend).__name__, waits)


@pytest.mark.embedded
def test_new_orders_also_queue_on_their_own_lane(tmp_path, settings):
    for backend in backends(tmp_path, settings):
        key = f"test-budget:{uuid.uuid4().hex}"
        # Given weight nearly free but 100 ms per new order: three orders book 100 ms apart
        started = time.monotonic()
        waits = [backend.book(key, 1, 100, 0)[0] for _ in range(3)]
        elapsed_ms = (time.monotonic() - started) * 1000
        assert waits[0] <= 0, waits
        for n in (1, 2):
            assert 100 * n - elapsed_ms - 2 <= waits[n] <= 100 * n + 1, (type(backend).__name__, waits)
        # and a request that places no order queues behind them: first booked, first sent
        assert 200 - elapsed_ms - 50 <= backend.book(key, 1, 0, 0)[0] <= 201


@pytest.mark.embedded
def test_a_pause_without_retry_after_backs_off_doubling(tmp_path, settings):
    for backend in backends(tmp_path, settings):
        key = f"test-budget:{uuid.uuid4().hex}"
        assert 99 <= backend.pause(key, None, 100, 429) <= 100
        assert 199 <= backend.pause(key, None, 100, 429) <= 200
        assert backend.status(key)[1] == {"429": 2}
        # and a booking waits for the pause
        assert backend.book(key, 1, 0, 0)[0] >= 150


@pytest.mark.embedded
def test_attach_budget_sizes_the_bucket_from_ccxt(simulator, budget_settings):
    client = attach_budget(simulator.client(), simulator.account)
    sizing = client.mm_budget.sizing
    # Binance in ccxt: 50 ms a cost unit (1 weight = 0.2 unit: 6000 weight a minute); 100 orders per 10 s
    assert sizing.cost_ms == pytest.approx(50 / 0.9)
    assert sizing.order_ms == pytest.approx(100 / 0.9)
    assert client.throttle == client.mm_budget.acquire
    assert client.mm_budget.key == f"{budget_settings.EXCHANGE_BUDGET_KEY_PREFIX}:binance:{simulator.account.pk}"


@pytest.mark.embedded
def test_every_client_of_an_account_draws_on_one_budget(simulator, budget_settings):
    # Given two ccxt clients of one account (as two worker processes have), a budget of 200 ms a ping
    budget_settings.EXCHANGE_BUDGET_SHARE = 0.05  # ccxt: 50 ms x 0.2 a ping; at 5 %: 200 ms
    clients = [attach_budget(simulator.client(), simulator.account) for _ in range(2)]

    # When each sends five pings at the same time
    started = time.monotonic()
    threads = [threading.Thread(target=lambda c=c: [c.publicGetPing() for _ in range(5)]) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then the ten pings took the account's budget for ten (less the burst), not for five
    assert time.monotonic() - started >= (10 * 200 - 250 - 200) / 1000


@pytest.mark.embedded
def test_a_429_pauses_every_client_of_the_account_and_alerts(simulator, budget_settings, caplog):
    # Given two clients of one account, and the exchange answering the next signed request 429 (Retry-After: 1)
    first, second = (attach_budget(simulator.client(), simulator.account) for _ in range(2))
    simulator_set_faults(account_label=simulator.sim_label, http_429=1)

    # When the first client meets the 429
    with pytest.raises(ccxt.DDoSProtection):
        first.privateGetAccount()

    # Then the second client's next request waits for the Retry-After
    started = time.monotonic()
    second.publicGetPing()
    assert time.monotonic() - started >= 0.8
    # and the 429 was logged as an error with its event name, and counted on /metrics
    assert any(r.levelname == "ERROR" and "event=exchange_rate_limited" in r.getMessage() and "status=429"
               in r.getMessage() for r in caplog.records)
    assert budget_status(account_id=simulator.account.pk, exchange_id="binance")[1] == {"429": 1}
    metrics = Client().get("/metrics").content.decode()
    assert (f'mm_exchange_rate_limited_total{{account="{simulator.account.label}",'
            f'account_id="{simulator.account.pk}",status="429"}} 1.0') in metrics


HAMMER = """
import json, sys, time
import django
django.setup()
import ccxt
from exchanges.budget import attach_budget
from exchanges.clients import build_exchange_client
from exchanges.models import ExchangeAccount

account = ExchangeAccount.objects.get(pk=int(sys.argv[1]))
client = build_exchange_client(account, load_markets=False)
if sys.argv[2] == "shared":
    attach_budget(client, account)
print("ready", flush=True)
start, duration = (float(x) for x in sys.stdin.readline().split())
time.sleep(max(0.0, start - time.time()))
calls = limited = 0
while time.time() < start + duration:
    try:
        if calls % 2:
            client.privateGetOpenOrders({"symbol": "BTCUSDT"})  # weight 6
        else:
            client.privateGetAccount()  # weight 20
        calls += 1
    except (ccxt.DDoSProtection, ccxt.RateLimitExceeded):
        limited += 1
print(json.dumps({"calls": calls, "limited": limited}))
"""


def hammer(child_env, account, mode: str, n: int) -> list[subprocess.Popen]:
    """``n`` processes ready to hammer the exchange as ``account`` (``go`` tells them when); ``alone``: with
    ccxt's per-process limiter only."""
    env = dict(child_env, EXCHANGE_BUDGET_ENABLED="true" if mode == "shared" else "false")
    procs = [subprocess.Popen([sys.executable, "-c", HAMMER, str(account.pk), mode], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(n)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()[-3000:]
    return procs


def go(procs, start: float, duration: float) -> None:
    for proc in procs:
        proc.stdin.write(f"{start} {duration}\n")
        proc.stdin.flush()


def results(procs) -> list[dict]:
    found = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-3000:]
        found.append(json.loads(out.strip().splitlines()[-1]))
    return found


@pytest.mark.slow
def test_eight_processes_never_exceed_the_exchange_limit_with_the_shared_budget(simulator, budget_settings,
                                                                                child_env):
    # Given the exchange's 6000 weight a minute counted in 10 s windows (1000 each), and two accounts
    budget_settings.SIM_REQUEST_WEIGHT_WINDOW_S = 10
    limit = 1000
    shared, alone = (SimulatedExchangeAccountFactory(label=f"budget-{mode}", base_url=simulator.base_url,
                                                     api_key=f"budget-{mode}-key", sim_label=f"budget-{mode}",
                                                     sim_balances={"USDT": Decimal("1000")})
                     for mode in ("shared", "alone"))
    env = dict(child_env, EXCHANGE_BUDGET_KEY_PREFIX=budget_settings.EXCHANGE_BUDGET_KEY_PREFIX,
               EXCHANGE_BUDGET_URL=budget.budget_url())

    alone_procs, shared_procs = hammer(env, alone, "alone", 8), hammer(env, shared, "shared", 8)

    # When 8 processes hammer the exchange with ccxt's per-process limiter only, for 4 s
    start = time.time() + 0.5
    go(alone_procs, start, 4)
    # and then 8 processes with the shared budget, for 13 s
    go(shared_procs, start + 4.5, 13)
    alone_results, shared_results = results(alone_procs), results(shared_procs)

    # Then alone they went past the limit: the exchange answered 429 and 418
    alone_windows = list(SimRateWindow.objects.filter(caller=api_key_caller(alone.api_key), limit_type=REQUEST_WEIGHT))
    alone_max = max(w.used for w in alone_windows)
    assert alone_max > limit
    assert sum(r["limited"] for r in alone_results) > 0

    # and with the shared budget no window of the record went past it, nothing was refused
    windows = list(SimRateWindow.objects.filter(caller=api_key_caller(shared.api_key), limit_type=REQUEST_WEIGHT)
                   .order_by("window_start_ms"))
    used = [w.used for w in windows]
    print(f"alone: max weight per 10 s window {alone_max}; shared: {used} (limit {limit})")
    assert max(used) <= limit
    assert sum(w.refused for w in windows) == 0
    assert sum(r["limited"] for r in shared_results) == 0
    # while the budget, not the processes or the exchange, held them back: the exchange served the processes
    # alone more than that, and with the budget most of the budget was used
    assert max(used) >= 0.5 * limit
    # 90 % of 100 a second over the 13 s and the burst, plus what each of the 8 processes booked before the end
    # and sent after it (one request each, at most 20)
    assert sum(used) <= 0.9 * 100 * (13 + 0.25) + 8 * 20
