"""``mm_account status [--json]`` / ``mm_account resume LABEL``: exchange accounts halted by the exchange's
answer (a revoked API key, a suspended account) and their resume once the operator fixed the cause."""
import json

from exchanges.halts import account_resume, halted_accounts
from exchanges.models import ExchangeAccount
from mmproject.cli import OperatorCommand, UsageError


class Command(OperatorCommand):
    help = (
        "Exchange accounts halted after an error the exchange error policy classes 'halt' (API key revoked, "
        "account suspended): nothing new is planned or sent on a halted account. 'status' lists the halted "
        "accounts with their reason. 'resume LABEL' clears the halt after you fixed the cause (e.g. a new "
        "key saved in the admin): its sessions quote again from the next tick."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["status", "resume"])
        parser.add_argument("label", nargs="?", help="the exchange account's label (resume)")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, action, label, **options):
        result = {"action": action}
        if action == "resume":
            if not label:
                raise UsageError("resume needs the exchange account's LABEL")
            try:
                result["resumed"] = account_resume(label=label, by="command:mm_account")
            except ExchangeAccount.DoesNotExist:
                raise UsageError(f"no exchange account labelled {label!r}") from None
            result["label"] = label
        result["halted"] = halted_accounts()
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
            return
        if action == "resume":
            self.stdout.write(f"{label}: resumed, its sessions quote again from the next tick" if result["resumed"]
                              else f"{label}: was not halted")
        if not result["halted"]:
            self.stdout.write("halted accounts: none")
        for row in result["halted"]:
            self.stdout.write(f"HALTED {row['label']} ({row['exchange_id']}) since {row['halted_at']}: {row['reason']}")
