"""Operator commands on the command line: bad input (id, unknown order, file, line, value) is one clear
line on stderr and exit 2; --help explains each; --json is parseable where a machine reads it.

Every case is a real process: cases that need their own environment run ``python manage.py ...``;
the others run through tests/command_runner.py, which forks one process per command line after
importing Django once (the same ``execute_from_command_line`` manage.py runs), so the module
takes seconds, not a minute of interpreter starts.
"""
import json
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import load_command_class

from orders.models import Snapshot
from tests.factories import ExchangeAccountFactory
from tests.orders.conftest import BTC, USDT, make_order, pair, snapshot_payload, user_id  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent
UNKNOWN = "6f1c1b1e-0000-4000-8000-000000000000"
COMMANDS = {
    "stop_mm": "orders", "mm_status": "orders", "ingest_snapshots": "orders", "mm_order": "orders",
    "ledger_audit": "ledger", "reconcile": "reconciliation", "exchange_simulator": "exchanges",
    "rotate_exchange_secrets": "exchanges", "kill_switch": "orders", "mm_payout": "orders", "mm_account": "exchanges",
}


@dataclass
class Case:
    argv: list
    env: dict = field(default_factory=dict)
    result: subprocess.CompletedProcess = None

    @property
    def err_lines(self) -> list:
        return self.result.stderr.strip().splitlines()


def run_all(child_env, cases: dict) -> dict:
    """Run every case; fills ``case.result``."""
    forked = [case for case in cases.values() if not case.env]

    def run(case):
        case.result = subprocess.run([sys.executable, "manage.py", *case.argv], cwd=ROOT, env={**child_env, **case.env},
                                     capture_output=True, text=True, timeout=120)

    def run_forked():
        done = subprocess.run([sys.executable, str(ROOT / "tests" / "command_runner.py")], cwd=ROOT, env=child_env,
                              input=json.dumps([case.argv for case in forked]), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        for case, result in zip(forked, json.loads(done.stdout), strict=True):
            case.result = subprocess.CompletedProcess(case.argv, result["returncode"], result["stdout"],
                                                      result["stderr"])

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(run_forked)] + [pool.submit(run, case) for case in cases.values() if case.env]
        for future in futures:
            future.result()
    return cases


def assert_one_line_exit_2(case: Case, *fragments: str):
    assert case.result.returncode == 2, (case.argv, case.result.returncode, case.result.stderr)
    assert len(case.err_lines) == 1, case.result.stderr
    for fragment in fragments:
        assert fragment in case.err_lines[0], case.err_lines[0]


@pytest.mark.slow
def test_bad_input_to_every_command_is_one_line_and_exit_2(transactional_db, child_env, pair,  # noqa: F811
                                                           make_order, tmp_path, settings):  # noqa: F811
    # given an order awaiting payment, an account whose secret only an old key decrypts, and a snapshot file
    # with two good lines, one line that is not JSON and one that lacks its amount
    order = make_order(pair)
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.EXCHANGE_SECRET_KEYS = [old_key]
    acc = ExchangeAccountFactory(label="cmd-old-key", api_key="k", api_secret="s3cret", base_url="http://127.0.0.1:9")
    token_before = acc.api_secret_encrypted
    good = [snapshot_payload(order, asset_id=BTC, amount="0.1"), snapshot_payload(order, asset_id=USDT, amount="5")]
    lacking = dict(snapshot_payload(order, asset_id=USDT, amount="1"))
    del lacking["amount"]
    snapshots = tmp_path / "snapshots.jsonl"
    snapshots.write_text("\n".join([json.dumps(good[0]), "{not json", json.dumps(lacking), json.dumps(good[1])]) + "\n")
    pair_args = ["--user", str(uuid.uuid4()), "--base-amount", "1", "--quote-amount", "1", "--bid-spread", "0.01",
                 "--ask-spread", "0.01", "--order-amount", "0.1"]

    # when each command is given bad input
    cases = run_all(child_env, {
        "stop_mm bad id": Case(["stop_mm", "not-a-uuid"]),
        "stop_mm unknown order": Case(["stop_mm", UNKNOWN]),
        "stop_mm not stoppable": Case(["stop_mm", str(order.order_id)]),
        "mm_order show unknown": Case(["mm_order", "show", UNKNOWN]),
        "mm_order unknown pair": Case(["mm_order", "create", "--pair", UNKNOWN, *pair_args]),
        "mm_order bad amount": Case(["mm_order", "create", "--pair", str(pair.pair_id), *pair_args[:2],
                                     "--base-amount", "1.5e-3x", *pair_args[4:]]),
        "mm_order missing args": Case(["mm_order", "create"]),
        "mm_status bad option": Case(["mm_status", "--bogus"]),
        "ingest missing file": Case(["ingest_snapshots", str(tmp_path / "absent.jsonl")]),
        "ingest bad lines": Case(["ingest_snapshots", "--json", str(snapshots)]),
        "ledger_audit bad option": Case(["ledger_audit", "--since", "yesterday"]),
        "reconcile bad option": Case(["reconcile", "--bogus"]),
        "simulator bad port": Case(["exchange_simulator", "--port", "70000"]),
        "simulator bad balances": Case(["exchange_simulator", "--port", "8", "--setup-only"],
                                       env={"SIM_BALANCES": "USDT=lots"}),
        "rotate with no key that decrypts": Case(["rotate_exchange_secrets"], env={"EXCHANGE_SECRET_KEYS": new_key}),
        "prune_history negative days": Case(["prune_history", "--days", "-1"]),
        "kill_switch engage without a reason": Case(["kill_switch", "engage", "--yes"]),
        "mm_payout bad id": Case(["mm_payout", "not-a-uuid"]),
        "mm_payout unknown order": Case(["mm_payout", UNKNOWN]),
        "mm_payout not stopped": Case(["mm_payout", str(order.order_id)]),
    })

    # then each says what was wrong in one line and exits 2
    assert_one_line_exit_2(cases["stop_mm bad id"], "'not-a-uuid' is not a UUID")
    assert_one_line_exit_2(cases["stop_mm unknown order"], f"no market-making order {UNKNOWN}")
    assert_one_line_exit_2(cases["stop_mm not stoppable"], "payment_pending", "not allowed")
    assert_one_line_exit_2(cases["mm_order show unknown"], f"no market-making order {UNKNOWN}")
    assert_one_line_exit_2(cases["mm_order unknown pair"], f"no market-making pair {UNKNOWN}")
    assert_one_line_exit_2(cases["mm_order bad amount"], "1.5e-3x")
    assert_one_line_exit_2(cases["mm_order missing args"], "required", "--pair")
    assert_one_line_exit_2(cases["mm_status bad option"], "unrecognized arguments: --bogus")
    assert_one_line_exit_2(cases["ingest missing file"], "cannot read", "absent.jsonl")
    assert_one_line_exit_2(cases["ledger_audit bad option"], "unrecognized arguments: --since")
    assert_one_line_exit_2(cases["simulator bad port"], "--port 70000 is not a TCP port")
    assert_one_line_exit_2(cases["simulator bad balances"], "SIM_BALANCES", "'lots'")
    assert_one_line_exit_2(cases["rotate with no key that decrypts"], "no configured key decrypts it")
    assert_one_line_exit_2(cases["mm_payout bad id"], "'not-a-uuid' is not a UUID")
    assert_one_line_exit_2(cases["mm_payout unknown order"], f"no market-making order {UNKNOWN}")
    assert_one_line_exit_2(cases["mm_payout not stopped"], "payment_pending", "only a stopped order is paid out")
    assert_one_line_exit_2(cases["prune_history negative days"], "--days must be 0 or more, not -1")
    assert_one_line_exit_2(cases["kill_switch engage without a reason"], "needs --reason")
    # reconcile (its own app) keeps argparse's usage block above the one error line
    reconcile = cases["reconcile bad option"]
    assert reconcile.result.returncode == 2 and "unrecognized arguments: --bogus" in reconcile.err_lines[-1]

    # and the malformed lines are reported by number while the good ones were recorded
    ingest = cases["ingest bad lines"]
    assert ingest.result.returncode == 2
    assert json.loads(ingest.result.stdout) == {"new": 2, "known": 0, "malformed": 2}
    reported = [line for line in ingest.err_lines if line.startswith("line ")]  # besides the INFO log lines
    assert [line.split(":")[0] for line in reported] == ["line 2", "line 3"]
    assert "amount" in reported[1]
    assert set(Snapshot.objects.values_list("snapshot_id", flat=True)) == {p["snapshot_id"] for p in good}
    # and nothing was changed by the refused commands
    order.refresh_from_db()
    assert order.state == "payment_pending"
    acc.refresh_from_db()
    assert acc.api_secret_encrypted == token_before


@pytest.mark.slow
def test_json_output_is_parseable_where_a_machine_reads_it(transactional_db, child_env, settings):
    # given an account encrypted under an old key, the new key put first
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.EXCHANGE_SECRET_KEYS = [old_key]
    acc = ExchangeAccountFactory(label="cmd-rotate", api_key="k", api_secret="s3cret", base_url="http://127.0.0.1:9")

    cases = run_all(child_env, {
        "mm_status": Case(["mm_status", "--json"]),
        "ledger_audit": Case(["ledger_audit", "--json"]),
        "rotate": Case(["rotate_exchange_secrets", "--json"], env={"EXCHANGE_SECRET_KEYS": f"{new_key},{old_key}"}),
    })

    for case in cases.values():
        assert case.result.returncode == 0, case.result.stderr
    assert set(json.loads(cases["mm_status"].result.stdout)) >= {"orders", "snapshots", "refunds"}
    assert json.loads(cases["ledger_audit"].result.stdout)["ok"] is True
    assert json.loads(cases["rotate"].result.stdout) == {"rotated": 1}
    settings.EXCHANGE_SECRET_KEYS = [new_key]  # only the new key decrypts it now
    acc.refresh_from_db()
    assert acc.api_secret == "s3cret"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_explains_each_command(name):
    parser = load_command_class(COMMANDS[name], name).create_parser("manage.py", name)
    text = " ".join(parser.format_help().split())
    description = " ".join(parser.description.split())
    assert len(description) > 60, description
    assert description in text
    if name not in ("exchange_simulator", "mm_order"):
        assert "--json" in text


def test_kill_switch_engage_refuses_without_a_reason_and_asks_for_confirmation(pair, make_order, capsys):  # noqa: F811
    import io

    from django.core.management import call_command
    from django.core.management.base import CommandError

    from orders.models import MarketMakingOrder
    from orders.services.kill_switch import halt_engaged

    # given a running order
    order = make_order(pair)
    MarketMakingOrder.objects.filter(pk=order.pk).update(state="running")
    # when the switch is engaged without a reason (even with --yes), it is refused as bad input
    with pytest.raises(CommandError, match="needs --reason") as refused:
        call_command("kill_switch", "engage", "--yes", "--reason", "  ")
    assert refused.value.returncode == 2
    # when the operator does not confirm, nothing changes
    with pytest.raises(CommandError, match="not confirmed") as declined:
        call_command("kill_switch", "engage", "--reason", "key leaked", stdin=io.StringIO("no\n"))
    assert declined.value.returncode == 1
    assert "stop all 1 running orders" in capsys.readouterr().out
    assert not halt_engaged()
    assert MarketMakingOrder.objects.get(pk=order.pk).state == "running"
    # then, confirmed, it is engaged with the reason and the order is stopped
    call_command("kill_switch", "engage", "--reason", "key leaked", "--wait", "0", stdin=io.StringIO("yes\n"))
    assert "kill switch: ENGAGED (key leaked)" in capsys.readouterr().out
    assert halt_engaged()
    stopped = MarketMakingOrder.objects.get(pk=order.pk)
    assert stopped.state == "stopped" and stopped.reason == "kill switch: key leaked"
    call_command("kill_switch", "release")
    assert not halt_engaged()
