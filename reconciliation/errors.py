"""Errors of the reconciliation app."""


class ReconciliationError(Exception):
    """Base class of reconciliation's own errors."""


class ReconciliationCrashed(ReconciliationError):
    """A run stopped on an unexpected error (recorded on the run); nothing it checked was stored as a drift."""
