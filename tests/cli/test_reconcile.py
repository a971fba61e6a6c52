"""`tokenbook reconcile` as a subprocess: on an embedded store (opened directly), and through a running
collector that owns it (the import goes through its admin API and raises its drift alerts: log line,
``/metrics``, ``budget_events``). The ledger drifts from tests/testdata/reconcile/ in known ways
(tests/collector/storage/reconcile_rows.py)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.cli.pty_run import run_on_pty
from tests.collector.collector_process import REPO, CollectorProcess
from tests.collector.storage.reconcile_rows import DATA
from tests.docs.samples import shows

pytestmark = pytest.mark.e2e  # starts processes

API_FILES = [str(DATA / n) for n in ("openai_usage_completions.json", "openai_costs.json")]
API_FILES += [str(DATA / n) for n in ("anthropic_usage_report.json", "anthropic_cost_report.json")]
SEED = (
    "import sys\n"
    "from tests.collector.storage.reconcile_rows import seed_ledger\n"
    "from tokenbook.collector.storage.store import Store\n"
    "with Store.open(data_dir=sys.argv[1]) as s:\n"
    "    s.migrate()\n"
    "    s.write(seed_ledger(), [])\n"
)


def tokenbook(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tokenbook", *args], capture_output=True, text=True, timeout=180, cwd=REPO
    )
    assert proc.returncode == code, f"tokenbook {args} -> {proc.returncode}: {proc.stderr}"
    return proc


def seeded(path: Path) -> Path:
    subprocess.run([sys.executable, "-c", SEED, str(path)], check=True, timeout=180, cwd=REPO)
    return path


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = seeded(tmp_path_factory.mktemp("reconcile") / "data")
    tokenbook("reconcile", *API_FILES, "--data-dir", str(data_dir), "--format", "csv")
    return data_dir


def json_rows(text: str) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows = [json.loads(line) for line in text.splitlines()]
    return {(r["provider"], r["model"], r["token_type"]): r for r in rows}


def test_json_is_exact_and_names_each_cause(store_dir: Path) -> None:
    out = tokenbook("reconcile", "--data-dir", str(store_dir), "--since", "2026-03-02", "--format", "json")
    rows = json_rows(out.stdout)
    gpt = rows[("openai", "gpt-4o", "input")]
    assert (gpt["provider_tokens"], gpt["ledger_tokens"], gpt["token_drift"]) == (42_000, 40_000, 2_000)
    assert Decimal(gpt["cost_drift"]) == Decimal("0.005") and gpt["cause"] == "untraced_calls"
    assert gpt["beyond_threshold"] is False  # 4.8%
    reasoning = rows[("openai", "o4-mini", "output")]
    assert (reasoning["cause"], reasoning["beyond_threshold"]) == ("missing_reasoning", True)
    haiku = rows[("anthropic", "claude-haiku-4-5", "input")]
    assert (haiku["ledger_cost"], haiku["cost_drift"], haiku["cause"]) == (None, None, "unpriced_calls")
    assert {r["cause"] for r in rows.values()} >= {
        "untraced_model", "cache_not_reported", "price_difference", "not_billed", "non_token_charge",
    }  # fmt: skip
    assert "9 of 18 rows drift by more than 5%" in out.stderr
    assert "cache_not_reported: cache tokens not reported" in out.stderr


def test_csv_and_table(store_dir: Path) -> None:
    out = tokenbook("reconcile", "--data-dir", str(store_dir), "--since", "2026-03-02", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert list(rows[0]) == [
        "day", "provider", "model", "token_type", "provider_tokens", "ledger_tokens", "token_drift",
        "provider_cost", "ledger_cost", "cost_drift", "provider_requests", "ledger_calls",
        "ledger_unpriced_calls", "cause", "beyond_threshold",
    ]  # fmt: skip
    assert len(rows) == 18 and {r["day"] for r in rows} == {"2026-03-02"}
    table = tokenbook(
        "reconcile", "--data-dir", str(store_dir), "--since", "2026-03-02", "--provider", "openai"
    )
    lines = table.stdout.splitlines()
    assert lines[:3] == [
        "2026-03-02  openai",
        "  tokens: provider 199,000, ledger 193,000, drift +6,000, +3.0%",
        "  cost (USD): provider 0.549000, ledger 0.287800, drift +0.261200, +47.6%",
    ]
    assert any(line.startswith("o4-mini") and "missing_reasoning" in line for line in lines)
    assert all(len(line) <= 110 for line in lines)


def test_on_an_80_column_terminal_the_causes_and_drifts_stay(store_dir: Path) -> None:
    code, shown = run_on_pty(
        ["reconcile", "--data-dir", str(store_dir), "--since", "2026-03-02"], 80, cwd=str(REPO)
    )
    assert code == 0
    table = [
        line for line in shown.splitlines() if line.startswith(("model", "claude-sonnet-4-5", "o4-mini"))
    ]
    assert all(len(line) <= 80 for line in table)
    assert table[0].split() == ["model", "token_type", "token_drift", "cost_drift", "cause"]
    assert "claude-sonnet-4-5  cache_read" in shown and "cache_not_reported" in shown
    assert "not shown at 80 columns: provider_tokens, ledger_tokens" in shown


def test_the_files_are_checked_before_anything_is_imported(store_dir: Path, tmp_path: Path) -> None:
    both = tokenbook(
        "reconcile", str(DATA / "openai_usage.csv"), str(DATA / "openai_usage_completions.json"),
        "--data-dir", str(store_dir), code=2,
    )  # fmt: skip
    assert (
        "openai_usage.csv and openai_usage_completions.json both give openai usage for 2026-03-02"
        in both.stderr
    )
    other = tmp_path / "invoice.csv"
    other.write_text("date,amount\n2026-03-02,12.00\n", encoding="utf-8")
    refused = tokenbook("reconcile", str(other), "--data-dir", str(store_dir), code=2)
    assert "invoice.csv: expected an OpenAI Usage API" in refused.stderr
    bad = tmp_path / "anthropic_usage.csv"
    bad.write_text(
        (DATA / "anthropic_usage.csv")
        .read_text(encoding="utf-8")
        .replace(",30000,0,0,0,6000,", ",30000,0,0,0,6k,"),
        encoding="utf-8",
    )
    partial = tokenbook("reconcile", str(bad), "--data-dir", str(store_dir), "--format", "json", code=1)
    assert "anthropic_usage.csv: line 3: output_tokens: '6k' is not a count (left out)" in partial.stderr
    assert "(anthropic.usage.csv, 8 rows)" in partial.stderr  # the two other models were imported


def test_through_a_running_collector_the_import_raises_drift_alerts(tmp_path: Path) -> None:
    data_dir = seeded(tmp_path / "data")
    reconcile = {"min_cost": "0.25", "interval": "1h", "lookback_days": 3650}  # the sample day is long past
    collector = CollectorProcess(data_dir, reconcile=reconcile).start()
    try:
        out = tokenbook("reconcile", *API_FILES, "--data-dir", str(data_dir), "--format", "json")
        assert "into collector admin API at 127.0.0.1:" in out.stderr
        assert json_rows(out.stdout)[("openai", "o4-mini", "output")]["cause"] == "missing_reasoning"
        collector.wait_for("SELECT count() FROM v_budget_events WHERE kind = 'reconcile'", 2, timeout=60)
        events = collector.query(
            "SELECT subject_values, state, used_cost, limit_cost FROM v_budget_events "
            "WHERE kind = 'reconcile' ORDER BY subject_values"
        )
        assert [(e[0], e[1]) for e in events] == [
            (["", "anthropic", "claude-sonnet-4-5"], "drift"),
            (["", "openai", ""], "drift"),
        ]
        assert (events[0][2], events[0][3]) == (Decimal("0.21"), Decimal("0.48"))
        with urllib.request.urlopen(collector.admin_url + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert 'tokenbook_reconcile_alerts_total{provider="anthropic"} 1' in metrics
        assert 'tokenbook_budget_alerts_total{kind="reconcile",state="drift"} 2' in metrics
        logged = [
            line for line in collector.log_lines() if line.get("budget_event", {}).get("kind") == "reconcile"
        ]
        assert len(logged) == 2 and all(line["level"] == "warning" for line in logged)
        assert (
            "Provider drift on 2026-03-02: anthropic claude-sonnet-4-5" in logged[0]["msg"] + logged[1]["msg"]
        )
        # A restart checks again and repeats no alert.
        assert collector.stop() == 0
        collector.start()
        collector.wait_for("SELECT count() FROM v_budget_events WHERE kind = 'reconcile'", 2)
        assert collector.stop() == 0
        repeated = [
            line for line in collector.log_lines() if line.get("budget_event", {}).get("kind") == "reconcile"
        ]
        assert len(repeated) == 2
    finally:
        if collector.proc is not None:
            collector.stop()


def test_the_guides_worked_example_is_what_reconcile_prints(store_dir: Path) -> None:
    """docs/guide/reconciliation.md's worked example shows the command's output as it is (stdout, then
    its summary on stderr), line for line."""
    page = (REPO / "docs" / "guide" / "reconciliation.md").read_text(encoding="utf-8")
    command = "$ tokenbook reconcile " + " ".join(Path(f).name for f in API_FILES)
    sample = page.split(command + "\n", 1)[1].split("```", 1)[0]
    out = tokenbook("reconcile", *API_FILES, "--data-dir", str(store_dir))
    assert sample.count("\n") > 20 and shows(sample, out.stdout + out.stderr), out.stdout + out.stderr
