"""The `clickhouse_url` fixture: a ClickHouse server URL for server-mode tests.

With ``TOKENBOOK_TEST_CLICKHOUSE_URL`` set, that real server's URL. Otherwise the HTTP test server of
this package (`server.py`: ClickHouse's HTTP interface in front of the real engine, chDB) is started
once per test session as a child process on 127.0.0.1, with its own data directory (chDB allows one
per process), and stopped at the end. Tests isolate themselves by database name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ENV_URL = "TOKENBOOK_TEST_CLICKHOUSE_URL"


class ClickHouseHTTPProcess:
    """`python -m tests.clickhouse_http.server` as a child process."""

    def __init__(self, data_dir: Path, *, user: str = "default", password: str = "", port: int = 0) -> None:
        """`port` 0: any free port (read back from the port file); else that port."""
        self.data_dir = data_dir
        self.requested_port = port
        self.user, self.password = user, password
        self.port_file = data_dir.parent / f"{data_dir.name}.port"
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        auth = f"{self.user}:{self.password}" if self.password else self.user
        return f"http://{auth}@127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ClickHouseHTTPProcess:
        self.port_file.unlink(missing_ok=True)
        env = {**os.environ, "CLICKHOUSE_TEST_PASSWORD": self.password}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "tests.clickhouse_http.server",
                    "--data-dir", str(self.data_dir), "--port", str(self.requested_port),
                    "--port-file", str(self.port_file), "--user", self.user,
                ],
                stdout=subprocess.DEVNULL, stderr=log, cwd=REPO, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self.port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the ClickHouse HTTP test server did not start:\n{self.log()}")
            time.sleep(0.05)
        self.port = int(self.port_file.read_text(encoding="ascii"))
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ClickHouse server's URL: ``$TOKENBOOK_TEST_CLICKHOUSE_URL``, else the HTTP test server's."""
    configured = os.environ.get(ENV_URL)
    if configured:
        yield configured
        return
    server = ClickHouseHTTPProcess(tmp_path_factory.mktemp("clickhouse-http") / "data").start()
    try:
        yield server.url
    finally:
        server.stop()
