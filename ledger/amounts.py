"""Exact amounts: parsing at the edge, and the database field that stores them losslessly."""
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow, localcontext

from django import forms
from django.db import models

from .errors import InvalidAmount
from .exact import exact_decimal

# NUMERIC(38, 18) on PostgreSQL: 20 integer digits (1e12 units is 13) and the largest asset
# scale we accept. SQLite has no exact decimal type, so the value is stored as fixed-point text.
MAX_DIGITS = 38
MAX_SCALE = 18
MAX_AMOUNT = Decimal(10) ** (MAX_DIGITS - MAX_SCALE)

# Decimal's default context keeps 28 significant digits and rounds silently beyond them; a
# NUMERIC(38,18) value (and the sum of two) needs up to 39. Ledger arithmetic runs in this
# context: wide enough that nothing rounds, and an inexact result raises instead of rounding.
EXACT = Context(prec=2 * MAX_DIGITS, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


def exact_context():
    """``with exact_context():`` around amount arithmetic, so no digit is ever rounded away."""
    return localcontext(EXACT)


def parse_amount(value, *, scale: int, allow_zero: bool = False, field: str = "amount") -> Decimal:
    """Return ``value`` as an exact Decimal, or raise InvalidAmount saying what is wrong.

    Accepted: Decimal, int, and decimal strings. Refused: float (already inexact), bool,
    NaN, infinity, zero (unless allowed), negative, more decimals than ``scale``.
    """
    amount = exact_decimal(value, field=field, error=InvalidAmount)
    if amount.is_nan():
        raise InvalidAmount(f"{field} is NaN")
    if amount.is_infinite():
        raise InvalidAmount(f"{field} is infinite")
    if amount < 0:
        raise InvalidAmount(f"{field} {amount} is negative")
    if amount == 0 and not allow_zero:
        raise InvalidAmount(f"{field} is zero")
    if amount >= MAX_AMOUNT:
        raise InvalidAmount(f"{field} {amount} exceeds the maximum of {MAX_AMOUNT}")
    # Quantize in a wide context: at scale 18, 1e12 units is 31 digits, past the default 28.
    with localcontext(Context(prec=2 * MAX_DIGITS)):
        quantum = Decimal(1).scaleb(-scale)
        exponent = amount.as_tuple().exponent
        if -exponent > scale and amount != amount.quantize(quantum):
            raise InvalidAmount(f"{field} {amount} has more than {scale} decimal places")
        # Normalise the exponent so equal amounts compare and hash equal in payloads.
        return amount.quantize(quantum) if amount else Decimal(0)


def to_db(value: Decimal, vendor: str):
    """What a raw cursor is given for an amount: Decimal on PostgreSQL, fixed text on SQLite."""
    if vendor == "sqlite":
        return format(value, "f")
    return value


def from_db(value) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(value)


def canonical(value: Decimal) -> str:
    """A stable text form (no exponent, no trailing zeros) used in payload hashes and JSON."""
    text = format(value.normalize(), "f") if value else "0"
    return text


class AmountField(models.Field):
    """An exact decimal: NUMERIC(38,18) on PostgreSQL, fixed-point TEXT on SQLite.

    Django's own DecimalField goes through a float on SQLite and keeps only 15 significant
    digits, which is not exact at 1e12 units with 1e-8 resolution.
    """

    description = "Exact decimal amount"

    def db_type(self, connection):
        if connection.vendor == "sqlite":
            return "text"
        return f"numeric({MAX_DIGITS}, {MAX_SCALE})"

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return from_db(value)

    def to_python(self, value):
        if value is None or isinstance(value, Decimal):
            return value
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise forms.ValidationError(f"{value!r} is not a decimal number") from None

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        if hasattr(value, "as_sql"):
            return value
        return to_db(Decimal(value) if not isinstance(value, Decimal) else value, connection.vendor)

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": forms.DecimalField, **kwargs})
