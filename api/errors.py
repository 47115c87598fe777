"""Errors of the API layer, each with a message the caller can act on."""


class ApiError(Exception):
    """Base class of API-layer errors."""


class UnknownUser(ApiError):
    """No Django user has that username (api_token create)."""
