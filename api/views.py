"""The user's API (Django REST framework): pairs, order intents, the user's orders with their payment state and
history, strategy-parameter edits, stop, payout. docs/api.md describes each endpoint; /api/schema/ is its OpenAPI.

Every view but the schema needs a bearer token (``api.authentication``) and counts against its user's rate
limit (``api.throttling``). A token acts for one Mixin user (``ApiToken.mixin_user_id``): it sees and acts on
that user's orders only, and any other order, whoever's it is, is a 404.
"""
import logging

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from orders.errors import (
    IllegalTransition,
    InvalidOrderRequest,
    InvalidParamChange,
    OrderFinished,
    PairDisabled,
    PairNotFound,
    PayoutNotPossible,
)
from orders.models import OrderState
from orders.selectors import (
    order_get_of_user,
    order_history,
    order_list_of_user,
    order_summary,
    pair_list_enabled,
)
from orders.services import order_create, order_params_update
from orders.services.lifecycle import order_stop_request
from orders.services.payout import payout_request

from . import serializers as s
from .exceptions import Conflict

logger = logging.getLogger(__name__)

# What a stop request accepts: the states ``orders.services.order_stop`` stops from.
STOPPABLE = (OrderState.RUNNING, OrderState.CAMPAIGN_JOINED)
# Stopped already: a stop request is answered with the order as it is.
STOPPED = (OrderState.STOPPED, OrderState.PAYING_OUT, OrderState.PAID_OUT)
HISTORY_FILLS = 200


def _errors(*codes):
    return {code: OpenApiResponse(s.ErrorSerializer) for code in codes}


def _caller(request) -> str:
    return f"api:{request.user.get_username()}"


def _bound_user(request) -> str:
    """The Mixin user id the token acts for ('' when it is bound to none)."""
    return request.auth.mixin_user_id


def _owned_order(request, order_id):
    order = order_get_of_user(user_id=_bound_user(request), order_id=order_id) if _bound_user(request) else None
    if order is None:
        raise NotFound(f"no market-making order {order_id}")
    return order


class OrderPagination(PageNumberPagination):
    """``?page=N`` (from 1) and ``?page_size=`` (default REST_FRAMEWORK's PAGE_SIZE, at most 200); a page or page
    size that is not a positive integer in range is a 400 naming it (DRF: a 404, or the default size)."""

    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        text = request.query_params.get(self.page_size_query_param)
        if text is None:
            return self.page_size
        if not text.isdigit() or not 1 <= int(text) <= self.max_page_size:
            raise ValidationError({"page_size": [f"page_size must be an integer from 1 to {self.max_page_size}, "
                                                 f"got {text!r}"]})
        return int(text)

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise ValidationError({"page": [f"page {request.query_params.get('page')!r}: {exc.detail}"]}) from None


class PairListView(ListAPIView):
    """The pairs that take new orders, with the decimals each amount may carry and the fees an order pays."""

    serializer_class = s.PairSerializer
    pagination_class = None

    def get_queryset(self):
        return pair_list_enabled()

    @extend_schema(operation_id="pairs_list", responses={200: s.PairSerializer(many=True), **_errors(401, 429)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class OrderListCreateView(ListAPIView):
    """GET: the token's user's orders, newest first, paginated. POST: create an order intent for that user."""

    serializer_class = s.OrderListSerializer
    pagination_class = OrderPagination

    def get_queryset(self):
        user_id = _bound_user(self.request)
        return order_list_of_user(user_id=user_id) if user_id else order_list_of_user(user_id="").none()

    @extend_schema(operation_id="orders_list", description="The token's user's orders, newest first, paginated.",
                   responses={200: s.OrderListSerializer(many=True), **_errors(400, 401, 429)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(operation_id="orders_create", request=s.OrderCreateSerializer,
                   description="Create an order intent (payment_pending) for the token's Mixin user: its id, the memo "
                               "to put on every payment and each amount to pay.",
                   responses={201: s.OrderCreatedSerializer, **_errors(400, 401, 403, 409, 429)})
    def post(self, request):
        bound = _bound_user(request)
        if not bound:
            raise PermissionDenied("this token is bound to no Mixin user, so it cannot create orders: "
                                   "manage.py api_token bind USERNAME --mixin-user-id UUID")
        serializer = s.OrderCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        given = data.pop("user_id", None)
        if given is not None and str(given) != bound:
            raise PermissionDenied(f"user_id {given} is not the Mixin user this token acts for; leave it out or "
                                   "send the token's own")
        try:
            order = order_create(user_id=bound, by=_caller(request), **data)
        except PairDisabled as exc:
            raise Conflict(str(exc), errors={"pair_id": [str(exc)]}) from None
        except PairNotFound as exc:  # deleted since the check
            raise ValidationError({"pair_id": [str(exc)]}) from None
        except InvalidOrderRequest as exc:
            # Checks of the whole set: floor_price above ceiling_price, or parameters the strategy refuses.
            raise ValidationError({"non_field_errors": [str(exc)]}) from None
        return Response(order_summary(order=order), status=status.HTTP_201_CREATED)


class OrderDetailView(APIView):
    """One order of the token's user with its payment state (legs required and received, refunds), its state,
    timestamps and strategy parameters."""

    @extend_schema(operation_id="orders_retrieve", responses={200: s.OrderDetailSerializer, **_errors(401, 404, 429)})
    def get(self, request, order_id):
        return Response(s.OrderDetailSerializer(_owned_order(request, order_id)).data)


class OrderHistoryView(APIView):
    """What happened to one order: state transitions, parameter changes, payments received, exchange fills."""

    @extend_schema(operation_id="orders_history", responses={200: s.HistorySerializer, **_errors(401, 404, 429)})
    def get(self, request, order_id):
        order = _owned_order(request, order_id)
        return Response(s.HistorySerializer(order_history(order=order, fills_limit=HISTORY_FILLS)).data)


class OrderParamsView(APIView):
    """Change strategy parameters of an order that is not finished (``orders.services.order_params_update``)."""

    @extend_schema(operation_id="orders_params_update", request=s.ParamsUpdateSerializer,
                   responses={200: s.ParamsUpdatedSerializer, **_errors(400, 401, 404, 409, 429)})
    def patch(self, request, order_id):
        order = _owned_order(request, order_id)
        serializer = s.ParamsUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            update = order_params_update(order_id=order.order_id, changes=serializer.validated_data,
                                         by=_caller(request))
        except OrderFinished as exc:
            raise Conflict(str(exc), state=exc.state) from None
        except InvalidParamChange as exc:
            raise ValidationError(exc.errors) from None
        return Response(update.summary())


class OrderStopView(APIView):
    """Stop an order: the ``stop_mm`` job (as ``manage.py stop_mm`` and the admin) stops its strategy, cancels its
    orders on the exchange, settles its fills and unlocks its funds; the order is then ``stopped``."""

    @extend_schema(operation_id="orders_stop", request=None,
                   responses={202: s.StopSerializer, 200: s.StopSerializer, **_errors(401, 404, 409, 429)})
    def post(self, request, order_id):
        order = _owned_order(request, order_id)
        if order.state in STOPPED:
            return Response({"order_id": order.order_id, "state": order.state, "stop": "stopped"})
        if order.state not in STOPPABLE:
            raise Conflict(f"order {order.order_id} is {order.state}; 'stop' is not allowed from that state (only a "
                           "running order, or one waiting to start)", state=order.state)
        reason = f"stop requested by the user ({_caller(request)})"
        try:
            # Recorded before it is queued: a stop the broker loses is started again by the sweeper.
            order_stop_request(order_id=order.order_id, by=_caller(request), reason=reason)
        except IllegalTransition as exc:
            raise Conflict(str(exc), state=order.state) from None
        return Response({"order_id": order.order_id, "state": order.state, "stop": "queued"},
                        status=status.HTTP_202_ACCEPTED)


class OrderPayoutView(APIView):
    """Pay a stopped order's funds out to its user (``orders.services.payout``): the ``withdraw_to_user`` job
    withdraws each asset the order held at stop from the exchange to the bot, and transfers what arrives to
    the user. For an order already paying out, the job is queued again."""

    @extend_schema(operation_id="orders_payout", request=None,
                   responses={202: s.PayoutRequestedSerializer, **_errors(401, 404, 409, 429)})
    def post(self, request, order_id):
        order = _owned_order(request, order_id)
        try:
            # The user's request never lifts the operator's hold (checked under the order's lock).
            payout_request(order_id=order.order_id, by=_caller(request), lift_hold=False)
        except PayoutNotPossible as exc:
            raise Conflict(str(exc), state=order.state) from None
        logger.info("event=order_payout_requested order_id=%s by=%s", order.order_id, _caller(request))
        return Response(s.PayoutRequestedSerializer(_owned_order(request, order_id)).data,
                        status=status.HTTP_202_ACCEPTED)
