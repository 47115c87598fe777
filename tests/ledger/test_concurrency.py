"""Many OS processes mutate the ledger at once: no lost update, no double spend, no double entry.

Each test funds accounts, runs tests/ledger/concurrency_worker.py in a subprocess on the test
database (it forks the writers, which start together at a barrier), then checks the database
against what the writers were told. Runs on PostgreSQL (row locks) and, marked embedded, on
SQLite (IMMEDIATE transactions with a busy timeout).
"""
import json
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from ledger import services
from ledger.models import LedgerEntry

from .helpers import assert_audit_clean, fresh

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

ROOT = Path(__file__).resolve().parents[2]
ZERO = Decimal(0)


def run_writers(child_env, scenario: str, spec: dict) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.ledger.concurrency_worker", scenario, json.dumps(spec)],
        cwd=ROOT, env=child_env, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not summary["errors"], "\n".join(summary["errors"])
    assert len(summary["pids"]) == spec["procs"]  # really that many OS processes
    assert len(summary["outcomes"]) == spec["procs"]
    return summary["outcomes"]


def fund(users, assets, available, locked):
    expected = defaultdict(lambda: [ZERO, ZERO])
    for user in users:
        for asset in assets:
            services.credit_deposit(user_id=user, asset_id=asset, amount=available + locked,
                                    idempotency_key=fresh("fund"))
            if locked:
                services.lock_funds(user_id=user, asset_id=asset, amount=locked, idempotency_key=fresh("fund"))
            expected[(user, asset)] = [Decimal(available), Decimal(locked)]
    return expected


def check_no_lost_update(expected, outcomes, entries_before):
    for outcome in outcomes:
        for user, asset, d_avail, d_locked in outcome["effects"]:
            expected[(user, asset)][0] += Decimal(d_avail)
            expected[(user, asset)][1] += Decimal(d_locked)
    for (user, asset), (available, locked) in expected.items():
        balance = services.get_balance(user_id=user, asset_id=asset)
        assert (balance.available, balance.locked) == (available, locked), (user, asset)
        assert balance.available >= 0 and balance.locked >= 0
    applied = sum(o["applied"] for o in outcomes)
    assert LedgerEntry.objects.count() == entries_before + applied
    assert_audit_clean()
    return applied


def test_mixed_mutations_on_one_balance_lose_no_update(transactional_db, child_env, user, asset):
    # given one user:asset with 300 available and 100 locked
    expected = fund([user], [asset], 300, 100)
    before = LedgerEntry.objects.count()
    # when 8 processes run 25 random mutations each on it at once
    outcomes = run_writers(child_env, "mixed", {"run": fresh("r"), "seed": 1, "procs": 8, "per_proc": 25,
                                                "users": [user], "assets": [asset]})
    # then every applied mutation is in the balance, and only refusals are missing
    applied = check_no_lost_update(expected, outcomes, before)
    assert applied + sum(o["refused"] for o in outcomes) == 200
    assert applied >= 100  # the mix is mostly fundable: the test exercises real contention


def test_two_thousand_mutations_over_fifty_accounts_lose_no_update(transactional_db, child_env):
    # given 50 users with two assets each, partly locked so fills can settle
    users = [fresh("user") for _ in range(50)]
    assets = [fresh("base"), fresh("quote")]
    expected = fund(users, assets, 200, 100)
    before = LedgerEntry.objects.count()
    # when 8 processes run 250 mutations each, fills (two rows locked in order) included
    outcomes = run_writers(child_env, "mixed", {"run": fresh("r"), "seed": 2, "procs": 8, "per_proc": 250,
                                                "users": users, "assets": assets})
    # then
    applied = check_no_lost_update(expected, outcomes, before)
    assert applied + sum(o["refused"] for o in outcomes) == 2000
    assert applied >= 1000


def test_fifty_concurrent_withdrawals_of_ten_from_a_hundred_spend_it_once(transactional_db, child_env, user, asset):
    fund([user], [asset], 100, 0)
    outcomes = run_writers(child_env, "withdraw", {"run": fresh("w"), "procs": 50, "user": user, "asset": asset,
                                                   "amount": "10"})
    assert sum(o["applied"] for o in outcomes) == 10
    assert sum(o["refused"] for o in outcomes) == 40
    assert services.get_balance(user_id=user, asset_id=asset).available == 0
    assert LedgerEntry.objects.filter(operation="debit_withdrawal", user_id=user).count() == 10
    assert_audit_clean()


def test_two_hundred_keys_sent_three_times_at_once_make_two_hundred_entries(transactional_db, child_env, asset):
    users = [fresh("user") for _ in range(10)]
    run = fresh("replay")
    outcomes = run_writers(child_env, "replay", {"run": run, "procs": 3, "keys": 200, "users": users,
                                                 "asset": asset})
    assert sum(o["applied"] for o in outcomes) == 200
    assert sum(o["replayed"] for o in outcomes) == 400
    assert LedgerEntry.objects.filter(idempotency_key__startswith=f"{run}-").count() == 200
    for user in users:
        assert services.get_balance(user_id=user, asset_id=asset).available == 20
    assert_audit_clean()
