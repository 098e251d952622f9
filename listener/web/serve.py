"""``listener serve``: the dashboard on waitress, a pure-Python WSGI server.

It binds 127.0.0.1 unless told otherwise; any other address needs ``serve.token``, so the
posts and the buttons that change things are never open to the network by accident.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from listener.config import Config, ServeSettings, is_loopback, load_config
from listener.core.errors import ConfigError, MissingDependency
from listener.core.query import positive_terms

if TYPE_CHECKING:
    from listener.web.context import InboxRules

THREADS = 4  # requests served at once; each opens its own SQLite connection


def inbox_rules(config: Config) -> InboxRules:
    """The config's ``inbox`` and ``replies`` as the pages use them."""
    from listener.web.context import InboxRules, ReplyAccount  # Flask: only for the dashboard

    inbox = config.inbox
    return InboxRules(
        first_response=timedelta(minutes=inbox.first_response_minutes),
        brand_first_response={b: timedelta(minutes=m)
                              for b, m in inbox.brand_first_response_minutes.items()},
        stale_after=timedelta(days=inbox.stale_after_days),
        reply_approval=frozenset(inbox.reply_approval),
        reply_accounts=tuple(ReplyAccount(a.name, a.type, frozenset(a.brands)
                                          if a.brands is not None else None)
                             for a in config.reply_accounts))


def brand_words(config: Config) -> frozenset[str]:
    """Brand names and the words of their queries: always in negative posts, so never news."""
    words: set[str] = set()
    for name, brand in config.brands.items():
        words.update(name.lower().split())
        for term in positive_terms(brand.query):
            words.update(w.strip("@#*\"").lower() for w in term.text.split())
    return frozenset(w for w in words if w)


def host_names(settings: ServeSettings, bound: str) -> list[str]:
    """Host names served besides loopback: the configured ones, public_url's host, and the
    bound address unless it is a wildcard (an address or name the operator chose is not one a
    rebinding page can use; for 0.0.0.0, list the names people use in allowed_hosts)."""
    names = list(settings.allowed_hosts)
    if settings.public_url:
        names.append(urlsplit(settings.public_url).hostname or "")
    if bound.strip("[]") not in ("0.0.0.0", "::", ""):
        names.append(bound)
    return [n for n in names if n]


def trusted_networks(settings: ServeSettings) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in settings.trusted_proxies)


def sso_networks(settings: ServeSettings) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(v, strict=False) for v in settings.sso_proxies)


def make_server(app: Any, host: str, port: int) -> Any:
    """A waitress server bound now (port 0: any free port; see ``.effective_port``)."""
    from waitress.server import create_server

    return create_server(app, host=host, port=port, threads=THREADS, ident="listener")


@click.command()
@click.option("--config", "-c", "config_path", envvar="LISTENER_CONFIG", default="config.yaml",
              show_default=True, type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--host", default=None, help="Address to bind (default: serve.host, 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(0, 65535),
              help="Port (default: serve.port, 8765; 0 picks a free one).")
def serve(config_path: str, host: str | None, port: int | None) -> None:
    """Serve the trends dashboard: overview, queue, posts, alerts, feedback."""
    try:
        import flask  # noqa: F401
        import waitress  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(exc.name or "flask", "web") from exc
    from listener.web.app import WebSettings, create_app

    config = load_config(config_path)
    settings = config.serve
    host = host or settings.host
    if not is_loopback(host) and not settings.token:
        raise ConfigError(f"binding {host} (not a loopback address) needs an access token: "
                          'set serve.token to {"$env": LISTENER_WEB_TOKEN}',
                          file=str(config.path), key="serve.token")
    from listener.web.hosts import normalise

    app = create_app(WebSettings(
        database=config.database, token=settings.token, brand_words=brand_words(config),
        allowed_hosts=normalise(host_names(settings, host)),
        trusted_proxies=trusted_networks(settings), secure_cookies=settings.secure_cookies,
        sso_header=settings.sso_header, sso_proxies=sso_networks(settings),
        sso_default_role=settings.sso_default_role, inbox=inbox_rules(config),
    ))
    server = make_server(app, host, settings.port if port is None else port)
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"dashboard: http://{shown}:{server.effective_port}/")
    try:
        server.run()
    except KeyboardInterrupt:  # pragma: no cover - interactive
        pass
    finally:
        server.close()
