"""Load and validate the one YAML config file.

Every error names the file, the line and the key path (``rules[1].destinations[0]``) in one
sentence. Secrets are written as ``{"$env": NAME}`` or ``"${NAME}"`` and resolved from the
environment; their values are registered for log redaction and never written anywhere.
Sources and destinations are validated by their own plugin's ``Config`` model, so a new source
brings its settings with it.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from alerts.digest import DigestConfig
from alerts.incidents import IncidentConfig
from alerts.replies.base import AccountConfig
from alerts.replies.registry import writer_class
from alerts.rules import RuleConfig
from alerts.sinks import sink_class
from alerts.sinks.base import SinkConfig
from alerts.spikes import SpikeConfig
from listener.config_source import Loc, Locator, parse, read_text, resolve
from listener.core.errors import ConfigError
from listener.core.query import Brand, QueryError
from listener.core.query import parse as parse_query
from listener.sources import source_class
from listener.sources.base import SourceConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StorageSettings(_Strict):
    path: str = Field("listener.db", description="SQLite file; relative to the config file")
    url: str | None = Field(
        None, description='PostgreSQL instead of the SQLite file: postgresql://user@host/db '
        '(the password through {"$env": NAME} or a libpq password file); many workers may share '
        "it (README: Scaling out)")
    retention_days: int | None = Field(
        None, ge=1, description="erase the text, author and links of posts older than this "
        "many days, once a day, keeping their counts (README: Personal data); leave it out to "
        "keep posts for ever")

    @field_validator("url")
    @classmethod
    def _postgresql(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (leave it out for the SQLite file)")
        return value


class RetrainConfig(_Strict):
    """Retraining the heads from reviewers' corrections (issue 18; README: Corrections teach
    the model). A candidate is promoted only when it beats the served model on held-out
    reviewed posts and costs at most ``max_english_drop`` points on the English val set."""

    every_hours: float = Field(gt=0, description="hours between retrainings, e.g. 168")
    data_dir: str | None = Field(None, description="the committed training data (sentiment/, "
                                 "complaints/; default ../shared/data)")
    min_reviewed: int = Field(50, ge=1, description="reviewed posts of a field before its head "
                              "is retrained")
    held_out_percent: int = Field(30, ge=5, le=80, description="share of reviewed posts kept "
                                  "to judge each candidate (never trained on)")
    max_english_drop: float = Field(0.5, ge=0, description="points of English val "
                                    "macro-recall a promotion may cost")
    min_gain: float = Field(0, ge=0, description="points a candidate must gain on the "
                            "held-out reviewed posts")
    rescore_hours: float = Field(48, ge=0, description="a promoted model re-scores posts "
                                 "collected this many hours back (and unscored ones), no older")
    replay_rows: int = Field(4000, ge=100, description="committed training rows replayed "
                             "beside the corrections")


class ClassifierSettings(_Strict):
    model: str = Field("default", description="'default' (English + seven other languages), "
                       "'default-english', or a Hugging Face model id / directory")
    models: dict[str, str] | None = Field(
        None, description="per-language models: language code → model (as `model`), '*' for "
        "every other language (default: `model`); e.g. {es: ./models/es-sentiment, '*': "
        "default}. A post in a language no model covers is still scored, flagged "
        "language_supported: false")
    batch_size: int = Field(32, ge=1, le=4096, description="posts per forward pass")
    device: str = Field("auto", description="auto, cpu or cuda")
    labels: dict[str, Literal["negative", "neutral", "positive"]] | None = Field(
        None, description="Hugging Face models only: the model's label → our label"
    )
    urgency: Literal["default", "none"] = Field(
        "default",
        description="Hugging Face models only: urgency from the default model's urgency head, "
        "or none (0.0 for every post: urgency rules never fire)",
    )
    backend: Literal["auto", "torch", "onnx"] = Field(
        "auto",
        description="auto: onnx for model 'default' on a machine without an NVIDIA GPU, else "
        "torch; onnx: ONNX Runtime int8 on the CPU (model 'default' only); torch",
    )
    cache_dir: str | None = Field(
        None, description="onnx backend: folder of the exported encoder; relative to the config"
    )
    pipelined: bool | None = Field(
        None, description="classify stage: a backlog is read, scored and saved at once by "
        "threads (true) or by turns (false); default: pipelined when the model runs on a GPU "
        "(device cuda, or auto on a machine with an NVIDIA driver)")
    stage_batch: int | None = Field(
        None, ge=1, le=1_000_000, description="classify stage: posts read and handed to the "
        "model at once (default batch_size x 8); a GPU wants thousands")
    write_batch: int | None = Field(
        None, ge=1, le=1_000_000, description="classify stage: most posts whose scores are "
        "saved in one transaction (default stage_batch: one per batch; a transaction is also "
        "written once its oldest scores waited 2 s)")
    scorers: int = Field(
        1, ge=1, le=16, description="classify stage: threads calling the model at once; 2 on a "
        "GPU tokenises one batch while the device scores the other")
    writers: int = Field(
        1, ge=1, le=16, description="classify stage, pipelined: threads saving transactions of "
        "scores at once, each on a connection of its own; 2-4 on PostgreSQL, where batches of "
        "scores are written side by side (SQLite writes one at a time: 1)")

    @field_validator("models")
    @classmethod
    def _language_codes(cls, models: dict[str, str] | None) -> dict[str, str] | None:
        """Keys are what posts carry: lower-case ISO 639 codes (or '*'), values non-empty."""
        if models is None:
            return None
        for code, spec in models.items():
            if code != "*" and not re.fullmatch(r"[a-z]{2,3}", code):
                raise ValueError(f"{code!r} is not a language code: use ISO 639-1 codes "
                                 "such as es or de (lower case), or '*' for every other language")
            if not spec.strip():
                raise ValueError(f"models.{code}: name a model ('default', a Hugging Face id or "
                                 "a local directory)")
        return models

    @field_validator("backend")
    @classmethod
    def _onnx_serves_the_default_model_on_cpu(cls, backend: str, info: ValidationInfo) -> str:
        """Fails on the `backend` line: that is the key to change (model and device come first)."""
        model, device = info.data.get("model", "default"), info.data.get("device", "auto")
        if backend == "onnx" and model != "default":
            raise ValueError(f"backend onnx serves only model 'default', not {model!r}; use torch")
        if backend == "onnx" and device not in ("auto", "cpu"):
            raise ValueError(f"backend onnx is CPU-only: use device auto or cpu, not {device!r}")
        return backend

    models_dir: str | None = Field(
        None, description="where models promoted from corrections are kept (default: models/ "
        "beside the SQLite file; on PostgreSQL beside the config: shared storage for many hosts)")
    retrain: RetrainConfig | None = Field(
        None, description="retrain the heads from reviewers' corrections on a schedule")

    def cache_path(self, base_dir: Path) -> Path | None:
        """``cache_dir`` resolved against the config file's folder; None means the default."""
        return base_dir / Path(self.cache_dir).expanduser() if self.cache_dir else None


class ScheduleSettings(_Strict):
    classify_interval: float = Field(30, gt=0, description="seconds between classify runs")
    rules_interval: float = Field(30, gt=0, description="seconds between rules runs")
    dispatch_interval: float = Field(10, gt=0, description="seconds between dispatch runs")
    reports_interval: float = Field(
        60, gt=0, description="seconds between spike/digest checks (cheap: indexed counts)"
    )


class DispatchSettings(_Strict):
    max_attempts: int = Field(
        12, ge=1, description="attempts before an alert is parked as failed (12: about 2.5-5 h "
        "of backoff, so an hour-long outage parks nothing)")
    backoff_initial: float = Field(30, gt=0, description="seconds before the first retry")
    backoff_max: float = Field(3600, gt=0, description="cap on the delay between retries")
    once_max_wait: float = Field(
        60, ge=0, description="run --once waits up to this long for retries that are due soon"
    )
    send_deadline: float = Field(
        60, gt=0, le=3600, description="seconds one delivery attempt may take in total (all its "
        "requests, every byte): a destination that answers slowly or not at all is cut off and "
        "retried later, and never holds up another destination")


class LogSettings(_Strict):
    format: Literal["text", "json"] = Field(
        "text", description="text (human-readable) or json (one object per line); "
        "--log-format on the command line wins"
    )


class MetricsSettings(_Strict):
    host: str = Field("127.0.0.1", description="address the daemon serves /metrics and /healthz on")
    port: int | None = Field(
        9108, ge=0, le=65535, description="TCP port; null turns the endpoint off (0: any free port)"
    )
    stuck_after: float = Field(
        600, gt=0, description="/healthz answers 503 when a stage run has shown no progress (a "
        "page, a batch, a message) for this many seconds")
    unhealthy_after: int = Field(
        3, ge=1, description="/healthz answers 503 once a stage has failed for this many of its "
        "intervals in a row, or a destination for this many attempts of an alert in a row"
    )


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


# headers that mean something else: a proxy never names the person in these
_NOT_SSO_HEADERS = frozenset({"authorization", "cookie", "host", "x-forwarded-for",
                              "x-forwarded-proto", "x-forwarded-host", "content-type",
                              "content-length", "forwarded"})


class ServeSettings(_Strict):
    host: str = Field("127.0.0.1", description="address `listener serve` binds; anything but "
                      "loopback needs a token")
    port: int = Field(8765, ge=0, le=65535, description="TCP port of the dashboard (0: any free)")
    token: str | None = Field(
        None, min_length=16, validate_default=True,
        description='access token, e.g. {"$env": LISTENER_WEB_TOKEN}: a Bearer header or the '
        "login form; required when host is not loopback",
    )
    public_url: str | None = Field(
        None, pattern=r"^https?://[^\s]+$", description="how people reach the dashboard (e.g. "
        "https://listener.example.com behind a proxy): links in alerts point there; default "
        "http://host:port")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="host names the dashboard answers to besides "
        "localhost, 127.0.0.1, [::1], public_url's host and the bound address; any other Host "
        "header is refused (DNS rebinding)")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="addresses or networks of reverse proxies whose "
        "X-Forwarded-For and X-Forwarded-Proto are believed (login throttling per client, "
        "Secure cookies over https)")
    secure_cookies: bool = Field(False, description="always mark the dashboard's cookies "
                                 "Secure (TLS ends in front of it)")
    sso_header: str | None = Field(
        None, description="single sign-on: the header a trusted reverse proxy names the person "
        "in (X-Forwarded-User, X-Auth-Request-Email); believed only from sso_proxies")
    sso_proxies: list[str] = Field(
        default_factory=list, validate_default=True, description="addresses or networks of "
        "the proxies allowed to send sso_header (the direct peer, not X-Forwarded-For); "
        "required with sso_header")
    sso_default_role: Literal["viewer", "agent"] | None = Field(
        None, validate_default=True, description="role of a person the proxy names who is not "
        "a user yet (they become one); default: such a person is refused")

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9_.-]+|\[?[0-9A-Fa-f:.]+\]?", name):
                raise ValueError(f"{name!r} is not a host name (listener.internal, 10.0.0.5): "
                                 "no scheme, port or path")
        return names

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or network (127.0.0.1, "
                                 "10.0.0.0/8)") from None
        return values

    @field_validator("sso_header")
    @classmethod
    def _sso_header_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", value):
            raise ValueError(f"{value!r} is not a header name (X-Forwarded-User)")
        if value.lower() in _NOT_SSO_HEADERS:
            raise ValueError(f"{value} cannot name the person: use the header your proxy sets "
                             "for that (X-Forwarded-User, X-Auth-Request-Email)")
        return value

    @field_validator("sso_proxies")
    @classmethod
    def _sso_proxy_networks(cls, values: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("sso_header") and not values:
            raise ValueError("sso_header is set: list the proxies allowed to send it (addresses "
                             "or networks, e.g. [127.0.0.1]); from anyone else it is ignored")
        for value in values:
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address or network (127.0.0.1, "
                                 "10.0.0.0/8)") from None
            if network.prefixlen == 0:
                raise ValueError(f"{value} is every address: anyone could name themselves")
        return values

    @field_validator("sso_default_role")
    @classmethod
    def _sso_role_needs_sso(cls, role: str | None, info: ValidationInfo) -> str | None:
        if role is not None and not info.data.get("sso_header"):
            raise ValueError("sso_default_role needs sso_header (single sign-on)")
        return role

    @property
    def dashboard_url(self) -> str:
        """Where links in alerts (an incident's queue) point."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @field_validator("token")
    @classmethod
    def _token_off_loopback(cls, token: str | None, info: ValidationInfo) -> str | None:
        host = info.data.get("host", "127.0.0.1")
        if token is None and not is_loopback(host):
            raise ValueError(f"binding {host} (not a loopback address) needs an access token "
                             '(serve.token: {"$env": LISTENER_WEB_TOKEN})')
        return token


class BrandSettings(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="unique brand name")
    query: str = Field(description="what to listen for, in the query language (README)")
    languages: list[str] | None = Field(None, description="keep only posts in these languages")
    authors_include: list[str] | None = Field(None, description="keep only these authors")
    authors_exclude: list[str] = Field(default_factory=list, description="drop these authors")

    def compile(self) -> Brand:
        """Parse the query once; a QueryError is reported against this brand's `query` line."""
        lower = lambda items: frozenset(i.lower().lstrip("@") for i in items)  # noqa: E731
        return Brand(
            name=self.name, text=self.query, query=parse_query(self.query),
            languages=frozenset(x.lower() for x in self.languages) if self.languages else None,
            authors_include=lower(self.authors_include) if self.authors_include else None,
            authors_exclude=lower(self.authors_exclude),
        )


class InboxSettings(_Strict):
    """How the team's queue is worked (issue 18)."""

    first_response_minutes: float = Field(
        240, gt=0, description="first-response target: a post unanswered for longer is overdue "
        "(highlighted) and climbs the queue")
    brand_first_response_minutes: dict[str, float] = Field(
        default_factory=dict, description="a brand's own target, e.g. {acme: 60}")
    stale_after_days: float = Field(
        7, gt=0, description="unanswered posts older than this sink to the bottom of the queue")
    reply_approval: list[Literal["agent", "admin"]] = Field(
        default_factory=list, description="roles whose replies wait for an admin's approval "
        "before they are sent, e.g. [agent]")

    @field_validator("brand_first_response_minutes")
    @classmethod
    def _positive(cls, values: dict[str, float]) -> dict[str, float]:
        for brand, minutes in values.items():
            if minutes <= 0:
                raise ValueError(f"{brand}: a target is a number of minutes above 0")
        return values


class _Root(_Strict):
    storage: StorageSettings = StorageSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    dispatch: DispatchSettings = DispatchSettings()
    log: LogSettings = LogSettings()
    metrics: MetricsSettings = MetricsSettings()
    serve: ServeSettings = ServeSettings()
    brands: list[BrandSettings] = Field(default_factory=list, description="what to listen for")
    sources: list[dict[str, Any]] = Field(default_factory=list, description="collectors")
    rules: list[RuleConfig] = Field(default_factory=list, description="alert rules")
    spikes: list[SpikeConfig] = Field(default_factory=list, description="spike detectors")
    digests: list[DigestConfig] = Field(default_factory=list, description="digests")
    incidents: IncidentConfig = IncidentConfig()
    destinations: list[dict[str, Any]] = Field(default_factory=list, description="sinks")
    inbox: InboxSettings = InboxSettings()
    replies: list[dict[str, Any]] = Field(
        default_factory=list, description="accounts replies are sent with (README: Replies)")


@dataclass
class Config:
    """The validated configuration; ``disabled`` maps optional destinations left out to why."""

    path: Path
    storage: StorageSettings
    classifier: ClassifierSettings
    schedule: ScheduleSettings
    dispatch: DispatchSettings
    sources: list[SourceConfig]
    rules: list[RuleConfig]
    destinations: list[SinkConfig]
    spikes: list[SpikeConfig] = field(default_factory=list)
    digests: list[DigestConfig] = field(default_factory=list)
    disabled: dict[str, str] = field(default_factory=dict)
    brands: dict[str, Brand] = field(default_factory=dict)
    log: LogSettings = field(default_factory=LogSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    serve: ServeSettings = field(default_factory=ServeSettings)
    incidents: IncidentConfig = field(default_factory=IncidentConfig)
    inbox: InboxSettings = field(default_factory=InboxSettings)
    reply_accounts: list[AccountConfig] = field(default_factory=list)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def database(self) -> Path | str:
        """Where everything is stored: the PostgreSQL URL when ``storage.url`` is set, else the
        SQLite file (relative to the config file)."""
        return self.storage.url or self.base_dir / self.storage.path


def load_config(path: str | Path, environ: dict[str, str] | None = None) -> Config:
    """Read, resolve secrets, validate; raises ConfigError naming file, line and key."""
    file = Path(path)
    data, lines = parse(read_text(file), str(file))
    where = Locator(str(file), lines)
    env = os.environ if environ is None else environ
    missing: dict[Loc, str] = {}
    data = resolve(data, (), env, missing)
    disabled = _disable_optional(data, missing, where)
    root = _validate(_Root, data, (), where)
    sources = [_plugin(source_class, s, ("sources", i), where) for i, s in enumerate(root.sources)]
    dests = [  # a disabled destination has unset secrets: nothing to validate it with
        _plugin(sink_class, d, ("destinations", i), where)
        for i, d in enumerate(root.destinations) if str(d.get("name")) not in disabled
    ]
    accounts = [
        _plugin(writer_class, a, ("replies", i), where)
        for i, a in enumerate(root.replies) if str(a.get("name")) not in disabled
    ]
    _cross_check(root, sources, dests, disabled, where)
    brands = _compile_brands(root, sources, where)
    _check_inbox(root, accounts, brands, where)
    return Config(
        path=file.resolve(), storage=root.storage, classifier=root.classifier,
        schedule=root.schedule, dispatch=root.dispatch, sources=sources, rules=root.rules,
        destinations=dests, spikes=root.spikes, digests=root.digests, disabled=disabled,
        brands=brands, log=root.log, metrics=root.metrics, serve=root.serve,
        incidents=root.incidents, inbox=root.inbox, reply_accounts=accounts,
    )


def _check_inbox(root: _Root, accounts: list[AccountConfig], brands: dict[str, Brand],
                 where: Locator) -> None:
    """Reply accounts have unique names and answer configured brands; targets name brands."""
    known = ", ".join(sorted(brands)) or "none"
    seen: set[str] = set()
    for i, account in enumerate(accounts):
        if account.name in seen:
            raise where.error(("replies", i, "name"), f"duplicate name '{account.name}'")
        seen.add(account.name)
        for j, brand in enumerate(account.brands or []):
            if brand not in brands:
                raise where.error(("replies", i, "brands", j),
                                  f"unknown brand '{brand}' (configured: {known})")
    for brand in root.inbox.brand_first_response_minutes:
        if brand not in brands:
            raise where.error(("inbox", "brand_first_response_minutes", brand),
                              f"unknown brand '{brand}' (configured: {known})")


def _disable_optional(data: dict[str, Any], missing: dict[Loc, str], where: Locator) -> dict:
    """Optional destinations and reply accounts with unset secrets are left out; any other
    unset secret is an error."""
    disabled: dict[str, str] = {}
    for loc, name in missing.items():
        if len(loc) > 1 and loc[0] in ("destinations", "replies") and isinstance(loc[1], int):
            dest = data[loc[0]][loc[1]]
            if isinstance(dest, dict) and dest.get("optional") is True:
                disabled[str(dest.get("name"))] = f"environment variable {name} is not set"
                continue
        raise where.error(loc, f"environment variable {name} is not set; export it or fix the key")
    return disabled


def _validate(model: type[BaseModel], data: Any, loc: Loc, where: Locator) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        full = (*loc, *first["loc"])
        more = len(exc.errors()) - 1
        suffix = f" (and {more} more problem{'s' * (more > 1)})" if more else ""
        raise where.error(full, f"{first['msg']}{suffix}") from exc


def _plugin(lookup: Any, data: dict[str, Any], loc: Loc, where: Locator) -> Any:
    type_name = data.get("type")
    if not isinstance(type_name, str):
        raise where.error((*loc, "type"), "every entry needs a 'type'")
    try:
        cls = lookup(type_name)
    except ConfigError as exc:
        raise where.error((*loc, "type"), str(exc)) from exc
    return _validate(cls.Config, data, loc, where)


def _compile_brands(root: _Root, sources: list, where: Locator) -> dict[str, Brand]:
    brands: dict[str, Brand] = {}
    for i, settings in enumerate(root.brands):
        if settings.name in brands:
            raise where.error(("brands", i, "name"), f"duplicate brand '{settings.name}'")
        try:
            brands[settings.name] = settings.compile()
        except QueryError as exc:
            raise where.error(("brands", i, "query"), str(exc)) from exc
    users = [("sources", sources), ("spikes", root.spikes), ("digests", root.digests)]
    for kind, items in users:
        for i, item in enumerate(items):
            for j, name in enumerate(item.brands or []):
                if name not in brands:
                    known = ", ".join(sorted(brands)) or "none"
                    raise where.error((kind, i, "brands", j),
                                      f"unknown brand '{name}' (configured: {known})")
    return brands


def _cross_check(
    root: _Root, sources: list, dests: list, disabled: dict[str, str], where: Locator
) -> None:
    names = {
        "sources": [s.name for s in sources],
        "destinations": [str(d.get("name")) for d in root.destinations],
        "rules": [r.name for r in root.rules],
        "spikes": [s.name for s in root.spikes],
        "digests": [d.name for d in root.digests],
    }
    for kind, items in names.items():
        seen: set[str] = set()
        for i, name in enumerate(items):
            if name in seen:
                raise where.error((kind, i, "name"), f"duplicate name '{name}'")
            seen.add(name)
    dest_names = {d.name for d in dests} | set(disabled)
    source_names = set(names["sources"])
    routed = [("rules", root.rules), ("spikes", root.spikes), ("digests", root.digests)]
    if root.incidents.destinations is not None:  # one item, not a list: its own key path
        routed.append(("incidents", [root.incidents]))
    for kind, items in routed:
        for i, item in enumerate(items):
            for j, dest in enumerate(item.destinations or []):
                if dest not in dest_names:
                    known = ", ".join(sorted(dest_names)) or "none"
                    raise where.error(
                        (kind, i, "destinations", j),
                        f"unknown destination '{dest}' (configured: {known})",
                    )
    for i, rule in enumerate(root.rules):
        for loc, name in rule.when.source_refs(("rules", i, "when")):
            if name not in source_names:
                raise where.error(loc, f"unknown source '{name}'")
