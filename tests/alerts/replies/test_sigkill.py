"""A worker SIGKILLed while the platform holds back its answer to a reply it has made, for each
writer whose protection is not an idempotency key (Mastodon's case is in test_send.py): Bluesky's
record key derived from the reply, Reddit's and X's look at the account's own newest comments or
posts, Google Play's one developer reply per review read back, the App Store's one response per
review read back. The child process sends through the writer the registry builds from the
account's config; the fake performs the write and stalls; the child is killed; once its lease
(1 s) expired the next worker, in this process, finds the reply on the platform and records it:
one write in the fake's request log, one reply on the platform, the reply ``sent`` with the
platform's id."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from alerts.dispatch import RetryPolicy
from alerts.replies.appstore import AppStoreAccountConfig
from alerts.replies.base import AccountConfig, Outgoing
from alerts.replies.googleplay import GooglePlayAccountConfig
from alerts.replies.registry import build_writers
from alerts.replies.send import ReplyResult, Sending, send_replies
from listener.core.models import Page, Post
from storage import db as store
from storage import replies
from storage.tx import connect
from tests.alerts.replies import test_appstore, test_bluesky, test_googleplay, test_reddit, test_x
from tests.fakes.appstore_api import RESPONSES, FakeAppStore
from tests.fakes.appstore_api import review as feed_review
from tests.fakes.base import FakeHTTPServer, Fault, RecordedRequest
from tests.fakes.bluesky_api import CREATE_RECORD, FakeBluesky
from tests.fakes.googleplay_api import FakeGooglePlay, play_review
from tests.fakes.reddit_api import FakeReddit
from tests.fakes.x_api import TWEETS_PATH, USERNAME, FakeXApi

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


# -- what the five tests share ----------------------------------------------------------------


def stored_reply(path: Path, out: Outgoing, platform: str, account: str, text: str,
                 post_text: str = "acme cloud ate my files") -> replies.Reply:
    """A new database at ``path`` holding the customer's post (as its source stored it: ``out``'s
    ids, author, thread, link, raw, text, stars and time; ``post_text`` where ``out`` has no
    text) and a reply to it through ``account``, approved."""
    db = store.open_db(path)
    store.store_page(db, platform, Page(posts=[Post(
        platform=platform, platform_id=out.platform_id, text=out.post_text or post_text,
        created_at=out.post_created_at or datetime.now(UTC), source=platform, brand="acme",
        url=out.url, author=out.author, thread=out.thread, raw=out.raw,
        rating=out.post_rating)]), datetime.now(UTC))
    post_id = db.execute("SELECT id FROM posts WHERE platform = ? AND platform_id = ?",
                         [platform, out.platform_id]).fetchone()[0]
    written = replies.create(db, post_id, account, platform, "jane", text, datetime.now(UTC),
                             needs_approval=True)
    reply = replies.approve(db, written.id, "lee", datetime.now(UTC))
    db.close()
    assert reply.status == "pending"
    return reply


def writes(fake: FakeHTTPServer, write: str) -> list[RecordedRequest]:
    """The POSTs to ``write`` (the platform's write request) in the fake's log."""
    return [r for r in fake.requests if _is(write, r.method, r.path)]


def _is(write: str, method: str, path: str) -> bool:
    return method == "POST" and path.rstrip("/") == write.rstrip("/")


def killed_mid_send(path: Path, config: AccountConfig, fake: FakeHTTPServer, write: str) -> None:
    """A child process sends the due replies through ``config``'s writer (lease 1 s); the fake
    performs the write (a POST to ``write``), then holds its answer back; the child is
    SIGKILLed once the write arrived, and its lease is left to expire."""
    fake.faults = lambda method, p: (Fault(200, None, {}, 30.0, acted=True)
                                     if _is(write, method, p) else None)
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), config.type,
                              config.model_dump_json()],
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        deadline = time.monotonic() + 30
        while not writes(fake, write):
            assert time.monotonic() < deadline and child.poll() is None, "nothing was sent"
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
    fake.faults = None
    time.sleep(2.1)  # the dead worker's lease (1 s, stored to the second) expires


def survivor(path: Path, config: AccountConfig,
             reply_id: str) -> tuple[ReplyResult, replies.Reply]:
    """The next worker's pass, in this process (its writer built from the same config): what
    it did, and the reply afterwards. The dead worker left the reply ``sending``."""
    db = connect(path)
    writers = build_writers([config], 60.0)
    try:
        left = replies.get(db, reply_id)
        assert left is not None and (left.status, left.attempts) == ("sending", 1)
        result = send_replies(db, writers, RetryPolicy(), Sending("survivor"),
                              clock=lambda: datetime.now(UTC))
        after = replies.get(db, reply_id)
    finally:
        for writer in writers.values():
            writer.close()
        db.close()
    assert after is not None
    return result, after


# -- one per platform -------------------------------------------------------------------------


def test_a_bluesky_reply_survives_a_sigkill_mid_send_as_one_record(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    with FakeBluesky(handle=test_bluesky.HANDLE, password=test_bluesky.PASSWORD) as fake:
        out = test_bluesky.outgoing(test_bluesky.customer_post(fake))
        reply = stored_reply(path, out, "bluesky", "acme-sky", "On it!")
        config = test_bluesky.writer(fake).config
        killed_mid_send(path, config, fake, CREATE_RECORD)
        result, sent = survivor(path, config, reply.id)
        assert (result.found, result.sent) == (1, 0)
        assert len(writes(fake, CREATE_RECORD)) == 1 and len(fake.records) == 1
        assert sent.status == "sent" and sent.remote_id == next(iter(fake.records))


def test_a_reddit_reply_survives_a_sigkill_mid_send_as_one_comment(tmp_path: Path) -> None:
    """Reddit refuses no duplicate: the next worker finds the comment among the account's own
    newest comments (parent and text) instead of commenting again."""
    path = tmp_path / "db.sqlite"
    with FakeReddit() as fake:
        out = test_reddit.outgoing(test_reddit.customer_post(fake))
        reply = stored_reply(path, out, "reddit", "acme-reddit", test_reddit.TEXT)
        config = test_reddit.writer(fake).config
        killed_mid_send(path, config, fake, "/api/comment")
        result, sent = survivor(path, config, reply.id)
        assert (result.found, result.sent) == (1, 0)
        assert len(writes(fake, "/api/comment")) == 1
        (made,) = fake.comments
        assert made["data"]["parent_id"] == out.platform_id
        assert sent.status == "sent" and sent.remote_id == made["data"]["name"]
        assert sent.remote_url == f"https://www.reddit.com{made['data']['permalink']}"


def test_an_x_reply_survives_a_sigkill_mid_send_as_one_post(tmp_path: Path) -> None:
    """X takes no idempotency key: the next worker finds the post among the account's posts
    newer than the customer's (replied_to and text, as X shows it) instead of posting again.
    The fake's timeline shows a post at once. X's may lag (alerts.replies.x): the repeat is
    then refused as duplicate content and looked for on the next attempt — one post still, but
    two creates in the log; were X's duplicate refusal not to fire as well, a second post."""
    path = tmp_path / "db.sqlite"
    with FakeXApi() as fake:
        fake.add_user("11", "ann", followers=120)
        fake.add_tweet(test_x.PARENT, "@acme your cloud ate my files", author_id="11")
        out = test_x.outgoing()
        reply = stored_reply(path, out, "x", "acme-x", test_x.TEXT)
        config = test_x.writer(fake).config
        killed_mid_send(path, config, fake, TWEETS_PATH)
        result, sent = survivor(path, config, reply.id)
        assert (result.found, result.sent) == (1, 0)
        assert len(writes(fake, TWEETS_PATH)) == 1
        (made,) = fake.created
        assert made.referenced_tweets == [{"type": "replied_to", "id": test_x.PARENT}]
        assert sent.status == "sent" and sent.remote_id == made.id
        assert sent.remote_url == f"https://x.com/{USERNAME}/status/{made.id}"


def test_a_google_play_reply_survives_a_sigkill_mid_send_as_one_reply(tmp_path: Path) -> None:
    """Play keeps one developer reply per review: the next worker reads the review, sees this
    reply's text, and records it without posting it again."""
    path = tmp_path / "db.sqlite"
    app, review = test_googleplay.APP, test_googleplay.REVIEW
    write = f"/androidpublisher/v3/applications/{app}/reviews/{quote(review, safe='')}:reply"
    with FakeGooglePlay() as fake:
        fake.add_reviews(app, [play_review(review, test_googleplay.NOW, score=1,
                                           text="Crashes at start", user="Ann")])
        key = fake.service_account()
        out = test_googleplay.collected(fake)
        reply = stored_reply(path, out, "googleplay", "acme-play", test_googleplay.TEXT,
                             "Crashes at start")
        config = GooglePlayAccountConfig(
            type="googleplay", name="acme-play", service_account_json=json.dumps(key),
            base_url=fake.base_url, token_url=key["token_uri"])
        killed_mid_send(path, config, fake, write)
        result, sent = survivor(path, config, reply.id)
        assert (result.found, result.sent) == (1, 0)
        assert len(writes(fake, write)) == 1 == len(fake.replies_posted())
        comments = (fake.api_review(app, review) or {})["comments"]
        developer = [c["developerComment"]["text"] for c in comments if "developerComment" in c]
        assert developer == [test_googleplay.TEXT]
        assert sent.status == "sent" and (sent.remote_id, sent.remote_url) == (review, out.url)


def test_an_app_store_reply_survives_a_sigkill_mid_send_as_one_response(tmp_path: Path) -> None:
    """Apple keeps one response per review, and gives its id only in the answer that was lost:
    the next worker finds the review in App Store Connect again (the feed's id is not Apple's),
    reads its response, sees this reply's text, records that id."""
    path = tmp_path / "db.sqlite"
    app, review = test_appstore.APP, test_appstore.REVIEW
    with FakeAppStore() as fake:
        fake.add_reviews("us", app, [feed_review(review, test_appstore.NOW, rating=1,
                                                 title="Crashes", content="Crashes at start",
                                                 author="ann")])
        out = test_appstore.collected(fake)
        reply = stored_reply(path, out, "appstore", "acme-ios", test_appstore.TEXT)
        issuer, key_id, pem = fake.api_key()
        config = AppStoreAccountConfig(type="appstore", name="acme-ios", issuer_id=issuer,
                                       key_id=key_id, private_key=pem, base_url=fake.base_url)
        killed_mid_send(path, config, fake, RESPONSES)
        result, sent = survivor(path, config, reply.id)
        assert (result.found, result.sent) == (1, 0)
        assert len(writes(fake, RESPONSES)) == 1 == len(fake.responses_posted())
        made = fake.response_of(fake.asc_id(review))  # the feed's id is not Apple's
        assert made is not None and made["attributes"]["responseBody"] == test_appstore.TEXT
        assert sent.status == "sent"
        assert (sent.remote_id, sent.remote_url) == (made["id"], out.url)
