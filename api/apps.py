"""App config of api: the user's REST API (Django REST framework), its tokens and its per-user rate limit."""
from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import schema  # noqa: F401  (registers the OpenAPI extensions)
