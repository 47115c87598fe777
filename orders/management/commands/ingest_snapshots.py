"""``ingest_snapshots PATH``: feed snapshots (JSON lines, Mixin shape) to the local payment provider."""
import json
import sys

from mmproject.cli import OperatorCommand, UsageError
from orders.errors import InvalidSnapshot
from orders.services import snapshot_record

# A Mixin snapshot is well under a kilobyte; a longer line is refused before it is parsed.
MAX_LINE_BYTES = 64 * 1024


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def parse_line(raw: bytes):
    """One line of the file as a JSON value; ValueError saying why it is not one."""
    if len(raw) > MAX_LINE_BYTES:
        raise ValueError(f"line is {len(raw)} bytes long, more than {MAX_LINE_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity, an integer too long to convert
        raise ValueError(f"not JSON: {exc}") from None


class Command(OperatorCommand):
    help = ("Record snapshots from a JSON-lines file (snapshot_id, asset_id, amount, opponent_id, memo hex, "
            "created_at) and queue their processing. Each line is checked before anything of it is stored: a line "
            "that is not UTF-8 or not JSON, or a record with a NUL byte or a lone surrogate in any field (unknown "
            "extra fields included), a field longer than its column, a malformed amount or timestamp, is skipped "
            "and reported on stderr (line number and why), and the rest of the file is processed. Exit 0 every "
            "line recorded (or already known), 2 the file is unreadable or one or more lines were skipped (the "
            "others were recorded; --json counts them).")

    def add_arguments(self, parser):
        parser.add_argument("path", help="JSON-lines file, or - for standard input")
        parser.add_argument("--json", action="store_true", help="print the counts (new, known, malformed) as JSON")

    def handle(self, *args, path, **options):
        try:
            stream = sys.stdin.buffer if path == "-" else open(path, "rb")
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
        new = seen = bad = 0
        with stream:
            for number, raw in enumerate(stream, start=1):
                if not raw.strip():
                    continue
                try:
                    _, created = snapshot_record(provider="local", data=parse_line(raw))
                except (ValueError, InvalidSnapshot) as exc:
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
