"""A worker SIGKILLed while the platform holds back its answer to a reply it has made, for a
writer whose protection is not an idempotency key: Bluesky's record key derived from the reply
(Mastodon's case is in test_send.py). The next worker, once the dead one's lease expired,
finds the record and records it — one create in the fake's log, one record on the PDS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from alerts.dispatch import RetryPolicy
from alerts.replies.send import Sending, send_replies
from listener.core.models import Page, Post
from storage import db as store
from storage import replies
from storage.tx import connect
from tests.alerts.replies.test_bluesky import HANDLE, PASSWORD, customer_post, outgoing, writer
from tests.fakes.base import Fault
from tests.fakes.bluesky_api import CREATE_RECORD, FakeBluesky

_CHILD = """
import sys
from datetime import datetime, UTC
from alerts.dispatch import RetryPolicy
from alerts.replies.registry import writer_class
from alerts.replies.send import Sending, send_replies
from storage.tx import connect
cls = writer_class(sys.argv[2])
writer = cls(cls.Config.model_validate_json(sys.argv[3]), 60.0)
send_replies(connect(sys.argv[1]), {writer.name: writer}, RetryPolicy(),
             Sending("child", lease_seconds=1.0), clock=lambda: datetime.now(UTC))
"""


def test_a_bluesky_reply_survives_a_sigkill_mid_send_as_one_record(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    with FakeBluesky(handle=HANDLE, password=PASSWORD) as fake:
        out = outgoing(customer_post(fake))
        db = store.open_db(path)
        store.store_page(db, "sky", Page(posts=[Post(
            platform="bluesky", platform_id=out.platform_id, text="acme cloud ate my files",
            created_at=datetime.now(UTC), source="sky", brand="acme", author=out.author,
            thread=out.thread, raw=out.raw)]), datetime.now(UTC))
        reply = replies.create(db, 1, "acme-sky", "bluesky", "jane", "On it!", datetime.now(UTC),
                               needs_approval=False)
        db.close()
        sky = writer(fake)
        fake.faults = lambda method, p: (Fault(200, None, {}, 30.0, acted=True)
                                         if (method, p) == ("POST", CREATE_RECORD) else None)
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), "bluesky",
                                  sky.config.model_dump_json()],
                                 env={**os.environ, "HF_HUB_OFFLINE": "1"})
        try:
            deadline = time.monotonic() + 30
            while not fake.requests_to(CREATE_RECORD):
                assert time.monotonic() < deadline and child.poll() is None, "nothing was sent"
                time.sleep(0.05)
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
        fake.faults = None
        time.sleep(2.1)  # the dead worker's lease (1 s, stored to the second) expires
        db = connect(path)
        result = send_replies(db, {"acme-sky": sky}, RetryPolicy(), Sending("survivor"),
                              clock=lambda: datetime.now(UTC))
        sent = replies.get(db, reply.id)
        db.close()
        assert (result.found, result.sent) == (1, 0)
        assert len(fake.requests_to(CREATE_RECORD)) == 1 and len(fake.records) == 1
        assert sent is not None and sent.status == "sent"
        assert sent.remote_id == next(iter(fake.records))
