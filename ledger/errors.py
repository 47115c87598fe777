"""Domain errors of the ledger; every one says what was wrong in words a person can act on."""


class LedgerError(Exception):
    """Base class of every ledger error."""


class InvalidAmount(LedgerError, ValueError):
    """An amount that is not an exact, positive decimal within the asset's scale."""


class InsufficientFunds(LedgerError):
    """The mutation would make an available or locked balance negative."""

    def __init__(self, message: str, *, user_id: str = "", asset_id: str = "", bucket: str = ""):
        super().__init__(message)
        self.user_id = user_id
        self.asset_id = asset_id
        self.bucket = bucket


class IdempotencyConflict(LedgerError):
    """An idempotency key was reused with a different payload."""


class ImmutableEntry(LedgerError):
    """Entries and postings are append-only."""


class UnknownExchangeCurrency(LedgerError, ValueError):
    """An exchange currency code (e.g. a fee's) that no pair names and no ExchangeCurrency row maps."""
