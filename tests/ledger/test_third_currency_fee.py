"""A fill's fee in a third currency (e.g. BNB on Binance) is owed by the order: posted in its own
asset to the user's fee_debt account under the order's ref, never out of locked funds it does not hold.

Marked embedded: the same tests run on PostgreSQL and SQLite.
"""
from decimal import Decimal

import pytest
from django.urls import reverse

from ledger import services
from ledger.models import Account, Balance, ExchangeCurrency, LedgerEntry, Posting
from ledger.selectors import exchange_currency_asset, exchange_currency_codes, ref_fee_debts, ref_positions
from tests.factories import AssetFactory

from .helpers import assert_audit_clean, fresh

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

D = Decimal
REF = "mm_order"


@pytest.fixture
def order(user):
    """An order ref holding 10 base and 100000 quote locked, and the BNB asset it holds none of."""
    base, quote, bnb, ref_id = fresh("btc"), fresh("usdt"), fresh("bnb"), fresh("order")
    for asset_id, amount in ((base, "10"), (quote, "100000")):
        services.credit_deposit(user_id=user, asset_id=asset_id, amount=amount, idempotency_key=fresh("dep"))
        services.lock_funds(user_id=user, asset_id=asset_id, amount=amount, idempotency_key=fresh("lock"),
                            ref_type=REF, ref_id=ref_id)
    return base, quote, bnb, ref_id


def settle(user, base, quote, bnb, ref_id, *, trade_id, side="buy", fee="0.0005"):
    return services.settle_fill(
        user_id=user, exchange="binance-1", trade_id=trade_id, side=side, base_asset_id=base, quote_asset_id=quote,
        base_amount="0.5", quote_amount="30000", fee_asset_id=bnb, fee_amount=fee, fee_owed=True,
        ref_type=REF, ref_id=ref_id)


@pytest.mark.parametrize(("side", "base_after", "quote_after"),
                         [("buy", D("10.5"), D("70000")), ("sell", D("9.5"), D("130000"))])
def test_third_currency_fee_is_owed_not_taken_from_locked_funds(user, order, side, base_after, quote_after):
    # Given an order holding base and quote only
    base, quote, bnb, ref_id = order

    # When a fill with a fee of 0.0005 BNB settles
    result = settle(user, base, quote, bnb, ref_id, trade_id=fresh("t"), side=side)

    # Then one entry carries the fee in BNB: owed by the user under the order's ref, paid to fees
    assert result.applied
    postings = {(p.account, p.asset_id): p.amount for p in Posting.objects.filter(entry=result.entry)}
    assert postings[(Account.FEE_DEBT, bnb)] == D("-0.0005")
    assert postings[(Account.FEES, bnb)] == D("0.0005")
    assert result.entry.details["fee_asset_id"] == bnb and result.entry.details["fee_owed"] is True
    # its base and quote move by the trade alone (what the budget and the stop read)
    positions = ref_positions(ref_type=REF, ref_ids=[ref_id])
    assert positions == {(ref_id, base): base_after, (ref_id, quote): quote_after}
    # the debt is the order's, in BNB; no BNB balance row exists or goes negative
    assert ref_fee_debts(ref_type=REF, ref_ids=[ref_id]) == {(ref_id, bnb): D("-0.0005")}
    assert not Balance.objects.filter(user_id=user, asset_id=bnb).exists()
    assert_audit_clean()


def test_replayed_third_currency_fill_posts_nothing_twice(user, order):
    # Given a fill with a BNB fee, settled
    base, quote, bnb, ref_id = order
    trade_id = fresh("t")
    first = settle(user, base, quote, bnb, ref_id, trade_id=trade_id)

    # When the same trade is seen again (and once more)
    again = settle(user, base, quote, bnb, ref_id, trade_id=trade_id)
    settle(user, base, quote, bnb, ref_id, trade_id=trade_id)

    # Then nothing is posted twice
    assert (first.applied, again.applied) == (True, False)
    assert again.entry.pk == first.entry.pk
    assert LedgerEntry.objects.filter(idempotency_key=f"fill:binance-1:{trade_id}").count() == 1
    assert ref_fee_debts(ref_type=REF, ref_ids=[ref_id]) == {(ref_id, bnb): D("-0.0005")}
    assert_audit_clean()


def test_debts_of_two_fills_add_up_and_stay_after_the_order_unlocks(user, order):
    # Given two fills with BNB fees
    base, quote, bnb, ref_id = order
    settle(user, base, quote, bnb, ref_id, trade_id=fresh("t"), fee="0.0005")
    settle(user, base, quote, bnb, ref_id, trade_id=fresh("t"), side="sell", fee="0.00025")

    # When the order unlocks what it holds (as a stop does)
    for (_, asset_id), amount in ref_positions(ref_type=REF, ref_ids=[ref_id]).items():
        services.unlock_funds(user_id=user, asset_id=asset_id, amount=amount, idempotency_key=fresh("unlock"),
                              ref_type=REF, ref_id=ref_id)

    # Then base and quote are back in full and the BNB debt is still recorded
    assert services.get_balance(user_id=user, asset_id=base).available == D("10")
    assert services.get_balance(user_id=user, asset_id=quote).available == D("100000")
    assert ref_fee_debts(ref_type=REF, ref_ids=[ref_id]) == {(ref_id, bnb): D("-0.00075")}
    assert_audit_clean()


def test_fee_owed_in_the_pairs_own_asset_is_refused(user, order):
    base, quote, _, ref_id = order
    with pytest.raises(ValueError, match="paid from locked funds"):
        settle(user, base, quote, quote, ref_id, trade_id=fresh("t"))
    assert not LedgerEntry.objects.filter(operation="settle_fill").exists()


def test_a_third_currency_fee_past_its_asset_scale_is_refused(user, order):
    base, quote, bnb, ref_id = order
    AssetFactory(asset_id=bnb, scale=4)
    with pytest.raises(services.InvalidAmount):
        settle(user, base, quote, bnb, ref_id, trade_id=fresh("t"), fee="0.00005")


def test_exchange_currency_maps_codes_per_exchange_whatever_the_case():
    # Given BNB mapped on binance only
    asset = AssetFactory(asset_id=fresh("bnb"), symbol="BNB")
    ExchangeCurrency.objects.create(exchange_id="Binance", code="bnb", asset=asset)

    # Then it is found by code on that exchange only
    assert exchange_currency_asset(exchange_id="binance", code="BNB") == asset.asset_id
    assert exchange_currency_asset(exchange_id="binance", code="bnb ") == asset.asset_id
    assert exchange_currency_asset(exchange_id="okx", code="BNB") is None
    assert exchange_currency_codes(exchange_ids={"binance"}) == {("binance", asset.asset_id): "BNB"}


def test_admin_shows_an_orders_fee_debt_among_postings_by_account(admin_client, user, order):
    # Given an order owing a BNB fee, and another order's plain fill
    base, quote, bnb, ref_id = order
    settle(user, base, quote, bnb, ref_id, trade_id=fresh("t"))
    services.settle_fill(user_id=user, exchange="binance-1", trade_id=fresh("t"), side="buy", base_asset_id=base,
                         quote_asset_id=quote, base_amount="0.1", quote_amount="100", ref_type=REF,
                         ref_id=fresh("other"))

    # When an operator lists the postings of the fee_debt account
    response = admin_client.get(reverse("admin:ledger_posting_changelist"), {"account__exact": Account.FEE_DEBT})

    # Then the debt is there with its order's ref, and nothing else
    page = response.content.decode()
    assert response.status_code == 200
    assert f"{REF}:{ref_id}" in page and bnb in page and "other-" not in page
    assert admin_client.get(reverse("admin:ledger_exchangecurrency_add")).status_code == 200
