"""Payment legs: allocation conserves every amount and completion means every leg is covered."""
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.models import PaymentState

pytestmark = pytest.mark.embedded

ASSETS = ["A", "B", "C"]
amounts = st.integers(min_value=1, max_value=10**6).map(lambda n: Decimal(n).scaleb(-4))


@st.composite
def legs_and_payments(draw):
    base, quote = draw(st.permutations(ASSETS))[:2]
    payment = PaymentState(
        base_asset_id=base, base_required=draw(amounts), quote_asset_id=quote, quote_required=draw(amounts),
        base_fee_asset_id=draw(st.sampled_from(["", *ASSETS])), base_fee_required=draw(amounts),
        quote_fee_asset_id=draw(st.sampled_from(["", *ASSETS])), quote_fee_required=draw(amounts),
        base_received=Decimal(0), quote_received=Decimal(0), base_fee_received=Decimal(0),
        quote_fee_received=Decimal(0),
    )
    paid = draw(st.lists(st.tuples(st.sampled_from(sorted(payment.assets())), amounts), max_size=8))
    return payment, paid


@given(legs_and_payments())
def test_allocation_conserves_amounts_and_completion_matches_per_asset_totals(case):
    payment, paid = case
    for asset, amount in paid:
        allocation = payment.allocate(asset, amount)
        assert sum(Decimal(v) for v in allocation.values()) == amount
    totals = {}
    for asset, amount in paid:
        totals[asset] = totals.get(asset, Decimal(0)) + amount
    assert {a: v for a, v in payment.received_by_asset().items() if v} == totals
    required = {}
    for _, asset, need, _ in payment.legs():
        required[asset] = required.get(asset, Decimal(0)) + need
    assert payment.is_complete() == all(totals.get(a, Decimal(0)) >= need for a, need in required.items())


def test_asset_paying_no_leg_is_refused():
    payment = PaymentState(base_asset_id="A", base_required=Decimal(1), quote_asset_id="B",
                           quote_required=Decimal(1), base_received=Decimal(0), quote_received=Decimal(0))
    with pytest.raises(ValueError, match="pays no leg"):
        payment.allocate("Z", Decimal(1))
