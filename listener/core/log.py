"""Logging set-up with secret redaction, in human-readable text or JSON lines.

Client libraries log credentials at DEBUG (tweepy the bearer header, urllib3 a Slack webhook's
path, which *is* the secret). Every secret the config resolves is registered here and replaced by
``***`` in every record that reaches our handlers, whoever logged it: in the message, the
exception text and traceback, the stack, and (in JSON) every extra field.

A line about one post carries the post's platform and id as record attributes
(``log.warning(..., extra=about_post(platform, platform_id))``): the text format appends them as
``[platform=x post_id=123]``, the JSON format has them as fields, so both can be grepped.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import parse_qsl, urlsplit

_SECRETS: set[str] = set()
# tokens a client mints for itself and replaces within the hour (OAuth access tokens, signed
# JWTs): only the newest are kept, so a daemon running for months does not scan thousands of
# expired ones on every log line
_SHORT_LIVED: deque[str] = deque(maxlen=64)
_LOCK = threading.Lock()
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words
MIN_SECRET_PATH_LENGTH = 16  # a secret URL's path is a secret of its own from this length
# URL parameters whose value is a credential whoever wrote the URL: a feed URL written literally
# in the config (`?key=abc123`), or echoed back by a server in an error body
CREDENTIAL_PARAMS = (
    "key", "token", "api_key", "apikey", "access_token", "secret", "password", "sig",
    "signature", "client_secret", "refresh_token", "auth_token", "passwd",
)
_NAMES = "|".join(map(re.escape, CREDENTIAL_PARAMS))
_VALUE = r"[^&#;,\s'\"<>()]+"
# in a query string (after ? & ;): every name above, alone or as a suffix (`x_api_key`)
_QUERY_CREDENTIAL = re.compile(rf"([?&;](?:[\w.-]*[_-])?(?:{_NAMES})=){_VALUE}", re.IGNORECASE)
# elsewhere (`api_key=… sig=…` in a message): only names no code or prose uses for other things,
# so a traceback's `sorted(rows, key=lambda r: r.id)` stays readable
_BARE_NAMES = "|".join(re.escape(n) for n in CREDENTIAL_PARAMS if n not in ("key", "sig"))
_BARE_CREDENTIAL = re.compile(
    rf"(?<![\w.-])((?:(?:[\w.-]*[_-])?(?:{_BARE_NAMES})|[\w.-]*[_-]key)=){_VALUE}",
    re.IGNORECASE)
# the password of a URL's user info: scheme://user:PASSWORD@host
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/?#\s:@]*:)[^@/?#\s]+@", re.IGNORECASE)
LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
POST_FIELDS = ("platform", "post_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# attributes every LogRecord has; anything else on a record came from `extra=`
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def register_secret(value: str | None) -> None:
    """Redact ``value`` from now on; a URL's secret parts too (see :func:`secret_forms`)."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        forms = secret_forms(value)
        with _LOCK:
            _SECRETS.update(forms)


def register_short_lived_secret(value: str | None) -> None:
    """Redact a token that is replaced soon (a minted access token, a signed JWT): kept among
    the newest 64 such tokens; an older one is expired, and useless to whoever reads it."""
    if value and len(value) >= MIN_SECRET_LENGTH:
        with _LOCK:
            if value not in _SHORT_LIVED:
                _SHORT_LIVED.append(value)


def secret_forms(value: str) -> set[str]:
    """``value``, and when it is a URL the parts that messages show without the rest.

    A feed or webhook URL given as a secret reaches messages cut down: without its query string
    (the RSS source shows ``scheme://host/path``), or as the path alone (urllib3 logs the path,
    which *is* a Slack webhook's secret). So its query values, its password and a path of
    :data:`MIN_SECRET_PATH_LENGTH` or more characters are secrets too; shorter paths
    (``/feed.xml``) are not, or every URL with such a path would be masked.
    """
    forms = {value}
    try:
        parts = urlsplit(value.strip())
        values = [v for _, v in parse_qsl(parts.query, keep_blank_values=True)]
        password = parts.password
    except ValueError:  # not a URL after all (an unbalanced '[' in a token)
        return forms
    if parts.scheme and parts.netloc:
        forms.update([*values, password or "", parts.query])
        if len(parts.path) >= MIN_SECRET_PATH_LENGTH:
            forms.add(parts.path)
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def redact(text: str) -> str:
    """``text`` with every registered secret, credential URL parameter (``?key=***``) and URL
    password (``user:***@``) masked: for logs and for everything written to the database."""
    with _LOCK:
        secrets = sorted({*_SECRETS, *_SHORT_LIVED}, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    if "=" in text:
        text = _BARE_CREDENTIAL.sub(r"\1***", _QUERY_CREDENTIAL.sub(r"\1***", text))
    if "@" in text:
        text = _URL_PASSWORD.sub(r"\1***@", text)
    return text


def about_post(platform: str | None, platform_id: str | None) -> dict[str, Any]:
    """``extra=`` for a log line about one post: its platform and platform id."""
    return {"platform": platform, "post_id": platform_id}


class RedactingFilter(logging.Filter):
    """Renders the message once, redacts it, and freezes the result into the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [platform=x post_id=1]``, then any traceback."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        line = super().formatMessage(record)
        about = " ".join(
            f"{key}={redact(str(getattr(record, key)))}"
            for key in POST_FIELDS if getattr(record, key, None) is not None
        )
        return f"{line} [{about}]" if about else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, post fields, extras, exception.

    Every string value is redacted again here: extra fields never pass through the message
    filter, and a secret must not ride along in one.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(_redacted(entry), ensure_ascii=False, default=str)


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redacted(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))  # anything else is logged as its text: redact that


def setup_logging(
    level: str = "INFO", fmt: LogFormat = "text", stream: TextIO | None = None
) -> None:
    """Logs on stderr (or ``stream``), redacted, as text or JSON lines.

    Called by the CLI only (no import side effects); calling it again replaces the handler, so
    the CLI can switch to the config file's ``log.format`` once the config is loaded, or to a
    ``--log-level`` given after the subcommand.
    """
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_libraries(level)


# Libraries that narrate routine work at INFO (APScheduler: every job added, run and done; the
# HTTP clients: every request) and drown our own lines: 33 of the daemon's first 35 were
# APScheduler's. They speak at WARNING and above unless DEBUG was asked for.
CHATTY_LIBRARIES = (
    "apscheduler", "urllib3", "httpx", "httpcore", "waitress", "praw", "prawcore", "tweepy",
    "slack_sdk", "atproto", "atproto_client", "google_play_scraper", "requests_oauthlib",
    "oauthlib", "filelock", "matplotlib", "PIL",
)


def quiet_libraries(level: str) -> None:
    """Hold third-party loggers at WARNING (or the level asked for, if higher: a record a logger
    passes reaches our handler whatever the root's level); at DEBUG they inherit the root's."""
    asked = logging.getLevelName(level.upper())
    threshold = logging.NOTSET if asked <= logging.DEBUG else max(asked, logging.WARNING)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(threshold)
