"""App config of api: per-user API tokens and the per-user rate limit of the JSON API."""
from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    default_auto_field = "django.db.models.BigAutoField"
