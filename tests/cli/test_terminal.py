"""The real `tokenbook` command on a pseudo-terminal (80 and 120 columns) and through pipes:
nothing a user needs is cut, empty results explain themselves, `sql --param`, `reprice --dry-run`."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.pty_run import run_on_pty
from tests.cli.seed_store import UNPRICED_MODEL, base_time, make_calls
from tests.cli.test_reports import _expected_by_tenant, tokenbook

pytestmark = pytest.mark.e2e  # starts processes

SEED = Path(__file__).with_name("seed_store.py")
#: The seeded calls' first hour, fixed for the module: the store is seeded, and the calls it holds
#: are made again, with this one, so a run that crosses the hour compares the same times.
BASE = base_time()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    data_dir: Path = tmp_path_factory.mktemp("terminal") / "data"
    subprocess.run([sys.executable, str(SEED), str(data_dir), BASE.isoformat()], check=True, timeout=120)
    return data_dir


def _money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.000001')):f}"


@pytest.mark.parametrize("columns", [80, 120])
def test_report_on_a_terminal_keeps_tenant_calls_and_cost(seeded, columns):
    code, screen = run_on_pty(["report", "--data-dir", str(seeded)], columns)
    assert code == 0, screen
    lines = screen.splitlines()
    assert all(len(line) <= columns for line in lines), screen
    for tenant, (calls, cost) in _expected_by_tenant().items():
        line = next(line for line in lines if line.startswith(tenant))
        assert str(calls) in line.split() and line.split()[-1] == _money(cost), line
    total = sum((cost for _, cost in _expected_by_tenant().values()), Decimal(0))
    assert next(line for line in lines if line.startswith("total")).split()[-1] == _money(total)
    assert "…" not in screen


@pytest.mark.parametrize("columns", [80, 120])
def test_report_context_on_a_terminal_keeps_the_cost(seeded, columns):
    code, screen = run_on_pty(["report", "--context", "acme-ctx-0", "--data-dir", str(seeded)], columns)
    assert code == 0, screen
    calls = [c for c in make_calls(base=BASE) if c.context_id == "acme-ctx-0"]
    assert all(len(line) <= columns for line in screen.splitlines()), screen
    for call in calls:
        if call.total_cost is not None:
            assert _money(call.total_cost) in screen, screen
    assert "…" not in screen and f"{len(calls)} rows" in screen


def test_pipe_is_full_width_and_exact_flag(seeded):
    out = tokenbook("report", "--data-dir", str(seeded), "--exact").stdout
    assert "cache_write_tokens" in out  # never narrowed through a pipe
    for _, cost in _expected_by_tenant().values():
        assert f"{cost.normalize():f}" in out


def test_empty_report_prints_headers_window_and_hint(seeded):
    proc = tokenbook("report", "--data-dir", str(seeded), "--since", "1m")
    assert proc.stdout.splitlines()[0].split()[:3] == ["tenant", "currency", "calls"]
    assert "0 rows" in proc.stdout
    assert "no calls since " in proc.stderr and "UTC" in proc.stderr
    assert "the ledger holds 240 calls" in proc.stderr
    csv_out = tokenbook("report", "--data-dir", str(seeded), "--since", "1m", "--format", "csv").stdout
    assert csv_out.splitlines() == [
        "tenant,currency,calls,unpriced_calls,input_tokens,output_tokens,cache_read_tokens,"
        "cache_write_tokens,total_cost,billed_cost"
    ]
    as_json = tokenbook("report", "--data-dir", str(seeded), "--since", "1m", "--format", "json")
    assert as_json.stdout == "" and "no calls since" in as_json.stderr


@pytest.mark.parametrize(
    "command", [["quarantine", "list"], ["budgets"], ["sql", "SELECT tenant_id FROM v_calls WHERE 0"]]
)
def test_an_empty_result_on_a_terminal_shows_its_headers(seeded, command):
    code, screen = run_on_pty([*command, "--data-dir", str(seeded)], 80)
    lines = screen.splitlines()
    assert code == 0 and "Traceback" not in screen, screen
    assert "0 rows" in lines and lines[lines.index("0 rows") - 1].startswith("---"), screen


def test_an_export_of_days_without_calls_says_nothing_was_billed(seeded):
    proc = tokenbook(
        "export", "focus", "--since", "2020-01-01", "--until", "2020-01-02", "--data-dir", str(seeded),
        "--no-record",
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("AvailabilityZone,")
    assert "tokenbook export: 0 FOCUS rows, nothing billed\n" in proc.stderr, proc.stderr


def test_budgets_json_empty_says_why(seeded):
    proc = tokenbook("budgets", "--data-dir", str(seeded), "--format", "json")
    assert proc.stdout == "" and "no budget states" in proc.stderr
    csv_out = tokenbook("budgets", "--data-dir", str(seeded), "--format", "csv").stdout
    assert csv_out.startswith("kind,rule,subject")


def test_report_by_team(seeded):
    out = tokenbook("report", "--by", "team", "--data-dir", str(seeded), "--format", "json").stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["team"], r["calls"]) for r in rows] == [("core", 240)]


def test_sql_params_errors_and_row_limit(seeded):
    query = (
        "SELECT count() AS calls FROM v_calls WHERE tenant_id = {tenant:String} AND input_tokens > {n:UInt32}"
    )
    out = tokenbook("sql", query, "--param", "tenant=acme", "--param", "n=0", "--data-dir", str(seeded),
                    "--format", "json").stdout  # fmt: skip
    assert json.loads(out) == {"calls": 80}
    bad = tokenbook("sql", "SELECT nope FROM v_calls", "--data-dir", str(seeded), check=False)
    assert bad.returncode == 1 and "SELECT nope FROM v_calls" in bad.stderr
    assert "SETTINGS" not in bad.stderr and "readonly" not in bad.stderr and "FORMAT" not in bad.stderr
    big = tokenbook("sql", "SELECT number FROM numbers(200000)", "--data-dir", str(seeded), check=False)
    assert big.returncode == 1 and "LIMIT" in big.stderr
    empty = tokenbook("sql", "SELECT tenant_id, total_cost FROM v_calls WHERE 0", "--data-dir", str(seeded),
                      "--format", "csv")  # fmt: skip
    assert empty.stdout == "tenant_id,total_cost\n"


def test_not_a_store_is_said_in_one_line_and_nothing_is_created(tmp_path):
    wrong = tmp_path / "photos"
    wrong.mkdir()
    (wrong / "cat.jpg").write_bytes(b"")
    for command in (["report"], ["sql", "SELECT 1"], ["budgets"], ["reprice", "--since", "1d"]):
        proc = tokenbook(*command, "--data-dir", str(wrong), check=False)
        assert proc.returncode == 1, proc
        assert proc.stderr.count("\n") == 1 and "is not a tokenbook store" in proc.stderr, proc.stderr
        assert "v_calls" not in proc.stderr and "multiIf" not in proc.stderr
    assert sorted(p.name for p in wrong.iterdir()) == ["cat.jpg"]


def test_reprice_dry_run_writes_nothing_and_warns_about_lost_prices(tmp_path):
    data_dir = tmp_path / "data"
    subprocess.run([sys.executable, str(SEED), str(data_dir), BASE.isoformat()], check=True, timeout=120)
    overrides = tmp_path / "prices.yaml"
    overrides.write_text(
        f"models:\n  - id: mystery\n    model: {UNPRICED_MODEL}\n    source: test sheet\n"
        '    checked: 2026-01-01\n    prices: {input_mtok: "1", output_mtok: "2"}\n',
        encoding="utf-8",
    )
    unpriced = [c for c in make_calls(base=BASE) if c.model == UNPRICED_MODEL]
    before = tokenbook("report", "--data-dir", str(data_dir), "--format", "csv").stdout
    dry = tokenbook("reprice", "--since", "2d", "--data-dir", str(data_dir), "--dry-run")
    assert "dry run: would re-price 169 of 240 calls" in dry.stdout and "nothing was written" in dry.stdout
    assert tokenbook("report", "--data-dir", str(data_dir), "--format", "csv").stdout == before
    # price the unknown model with the overrides, then see that the catalog alone would unprice it
    tokenbook("reprice", "--since", "2d", "--data-dir", str(data_dir), "--overrides", str(overrides))
    lose = tokenbook("reprice", "--since", "2d", "--data-dir", str(data_dir), "--dry-run")
    assert f"would re-price {len(unpriced)} of 240 calls" in lose.stdout
    assert f"warning: {len(unpriced)} calls would lose their price" in lose.stderr
    lost = tokenbook("reprice", "--since", "2d", "--data-dir", str(data_dir))
    assert f"warning: {len(unpriced)} calls lost their price" in lost.stderr


@pytest.mark.parametrize("columns", [80, 120])
def test_report_context_shows_each_prompt_its_growth_saturation_and_the_loops(seeded, columns):
    code, screen = run_on_pty(["report", "--context", "acme-ctx-0", "--data-dir", str(seeded)], columns)
    assert code == 0, screen
    lines = screen.splitlines()
    assert all(len(line) <= columns for line in lines), screen
    start = lines.index("prompt per billed call (tokens): parts, growth, context-window saturation")
    head = lines[start + 1].split()
    assert head == ["time", "input", "growth", "system", "history", "tool_results", "user", "saturation"]
    calls = [c for c in make_calls(base=BASE) if c.context_id == "acme-ctx-0"]
    rows = [line.split() for line in lines[start + 3 : start + 3 + len(calls)]]
    for call, row, before in zip(calls, rows, [None, *calls], strict=False):
        assert row[0] == call.timestamp.strftime("%H:%M:%S") and row[1] == f"{call.input_tokens:,}"
        growth = "-" if before is None else f"{call.input_tokens - before.input_tokens:,}"
        assert row[2] == growth and row[4] == f"{call.prompt_history_tokens:,}"
        assert float(row[-1]) == round(call.input_tokens / 128_000, 4)
    assert any(line.startswith("tool loops of tenant acme: 1; the longest has") for line in lines)
