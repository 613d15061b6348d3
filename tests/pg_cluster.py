"""A throw-away PostgreSQL cluster for the test suite (real server, no mocks).

The cluster lives in a temporary directory under /tmp, listens on 127.0.0.1 on a free port with
trust authentication, and is tuned for speed (no fsync etc.). When running as root, ``initdb`` and
``postgres`` refuse to run, so they are started as the system user ``postgres`` via ``runuser``.
"""

from __future__ import annotations

import atexit
import os
import pathlib
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from types import TracebackType
from typing import Self

import psycopg
from psycopg import sql

PG_ROOT = pathlib.Path("/usr/lib/postgresql")
SUPERUSER = "postgres"
HOST = "127.0.0.1"
RUN_AS_USER = "postgres"


def _version_key(path: pathlib.Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin -> numeric version for sorting ("15", "9.6", ...)
    parts = re.findall(r"\d+", path.parent.name)
    return tuple(int(p) for p in parts)


def find_pg_bin() -> pathlib.Path | None:
    """Return the newest /usr/lib/postgresql/*/bin that contains initdb and pg_ctl, or None."""
    candidates = [
        bindir
        for bindir in PG_ROOT.glob("*/bin")
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file()
    ]
    if not candidates:
        return None
    return max(candidates, key=_version_key)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """A temporary PostgreSQL cluster.

    Usage::

        cluster = PostgresCluster()
        cluster.start()
        url = cluster.create_database("t1")
        ...
        cluster.stop()

    or as a context manager (``with PostgresCluster() as cluster: ...``).
    """

    def __init__(self, bin_dir: pathlib.Path | None = None, start_timeout: int = 60) -> None:
        found = bin_dir if bin_dir is not None else find_pg_bin()
        if found is None:
            raise RuntimeError(f"no PostgreSQL binaries (initdb, pg_ctl) found under {PG_ROOT}/*/bin")
        self.bin_dir: pathlib.Path = found
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.base_dir: pathlib.Path | None = None
        self._running = False
        self._as_root = os.geteuid() == 0
        self._uid: int | None = None
        self._gid: int | None = None
        if self._as_root:
            entry = pwd.getpwnam(RUN_AS_USER)
            self._uid, self._gid = entry.pw_uid, entry.pw_gid

    # -- paths -----------------------------------------------------------------------------------

    def _base(self) -> pathlib.Path:
        if self.base_dir is None:
            raise RuntimeError("cluster has not been started")
        return self.base_dir

    @property
    def data_dir(self) -> pathlib.Path:
        return self._base() / "data"

    @property
    def socket_dir(self) -> pathlib.Path:
        return self._base() / "socket"

    @property
    def log_file(self) -> pathlib.Path:
        return self._base() / "server.log"

    # -- helpers ---------------------------------------------------------------------------------

    def _chown(self, path: pathlib.Path) -> None:
        if self._uid is not None and self._gid is not None:
            os.chown(path, self._uid, self._gid)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_root:
            cmd = ["runuser", "-u", RUN_AS_USER, "--", *cmd]
        env = dict(os.environ, LC_ALL="C", LANG="C")
        env.pop("PGDATA", None)
        return subprocess.run(
            cmd,
            cwd=self._base(),  # the postgres user may not be able to read the caller's cwd
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    def _log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def _require_running(self) -> int:
        if not self._running or self.port is None:
            raise RuntimeError("cluster is not running")
        return self.port

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._running:
            return
        base = pathlib.Path(tempfile.mkdtemp(prefix="pgtest-", dir="/tmp"))
        base.chmod(0o755)
        self._chown(base)
        self.base_dir = base
        try:
            self.socket_dir.mkdir(mode=0o755)
            self._chown(self.socket_dir)
            self._initdb()
            self._start_server()
        except BaseException:
            self._cleanup_dir()
            raise
        self._running = True
        atexit.register(self.stop)

    def _initdb(self) -> None:
        result = self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")

    def _start_server(self, attempts: int = 3) -> None:
        error = ""
        for _ in range(attempts):
            port = _free_port()
            options = (
                f"-p {port} -k {self.socket_dir} -c listen_addresses={HOST} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
            )
            result = self._run(
                str(self.bin_dir / "pg_ctl"),
                "-w",
                "-t",
                str(self.start_timeout),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                options,
                "start",
            )
            if result.returncode == 0:
                self.port = port
                return
            tail = self._log_tail()
            error = (
                f"pg_ctl start failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"--- tail of {self.log_file} ---\n{tail}"
            )
            # Make sure a half-started server is gone before retrying (e.g. port grabbed by someone else).
            self._pg_ctl_stop()
            if "could not bind" not in tail and "already in use" not in tail:
                break
        raise RuntimeError(error)

    def _pg_ctl_stop(self) -> subprocess.CompletedProcess[str]:
        return self._run(
            str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"
        )

    def _cleanup_dir(self) -> None:
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete the temporary directory. Idempotent."""
        if self.base_dir is None:
            return
        try:
            if self._running:
                self._pg_ctl_stop()
        finally:
            self._running = False
            self.port = None
            self._cleanup_dir()
            atexit.unregister(self.stop)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- databases -------------------------------------------------------------------------------

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) for ``dbname`` on this cluster."""
        port = self._require_running()
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq conninfo string for ``dbname`` (for direct psycopg use)."""
        port = self._require_running()
        return f"host={HOST} port={port} user={SUPERUSER} dbname={dbname}"

    def _admin_execute(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (optionally from ``template``) and return its SQLAlchemy URL."""
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement = sql.SQL("{} TEMPLATE {}").format(statement, sql.Identifier(template))
        self._admin_execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, terminating any remaining connections to it."""
        self._admin_execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
