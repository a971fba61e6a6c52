"""`tokenbook demo` end to end: a real collector child, the real SDK and OTLP exporter, chDB."""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.pty_run import run_on_pty
from tests.collector.storage.focus.validator import validate_csv
from tokenbook.collector.storage.store import Store

pytestmark = pytest.mark.e2e  # starts processes


def test_demo_prints_costs_that_match_the_ledger(tmp_path: Path, engine_free: None) -> None:
    """On an 80-column terminal: every table keeps its totals, and the hints paste as they are."""
    data_dir = tmp_path / "demo"
    code, screen = run_on_pty(["demo", "--data-dir", str(data_dir)], 80, timeout=300, cwd=str(tmp_path))
    screen = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen)
    lines = [line for line in screen.splitlines() if "━" not in line]
    out = " ".join(" ".join(lines).split())
    assert code == 0, screen
    for title in ("Cost by tenant", "Cost by model", "Top contexts", "Cache savings", "Unpriced models",
                  "Prompt anatomy of ticket-runaway", "Tool loops", "Loop rule 'support-loop'"):  # fmt: skip
        assert title in out
    assert "in-app budget stopped a runaway agent" in out
    assert "add up to the ledger total exactly: yes" in out
    printed = re.search(r"([\d,]+) calls \(([\d,]+) unpriced.*?exactly ([\d.]+)\)", out, re.DOTALL)
    assert printed is not None, out
    calls, unpriced = (int(printed.group(i).replace(",", "")) for i in (1, 2))
    total = Decimal(printed.group(3))
    hints = [line.strip() for line in lines if "--data-dir demo" in line]
    wide = [line for line in lines if len(line) > 80 and line.strip() not in hints]
    assert all(line.startswith(("note:", "in-app budget")) for line in wide), wide
    totals = [line.split() for line in lines if line.startswith("total ")]
    assert len(totals) == 2  # by tenant and by model, each with calls and the exact total rounded once
    for row in totals:
        assert row[1] == str(calls) and row[-1] == f"{total.quantize(Decimal('0.000001')):f}", row
    assert len(hints) == 3 and all(h.startswith(("/", ".venv", sys.executable)) for h in hints), hints
    hint = hints[0].split()
    assert (
        subprocess.run([*hint[:1], *hint[1:]], cwd=tmp_path, capture_output=True, timeout=120).returncode == 0
    )

    # The runaway's prompt, call by call: input, growth, then its parts (the history grows every call).
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["time", "input"])
    anatomy = []
    for line in lines[start + 2 :]:
        if not re.match(r"\d\d:\d\d:\d\d ", line):
            break
        anatomy.append(line.split())
    (loop_row,) = [line.split() for line in lines if line.startswith("ticket-runaway ")]
    alert = re.search(r"a tool loop of (\d+) model calls \(limit 6\).*?; ([\d,]+) tokens after", out)
    assert alert is not None, out

    # The collector has drained and exited: this process may open the store directly. `v_calls` holds the
    # billed calls (the ledger's candidates that another span does not bill).
    store = Store.open(data_dir=data_dir)
    try:
        _, _, rows = store.query(
            "SELECT count(), countIf(price_status = 'unpriced'), sum(total_cost), "
            "countIf(price_status = 'unpriced' AND total_cost IS NOT NULL), "
            "countIf(tenant_id = '') FROM tokenbook.v_calls"
        )
        _, _, runaway = store.query(
            "SELECT input_tokens, prompt_history_tokens, prompt_tool_result_tokens FROM tokenbook.v_calls "
            "WHERE context_id = 'ticket-runaway' ORDER BY timestamp, span_id"
        )
        _, _, (loops,) = store.query(
            "SELECT loop_steps, loop_tokens, prompt_growth_per_step, loop_cost "
            "FROM tokenbook.v_context_loops WHERE context_id = 'ticket-runaway'"
        )
        _, _, events = store.query(
            "SELECT rule, context_id, used_tokens FROM tokenbook.v_budget_events WHERE kind = 'loop'"
        )
    finally:
        store.close()
    assert len(anatomy) == len(runaway) >= 7
    for printed_row, (inp, history, tool_results) in zip(anatomy, runaway, strict=True):
        assert printed_row[1] == f"{inp:,}" and printed_row[4] == f"{history:,}"
        assert printed_row[5] == f"{tool_results:,}"
    assert [h for _, h, _ in runaway] == sorted(h for _, h, _ in runaway)  # the history keeps growing
    assert loop_row[1:4] == [str(loops[0]), f"{loops[1]:,}", str(loops[2])]
    assert loop_row[4] == f"{loops[3].quantize(Decimal('0.000001')):f}"
    assert events == [("support-loop", "ticket-runaway", loops[1])]
    assert (int(alert.group(1)), int(alert.group(2).replace(",", ""))) == (loops[0], loops[1])
    assert rows[0][:3] == (calls, unpriced, total)
    assert total > 0 and unpriced > 0
    assert rows[0][3] == 0  # an unknown price is NULL, never 0
    assert rows[0][4] == 0  # every call is attributed
    for tenant in ("acme", "globex", "initech"):
        assert tenant in out
    _readme_shows_what_the_demo_prints(lines, total)
    _export_the_demo_month(data_dir, tmp_path)


def _readme_shows_what_the_demo_prints(lines: list[str], total: Decimal) -> None:
    """The README's sample of the demo's output (the block after "Output on an 80-column terminal")
    says the totals are the same on every run: each of its table rows is a line the demo printed, and
    its ledger total is the demo's."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    sample = readme.split("Output on an 80-column terminal", 1)[1].split("```", 2)[1]
    rows = [
        line.rstrip()
        for line in sample.splitlines()
        if re.match(r"(initech|acme|globex|total|pr-\d+|ticket-[\w-]+) ", line)
    ]
    printed = {line.rstrip() for line in lines}
    assert len(rows) >= 8 and [row for row in rows if row not in printed] == []
    assert f"(exactly {total})" in sample


def _export_the_demo_month(data_dir: Path, tmp_path: Path) -> None:
    """The demo's data billed through a price book (`reprice --books`) and exported as FOCUS: the file
    conforms to the FOCUS rules, bills what the ledger bills, and shows the demo's one-hour cache
    writes and flex-tier calls."""
    books = tmp_path / "books.yaml"
    books.write_text(
        "books:\n  - id: acme-resale\n    tenants: [acme]\n    source: reseller agreement\n"
        '    checked: 2026-01-05\n    entries: [{id: markup, markup_percent: "20"}]\n'
    )
    run = [sys.executable, "-m", "tokenbook"]
    where = ["--data-dir", str(data_dir)]
    subprocess.run([*run, "reprice", "--since", "2d", "--books", str(books), *where], check=True, timeout=300)
    today = datetime.now(UTC).date()
    days = ["--since", str(today - timedelta(days=1)), "--until", str(today + timedelta(days=1))]
    focus = tmp_path / "focus.csv"
    subprocess.run([*run, "export", "focus", *days, "--output", str(focus), *where], check=True, timeout=300)
    assert validate_csv(focus) == []
    with focus.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["x_TokenType"] for r in rows} >= {
        "input",
        "output",
        "cache_read",
        "cache_write",
        "cache_write_1h",
    }
    assert {r["x_ServiceTier"] for r in rows if "o3" in r["SkuId"]} == {"", "flex"}
    assert {r["x_PriceBook"] for r in rows if r["SubAccountId"] == "acme"} == {
        "books.yaml#acme-resale/markup"
    }
    store = Store.open(data_dir=data_dir)
    try:
        _, _, ledger = store.query(
            "SELECT sum(total_cost), sum(billed_cost) FROM tokenbook.v_calls WHERE price_status = 'priced'"
        )
    finally:
        store.close()
    listed, billed = ledger[0]
    assert sum(Decimal(r["ListCost"]) for r in rows) == listed
    assert sum(Decimal(r["BilledCost"]) for r in rows) == billed > listed


def test_the_demo_starts_its_collector_on_new_ports_when_one_was_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo picks its collector's ports free and the child binds them a moment later: a port
    another process took meanwhile (here, the first one picked) makes it start again on new ports."""
    import socket
    import urllib.request

    from tokenbook.cli import demo

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = int(held.getsockname()[1])
        picks = iter([taken])
        free = demo._free_port
        monkeypatch.setattr(demo, "_free_port", lambda: next(picks, None) or free())
        with demo._collector(tmp_path / "data") as collector:
            assert collector.grpc != f"127.0.0.1:{taken}"
            with urllib.request.urlopen(f"http://{collector.admin}/readyz", timeout=5) as ready:
                assert ready.status == 200
        assert collector.proc.returncode == 0
