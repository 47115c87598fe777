"""kombu's filesystem transport (the embedded default broker) with atomic message writes.

kombu writes a message by creating ``<time>_<uuid>.<queue>.msg`` and then writing into it; a
consumer takes any file of that name. One that takes the file between the two reads it empty,
fails to decode it and stops the worker (seen once in `make run`: "worker exited with 1";
kombu issue #1551). Here a message is written under a name no consumer takes
(``... .msg.part``) and renamed to its final name once complete, which is atomic on POSIX: a
consumer sees a whole message or none. ``mmproject.celery`` makes ``filesystem://`` use this
transport; reading is kombu's own.
"""
from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL_SUFFIX = ".part"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + PARTIAL_SUFFIX  # consumers take only names ending in "<queue>.msg"
        try:
            with open(partial, "wb", buffering=0) as f:
                f.write(str_to_bytes(dumps(payload)))
            os.rename(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
