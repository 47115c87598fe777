"""Fees charged in a third currency (BNB, as Binance charges them to accounts that pay fees with BNB)
settle through the simulator over HTTP: owed by the order in BNB, the budget and the stop's refund of
base and quote unchanged by them, reconciliation clean; an unmapped currency stays a recorded error."""
import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exchanges.models import SimAccount, SimBalance, SimTrade
from intents.ids import client_order_prefix, strategy_key
from intents.models import TrackedFill, TrackedOrder
from ledger.models import Account, ExchangeCurrency, LedgerEntry, Posting
from ledger.selectors import audit_ledger, ref_fee_debts, ref_positions
from ledger.services import get_balance
from orders.services import order_stop
from reconciliation.models import BalanceBaseline, DriftKind
from reconciliation.services import reconcile_run
from strategy.cycle import due_sessions
from strategy.fills import fill_settle, fills_record
from tests.factories import AssetFactory, SimulatedExchangeAccountFactory
from tests.runtime_fixtures import BTC, USDT, make_running_order

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

BNB = "asset-bnb"
# The simulator account pays every fee in BNB, priced at 600 USDT (exchanges.simulator.services).
PAY_FEES_IN_BNB = {"commission_asset": "BNB", "commission_asset_price": "600"}


@pytest.fixture(autouse=True)
def sync_driver(settings):
    settings.STRATEGY_INTENT_EXECUTION_DRIVER = "sync"
    settings.STRATEGY_INTENT_MAX_IN_FLIGHT_PER_EXCHANGE = 8


@pytest.fixture
def bnb_account(sim):
    """An exchange account holding 10 BNB that pays its fees in BNB."""
    account = SimulatedExchangeAccountFactory(
        label="fee-bnb", base_url=sim.base_url, api_key="fee-bnb-key", api_secret="fee-bnb-secret",
        sim_label="fee-bnb-sim", sim_balances={"USDT": Decimal("1000000"), "BTC": Decimal("100"), "BNB": Decimal("10")})
    SimAccount.objects.filter(label="fee-bnb-sim").update(faults=PAY_FEES_IN_BNB)
    return account


def map_bnb(account):
    ExchangeCurrency.objects.create(exchange_id=account.exchange_id, code="BNB",
                                    asset=AssetFactory(asset_id=BNB, symbol="BNB"))


def trade(client, account, order, n, side, price):
    """Our order that takes at once; tracked as the executor would have it."""
    client_order_id = f"{client_order_prefix(order.order_id)}fee{n:013d}"
    placed = client.create_order("BTC/USDT", "limit", side, "0.001", price, {"clientOrderId": client_order_id})
    TrackedOrder.objects.create(
        client_order_id=client_order_id, strategy_key=strategy_key(order.order_id), account=account,
        symbol="BTC/USDT", side=side, price=Decimal(price), amount=Decimal("0.001"), status="filled",
        exchange_order_id=placed["id"])


def expected_of(order):
    """The order's base and quote after its exchange trades (no fee in either), and its BNB fees."""
    base, quote, fees = Decimal("1"), Decimal("40000"), Decimal(0)
    trades = list(SimTrade.objects.filter(order__client_order_id__startswith=client_order_prefix(order.order_id)))
    for t in trades:
        assert t.commission_asset == "BNB" and t.commission > 0
        fees += t.commission
        if t.order.side == "BUY":
            base, quote = base + t.qty, quote - t.quote_qty
        else:
            base, quote = base - t.qty, quote + t.quote_qty
    return trades, base, quote, fees


def test_bnb_fee_is_owed_by_the_order_and_reconciles_and_the_stop_refunds_base_and_quote(sim, bnb_account, caplog):
    # Given a running order on an account that pays its fees in BNB, BNB mapped, books reconciled
    map_bnb(bnb_account)
    order = make_running_order(bnb_account, layers=1)
    ref = str(order.order_id)
    client = sim.client(bnb_account)
    assert reconcile_run(trigger="test").ok

    # When a buy takes at once and its fill is recorded
    trade(client, bnb_account, order, 0, "buy", "31000")
    fills_record(account_id=bnb_account.pk, symbol="BTC/USDT", client=client)

    # Then each fill settled with its fee in BNB, owed by the order
    trades, base, quote, fees = expected_of(order)
    fills = list(TrackedFill.objects.filter(strategy_key=strategy_key(order.order_id)))
    assert len(fills) == len(trades) >= 1
    assert all(f.fee_currency == "BNB" and f.ledger_entry_id and not f.settle_error for f in fills)
    owed = Posting.objects.filter(account=Account.FEE_DEBT, asset_id=BNB, entry__ref_id=ref)
    assert sorted(p.amount for p in owed) == sorted(-t.commission for t in trades)
    assert ref_fee_debts(ref_type="mm_order", ref_ids=[ref]) == {(ref, BNB): -fees}
    # base and quote moved by the trade alone, as the budget reads them
    assert ref_positions(ref_type="mm_order", ref_ids=[ref]) == {(ref, BTC): base, (ref, USDT): quote}
    _, budget = due_sessions(timezone.now() + timedelta(hours=1))
    assert (budget[(ref, BTC)], budget[(ref, USDT)]) == (base, quote)
    # reconciliation sees the BNB the exchange took and the order's debt: no drift
    run = reconcile_run(trigger="test")
    assert run.ok, list(run.drifts.values_list("detail", flat=True))
    assert BalanceBaseline.objects.get(account=bnb_account, asset="BNB").difference == Decimal("10")

    # When a sell fills too, and every trade is seen again
    trade(client, bnb_account, order, 1, "sell", "29000")
    fills_record(account_id=bnb_account.pk, symbol="BTC/USDT", client=client)
    entries = LedgerEntry.objects.filter(operation="settle_fill", ref_id=ref).count()
    assert fills_record(account_id=bnb_account.pk, symbol="BTC/USDT", client=client) == 0
    replayed = fill_settle(fill=TrackedFill.objects.filter(strategy_key=strategy_key(order.order_id)).first())

    # Then nothing posted twice, and the exchange's BNB moved exactly as the ledger says
    trades, base, quote, fees = expected_of(order)
    assert entries == len(trades) == LedgerEntry.objects.filter(operation="settle_fill", ref_id=ref).count()
    assert replayed in set(LedgerEntry.objects.filter(ref_id=ref).values_list("pk", flat=True))
    assert ref_fee_debts(ref_type="mm_order", ref_ids=[ref]) == {(ref, BNB): -fees}
    assert SimBalance.objects.get(account__label="fee-bnb-sim", asset="BNB").free == Decimal("10") - fees
    run = reconcile_run(trigger="test")
    assert run.ok, list(run.drifts.values_list("detail", flat=True))

    # When the order stops
    with caplog.at_level(logging.WARNING, logger="orders.services.lifecycle"):
        assert order_stop(order_id=order.order_id, by="test", wait_s=30) == "stopped"

    # Then its base and quote come back in full, the BNB debt stays recorded and is logged
    assert get_balance(user_id=order.user_id, asset_id=BTC).available == base
    assert get_balance(user_id=order.user_id, asset_id=USDT).available == quote
    assert get_balance(user_id=order.user_id, asset_id=BNB) == get_balance(user_id="nobody", asset_id=BNB)
    assert ref_fee_debts(ref_type="mm_order", ref_ids=[ref]) == {(ref, BNB): -fees}
    assert f"event=order_fee_debt order_id={ref}" in caplog.text and f"owed={fees}" in caplog.text
    assert audit_ledger().ok
    run = reconcile_run(trigger="test")
    assert run.ok, list(run.drifts.values_list("detail", flat=True))


def test_unmapped_fee_currency_stays_a_recorded_error_until_mapped(sim, bnb_account, caplog):
    # Given an order on an account that pays fees in BNB, with BNB mapped to no asset
    order = make_running_order(bnb_account, layers=1, session=False)
    client = sim.client(bnb_account)
    assert reconcile_run(trigger="test").ok

    # When a fill is recorded
    with caplog.at_level(logging.ERROR, logger="strategy.fills"):
        trade(client, bnb_account, order, 0, "buy", "31000")
        fills_record(account_id=bnb_account.pk, symbol="BTC/USDT", client=client)

    # Then it is recorded unsettled with an error an operator can act on, and alerted
    fill = TrackedFill.objects.get(strategy_key=strategy_key(order.order_id))
    assert fill.ledger_entry_id is None
    assert f"no exchange currency maps {bnb_account.exchange_id}:BNB to a Mixin asset" in fill.settle_error
    assert "event=fee_currency_unmapped" in caplog.text
    assert not LedgerEntry.objects.filter(operation="settle_fill", ref_id=str(order.order_id)).exists()
    # and reconciliation reports the exchange's balances moving without the ledger
    run = reconcile_run(trigger="test")
    assert not run.ok
    assert {d.asset for d in run.drifts.filter(kind=DriftKind.BALANCE_CHANGED, account=bnb_account)} == {"BTC", "USDT"}

    # When the operator maps BNB and the fill is settled again
    map_bnb(bnb_account)
    fill_settle(fill=fill)

    # Then it settles once and the books reconcile
    fill.refresh_from_db()
    assert fill.ledger_entry_id and not fill.settle_error
    assert ref_fee_debts(ref_type="mm_order", ref_ids=[str(order.order_id)]) == {
        (str(order.order_id), BNB): -fill.fee}
    run = reconcile_run(trigger="test")
    assert run.ok, list(run.drifts.values_list("detail", flat=True))
