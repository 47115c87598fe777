"""Child process of the in-flight limit tests: claims intents, holds them briefly, releases them.

Writes one JSON line per claim to the file given as argv[1]: (intent pk, account, key, start, end)
with times from the system-wide monotonic clock, recorded inside the database-held interval.
"""
import json
import os
import random
import sys
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mmproject.settings")
django.setup()

from intents.gates import claim_intents, release  # noqa: E402
from intents.models import Intent, IntentStatus  # noqa: E402


def main(out_path: str, seed: int, deadline_s: float):
    rng = random.Random(seed)
    deadline = time.monotonic() + deadline_s
    with open(out_path, "w") as out:
        while time.monotonic() < deadline:
            claims = claim_intents(max_claims=rng.randint(1, 3))
            if not claims:
                if not Intent.objects.filter(status__in=[IntentStatus.NEW, IntentStatus.IN_FLIGHT]).exists():
                    return
                time.sleep(0.005)
                continue
            started = time.monotonic()
            meta = {i.pk: (i.account_id, i.strategy_key) for i in Intent.objects.filter(pk__in=[c.intent_pk for c in claims])}
            time.sleep(rng.uniform(0.005, 0.03))
            for claim in claims:
                ended = time.monotonic()
                account_id, key = meta[claim.intent_pk]
                out.write(json.dumps([claim.intent_pk, account_id, key, started, ended]) + "\n")
                out.flush()
                release(intent_pk=claim.intent_pk, token=claim.token, status=IntentStatus.DONE)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
