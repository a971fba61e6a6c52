"""`tokenbook export focus`: FOCUS 1.2 files from a store of demo-like calls, checked by the FOCUS rules."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.seed_store import make_calls
from tests.collector.storage.focus.validator import as_text, validate, validate_csv
from tokenbook.cli import main
from tokenbook.cli.export import focus_export, parse_day, write_rows
from tokenbook.collector.storage.focus import FOCUS_COLUMNS
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.reprice import reprice
from tokenbook.collector.storage.store import Store
from tokenbook.genai.pricing.catalog import PriceCatalog

SINCE, UNTIL = date(2026, 1, 1), date(2026, 3, 1)


def _seed(s: Store) -> Store:
    """240 calls of 3 tenants from 22:00 on 31 January (two days, two months), priced by the catalog."""
    s.write(make_calls(240, base=datetime(2026, 1, 31, 22, tzinfo=UTC)), [])
    s.decide()
    reprice(s, PriceCatalog(), since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 3, 1, tzinfo=UTC))
    return s


@pytest.fixture
def store(database_pool):
    """The seeded store (`_seed`), for a test that writes into it."""
    with database_pool.store() as s:
        yield _seed(s)


@pytest.fixture(scope="module")
def seeded(database_pool):
    """The seeded store (`_seed`), shared by the tests that only read it (exports not recorded)."""
    with database_pool.store() as s:
        yield _seed(s)


def _export(store: Store, **kw):
    return focus_export(store.query, since=SINCE, until=UNTIL, database=store.database, **kw)


def _priced_total(store: Store, tenant: str = "") -> Decimal:
    _, _, rows = store.query(
        f"SELECT sum(total_cost) FROM {store.database}.v_calls WHERE price_status = 'priced' "
        "AND ({t:String} = '' OR tenant_id = {t:String})",
        {"t": tenant},
    )
    total: Decimal = rows[0][0]
    return total


def test_csv_conforms_and_adds_up(seeded, tmp_path):
    rows, unpriced = _export(seeded)
    path = tmp_path / "focus.csv"
    write_rows(rows, "csv", path)
    assert validate_csv(path) == []
    assert sum(r["BilledCost"] for r in rows) == _priced_total(seeded)
    assert sum(r["ListCost"] for r in rows) == _priced_total(seeded)
    assert unpriced > 0  # mystery-model calls: left out, counted
    assert {r["x_TokenType"] for r in rows} == {"input", "output", "cache_read"}
    assert {r["SubAccountId"] for r in rows} == {"acme", "globex", "initech"}
    assert {r["ChargePeriodStart"].date() for r in rows} == {date(2026, 1, 31), date(2026, 2, 1)}
    for r in rows:  # each row at one unit price: the list cost is exactly price x quantity
        assert r["ListUnitPrice"] * r["PricingQuantity"] == r["ListCost"]
        assert r["x_CatalogVersion"].startswith("genai-prices ")
        details = json.loads(r["SkuPriceDetails"])
        assert details["x_ModelId"] in {"gpt-4o", "claude-sonnet-4-5"}
        assert r["BillingPeriodStart"] <= r["ChargePeriodStart"] < r["BillingPeriodEnd"]


def test_jsonl_and_parquet_are_exact(seeded, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    rows, _ = _export(seeded, tenant="acme")
    assert {r["SubAccountId"] for r in rows} == {"acme"}
    out = io.StringIO()
    write_rows(rows, "jsonl", out)
    parsed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert validate(list(FOCUS_COLUMNS), parsed) == []
    assert sum(Decimal(r["BilledCost"]) for r in parsed) == _priced_total(seeded, "acme")
    write_rows(rows, "parquet", tmp_path / "focus.parquet")
    table = pq.read_table(tmp_path / "focus.parquet")
    assert str(table.schema.field("BilledCost").type) == "decimal128(38, 12)"
    records = [{k: as_text(v) for k, v in r.items()} for r in table.to_pylist()]
    assert validate(table.column_names, records) == []
    assert sum(table.column("BilledCost").to_pylist()) == _priced_total(seeded, "acme")


def test_view_is_billed_calls_only(store):
    """A candidate another span bills (a duplicate layer) is in no FOCUS row."""
    db = store.database

    def view() -> tuple[Decimal, int]:
        _, _, rows = store.query(
            f"SELECT sum(ListCost), sumIf(x_Calls, token_type = 'output') FROM {db}.v_focus_daily"
        )
        return rows[0][0], rows[0][1]

    _, _, calls = store.query(f"SELECT count() FROM {db}.v_calls WHERE price_status = 'priced'")
    assert view() == (_priced_total(store), calls[0][0])
    columns, _, rows = store.query(f"SELECT * FROM {db}.v_calls WHERE price_status = 'priced' LIMIT 1")
    call = CallRow(**dict(zip(columns, rows[0], strict=True)))
    store.write([call._replace(price_status="duplicate_layer", version=call.version + 1)], [])
    assert view() == (_priced_total(store), calls[0][0] - 1)


def test_parse_day():
    now = datetime(2026, 2, 10, 12, tzinfo=UTC)
    assert parse_day("2026-01-31", now) == date(2026, 1, 31)
    with pytest.raises(ValueError, match="whole UTC day"):
        parse_day("2026-01-31T10:00:00", now)


def test_cli_rejects_parquet_to_stdout(capsys):
    assert (
        main(["export", "focus", "--since", "2026-01-01", "--until", "2026-02-01", "--format", "parquet"])
        == 2
    )
    assert "needs --output" in capsys.readouterr().err


def test_validator_catches_a_bad_row(seeded, tmp_path):
    rows, _ = _export(seeded)
    bad = [dict(rows[0], ChargeCategory="Spend", BilledCost=None, Tags="[1]")]
    text = [{k: as_text(v) for k, v in r.items()} for r in bad]
    failures = validate(list(FOCUS_COLUMNS), text)
    assert any(f.startswith("ChargeCategory") for f in failures)
    assert any(f.startswith("BilledCost") for f in failures)
    assert any(f.startswith("Tags") for f in failures)
    path = tmp_path / "missing.csv"
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["BilledCost"], ["1"]])
    assert "SkuId: required column missing" in validate_csv(path)
    assert Path(path).exists()


def _key(row):
    return tuple(
        row[c] for c in ("ChargePeriodStart", "SubAccountId", "SkuId", "SkuPriceId", "Tags", "x_PriceBook")
    )


def test_a_reprice_after_an_export_is_a_correction_in_the_next(store, tmp_path):
    """January exported; then a price changes and January is re-priced: February's export carries
    correction rows for 31 January, and January's file plus them equal January's new figures."""
    jan, _ = focus_export(
        store.query, since=date(2026, 1, 1), until=date(2026, 2, 1), database=store.database, record=store
    )
    assert jan and all(r["ChargeClass"] is None for r in jan)
    overrides = tmp_path / "prices.yaml"
    overrides.write_text(
        "models:\n  - id: gpt-4o-deal\n    model: gpt-4o\n    source: contract\n    checked: 2026-01-01\n"
        '    prices: {input_mtok: "2", output_mtok: "8", cache_read_mtok: "1"}\n'
    )
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    assert reprice(store, PriceCatalog(overrides), since=since, until=until).changed > 0

    def feb():
        rows, _ = focus_export(
            store.query, since=date(2026, 2, 1), until=date(2026, 3, 1), database=store.database, record=store
        )
        return rows

    rows = feb()
    fixes = [r for r in rows if r["ChargeClass"] == "Correction"]
    assert fixes and {r["ChargePeriodStart"].date() for r in fixes} == {date(2026, 1, 31)}
    assert {r["BillingPeriodStart"].date() for r in fixes} == {date(2026, 2, 1)}
    new_jan = {
        _key(r): r
        for r in focus_export(
            store.query, since=date(2026, 1, 1), until=date(2026, 2, 1), database=store.database
        )[0]
    }
    combined: dict = {}
    for r in [*jan, *fixes]:
        held = combined.setdefault(_key(r), [Decimal(0), Decimal(0), Decimal(0)])
        held[0] += r["BilledCost"]
        held[1] += r["ListCost"]
        held[2] += r["ConsumedQuantity"]
    combined = {k: v for k, v in combined.items() if any(v)}
    assert combined == {
        k: [r["BilledCost"], r["ListCost"], r["ConsumedQuantity"]] for k, r in new_jan.items()
    }
    path = tmp_path / "feb.csv"
    write_rows(rows, "csv", path)
    assert validate_csv(path) == []
    assert feb() == rows  # the same export again: the same file, corrections not doubled
    # a later export (March) finds nothing more to correct
    march, _ = focus_export(
        store.query, since=date(2026, 3, 1), until=date(2026, 4, 1), database=store.database, record=store
    )
    assert march == []
