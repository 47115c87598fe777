"""Errors of the exchanges app: each names what went wrong and what a person can do about it."""


class ExchangeError(Exception):
    """Base class of the exchanges app's own errors."""


class SecretDecryptionError(ExchangeError):
    """An encrypted API secret does not decrypt with any configured key."""


class AccountDisabled(ExchangeError):
    """The exchange account is disabled; enable it in the admin before trading on it."""


class OrderRefused(ExchangeError):
    """An order was refused locally, before any exchange call (precision, minimum amount or notional)."""


class UnknownMarket(ExchangeError):
    """The exchange does not list this symbol."""
