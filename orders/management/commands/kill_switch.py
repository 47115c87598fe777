"""kill_switch engage|release|status: block every new exchange order at once and stop all orders."""
import json
import sys

from django.core.management.base import CommandError

from intents.models import TradingHalt
from mmproject.cli import OperatorCommand, UsageError
from orders.models import MarketMakingOrder, OrderState
from orders.services.kill_switch import halt_engaged, kill_switch_engage, kill_switch_release


class Command(OperatorCommand):
    help = (
        "The kill switch. 'engage --reason \"...\"' blocks every new exchange order from this moment (cancels "
        "still go through), supersedes unsent creates, and stops every running order the way stop_mm does; the "
        "reason is required (it is recorded with the switch and on every order stopped), and it asks for "
        "confirmation (type yes) unless --yes is given. 'release' lets new orders through again (stopped orders "
        "stay stopped). 'status' shows it. The STRATEGY_KILL_SWITCH setting engages it too, whatever the "
        "database says. Exit 0 done, 1 not confirmed (nothing changed), 2 bad input (engage without --reason)."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["engage", "release", "status"])
        parser.add_argument("--reason", default="", help="why (required with engage)")
        parser.add_argument("--yes", action="store_true", help="engage without asking for confirmation")
        parser.add_argument("--wait", type=float, default=10.0,
                            help="seconds per order to confirm its cancels before leaving it to stop_mm")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, action, reason, wait, **options):
        result = {"action": action}
        if action == "engage":
            reason = " ".join(reason.split())
            if not reason:
                raise UsageError('kill_switch engage needs --reason "...": it is recorded with the switch and on '
                                 "every order it stops")
            if not options["yes"]:
                self._confirm(reason, options.get("stdin") or sys.stdin)
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

    def _confirm(self, reason: str, stdin) -> None:
        running = MarketMakingOrder.objects.filter(state=OrderState.RUNNING).count()
        self.stdout.write(f"Engage the kill switch ({reason}): no new exchange order from now on, and stop all "
                          f"{running} running orders. Type yes to go on: ", ending="")
        self.stdout.flush()
        answer = stdin.readline().strip().lower()
        if answer != "yes":
            raise CommandError("kill switch not engaged: not confirmed (type yes, or pass --yes)", returncode=1)
