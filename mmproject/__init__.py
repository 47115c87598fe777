"""Project package: settings, the Celery app, URLs."""
from .celery import app as celery_app
from .logcontext import install as _install_order_log_context

_install_order_log_context()

__all__ = ("celery_app",)
