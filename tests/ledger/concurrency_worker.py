"""Child side of the ledger concurrency tests: real OS processes hammering the ledger at once.

Run as ``python -m tests.ledger.concurrency_worker SCENARIO JSON`` with ``DATABASE_URL`` set to
the test database (tests/conftest.py ``child_env``). Django is set up once; then ``procs``
children are forked (no connection open at fork time, so each opens its own), meet at a
barrier so their transactions overlap, run the scenario and report what the ledger answered.
The JSON summary is the last line of stdout; the test checks it against the database.
"""
import json
import multiprocessing
import os
import random
import sys
import traceback
from decimal import Decimal

BARRIER_TIMEOUT_S = 60
RESULT_TIMEOUT_S = 120


def _effects(op: str, user: str, asset: str, amount: Decimal):
    d_avail, d_locked = {
        "credit_deposit": (1, 0), "debit_withdrawal": (-1, 0), "lock_funds": (-1, 1),
        "unlock_funds": (1, -1), "debit_fee": (-1, 0), "credit_reward": (1, 0),
    }[op]
    return [[user, asset, str(d_avail * amount), str(d_locked * amount)]]


def mixed(child: int, spec: dict) -> dict:
    """Random single-asset mutations (and fills when two assets are given) on the spec's accounts."""
    from ledger import services
    from ledger.errors import InsufficientFunds

    rng = random.Random(spec["seed"] * 1000 + child)
    ops = ["credit_deposit", "debit_withdrawal", "lock_funds", "unlock_funds", "debit_fee", "credit_reward"]
    if len(spec["assets"]) > 1:
        ops.append("settle_fill")
    out = {"applied": 0, "refused": 0, "effects": []}
    for j in range(spec["per_proc"]):
        op = rng.choice(ops)
        user = rng.choice(spec["users"])
        key = f"{spec['run']}-{child}-{j}"
        amount = Decimal(rng.randint(1, 4000)).scaleb(-2)
        try:
            if op == "settle_fill":
                base, quote = spec["assets"][0], spec["assets"][1]
                side = rng.choice(["buy", "sell"])
                base_amount = Decimal(rng.randint(1, 300)).scaleb(-2)
                fee = Decimal(rng.randint(0, 5)).scaleb(-2)
                services.settle_fill(user_id=user, exchange=spec["run"], trade_id=f"{child}-{j}", side=side,
                                     base_asset_id=base, quote_asset_id=quote, base_amount=base_amount,
                                     quote_amount=amount, fee_asset_id=quote, fee_amount=fee)
                sign = 1 if side == "buy" else -1
                effects = [[user, base, "0", str(sign * base_amount)],
                           [user, quote, "0", str(-sign * amount - fee)]]
            else:
                asset = rng.choice(spec["assets"])
                result = getattr(services, op)(user_id=user, asset_id=asset, amount=amount, idempotency_key=key)
                assert result.applied, f"fresh key {key} was not applied"
                effects = _effects(op, user, asset, amount)
        except InsufficientFunds:
            out["refused"] += 1
            continue
        out["applied"] += 1
        out["effects"].extend(effects)
    return out


def withdraw(child: int, spec: dict) -> dict:
    """One debit_withdrawal per child, all from the same balance."""
    from ledger import services
    from ledger.errors import InsufficientFunds

    try:
        services.debit_withdrawal(user_id=spec["user"], asset_id=spec["asset"], amount=spec["amount"],
                                  idempotency_key=f"{spec['run']}-{child}")
    except InsufficientFunds:
        return {"applied": 0, "refused": 1}
    return {"applied": 1, "refused": 0}


def replay(child: int, spec: dict) -> dict:
    """Send every key of the spec (a deposit of 1 per key, to the key's user)."""
    from ledger import services

    out = {"applied": 0, "replayed": 0}
    for n in range(spec["keys"]):
        result = services.credit_deposit(user_id=spec["users"][n % len(spec["users"])], asset_id=spec["asset"],
                                         amount=1, idempotency_key=f"{spec['run']}-{n}")
        out["applied" if result.applied else "replayed"] += 1
    return out


SCENARIOS = {"mixed": mixed, "withdraw": withdraw, "replay": replay}


def _child(scenario: str, child: int, spec: dict, barrier, results):
    try:
        barrier.wait(BARRIER_TIMEOUT_S)
        outcome = SCENARIOS[scenario](child, spec)
    except BaseException:  # noqa: BLE001 - every failure is reported to the test, with its traceback
        outcome = {"error": traceback.format_exc()}
    finally:
        from django.db import connections

        connections.close_all()
    results.put(outcome)


def main(scenario: str, spec: dict) -> dict:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmproject.settings")
    django.setup()
    from django.db import connections

    connections.close_all()  # nothing open across the fork
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(spec["procs"])
    results = ctx.Queue()
    children = [ctx.Process(target=_child, args=(scenario, i, spec, barrier, results)) for i in range(spec["procs"])]
    for proc in children:
        proc.start()
    outcomes = [results.get(timeout=RESULT_TIMEOUT_S) for _ in children]
    for proc in children:
        proc.join(10)
    summary = {"errors": [o["error"] for o in outcomes if "error" in o],
               "outcomes": [o for o in outcomes if "error" not in o]}
    summary["pids"] = sorted({proc.pid for proc in children})
    return summary


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], json.loads(sys.argv[2]))))
