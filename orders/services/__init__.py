"""Order lifecycle services, split by stage; the names below are the ones callers use."""
from .intake import snapshot_intake, snapshot_process, snapshot_record
from .lifecycle import campaign_join, order_start, order_stop
from .orders import order_create
from .params import ParamsUpdate, order_params_update
from .payment import payment_check, payment_fail
from .refunds import refund_execute, refund_settle_pending
from .transitions import order_transition
from .withdrawal import withdrawal_abandon, withdrawal_monitor, withdrawal_start

__all__ = [
    "ParamsUpdate", "campaign_join", "order_create", "order_params_update",
    "order_start", "order_stop", "order_transition", "payment_check", "payment_fail", "refund_execute",
    "refund_settle_pending", "snapshot_intake", "snapshot_process", "snapshot_record", "withdrawal_abandon",
    "withdrawal_monitor", "withdrawal_start",
]
