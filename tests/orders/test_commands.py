"""Management commands: mm_order create, stop_mm, mm_status, mm_resume (the JSON API: test_api.py)."""
import json
import re
import uuid
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from orders.memo import decode_memo
from orders.models import MarketMakingOrder, OrderTransition, Snapshot
from orders.services import snapshot_record

from .conftest import BTC, ETH, USDT, snapshot_payload

pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


def test_mm_order_create_prints_id_memo_and_required_amounts(pair, user_id, capsys):
    call_command("mm_order", "create", "--user", user_id, "--pair", str(pair.pair_id), "--base-amount", "0.5",
                 "--quote-amount", "1000", "--bid-spread", "0.001", "--ask-spread", "0.002", "--order-amount", "0.01")
    out = json.loads(capsys.readouterr().out)
    order = MarketMakingOrder.objects.get(order_id=out["order_id"])
    assert order.state == out["state"] == "payment_pending"
    memo = decode_memo(out["memo"])
    assert (memo.pair_id, memo.order_id) == (pair.pair_id, order.order_id)
    assert {(r["leg"], r["asset_id"], r["amount"]) for r in out["required"]} == {
        ("base", BTC, "0.5"), ("quote", USDT, "1000"), ("base_fee", BTC, "0.0001"), ("quote_fee", ETH, "0.002")}
    assert order.ask_spread == Decimal("0.002")
    assert OrderTransition.objects.get(order=order).by == "command:mm_order"


def test_mm_order_create_takes_the_strategy_parameters(pair, user_id, capsys):
    call_command("mm_order", "create", "--user", user_id, "--pair", str(pair.pair_id), "--base-amount", "0.5",
                 "--quote-amount", "1000", "--bid-spread", "0.001", "--ask-spread", "0.002", "--order-amount", "0.01",
                 "--order-level-spread", "0.0005", "--inventory-skew-enabled", "--inventory-target-base-pct", "0.4",
                 "--inventory-range-multiplier", "3", "--hanging-orders-enabled", "--order-refresh-tolerance-pct",
                 "0.0002", "--max-order-age-s", "300")
    order = MarketMakingOrder.objects.get(order_id=json.loads(capsys.readouterr().out)["order_id"])
    assert (order.order_level_spread, order.inventory_target_base_pct, order.inventory_range_multiplier,
            order.order_refresh_tolerance_pct) == (Decimal("0.0005"), Decimal("0.4"), Decimal(3), Decimal("0.0002"))
    assert (order.inventory_skew_enabled, order.hanging_orders_enabled, order.max_order_age_s) == (True, True, 300)


def test_mm_order_create_leaves_the_strategy_parameters_at_their_defaults(pair, user_id, capsys):
    call_command("mm_order", "create", "--user", user_id, "--pair", str(pair.pair_id), "--base-amount", "0.5",
                 "--quote-amount", "1000", "--bid-spread", "0.001", "--ask-spread", "0.002", "--order-amount", "0.01")
    order = MarketMakingOrder.objects.get(order_id=json.loads(capsys.readouterr().out)["order_id"])
    assert (order.inventory_skew_enabled, order.hanging_orders_enabled, order.max_order_age_s,
            order.order_level_spread) == (False, False, None, None)
    assert (order.inventory_target_base_pct, order.inventory_range_multiplier,
            order.order_refresh_tolerance_pct) == (Decimal("0.5"), Decimal(1), Decimal(0))


@pytest.mark.parametrize("option, value, message", [
    ("--inventory-target-base-pct", "1.2", "inventory_target_base_pct must be a fraction in [0, 1]"),
    ("--order-refresh-tolerance-pct", "-0.1", "order_refresh_tolerance_pct -0.1 is negative"),
    ("--max-order-age-s", "0", "max_order_age_s must be a positive integer"),
])
def test_mm_order_create_refuses_a_bad_strategy_parameter(pair, user_id, option, value, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("mm_order", "create", "--user", user_id, "--pair", str(pair.pair_id), "--base-amount", "1",
                     "--quote-amount", "1", "--bid-spread", "0.001", "--ask-spread", "0.001", "--order-amount", "0.1",
                     option, value)
    assert not MarketMakingOrder.objects.exists()


def test_mm_order_create_refuses_a_disabled_pair(pair, user_id):
    pair.enabled = False
    pair.save()
    with pytest.raises(CommandError, match="disabled"):
        call_command("mm_order", "create", "--user", user_id, "--pair", str(pair.pair_id), "--base-amount", "1",
                     "--quote-amount", "1", "--bid-spread", "0.001", "--ask-spread", "0.001", "--order-amount", "0.1")
    assert not MarketMakingOrder.objects.exists()


def test_stop_mm_of_an_unknown_order_fails_clearly():
    with pytest.raises(CommandError, match="no market-making order"):
        call_command("stop_mm", str(uuid.uuid4()))


def test_stop_mm_of_an_order_awaiting_payment_is_refused(order):
    with pytest.raises(CommandError, match="not allowed"):
        call_command("stop_mm", str(order.order_id))


def test_mm_status_json_counts_orders_snapshots_and_refunds(order, capsys):
    snapshot_record(provider="local", data=snapshot_payload(order, asset_id=USDT, amount="1"))
    call_command("mm_status", "--json")
    status = json.loads(capsys.readouterr().out)
    assert status["orders"]["payment_pending"] == 1 and status["orders"]["running"] == 0
    assert status["snapshots"] == {"received": 1}


def test_mm_resume_processes_a_snapshot_whose_job_was_lost(order, capsys, django_capture_on_commit_callbacks):
    # given a recorded snapshot whose processing job never reached a worker
    payload = snapshot_payload(order, asset_id=USDT, amount="1")
    with django_capture_on_commit_callbacks(execute=False):
        snapshot_record(provider="local", data=payload)
    # when the sweeper runs, its job is queued again
    with django_capture_on_commit_callbacks(execute=False) as queued:
        call_command("mm_resume")
    assert [(cb.args[0], cb.args[1]) for cb in queued] == [("process_market_making_snapshots",
                                                             (payload["snapshot_id"],))]
    assert json.loads(capsys.readouterr().out)["process_market_making_snapshots"] == 1
    assert Snapshot.objects.get(snapshot_id=payload["snapshot_id"]).outcome == "received"


def test_admin_action_stops_an_order_through_the_same_service(admin_client, order):
    from orders.models import OrderState

    MarketMakingOrder.objects.filter(pk=order.pk).update(state=OrderState.RUNNING)
    response = admin_client.post("/admin/orders/marketmakingorder/",
                                 {"action": "stop_orders", "_selected_action": [order.pk]}, follow=True)
    assert response.status_code == 200
    order.refresh_from_db()
    assert order.state == "stopped"
    assert OrderTransition.objects.filter(order=order).last().by == "admin:admin"


def test_mm_resume_ends_an_unpaid_expired_order_as_failed(order, capsys, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from orders.services import payment_check

    MarketMakingOrder.objects.filter(pk=order.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        call_command("mm_resume")
    assert [(cb.args[0], cb.args[1]) for cb in queued] == [("check_payment_complete", (str(order.order_id),))]
    assert payment_check(order_id=order.order_id) == "failed"


def test_mm_pair_create_then_an_order_on_it(user_id, capsys, db):
    call_command("mm_pair", "create", "--symbol", "BTC/USDT", "--base-asset", BTC, "--quote-asset", USDT,
                 "--exchange", "binance", "--base-fee-asset", BTC, "--base-fee", "0.0001")
    pair = json.loads(capsys.readouterr().out)
    assert pair["base_fee"] == {"asset_id": BTC, "amount": "0.0001"}
    call_command("mm_order", "create", "--user", user_id, "--pair", pair["pair_id"], "--base-amount", "1",
                 "--quote-amount", "10", "--bid-spread", "0.001", "--ask-spread", "0.001", "--order-amount", "0.1")
    order = json.loads(capsys.readouterr().out)
    assert {r["leg"] for r in order["required"]} == {"base", "quote", "base_fee"}
    call_command("mm_pair", "list")
    assert json.loads(capsys.readouterr().out)["pair_id"] == pair["pair_id"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--symbol", "BTCUSDT"], "BASE/QUOTE"),
        (["--base-asset", "btc"], "Mixin asset id"),
        (["--quote-asset", BTC], "different assets"),
        (["--base-fee", "0.1"], "needs base_fee_asset_id"),
        (["--exchange", ""], "exchange account or an exchange id"),
        (["--exchange-account", "999999"], "no exchange account"),
    ],
)
def test_mm_pair_create_refuses_bad_input(db, args, message):
    base = {"--symbol": "BTC/USDT", "--base-asset": BTC, "--quote-asset": USDT, "--exchange": "binance"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    with pytest.raises(CommandError, match=message):
        call_command("mm_pair", "create", *[part for item in base.items() for part in item])


def test_mm_order_show_prints_the_history(order, capsys):
    call_command("mm_order", "show", str(order.order_id))
    shown = json.loads(capsys.readouterr().out)
    assert shown["state"] == "payment_pending"
    assert [(h["from"], h["to"], h["by"]) for h in shown["history"]] == [("", "payment_pending", "test")]
    unknown = str(uuid.uuid4())
    with pytest.raises(CommandError, match=f"no market-making order {unknown}"):
        call_command("mm_order", "show", unknown)
    with pytest.raises(CommandError, match="not-an-id"):
        call_command("mm_order", "show", "not-an-id")


def test_admin_pages_of_the_lifecycle_render(admin_client, order):
    snapshot_record(provider="local", data=snapshot_payload(order, asset_id=USDT, amount="1"))
    for url in ("/admin/orders/marketmakingorder/", f"/admin/orders/marketmakingorder/{order.pk}/change/",
                "/admin/orders/snapshot/", "/admin/orders/refund/", "/admin/orders/marketmakingpair/",
                f"/admin/orders/marketmakingpair/{order.pair.pk}/change/", "/admin/orders/ordertransition/",
                "/admin/orders/exchangetransfer/", "/admin/strategy/strategysession/"):
        response = admin_client.get(url)
        assert response.status_code == 200, url
    assert str(order.order_id) in admin_client.get(f"/admin/orders/marketmakingorder/{order.pk}/change/").content.decode()


def test_resume_job_runs_the_sweeper(order, django_capture_on_commit_callbacks):
    from orders.tasks import resume_market_making

    payload = snapshot_payload(order, asset_id=USDT, amount="1")
    with django_capture_on_commit_callbacks(execute=False):
        snapshot_record(provider="local", data=payload)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        resume_market_making.run()
    assert [cb.args[0] for cb in queued] == ["process_market_making_snapshots"]
