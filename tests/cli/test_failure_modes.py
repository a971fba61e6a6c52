"""Every way a user can get `tokenbook` wrong ends in one line on stderr that says what happened and
what to do, a non-zero exit code (2 for usage and config errors), and never a traceback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.collector.collector_process import REPO, free_port

pytestmark = pytest.mark.e2e  # starts processes


def _run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenbook", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def _one_line(proc: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in last, (word, proc.stderr)
    if not proc.stderr.startswith("usage:"):  # argparse prints its usage, then one error line
        assert proc.stderr.count("\n") == 1, proc.stderr


@pytest.fixture
def listening():
    """A TCP port something else is listening on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield f"127.0.0.1:{s.getsockname()[1]}"
    s.close()


def test_usage_errors(tmp_path):
    _one_line(_run("report", "--bogus"), 2, "unrecognized arguments: --bogus")
    _one_line(_run("report", "--by", "colour"), 2, "invalid choice", "team")
    _one_line(_run("report", "--admin", "localhost"), 2, "is not HOST:PORT")
    _one_line(_run("collector", "--grpc", "4317"), 2, "is not HOST:PORT")
    _one_line(_run("report", "--since", "yesterday", "--data-dir", str(tmp_path)), 2, "30m, 24h, 7d")
    _one_line(_run("sql", "SELECT 1", "--param", "tenant", "--data-dir", str(tmp_path)), 2, "NAME=VALUE")
    _one_line(_run("reprice"), 2, "--since")


def test_store_errors(tmp_path):
    _one_line(_run("report", "--data-dir", str(tmp_path / "missing")), 1, "no embedded store", "--data-dir")
    _one_line(_run("report", "--data-dir", str(tmp_path)), 1, "is not a tokenbook store")
    _one_line(_run("report", "--admin", f"127.0.0.1:{free_port()}"), 1, "not reachable")
    _one_line(_run("budgets", "--admin", f"127.0.0.1:{free_port()}"), 1, "not reachable")
    _one_line(_run("sql", "DROP TABLE llm_calls", "--data-dir", str(tmp_path)), 1)


def test_bad_files(tmp_path):
    bad_prices = tmp_path / "prices.yaml"
    bad_prices.write_text("models: [{id: x}]\n", encoding="utf-8")
    bad_config = tmp_path / "collector.yaml"
    bad_config.write_text("receivers: 3\n", encoding="utf-8")
    data = str(tmp_path / "data")
    _one_line(_run("collector", "--data-dir", data, "--overrides", str(bad_prices)), 2, "pricing.overrides")
    _one_line(_run("collector", "--data-dir", data, "--overrides", str(tmp_path / "no.yaml")), 2, "no.yaml")
    _one_line(_run("collector", "--data-dir", data, "--config", str(bad_config)), 2, "receivers")
    _one_line(_run("collector", "--config", str(tmp_path / "nope.yaml")), 2, "nope.yaml")
    _one_line(_run("reprice", "--since", "1d", "--data-dir", data, "--overrides", str(bad_prices)), 2)
    assert not (tmp_path / "data").exists()  # nothing was started or created


@pytest.mark.parametrize("flag", ["--grpc", "--http", "--admin"])
def test_port_in_use_names_address_and_flag_and_leaves_the_store_alone(tmp_path, listening, flag):
    ports = {f: f"127.0.0.1:{free_port()}" for f in ("--grpc", "--http", "--admin")}
    ports[flag] = listening
    data = tmp_path / "data"
    args = [a for f, address in ports.items() for a in (f, address)]
    proc = _run("collector", "--data-dir", str(data), *args)
    _one_line(proc, 2, listening, "already in use", flag)
    assert not data.exists()


def _collector(data: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    ports = {f: f"127.0.0.1:{free_port()}" for f in ("--grpc", "--http", "--admin")}
    args = [a for f, address in ports.items() for a in (f, address)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenbook", "collector", "--data-dir", str(data), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://{ports['--admin']}/readyz", timeout=1):
                return proc, ports
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(proc.communicate()[1]) from None
            time.sleep(0.2)


def test_admin_at_otlp_ports_and_ctrl_c_of_the_collector(tmp_path):
    proc, ports = _collector(tmp_path / "data")
    try:
        for port in (ports["--grpc"], ports["--http"]):
            _one_line(_run("report", "--admin", port), 1, port, "admin API", "4319")
            _one_line(_run("budgets", "--admin", port), 1, port, "admin API", "4319")
        # Ctrl-C in a terminal: SIGINT to the whole foreground process group (the decoder child too)
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert '"collector stopped"' in stderr
