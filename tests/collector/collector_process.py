"""Test harness: the real `tokenbook collector` process on free loopback ports, and span factories.

Not a test module. `CollectorProcess` writes a YAML config, starts ``python -m tokenbook collector``,
waits for ``/readyz`` and reads the store through the admin query API (the collector owns the chDB
directory while it runs).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tokenbook.collector.query.api import AdminQueryClient

REPO = Path(__file__).resolve().parents[2]


#: How often `CollectorProcess.start` tries a start that finds one of its ports taken.
_BIND_ATTEMPTS = 5
_ADDRESS_IN_USE = b"already in use"  # "[Errno 98] Address already in use", or the admin API's own words


class _PortTaken(Exception):
    """The collector exited at start because one of its ports was taken."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class CollectorProcess:
    """One collector child process. `start()` may be called again after `stop()`/`kill()`."""

    #: What the interpreter runs: ``python <command> collector --config ...``.
    command: tuple[str, ...] = ("-m", "tokenbook")

    def __init__(self, data_dir: Path, **config: Any) -> None:
        self.data_dir = data_dir
        self.grpc_port, self.http_port, self.admin_port = free_port(), free_port(), free_port()
        self.config: dict[str, Any] = {
            "storage": {"batch": {"max_delay": "50ms"}},
            "telemetry": {"summary_interval": "1s"},
        }
        for section, values in config.items():
            self.config.setdefault(section, {}).update(values)
        self.config_path = data_dir.parent / f"{data_dir.name}-collector.yaml"
        self.log_path = data_dir.parent / f"{data_dir.name}-collector.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/v1/traces"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def start(self, timeout: float = 90.0, *, settled: bool = True) -> CollectorProcess:
        """Start the process and wait until ``/healthz`` answers, then, with `settled`, until its start
        is over: ``/readyz`` no longer says ``starting:`` (a collector with budgets serves while it
        rebuilds their counters, answering ``/v1/budgets`` and ``/v1/reservations`` with 503).

        The ports are picked free, then bound by the child a moment later, and meanwhile an outgoing
        connection of another test process may take one as its local port: a start that finds a port
        taken is tried again on the same ports (up to `_BIND_ATTEMPTS` times, half a second apart),
        its lines dropped from the log."""
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            kept = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                return self._start_once(timeout, settled, kept)
            except _PortTaken:
                if attempt == _BIND_ATTEMPTS:
                    raise RuntimeError(f"a port stayed taken in {attempt} starts:\n{self.log()}") from None
                with self.log_path.open("r+b") as log:
                    log.truncate(kept)
                time.sleep(0.5)
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float, settled: bool, kept: int) -> CollectorProcess:
        """One start; `_PortTaken` when the child exits saying an address is in use (in its log past
        byte `kept`)."""
        self.config_path.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable, *self.command, "collector",
                "--config", str(self.config_path),
                "--data-dir", str(self.data_dir),
                "--grpc", self.grpc_endpoint,
                "--http", f"127.0.0.1:{self.http_port}",
                "--admin", f"127.0.0.1:{self.admin_port}",
            ],
            stdout=log, stderr=log, cwd=REPO,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if _ADDRESS_IN_USE in self.log_path.read_bytes()[kept:]:
                    self.proc = None
                    raise _PortTaken
                raise RuntimeError(f"collector exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.admin_url + "/healthz", timeout=1) as r:
                    if r.status == 200 and (not settled or not self._starting()):
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"collector did not start:\n{self.log()}")

    def _starting(self) -> bool:
        """Whether ``/readyz`` says the collector is still starting."""
        try:
            with urllib.request.urlopen(self.admin_url + "/readyz", timeout=1) as r:
                reason = json.loads(r.read())["reason"]
        except urllib.error.HTTPError as err:
            reason = json.loads(err.read())["reason"]
        return str(reason).startswith("starting:")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    # --- reading ---------------------------------------------------------------------------------
    def query(self, sql: str, **parameters: Any) -> list[tuple[Any, ...]]:
        client = AdminQueryClient(f"127.0.0.1:{self.admin_port}")
        return list(client.query_readonly(sql, parameters)[2])

    def scalar(self, sql: str, **parameters: Any) -> Any:
        return self.query(sql, **parameters)[0][0]

    def wait_for(self, sql: str, expected: Any, timeout: float = 30.0, **parameters: Any) -> Any:
        """Poll a scalar query until it equals `expected` (ingest is asynchronous after the ack)."""
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = self.scalar(sql, **parameters)
            if value == expected:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{sql!r} = {value!r}, expected {expected!r}")

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(self.admin_url + "/metrics", timeout=5) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(f"tokenbook_collector_{name} "):
                    return float(line.split()[1])
        raise KeyError(name)


# --- spans ---------------------------------------------------------------------------------------


class SpanFactory:
    """Finished SDK spans (`ReadableSpan`) from a real TracerProvider, for exporter.export()."""

    def __init__(self, service: str = "support-bot") -> None:
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer("tokenbook-tests")

    def take(self) -> list[ReadableSpan]:
        spans = list(self.memory.get_finished_spans())
        self.memory.clear()
        return spans

    def chats(
        self, n: int, *, tenant: str = "acme", model: str = "gpt-4o", **attrs: Any
    ) -> list[ReadableSpan]:
        """`n` independent chat calls (100 input, 50 output tokens each)."""
        for i in range(n):
            with self.tracer.start_as_current_span(
                f"chat {model}",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": model,
                    "gen_ai.usage.input_tokens": 100,
                    "gen_ai.usage.output_tokens": 50,
                    "tenant.id": tenant,
                    "tokenbook.context.id": f"ctx-{tenant}-{i % 7}",
                    **attrs,
                },
            ):
                pass
        return self.take()
