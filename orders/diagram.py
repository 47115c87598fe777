"""The order state diagram, generated from the FSM transitions (Mermaid), for docs/lifecycle.md."""
from .models import MarketMakingOrder, OrderState

# Which job or command runs each transition (documentation only; the FSM is the authority).
RUN_BY = {
    "complete_payment": "check_payment_complete",
    "start_withdrawal": "withdraw_to_exchange, transfer mode",
    "refund": "withdraw_to_exchange, validation mode",
    "confirm_withdrawal": "monitor_mixin_withdrawal",
    "join_campaign": "join_campaign",
    "start": "start_mm",
    "stop": "stop_mm",
    "begin_payout": "stop_mm (MM_PAYOUT_AFTER_STOP=auto) or mm_payout",
    "finish_payout": "withdraw_to_user",
    "fail": "deadline passed, transfer rejected or payout failed",
}


def state_diagram() -> str:
    """A Mermaid ``stateDiagram-v2`` of every transition of ``MarketMakingOrder.state``."""
    field = MarketMakingOrder._meta.get_field("state")
    order = {state: i for i, state in enumerate(OrderState.values)}
    edges = sorted(
        {(t.source, t.target, t.name) for t in field.get_all_transitions(MarketMakingOrder)},
        key=lambda e: (order[e[0]], order[e[1]], e[2]),
    )
    lines = ["stateDiagram-v2", f"    [*] --> {OrderState.PAYMENT_PENDING}: create order"]
    lines += [f"    {source} --> {target}: {name} by {RUN_BY.get(name, name)}" for source, target, name in edges]
    terminal = [s for s in OrderState.values if not any(e[0] == s for e in edges)]
    lines += [f"    {state} --> [*]" for state in terminal]
    return "\n".join(lines) + "\n"
