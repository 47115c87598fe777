"""The live view as plain text (no curses): one screen per refresh, or one line for logs."""
from __future__ import annotations

MAX_OPEN_ROWS = 8


def _value(x, default="-"):
    return default if x is None else x


def render_screen(view: dict, *, header: list[str]) -> str:
    lines = list(header)
    order = view.get("order")
    if order is None:
        lines.append("demo order: not created yet")
        return "\n".join(lines) + "\n"
    lines.append(f"order     {order['order_id']}  {order['symbol']}  state {order['state'].upper()}"
                 + (f"  ({order['reason']})" if order["reason"] else ""))
    lines.append(f"          {' -> '.join(order['path'])}")
    market = view.get("market")
    if market:
        lines.append(f"market    bid {_value(market['bid'])}  ask {_value(market['ask'])}  mid {_value(market['mid'])}"
                     f"  ({_value(market['age_s'])} s old)")
    tick = view.get("tick")
    if tick:
        lines.append(f"tick      last {tick['last_duration_ms']} ms  run {tick['ticks_run']}  skipped "
                     f"{tick['ticks_skipped']}  (finished {_value(tick['last_finished_age_s'])} s ago)")
    intents = view["intents"]
    lines.append(f"intents   in flight {intents['in_flight']}  waiting {intents['new']}  done {intents['done']}  "
                 f"failed {intents['failed']}  superseded {intents['superseded']}")
    open_orders = view["open_orders"]
    uptime = view.get("uptime")
    lines.append(f"open      {len(open_orders)} order(s) on the exchange"
                 + (f"   both sides quoted in {uptime['two_sided_pct']} % of {uptime['samples']} samples"
                    if uptime else ""))
    for row in open_orders[:MAX_OPEN_ROWS]:
        lines.append(f"          {row['side']:<4} {row['amount']} @ {row['price']}  filled {row['filled']}  {row['status']}")
    fills = view["fills"]
    lines.append(f"fills     {fills['count']}  bought {fills['bought']}  sold {fills['sold']}")
    for row in fills["last"]:
        lines.append(f"          {row['side']:<4} {row['amount']} @ {row['price']}  fee {row['fee']} {row['fee_currency']}")
    inventory = "  ".join(f"{code} {v['total']} (locked {v['locked']})" for code, v in view["inventory"].items())
    lines.append(f"inventory {inventory}   [ledger balance of the demo user]")
    pnl = view["pnl"]
    lines.append(f"PnL       {_value(pnl['quote'], 'n/a (no market data yet)')} {pnl['currency']}   [{pnl['basis']}]")
    return "\n".join(lines) + "\n"


def render_line(view: dict) -> str:
    order = view.get("order")
    if order is None:
        return "demo: no order yet"
    tick = view.get("tick") or {}
    return (f"demo: state={order['state']} open={len(view['open_orders'])} fills={view['fills']['count']} "
            f"pnl={_value(view['pnl']['quote'])} tick_ms={_value(tick.get('last_duration_ms'))} "
            f"in_flight={view['intents']['in_flight']} "
            f"two_sided_pct={_value((view.get('uptime') or {}).get('two_sided_pct'))}")
