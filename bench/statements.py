"""The hand-written statements of the hot paths against the ORM form a newcomer would write, on PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mm .venv/bin/python bench/statements.py

Each statement written by hand for speed (strategy/sql.py, intents/sql.py and the functions that
run them) is timed beside the ORM form with the same effect, per call, interleaved in one run:
rounds of BLOCK calls of each form in turn, the order rotating every round, so a burst of load
from elsewhere falls on every form alike. Each form is timed twice more inside
``mmproject.sql.prepared_statements()`` (server-side binding, statements prepared from their
second use), which is how the executor's statements run (``execute_intent``); the tick's lease
and ``halt_engaged`` (the strategy cycle) run outside it. Per call: median and p90 of the wall
time and of this process's CPU time (what the client spends building and binding the statement
and reading its rows; the server's work is in the wall time only), in microseconds.

Verdict: the hand-written form pays when, in the context the code runs it in, it saves at least
~20% and at least ~30 us of wall time a call; otherwise the ORM form reads better for what it
costs. The saving is the median over the rounds of the two forms' round medians side by side (a
burst of load spoils a round, not the figure); the CPU time saved is printed beside it.

Set-up: its own database (``mm_bench_statements`` on the server of DATABASE_URL, or
BENCH_DATABASE_NAME; dropped and re-created, dropped again at the end), 10 exchange accounts,
1,000 running sessions with their orders, 4,000 create intents (3,600 done with their tracked
orders, 400 new of which 300 claimed by ``intents.gates.claim_intents``: in flight, with their
slots and ``pending_create`` tracked orders), the kill switch row (released), the tick lease and
its histogram buckets, then ANALYZE. Batches are 4 intents (STRATEGY_INTENT_LANE_BATCH), rotating
over the 300 claims.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import uuid
from contextlib import nullcontext
from datetime import timedelta
from decimal import Decimal
from functools import reduce
from operator import or_
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as c  # noqa: E402

DATABASE = "mm_bench_statements"
ACCOUNTS, SESSIONS, INTENTS_PER_SESSION = 10, 1000, 4
NEW_INTENTS, CLAIMED = 400, 300
BATCH = 4
MIN_SAVING_US, MIN_SAVING_SHARE = 30.0, 0.20


# --- set-up -----------------------------------------------------------------------------------
def build_data() -> dict:
    from django.utils import timezone

    from intents.gates import claim_intents, sync_slots
    from intents.ids import client_order_id_for, strategy_key
    from intents.models import Intent, IntentKind, IntentStatus, TrackedOrder, TrackedOrderStatus, TradingHalt
    from strategy.metrics import tick_duration_buckets_complete
    from strategy.models import TICK_LEASE_NAME, TickLease

    accounts = c.make_accounts("http://127.0.0.1:9", ACCOUNTS, prefix="bs")
    orders = c.make_sessions(accounts, SESSIONS, layers=2, cadence_s=1, fund=False)
    now = timezone.now()
    intents, tracked = [], []
    tracked_statuses = (TrackedOrderStatus.OPEN, TrackedOrderStatus.FILLED, TrackedOrderStatus.CANCELLED)
    for n, order in enumerate(orders):
        key = strategy_key(order.order_id)
        for j in range(INTENTS_PER_SESSION):
            side, layer = ("buy", "sell")[j % 2], j // 2
            intent_id = f"{key}:bench:create:{side}{layer}"
            fresh = j == 0 and n < NEW_INTENTS  # one new intent on each of 400 sessions
            price = Decimal("29900") - 10 * layer if side == "buy" else Decimal("30100") + 10 * layer
            intents.append(Intent(
                intent_id=intent_id, kind=IntentKind.CREATE, strategy_key=key, account_id=order.exchange_account_id,
                symbol=c.SYMBOL, side=side, price=price, amount=Decimal("0.01"), layer=layer,
                client_order_id=client_order_id_for(order.order_id, intent_id),
                status=IntentStatus.NEW if fresh else IntentStatus.DONE,
                sent_at=None if fresh else now, finished_at=None if fresh else now, attempts=0 if fresh else 1,
            ))
            if not fresh:
                tracked.append(TrackedOrder(
                    client_order_id=intents[-1].client_order_id, strategy_key=key,
                    account_id=order.exchange_account_id, symbol=c.SYMBOL, side=side, price=price,
                    amount=Decimal("0.01"), layer=layer, status=tracked_statuses[(n + j) % 3],
                    exchange_order_id=f"ex-{n}-{j}"))
    Intent.objects.bulk_create(intents, batch_size=1000)
    TrackedOrder.objects.bulk_create(tracked, batch_size=1000)
    sync_slots([a.pk for a in accounts])
    claims = claim_intents(max_claims=CLAIMED)
    assert len(claims) == CLAIMED, f"claimed {len(claims)} of {CLAIMED}"
    TradingHalt.objects.create(name="global", engaged=False)
    TickLease.objects.get_or_create(name=TICK_LEASE_NAME)
    tick_duration_buckets_complete([])
    c.analyze()
    by_pk = {i.pk: i for i in Intent.objects.filter(pk__in=[cl.intent_pk for cl in claims])}
    batches = [claims[i:i + BATCH] for i in range(0, len(claims), BATCH)]
    return {"batches": batches, "keys": [[by_pk[cl.intent_pk].strategy_key for cl in b] for b in batches]}


# --- the ORM forms ----------------------------------------------------------------------------
def orm_forms():
    """The ORM form of each statement, with the same effect as the code's (behaviour included)."""
    from django.conf import settings
    from django.db import transaction
    from django.db.models import Exists, F, Q
    from django.utils import timezone

    from exchanges.models import ExchangeAccount
    from intents.gates import lease_seconds
    from intents.ids import order_id_of
    from intents.models import Intent, IntentSlot, IntentStatus, TrackedOrder, TradingHalt
    from strategy.metrics import tick_duration_observe
    from strategy.models import TICK_LEASE_NAME, SessionStatus, StrategySession, TickLease
    from strategy.periods import tick_period_ms
    from strategy.tick import _holder

    def tick_acquire(now, slot) -> bool:
        lease = timedelta(milliseconds=max(tick_period_ms() * 5, 5000))
        for _ in range(2):
            taken = TickLease.objects.filter(
                Q(lease_until__isnull=True) | Q(lease_until__lt=now), name=TICK_LEASE_NAME, last_slot__lt=slot,
            ).update(holder=_holder(), lease_until=now + lease, last_slot=slot, last_started_at=now)
            if taken:
                return True
            _, created = TickLease.objects.get_or_create(name=TICK_LEASE_NAME)
            if not created:
                break
        TickLease.objects.filter(name=TICK_LEASE_NAME).update(ticks_skipped=F("ticks_skipped") + 1)
        return False

    def tick_release(duration_ms: int) -> None:  # strategy.tick._release off PostgreSQL
        with transaction.atomic():
            released = TickLease.objects.filter(name=TICK_LEASE_NAME, holder=_holder()).update(
                lease_until=None, last_finished_at=timezone.now(), last_duration_ms=duration_ms,
                ticks_run=F("ticks_run") + 1, duration_ms_total=F("duration_ms_total") + duration_ms,
            )
            if released:
                tick_duration_observe(duration_ms)

    def write_sent_at(pks, sent_at) -> None:
        if pks:
            Intent.objects.filter(pk__in=pks).update(sent_at=sent_at)

    def halt_engaged() -> bool:
        return settings.STRATEGY_KILL_SWITCH or TradingHalt.objects.filter(name="global", engaged=True).exists()

    def accepting(keys, by_order_id) -> set[str]:
        return {by_order_id[o] for o in StrategySession.objects.filter(
            order__order_id__in=list(by_order_id), status=SessionStatus.RUNNING).values_list("order__order_id",
                                                                                            flat=True)}

    def sessions_accepting_orders(keys) -> set[str]:
        keys = list(dict.fromkeys(keys))
        if not keys or halt_engaged():
            return set()
        return accepting(keys, {uuid.UUID(order_id_of(key)): key for key in keys})

    def sessions_accepting_orders_one(keys) -> set[str]:
        """The same as one ORM statement: the halt row as a NOT EXISTS."""
        keys = list(dict.fromkeys(keys))
        if settings.STRATEGY_KILL_SWITCH or not keys:
            return set()
        by_order_id = {uuid.UUID(order_id_of(key)): key for key in keys}
        return {by_order_id[o] for o in StrategySession.objects.filter(
            ~Exists(TradingHalt.objects.filter(name="global", engaged=True)),
            order__order_id__in=list(by_order_id), status=SessionStatus.RUNNING,
        ).values_list("order__order_id", flat=True)}

    def read_batch(pks):
        intents = Intent.objects.in_bulk(pks)
        tracked = {t.client_order_id: t for t in TrackedOrder.objects.filter(
            client_order_id__in=[i.client_order_id for i in intents.values()])}
        accounts = ExchangeAccount.objects.in_bulk({i.account_id for i in intents.values()})
        return intents, tracked, accounts

    def renew_claims(claims) -> set[int]:
        """The same effect without RETURNING (QuerySet.update returns a count): lock and read the
        live rows, then update them; two statements where the code runs one, for the intents and
        for the slots."""
        if not claims:
            return set()
        now = timezone.now()
        lease = now + timedelta(seconds=lease_seconds())
        pairs = reduce(or_, (Q(pk=cl.intent_pk, claim_token=cl.token) for cl in claims))
        with transaction.atomic():
            renewed = list(Intent.objects.select_for_update().filter(
                pairs, status=IntentStatus.IN_FLIGHT, lease_until__gt=now).values_list("pk", flat=True))
            slots: dict[int, int] = {}
            if renewed:
                Intent.objects.filter(pk__in=renewed).update(lease_until=lease)
                live = list(IntentSlot.objects.select_for_update().filter(
                    intent_id__in=renewed, lease_until__gt=now).values_list("pk", "intent_id"))
                IntentSlot.objects.filter(pk__in=[pk for pk, _ in live]).update(lease_until=lease)
                for _, intent_pk in live:
                    slots[intent_pk] = slots.get(intent_pk, 0) + 1
            kept = {pk for pk in renewed if slots.get(pk) == 2}
            given_up = [pk for pk in renewed if pk not in kept]
            if given_up:
                Intent.objects.filter(pk__in=given_up).update(lease_until=now)
        return kept

    return dict(tick_acquire=tick_acquire, tick_release=tick_release, write_sent_at=write_sent_at,
                halt_engaged=halt_engaged, sessions_accepting_orders=sessions_accepting_orders,
                sessions_accepting_orders_one=sessions_accepting_orders_one, read_batch=read_batch,
                renew_claims=renew_claims)


# --- the cases --------------------------------------------------------------------------------
def cases(data: dict) -> list[dict]:
    """Each statement: its name, the context the code runs it in (prepared or not), and a call of
    each form taking the call's number."""
    from django.utils import timezone

    from intents import halt
    from intents import sql as intents_sql
    from intents.gates import renew_claims
    from strategy import tick
    from strategy.selectors import sessions_accepting_orders

    orm = orm_forms()
    batches, keys = data["batches"], data["keys"]
    pks = [[cl.intent_pk for cl in b] for b in batches]
    base = timezone.now()
    acquire_counter = iter(range(1, 10**9))  # shared by both forms: every acquire finds the lease free

    def acquire(fn):
        def call(_):
            n = next(acquire_counter)
            assert fn(base + timedelta(seconds=6 * n), n)  # the lease is 5 s: free again 6 s later
        return call

    def sent_at(fn):
        return lambda i: fn(pks[i % len(pks)], timezone.now())

    def accepting(fn):
        def call(i):
            assert len(fn(keys[i % len(keys)])) == BATCH
        return call

    def renew(fn):
        def call(i):
            assert len(fn(batches[i % len(batches)])) == BATCH
        return call

    return [
        dict(name="tick lease acquire", code="strategy.tick._acquire (tick_acquire_sql)", prepared=False,
             hand=acquire(tick._acquire), orm=acquire(orm["tick_acquire"])),
        dict(name="tick release", code="strategy.tick._release_in_one_statement (tick_release_sql)", prepared=False,
             hand=lambda i: tick._release_in_one_statement(40), orm=lambda i: orm["tick_release"](40)),
        dict(name="write sent_at, 4 intents", code="intents.sql.write_sent_at", prepared=True,
             hand=sent_at(intents_sql.write_sent_at), orm=sent_at(orm["write_sent_at"])),
        dict(name="sessions accepting orders, 4 keys", code="strategy.selectors.sessions_accepting_orders",
             prepared=True, hand=accepting(sessions_accepting_orders), orm=accepting(orm["sessions_accepting_orders"]),
             orm_one=accepting(orm["sessions_accepting_orders_one"])),
        dict(name="kill switch engaged?", code="intents.halt.halt_engaged", prepared=False,
             hand=lambda i: halt.halt_engaged(), orm=lambda i: orm["halt_engaged"]()),
        dict(name="batch read, 4 intents", code="intents.sql.read_batch", prepared=True,
             hand=lambda i: intents_sql.read_batch(pks[i % len(pks)]), orm=lambda i: orm["read_batch"](pks[i % len(pks)])),
        dict(name="renew 4 claims", code="intents.gates.renew_claims", prepared=True,
             hand=renew(renew_claims), orm=renew(orm["renew_claims"])),
    ]


# --- measuring --------------------------------------------------------------------------------
def measure(variants: dict[str, tuple], calls: int, block: int) -> dict[str, dict]:
    """Time each variant (name -> (call, prepared)) ``calls`` times, in rounds of ``block`` calls of
    each in turn (the order rotating every round); per call wall and CPU time in microseconds."""
    from mmproject.sql import prepared_statements

    names = list(variants)
    samples = {name: ([], []) for name in names}
    blocks = {name: ([], []) for name in names}  # per round: the median of the round's calls
    wall_ns, cpu_ns = time.perf_counter_ns, time.process_time_ns
    for warm in (True, False):  # a warm-up round of each, then the measured rounds
        for r in range(1 if warm else -(-calls // block)):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                call, prepared = variants[name]
                walls, cpus = samples[name]
                gc.collect()
                gc.disable()
                round_walls, round_cpus = [], []
                try:
                    with prepared_statements() if prepared else nullcontext():
                        for i in range(r * block, (r + 1) * block):
                            w0, c0 = wall_ns(), cpu_ns()
                            call(i)
                            c1, w1 = cpu_ns(), wall_ns()
                            round_walls.append((w1 - w0) / 1000)
                            round_cpus.append((c1 - c0) / 1000)
                finally:
                    gc.enable()
                if not warm:
                    walls += round_walls
                    cpus += round_cpus
                    blocks[name][0].append(statistics.median(round_walls))
                    blocks[name][1].append(statistics.median(round_cpus))
    return {name: {"wall_p50": statistics.median(w), "wall_p90": c.percentile(w, 0.9),
                   "cpu_p50": statistics.median(u), "cpu_p90": c.percentile(u, 0.9), "calls": len(w),
                   "round_wall": blocks[name][0], "round_cpu": blocks[name][1]}
            for name, (w, u) in samples.items()}


def saving(hand: dict, orm: dict, kind: str = "wall") -> tuple[float, float]:
    """What the hand-written form saves a call against the ORM form, in us and as a share of the
    ORM's time: the median over the rounds of the two forms' round medians side by side, so a
    burst of load from elsewhere spoils a round, not the figure."""
    pairs = list(zip(hand[f"round_{kind}"], orm[f"round_{kind}"]))
    return (statistics.median(o - h for h, o in pairs), statistics.median(1 - h / o for h, o in pairs))


def verdict(hand: dict, orm: dict) -> tuple[bool, float, float]:
    us, share = saving(hand, orm)
    return us >= MIN_SAVING_US and share >= MIN_SAVING_SHARE, us, share


def cell(f: dict) -> str:
    return f"{f['wall_p50']:.0f} / {f['wall_p90']:.0f} (CPU {f['cpu_p50']:.0f} / {f['cpu_p90']:.0f})"


def drop_database(url: str) -> None:
    import psycopg
    from django.db import connections
    from urllib.parse import urlsplit, urlunsplit

    connections.close_all()
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="measured calls of each form of each statement")
    parser.add_argument("--block", type=int, default=25, help="calls of one form in a row before the next form")
    parser.add_argument("--only", nargs="+", help="statements whose name contains one of these words")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()

    os.environ.setdefault("BENCH_DATABASE_NAME", DATABASE)
    url = c.bootstrap(settings_overrides={
        "STRATEGY_INTENT_MAX_IN_FLIGHT": str(CLAIMED),
        "STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE": str(CLAIMED // ACCOUNTS),
        "STRATEGY_INTENT_LEASE_S": "3600",  # the claims stay live for the whole run
    })
    try:
        data = build_data()
        load_before = c.load_text()
        figures = {}
        for case in cases(data):
            if args.only and not any(word in case["name"] for word in args.only):
                continue
            variants = {"hand": (case["hand"], False), "hand_prepared": (case["hand"], True),
                        "orm": (case["orm"], False), "orm_prepared": (case["orm"], True)}
            if "orm_one" in case:
                variants |= {"orm_one": (case["orm_one"], False), "orm_one_prepared": (case["orm_one"], True)}
            result = measure(variants, args.calls, args.block)
            figures[case["name"]] = {"case": case, "figures": result}
            print(f"  {case['name']}: " + "; ".join(f"{k} {cell(v)}" for k, v in result.items())
                  + f" (load {c.load_text()})", flush=True)
        load_after = c.load_text()
    finally:
        drop_database(url)

    print()
    print(f"hand-written statements vs the ORM, PostgreSQL {url.rsplit('@', 1)[-1]}: {args.calls} calls of each "
          f"form, interleaved in rounds of {args.block}; {SESSIONS} running sessions, "
          f"{SESSIONS * INTENTS_PER_SESSION} intents ({CLAIMED} in flight), batches of {BATCH}")
    print(f"load average before {load_before}, after {load_after}")
    print("per call, us: median / p90 of wall time (CPU: of this process's CPU time); hand-written as the code "
          "runs it (in prepared_statements for the executor's); verdict: the wall time saved against the ORM in "
          f"that context (median over the rounds of the round medians side by side), pays if >= {MIN_SAVING_US:.0f} us "
          f"and >= {MIN_SAVING_SHARE:.0%}")
    print()
    print("| statement | hand-written us (wall, CPU) | ORM us (wall, CPU) | ORM in prepared_statements us (wall, CPU) "
          "| verdict |")
    print("|---|---|---|---|---|")
    out = {}
    for name, entry in figures.items():
        case, f = entry["case"], entry["figures"]
        context = case["prepared"]
        hand = f["hand_prepared" if case["prepared"] else "hand"]
        orm_same = f["orm_prepared" if case["prepared"] else "orm"]
        pays, saving_us, share = verdict(hand, orm_same)
        cpu_us, cpu_share = saving(hand, orm_same, "cpu")
        label = f"{name}: `{case['code']}`" + (" (runs in prepared_statements)" if context else "")
        print(f"| {label} | {cell(hand)} | {cell(f['orm'])} | {cell(f['orm_prepared'])} | "
              f"{'pays' if pays else 'does not pay'}: saves {saving_us:.0f} us ({share:.0%}); CPU {cpu_us:.0f} us "
              f"({cpu_share:.0%}) |")
        if "orm_one" in f:
            one = f["orm_one_prepared" if case["prepared"] else "orm_one"]
            pays_one, saving_one, share_one = verdict(hand, one)
            cpu_one, cpu_one_share = saving(hand, one, "cpu")
            print(f"| {name}, ORM as one statement (halt row as NOT EXISTS) | {cell(hand)} | {cell(f['orm_one'])} | "
                  f"{cell(f['orm_one_prepared'])} | {'pays' if pays_one else 'does not pay'}: saves "
                  f"{saving_one:.0f} us ({share_one:.0%}); CPU {cpu_one:.0f} us ({cpu_one_share:.0%}) |")
        out[name] = {"pays": pays, "saving_us": saving_us, "saving_share": share, "cpu_saving_us": cpu_us,
                     **{k: {m: v for m, v in fig.items() if not m.startswith("round_")} for k, fig in f.items()}}
    if args.json:
        print(json.dumps({"load_before": load_before, "load_after": load_after, "figures": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
