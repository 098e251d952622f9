"""DiscordSink: real httpx over real HTTP to a fake Discord webhook that checks Discord's limits
itself (tests/fakes/discord.py)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from sqlite_utils import Database

from alerts.dispatch import RetryPolicy, dispatch
from alerts.render.common import LANGUAGE_WARNING
from alerts.render.discord import ZWSP, message_size
from alerts.sinks import sink_class
from alerts.sinks.discord import DiscordSink, DiscordSinkConfig
from listener.core.errors import DeliveryError, RateLimited
from tests.alerts.factories import make_alert, make_post, make_report, make_score
from tests.alerts.test_dispatch import ManualClock, seed
from tests.fakes.discord import HANG_UP, TOKEN, FakeDiscordWebhook, limit_errors, rate_limited

HOSTILE = ("@everyone @here <@123> <@&456> <#789> [x](http://evil) ||spoiler|| **bold** "
           "__u__ ~~s~~ `code` ```block``` # head > quote -list \\ https://evil.example/p")
SHOWN = "@everyone @here <@123> <@&456> <#789> [x](http://evil) ||spoiler||"
CONTROLS = "\x1b[2J\u202e\x00"


@pytest.fixture
def discord() -> Iterator[FakeDiscordWebhook]:
    with FakeDiscordWebhook() as fake:
        yield fake


def make_sink(url: str, **overrides: Any) -> DiscordSink:
    settings = {"name": "discord-test", "webhook_url": url, "timeout": 5.0, "min_interval": 0,
                **overrides}
    return DiscordSink(DiscordSinkConfig(**settings))


@pytest.fixture
def sink(discord: FakeDiscordWebhook) -> Iterator[DiscordSink]:
    sink = make_sink(discord.url)
    yield sink
    sink.close()


def embed_of(discord: FakeDiscordWebhook, index: int = -1) -> dict[str, Any]:
    body = discord.requests[index].json
    (embed,) = body["embeds"]
    return dict(embed)


def shown(text: str) -> str:
    """What a reader sees: Discord drops the escaping backslashes; the zero-width spaces are
    invisible."""
    return re.sub(r"\\(.)", r"\1", text).replace(ZWSP, "")


def fields(embed: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in embed["fields"]}


# -- delivery ----------------------------------------------------------------------------------


def test_registered_and_documented() -> None:
    assert sink_class("discord") is DiscordSink


def test_delivers_an_alert_as_one_embed_and_returns_the_message_id(
    discord: FakeDiscordWebhook,
) -> None:
    sink = make_sink(discord.url, username="Acme listener")
    assert sink.send(make_alert()) == "1190000000000000001"
    (request,) = discord.requests
    assert (request.method, request.path, request.query) == ("POST", discord.path,
                                                             {"wait": "true"})
    body = request.json
    assert body["allowed_mentions"] == {"parse": []} and body["username"] == "Acme listener"
    assert len(discord.messages) == 1
    embed = embed_of(discord)
    assert shown(embed["title"]) == "⚠️ Acme · mastodon — negative 0.91, urgency high (0.83)"
    assert make_alert().post.text in shown(embed["description"])
    assert {name: shown(value) for name, value in fields(embed).items()} == {
        "Brand": "Acme", "Platform": "mastodon", "Author": "jane (1,234 followers)",
        "Language": "unknown", "Rule": "negative-mentions", "Priority": "normal"}
    assert embed["url"] == "https://mastodon.example/@jane/110000000000000001"
    assert "a1b2c3d4e5f6" in embed["footer"]["text"]
    assert LANGUAGE_WARNING not in embed["description"]
    sink.close()


def test_language_warning_when_no_model_reads_the_post(
    discord: FakeDiscordWebhook, sink: DiscordSink
) -> None:
    sink.send(make_alert(score=make_score(lang="xx", language_supported=False)))
    embed = embed_of(discord)
    assert shown(embed["description"]).startswith(f"⚠️ **{LANGUAGE_WARNING}**")
    assert fields(embed)["Language"] == "xx"


@pytest.mark.parametrize("url", ["javascript:alert(1)", "data:text/html,x", None,
                                 "https://evil.example/\u202eexe"])
def test_only_a_safe_post_url_becomes_a_link(
    discord: FakeDiscordWebhook, sink: DiscordSink, url: str | None
) -> None:
    sink.send(make_alert(url=url))
    embed = embed_of(discord)
    assert "url" not in embed
    assert "javascript" not in str(embed) and "data:text" not in str(embed)


def test_delivers_a_report(discord: FakeDiscordWebhook, sink: DiscordSink) -> None:
    assert sink.send(make_report()) == "1190000000000000001"
    body = discord.requests[0].json
    assert body["allowed_mentions"] == {"parse": []}
    embed = embed_of(discord)
    assert shown(embed["title"]) == "⚠️ Acme: 5× the usual volume of negative posts"
    facts = fields(embed)
    assert (facts["Posts"], facts["Baseline"], facts["Negative"]) == ("120", "24/h", "71%")
    assert shown(facts["Top terms"]) == "outage, login, refund"
    assert shown(facts["Report"]) == "Spike · acme-spikes"
    description = shown(embed["description"])
    assert description.startswith("120 posts in the last hour")
    assert "Post 1 of 2" in description and "Post 2 of 2" in description
    assert "The Acme app is down again, nobody answers." in description
    assert "acme login broken since 9am" in description
    assert "[Open on x](https://x.com/bob/status/2)" in embed["description"]
    assert "Spike" in embed["footer"]["text"] and "r1e2p3o4r5t6" in embed["footer"]["text"]


def test_an_incident_links_its_queue(discord: FakeDiscordWebhook, sink: DiscordSink) -> None:
    queue = "https://listener.example/queue?incident=7"
    sink.send(make_report(kind="incident", numbers={"queue_url": queue}))
    embed = embed_of(discord)
    assert embed["url"] == queue and f"[Open the queue]({queue})" in fields(embed)["Queue"]


# -- Discord's limits --------------------------------------------------------------------------


def test_a_huge_post_fits_discords_limits(discord: FakeDiscordWebhook, sink: DiscordSink) -> None:
    grows = "*_@<[" * 30_000  # every character escaped: twice the size, or more
    huge = make_alert(text=grows + "x" * 100_000, author="@" * 5000, brand="*" * 5000,
                      rules=tuple(f"rule-{i}" * 20 for i in range(200)),
                      score=make_score(lang="<" * 900, language_supported=False))
    assert sink.send(huge) is not None
    body = discord.requests[0].json
    assert limit_errors(body) == [] and message_size(body) <= 6000
    embed = embed_of(discord)
    assert shown(embed["description"]).endswith("…")
    assert len(embed["description"]) <= 4096 and len(embed["title"]) <= 256


def test_a_report_with_many_facts_and_huge_examples_fits(
    discord: FakeDiscordWebhook, sink: DiscordSink
) -> None:
    big = "(" * 3000 + "ω" * 3000
    examples = tuple((make_post(platform_id=str(i), text=big, author="_" * 500,
                                url="https://x.com/" + "p" * 280), make_score())
                     for i in range(12))
    report = make_report(title="#" * 1000, summary="-" * 5000, examples=examples,
                         facts=tuple((f"label {i} " + "[" * 100, "]" * 1000) for i in range(60)),
                         terms=tuple("`" * 100 for _ in range(50)))
    assert sink.send(report) is not None
    body = discord.requests[0].json
    assert limit_errors(body) == [] and message_size(body) <= 6000
    embed = embed_of(discord)
    assert len(embed["fields"]) <= 25 and embed["fields"][-1]["name"] == "More"
    assert "more facts not shown" in embed["fields"][-1]["value"]
    assert "more posts, not shown here" in embed["description"]


def test_the_fake_refuses_what_discord_would_refuse(discord: FakeDiscordWebhook,
                                                    sink: DiscordSink) -> None:
    """The limit checks above are live: an over-long embed is answered 400, posted nowhere,
    and the sink parks it with Discord's own message."""
    import alerts.sinks.discord as module

    real = module.discord_payload
    module.discord_payload = lambda m, u=None: {  # type: ignore[assignment]
        **real(m, u), "embeds": [{"title": "t" * 257}]}
    try:
        with pytest.raises(DeliveryError) as info:
            sink.send(make_alert())
    finally:
        module.discord_payload = real
    assert info.value.retryable is False and info.value.status == 400
    assert "Invalid Form Body (code 50035)" in str(info.value) and discord.messages == []


# -- untrusted text stays inert ----------------------------------------------------------------


def test_mentions_markdown_and_links_in_a_post_arrive_inert(
    discord: FakeDiscordWebhook, sink: DiscordSink
) -> None:
    sink.send(make_alert(text=HOSTILE + CONTROLS, author="<@999> @everyone",
                         brand="**Acme**", rules=("[r](http://evil)",), url="https://ok.example/p"))
    sink.send(make_report(summary=HOSTILE, facts=(("<@&1>", "@here"),), examples=(
        (make_post(text=HOSTILE + CONTROLS, author="<@999>"), make_score()),)))
    for index in (0, 1):
        request = discord.requests[index].json
        assert request["allowed_mentions"] == {"parse": []}  # nobody is pinged, whatever it says
        embed = embed_of(discord, index)
        texts = [embed["title"], embed["description"], *fields(embed), *fields(embed).values()]
        everything = "\n".join(texts)
        for live in ("@everyone", "@here", "<@123>", "<@&456>", "<#789>", "<@999>", "<@&1>",
                     "[x](http://evil)", "||spoiler||", "**bold**", "`code`", "http://",
                     "https://evil", "[r](http", "**Acme**", "\x1b", "\u202e", "\x00"):
            assert live not in everything, (index, live)
        # Yet every character is shown as written: escaped, not removed.
        assert SHOWN in shown(embed["description"]).replace("\n> ", " ")
    assert shown(fields(embed_of(discord, 0))["Author"]).startswith("<@999> @everyone")
    assert embed_of(discord, 0)["url"] == "https://ok.example/p"  # our link, the title's


# -- errors ------------------------------------------------------------------------------------


def test_rate_limit_uses_discords_retry_after(discord: FakeDiscordWebhook,
                                              sink: DiscordSink) -> None:
    discord.enqueue(**rate_limited(1.5, header="9"))
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert())
    # Discord's JSON wins over the headers; rounded up (dispatch keeps whole seconds)
    assert info.value.retry_after == 2 and "discord-test" in str(info.value)
    discord.enqueue(429, "<html>slow down</html>", {"X-RateLimit-Reset-After": "3.25"})
    with pytest.raises(RateLimited) as info:
        sink.send(make_alert())
    assert info.value.retry_after == 4
    assert discord.messages == []


def test_429_then_success_through_dispatch(db: Database, discord: FakeDiscordWebhook) -> None:
    clock = ManualClock()
    ids = seed(db, clock, 2, destination="discord-test")
    sink = make_sink(discord.url)
    discord.enqueue(**rate_limited(4.5))
    result = dispatch(db, {"discord-test": sink}, RetryPolicy(), clock=clock, sleep=clock.sleep,
                      wait_up_to=60, strict=True)
    sink.close()
    assert result.rate_limited == 1 and result.delivered == 2
    assert clock.slept == [5.0] and len(discord.requests) == 3 and len(discord.messages) == 2
    rows = db.query("SELECT id, status, remote_id FROM alerts ORDER BY remote_id")
    assert [(r["status"], r["remote_id"]) for r in rows] == [
        ("delivered", "1190000000000000001"), ("delivered", "1190000000000000002")]
    assert {r["id"] for r in db.query("SELECT id FROM alerts")} == set(ids)


def test_unknown_webhook_is_permanent(discord: FakeDiscordWebhook) -> None:
    wrong = make_sink(discord.url.replace(TOKEN, "tok_deleted_webhook_0000"))
    with pytest.raises(DeliveryError) as info:
        wrong.send(make_alert())
    error = info.value
    assert error.retryable is False and error.status == 404
    assert "Unknown Webhook (code 10015)" in str(error) and "unknown webhook" in str(error)
    assert "tok_deleted_webhook_0000" not in f"{error} {error!r} {error.body_snippet}"


@pytest.mark.parametrize(("status", "said"), [
    (400, "Invalid Form Body"), (401, "Invalid Webhook Token"), (403, "Missing Permissions"),
    (404, "Unknown Webhook")])
def test_client_errors_are_permanent_with_discords_message(
    discord: FakeDiscordWebhook, sink: DiscordSink, status: int, said: str
) -> None:
    discord.enqueue(status, {"message": said, "code": 50000 + status})
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert())
    assert info.value.retryable is False and info.value.status == status
    assert said in str(info.value) and info.value.body_snippet.startswith(said)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 302])
def test_server_errors_are_retryable(discord: FakeDiscordWebhook, sink: DiscordSink,
                                     status: int) -> None:
    discord.enqueue(status, "busy", {"Location": "http://169.254.169.254/"})
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert())
    assert info.value.retryable is True and info.value.status == status
    assert len(discord.requests) == 1  # no redirect followed


def test_network_failures_are_retryable(discord: FakeDiscordWebhook) -> None:
    sink = make_sink(discord.url, timeout=0.3)
    discord.enqueue(HANG_UP)
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert())
    assert info.value.retryable is True
    discord.enqueue(delay=2.0, posted=True)  # posted, but the answer comes too late
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert())
    assert info.value.retryable is True and "duplicate" in str(info.value)
    url = discord.url
    discord.stop()
    with pytest.raises(DeliveryError) as info:
        make_sink(url).send(make_alert())
    assert info.value.retryable is True and "could not reach Discord" in str(info.value)


def test_a_2xx_without_a_message_id_is_retried(discord: FakeDiscordWebhook,
                                               sink: DiscordSink) -> None:
    discord.enqueue(200, "<html>captive portal</html>")
    with pytest.raises(DeliveryError) as info:
        sink.send(make_alert())
    assert info.value.retryable is True and "without a message id" in str(info.value)


def test_check_reads_the_webhook_without_posting(discord: FakeDiscordWebhook,
                                                 sink: DiscordSink) -> None:
    assert "channel 1170000000000000009" in sink.check()
    assert [r.method for r in discord.requests] == ["GET"] and discord.messages == []


def test_secrets_never_leak(discord: FakeDiscordWebhook, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sink = make_sink(discord.url, timeout=0.3)
    errors: list[Exception] = []
    for status, body, delay in [(200, None, 0.0), (404, {"message": "Unknown Webhook"}, 0.0),
                                (500, "x", 0.0), (429, {"retry_after": 1}, 0.0),
                                (200, None, 2.0), (HANG_UP, None, 0.0),
                                (502, f"proxy failed for {discord.url}", 0.0),
                                (400, {"message": f"bad {TOKEN}"}, 0.0)]:
        discord.enqueue(status, body, delay=delay, posted=status == 200)
        try:
            sink.send(make_alert())
        except (DeliveryError, RateLimited) as exc:
            errors.append(exc)
    sink.close()
    assert len(errors) == 7 and "HTTP Request" in caplog.text  # httpx logged: the check is live
    config = DiscordSinkConfig(name="d", webhook_url=discord.url)
    visible = [caplog.text, repr(sink), repr(config), str(config),
               *(r.getMessage() for r in caplog.records)]
    visible += [f"{e!s} {e!r} {getattr(e, 'body_snippet', '')}" for e in errors]
    for text in visible:
        assert TOKEN not in text and discord.path not in text


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://discord.com/api/webhooks/1/tok_secret", "https://evil.example/api/webhooks/1/tok_secret",
    "https://discord.com.evil.example/api/webhooks/1/tok_secret",
    "https://discord.com/api/users/1/tok_secret", "https://user:tok_secret@discord.com/api/webhooks/1/x",
    "https://discord.com/api/webhooks/1/tok_secret?thread_id=2", "https://discord.com/api/webhooks/1/tok secret",
    "ftp://discord.com/api/webhooks/1/tok_secret", "http://10.0.0.8/api/webhooks/1/tok_secret"])
def test_unsafe_or_foreign_urls_are_refused(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        DiscordSinkConfig(name="d", webhook_url=url)
    assert "webhook_url" in str(info.value) and "tok_secret" not in str(info.value)


@pytest.mark.parametrize("url", [
    "https://discord.com/api/webhooks/1180000000000000001/tok_ABC-def",
    "https://discordapp.com/api/v10/webhooks/1/tok", "https://canary.discord.com/api/webhooks/1/t/",
    "http://127.0.0.1:8080/api/webhooks/1/tok"])
def test_discord_and_local_test_urls_are_accepted(url: str) -> None:
    assert DiscordSinkConfig(name="d", webhook_url=url).webhook_url == url


@pytest.mark.parametrize("username", ["", "x" * 81, "My Discord bot", "clyde", "a\x00b"])
def test_usernames_discord_refuses_are_refused(username: str) -> None:
    with pytest.raises(ValidationError):
        DiscordSinkConfig(name="d", webhook_url="https://discord.com/api/webhooks/1/t",
                          username=username)


def test_config_repr_hides_the_url() -> None:
    config = DiscordSinkConfig(name="d", webhook_url="https://discord.com/api/webhooks/1/tok_X")
    assert "tok_X" not in repr(config)
