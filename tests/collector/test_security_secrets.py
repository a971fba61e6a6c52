"""Secrets (the ClickHouse password, the privacy salt) never appear in logs, error messages or reprs.

Each case puts a recognisable secret where an operator would and provokes the failure that is most
likely to echo it: a server that refuses connections, a config that fails validation, a CLI read.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.collector.collector_process import REPO, free_port
from tokenbook.collector.config import ConfigError, load_config

pytestmark = pytest.mark.e2e  # starts processes

PASSWORD = "Pw-9f8e7d6c5b4a-secret"
SALT = "salt-1a2b3c4d5e6f-secret"


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tokenbook", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def _write(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_collector_failing_to_reach_its_server_does_not_log_the_password(tmp_path: Path) -> None:
    """The collector waits for an unreachable server (not ready, retrying): neither its log nor its
    readiness answer shows the password or the salt."""
    url = f"http://tokenbook:{PASSWORD}@127.0.0.1:{free_port()}"  # nothing listens there
    admin = f"127.0.0.1:{free_port()}"
    config = _write(
        tmp_path / "c.yaml",
        {
            "storage": {"clickhouse": {"url": url}},
            "privacy": {"content": "hash", "salt": SALT},
            "telemetry": {"log_level": "debug"},
        },
    )
    log = (tmp_path / "collector.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenbook", "collector", "--config", str(config),
         "--data-dir", str(tmp_path / "data"), "--grpc", f"127.0.0.1:{free_port()}",
         "--http", f"127.0.0.1:{free_port()}", "--admin", admin],
        cwd=REPO, stdout=log, stderr=log, text=True,
    )  # fmt: skip
    try:
        reason = ""
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and "storage unreachable" not in reason:
            try:
                urllib.request.urlopen(f"http://{admin}/readyz", timeout=2)
            except urllib.error.HTTPError as exc:  # 503 while the store cannot be reached
                reason = exc.read().decode()
            except OSError:
                pass
            time.sleep(0.2)
        assert "storage unreachable" in reason and "127.0.0.1" in reason  # the failure is explained...
        time.sleep(1.5)  # a retry or two, logged at debug level
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        log.close()
    text = (tmp_path / "collector.log").read_text(encoding="utf-8") + reason
    assert "127.0.0.1" in text
    assert PASSWORD not in text and SALT not in text  # ...without the secrets


def test_config_errors_name_the_key_not_the_secret(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "bad.yaml",
        {
            "storage": {"clickhouse": {"url": f"ftp://u:{PASSWORD}@host"}},
            "privacy": {"content": "hash", "salt": SALT[:5]},
            "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "nowhere"}}}},
        },
    )
    try:
        load_config(config)
    except ConfigError as exc:
        message = str(exc)
    else:
        raise AssertionError("the config should be refused")
    assert "storage.clickhouse.url" in message and "privacy.salt" in message
    assert PASSWORD not in message and SALT[:5] not in message
    out = _run("collector", "--config", str(config))
    assert out.returncode == 2
    assert "storage.clickhouse.url" in out.stderr and PASSWORD not in out.stdout + out.stderr


def test_loaded_config_never_prints_its_secrets(tmp_path: Path) -> None:
    config = _write(
        tmp_path / "ok.yaml",
        {
            "storage": {"clickhouse": {"url": f"https://tokenbook:{PASSWORD}@ch.example:8443"}},
            "privacy": {"content": "hash", "salt": SALT},
        },
    )
    loaded = load_config(config)
    text = f"{loaded!r} {loaded} {loaded.clickhouse.describe()}"
    assert PASSWORD not in text and SALT not in text
    assert "ch.example" in loaded.clickhouse.describe()


def test_cli_read_of_an_unreachable_server_does_not_print_the_password() -> None:
    out = _run("sql", "--url", f"http://tokenbook:{PASSWORD}@127.0.0.1:{free_port()}", "SELECT 1")
    assert out.returncode != 0
    assert "127.0.0.1" in out.stdout + out.stderr
    assert PASSWORD not in out.stdout + out.stderr
