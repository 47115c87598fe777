"""The strategy parameters of a market-making order, declared once.

``PARAMS`` lists every parameter an order carries for pure market making: its name (the order's
field name), kind, default, whether None is a value, bounds, help text, and how it becomes a field of
``pure_mm.PureMMParams``. Everything else is derived from it:

- ``model_fields()``: the order's columns (``orders.models`` adds them to ``MarketMakingOrder``);
- ``clean`` / ``from_text`` / ``clean_params``: the checks of raw input (API JSON,
  command-line text, admin form values), each refusal a ``ParamError`` naming the parameter;
- ``formfield(name)``: the admin form's field; ``Param.argument()``: ``mm_order create``'s option;
- ``ORDER_PARAM_FIELDS`` and ``params_for(order)``: what the strategy reads of an order, and the
  ``PureMMParams`` it makes of them.

To add a parameter: declare it here, use it in ``strategy/pure_mm.py``, run ``makemigrations``.
Money and ratios are exact: a float is refused, as everywhere (``ledger.amounts.parse_amount``).
"""
from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Callable, Mapping

from django import forms
from django.core.exceptions import ValidationError
from django.db import models

from exchanges.models import ExchangeAccount
from ledger.amounts import AmountField, parse_amount
from ledger.errors import InvalidAmount

from . import pure_mm

# Decimal places a spread, ratio or price parameter may carry.
PARAM_SCALE = 8
# The largest value of a PostgreSQL integer column: beyond it a clear refusal, not a database error.
MAX_INT = 2_147_483_647
MAX_SMALLINT = 32_767
# The length of a choice's column.
CHOICE_MAX_LENGTH = 16
# The length of a text parameter's column (a market symbol).
TEXT_MAX_LENGTH = 64


class Kind(str, Enum):
    DECIMAL = "decimal"  # exact Decimal (a spread, ratio, amount or price), never a float
    INTEGER = "integer"  # a positive integer
    BOOLEAN = "boolean"  # a real bool: "false" or 0 would be a guess at what was meant
    CHOICE = "choice"  # one of a few names
    TEXT = "text"  # a short name (a market symbol), matching the parameter's pattern


class ParamError(pure_mm.StrategyInputError):
    """A strategy parameter is missing or invalid; ``field`` names it and the message starts with it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class ParamErrors(pure_mm.StrategyInputError):
    """Every problem of a set of parameters: ``errors`` maps each bad parameter to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class _Required:
    def __repr__(self):
        return "REQUIRED"


REQUIRED: Any = _Required()


def _same(value, order):
    return value


@dataclass(frozen=True)
class Param:
    """One strategy parameter of an order (see the module docstring)."""

    name: str
    kind: Kind
    default: Any = REQUIRED
    null: bool = False  # None is a value ("none": no ceiling, no age limit...); the column is nullable
    positive: bool = False  # DECIMAL: zero refused (negative always is)
    fraction: bool = False  # DECIMAL: within [0, 1] (0.5 = 50 %)
    maximum: int = MAX_INT  # INTEGER: the largest value; it also picks the column (smallint up to 32767)
    choices: Mapping[str, Any] = field(default_factory=dict)  # CHOICE: accepted name -> the strategy's value
    column_choices: bool = False  # CHOICE: the column declares the names (membership is a field check)
    pattern: str | None = None  # TEXT: the regular expression the whole value must match
    pattern_text: str = ""  # TEXT: what the pattern asks for, in words
    # Another check of a well-formed value that needs the database (an account that exists): the
    # problem's message, or None.
    check: Callable[[Any], str | None] | None = None
    help_text: str = ""
    strategy: str | None = None  # the PureMMParams field it becomes; None: the strategy does not read it
    to_strategy: Callable[[Any, Any], Any] = _same  # (the order's value, the order) -> the strategy's value

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def model_field(self) -> models.Field:
        """The order's column; its declaration must not change without a migration."""
        kwargs: dict[str, Any] = {"help_text": self.help_text}
        if not self.required and self.default is not None:  # a nullable column's default is None already
            kwargs["default"] = self.default
        if self.null:
            kwargs.update(null=True, blank=True)
        if self.kind is Kind.DECIMAL:
            return AmountField(**kwargs)
        if self.kind is Kind.INTEGER:
            small = self.maximum <= MAX_SMALLINT
            return (models.PositiveSmallIntegerField if small else models.PositiveIntegerField)(**kwargs)
        if self.kind is Kind.BOOLEAN:
            return models.BooleanField(**kwargs)
        if self.kind is Kind.TEXT:
            return models.CharField(max_length=TEXT_MAX_LENGTH, **kwargs)
        if self.column_choices:
            kwargs["choices"] = [(name, name) for name in self.choices]
        return models.CharField(max_length=CHOICE_MAX_LENGTH, **kwargs)

    def clean(self, value):
        """``value`` (a Python or JSON value) checked and normalised; ``ParamError`` names the parameter."""
        if value is None and self.null:
            return None
        value = self._clean(value)
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ParamError(self.name, f"{self.name}: {problem}")
        return value

    def _clean(self, value):
        name = self.name
        if self.kind is Kind.DECIMAL:
            try:
                number = parse_amount(value, scale=PARAM_SCALE, field=name, allow_zero=not self.positive)
            except InvalidAmount as exc:
                raise ParamError(name, str(exc)) from None
            if self.fraction and number > 1:
                raise ParamError(name, f"{name} must be a fraction in [0, 1] (0.5 = 50%), got {number}")
            return number
        if self.kind is Kind.INTEGER:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ParamError(name, f"{name} must be a positive integer, got {value!r}")
            if value > self.maximum:
                raise ParamError(name, f"{name} must be at most {self.maximum}, got {value}")
            return value
        if self.kind is Kind.BOOLEAN:
            if not isinstance(value, bool):
                raise ParamError(name, f"{name} must be true or false, got {value!r}")
            return value
        if self.kind is Kind.TEXT:
            if not isinstance(value, str) or not 0 < len(value.strip()) <= TEXT_MAX_LENGTH \
                    or (self.pattern and not re.fullmatch(self.pattern, value.strip())):
                raise ParamError(name, f"{name} must be {self.pattern_text or 'text'} of at most {TEXT_MAX_LENGTH} "
                                       f"characters, got {value!r}")
            return value.strip()
        if not isinstance(value, str) or len(value) > CHOICE_MAX_LENGTH:
            raise ParamError(name, f"{name} must be {self.choices_text()}, got {value!r}")
        if self.column_choices and value not in self.choices:
            raise ParamError(name, f"{name} must be {self.choices_text()}, got {value!r}")
        # Otherwise (price_source_type) which names exist is the strategy's to say: an unknown one is
        # refused when the order's PureMMParams are built (a "strategy refuses" error, docs/api.md).
        return value

    def from_text(self, text):
        """``clean`` of a value typed as text (a command-line option, an admin form field)."""
        if not isinstance(text, str):
            return self.clean(text)
        text = text.strip()
        if text == "" and (self.null or not self.required):
            return None if self.null else self.default
        if self.kind is Kind.INTEGER:
            if not text.isdigit():
                raise ParamError(self.name, f"{self.name} must be a positive integer, got {text!r}")
            return self.clean(int(text))
        if self.kind is Kind.BOOLEAN:
            flag = {"true": True, "1": True, "yes": True, "on": True,
                    "false": False, "0": False, "no": False, "off": False}.get(text.lower())
            return self.clean(text if flag is None else flag)
        return self.clean(text)

    def choices_text(self) -> str:
        names = list(self.choices)
        return " or ".join(names) if len(names) <= 2 else "one of " + ", ".join(names)

    def formfield(self) -> forms.Field:
        """The admin form's field: typed as text, checked by ``from_text``."""
        return ParamFormField(self)

    def argument(self) -> tuple[tuple[str], dict]:
        """``add_argument`` args and kwargs of the ``mm_order create`` option (None when not given)."""
        default = "" if self.required else f" (default: {_shown(self.default)})"
        kwargs: dict[str, Any] = {"help": f"{self.help_text or self.name.replace('_', ' ')}{default}",
                                  "dest": self.name}
        if self.required:
            kwargs["required"] = True
        if self.kind is Kind.BOOLEAN:
            kwargs.update(action="store_true", default=None)
        else:
            kwargs["type"] = self._argument_type
            if self.kind is Kind.CHOICE:
                kwargs["choices"] = list(self.choices)
        return (self.option,), kwargs

    def _argument_type(self, text: str):
        try:
            return self.from_text(text)
        except ParamError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class ParamFormField(forms.Field):
    """A form field of one parameter: the schema's checks and messages, the schema's default."""

    def __init__(self, param: Param, **kwargs):
        self.param = param
        if param.kind is Kind.BOOLEAN:
            widget = forms.CheckboxInput
        elif param.kind is Kind.CHOICE:
            widget = forms.Select(choices=[(name, name) for name in param.choices])
        else:
            widget = forms.TextInput
        kwargs.setdefault("required", param.required)
        kwargs.setdefault("initial", None if param.required else param.default)
        kwargs.setdefault("help_text", param.help_text)
        kwargs.setdefault("widget", widget)
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values and self.param.required:
            return None  # "this field is required", from validate()
        try:
            return self.param.from_text(value)
        except ParamError as exc:
            raise ValidationError(str(exc), code="invalid") from None


def _layer_spread(value, order):
    # An order without a layer spread of its own has each layer one more bid spread out.
    return order.bid_spread if value is None else value


_PRICE_SOURCES = {
    "mid_price": pure_mm.PriceSource.MID, "best_bid": pure_mm.PriceSource.BEST_BID,
    "best_ask": pure_mm.PriceSource.BEST_ASK, "last_price": pure_mm.PriceSource.LAST,
    "inventory_cost": pure_mm.PriceSource.INVENTORY_COST,
    # Hummingbot's short names, accepted too.
    "mid": pure_mm.PriceSource.MID, "last": pure_mm.PriceSource.LAST,
}


# The price_source_type names of the sources that need more than the book: the last trade price (the market
# data tracker reads it for their markets), the inventory cost (the cycle keeps it per session).
LAST_PRICE_NAMES = tuple(name for name, source in _PRICE_SOURCES.items() if source is pure_mm.PriceSource.LAST)
INVENTORY_COST_NAMES = tuple(
    name for name, source in _PRICE_SOURCES.items() if source is pure_mm.PriceSource.INVENTORY_COST)


def _account_exists(account_id) -> str | None:
    if not ExchangeAccount.objects.filter(pk=account_id).exists():
        return f"there is no exchange account {account_id}"
    return None


def _price_source(value, order) -> pure_mm.PriceSource:
    try:
        return _PRICE_SOURCES[value]
    except KeyError:
        raise pure_mm.StrategyInputError(
            f"unknown price source {value!r} (price_source_type must be one of {', '.join(_PRICE_SOURCES)})"
        ) from None


PARAMS: tuple[Param, ...] = (
    Param("bid_spread", Kind.DECIMAL, positive=True, help_text="fraction, e.g. 0.001 = 0.1%", strategy="bid_spread"),
    Param("ask_spread", Kind.DECIMAL, positive=True, help_text="fraction, e.g. 0.001 = 0.1%", strategy="ask_spread"),
    Param("order_amount", Kind.DECIMAL, positive=True, help_text="base amount per order", strategy="order_amount"),
    # Read by the order's strategy session (its cadence), not by PureMMParams.
    Param("order_refresh_time", Kind.INTEGER, default=15, help_text="seconds between strategy runs"),
    # More layers a side than an exchange allows open orders on a symbol (Binance: 200) are refused.
    Param("number_of_layers", Kind.INTEGER, default=1, maximum=100, strategy="order_levels"),
    Param("amount_change_per_layer", Kind.DECIMAL, default=Decimal(0), strategy="amount_change_per_layer"),
    Param("amount_change_type", Kind.CHOICE, default="fixed", choices={"fixed": "fixed", "percentage": "percentage"},
          column_choices=True, strategy="amount_change_type"),
    Param("price_source_type", Kind.CHOICE, default="mid_price", choices=_PRICE_SOURCES, strategy="price_source",
          to_strategy=_price_source),
    Param("ceiling_price", Kind.DECIMAL, default=None, null=True, positive=True, strategy="price_ceiling"),
    Param("floor_price", Kind.DECIMAL, default=None, null=True, positive=True, strategy="price_floor"),
    Param("order_level_spread", Kind.DECIMAL, default=None, null=True,
          help_text="fraction between layers; empty: each layer one more bid spread out",
          strategy="order_level_spread", to_strategy=_layer_spread),
    Param("inventory_skew_enabled", Kind.BOOLEAN, default=False, strategy="inventory_skew_enabled"),
    Param("inventory_target_base_pct", Kind.DECIMAL, default=Decimal("0.5"), fraction=True,
          help_text="share of the order's value to hold in base, fraction (0.5 = 50%)",
          strategy="inventory_target_base_pct"),
    Param("inventory_range_multiplier", Kind.DECIMAL, default=Decimal(1),
          help_text="skew band, in multiples of one side's total ladder amount", strategy="inventory_range_multiplier"),
    Param("hanging_orders_enabled", Kind.BOOLEAN, default=False,
          help_text="keep an order on the book once an opposite order has filled", strategy="hanging_orders_enabled"),
    Param("order_refresh_tolerance_pct", Kind.DECIMAL, default=Decimal(0),
          help_text="fraction; an order within it of the desired price and amount is kept",
          strategy="order_refresh_tolerance_pct"),
    Param("max_order_age_s", Kind.INTEGER, default=None, null=True,
          help_text="seconds; an older order is cancelled and replaced (empty: no limit)", strategy="max_order_age"),
    Param("filled_order_delay", Kind.DECIMAL, default=Decimal(1),
          help_text="seconds after a fill of this order before it places new orders (0: at once)",
          strategy="filled_order_delay"),
    Param("minimum_spread", Kind.DECIMAL, default=None, null=True, fraction=True,
          help_text="fraction; no order nearer the reference price than this (empty: no minimum)",
          strategy="minimum_spread"),
    Param("ping_pong_enabled", Kind.BOOLEAN, default=False,
          help_text="after a fill, quote the filled side again only once the other side has filled",
          strategy="ping_pong_enabled"),
    Param("add_transaction_costs", Kind.BOOLEAN, default=False,
          help_text="move prices out by the exchange's maker fee, so a fill earns its fee back",
          strategy="add_transaction_costs"),
    Param("order_optimization_enabled", Kind.BOOLEAN, default=False,
          help_text="innermost orders no further than one tick inside the best price of others",
          strategy="order_optimization_enabled"),
    Param("moving_price_band_enabled", Kind.BOOLEAN, default=False,
          help_text="a price band around the reference price of when it was last set, in place of the fixed "
                    "ceiling and floor", strategy="moving_price_band_enabled"),
    Param("price_ceiling_pct", Kind.DECIMAL, default=Decimal("0.01"),
          help_text="moving band: fraction above its anchor price at and above which no buy is placed",
          strategy="price_ceiling_pct"),
    Param("price_floor_pct", Kind.DECIMAL, default=Decimal("0.01"), fraction=True,
          help_text="moving band: fraction below its anchor price at and below which no sell is placed",
          strategy="price_floor_pct"),
    Param("price_band_refresh_time", Kind.INTEGER, default=86400,
          help_text="moving band: seconds after which its anchor is set again to the reference price",
          strategy="price_band_refresh_time"),
    # Read by the strategy cycle (which market data it reads), not by PureMMParams.
    Param("price_source_account", Kind.INTEGER, default=None, null=True, check=_account_exists,
          help_text="id of the exchange account whose market gives the reference price (empty: the order's own)"),
    Param("price_source_market", Kind.TEXT, default=None, null=True, pattern=r"[A-Za-z0-9._-]+/[A-Za-z0-9._:-]+",
          pattern_text="a market symbol such as BTC/USDT",
          help_text="market whose price is the reference (empty: the order's own pair), e.g. BTC/USDC"),
)
BY_NAME: dict[str, Param] = {param.name: param for param in PARAMS}
PARAM_NAMES: tuple[str, ...] = tuple(BY_NAME)
REQUIRED_PARAMS: tuple[str, ...] = tuple(param.name for param in PARAMS if param.required)
# The order fields the strategy reads (params_for reads nothing else of an order).
ORDER_PARAM_FIELDS: tuple[str, ...] = tuple(param.name for param in PARAMS if param.strategy)
_TO_STRATEGY = tuple((param.name, param.strategy, param.to_strategy) for param in PARAMS if param.strategy)


def model_fields() -> dict[str, models.Field]:
    """New instances of the order's parameter columns, by field name."""
    return {param.name: param.model_field() for param in PARAMS}


def clean(name: str, value):
    """One parameter's ``value`` checked and normalised (``Param.clean``)."""
    return BY_NAME[name].clean(value)


def from_text(name: str, text):
    """One parameter's value typed as text, checked and normalised (``Param.from_text``)."""
    return BY_NAME[name].from_text(text)


def formfield(name: str) -> forms.Field:
    return BY_NAME[name].formfield()


def clean_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter, checked, with the defaults of those not given; ``ParamErrors`` lists every
    problem (an unknown name, a missing required one, each invalid value)."""
    errors = {name: f"{name} is not a strategy parameter" for name in values if name not in BY_NAME}
    cleaned = {}
    for param in PARAMS:
        if param.name not in values:
            if param.required:
                errors[param.name] = f"{param.name} is required"
            else:
                cleaned[param.name] = param.default
            continue
        try:
            cleaned[param.name] = param.clean(values[param.name])
        except ParamError as exc:
            errors[param.name] = str(exc)
    if errors:
        raise ParamErrors(errors)
    return cleaned


def reference_market(account_id: int, symbol: str, price_source_account: int | None,
                     price_source_market: str | None) -> tuple[int, str]:
    """The (account, symbol) market an order's reference price comes from: the order's own unless its
    ``price_source_account`` or ``price_source_market`` names another."""
    return (price_source_account or account_id, price_source_market or symbol)


def params_for(order) -> pure_mm.PureMMParams:
    """The strategy's parameters of ``order`` (any object with the ``ORDER_PARAM_FIELDS``);
    ``pure_mm.StrategyInputError`` when the strategy refuses them."""
    return pure_mm.PureMMParams(**{
        strategy: to_strategy(getattr(order, name), order) for name, strategy, to_strategy in _TO_STRATEGY})
