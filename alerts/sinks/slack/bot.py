"""Slack with a bot token: ``chat.postMessage`` through slack_sdk's ``WebClient`` (with the sinks'
answer cap: :mod:`alerts.sinks.slack.transport`).

What a bot token adds over an incoming webhook: Slack answers with the message's ``ts``, which
dispatch keeps as the alert's remote id; a follow-up post from the same conversation (dispatch
sets ``AlertMessage.reply_to`` from ``Post.thread``) is posted as a reply under the first alert
(``thread_ts``); so is an incident's update (a ``ReportMessage`` of kind ``incident_update``
whose ``reply_to`` is the ``ts`` of the incident's first message here), so the channel sees one
message per incident and its new reports gather in that message's thread, without a ping each;
a report's chart is uploaded into the report's thread (``files_upload_v2``); and a retry can
find out whether an earlier attempt landed.

An update whose first message never reached this channel (``reply_to`` None: it was parked as
failed) is posted as a message of its own; so is one whose thread Slack refuses (a thread it
will not reply in: ``cannot_reply_to_message`` and the like). The parent message is not edited
(``chat.update`` would need the whole first message rendered again, which the update does not
carry, and could overwrite what an agent reacted to): the thread and its title carry the count.

Exactly-once effect. Slack has no idempotency key, so every message carries our alert id as
message metadata (event type ``listener_alert``). Dispatch commits each attempt *before* the
request goes out, so when the process died, or the answer was lost, after Slack accepted a
message, the next try has ``attempt > 1``: it first reads the newest :data:`LOOKUP_LIMIT`
messages of the channel with their metadata (``conversations.history``; for a reply, the first
:data:`LOOKUP_LIMIT` replies of its thread through ``conversations.replies``) and returns the
``ts`` of the message carrying our alert id instead of posting again. What remains open:

- more than :data:`LOOKUP_LIMIT` messages in the channel (or thread) between the lost answer
  and the retry: the earlier message is not seen and the alert is posted twice;
- ``channel`` given as a name in a process that has not posted yet: history needs the channel
  ID (learnt from Slack's first answer), so set ``channel`` to the ID to close this;
- a token without ``channels:history`` / ``groups:history``: Slack refuses the check; it is
  logged and the alert is posted (at least once rather than never);
- a report whose chart upload fails is still delivered (logged), and a crash between a report
  and its chart leaves the report without chart.

Scopes: ``chat:write``; ``channels:history`` (public) or ``groups:history`` (private channel)
for the check; ``files:write`` for report charts. Slack caps ``conversations.history`` and
``.replies`` at one call a minute and 15 messages for commercially distributed apps outside its
Marketplace (since 2025); an internal app, which is what a self-hosted listener uses, is not
affected. Retries belong to dispatch: the client gets ``retry_handlers=[]``, and every refused
call is mapped by :mod:`alerts.sinks.slack.errors`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from alerts.render.common import excerpt, strip_controls
from alerts.render.slack import CHART_IN_THREAD, slack_payload
from alerts.sinks.slack.config import SlackSinkConfig
from alerts.sinks.slack.errors import THREAD_CODES, api_error, network_error
from listener.core.errors import ConfigError, DeliveryError, MissingDependency, RateLimited
from listener.core.models import AlertMessage, ReportMessage

if TYPE_CHECKING:
    from slack_sdk.web import SlackResponse


log = logging.getLogger(__name__)

EVENT_TYPE = "listener_alert"
LOOKUP_LIMIT = 100
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{8,}$")
_MAYBE_POSTED = "; Slack may have posted it: the retry looks for it before posting again"


def is_channel_id(channel: str) -> bool:
    """``C0123ABCDEF`` (public), ``G…`` (private), ``D…`` (direct message), not a name."""
    return bool(_CHANNEL_ID.match(channel))


class SlackBot:
    """Posts alerts and reports as the app's bot user, threads follow-ups, uploads charts."""

    def __init__(self, config: SlackSinkConfig, logger: logging.Logger) -> None:
        """``logger`` is the one the client writes to, with the token-masking filter on it."""
        try:
            from alerts.sinks.slack.transport import web_client
        except ImportError as exc:  # optional extra
            raise MissingDependency("slack_sdk", "slack") from exc
        if not config.token or not config.channel:  # the config's validator already insists
            raise ConfigError(f"Slack destination '{config.name}': a bot token needs a channel",
                              key="channel")
        self.name = config.name
        self.channel = config.channel
        self._channel_id = config.channel if is_channel_id(config.channel) else None
        self._timeout = config.timeout
        self._secrets = (config.token,)
        self._client = web_client(
            f"Slack destination '{self.name}'", token=config.token,
            base_url=config.base_url + "/", timeout=config.timeout, retry_handlers=[],
            logger=logger,
        )

    def send(self, message: AlertMessage | ReportMessage) -> str | None:
        """Post (or find the earlier post of) ``message``; returns the message ``ts``."""
        where = f"Slack destination '{self.name}' (alert {message.alert_id})"
        thread = message.reply_to or None  # a follow-up alert, or an incident's update
        if message.attempt > 1:
            earlier = self._find_earlier(message.alert_id, thread, where)
            if earlier is not None:
                log.info("%s: attempt %d found the message an earlier attempt posted (ts %s)",
                         where, message.attempt, earlier)
                return earlier
        payload = slack_payload(message, CHART_IN_THREAD)
        response = self._post(payload, message.alert_id, thread, where)
        channel = response.get("channel")
        if isinstance(channel, str) and is_channel_id(channel):
            self._channel_id = channel  # history and uploads need the ID, not a name
        ts = response.get("ts")
        if not isinstance(ts, str) or not ts:
            log.warning("%s: Slack posted the message but named no ts; it cannot be threaded",
                        where)
            return None
        if isinstance(message, ReportMessage) and message.chart_png:
            posted = response.get("message")
            parent = posted.get("thread_ts") if isinstance(posted, dict) else None
            self._upload_chart(message, message.chart_png,
                               parent if isinstance(parent, str) and parent else ts, where)
        return ts

    def check(self) -> str:
        """``listener doctor``: the token (``auth.test``) and, with a channel ID, that the bot
        can read the channel (what the retry check needs); posts nothing."""
        where = f"Slack destination '{self.name}'"
        who = self._call("auth.test", where, self._client.auth_test)
        done = f"token accepted (workspace {who.get('team')!r}, bot user {who.get('user')!r})"
        channel_id = self._channel_id
        if channel_id is None:
            return f"{done}; channel '{self.channel}' is a name: set its ID to check it"
        self._call("conversations.history", where, lambda: self._client.conversations_history(
            channel=channel_id, limit=1))
        return f"{done}; channel {channel_id} readable"

    # -- the calls -------------------------------------------------------------------------

    def _post(
        self, payload: dict[str, Any], alert_id: str, thread: str | None, where: str
    ) -> SlackResponse:
        """chat.postMessage; a thread Slack will not reply in gets the message on its own."""
        metadata = {"event_type": EVENT_TYPE, "event_payload": {"alert_id": alert_id}}

        def post(thread_ts: str | None) -> SlackResponse:
            return self._client.chat_postMessage(
                channel=self.channel, text=payload["text"], blocks=payload["blocks"],
                metadata=metadata, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False,
            )

        try:
            return self._call("chat.postMessage", where, lambda: post(thread), _MAYBE_POSTED)
        except DeliveryError as exc:
            if thread is None or exc.body_snippet not in THREAD_CODES:
                raise
            log.warning("%s: Slack refused a reply in thread %s (%s); posting it on its own",
                        where, thread, exc.body_snippet)
        return self._call("chat.postMessage", where, lambda: post(None), _MAYBE_POSTED)

    def _find_earlier(self, alert_id: str, thread: str | None, where: str) -> str | None:
        """The ts of a message carrying ``alert_id`` in its metadata, among the newest ones."""
        channel = self._channel_id
        if channel is None:
            log.warning(
                "%s: cannot check whether an earlier attempt was posted: channel '%s' is a name "
                "and Slack's history needs its ID; set channel to the ID (C0123ABCDEF). "
                "Posting it again may show it twice", where, self.channel,
            )
            return None
        common: dict[str, Any] = {"channel": channel, "limit": LOOKUP_LIMIT,
                                  "include_all_metadata": True}
        try:
            if thread is not None:
                response = self._call("conversations.replies", where, lambda: (
                    self._client.conversations_replies(ts=thread, **common)))
            else:
                response = self._call("conversations.history", where, lambda: (
                    self._client.conversations_history(**common)))
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.warning("%s: could not check for an earlier post (%s); posting it again may "
                        "show it twice", where, exc)
            return None
        return _ts_with_alert(response.get("messages"), alert_id)

    def _upload_chart(self, report: ReportMessage, png: bytes, ts: str, where: str) -> None:
        """The chart as a file reply under the report; a failure is logged, never raised: the
        report itself was delivered, and a retry would post it again."""
        title = excerpt(strip_controls(report.title), 200) or "chart"
        try:
            self._call("files.upload", where, lambda: self._client.files_upload_v2(
                channel=self._channel_id, thread_ts=ts, content=png, title=title,
                filename=f"report-{report.alert_id}.png", alt_txt=f"Chart: {title}",
            ))
        except (DeliveryError, RateLimited) as exc:  # the report stands without its chart
            log.warning("%s: the report was posted but its chart was not (%s); the chart needs "
                        "the files:write scope", where, exc)

    def _call(
        self, action: str, where: str, call: Callable[[], SlackResponse], maybe_done: str = ""
    ) -> SlackResponse:
        """One Web API call; a refusal or network failure becomes RateLimited / DeliveryError.

        The mapped error is raised outside the ``except`` block, so it has no ``__context__``:
        slack_sdk's exception keeps the request headers, bearer token included.
        """
        from slack_sdk.errors import SlackApiError

        failure: Exception
        try:
            return call()
        except SlackApiError as exc:
            response = exc.response
            failure = api_error(where, action, response.status_code, response.data,
                                response.headers, self._secrets)
        except Exception as exc:
            failure = network_error(exc, where, self._timeout, self._secrets, maybe_done)
            if failure is exc:
                raise  # not a delivery failure but a bug: keep the original traceback
        raise failure


def _ts_with_alert(messages: Any, alert_id: str) -> str | None:
    """The ts of the message whose metadata names ``alert_id`` (Slack's documented shape)."""
    for item in messages if isinstance(messages, list) else []:
        meta = item.get("metadata") if isinstance(item, dict) else None
        if not isinstance(meta, dict) or meta.get("event_type") != EVENT_TYPE:
            continue
        payload = meta.get("event_payload")
        if isinstance(payload, dict) and payload.get("alert_id") == alert_id:
            ts = item.get("ts")
            return ts if isinstance(ts, str) else None
    return None
