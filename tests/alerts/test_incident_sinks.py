"""Incident updates through every sink: the real clients (slack_sdk, httpx, smtplib) over real
sockets to the fakes on 127.0.0.1. An update with ``reply_to`` (what the first send returned)
adds to the first message's conversation, once, even when the answer to that request is lost
and dispatch tries again (``attempt=2``); with ``reply_to`` None it is a message of its own.
The last test runs both through a real SQLite outbox and dispatch."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.dispatch import RetryPolicy, dispatch
from alerts.render.github import has_marker
from alerts.render.jira import has_comment_marker as jira_has_marker
from alerts.render.zendesk import comment_marker
from alerts.sinks.console import ConsoleSink, ConsoleSinkConfig
from alerts.sinks.email import EmailSink, EmailSinkConfig
from alerts.sinks.github import GitHubSink, GitHubSinkConfig
from alerts.sinks.jira import JiraSink, JiraSinkConfig
from alerts.sinks.slack import SlackSink, SlackSinkConfig
from alerts.sinks.slack.bot import EVENT_TYPE
from alerts.sinks.webhook import WebhookSink, WebhookSinkConfig
from alerts.sinks.zendesk import ZendeskSink, ZendeskSinkConfig
from listener.core.errors import DeliveryError, RateLimited
from listener.core.models import Page, Post, Report, Score
from storage import db as store
from storage.reports import enqueue_report, report_alert_id
from tests.alerts.test_dispatch import ManualClock
from tests.alerts.test_incident_render import FIRST_ID, QUEUE, UPDATE_ID, incident, update
from tests.fakes.base import HANG_UP
from tests.fakes.github_api import FakeGitHub
from tests.fakes.jira_api import FakeJira, comment_path, valid_adf
from tests.fakes.slack import BOT_TOKEN, CHANNEL_ID, FakeSlackAPI, FakeSlackWebhook, api_path
from tests.fakes.smtp_server import ACCEPT_THEN_HANG_UP, FakeSMTPServer
from tests.fakes.webhook_receiver import FakeWebhookReceiver
from tests.fakes.zendesk_api import TICKETS, FakeZendesk

POST_MESSAGE = api_path("chat.postMessage")
ISSUE_COMMENTS = "/repos/acme/support/issues/1/comments"


def lost(send: Any, message: Any) -> DeliveryError:
    """Send ``message`` expecting the (scripted) lost answer: a retryable DeliveryError."""
    with pytest.raises(DeliveryError) as info:
        send(message)
    assert info.value.retryable is True
    return info.value


# -- Slack ---------------------------------------------------------------------------------------


@pytest.fixture
def slack() -> Iterator[FakeSlackAPI]:
    with FakeSlackAPI() as fake:
        yield fake


def slack_bot(fake: FakeSlackAPI, timeout: float = 5.0) -> SlackSink:
    return SlackSink(SlackSinkConfig(name="slack", token=BOT_TOKEN, channel=CHANNEL_ID,
                                     base_url=fake.api_url, timeout=timeout, min_interval=0))


def test_slack_bot_posts_the_update_in_the_incident_thread(slack: FakeSlackAPI) -> None:
    sink = slack_bot(slack)
    parent = sink.send(incident())
    ts = sink.send(update(parent))
    sink.close()
    assert [m["ts"] for m in slack.top_level()] == [parent]  # one message in the channel
    (reply,) = slack.replies(parent or "")
    assert reply["ts"] == ts and reply["thread_ts"] == parent
    assert reply["metadata"] == {"event_type": EVENT_TYPE, "event_payload": {"alert_id": UPDATE_ID}}
    assert reply["blocks"][0]["text"]["text"].startswith("⚠️ Acme incident: 3 more reports")
    assert f"<{QUEUE.replace('&', '&amp;')}|Open the queue>" in str(reply["blocks"])


def test_slack_bot_retry_after_a_lost_answer_finds_the_reply_in_the_thread(
    slack: FakeSlackAPI
) -> None:
    sink = slack_bot(slack)
    parent = sink.send(incident()) or ""
    slack.enqueue(HANG_UP, path=POST_MESSAGE, commit=True)  # posted, then the connection drops
    lost(sink.send, update(parent))
    for _ in range(3):
        slack.post_message(text="people talking in the channel meanwhile")
    ts = sink.send(update(parent, attempt=2))
    sink.close()
    (reply,) = slack.replies(parent)
    assert ts == reply["ts"] and len(slack.calls("chat.postMessage")) == 2  # first + update
    (lookup,) = slack.calls("conversations.replies")
    assert lookup.params["ts"] == parent and lookup.params["include_all_metadata"] == "1"


def test_slack_bot_rate_limited_thread_lookup_waits_instead_of_posting(
    slack: FakeSlackAPI
) -> None:
    sink = slack_bot(slack)
    parent = sink.send(incident()) or ""
    slack.enqueue(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "20"},
                  path=api_path("conversations.replies"))
    with pytest.raises(RateLimited) as info:
        sink.send(update(parent, attempt=2))
    sink.close()
    assert info.value.retry_after == 20 and slack.replies(parent) == []


def test_slack_bot_update_without_a_first_message_is_a_message_of_its_own(
    slack: FakeSlackAPI
) -> None:
    sink = slack_bot(slack)
    ts = sink.send(update(None))
    sink.close()
    (message,) = slack.top_level()
    assert message["ts"] == ts and "thread_ts" not in message
    assert "thread_ts" not in slack.calls("chat.postMessage")[0].params


def test_slack_webhook_posts_the_update_as_a_message_of_its_own() -> None:
    with FakeSlackWebhook() as hook:
        sink = SlackSink(SlackSinkConfig(name="hook", webhook_url=hook.url, timeout=5,
                                         min_interval=0))
        assert sink.send(incident()) is None
        assert sink.send(update("1767225601.000001")) is None  # a webhook has no thread
        sink.close()
        first, later = hook.posted
    assert "thread_ts" not in later
    assert later["blocks"][0]["text"]["text"].startswith("⚠️ Acme incident: 3 more reports")
    assert first["blocks"][0]["text"]["text"].startswith("⚠️ Acme: 12 customers")
    assert "Open the queue>" in str(later["blocks"])


# -- Zendesk -------------------------------------------------------------------------------------


def zendesk_sink(fake: FakeZendesk, **overrides: Any) -> ZendeskSink:
    return ZendeskSink(ZendeskSinkConfig(**{
        "name": "zd", "base_url": fake.base_url, "email": fake.email, "api_token": fake.token,
        "timeout": 5, "min_interval": 0, **overrides}))


def test_zendesk_update_is_a_comment_on_the_incident_ticket() -> None:
    with FakeZendesk() as fake:
        sink = zendesk_sink(fake)
        ticket = sink.send(incident()) or ""
        assert sink.send(update(ticket)) == ticket  # the same remote id
        tickets, comments, put = fake.tickets, fake.comments(ticket), fake.requests[-1]
    assert len(tickets) == 1 and len(comments) == 2  # the description, then the update
    assert (put.method, put.path) == ("PUT", f"/api/v2/tickets/{ticket}.json")
    assert "idempotency-key" not in put.headers  # Zendesk keeps keys for creates only
    assert set(put.json["ticket"]) == {"comment"}  # nothing else about the ticket changes
    comment = comments[-1]
    assert comment["public"] is False  # an internal note, as the sink's comments are
    body = comment["body"]
    assert body.splitlines()[-1] == comment_marker(UPDATE_ID)
    assert "- New reports: 3" in body and f"- Queue: {QUEUE}" in body
    assert "The Acme app is down again, nobody answers." in body


def test_zendesk_update_follows_the_public_setting() -> None:
    with FakeZendesk() as fake:
        sink = zendesk_sink(fake, public=True)
        ticket = sink.send(incident()) or ""
        sink.send(update(ticket))
        assert [c["public"] for c in fake.comments(ticket)] == [True, True]


def test_zendesk_retry_after_a_lost_answer_adds_no_second_comment() -> None:
    with FakeZendesk() as fake:
        sink = zendesk_sink(fake)
        ticket = sink.send(incident()) or ""
        fake.enqueue(HANG_UP, method="PUT", create=True)  # added, but the answer never comes
        lost(sink.send, update(ticket))
        assert sink.send(update(ticket, attempt=2)) == ticket
        comments, requests = fake.comments(ticket), fake.requests
    assert len(comments) == 3 - 1  # the description and ONE update
    looked = requests[-1]
    assert (looked.method, looked.path) == ("GET", f"/api/v2/tickets/{ticket}/comments.json")
    assert looked.query_lists["sort_order"] == ["desc"]
    assert looked.query_lists["page[size]"] == ["100"]
    assert [r.method for r in requests] == ["POST", "PUT", "GET"]


def test_zendesk_timeout_says_the_retry_looks_among_the_comments() -> None:
    with FakeZendesk() as fake:
        ticket = zendesk_sink(fake).send(incident()) or ""
        fake.enqueue(delay=2.0, method="PUT", create=True)
        error = lost(zendesk_sink(fake, timeout=0.3).send, update(ticket))
        assert "looks among the ticket's comments" in str(error)
        assert zendesk_sink(fake).send(update(ticket, attempt=2)) == ticket
        assert len(fake.comments(ticket)) == 2


def test_zendesk_retry_with_nothing_found_adds_the_comment() -> None:
    with FakeZendesk() as fake:
        sink = zendesk_sink(fake)
        ticket = sink.send(incident()) or ""
        assert sink.send(update(ticket, attempt=3)) == ticket
        assert len(fake.comments(ticket)) == 2 and len(fake.tickets) == 1


def test_zendesk_update_without_a_first_ticket_opens_its_own() -> None:
    with FakeZendesk() as fake:
        sink = zendesk_sink(fake)
        sink.send(incident())
        own = sink.send(update(None))
        tickets = fake.tickets
    assert len(tickets) == 2 and own == str(tickets[1]["id"])
    assert tickets[1]["external_id"] == UPDATE_ID
    assert "listener-incident-update" in tickets[1]["tags"]


def test_zendesk_closed_ticket_gets_a_follow_up_once() -> None:
    with FakeZendesk() as fake:
        sink = zendesk_sink(fake)
        ticket = sink.send(incident()) or ""
        fake.close(ticket)
        fake.enqueue(HANG_UP, method="POST", create=True)  # the follow-up's answer is lost
        lost(sink.send, update(ticket))
        follow_up = sink.send(update(ticket, attempt=2))
        tickets = fake.tickets
        create = [r for r in fake.requests if r.method == "POST"][-1]
    assert len(tickets) == 2 and follow_up == str(tickets[1]["id"])
    assert create.json["ticket"]["via_followup_source_id"] == int(ticket)


def test_zendesk_deleted_ticket_means_a_ticket_of_its_own() -> None:
    with FakeZendesk() as fake:
        sink = zendesk_sink(fake)
        ticket = sink.send(incident()) or ""
        fake.delete(ticket)
        own = sink.send(update(ticket))
        assert own == str(fake.tickets[0]["id"]) and own != ticket
        assert sink.send(update(ticket, attempt=2)) == own  # found by external_id
        assert len(fake.tickets) == 1


@pytest.mark.parametrize("method", ["PUT", "GET"])
def test_zendesk_rate_limit_on_the_comment_or_its_lookup(method: str) -> None:
    with FakeZendesk() as fake:
        sink = zendesk_sink(fake)
        ticket = sink.send(incident()) or ""
        fake.enqueue(429, {"error": "TooManyRequests"}, {"Retry-After": "45"}, method=method)
        with pytest.raises(RateLimited) as info:
            sink.send(update(ticket, attempt=2 if method == "GET" else 1))
        assert info.value.retry_after == 45 and len(fake.comments(ticket)) == 1


def test_zendesk_reply_to_that_is_no_ticket_id_opens_a_ticket() -> None:
    with FakeZendesk() as fake:
        zendesk_sink(fake).send(update("../users/1"))
        assert [(r.method, r.path) for r in fake.requests] == [("POST", TICKETS)]


# -- Jira ----------------------------------------------------------------------------------------


def jira_sink(fake: FakeJira, **overrides: Any) -> JiraSink:
    return JiraSink(JiraSinkConfig(**{
        "name": "jira", "base_url": fake.base_url, "email": fake.email, "api_token": fake.token,
        "project_key": "SUP", "timeout": 5, "min_interval": 0, **overrides}))


def test_jira_update_is_a_comment_on_the_incident_issue() -> None:
    with FakeJira() as fake:
        sink = jira_sink(fake)
        key = sink.send(incident())
        assert key == "SUP-1" and sink.send(update(key)) == key
        (comment,) = fake.comments_of(key)
        post = fake.requests[-1]
    assert len(fake.issues) == 1 and post.path == comment_path(key)
    body = comment["body"]
    assert valid_adf(body) and jira_has_marker(body, UPDATE_ID)
    links = [m["attrs"]["href"] for n in _walk(body) for m in n.get("marks", [])]
    assert links[0] == QUEUE


def test_jira_retry_after_a_lost_answer_adds_no_second_comment() -> None:
    with FakeJira() as fake:
        sink = jira_sink(fake)
        key = sink.send(incident()) or ""
        fake.enqueue(HANG_UP, path=comment_path(key), commit=True)
        lost(sink.send, update(key))
        assert sink.send(update(key, attempt=2)) == key
        comments, lookup = fake.comments_of(key), fake.requests[-1]
    assert len(comments) == 1 and len(fake.issues) == 1
    assert (lookup.method, lookup.path) == ("GET", comment_path(key))
    assert lookup.query == {"orderBy": "-created", "maxResults": "100"}


def test_jira_update_without_a_first_issue_or_with_a_deleted_one_opens_its_own() -> None:
    with FakeJira() as fake:
        sink = jira_sink(fake)
        assert sink.send(update(None)) == "SUP-1"
        key = sink.send(incident()) or ""
        fake.delete(key)
        assert sink.send(update(key, alert_id="0bda7e0a11e")) == "SUP-3"
        labels = [i["fields"]["labels"] for i in fake.issues]
    assert [label[-1] for label in labels] == ["listener-incident-update"] * 2


def test_jira_rate_limited_comment_waits() -> None:
    with FakeJira() as fake:
        sink = jira_sink(fake)
        key = sink.send(incident()) or ""
        fake.enqueue(429, {"errorMessages": ["Rate limit exceeded."]}, {"Retry-After": "12"},
                     path=comment_path(key))
        with pytest.raises(RateLimited) as info:
            sink.send(update(key))
        assert info.value.retry_after == 12 and fake.comments_of(key) == []


# -- GitHub --------------------------------------------------------------------------------------


def github_sink(fake: FakeGitHub) -> GitHubSink:
    return GitHubSink(GitHubSinkConfig(name="gh", base_url=fake.base_url, token=fake.token,
                                       owner="acme", repo="support", timeout=5, min_interval=0))


def test_github_update_is_a_comment_on_the_incident_issue() -> None:
    with FakeGitHub() as fake:
        sink = github_sink(fake)
        number = sink.send(incident())
        assert number == "1" and sink.send(update(number)) == number
        (comment,) = fake.comments_on(1)
        post = fake.requests[-1]
    assert len(fake.issues) == 1 and (post.method, post.path) == ("POST", ISSUE_COMMENTS)
    assert has_marker(comment["body"], UPDATE_ID) and not has_marker(comment["body"], FIRST_ID)
    assert f"[Open the queue](<{QUEUE}>)" in comment["body"]


def test_github_retry_after_a_lost_answer_adds_no_second_comment() -> None:
    with FakeGitHub() as fake:
        sink = github_sink(fake)
        number = sink.send(incident()) or ""
        fake.enqueue(HANG_UP, path=ISSUE_COMMENTS, commit=True)
        lost(sink.send, update(number))
        assert sink.send(update(number, attempt=2)) == number
        assert len(fake.comments_on(1)) == 1 and len(fake.issues) == 1
        assert [r.method for r in fake.requests] == ["POST", "POST", "GET"]


def test_github_retry_reads_the_newest_pages_of_a_long_discussion() -> None:
    with FakeGitHub() as fake:
        sink = github_sink(fake)
        number = sink.send(incident()) or ""
        for i in range(150):
            fake.add_comment(number, f"comment {i}")
        fake.enqueue(HANG_UP, path=ISSUE_COMMENTS, commit=True)
        lost(sink.send, update(number))
        for i in range(120):
            fake.add_comment(number, f"later comment {i}")
        assert sink.send(update(number, attempt=2)) == number
        pages = [r.query["page"] for r in fake.requests if r.method == "GET"]
        updates = [c for c in fake.comments_on(1) if has_marker(c["body"], UPDATE_ID)]
    assert len(updates) == 1 and pages == ["1", "3", "2"]  # 271 comments: the last page first


def test_github_update_without_a_first_issue_or_with_a_deleted_one_opens_its_own() -> None:
    with FakeGitHub() as fake:
        sink = github_sink(fake)
        assert sink.send(update(None)) == "1"
        number = sink.send(incident()) or ""
        fake.delete_issue(number)
        assert sink.send(update(number, alert_id="0bda7e0a11e")) == "3"
        assert sink.send(update(number, alert_id="0bda7e0a11e", attempt=2)) == "3"
        assert len(fake.issues) == 3 and fake.comments == []


def test_github_secondary_rate_limit_on_a_comment_waits() -> None:
    with FakeGitHub() as fake:
        sink = github_sink(fake)
        number = sink.send(incident()) or ""
        fake.enqueue(429, {"message": "You have exceeded a secondary rate limit."},
                     {"retry-after": "30"}, path=ISSUE_COMMENTS)
        with pytest.raises(RateLimited) as info:
            sink.send(update(number))
        assert info.value.retry_after == 30 and fake.comments == []


# -- e-mail ----------------------------------------------------------------------------------------


def email_sink(port: int) -> EmailSink:
    return EmailSink(EmailSinkConfig(name="mail", host="127.0.0.1", port=port, security="none",
                                     from_address="listener@example.com",
                                     to=["ops@example.com"], timeout=5))


def test_email_update_answers_the_incident_mail() -> None:
    with FakeSMTPServer() as smtp:
        sink = email_sink(smtp.port)
        first = sink.send(incident()) or ""
        own = sink.send(update(first))
        mails = [m.message for m in smtp.messages]
    assert first == f"<{FIRST_ID}@example.com>" and own == f"<{UPDATE_ID}@example.com>"
    answer = mails[1]
    assert answer["In-Reply-To"] == first and answer["References"] == first
    assert answer["Message-ID"] == own and mails[0]["In-Reply-To"] is None
    assert answer["Subject"] == ("Re: [listener] [!] Acme incident: 3 more reports — "
                                 "14 customers, 18 posts in all")
    assert f"- Queue: {QUEUE}" in answer.get_body(("plain",)).get_content()


def test_email_lost_answer_resends_the_same_threaded_mail() -> None:
    """SMTP cannot be asked whether it took a mail: the one duplicate that remains carries the
    same Message-ID (clients collapse it) and answers the same first mail."""
    with FakeSMTPServer() as smtp:
        sink = email_sink(smtp.port)
        first = sink.send(incident()) or ""
        smtp.reply("DATA", ACCEPT_THEN_HANG_UP)
        lost(sink.send, update(first))
        own = sink.send(update(first, attempt=2))
        answers = [m.message for m in smtp.messages[1:]]
    assert [(m["Message-ID"], m["In-Reply-To"]) for m in answers] == [(own, first)] * 2


@pytest.mark.parametrize("reply_to", [None, "<a@b>\r\nBcc: evil@example.com", "no id here"])
def test_email_update_without_a_usable_first_mail_is_a_mail_of_its_own(
    reply_to: str | None
) -> None:
    with FakeSMTPServer() as smtp:
        email_sink(smtp.port).send(update(reply_to))
        (received,) = smtp.messages
    mail = received.message
    assert mail["In-Reply-To"] is None and mail["References"] is None and mail["Bcc"] is None
    assert mail["Subject"].startswith("[listener] [!] Acme incident")
    assert received.rcpt_tos == ("ops@example.com",)


# -- webhook and console ---------------------------------------------------------------------------


def test_webhook_update_names_the_first_report_and_is_deduplicated_on_retry() -> None:
    clock = ManualClock()
    with FakeWebhookReceiver(clock=lambda: clock().timestamp()) as receiver:
        def sink(timeout: float = 5.0) -> WebhookSink:
            return WebhookSink(WebhookSinkConfig(
                name="hook", url=receiver.url, secret=receiver.secret, timeout=timeout,
                allow_insecure_http=True, allow_private_network=True), clock=clock)
        receipt = sink().send(incident())
        receiver.enqueue(delay=2.0, accept=True)  # accepted, but the answer comes too late
        lost(sink(timeout=0.3).send, update(receipt))
        assert sink().send(update(receipt, attempt=2)) == "evt_2"
        first, later = receiver.deliveries
    assert receipt == "evt_1" and first["reply_to"] is None and first["kind"] == "incident"
    assert (later["kind"], later["reply_to"], later["parent_alert_id"]) == (
        "incident_update", "evt_1", FIRST_ID)
    assert later["numbers"]["queue_url"] == QUEUE


def test_console_prints_an_update_like_any_report() -> None:
    out = io.StringIO()
    ConsoleSink(ConsoleSinkConfig(name="console"), stream=out).send(update("ignored"))
    text = out.getvalue()
    assert text.startswith("[!] Acme incident: 3 more reports") and f"- Queue: {QUEUE}" in text


# -- through the outbox ----------------------------------------------------------------------------


def test_an_incident_and_its_update_through_dispatch_once_each(tmp_path: Path) -> None:
    """enqueue_report → dispatch → the first message; then the update (parent_id): dispatch gives
    each sink the remote id of the first message as reply_to, every update's answer is lost once,
    and the retry still adds exactly one comment or thread reply."""
    clock = ManualClock()
    db = store.open_db(tmp_path / "listener.db")
    ids = _store_posts(db, clock)
    first = Report(kind="incident", name="incidents", title="Acme: 2 customers report the same "
                   "problem", window_start=clock() - timedelta(minutes=20), window_end=clock(),
                   brand="Acme", facts=[("Queue", QUEUE)], example_post_ids=ids[:1],
                   numbers={"incident": "5f0c2a9e", "queue_url": QUEUE}, priority="high",
                   key="incident\x1f5f0c2a9e")
    dests = ["zd", "jira", "gh", "slack"]
    assert enqueue_report(db, first, dests, clock()) == 4
    with FakeZendesk() as zd, FakeJira() as jira, FakeGitHub() as gh, FakeSlackAPI() as slack:
        sinks = {"zd": zendesk_sink(zd), "jira": jira_sink(jira), "gh": github_sink(gh),
                 "slack": slack_bot(slack)}
        result = dispatch(db, sinks, RetryPolicy(backoff_initial=10), clock=clock,
                          sleep=clock.sleep, strict=True)
        assert result.delivered == 4
        later = Report(kind="incident_update", name="incidents",
                       title="Acme incident: 1 more report — 3 customers, 3 posts in all",
                       window_start=clock(), window_end=clock(), brand="Acme",
                       facts=[("New reports", "1"), ("Queue", QUEUE)], example_post_ids=ids[1:],
                       numbers={"incident": "5f0c2a9e", "new_post_ids": ids[1:],
                                "queue_url": QUEUE}, priority="high",
                       key="incident-update\x1f5f0c2a9e\x1f1", parent_id=first.id)
        assert enqueue_report(db, later, dests, clock()) == 4
        zd.enqueue(HANG_UP, method="PUT", create=True)
        jira.enqueue(HANG_UP, path=comment_path("SUP-1"), commit=True)
        gh.enqueue(HANG_UP, path=ISSUE_COMMENTS, commit=True)
        slack.enqueue(HANG_UP, path=POST_MESSAGE, commit=True)
        result = dispatch(db, sinks, RetryPolicy(backoff_initial=10), clock=clock,
                          sleep=clock.sleep, wait_up_to=3600, strict=True)
        parent = slack.top_level()[0]["ts"]
        counts = (len(zd.tickets), len(zd.comments(zd.tickets[0]["id"])), len(jira.issues),
                  len(jira.comments_of("SUP-1")), len(gh.issues), len(gh.comments_on(1)),
                  len(slack.top_level()), len(slack.replies(parent)))
    assert (result.delivered, result.retried, result.failed) == (4, 4, 0)
    assert counts == (1, 2, 1, 1, 1, 1, 1, 1)
    rows = {r["destination"]: (r["status"], r["attempts"], r["remote_id"]) for r in db.query(
        "SELECT destination, status, attempts, remote_id FROM alerts WHERE id IN (?,?,?,?)",
        [report_alert_id(later, d) for d in dests])}
    assert {d: row[:2] for d, row in rows.items()} == {d: ("delivered", 2) for d in dests}
    assert rows["jira"][2] == "SUP-1" and rows["gh"][2] == "1"
    assert rows["zd"][2] == str(zd.tickets[0]["id"]) and rows["slack"][2] != parent
    db.close()


def _store_posts(db: Any, clock: ManualClock) -> list[int]:
    posts = [Post("x", "1", "acme login is down", clock(), source="s", author="ann",
                  url="https://x.com/ann/1"),
             Post("x", "2", "acme down for me too", clock(), source="s", author="bo")]
    store.store_page(db, "s", Page(posts=posts), clock())
    ids = [r["id"] for r in db.query("SELECT id FROM posts ORDER BY id")]
    store.save_scores(db, [(i, Score("negative", 0.9, 0.08, 0.02, 0.7, "m", "1"), None)
                           for i in ids], clock())
    return ids


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for child in node.get("content", []):
            yield from _walk(child)
