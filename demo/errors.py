"""Errors of the demo bootstrap."""


class DemoError(Exception):
    """Base class of demo errors."""


class DemoNotSetUp(DemoError):
    """There is no demo order yet: run `manage.py demo_setup` first."""
