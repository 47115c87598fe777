"""Admin: inspect pairs, orders (payment legs, snapshots, ledger, history, session, intents, PnL), refunds.

Everything an order holds is read-only here: its state changes only through the services. Two
actions, "Stop market making" and "Retry payment check", the "add" form (an order intent, as
``mm_order create`` makes one) and the order page's "Edit strategy parameters" form (as ``mm_order
edit``) call the services; they are offered only to superusers and to staff with the
``orders.operate_orders`` permission; staff with view permissions see every page but get no action.
The strategy parameters' fields and checks come from ``strategy.params``.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from decimal import Decimal

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from intents.ids import strategy_key
from intents.models import Intent, TrackedFill, TrackedOrder
from ledger.amounts import canonical
from ledger.models import LedgerEntry
from mmproject.admin import ReadOnlyAdmin, ReadOnlyInline
from mmproject.jobs import enqueue_after_commit
from strategy import params as order_params
from strategy.models import MarketData, StrategySession

from .errors import IllegalTransition, InvalidParamChange, OrderError, OrderFinished, PayoutNotPossible
from .models import (
    ORDER_REF,
    CampaignParticipation,
    ExchangeTransfer,
    MarketMakingOrder,
    MarketMakingPair,
    OrderState,
    OrderTransition,
    ParamChange,
    PaymentState,
    Payout,
    Refund,
    Snapshot,
)
from .services import order_create, order_params_update, order_stop
from .services.orders import order_create_check
from .services.payout import payout_keep, payout_request
from .services.params import FINISHED_STATES, WHOLE_SET

logger = logging.getLogger(__name__)

ADMIN_STOP_WAIT_S = 5
SECTION_ROWS = 50
ZERO = Decimal(0)
# As the demo's live view (demo/selectors.py): fills marked at the mid, fees included.
PNL_PLACES = Decimal("0.00000001")
OPERATE_PERMISSION = "orders.operate_orders"


def orders_pnl(orders) -> dict[int, Decimal | None]:
    """PnL in the quote asset of each order, by pk, in two queries whatever the number of orders:
    base delta x mid + quote delta of its fills (fees in base or quote included), the basis of the
    demo's live view; None while its market has no mid."""
    orders = list(orders)
    by_key = {strategy_key(order.order_id): order for order in orders}
    deltas: dict[int, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO])
    fills = TrackedFill.objects.filter(strategy_key__in=by_key).values_list(
        "strategy_key", "side", "amount", "cost", "fee", "fee_currency")
    for key, side, amount, cost, fee, fee_currency in fills.iterator():
        order = by_key[key]
        delta = deltas[order.pk]
        sign = 1 if side == "buy" else -1
        delta[0] += sign * amount
        delta[1] -= sign * cost
        fee_code = (fee_currency or "").upper()
        if fee_code == order.pair.base_exchange_asset.upper():
            delta[0] -= fee
        elif fee_code == order.pair.quote_exchange_asset.upper():
            delta[1] -= fee
    markets = Q(pk__in=[])
    for order in orders:
        markets |= Q(account_id=order.exchange_account_id, symbol=order.pair.symbol)
    mids = {(account_id, symbol): (bid + ask) / 2 for account_id, symbol, bid, ask in
            MarketData.objects.filter(markets, best_bid__isnull=False, best_ask__isnull=False)
            .values_list("account_id", "symbol", "best_bid", "best_ask")} if orders else {}
    result = {}
    for order in orders:
        mid = mids.get((order.exchange_account_id, order.pair.symbol))
        base, quote = deltas[order.pk]
        result[order.pk] = None if mid is None else (base * mid + quote).quantize(PNL_PLACES)
    return result


def _age(moment) -> str:
    seconds = int((timezone.now() - moment).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def _table(headers, rows, *, empty: str, css_id: str, more: int = 0):
    """A small read-only HTML table (values escaped)."""
    if not rows:
        return format_html('<p id="{}">{}</p>', css_id, empty)
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join("", "<tr>{}</tr>", (
        (format_html_join("", "<td>{}</td>", ((value,) for value in row)),) for row in rows))
    note = format_html("<p>{} more not shown</p>", more) if more > 0 else ""
    return format_html('<table id="{}"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}',
                       css_id, head, body, note)


def _amount(value) -> str:
    return "" if value is None else canonical(value)


def _can_view_orders(request) -> bool:
    return request.user.has_perm("orders.view_marketmakingorder") or \
        request.user.has_perm("orders.change_marketmakingorder")


@admin.register(MarketMakingPair)
class MarketMakingPairAdmin(admin.ModelAdmin):
    list_display = ("symbol", "exchange_id", "exchange_account", "pair_id", "enabled")
    list_filter = ("enabled", "exchange_id")
    readonly_fields = ("pair_id", "created_at")


class OrderPageInline(ReadOnlyInline):
    """A read-only table on the order page, shown to whoever may view the order."""

    def has_view_permission(self, request, obj=None):
        return _can_view_orders(request)


class TransitionInline(OrderPageInline):
    model = OrderTransition
    verbose_name_plural = "transition history"
    fields = ("at", "name", "from_state", "to_state", "by", "reason")


class ParamChangeInline(OrderPageInline):
    model = ParamChange
    verbose_name_plural = "strategy parameter changes"
    fields = ("at", "name", "old_value", "new_value", "by", "reason")


class SnapshotInline(OrderPageInline):
    model = Snapshot
    fields = ("snapshot_id", "asset_id", "amount", "opponent_id", "outcome", "allocation", "reason", "received_at")


class RefundInline(OrderPageInline):
    model = Refund
    fields = ("key", "asset_id", "amount", "status", "attempts", "reason", "error")


class PayoutInline(OrderPageInline):
    model = Payout
    fields = ("asset_id", "amount", "status", "address", "tag", "withdrawal_id", "tx_id", "fee", "received", "error")


class SessionInline(OrderPageInline):
    model = StrategySession
    verbose_name_plural = "strategy session"
    fields = ("status", "cadence_s", "next_run_at", "started_at", "stopped_at")


class OrderChangeList(ChangeList):
    """Computes the PnL of the page's rows only, in two queries."""

    def get_results(self, request):
        super().get_results(request)
        self.result_list = list(self.result_list)
        pnl = orders_pnl(self.result_list)
        for order in self.result_list:
            order.admin_pnl = pnl[order.pk]


class OrderCreateForm(forms.ModelForm):
    """The admin's "add order" form: who pays, on which pair, how much, and the strategy parameters,
    checked as ``order_create`` checks them; the order itself is made by ``order_create``."""

    class Meta:
        model = MarketMakingOrder
        fields = ("user_id", "pair", "base_amount", "quote_amount", *order_params.PARAM_NAMES)

    def request_values(self) -> dict:
        """The cleaned values as ``order_create``'s keyword arguments."""
        data = self.cleaned_data
        return dict(user_id=data["user_id"], pair_id=data["pair"].pair_id, base_amount=data["base_amount"],
                    quote_amount=data["quote_amount"], **{name: data[name] for name in order_params.PARAM_NAMES})

    def clean(self):
        data = super().clean()
        if not self.errors:  # each field is valid on its own: now the checks across fields and the strategy's
            try:
                order_create_check(**self.request_values())
            except OrderError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


class OrderParamsForm(forms.Form):
    """The order page's "Edit strategy parameters" form: every parameter, shown at the order's value.
    Only the fields changed on the page are sent to ``order_params_update`` (each field carries the
    value it was shown with), so an edit made elsewhere meanwhile is not undone by this one."""

    reason = forms.CharField(required=False, help_text="why; recorded with each change")

    def __init__(self, *args, order: MarketMakingOrder, **kwargs):
        initial = {name: _form_value(getattr(order, name)) for name in order_params.PARAM_NAMES}
        super().__init__(*args, initial=initial, **kwargs)
        for name in order_params.PARAM_NAMES:
            field = order_params.formfield(name)
            field.show_hidden_initial = True
            self.fields[name] = field
        self.order_fields(list(order_params.PARAM_NAMES) + ["reason"])

    def changes(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.changed_data if name in order_params.BY_NAME}


def _form_value(value):
    """A parameter's value as its form field shows it (a decimal without an exponent or trailing zeros)."""
    return canonical(value) if isinstance(value, Decimal) else value


PARAMS_PAGE = engines["django"].from_string("""{% extends "admin/base_site.html" %}
{% block breadcrumbs %}<div class="breadcrumbs"><a href="{% url 'admin:index' %}">Home</a>
&rsaquo; <a href="{{ change_url }}">{{ order }}</a> &rsaquo; Edit strategy parameters</div>{% endblock %}
{% block content %}<div id="content-main">
<p>A change is checked as at order creation and applies from the strategy's next run (the next tick);
each change is recorded on the order's page.</p>
<form method="post" id="order-params-form">{% csrf_token %}
<table>{{ form.as_table }}</table>
<div class="submit-row"><input type="submit" value="Save changes" class="default"></div>
</form></div>{% endblock %}""")


@admin.register(MarketMakingOrder)
class MarketMakingOrderAdmin(admin.ModelAdmin):
    list_display = ("order_id", "state", "symbol", "exchange", "user_id", "age", "pnl")
    list_filter = ("state", "pair__exchange_id", "pair__symbol", "exchange_account")
    search_fields = ("order_id", "user_id", "memo", "pair__symbol")
    list_select_related = ("pair", "exchange_account")
    list_per_page = 50
    fieldsets = [
        (None, {"fields": ("order_id", "state", "reason", "user_id", "pair", "exchange_account", "memo",
                           "created_at", "updated_at", "expires_at", "withdrawal_started_at")}),
        ("Strategy parameters", {"classes": ("collapse",), "fields": (
            "base_amount", "quote_amount", *order_params.PARAM_NAMES)}),
        ("Payment legs", {"fields": ("payment_legs",)}),
        ("Trading", {"fields": ("pnl", "intents", "tracked_orders")}),
        ("Ledger entries", {"fields": ("ledger_entries",)}),
    ]
    readonly_fields = [f.name for f in MarketMakingOrder._meta.fields] + [
        "payment_legs", "pnl", "intents", "tracked_orders", "ledger_entries"]
    inlines = [SessionInline, TransitionInline, ParamChangeInline, SnapshotInline, RefundInline, PayoutInline]
    actions = ["stop_orders", "retry_payment_check", "pay_out", "keep_on_exchange_action"]
    form = OrderCreateForm
    add_fieldsets = [
        (None, {"fields": ("user_id", "pair", "base_amount", "quote_amount")}),
        ("Strategy parameters", {"fields": order_params.PARAM_NAMES}),
    ]

    def get_changelist(self, request, **kwargs):
        return OrderChangeList

    # --- the add page: an order intent made by order_create ----------------------------
    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        fieldsets = super().get_fieldsets(request, obj)
        if not self.has_operate_permission(request):
            return fieldsets
        (name, options), *rest = fieldsets
        fields = list(options["fields"])
        fields.insert(fields.index("state") + 1, "edit_params")
        return [(name, {**options, "fields": tuple(fields)}), *rest]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else [*super().get_readonly_fields(request, obj), "edit_params"]

    def get_inlines(self, request, obj):
        return [] if obj is None else super().get_inlines(request, obj)

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in order_params.BY_NAME:
            return order_params.formfield(db_field.name)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "pair":
            kwargs["queryset"] = MarketMakingPair.objects.filter(enabled=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def save_form(self, request, form, change):
        # The order is made by the service (memo, payment legs, history), never saved from the form;
        # no order is ever changed here (has_change_permission), so this is only ever an add.
        return order_create(**form.request_values(), by=f"admin:{request.user.get_username()}")

    def save_model(self, request, obj, form, change):
        pass  # save_form created it

    def save_related(self, request, form, formsets, change):
        pass  # order_create wrote everything that belongs to the order

    # --- permissions: inspect; adding an order and the actions need operate_orders ------
    def has_add_permission(self, request):
        return self.has_operate_permission(request)

    def has_change_permission(self, request, obj=None):
        return False  # nothing of an order is edited by hand, the state least of all

    def has_delete_permission(self, request, obj=None):
        return False

    def has_operate_permission(self, request):
        return request.user.is_active and request.user.has_perm(OPERATE_PERMISSION)

    # --- the order page's "Edit strategy parameters" form: order_params_update ------------
    def get_urls(self):
        params = path("<path:object_id>/params/", self.admin_site.admin_view(self.params_view),
                      name="orders_marketmakingorder_params")
        return [params, *super().get_urls()]

    @admin.display(description="strategy parameters")
    def edit_params(self, order):
        if order.state in FINISHED_STATES:
            return f"not editable: the order is {order.state}"
        return format_html('<a class="button" id="edit-params" href="{}">Edit strategy parameters</a>',
                           reverse("admin:orders_marketmakingorder_params", args=[order.pk]))

    def params_view(self, request, object_id):
        if not self.has_operate_permission(request):
            raise PermissionDenied
        order = self.get_object(request, object_id)
        if order is None:
            raise Http404(f"no market-making order {object_id}")
        change_url = reverse("admin:orders_marketmakingorder_change", args=[order.pk])
        if order.state in FINISHED_STATES:
            self.message_user(request, f"order {order.order_id} is {order.state}: its strategy parameters are no "
                                       "longer edited", level=messages.ERROR)
            return HttpResponseRedirect(change_url)
        form = OrderParamsForm(request.POST if request.method == "POST" else None, order=order)
        if request.method == "POST" and form.is_valid():
            response = self._params_save(request, form, order, change_url)
            if response is not None:
                return response
        context = {**self.admin_site.each_context(request), "title": "Edit strategy parameters",
                   "subtitle": str(order), "opts": self.opts, "order": order, "form": form, "change_url": change_url}
        return TemplateResponse(request, PARAMS_PAGE, context)

    def _params_save(self, request, form, order, change_url):
        """The redirect to the order page once saved (or refused for good); None to show the form's errors."""
        by = f"admin:{request.user.get_username()}"
        try:
            update = order_params_update(order_id=order.order_id, changes=form.changes(), by=by,
                                         reason=form.cleaned_data["reason"])
        except InvalidParamChange as exc:
            for name, problems in exc.errors.items():
                for problem in problems:
                    form.add_error(None if name == WHOLE_SET or name not in form.fields else name, problem)
            return None
        except OrderFinished as exc:
            self.message_user(request, str(exc), level=messages.ERROR)
            return HttpResponseRedirect(change_url)
        if update.changes:
            changed = ", ".join(f"{c.name} {c.old_value} -> {c.new_value}" for c in update.changes)
            self.message_user(request, f"order {order.order_id}: {changed}; from the strategy's next run")
        else:
            self.message_user(request, f"order {order.order_id}: nothing changed", level=messages.WARNING)
        return HttpResponseRedirect(change_url)

    # --- list columns -------------------------------------------------------------------
    @admin.display(description="pair", ordering="pair__symbol")
    def symbol(self, order):
        return order.pair.symbol

    @admin.display(description="exchange", ordering="pair__exchange_id")
    def exchange(self, order):
        account = order.exchange_account
        return f"{order.pair.exchange_id} ({account.label})" if account else order.pair.exchange_id

    @admin.display(description="age", ordering="created_at")
    def age(self, order):
        return _age(order.created_at)

    @admin.display(description="PnL (quote, at mid)")
    def pnl(self, order):
        value = order.admin_pnl if hasattr(order, "admin_pnl") else orders_pnl([order])[order.pk]
        if value is None:
            return "n/a (no market data)"
        return f"{canonical(value)} {order.pair.quote_exchange_asset}"

    # --- order page sections --------------------------------------------------------------
    @admin.display(description="payment legs")
    def payment_legs(self, order):
        payment = PaymentState.objects.filter(order=order).first()
        if payment is None:
            return format_html('<p id="payment-legs">{}</p>', "no payment state")
        rows = [(leg, asset, _amount(required), _amount(received), "yes" if received >= required else "no")
                for leg, asset, required, received in payment.legs()]
        return _table(("leg", "asset", "required", "received", "covered"), rows, empty="no legs",
                      css_id="payment-legs")

    @admin.display(description="intents")
    def intents(self, order):
        queryset = Intent.objects.filter(strategy_key=strategy_key(order.order_id)).order_by("-id")
        rows = [(i.intent_id, i.kind, i.side, _amount(i.price), _amount(i.amount), i.status, i.attempts,
                 i.exchange_order_id, i.last_error[:120], i.created_at) for i in queryset[:SECTION_ROWS]]
        return _table(("intent", "kind", "side", "price", "amount", "status", "attempts", "exchange order",
                       "last error", "created"), rows, empty="no intents", css_id="order-intents",
                      more=queryset.count() - SECTION_ROWS if len(rows) == SECTION_ROWS else 0)

    @admin.display(description="tracked orders")
    def tracked_orders(self, order):
        queryset = TrackedOrder.objects.filter(strategy_key=strategy_key(order.order_id)).order_by("-id")
        rows = [(t.client_order_id, t.side, t.layer, _amount(t.price), _amount(t.amount), _amount(t.filled),
                 t.status, t.exchange_order_id, t.created_at) for t in queryset[:SECTION_ROWS]]
        return _table(("client order id", "side", "layer", "price", "amount", "filled", "status", "exchange order",
                       "created"), rows, empty="no tracked orders", css_id="order-tracked-orders",
                      more=queryset.count() - SECTION_ROWS if len(rows) == SECTION_ROWS else 0)

    @admin.display(description="ledger entries (by ref)")
    def ledger_entries(self, order):
        """The order's entries (ref mm_order), the credits of its snapshots and its refunds' debits."""
        snapshot_ids = list(Snapshot.objects.filter(order=order).values_list("snapshot_id", flat=True))
        refund_keys = list(Refund.objects.filter(order=order).values_list("key", flat=True))
        queryset = LedgerEntry.objects.filter(
            Q(ref_type=ORDER_REF, ref_id=str(order.order_id)) | Q(ref_type="snapshot", ref_id__in=snapshot_ids)
            | Q(idempotency_key__in=refund_keys)).order_by("id")
        rows = [(e.pk, e.operation, e.asset_id, _amount(e.amount), f"{e.ref_type}:{e.ref_id}", e.idempotency_key,
                 _amount(e.available_after), _amount(e.locked_after), e.created_at)
                for e in queryset[:SECTION_ROWS * 4]]
        return _table(("entry", "operation", "asset", "amount", "ref", "idempotency key", "available after",
                       "locked after", "at"), rows, empty="no ledger entries", css_id="order-ledger-entries")

    # --- actions ------------------------------------------------------------------------
    @admin.action(description="Stop market making", permissions=["operate"])
    def stop_orders(self, request, queryset):
        by = f"admin:{request.user.get_username()}"
        for order_id in queryset.values_list("order_id", flat=True):
            try:
                outcome = order_stop(order_id=order_id, by=by, reason="stopped from the admin",
                                     wait_s=ADMIN_STOP_WAIT_S)
            except IllegalTransition as exc:
                self.message_user(request, str(exc), level=messages.ERROR)
                continue
            logger.info("event=admin_stop order_id=%s by=%s outcome=%s", order_id, by, outcome)
            if outcome == "stopping":
                # Orders still open on the exchange: the stop_mm job keeps cancelling and confirming.
                enqueue_after_commit("stop_mm", str(order_id), "stopped from the admin")
                self.message_user(request, f"order {order_id}: stopping; cancels are being confirmed in the "
                                           "background (stop_mm queued)", level=messages.WARNING)
                continue
            self.message_user(request, f"order {order_id}: {'stopped' if outcome == 'stopped' else 'already stopped'}")

    @admin.action(description="Pay out to the user (withdraw from the exchange, transfer)", permissions=["operate"])
    def pay_out(self, request, queryset):
        by = f"admin:{request.user.get_username()}"
        for order_id in queryset.values_list("order_id", flat=True):
            try:
                payout_request(order_id=order_id, by=by)
            except (IllegalTransition, PayoutNotPossible) as exc:
                self.message_user(request, str(exc), level=messages.ERROR)
                continue
            self.message_user(request, f"order {order_id}: payout started (withdraw_to_user queued)")

    @admin.action(description="Keep the funds on the exchange (no payout)", permissions=["operate"])
    def keep_on_exchange_action(self, request, queryset):
        by = f"admin:{request.user.get_username()}"
        for order_id in queryset.values_list("order_id", flat=True):
            try:
                payout_keep(order_id=order_id, by=by)
            except PayoutNotPossible as exc:
                self.message_user(request, str(exc), level=messages.ERROR)
                continue
            self.message_user(request, f"order {order_id}: funds kept on the exchange")

    @admin.action(description="Retry payment check", permissions=["operate"])
    def retry_payment_check(self, request, queryset):
        by = f"admin:{request.user.get_username()}"
        queued = []
        for order_id, state in queryset.values_list("order_id", "state"):
            if state != OrderState.PAYMENT_PENDING:
                self.message_user(request, f"order {order_id} is {state}, not waiting for payment: no check queued",
                                  level=messages.WARNING)
                continue
            enqueue_after_commit("check_payment_complete", str(order_id))
            logger.info("event=admin_payment_check_retry order_id=%s by=%s", order_id, by)
            queued.append(str(order_id))
        if queued:
            self.message_user(request, f"payment check queued for {len(queued)} order(s): {', '.join(queued)}")


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


@admin.register(ParamChange)
class ParamChangeAdmin(ReadOnlyAdmin):
    list_display = ("order", "name", "old_value", "new_value", "by", "reason", "at")
    list_filter = ("name",)
    search_fields = ("order__order_id", "by")
