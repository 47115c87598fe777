"""App config of intents."""
from django.apps import AppConfig


class IntentsConfig(AppConfig):
    name = "intents"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import metrics

        metrics.register()
