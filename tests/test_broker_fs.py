"""The embedded broker writes a message whole before a consumer can see it (mmproject/broker_fs.py)."""
import builtins
import os

import pytest
from kombu import Connection

from mmproject import broker_fs


def _options(folder):
    os.makedirs(folder / "processed", exist_ok=True)
    return {"data_folder_in": str(folder), "data_folder_out": str(folder),
            "processed_folder": str(folder / "processed"), "store_processed": False}


@pytest.mark.embedded
def test_filesystem_urls_use_the_atomic_transport(tmp_path):
    import mmproject.celery  # noqa: F401 (registers the transport)

    with Connection("filesystem://", transport_options=_options(tmp_path)) as conn:
        assert isinstance(conn.default_channel, broker_fs.Channel)


@pytest.mark.embedded
def test_a_message_has_no_consumable_name_until_it_is_complete(tmp_path, monkeypatch):
    # Given a spy on every write of a message file: which consumable files exist at that moment
    consumable_while_writing = []
    real_open = builtins.open

    class Spy:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            self.f.__enter__()
            return self

        def __exit__(self, *exc):
            return self.f.__exit__(*exc)

        def write(self, data):
            consumable_while_writing.append(sorted(n for n in os.listdir(tmp_path) if n.endswith(".q.msg")))
            return self.f.write(data)

        def __getattr__(self, name):
            return getattr(self.f, name)

    def spying_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return Spy(f) if "w" in mode and str(path).startswith(str(tmp_path)) else f

    monkeypatch.setattr(builtins, "open", spying_open)
    with Connection(transport="mmproject.broker_fs:Transport", transport_options=_options(tmp_path)) as conn:
        channel = conn.default_channel
        # When two messages are put
        channel._put("q", {"n": 1})
        channel._put("q", {"n": 2})
        monkeypatch.setattr(builtins, "open", real_open)

        # Then while each was written no consumable file of it existed (only the earlier, whole one)
        assert len(consumable_while_writing) == 2
        assert consumable_while_writing[0] == []
        assert len(consumable_while_writing[1]) == 1
        # And both are read whole (in the same millisecond their order is kombu's: by uuid), nothing partial left
        assert sorted(channel._get("q")["n"] for _ in range(2)) == [1, 2]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(broker_fs.PARTIAL_SUFFIX)]
