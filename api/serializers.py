"""Serializers of the user's API. The strategy parameters' fields are made from ``strategy.params.PARAMS``
(``ParamField``: the schema's checks and messages, its help text and bounds in the OpenAPI schema), so a
parameter declared there is in the create and edit requests, the order's representation and the schema
with no change here. Every input field's refusal names the field; a field the request does not know is
refused; money is a decimal string (an integer too), never a float.
"""
from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from rest_framework import serializers

from ledger.amounts import MAX_SCALE, canonical, parse_amount
from ledger.errors import InvalidAmount
from ledger.services import asset_scale
from orders.models import MarketMakingPair
from strategy import params as order_params
from strategy.params import Kind, Param, ParamError


def _text(value):
    return canonical(value) if isinstance(value, Decimal) else value


class NamedErrorsMixin:
    """Missing and null values refused with a message that names the field."""

    def bind(self, field_name, parent):
        super().bind(field_name, parent)
        self.error_messages = {**self.error_messages, "required": f"{field_name} is required",
                               "null": f"{field_name} may not be null"}


class MoneyField(NamedErrorsMixin, serializers.Field):
    """An exact positive amount: a decimal string (or an integer) in, a decimal string out; a JSON float is
    refused (it cannot represent money exactly). The asset's scale is checked by the serializer that knows
    the asset; here at most ``ledger.amounts.MAX_SCALE`` decimals."""

    def to_internal_value(self, data):
        try:
            return parse_amount(data, scale=MAX_SCALE, field=self.field_name)
        except InvalidAmount as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return canonical(value)


class UUIDField(NamedErrorsMixin, serializers.UUIDField):
    def bind(self, field_name, parent):
        super().bind(field_name, parent)
        self.error_messages["invalid"] = f"{field_name} must be a UUID, got {{value!r}}"

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class ParamField(serializers.Field):
    """One strategy parameter (``strategy.params.Param``): checked and normalised by the schema
    (``Param.clean``), whose refusals name the parameter; None only where the schema takes it as a value."""

    def __init__(self, param: Param, **kwargs):
        self.param = param
        if not kwargs.get("read_only"):
            kwargs.setdefault("required", param.required)
        kwargs.setdefault("allow_null", param.null)
        kwargs.setdefault("help_text", param.help_text or param.name.replace("_", " "))
        super().__init__(**kwargs)

    def bind(self, field_name, parent):
        super().bind(field_name, parent)
        self.error_messages = {**self.error_messages, "required": f"{field_name} is required"}

    def validate_empty_values(self, data):
        if data is None and not self.allow_null:
            return False, data  # the schema's own message ("... must be true or false, got None")
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        try:
            value = self.param.clean(data)
        except ParamError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if self.param.kind is Kind.CHOICE and value not in self.param.choices:
            # The schema leaves an unknown price source to the strategy's check of the whole set; the API names
            # the field (its choices are the schema's enum).
            raise serializers.ValidationError(f"{self.field_name} must be {self.param.choices_text()}, got {value!r}")
        return value

    def to_representation(self, value):
        return _text(value)


def param_fields(*, required: bool | None = None, read_only: bool = False) -> dict[str, ParamField]:
    """A field per strategy parameter; ``required=None``: as the schema says (order creation)."""
    fields = {}
    for param in order_params.PARAMS:  # read at each call: a parameter added there is a field here
        kwargs = {"read_only": True} if read_only else {"required": param.required if required is None else required}
        fields[param.name] = ParamField(param, **kwargs)
    return fields


class StrictSerializer(serializers.Serializer):
    """A request body: a JSON object whose every key is a field; every problem reported at once, per field."""

    unknown_message = "{name} is not a field of this request"

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError({"body": [f"the body must be a JSON object, got {type(data).__name__}"]})
        errors = {name: [self.unknown_message.format(name=name)] for name in data if name not in self.fields}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            errors.update(exc.detail)
            value = None
        if errors:
            raise serializers.ValidationError(dict(sorted(errors.items())))
        return value


# --- requests ---------------------------------------------------------------------------------------------

class OrderCreateSerializer(StrictSerializer):
    """An order intent: who pays (the token's Mixin user), on which pair, how much, and the strategy parameters
    (``strategy.params``; a parameter left out takes its default)."""

    user_id = UUIDField(required=False, help_text="the payer's Mixin user id; optional, and when given it must be "
                                                  "the one the token is bound to")
    pair_id = UUIDField(help_text="the pair (GET /api/pairs/)")
    base_amount = MoneyField(help_text="base amount to put to work, at most the asset's scale in decimals")
    quote_amount = MoneyField(help_text="quote amount to put to work, at most the asset's scale in decimals")

    def get_fields(self):
        return {**super().get_fields(), **param_fields()}

    def validate_pair_id(self, value):
        if not MarketMakingPair.objects.filter(pair_id=value).exists():
            raise serializers.ValidationError(f"no market-making pair {value}")
        return value

    def validate(self, attrs):
        pair = MarketMakingPair.objects.get(pair_id=attrs["pair_id"])
        errors = {}
        for name, asset in (("base_amount", pair.base_asset_id), ("quote_amount", pair.quote_asset_id)):
            try:
                parse_amount(attrs[name], scale=asset_scale(asset), field=name)
            except InvalidAmount as exc:
                errors[name] = [str(exc)]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ParamsUpdateSerializer(StrictSerializer):
    """Strategy parameters to change: any of them, each as in order creation."""

    unknown_message = "{name} is not a strategy parameter"

    def get_fields(self):
        return param_fields(required=False)


# --- responses --------------------------------------------------------------------------------------------

class PairSerializer(serializers.Serializer):
    pair_id = serializers.UUIDField()
    symbol = serializers.CharField(help_text="exchange symbol, e.g. BTC/USDT")
    exchange_id = serializers.CharField(help_text="ccxt exchange id")
    base_asset_id = serializers.CharField(help_text="Mixin asset id of the base")
    quote_asset_id = serializers.CharField(help_text="Mixin asset id of the quote")
    base_exchange_asset = serializers.CharField()
    quote_exchange_asset = serializers.CharField()
    base_scale = serializers.SerializerMethodField(help_text="decimals a base amount may carry")
    quote_scale = serializers.SerializerMethodField(help_text="decimals a quote amount may carry")
    base_fee_asset_id = serializers.CharField(help_text="asset of the base fee paid with an order (empty: none)")
    base_fee_amount = MoneyField(help_text="base fee paid with each order, on top of its amounts")
    quote_fee_asset_id = serializers.CharField(help_text="asset of the quote fee paid with an order (empty: none)")
    quote_fee_amount = MoneyField(help_text="quote fee paid with each order, on top of its amounts")

    def get_base_scale(self, pair) -> int:
        return asset_scale(pair.base_asset_id)

    def get_quote_scale(self, pair) -> int:
        return asset_scale(pair.quote_asset_id)


class LegSerializer(serializers.Serializer):
    leg = serializers.ChoiceField(choices=["base", "quote", "base_fee", "quote_fee"])
    asset_id = serializers.CharField()
    amount = MoneyField(help_text="required")
    received = MoneyField(help_text="received so far")

    def to_representation(self, instance):
        if isinstance(instance, tuple):  # PaymentState.legs(): (leg, asset_id, required, received)
            instance = dict(zip(("leg", "asset_id", "amount", "received"), instance))
        return super().to_representation(instance)


class OrderCreatedSerializer(serializers.Serializer):
    """What a client needs to pay an order (``orders.selectors.order_summary``)."""

    order_id = serializers.UUIDField()
    pair_id = serializers.UUIDField()
    user_id = serializers.CharField()
    state = serializers.CharField()
    memo = serializers.CharField(help_text="put it, as it is, on every payment of this order")
    expires_at = serializers.DateTimeField(help_text="payment deadline")
    required = LegSerializer(many=True)


class OrderListSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    pair_id = serializers.UUIDField(source="pair.pair_id")
    symbol = serializers.CharField(source="pair.symbol")
    state = serializers.CharField()
    base_amount = MoneyField()
    quote_amount = MoneyField()
    expires_at = serializers.DateTimeField(help_text="payment deadline")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class RefundSerializer(serializers.Serializer):
    asset_id = serializers.CharField()
    amount = MoneyField()
    status = serializers.CharField(help_text="pending, sent or compensated (credited back to the ledger)")
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PayoutSerializer(serializers.Serializer):
    asset_id = serializers.CharField()
    amount = MoneyField(help_text="what leaves the exchange: the order's funds of this asset at stop")
    status = serializers.CharField(help_text="pending, withdrawing, arrived (at the bot), paid (to the user) or failed")
    fee = MoneyField(allow_null=True, help_text="what the exchange kept")
    received = MoneyField(allow_null=True, help_text="what reached the bot and is paid to the user")
    error = serializers.CharField(help_text="failed: why, and where the money is")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class PaymentSerializer(serializers.Serializer):
    complete = serializers.BooleanField(source="is_complete", help_text="every leg received in full")
    legs = LegSerializer(many=True, help_text="each leg: asset, amount required and received")
    check_started_at = serializers.DateTimeField(allow_null=True, help_text="when the payment check began")
    updated_at = serializers.DateTimeField()


class OrderDetailSerializer(OrderListSerializer):
    user_id = serializers.CharField()
    memo = serializers.CharField()
    reason = serializers.CharField(help_text="why the order failed, was refunded or stopped")
    withdrawal_started_at = serializers.DateTimeField(allow_null=True)
    payment = PaymentSerializer()
    refunds = RefundSerializer(many=True)
    keep_on_exchange = serializers.BooleanField(help_text="the operator keeps the funds on the exchange after stop")
    payouts = PayoutSerializer(many=True, help_text="after stop: each asset paid out to the user")
    params = serializers.SerializerMethodField()

    def get_params(self, order) -> dict:
        return {name: field.to_representation(getattr(order, name)) for name, field in param_fields().items()}


class OrderParamsSerializer(serializers.Serializer):
    """Every strategy parameter of an order (the schema's representation of ``params``)."""

    def get_fields(self):
        return param_fields(read_only=True)


class TransitionSerializer(serializers.Serializer):
    name = serializers.CharField()
    from_state = serializers.CharField()
    to_state = serializers.CharField()
    by = serializers.CharField(help_text="task, command, admin user or API caller")
    reason = serializers.CharField()
    at = serializers.DateTimeField()


class ParamChangeSerializer(serializers.Serializer):
    name = serializers.CharField()
    old = serializers.CharField(source="old_value")
    new = serializers.CharField(source="new_value")
    by = serializers.CharField()
    reason = serializers.CharField()
    at = serializers.DateTimeField()


class PaymentReceivedSerializer(serializers.Serializer):
    snapshot_id = serializers.CharField()
    asset_id = serializers.CharField()
    amount = MoneyField()
    outcome = serializers.CharField(help_text="credited to the order, refunded, or held for an operator")
    reason = serializers.CharField()
    received_at = serializers.DateTimeField()


class FillSerializer(serializers.Serializer):
    trade_id = serializers.CharField()
    side = serializers.CharField()
    price = MoneyField()
    amount = MoneyField()
    cost = MoneyField()
    fee = MoneyField()
    fee_currency = serializers.CharField()
    traded_at_ms = serializers.IntegerField(help_text="the exchange's trade time, milliseconds since the epoch")
    settled = serializers.SerializerMethodField(help_text="booked in the ledger")

    def get_settled(self, fill) -> bool:
        return fill.ledger_entry_id is not None


class HistorySerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    transitions = TransitionSerializer(many=True, help_text="state changes, oldest first")
    param_changes = ParamChangeSerializer(many=True, help_text="strategy parameter changes, oldest first")
    payments = PaymentReceivedSerializer(many=True, help_text="payments received for the order, oldest first")
    fills = FillSerializer(many=True, help_text="exchange trades, newest first (at most fills_limit)")
    fills_count = serializers.IntegerField(help_text="all fills of the order")
    fills_limit = serializers.IntegerField()


class ParamChangeOutSerializer(serializers.Serializer):
    name = serializers.CharField()
    old = serializers.CharField()
    new = serializers.CharField()
    by = serializers.CharField()
    reason = serializers.CharField()
    at = serializers.DateTimeField()


class ParamsUpdatedSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    state = serializers.CharField()
    params = OrderParamsSerializer(help_text="every parameter after the change")
    changes = ParamChangeOutSerializer(many=True, help_text="the changes recorded (none: every value was the order's)")


class StopSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    state = serializers.CharField()
    stop = serializers.ChoiceField(choices=["queued", "stopped"],
                                   help_text="queued: the stop_mm job cancels its orders and stops it; stopped: it was")


class PayoutRequestedSerializer(serializers.Serializer):
    order_id = serializers.UUIDField()
    state = serializers.CharField(help_text="paying_out")
    payouts = PayoutSerializer(many=True)


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()), required=False,
                                   help_text="400: the messages of each bad field (body, non_field_errors)")
    state = serializers.CharField(required=False, help_text="409: the order's state")
