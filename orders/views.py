"""The JSON API of orders: create an order intent (order id, memo, required amounts).

Every call carries ``Authorization: Bearer <token>`` (``manage.py api_token create USERNAME``);
anonymous or unknown tokens get 401, a user over its rate limit 429 with Retry-After, bad input
400 with the reason per field. See docs/api.md.
"""
import json
import logging
import uuid
from functools import wraps

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from api.services import api_rate_take, api_token_user
from ledger.services import asset_scale

from .errors import InvalidOrderRequest, PairDisabled, PairNotFound
from .selectors import order_summary
from .services import order_create
from .services.orders import _bool, _decimal, _fraction, _positive_int, pair_get_enabled

logger = logging.getLogger(__name__)

FIELDS = (
    "user_id", "pair_id", "base_amount", "quote_amount", "bid_spread", "ask_spread", "order_amount",
    "order_refresh_time", "number_of_layers", "amount_change_per_layer", "amount_change_type",
    "price_source_type", "ceiling_price", "floor_price", "order_level_spread", "inventory_skew_enabled",
    "inventory_target_base_pct", "inventory_range_multiplier", "hanging_orders_enabled",
    "order_refresh_tolerance_pct", "max_order_age_s",
)
REQUIRED = FIELDS[:7]
DECIMALS = ("bid_spread", "ask_spread", "order_amount", "ceiling_price", "floor_price")
DECIMALS_OR_ZERO = ("amount_change_per_layer", "order_level_spread", "inventory_range_multiplier",
                    "order_refresh_tolerance_pct")
FRACTIONS = ("inventory_target_base_pct",)
INTEGERS = ("order_refresh_time", "number_of_layers", "max_order_age_s")
BOOLEANS = ("inventory_skew_enabled", "hanging_orders_enabled")
NULLABLE = ("ceiling_price", "floor_price", "order_level_spread", "max_order_age_s")


def api_authenticated(view):
    """401 without a valid bearer token, 429 (with Retry-After) over the user's rate limit."""
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        user = api_token_user(authorization=request.headers.get("Authorization", ""))
        if user is None:
            response = JsonResponse({"error": "authentication required: send 'Authorization: Bearer <token>'"},
                                    status=401)
            response["WWW-Authenticate"] = 'Bearer realm="api"'
            return response
        retry_after = api_rate_take(user_id=user.pk)
        if retry_after:
            logger.info("event=api_rate_limited user=%s retry_after_s=%s", user.get_username(), retry_after)
            response = JsonResponse({"error": f"rate limit exceeded; retry in {retry_after} s"}, status=429)
            response["Retry-After"] = str(retry_after)
            return response
        request.user = user
        return view(request, *args, **kwargs)
    return wrapper


def _field_errors(body: dict) -> dict[str, list[str]]:
    """Every problem of the request, per field, checked with the same parsers as order_create."""
    errors: dict[str, list[str]] = {}
    for name in sorted(set(body) - set(FIELDS)):
        errors[name] = ["unknown field"]
    for name in REQUIRED:
        if name not in body:
            errors[name] = ["this field is required"]

    def check(name, parse):
        # null means "none" only where the order allows none; elsewhere the parser says what is expected.
        if name in body and (body[name] is not None or name not in NULLABLE) and name not in errors:
            try:
                parse(body[name])
            except InvalidOrderRequest as exc:
                errors[name] = [str(exc)]

    def user_id(value):
        if not isinstance(value, str):
            raise InvalidOrderRequest(f"user_id must be a Mixin user id (UUID), got {value!r}")
        try:
            uuid.UUID(value)
        except ValueError:
            raise InvalidOrderRequest(f"user_id must be a Mixin user id (UUID), got {value!r}") from None

    check("user_id", user_id)
    pair = None
    if "pair_id" in body:
        try:
            pair = pair_get_enabled(body["pair_id"])
        except PairNotFound as exc:
            errors["pair_id"] = [str(exc)]
        except PairDisabled:
            pair = None  # answered as a conflict (409) by the service call
    for name, asset in (("base_amount", "base_asset_id"), ("quote_amount", "quote_asset_id")):
        if pair is not None:
            scale = asset_scale(getattr(pair, asset))
            check(name, lambda v, name=name, scale=scale: _decimal(v, field=name, scale=scale))
        else:
            check(name, lambda v, name=name: _decimal(v, field=name))
    for name in DECIMALS:
        check(name, lambda v, name=name: _decimal(v, field=name))
    for name in DECIMALS_OR_ZERO:
        check(name, lambda v, name=name: _decimal(v, field=name, allow_zero=True))
    for name in FRACTIONS:
        check(name, lambda v, name=name: _fraction(v, field=name))
    for name in INTEGERS:
        check(name, lambda v, name=name: _positive_int(v, field=name))
    for name in BOOLEANS:
        check(name, lambda v, name=name: _bool(v, field=name))
    if body.get("amount_change_type", "fixed") not in ("fixed", "percentage"):
        errors["amount_change_type"] = [f"must be fixed or percentage, got {body['amount_change_type']!r}"]
    return errors


def _invalid(errors: dict[str, list[str]]) -> JsonResponse:
    return JsonResponse({"error": "invalid request", "errors": errors}, status=400)


@csrf_exempt
@require_POST
@api_authenticated
def order_create_view(request):
    try:
        body = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _invalid({"body": ["the body must be a JSON object"]})
    if not isinstance(body, dict):
        return _invalid({"body": ["the body must be a JSON object"]})
    errors = _field_errors(body)
    if errors:
        return _invalid(errors)
    try:
        order = order_create(**body, by=f"api:{request.user.get_username()}")
    except PairDisabled as exc:
        return JsonResponse({"error": str(exc), "errors": {"pair_id": [str(exc)]}}, status=409)
    except PairNotFound as exc:
        return _invalid({"pair_id": [str(exc)]})
    except InvalidOrderRequest as exc:
        # Only checks of the whole set are left here: floor_price above ceiling_price, or parameters
        # the strategy refuses (e.g. bid_spread of 1 or more, an unknown price_source_type).
        return _invalid({"non_field_errors": [str(exc)]})
    return JsonResponse(order_summary(order=order), status=201)
