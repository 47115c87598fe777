"""App config of strategy."""
from django.apps import AppConfig


class StrategyConfig(AppConfig):
    name = "strategy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from intents import halt, hooks

        from . import metrics, selectors, services

        metrics.register()
        from .stop import session_stop_begin

        hooks.register(accepting=selectors.sessions_accepting_orders, orders_closed=services.sessions_wake,
                       quotes_stale=services.sessions_await_market_data)
        halt.register_stop_begin(lambda order_id: session_stop_begin(order_id=order_id))
