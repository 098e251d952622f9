"""The App Store reply writer over real HTTP (httpx) against the fake App Store Connect API: the
review the appstore source collected is the one answered, every request carries an ES256 token
the fake verifies, a lost answer is found again (one response, however often asked), another
reply is never taken for this one, and each refusal retries or parks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.replies.appstore import AppStoreAccountConfig, AppStoreWriter
from alerts.replies.base import Outgoing
from listener.core.errors import DeliveryError, RateLimited
from listener.sources.appstore import AppStoreSource, AppStoreSourceConfig
from listener.sources.base import SourceContext
from tests.alerts.replies.logs import debug_everything
from tests.fakes.appstore_api import RESPONSES, FakeAppStore, review
from tests.fakes.base import HANG_UP, Fault

APP = "284882215"
REVIEW = "11053452211"
TEXT = "Sorry about the crash! Version 2.1.1 fixes it; please update and tell us."
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def apple() -> Iterator[FakeAppStore]:
    with FakeAppStore() as fake:
        fake.add_reviews("us", APP, [review(REVIEW, NOW, rating=1, title="Crashes",
                                            content="Crashes at start", author="ann")])
        yield fake


@pytest.fixture
def key(apple: FakeAppStore) -> tuple[str, str, str]:
    return apple.api_key()


def writer(apple: FakeAppStore, key: tuple[str, str, str], **settings: Any) -> AppStoreWriter:
    issuer, key_id, pem = key
    config = AppStoreAccountConfig(type="appstore", name="acme-ios", issuer_id=issuer,
                                   key_id=key_id, private_key=pem, base_url=apple.base_url,
                                   **settings)
    return AppStoreWriter(config, timeout=5.0)


def collected(apple: FakeAppStore) -> Outgoing:
    """What the sender hands the writer for the review the appstore source stored."""
    source = AppStoreSource(AppStoreSourceConfig(
        type="appstore", name="ios", apps=[{"app_id": APP}], base_url=apple.base_url),
        SourceContext(clock=lambda: NOW, http_timeout=5.0))
    (post,) = [p for page in source.fetch(None) for p in page.posts]
    raw = json.loads(json.dumps(post.raw))  # as posts.raw keeps it
    return Outgoing("r1", TEXT, post.platform_id, post.url, post.author, post.thread, raw)


def reply_of(out: Outgoing, reply_id: str, text: str) -> Outgoing:
    return Outgoing(reply_id, text, out.platform_id, out.url, out.author, out.thread, out.raw)


def response_text(apple: FakeAppStore) -> str | None:
    found = apple.response_of(REVIEW)
    return found["attributes"]["responseBody"] if found else None


def test_the_response_is_posted_as_the_reference_says(apple: FakeAppStore,
                                                      key: tuple[str, str, str]) -> None:
    out = collected(apple)
    sent = writer(apple, key).send(out)
    created = apple.response_of(REVIEW)
    assert created is not None and created["attributes"]["state"] == "PENDING_PUBLISH"
    assert (sent.remote_id, sent.url) == (created["id"], out.url)
    (posted,) = apple.responses_posted()
    assert posted.json == {"data": {
        "type": "customerReviewResponses", "attributes": {"responseBody": TEXT},
        "relationships": {"review": {"data": {"type": "customerReviews", "id": REVIEW}}}}}
    assert posted.headers["content-type"] == "application/json"
    header, claims, _ = posted.headers["authorization"].removeprefix("Bearer ").split(".")
    assert json.loads(_unb64(header)) == {"alg": "ES256", "kid": key[1], "typ": "JWT"}
    claims_json = json.loads(_unb64(claims))
    assert claims_json["iss"] == key[0] and claims_json["aud"] == "appstoreconnect-v1"
    assert 0 < claims_json["exp"] - claims_json["iat"] <= 1200


def test_a_lost_answer_is_found_and_never_posted_twice(apple: FakeAppStore,
                                                       key: tuple[str, str, str]) -> None:
    """Apple made the response but the answer never came back: the next attempt's find()
    returns it, so the sender records it instead of posting again."""
    out = collected(apple)
    apple.faults = lambda method, path: (Fault(HANG_UP, acted=True)
                                         if path == RESPONSES else None)
    with pytest.raises(DeliveryError) as lost:
        writer(apple, key).send(out)
    assert lost.value.retryable
    apple.faults = None
    found = writer(apple, key).find(out)
    created = apple.response_of(REVIEW)
    assert created is not None and found is not None
    assert (found.remote_id, found.url) == (created["id"], out.url)
    assert len(apple.responses_posted()) == 1


def test_find_tells_this_reply_from_another_to_the_same_review(
    apple: FakeAppStore, key: tuple[str, str, str]
) -> None:
    out = collected(apple)
    w = writer(apple, key)
    assert w.find(out) is None  # {"data": null}: no response yet
    first = w.send(out)
    later = reply_of(out, "r9", "Refund issued; anything else we can do?")
    assert w.find(later) is None
    assert w.find(out) == first
    w.send(later)  # one response per review: Apple replaces it
    assert w.find(out) is None and w.find(later) is not None
    assert response_text(apple) == later.text


def test_a_409_for_our_own_response_is_taken_as_sent(apple: FakeAppStore,
                                                     key: tuple[str, str, str]) -> None:
    """Where Apple answers 409 to a review that has a response: ours is recognised, someone
    else's is left alone and the reply parked."""
    apple.conflict_on_existing = True
    out = collected(apple)
    w = writer(apple, key)
    first = w.send(out)
    assert w.send(out) == first
    with pytest.raises(DeliveryError, match="already exists") as other:
        w.send(reply_of(out, "r9", "Another answer"))
    assert not other.value.retryable and other.value.status == 409
    assert response_text(apple) == TEXT


def test_find_matches_the_text_as_apple_may_keep_it(apple: FakeAppStore,
                                                    key: tuple[str, str, str]) -> None:
    out = reply_of(collected(apple), "r1", "Thanks Ann!\r\n\r\nFixed  in 2.1.1.")
    w = writer(apple, key)
    w.send(out)
    assert w.find(reply_of(out, "r1", "Thanks Ann!\n\nFixed in 2.1.1.")) is not None


def test_a_key_without_a_role_that_may_respond_parks_the_reply(
    apple: FakeAppStore, key: tuple[str, str, str]
) -> None:
    apple.roles = frozenset({"DEVELOPER"})
    with pytest.raises(DeliveryError) as refused:
        writer(apple, key).send(collected(apple))
    assert not refused.value.retryable and refused.value.status == 403
    assert "Customer Support" in str(refused.value) and "FORBIDDEN_ERROR" in str(refused.value)
    assert apple.response_of(REVIEW) is None


def test_a_revoked_key_is_parked(apple: FakeAppStore, key: tuple[str, str, str]) -> None:
    apple._keys.clear()  # revoked in App Store Connect
    with pytest.raises(DeliveryError, match="refused the API token") as refused:
        writer(apple, key).send(collected(apple))
    assert not refused.value.retryable and refused.value.status == 401
    assert len(apple.responses_posted()) == 1  # a new token refused: nothing to try anew


def test_a_kept_token_apple_refuses_is_made_anew_once(apple: FakeAppStore,
                                                      key: tuple[str, str, str]) -> None:
    out = collected(apple)
    w = writer(apple, key)
    w.find(out)
    kept, authentic = w._token, apple._authentic
    apple._authentic = lambda token: token != kept and authentic(token)  # type: ignore[method-assign]
    w.send(out)
    assert response_text(apple) == TEXT and len(apple.responses_posted()) == 2


def test_rate_limits_wait(apple: FakeAppStore, key: tuple[str, str, str]) -> None:
    out = collected(apple)
    apple.hour_used = apple.hourly_limit  # the rolling hour's budget is spent
    with pytest.raises(RateLimited) as limited:
        writer(apple, key).send(out)
    assert limited.value.retry_after == 300.0 and "RATE_LIMIT_EXCEEDED" in str(limited.value)
    apple.retry_after = "90"
    with pytest.raises(RateLimited) as limited:
        writer(apple, key).find(out)
    assert limited.value.retry_after == 90.0
    assert apple.response_of(REVIEW) is None


def test_a_deleted_review_is_not_retried(apple: FakeAppStore, key: tuple[str, str, str]) -> None:
    out = collected(apple)
    apple.delete_review(REVIEW)
    w = writer(apple, key)
    assert w.find(out) is None
    with pytest.raises(DeliveryError, match="is gone") as gone:
        w.send(out)
    assert not gone.value.retryable and gone.value.status == 404


def test_too_long_is_refused_before_any_request(apple: FakeAppStore,
                                                key: tuple[str, str, str]) -> None:
    out = reply_of(collected(apple), "r1", "x" * 5971)
    before = len(apple.requests)
    with pytest.raises(DeliveryError, match="5971 characters; the App Store allows 5970") as long:
        writer(apple, key).send(out)
    assert not long.value.retryable and len(apple.requests) == before
    writer(apple, key).send(reply_of(out, "r2", "x" * 5970))


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_are_retried(apple: FakeAppStore, key: tuple[str, str, str],
                                   status: int) -> None:
    out = collected(apple)
    apple.faults = lambda method, path: (Fault(status, {"errors": [{"status": str(status)}]})
                                         if path == RESPONSES else None)
    with pytest.raises(DeliveryError) as failed:
        writer(apple, key).send(out)
    assert failed.value.retryable and failed.value.status == status


def test_secrets_never_reach_the_logs(apple: FakeAppStore, key: tuple[str, str, str],
                                      caplog: pytest.LogCaptureFixture) -> None:
    debug_everything(caplog)
    out = collected(apple)
    w = writer(apple, key)
    w.send(out)
    w.find(out)
    apple.roles = frozenset()
    with pytest.raises(DeliveryError):
        writer(apple, key).send(reply_of(out, "r2", "again"))
    tokens = {r.headers["authorization"].removeprefix("Bearer ") for r in apple.requests
              if "authorization" in r.headers}
    assert tokens and caplog.text
    for token in tokens:
        assert token not in caplog.text
    body = key[2].split("-----")[2].strip().splitlines()[0]
    assert body not in caplog.text
    assert key[2] not in repr(w) and key[2] not in repr(w._config)


def test_config_takes_one_key_and_checks_it(apple: FakeAppStore, key: tuple[str, str, str],
                                            tmp_path: Path) -> None:
    issuer, key_id, pem = key
    path = tmp_path / "AuthKey.p8"
    path.write_text(pem)
    from_file = AppStoreAccountConfig(type="appstore", name="i", issuer_id=issuer, key_id=key_id,
                                      private_key_file=str(path), base_url=apple.base_url)
    AppStoreWriter(from_file, timeout=5.0).send(collected(apple))
    assert response_text(apple) == TEXT
    with pytest.raises(ValidationError, match="exactly one"):
        AppStoreAccountConfig(type="appstore", name="i", issuer_id=issuer, key_id=key_id)
    with pytest.raises(ValidationError) as bad:
        AppStoreAccountConfig(type="appstore", name="i", issuer_id=issuer, key_id=key_id,
                              private_key="not-a-key-secret")
    assert ".p8" in str(bad.value) and "not-a-key-secret" not in str(bad.value)
    with pytest.raises(ValidationError):
        AppStoreAccountConfig(type="appstore", name="i", issuer_id="acme", key_id=key_id,
                              private_key=pem)


def _unb64(value: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
