"""Replies through the real command line (issue 18): a reply written for a Mastodon post is
sent by `listener run --once --stages dispatch` through the configured account, once — a
second run sends nothing — and the post is then ``replied``; a config naming an unknown brand
or an unset secret says where."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from listener.config import load_config
from listener.core.errors import ConfigError
from listener.core.models import Page, Post, utcnow
from storage import db as store
from storage import replies
from tests.e2e import cli_env, run_cli
from tests.fakes.mastodon_api import FakeMastodon

TOKEN = "e2e-mastodon-write-token"
CONFIG = """\
storage:
  path: listener.db
brands:
  - name: acme
    query: acme
inbox:
  reply_approval: [agent]
replies:
  - type: mastodon
    name: acme-mastodon
    brands: [acme]
    base_url: {base_url}
    access_token: {{"$env": ACME_MASTODON_TOKEN}}
dispatch:
  once_max_wait: 0
"""


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with FakeMastodon(access_token=TOKEN) as server:
        yield server


def test_run_once_sends_a_written_reply_once(tmp_path: Path, fake: FakeMastodon) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(base_url=fake.base_url), encoding="utf-8")
    status = fake.add_status("<p>acme lost my parcel</p>", acct="ann")
    db = store.open_db(tmp_path / "listener.db")
    now = utcnow()
    store.store_page(db, "m", Page(posts=[Post(
        platform="mastodon", platform_id=status["uri"], text="acme lost my parcel",
        created_at=now - timedelta(minutes=20), source="m", brand="acme", author="ann",
        url=status["url"])]), now)
    reply = replies.create(db, 1, "acme-mastodon", "mastodon", "jane", "So sorry, Ann!", now,
                           needs_approval=False)
    db.close()
    env = {**cli_env("http://127.0.0.1:9/unused"), "ACME_MASTODON_TOKEN": TOKEN}
    for _ in range(2):
        done = run_cli(["run", "--once", "--stages", "dispatch", "-c", str(config)], env)
        assert done.returncode == 0, done.stderr
    (posted,) = fake.posted()
    assert posted["content"].endswith("So sorry, Ann!")
    assert TOKEN not in done.stderr + done.stdout
    db = store.open_db(tmp_path / "listener.db")
    sent = replies.get(db, reply.id)
    assert sent is not None and (sent.status, sent.remote_id) == ("sent", posted["id"])
    assert db.execute("SELECT status, by FROM post_status").fetchone() == ("replied", "jane")
    db.close()


def test_reply_accounts_are_checked_like_destinations(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(base_url="https://mastodon.example").replace(
        "brands: [acme]", "brands: [globex]"), encoding="utf-8")
    with pytest.raises(ConfigError, match="replies\\[0\\].brands\\[0\\].*unknown brand 'globex'"):
        load_config(config, {"ACME_MASTODON_TOKEN": TOKEN})
    config.write_text(CONFIG.format(base_url="https://mastodon.example"), encoding="utf-8")
    with pytest.raises(ConfigError, match="ACME_MASTODON_TOKEN is not set"):
        load_config(config, {})
    optional = CONFIG.format(base_url="https://mastodon.example").replace(
        "    brands: [acme]", "    brands: [acme]\n    optional: true")
    config.write_text(optional, encoding="utf-8")
    loaded = load_config(config, {})
    assert loaded.reply_accounts == [] and "acme-mastodon" in loaded.disabled
    assert load_config(config, {"ACME_MASTODON_TOKEN": TOKEN}).inbox.reply_approval == ["agent"]
