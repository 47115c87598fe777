"""deploy/alerts.yml, the Prometheus alerting rules: valid (``promtool check rules``), each one fired by its
own unit test (``promtool test rules deploy/alerts_test.yml``), and each one fired from /metrics: the state
it describes is built in the database, /metrics is scraped (once, or once a minute as the state moves),
and the scraped samples are fed to the real rule by promtool, which must raise that alert for that
series and nothing else."""
from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from django.db import connection
from django.utils import timezone

from exchanges.budget import backend, budget_key
from intents.halt import account_halt
from intents.ids import strategy_key
from intents.models import TrackedFill
from ledger import services as ledger
from mmproject import metrics
from orders.models import ORDER_REF, OrderState, Refund, RefundStatus
from strategy.models import MarketData, SessionStatus, StrategySession
from tests.factories import BTC, OrderFactory, TrackedOrderFactory
from tests.runtime_fixtures import make_running_order
from tests.test_metrics import account, intent, scrape

pytestmark = pytest.mark.embedded

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
ALERTS, ALERTS_TEST = DEPLOY / "alerts.yml", DEPLOY / "alerts_test.yml"


def promtool(*args, cwd=None) -> subprocess.CompletedProcess:
    path = shutil.which("promtool")
    assert path, "promtool is missing: make test installs it (scripts/ensure_promtool.sh)"
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def rules() -> dict[str, dict]:
    return {rule["alert"]: rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]}


def test_the_rules_pass_promtool_check():
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_each_rule_fires_in_its_promtool_unit_test():
    result = promtool("test", "rules", str(ALERTS_TEST))
    assert result.returncode == 0, result.stdout + result.stderr
    fired = {case["alertname"] for test in yaml.safe_load(ALERTS_TEST.read_text())["tests"]
             for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert fired == set(rules())


# --- Each rule from the state it describes, through /metrics ---------------------------------------------


def series_text(name: str, labels: tuple) -> str:
    escaped = ",".join(f'{k}="{v}"'.replace("\\", "\\\\") for k, v in labels)
    return f"{name}{{{escaped}}}"


def assert_fires(alert: str, scrapes: list[dict], *, labels: dict, hold_min: int, tmp_path) -> None:
    """Feed ``scrapes`` (one a minute, the last one held ``hold_min`` more minutes) to the rule ``alert``
    of deploy/alerts.yml with promtool, and assert that at the end it fires for the series ``labels``
    and for nothing else. The rule runs as written, less its annotations (alerts_test.yml checks those)."""
    rule = rules()[alert]
    names = set(re.findall(r"\bmm_\w+", rule["expr"]))
    keys = sorted({key for samples in scrapes for key in samples if key[0] in names})
    assert keys, f"/metrics has no series of {sorted(names)}"
    series = []
    for name, label_pairs in keys:
        values = ["_" if (name, label_pairs) not in s else repr(float(s[(name, label_pairs)])) for s in scrapes]
        series.append({"series": series_text(name, label_pairs), "values": " ".join(values + values[-1:] * hold_min)})
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "one", "rules": [
        {k: v for k, v in rule.items() if k != "annotations"}]}]}))
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": [{
            "eval_time": f"{len(scrapes) - 1 + hold_min}m", "alertname": alert,
            "exp_alerts": [{"exp_labels": {**rule.get("labels", {}), **labels}}]}]}],
    }))
    result = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


FROM_STATE = {}


def from_state(alert: str):
    def register(test):
        FROM_STATE[alert] = test.__name__
        return test
    return register


@pytest.fixture(autouse=True)
def fresh_metrics_state(settings, tmp_path):
    """Each test's own budget state (a file backend in its tmp dir) and no scan position kept from another
    test's rows (mmproject.metrics.open_rows)."""
    settings.EXCHANGE_BUDGET_URL = f"file://{tmp_path / 'budget'}"
    metrics._open_rows.clear()


def test_every_rule_is_fired_from_the_state_it_describes():
    assert set(FROM_STATE) == set(rules())


@from_state("ExchangeAccountHalted")
def test_a_halted_account_fires_exchange_account_halted(db, client, tmp_path):
    halted, trading = account("alert-halted"), account("alert-trading")
    account_halt(account_id=halted.pk, reason="AuthenticationError: -2015")

    samples = scrape(client)

    assert samples[("mm_exchange_account_halted", (("account", "alert-halted"), ("account_id", str(halted.pk))))] == 1
    assert samples[("mm_exchange_account_halted", (("account", "alert-trading"), ("account_id", str(trading.pk))))] == 0
    assert_fires("ExchangeAccountHalted", [samples], labels={"account": "alert-halted", "account_id": str(halted.pk)},
                 hold_min=1, tmp_path=tmp_path)


@from_state("QuotingTwoSidedLow")
def test_a_session_quoting_both_sides_half_the_time_fires_quoting_two_sided_low(db, client, tmp_path):
    order = make_running_order(account("alert-uptime"))
    scrapes = []
    for minute in range(20):  # the tracker samples 10 times a minute, 5 of them with both sides quoted
        StrategySession.objects.filter(order=order).update(quote_samples=10 * minute, two_sided_samples=5 * minute)
        scrapes.append(scrape(client))

    key = (("order_id", str(order.order_id)),)
    assert (scrapes[-1][("mm_session_quote_samples_total", key)],
            scrapes[-1][("mm_session_two_sided_samples_total", key)]) == (190, 95)
    assert_fires("QuotingTwoSidedLow", scrapes, labels={"order_id": str(order.order_id)}, hold_min=0,
                 tmp_path=tmp_path)


@from_state("OrderInventoryEmpty")
def test_an_order_holding_no_base_fires_order_inventory_empty(db, client, tmp_path):
    order = make_running_order(account("alert-inventory"), base="1")
    # its whole base moved out of its locked position (as fills selling it all would)
    ledger.unlock_funds(user_id=order.user_id, asset_id=BTC, amount=Decimal("1"), idempotency_key="alert-unlock",
                        ref_type=ORDER_REF, ref_id=str(order.order_id))

    samples = scrape(client)

    assert samples[("mm_order_inventory", (("asset", "BTC"), ("order_id", str(order.order_id))))] == 0
    assert samples[("mm_order_inventory", (("asset", "USDT"), ("order_id", str(order.order_id))))] == 40000
    assert_fires("OrderInventoryEmpty", [samples], labels={"order_id": str(order.order_id), "asset": "BTC"},
                 hold_min=11, tmp_path=tmp_path)


@from_state("OrderPnlDrawdown")
def test_an_order_that_bought_above_the_mid_fires_order_pnl_drawdown(db, client, tmp_path):
    acc = account("alert-pnl")
    order = make_running_order(acc, base="1", quote="40000")
    # it bought 1 BTC at 40000 (fee 0.001 BTC) and the mid is now 20000
    tracked = TrackedOrderFactory(account=acc, strategy_key=strategy_key(order.order_id), price=Decimal("40000"),
                                  amount=Decimal("1"), status="filled", filled=Decimal("1"))
    TrackedFill.objects.create(account=acc, trade_id="t1", symbol="BTC/USDT", tracked_order=tracked,
                               strategy_key=tracked.strategy_key, side="buy", price=Decimal("40000"),
                               amount=Decimal("1"), cost=Decimal("40000"), fee=Decimal("0.001"), fee_currency="BTC",
                               traded_at_ms=1, ledger_entry_id=1)
    MarketData.objects.create(account=acc, symbol="BTC/USDT", best_bid=Decimal("19999"), best_ask=Decimal("20001"),
                              price_tick=Decimal("0.01"), amount_step=Decimal("0.0001"), fetched_at=timezone.now())

    samples = scrape(client)

    key = (("order_id", str(order.order_id)),)
    # PnL = (1 - 0.001) x 20000 - 40000; funding at the mid = 1 x 20000 + 40000
    assert samples[("mm_order_pnl_quote", key)] == -20020
    assert samples[("mm_order_value_quote", key)] == 60000
    assert_fires("OrderPnlDrawdown", [samples], labels={"order_id": str(order.order_id)}, hold_min=16,
                 tmp_path=tmp_path)


@from_state("FillsUnsettled")
def test_a_fill_that_could_not_settle_fires_fills_unsettled(db, client, tmp_path):
    acc = account("alert-fills")
    tracked = TrackedOrderFactory(account=acc)
    for n, entry in enumerate((7, None, 8)):  # the second one's fee currency is mapped to no asset
        TrackedFill.objects.create(account=acc, trade_id=f"t{n}", symbol="BTC/USDT", tracked_order=tracked,
                                   strategy_key=tracked.strategy_key, side="buy", price=Decimal("30000"),
                                   amount=Decimal("0.01"), cost=Decimal("300"), fee=Decimal("0.1"),
                                   fee_currency="BNB", traded_at_ms=n, ledger_entry_id=entry,
                                   settle_error="" if entry else "no exchange currency maps binance:BNB")

    samples = scrape(client)

    assert samples[("mm_fills_unsettled", ())] == 1
    assert samples[("mm_fills_unsettled_oldest_seconds", ())] > 0
    assert_fires("FillsUnsettled", [samples], labels={}, hold_min=11, tmp_path=tmp_path)
    # settled: the next scrape counts it out
    TrackedFill.objects.filter(ledger_entry_id__isnull=True).update(ledger_entry_id=9)
    assert scrape(client)[("mm_fills_unsettled", ())] == 0


@from_state("IntentsStuck")
def test_an_intent_sent_long_ago_and_unresolved_fires_intents_stuck(db, client, tmp_path, settings):
    acc = account("alert-stuck")
    now = timezone.now()
    intent(acc, "in_flight", sent_at=now - timedelta(seconds=settings.METRICS_STUCK_INTENT_S + 60))
    intent(acc, "in_flight", sent_at=now - timedelta(seconds=5))  # just sent: not stuck
    intent(acc, "done", sent_at=now - timedelta(hours=1))

    samples = scrape(client)

    assert samples[("mm_intents_stuck", ())] == 1
    assert samples[("mm_intents_stuck_oldest_seconds", ())] >= settings.METRICS_STUCK_INTENT_S + 60
    assert_fires("IntentsStuck", [samples], labels={}, hold_min=6, tmp_path=tmp_path)


@from_state("ExchangeRateLimited")
def test_a_429_answer_fires_exchange_rate_limited(db, client, tmp_path):
    acc = account("alert-429")
    before = scrape(client)
    backend().pause(budget_key(acc.pk, acc.exchange_id), 1000, 1000, 429)  # what a 429 answer does

    after = scrape(client)

    labels = (("account", "alert-429"), ("account_id", str(acc.pk)), ("status", "429"))
    assert (before[("mm_exchange_rate_limited_total", labels)], after[("mm_exchange_rate_limited_total", labels)]) \
        == (0, 1)
    assert_fires("ExchangeRateLimited", [before, after], labels=dict(labels), hold_min=3, tmp_path=tmp_path)


@from_state("ExchangeBudgetSaturated")
def test_a_budget_booked_seconds_ahead_fires_exchange_budget_saturated(db, client, tmp_path):
    acc = account("alert-budget")
    for _ in range(3):  # three requests of 4 s of budget each, at once
        backend().book(budget_key(acc.pk, acc.exchange_id), 4000, 0, 0)

    samples = scrape(client)

    key = (("account", "alert-budget"), ("account_id", str(acc.pk)))
    assert 7 < samples[("mm_exchange_budget_booked_ahead_seconds", key)] <= 12
    assert_fires("ExchangeBudgetSaturated", [samples], labels=dict(key), hold_min=6, tmp_path=tmp_path)


@from_state("OrderStateOverdue")
def test_an_unpaid_order_past_its_deadline_fires_order_state_overdue(db, client, tmp_path):
    now = timezone.now()
    late = OrderFactory(expires_at=now - timedelta(minutes=30))
    OrderFactory(expires_at=now + timedelta(minutes=10))  # still waiting for its payment
    type(late).objects.filter(pk=late.pk).update(created_at=now - timedelta(minutes=40))

    samples = scrape(client)

    assert samples[("mm_orders_overdue", (("state", OrderState.PAYMENT_PENDING),))] == 1
    assert samples[("mm_orders_overdue", (("state", OrderState.WITHDRAWING),))] == 0
    assert samples[("mm_orders_overdue_max_seconds", (("state", OrderState.PAYMENT_PENDING),))] >= 600
    assert_fires("OrderStateOverdue", [samples], labels={"state": "payment_pending"}, hold_min=6, tmp_path=tmp_path)


@from_state("OrderStopOverdue")
def test_a_session_left_stopping_fires_order_stop_overdue(db, client, tmp_path):
    order = make_running_order(account("alert-stopping"))
    StrategySession.objects.filter(order=order).update(status=SessionStatus.STOPPING)

    samples = scrape(client)

    assert samples[("mm_strategy_sessions", (("status", "stopping"),))] == 1
    assert_fires("OrderStopOverdue", [samples], labels={"status": "stopping"}, hold_min=16, tmp_path=tmp_path)


def refund(status: str, **fields) -> Refund:
    key = f"alert-refund:{uuid.uuid4()}"
    return Refund.objects.create(key=key, request_id=uuid.uuid4(), user_id=str(uuid.uuid4()), asset_id=BTC,
                                 amount=Decimal("0.1"), reason="test", status=status, **fields)


@from_state("RefundPending")
def test_a_refund_pending_for_twenty_minutes_fires_refund_pending(db, client, tmp_path):
    old = refund(RefundStatus.PENDING)
    Refund.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=20))
    refund(RefundStatus.PENDING)
    refund(RefundStatus.SENT)

    samples = scrape(client)

    assert samples[("mm_refunds", (("status", "pending"),))] == 2
    assert samples[("mm_refund_pending_oldest_seconds", ())] >= 1200
    assert_fires("RefundPending", [samples], labels={}, hold_min=6, tmp_path=tmp_path)


@from_state("RefundCompensated")
def test_a_refund_credited_back_fires_refund_compensated(db, client, tmp_path):
    before = scrape(client)
    refund(RefundStatus.COMPENSATED, error="provider refused the transfer")

    after = scrape(client)

    key = ("mm_refunds", (("status", "compensated"),))
    assert (before[key], after[key]) == (0, 1)
    assert_fires("RefundCompensated", [before, after], labels={"status": "compensated"}, hold_min=2,
                 tmp_path=tmp_path)


@from_state("MetricsSectionDown")
def test_an_unreadable_section_fires_metrics_section_down(db, client, tmp_path):
    # the fills' table is missing (renamed inside this test's transaction)
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TrackedFill._meta.db_table} RENAME TO fills_away")

    samples = scrape(client)

    assert samples[("mm_metrics_section_up", (("section", "fills"),))] == 0
    assert_fires("MetricsSectionDown", [samples], labels={"section": "fills"}, hold_min=6, tmp_path=tmp_path)


def test_a_payout_past_its_checks_is_overdue_and_one_within_them_is_not(db, client, settings):
    # the payout's deadline: its checks (interval x count) and a step's margin after the order entered paying_out
    settings.MM_PAYOUT_CHECK_INTERVAL_S, settings.MM_PAYOUT_MAX_CHECKS = 10, 6
    from orders.metrics import STEP_DEADLINE_S
    from orders.models import OrderTransition

    now = timezone.now()
    for minutes_in_state in (5, 60 + STEP_DEADLINE_S // 60):
        order = OrderFactory(state=OrderState.PAYING_OUT)
        transition = OrderTransition.objects.create(order=order, name="begin_payout", from_state="stopped",
                                                    to_state="paying_out", by="test")
        OrderTransition.objects.filter(pk=transition.pk).update(at=now - timedelta(minutes=minutes_in_state))

    samples = scrape(client)

    assert samples[("mm_orders_overdue", (("state", OrderState.PAYING_OUT),))] == 1
