"""Celery shells of the strategy runtime: the beat tick."""
import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(name="strategy_tick", ignore_result=True)
def strategy_tick():
    """Heartbeat of the tick; the trading runtime registers its components here."""
    logger.info("event=tick_heartbeat")
