"""Order intent creation: the order exists in ``payment_pending`` from this moment on."""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ledger.amounts import parse_amount
from ledger.errors import InvalidAmount
from ledger.services import asset_scale
from strategy import pure_mm
from strategy.runtime import params_for

from ..errors import InvalidOrderRequest, PairDisabled, PairNotFound
from ..memo import encode_market_making_create_memo
from ..models import MarketMakingOrder, MarketMakingPair, OrderTransition, PaymentState

logger = logging.getLogger(__name__)

PARAM_SCALE = 8


def _decimal(value, *, field: str, scale: int = PARAM_SCALE, allow_zero: bool = False) -> Decimal:
    try:
        return parse_amount(value, scale=scale, field=field, allow_zero=allow_zero)
    except InvalidAmount as exc:
        raise InvalidOrderRequest(str(exc)) from None


# The largest value each integer parameter's column holds (PostgreSQL integer / smallint); a ladder
# of more layers a side than an exchange allows open orders on a symbol (Binance: 200) is refused.
INT_LIMITS = {"number_of_layers": 100}
MAX_INT = 2_147_483_647


def _positive_int(value, *, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidOrderRequest(f"{field} must be a positive integer, got {value!r}")
    limit = INT_LIMITS.get(field, MAX_INT)
    if value > limit:
        raise InvalidOrderRequest(f"{field} must be at most {limit}, got {value}")
    return value


def _bool(value, *, field: str) -> bool:
    """Only a real bool (JSON true/false): "false" or 0 would be a guess at what was meant."""
    if not isinstance(value, bool):
        raise InvalidOrderRequest(f"{field} must be true or false, got {value!r}")
    return value


def _fraction(value, *, field: str) -> Decimal:
    """A fraction in [0, 1] (0.5 = 50 %)."""
    fraction = _decimal(value, field=field, allow_zero=True)
    if fraction > 1:
        raise InvalidOrderRequest(f"{field} must be a fraction in [0, 1] (0.5 = 50%), got {fraction}")
    return fraction


def _strategy_check(order: MarketMakingOrder) -> None:
    """Refuse now what the strategy would refuse on every tick: the parameters as the cycle builds them."""
    try:
        params_for(order)
    except pure_mm.StrategyInputError as exc:
        raise InvalidOrderRequest(f"the strategy refuses these parameters: {exc}") from None


def pair_get_enabled(pair_id) -> MarketMakingPair:
    try:
        pair = MarketMakingPair.objects.get(pair_id=uuid.UUID(str(pair_id)))
    except (MarketMakingPair.DoesNotExist, ValueError):
        raise PairNotFound(f"no market-making pair {pair_id}") from None
    if not pair.enabled:
        raise PairDisabled(f"pair {pair.symbol} ({pair.pair_id}) is disabled")
    return pair


def order_create(
    *, user_id: str, pair_id, base_amount, quote_amount, bid_spread, ask_spread, order_amount,
    order_refresh_time: int = 15, number_of_layers: int = 1, amount_change_per_layer="0",
    amount_change_type: str = "fixed", price_source_type: str = "mid_price", ceiling_price=None,
    floor_price=None, order_level_spread=None, inventory_skew_enabled: bool = False,
    inventory_target_base_pct="0.5", inventory_range_multiplier="1", hanging_orders_enabled: bool = False,
    order_refresh_tolerance_pct="0", max_order_age_s: int | None = None, by: str = "api",
) -> MarketMakingOrder:
    """Create an order intent with its memo and payment legs, in ``payment_pending``.

    The strategy parameters are those of ``strategy.pure_mm.PureMMParams`` (its docstring gives their
    meaning); ``order_level_spread=None`` puts each layer one more bid spread out.
    """
    if not isinstance(user_id, str):
        raise InvalidOrderRequest(f"user_id must be a Mixin user id (UUID), got {user_id!r}")
    try:
        user_id = str(uuid.UUID(user_id))
    except ValueError:
        raise InvalidOrderRequest(f"user_id must be a Mixin user id (UUID), got {user_id!r}") from None
    pair = pair_get_enabled(pair_id)
    if amount_change_type not in ("fixed", "percentage"):
        raise InvalidOrderRequest(f"amount_change_type must be fixed or percentage, got {amount_change_type!r}")
    fields = dict(
        base_amount=_decimal(base_amount, field="base_amount", scale=asset_scale(pair.base_asset_id)),
        quote_amount=_decimal(quote_amount, field="quote_amount", scale=asset_scale(pair.quote_asset_id)),
        bid_spread=_decimal(bid_spread, field="bid_spread"),
        ask_spread=_decimal(ask_spread, field="ask_spread"),
        order_amount=_decimal(order_amount, field="order_amount"),
        order_refresh_time=_positive_int(order_refresh_time, field="order_refresh_time"),
        number_of_layers=_positive_int(number_of_layers, field="number_of_layers"),
        amount_change_per_layer=_decimal(amount_change_per_layer, field="amount_change_per_layer", allow_zero=True),
        amount_change_type=amount_change_type,
        price_source_type=str(price_source_type),
        ceiling_price=None if ceiling_price is None else _decimal(ceiling_price, field="ceiling_price"),
        floor_price=None if floor_price is None else _decimal(floor_price, field="floor_price"),
        order_level_spread=None if order_level_spread is None else _decimal(
            order_level_spread, field="order_level_spread", allow_zero=True),
        inventory_skew_enabled=_bool(inventory_skew_enabled, field="inventory_skew_enabled"),
        inventory_target_base_pct=_fraction(inventory_target_base_pct, field="inventory_target_base_pct"),
        inventory_range_multiplier=_decimal(
            inventory_range_multiplier, field="inventory_range_multiplier", allow_zero=True),
        hanging_orders_enabled=_bool(hanging_orders_enabled, field="hanging_orders_enabled"),
        order_refresh_tolerance_pct=_decimal(
            order_refresh_tolerance_pct, field="order_refresh_tolerance_pct", allow_zero=True),
        max_order_age_s=None if max_order_age_s is None else _positive_int(max_order_age_s, field="max_order_age_s"),
    )
    if fields["ceiling_price"] is not None and fields["floor_price"] is not None \
            and fields["floor_price"] > fields["ceiling_price"]:
        raise InvalidOrderRequest("floor_price is above ceiling_price")
    _strategy_check(MarketMakingOrder(pair=pair, **fields))

    order_id = uuid.uuid4()
    now = timezone.now()
    with transaction.atomic():
        order = MarketMakingOrder.objects.create(
            order_id=order_id, user_id=user_id, pair=pair, exchange_account=pair.exchange_account,
            memo=encode_market_making_create_memo(pair.pair_id, order_id),
            expires_at=now + timedelta(seconds=settings.MM_PAYMENT_TIMEOUT_S), **fields,
        )
        PaymentState.objects.create(
            order=order,
            base_asset_id=pair.base_asset_id, base_required=fields["base_amount"],
            quote_asset_id=pair.quote_asset_id, quote_required=fields["quote_amount"],
            base_fee_asset_id=pair.base_fee_asset_id if pair.base_fee_amount else "",
            base_fee_required=pair.base_fee_amount,
            quote_fee_asset_id=pair.quote_fee_asset_id if pair.quote_fee_amount else "",
            quote_fee_required=pair.quote_fee_amount,
        )
        OrderTransition.objects.create(
            order=order, name="create", from_state="", to_state=order.state, by=by, reason="order intent created"
        )
    logger.info("event=order_created order_id=%s user_id=%s pair_id=%s by=%s", order_id, user_id, pair.pair_id, by)
    return order
