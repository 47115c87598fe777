"""kill_switch engage|release|status: block every new exchange order at once and stop all orders."""
import json

from intents.models import TradingHalt
from mmproject.cli import OperatorCommand
from orders.services.kill_switch import halt_engaged, kill_switch_engage, kill_switch_release


class Command(OperatorCommand):
    help = (
        "The kill switch. 'engage' blocks every new exchange order from this moment (cancels still go "
        "through), supersedes unsent creates, and stops every running order the way stop_mm does. "
        "'release' lets new orders through again (stopped orders stay stopped). 'status' shows it. "
        "The STRATEGY_KILL_SWITCH setting engages it too, whatever the database says."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["engage", "release", "status"])
        parser.add_argument("--reason", default="operator kill switch")
        parser.add_argument("--wait", type=float, default=10.0,
                            help="seconds per order to confirm its cancels before leaving it to stop_mm")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, action, reason, wait, **options):
        result = {"action": action}
        if action == "engage":
            report = kill_switch_engage(reason=reason, by="command:kill_switch", wait_s=wait)
            result.update(superseded=report.superseded, orders=report.outcomes)
        elif action == "release":
            kill_switch_release(by="command:kill_switch")
        row = TradingHalt.objects.filter(name="global").first()
        result.update(engaged=halt_engaged(), reason=row.reason if row else "")
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        self.stdout.write(f"kill switch: {'ENGAGED' if result['engaged'] else 'off'}"
                          + (f" ({result['reason']})" if result["engaged"] and result["reason"] else ""))
        for order_id, outcome in result.get("orders", {}).items():
            self.stdout.write(f"  order {order_id}: {outcome}")
