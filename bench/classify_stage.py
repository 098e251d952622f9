"""The classify stage end to end: unscored posts in the database → stored scores (issue 17's row).

    python bench/classify_stage.py [--posts 196544] [--pg-posts 50000] [--engines sqlite
        postgresql] [--ways in-turn pipelined] [--scorers 1 2] [--writers 1 2 4]
        [--model default|stub]
        [--device auto] [--batch-size 1024] [--stage-batch N] [--write-batch 8192]
        [--url postgresql://…] [--data PATH]

What is timed is :meth:`listener.pipeline.Runtime.run_classify` — the stage as the daemon and
``run --once`` run it, its ``runs`` row and progress marks included — on a database holding
``--posts`` English posts nobody scored (TweetEval's test tweets, repeated, each a post of its
own), from the call to its return, every score stored. Loading the posts and the model, and a
warm-up call of the model, are not timed. Each row gets a fresh copy of the loaded database.

* engines: ``sqlite`` (a file in the system's temporary folder: WAL, synchronous=NORMAL, as
  served) and ``postgresql`` (a throwaway cluster, :class:`tests.pg_server.Server`, or
  ``--url``; the runtime then claims its batches, as every worker on PostgreSQL does);
  ``--pg-posts`` posts there (each score runs the PL/pgSQL triggers: far slower than SQLite);
* ways (``classifier.pipelined``): ``in-turn`` — read a batch, score it, save it, again (the
  stage before issue 17, and its default on a CPU) — and ``pipelined`` — a reader thread,
  ``--scorers`` model threads, scores saved ``--write-batch`` posts per transaction by
  ``--writers`` threads (``classifier.stage_batch``, ``write_batch``, ``scorers``,
  ``writers``: on PostgreSQL batches of scores are written side by side). Run from an older checkout's
  ``bench/``, it times that checkout's stage (in turn);
* ``--model default``: the configured model as the runtime loads it (``load_routed``, on
  ``--device``: float16 on CUDA, ONNX int8 on a CPU); ``--model stub``: a model that costs
  nothing (or ``--stub-us`` microseconds a post, slept with the GIL released, as a device
  would; and first ``--stub-busy-us`` busy in Python, the GIL held, as a GPU model's
  normalising, tokenising's lists and kernel launches hold it, then ``--stub-launches`` calls
  per 1,000 posts that give the GIL up and take it back, as torch does around each CUDA call),
  to see what the stage itself sustains around a model;
* ``--switch-interval S …``: the pipelined rows again with the interpreter's switch interval at
  S seconds (5 ms by default): the threads take turns at one lock, and a thread that gave it up
  for a CUDA call may wait the whole interval to get it back.

Prints the device (``torch.cuda.get_device_name``, or "cpu"), the sizes, the machine's cores and
load average, then one line per row: posts, seconds, posts/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from classifiers.base import Prediction  # noqa: E402
from classifiers.evaluate import read_labelled_tsv  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "sentiment" / "test.tsv"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PAGE = 2000  # posts per stored page while loading
_LAUNCH = bytes(2048)  # a stub's kernel launch: hashed with the interpreter lock released


class Stub:
    """A model that answers at once (or after ``us`` µs a post, sleeping: the GIL released),
    a third of the posts negative (a negative score also fills the triage queue and its search
    index: saving it costs three times a neutral one's on SQLite)."""

    name, version = "stub", "1"
    languages = frozenset({"en"})

    def __init__(self, us: float = 0.0, busy_us: float = 0.0, launches: float = 0.0) -> None:
        self.us, self.busy_us, self.launches = us, busy_us, launches
        self.answers = [Prediction(label, {k: 0.8 if k == label else 0.1 for k in
                                           ("negative", "neutral", "positive")}, 0.1)
                        for label in ("negative", "neutral", "positive")]

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if self.busy_us:  # Python's work, the interpreter lock held (as normalising holds it)
            until = time.perf_counter() + self.busy_us * len(texts) / 1e6
            while time.perf_counter() < until:
                pass
        for _ in range(round(self.launches * len(texts) / 1000)):
            # gives the lock up and takes it back, as torch does around each CUDA call (hashlib
            # releases it for 2 kB and more; time.sleep(0) would add a system call)
            hashlib.sha256(_LAUNCH).digest()
        if self.us:
            time.sleep(self.us * len(texts) / 1e6)
        return [self.answers[len(text) % 3] for text in texts]


def load_model(args: argparse.Namespace) -> tuple[Any, str]:
    """The router the runtime would build (loaded once, handed to every row) and the device."""
    from classifiers.routing import LanguageRouter
    from listener.core.language import detect

    if args.model == "stub":
        stub = Stub(args.stub_us, args.stub_busy_us, args.stub_launches)
        return LanguageRouter({"*": stub}, detect=detect), "cpu (stub model)"
    from classifiers.loader import load_routed

    router = load_routed("default", detect=detect, batch_size=args.batch_size,
                         device=args.device, backend=args.backend)
    english = router.routes.get("en", router.fallback)
    device = "cpu"
    encoder = getattr(english, "encoder", None)
    if encoder is not None and getattr(encoder, "device", None) is not None:
        import torch

        if encoder.device.type == "cuda":
            device = f"{torch.cuda.get_device_name(encoder.device)} (torch {torch.__version__})"
    if device == "cpu":
        device = f"cpu ({type(english).__name__})"
    if args.overlap != "auto":  # the one-thread overlap of a model on CUDA, forced on or off
        forced = [m for m in {id(m): m for m in router.routes.values()}.values()
                  if hasattr(m, "overlap")]
        for model in forced:
            model.overlap = args.overlap == "on"
        device += f", overlap {args.overlap}" + ("" if forced else " ignored (no torch model)")
    router.predict(["warm-up: kernels, allocator, pinned buffers"] * 2048, ["en"] * 2048)
    return router, device


def posts(texts: list[str], count: int) -> Iterator[list[Any]]:
    """``count`` English posts in pages, each text once per repetition, each post its own id."""
    from listener.core.models import Post

    page: list[Any] = []
    for i in range(count):
        page.append(Post("x", str(i), texts[i % len(texts)], NOW, source="bench", lang="en"))
        if len(page) == PAGE:
            yield page
            page = []
    if page:
        yield page


def fill(db: Any, texts: list[str], count: int) -> None:
    from listener.core.models import Page
    from storage.db import store_page

    for page in posts(texts, count):
        store_page(db, "bench", Page(page), NOW)


class SqliteCopies:
    """One loaded SQLite file; each row gets a copy of it."""

    def __init__(self, folder: Path, texts: list[str], count: int) -> None:
        from storage.db import open_db

        self.folder, self.loaded, self.n = folder, folder / "loaded.db", 0
        db = open_db(self.loaded)
        fill(db, texts, count)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.close()

    def new(self) -> str:
        self.n += 1
        target = self.folder / f"row{self.n}.db"
        shutil.copyfile(self.loaded, target)
        return f"path: {target}"


class PostgresCopies:
    """One loaded PostgreSQL database; each row gets ``CREATE DATABASE … TEMPLATE`` of it."""

    def __init__(self, server: Any, texts: list[str], count: int) -> None:
        from storage.db import open_db

        self.server, self.n = server, 0
        url = server.new_database()
        self.template = url.partition("?")[0].rsplit("/", 1)[1]
        db = open_db(url)
        fill(db, texts, count)
        db.execute("VACUUM ANALYZE posts")
        db.close()

    def new(self) -> str:
        import psycopg

        self.n += 1
        name = f"{self.template}_row{self.n}"
        with psycopg.connect(self.server.url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {self.template}".encode())
        return f"url: '{self.server.database_url(name)}'"


@contextmanager
def postgres(url: str | None) -> Iterator[Any]:
    """A server where databases may be created: ``--url``, else a throwaway local cluster."""
    from tests.pg_server import Server

    if url:
        os.environ["LISTENER_TEST_POSTGRES_URL"] = url
    server = Server()
    if not server.available:
        yield None
        return
    try:
        server.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        print(f"  (postgresql: the cluster did not start: {exc})", file=sys.stderr, flush=True)
        yield None
        return
    try:
        yield server
    finally:
        server.stop()


def run_row(storage: str, args: argparse.Namespace, model: Any, folder: Path, way: str,
            scorers: int, writers: int = 1) -> tuple[int, float]:
    """One timed run of the stage through a runtime of its own; (scored, seconds)."""
    from listener.config import ClassifierSettings, load_config
    from listener.pipeline import Runtime

    stage = ""
    if pipelining():  # else a checkout from before issue 17: its stage, measured as it was
        stage = (f", pipelined: {str(way == 'pipelined').lower()}, stage_batch:"
                 f" {args.stage_batch or max(args.batch_size * 8, 64)}, write_batch:"
                 f" {args.write_batch}, scorers: {scorers}")
        if "writers" in ClassifierSettings.model_fields:  # PostgreSQL's batches side by side
            stage += f", writers: {writers}"
    config = folder / f"config-{time.monotonic_ns()}.yaml"
    config.write_text(
        f"storage: {{{storage}}}\nmetrics: {{port: null}}\n"
        f"classifier: {{batch_size: {args.batch_size}, device: {args.device}{stage}}}\n"
        "sources: []\nrules: []\ndestinations: []\n")
    runtime = Runtime(load_config(config, environ={}), preloaded=model, strict=True)
    runtime.migrate()
    start = time.perf_counter()
    done = runtime.run_classify()
    return int(done or 0), time.perf_counter() - start


def pipelining() -> bool:
    """Whether this checkout's stage can pipeline (issue 17); the bench also measures older
    ones (copied into their ``bench/``), whose stage is the in-turn one alone."""
    from listener.config import ClassifierSettings

    return "stage_batch" in ClassifierSettings.model_fields


def bench(args: argparse.Namespace) -> list[str]:
    rows = read_labelled_tsv(args.data)
    texts = [r["text"] for r in rows]
    load_start = time.perf_counter()
    model, device = load_model(args)
    load_s = time.perf_counter() - load_start
    stage_batch = args.stage_batch or max(args.batch_size * 8, 64)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out = [
        f"device {device}; model {model.name} {model.version}; classifier.batch_size "
        f"{args.batch_size}, stage_batch {stage_batch}, write_batch {args.write_batch}; "
        f"{cores} CPU cores; load average {os.getloadavg()[0]:.2f}; model load {load_s:.1f} s; "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        f"{'engine':<11} {'way':<10} {'scorers':>7} {'writers':>7} {'posts':>8} {'seconds':>8}"
        f" {'posts/s':>9}",
    ]
    print("\n".join(out), flush=True)
    with tempfile.TemporaryDirectory(prefix="classify-bench-") as tmp:
        folder = Path(tmp)
        for engine in args.engines:
            count = args.posts if engine == "sqlite" else args.pg_posts
            with (postgres(args.url) if engine == "postgresql" else _nothing()) as server:
                if engine == "postgresql" and server is None:
                    line = ("postgresql  skipped: no PostgreSQL server here (no pg_ctl on PATH"
                            " or in /usr/lib/postgresql, or it did not start; no --url)")
                    print(line, flush=True)
                    out.append(line)
                    continue
                started = time.perf_counter()
                copies: SqliteCopies | PostgresCopies = (
                    SqliteCopies(folder, texts, count) if server is None
                    else PostgresCopies(server, texts, count))
                print(f"  ({engine}: {count} posts loaded in {time.perf_counter() - started:.1f}"
                      " s, not timed)", file=sys.stderr, flush=True)
                for way, scorers, writers, interval in row_plan(args):
                    with switch_interval(interval):
                        done, seconds = run_row(copies.new(), args, model, folder, way, scorers,
                                                writers)
                    if done != count:
                        raise SystemExit(f"{engine} {way}: scored {done} of {count} posts")
                    label = way if interval is None else f"{way} switch {interval * 1000:g} ms"
                    line = (f"{engine:<11} {label:<10} {scorers:>7} {writers:>7} {done:>8}"
                            f" {seconds:>8.2f} {done / seconds:>9,.0f}")
                    print(line, flush=True)
                    out.append(line)
    out.append(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(out[-1])
    return out


def row_plan(args: argparse.Namespace) -> list[tuple[str, int, int, float | None]]:
    """(way, scorers, writers, switch interval or None for the default) of each row, in
    order: every way, then the pipelined ones again at each ``--switch-interval``."""
    ways = args.ways if pipelining() else ["in-turn"]
    plain = [(way, n, w, None) for way in ways
             for n in (args.scorers if way == "pipelined" else [1])
             for w in (args.writers if way == "pipelined" else [1])]
    return plain + [(way, n, w, s) for s in args.switch_interval for way, n, w, _ in plain
                    if way == "pipelined"]


@contextmanager
def switch_interval(seconds: float | None) -> Iterator[None]:
    """``sys.setswitchinterval(seconds)`` for the block (None: as it is)."""
    before = sys.getswitchinterval()
    if seconds is not None:
        sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="TSV: id, label, text")
    parser.add_argument("--posts", type=int, default=196_544, help="posts on SQLite")
    parser.add_argument("--pg-posts", type=int, default=50_000, help="posts on PostgreSQL")
    parser.add_argument("--engines", nargs="+", default=["sqlite", "postgresql"],
                        choices=["sqlite", "postgresql"])
    parser.add_argument("--ways", nargs="+", default=["in-turn", "pipelined"],
                        choices=["in-turn", "pipelined"])
    parser.add_argument("--scorers", type=int, nargs="+", default=[1, 2],
                        help="model threads of the pipelined rows")
    parser.add_argument("--writers", type=int, nargs="+", default=[1],
                        help="writer threads of the pipelined rows (classifier.writers)")
    parser.add_argument("--model", default="default", choices=["default", "stub"])
    parser.add_argument("--stub-us", type=float, default=0.0,
                        help="stub model: microseconds a post, slept (GIL released)")
    parser.add_argument("--stub-busy-us", type=float, default=0.0,
                        help="stub model: microseconds a post busy in Python (GIL held), first")
    parser.add_argument("--stub-launches", type=float, default=0.0,
                        help="stub model: then, per 1,000 posts, calls that give the GIL up and"
                             " take it back (a GPU model's kernel launches: ~200)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"],
                        help="classifier.backend (auto: torch on a GPU, else ONNX Runtime)")
    parser.add_argument(
        "--overlap", default="auto", choices=["auto", "on", "off"],
        help="TransformerClassifier.overlap: tokenise the next part on the scoring thread while "
        "the device runs (auto: on CUDA); off: the way before it, for comparison on a GPU")
    parser.add_argument("--batch-size", type=int, default=1024, help="classifier.batch_size")
    parser.add_argument("--stage-batch", type=int, default=None,
                        help="classifier.stage_batch (default batch size x 8)")
    parser.add_argument("--write-batch", type=int, default=8192, help="classifier.write_batch")
    parser.add_argument("--url", default=None, help="a PostgreSQL server to create databases in")
    parser.add_argument(
        "--switch-interval", type=float, nargs="*", default=[],
        help="the pipelined rows again with sys.setswitchinterval(S) for each S: does the "
        "interpreter lock's hand-over between the stage's threads hold the device up?")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    bench(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
