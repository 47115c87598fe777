"""Exact decimals at the edge: the one coercion of Decimal, int or decimal-string input.

Plain Python (no Django), so the pure strategy uses it too. A float is refused: it is
already inexact. Each caller passes its own error classes, so the message and the type
say what the value was for.
"""
from decimal import Decimal, InvalidOperation


def exact_decimal(value, *, field: str, error: type[Exception] = ValueError,
                  float_error: type[Exception] | None = None) -> Decimal:
    """``value`` as a Decimal (possibly NaN or infinite: the caller decides what is allowed)."""
    if isinstance(value, bool):
        raise error(f"{field} must be a Decimal, got a bool ({value!r})")
    if isinstance(value, float):
        raise (float_error or error)(
            f"{field} must be a Decimal, int or decimal string, not a float ({value!r}): "
            "floats cannot represent amounts and prices exactly"
        )
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise error(f"{field} {value!r} is not a decimal number") from None
    raise error(f"{field} must be a Decimal, int or decimal string, not {type(value).__name__}")
