"""The Mastodon reply writer with the real Mastodon.py against the fake instance: the reply
posted where the documents say, found again after a lost answer (one status, however often
asked), never confused with another reply, and each refusal mapped to retry or park."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerts.replies.base import Outgoing
from alerts.replies.mastodon import MastodonAccountConfig, MastodonWriter
from listener.core.errors import DeliveryError, RateLimited
from tests.alerts.replies.logs import debug_everything
from tests.fakes.base import HANG_UP, Fault
from tests.fakes.mastodon_api import HOST, FakeMastodon

TOKEN = "mastodon-write-token-secret"


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with FakeMastodon(access_token=TOKEN) as server:
        yield server


def writer(fake: FakeMastodon) -> MastodonWriter:
    config = MastodonAccountConfig(type="mastodon", name="acme-mastodon", base_url=fake.base_url,
                                   access_token=TOKEN)
    return MastodonWriter(config, timeout=5.0)


def outgoing(fake: FakeMastodon, text: str = "Sorry about that! DM us your order number.",
             reply_id: str = "r1") -> Outgoing:
    status = fake.add_status("<p>my order never arrived @acme</p>", acct="ann")
    return Outgoing(reply_id, text, status["uri"], status["url"], "ann", status["id"], {})


def test_a_reply_mentions_the_customer_and_answers_their_status(fake: FakeMastodon) -> None:
    out = outgoing(fake)
    sent = writer(fake).send(out)
    (posted,) = fake.posted()
    assert (sent.remote_id, sent.url) == (posted["id"], posted["url"])
    parent = next(s for s in fake.statuses if s["uri"] == out.platform_id)
    assert posted["in_reply_to_id"] == parent["id"]
    (create,) = fake.requests_to("/api/v1/statuses")
    assert create.headers["idempotency-key"] == "r1"
    assert create.headers["authorization"] == f"Bearer {TOKEN}"
    fields = create.json if isinstance(create.json, dict) else create.form
    # the fake's status URIs name its instance's host, not 127.0.0.1: the full handle
    assert fields["status"] == f"@ann@{HOST} Sorry about that! DM us your order number."


def test_a_customer_on_another_instance_is_mentioned_with_their_host(fake: FakeMastodon) -> None:
    status = fake.add_status("<p>down again</p>", acct="bob@elsewhere.example")
    out = Outgoing("r2", "Looking into it", status["uri"], None, "bob@elsewhere.example", None,
                   {})
    writer(fake).send(out)
    assert fake.posted()[0]["content"].startswith("@bob@elsewhere.example ")
    local = Outgoing("r3", "hi", f"https://{HOST}/users/cy/statuses/1", None, "cy", None, {})
    assert writer(fake)._handle(local) == f"cy@{HOST}"  # the fake's URIs name another host


def test_a_lost_answer_is_found_and_never_posted_twice(fake: FakeMastodon) -> None:
    """The instance made the status but the answer never came back: the next attempt's find()
    returns it, so the sender records it instead of posting again."""
    out = outgoing(fake)
    fake.faults = lambda method, path: (Fault(HANG_UP, acted=True)
                                        if method == "POST" else None)
    with pytest.raises(DeliveryError) as lost:
        writer(fake).send(out)
    assert lost.value.retryable
    fake.faults = None
    found = writer(fake).find(out)
    (posted,) = fake.posted()
    assert found is not None and found.remote_id == posted["id"]
    assert len(fake.requests_to("/api/v1/statuses")) == 1


def test_find_tells_this_reply_from_another_to_the_same_post(fake: FakeMastodon) -> None:
    out = outgoing(fake)
    first = writer(fake).send(out)
    later = Outgoing("r9", "Refund issued, anything else?", out.platform_id, out.url, "ann",
                     out.thread, {})
    assert writer(fake).find(later) is None
    assert writer(fake).find(out) == first


def test_the_idempotency_key_makes_a_repeat_return_the_same_status(fake: FakeMastodon) -> None:
    out = outgoing(fake)
    assert writer(fake).send(out) == writer(fake).send(out)
    assert len(fake.posted()) == 1


@pytest.mark.parametrize(("scopes", "status"), [({"read"}, 403)])
def test_a_token_without_the_write_scope_parks_the_reply(
    fake: FakeMastodon, scopes: set[str], status: int
) -> None:
    fake.scopes = scopes
    with pytest.raises(DeliveryError) as refused:
        writer(fake).send(outgoing(fake))
    assert not refused.value.retryable and "write:statuses" in str(refused.value)
    assert fake.posted() == []


def test_rate_limits_wait_for_the_reset(fake: FakeMastodon) -> None:
    fake.enqueue(429, {"error": "Too many requests"}, path="/api/v1/statuses",
                 headers={"X-RateLimit-Reset": "2099-01-01T00:00:00.000Z"})
    with pytest.raises(RateLimited) as limited:
        writer(fake).send(outgoing(fake))
    assert limited.value.retry_after and limited.value.retry_after > 3600


def test_a_deleted_post_or_a_too_long_reply_is_not_retried(fake: FakeMastodon) -> None:
    gone = Outgoing("r4", "hello", f"https://{HOST}/users/x/statuses/404", None, "x", None, {})
    with pytest.raises(DeliveryError, match="cannot find the post") as missing:
        writer(fake).send(gone)
    assert not missing.value.retryable
    with pytest.raises(DeliveryError, match="Mastodon allows 500") as long:
        writer(fake).send(outgoing(fake, text="x" * 495))
    assert not long.value.retryable and fake.requests_to("/api/v1/statuses") == []


def test_server_errors_are_retried(fake: FakeMastodon) -> None:
    fake.enqueue(503, {"error": "down"}, path="/api/v1/statuses")
    with pytest.raises(DeliveryError) as failed:
        writer(fake).send(outgoing(fake))
    assert failed.value.retryable


def test_the_token_never_reaches_the_logs(fake: FakeMastodon,
                                          caplog: pytest.LogCaptureFixture) -> None:
    debug_everything(caplog)
    out = outgoing(fake)
    writer(fake).send(out)
    writer(fake).find(out)
    assert TOKEN not in caplog.text
