"""The JSON API of orders: create an order intent (order id, memo, required amounts)."""
import json

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .errors import InvalidOrderRequest, PairDisabled, PairNotFound
from .selectors import order_summary
from .services import order_create

FIELDS = (
    "user_id", "pair_id", "base_amount", "quote_amount", "bid_spread", "ask_spread", "order_amount",
    "order_refresh_time", "number_of_layers", "amount_change_per_layer", "amount_change_type",
    "price_source_type", "ceiling_price", "floor_price",
)
REQUIRED = FIELDS[:7]


@csrf_exempt
@require_POST
def order_create_view(request):
    try:
        body = json.loads(request.body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return JsonResponse({"error": "the body must be a JSON object"}, status=400)
    if not isinstance(body, dict):
        return JsonResponse({"error": "the body must be a JSON object"}, status=400)
    unknown = sorted(set(body) - set(FIELDS))
    missing = [name for name in REQUIRED if name not in body]
    if unknown or missing:
        return JsonResponse({"error": "bad fields", "missing": missing, "unknown": unknown}, status=400)
    try:
        order = order_create(**body, by="api")
    except (PairNotFound, PairDisabled) as exc:
        return JsonResponse({"error": str(exc)}, status=404 if isinstance(exc, PairNotFound) else 409)
    except (InvalidOrderRequest, TypeError) as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(order_summary(order=order), status=201)
