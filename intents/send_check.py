"""The last check before a new exchange order leaves: which strategy keys may still send.

The intents layer does not know what a strategy session is; the strategy app registers its check
(``register``, from StrategyConfig.ready: the session is running and the kill switch is off). Until
one is registered only the kill switch is checked.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .halt import halt_engaged

Check = Callable[[Iterable[str]], set[str]]


def _kill_switch_only(keys: Iterable[str]) -> set[str]:
    return set() if halt_engaged() else set(keys)


_check: Check = _kill_switch_only


def register(check: Check) -> None:
    global _check
    _check = check


def accepting(keys: Iterable[str]) -> set[str]:
    """The strategy keys among ``keys`` whose new orders may leave now."""
    return _check(keys)
