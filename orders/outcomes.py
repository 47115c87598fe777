"""What a lifecycle service did, as one enum: the tasks, commands and admin actions decide on it
(retry, enqueue the next job, report) instead of comparing bare strings.

A ``StrEnum``: its members are their values, so logs, JSON and the commands' output read the same."""
from enum import StrEnum


class Outcome(StrEnum):
    NOOP = "noop"              # nothing to do: the order is already past this step (a retried job)
    PENDING = "pending"        # not there yet: check again later
    COMPLETE = "complete"      # payment: every leg covered
    FAILED = "failed"          # the order failed (refunded what arrived)
    DISABLED = "disabled"      # MM_WITHDRAW_MODE=disabled: the order stays at payment_complete
    VALIDATED = "validated"    # MM_WITHDRAW_MODE=validation: addresses resolved, then refunded
    SENT = "sent"              # the transfer to the exchange left
    CONFIRMED = "confirmed"    # the exchange credited it
    TIMEOUT = "timeout"        # the exchange did not credit it in time
    JOINED = "joined"          # campaign joined
    RUNNING = "running"        # strategy session started
    STOPPING = "stopping"      # stop begun, the exchange not clear yet: the stop job goes on
    STOPPED = "stopped"        # nothing left open, fills settled, funds unlocked
