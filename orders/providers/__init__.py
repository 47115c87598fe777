"""Payment providers behind one interface; ``MM_PAYMENT_PROVIDER`` picks one (local by default).

The providers are imported when asked for, so ``orders.providers.mixin_safe`` (pure Python, no
Django) imports without a configured project.
"""
from .base import PaymentProvider, TransferReceipt


def get_payment_provider(name: str | None = None) -> PaymentProvider:
    from django.conf import settings

    name = name or settings.MM_PAYMENT_PROVIDER
    if name == "local":
        from .local import LocalPaymentProvider

        return LocalPaymentProvider()
    if name == "mixin":
        from .mixin import MixinPaymentProvider

        return MixinPaymentProvider.from_settings()
    raise ValueError(f"MM_PAYMENT_PROVIDER must be 'local' or 'mixin', got {name!r}")


__all__ = ["PaymentProvider", "TransferReceipt", "get_payment_provider"]
