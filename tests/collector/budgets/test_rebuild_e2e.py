"""A collector with budgets serves while its counters are rebuilt from the ledger.

The rebuild reads every quota's window of the ledger, which grows with the ledger (a month's quota on
a big store: minutes). A collector that rebuilt before its receivers opened refused every export
meanwhile (an SDK drops a batch after its export timeout) and failed its health probe. Here the
rebuild is held at its start (the process runs the collector with `BudgetEvaluator.rebuild` waiting
for a file, a real rebuild once it appears): the collector must be healthy, acknowledge exports into
its log, answer admin queries, and say why it is not ready; the reservation and budget-state
endpoints answer 503 rather than from empty counters, and `tokenbook budgets` waits for them. Once
the rebuild runs, every call, acknowledged before the restart or during the rebuild, counts once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.collector.collector_process import REPO, CollectorProcess, SpanFactory

pytestmark = pytest.mark.e2e  # starts processes

_GATE_ENV = "TOKENBOOK_TEST_REBUILD_GATE"
_GATED_COLLECTOR = f"""
import os, sys, time
from pathlib import Path
from tokenbook.collector.budgets import evaluator

_rebuild = evaluator.BudgetEvaluator.rebuild

def rebuild(self, *args, **kwargs):
    gate = Path(os.environ[{_GATE_ENV!r}])
    gate.with_suffix(".reached").touch()
    while not gate.exists():
        time.sleep(0.02)
    return _rebuild(self, *args, **kwargs)

evaluator.BudgetEvaluator.rebuild = rebuild
from tokenbook.cli import main
sys.exit(main(sys.argv[1:]))
"""
CHAT_TOKENS = 150  # SpanFactory.chats: 100 input + 50 output
QUOTA = {"name": "daily", "window": "1d", "limit": {"tokens": 100_000}, "enforcement": "hard"}


class _GatedCollector(CollectorProcess):
    command = ("-c", _GATED_COLLECTOR)


def _get(url: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    return _call(urllib.request.Request(url))


def _call(request: urllib.request.Request) -> tuple[int, dict[str, Any], dict[str, str]]:
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read()), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def _send(c: CollectorProcess, spans: list[Any]) -> None:
    exporter = OTLPSpanExporter(endpoint=c.http_url, timeout=10)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()


def _wait(path: Path, c: CollectorProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, c.log()
        time.sleep(0.05)


@pytest.mark.parametrize("ack", ["logged", "built"])
def test_the_collector_serves_while_its_budget_counters_are_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ack: str
) -> None:
    gate = tmp_path / "gate"
    monkeypatch.setenv(_GATE_ENV, str(gate))
    config: dict[str, Any] = {"budgets": {"quotas": [QUOTA]}, "receivers": {"otlp": {"ack": ack}}}
    spans = SpanFactory()
    gate.touch()  # the first run rebuilds at once
    c = _GatedCollector(tmp_path / "data", **config).start()
    _send(c, spans.chats(3, tenant="acme"))
    c.kill()  # acknowledged: in the log, stored or not
    gate.unlink()
    gate.with_suffix(".reached").unlink(missing_ok=True)  # (killed before its rebuild began)

    c.start(timeout=30, settled=False)  # /healthz answers while the rebuild waits
    try:
        _wait(gate.with_suffix(".reached"), c)
        started = [line for line in c.log_lines() if line["msg"] == "collector started"]
        assert started[-1]["storage"] == "connected"  # open, being read: not a server being waited for
        status, doc, _ = _get(c.admin_url + "/readyz")
        assert status == 503 and doc["reason"].startswith("starting: the budget counters are being rebuilt")
        status, doc, headers = _get(c.admin_url + "/v1/budgets?tenant=acme")
        assert (status, headers.get("Retry-After")) == (503, "1"), doc
        assert "being rebuilt" in doc["error"]
        body = json.dumps({"attributes": {"tenant": "acme"}, "tokens": 10}).encode()
        reserve = urllib.request.Request(c.admin_url + "/v1/reservations", data=body, method="POST")
        assert _call(reserve)[0] == 503
        _send(c, spans.chats(2, tenant="acme"))  # acknowledged into the log during the rebuild
        assert c.scalar("SELECT count() FROM v_calls WHERE tenant_id = 'acme'") in (0, 3)  # queries read
        cli = subprocess.Popen(
            [sys.executable, "-m", "tokenbook", "budgets", "--admin", f"127.0.0.1:{c.admin_port}",
             "--tenant", "acme", "--format", "json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        time.sleep(1.5)  # it waits for the counters
        assert cli.poll() is None
        gate.touch()
        out, err = cli.communicate(timeout=60)
        assert cli.returncode == 0, err
        assert "the budget counters are being rebuilt from the ledger" in err and "waiting" in err
        assert [json.loads(line)["rule"] for line in out.splitlines()] == ["daily"]
        c.wait_for("SELECT count() FROM v_calls WHERE tenant_id = 'acme'", 5)
        deadline = time.monotonic() + 15
        while (status := _get(c.admin_url + "/readyz")[0]) != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert status == 200
        while True:  # calls are counted once built, just behind the rows: 5 calls, each once
            (quota,) = _get(c.admin_url + "/v1/budgets?tenant=acme")[1]["quotas"]
            if quota["used"]["tokens"] >= 5 * CHAT_TOKENS or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert quota["used"]["tokens"] == 5 * CHAT_TOKENS
        time.sleep(0.5)  # nothing counted twice later either
        (quota,) = _get(c.admin_url + "/v1/budgets?tenant=acme")[1]["quotas"]
        assert quota["used"]["tokens"] == 5 * CHAT_TOKENS
        assert _call(reserve)[0] == 201
    finally:
        assert c.stop() == 0
    assert any(line["msg"] == "budget counters rebuilt; writing the ledger" for line in c.log_lines())
