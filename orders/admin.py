"""Admin: inspect pairs, orders (with history, payment and snapshots), refunds; stop an order."""
from django.contrib import admin, messages

from .dispatch import enqueue_after_commit
from .errors import IllegalTransition
from .models import (
    CampaignParticipation, ExchangeTransfer, MarketMakingOrder, MarketMakingPair, OrderTransition, PaymentState,
    Refund, Snapshot,
)
from .services import order_stop

ADMIN_STOP_WAIT_S = 10


@admin.register(MarketMakingPair)
class MarketMakingPairAdmin(admin.ModelAdmin):
    list_display = ("symbol", "exchange_id", "exchange_account", "pair_id", "enabled")
    list_filter = ("enabled", "exchange_id")
    readonly_fields = ("pair_id", "created_at")


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields or [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TransitionInline(ReadOnlyInline):
    model = OrderTransition
    fields = ("at", "name", "from_state", "to_state", "by", "reason")


class PaymentInline(ReadOnlyInline):
    model = PaymentState


class SnapshotInline(ReadOnlyInline):
    model = Snapshot
    fields = ("snapshot_id", "asset_id", "amount", "opponent_id", "outcome", "reason", "received_at")


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ("key", "asset_id", "amount", "status", "reason", "error")


@admin.register(MarketMakingOrder)
class MarketMakingOrderAdmin(admin.ModelAdmin):
    list_display = ("order_id", "user_id", "pair", "state", "created_at", "expires_at")
    list_filter = ("state", "pair")
    search_fields = ("order_id", "user_id")
    readonly_fields = [f.name for f in MarketMakingOrder._meta.fields]
    inlines = [PaymentInline, TransitionInline, SnapshotInline, RefundInline]
    actions = ["stop_orders"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Stop the selected orders (stop_mm)")
    def stop_orders(self, request, queryset):
        for order_id in queryset.values_list("order_id", flat=True):
            try:
                outcome = order_stop(order_id=order_id, by=f"admin:{request.user.get_username()}",
                                     reason="stopped from the admin", wait_s=ADMIN_STOP_WAIT_S)
            except IllegalTransition as exc:
                self.message_user(request, str(exc), level=messages.ERROR)
                continue
            if outcome == "stopping":
                # Orders still open on the exchange: the stop_mm job keeps cancelling and confirming.
                enqueue_after_commit("stop_mm", str(order_id), "stopped from the admin")
                self.message_user(request, f"order {order_id}: stopping; cancels are being confirmed in the background",
                                  level=messages.WARNING)
                continue
            self.message_user(request, f"order {order_id}: {outcome}")


@admin.register(Snapshot)
class SnapshotAdmin(admin.ModelAdmin):
    list_display = ("snapshot_id", "asset_id", "amount", "opponent_id", "outcome", "order", "received_at")
    list_filter = ("outcome", "provider")
    search_fields = ("snapshot_id", "opponent_id", "order__order_id")
    readonly_fields = [f.name for f in Snapshot._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = ("key", "user_id", "asset_id", "amount", "status", "attempts", "created_at")
    list_filter = ("status",)
    search_fields = ("key", "user_id", "order__order_id")
    readonly_fields = [f.name for f in Refund._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ExchangeTransfer)
class ExchangeTransferAdmin(ReadOnlyAdmin):
    list_display = ("order", "exchange_asset", "amount", "address", "status", "tx_id", "updated_at")
    list_filter = ("status",)
    search_fields = ("order__order_id", "tx_id", "address")


@admin.register(CampaignParticipation)
class CampaignParticipationAdmin(ReadOnlyAdmin):
    list_display = ("order", "campaign_ref", "joined_at")


@admin.register(OrderTransition)
class OrderTransitionAdmin(ReadOnlyAdmin):
    list_display = ("order", "from_state", "to_state", "by", "reason", "at")
    list_filter = ("to_state",)
    search_fields = ("order__order_id", "by")
