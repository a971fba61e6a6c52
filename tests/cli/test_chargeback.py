"""Chargeback from the command line: `prices --tenant/--books/--service-tier`, `collector --books`,
`report --currency`, `export focus --currency` and `reprice --books` (the last three on a seeded store,
as subprocesses: this test process owns the session's chDB directory)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.cli.seed_store import make_calls
from tests.collector.storage.focus.validator import validate_csv
from tokenbook.cli import main
from tokenbook.cli.currency import convert_report
from tokenbook.genai.pricing.catalog import CATALOG_NAME
from tokenbook.genai.pricing.exchange import ExchangeRates

SEED = Path(__file__).with_name("seed_store.py")
BASE = "2026-01-31T22:00:00+00:00"  # the seeded calls run over midnight: two days, two months
BOOKS = """
books:
  - id: acme-resale
    tenants: [acme]
    source: "Reseller agreement, schedule B"
    checked: 2026-01-05
    entries:
      - id: gpt4o-contract
        model: gpt-4o
        until: 2026-07-01
        prices: {input_mtok: "2", output_mtok: "8"}
      - id: markup
        markup_percent: "25"
"""
RATES = """
source: "ECB reference rates, as euros per US dollar"
rates:
  2026-01-31: {EUR: "0.9213"}
  2026-02-01: {EUR: "0.9240"}
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    books, rates = tmp_path / "books.yaml", tmp_path / "rates.yaml"
    books.write_text(BOOKS)
    rates.write_text(RATES)
    return books, rates


# --- in process ----------------------------------------------------------------------------------------


def test_prices_for_a_tenant_show_list_and_billed(capsys, files) -> None:
    books, _ = files
    args = [
        "prices",
        "--books",
        str(books),
        "--tenant",
        "acme",
        "--provider",
        "anthropic",
        "--format",
        "json",
    ]
    assert main([*args[:5], "claude-sonnet-4-5", *args[5:], "--at", "2026-02-01"]) == 0
    listed, billed = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert (listed["price"], billed["price"]) == ("list", "billed")
    assert listed["source"] == f"{CATALOG_NAME} anthropic/claude-sonnet-4-5"
    assert billed["source"] == "books.yaml#acme-resale/markup"
    assert Decimal(billed["input_mtok"]) == Decimal(listed["input_mtok"]) * Decimal("1.25")
    assert Decimal(billed["cache_write_1h_mtok"]) == Decimal(listed["cache_write_1h_mtok"]) * Decimal("1.25")
    gpt = ["prices", "gpt-4o", "--books", str(books), "--tenant", "acme", "--format", "json"]
    assert main([*gpt, "--at", "2026-02-01"]) == 0
    billed = [json.loads(line) for line in capsys.readouterr().out.splitlines()][1]
    assert (billed["input_mtok"], billed["output_mtok"], billed["source"]) == (
        "2", "8", "books.yaml#acme-resale/gpt4o-contract",
    )  # fmt: skip
    assert main(gpt) == 0  # now: the contract ended on 1 July, the markup bills
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()][1]["source"].endswith(
        "/markup"
    )


def test_prices_of_a_tenants_book_and_a_tenant_without_one(capsys, files) -> None:
    books, _ = files
    assert main(["prices", "--books", str(books), "--tenant", "acme", "--format", "json"]) == 0
    entries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(e["entry"], e["terms"]) for e in entries] == [
        ("gpt4o-contract", "input 2, output 8 USD per 1M tokens"),
        ("markup", "markup 25 %"),
    ]
    assert entries[0]["until"].startswith("2026-07-01")
    assert main(["prices", "--books", str(books), "--tenant", "globex"]) == 1
    assert "no price book" in capsys.readouterr().err


def test_prices_of_a_service_tier(capsys) -> None:
    args = ["prices", "gpt-5", "--provider", "openai", "--service-tier", "flex", "--format", "json"]
    assert main([*args, "--at", "2026-11-02"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["input_mtok"], row["service_tier"]) == ("0.625", "flex") and "flex tier" in row["source"]
    assert main([*args, "--at", "2026-01-02"]) == 1
    assert "no flex tier price for openai/gpt-5" in capsys.readouterr().err


def test_collector_refuses_a_bad_books_file_before_starting(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "books.yaml"
    bad.write_text(
        "books:\n  - id: a\n    tenants: [acme]\n    source: s\n    checked: 2026-01-01\n"
        "    entries: [{id: m, markup_percent: 5.5}]\n"
    )
    assert main(["collector", "--books", str(bad), "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert "books[0].entries[0].markup_percent: must be a decimal string" in err
    assert "--books, config pricing.books" in err
    assert not (tmp_path / "data").exists()


def test_convert_report_converts_each_day_then_sums(files) -> None:
    _, rates_path = files
    rates = ExchangeRates.load(rates_path)
    columns = ["key", "currency", "day", "calls", "total_cost", "billed_cost"]
    types = ["String", "String", "Date", "UInt64", "Nullable(Decimal(38, 12))", "Nullable(Decimal(38, 12))"]
    rows = [
        ("acme", "USD", date(2026, 1, 31), 2, Decimal("1.000000000001"), Decimal("2")),
        ("acme", "USD", date(2026, 2, 1), 1, Decimal("3"), None),
        ("beta", "USD", date(2026, 2, 1), 1, None, None),
    ]
    out_columns, _, out = convert_report(columns, types, rows, "EUR", rates)
    assert out_columns == ["key", "currency", "calls", "total_cost", "billed_cost"]
    assert out == [
        ("acme", "EUR", 3, Decimal("0.921300000001") + Decimal("2.772000000000"), Decimal("1.842600000000")),
        ("beta", "EUR", 1, None, None),
    ]


# --- on a seeded store (subprocesses) -----------------------------------------------------------------


def tokenbook(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tokenbook", *args], capture_output=True, text=True, timeout=180, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"tokenbook {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    subprocess.run([sys.executable, str(SEED), str(data_dir), BASE], check=True, timeout=180)
    return data_dir


WINDOW = ("--since", "2026-01-31T00:00:00Z", "--until", "2026-02-02T00:00:00Z")


@pytest.mark.e2e
def test_report_in_another_currency_converts_each_day(seeded: Path, files) -> None:
    _, rates = files
    rate = {date(2026, 1, 31): Decimal("0.9213"), date(2026, 2, 1): Decimal("0.9240")}
    per_day: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
    for c in make_calls(base=datetime.fromisoformat(BASE)):
        per_day[c.tenant_id, c.timestamp.date()] += c.total_cost or 0
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for (tenant, day), total in per_day.items():
        expected[tenant] += (total * rate[day]).quantize(Decimal("1e-12"))
    out = tokenbook(
        "report", "--by", "tenant", *WINDOW, "--currency", "EUR", "--exchange-rates", str(rates),
        "--data-dir", str(seeded), "--format", "json",
    ).stdout  # fmt: skip
    rows = _rows(out)
    assert {r["tenant"]: Decimal(r["total_cost"]) for r in rows} == expected
    assert {r["currency"] for r in rows} == {"EUR"} and all(r["billed_cost"] == r["total_cost"] for r in rows)
    assert "day" not in rows[0]
    plain = _rows(
        tokenbook("report", "--by", "tenant", *WINDOW, "--data-dir", str(seeded), "--format", "json").stdout
    )
    assert "day" not in plain[0] and {r["currency"] for r in plain} == {"USD"}
    short = files[1].with_name("short.yaml")
    short.write_text('source: s\nrates:\n  2026-01-31: {EUR: "0.92"}\n')
    failed = tokenbook(
        "report", "--by", "tenant", *WINDOW, "--currency", "EUR", "--exchange-rates", str(short),
        "--data-dir", str(seeded), check=False,
    )  # fmt: skip
    assert failed.returncode == 2 and "no USD->EUR exchange rate for 2026-02-01" in failed.stderr
    alone = tokenbook("report", "--currency", "EUR", "--data-dir", str(seeded), check=False)
    assert alone.returncode == 2 and "--currency EUR needs --exchange-rates FILE" in alone.stderr


@pytest.mark.e2e
def test_books_reprice_then_export_in_euros(seeded: Path, files, tmp_path: Path) -> None:
    """`reprice --books` bills the stored calls through acme's book; `export focus --currency EUR`
    then writes a conforming file whose pricing-currency figures are the ledger's."""
    books, rates = files
    dry = tokenbook("reprice", *WINDOW, "--books", str(books), "--dry-run", "--data-dir", str(seeded))
    assert "nothing was written" in dry.stdout
    tokenbook("reprice", *WINDOW, "--books", str(books), "--data-dir", str(seeded))
    report = _rows(
        tokenbook("report", "--by", "tenant", *WINDOW, "--data-dir", str(seeded), "--format", "json").stdout
    )
    by_tenant = {r["tenant"]: (Decimal(r["total_cost"]), Decimal(r["billed_cost"])) for r in report}
    assert by_tenant["acme"][1] != by_tenant["acme"][0]
    assert by_tenant["globex"][1] == by_tenant["globex"][0]
    path = tmp_path / "focus.csv"
    out = tokenbook(
        "export", "focus", "--since", "2026-01-31", "--until", "2026-02-02", "--currency", "EUR",
        "--exchange-rates", str(rates), "--output", str(path), "--data-dir", str(seeded),
    )  # fmt: skip
    assert "EUR" in out.stderr
    assert validate_csv(path) == []
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["BillingCurrency"] for r in rows} == {"EUR"} and {r["PricingCurrency"] for r in rows} == {"USD"}
    billed_usd = sum(Decimal(r["PricingCurrencyEffectiveCost"]) for r in rows)
    assert billed_usd == sum(b for _, b in by_tenant.values())
    books_named = {r["x_PriceBook"] for r in rows if r["SubAccountId"] == "acme"}
    assert books_named == {"books.yaml#acme-resale/gpt4o-contract", "books.yaml#acme-resale/markup"}


def _rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]
