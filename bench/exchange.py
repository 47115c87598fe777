"""Exchange simulator benchmark: order round trips through real ccxt over loopback HTTP.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mm .venv/bin/python bench/exchange.py   (or: make bench-exchange)

It migrates its own database (``mm_bench_exchange`` on the server of DATABASE_URL, or
BENCH_DATABASE_NAME; a sqlite:// DATABASE_URL is used as given), starts
``manage.py exchange_simulator`` as a separate process on a free loopback port, and runs:
- ``serial, rate limit on``: one ccxt binance client as production configures it
  (enableRateLimit), placing and cancelling limit orders one after the other;
- ``serial, rate limit off``: the same without ccxt's throttle: the simulator's own latency;
- ``4 clients, rate limit off``: four accounts in parallel threads: the simulator's capacity.
One round trip = create (POST /order) + cancel (DELETE /order). Prints round trips/s, p50/p99
latency of one request, the simulator process's CPU time per order request (from
/proc/PID/stat) and the ccxt client's (this process), with the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def bench_database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mm")
    parts = urlsplit(base)
    if parts.scheme.startswith("sqlite"):
        return base
    name = os.environ.get("BENCH_DATABASE_NAME", "mm_bench_exchange")
    return urlunsplit(parts._replace(path=f"/{name}"))


def ensure_database(url: str) -> None:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        return
    import psycopg

    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def make_client(base_url: str, key: str, secret: str, rate_limit: bool):
    import ccxt

    from exchanges.clients import point_urls

    client = ccxt.binance({
        "apiKey": key, "secret": secret, "enableRateLimit": rate_limit,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
    })
    client.urls["api"] = point_urls(client.urls["api"], base_url)
    client.load_markets()
    return client


def round_trips(client, count: int, tag: str, latencies: list[float]) -> None:
    for i in range(count):
        started = time.perf_counter()
        order = client.create_order("BTC/USDT", "limit", "buy", "0.001", "25000", {"clientOrderId": f"{tag}-{i}"})
        created = time.perf_counter()
        client.cancel_order(order["id"], "BTC/USDT")
        done = time.perf_counter()
        latencies.extend((created - started, done - created))


def scenario(name: str, clients: list, per_client: int, sim_pid: int) -> dict:
    latencies: list[float] = []
    cpu_before = cpu_seconds(sim_pid)
    client_cpu_before = time.process_time()
    started = time.perf_counter()
    threads = [threading.Thread(target=round_trips, args=(c, per_client, f"{name[:6]}-{n}-{time.time_ns()}", latencies))
               for n, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(sim_pid) - cpu_before
    client_cpu = time.process_time() - client_cpu_before
    total = per_client * len(clients)
    ordered = sorted(latencies)
    return {
        "scenario": name,
        "round_trips": total,
        "round_trips_per_s": round(total / elapsed, 1),
        "request_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "request_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2),
        "sim_cpu_ms_per_order_request": round(cpu * 1000 / (2 * total), 2),
        "ccxt_cpu_ms_per_order_request": round(client_cpu * 1000 / (2 * total), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=200, help="round trips per client per scenario")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    url = bench_database_url()
    ensure_database(url)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "mmproject.settings", "LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update(env)
    import django

    django.setup()
    from exchanges.simulator.services import simulator_account_ensure

    accounts = [(f"bench-key-{n}", f"bench-secret-{n}") for n in range(4)]
    for n, (key, secret) in enumerate(accounts[1:], start=1):
        simulator_account_ensure(label=f"bench-{n}", api_key=key, api_secret=secret,
                                 balances={"USDT": "100000000"}, reset_balances=True)
    port = free_port()
    sim_env = {**env, "SIM_API_KEY": accounts[0][0], "SIM_API_SECRET": accounts[0][1], "SIM_ACCOUNT_LABEL": "bench-0",
               "SIM_BALANCES": "USDT=100000000,BTC=100", "SIM_SYMBOLS": "BTC/USDT=30000"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "exchange_simulator", "--port", str(port), "--seed", "1", "--reset",
         "--reset-balances", "--threads", "8"],
        cwd=ROOT, env=sim_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        import requests

        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base_url}/api/v3/ping", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if process.poll() is not None or time.monotonic() > deadline:
                    sys.exit("the simulator did not start")
                time.sleep(0.2)
        count = args.round_trips
        results = [
            scenario("serial, rate limit on", [make_client(base_url, *accounts[0], True)], count, process.pid),
            scenario("serial, rate limit off", [make_client(base_url, *accounts[0], False)], count, process.pid),
            scenario("4 clients, rate limit off", [make_client(base_url, *a, False) for a in accounts],
                     max(count // 2, 1), process.pid),
        ]
    finally:
        process.terminate()
        process.wait(timeout=10)
    database = "sqlite" if url.startswith("sqlite") else "postgresql"
    if args.json:
        print(json.dumps({"database": database, "load_average": os.getloadavg(), "results": results}))
        return
    print(f"database={database} load_average={' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for row in results:
        print(" ".join(f"{key}={value}" for key, value in row.items()))


if __name__ == "__main__":
    main()
