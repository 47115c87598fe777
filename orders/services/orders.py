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
from strategy import params as order_params
from strategy import pure_mm

from ..errors import InvalidOrderRequest, PairDisabled, PairNotFound
from ..memo import encode_market_making_create_memo
from ..models import MarketMakingOrder, MarketMakingPair, OrderTransition, PaymentState

logger = logging.getLogger(__name__)

# What an order-create request holds: who pays, on which pair, how much, and the strategy parameters
# (strategy.params declares them, with their defaults and checks).


def _user_id(value) -> str:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise InvalidOrderRequest(f"user_id must be a Mixin user id (UUID), got {value!r}")


def _amount(value, *, field: str, scale: int) -> Decimal:
    """An amount the user pays: positive, at most its asset's scale in decimals."""
    try:
        return parse_amount(value, scale=scale, field=field)
    except InvalidAmount as exc:
        raise InvalidOrderRequest(str(exc)) from None


def _strategy_check(order: MarketMakingOrder) -> None:
    """Refuse now what the strategy would refuse on every tick: the parameters as the cycle builds them."""
    try:
        order_params.params_for(order)
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


def order_create_check(
    *, user_id: str, pair_id, base_amount, quote_amount, **params,
) -> tuple[str, MarketMakingPair, dict]:
    """The payer, the pair and the fields an order of this request would be stored with; raises
    what ``order_create`` raises for it (it writes nothing, so a form can check before it creates)."""
    user_id = _user_id(user_id)
    pair = pair_get_enabled(pair_id)
    try:
        strategy_fields = order_params.clean_params(params)
    except order_params.ParamErrors as exc:
        raise InvalidOrderRequest(str(exc)) from None
    fields = dict(
        base_amount=_amount(base_amount, field="base_amount", scale=asset_scale(pair.base_asset_id)),
        quote_amount=_amount(quote_amount, field="quote_amount", scale=asset_scale(pair.quote_asset_id)),
        **strategy_fields,
    )
    if fields["ceiling_price"] is not None and fields["floor_price"] is not None \
            and fields["floor_price"] > fields["ceiling_price"]:
        raise InvalidOrderRequest("floor_price is above ceiling_price")
    _strategy_check(MarketMakingOrder(pair=pair, **fields))
    return user_id, pair, fields


def order_create(*, user_id: str, pair_id, base_amount, quote_amount, by: str = "api", **params) -> MarketMakingOrder:
    """Create an order intent with its memo and payment legs, in ``payment_pending``.

    ``params`` are the strategy parameters (``strategy.params.PARAMS``: names, defaults, checks);
    each is refused with ``InvalidOrderRequest`` naming it, and the whole set is then refused if the
    strategy would refuse it (``strategy.pure_mm.PureMMParams`` gives their meaning).
    """
    user_id, pair, fields = order_create_check(
        user_id=user_id, pair_id=pair_id, base_amount=base_amount, quote_amount=quote_amount, **params)
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
