"""Service tiers and cache lifetimes: read from recorded spans, priced from the catalog's variants or
overrides, and never priced at the standard rate when the tier's price is unknown."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest

from tests.conformance.otlp import FIXTURES, fixture_spans, load
from tokenbook.genai.billing import COST_QUANTUM
from tokenbook.genai.pricing.catalog import CATALOG_NAME, PriceCatalog
from tokenbook.genai.pricing.tiers import normalize_tier, price_context, read_service_tier
from tokenbook.genai.profiles import profile_of
from tokenbook.genai.usage import Usage, read_usage

AFTER = datetime(2026, 11, 2, tzinfo=UTC)  # the catalog prices gpt-5's flex and batch tiers from October
BEFORE = datetime(2026, 1, 2, tzinfo=UTC)
U = Usage(1_000_000, 200_000, 100_000, 0, 0, present=True)


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


def _model_spans(name: str) -> list[dict[str, object]]:
    return [s.attributes for s in fixture_spans(load(FIXTURES / name)) if s.usage]


def _reference(
    usage: Usage, model: str, provider: str, at: datetime, context: dict[str, str] | None
) -> Decimal:
    ref = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
            cache_write_1h_tokens=usage.cache_write_1h_tokens,
        ),
        model,
        provider_id=provider,
        genai_request_timestamp=at,
        price_context=context,
    )
    return ref.total_price.quantize(COST_QUANTUM)


@pytest.mark.parametrize(
    ("fixture", "tier"),
    [
        ("opentelemetry-instrumentation-genai-openai-1.3b0-chat.json", "standard"),  # "default"
        ("opentelemetry-instrumentation-openai-0.62.4-chat.json", "standard"),
        ("openlit-1.45.0-chat.json", "standard"),
        ("anthropic-2.17.0-messages.json", "standard"),  # anthropic.response.service_tier
        ("openinference-instrumentation-openai-0.1.66-chat.json", ""),  # says none
        ("openlit-1.45.0-groq_chat.json", "standard"),  # Groq's "on_demand", as openai.request.service_tier
    ],
)
def test_recorded_spans_name_their_tier(fixture: str, tier: str) -> None:
    assert {read_service_tier(attrs) for attrs in _model_spans(fixture)} == {tier}


def test_groqs_on_demand_tier_is_the_standard_tier(catalog: PriceCatalog) -> None:
    """Groq answers every pay-as-you-go call with ``service_tier: on_demand`` (OpenLIT 1.45.0 records it
    as ``openai.request.service_tier``): its base prices, not an unknown tier left unpriced."""
    assert normalize_tier("on_demand") == "standard"
    (attrs,) = _model_spans("openlit-1.45.0-groq_chat.json")
    tier = read_service_tier(attrs)
    usage = read_usage(attrs, "groq", profile_of("openlit.instrumentation.groq"))
    cost = catalog.price("groq", "llama-3.3-70b-versatile", usage, AFTER, tier=tier)
    assert cost.status == "priced"
    assert cost.total == _reference(usage, "llama-3.3-70b-versatile", "groq", AFTER, None)


def test_tier_names_are_normalized_and_auto_decides_nothing() -> None:
    assert [normalize_tier(v) for v in ("default", " Standard ", "FLEX", "auto", "", None, True, 3)] == [
        "standard", "standard", "flex", "", "", "", "", "3",
    ]  # fmt: skip
    response_wins = {"openai.request.service_tier": "flex", "openai.response.service_tier": "priority"}
    assert read_service_tier(response_wins) == "priority"
    asked_auto = {"openai.request.service_tier": "auto", "gen_ai.openai.request.service_tier": "flex"}
    assert read_service_tier(asked_auto) == "flex"
    assert (
        read_service_tier({"tokenbook.service_tier": "batch", "openai.response.service_tier": "x"}) == "batch"
    )
    assert (price_context(""), price_context("standard")) == (None, None)
    assert price_context("batch") == {"processing": "batch"}
    assert price_context("flex") == {"service_tier": "flex"}


@pytest.mark.parametrize("tier", ["flex", "priority", "batch"])
def test_a_tier_is_priced_from_the_catalogs_variant(catalog: PriceCatalog, tier: str) -> None:
    cost = catalog.price("openai", "gpt-5", U, AFTER, tier=tier)
    assert cost.status == "priced" and f"({tier} tier" in cost.source
    assert cost.total == _reference(U, "gpt-5", "openai", AFTER, price_context(tier))
    standard = catalog.price("openai", "gpt-5", U, AFTER)
    assert cost.total != standard.total
    quote = catalog.quote("openai", "gpt-5", U, int(AFTER.timestamp() * 1e9), tier=tier)
    assert quote.picos is not None and quote.picos.total == int(cost.total.scaleb(12))


def test_a_tier_without_a_known_price_is_unpriced_never_standard(catalog: PriceCatalog) -> None:
    """Before the catalog's flex prices begin, for a model without a flex price, or an unknown tier:
    unpriced, with the reason, never the standard price."""
    for model, tier, at in (("gpt-5", "flex", BEFORE), ("gpt-4o", "flex", AFTER), ("gpt-5", "scale", AFTER)):
        cost = catalog.price("openai", model, U, at, tier=tier)
        assert cost.status == "unpriced" and cost.total is None, (model, tier)
        assert f"no {tier} tier price for openai/{model}" in cost.source
        assert "service_tier:" in cost.source  # says how to price it
        assert catalog.quote("openai", model, U, int(at.timestamp() * 1e9), tier=tier).picos is None
    assert catalog.price("openai", "gpt-5", U, BEFORE, tier="standard").status == "priced"


def test_an_override_prices_a_tier_the_catalog_does_not(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n"
        "  - id: gpt5-flex\n    model: gpt-5\n    service_tier: flex\n    source: pricing page\n"
        "    checked: 2026-01-01\n"
        '    prices: {input_mtok: "0.625", output_mtok: "5", cache_read_mtok: "0.0625"}\n'
        "  - id: gpt5-deal\n    model: gpt-5\n    source: contract\n    checked: 2026-01-01\n"
        '    prices: {input_mtok: "1", output_mtok: "8"}\n'
    )
    catalog = PriceCatalog(path)
    flex = catalog.price("openai", "gpt-5", U, BEFORE, tier="flex")
    assert (flex.status, flex.source) == ("priced", "prices.yaml#gpt5-flex")
    assert flex.total == (
        Decimal("0.900000") * Decimal("0.625") + Decimal("0.2") * 5 + Decimal("0.00625")
    ).quantize(COST_QUANTUM)
    assert catalog.price("openai", "gpt-5", U, BEFORE, tier="standard").source == "prices.yaml#gpt5-deal"
    assert catalog.price("openai", "gpt-5", U, BEFORE).source == "prices.yaml#gpt5-deal"
    # the plain override is the standard price: it never prices another tier
    assert catalog.price("openai", "gpt-5", U, BEFORE, tier="priority").status == "unpriced"


def test_recorded_anthropic_sdk_span_prices_one_hour_cache_writes_apart(catalog: PriceCatalog) -> None:
    """The anthropic SDK (2.17.0) splits its cache writes by lifetime; the one-hour writes are priced at
    the one-hour rate, as genai-prices prices that usage."""
    fixture = load(FIXTURES / "anthropic-2.17.0-messages.json")
    span = next(s for s in fixture_spans(fixture) if s.usage)
    usage = read_usage(span.attributes, "anthropic", profile_of(span.scope, span.scope_version))
    assert (usage.cache_write_tokens, usage.cache_write_1h_tokens, usage.issues) == (1536, 512, ())
    cost = catalog.price("anthropic", "claude-sonnet-4-5", usage, AFTER)
    assert cost.total == _reference(usage, "claude-sonnet-4-5", "anthropic", AFTER, None)
    assert cost.cache_write_1h == (512 * Decimal(6) / 10**6).quantize(COST_QUANTUM)  # $6 per million
    five_minutes = catalog.price(
        "anthropic", "claude-sonnet-4-5", usage._replace(cache_write_1h_tokens=None), AFTER
    )
    assert cost.total - five_minutes.total == (512 * (Decimal(6) - Decimal("3.75")) / 10**6).quantize(  # type: ignore[operator]
        COST_QUANTUM
    )
    assert five_minutes.cache_write_1h is None


def test_cache_split_rules() -> None:
    base = {"gen_ai.usage.input_tokens": 5000, "gen_ai.usage.cache_write.input_tokens": 1500}
    one_hour = "anthropic.usage.cache_creation.ephemeral_1h_input_tokens"
    five_min = "anthropic.usage.cache_creation.ephemeral_5m_input_tokens"
    assert read_usage(base).cache_write_1h_tokens is None  # not split: every write is a 5-minute write
    assert read_usage({**base, five_min: 1000}).cache_write_1h_tokens == 500  # the rest is one-hour
    assert read_usage({**base, one_hour: 0, five_min: 1500}).cache_write_1h_tokens == 0
    mismatch = read_usage({**base, one_hour: 300, five_min: 1000})
    assert mismatch.cache_write_1h_tokens == 300 and "differs" in mismatch.issue_text
    too_many = read_usage({**base, one_hour: 2000})
    assert too_many.cache_write_1h_tokens is None and "does not fit" in too_many.issue_text
    bad = read_usage({**base, one_hour: "lots"})
    assert bad.cache_write_1h_tokens is None and "not a number" in bad.issue_text


def test_one_hour_writes_without_a_one_hour_rate_are_unpriced(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n  - id: claude-deal\n    model: claude-sonnet-4-5\n    source: contract\n"
        "    checked: 2026-01-01\n"
        '    prices: {input_mtok: "3", output_mtok: "15", cache_write_mtok: "3.75"}\n'
    )
    catalog = PriceCatalog(path)
    usage = Usage(5000, 100, 0, 1500, 0, present=True, cache_write_1h_tokens=500)
    cost = catalog.price("anthropic", "claude-sonnet-4-5", usage, AFTER)
    assert cost.status == "unpriced" and "one-hour cache write" in cost.source
    assert catalog.price(
        "anthropic", "claude-sonnet-4-5", usage._replace(cache_write_1h_tokens=0), AFTER
    ).total


def test_catalog_name_in_tier_sources(catalog: PriceCatalog) -> None:
    assert catalog.price("openai", "gpt-5", U, AFTER, tier="flex").source.startswith(CATALOG_NAME)
