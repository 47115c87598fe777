"""The JSON API: create an order intent (order id, memo, required amounts); change the strategy
parameters of an order that is not finished.

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
from django.views.decorators.http import require_http_methods, require_POST

from orders.errors import (
    InvalidOrderRequest,
    InvalidParamChange,
    OrderFinished,
    OrderNotFound,
    PairDisabled,
    PairNotFound,
)
from orders.selectors import order_summary
from orders.services import order_create, order_params_update
from orders.services.orders import order_create_errors

from .services import api_rate_take, api_token_user

logger = logging.getLogger(__name__)


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


def _invalid(errors: dict[str, list[str]]) -> JsonResponse:
    return JsonResponse({"error": "invalid request", "errors": errors}, status=400)


def _json_object(request) -> dict | None:
    """The request's body as a JSON object, or None when it is not one."""
    try:
        body = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


@csrf_exempt
@require_POST
@api_authenticated
def order_create_view(request):
    body = _json_object(request)
    if body is None:
        return _invalid({"body": ["the body must be a JSON object"]})
    errors = order_create_errors(body)
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


@csrf_exempt
@require_http_methods(["PATCH"])
@api_authenticated
def order_params_view(request, order_id: str):
    """Change strategy parameters of an order. Any token holder may, as any may create an order: the
    API ties no order to a user yet (issue 18 brings ownership)."""
    try:
        order_id = str(uuid.UUID(order_id))
    except ValueError:
        return JsonResponse({"error": f"no market-making order {order_id}"}, status=404)
    body = _json_object(request)
    if body is None:
        return _invalid({"body": ["the body must be a JSON object of strategy parameters"]})
    try:
        update = order_params_update(order_id=order_id, changes=body, by=f"api:{request.user.get_username()}")
    except OrderNotFound as exc:
        return JsonResponse({"error": str(exc)}, status=404)
    except OrderFinished as exc:
        return JsonResponse({"error": str(exc), "state": exc.state}, status=409)
    except InvalidParamChange as exc:
        return _invalid(exc.errors)
    return JsonResponse(update.summary(), status=200)
