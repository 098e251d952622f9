"""Delivery under faults (issue #5): per sink, alerts sent, delivered, duplicated, lost.

    python bench/delivery_faults.py [--alerts 200] [--seed 7] [--rate 0.3] [--crash SINK ...]

For each sink type (Slack webhook, Slack bot, Zendesk, Jira, GitHub, webhook, e-mail): a SQLite
outbox of ``--alerts`` alerts about stored posts, the real sink and client, its fake on
127.0.0.1 failing ``--rate`` of the requests on a seeded schedule (HTTP 500/503, 429 with
Retry-After, answers slower than the sink's timeout, connection resets, and the remote acting
before its answer is lost: the connection dropped, or the answer too late; for SMTP 421 at MAIL,
451 at DATA, a dropped connection, and a mail accepted whose 250 is lost or late), and the real
dispatch loop on a manual clock until nothing is pending; then ``listener alerts retry`` for
the parked alerts and dispatch again. Definitions: ``tests/alerts/delivery_matrix.py``.

Then the crash variant (``tests/alerts/delivery_crash.py``), for the sinks named by ``--crash``
(default: all): the real ``listener run --once`` is SIGKILLed once the remote has created the
first alert's object but before its answer arrived, then run again until it exits.

The sink types run in parallel processes (``--jobs``; they mostly wait for timeouts), the crash
runs one after another (each loads the model twice). Exit status 1 when a guarantee fails: an
alert lost, a duplicate where the remote recognises retries, or more duplicates than answers
lost after the remote acted. Logs are discarded unless ``--log FILE``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from tests.alerts import delivery_crash, delivery_matrix  # noqa: E402
from tests.alerts.delivery_remotes import SINKS  # noqa: E402
from tests.fakes.faults import HTTP_KINDS, SMTP_KINDS  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alerts", type=int, default=200, help="alerts per sink type")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rate", type=float, default=0.3, help="share of requests that fail")
    parser.add_argument("--timeout", type=float, default=1.0, help="the sinks' timeout, s")
    parser.add_argument("--max-attempts", type=int, default=5, help="dispatch.max_attempts")
    parser.add_argument("--kinds", nargs="+", choices=sorted({*HTTP_KINDS, *SMTP_KINDS}),
                        help="inject only these fault kinds (default: all)")
    parser.add_argument("--sinks", nargs="+", choices=SINKS, default=list(SINKS))
    parser.add_argument("--crash", nargs="*", choices=SINKS, default=list(SINKS),
                        help="sinks for the SIGKILL runs (none: --crash with no names)")
    parser.add_argument("--jobs", type=int, default=len(SINKS), help="parallel sink runs")
    parser.add_argument("--log", type=Path, help="write the sinks' and dispatch's log here")
    return parser.parse_args(argv)


def quiet(log: Path | None) -> None:
    """Keep the expected warnings (hundreds of failed attempts) off the terminal."""
    handler: logging.Handler = logging.NullHandler() if log is None else \
        logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def one_sink(kind: str, args: argparse.Namespace, workdir: Path) -> delivery_matrix.Row:
    quiet(args.log and args.log.with_suffix(f".{kind}.log"))
    kinds = SMTP_KINDS if kind == "email" else HTTP_KINDS
    weights = None if args.kinds is None else {k: int(k in args.kinds) for k in kinds}
    return delivery_matrix.run_sink(kind, alerts=args.alerts, seed=args.seed, rate=args.rate,
                                    workdir=workdir, timeout=args.timeout,
                                    max_attempts=args.max_attempts, weights=weights)


def broken(rows: list[delivery_matrix.Row], crashes: list[delivery_crash.CrashRow]) -> list[str]:
    """Every guarantee a row breaks, in words (empty: all kept)."""
    found = []
    for r in rows:
        limit = 0 if r.deduped else r.acted_lost
        if r.lost or r.delivered != r.alerts or r.duplicates > limit:
            found.append(f"{r.sink}: {r.lost} lost, {r.delivered}/{r.alerts} delivered, "
                         f"{r.duplicates} duplicates (at most {limit})")
    for c in crashes:
        limit = 0 if c.deduped else 1  # the one killed send
        if not c.known or c.lost or c.duplicates > limit:
            found.append(f"{c.sink} (crash): attempt known {c.known}, {c.lost} lost, "
                         f"{c.duplicates} duplicates (at most {limit})")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet(args.log)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="delivery-faults-") as tmp:
        work = Path(tmp)
        print(f"{args.alerts} alerts per sink, seed {args.seed}, {args.rate:.0%} of requests "
              f"failing, timeout {args.timeout:g} s, max_attempts {args.max_attempts}",
              flush=True)
        with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            rows = list(pool.map(partial(one_sink, args=args, workdir=work), args.sinks))
        print(delivery_matrix.table(rows))
        print("\nfaults injected, by kind:")
        for r in rows:
            print(f"  {r.sink}: " + ", ".join(f"{k} {n}" for k, n in r.injected.items()))
        crashes = []
        for kind in args.crash:
            crashes.append(delivery_crash.crash_sink(kind, work / f"crash-{kind}"))
            print(f"crash run {kind}: {crashes[-1].seconds:.0f} s", file=sys.stderr, flush=True)
        if crashes:
            print("\nSIGKILL between send and ack, then `listener run --once` again:")
            print(delivery_crash.table(crashes))
    problems = broken(rows, crashes)
    print(f"\n{time.monotonic() - started:.0f} s in all; guarantees: "
          + ("kept" if not problems else "BROKEN\n  " + "\n  ".join(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
