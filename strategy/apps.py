"""App config of strategy."""
from django.apps import AppConfig


class StrategyConfig(AppConfig):
    name = "strategy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from intents import hooks

        from . import metrics, selectors, services

        metrics.register()
        hooks.register(accepting=selectors.sessions_accepting_orders, orders_closed=services.sessions_wake)
