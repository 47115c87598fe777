"""``ingest_snapshots PATH``: feed snapshots (JSON lines, Mixin shape) to the local payment provider."""
import json

from django.core.management.base import BaseCommand, CommandError

from orders.errors import InvalidSnapshot
from orders.services import snapshot_record


class Command(BaseCommand):
    help = ("Record snapshots from a JSON-lines file (snapshot_id, asset_id, amount, opponent_id, memo hex, "
            "created_at) and queue their processing. A malformed line is reported; the rest are processed.")

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSON-lines file, or - for standard input")

    def handle(self, *args, path, **options):
        import sys

        try:
            stream = sys.stdin if path == "-" else open(path, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc}") from None
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
        self.stdout.write(f"snapshots: {new} new, {seen} already known, {bad} malformed")
        if bad:
            raise SystemExit(2)
