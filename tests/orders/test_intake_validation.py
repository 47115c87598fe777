"""Bad input from outside never reaches the database as an error: each snapshot record is validated first
(NUL bytes anywhere, text that is not UTF-8, fields longer than their column, malformed amounts and timestamps,
NaN or deep nesting in the stored JSON); ``ingest_snapshots`` skips a bad line with its number and reason and
records the rest of the file; the Mixin poller skips a bad record and its cursor still moves on."""
import json

import pytest
from django.core.management import call_command

from orders.errors import InvalidSnapshot
from orders.models import MarketMakingOrder, ProviderCursor, Snapshot
from orders.services import snapshot_record
from orders.services.intake import snapshots_poll

from .conftest import USDT, snapshot_payload
from .test_mixin_provider import mixin, mixin_snapshot, provider  # noqa: F401 (mixin: the stand-in fixture)

pytestmark = pytest.mark.embedded

LONG_ID = "a" * 65


@pytest.mark.parametrize("broken, message", [
    ({"snapshot_id": "abc\x00def"}, "snapshot_id contains a NUL byte"),
    ({"memo": "00\x00"}, "memo contains a NUL byte"),
    ({"opponent_id": "\x00"}, "opponent_id contains a NUL byte"),
    ({"asset_id": f"{USDT}\x00"}, "asset_id contains a NUL byte"),
    ({"note": "paid\x00"}, "note contains a NUL byte"),
    ({"extra": {"deep": ["ok", "bad\x00"]}}, r"extra.deep\[1\] contains a NUL byte"),
    ({"bad\x00key": 1}, "NUL byte"),
    ({"note": "\ud800"}, "not valid UTF-8"),
    ({"ratio": float("nan")}, "JSON cannot hold"),
    ({"extra": json.loads("[" * 40 + "]" * 40)}, "nested deeper than 32"),
    ({"snapshot_id": LONG_ID}, "snapshot_id is 65 characters long, more than its 64"),
    ({"asset_id": "b" * 65}, "asset_id is 65 characters long"),
    ({"opponent_id": "c" * 65}, "opponent_id is 65 characters long"),
    ({"amount": "1e3"}, "not a plain decimal"),
    ({"amount": "1_000"}, "not a plain decimal"),
    ({"amount": " 1"}, "not a plain decimal"),
    ({"amount": "\u0661"}, "not a plain decimal"),
    ({"amount": "1" * 65}, "not a plain decimal"),
    ({"amount": "1" * 30}, "exceeds the maximum"),
    ({"amount": "0"}, "zero"),
    ({"amount": ["1"]}, "decimal string"),
    ({"created_at": "0001-01-01T00:00:00+14:00"}, "not a timestamp"),
    ({"created_at": "2026-11-24T10:00:00\x00Z"}, "created_at contains a NUL byte"),
])
def test_a_record_the_database_would_refuse_is_refused_first_naming_the_field(db, broken, message):
    # given a snapshot record with one bad field
    payload = {**snapshot_payload(None, memo_hex="00"), **broken}
    # when it is recorded, it is refused with the field and the reason, and nothing is stored
    with pytest.raises(InvalidSnapshot, match=message):
        snapshot_record(provider="local", data=payload)
    assert not Snapshot.objects.exists()
    # and the connection is still usable (no database error left a transaction broken)
    assert snapshot_record(provider="local", data=snapshot_payload(None, memo_hex="00"))[1] is True


def test_a_timestamp_without_a_zone_is_taken_as_utc(db):
    payload = {**snapshot_payload(None, memo_hex="00"), "created_at": "2026-11-24T10:00:00"}
    snapshot, _ = snapshot_record(provider="local", data=payload)
    assert snapshot.snapshot_created_at.isoformat() == "2026-11-24T10:00:00+00:00"


def test_ingest_skips_each_bad_line_with_its_number_and_reason_and_records_the_rest(
        order, tmp_path, capsys, django_capture_on_commit_callbacks):
    # given a file whose good payments are spread between bad lines of every kind
    good = [snapshot_payload(order, asset_id=USDT, amount=str(n)) for n in (1, 2, 3, 4)]
    lines = [
        json.dumps(good[0]).encode(),
        json.dumps({**snapshot_payload(order), "memo": "00\x00"}).encode(),             # 2: NUL in a field
        json.dumps({**snapshot_payload(order), "note": "x\x00"}).encode(),              # 3: NUL in an extra field
        json.dumps({**snapshot_payload(order), "snapshot_id": LONG_ID}).encode(),       # 4: longer than its column
        json.dumps(good[1]).encode(),
        b'{"snapshot_id": "\xff\xfe", "amount": "1"}',                                  # 6: not UTF-8
        json.dumps({**snapshot_payload(order), "amount": "1e3"}).encode(),              # 7: bad amount
        b'{"snapshot_id": "x", "ratio": NaN}',                                          # 8: NaN
        b"[" * 30_000,                                                                  # 9: deeply nested
        b'{"n": ' + b"9" * 5000 + b"}",                                                 # 10: an integer too long
        b"x" * (64 * 1024 + 1),                                                         # 11: too long a line
        json.dumps(good[2]).encode(),
        json.dumps(good[3]).encode(),
    ]
    path = tmp_path / "snapshots.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    # when it is ingested
    with django_capture_on_commit_callbacks(execute=False), pytest.raises(SystemExit) as exited:
        call_command("ingest_snapshots", "--json", str(path))
    # then it exits 2, names each bad line once with its reason, and records every good one
    assert exited.value.code == 2
    out = capsys.readouterr()
    assert json.loads(out.out) == {"new": 4, "known": 0, "malformed": 9}
    reported = [line for line in out.err.splitlines() if line.startswith("line ")]
    assert [line.split(":")[0] for line in reported] == [f"line {n}" for n in (2, 3, 4, 6, 7, 8, 9, 10, 11)]
    reasons = dict(line.split(": skipped: ", 1) for line in reported)
    assert "memo contains a NUL byte" in reasons["line 2"]
    assert "note contains a NUL byte" in reasons["line 3"]
    assert "more than its 64" in reasons["line 4"]
    assert "not UTF-8 text (byte 0xff at column 18)" in reasons["line 6"]
    assert "not a plain decimal" in reasons["line 7"]
    assert "NaN is not a JSON number" in reasons["line 8"]
    assert "JSON nested too deeply" in reasons["line 9"]
    assert "not JSON" in reasons["line 10"]
    assert "more than 65536" in reasons["line 11"]
    assert set(Snapshot.objects.values_list("snapshot_id", flat=True)) == {p["snapshot_id"] for p in good}


def test_ingest_of_a_clean_file_exits_0(order, tmp_path, capsys, django_capture_on_commit_callbacks):
    path = tmp_path / "snapshots.jsonl"
    path.write_text(json.dumps(snapshot_payload(order, asset_id=USDT, amount="1")) + "\n\n")
    with django_capture_on_commit_callbacks(execute=False):
        call_command("ingest_snapshots", str(path))
    assert "1 new, 0 already known, 0 malformed" in capsys.readouterr().out


def test_the_mixin_poller_skips_a_bad_record_and_its_cursor_moves_on(mixin, order, settings,  # noqa: F811
                                                                       django_capture_on_commit_callbacks):

    # given a page with a good payment, one with a NUL in its memo, one with a 65-character id, and a last
    # one whose timestamp has a NUL byte
    good = mixin_snapshot(order, "2026-11-24T10:00:01Z", asset_id=USDT, amount="1")
    nul_memo = {**mixin_snapshot(order, "2026-11-24T10:00:02Z", asset_id=USDT, amount="1"), "memo": "00\x00"}
    long_id = {**mixin_snapshot(order, "2026-11-24T10:00:03Z", asset_id=USDT, amount="1"), "snapshot_id": LONG_ID}
    bad_time = mixin_snapshot(order, "2026-11-24T10:00:04\x00Z", asset_id=USDT, amount="1")
    mixin.snapshots += [good, nul_memo, long_id, bad_time]
    settings.MIXIN_POLL_LIMIT = 10
    with django_capture_on_commit_callbacks(execute=False):
        result = snapshots_poll(provider=provider())
    # then the good one is recorded, the three bad ones counted, and the cursor is the newest valid timestamp
    assert (result.received, result.new, result.malformed) == (4, 1, 3)
    assert list(Snapshot.objects.values_list("snapshot_id", flat=True)) == [good["snapshot_id"]]
    assert ProviderCursor.objects.get(provider="mixin").cursor == "2026-11-24T10:00:03Z"
    assert MarketMakingOrder.objects.get(pk=order.pk).state == "payment_pending"
