"""Text from SMTP servers, made safe to log: the secrets AUTH sent are scrubbed from replies.

Some servers echo the AUTH line (base64 of the password) in their error replies; an error message
that carries it would put the password into logs and the database.
"""

from __future__ import annotations

import base64


def secret_forms(username: str | None, password: str | None) -> tuple[str, ...]:
    """The password and the base64 forms AUTH PLAIN/LOGIN send, longest first, to scrub."""
    if not password:
        return ()
    forms = [password]
    for raw in (f"\0{username or ''}\0{password}", password):
        try:
            forms.append(base64.b64encode(raw.encode("utf-8")).decode("ascii"))
        except UnicodeError:
            continue
    return tuple(sorted(set(forms), key=len, reverse=True))


def scrub(reply: bytes | str, secrets: tuple[str, ...]) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    for secret in secrets:
        text = text.replace(secret, "***")
    return " ".join(text.split())[:300]


def recipient_replies(refused: dict[str, tuple[int, bytes]], secrets: tuple[str, ...]) -> str:
    return "; ".join(f"{rcpt}: {code} {scrub(reply, secrets)}" for rcpt, (code, reply) in
                     refused.items())[:300]
