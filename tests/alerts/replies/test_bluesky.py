"""The Bluesky reply writer with the real atproto client against the fake PDS/AppView: the
reply record created where the lexicon says (under a record key of our choosing), found again
after a lost answer (one record, however often asked), never confused with another reply to the
same post, and each refusal mapped to retry or park."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.replies.base import Outgoing
from alerts.replies.bluesky import (
    BlueskyAccountConfig,
    BlueskyWriter,
    graphemes,
    record_key,
    tid,
    tid_micros,
)
from listener.core.errors import DeliveryError, RateLimited
from tests.alerts.replies.logs import debug_everything
from tests.fakes.base import HANG_UP, Fault
from tests.fakes.bluesky_api import (
    CREATE_RECORD,
    CREATE_SESSION,
    GET_POSTS,
    GET_RECORD,
    FakeBluesky,
)

HANDLE, PASSWORD = "brand.bsky.social", "app-pass-wxyz-1234"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TEXT = "Sorry about that! We are on it: https://status.acme.example"
_TID = r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$"


@pytest.fixture
def fake() -> Iterator[FakeBluesky]:
    with FakeBluesky(handle=HANDLE, password=PASSWORD) as server:
        yield server


def writer(fake: FakeBluesky, **settings: Any) -> BlueskyWriter:
    values: dict[str, Any] = {"type": "bluesky", "name": "acme-sky", "handle": HANDLE,
                              "app_password": PASSWORD, "login_url": fake.base_url, **settings}
    return BlueskyWriter(BlueskyAccountConfig(**values), timeout=2.0)


def outgoing(view: dict[str, Any], reply_id: str = "r1", text: str = TEXT) -> Outgoing:
    """What the outbox hands the writer for a post the Bluesky source stored."""
    raw = {"uri": view["uri"], "cid": view["cid"], "author": dict(view["author"]),
           "record": {k: view["record"].get(k) for k in ("text", "createdAt", "langs")},
           "indexedAt": view["indexedAt"]}
    reply = view["record"].get("reply")
    thread = reply["root"]["uri"] if reply else view["uri"]
    return Outgoing(reply_id, text, view["uri"], None, view["author"]["handle"], thread, raw)


def customer_post(fake: FakeBluesky, text: str = "acme cloud ate my files") -> dict[str, Any]:
    return fake.add_post(text, created_at=NOW - timedelta(minutes=5))


def once(method: str, path: str, fault: Fault) -> Callable[[str, str], Fault | None]:
    """A fault for the first request to ``path`` only."""
    fired: list[bool] = []

    def faults(m: str, p: str) -> Fault | None:
        if (m, p) == (method, path) and not fired:
            fired.append(True)
            return fault
        return None
    return faults


# -- sending ----------------------------------------------------------------------------------


def test_a_reply_is_a_post_record_answering_the_customer(fake: FakeBluesky) -> None:
    view = customer_post(fake)
    out = outgoing(view)
    sent = writer(fake).send(out)
    (create,) = fake.requests_to(CREATE_RECORD)
    body = create.json
    assert create.headers["authorization"].startswith("Bearer ")
    assert (body["repo"], body["collection"]) == (fake.did, "app.bsky.feed.post")
    assert body["rkey"] == record_key(out)
    record = body["record"]
    assert record["$type"] == "app.bsky.feed.post" and record["text"] == TEXT
    for part in ("root", "parent"):  # a post that is no reply is the root of its thread
        assert {k: record["reply"][part][k] for k in ("uri", "cid")} == {
            "uri": view["uri"], "cid": view["cid"]}
    (link,) = record["facets"]  # the link is clickable
    assert link["features"][0]["uri"] == "https://status.acme.example"
    assert sent.remote_id == f"at://{fake.did}/app.bsky.feed.post/{body['rkey']}"
    assert sent.url == f"https://bsky.app/profile/{HANDLE}/post/{body['rkey']}"
    assert fake.records[sent.remote_id]["value"]["text"] == TEXT


def test_a_reply_to_a_reply_names_the_root_of_the_thread(fake: FakeBluesky) -> None:
    root = customer_post(fake, "acme cloud is down")
    middle = fake.add_post("still down", created_at=NOW - timedelta(minutes=1))
    root_ref = {"uri": root["uri"], "cid": root["cid"]}
    middle["record"]["reply"] = {"root": root_ref, "parent": root_ref}
    writer(fake).send(outgoing(middle))
    reply = fake.requests_to(CREATE_RECORD)[0].json["record"]["reply"]
    assert (reply["root"]["uri"], reply["root"]["cid"]) == (root["uri"], root["cid"])
    assert (reply["parent"]["uri"], reply["parent"]["cid"]) == (middle["uri"], middle["cid"])


def test_the_session_is_kept_across_replies(fake: FakeBluesky) -> None:
    sky = writer(fake)
    for number in range(3):
        sky.send(outgoing(customer_post(fake), reply_id=f"r{number}"))
    assert len(fake.requests_to(CREATE_SESSION)) == 1
    assert len(fake.records) == 3


# -- exactly once -----------------------------------------------------------------------------


def test_a_lost_answer_is_found_and_never_posted_twice(fake: FakeBluesky) -> None:
    out = outgoing(customer_post(fake))
    sky = writer(fake)
    fake.faults = once("POST", CREATE_RECORD, Fault(HANG_UP, acted=True))
    with pytest.raises(DeliveryError) as lost:
        sky.send(out)
    assert lost.value.retryable
    (created,) = fake.records.values()  # it got there; we could not know
    # the next attempt (the outbox asks find() first), in this writer or a fresh one
    for asking in (sky, writer(fake)):
        found = asking.find(out)
        assert found is not None and found.remote_id == created["uri"]
        assert found.url is not None and found.url.endswith(created["uri"].rsplit("/", 1)[1])
    assert len(fake.requests_to(CREATE_RECORD)) == 1 and len(fake.records) == 1


def test_a_second_create_of_the_same_reply_finds_the_first(fake: FakeBluesky) -> None:
    """Two workers racing past find(): the PDS refuses the taken key (a 500 today) and the
    writer recognises the record there as this reply."""
    out = outgoing(customer_post(fake))
    first = writer(fake).send(out)
    again = writer(fake).send(out)
    assert again.remote_id == first.remote_id
    assert len(fake.requests_to(CREATE_RECORD)) == 2 and len(fake.records) == 1


def test_find_before_any_attempt_got_there_is_none(fake: FakeBluesky) -> None:
    out = outgoing(customer_post(fake))
    fake.faults = once("POST", CREATE_RECORD, Fault(HANG_UP))  # lost before the PDS saw it
    sky = writer(fake)
    with pytest.raises(DeliveryError):
        sky.send(out)
    assert sky.find(out) is None
    assert sky.send(out).remote_id.endswith(record_key(out))
    assert len(fake.records) == 1


def test_find_does_not_take_another_reply_to_the_same_post(fake: FakeBluesky) -> None:
    view = customer_post(fake)
    sky = writer(fake)
    earlier = sky.send(outgoing(view, reply_id="r-earlier"))
    later = outgoing(view, reply_id="r-later")  # same account, same post, same text
    assert sky.find(later) is None
    assert sky.send(later).remote_id != earlier.remote_id
    assert len(fake.records) == 2


def test_record_keys_are_tids_stable_per_reply_and_after_the_post() -> None:
    parent_key = tid(int(NOW.timestamp() * 1_000_000), 7)
    uri = f"at://did:plc:someone/app.bsky.feed.post/{parent_key}"
    out = Outgoing("f" * 32, "hi", uri, None, "ann", uri, {})
    key = record_key(out)
    assert key == record_key(out)
    assert re.match(_TID, key) and key > parent_key  # sorts after the post it answers
    micros = tid_micros(key)
    assert micros is not None and 0 < micros - int(NOW.timestamp() * 1_000_000) < 1_100_000
    others = {record_key(Outgoing(f"{n:032x}", "hi", uri, None, None, None, {}))
              for n in range(200)}
    assert len(others) == 200
    # a parent whose key is not a TID: its indexedAt dates the key
    plain = Outgoing("r", "hi", "at://did:plc:x/app.bsky.feed.post/self", None, None, None,
                     {"indexedAt": "2026-11-20T12:00:00.000Z"})
    plain_micros = tid_micros(record_key(plain))
    assert plain_micros is not None and plain_micros // 1_000_000 == int(NOW.timestamp())


# -- refusals -----------------------------------------------------------------------------


def test_a_session_without_the_write_permission_is_parked(fake: FakeBluesky) -> None:
    fake.write_scope = False
    with pytest.raises(DeliveryError) as refused:
        writer(fake).send(outgoing(customer_post(fake)))
    assert refused.value.retryable is False and refused.value.status == 403
    assert "repo:app.bsky.feed.post?action=create" in str(refused.value)
    assert fake.records == {}


def test_429_waits_for_the_reset(fake: FakeBluesky) -> None:
    out = outgoing(customer_post(fake))
    reset = int(time.time()) + 120
    fake.enqueue(429, {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
                 headers={"ratelimit-remaining": "0", "ratelimit-reset": str(reset)},
                 path=CREATE_RECORD)
    with pytest.raises(RateLimited) as limited:
        writer(fake).send(out)
    assert limited.value.retry_after is not None and 110 <= limited.value.retry_after <= 121
    fake.enqueue(429, {"error": "RateLimitExceeded"}, headers={"retry-after": "7"},
                 path=GET_RECORD)
    with pytest.raises(RateLimited) as again:
        writer(fake).find(out)
    assert again.value.retry_after == 7


def test_a_deleted_post_is_parked(fake: FakeBluesky) -> None:
    view = customer_post(fake)
    fake.delete(view["uri"])
    with pytest.raises(DeliveryError) as gone:
        writer(fake).send(outgoing(view))
    assert gone.value.retryable is False and "deleted" in str(gone.value)
    assert fake.requests_to(GET_POSTS) and not fake.requests_to(CREATE_RECORD)


def test_a_post_closed_to_replies_is_parked(fake: FakeBluesky) -> None:
    view = customer_post(fake)
    view["viewer"] = {"replyDisabled": True}
    with pytest.raises(DeliveryError) as closed:
        writer(fake).send(outgoing(view))
    assert closed.value.retryable is False and "limits who may reply" in str(closed.value)


def test_too_long_is_parked_before_any_request(fake: FakeBluesky) -> None:
    out = outgoing(customer_post(fake), text="x" * 301)
    requests_before = len(fake.requests)
    with pytest.raises(DeliveryError) as long:
        writer(fake).send(out)
    assert long.value.retryable is False and "at most 300" in str(long.value)
    assert len(fake.requests) == requests_before
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # one grapheme of 18 bytes
    assert graphemes(family * 3 + "e\u0301" + "\U0001F1E9\U0001F1EA") == 5
    writer(fake).send(outgoing(customer_post(fake), reply_id="r2", text="é" * 300))


def test_a_wrong_app_password_is_parked(fake: FakeBluesky) -> None:
    with pytest.raises(DeliveryError) as refused:
        writer(fake, app_password="wrong-password").send(outgoing(customer_post(fake)))
    assert refused.value.retryable is False and "app_password" in str(refused.value)


def test_an_invalid_record_is_parked_and_a_server_error_retried(fake: FakeBluesky) -> None:
    out = outgoing(customer_post(fake))
    fake.enqueue(400, {"error": "InvalidRequest", "message": "Invalid app.bsky.feed.post record"},
                 path=CREATE_RECORD)
    with pytest.raises(DeliveryError) as invalid:
        writer(fake).send(out)
    assert invalid.value.retryable is False
    fake.enqueue(502, {"error": "UpstreamFailure", "message": "bad gateway"}, path=CREATE_RECORD)
    with pytest.raises(DeliveryError) as flaky:
        writer(fake).send(out)
    assert flaky.value.retryable is True
    assert fake.records == {}


def test_an_expired_session_logs_in_again(fake: FakeBluesky) -> None:
    sky = writer(fake)
    view = customer_post(fake)
    sky.send(outgoing(view, reply_id="a"))
    fake.enqueue(400, {"error": "ExpiredToken", "message": "Token has expired"}, path=GET_POSTS)
    with pytest.raises(DeliveryError) as expired:
        sky.send(outgoing(view, reply_id="b"))
    assert expired.value.retryable is True
    sky.send(outgoing(view, reply_id="b"))
    assert len(fake.requests_to(CREATE_SESSION)) == 2 and len(fake.records) == 2


def test_secrets_never_reach_the_logs(fake: FakeBluesky,
                                      caplog: pytest.LogCaptureFixture) -> None:
    debug_everything(caplog)
    sky = writer(fake)
    out = outgoing(customer_post(fake))
    errors: list[Exception] = []
    fake.enqueue(500, {"error": "InternalServerError"}, path=CREATE_RECORD)
    fake.enqueue(429, {"error": "RateLimitExceeded"}, path=CREATE_RECORD)
    for _ in range(3):
        try:
            sky.send(out)
        except (DeliveryError, RateLimited) as exc:
            errors.append(exc)
    sky.close()
    assert len(errors) == 2 and "HTTP Request" in caplog.text  # httpx did log: the check is live
    session = fake.requests_to(CREATE_RECORD)[0].headers["authorization"].split()[1]
    visible = [caplog.text, repr(sky), repr(sky.config), *(f"{e!r} {e}" for e in errors)]
    for text in visible:
        assert PASSWORD not in text and session not in text


def test_config_keeps_the_password_out_of_errors() -> None:
    with pytest.raises(ValidationError) as bad:
        BlueskyAccountConfig(type="bluesky", name="s", handle=HANDLE,
                             app_password="secret-app-password", login_url="http://bsky.social")
    assert "secret-app-password" not in str(bad.value) and "https" in str(bad.value)
