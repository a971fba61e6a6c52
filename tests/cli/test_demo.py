"""`tokenbook demo` end to end: a real collector child, the real SDK and OTLP exporter, chDB."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tokenbook.collector.storage.store import Store

pytestmark = pytest.mark.e2e  # starts processes


def test_demo_prints_costs_that_match_the_ledger(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "tokenbook", "demo", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=300, env={"COLUMNS": "160", "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    out = " ".join(run.stdout.split())  # rich wraps long lines
    assert run.returncode == 0, out + run.stderr
    for title in ("Cost by tenant", "Cost by model", "Top contexts", "Cache savings", "Unpriced models"):
        assert title in out
    assert "in-app budget stopped a runaway agent" in out
    assert "add up to the ledger total exactly: yes" in out
    printed = re.search(r"(\d+) calls \((\d+) unpriced.*?([\d.]+) USD priced", out, re.DOTALL)
    assert printed is not None, out
    calls, unpriced, total = int(printed.group(1)), int(printed.group(2)), Decimal(printed.group(3))

    # The collector has drained and exited: this process may open the store directly.
    store = Store.open(data_dir=data_dir)
    try:
        _, _, rows = store.query(
            "SELECT count(), countIf(price_status = 'unpriced'), sum(total_cost), "
            "countIf(price_status = 'unpriced' AND total_cost IS NOT NULL), "
            "countIf(tenant_id = '') FROM tokenbook.llm_calls FINAL"
        )
    finally:
        store.close()
    assert rows[0][:3] == (calls, unpriced, total)
    assert total > 0 and unpriced > 0
    assert rows[0][3] == 0  # an unknown price is NULL, never 0
    assert rows[0][4] == 0  # every call is attributed
    for tenant in ("acme", "globex", "initech"):
        assert tenant in out
