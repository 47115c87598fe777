"""What the intents layer asks of the strategy layer above it, and tells it, through functions the
strategy registers in StrategyConfig.ready (the intents layer does not know what a session is):

- ``accepting(keys)``: the strategy keys whose new orders may still leave (the executor's last
  check before a create is sent: the session is running and the kill switch is off). Until a check
  is registered only the kill switch is checked.
- ``orders_closed(keys)``: tracked orders of these strategy keys reached a final state (filled,
  cancelled, lost, failed), so their slots are free: the strategy runs those sessions on the next
  tick to refill them. Until a listener is registered nothing is told.
- ``quotes_stale(keys)``: creates of these strategy keys met a market that had moved past the
  strategy's data (refused as post-only orders that would take, or filled on arrival): their slots
  are free too, but running them at once would price from the same data again; the strategy runs
  them once newer market data is in. Until a listener is registered, told as ``orders_closed``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from .halt import halt_engaged

Keys = Iterable[str]


def _kill_switch_only(keys: Keys) -> set[str]:
    return set() if halt_engaged() else set(keys)


def _nobody(keys: Keys) -> None:
    return None


_accepting: Callable[[Keys], set[str]] = _kill_switch_only
_orders_closed: Callable[[Keys], None] = _nobody
_quotes_stale: Callable[[Keys], None] | None = None


def register(*, accepting: Callable[[Keys], set[str]] | None = None,
             orders_closed: Callable[[Keys], None] | None = None,
             quotes_stale: Callable[[Keys], None] | None = None) -> None:
    global _accepting, _orders_closed, _quotes_stale
    if accepting is not None:
        _accepting = accepting
    if orders_closed is not None:
        _orders_closed = orders_closed
    if quotes_stale is not None:
        _quotes_stale = quotes_stale


def accepting(keys: Keys) -> set[str]:
    """The strategy keys among ``keys`` whose new orders may leave now."""
    return _accepting(keys)


def orders_closed(keys: Keys) -> None:
    """Tell the strategy that orders of ``keys`` closed (their slots are free)."""
    keys = sorted(set(keys))
    if keys:
        _orders_closed(keys)


def quotes_stale(keys: Keys) -> None:
    """Tell the strategy that creates of ``keys`` met a market that moved past its data."""
    keys = sorted(set(keys))
    if keys:
        (_quotes_stale or _orders_closed)(keys)
