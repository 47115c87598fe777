"""Withdrawal stage, by ``MM_WITHDRAW_MODE``:

- ``disabled``: the order stays at ``payment_complete`` (the spec's default);
- ``validation``: resolve the exchange deposit addresses, record them, refund (state ``refunded``);
- ``transfer``: lock the funds in the ledger, send them to the order's exchange account, monitor the
  deposits until confirmed (``withdrawal_confirmed``), then ``join_campaign``.
"""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import ccxt
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from exchanges.errors import ExchangeError
from exchanges.policy import Action, error_action
from exchanges.services import exchange_deposit_address, exchange_deposit_status
from ledger.services import debit_fee, lock_funds, unlock_funds
from mmproject.jobs import enqueue_after_commit

from ..errors import ExchangeUnavailable, TransferRejected, WithdrawalNotConfigured
from ..models import ORDER_REF, ExchangeTransfer, ExchangeTransferStatus, MarketMakingOrder, OrderState, PaymentState
from ..outcomes import Outcome
from ..providers import get_payment_provider
from .payment import refund_received
from .refunds import refund_settle_pending
from .transitions import apply_transition, order_lock

logger = logging.getLogger(__name__)

WITHDRAW_NAMESPACE = uuid.UUID("0b0f3c9e-6a44-4d52-9d0f-3e5a7c2b8e61")
MODES = ("disabled", "validation", "transfer")


def withdrawal_request_id(order_id, asset_id: str) -> uuid.UUID:
    return uuid.uuid5(WITHDRAW_NAMESPACE, f"mm-withdraw:{order_id}:{asset_id}")


def _mode() -> str:
    mode = settings.MM_WITHDRAW_MODE
    if mode not in MODES:
        raise WithdrawalNotConfigured(f"MM_WITHDRAW_MODE must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _targets(order: MarketMakingOrder) -> list[dict]:
    """Where each principal asset goes: exchange currency, network and the deposit address.

    Raises ExchangeUnavailable when the exchange may answer later, WithdrawalNotConfigured when
    it will not (unknown currency, disabled account, credentials): the order cannot proceed.
    """


    account = order.exchange_account or order.pair.exchange_account
    if account is None:
        raise WithdrawalNotConfigured(f"order {order.order_id} and its pair have no exchange account")
    pair = order.pair
    targets = []
    for asset_id, exchange_asset, network, amount in (
        (pair.base_asset_id, pair.base_exchange_asset, pair.base_network, order.base_amount),
        (pair.quote_asset_id, pair.quote_exchange_asset, pair.quote_network, order.quote_amount),
    ):
        try:
            deposit = exchange_deposit_address(account_id=account.pk, asset=exchange_asset, network=network or None)
        except ccxt.BaseError as exc:
            if error_action(exc, "read") == Action.RETRY:
                raise ExchangeUnavailable(f"deposit address of {exchange_asset}: {type(exc).__name__}: {exc}") from exc
            raise WithdrawalNotConfigured(
                f"no deposit address of {exchange_asset} on {account.label}: {type(exc).__name__}: {exc}") from exc
        except ExchangeError as exc:
            raise WithdrawalNotConfigured(f"exchange account {account.label}: {exc}") from exc
        targets.append(dict(asset_id=asset_id, exchange_asset=exchange_asset, amount=amount,
                            address=deposit.address, network=deposit.network or "", tag=deposit.tag or ""))
    return targets


def _fail_and_refund(order_id, *, reason: str, by: str) -> None:
    """Unlock whatever the order locked, refund what it received, set ``failed``."""
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state not in (OrderState.PAYMENT_COMPLETE, OrderState.WITHDRAWING):
            return
        unlock_all(order)
        refund_received(order, reason=reason)
        apply_transition(order, "fail", by=by, reason=reason)
    refund_settle_pending(order_id=order_id)


def withdrawal_abandon(*, order_id, reason: str, by: str) -> None:
    """Fail an order whose transfer to the exchange is not confirmed; its funds stay locked."""
    _fail_only(order_id, reason=reason, by=by)


def _fail_only(order_id, *, reason: str, by: str) -> None:
    with transaction.atomic():
        order = order_lock(order_id)
        if order.state == OrderState.WITHDRAWING:
            apply_transition(order, "fail", by=by, reason=reason)


def unlock_all(order: MarketMakingOrder) -> None:
    for transfer in order.exchange_transfers.exclude(status=ExchangeTransferStatus.RESOLVED).order_by("asset_id"):
        unlock_funds(user_id=order.user_id, asset_id=transfer.asset_id, amount=transfer.amount,
                     idempotency_key=f"mm-unlock:{order.order_id}:{transfer.asset_id}",
                     ref_type=ORDER_REF, ref_id=str(order.order_id))


def withdrawal_start(*, order_id, by: str = "task:withdraw_to_exchange") -> str:
    """Run the withdrawal stage of a paid order according to the mode; returns what happened."""
    mode = _mode()
    if mode == "disabled":
        logger.info("event=withdrawal_skipped order_id=%s mode=disabled", order_id)
        return Outcome.DISABLED
    order = MarketMakingOrder.objects.select_related("pair", "exchange_account", "pair__exchange_account").get(
        order_id=order_id)
    if order.state == OrderState.WITHDRAWING:
        return _send_and_monitor(order_id)
    if order.state != OrderState.PAYMENT_COMPLETE:
        return Outcome.NOOP
    try:
        targets = _targets(order)
    except WithdrawalNotConfigured as exc:
        _fail_and_refund(order_id, reason=str(exc), by=by)
        return Outcome.FAILED

    if mode == "validation":
        with transaction.atomic():
            order = order_lock(order_id)
            if order.state != OrderState.PAYMENT_COMPLETE:
                return Outcome.NOOP
            for target in targets:
                ExchangeTransfer.objects.get_or_create(
                    order=order, asset_id=target["asset_id"],
                    defaults=dict(target, request_id=withdrawal_request_id(order.order_id, target["asset_id"]),
                                  status=ExchangeTransferStatus.RESOLVED),
                )
            reason = "validation mode: exchange deposit addresses resolved, funds refunded"
            refund_received(order, reason=reason)
            apply_transition(order, "refund", by=by, reason=reason)
        refund_settle_pending(order_id=order_id)
        return Outcome.VALIDATED

    with transaction.atomic():
        order = order_lock(order_id)
        if order.state != OrderState.PAYMENT_COMPLETE:
            return Outcome.NOOP
        for target in targets:
            lock_funds(user_id=order.user_id, asset_id=target["asset_id"], amount=target["amount"],
                       idempotency_key=f"mm-lock:{order.order_id}:{target['asset_id']}",
                       ref_type=ORDER_REF, ref_id=str(order.order_id))
            ExchangeTransfer.objects.create(
                order=order, request_id=withdrawal_request_id(order.order_id, target["asset_id"]),
                status=ExchangeTransferStatus.PENDING, **target,
            )
        apply_transition(order, "start_withdrawal", by=by, reason=f"sending to {len(targets)} deposit addresses",
                         at=timezone.now())
    return _send_and_monitor(order_id)


def _send_and_monitor(order_id) -> str:
    outcome = withdrawal_send_pending(order_id=order_id)
    if outcome == Outcome.SENT:
        enqueue_after_commit("monitor_mixin_withdrawal", str(order_id),
                             countdown=settings.MM_WITHDRAWAL_CHECK_INTERVAL_S)
    return outcome


def withdrawal_send_pending(*, order_id) -> str:
    """Send every pending transfer of the order (again, after a crash: same request id, paid once)."""

    provider = get_payment_provider()
    pending = ExchangeTransfer.objects.filter(order__order_id=order_id, status=ExchangeTransferStatus.PENDING)
    for transfer in pending.order_by("asset_id"):
        try:
            receipt = provider.withdraw(
                request_id=str(transfer.request_id), asset_id=transfer.asset_id,
                exchange_asset=transfer.exchange_asset, amount=transfer.amount, address=transfer.address,
                tag=transfer.tag, network=transfer.network,
            )
        except TransferRejected as exc:
            ExchangeTransfer.objects.filter(pk=transfer.pk).update(status=ExchangeTransferStatus.FAILED, error=str(exc))
            reason = f"transfer of {transfer.exchange_asset} to the exchange rejected: {exc}"
            if ExchangeTransfer.objects.filter(order__order_id=order_id, status__in=[
                    ExchangeTransferStatus.SENT, ExchangeTransferStatus.CONFIRMED]).exists():
                # Part of the funds already left: no automatic refund of money that is on the exchange.
                _fail_only(order_id, reason=f"{reason}; other assets already sent, funds stay locked for "
                                            "operator review", by="task:withdraw_to_exchange")
            else:
                _fail_and_refund(order_id, reason=reason, by="task:withdraw_to_exchange")
            return Outcome.FAILED
        ExchangeTransfer.objects.filter(pk=transfer.pk, status=ExchangeTransferStatus.PENDING).update(
            status=ExchangeTransferStatus.SENT, tx_id=receipt.tx_id, updated_at=timezone.now())
        logger.info("event=exchange_transfer_sent order_id=%s asset=%s amount=%s address=%s tx_id=%s",
                    order_id, transfer.exchange_asset, transfer.amount, transfer.address, receipt.tx_id)
    return Outcome.SENT


def withdrawal_monitor(*, order_id, by: str = "task:monitor_mixin_withdrawal") -> str:
    """Check the order's deposits on the exchange: ``confirmed``, ``pending`` or ``timeout``."""

    order = MarketMakingOrder.objects.select_related("pair__exchange_account", "exchange_account").get(
        order_id=order_id)
    if order.state != OrderState.WITHDRAWING:
        if order.state == OrderState.WITHDRAWAL_CONFIRMED:
            enqueue_after_commit("join_campaign", str(order_id))
        return Outcome.NOOP
    account = order.exchange_account or order.pair.exchange_account
    for transfer in order.exchange_transfers.filter(status=ExchangeTransferStatus.SENT):
        try:
            status = exchange_deposit_status(account_id=account.pk, asset=transfer.exchange_asset,
                                             tx_id=transfer.tx_id)
        except (ccxt.BaseError, ExchangeError) as exc:  # unreadable is "not confirmed yet"; the deadline decides
            logger.warning("event=deposit_status_unreadable order_id=%s asset=%s error=%s: %s",
                           order_id, transfer.exchange_asset, type(exc).__name__, exc)
            continue
        if status == "confirmed":
            ExchangeTransfer.objects.filter(pk=transfer.pk).update(
                status=ExchangeTransferStatus.CONFIRMED, updated_at=timezone.now())
    open_transfers = order.exchange_transfers.exclude(status=ExchangeTransferStatus.CONFIRMED)
    if not open_transfers.exists():
        with transaction.atomic():
            order = order_lock(order_id)
            if order.state != OrderState.WITHDRAWING:
                return Outcome.NOOP
            _charge_fees(order)
            apply_transition(order, "confirm_withdrawal", by=by, reason="all deposits confirmed on the exchange")
            enqueue_after_commit("join_campaign", str(order_id))
        return Outcome.CONFIRMED
    deadline = order.withdrawal_started_at + timedelta(seconds=settings.MM_WITHDRAWAL_MONITOR_TIMEOUT_S)
    if timezone.now() >= deadline:
        reason = (f"deposits not confirmed by {deadline.isoformat()}: funds stay locked for operator review "
                  f"(open: {', '.join(t.exchange_asset for t in open_transfers)})")
        _fail_only(order_id, reason=reason, by=by)
        return Outcome.TIMEOUT
    if open_transfers.filter(status=ExchangeTransferStatus.PENDING).exists():
        withdrawal_send_pending(order_id=order_id)
    return Outcome.PENDING


def _charge_fees(order: MarketMakingOrder) -> None:
    """The fee legs pay for the move to the exchange: charged once it is confirmed."""
    payment = PaymentState.objects.get(order=order)
    for leg, asset_id, required, _ in payment.legs():
        if leg.endswith("_fee") and required > 0:
            debit_fee(user_id=order.user_id, asset_id=asset_id, amount=required,
                      idempotency_key=f"mm-fee:{order.order_id}:{leg}", ref_type=ORDER_REF, ref_id=str(order.order_id))
