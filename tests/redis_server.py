"""Real ``redis-server`` processes for tests, on 127.0.0.1 (and a unix socket), never saving.

``redis_url`` is a session-wide server's URL; ``RedisServer`` starts one a test can stop to see
what a cache does when Redis goes away. Import the fixtures like::

    from redis_server import redis_server, redis_url  # noqa: F401
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Self

import pytest

REDIS_SERVER = "/usr/bin/redis-server"
_START_TIMEOUT = 30.0  # seconds; a loaded 2-core machine
_STOP_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` in ``directory`` on a free port of 127.0.0.1 and on a unix socket
    there, with persistence off. Use it as a context manager, or ``start()`` and ``stop()``."""

    def __init__(self, directory: Path) -> None:
        if not os.path.exists(REDIS_SERVER):
            pytest.fail(
                f"redis-server is not installed at {REDIS_SERVER}; the cache tests need a real "
                "one: apt-get install redis-server (CI installs it)"
            )
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """``unix://DIR/redis.sock?db=0``."""
        return f"unix://{self.directory / 'redis.sock'}?db=0"

    def start(self) -> Self:
        """Start the server and wait until it answers PING; fail the test if it does not."""
        for _ in range(3):  # another process may take the free port before redis binds it
            self.port = _free_port()
            log = self.directory / f"redis-{self.port}.log"
            options = {
                "port": str(self.port),
                "bind": "127.0.0.1",
                "unixsocket": str(self.directory / "redis.sock"),
                "unixsocketperm": "700",
                "save": "",
                "appendonly": "no",
                "dir": str(self.directory),
                "logfile": str(log),
            }
            self.process = subprocess.Popen(
                [REDIS_SERVER, *(arg for k, v in options.items() for arg in (f"--{k}", v))],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + _START_TIMEOUT
            while time.monotonic() < deadline and self.process.poll() is None:
                if _ping(self.port):
                    return self
                time.sleep(0.05)
            self.stop()
        text = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        pytest.fail(f"redis-server did not start on 127.0.0.1; its log ends:\n{text}")

    def stop(self) -> None:
        """Stop the server: terminate, then kill if it lingers. Stopping twice is fine."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_STOP_TIMEOUT)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server for the whole session."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """``redis://127.0.0.1:PORT/0`` of the session's redis-server."""
    return redis_server.url
