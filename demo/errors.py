"""Errors of the demo bootstrap."""


class DemoError(Exception):
    """Base class of demo errors."""
