"""What Slack's answers and failures mean for dispatch: wait, retry, or park for a human.

Both Slack modes share this: the incoming webhook (``slack.py``) answers a plain-text code with an
HTTP status, the Web API (``slack_bot.py``) a JSON ``{"ok": false, "error": code}``, usually with
HTTP 200. Codes that retrying cannot fix map to advice for the operator (the error codes are the
ones docs.slack.dev lists for incoming webhooks and for chat.postMessage / conversations.history);
rate limits become :class:`RateLimited`; everything else is retried with backoff. Both clients
run on urllib (with the answer cap of ``_slack_http``), so :func:`network_error` maps the same
exceptions for both.

Exceptions built here never carry the original one as a cause: its text and frames can hold the
webhook URL or the bot token (slack_sdk's ``SlackApiError`` keeps the request headers).
"""

from __future__ import annotations

import http.client
import re
from typing import Any
from urllib.error import URLError

from alerts.sinks._http import mask_secrets
from alerts.sinks.base import error_for_status, retry_after_seconds
from listener.core.errors import DeliveryError, RateLimited
from listener.core.httpguard import DeliveryRefused, refusal_in

RATE_LIMIT_DEFAULT = 60.0
"""Seconds to wait on a rate limit that names no Retry-After (Slack's limits are per minute)."""

_RENDER_BUG = "listener rendered a message Slack refuses; please report it with the alert id"

# -- incoming webhooks (docs.slack.dev "Sending messages using incoming webhooks") -------------

_REBUILD = "create a new incoming webhook in the Slack app settings and update webhook_url"
WEBHOOK_CODES: dict[str, str] = {
    "invalid_payload": _RENDER_BUG,
    "invalid_blocks": _RENDER_BUG,
    "invalid_blocks_format": _RENDER_BUG,
    "msg_blocks_too_long": _RENDER_BUG,
    "too_many_attachments": _RENDER_BUG,
    "missing_text_or_fallback_or_attachments": _RENDER_BUG,
    "user_not_found": f"the webhook's user no longer exists; {_REBUILD}",
    "action_prohibited": (
        "a workspace admin restricts this webhook; ask them, or use another channel"
    ),
    "posting_to_general_channel_denied": (
        "only admins may post in this channel; pick another channel for the webhook"
    ),
    "channel_not_found": f"the webhook's channel was deleted or is no longer reachable; {_REBUILD}",
    "channel_is_archived": f"the webhook's channel is archived; unarchive it, or {_REBUILD}",
    "no_service": f"the webhook was removed or disabled; {_REBUILD}",
    "no_active_hooks": f"the webhook was deactivated; {_REBUILD}",
    "no_team": f"the webhook's workspace no longer exists; {_REBUILD}",
    "invalid_token": (
        "the webhook URL is invalid or was revoked; copy it again from the Slack app settings "
        "into its environment variable"
    ),
    "team_disabled": "the Slack workspace is disabled; nothing will post until it is restored",
}

_CODE = re.compile(r"^[a-z][a-z0-9_]{1,60}$")

# -- the Web API (docs.slack.dev reference: chat.postMessage, conversations.history) -----------

_NEW_TOKEN = (
    "the bot token is invalid, revoked or expired; reinstall the Slack app (or issue a new "
    "token) and put the new xoxb- token in the environment variable"
)
_INVITE = "invite the app to the channel (/invite @app-name), or give it chat:write.public"
_POLICY = (
    "a workspace or channel setting forbids the app to post here; ask an admin or pick another "
    "channel"
)
API_CODES: dict[str, str] = {
    "not_authed": _NEW_TOKEN,
    "invalid_auth": _NEW_TOKEN,
    "account_inactive": _NEW_TOKEN,
    "token_revoked": _NEW_TOKEN,
    "token_expired": _NEW_TOKEN + " (token rotation is not supported: turn it off for this app)",
    "not_allowed_token_type": "this kind of token cannot post; use the app's bot token (xoxb-…)",
    "missing_scope": (
        "the app lacks a scope; add it under OAuth & Permissions (chat:write to post) and "
        "reinstall the app"
    ),
    "no_permission": f"the app may not post in this channel; {_INVITE}",
    "access_denied": f"the app may not post in this channel; {_INVITE}",
    "not_in_channel": f"the app is not a member of the channel; {_INVITE}",
    "channel_not_found": (
        "the bot sees no such channel; check channel (the ID from the channel's details, "
        "C0123ABCDEF) and invite the app if the channel is private"
    ),
    "is_archived": "the channel is archived; unarchive it, or set channel to another one",
    "thread_not_found": "the thread's first message is gone (deleted?)",
    "restricted_action": _POLICY,
    "restricted_action_read_only_channel": _POLICY,
    "restricted_action_thread_only_channel": _POLICY,
    "ekm_access_denied": "workspace administrators suspended posting (EKM); ask them",
    "team_access_not_granted": "the token has no access to the channel's workspace; ask an admin",
    "enterprise_is_restricted": "the method cannot be called from an Enterprise org; ask an admin",
    **dict.fromkeys(
        ("invalid_blocks", "invalid_blocks_format", "msg_too_long", "msg_blocks_too_long",
         "no_text", "too_many_attachments", "invalid_metadata_format", "invalid_metadata_schema",
         "metadata_too_large", "metadata_must_be_sent_from_app", "invalid_arguments",
         "invalid_arg_name", "invalid_charset", "invalid_form_data", "invalid_post_type",
         "missing_post_type", "as_user_not_supported"),
        _RENDER_BUG,
    ),
}
RATE_LIMIT_CODES = frozenset({"ratelimited", "rate_limited"})
THREAD_CODES = frozenset({
    "cannot_reply_to_message", "restricted_action_thread_locked",
    "restricted_action_non_threadable_channel",
})
"""Slack will not take a reply in that thread: the alert is posted on its own instead."""


def webhook_error(
    where: str, status: int, body: str, headers: Any, secrets: tuple[str, ...]
) -> RateLimited | DeliveryError:
    """Map an incoming webhook's answer: 429 waits, known codes park, 5xx retries."""
    snippet = mask_secrets(body.strip(), secrets, "[webhook-url]")[:300]
    if status == 429:
        wait = retry_after_seconds(header(headers, "Retry-After"))
        return RateLimited(f"{where}: rate-limited by Slack (HTTP 429); retry in {wait:g}s", wait)
    code = snippet if _CODE.match(snippet) else ""
    retryable = error_for_status(status, snippet).retryable and code not in WEBHOOK_CODES
    if 200 <= status < 300:
        advice = "unexpected answer; is webhook_url a Slack incoming webhook?"
    elif 300 <= status < 400:
        advice = "the webhook URL redirects; configure the final https URL"
    elif code in WEBHOOK_CODES:
        advice = WEBHOOK_CODES[code]
    elif retryable:
        advice = "Slack or the network failed; dispatch will retry"
    else:
        advice = "Slack refused the alert; check the webhook in the Slack app settings"
    label = f"HTTP {status} {code}".rstrip()
    return DeliveryError(
        f"{where}: {label}: {advice}", status=status, body_snippet=snippet, retryable=retryable
    )


def api_error(
    where: str, action: str, status: int, data: Any, headers: Any, secrets: tuple[str, ...]
) -> RateLimited | DeliveryError:
    """Map a refused Web API call (its HTTP status, JSON body, headers) to our exceptions."""
    body = data if isinstance(data, dict) else {}
    code = mask_secrets(str(body.get("error") or ""), secrets, "***")[:100]
    if status == 429 or code in RATE_LIMIT_CODES:
        wait = retry_after_seconds(header(headers, "Retry-After"), RATE_LIMIT_DEFAULT)
        return RateLimited(f"{where}: rate-limited by Slack ({code or 'HTTP 429'}); "
                           f"retry in {wait:g}s", wait)
    label = f"{action}: {code}" if code else f"{action}: HTTP {status}"
    if code in API_CODES:
        advice = API_CODES[code]
        needed = body.get("needed")
        if code == "missing_scope" and isinstance(needed, str):
            advice = (f"the app lacks the scope {needed[:60]}; add it under OAuth & Permissions "
                      "and reinstall the app")
        return DeliveryError(f"{where}: {label}: {advice}", status=status, body_snippet=code,
                             retryable=False)
    if status != 200:
        retryable = error_for_status(status, code).retryable
        advice = ("Slack or the network failed; dispatch will retry" if retryable
                  else "Slack refused the request; is base_url the Slack Web API?")
        return DeliveryError(f"{where}: {label} (HTTP {status}): {advice}", status=status,
                             body_snippet=code, retryable=retryable)
    return DeliveryError(
        f"{where}: {label}: dispatch will retry; if it persists, look the code up at "
        "https://docs.slack.dev/reference/methods", status=status, body_snippet=code,
    )


def network_error(
    exc: Exception, where: str, timeout: float, secrets: tuple[str, ...], maybe_done: str = ""
) -> Exception:
    """What urllib/http.client raise under slack_sdk's clients, as a DeliveryError.

    An answer over the cap (:mod:`alerts.sinks.slack.transport`) arrives as the guard's retryable
    ``DeliveryRefused``, maybe raised while slack_sdk handled an ``HTTPError``: it becomes a new
    one with the same text, without that context (which holds the URL). ``urlopen`` wraps
    failures while connecting and sending in ``URLError`` (refused, DNS, TLS, connect timeout);
    a read timeout arrives bare as ``TimeoutError``; a dropped connection as
    ``http.client.HTTPException`` or another ``OSError``. slack_sdk's ``SlackRequestError`` (a
    bad URL or proxy setting) cannot be fixed by retrying; an answer that is not UTF-8 (slack_sdk
    decodes every one) is a proxy's, retried. Anything else is a bug and is returned
    unchanged, for the caller to re-raise as it is. ``maybe_done`` tells the operator what a
    retry does about a request that may have landed before the answer was lost.
    """
    from slack_sdk.errors import SlackRequestError

    refusal = refusal_in(exc)
    if refusal is not None:
        said = mask_secrets(str(refusal), secrets, "***")
        return DeliveryRefused(f"{said}{maybe_done}", retryable=getattr(refusal, "retryable", True))
    if isinstance(exc, SlackRequestError):
        detail = mask_secrets(str(exc), secrets, "***")[:200]
        return DeliveryError(f"{where}: slack_sdk refused the request: {detail}", retryable=False)
    if isinstance(exc, http.client.InvalidURL):
        return DeliveryError(f"{where}: the Slack URL is malformed", retryable=False)
    reason: object = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, TimeoutError):
        what = f"no answer within {timeout:g}s{maybe_done}"
    elif isinstance(exc, (OSError, http.client.HTTPException)):
        detail = mask_secrets(f"{type(reason).__name__}: {reason}", secrets, "***")[:200]
        what = f"could not reach Slack ({detail}); check network, DNS, proxy and TLS"
    elif isinstance(exc, UnicodeDecodeError):  # slack_sdk decodes every answer as UTF-8
        what = ("the answer was not text (a proxy or captive portal in the way?); "
                f"retried{maybe_done}")
    else:
        return exc
    return DeliveryError(f"{where}: {what}", retryable=True)


def header(headers: Any, name: str) -> str | None:
    """Case-insensitive header lookup over whatever mapping the client returned."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            # urllib's message holds str values, slack_sdk's SlackResponse lists of str
            found: str | None = value[0] if isinstance(value, list) and value else value
            return found
    return None
