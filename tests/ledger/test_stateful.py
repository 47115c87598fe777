"""Random sequences of ledger mutations against an in-memory model of the ledger.

Every accept and every refusal (InsufficientFunds, IdempotencyConflict, InvalidAmount, replay)
must match the model, and after every step each balance equals the sum of its postings and
nothing is negative. Bounded so it runs in seconds on both databases.
"""
from collections import defaultdict
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from ledger import services
from ledger.errors import IdempotencyConflict, InsufficientFunds, InvalidAmount
from ledger.models import Account, Balance, Posting
from tests.factories import AssetFactory

from .helpers import assert_audit_clean, fresh

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]  # the second test overrides: transaction=True

ZERO = Decimal(0)
SINGLE = {
    # operation: (change of available, change of locked) per unit of amount
    "credit_deposit": (1, 0),
    "debit_withdrawal": (-1, 0),
    "lock_funds": (-1, 1),
    "unlock_funds": (1, -1),
    "debit_fee": (-1, 0),
    "credit_reward": (1, 0),
}
amounts = st.integers(min_value=1, max_value=50_000).map(lambda n: Decimal(n).scaleb(-2))  # 0.01 .. 500.00
key_numbers = st.integers(min_value=0, max_value=40)  # a small key space: reuse happens often


class LedgerModel(RuleBasedStateMachine):
    """The model: balances per (user, asset), and per used key the call and the result it returned."""

    @initialize()
    def setup(self):
        self.prefix = fresh("sm")
        self.users = [f"{self.prefix}-u{i}" for i in range(2)]
        self.assets = [f"{self.prefix}-a{i}" for i in range(3)]
        self.cents = self.assets[2]  # an asset of scale 2: a third decimal is refused
        AssetFactory(asset_id=self.cents, scale=2)
        self.balances = defaultdict(lambda: [ZERO, ZERO])
        self.used: dict[str, tuple[str, dict, tuple[Decimal, Decimal]]] = {}

    # --- helpers -------------------------------------------------------------------------
    def key(self, n: int) -> str:
        return f"{self.prefix}-k{n}"

    def expect_and_call(self, op: str, kwargs: dict, deltas: dict[tuple[str, str], tuple[Decimal, Decimal]],
                        primary: tuple[str, str], invalid: bool = False):
        call = getattr(services, op)
        key = kwargs["idempotency_key"]
        if invalid:
            with pytest.raises(InvalidAmount):
                call(**kwargs)
            return
        if key in self.used:
            first_op, first_kwargs, first_balance = self.used[key]
            if (first_op, first_kwargs) == (op, kwargs):
                result = call(**kwargs)
                assert result.applied is False
                assert (result.balance.available, result.balance.locked) == first_balance
            else:
                with pytest.raises(IdempotencyConflict):
                    call(**kwargs)
            return
        after = {k: (self.balances[k][0] + a, self.balances[k][1] + b) for k, (a, b) in deltas.items()}
        if any(a < 0 or b < 0 for a, b in after.values()):
            with pytest.raises(InsufficientFunds):
                call(**kwargs)
            return
        result = call(**kwargs)
        assert result.applied is True
        for k, (a, b) in after.items():
            self.balances[k] = [a, b]
        assert (result.balance.available, result.balance.locked) == after[primary]
        self.used[key] = (op, kwargs, after[primary])

    # --- rules ---------------------------------------------------------------------------
    @rule(op=st.sampled_from(sorted(SINGLE)), user=st.integers(0, 1), asset=st.integers(0, 2), amount=amounts,
          n=key_numbers)
    def single_asset_mutation(self, op, user, asset, amount, n):
        user_id, asset_id = self.users[user], self.assets[asset]
        kwargs = dict(user_id=user_id, asset_id=asset_id, amount=amount, idempotency_key=self.key(n))
        d_avail, d_locked = SINGLE[op]
        self.expect_and_call(op, kwargs, {(user_id, asset_id): (d_avail * amount, d_locked * amount)},
                             (user_id, asset_id))

    @rule(op=st.sampled_from(sorted(SINGLE)), user=st.integers(0, 1), amount=amounts, n=key_numbers)
    def over_precise_amount_is_refused(self, op, user, amount, n):
        kwargs = dict(user_id=self.users[user], asset_id=self.cents, amount=amount + Decimal("0.001"),
                      idempotency_key=self.key(n))
        self.expect_and_call(op, kwargs, {}, (self.users[user], self.cents), invalid=True)

    @rule(user=st.integers(0, 1), side=st.sampled_from(["buy", "sell"]), pair=st.permutations([0, 1, 2]),
          base_amount=amounts, quote_amount=amounts, fee=st.one_of(st.none(), st.tuples(st.integers(0, 2), amounts)),
          trade=key_numbers)
    def settle_fill(self, user, side, pair, base_amount, quote_amount, fee, trade):
        user_id = self.users[user]
        base, quote = self.assets[pair[0]], self.assets[pair[1]]
        kwargs = dict(user_id=user_id, exchange=self.prefix, trade_id=str(trade), side=side, base_asset_id=base,
                      quote_asset_id=quote, base_amount=base_amount, quote_amount=quote_amount)
        sign = 1 if side == "buy" else -1
        locked = defaultdict(lambda: ZERO)
        locked[base] += sign * base_amount
        locked[quote] -= sign * quote_amount
        if fee is not None:
            kwargs.update(fee_asset_id=self.assets[fee[0]], fee_amount=fee[1])
            locked[self.assets[fee[0]]] -= fee[1]
        kwargs["idempotency_key"] = f"fill:{self.prefix}:{trade}"
        deltas = {(user_id, asset_id): (ZERO, change) for asset_id, change in locked.items()}
        self.expect_and_call("settle_fill", kwargs, deltas, (user_id, base))

    @rule(data=st.data())
    def exact_replay_returns_first_result(self, data):
        if not self.used:
            return
        key = data.draw(st.sampled_from(sorted(self.used)))
        op, kwargs, _ = self.used[key]
        self.expect_and_call(op, kwargs, {}, (kwargs["user_id"], kwargs.get("asset_id", kwargs.get("base_asset_id"))))

    # --- invariants ----------------------------------------------------------------------
    @invariant()
    def balances_match_the_model_and_their_postings(self):
        if not hasattr(self, "users"):
            return
        sums = defaultdict(lambda: [ZERO, ZERO])
        for account, user_id, asset_id, amount in Posting.objects.filter(user_id__in=self.users).values_list(
                "account", "user_id", "asset_id", "amount"):
            sums[(user_id, asset_id)][0 if account == Account.USER_AVAILABLE else 1] += amount
        stored = {(u, a): [av, lo] for u, a, av, lo in Balance.objects.filter(user_id__in=self.users).values_list(
            "user_id", "asset_id", "available", "locked")}
        for key in set(sums) | set(stored) | set(self.balances):
            model = self.balances.get(key, [ZERO, ZERO])
            assert stored.get(key, [ZERO, ZERO]) == model, key
            assert sums.get(key, [ZERO, ZERO]) == model, key
            assert model[0] >= 0 and model[1] >= 0, key
            balance = services.get_balance(user_id=key[0], asset_id=key[1])
            assert [balance.available, balance.locked] == model

    def teardown(self):
        if hasattr(self, "users"):
            assert_audit_clean()


def run_machine(examples: int):
    run_state_machine_as_test(
        LedgerModel,
        settings=settings(max_examples=examples, stateful_step_count=25, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow]),
    )


def test_random_mutations_match_the_model():
    """Inside a transaction (the test's): on PostgreSQL the statement joins the caller's transaction."""
    run_machine(15)


@pytest.mark.django_db(transaction=True)
def test_random_mutations_match_the_model_outside_transactions():
    """Every call its own transaction: on PostgreSQL the one-statement path, committed as it runs."""
    from django.db import connection

    assert not connection.in_atomic_block
    run_machine(8)
