"""A real PostgreSQL server for tests: Debian's binaries, a throw-away data directory.

Import the session fixture into a test module::

    from postgres_server import postgres_dsn  # noqa: F401

``PostgresServer`` starts more servers where a test needs one of its own (to stop it, say).
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "postgres_dsn"]


def _binary(name: str) -> str:
    """The newest Debian build of ``name``, or the one on PATH."""
    found = sorted(
        glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
        key=lambda p: [int(part) if part.isdigit() else 0 for part in p.split("/")[4].split(".")],
        reverse=True,
    )
    path = found[0] if found else shutil.which(name)
    if path is None:
        pytest.fail(
            f"PostgreSQL's {name} is not installed (looked in /usr/lib/postgresql/*/bin and "
            "on PATH); install it with: apt-get install postgresql"
        )
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1, its data and socket in a temporary directory."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="toolweave-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.fail("running as root, and there is no 'postgres' user to run PostgreSQL")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.running = False

    @property
    def dsn(self) -> str:
        """Where to connect: ``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=120, check=False
        )

    def _fail(self, what: str, done: subprocess.CompletedProcess[str]) -> None:
        log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
        self.cleanup()
        pytest.fail(
            f"PostgreSQL {what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n"
            f"{done.stderr[-2000:]}\n{log}"
        )

    def start(self) -> PostgresServer:
        """initdb (once) and start the server; ``pytest.fail`` with its log if it cannot."""
        if not self.data.exists():
            done = self._run(
                _binary("initdb"),
                "-D",
                str(self.data),
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            )
            if done.returncode != 0:
                self._fail("initdb", done)
        for _ in range(3):  # a free port may be taken before the server binds it
            self.port = _free_port()
            options = (
                f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=60"
            )
            done = self._run(
                _binary("pg_ctl"),
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                options,
            )
            if done.returncode == 0:
                self.running = True
                return self
        self._fail("start", done)
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop the server now (``pg_ctl stop -m immediate``), if it runs."""
        if self.running:
            self.running = False
            self._run(_binary("pg_ctl"), "stop", "-m", "immediate", "-w", "-D", str(self.data))

    def cleanup(self) -> None:
        """Stop the server and delete its directory."""
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """A DSN of a real PostgreSQL server that lives for the test session."""
    server = PostgresServer()
    try:
        server.start()
        yield server.dsn
    finally:
        server.cleanup()
