"""Compact JWS (RFC 7515) framing for the store writers' signed tokens: Google's service-account
assertion (RS256) and App Store Connect's API token (ES256).

The signature itself is ``cryptography``'s (each writer loads its key and signs); this is only
the base64url framing around it, six lines, written here once: PyJWT would do it too, but it is
not a dependency and the framing is all we need of it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any


def b64url(data: bytes) -> str:
    """base64url without padding, as JWS writes every part."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(header: dict[str, Any], claims: dict[str, Any],
            sign: Callable[[bytes], bytes]) -> str:
    """``header.claims.signature``, each part base64url, the signature over the first two."""
    def part(value: dict[str, Any]) -> str:
        return b64url(json.dumps(value, separators=(",", ":")).encode())

    signing_input = f"{part(header)}.{part(claims)}"
    return f"{signing_input}.{b64url(sign(signing_input.encode('ascii')))}"
