"""Two-sided quoting seen from outside: N demo sessions on the simulator, watched through ccxt.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mm .venv/bin/python bench/quoting.py   (or: make bench-quoting)
    ... bench/quoting.py --sessions 10 --seconds 120 --regimes realistic stressed [--base a2307d7] [--json] [--check]

The system as ``make run`` runs it: ``manage.py exchange_simulator`` stepping one step a second
(SIM_STEP_MS=1000), one Celery worker for the market-making, intents and tick queues (prefork, 2
processes, as scripts/run_local.py starts it) and Celery beat (the tick every STRATEGY_TICK_SIZE_MS,
1000 ms; two intents in flight per exchange account, the demo's). N running orders, each with the
demo order's parameters (demo.services.DEMO_ORDER: two layers, 0.05 % spreads, refresh 5 s) and its
funds (0.5 BTC + 15,000 USDT) credited and locked in the ledger and held on the simulator account,
each with its session started by strategy.services.session_start: from there the worker and beat
run the real tick, trackers, intents and executor.

The OBSERVER sees the market only through unmodified ccxt ``binance`` clients over HTTP, straight to
the simulator (one client per exchange account, plus one for the public book): every POLL_S it reads
each account's open orders (fetch_open_orders; a session's orders are those whose client order id
carries its prefix, intents.ids.client_order_prefix) and the book (fetch_order_book; the mid is taken
after removing our own orders from it). After the run it reads the accounts' trades
(fetch_my_trades) to tell an order that left the book because it filled from one that was cancelled.

Figures, per regime, over the S measured seconds after a warm-up:
- both sides: share of (session, sample) pairs with at least one open buy and one open sell; empty:
  with no open order at all; the longest stretch a session spent one-sided or empty (s);
- crossed: samples where a session's own best bid >= its own best ask (must be 0);
- the most open orders a session had on one side (the strategy's bound: 2 x layers, at most
  ``layers`` staying);
- refill after a fill: from the fill (the trade's time) until an order of the same session, side and
  layer (told by its amount: the demo's layers have different amounts) other than the filled one is
  on the book (its exchange creation time; the first sample that shows it finds it); p50 / p99 in
  seconds and ticks;
- exchange requests per session-minute: every HTTP request the system (worker, beat's tasks) sent
  to the simulator in the window, counted by a pass-through proxy that the exchange accounts'
  base URL points at (the simulator keeps no request count; the observer's own requests bypass it);
- the quoted spread: median of (own best ask - own best bid) / mid, and each side's distance from
  the mid, in bp.

``--order NAME=VALUE`` (repeatable) gives every session's order a strategy parameter other than the demo
order's (e.g. a deeper ladder for the stressed market). Beside the observer's figures, a diagnosis from inside:
each create's wait from its intent being written to the order's creation on the exchange (the simulator's
record), p50 / p99.

Regimes: ``realistic`` (SIM_VOLATILITY's default, 1 bp a second) and ``stressed`` (+-0.2 % a step,
one step a second: SIM_VOLATILITY=0.00115470053838, docs/simulator.md). Each run starts from a fresh
database (``mm_bench_quoting``, or BENCH_DATABASE_NAME) and a fresh simulator with the same seed, so
every run sees the same price path. ``--base REV`` also runs the worker and beat of another revision
(a git worktree with this tree's .venv) under the same simulator, set-up and observer, alternating
with this tree. The broker is CELERY_BROKER_URL when it is a Redis URL, else redis://127.0.0.1:6379/4;
its queues are purged at the start and end of every run. Every process started here is stopped at the
end of its run, also on Ctrl-C or TERM.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal, InvalidOperation
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

ROOT = c.ROOT
DEFAULT_BROKER = "redis://127.0.0.1:6379/4"
QUEUES = "market-making,intents,tick"
SEED = 42
POLL_S = 0.25
STRESSED_VOLATILITY = "0.00115470053838"  # +-0.2 % a step at one step a second (docs/simulator.md)
# What make run's worker and beat run with (scripts/run_local.py DEMO_ENV_DEFAULTS), written out so
# a base revision is run with the same values.
SYSTEM_ENV = {"STRATEGY_TICK_SIZE_MS": "1000", "STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE": "2",
              "STRATEGY_INTENT_EXECUTION_DRIVER": "worker", "LOG_LEVEL": "WARNING"}
GOALS = {"realistic": {"both_sides": 0.995}, "stressed": {"both_sides": 0.95, "refill_p99_ticks": 2.0}}


# --- the counting proxy (its own process) -------------------------------------------------------
def serve_proxy(port: int, upstream: str) -> int:
    """Forward /a/LABEL/PATH to the simulator's PATH, counting requests per (label, method, path).

    GET /__counts answers the counts as JSON. HTTP/1.1 keep-alive on both sides."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    up = urlsplit(upstream)
    counts: Counter = Counter()
    lock = threading.Lock()
    local = threading.local()
    hop = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection"}

    def upstream_call(method, path, body, headers):
        for attempt in (0, 1):
            conn = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection(up.hostname, up.port, timeout=60)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                local.conn = None
                if attempt:
                    raise

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _answer(self, status, headers, data):
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in hop and name.lower() not in ("date", "server"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _forward(self):
            if self.path.startswith("/__counts"):
                with lock:
                    data = json.dumps([[*k, v] for k, v in counts.items()]).encode()
                return self._answer(200, [("Content-Type", "application/json")], data)
            parts = self.path.split("/", 3)  # "", "a", LABEL, rest
            if len(parts) < 4 or parts[1] != "a":
                return self._answer(404, [], b"not a proxied path")
            label, rest = parts[2], "/" + parts[3]
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
            with lock:
                counts[(label, self.command, rest.split("?", 1)[0])] += 1
            try:
                status, resp_headers, data = upstream_call(self.command, rest, body, headers)
            except (OSError, http.client.HTTPException) as exc:
                return self._answer(502, [], f"proxy: {exc}".encode())
            self._answer(status, resp_headers, data)

        do_GET = do_POST = do_DELETE = do_PUT = _forward

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever(poll_interval=0.2)
    return 0


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def start_proxy(upstream: str, log_path: str) -> tuple[subprocess.Popen, str]:
    port = c.free_port()
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, __file__, "--proxy-port", str(port), "--proxy-upstream", upstream],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_die_with_parent)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy exited:\n{Path(log_path).read_text()[-2000:]}")
        try:
            proxy_counts(url)
            return proc, url
        except OSError:
            time.sleep(0.1)
    c.stop_process(proc)
    raise RuntimeError("the counting proxy did not answer within 30 s")


def proxy_counts(url: str) -> Counter:
    from urllib.request import urlopen

    with urlopen(f"{url}/__counts", timeout=5) as resp:
        return Counter({(label, method, path): n for label, method, path, n in json.loads(resp.read())})


# --- set-up -------------------------------------------------------------------------------------
# --order NAME=VALUE: a parameter of the sessions' orders other than the demo order's (an empty VALUE: null).
ORDER_OVERRIDES: dict[str, str] = {}


def demo_order_fields() -> dict:
    """demo.services.DEMO_ORDER with --order's overrides, each read as the order form reads it
    (strategy.params), as the model's field values."""
    from demo.services import DEMO_ORDER
    from strategy.params import BY_NAME as by_name
    from strategy.params import ParamError

    fields = {}
    for name, value in {**DEMO_ORDER, **ORDER_OVERRIDES}.items():
        param = by_name.get(name)
        if param is None:
            if name in ORDER_OVERRIDES:
                raise SystemExit(f"--order {name}: not a strategy parameter ({', '.join(sorted(by_name))})")
            if isinstance(value, str):
                try:
                    value = Decimal(value)
                except InvalidOperation:
                    pass
            fields[name] = value
            continue
        try:
            fields[name] = param.from_text(str(value))
        except ParamError as exc:
            raise SystemExit(f"--order {name}={value}: {exc}") from None
    return fields


def layer_amounts(fields: dict) -> list[Decimal]:
    base, change = fields["order_amount"], fields.get("amount_change_per_layer", Decimal(0))
    if fields.get("amount_change_type", "fixed") == "fixed":
        return [base + i * change for i in range(fields["number_of_layers"])]
    return [base * (1 + change) ** i for i in range(fields["number_of_layers"])]


def make_demo_sessions(proxy_url: str, *, sessions: int, accounts: int, tag: str) -> tuple[list, list]:
    """``accounts`` exchange accounts (each its own simulator account holding its sessions' funds, its
    base URL the counting proxy's /a/INDEX) and ``sessions`` running demo orders spread over them,
    funded in the ledger and started with session_start."""
    from datetime import timedelta

    from django.utils import timezone

    from exchanges.models import ExchangeAccount
    from exchanges.simulator.services import simulator_account_ensure
    from ledger import services as ledger
    from orders.models import ORDER_REF, MarketMakingOrder, MarketMakingPair, OrderState
    from strategy.services import session_start

    fields = demo_order_fields()
    per_account = [len(range(i, sessions, accounts)) for i in range(accounts)]
    rows = []
    for i in range(accounts):
        key, secret = f"{tag}-key-{i}", f"{tag}-secret-{i}"
        simulator_account_ensure(label=f"{tag}-sim-{i}", api_key=key, api_secret=secret, balances={
            "BTC": fields["base_amount"] * per_account[i], "USDT": fields["quote_amount"] * per_account[i]})
        account = ExchangeAccount(exchange_id="binance", label=f"{tag}-{i}", api_key=key,
                                  base_url=f"{proxy_url}/a/{i}")
        account.api_secret = secret
        account.save()
        account.plain_secret = secret
        rows.append(account)
    pairs = [MarketMakingPair.objects.create(
        exchange_account=a, symbol=c.SYMBOL, exchange_id="binance", base_asset_id=c.BTC, quote_asset_id=c.USDT,
        base_exchange_asset="BTC", quote_exchange_asset="USDT") for a in rows]
    now = timezone.now()
    orders = []
    for k in range(sessions):
        order = MarketMakingOrder.objects.create(
            user_id=f"{tag}-user-{k}", pair=pairs[k % accounts], exchange_account=rows[k % accounts],
            state=OrderState.RUNNING, memo="bench-quoting", expires_at=now + timedelta(hours=2), **fields)
        for asset, amount in ((c.BTC, fields["base_amount"]), (c.USDT, fields["quote_amount"])):
            ledger.credit_deposit(user_id=order.user_id, asset_id=asset, amount=str(amount),
                                  idempotency_key=f"{tag}-in:{order.order_id}:{asset}")
            ledger.lock_funds(user_id=order.user_id, asset_id=asset, amount=str(amount),
                              idempotency_key=f"{tag}-lock:{order.order_id}:{asset}", ref_type=ORDER_REF,
                              ref_id=str(order.order_id))
        orders.append(order)
    for order in orders:
        session_start(order_id=order.order_id)
    return rows, orders


# --- the observer -------------------------------------------------------------------------------
def ccxt_client(base_url: str, api_key: str = "", secret: str = ""):
    import ccxt

    from exchanges.clients import point_urls

    client = ccxt.binance({
        "apiKey": api_key, "secret": secret, "enableRateLimit": False, "timeout": 10000,
        "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False},
    })
    client.urls["api"] = point_urls(client.urls["api"], base_url)
    client.load_markets()
    return client


class Observer:
    """Polls each account's open orders and the book through ccxt, every POLL_S."""

    def __init__(self, sim_url: str, accounts: list, orders: list):
        from intents.ids import client_order_prefix

        self.clients = [ccxt_client(sim_url, a.api_key, a.plain_secret) for a in accounts]
        self.book_client = ccxt_client(sim_url)
        self.prefix = {client_order_prefix(o.order_id): str(o.order_id) for o in orders}
        index = {a.pk: i for i, a in enumerate(accounts)}
        self.sessions_of = [[str(o.order_id) for o in orders if index[o.exchange_account_id] == i]
                            for i in range(len(accounts))]
        self.samples: list[list] = [[] for _ in accounts]   # per account: (t, [orders])
        self.books: list[tuple[float, list, list]] = []     # (t, bids, asks)
        self.errors = 0

    def _poll_account(self, i: int) -> None:
        try:
            orders = self.clients[i].fetch_open_orders(c.SYMBOL)
        except Exception:  # noqa: BLE001 - an unanswered poll is a missing sample, counted
            self.errors += 1
            return
        t = time.time()
        self.samples[i].append((t, [(o["clientOrderId"] or "", o["id"], o["side"], float(o["price"]),
                                     float(o["amount"]), (o["timestamp"] or 0) / 1000) for o in orders]))

    def _poll_book(self) -> None:
        try:
            book = self.book_client.fetch_order_book(c.SYMBOL, limit=10)
        except Exception:  # noqa: BLE001
            self.errors += 1
            return
        self.books.append((time.time(), book["bids"], book["asks"]))

    def run(self, seconds: float) -> tuple[float, float]:
        from concurrent.futures import ThreadPoolExecutor

        jobs = [self._poll_book] + [lambda i=i: self._poll_account(i) for i in range(len(self.clients))]
        start = time.time()
        end = start + seconds
        with ThreadPoolExecutor(max_workers=min(len(jobs), 6)) as pool:
            k = 0
            while True:
                due = start + k * POLL_S
                if due >= end:
                    break
                pause = due - time.time()
                if pause > 0:
                    time.sleep(pause)
                list(pool.map(lambda job: job(), jobs))
                k = max(k + 1, int((time.time() - start) / POLL_S))  # a late poll skips, never bunches
        return start, end

    def trades(self, since_s: float) -> dict[str, tuple[float, float]]:
        """Exchange order id -> (filled quantity, time of its last trade), from fetch_my_trades."""
        filled: dict[str, list[float]] = {}
        for client in self.clients:
            from_id = None
            while True:
                params = {"fromId": from_id} if from_id is not None else {}
                batch = client.fetch_my_trades(c.SYMBOL, since=None if from_id else int(since_s * 1000),
                                               limit=1000, params=params)
                for t in batch:
                    qty, last = filled.get(t["order"], (0.0, 0.0))
                    filled[t["order"]] = (qty + float(t["amount"]), max(last, t["timestamp"] / 1000))
                if len(batch) < 1000:
                    break
                from_id = int(batch[-1]["id"]) + 1
        return filled


def own_mid(book: tuple, own: Counter) -> float | None:
    """The book's mid once our own open orders' quantities are taken out of its levels."""
    _, bids, asks = book

    def best(levels, side):
        for price, qty, *_ in levels:
            if qty - own.get((side, price), 0.0) > 1e-9:
                return price
        return None

    bid, ask = best(bids, "buy"), best(asks, "sell")
    return None if bid is None or ask is None else (bid + ask) / 2


def analyse(obs: Observer, *, start: float, end: float, fills: dict, amounts: list[float], tick_s: float) -> dict:
    import bisect

    book_times = [b[0] for b in obs.books]
    # Our own open quantity per (side, price) at each account sample time, for the mids.
    per_session: dict[str, list] = defaultdict(list)  # session -> [(t, mid, buys, sells)]
    seen: dict[str, dict] = {}  # exchange order id -> facts
    last_sample: dict[str, float] = {}
    for i, account_samples in enumerate(obs.samples):
        for t, orders in account_samples:
            own = Counter()
            for _, _, side, price, amount, _ in orders:
                own[(side, price)] += amount
            j = bisect.bisect_left(book_times, t)
            near = [x for x in (j - 1, j) if 0 <= x < len(obs.books)]
            mid = own_mid(obs.books[min(near, key=lambda x: abs(book_times[x] - t))], own) if near else None
            groups: dict[str, list] = {session: [] for session in obs.sessions_of[i]}
            for cid, oid, side, price, amount, created in orders:
                session = obs.prefix.get(cid[:14])
                if session not in groups:
                    continue
                level = min(range(len(amounts)), key=lambda i: abs(amounts[i] - amount))
                groups[session].append((oid, side, price, level, created))
                fact = seen.setdefault(oid, {"session": session, "side": side, "price": price, "amount": amount,
                                             "level": level, "created": created, "first": t})
                fact["last"] = t
            for session, rows in groups.items():
                per_session[session].append((t, mid, rows))
                last_sample[session] = max(last_sample.get(session, 0.0), t)
    samples = both = empty = crossed = 0
    longest = 0.0
    max_side = 0
    spreads, bid_bp, ask_bp = [], [], []
    for session, rows in per_session.items():
        rows.sort(key=lambda r: r[0])
        bad_since = None
        for t, mid, orders in rows:
            if not start <= t <= end:
                continue
            buys = [o[2] for o in orders if o[1] == "buy"]
            sells = [o[2] for o in orders if o[1] == "sell"]
            samples += 1
            max_side = max(max_side, len(buys), len(sells))
            if buys and sells:
                both += 1
                if bad_since is not None:
                    longest = max(longest, t - bad_since)
                    bad_since = None
                if max(buys) >= min(sells):
                    crossed += 1
                if mid:
                    spreads.append((min(sells) - max(buys)) / mid * 1e4)
            else:
                empty += not orders
                if bad_since is None:
                    bad_since = t
            if mid and buys:
                bid_bp.append((mid - max(buys)) / mid * 1e4)
            if mid and sells:
                ask_bp.append((min(sells) - mid) / mid * 1e4)
        if bad_since is not None:
            longest = max(longest, end - bad_since)
    # Refill after a fill: orders seen on the book that left it filled (their trades add up to their amount).
    latencies, unrefilled, fills_seen, cancels_seen, partial_gone = [], 0, 0, 0, 0
    slowest = []  # (latency, session, side, level, fill time - start): the slowest refills, for a look
    for oid, fact in seen.items():
        if fact["last"] >= last_sample.get(fact["session"], 0.0):
            continue  # still open at the end
        qty, fill_t = fills.get(oid, (0.0, 0.0))
        if qty <= 0:
            cancels_seen += 1
            continue
        if qty + 1e-9 < fact["amount"]:
            partial_gone += 1
            continue
        if not start <= fill_t <= end:
            continue
        fills_seen += 1
        refill = None
        for t, _, orders in per_session[fact["session"]]:
            if t < fill_t:
                continue
            match = [o for o in orders if o[0] != oid and o[1] == fact["side"] and o[3] == fact["level"]]
            if match:
                refill = max(fill_t, min(o[4] for o in match) if all(o[4] for o in match) else t)
                break
        if refill is None:
            unrefilled += 1
        else:
            latencies.append(refill - fill_t)
            slowest.append((round(refill - fill_t, 2), fact["session"][:8], fact["side"], fact["level"],
                            round(fill_t - start, 2)))
    slowest.sort(reverse=True)
    med = lambda xs: c.percentile(xs, 0.5) if xs else float("nan")  # noqa: E731
    return {
        "samples": samples, "both_sides": both / samples if samples else float("nan"),
        "empty": empty / samples if samples else float("nan"), "longest_gap_s": longest, "crossed": crossed,
        "max_open_per_side": max_side, "spread_bp": med(spreads), "bid_bp": med(bid_bp), "ask_bp": med(ask_bp),
        "fills_seen": fills_seen, "refills": len(latencies), "unrefilled": unrefilled,
        "refill_p50_s": med(latencies), "refill_p99_s": c.percentile(latencies, 0.99) if latencies else float("nan"),
        "refill_max_s": max(latencies) if latencies else float("nan"), "refill_slowest": slowest[:12],
        "refill_p50_ticks": med(latencies) / tick_s if latencies else float("nan"),
        "refill_p99_ticks": (c.percentile(latencies, 0.99) / tick_s) if latencies else float("nan"),
        "cancelled_seen": cancels_seen, "partly_filled_then_gone": partial_gone, "observer_errors": obs.errors,
        "per_session_both_sides_min": min(
            (sum(1 for t, _, o in rows if start <= t <= end and {x[1] for x in o} == {"buy", "sell"})
             / max(1, sum(1 for t, *_ in rows if start <= t <= end)) for rows in per_session.values()),
            default=float("nan")),
    }


def create_latencies(start: float, end: float) -> dict:
    """A diagnosis from inside, beside the observer's figures: how long a create took from its intent
    being written to the order's creation on the exchange (the simulator's own record), for the creates
    written in the window: the intents queue's wait plus the request."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT o.created_ms / 1000.0 - EXTRACT(EPOCH FROM i.created_at) FROM intents_intent i "
                    "JOIN exchanges_simorder o ON o.client_order_id = i.client_order_id "
                    "WHERE i.kind = 'create' AND EXTRACT(EPOCH FROM i.created_at) BETWEEN %s AND %s", [start, end])
        lags = sorted(float(row[0]) for row in cur.fetchall())
    if not lags:
        return {"create_lag_p50_s": float("nan"), "create_lag_p99_s": float("nan")}
    return {"create_lag_p50_s": c.percentile(lags, 0.5), "create_lag_p99_s": c.percentile(lags, 0.99)}


# --- one run ------------------------------------------------------------------------------------
def run_once(*, tree: Path, label: str, regime: str, volatility: str, args, run_no: int) -> dict:
    from django.core.management import call_command
    from django.db import connections

    var = Path(os.environ["MM_VAR_DIR"])
    tag = f"q{run_no}"
    connections.close_all()
    c.recreate_database(os.environ["DATABASE_URL"])
    call_command("migrate", verbosity=0, interactive=False)
    c.purge_queues(*QUEUES.split(","))
    procs: dict[str, object] = {}
    load_before = c.load_text()
    try:
        sim, sim_url = c.start_simulator(
            step_ms=1000, extra_args=("--seed", str(SEED)), log_path=str(var / f"simulator-{tag}.log"),
            env={"SIM_VOLATILITY": volatility, "SIM_SYMBOLS": f"{c.SYMBOL}={c.START_PRICE}",
                 "SIM_API_KEY": f"{tag}-unused", "SIM_API_SECRET": f"{tag}-unused"})
        procs["simulator"] = sim
        procs["proxy"], proxy_url = start_proxy(sim_url, str(var / f"proxy-{tag}.log"))
        accounts, orders = make_demo_sessions(proxy_url, sessions=args.sessions, accounts=args.accounts, tag=tag)
        amounts = [float(a) for a in layer_amounts(demo_order_fields())]
        layers = demo_order_fields()["number_of_layers"]
        observer = Observer(sim_url, accounts, orders)
        procs["worker"] = c.start_worker(queues=QUEUES, pool="prefork", concurrency=2, cwd=tree, name="quoting",
                                         env=SYSTEM_ENV, log_path=str(var / f"worker-{tag}.log"))
        c.wait_workers_ready([procs["worker"]])
        procs["beat"] = c.start_beat(cwd=tree, env=SYSTEM_ENV, schedule_path=str(var / f"beat-{tag}.schedule"),
                                     log_path=str(var / f"beat-{tag}.log"))
        warm_start = time.time()
        time.sleep(args.warmup)
        counts_before = proxy_counts(proxy_url)
        start, end = observer.run(args.seconds)
        counts_after = proxy_counts(proxy_url)
        window = time.time() - start
        for name in ("beat", "worker"):
            c.stop_process(procs.pop(name))
        fills = observer.trades(warm_start - 5)
        create_lag = create_latencies(start, end)
        load_after = c.load_text()
    finally:
        for name in ("beat", "worker", "proxy", "simulator"):
            if name in procs:
                c.stop_process(procs[name])
        c.purge_queues(*QUEUES.split(","))
    result = analyse(observer, start=start, end=end, fills=fills, amounts=amounts,
                     tick_s=int(SYSTEM_ENV["STRATEGY_TICK_SIZE_MS"]) / 1000)
    result.update(create_lag)
    spent = counts_after - counts_before
    by_path: Counter = Counter()
    for (_, method, path), n in spent.items():
        by_path[f"{method} {path}"] += n
    result.update({
        "tree": label, "regime": regime, "volatility": volatility, "sessions": args.sessions,
        "order_overrides": dict(ORDER_OVERRIDES),
        "accounts": args.accounts, "layers": layers, "bound_per_side": 2 * layers, "seconds": end - start,
        "requests": sum(spent.values()),
        "requests_per_session_minute": sum(spent.values()) / args.sessions / (window / 60),
        "requests_by_endpoint": dict(by_path.most_common()), "load_before": load_before, "load_after": load_after,
    })
    return result


# --- trees --------------------------------------------------------------------------------------
def git(*argv: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *argv], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def this_tree_label() -> str:
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return git("rev-parse", "--short", "HEAD") + ("+uncommitted" if dirty else "")


def add_worktree(rev: str) -> tuple[Path, str]:
    short = git("rev-parse", "--short", rev)
    path = ROOT / "var" / f"bench-quoting-base-{short}"
    if path.exists():
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)
        shutil.rmtree(path, ignore_errors=True)
    git("worktree", "add", "--detach", "--quiet", str(path), short)
    (path / ".venv").symlink_to(ROOT / ".venv")
    return path, short


# --- report -------------------------------------------------------------------------------------
def goal_text(r: dict) -> tuple[str, bool]:
    goals = GOALS[r["regime"]]
    parts, ok = [], True
    met = r["both_sides"] >= goals["both_sides"]
    ok &= met
    parts.append(f"both >= {goals['both_sides']:.1%}: {'met' if met else 'NOT met'}")
    if r["regime"] == "realistic":
        for name, met in (("never crossed", r["crossed"] == 0),
                          (f"<= {r['bound_per_side']} a side", r["max_open_per_side"] <= r["bound_per_side"])):
            ok &= met
            parts.append(f"{name}: {'met' if met else 'NOT met'}")
    else:
        p99 = r["refill_p99_ticks"]
        met = p99 == p99 and p99 <= goals["refill_p99_ticks"]
        ok &= met
        parts.append(f"refill p99 <= {goals['refill_p99_ticks']:g} ticks: {'met' if met else 'NOT met'}")
    return "; ".join(parts), ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--accounts", type=int, default=1,
                        help="exchange accounts the sessions are spread over (default 1: all on one, as demo orders "
                             "share the demo account)")
    parser.add_argument("--seconds", type=float, default=120.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds between beat's start and the measurement")
    parser.add_argument("--regimes", nargs="+", choices=["realistic", "stressed"], default=["realistic", "stressed"])
    parser.add_argument("--base", help="also run the worker and beat of this revision (git worktree), alternating")
    parser.add_argument("--rounds", type=int, default=1, help="runs per tree and regime")
    parser.add_argument("--tick-ms", type=int, help="STRATEGY_TICK_SIZE_MS of the worker and beat (default 1000, "
                                                    "as make run): how often the trackers poll and sessions run")
    parser.add_argument("--order", action="append", default=[], metavar="NAME=VALUE",
                        help="a strategy parameter of every session's order other than the demo order's, e.g. "
                             "--order number_of_layers=5 --order order_level_spread=0.001 (repeatable)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is not met")
    parser.add_argument("--proxy-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--proxy-upstream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tick_ms:
        SYSTEM_ENV["STRATEGY_TICK_SIZE_MS"] = str(args.tick_ms)
    for item in args.order:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--order {item}: expected NAME=VALUE")
        ORDER_OVERRIDES[name.strip()] = value.strip()
    if args.proxy_port:
        return serve_proxy(args.proxy_port, args.proxy_upstream)
    args.accounts = max(1, min(args.accounts, args.sessions))

    if not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        os.environ["CELERY_BROKER_URL"] = DEFAULT_BROKER
    os.environ.setdefault("BENCH_DATABASE_NAME", "mm_bench_quoting")
    os.environ.setdefault("MM_VAR_DIR", "/tmp/var_bench_quoting")
    c.bootstrap(settings_overrides=SYSTEM_ENV, fresh=False)
    from exchanges.simulator import config

    volatilities = {"realistic": str(config.DEFAULT_VOLATILITY), "stressed": STRESSED_VOLATILITY}
    trees = [("head", ROOT, this_tree_label())]
    base_path = None
    results = []
    try:
        if args.base:
            base_path, short = add_worktree(args.base)
            trees.append(("base", base_path, short))
        run_no = 0
        for rnd in range(args.rounds):
            for regime in args.regimes:
                order = trees if (run_no // max(1, len(trees))) % 2 == 0 else trees[::-1]
                for role, path, label in order:
                    run_no += 1
                    r = run_once(tree=path, label=label, regime=regime, volatility=volatilities[regime], args=args,
                                 run_no=run_no)
                    r["role"] = role
                    results.append(r)
                    print(f"  run {run_no}: {role} {label} {regime}: both sides {r['both_sides']:.1%}, empty "
                          f"{r['empty']:.1%}, longest gap {r['longest_gap_s']:.1f} s, crossed {r['crossed']}, max/side "
                          f"{r['max_open_per_side']}, refill p50/p99 {r['refill_p50_s']:.2f}/{r['refill_p99_s']:.2f} s "
                          f"({r['refills']} of {r['fills_seen']} fills), intent to exchange p50/p99 {r['create_lag_p50_s']:.2f}/"
                          f"{r['create_lag_p99_s']:.2f} s, {r['requests_per_session_minute']:.1f} "
                          f"req/session-min, spread {r['spread_bp']:.1f} bp (load {r['load_after']})", flush=True)
    finally:
        if base_path is not None:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_path)], cwd=ROOT, check=False)

    print()
    params = ("demo order parameters" if not ORDER_OVERRIDES else "demo order parameters but "
              + ", ".join(f"{k}={v}" for k, v in ORDER_OVERRIDES.items()))
    print(f"quoting benchmark: {args.sessions} sessions on {args.accounts} account(s), {params}, "
          f"simulator one step a second (seed {SEED}), worker (prefork 2) + beat, tick "
          f"{SYSTEM_ENV['STRATEGY_TICK_SIZE_MS']} ms, observer every {POLL_S} s for {args.seconds:g} s after "
          f"{args.warmup:g} s; broker {os.environ['CELERY_BROKER_URL']}")
    print()
    print("| tree | regime | both sides | worst session | empty | longest one-sided/empty | crossed | max open a side "
          "(bound) | refill p50 / p99 | fills (refilled) | requests / session-min | spread / bid / ask from mid | "
          "load | goal |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    ok = True
    for r in results:
        goal, met = goal_text(r)
        if r["role"] == "head":
            ok &= met
        print(f"| {r['tree']} | {r['regime']} | {r['both_sides']:.1%} | {r['per_session_both_sides_min']:.1%} | "
              f"{r['empty']:.1%} | {r['longest_gap_s']:.1f} s | {r['crossed']} | {r['max_open_per_side']} "
              f"({r['bound_per_side']}) | {r['refill_p50_s']:.2f} / {r['refill_p99_s']:.2f} s "
              f"({r['refill_p50_ticks']:.1f} / {r['refill_p99_ticks']:.1f} ticks) | {r['fills_seen']} "
              f"({r['refills']}) | {r['requests_per_session_minute']:.1f} | {r['spread_bp']:.1f} / "
              f"{r['bid_bp']:.1f} / {r['ask_bp']:.1f} bp | {r['load_after'].split()[0]} | {goal} |")
    if args.base:
        for regime in args.regimes:
            head = [r["requests_per_session_minute"] for r in results if r["role"] == "head" and r["regime"] == regime]
            base = [r["requests_per_session_minute"] for r in results if r["role"] == "base" and r["regime"] == regime]
            if head and base:
                h, b = sorted(head)[len(head) // 2], sorted(base)[len(base) // 2]
                print(f"{regime}: requests per session-minute head / base = {h:.1f} / {b:.1f} = {h / b:.2f}")
    print()
    print("requests by endpoint in the window (all sessions):")
    for r in results:
        print(f"  {r['tree']} {r['regime']}: {r['requests_by_endpoint']}")
    if args.json:
        print(json.dumps({"results": results}, default=str))
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
