"""Issue 17: the classify stage pipelined — a reader thread reading (or claiming) the next batch
while the model scores this one, scores saved several batches per transaction — stores exactly
what the stage storing batch by batch stores, on SQLite and on PostgreSQL, with claims; and it
stops, fails and gives claims back like that one: no thread left running, no post claimed
for nothing, nothing scored before an error lost.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from classifiers.base import Prediction
from classifiers.routing import LanguageRouter
from listener import classify_stage
from listener.classify_stage import classify
from listener.config import load_config
from listener.core.errors import ClassifierError, StorageError
from listener.core.language import detect
from listener.core.models import Page, Post
from listener.pipeline import Runtime
from storage import db as store
from storage.db import open_db
from storage.engine import Db
from storage.tx import connect as open_connection
from tests.pg_server import Server

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SCORE_ROW = ("SELECT post_id, model, model_version, sentiment, p_negative, p_neutral, p_positive,"
             " urgency, lang, language_supported, scored_by, scored_at FROM scores ORDER BY post_id")
TEXTS = [
    "the app crashed again and support never answered",
    "love the new update, thanks team",
    "el servicio no funciona desde ayer, ayuda por favor",
    "order arrived on time",
    "why was I charged twice? refund please",
    "meh",
]


class Hashed:
    """A model whose verdict on a text depends on the text alone (not on its batch), fast and
    thread-safe; ``fail_at``: the call (1-based) that raises, as a broken model would."""

    name, version = "hashed", "1"
    languages = frozenset({"en"})

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.calls = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        with self._lock:
            self.calls += 1
            self.threads.add(threading.current_thread().name)
            if self.calls == self.fail_at:
                raise ClassifierError("model 'hashed' failed on a batch: boom")
        out = []
        for text in texts:
            h = hashlib.sha256(text.encode()).digest()
            weights = [h[0] + 1, h[1] + 1, h[2] + 1]
            total = sum(weights)
            probs = dict(zip(("negative", "neutral", "positive"),
                             (w / total for w in weights), strict=True))
            out.append(Prediction(max(probs, key=probs.__getitem__), probs, h[3] / 255))
        return out


def routed(model: object) -> LanguageRouter:
    """As the daemon routes a preloaded model: its languages, the rest flagged, some detected."""
    return LanguageRouter({"*": model}, detect=detect)  # type: ignore[dict-item]


def add_posts(db: Db, count: int) -> None:
    """``count`` posts in pages of 100: English, undetected (the router detects) and Spanish."""
    langs = ("en", None, "es")
    posts = [Post("x", str(i), f"{TEXTS[i % len(TEXTS)]} #{i}", NOW, source="x",
                  lang=langs[i % 3]) for i in range(count)]
    for start in range(0, count, 100):
        store.store_page(db, "x", Page(posts[start:start + 100]), NOW)


class Engine:
    """Fresh migrated databases of one engine, each with a factory of new connections."""

    def __init__(self, kind: str, tmp_path: Path, server: Server | None) -> None:
        self.kind, self.tmp_path, self.server = kind, tmp_path, server
        self.opened: list[Db] = []
        self.connections = 0

    def new(self) -> tuple[Db, Callable[[], Any]]:
        target: str | Path
        if self.server is not None:
            target = self.server.new_database()
        else:
            target = self.tmp_path / f"db{len(self.opened)}.db"
        db = open_db(target)
        self.opened.append(db)

        def connect() -> Any:
            self.connections += 1
            return open_connection(target)

        return db, connect

    def close(self) -> None:
        for db in self.opened:
            db.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    server = request.getfixturevalue("pg_server") if request.param == "postgresql" else None
    made = Engine(request.param, tmp_path, server)
    yield made
    made.close()


@pytest.fixture(scope="module")
def onnx_model() -> object:
    """The default model as a CPU machine serves it (ONNX Runtime, int8), from the session's
    cache (one export per test session)."""
    import os

    from classifiers.onnx_backend import load_onnx_classifier

    return load_onnx_classifier(cache_dir=Path(os.environ["LISTENER_CACHE_DIR"]) / "onnx")


def stored(db: Db) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in db.execute(SCORE_ROW).fetchall()]


def leases_left(db: Db) -> int:
    return int(db.execute("SELECT count(*) FROM leases WHERE name LIKE 'classify:%'")
               .fetchone()[0])


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("classify-")]


# -- the same scores --


def test_pipelined_scores_are_the_sequential_ones_with_the_real_model(
    tmp_path: Path, onnx_model: object,
) -> None:
    """The default model (int8 ONNX), 230 posts in three languages in batches of 64, saved by
    turns and pipelined (one and two scorer threads): every stored score equal, to the bit."""
    model = routed(onnx_model)
    engine = Engine("sqlite", tmp_path, None)
    results = []
    for connect_it, scorers in ((False, 1), (True, 1), (True, 2)):
        db, connect = engine.new()
        add_posts(db, 230)
        done = classify(db, model, lambda: NOW, batch_size=64, connect=connect if connect_it
                        else None, write_size=150, scorers=scorers)
        assert done == 230
        results.append(stored(db))
    engine.close()
    assert engine.connections == 2  # one reader connection per pipelined run
    assert results[0] == results[1] == results[2]
    assert {row[8] for row in results[0]} >= {"en", "es"}  # routed, some detected
    assert {row[9] for row in results[0]} == {0, 1}  # Spanish flagged as not understood


@pytest.mark.parametrize("owner", [None, "w1"])
def test_pipelined_stores_what_the_sequential_stage_stores(engine: Engine,
                                                           owner: str | None) -> None:
    """Both engines, with and without claims: equal rows, every claim given back."""
    model = routed(Hashed())
    runs = []
    for connect_it in (False, True):
        db, connect = engine.new()
        add_posts(db, 530)
        progress: list[tuple[int, str]] = []

        def note(n: int, progress: list[tuple[int, str]] = progress) -> None:
            progress.append((n, threading.current_thread().name))

        done = classify(db, model, lambda: NOW, batch_size=50, owner=owner,
                        connect=connect if connect_it else None, write_size=120, on_batch=note)
        assert done == 530 and progress[-1][0] == 530
        assert {name for _, name in progress} == {threading.current_thread().name}
        assert [n for n, _ in progress] == sorted(n for n, _ in progress)
        assert leases_left(db) == 0
        assert store.posts_to_score(db, model.name, model.version, 10) == []
        runs.append((stored(db), len(progress)))
    (by_turns, batches), (pipelined, transactions) = runs
    assert by_turns == pipelined
    assert batches == 11  # one transaction per batch of 50
    # batches gathered into transactions of at least 120 posts (3 batches), the rest at the end
    assert transactions < batches


def test_two_scorer_threads_store_the_same_scores(engine: Engine) -> None:
    model = Hashed()
    results = []
    for scorers in (1, 2):
        db, connect = engine.new()
        add_posts(db, 400)
        assert classify(db, routed(model), lambda: NOW, batch_size=32, connect=connect,
                        scorers=scorers, owner="w1" if engine.kind == "postgresql" else None
                        ) == 400
        results.append(stored(db))
    assert results[0] == results[1]
    assert {"classify-score-0", "classify-score-1"} <= model.threads


def test_writer_threads_store_the_same_scores(engine: Engine) -> None:
    """Transactions handed to three writer threads, each on a connection of its own (on
    PostgreSQL they run side by side): the same rows as one writer, every claim given back,
    progress told on the calling thread up to the whole backlog."""
    results = []
    for writers in (1, 3):
        db, connect = engine.new()
        add_posts(db, 450)
        before = engine.connections
        progress: list[tuple[int, str]] = []
        assert classify(db, routed(Hashed()), lambda: NOW, batch_size=30, connect=connect,
                        write_size=60, writers=writers,
                        owner="w1" if engine.kind == "postgresql" else None,
                        on_batch=lambda n, seen=progress: seen.append(
                            (n, threading.current_thread().name))) == 450
        assert engine.connections - before == 1 + (writers if writers > 1 else 0)
        assert progress[-1][0] == 450
        assert [n for n, _ in progress] == sorted(n for n, _ in progress)
        assert {name for _, name in progress} == {threading.current_thread().name}
        assert leases_left(db) == 0 and not stage_threads()
        results.append(stored(db))
    assert results[0] == results[1]


def test_a_small_workload_is_scored_by_turns_without_threads(tmp_path: Path) -> None:
    """The daemon's minute brings a few dozen posts: no reader thread, no extra connection."""
    engine = Engine("sqlite", tmp_path, None)
    db, connect = engine.new()
    add_posts(db, 40)
    model = Hashed()
    assert classify(db, routed(model), lambda: NOW, batch_size=64, connect=connect) == 40
    assert engine.connections == 0 and model.threads == {threading.current_thread().name}
    engine.close()


# -- stopping and failing --


def test_stop_between_batches_saves_what_was_scored_and_releases_the_rest(
    engine: Engine,
) -> None:
    db, connect = engine.new()
    add_posts(db, 600)
    stop = threading.Event()
    owner = "w1" if engine.kind == "postgresql" else None
    model = routed(Hashed())
    done = classify(db, model, lambda: NOW, batch_size=50, connect=connect, owner=owner,
                    stop=stop, write_size=50, on_batch=lambda n: stop.set())
    assert 50 <= done < 600
    assert len(stored(db)) == done and not stage_threads() and leases_left(db) == 0
    # the rest is scored by the next run, nothing twice
    assert classify(db, model, lambda: NOW, batch_size=50, connect=connect, owner=owner) \
        == 600 - done
    assert len(stored(db)) == 600


def test_a_model_failing_mid_backlog_fails_the_stage_after_saving_earlier_batches(
    engine: Engine,
) -> None:
    db, connect = engine.new()
    add_posts(db, 500)
    owner = "w1" if engine.kind == "postgresql" else None
    model = Hashed(fail_at=4)
    with pytest.raises(ClassifierError, match="boom"):
        classify(db, routed(model), lambda: NOW, batch_size=50, connect=connect, owner=owner,
                 write_size=1000)
    assert len(stored(db)) == 150  # the three batches scored before the failure: saved
    assert not stage_threads() and leases_left(db) == 0
    assert classify(db, routed(Hashed()), lambda: NOW, batch_size=50, connect=connect,
                    owner=owner) == 350


@pytest.mark.parametrize("writers", [1, 2])
def test_a_failing_write_fails_the_stage_and_gives_the_claims_back(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, writers: int,
) -> None:
    """The second transaction fails: saved on the calling thread, or on one of two writer
    threads (the other saves what it was handed meanwhile)."""
    db, connect = engine.new()
    add_posts(db, 500)
    owner = "w1" if engine.kind == "postgresql" else None
    real = store.save_scores
    calls = []

    def save(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise StorageError("database is busy or read-only: disk full")
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "save_scores", save)
    with pytest.raises(StorageError, match="disk full"):
        classify(db, routed(Hashed()), lambda: NOW, batch_size=50, connect=connect,
                 owner=owner, write_size=50, writers=writers)
    saved = len(stored(db))
    assert (saved == 50) if writers == 1 else (50 <= saved < 500 and saved % 50 == 0)
    assert not stage_threads() and leases_left(db) == 0
    monkeypatch.setattr(store, "save_scores", real)
    assert classify(db, routed(Hashed()), lambda: NOW, batch_size=50, connect=connect,
                    owner=owner) == 500 - saved


def test_a_failing_read_fails_the_stage_after_saving_what_was_read_before(
    engine: Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The reader's connection breaks after its second batch."""
    db, connect = engine.new()
    add_posts(db, 500)
    reads = []
    real = classify_stage._Stage.read

    def read(self: classify_stage._Stage, conn: Any, after: int) -> Any:
        reads.append(after)
        if len(reads) == 3:  # the stage's own read, then the reader's first: fine
            raise StorageError("connection lost")
        return real(self, conn, after)

    monkeypatch.setattr(classify_stage._Stage, "read", read)
    with pytest.raises(StorageError, match="connection lost"):
        classify(db, routed(Hashed()), lambda: NOW, batch_size=50, connect=connect)
    assert len(stored(db)) == 100 and not stage_threads()


def test_a_reader_that_cannot_connect_fails_the_stage(tmp_path: Path) -> None:
    engine = Engine("sqlite", tmp_path, None)
    db, _ = engine.new()
    add_posts(db, 100)

    def refuse() -> Any:
        raise StorageError("cannot open database: too many connections")

    with pytest.raises(StorageError, match="too many connections"):
        classify(db, routed(Hashed()), lambda: NOW, batch_size=50, connect=refuse)
    assert len(stored(db)) == 50 and not stage_threads()  # the batch read before: saved
    engine.close()


def test_scores_wait_at_most_write_seconds_for_their_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow model and a large write size: a transaction still goes out every WRITE_SECONDS."""
    monkeypatch.setattr(classify_stage, "WRITE_SECONDS", 0.05)
    engine = Engine("sqlite", tmp_path, None)
    db, connect = engine.new()
    add_posts(db, 200)
    inner = Hashed()

    class Slow:
        name, version, languages = inner.name, inner.version, inner.languages

        def predict(self, texts: Sequence[str]) -> list[Prediction]:
            threading.Event().wait(0.1)
            return inner.predict(texts)

    progress: list[int] = []
    assert classify(db, routed(Slow()), lambda: NOW, batch_size=20, connect=connect,
                    write_size=10_000, on_batch=progress.append) == 200
    assert len(progress) >= 5  # not one transaction of 200 at the end
    engine.close()


# -- the runtime --


def test_the_runtime_pipelines_a_backlog_with_the_configured_sizes(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "storage: {path: listener.db}\nmetrics: {port: null}\n"
        "classifier: {pipelined: true, stage_batch: 25, write_batch: 60, scorers: 2,"
        " writers: 2}\n"
        "sources: []\nrules: []\ndestinations: []\n")
    config = load_config(tmp_path / "config.yaml", environ={})
    model = Hashed()
    events: list[tuple[str, str, str, int | None]] = []
    runtime = Runtime(config, preloaded=model, strict=True,
                      progress=lambda *event: events.append(event))
    runtime.migrate()
    db = runtime.db()
    add_posts(db, 300)
    assert runtime.run_classify() == 300
    assert len(stored(db)) == 300
    counts = [count for event, stage, _, count in events if (event, stage) == ("batch", "classify")]
    assert counts[-1] == 300 and len(counts) <= 300 // 60 + 3  # + the writers' final count
    assert {"classify-score-0", "classify-score-1"} <= model.threads
    run = db.execute("SELECT status, items FROM runs WHERE stage = 'classify'").fetchone()
    assert tuple(run) == ("ok", 300)
    db.close()


def test_stage_settings_default_to_todays_batches() -> None:
    from listener.config import ClassifierSettings

    settings = ClassifierSettings()
    assert (settings.pipelined, settings.stage_batch, settings.write_batch, settings.scorers,
            settings.writers) == (None, None, None, 1, 1)


@pytest.mark.parametrize(("settings", "driver", "pipelined"), [
    ("{}", False, False),  # a CPU machine: by turns, as before
    ("{}", True, True),  # device auto with an NVIDIA driver: the model runs on the GPU
    ("{device: cuda}", False, True),
    ("{device: cpu}", True, False),
    ("{pipelined: true}", False, True),
    ("{device: cuda, pipelined: false}", True, False),
])
def test_the_runtime_pipelines_where_the_model_runs_on_a_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: str, driver: bool,
    pipelined: bool,
) -> None:
    from classifiers import loader

    monkeypatch.setattr(loader, "NVIDIA_DRIVER", tmp_path / ("driver" if driver else "none"))
    (tmp_path / "driver").touch()
    (tmp_path / "config.yaml").write_text(
        f"storage: {{path: listener.db}}\nmetrics: {{port: null}}\nclassifier: {settings}\n"
        "sources: []\nrules: []\ndestinations: []\n")
    seen: list[bool] = []

    def spy(*args: Any, connect: Any = None, **kwargs: Any) -> int:
        seen.append(connect is not None)
        return 0

    monkeypatch.setattr("listener.pipeline.classify", spy)
    runtime = Runtime(load_config(tmp_path / "config.yaml", environ={}), preloaded=Hashed(),
                      strict=True)
    runtime.migrate()
    assert runtime.run_classify() == 0 and seen == [pipelined]


def test_the_bench_times_both_ways_on_a_small_backlog(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """bench/classify_stage.py (issue 17's pipeline row) runs, so it cannot rot between GPU
    sessions: a stub model, SQLite, every way."""
    from bench import classify_stage as bench

    data = tmp_path / "posts.tsv"
    data.write_text("id\tlabel\ttext\n" + "".join(f"{i}\tneutral\t{TEXTS[i % len(TEXTS)]}\n"
                                                  for i in range(20)))
    assert bench.main(["--data", str(data), "--model", "stub", "--posts", "300", "--engines",
                       "sqlite", "--batch-size", "8", "--write-batch", "100", "--writers", "1",
                       "2", "--switch-interval", "0.0005", "--stub-busy-us", "1", "--stub-launches",
                       "200", "--stub-us", "1"]) == 0
    out = capsys.readouterr().out
    assert "device cpu (stub model)" in out and "stage_batch 64, write_batch 100" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("sqlite ")]
    assert [tuple(r[1:5]) for r in rows[:5]] == [
        ("in-turn", "1", "1", "300"), ("pipelined", "1", "1", "300"),
        ("pipelined", "1", "2", "300"), ("pipelined", "2", "1", "300"),
        ("pipelined", "2", "2", "300")]
    assert [" ".join(r[1:8]) for r in rows[5:]] == [
        f"pipelined switch 0.5 ms {n} {w} 300" for n in (1, 2) for w in (1, 2)]
    assert sys.getswitchinterval() == pytest.approx(0.005)  # given back


def test_the_bench_forces_the_models_overlap_either_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--overlap on|off`` (bench/gpu_all.sh compares both on a GPU) reaches the real torch
    model: on a CPU too, a stage batch of more than one overlap part is scored in parts on the
    scoring thread (parts of 64 texts here, 2,048 served), every post saved, or in one go."""
    from bench import classify_stage as bench
    from classifiers import transformer

    monkeypatch.setattr(transformer, "OVERLAP_PART", 64)
    data = tmp_path / "posts.tsv"
    data.write_text("id\tlabel\ttext\n" + "".join(f"{i}\tneutral\t{TEXTS[i % len(TEXTS)]}\n"
                                                  for i in range(20)))
    for overlap in ("on", "off"):
        assert bench.main(["--data", str(data), "--posts", "300", "--engines", "sqlite",
                           "--device", "cpu", "--backend", "torch", "--batch-size", "32",
                           "--stage-batch", "256", "--ways", "pipelined", "--scorers", "1",
                           "--overlap", overlap]) == 0
        out = capsys.readouterr().out
        assert f"(TransformerClassifier), overlap {overlap};" in out
        rows = [line.split() for line in out.splitlines() if line.startswith("sqlite ")]
        assert [tuple(r[1:5]) for r in rows] == [("pipelined", "1", "1", "300")]
