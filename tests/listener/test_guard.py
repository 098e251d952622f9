"""The network guard's rules (:mod:`listener.core.httpguard`): which origins are trusted, which
addresses are refused, what a refusal says; DNS is injected, HTTP is real (127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from listener.core.errors import SourceError
from listener.core.httpguard import (
    GuardSettings,
    Origin,
    SourceRefused,
    guarded_client,
    refusal_in,
    source_policy,
)
from tests.fakes.feeds import FakeFeedServer
from tests.fakes.hostile import Recorder


def policy(urls: list[str], dns: dict[str, list[str]] | None = None, **settings: object):
    def resolve(host: str, port: int) -> list[str]:
        if dns is None or host not in dns:
            raise OSError(f"no such host {host}")
        return dns[host]
    return source_policy("feeds", GuardSettings(**settings), urls, resolve)


@pytest.fixture
def server() -> Iterator[FakeFeedServer]:
    with FakeFeedServer() as fake:
        yield fake


def test_a_configured_address_is_trusted_but_only_that_origin() -> None:
    rules = policy(["http://10.0.0.5/feed.xml", "http://localhost:8080/x"])
    assert rules.target(Origin.of("http://10.0.0.5/other")) is None  # same origin: allowed
    assert rules.target(Origin.of("http://localhost:8080/y")) is None
    for url in ("http://10.0.0.5:8080/", "https://10.0.0.5/", "http://10.0.0.6/",
                "http://127.0.0.1:8080/", "http://169.254.169.254/latest/meta-data/",
                "http://[::ffff:169.254.169.254]/", "http://[::1]:8080/", "http://0.0.0.0/"):
        with pytest.raises(SourceRefused, match="refused"):
            rules.target(Origin.of(url))


def test_a_configured_name_is_checked_at_every_request() -> None:
    """A name is not trusted as written: its DNS can be changed to point inside."""
    dns = {"feeds.example": ["93.184.216.34"], "evil.example": ["8.8.4.4", "10.1.2.3"]}
    rules = policy(["https://feeds.example/rss", "https://evil.example/rss"], dns)
    assert rules.target(Origin.of("https://feeds.example/rss")) == "93.184.216.34"  # pinned
    with pytest.raises(SourceRefused) as caught:
        rules.target(Origin.of("https://evil.example/rss"))
    message = str(caught.value)
    assert message.startswith("source feeds: request to https://evil.example:443 refused")
    assert "resolves to 10.1.2.3" in message and "allow_private: true" in message


def test_allow_private_turns_the_address_check_off() -> None:
    rules = policy(["https://feeds.example/"], {}, allow_private=True)
    assert rules.target(Origin.of("http://169.254.169.254/")) is None
    assert rules.target(Origin.of("http://intranet.corp/feed")) is None  # not even resolved


def test_a_name_that_does_not_resolve_fails_as_a_connect_error(server: FakeFeedServer) -> None:
    """What the library raised before the guard: its callers' messages stay the same."""
    with guarded_client(policy([server.base_url])) as client:
        with pytest.raises(httpx.ConnectError, match="cannot resolve nowhere.invalid"):
            client.get("http://nowhere.invalid/feed.xml")


def test_an_encoding_that_was_not_asked_for_is_refused(server: FakeFeedServer) -> None:
    server.enqueue("/f.xml", 200, b"\x1b\x00\x00", headers={"Content-Encoding": "br"})
    with guarded_client(policy([server.base_url])) as client:
        with pytest.raises(SourceRefused, match="Content-Encoding 'br'"):
            client.get(server.url("/f.xml"))


def test_refusals_are_found_inside_library_exceptions() -> None:
    refused = SourceRefused("source x: request to http://10.0.0.1:80 refused")
    try:
        try:
            raise refused
        except SourceRefused as exc:
            raise RuntimeError("Could not complete request") from exc  # as Mastodon.py does
    except RuntimeError as wrapped:
        assert refusal_in(wrapped) is refused
    assert isinstance(refused, SourceError)  # a failed poll, the cursor stays
    assert refusal_in(RuntimeError("unrelated")) is None


def test_with_a_proxy_from_the_environment_the_guard_still_decides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """httpx would route proxied requests around a custom transport; the guard's client takes
    the proxy variables itself, so a proxied request is checked first all the same."""
    with Recorder() as proxy:
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(name, proxy.base_url)
        for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
        with guarded_client(policy(["http://8.8.8.8/feed.xml"])) as client:
            assert client.get("http://8.8.8.8/feed.xml").status_code == 200  # via the proxy
            with pytest.raises(SourceRefused, match="169.254.169.254"):
                client.get("http://169.254.169.254/latest/meta-data/")
        assert [r.path for r in proxy.requests] == ["/feed.xml"]
