"""`tokenbook sql`, `report`, `prices --unpriced`, `reprice` and `migrate` as subprocesses.

The store is seeded in a subprocess (`seed_store.py`) in its own directory, since this test process
already owns the session's chDB directory; expected values are computed here from the same rows.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.cli.seed_store import UNPRICED_MODEL, make_calls

pytestmark = pytest.mark.e2e  # starts processes

SEED = Path(__file__).with_name("seed_store.py")


def tokenbook(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tokenbook", *args], capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tokenbook {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    data_dir: Path = tmp_path_factory.mktemp("seeded") / "data"
    subprocess.run([sys.executable, str(SEED), str(data_dir)], check=True, timeout=120)
    return data_dir


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def _expected_by_tenant() -> dict[str, tuple[int, Decimal]]:
    totals: dict[str, tuple[int, Decimal]] = {}
    for c in make_calls():
        n, cost = totals.get(c.tenant_id, (0, Decimal(0)))
        totals[c.tenant_id] = (n + 1, cost + (c.total_cost or 0))
    return totals


def test_report_by_tenant_json_is_exact(seeded):
    rows = _json_lines(
        tokenbook("report", "--by", "tenant", "--data-dir", str(seeded), "--format", "json").stdout
    )
    got = {r["tenant"]: (r["calls"], Decimal(r["total_cost"])) for r in rows}
    assert got == _expected_by_tenant()


def test_an_empty_window_says_what_the_ledger_holds(seeded, tmp_path):
    # the seeded calls end about an hour ago: the last 20 minutes hold none
    out = tokenbook("report", "--by", "tenant", "--data-dir", str(seeded), "--since", "20m")
    assert "0 rows" in out.stdout
    assert f"the ledger holds {len(make_calls())} calls, the latest at " in out.stderr
    assert out.stderr.rstrip().endswith("try a wider --since")
    empty = tmp_path / "empty"
    tokenbook("migrate", "--data-dir", str(empty))
    out = tokenbook("report", "--by", "tenant", "--data-dir", str(empty), "--since", "20m")
    assert "the ledger holds no calls yet" in out.stderr


def test_report_by_tenant_csv_and_table(seeded):
    out = tokenbook("report", "--data-dir", str(seeded), "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {r["tenant"]: (int(r["calls"]), Decimal(r["total_cost"])) for r in rows} == _expected_by_tenant()
    table = tokenbook("report", "--data-dir", str(seeded)).stdout
    for tenant, (calls, cost) in _expected_by_tenant().items():
        line = next(line for line in table.splitlines() if line.startswith(tenant))
        assert f" {calls} " in line
        assert f"{cost.quantize(Decimal('0.000001')):f}" in line  # 6 decimals, half-even, never float
    assert "3 rows" in table


def test_report_by_model_shows_unpriced_as_null(seeded):
    rows = _json_lines(
        tokenbook("report", "--by", "model", "--data-dir", str(seeded), "--format", "json").stdout
    )
    mystery = next(r for r in rows if r["model"] == UNPRICED_MODEL)
    assert mystery["total_cost"] is None
    assert mystery["unpriced_calls"] == mystery["calls"] > 0


def test_report_by_context_and_one_context(seeded):
    calls = make_calls()
    rows = _json_lines(
        tokenbook(
            "report", "--by", "context", "--tenant", "acme", "--data-dir", str(seeded), "--format", "json"
        ).stdout
    )
    assert {r["context_id"] for r in rows} == {c.context_id for c in calls if c.tenant_id == "acme"}
    one = rows[0]["context_id"]
    expected = sum((c.total_cost or Decimal(0)) for c in calls if c.context_id == one)
    assert Decimal(rows[0]["total_cost"]) == expected
    detail = _json_lines(
        tokenbook("report", "--context", one, "--data-dir", str(seeded), "--format", "json").stdout
    )
    assert [d["span_id"] for d in detail] == [c.span_id for c in calls if c.context_id == one]
    assert sum(Decimal(d["total_cost"]) for d in detail if d["total_cost"] is not None) == expected
    missing = tokenbook("report", "--context", "no-such-context", "--data-dir", str(seeded), check=False)
    assert missing.returncode == 1 and "no calls recorded" in missing.stderr


def test_sql_formats(seeded):
    query = "SELECT tenant_id, count() AS calls, sum(total_cost) AS cost FROM v_calls GROUP BY tenant_id"
    rows = _json_lines(tokenbook("sql", query, "--data-dir", str(seeded), "--format", "json").stdout)
    assert {r["tenant_id"]: (r["calls"], Decimal(r["cost"])) for r in rows} == _expected_by_tenant()
    out = tokenbook("sql", query, "--data-dir", str(seeded), "--format", "csv").stdout
    assert out.splitlines()[0] == "tenant_id,calls,cost"
    assert "acme" in tokenbook("sql", query, "--data-dir", str(seeded)).stdout


def test_prices_unpriced(seeded):
    rows = _json_lines(
        tokenbook("prices", "--unpriced", "--data-dir", str(seeded), "--format", "json").stdout
    )
    expected = sum(1 for c in make_calls() if c.model == UNPRICED_MODEL)
    assert [(r["provider"], r["model"], r["calls"]) for r in rows] == [
        ("acme-labs", UNPRICED_MODEL, expected)
    ]
    assert UNPRICED_MODEL in tokenbook("prices", "--unpriced", "--data-dir", str(seeded)).stdout


def test_prices_of_one_model_at_a_time():
    testdata = Path(__file__).parents[1] / "testdata"
    args = ("prices", "gpt-4o", "--provider", "openai", "--overrides", str(testdata / "prices.yaml"))
    (h1,) = _json_lines(tokenbook(*args, "--at", "2026-03-01T00:00:00Z", "--format", "json").stdout)
    assert (h1["source"], h1["input_mtok"], h1["output_mtok"], h1["cache_read_mtok"]) == (
        "prices.yaml#gpt-4o-negotiated-h1",
        "2",
        "8",
        "1",
    )
    assert h1["at"] == "2026-03-01T00:00:00+00:00"
    proc = tokenbook("prices", "no-such-model", "--provider", "openai", check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("unpriced: ")


def test_sql_refuses_writes(seeded):
    proc = tokenbook("sql", "SELECT 1; DROP TABLE llm_calls", "--data-dir", str(seeded), check=False)
    assert proc.returncode == 1 and "one statement" in proc.stderr


def test_missing_data_dir_is_a_clear_error(tmp_path):
    proc = tokenbook("sql", "SELECT 1", "--data-dir", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 1 and "no embedded store" in proc.stderr


def test_migrate_print_cluster():
    out = tokenbook("migrate", "--print", "--cluster", "prod").stdout
    assert "ON CLUSTER prod" in out and "ENGINE = Distributed(prod, tokenbook, llm_calls_local" in out
    assert "ON CLUSTER" not in tokenbook("migrate", "--print").stdout


def test_migrate_embedded_dir(tmp_path):
    out = tokenbook("migrate", "--data-dir", str(tmp_path / "d")).stdout
    assert "001_llm_calls.sql" in out
    assert "schema up to date" in tokenbook("migrate", "--data-dir", str(tmp_path / "d")).stdout


def test_reprice_changes_rows_and_totals_once(tmp_path):
    """Seeded costs are random; re-pricing sets them to the catalog's, once, with no double counting."""
    from tokenbook.genai.pricing.catalog import PriceCatalog
    from tokenbook.genai.usage import Usage

    data_dir = tmp_path / "data"
    subprocess.run([sys.executable, str(SEED), str(data_dir)], check=True, timeout=120)
    catalog = PriceCatalog()
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for c in make_calls():
        usage = Usage(
            c.input_tokens,
            c.output_tokens,
            c.cache_read_tokens,
            c.cache_write_tokens,
            c.reasoning_tokens,
            True,
        )
        cost = catalog.price(c.provider, c.model, usage, c.timestamp)
        expected[c.tenant_id] += cost.total or 0
    priced = sum(1 for c in make_calls() if c.model != UNPRICED_MODEL)

    first = tokenbook("reprice", "--since", "2d", "--data-dir", str(data_dir)).stdout
    assert f"re-priced {priced} of 240 calls" in first
    second = tokenbook("reprice", "--since", "2d", "--data-dir", str(data_dir)).stdout
    assert "re-priced 0 of 240 calls" in second

    totals = {}
    for view in ("v_calls", "v_context_costs", "v_cost_hourly"):
        query = f"SELECT tenant_id, sum(total_cost) AS cost FROM {view} GROUP BY tenant_id"
        rows = _json_lines(tokenbook("sql", query, "--data-dir", str(data_dir), "--format", "json").stdout)
        totals[view] = {r["tenant_id"]: Decimal(r["cost"]) for r in rows}
    assert totals["v_calls"] == totals["v_context_costs"] == totals["v_cost_hourly"] == dict(expected)


def test_report_by_prompt_part_and_by_policy_path(seeded):
    """The measured calls' input split over the parts of their prompts, and spend per policy path."""
    calls = make_calls()
    parts = _json_lines(
        tokenbook("report", "--by", "prompt-part", "--data-dir", str(seeded), "--format", "json").stdout
    )
    measured = [c for c in calls if c.prompt_system_tokens is not None]
    assert measured and len(measured) < len(calls)
    expected = {
        p: sum(getattr(c, f"prompt_{p}_tokens") or 0 for c in measured)
        for p in ("system", "history", "retrieved", "tool_result", "user", "tool_definition", "overhead")
    }
    assert {r["part"]: r["tokens"] for r in parts} == expected
    assert sum(r["tokens"] for r in parts) == sum(c.input_tokens for c in measured)  # parts sum exactly
    assert {r["part"]: r["per_call"] for r in parts}["user"] == 50.0
    table = tokenbook("report", "--by", "prompt-part", "--data-dir", str(seeded)).stdout
    assert f"{len(measured)} of {len(calls)} billed model calls measured" in table
    policies = _json_lines(
        tokenbook("report", "--by", "policy", "--data-dir", str(seeded), "--format", "json").stdout
    )
    by_path: dict[str, list[Any]] = defaultdict(list)
    for c in calls:
        by_path[c.policy_path].append(c)
    assert {r["policy"]: r["calls"] for r in policies} == {k: len(v) for k, v in by_path.items()}
    for r in policies:
        costs = [c.total_cost for c in by_path[r["policy"]] if c.total_cost is not None]
        assert Decimal(r["total_cost"]) == sum(costs, Decimal(0))
