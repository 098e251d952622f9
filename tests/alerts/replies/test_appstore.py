"""The App Store reply writer over real HTTP (httpx) against the fake App Store Connect API: the
review the appstore source collected (by the feed's numeric id) is the one answered, on its App
Store Connect id (another id, found by listing the app's reviews), every request carries an
ES256 token the fake verifies, a lost answer is found again (one response, however often asked),
another reply is never taken for this one, a review that cannot be told for sure parks the
reply, and each refusal retries or parks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.replies.appstore import LIST_PAGES, NOT_FOUND, AppStoreAccountConfig, AppStoreWriter
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


def collected(apple: FakeAppStore, review_id: str = REVIEW, country: str = "us") -> Outgoing:
    """What the sender hands the writer for the review the appstore source stored."""
    source = AppStoreSource(AppStoreSourceConfig(
        type="appstore", name="ios", apps=[{"app_id": APP, "country": country}],
        base_url=apple.base_url), SourceContext(clock=lambda: NOW, http_timeout=5.0))
    (post,) = [p for page in source.fetch(None) for p in page.posts
               if p.platform_id == review_id]
    raw = json.loads(json.dumps(post.raw))  # as posts.raw keeps it
    return Outgoing("r1", TEXT, post.platform_id, post.url, post.author, post.thread, raw,
                    post.text, post.rating, post.created_at)


def reply_of(out: Outgoing, reply_id: str, text: str) -> Outgoing:
    return replace(out, reply_id=reply_id, text=text)


def response_text(apple: FakeAppStore) -> str | None:
    found = apple.response_of(apple.asc_id(REVIEW))
    return found["attributes"]["responseBody"] if found else None


def test_the_response_is_posted_as_the_reference_says(apple: FakeAppStore,
                                                      key: tuple[str, str, str]) -> None:
    out = collected(apple)
    sent = writer(apple, key).send(out)
    connect_id = apple.asc_id(REVIEW)
    created = apple.response_of(connect_id)
    assert created is not None and created["attributes"]["state"] == "PENDING_PUBLISH"
    assert (sent.remote_id, sent.url) == (created["id"], out.url)
    (posted,) = apple.responses_posted()
    assert posted.json == {"data": {
        "type": "customerReviewResponses", "attributes": {"responseBody": TEXT},
        "relationships": {"review": {"data": {"type": "customerReviews", "id": connect_id}}}}}
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
    found = writer(apple, key).find(out)  # a new writer: it looks the review up anew
    created = apple.response_of(apple.asc_id(REVIEW))
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
    assert apple.response_of(apple.asc_id(REVIEW)) is None


def test_a_revoked_key_is_parked(apple: FakeAppStore, key: tuple[str, str, str]) -> None:
    apple._keys.clear()  # revoked in App Store Connect
    with pytest.raises(DeliveryError, match="refused the API token") as refused:
        writer(apple, key).send(collected(apple))
    assert not refused.value.retryable and refused.value.status == 401
    # a new token refused (on the look-up, the first request): nothing to try anew
    assert len(apple.connect_reviews_listed()) == 1 and not apple.responses_posted()


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
    assert apple.response_of(apple.asc_id(REVIEW)) is None


def test_a_deleted_review_is_not_retried(apple: FakeAppStore, key: tuple[str, str, str]) -> None:
    out = collected(apple)
    connect_id = apple.asc_id(REVIEW)
    apple.delete_review(REVIEW)
    w = writer(apple, key)
    for attempt in (w.find, w.send):
        with pytest.raises(DeliveryError, match=NOT_FOUND) as gone:
            attempt(out)
        assert not gone.value.retryable and "edited or deleted" in str(gone.value)
    # a post that already holds App Store Connect's id: Apple's 404
    known = replace(out, platform_id=connect_id)
    assert w.find(known) is None
    with pytest.raises(DeliveryError, match="is gone") as gone:
        w.send(known)
    assert not gone.value.retryable and gone.value.status == 404
    posted = [p.json["data"]["relationships"]["review"]["data"]["id"]
              for p in apple.responses_posted()]
    assert posted == [connect_id]  # the feed's id was never posted


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


# -- which review: the feed's id is not App Store Connect's ----------------------------------


def test_the_feeds_id_is_not_the_one_app_store_connect_answers_to(
    apple: FakeAppStore, key: tuple[str, str, str]
) -> None:
    """As on the live service (Apple's reference shows ``00000028-b08c-0014-…`` ids): the
    collected review's id is unknown to App Store Connect, so the writer finds the review's
    own id and responds there. The writer that posted the feed's id failed here (404)."""
    out = collected(apple)
    connect_id = apple.asc_id(REVIEW)
    assert out.platform_id == REVIEW != connect_id
    assert connect_id.count("-") == 4 and len(connect_id) == 36
    w = writer(apple, key)
    sent = w.send(out)
    assert response_text(apple) == TEXT
    assert sent.remote_id == (apple.response_of(connect_id) or {})["id"]
    (listed,) = apple.connect_reviews_listed()
    assert listed.path == f"/v1/apps/{APP}/customerReviews"
    assert listed.query == {"sort": "-createdDate", "limit": "200", "filter[territory]": "USA"}
    assert w.find(out) == sent  # the id is kept: no second look-up
    assert len(apple.connect_reviews_listed()) == 1


def test_the_look_up_pages_newest_first_within_the_posts_storefront(
    apple: FakeAppStore, key: tuple[str, str, str]
) -> None:
    """450 newer reviews in the storefront: the look-up follows links.next (its path and
    cursor, on base_url) to the third page. The same nickname and title in another storefront
    (Ann reviewed in the UK too) is not taken: the territory filter leaves it out."""
    for n in range(450):
        apple.add_connect_review(APP, NOW + timedelta(minutes=n + 1), nickname=f"user{n}")
    uk = apple.add_connect_review(APP, NOW, nickname="ann", title="Crashes",
                                  body="Crashes at start", rating=1, territory="GBR")
    writer(apple, key).send(collected(apple))
    assert response_text(apple) == TEXT and apple.response_of(uk) is None
    listed = apple.connect_reviews_listed()
    assert len(listed) == 3
    assert "cursor" not in listed[0].query and all("cursor" in r.query for r in listed[1:])
    assert {r.query["filter[territory]"] for r in listed} == {"USA"}


def test_the_look_up_is_bounded_and_parks_what_it_cannot_reach(
    apple: FakeAppStore, key: tuple[str, str, str]
) -> None:
    for n in range(LIST_PAGES * 200):
        apple.add_connect_review(APP, NOW + timedelta(minutes=n + 1), nickname=f"user{n}")
    with pytest.raises(DeliveryError, match=NOT_FOUND) as lost:
        writer(apple, key).send(collected(apple))
    assert not lost.value.retryable
    assert f"none of the {LIST_PAGES * 200} newest reviews" in str(lost.value)
    assert len(apple.connect_reviews_listed()) == LIST_PAGES and not apple.responses_posted()


def test_two_reviews_that_both_match_park_the_reply(apple: FakeAppStore,
                                                    key: tuple[str, str, str]) -> None:
    """Nickname, title, body, stars and storefront are all there is to go by: two reviews
    sharing every one of them are never guessed between."""
    apple.add_reviews("us", APP, [review("11053452299", NOW - timedelta(minutes=5), rating=1,
                                         title="Crashes", content="Crashes at start",
                                         author="ann")])
    with pytest.raises(DeliveryError, match=NOT_FOUND) as twice:
        writer(apple, key).send(collected(apple))
    assert not twice.value.retryable and "2 reviews of app" in str(twice.value)
    assert not apple.responses_posted()


def test_body_and_rating_tell_reviews_apart(
    apple: FakeAppStore, key: tuple[str, str, str]
) -> None:
    apple.add_reviews("us", APP, [review("11053452299", NOW + timedelta(hours=1), rating=5,
                                         title="Crashes", content="Not any more!",
                                         author="ann")])
    out = collected(apple)
    richer = replace(out, post_text="Crashes\nCrashes  at\nstart", post_rating=1,
                     post_created_at=NOW)
    writer(apple, key).send(richer)
    assert response_text(apple) == TEXT
    assert apple.response_of(apple.asc_id("11053452299")) is None


def test_a_review_edited_since_it_was_collected_parks_the_reply(
    apple: FakeAppStore, key: tuple[str, str, str]
) -> None:
    out = collected(apple)
    apple._api_reviews[apple.asc_id(REVIEW)]["attributes"]["title"] = "Fixed, thanks"
    with pytest.raises(DeliveryError, match=NOT_FOUND) as edited:
        writer(apple, key).send(out)
    assert not edited.value.retryable and "'Crashes'" in str(edited.value)
    assert not apple.responses_posted()


def test_an_app_store_connect_id_is_used_as_it_is(apple: FakeAppStore,
                                                  key: tuple[str, str, str]) -> None:
    out = replace(collected(apple), platform_id=apple.asc_id(REVIEW))
    writer(apple, key).send(out)
    assert response_text(apple) == TEXT and not apple.connect_reviews_listed()


def test_a_post_without_its_app_parks_the_reply(apple: FakeAppStore,
                                                key: tuple[str, str, str]) -> None:
    out = collected(apple)
    with pytest.raises(DeliveryError, match="no numeric app id") as orphan:
        writer(apple, key).send(replace(out, raw={k: v for k, v in out.raw.items()
                                                  if k != "app_id"}))
    assert not orphan.value.retryable and not apple.connect_reviews_listed()


def test_an_app_the_key_does_not_see_parks_the_reply(apple: FakeAppStore,
                                                     key: tuple[str, str, str]) -> None:
    out = collected(apple)
    with pytest.raises(DeliveryError, match="knows no app 999") as unknown:
        writer(apple, key).send(replace(out, raw={**out.raw, "app_id": "999"}))
    assert not unknown.value.retryable and unknown.value.status == 404


def _unb64(value: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
