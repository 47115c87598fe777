"""parse_amount and AmountField: exact amounts in, a clear InvalidAmount for anything else."""
from decimal import Decimal

import pytest

from ledger.amounts import MAX_AMOUNT, canonical, parse_amount
from ledger.errors import InvalidAmount, LedgerError

pytestmark = pytest.mark.embedded


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0.1, "not a float"),
        (1.0, "not a float"),
        (float("nan"), "not a float"),
        (Decimal("NaN"), "is NaN"),
        (Decimal("sNaN"), "is NaN"),
        ("nan", "is NaN"),
        (Decimal("Infinity"), "is infinite"),
        ("-inf", "is infinite"),
        (Decimal(0), "is zero"),
        ("0.00000000", "is zero"),
        (0, "is zero"),
        (Decimal("-0"), "is zero"),
        (Decimal("-1"), "is negative"),
        ("-0.00000001", "is negative"),
        (-5, "is negative"),
        ("0.000000001", "more than 8 decimal places"),
        (Decimal("1.123456789"), "more than 8 decimal places"),
        ("1e-9", "more than 8 decimal places"),
        ("abc", "is not a decimal number"),
        ("", "is not a decimal number"),
        (True, "got a bool"),
        (None, "not NoneType"),
        ([1], "not list"),
        (MAX_AMOUNT, "exceeds the maximum"),
    ],
)
def test_refused_amount_raises_invalid_amount_naming_the_problem(value, message):
    with pytest.raises(InvalidAmount, match=message):
        parse_amount(value, scale=8)


def test_invalid_amount_is_a_ledger_error_and_a_value_error():
    with pytest.raises(LedgerError):
        parse_amount(0.5, scale=8)
    with pytest.raises(ValueError):
        parse_amount(0.5, scale=8)


def test_message_names_the_field():
    with pytest.raises(InvalidAmount, match="^fee_amount is negative|^fee_amount -1 is negative"):
        parse_amount("-1", scale=8, field="fee_amount")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.5"), Decimal("1.5")),
        ("2", Decimal(2)),
        (" 3.25 ", Decimal("3.25")),
        (7, Decimal(7)),
        ("0.00000001", Decimal("0.00000001")),
        ("1.000000000000", Decimal(1)),  # trailing zeros beyond the scale change nothing
        ("1E+3", Decimal(1000)),
        ("999999999999.99999999", Decimal("999999999999.99999999")),
        ("1000000000000", Decimal("1000000000000")),
    ],
)
def test_accepted_amount_is_exact(value, expected):
    parsed = parse_amount(value, scale=8)
    assert parsed == expected
    assert isinstance(parsed, Decimal)


def test_equal_amounts_hash_alike_in_payloads():
    assert canonical(parse_amount("1.10", scale=8)) == canonical(parse_amount(Decimal("1.1"), scale=8)) == "1.1"
    assert canonical(parse_amount("1E+3", scale=8)) == "1000"


def test_zero_allowed_only_when_asked():
    assert parse_amount("0", scale=8, allow_zero=True) == 0
    with pytest.raises(InvalidAmount, match="is negative"):
        parse_amount("-1", scale=8, allow_zero=True)


@pytest.mark.parametrize(
    ("scale", "ok", "too_precise"), [(0, "5", "5.1"), (2, "1.01", "1.001"), (6, "0.000001", "0.0000001")])
def test_scale_bounds_the_decimals(scale, ok, too_precise):
    assert parse_amount(ok, scale=scale) == Decimal(ok)
    with pytest.raises(InvalidAmount, match=f"more than {scale} decimal places"):
        parse_amount(too_precise, scale=scale)


def test_eighteen_decimal_asset_is_exact_at_a_trillion_units():
    """Given an 18-decimal asset, 1e12 units plus 1e-18 is 31 significant digits: more than
    Decimal's default 28-digit context, so it must neither crash nor round."""
    value = "1000000000000.000000000000000001"
    assert parse_amount(value, scale=18) == Decimal(value)
    with pytest.raises(InvalidAmount, match="more than 18 decimal places"):
        parse_amount("1000000000000.0000000000000000001", scale=18)
