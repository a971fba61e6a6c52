"""Chargeback on the embedded store: price books bill each call in the ledger, service tiers and one-hour
cache writes are priced and recorded, reprice re-applies books, and the FOCUS export (in the ledger's
currency or converted) bills from the ledger and conforms to the FOCUS rules, corrections included."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Tracer

from tests.collector.storage.focus.validator import as_text, validate
from tests.stores import DatabasePool
from tokenbook.collector.decode.spans import decode_protobuf
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.storage.export_log import corrections, record_export
from tokenbook.collector.storage.focus import (
    FOCUS_COLUMNS,
    Conversion,
    FocusLine,
    focus_record,
    unpriced_calls,
    usage_lines,
)
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.migrate import load_migrations
from tokenbook.collector.storage.reprice import reprice
from tokenbook.collector.storage.sqltemplate import SchemaTarget, render_query
from tokenbook.collector.storage.store import Store
from tokenbook.genai.pricing.books import PriceBooks
from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.genai.pricing.exchange import ExchangeRates, MissingRate

DAY1, DAY2 = datetime(2026, 11, 2, 9, tzinfo=UTC), datetime(2026, 11, 3, 9, tzinfo=UTC)
BOOKS = """
books:
  - id: acme-resale
    tenants: [acme]
    source: "Reseller agreement, schedule B"
    checked: 2026-10-01
    entries:
      - id: gpt4o-contract
        model: gpt-4o
        prices: {{input_mtok: "2", output_mtok: "8", cache_read_mtok: "1"}}
      - id: markup
        markup_percent: "{markup}"
"""
RATES = """
source: "ECB reference rates, as euros per US dollar"
rates:
  2026-11-02: {EUR: "0.8617"}
  2026-11-03: {EUR: "0.8622"}
"""
CATALOG = PriceCatalog()


def _chat(provider: str, model: str, tenant: str, n_in: int, n_out: int, **extra: object) -> dict[str, Any]:
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": n_in,
        "gen_ai.usage.output_tokens": n_out,
        "tenant.id": tenant,
        "project.id": "support",
        **extra,
    }


def _traffic(tracer: Tracer) -> None:
    """Two days of calls by two tenants: gpt-4o, Claude with one-hour cache writes, gpt-5 at the flex
    tier, and gpt-4o at a flex tier the catalog has no price for."""
    for day in (DAY1, DAY2):
        for i, tenant in enumerate(("acme", "globex") * 3):
            calls = [
                _chat(
                    "openai",
                    "gpt-4o",
                    tenant,
                    1_000 + 7 * i,
                    200 + i,
                    **{"gen_ai.usage.cache_read.input_tokens": 400},
                ),
                _chat(
                    "anthropic",
                    "claude-sonnet-4-5",
                    tenant,
                    6_000 + i,
                    300,
                    **{
                        "gen_ai.usage.cache_write.input_tokens": 2_048,
                        "anthropic.usage.cache_creation.ephemeral_1h_input_tokens": 1_536,
                        "anthropic.usage.cache_creation.ephemeral_5m_input_tokens": 512,
                        "anthropic.response.service_tier": "standard",
                    },
                ),
                _chat("openai", "gpt-5", tenant, 3_000 + i, 900, **{"openai.response.service_tier": "flex"}),
            ]
            if i == 0:
                calls.append(
                    _chat("openai", "gpt-4o", tenant, 500, 50, **{"openai.response.service_tier": "flex"})
                )
            for n, attrs in enumerate(calls):
                start = int((day + timedelta(minutes=10 * i + n)).timestamp() * 1e9)
                span = tracer.start_span(
                    f"chat {attrs['gen_ai.request.model']}", attributes=attrs, start_time=start
                )
                span.end(end_time=start + 2_000_000_000)


def _ingest(store: Store, books: PriceBooks, build: Callable[[Tracer], None] = _traffic) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    build(provider.get_tracer("manual"))
    body = encode_spans(list(memory.get_finished_spans())).SerializeToString()
    records = decode_protobuf(body, pipeline_keys((), "drop")).records
    batch = RowBuilder(CATALOG, books=books).build(records)
    store.write(batch.calls, batch.steps)
    store.refresh_aggregates()


def _books(tmp_path: Path, markup: str) -> PriceBooks:
    path = tmp_path / "books.yaml"
    path.write_text(BOOKS.format(markup=markup))
    return PriceBooks(path)


@pytest.fixture
def store(database_pool: DatabasePool, tmp_path: Path) -> Iterator[Store]:
    """The traffic ingested with a 20 % markup book, for a test that writes into the store."""
    with database_pool.store() as s:
        _ingest(s, _books(tmp_path, "20"))
        yield s


@pytest.fixture(scope="module")
def seeded(database_pool: DatabasePool, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The same store, shared by the tests that only read it."""
    with database_pool.store() as s:
        _ingest(s, _books(tmp_path_factory.mktemp("books"), "20"))
        yield s


def _calls(store: Store, where: str = "1") -> list[dict[str, Any]]:
    columns, _, rows = store.query(f"SELECT * FROM {store.database}.v_calls WHERE {where}")
    return [dict(zip(columns, r, strict=True)) for r in rows]


def _lines(store: Store, **kw: Any) -> list[FocusLine]:
    return usage_lines(store.query, store.database, since=date(2026, 11, 1), until=date(2026, 12, 1), **kw)


def _validate(lines: list[FocusLine]) -> list[str]:
    rows = [{k: as_text(v) for k, v in focus_record(line).items()} for line in lines]
    return validate(list(FOCUS_COLUMNS), rows)


def test_each_call_records_its_tier_cache_split_and_bill(seeded: Store) -> None:
    calls = _calls(seeded)
    claude = [c for c in calls if c["model"] == "claude-sonnet-4-5"]
    assert {(c["cache_write_tokens"], c["cache_write_1h_tokens"], c["service_tier"]) for c in claude} == {
        (2048, 1536, "standard")
    }
    for c in claude:  # $6 per million one-hour writes, $3.75 five-minute, within the cache-write cost
        assert c["cache_write_1h_cost"] == Decimal(1536 * 6).scaleb(-6)
        assert c["cache_write_cost"] == c["cache_write_1h_cost"] + Decimal(512 * 375).scaleb(-8)
    flex = [c for c in calls if c["model"] == "gpt-5"]
    assert {c["service_tier"] for c in flex} == {"flex"} and all(c["price_status"] == "priced" for c in flex)
    assert all("(flex tier" in c["price_source"] for c in flex)
    for c in calls:
        if c["price_status"] != "priced":
            continue
        assert c["billed_cost"] == sum(
            c[f"billed_{k}_cost"] for k in ("input", "output", "cache_read", "cache_write")
        )
        if c["tenant_id"] == "globex":  # no book: billed at the list price
            assert (c["price_book"], c["price_book_entry"], c["billed_cost"]) == ("", "", c["total_cost"])
        elif c["model"] == "gpt-4o":
            fresh = c["input_tokens"] - c["cache_read_tokens"]
            own = Decimal(fresh * 2 + c["cache_read_tokens"] + c["output_tokens"] * 8).scaleb(-6)
            assert (c["price_book_entry"], c["billed_cost"]) == ("gpt4o-contract", own)
        else:
            assert (c["price_book"], c["price_book_entry"]) == ("books.yaml#acme-resale", "markup")
            for part in ("input", "output", "cache_read", "cache_write", "cache_write_1h"):
                listed = c[f"{part}_cost"]
                if listed is not None:
                    assert c[f"billed_{part}_cost"] == (listed * Decimal("1.2")).quantize(Decimal("1e-12"))


def test_a_tier_without_a_price_is_unpriced_and_listed(seeded: Store) -> None:
    unpriced = _calls(seeded, "price_status = 'unpriced'")
    assert len(unpriced) == 2 and {(c["model"], c["service_tier"]) for c in unpriced} == {("gpt-4o", "flex")}
    assert all(c["total_cost"] is None and c["billed_cost"] is None for c in unpriced)
    assert all("no flex tier price for openai/gpt-4o" in c["price_source"] for c in unpriced)
    _, _, listed = seeded.query(
        render_query("unpriced_models.sql", seeded.database), {"model": "", "provider": ""}
    )
    assert [(r[1], r[2], r[3]) for r in listed] == [("gpt-4o", "flex", 2)]
    assert (
        unpriced_calls(seeded.query, seeded.database, since=date(2026, 11, 1), until=date(2026, 12, 1)) == 2
    )


def test_focus_bills_from_the_ledger_and_conforms(seeded: Store) -> None:
    lines = _lines(seeded)
    assert _validate(lines) == []
    priced = _calls(seeded, "price_status = 'priced'")
    for tenant in ("acme", "globex"):
        mine = [c for c in priced if c["tenant_id"] == tenant]
        assert sum(ln.billed_cost for ln in lines if ln.tenant == tenant) == sum(
            c["billed_cost"] for c in mine
        )
        assert sum(ln.list_cost for ln in lines if ln.tenant == tenant) == sum(c["total_cost"] for c in mine)
    books = {ln.book for ln in lines}
    assert books == {"", "books.yaml#acme-resale/markup", "books.yaml#acme-resale/gpt4o-contract"}
    one_hour = [ln for ln in lines if ln.token_type == "cache_write_1h"]
    assert one_hour and {ln.quantity % 1536 for ln in one_hour} == {0}
    assert {ln.list_unit_price for ln in one_hour} == {Decimal(6)}
    assert {ln.service_tier for ln in lines if ln.model == "gpt-5"} == {"flex"}
    for ln in lines:  # exact: every row has one list unit price, and its billed one when exact
        assert ln.list_unit_price is not None
        assert ln.list_unit_price * Decimal(ln.quantity).scaleb(-6) == ln.list_cost
        if ln.contracted_unit_price is not None:
            assert ln.contracted_unit_price * Decimal(ln.quantity).scaleb(-6) == ln.billed_cost
    record = focus_record(next(ln for ln in lines if ln.service_tier == "flex"))
    assert "flex" in record["SkuPriceId"] and '"x_ServiceTier": "flex"' in record["SkuPriceDetails"]


def test_reprice_reapplies_a_changed_book_and_the_next_export_corrects(store: Store, tmp_path: Path) -> None:
    """2 November is exported; the markup then changes from 20 % to 30 % and the stored calls are billed
    again: the export of 3 November carries corrections for 2 November, and the first file plus the
    corrections equal 2 November's new figures. List prices do not move."""
    first = usage_lines(store.query, store.database, since=date(2026, 11, 2), until=date(2026, 11, 3))
    record_export(store, since=date(2026, 11, 2), until=date(2026, 11, 3), tenant="", lines=first)
    listed_before = sum(c["total_cost"] for c in _calls(store, "price_status = 'priced'"))
    result = reprice(
        store,
        CATALOG,
        books=_books(tmp_path, "30"),
        since=DAY1 - timedelta(days=1),
        until=DAY2 + timedelta(days=1),
    )
    acme_marked = _calls(store, "tenant_id = 'acme' AND price_book_entry = 'markup'")
    assert result.changed == len(acme_marked) > 0
    assert result.old_total == result.new_total  # the list prices did not move, the bills did
    assert sum(c["total_cost"] for c in _calls(store, "price_status = 'priced'")) == listed_before
    for c in acme_marked:
        assert c["billed_cost"] == sum(
            (c[f"{k}_cost"] * Decimal("1.3")).quantize(Decimal("1e-12"))
            for k in ("input", "output", "cache_read", "cache_write")
        )
    again = reprice(store, CATALOG, books=_books(tmp_path, "30"), since=DAY1 - timedelta(days=1), until=DAY2)
    assert again.changed == 0  # a second run changes nothing

    fixes = corrections(store.query, store.database, since=date(2026, 11, 3), until=date(2026, 11, 4))
    assert fixes and {ln.day for ln in fixes} == {date(2026, 11, 2)}
    assert {ln.tenant for ln in fixes} == {"acme"}
    # a row billed at a new unit price is a new row identity: the old one is taken back, the new one
    # added, so the list cost moves between rows and adds up to no change
    assert sum(ln.list_cost for ln in fixes) == 0 and sum(ln.quantity for ln in fixes) == 0
    assert sum(ln.billed_cost for ln in fixes) > 0
    assert _validate(fixes) == []
    now = usage_lines(store.query, store.database, since=date(2026, 11, 2), until=date(2026, 11, 3))
    combined: dict[tuple[Any, ...], list[Decimal]] = {}
    for ln in [*first, *fixes]:
        held = combined.setdefault(ln.key, [Decimal(0), Decimal(0)])
        held[0] += ln.billed_cost
        held[1] += ln.list_cost
    combined = {k: v for k, v in combined.items() if any(v)}
    assert combined == {ln.key: [ln.billed_cost, ln.list_cost] for ln in now}


def test_a_converted_export_is_exact_per_day(seeded: Store, tmp_path: Path) -> None:
    path = tmp_path / "rates.yaml"
    path.write_text(RATES)
    rates = ExchangeRates.load(path)
    usd = _lines(seeded)
    eur = _lines(seeded, conversion=Conversion("EUR", rates))
    assert len(eur) == len(usd) and _validate(eur) == []
    for a, b in zip(usd, eur, strict=True):
        rate = Decimal("0.8617") if a.day == date(2026, 11, 2) else Decimal("0.8622")
        assert (b.currency, b.pricing_currency, b.exchange_rate) == ("EUR", "USD", rate)
        assert a.list_unit_price is not None and b.list_unit_price is not None
        assert b.list_unit_price == (a.list_unit_price * rate).quantize(Decimal("1e-6"))
        assert b.list_cost == b.list_unit_price * Decimal(a.quantity).scaleb(-6)  # FOCUS: exact product
        if a.contracted_unit_price is None:  # a markup rounded per call: the amount is converted
            assert b.billed_cost == (a.billed_cost * rate).quantize(Decimal("1e-12"))
        record = focus_record(b)
        assert (record["BillingCurrency"], record["PricingCurrency"]) == ("EUR", "USD")
        assert record["PricingCurrencyEffectiveCost"] == a.billed_cost
        assert record["PricingCurrencyListUnitPrice"] == a.list_unit_price
        assert record["x_ExchangeRate"] == rate
    path.write_text('source: s\nrates:\n  2026-11-02: {EUR: "0.86"}\n')
    with pytest.raises(MissingRate, match="no USD->EUR exchange rate for 2026-11-03"):
        _lines(seeded, conversion=Conversion("EUR", ExchangeRates.load(path)))


def test_rollups_and_daily_views_carry_the_billed_cost(seeded: Store) -> None:
    db = seeded.database
    _, _, by_tenant = seeded.query(
        f"SELECT tenant_id, sum(billed_cost), sum(total_cost) FROM {db}.v_tenant_daily GROUP BY tenant_id "
        "ORDER BY tenant_id"
    )
    _, _, ledger = seeded.query(
        f"SELECT tenant_id, sum(billed_cost), sum(total_cost) FROM {db}.v_calls GROUP BY tenant_id "
        "ORDER BY tenant_id"
    )
    assert by_tenant == ledger
    assert ledger[0][1] > ledger[0][2]  # acme pays a markup
    whole = {"whole_since": DAY1.replace(hour=0), "whole_until": DAY2.replace(hour=0) + timedelta(days=1)}
    params = {
        "since": DAY1 - timedelta(hours=1),
        "until": DAY2 + timedelta(days=1),
        "tenant": "",
        "by": "tenant",
    }
    _, _, rollup = seeded.query(
        render_query("report_rollup.sql", db), {**params, **whole, "source": "tenant", "by_day": 0}
    )
    assert sorted((r[0], r[-1], r[-2]) for r in rollup) == [tuple(r) for r in ledger]


def test_the_migration_bills_rows_written_before_books_at_their_list_price(store: Store) -> None:
    """A row written before migration 110 has no billed cost: the migration's backfill (run again
    here: it is idempotent) bills it at its list price, and FOCUS counts it at its list price."""
    (old,) = _calls(store, "tenant_id = 'globex' AND model = 'gpt-5' LIMIT 1")
    bare = CallRow(**old)._replace(
        billed_input_cost=None,
        billed_output_cost=None,
        billed_cache_read_cost=None,
        billed_cache_write_cost=None,
        billed_cost=None,
        version=old["version"] + 1,
    )
    store.write([bare], [])
    lines = _lines(store)
    assert sum(ln.billed_cost for ln in lines) == sum(
        c["billed_cost"] or c["total_cost"] for c in _calls(store, "price_status = 'priced'")
    )
    (migration,) = [m for m in load_migrations() if m.version == 110]
    for statement in migration.statements(SchemaTarget(database=store.database)):
        store.command(statement)
    (now,) = _calls(store, f"span_id = '{old['span_id']}'")
    assert now["billed_cost"] == now["total_cost"] == old["total_cost"]
