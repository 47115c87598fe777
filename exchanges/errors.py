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


class ExchangeSetupError(ExchangeError):
    """An exchange account cannot be used as configured (no sandbox on that exchange, unknown exchange id)."""


class MissingCapabilities(ExchangeSetupError):
    """The exchange lacks ccxt capabilities the system calls; the message names each one missing."""

    def __init__(self, exchange_id: str, missing: list[str]):
        self.exchange_id, self.missing = exchange_id, missing
        super().__init__(f"{exchange_id} cannot be used: ccxt has no {', '.join(missing)} for it "
                         f"(the system needs each of them; see docs/exchanges.md)")
