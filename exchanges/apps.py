"""App config of exchanges."""
from django.apps import AppConfig


class ExchangesConfig(AppConfig):
    name = "exchanges"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import metrics

        metrics.register()
