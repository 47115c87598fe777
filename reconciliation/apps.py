"""App config of reconciliation."""
from django.apps import AppConfig


class ReconciliationConfig(AppConfig):
    name = "reconciliation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import metrics

        metrics.register()
