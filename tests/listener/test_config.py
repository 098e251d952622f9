"""Config loading: valid files load, every mistake names file, line and key path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.digest import DigestConfig
from alerts.quiet import QuietHours
from alerts.replies.registry import WRITERS, writer_class
from alerts.rules import AlertCap, Condition, RuleConfig
from alerts.sinks import REGISTRY as SINKS
from alerts.sinks import sink_class
from alerts.spikes import SpikeConfig
from listener import config as config_module
from listener.cli import cli
from listener.config import load_config
from listener.core.errors import ConfigError
from listener.core.log import redact
from listener.sources import REGISTRY as SOURCES
from listener.sources import source_class

ROOT = Path(__file__).resolve().parents[2]
HOOK = {"SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/secretsecret"}
# every secret config.example.yaml refers to, so the example itself is checked to load
EXAMPLE_ENV = {**HOOK, "X_BEARER_TOKEN": "example-bearer-token",
               "REDDIT_CLIENT_ID": "example-id", "REDDIT_CLIENT_SECRET": "example-secret"}

VALID = """\
storage:
  path: data/listener.db
sources:
  - type: file
    name: exports
    path: "*.jsonl"
rules:
  - name: unhappy
    when:
      sentiment: negative
      min_probability: 0.7
      sources: [exports]
    destinations: [console]
destinations:
  - type: console
    name: console
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_for(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ=env or {})
    return info.value


def test_valid_config_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID), environ={})
    assert config.database == tmp_path.resolve() / "data" / "listener.db"
    assert [s.name for s in config.sources] == ["exports"]
    assert config.rules[0].when.sentiment == ["negative"]
    assert config.sources[0].interval == 300


def test_example_and_demo_configs_load() -> None:
    example = load_config(ROOT / "config.example.yaml", environ=EXAMPLE_ENV)
    assert {d.name for d in example.destinations} == {"console", "support-slack"}
    demo = load_config(ROOT / "examples" / "demo" / "config.yaml", environ={})
    assert demo.disabled == {"team-slack": "environment variable SLACK_WEBHOOK_URL is not set"}
    assert [d.name for d in demo.destinations] == ["console"]


def test_wrong_type_names_file_line_and_key(tmp_path: Path) -> None:
    err = error_for(
        tmp_path, VALID.replace('path: "*.jsonl"', 'path: "*.jsonl"\n    interval: often')
    )
    assert err.line == 7 and err.key == "sources[0].interval"
    assert str(err).startswith(f"{tmp_path / 'config.yaml'}, line 7, key 'sources[0].interval': ")


def test_unknown_key_is_refused_with_its_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, VALID.replace("min_probability: 0.7", "min_probabilty: 0.7"))
    assert (err.line, err.key) == (11, "rules[0].when.min_probabilty")
    assert "Extra inputs are not permitted" in str(err)


def test_unknown_source_type_lists_valid_types(tmp_path: Path) -> None:
    err = error_for(tmp_path, VALID.replace("type: file", "type: fax"))
    assert (err.line, err.key) == (4, "sources[0].type")
    assert "unknown source type 'fax'; valid types are: " in str(err)
    assert ", ".join(sorted(SOURCES)) in str(err)


def test_unknown_destination_in_rule(tmp_path: Path) -> None:
    err = error_for(tmp_path, VALID.replace("destinations: [console]", "destinations: [slak]"))
    assert (err.line, err.key) == (13, "rules[0].destinations[0]")
    assert "unknown destination 'slak' (configured: console)" in str(err)


def test_unknown_source_in_rule_condition(tmp_path: Path) -> None:
    err = error_for(tmp_path, VALID.replace("sources: [exports]", "sources: [exprots]"))
    assert err.key == "rules[0].when.sources[0]" and "unknown source 'exprots'" in str(err)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    err = error_for(tmp_path, VALID.replace("  - name: unhappy", "  - name: [unhappy"))
    assert err.line is not None and "invalid YAML" in str(err)


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    text = VALID + "  - type: console\n    name: console\n"
    err = error_for(tmp_path, text)
    assert (err.key, err.line) == ("destinations[1].name", 18)


def test_missing_secret_is_an_error_unless_the_destination_is_optional(tmp_path: Path) -> None:
    slack = '  - type: slack\n    name: hook\n    webhook_url: {"$env": HOOK_URL}\n'
    err = error_for(tmp_path, VALID + slack)
    assert err.key == "destinations[1].webhook_url" and "HOOK_URL is not set" in str(err)
    config = load_config(write(tmp_path, VALID + slack + "    optional: true\n"), environ={})
    assert config.disabled == {"hook": "environment variable HOOK_URL is not set"}


def test_secrets_resolve_from_env_and_are_redacted(tmp_path: Path) -> None:
    slack = (
        '  - type: slack\n    name: hook\n    webhook_url: "https://${HOST}/services/${TOKEN}"\n'
    )
    env = {"HOST": "hooks.slack.com", "TOKEN": "T1/B2/zzzsecretzzz"}
    config = load_config(write(tmp_path, VALID + slack), environ=env)
    assert (
        config.destinations[1].webhook_url == "https://hooks.slack.com/services/T1/B2/zzzsecretzzz"
    )
    assert redact("posting to T1/B2/zzzsecretzzz") == "posting to ***"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""), environ={})
    assert config.sources == [] and config.classifier.model == "default"


def test_check_config_cli_exit_status(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(cli, ["check-config", str(write(tmp_path, VALID))])
    assert good.exit_code == 0 and "ok" in good.output
    bad = write(tmp_path, VALID.replace("interval", "x").replace("name: exports", "name: bad name"))
    result = runner.invoke(cli, ["check-config", str(bad)])
    assert result.exit_code != 0
    assert isinstance(result.exception, ConfigError)
    assert "line 5, key 'sources[0].name'" in str(result.exception)


def _documented_keys() -> set[str]:
    text = (ROOT / "config.example.yaml").read_text(encoding="utf-8")
    return set(re.findall(r"^\s*#?\s*-?\s*([A-Za-z_]+):", text, flags=re.MULTILINE))


def _field_names(model: type) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def test_every_setting_is_documented_in_the_example() -> None:
    documented = _documented_keys()
    models = [
        config_module._Root,
        config_module.StorageSettings,
        config_module.ClassifierSettings,
        config_module.ScheduleSettings,
        config_module.DispatchSettings,
        config_module.LogSettings,
        config_module.MetricsSettings,
        config_module.ServeSettings,
        config_module.BrandSettings,
        AlertCap,
        RuleConfig,
        Condition,
        SpikeConfig,
        DigestConfig,
        QuietHours,
        *(source_class(name).Config for name in SOURCES),
        *(sink_class(name).Config for name in SINKS),
        config_module.InboxSettings,
        config_module.RetrainConfig,
        *(writer_class(name).Config for name in WRITERS),
    ]
    missing = {f"{m.__name__}.{k}" for m in models for k in _field_names(m) - documented}
    assert not missing, f"document these keys in config.example.yaml: {sorted(missing)}"


def test_bad_brand_query_and_unknown_brand_name_their_keys(tmp_path: Path) -> None:
    brands = 'brands:\n  - name: acme\n    query: \'"acme cloud\'\n'
    err = error_for(tmp_path, brands + VALID)
    assert (err.line, err.key) == (3, "brands[0].query") and "unbalanced quote" in str(err)
    good = brands.replace("'\"acme cloud'", "acme")
    err = error_for(tmp_path, good + VALID.replace('path: "*.jsonl"', 'path: "*.jsonl"\n    brands: [acne]'))
    assert err.key == "sources[0].brands[0]" and "unknown brand 'acne' (configured: acme)" in str(err)
    config = load_config(write(tmp_path, good + VALID), environ={})
    assert config.brands["acme"].accepts("Acme is down", "en", "ann")


def test_check_config_fails_when_a_source_is_not_ready(tmp_path: Path) -> None:
    text = VALID.replace("rules:", "  - type: x\n    name: x-main\n    bearer_token: ''\nrules:", 1)
    result = CliRunner().invoke(cli, ["check-config", str(write(tmp_path, text))])
    assert result.exit_code == 1
    assert "source 'x-main' is not ready" in result.output and "bearer_token" in result.output


@pytest.mark.parametrize("section", ["spikes", "digests"])
def test_unknown_brand_in_spikes_and_digests_names_its_key(tmp_path: Path, section: str) -> None:
    brands = "brands:\n  - name: acme\n    query: acme\n"
    text = brands + VALID + f"{section}:\n  - name: s1\n    brands: [acne]\n    destinations: [console]\n"
    err = error_for(tmp_path, text)
    assert err.key == f"{section}[0].brands[0]" and err.line == 22
    assert "unknown brand 'acne' (configured: acme)" in str(err)


def test_classifier_backend_onnx_with_a_cache_dir_relative_to_the_file(tmp_path: Path) -> None:
    text = VALID + "classifier:\n  backend: onnx\n  cache_dir: cache/onnx\n"
    config = load_config(write(tmp_path, text), environ={})
    assert config.classifier.backend == "onnx"
    assert config.classifier.cache_path(config.base_dir) == tmp_path.resolve() / "cache" / "onnx"
    default = load_config(write(tmp_path, VALID), environ={}).classifier
    assert (default.backend, default.cache_path(tmp_path)) == ("auto", None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("  model: org/roberta\n  backend: onnx\n", "backend onnx serves only model 'default'"),
        ("  device: cuda\n  backend: onnx\n", "backend onnx is CPU-only"),
        ("  backend: tensorrt\n", "Input should be 'auto', 'torch' or 'onnx'"),
    ],
)
def test_classifier_backend_errors_name_its_line(tmp_path: Path, settings: str, message: str) -> None:
    err = error_for(tmp_path, VALID + "classifier:\n" + settings)
    assert err.key == "classifier.backend" and message in str(err)
    assert err.line == VALID.count("\n") + 1 + settings.count("\n")  # the `backend:` line


def test_classifier_models_map_languages_to_models(tmp_path: Path) -> None:
    text = VALID + 'classifier:\n  models: {es: ./models/es, "*": default}\n'
    config = load_config(write(tmp_path, text), environ={})
    assert config.classifier.models == {"es": "./models/es", "*": "default"}
    assert load_config(write(tmp_path, VALID), environ={}).classifier.models is None


@pytest.mark.parametrize(("models", "message"), [
    ("{ES: x}", "'ES' is not a language code"),
    ("{spanish: x}", "'spanish' is not a language code"),
    ('{es: " "}', "models.es: name a model"),
])
def test_classifier_models_errors_name_the_key(tmp_path: Path, models: str, message: str) -> None:
    err = error_for(tmp_path, VALID + f"classifier:\n  models: {models}\n")
    assert err.key == "classifier.models" and message in str(err)
    assert err.line == VALID.count("\n") + 2


def test_storage_url_names_a_postgresql_database_through_the_environment(tmp_path: Path) -> None:
    """Issue 17: the URL (with its password) comes from the environment, and anything but a
    postgresql:// URL is refused with the file, line and key."""
    with_url = VALID.replace("  path: data/listener.db", '  url: {"$env": DB_URL}')
    good = write(tmp_path, with_url)
    config = load_config(good, environ={"DB_URL": "postgresql://u:pw@db.internal/listener"})
    assert config.database == "postgresql://u:pw@db.internal/listener"
    assert load_config(write(tmp_path, VALID)).database == tmp_path / "data" / "listener.db"
    bad = write(tmp_path, VALID.replace("  path: data/listener.db", "  url: mysql://db/x"))
    with pytest.raises(ConfigError, match=r"line 2, key 'storage.url'.*postgresql:// URL"):
        load_config(bad)
