"""A throwaway PostgreSQL server for the test session: the real engine, never a mock.

``LISTENER_TEST_POSTGRES_URL`` (a ``postgresql://`` URL of a server where the tests may create
and drop databases) is used when set. Otherwise the distribution's own binaries (Debian's
``postgresql`` package: ``/usr/lib/postgresql/<version>/bin``; ``.ci/run`` installs it) start a
private cluster in a temporary folder, reachable only through a Unix socket there, without
fsync (a crash of the test machine loses nothing worth keeping). As root — CI containers —
``initdb`` refuses to run, so the cluster runs as the ``postgres`` user (``runuser``). Why not
pytest-postgresql: it runs ``pg_ctl`` as the current user, which fails as root.

Each test gets a database of its own, created from a template migrated once per session, so a
test costs a file copy, not a migration.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

TEMPLATE = "listener_template"


def _bin_dir() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                      key=lambda p: int(Path(p).parts[-3]))
    return Path(versions[-1]).parent if versions else None


class Server:
    """One PostgreSQL server for the session, started here or given by the environment."""

    def __init__(self, folder: Path | None = None, settings: tuple[str, ...] = ()) -> None:
        """``folder``: keep the cluster there across runs (a benchmark's cached database),
        created when missing, not removed at stop; ``settings``: more ``name=value`` options."""
        self.url = os.environ.get("LISTENER_TEST_POSTGRES_URL", "")
        self._folder: Path | None = None
        self._keep = folder
        self._settings = settings
        self._bin: Path | None = None
        self._template_ready = False

    @property
    def available(self) -> bool:
        return bool(self.url) or _bin_dir() is not None

    def start(self) -> None:
        if self.url:
            return
        self._bin = _bin_dir()
        if self._bin is None:
            raise RuntimeError("no PostgreSQL binaries (apt-get install postgresql)")
        if self._keep is not None:
            self._keep.mkdir(parents=True, exist_ok=True)
        self._folder = self._keep or Path(tempfile.mkdtemp(prefix="listener-pg-"))
        if os.geteuid() == 0:
            shutil.chown(self._folder, "postgres")
        data, port = self._folder / "data", _free_port()
        if not (data / "PG_VERSION").exists():
            self._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
                      "--locale=C.UTF-8", "--no-sync")
        options = (f"-p {port} -k {self._folder} -c listen_addresses='' -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
                   + "".join(f" -c {setting}" for setting in self._settings))
        self._run("pg_ctl", "-D", str(data), "-o", options, "-l", str(self._folder / "log"),
                  "-w", "start")
        self.url = f"postgresql://postgres@/postgres?host={self._folder}&port={port}"

    def stop(self) -> None:
        if self._folder is None:
            return
        if self._keep is not None:  # a clean shutdown: the kept cluster starts without recovery
            self._run("pg_ctl", "-D", str(self._folder / "data"), "-m", "fast", "-w", "stop")
        else:
            self._run("pg_ctl", "-D", str(self._folder / "data"), "-m", "immediate", "-w", "stop")
            shutil.rmtree(self._folder, ignore_errors=True)
        self._folder = None

    def new_database(self) -> str:
        """A URL of a fresh database with every migration applied."""
        import psycopg

        from storage.db import open_db

        if not self._template_ready:
            self._admin(f"DROP DATABASE IF EXISTS {TEMPLATE}")
            self._admin(f"CREATE DATABASE {TEMPLATE}")
            open_db(self.database_url(TEMPLATE)).close()
            self._template_ready = True
        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}".encode())
        return self.database_url(name)

    def database_url(self, name: str) -> str:
        base, _, query = self.url.partition("?")
        root = base.rsplit("/", 1)[0]
        return f"{root}/{name}" + (f"?{query}" if query else "")

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as admin:
            admin.execute(sql.encode())

    def _run(self, tool: str, *args: str) -> None:
        assert self._bin is not None
        command = [str(self._bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
