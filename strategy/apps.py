"""App config of strategy."""
from django.apps import AppConfig


class StrategyConfig(AppConfig):
    name = "strategy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from intents import send_check

        from . import metrics, selectors

        metrics.register()
        send_check.register(selectors.sessions_accepting_orders)
