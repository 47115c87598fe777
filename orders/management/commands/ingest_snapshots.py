"""``ingest_snapshots PATH``: feed snapshots (JSON lines, Mixin shape) to the local payment provider."""
import json
import sys

from mmproject.cli import OperatorCommand, UsageError
from orders.errors import InvalidSnapshot
from orders.services import snapshot_record


class Command(OperatorCommand):
    help = ("Record snapshots from a JSON-lines file (snapshot_id, asset_id, amount, opponent_id, memo hex, "
            "created_at) and queue their processing. A malformed line is reported on stderr (line number and why) and "
            "the rest are processed. Exit 0 all lines taken, 2 an unreadable file or any malformed line.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSON-lines file, or - for standard input")
        parser.add_argument("--json", action="store_true", help="print the counts (new, known, malformed) as JSON")

    def handle(self, *args, path, **options):
        try:
            stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        new = seen = bad = 0
        with stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    _, created = snapshot_record(provider="local", data=json.loads(line))
                except (json.JSONDecodeError, InvalidSnapshot) as exc:
                    bad += 1
                    self.stderr.write(f"line {number}: skipped: {exc}")
                    continue
                new += created
                seen += not created
        if options["json"]:
            self.stdout.write(json.dumps({"new": new, "known": seen, "malformed": bad}))
        else:
            self.stdout.write(f"snapshots: {new} new, {seen} already known, {bad} malformed")
        if bad:
            raise SystemExit(2)
