"""The Google Play reply writer over real HTTP (httpx) against the fake Play Developer API and
token endpoint: the review the googleplay source collected is the one answered, the service
account's signed assertion buys the token, a lost answer is found again (one reply, however
often asked), another reply is never taken for this one, and each refusal retries or parks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.replies.base import Outgoing
from alerts.replies.googleplay import NOT_FOUND, SCOPE, GooglePlayAccountConfig, GooglePlayWriter
from listener.core.errors import DeliveryError, RateLimited
from listener.sources.base import SourceContext
from listener.sources.googleplay import GooglePlaySource, GooglePlaySourceConfig
from tests.alerts.replies.logs import debug_everything
from tests.fakes.base import HANG_UP, Fault
from tests.fakes.googleplay_api import FakeGooglePlay, play_review

APP = "com.acme.app"
REVIEW = "gp:AOqpTOH2b3Xw"
TEXT = "Sorry about the crash! Version 2.1.1 fixes it; please update and tell us."
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def play() -> Iterator[FakeGooglePlay]:
    with FakeGooglePlay() as fake:
        fake.add_reviews(APP, [play_review(REVIEW, NOW, score=1, text="Crashes at start",
                                           user="Ann")])
        yield fake


@pytest.fixture
def key(play: FakeGooglePlay) -> dict[str, str]:
    return play.service_account()


def writer(play: FakeGooglePlay, key: dict[str, str], **settings: Any) -> GooglePlayWriter:
    config = GooglePlayAccountConfig(
        type="googleplay", name="acme-play", service_account_json=json.dumps(key),
        base_url=play.base_url, token_url=key["token_uri"], **settings)
    return GooglePlayWriter(config, timeout=5.0)


def collected(play: FakeGooglePlay, review: str = REVIEW) -> Outgoing:
    """What the sender hands the writer for the review the googleplay source stored."""
    source = GooglePlaySource(GooglePlaySourceConfig(
        type="googleplay", name="android", apps=[{"app_id": APP}], base_url=play.base_url),
        SourceContext(clock=lambda: NOW, http_timeout=5.0))
    post = next(p for page in source.fetch(None) for p in page.posts if p.platform_id == review)
    raw = json.loads(json.dumps(post.raw))  # as posts.raw keeps it
    return Outgoing("r1", TEXT, post.platform_id, post.url, post.author, post.thread, raw,
                    post.text, post.rating, post.created_at)


def reply_of(out: Outgoing, reply_id: str, text: str) -> Outgoing:
    return replace(out, reply_id=reply_id, text=text)


def developer_text(play: FakeGooglePlay) -> str | None:
    review = play.api_review(APP, REVIEW) or {}
    return next((c["developerComment"]["text"] for c in review.get("comments", [])
                 if "developerComment" in c), None)


def with_text(out: Outgoing, text: str = "Crashes at start", at: datetime = NOW) -> Outgoing:
    """The post with another text or time: what a look-up by text goes by."""
    return replace(out, post_text=text, post_created_at=at)


@pytest.fixture
def distinct() -> Iterator[FakeGooglePlay]:
    """Play where the API knows each review by another id than the store page (and so the
    scraper): nothing Google documents rules it out."""
    with FakeGooglePlay(api_ids="distinct") as fake:
        fake.now = NOW + timedelta(hours=1)
        fake.add_reviews(APP, [play_review(REVIEW, NOW, score=1, text="Crashes at start",
                                           user="Ann")])
        yield fake


def test_the_reply_is_posted_where_the_reference_says(play: FakeGooglePlay,
                                                      key: dict[str, str]) -> None:
    out = collected(play)
    sent = writer(play, key).send(out)
    assert (sent.remote_id, sent.url) == (REVIEW, out.url)
    (token,) = [r for r in play.requests if r.path == "/token"]
    assert token.form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    (posted,) = play.replies_posted()
    # the id's colon is percent-encoded so it cannot read as the :reply verb
    assert posted.path == f"/androidpublisher/v3/applications/{APP}/reviews/gp%3AAOqpTOH2b3Xw:reply"
    assert posted.json == {"replyText": TEXT}
    assert posted.headers["authorization"] == f"Bearer {play.issued_tokens[0]}"
    assert developer_text(play) == TEXT
    assert len(play.issued_tokens) == 1
    writer_again = writer(play, key)
    writer_again.send(reply_of(out, "r2", "Fixed in 2.1.1."))
    writer_again.find(reply_of(out, "r2", "Fixed in 2.1.1."))
    assert len(play.issued_tokens) == 2  # one token per writer, kept between its requests


def test_a_lost_answer_is_found_and_never_posted_twice(play: FakeGooglePlay,
                                                       key: dict[str, str]) -> None:
    """Play made the reply but the answer never came back: the next attempt's find() returns
    it, so the sender records it instead of posting again."""
    out = collected(play)
    play.faults = lambda method, path: (Fault(HANG_UP, acted=True)
                                        if path.endswith(":reply") else None)
    with pytest.raises(DeliveryError) as lost:
        writer(play, key).send(out)
    assert lost.value.retryable
    play.faults = None
    found = writer(play, key).find(out)
    assert found is not None and (found.remote_id, found.url) == (REVIEW, out.url)
    assert len(play.replies_posted()) == 1


def test_find_tells_this_reply_from_another_to_the_same_review(play: FakeGooglePlay,
                                                               key: dict[str, str]) -> None:
    out = collected(play)
    w = writer(play, key)
    assert w.find(out) is None  # no reply yet
    w.send(out)
    later = reply_of(out, "r9", "Refund issued; anything else we can do?")
    assert w.find(later) is None
    assert w.find(out) is not None
    w.send(later)  # Play keeps one reply: the later one replaces ours
    assert w.find(out) is None and w.find(later) is not None
    assert developer_text(play) == later.text


def test_find_matches_the_text_as_play_keeps_it(play: FakeGooglePlay,
                                                key: dict[str, str]) -> None:
    """Play strips HTML tags; white space may differ: still this reply."""
    out = reply_of(collected(play), "r1", "Thanks <b>Ann</b>!\n\nFixed  in 2.1.1.")
    w = writer(play, key)
    w.send(out)
    assert developer_text(play) == "Thanks Ann!\n\nFixed  in 2.1.1."
    assert w.find(out) is not None


def test_a_token_without_the_scope_parks_the_reply(play: FakeGooglePlay,
                                                   key: dict[str, str]) -> None:
    play.granted_scopes = {"https://www.googleapis.com/auth/cloud-platform"}
    with pytest.raises(DeliveryError) as refused:
        writer(play, key).send(collected(play))
    assert not refused.value.retryable and refused.value.status == 403
    assert SCOPE in str(refused.value)
    assert developer_text(play) is None


def test_without_the_reply_permission_the_reply_is_parked(play: FakeGooglePlay,
                                                          key: dict[str, str]) -> None:
    play.can_reply = False
    with pytest.raises(DeliveryError) as refused:
        writer(play, key).send(collected(play))
    assert not refused.value.retryable
    assert "'Reply to reviews' permission" in str(refused.value) and SCOPE in str(refused.value)


def test_a_key_google_does_not_know_is_parked(play: FakeGooglePlay,
                                             key: dict[str, str]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = {**key, "private_key": other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()}  # a deleted key: Google cannot verify it
    with pytest.raises(DeliveryError, match="refused the service account key") as refused:
        writer(play, stranger).send(collected(play))
    assert not refused.value.retryable and "Invalid JWT Signature" in str(refused.value)
    assert play.replies_posted() == []


def test_an_expired_or_revoked_token_is_replaced_once(play: FakeGooglePlay,
                                                      key: dict[str, str]) -> None:
    w = writer(play, key)
    out = collected(play)
    w.find(out)
    play._access.clear()  # Google forgot every token (revoked, or expired early)
    w.send(out)
    assert len(play.issued_tokens) == 2 and developer_text(play) == TEXT


def test_quota_exhausted_waits_as_google_says(play: FakeGooglePlay, key: dict[str, str]) -> None:
    out = collected(play)
    play.quota_exhausted = 1
    with pytest.raises(RateLimited) as limited:
        writer(play, key).send(out)
    assert limited.value.retry_after == 37.0  # google.rpc.RetryInfo retryDelay "37s"
    play.quota_exhausted, play.retry_after = 1, "120"
    with pytest.raises(RateLimited) as limited:
        writer(play, key).find(out)
    assert limited.value.retry_after == 120.0
    play.quota_exhausted, play.retry_after, play.retry_delay = 1, None, None
    with pytest.raises(RateLimited) as limited:
        writer(play, key).send(out)
    assert limited.value.retry_after == 60.0
    assert developer_text(play) is None


def test_a_deleted_review_is_not_retried(play: FakeGooglePlay, key: dict[str, str]) -> None:
    out = collected(play)
    play.delete_review(APP, REVIEW)
    w = writer(play, key)
    assert w.find(out) is None
    with pytest.raises(DeliveryError, match=NOT_FOUND) as gone:
        w.send(out)
    assert not gone.value.retryable and gone.value.status == 404
    assert "deleted" in str(gone.value)
    with pytest.raises(DeliveryError, match="none of the 0 reviews") as gone:
        w.send(with_text(out))  # looked for, and not there
    assert not gone.value.retryable


def test_too_long_is_refused_before_any_request(play: FakeGooglePlay,
                                                key: dict[str, str]) -> None:
    out = reply_of(collected(play), "r1", "x" * 351)
    before = len(play.requests)
    with pytest.raises(DeliveryError, match="351 characters; Google Play allows 350") as long:
        writer(play, key).send(out)
    assert not long.value.retryable and len(play.requests) == before
    writer(play, key).send(reply_of(out, "r2", "x" * 350))  # the limit itself is fine


def test_a_post_without_its_app_is_parked(play: FakeGooglePlay, key: dict[str, str]) -> None:
    out = collected(play)
    bare = Outgoing("r1", TEXT, REVIEW, out.url, "Ann", None, {})
    with pytest.raises(DeliveryError, match="raw.app_id") as refused:
        writer(play, key).send(bare)
    assert not refused.value.retryable


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(play: FakeGooglePlay, key: dict[str, str],
                                   status: int) -> None:
    out = collected(play)
    play.faults = lambda method, path: (Fault(status, {"error": {"code": status}})
                                        if path.endswith(":reply") else None)
    with pytest.raises(DeliveryError) as failed:
        writer(play, key).send(out)
    assert failed.value.retryable and failed.value.status == status


def test_secrets_never_reach_the_logs(play: FakeGooglePlay, key: dict[str, str],
                                      caplog: pytest.LogCaptureFixture) -> None:
    debug_everything(caplog)
    out = collected(play)
    w = writer(play, key)
    w.send(out)
    w.find(out)
    play.granted_scopes = set()
    with pytest.raises(DeliveryError):
        writer(play, key).send(out)
    assert play.issued_tokens and caplog.text
    for token in play.issued_tokens:
        assert token not in caplog.text
    assertion = next(r for r in play.requests if r.path == "/token").form["assertion"]
    assert assertion not in caplog.text
    body = key["private_key"].split("-----")[2].strip().splitlines()[1]
    assert body not in caplog.text
    assert key["private_key"] not in repr(w) and key["private_key"] not in repr(w._config)


def test_config_takes_one_key_and_checks_it(play: FakeGooglePlay, key: dict[str, str],
                                            tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key))
    from_file = GooglePlayAccountConfig(type="googleplay", name="p", base_url=play.base_url,
                                        token_url=key["token_uri"],
                                        service_account_file=str(path))
    GooglePlayWriter(from_file, timeout=5.0).send(collected(play))
    assert developer_text(play) == TEXT
    with pytest.raises(ValidationError, match="exactly one"):
        GooglePlayAccountConfig(type="googleplay", name="p")
    with pytest.raises(ValidationError) as bad:
        GooglePlayAccountConfig(type="googleplay", name="p",
                                service_account_json='{"private_key": "secret-ish"}')
    assert "client_email" in str(bad.value) and "secret-ish" not in str(bad.value)
    with pytest.raises(ValidationError, match="https"):
        GooglePlayAccountConfig(type="googleplay", name="p", service_account_json=json.dumps(key),
                                base_url="http://play.example.com")


# -- which review: when the API's id is not the store page's ---------------------------------


def test_a_review_the_api_knows_by_another_id_is_found_by_its_text(distinct: FakeGooglePlay
                                                                    ) -> None:
    """The API answers 404 to the scraper's id: the writer lists the last week's reviews, finds
    the one by the post's author with its text and time, and replies there. A lost answer is
    found again by a new writer, which looks the review up anew: one reply written."""
    key = distinct.service_account()
    out = with_text(collected(distinct))
    api_id = distinct.api_id(APP, REVIEW)
    assert api_id != REVIEW
    write = f"/androidpublisher/v3/applications/{APP}/reviews/{quote_id(api_id)}:reply"
    distinct.faults = lambda method, path: (Fault(HANG_UP, acted=True)
                                            if path == write else None)
    with pytest.raises(DeliveryError) as lost:
        writer(distinct, key).send(out)
    assert lost.value.retryable
    distinct.faults = None
    found = writer(distinct, key).find(out)
    assert found is not None and found.remote_id == api_id  # the review as the API knows it
    comments = (distinct.api_review(APP, api_id) or {})["comments"]
    assert [c["developerComment"]["text"] for c in comments if "developerComment" in c] == [TEXT]
    assert [r.path for r in distinct.replies_posted()].count(write) == 1
    listed = distinct.reviews_listed()
    assert len(listed) == 2 and listed[0].query == {"maxResults": "100"}


def test_a_post_whose_text_was_erased_parks_where_the_ids_differ(distinct: FakeGooglePlay
                                                                  ) -> None:
    """Without the post's text (erased by `listener forget`) the review cannot be told among
    the week's reviews: parked with the reason, never guessed by name alone."""
    key = distinct.service_account()
    with pytest.raises(DeliveryError, match=NOT_FOUND) as parked:
        writer(distinct, key).send(replace(collected(distinct), post_text=""))
    assert not parked.value.retryable and "keeps no text" in str(parked.value)
    assert not distinct.reviews_listed()


def test_two_reviews_with_the_posts_author_and_text_park_the_reply(distinct: FakeGooglePlay
                                                                   ) -> None:
    distinct.add_reviews(APP, [play_review("gp:other", NOW + timedelta(minutes=5), score=1,
                                           text="Crashes  at start", user="Ann")])
    key = distinct.service_account()
    with pytest.raises(DeliveryError, match=NOT_FOUND) as twice:
        writer(distinct, key).send(with_text(collected(distinct), at=NOW))
    assert not twice.value.retryable and "2 reviews by 'Ann'" in str(twice.value)
    assert all(r.path.endswith(f"{quote_id(REVIEW)}:reply") for r in distinct.replies_posted())


def test_a_review_older_than_the_lists_week_cannot_be_found(distinct: FakeGooglePlay) -> None:
    distinct.now = NOW + timedelta(days=8)
    key = distinct.service_account()
    with pytest.raises(DeliveryError, match="last week only") as old:
        writer(distinct, key).send(with_text(collected(distinct)))
    assert not old.value.retryable


def test_another_text_or_time_is_not_the_posts_review(distinct: FakeGooglePlay) -> None:
    key = distinct.service_account()
    out = collected(distinct)
    for other in (with_text(out, "Crashes at the end"),
                  with_text(out, at=NOW - timedelta(days=3))):
        with pytest.raises(DeliveryError, match=NOT_FOUND):
            writer(distinct, key).send(other)


def quote_id(review: str) -> str:
    from urllib.parse import quote

    return quote(review, safe="")
