"""The network guard every HTTP source (and sink) sends through: where a request may go, and how
much of an answer is read.

Two defects had the same cause, each client library left to its defaults:

- **SSRF through redirects.** A feed answered ``302 Location: http://169.254.169.254/...`` and the
  RSS source followed it into the cloud metadata service; ``127.0.0.1:<another port>`` likewise
  reached services that only trust the local machine.
- **Unbounded answers.** A 100 MB feed polled every 2 s was read whole on every poll and the
  daemon grew by 100 MB.

So every request of every hop goes through a :class:`Policy`, plugged in where each library lets
one in: an httpx transport (:class:`GuardedTransport`: the RSS, Hacker News and App Store
sources, Bluesky through atproto, the issue-tracker sinks), a requests adapter
(:mod:`listener.sources.guard_requests`: X through tweepy, Reddit through praw, Mastodon.py) and a
urllib redirect handler (:class:`GuardedRedirectHandler`: Google Play). Each hop of a redirect
is a new request through the same place, so no hop escapes the check.

Where a request may go. An address that is not globally routable (private, loopback,
link-local such as 169.254.169.254, unspecified, shared, reserved, multicast, or such an IPv4
address inside IPv6: :func:`forbidden_address`, the webhook sink's rule) is refused, with one
exemption: **the configured origin itself when it is written as an address** (a literal IP or
``localhost``, scheme and port included). An operator who writes ``http://127.0.0.1:8080`` or
``http://10.0.0.5/feed`` has chosen that very address, and tests run their fakes that way. A
configured *name* is not exempt: its owner can point it anywhere at any time (DNS), so it is
resolved at every request and refused if any address it gives is private; a redirect to another
origin, private address or not, is checked the same way. ``allow_private: true`` (per source)
turns the address check off: intranet feeds and self-hosted instances on a private network.
httpx connects to the address that was checked (the TLS name and ``Host`` stay the URL's), so a
second DNS answer cannot swap in another one; requests and urllib resolve again when they
connect, which leaves a rebinding window of one DNS lookup there.

How much is read. The answer is streamed and the read aborts once more than ``max_bytes`` have
arrived (after decompression: the guard decodes gzip/deflate itself, so a small compressed bomb
cannot expand past the cap), or at once when ``Content-Length`` already says so. The poll fails
with the reason and its cursor stays where it was; the next normal answer works. Nothing larger
than ``max_bytes`` plus one chunk is ever held in memory.

Refusals are :class:`SourceRefused` (a :class:`~listener.core.errors.SourceError`) for sources and
:class:`DeliveryRefused` for sinks, raised through whatever library sits in between;
:func:`refusal_in` finds one that a library wrapped in its own exception.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field

from listener.core.errors import DeliveryError, SourceError

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
"""Per answer: far above any page a platform serves (an API page is well under 2 MB)."""
SINK_MAX_BYTES = 4 * 1024 * 1024
"""Per answer of a destination's API (tickets, search results): no config key, ample."""
_PIECE = 64 * 1024  # most decompressed output produced at a time

Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> IP addresses``; injected so tests control DNS."""

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_DEFAULT_PORTS = {"http": 80, "https": 443}


# -- addresses ---------------------------------------------------------------------------------


def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``, in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


def forbidden_address(address: str) -> bool:
    """True for anything but a globally routable unicast address (IPv4 inside IPv6 included)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and any(ip in net for net in _NAT64):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return forbidden_address(str(embedded))
    return not ip.is_global or ip.is_multicast or ip.is_unspecified


def literal_host(host: str) -> str | None:
    """The host as an IP literal string, ``127.0.0.1`` for localhost names, else None."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "127.0.0.1"
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


@dataclass(frozen=True)
class Origin:
    """scheme://host:port of a request: what is checked, and all a message may show (never the
    path or query, which may hold a token)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        return cls(scheme, (parts.hostname or "").lower(),
                   parts.port or _DEFAULT_PORTS.get(scheme, 0))

    @classmethod
    def of_httpx(cls, url: httpx.URL) -> Origin:
        scheme = url.scheme.lower()
        return cls(scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme, 0))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


# -- refusals ----------------------------------------------------------------------------------


class Refused(Exception):  # noqa: N818 - a marker mixed into SourceError / DeliveryError
    """Marks an error the guard raised (a refused address, an answer over the cap)."""


class SourceRefused(Refused, SourceError):
    """The guard refused a source's request or answer: the poll fails, the cursor stays."""


class DeliveryRefused(Refused, DeliveryError):
    """The guard refused a destination's request or answer (retried by dispatch)."""


def refusal_in(exc: BaseException | None) -> Refused | None:
    """The guard's refusal inside ``exc``: itself, or what a library wrapped it in (``__cause__``,
    ``__context__``, prawcore's ``original_exception``), so its message is not lost."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Refused):
            return exc
        seen.add(id(exc))
        exc = (getattr(exc, "original_exception", None) or exc.__cause__ or exc.__context__)
    return None


# -- settings ----------------------------------------------------------------------------------


class GuardSettings(BaseModel):
    """Keys every HTTP source has (mixed into its config)."""

    max_bytes: int = Field(
        DEFAULT_MAX_BYTES, ge=1024, description="largest answer read per request (bytes, after "
        "decompression); a bigger one fails the poll and the cursor stays",
    )
    allow_private: bool = Field(
        False, description="let requests and redirects reach private, loopback and link-local "
        "addresses (intranet feeds, self-hosted instances); a configured URL written as an IP "
        "address or localhost is always allowed",
    )


# -- the policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """Where requests may go and how much of an answer is read, for one source or sink.

    ``owner`` starts every message ("source feeds"); ``trusted`` are the configured origins
    written as addresses (always allowed); ``refuse`` builds the error to raise; ``setting``
    names the config key of the cap in messages (None: a fixed limit).
    """

    owner: str
    max_bytes: int
    refuse: Callable[[str], Exception]
    trusted: frozenset[Origin] = frozenset()
    allow_private: bool = False
    resolve: Resolver = field(default=resolve_host, compare=False)
    setting: str | None = "max_bytes"

    def target(self, origin: Origin) -> str | None:
        """The address to connect to (None: connect as the URL says), or raise the refusal.

        OSError when the name does not resolve: callers raise their library's connect error,
        so that failure reads as it always did.
        """
        if self.allow_private or origin in self.trusted:
            return None
        literal = literal_host(origin.host)
        addresses = [literal] if literal else self.resolve(origin.host, origin.port)
        if not addresses:
            raise OSError(f"'{origin.host}' has no address")
        bad = [a for a in addresses if forbidden_address(a)]
        if bad:
            how = "is" if literal else f"resolves to {', '.join(bad[:3])},"
            raise self.refuse(
                f"{self.owner}: request to {origin} refused: {origin.host} {how} not a public "
                "address (SSRF guard: a redirect or a configured name never reaches a private, "
                "loopback or link-local address); set allow_private: true if this source is "
                "meant to reach your own network"
            )
        return None if literal else addresses[0]

    def too_large(self, origin: Origin, size: int | None = None) -> Exception:
        """The refusal for an answer over ``max_bytes`` (``size``: what Content-Length said)."""
        said = f" (Content-Length {size})" if size is not None else ""
        cap = self.setting or "the answer limit"
        hint = f": raise {self.setting} if the answer is genuine" if self.setting else ""
        return self.refuse(
            f"{self.owner}: the answer from {origin} is larger than {cap} "
            f"({self.max_bytes} bytes){said}; refused, not read past that{hint}"
        )

    def check_length(self, origin: Origin, headers: Any) -> None:
        """Refuse at once when ``Content-Length`` already says the answer is too large."""
        raw = headers.get("content-length") if headers is not None else None
        try:
            size = int(raw) if raw is not None else None
        except ValueError:
            size = None
        if size is not None and size > self.max_bytes:
            raise self.too_large(origin, size)


def source_policy(name: str, settings: GuardSettings, urls: Iterable[str],
                  resolve: Resolver = resolve_host) -> Policy:
    """The policy of source ``name``: ``urls`` are its configured URLs (feeds, base URLs)."""
    trusted = frozenset(o for o in map(Origin.of, urls) if literal_host(o.host) is not None)
    return Policy(f"source {name}", settings.max_bytes, SourceRefused, trusted,
                  settings.allow_private, resolve)


def sink_policy(owner: str, max_bytes: int = SINK_MAX_BYTES) -> Policy:
    """A destination's policy: the answer cap only. Sinks follow no redirects (httpx's default)
    and talk to their configured host alone, so there is no other address to check."""
    return Policy(owner, max_bytes, lambda message: DeliveryRefused(message, retryable=True),
                  allow_private=True, setting=None)


# -- httpx -------------------------------------------------------------------------------------


class _Decoder:
    """gzip/deflate decoding in bounded pieces, so the cap counts decoded bytes as they grow."""

    def __init__(self, encoding: str) -> None:
        self._raw_deflate_fallback = encoding == "deflate"  # servers send zlib or raw deflate
        bits = zlib.MAX_WBITS | 16 if encoding in ("gzip", "x-gzip") else zlib.MAX_WBITS
        self._z = zlib.decompressobj(bits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._raw_deflate_fallback and not self._started:
            self._started = True
            try:
                zlib.decompressobj().decompress(data[:64])
            except zlib.error:
                self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            piece = self._z.decompress(data, _PIECE)
            while True:
                yield piece
                if not self._z.unconsumed_tail:
                    break
                piece = self._z.decompress(self._z.unconsumed_tail, _PIECE)
        except zlib.error as exc:
            raise httpx.DecodingError(f"cannot decompress the answer: {exc}") from None

    def flush(self) -> bytes:
        try:
            return self._z.flush()
        except zlib.error as exc:
            raise httpx.DecodingError(f"cannot decompress the answer: {exc}") from None


class _CappedStream(httpx.SyncByteStream):
    """The body of one answer, decoded if need be, failing once past the cap."""

    def __init__(self, inner: httpx.SyncByteStream, policy: Policy, origin: Origin,
                 decoder: _Decoder | None) -> None:
        self._inner, self._policy, self._origin, self._decoder = inner, policy, origin, decoder

    def __iter__(self) -> Iterator[bytes]:
        total = 0
        for chunk in self._inner:
            pieces = self._decoder.feed(chunk) if self._decoder else (chunk,)
            for piece in pieces:
                total += len(piece)
                if total > self._policy.max_bytes:
                    raise self._policy.too_large(self._origin)
                if piece:
                    yield piece
        if self._decoder is not None:
            tail = self._decoder.flush()
            if total + len(tail) > self._policy.max_bytes:
                raise self._policy.too_large(self._origin)
            if tail:
                yield tail

    def close(self) -> None:
        self._inner.close()


_ACCEPTED_ENCODINGS = "gzip, deflate"
_DECODED = frozenset({"gzip", "x-gzip", "deflate"})


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that checks every request (every redirect hop is one) against the
    policy, connects to the checked address, and caps the answer.

    Proxies from the environment are honoured here (the client must be built with
    ``trust_env=False``, see :func:`httpx_options`, or httpx would route around this transport):
    through a proxy the address is still checked but not pinned, as the proxy connects.
    """

    def __init__(self, policy: Policy, **transport_options: Any) -> None:
        self.policy = policy
        self._options = {"retries": 0, **transport_options}
        self._direct = httpx.HTTPTransport(**self._options)
        self._proxied: dict[str, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()  # a sink's client may be shared by worker threads

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        origin = Origin.of_httpx(request.url)
        try:
            address = self.policy.target(origin)
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve {origin.host}: {exc}",
                                     request=request) from None
        transport, proxied = self._transport_for(request.url)
        sent = _outgoing(request, None if proxied else address)
        response = transport.handle_request(sent)
        return self._capped(response, origin)

    def close(self) -> None:
        self._direct.close()
        for transport in self._proxied.values():
            transport.close()

    def _transport_for(self, url: httpx.URL) -> tuple[httpx.HTTPTransport, bool]:
        proxies = urllib.request.getproxies()
        proxy = proxies.get(url.scheme) or proxies.get("all")
        if not proxy or urllib.request.proxy_bypass(url.host):
            return self._direct, False
        with self._lock:
            if proxy not in self._proxied:
                self._proxied[proxy] = httpx.HTTPTransport(proxy=proxy, **self._options)
            return self._proxied[proxy], True

    def _capped(self, response: httpx.Response, origin: Origin) -> httpx.Response:
        """The same answer with a capped (and, for gzip/deflate, already decoded) body."""
        headers = httpx.Headers(response.headers)
        encoding = headers.get("content-encoding", "identity").strip().lower()
        decoder = None
        try:
            if encoding in _DECODED:
                decoder = _Decoder(encoding)
                del headers["content-encoding"]
                headers.pop("content-length", None)  # it counted the compressed bytes
            elif encoding not in ("identity", ""):
                raise self.policy.refuse(
                    f"{self.policy.owner}: {origin} answered with Content-Encoding "
                    f"'{encoding[:40]}', not one of the {_ACCEPTED_ENCODINGS} asked for"
                )
            self.policy.check_length(origin, response.headers)
        except Exception:
            response.close()
            raise
        stream = _CappedStream(cast(httpx.SyncByteStream, response.stream), self.policy, origin,
                               decoder)
        return httpx.Response(response.status_code, headers=headers, stream=stream,
                              extensions=response.extensions)


def _outgoing(request: httpx.Request, address: str | None) -> httpx.Request:
    """The request as sent: only the encodings the guard decodes, and aimed at ``address``
    when one was checked (``Host`` and the TLS name stay the URL's host)."""
    headers = httpx.Headers(request.headers)
    headers["Accept-Encoding"] = _ACCEPTED_ENCODINGS
    url, extensions = request.url, dict(request.extensions)
    if address is not None:
        extensions.setdefault("sni_hostname", request.url.host)
        url = request.url.copy_with(host=address)
    return httpx.Request(request.method, url, headers=headers, stream=request.stream,
                         extensions=extensions)


def httpx_options(policy: Policy) -> dict[str, Any]:
    """Keyword arguments for an ``httpx.Client`` (or a library that passes them on, such as
    ``atproto.Request``) that route every request through the guard."""
    return {"transport": GuardedTransport(policy), "trust_env": False}


def guarded_client(policy: Policy, **options: Any) -> httpx.Client:
    """An ``httpx.Client`` whose every request goes through :class:`GuardedTransport`."""
    return httpx.Client(**httpx_options(policy), **options)


# -- urllib ------------------------------------------------------------------------------------


class GuardedRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib's redirect handler, checking each new location against the policy first."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> Any:
        try:
            self.policy.target(Origin.of(newurl))
        except OSError as exc:
            fp.close()  # urllib closes the redirect's answer only when it follows it
            raise urllib.error.URLError(exc) from None
        except Exception:
            fp.close()
            raise
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def read_capped(fp: Any, policy: Policy, origin: Origin) -> bytes:
    """At most ``max_bytes`` of a urllib answer (``Content-Length`` checked first)."""
    policy.check_length(origin, getattr(fp, "headers", None))
    body = fp.read(policy.max_bytes + 1)
    if len(body) > policy.max_bytes:
        raise policy.too_large(origin)
    return body
