"""The Reddit reply writer with the real praw/prawcore against the fake Reddit: the comment
posted where the API reference says, found again among the account's comments after a lost
answer (one comment, however often asked), never confused with another reply to the same post,
and each refusal mapped to retry or park."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.replies.base import Outgoing
from alerts.replies.reddit import RedditAccountConfig, RedditWriter
from listener.core.errors import DeliveryError, RateLimited
from tests.alerts.replies.logs import debug_everything
from tests.fakes.base import HANG_UP, Fault
from tests.fakes.reddit_api import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    REFRESH_TOKEN,
    TOKEN_PATH,
    USER_TOKEN,
    USERNAME,
    FakeReddit,
    comment,
    ratelimit_error,
    submission,
)

COMMENT = "/api/comment/"
MINE = f"/user/{USERNAME}/comments/"
TEXT = "Sorry about that! Could you DM us your order number? We'll sort it out & reply."


@pytest.fixture
def reddit() -> Iterator[FakeReddit]:
    with FakeReddit() as server:
        yield server


def writer(reddit: FakeReddit, **settings: Any) -> RedditWriter:
    values: dict[str, Any] = {
        "type": "reddit", "name": "acme-reddit", "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET, "username": USERNAME, "base_url": reddit.base_url,
        "oauth_url": reddit.base_url, "user_agent": "test:listener-replies:0.1 (by /u/acme)",
        **settings}
    if "refresh_token" not in values:
        values.setdefault("password", PASSWORD)
    return RedditWriter(RedditAccountConfig(**values), timeout=2.0)


def customer_post(reddit: FakeReddit, id36: str = "abc1", age: float = 300,
                  **extra: Any) -> dict[str, Any]:
    thing = submission(id36, "acme", "acme cloud ate my files", created_utc=time.time() - age,
                       selftext="third time this week", **extra)
    reddit.add(thing)
    return thing


def outgoing(thing: dict[str, Any], reply_id: str = "r1", text: str = TEXT) -> Outgoing:
    """What the outbox hands the writer for an item the Reddit source stored."""
    data = thing["data"]
    raw = {"kind": thing["kind"], "name": data["name"], "created_utc": data["created_utc"],
           "subreddit": data["subreddit"], "permalink": data["permalink"]}
    link = data["name"] if thing["kind"] == "t3" else data["link_id"]
    return Outgoing(reply_id, text, data["name"], f"https://www.reddit.com{data['permalink']}",
                    data["author"], link, raw)


def once(method: str, path: str, fault: Fault) -> Callable[[str, str], Fault | None]:
    fired: list[bool] = []

    def faults(m: str, p: str) -> Fault | None:
        if (m, p.rstrip("/")) == (method, path.rstrip("/")) and not fired:
            fired.append(True)
            return fault
        return None
    return faults


# -- sending ----------------------------------------------------------------------------------


def test_a_reply_is_a_comment_under_the_customer_post(reddit: FakeReddit) -> None:
    post = customer_post(reddit)
    sent = writer(reddit).send(outgoing(post))
    (create,) = reddit.requests_to(COMMENT)
    assert create.method == "POST" and create.headers["authorization"] == f"bearer {USER_TOKEN}"
    assert create.form == {"api_type": "json", "text": TEXT, "thing_id": "t3_abc1"}
    (made,) = reddit.comments
    assert sent.remote_id == made["data"]["name"] and sent.remote_id.startswith("t1_")
    assert sent.url == f"https://www.reddit.com{made['data']['permalink']}"
    token = reddit.requests_to(TOKEN_PATH)[0].form
    assert (token["grant_type"], token["username"]) == ("password", USERNAME)


def test_a_reply_to_a_comment_answers_that_comment(reddit: FakeReddit) -> None:
    post = customer_post(reddit)
    theirs = comment("c0mm3nt", "acme", "same here", created_utc=time.time() - 60,
                     link_id=post["data"]["name"])
    reddit.add(theirs)
    writer(reddit, refresh_token=REFRESH_TOKEN).send(outgoing(theirs))
    assert reddit.requests_to(COMMENT)[0].form["thing_id"] == "t1_c0mm3nt"
    assert reddit.comments[0]["data"]["link_id"] == "t3_abc1"
    assert reddit.requests_to(TOKEN_PATH)[0].form["grant_type"] == "refresh_token"


# -- exactly once -----------------------------------------------------------------------------


def test_a_lost_answer_is_found_and_never_posted_twice(reddit: FakeReddit) -> None:
    out = outgoing(customer_post(reddit))
    account = writer(reddit)
    reddit.faults = once("POST", COMMENT, Fault(HANG_UP, acted=True))
    with pytest.raises(DeliveryError) as lost:
        account.send(out)
    assert lost.value.retryable  # and prawcore did not post it again by itself
    (made,) = reddit.comments
    for asking in (account, writer(reddit)):
        found = asking.find(out)
        assert found is not None and found.remote_id == made["data"]["name"]
        assert found.url == f"https://www.reddit.com{made['data']['permalink']}"
    assert len(reddit.requests_to(COMMENT)) == 1 and len(reddit.comments) == 1
    assert reddit.requests_to(MINE)[0].query["sort"] == "new"


def test_find_before_any_attempt_got_there_is_none(reddit: FakeReddit) -> None:
    out = outgoing(customer_post(reddit))
    account = writer(reddit)
    reddit.faults = once("POST", COMMENT, Fault(HANG_UP))  # lost before Reddit saw it
    with pytest.raises(DeliveryError):
        account.send(out)
    assert account.find(out) is None
    account.send(out)
    assert len(reddit.comments) == 1


def test_find_does_not_take_another_reply_to_the_same_post(reddit: FakeReddit) -> None:
    post = customer_post(reddit)
    other = customer_post(reddit, "xyz9")
    account = writer(reddit)
    account.send(outgoing(post, reply_id="earlier", text="We're looking into it."))
    account.send(outgoing(other, reply_id="elsewhere", text=TEXT))  # same text, other post
    assert account.find(outgoing(post, reply_id="later")) is None
    sent = account.send(outgoing(post, reply_id="later"))
    found = account.find(outgoing(post, reply_id="later"))
    assert found is not None and found.remote_id == sent.remote_id
    assert len(reddit.comments) == 3


def test_find_reads_past_the_first_page_and_stops_at_older_comments(reddit: FakeReddit) -> None:
    reddit.page_size = 2
    post = customer_post(reddit)
    account = writer(reddit)
    target = account.send(outgoing(post))
    for number in range(5):  # newer comments of the account, elsewhere
        account.send(outgoing(customer_post(reddit, f"n{number}"), reply_id=f"n{number}",
                              text=f"other reply {number}"))
    found = account.find(outgoing(post))
    assert found is not None and found.remote_id == target.remote_id
    older = reddit.requests_to(MINE)
    assert len(older) == 3  # three pages of two
    # a post newer than every comment of the account: nothing to read past the first one
    fresh = customer_post(reddit, "fresh1", age=-60)
    before = len(reddit.requests_to(MINE))
    assert account.find(outgoing(fresh)) is None
    assert len(reddit.requests_to(MINE)) == before + 1


# -- refusals -----------------------------------------------------------------------------


def test_a_token_without_the_submit_scope_is_parked(reddit: FakeReddit) -> None:
    reddit.scopes = {"identity", "history", "read"}
    with pytest.raises(DeliveryError) as refused:
        writer(reddit, refresh_token=REFRESH_TOKEN).send(outgoing(customer_post(reddit)))
    assert refused.value.retryable is False and refused.value.status == 403
    assert "'submit' scope" in str(refused.value)
    reddit.scopes = {"submit"}
    with pytest.raises(DeliveryError) as blind:
        writer(reddit, refresh_token=REFRESH_TOKEN).find(outgoing(customer_post(reddit)))
    assert blind.value.retryable is False and "'history' scope" in str(blind.value)
    assert reddit.comments == []


def test_429_waits_for_the_reset(reddit: FakeReddit) -> None:
    out = outgoing(customer_post(reddit))
    account = writer(reddit)
    reddit.enqueue(429, {"message": "Too Many Requests", "error": 429},
                   headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": "42",
                            "x-ratelimit-used": "600"})
    with pytest.raises(RateLimited) as limited:
        account.send(out)
    assert limited.value.retry_after == 42
    # the budget is spent: the writer waits instead of letting prawcore sleep
    with pytest.raises(RateLimited) as held:
        account.find(out)
    assert held.value.retry_after is not None and 35 < held.value.retry_after <= 42
    assert len(reddit.requests_to(COMMENT)) == 1 and not reddit.requests_to(MINE)


def test_the_spam_limit_waits_as_long_as_reddit_says(reddit: FakeReddit) -> None:
    reddit.enqueue(200, ratelimit_error(minutes=9))
    with pytest.raises(RateLimited) as limited:
        writer(reddit).send(outgoing(customer_post(reddit)))
    assert limited.value.retry_after == 540
    assert len(reddit.requests_to(COMMENT)) == 1 and reddit.comments == []


@pytest.mark.parametrize(("change", "code"), [
    ("delete", "DELETED_LINK"), ("locked", "THREAD_LOCKED"), ("archived", "TOO_OLD"),
    ("missing", "NO_THING_ID")])
def test_a_post_that_cannot_take_replies_is_parked(reddit: FakeReddit, change: str,
                                                   code: str) -> None:
    post = customer_post(reddit, **({change: True} if change in ("locked", "archived") else {}))
    if change == "delete":
        reddit.delete(post["data"]["name"])
    out = outgoing(post)
    if change == "missing":
        out = Outgoing("r1", TEXT, "t3_n0such", None, None, None, {})
    with pytest.raises(DeliveryError) as gone:
        writer(reddit).send(out)
    assert gone.value.retryable is False and code in str(gone.value)
    assert reddit.comments == []


def test_a_deleted_comment_is_parked(reddit: FakeReddit) -> None:
    post = customer_post(reddit)
    theirs = comment("c0mm3nt", "acme", "same here", created_utc=time.time() - 60,
                     link_id=post["data"]["name"])
    reddit.add(theirs)
    reddit.delete("t1_c0mm3nt")
    with pytest.raises(DeliveryError) as gone:
        writer(reddit).send(outgoing(theirs))
    assert gone.value.retryable is False and "the comment was deleted" in str(gone.value)


def test_too_long_is_parked_before_any_request(reddit: FakeReddit) -> None:
    with pytest.raises(DeliveryError) as long:
        writer(reddit).send(outgoing(customer_post(reddit), text="x" * 10_001))
    assert long.value.retryable is False and "at most 10000" in str(long.value)
    assert reddit.requests == []


def test_wrong_credentials_are_parked(reddit: FakeReddit) -> None:
    with pytest.raises(DeliveryError) as password:
        writer(reddit, password="wrong-password").send(outgoing(customer_post(reddit)))
    assert password.value.retryable is False and "password" in str(password.value)
    with pytest.raises(DeliveryError) as secret:
        writer(reddit, client_secret="wrong-secret-value").send(outgoing(customer_post(reddit)))
    assert secret.value.retryable is False and "client_secret" in str(secret.value)
    assert reddit.comments == []


def test_server_errors_are_retried_and_not_repeated_by_prawcore(reddit: FakeReddit) -> None:
    reddit.enqueue(503, "<html>upstream busy</html>")
    with pytest.raises(DeliveryError) as busy:
        writer(reddit).send(outgoing(customer_post(reddit)))
    assert busy.value.retryable is True
    assert len(reddit.requests_to(COMMENT)) == 1  # prawcore's own retries are off


def test_an_expired_access_token_is_renewed_at_once(reddit: FakeReddit) -> None:
    account = writer(reddit)
    post = customer_post(reddit)
    account.send(outgoing(post, reply_id="a", text="first"))
    reddit.enqueue(401, {"message": "Unauthorized", "error": 401},
                   headers={"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'})
    account.send(outgoing(post, reply_id="b", text="second"))
    assert len(reddit.requests_to(TOKEN_PATH)) == 2 and len(reddit.comments) == 2


def test_secrets_never_reach_the_logs(reddit: FakeReddit,
                                      caplog: pytest.LogCaptureFixture) -> None:
    debug_everything(caplog)
    for name in ("praw", "prawcore", "urllib3"):
        caplog.set_level(logging.DEBUG, logger=name)
    account = writer(reddit)
    out = outgoing(customer_post(reddit))
    errors: list[Exception] = []
    reddit.enqueue(500, "boom")
    reddit.enqueue(429, {"error": 429}, headers={"x-ratelimit-reset": "5"})
    for _ in range(3):
        try:
            account.send(out)
        except (DeliveryError, RateLimited) as exc:
            errors.append(exc)
    try:
        writer(reddit, password="wrong-password").send(out)
    except DeliveryError as exc:
        errors.append(exc)
    account.close()
    assert len(errors) == 3 and "Fetching: POST" in caplog.text  # prawcore logged: live check
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    visible = [caplog.text, repr(account), repr(account.config), *(f"{e!r} {e}" for e in errors)]
    for text in visible:
        for secret in (CLIENT_SECRET, PASSWORD, basic, USER_TOKEN, "wrong-password"):
            assert secret not in text


def test_config_needs_one_way_to_log_in() -> None:
    base = {"type": "reddit", "name": "r", "client_id": CLIENT_ID,
            "client_secret": "secret-value-123", "username": USERNAME}
    for bad in ({}, {"password": "pw-secret-1", "refresh_token": "rt-secret-1"},
                {"password": "pw-secret-1", "oauth_url": "http://oauth.reddit.com"}):
        with pytest.raises(ValidationError) as refused:
            RedditAccountConfig(**base, **bad)
        assert "secret-value-123" not in str(refused.value)
        assert "pw-secret-1" not in str(refused.value)
    assert "pw" not in repr(RedditAccountConfig(**base, password="pw-secret-1"))
