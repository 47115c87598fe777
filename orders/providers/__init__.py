"""Payment providers behind one interface; ``MM_PAYMENT_PROVIDER`` picks one (local by default)."""
from django.conf import settings

from .base import PaymentProvider, TransferReceipt
from .local import LocalPaymentProvider
from .mixin import MixinPaymentProvider


def get_payment_provider(name: str | None = None) -> PaymentProvider:
    name = name or settings.MM_PAYMENT_PROVIDER
    if name == "local":

        return LocalPaymentProvider()
    if name == "mixin":

        return MixinPaymentProvider.from_settings()
    raise ValueError(f"MM_PAYMENT_PROVIDER must be 'local' or 'mixin', got {name!r}")


__all__ = ["PaymentProvider", "TransferReceipt", "get_payment_provider"]
