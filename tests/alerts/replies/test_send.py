"""The reply stage end to end on both engines, with the real Mastodon writer against the fake
instance: sent once and recorded with the post moved to ``replied``; a lost answer, a timeout
and a SIGKILL mid-send each end with exactly one status on the platform; approval holds a
reply back; refusals park it; two workers never send one reply twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerts.dispatch import RetryPolicy
from alerts.replies.mastodon import MastodonAccountConfig, MastodonWriter
from alerts.replies.send import Sending, send_replies
from listener.core.models import Page, Post
from storage import audit, replies
from storage import db as store
from storage.engine import Db
from storage.tx import connect
from tests.fakes.base import HANG_UP, Fault
from tests.fakes.mastodon_api import FakeMastodon

TOKEN = "mastodon-write-token-secret"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, backoff_initial=10, backoff_max=60)


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with FakeMastodon(access_token=TOKEN) as server:
        yield server


def writers(fake: FakeMastodon) -> dict[str, MastodonWriter]:
    config = MastodonAccountConfig(type="mastodon", name="acme-mastodon", base_url=fake.base_url,
                                   access_token=TOKEN)
    return {"acme-mastodon": MastodonWriter(config, timeout=2.0)}


def stored_post(db: Db, fake: FakeMastodon) -> int:
    status = fake.add_status("<p>my order never arrived</p>", acct="ann")
    post = Post(platform="mastodon", platform_id=status["uri"], text="my order never arrived",
                created_at=NOW - timedelta(hours=1), source="m", brand="acme", author="ann",
                url=status["url"], raw={"id": status["id"], "uri": status["uri"]})
    store.store_page(db, "m", Page(posts=[post]), NOW)
    return int(db.execute("SELECT max(id) FROM posts").fetchone()[0])


def write(db: Db, post_id: int, *, approval: bool = False, text: str = "We're on it!") -> str:
    return replies.create(db, post_id, "acme-mastodon", "mastodon", "ann.agent", text, NOW,
                          needs_approval=approval).id


def run(db: Db, fake: FakeMastodon, at: datetime, owner: str = "w1", **kw: object):  # type: ignore[no-untyped-def]
    return send_replies(db, writers(fake), POLICY, Sending(owner, **kw),  # type: ignore[arg-type]
                        clock=lambda: at)


def test_a_reply_is_sent_recorded_and_moves_the_post_to_replied(any_db: Db,
                                                                fake: FakeMastodon) -> None:
    post_id = stored_post(any_db, fake)
    reply_id = write(any_db, post_id)
    assert run(any_db, fake, NOW).sent == 1
    (posted,) = fake.posted()
    reply = replies.get(any_db, reply_id)
    assert reply is not None
    assert (reply.status, reply.remote_id, reply.remote_url) == ("sent", posted["id"],
                                                                  posted["url"])
    row = any_db.execute("SELECT status, by, first_response_at FROM post_status"
                         " WHERE post_id = ?", [post_id]).fetchone()
    assert tuple(row) == ("replied", "ann.agent", "2026-11-20T12:00:00Z")
    assert [e.action for e in audit.entries(any_db, audit.AuditFilter())] == [
        "reply.sent", "reply.write"]
    assert run(any_db, fake, NOW + timedelta(hours=1)).sent == 0  # nothing more to send
    assert len(fake.posted()) == 1


def test_a_lost_answer_is_found_on_the_next_attempt(any_db: Db, fake: FakeMastodon) -> None:
    post_id = stored_post(any_db, fake)
    reply_id = write(any_db, post_id)
    fake.faults = lambda method, path: Fault(HANG_UP, acted=True) if method == "POST" else None
    first = run(any_db, fake, NOW)
    assert (first.sent, first.retrying) == (0, 1)
    fake.faults = None
    second = run(any_db, fake, NOW + timedelta(minutes=5))
    assert (second.sent, second.found) == (0, 1)
    assert len(fake.posted()) == 1 and len(fake.requests_to("/api/v1/statuses")) == 1
    reply = replies.get(any_db, reply_id)
    assert reply is not None and reply.status == "sent" and reply.attempts == 2


def test_a_reply_waits_for_approval_and_a_rejected_one_is_never_sent(
    any_db: Db, fake: FakeMastodon
) -> None:
    post_id = stored_post(any_db, fake)
    held = write(any_db, post_id, approval=True)
    refused = write(any_db, post_id, approval=True, text="Sorry!!! 😡 it's your fault")
    assert run(any_db, fake, NOW).sent == 0 and fake.posted() == []
    assert {r.id for r in replies.awaiting_approval(any_db)} == {held, refused}
    replies.approve(any_db, held, "boss", NOW)
    replies.reject(any_db, refused, "boss", NOW, "tone")
    assert run(any_db, fake, NOW).sent == 1
    assert {r.id: r.status for r in replies.for_post(any_db, post_id)} == {
        held: "sent", refused: "rejected"}
    with pytest.raises(replies.ReplyError):
        replies.approve(any_db, refused, "boss", NOW)


def test_a_refusal_parks_the_reply_until_someone_retries_it(any_db: Db,
                                                            fake: FakeMastodon) -> None:
    post_id = stored_post(any_db, fake)
    reply_id = write(any_db, post_id)
    fake.scopes = {"read"}
    assert run(any_db, fake, NOW).failed == 1
    reply = replies.get(any_db, reply_id)
    assert reply is not None and reply.status == "failed" and "write:statuses" in (
        reply.last_error or "")
    assert audit.entries(any_db, audit.AuditFilter(action="reply.failed"))
    fake.scopes = {"read", "write:statuses"}
    replies.retry(any_db, reply_id, "boss", NOW)
    result = run(any_db, fake, NOW)  # tried before: find() looks first, finds nothing, sends
    assert (result.found, result.sent) == (0, 1) and len(fake.posted()) == 1
    assert fake.requests_to("/api/v1/accounts/")  # the look came first


def test_a_rate_limit_holds_the_accounts_other_replies(any_db: Db, fake: FakeMastodon) -> None:
    post_id = stored_post(any_db, fake)
    write(any_db, post_id, text="one")
    write(any_db, post_id, text="two")
    fake.enqueue(429, {"error": "Too many requests"}, path="/api/v1/statuses",
                 headers={"X-RateLimit-Reset": "2099-01-01T00:00:00.000Z"})
    result = run(any_db, fake, NOW)
    assert (result.rate_limited, result.sent) == (1, 0)
    assert len(fake.requests_to("/api/v1/statuses")) == 1  # the second was not tried


def test_two_workers_never_send_one_reply_twice(tmp_path: Path, fake: FakeMastodon) -> None:
    path = tmp_path / "db.sqlite"
    db = store.open_db(path)
    post_id = stored_post(db, fake)
    for i in range(6):
        write(db, post_id, text=f"reply {i}")
    fake.latency = 0.2
    results = []

    def worker(owner: str) -> None:
        own = connect(path)
        results.append(run(own, fake, NOW, owner))
        own.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sum(r.sent for r in results) == 6
    assert sorted(s["content"].split(" ", 1)[1] for s in fake.posted()) == [
        f"reply {i}" for i in range(6)]
    db.close()


_CHILD = """
import sys
from datetime import datetime, UTC
from alerts.dispatch import RetryPolicy
from alerts.replies.mastodon import MastodonAccountConfig, MastodonWriter
from alerts.replies.send import Sending, send_replies
from storage.tx import connect
db = connect(sys.argv[1])
config = MastodonAccountConfig(type="mastodon", name="acme-mastodon", base_url=sys.argv[2],
                               access_token=sys.argv[3])
writer = MastodonWriter(config, timeout=60.0)
send_replies(db, {"acme-mastodon": writer}, RetryPolicy(), Sending("child", lease_seconds=1.0),
             clock=lambda: datetime.now(UTC))
"""


def test_a_worker_killed_mid_send_leaves_one_status(tmp_path: Path, fake: FakeMastodon) -> None:
    """SIGKILL while the instance holds back its answer to a status it has made: the reply is
    left ``sending``; once the dead worker's lease expires, the next pass finds the status on
    the instance and records it — the request log shows one create."""
    path = tmp_path / "db.sqlite"
    db = store.open_db(path)
    reply_id = write(db, stored_post(db, fake), text="Sorry! A refund is on its way.")
    db.close()
    fake.faults = lambda method, path: (Fault(200, None, {}, 30.0, acted=True)
                                        if method == "POST" else None)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), fake.base_url, TOKEN],
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 30
        while not fake.requests_to("/api/v1/statuses"):
            assert time.monotonic() < deadline and child.poll() is None, "no send was made"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
    fake.faults = None
    db = connect(path)
    left = replies.get(db, reply_id)
    assert left is not None and (left.status, left.attempts) == ("sending", 1)
    time.sleep(2.1)  # the dead worker's lease (1 s, stored to the second) expires
    result = send_replies(db, writers(fake), POLICY, Sending("survivor"),
                          clock=lambda: datetime.now(UTC))
    assert (result.found, result.sent) == (1, 0)
    assert len(fake.posted()) == 1 and len(fake.requests_to("/api/v1/statuses")) == 1
    assert db.execute("SELECT status FROM post_status").fetchone()[0] == "replied"
    db.close()


def test_a_reply_withdrawn_while_being_sent_stays_withdrawn(any_db: Db,
                                                            fake: FakeMastodon) -> None:
    """Forgetting a person cancels their post's unsent replies, even one being sent; if that
    send then fails, the failure must not make the reply pending again."""
    reply_id = write(any_db, stored_post(any_db, fake))
    before = replies.begin(any_db, reply_id, NOW)
    assert before is not None
    any_db.execute("UPDATE replies SET status = 'cancelled' WHERE id = ?", [reply_id])
    replies.record_failure(any_db, before, NOW, "timed out", NOW + timedelta(minutes=1))
    after = replies.get(any_db, reply_id)
    assert after is not None and after.status == "cancelled"
    assert run(any_db, fake, NOW + timedelta(hours=1)).sent == 0 and fake.posted() == []


def test_the_same_reply_to_the_same_post_twice_is_refused(any_db: Db, fake: FakeMastodon) -> None:
    post_id = stored_post(any_db, fake)
    first = write(any_db, post_id, text="We're on it!")
    with pytest.raises(replies.ReplyError, match="already written"):
        write(any_db, post_id, text="  We're on it!  ")
    replies.cancel(any_db, first, "ann.agent", NOW)
    write(any_db, post_id, text="We're on it!")  # the first was withdrawn: fine again
