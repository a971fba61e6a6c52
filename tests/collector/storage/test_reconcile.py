"""Reconciliation on the real embedded engine: the providers' exports read in their documented shapes
(tests/testdata/reconcile/), imported into ``provider_usage``, and ``v_reconcile_drift`` naming the
cause of each drift against a ledger that drifts in known ways (tests/collector/storage/reconcile_rows.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from tests.collector.storage.reconcile_rows import DATA, seed_ledger
from tests.stores import DatabasePool
from tokenbook.collector.storage.drift import beyond, drift_rows, subjects
from tokenbook.collector.storage.provider_exports import ExportError, parse_export, read_export
from tokenbook.collector.storage.provider_usage import ProviderRow, import_rows, row_from_json, row_to_json
from tokenbook.collector.storage.store import Store

DAY = date(2026, 3, 2)


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    with database_pool.store() as s:
        s.write(seed_ledger(), [])
        yield s


def rows_of(*names: str) -> list[ProviderRow]:
    return [row for name in names for row in read_export(DATA / name).rows]


def drift(store: Store, tenant: str = "", provider: str = "") -> dict[tuple[str, str, str], Any]:
    found = drift_rows(
        store.query, store.database, since=DAY, until=date(2026, 3, 3), tenant=tenant, provider=provider
    )
    return {(r.provider, r.model, r.token_type): r for r in found}


# --- reading the exports ----------------------------------------------------------------------------


def test_each_documented_format_is_recognised_by_its_content() -> None:
    sources = {path.name: read_export(path).source for path in sorted(DATA.iterdir()) if path.suffix != ".md"}
    assert sources == {
        "anthropic_cost.csv": "anthropic.cost.csv",
        "anthropic_cost_report.json": "anthropic.cost_report",
        "anthropic_usage.csv": "anthropic.usage.csv",
        "anthropic_usage_report.json": "anthropic.usage_report.messages",
        "openai_costs.csv": "openai.costs.csv",
        "openai_costs.json": "openai.costs",
        "openai_usage.csv": "openai.usage.csv",
        "openai_usage_completions.json": "openai.usage.completions",
    }


def test_openai_usage_splits_cached_input_and_the_csv_reads_the_same() -> None:
    api = read_export(DATA / "openai_usage_completions.json")
    assert api.problems == [] and {r.day for r in api.rows} == {DAY}  # the empty bucket adds nothing
    gpt = {r.token_type: r for r in api.rows if r.model == "gpt-4o-2024-08-06"}
    assert {k: (r.tokens, r.requests) for k, r in gpt.items()} == {
        "input": (42_000, 42),
        "cache_read": (8_400, None),
        "output": (12_600, None),
    }
    csv = read_export(DATA / "openai_usage.csv")
    key = lambda r: (r.day, r.model, r.token_type, r.tokens, r.requests)  # noqa: E731
    assert sorted(map(key, csv.rows)) == sorted(map(key, api.rows))
    assert {r.project for r in csv.rows} == {"proj_support"} and {r.kind for r in csv.rows} == {"usage"}


def test_costs_are_exact_decimals_in_dollars() -> None:
    openai = {r.line_item: r for r in read_export(DATA / "openai_costs.json").rows}
    assert openai["gpt-4o-2024-08-06, cached input"].cost == Decimal("0.0105")
    assert (openai["gpt-4o-2024-08-06, cached input"].model, openai["web search tool calls"].token_type) == (
        "gpt-4o-2024-08-06",
        "other",
    )
    anthropic = read_export(DATA / "anthropic_cost_report.json").rows
    assert [r.cost for r in anthropic if r.model.startswith("claude-sonnet")] == [
        Decimal("0.06"),  # "6" cents
        Decimal("0.03"),
        Decimal("0.12"),
    ]
    console = read_export(DATA / "anthropic_cost.csv").rows
    assert sum((r.cost for r in console if r.cost is not None), Decimal(0)) == sum(
        (r.cost for r in anthropic if r.cost is not None), Decimal(0)
    )
    assert {r.currency for r in anthropic + console} == {"USD"}


def test_line_items_with_a_tier_or_a_qualifier_keep_their_model() -> None:
    page = (
        '{"object": "page", "data": [{"object": "bucket", "start_time": 1772409600, "end_time": 1772496000, '
        '"results": [{"object": "organization.costs.result", "amount": {"value": 1.5, "currency": "usd"}, '
        '"line_item": "priority | gpt-5.2, output, long context"}]}]}'
    )
    (row,) = parse_export(page, "costs.json").rows
    assert (row.model, row.token_type, row.cost) == ("gpt-5.2", "output", Decimal("1.5"))


def test_a_bad_row_is_named_and_the_others_are_kept() -> None:
    text = (
        (DATA / "anthropic_usage.csv")
        .read_text(encoding="utf-8")
        .replace("30000,0,0,0,6000", "30000,0,0,0,6k")
    )
    export = parse_export(text, "usage.csv")
    assert export.problems == ["usage.csv: line 3: output_tokens: '6k' is not a count"]
    assert {r.model for r in export.rows} == {"claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805"}


def test_ungrouped_costs_are_refused_with_how_to_export_them() -> None:
    page = (
        '{"data": [{"starting_at": "2026-03-02T00:00:00Z", "ending_at": "2026-03-03T00:00:00Z", '
        '"results": [{"currency": "USD", "amount": "120", "workspace_id": null, "description": null, '
        '"cost_type": null, "context_window": null, "model": null, "service_tier": null, '
        '"token_type": null}]}], '
        '"has_more": false, "next_page": null}'
    )
    export = parse_export(page, "cost.json")
    assert export.rows == [] and "group_by[]=description" in export.problems[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"hello": 1}', "expected an OpenAI Usage API"),
        ("not json, not a known csv\n1,2\n", "this CSV's columns are"),
        ('{"data": [', "not valid JSON"),
        (
            '{"object": "page", "data": [{"start_time": 1, "end_time": 2, "results": '
            '[{"object": "organization.usage.images.result", "images": 3}]}]}',
            "not token usage",
        ),
    ],
)
def test_files_in_no_documented_shape_are_refused(text: str, message: str) -> None:
    with pytest.raises(ExportError, match=message):
        parse_export(text, "file")


def test_rows_cross_the_admin_api_exactly() -> None:
    for row in rows_of("openai_costs.json", "anthropic_usage_report.json"):
        assert row_from_json(row_to_json(row)) == row
    with pytest.raises(ValueError, match="provider, kind and token_type"):
        row_from_json({**row_to_json(row), "token_type": "audio"})


# --- the drift view --------------------------------------------------------------------------------


def test_each_drift_is_attributed_to_its_visible_cause(store: Store) -> None:
    import_rows(store, rows_of("openai_usage_completions.json", "openai_costs.json"))
    import_rows(store, rows_of("anthropic_usage_report.json", "anthropic_cost_report.json"))
    found = drift(store)
    causes = {key: r.cause for key, r in found.items()}
    assert causes == {
        ("openai", "gpt-4o", "input"): "untraced_calls",
        ("openai", "gpt-4o", "cache_read"): "untraced_calls",
        ("openai", "gpt-4o", "output"): "untraced_calls",
        ("openai", "o4-mini", "input"): "",
        ("openai", "o4-mini", "output"): "missing_reasoning",
        ("openai", "gpt-4o-mini", "input"): "price_difference",
        ("openai", "gpt-4o-mini", "output"): "price_difference",
        ("openai", "", "other"): "non_token_charge",
        ("anthropic", "claude-sonnet-4-5", "input"): "cache_not_reported",
        ("anthropic", "claude-sonnet-4-5", "cache_read"): "cache_not_reported",
        ("anthropic", "claude-sonnet-4-5", "output"): "",
        ("anthropic", "claude-haiku-4-5", "input"): "unpriced_calls",
        ("anthropic", "claude-haiku-4-5", "output"): "unpriced_calls",
        ("anthropic", "claude-opus-4-1", "input"): "untraced_model",
        ("anthropic", "claude-opus-4-1", "output"): "untraced_model",
        ("anthropic", "claude-haiku-3-5", "input"): "not_billed",
        ("anthropic", "claude-haiku-3-5", "output"): "not_billed",
        ("anthropic", "", "other"): "non_token_charge",
    }
    gpt = found[("openai", "gpt-4o", "input")]
    assert (gpt.provider_tokens, gpt.ledger_tokens, gpt.token_drift) == (42_000, 40_000, 2_000)
    assert (gpt.provider_cost, gpt.ledger_cost, gpt.cost_drift) == (
        Decimal("0.105"),
        Decimal("0.1"),
        Decimal("0.005"),
    )
    assert (gpt.provider_requests, gpt.ledger_calls) == (42, 40)  # the cache hit is not a call billed
    haiku = found[("anthropic", "claude-haiku-4-5", "input")]
    assert (haiku.token_drift, haiku.ledger_cost, haiku.cost_drift, haiku.ledger_unpriced_calls) == (
        0,
        None,
        None,
        10,
    )
    mini = found[("openai", "gpt-4o-mini", "output")]
    assert (mini.provider_cost, mini.ledger_cost) == (Decimal("0.006"), Decimal("0.012"))
    # Exact: the drifts of a provider add up to its total minus the ledger's total, to the last digit.
    openai = [r for r in found.values() if r.provider == "openai" and r.cost_drift is not None]
    total_provider = sum((r.provider_cost for r in openai if r.provider_cost is not None), Decimal(0))
    total_ledger = sum((r.ledger_cost for r in openai if r.ledger_cost is not None), Decimal(0))
    assert (
        sum((r.cost_drift for r in openai if r.cost_drift is not None), Decimal(0))
        == total_provider - total_ledger
    )


def test_the_console_exports_reconcile_like_the_api(store: Store) -> None:
    import_rows(store, rows_of("anthropic_usage.csv", "anthropic_cost.csv"))
    causes = {key: r.cause for key, r in drift(store, provider="anthropic").items() if r.cause}
    assert causes == {
        ("anthropic", "claude-sonnet-4-5", "input"): "cache_not_reported",
        ("anthropic", "claude-sonnet-4-5", "cache_read"): "cache_not_reported",
        ("anthropic", "claude-haiku-4-5", "input"): "unpriced_calls",
        ("anthropic", "claude-haiku-4-5", "output"): "unpriced_calls",
        ("anthropic", "claude-opus-4-1", "input"): "untraced_model",
        ("anthropic", "claude-opus-4-1", "output"): "untraced_model",
        ("anthropic", "claude-haiku-3-5", "input"): "not_billed",
        ("anthropic", "claude-haiku-3-5", "output"): "not_billed",
        ("anthropic", "", "other"): "non_token_charge",
    }


def test_the_latest_import_of_a_day_replaces_earlier_ones(store: Store) -> None:
    usage = rows_of("openai_usage_completions.json")
    import_rows(store, usage)
    assert drift(store)[("openai", "gpt-4o", "input")].provider_tokens == 42_000
    corrected = [
        r._replace(tokens=40_000, requests=40)
        if r.token_type == "input" and r.model.startswith("gpt-4o-2")
        else r
        for r in usage
    ]
    import_rows(store, corrected)
    row = drift(store)[("openai", "gpt-4o", "input")]
    assert (row.provider_tokens, row.token_drift, row.cause) == (40_000, 0, "")
    # Costs are a separate kind: importing them leaves the usage figures as they are.
    import_rows(store, rows_of("openai_costs.json"))
    assert drift(store)[("openai", "gpt-4o", "input")].provider_tokens == 40_000


def test_a_tenants_own_export_is_compared_with_its_calls_only(store: Store) -> None:
    ten = [
        r._replace(
            tokens={"input": 10_000, "cache_read": 2_000, "output": 3_000}[r.token_type],
            requests=10 if r.token_type == "input" else None,
        )
        for r in rows_of("openai_usage_completions.json")
        if r.model == "gpt-4o-2024-08-06"
    ]
    import_rows(store, ten, tenant="globex")
    found = drift(store, tenant="globex")  # globex made 10 of the 40 gpt-4o calls, and no other
    assert {k: (r.ledger_tokens, r.cause) for k, r in found.items()} == {
        ("openai", "gpt-4o", "input"): (10_000, ""),
        ("openai", "gpt-4o", "cache_read"): (2_000, ""),
        ("openai", "gpt-4o", "output"): (3_000, ""),
    }
    assert drift(store) == {}  # nothing imported for the whole organization


def test_subjects_sum_a_model_and_thresholds_need_both_figures(store: Store) -> None:
    import_rows(store, rows_of("anthropic_usage_report.json", "anthropic_cost_report.json"))
    found = drift_rows(store.query, store.database, since=DAY, until=date(2026, 3, 3))
    by_model = {s.model: s for s in subjects(found)}
    sonnet = by_model["claude-sonnet-4-5"]
    assert (sonnet.provider_tokens, sonnet.ledger_tokens) == (128_000, 128_000)
    assert (sonnet.provider_cost, sonnet.ledger_cost, sonnet.causes) == (
        Decimal("0.21"),
        Decimal("0.48"),
        ("cache_not_reported",),
    )
    assert by_model["claude-haiku-4-5"].ledger_cost is None  # unpriced: unknown, not 0
    threshold, none = Decimal("0.05"), Decimal(0)
    assert beyond(105, 100, threshold, none) is False and beyond(106, 100, threshold, none) is True
    assert beyond(Decimal("0.30"), Decimal("0.10"), threshold, Decimal("1")) is False  # below the minimum
    assert beyond(None, 100, threshold, none) is False
