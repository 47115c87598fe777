"""The API's error answers, one shape for all: ``{"error": "<what is wrong>"}``, with ``errors`` (the messages
of each bad field: ``body`` for the body itself, ``non_field_errors`` for a check across fields) on a 400,
and ``state`` on a 409 about an order's state. DRF's handler still sets the status and headers
(``WWW-Authenticate`` on 401, ``Retry-After`` on 429)."""
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler

from .authentication import HINT


class Conflict(exceptions.APIException):
    """409: the request is valid but the order's (or the pair's) state refuses it; ``extra`` goes in the body."""

    status_code = status.HTTP_409_CONFLICT

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.extra = extra


def _errors(detail) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        return {name: [str(m) for m in (messages if isinstance(messages, list) else [messages])]
                for name, messages in detail.items()}
    return {"non_field_errors": [str(m) for m in (detail if isinstance(detail, list) else [detail])]}


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        response.data = {"error": "invalid request", "errors": _errors(exc.detail)}
    elif isinstance(exc, exceptions.ParseError):
        response.data = {"error": "invalid request", "errors": {"body": [str(exc.detail)]}}
    elif isinstance(exc, exceptions.NotAuthenticated):
        response.data = {"error": HINT}
    elif isinstance(exc, exceptions.Throttled):
        response.data = {"error": f"rate limit exceeded; retry in {response['Retry-After']} s"}
    elif isinstance(exc, Conflict):
        response.data = {"error": str(exc.detail), **exc.extra}
    else:
        response.data = {"error": str(exc.detail)}
    return response
