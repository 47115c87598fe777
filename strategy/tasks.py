"""Celery shells of the strategy runtime: the beat tick and the trackers it fans out."""
from celery import shared_task

from .tick import tick_run
from .trackers import market_data_refresh, orders_track


@shared_task(name="strategy_tick", ignore_result=True)
def strategy_tick():
    tick_run()


@shared_task(name="refresh_market_data", ignore_result=True)
def refresh_market_data(account_id: int, symbol: str):
    market_data_refresh(account_id=account_id, symbol=symbol)


@shared_task(name="track_exchange_orders", ignore_result=True)
def track_exchange_orders(account_id: int):
    orders_track(account_id=account_id)


@shared_task(name="run_trackers", ignore_result=True)
def run_trackers(markets: list | None = None, accounts: list | None = None):
    """The tick's one message for its trackers: fanned out here, off the tick's path, into one task
    per market and one per exchange account (so they still run in parallel on the tick workers).
    Which markets and accounts the running sessions trade on is read here too, not in the tick
    (``markets`` and ``accounts`` name them only in a message sent before that moved)."""
    from .runtime import refresh_market_data as enqueue_market_data, track_orders as enqueue_tracking
    from .runtime import tracked_markets_and_accounts

    if markets is None or accounts is None:
        markets, accounts = tracked_markets_and_accounts()
    enqueue_market_data([tuple(m) for m in markets], inline=False)
    enqueue_tracking(accounts, inline=False)
