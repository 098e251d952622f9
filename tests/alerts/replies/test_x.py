"""The X reply writer with the real tweepy (OAuth 1.0a user context) against the fake X API:
the reply posted where the reference says, found again among the account's posts after a lost
answer (one post, however often asked), never confused with another reply to the same post,
X's duplicate refusal taken as sent only when the post is really there, and each refusal
mapped to retry or park."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.replies.base import Outgoing
from alerts.replies.x import XAccountConfig, XWriter, same_text, weighted_length
from listener.core.errors import DeliveryError, RateLimited
from tests.alerts.replies.logs import debug_everything
from tests.fakes.base import HANG_UP, Fault
from tests.fakes.x_api import (
    ACCESS_TOKEN,
    ACCESS_TOKEN_SECRET,
    CONSUMER_KEY,
    CONSUMER_SECRET,
    TWEETS_PATH,
    USER_ID,
    USERNAME,
    FakeXApi,
)

PARENT = "1790000000000000001"
TEXT = "Sorry about that! Status & updates: https://status.acme.example/incidents/42"
TIMELINE = f"/2/users/{USER_ID}/tweets"


@pytest.fixture
def x() -> Iterator[FakeXApi]:
    with FakeXApi() as server:
        server.add_user("11", "ann", followers=120)
        server.add_tweet(PARENT, "@acme your cloud ate my files", author_id="11")
        yield server


def writer(x: FakeXApi, **settings: Any) -> XWriter:
    values: dict[str, Any] = {
        "type": "x", "name": "acme-x", "consumer_key": CONSUMER_KEY,
        "consumer_secret": CONSUMER_SECRET, "access_token": ACCESS_TOKEN,
        "access_token_secret": ACCESS_TOKEN_SECRET, "username": USERNAME,
        "base_url": x.base_url, **settings}
    return XWriter(XAccountConfig(**values), timeout=2.0)


def outgoing(reply_id: str = "r1", text: str = TEXT, post: str = PARENT) -> Outgoing:
    """What the outbox hands the writer for a post the X source stored."""
    raw = {"id": post, "text": "@acme your cloud ate my files", "author_id": "11",
           "conversation_id": post}
    return Outgoing(reply_id, text, post, f"https://x.com/ann/status/{post}", "ann", post, raw)


def once(method: str, path: str, fault: Fault) -> Callable[[str, str], Fault | None]:
    fired: list[bool] = []

    def faults(m: str, p: str) -> Fault | None:
        if (m, p) == (method, path) and not fired:
            fired.append(True)
            return fault
        return None
    return faults


def creates(x: FakeXApi) -> list[Any]:
    return [r for r in x.requests if (r.method, r.path) == ("POST", TWEETS_PATH)]


# -- sending ----------------------------------------------------------------------------------


def test_a_reply_is_a_post_answering_the_customer(x: FakeXApi) -> None:
    sent = writer(x).send(outgoing())
    (create,) = creates(x)
    assert create.json == {"text": TEXT, "reply": {"in_reply_to_tweet_id": PARENT}}
    auth = create.headers["authorization"]
    assert auth.startswith("OAuth ") and f'oauth_token="{ACCESS_TOKEN}"' in auth
    assert CONSUMER_SECRET not in auth and ACCESS_TOKEN_SECRET not in auth  # signed, not sent
    (made,) = x.created
    assert sent.remote_id == made.id and int(made.id) > int(PARENT)
    assert sent.url == f"https://x.com/{USERNAME}/status/{made.id}"
    assert made.text.startswith("@ann ")  # X names the customer by itself
    assert writer(x, username=None).find(outgoing()) == (
        type(sent)(made.id, f"https://x.com/i/web/status/{made.id}"))


# -- exactly once -----------------------------------------------------------------------------


def test_a_lost_answer_is_found_and_never_posted_twice(x: FakeXApi) -> None:
    out = outgoing()
    account = writer(x)
    x.faults = once("POST", TWEETS_PATH, Fault(HANG_UP, acted=True))
    with pytest.raises(DeliveryError) as lost:
        account.send(out)
    assert lost.value.retryable
    (made,) = x.created
    for asking in (account, writer(x)):
        found = asking.find(out)
        assert found is not None and found.remote_id == made.id
    assert len(creates(x)) == 1 and len(x.created) == 1
    (look, *_) = [r for r in x.requests if r.path == TIMELINE]
    assert look.query["since_id"] == PARENT and "referenced_tweets" in look.query["tweet.fields"]


def test_a_duplicate_refusal_counts_as_sent_only_when_found(x: FakeXApi) -> None:
    out = outgoing()
    first = writer(x).send(out)
    again = writer(x).send(out)  # a race past find(): X refuses the identical text
    assert again.remote_id == first.remote_id and len(x.created) == 1
    assert len(creates(x)) == 2
    # the same text already posted elsewhere (not a reply to this post): not "sent"
    x.add_tweet("1790000000000000002", "another customer", author_id="11")
    with pytest.raises(DeliveryError) as refused:
        writer(x).send(outgoing("r2", post="1790000000000000002"))
    assert refused.value.retryable is True and "duplicate" in str(refused.value)
    assert len(x.created) == 1


def test_find_before_any_attempt_got_there_is_none(x: FakeXApi) -> None:
    out = outgoing()
    account = writer(x)
    x.faults = once("POST", TWEETS_PATH, Fault(HANG_UP))
    with pytest.raises(DeliveryError):
        account.send(out)
    assert account.find(out) is None
    account.send(out)
    assert len(x.created) == 1


def test_find_does_not_take_another_reply_to_the_same_post(x: FakeXApi) -> None:
    account = writer(x)
    first = outgoing("earlier", text="We're looking into it.")
    earlier = account.send(first)
    later = outgoing("later", text="Fixed now, sorry for the trouble!")
    assert account.find(later) is None  # the account's other reply to this post is not it
    sent = account.send(later)
    assert sent.remote_id != earlier.remote_id
    assert account.find(later) == sent and account.find(first) == earlier
    assert len(x.created) == 2


def test_find_reads_further_pages(x: FakeXApi) -> None:
    x.page_size = 10
    account = writer(x)
    target = account.send(outgoing())
    for number in range(25):  # the account kept posting
        x.add_tweet(str(int(target.remote_id) + 1 + number), f"news {number}", author_id=USER_ID)
    assert account.find(outgoing()) == target
    assert len([r for r in x.requests if r.path == TIMELINE]) == 3


def test_text_is_compared_as_x_shows_it() -> None:
    assert same_text("@ann @bob Fixed &amp; done: https://t.co/AbC") == \
        same_text("Fixed & done: https://status.acme.example/x")
    assert same_text("Fixed") != same_text("Fixed!")


# -- refusals -----------------------------------------------------------------------------


def test_tokens_without_write_permission_are_parked(x: FakeXApi) -> None:
    x.write_access = False
    with pytest.raises(DeliveryError) as refused:
        writer(x).send(outgoing())
    assert refused.value.retryable is False and refused.value.status == 403
    assert "Read and write" in str(refused.value) and "tweet.write" in str(refused.value)


def test_429_waits_for_the_reset(x: FakeXApi) -> None:
    reset = int(time.time()) + 600
    x.enqueue(429, {"title": "Too Many Requests", "detail": "Too Many Requests",
                    "type": "about:blank", "status": 429},
              headers={"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)})
    with pytest.raises(RateLimited) as limited:
        writer(x).send(outgoing())
    assert limited.value.retry_after is not None and 590 <= limited.value.retry_after <= 601
    day = int(time.time()) + 7200  # the 24-hour budget per user is the one spent
    x.enqueue(429, {"title": "Too Many Requests"}, headers={
        "x-rate-limit-remaining": "99", "x-rate-limit-reset": str(int(time.time()) + 60),
        "x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": str(day)})
    with pytest.raises(RateLimited) as daily:
        writer(x).send(outgoing())
    assert daily.value.retry_after is not None and daily.value.retry_after > 7000
    assert x.created == []


def test_a_deleted_post_is_parked(x: FakeXApi) -> None:
    x.delete(PARENT)
    with pytest.raises(DeliveryError) as gone:
        writer(x).send(outgoing())
    assert gone.value.retryable is False and gone.value.status == 404
    assert "deleted" in str(gone.value)


def test_a_post_closed_to_replies_is_parked(x: FakeXApi) -> None:
    x.add_tweet("1790000000000000005", "acme, no replies please", author_id="11",
                reply_settings="mentionedUsers")
    with pytest.raises(DeliveryError) as closed:
        writer(x).send(outgoing(post="1790000000000000005"))
    assert closed.value.retryable is False and "limits who may reply" in str(closed.value)


def test_too_long_is_parked_before_any_request(x: FakeXApi) -> None:
    assert weighted_length("a" * 280) == 280
    assert weighted_length("日本" * 70) == 280  # two each
    assert weighted_length("see https://example.com/" + "x" * 500) == 4 + 23
    assert weighted_length("\U0001F468\u200d\U0001F469\u200d\U0001F467 ok") == 5
    assert weighted_length("\U0001F1E9\U0001F1EA") == 2
    with pytest.raises(DeliveryError) as long:
        writer(x).send(outgoing(text="日本" * 141))
    assert long.value.retryable is False and "at most 280" in str(long.value)
    assert x.requests == []
    writer(x).send(outgoing(text="é" * 280))


def test_bad_keys_are_parked_and_server_errors_retried(x: FakeXApi) -> None:
    with pytest.raises(DeliveryError) as refused:
        writer(x, access_token=f"{USER_ID}-someOtherToken").send(outgoing())
    assert refused.value.retryable is False and refused.value.status == 401
    x.enqueue(503, {"title": "Service Unavailable", "status": 503})
    with pytest.raises(DeliveryError) as busy:
        writer(x).send(outgoing())
    assert busy.value.retryable is True and x.created == []


def test_secrets_never_reach_the_logs(x: FakeXApi, caplog: pytest.LogCaptureFixture) -> None:
    debug_everything(caplog)
    for name in ("tweepy", "oauthlib", "requests_oauthlib", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)  # the CLI tests hold some at WARNING
    account = writer(x)
    errors: list[Exception] = []
    x.enqueue(500, {"title": "Internal Error"})
    x.enqueue(429, {"title": "Too Many Requests"}, headers={"x-rate-limit-reset": "garbled"})
    for _ in range(3):
        try:
            account.send(outgoing())
        except (DeliveryError, RateLimited) as exc:
            errors.append(exc)
    assert account.find(outgoing()) is not None
    account.close()
    assert len(errors) == 2 and "Making API request" in caplog.text  # tweepy logged: live
    assert "oauth_token" in caplog.text  # oauthlib logged its signature base: live too
    visible = [caplog.text, repr(account), repr(account.config), *(f"{e!r} {e}" for e in errors)]
    for text in visible:
        for secret in (CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, ACCESS_TOKEN_SECRET):
            assert secret not in text


def test_config_keeps_the_keys_out_of_errors() -> None:
    with pytest.raises(ValidationError) as bad:
        XAccountConfig(type="x", name="x", consumer_key="key-secret-1",
                       consumer_secret="secret-secret-2", access_token="1-token-secret-3",
                       access_token_secret="secret-secret-4", base_url="http://api.x.com")
    for secret in ("key-secret-1", "secret-secret-2", "1-token-secret-3", "secret-secret-4"):
        assert secret not in str(bad.value)
