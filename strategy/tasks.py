"""Celery shells of the strategy runtime: the beat tick and the trackers it fans out."""
from celery import shared_task

from .selectors import tracker_targets
from .tick import refill_run, run_trackers, tick_run
from .trackers import refresh_market_data, track_exchange_orders


@shared_task(name="strategy_tick", ignore_result=True)
def strategy_tick():
    tick_run()


@shared_task(name="strategy_refill", ignore_result=True)
def strategy_refill():
    """Run the sessions woken since the tick at once (strategy.tick.refill_run)."""
    refill_run()


@shared_task(name="refresh_market_data", ignore_result=True)
def refresh_market_data_task(account_id: int, symbol: str, last_price: bool = False):
    refresh_market_data(account_id=account_id, symbol=symbol, last_price=last_price)


@shared_task(name="track_exchange_orders", ignore_result=True)
def track_exchange_orders_task(account_id: int):
    track_exchange_orders(account_id=account_id)


@shared_task(name="run_trackers", ignore_result=True)
def run_trackers_task(markets: list | None = None, accounts: list | None = None):
    """The tick's one message for its trackers: fanned out here, off the tick's path, into one task
    per market and one per exchange account (so they still run in parallel on the tick workers).
    Which markets and accounts the running sessions trade on is read here too, not in the tick
    (``markets`` and ``accounts`` name them only in a message sent before that moved)."""
    targets, tracked, last_price = tracker_targets()
    if markets is None or accounts is None:
        markets, accounts = targets, tracked
    run_trackers([tuple(m) for m in markets], accounts, inline=False, last_price=last_price)
