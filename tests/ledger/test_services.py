"""The ledger contract: every mutation, its idempotency, its errors, and settle_fill.

Marked embedded: the same tests run on PostgreSQL (`make test-postgres`) and SQLite (`make test-sqlite`).
"""
from decimal import Decimal

import pytest

from ledger import services
from ledger import sql as ledger_sql
from ledger.errors import IdempotencyConflict, InsufficientFunds, InvalidAmount, LedgerError
from ledger.models import Account, Balance, LedgerEntry, Operation, Posting
from tests.factories import AssetFactory

from .helpers import assert_audit_clean, fresh

pytestmark = [pytest.mark.embedded, pytest.mark.django_db]

D = Decimal
MUTATIONS = [
    services.credit_deposit, services.debit_withdrawal, services.lock_funds,
    services.unlock_funds, services.debit_fee, services.credit_reward,
]


def deposit(user, asset, amount, key=None):
    return services.credit_deposit(user_id=user, asset_id=asset, amount=amount, idempotency_key=key or fresh("dep"))


def lock(user, asset, amount):
    return services.lock_funds(user_id=user, asset_id=asset, amount=amount, idempotency_key=fresh("lock"))


def postings_of(entry_id):
    return sorted(
        Posting.objects.filter(entry_id=entry_id).values_list("account", "user_id", "asset_id", "amount"),
        key=lambda p: (p[2], p[0]),
    )


def counts():
    return LedgerEntry.objects.count(), Posting.objects.count(), Balance.objects.count()


# --- each mutation: balance effect and balanced postings -----------------------------------
@pytest.mark.parametrize(
    ("mutation", "start", "expected", "postings"),
    [
        (services.credit_deposit, (0, 0), (D("2.5"), 0),
         [(Account.EXTERNAL, "", D("-2.5")), (Account.USER_AVAILABLE, "U", D("2.5"))]),
        (services.debit_withdrawal, (10, 0), (D("7.5"), 0),
         [(Account.EXTERNAL, "", D("2.5")), (Account.USER_AVAILABLE, "U", D("-2.5"))]),
        (services.lock_funds, (10, 0), (D("7.5"), D("2.5")),
         [(Account.USER_AVAILABLE, "U", D("-2.5")), (Account.USER_LOCKED, "U", D("2.5"))]),
        (services.unlock_funds, (10, 5), (D("12.5"), D("2.5")),
         [(Account.USER_AVAILABLE, "U", D("2.5")), (Account.USER_LOCKED, "U", D("-2.5"))]),
        (services.debit_fee, (10, 0), (D("7.5"), 0),
         [(Account.FEES, "", D("2.5")), (Account.USER_AVAILABLE, "U", D("-2.5"))]),
        (services.credit_reward, (0, 0), (D("2.5"), 0),
         [(Account.REWARDS, "", D("-2.5")), (Account.USER_AVAILABLE, "U", D("2.5"))]),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_mutation_moves_the_balance_and_writes_balanced_postings(user, asset, mutation, start, expected, postings):
    # given a balance of start = (available, locked)
    if start[0] + start[1]:
        deposit(user, asset, start[0] + start[1])
    if start[1]:
        lock(user, asset, start[1])
    # when
    result = mutation(user_id=user, asset_id=asset, amount="2.5", idempotency_key=fresh("k"),
                      ref_type="order", ref_id="o-1")
    # then
    assert result.applied is True
    assert (result.balance.available, result.balance.locked) == expected
    assert result.balance.total == expected[0] + expected[1]
    assert all(isinstance(v, Decimal) for v in (result.balance.available, result.balance.locked, result.balance.total))
    assert services.get_balance(user_id=user, asset_id=asset) == result.balance
    assert result.entry.pk is not None
    assert result.entry.operation == mutation.__name__
    assert (result.entry.ref_type, result.entry.ref_id) == ("order", "o-1")
    assert result.entry.amount == D("2.5")
    got = [(acc, uid, amount) for acc, uid, _, amount in postings_of(result.entry.pk)]
    want = sorted([(acc, user if uid == "U" else uid, amount) for acc, uid, amount in postings])
    assert sorted(got) == want
    assert_audit_clean()


def test_get_balance_of_untouched_user_asset_is_zeros(user, asset):
    balance = services.get_balance(user_id=user, asset_id=asset)
    assert (balance.available, balance.locked, balance.total) == (0, 0, 0)
    assert isinstance(balance.total, Decimal)
    assert not Balance.objects.filter(user_id=user).exists()


def test_balances_of_users_and_assets_are_separate(user, asset):
    other_user, other_asset = fresh("user"), fresh("asset")
    deposit(user, asset, 5)
    deposit(other_user, asset, 7)
    deposit(user, other_asset, 11)
    assert services.get_balance(user_id=user, asset_id=asset).available == 5
    assert services.get_balance(user_id=other_user, asset_id=asset).available == 7
    assert services.get_balance(user_id=user, asset_id=other_asset).available == 11
    assert services.get_balance(user_id=other_user, asset_id=other_asset).total == 0


# --- amounts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    ("amount", "message"),
    [(0.5, "float"), (Decimal("NaN"), "NaN"), (Decimal("Infinity"), "infinite"), (0, "zero"),
     ("-1", "negative"), ("0.000000001", "more than 8 decimal places")],
)
def test_invalid_amount_is_refused_before_anything_is_written(user, asset, mutation, amount, message):
    deposit(user, asset, 10)
    lock(user, asset, 5)
    before = counts()
    with pytest.raises(InvalidAmount, match=message):
        mutation(user_id=user, asset_id=asset, amount=amount, idempotency_key=fresh("bad"))
    assert counts() == before


def test_a_trillion_units_at_1e_minus_8_resolution_are_exact(user, asset):
    big = D("999999999999.99999999")
    deposit(user, asset, big)
    result = deposit(user, asset, "0.00000001")
    assert result.balance.available == D("1000000000000")
    result = services.debit_withdrawal(user_id=user, asset_id=asset, amount="0.00000001", idempotency_key=fresh("w"))
    assert result.balance.available == big
    stored = Balance.objects.get(user_id=user, asset_id=asset)
    assert stored.available == big
    assert LedgerEntry.objects.get(pk=result.entry.pk).available_after == big
    assert services.get_balance(user_id=user, asset_id=asset).available == big
    assert_audit_clean()


def test_a_balance_past_the_storable_maximum_is_refused_on_both_databases(user, asset):
    # NUMERIC(38,18) holds less than 1e20: PostgreSQL would fail the write, SQLite would store it.
    key = fresh("dep")
    first = deposit(user, asset, "99999999999999999999", key=key)
    assert deposit(user, asset, "99999999999999999999", key=key).entry.pk == first.entry.pk  # a replay, not a refusal
    before = counts()
    with pytest.raises(InvalidAmount, match="past the largest balance the ledger stores"):
        deposit(user, asset, 1)
    assert counts() == before
    assert services.get_balance(user_id=user, asset_id=asset).available == D("99999999999999999999")


def test_asset_scale_is_per_asset(user):
    cents, whole, fine = (AssetFactory(scale=scale).asset_id for scale in (2, 0, 18))
    assert services.asset_scale(fresh("default")) == 8

    assert deposit(user, cents, "1.01").balance.available == D("1.01")
    with pytest.raises(InvalidAmount, match="more than 2 decimal places"):
        deposit(user, cents, "1.001")
    with pytest.raises(InvalidAmount, match="more than 0 decimal places"):
        deposit(user, whole, "1.5")
    assert deposit(user, whole, 3).balance.available == 3

    # 18 decimals at a trillion units: 31 significant digits, still exact end to end.
    big = D("1000000000000.000000000000000001")
    deposit(user, fine, big)
    result = deposit(user, fine, "0.000000000000000001")
    assert result.balance.available == D("1000000000000.000000000000000002")
    assert services.get_balance(user_id=user, asset_id=fine).available == D("1000000000000.000000000000000002")
    legs = sorted(Posting.objects.filter(asset_id=fine).values_list("account", "amount"))
    assert legs == sorted([(Account.EXTERNAL, big.copy_negate()), (Account.USER_AVAILABLE, big),
                           (Account.EXTERNAL, D("-1E-18")), (Account.USER_AVAILABLE, D("1E-18"))])


def test_audit_sums_31_digit_amounts_exactly(user):
    fine = AssetFactory(scale=18).asset_id
    deposit(user, fine, "1000000000000.000000000000000001")
    deposit(user, fine, "0.000000000000000001")
    assert_audit_clean()


@pytest.mark.parametrize("bad", ["", None, 5])
def test_missing_ids_are_refused(asset, bad):
    with pytest.raises(ValueError, match="user_id must be a non-empty string"):
        services.credit_deposit(user_id=bad, asset_id=asset, amount=1, idempotency_key=fresh("k"))
    with pytest.raises(ValueError, match="idempotency_key"):
        services.credit_deposit(user_id="u", asset_id=asset, amount=1, idempotency_key=bad)


def test_overlong_idempotency_key_is_refused(user, asset):
    with pytest.raises(ValueError, match="256 characters; the limit is 255"):
        deposit(user, asset, 1, key="k" * 256)


# --- idempotency ------------------------------------------------------------------------------
@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.__name__)
def test_replay_returns_the_first_result_and_writes_nothing(user, asset, mutation):
    deposit(user, asset, 10)
    lock(user, asset, 5)
    kwargs = dict(user_id=user, asset_id=asset, amount="1.5", idempotency_key=fresh("k"), ref_type="t", ref_id="r")
    first = mutation(**kwargs)
    deposit(user, asset, 100)  # the balance moves on after the first call
    before = counts()

    again = mutation(**{**kwargs, "amount": D("1.50000000")})  # same amount, another spelling

    assert (first.applied, again.applied) == (True, False)
    assert again.entry.pk == first.entry.pk
    assert again.balance == first.balance
    assert counts() == before


@pytest.mark.parametrize(
    "change",
    [{"amount": "2"}, {"ref_id": "other"}, {"ref_type": "other"}, {"user_id": "someone-else"},
     {"asset_id": "other-asset"}],
    ids=lambda c: next(iter(c)),
)
def test_same_key_with_a_different_payload_is_a_conflict(user, asset, change):
    kwargs = dict(user_id=user, asset_id=asset, amount="1", idempotency_key=fresh("k"), ref_type="t", ref_id="r")
    services.credit_deposit(**kwargs)
    before = counts()
    with pytest.raises(IdempotencyConflict, match=kwargs["idempotency_key"]):
        services.credit_deposit(**{**kwargs, **change})
    assert counts() == before
    assert services.get_balance(user_id=user, asset_id=asset).available == 1


def test_same_key_for_another_operation_is_a_conflict(user, asset):
    key = fresh("k")
    deposit(user, asset, 10, key=key)
    with pytest.raises(IdempotencyConflict, match="credit_deposit"):
        services.debit_withdrawal(user_id=user, asset_id=asset, amount=10, idempotency_key=key)
    assert services.get_balance(user_id=user, asset_id=asset).available == 10


def test_replay_is_a_replay_even_when_funds_no_longer_suffice(user, asset):
    deposit(user, asset, 10)
    key = fresh("w")
    first = services.debit_withdrawal(user_id=user, asset_id=asset, amount=10, idempotency_key=key)
    again = services.debit_withdrawal(user_id=user, asset_id=asset, amount=10, idempotency_key=key)
    assert again.applied is False and again.entry.pk == first.entry.pk
    with pytest.raises(IdempotencyConflict):
        services.debit_withdrawal(user_id=user, asset_id=asset, amount=9, idempotency_key=key)


# --- insufficient funds ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mutation", "bucket"),
    [(services.debit_withdrawal, "available"), (services.lock_funds, "available"),
     (services.debit_fee, "available"), (services.unlock_funds, "locked")],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_insufficient_funds_leaves_nothing_written(user, asset, mutation, bucket):
    deposit(user, asset, 3)
    lock(user, asset, 1)
    before = counts()
    key = fresh("k")
    with pytest.raises(InsufficientFunds, match=rf"has [0-9.]+ {asset} {bucket}, 2\.50* needed") as caught:
        mutation(user_id=user, asset_id=asset, amount="2.5", idempotency_key=key)
    assert (caught.value.user_id, caught.value.asset_id, caught.value.bucket) == (user, asset, bucket)
    assert isinstance(caught.value, LedgerError)
    assert counts() == before
    assert not LedgerEntry.objects.filter(idempotency_key=key).exists()
    assert services.get_balance(user_id=user, asset_id=asset) == services.BalanceView(D(2), D(1))


def test_insufficient_funds_on_an_untouched_account_creates_no_balance_row(user, asset):
    with pytest.raises(InsufficientFunds):
        services.debit_withdrawal(user_id=user, asset_id=asset, amount=1, idempotency_key=fresh("w"))
    assert not Balance.objects.filter(user_id=user, asset_id=asset).exists()


def test_the_key_of_a_refused_mutation_can_be_used_once_funds_arrive(user, asset):
    key = fresh("w")
    with pytest.raises(InsufficientFunds):
        services.debit_withdrawal(user_id=user, asset_id=asset, amount=1, idempotency_key=key)
    deposit(user, asset, 1)
    assert services.debit_withdrawal(user_id=user, asset_id=asset, amount=1, idempotency_key=key).applied


def test_spending_exactly_the_balance_leaves_zero(user, asset):
    deposit(user, asset, "0.00000003")
    result = services.debit_withdrawal(user_id=user, asset_id=asset, amount="0.00000003", idempotency_key=fresh("w"))
    assert result.balance.available == 0
    with pytest.raises(InsufficientFunds):
        services.debit_withdrawal(user_id=user, asset_id=asset, amount="0.00000001", idempotency_key=fresh("w"))


# --- settle_fill --------------------------------------------------------------------------------
@pytest.fixture
def market(user):
    base, quote, bnb = fresh("btc"), fresh("usdt"), fresh("bnb")
    for asset_id, amount in ((base, 10), (quote, 100000), (bnb, 5)):
        deposit(user, asset_id, amount)
        lock(user, asset_id, amount)
    return base, quote, bnb


def fill(user, base, quote, **kwargs):
    args = dict(user_id=user, exchange="binance", trade_id=fresh("t"), side="buy", base_asset_id=base,
                quote_asset_id=quote, base_amount="0.5", quote_amount="30000")
    return services.settle_fill(**{**args, **kwargs})


def locked(user, asset_id):
    return services.get_balance(user_id=user, asset_id=asset_id).locked


@pytest.mark.parametrize(
    ("side", "fee_in", "base_after", "quote_after", "bnb_after"),
    [
        ("buy", None, D("10.5"), D("70000"), D(5)),
        ("buy", "base", D("10.499"), D("70000"), D(5)),
        ("buy", "quote", D("10.5"), D("69970"), D(5)),
        ("buy", "third", D("10.5"), D("70000"), D("4.99")),
        ("sell", None, D("9.5"), D("130000"), D(5)),
        ("sell", "base", D("9.499"), D("130000"), D(5)),
        ("sell", "quote", D("9.5"), D("129970"), D(5)),
        ("sell", "third", D("9.5"), D("130000"), D("4.99")),
    ],
)
def test_settle_fill_moves_locked_base_quote_and_fee_in_one_entry(user, market, side, fee_in, base_after,
                                                                  quote_after, bnb_after):
    base, quote, bnb = market
    fee = {None: {}, "base": {"fee_asset_id": base, "fee_amount": "0.001"},
           "quote": {"fee_asset_id": quote, "fee_amount": "30"},
           "third": {"fee_asset_id": bnb, "fee_amount": "0.01"}}[fee_in]
    entries_before = LedgerEntry.objects.count()
    result = fill(user, base, quote, side=side, **fee)
    assert result.applied
    assert LedgerEntry.objects.count() == entries_before + 1
    assert result.entry.operation == Operation.SETTLE_FILL
    assert (locked(user, base), locked(user, quote), locked(user, bnb)) == (base_after, quote_after, bnb_after)
    assert result.balance.locked == base_after  # the entry's primary asset is the base
    assert result.balances[quote].locked == quote_after
    for asset_id in (base, quote, bnb):  # available untouched: proceeds stay locked
        assert services.get_balance(user_id=user, asset_id=asset_id).available == 0
    # every asset of the entry sums to zero, and the counterparty is the exchange (fee: fees)
    legs = postings_of(result.entry.pk)
    for asset_id in {leg[2] for leg in legs}:
        assert sum(leg[3] for leg in legs if leg[2] == asset_id) == 0
    assert {leg[0] for leg in legs} == {Account.USER_LOCKED, Account.EXCHANGE} | ({Account.FEES} if fee else set())
    assert_audit_clean()


def test_fill_is_settled_once_by_exchange_and_trade_id(user, market):
    base, quote, _ = market
    first = fill(user, base, quote, trade_id="12345")
    again = fill(user, base, quote, trade_id=12345)  # ccxt may hand the id as a number
    assert first.entry.idempotency_key == "fill:binance:12345"
    assert (first.applied, again.applied) == (True, False)
    assert again.entry.pk == first.entry.pk
    assert locked(user, base) == D("10.5")
    # the same trade id on another exchange is another fill
    assert fill(user, base, quote, trade_id="12345", exchange="okx").applied
    # the same trade seen with other figures is a conflict, not a second settlement
    with pytest.raises(IdempotencyConflict):
        fill(user, base, quote, trade_id="12345", quote_amount="30001")


def test_fill_beyond_the_locked_funds_is_refused_whole(user, market):
    base, quote, bnb = market
    before = counts()
    with pytest.raises(InsufficientFunds, match=quote):
        fill(user, base, quote, quote_amount="100000.00000001")
    with pytest.raises(InsufficientFunds, match=bnb):
        fill(user, base, quote, fee_asset_id=bnb, fee_amount="5.1")
    with pytest.raises(InsufficientFunds, match=base):
        fill(user, base, quote, side="sell", base_amount="10.00000001")
    assert counts() == before
    assert (locked(user, base), locked(user, quote), locked(user, bnb)) == (10, 100000, 5)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"side": "short"}, ValueError, "side must be 'buy' or 'sell'"),
        ({"quote_asset_id": "SAME"}, ValueError, "must differ"),
        ({"base_amount": 0.5}, InvalidAmount, "base_amount must be a Decimal.*float"),
        ({"quote_amount": "0"}, InvalidAmount, "quote_amount is zero"),
        ({"fee_amount": "-1"}, InvalidAmount, "fee_amount -1 is negative"),
        ({"fee_amount": 0.1}, InvalidAmount, "fee_amount .*float"),
        ({"trade_id": ""}, ValueError, "trade_id"),
        ({"exchange": ""}, ValueError, "exchange"),
    ],
)
def test_settle_fill_refuses_bad_input(user, market, kwargs, error, message):
    base, quote, _ = market
    if kwargs.get("quote_asset_id") == "SAME":
        kwargs = {**kwargs, "quote_asset_id": base}
    before = counts()
    with pytest.raises(error, match=message):
        fill(user, base, quote, **kwargs)
    assert counts() == before


# --- outside any transaction (PostgreSQL: the mutation is one statement, its own transaction) ---
@pytest.mark.django_db(transaction=True)
class TestOutsideAnyTransaction:
    def test_mutations_replays_and_refusals_behave_the_same(self, user, asset):
        first = deposit(user, asset, 10, key="dep-" + user)
        again = deposit(user, asset, 10, key="dep-" + user)
        assert (first.applied, again.applied, again.entry.pk) == (True, False, first.entry.pk)
        with pytest.raises(IdempotencyConflict):
            deposit(user, asset, 11, key="dep-" + user)
        before = counts()
        with pytest.raises(InsufficientFunds):
            services.debit_withdrawal(user_id=user, asset_id=asset, amount="10.01", idempotency_key=fresh("w"))
        assert counts() == before
        assert services.lock_funds(user_id=user, asset_id=asset, amount=4, idempotency_key=fresh("l")).balance == \
            services.BalanceView(D(6), D(4))
        assert_audit_clean()

    def test_refusal_on_an_untouched_account_leaves_no_balance_row(self, user, asset):
        with pytest.raises(InsufficientFunds):
            services.debit_withdrawal(user_id=user, asset_id=asset, amount=1, idempotency_key=fresh("w"))
        assert not Balance.objects.filter(user_id=user, asset_id=asset).exists()

    def test_on_postgres_a_mutation_is_one_statement(self, user, asset, django_assert_num_queries):
        from django.db import connection

        if connection.vendor != "postgresql":
            pytest.skip("SQLite runs the stepwise path")
        deposit(user, asset, 5)  # warm: the balance row exists, the asset scale is cached
        with django_assert_num_queries(1):
            services.lock_funds(user_id=user, asset_id=asset, amount=2, idempotency_key=fresh("l"))
        assert services.get_balance(user_id=user, asset_id=asset) == services.BalanceView(D(3), D(2))

    def test_a_balance_row_removed_behind_the_ledgers_back_is_created_again(self, user, asset):
        from django.db import connection

        deposit(user, asset, 5)
        with connection.cursor() as cur:  # the balance table has no append-only trigger
            cur.execute("DELETE FROM ledger_balance WHERE user_id = %s AND asset_id = %s", [user, asset])
        result = deposit(user, asset, 2)
        assert result.applied and result.balance.available == 2
        assert Balance.objects.get(user_id=user, asset_id=asset).available == 2


def test_the_ledger_statement_is_counted_as_a_query(user, asset, django_assert_max_num_queries):
    deposit(user, asset, 1)  # warm: the balance row exists, the asset scale is cached
    with django_assert_max_num_queries(10) as captured:
        deposit(user, asset, 1)
    assert any(f"INSERT INTO {ledger_sql.ENTRY}" in query["sql"] for query in captured.captured_queries)
