"""Errors of the API layer, each with a message the caller can act on."""


class ApiError(Exception):
    """Base class of API-layer errors."""


class UnknownUser(ApiError):
    """No Django user has that username, or it has no token (api_token)."""


class InvalidMixinUser(ApiError, ValueError):
    """A token's Mixin user id that is not a UUID (api_token --mixin-user-id)."""
