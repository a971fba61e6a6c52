"""Golden pricing cases: computed by hand here, cross-checked against genai_prices.calc_price."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import genai_prices
import pytest

from tokenbook.genai.billing import COST_QUANTUM
from tokenbook.genai.pricing.catalog import CATALOG_NAME, PriceCatalog
from tokenbook.genai.pricing.overrides import PriceConfigError
from tokenbook.genai.pricing.providers import catalog_provider
from tokenbook.genai.pricing.rates import Cost, UnitPrices
from tokenbook.genai.usage import MAX_TOKENS, Usage

TESTDATA = Path(__file__).parents[1] / "testdata"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
M = Decimal(1_000_000)


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


def _usage(inp: int, out: int, cr: int = 0, cw: int = 0, rs: int = 0) -> Usage:
    return Usage(inp, out, cr, cw, rs, present=True)


def _check_against_calc_price(cost: Cost, usage: Usage, model: str, provider: str, at: datetime) -> None:
    ref = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
        model,
        provider_id=provider,
        genai_request_timestamp=at,
    )
    assert cost.total == ref.total_price.quantize(COST_QUANTUM)


def _assert_parts(cost: Cost, inp: str, out: str, cr: str = "0", cw: str = "0") -> None:
    assert cost.status == "priced"
    assert (cost.input, cost.output, cost.cache_read, cost.cache_write) == tuple(
        Decimal(x).quantize(COST_QUANTUM) for x in (inp, out, cr, cw)
    )
    assert cost.total == cost.input + cost.output + cost.cache_read + cost.cache_write  # type: ignore[operator]


def test_anthropic_cache_read_and_write(catalog):
    u = _usage(10_000, 500, cr=4_000, cw=1_000)  # input inclusive: 5,000 fresh
    cost = catalog.price("anthropic", "claude-sonnet-4-5", u, NOW)
    _assert_parts(
        cost,
        inp=str(5_000 * Decimal(3) / M),
        out=str(500 * Decimal(15) / M),
        cr=str(4_000 * Decimal("0.3") / M),
        cw=str(1_000 * Decimal("3.75") / M),
    )
    assert cost.total == Decimal("0.02745")
    assert cost.source.startswith(f"{CATALOG_NAME} anthropic/claude-sonnet-4-5")
    _check_against_calc_price(cost, u, "claude-sonnet-4-5", "anthropic", NOW)


def test_openai_cached_input(catalog):
    u = _usage(2_000, 100, cr=1_500)
    cost = catalog.price("openai", "gpt-4o", u, NOW)
    _assert_parts(cost, inp="0.00125", out="0.001", cr="0.001875")
    _check_against_calc_price(cost, u, "gpt-4o", "openai", NOW)


def test_reasoning_tokens_at_output_rate(catalog):
    u = _usage(1_000, 3_000, rs=2_500)  # o3 since 2025-06-10: $2 in, $8 out
    cost = catalog.price("openai", "o3", u, NOW)
    _assert_parts(cost, inp="0.002", out="0.024")
    _check_against_calc_price(cost, u, "o3", "openai", NOW)


def test_separate_reasoning_rate(catalog):
    u = _usage(1_000, 3_000, rs=2_500)  # sonar-deep-research: $2 in, $8 out, $3 reasoning
    cost = catalog.price("perplexity", "sonar-deep-research", u, NOW)
    _assert_parts(cost, inp="0.002", out=str((500 * 8 + 2_500 * 3) / M))


def test_gemini_long_context_tier(catalog):
    short = _usage(100_000, 1_000)
    long = _usage(250_000, 1_000)  # above 200k: all tokens at the tier rate
    c_short = catalog.price("gcp.gemini", "gemini-2.5-pro", short, NOW)
    c_long = catalog.price("gcp.vertex_ai", "gemini-2.5-pro", long, NOW)
    _assert_parts(c_short, inp="0.125", out="0.01")
    _assert_parts(c_long, inp="0.625", out="0.015")
    _check_against_calc_price(c_short, short, "gemini-2.5-pro", "google", NOW)
    _check_against_calc_price(c_long, long, "gemini-2.5-pro", "google", NOW)


def test_price_change_across_dates(catalog):
    u = _usage(1_000_000, 1_000_000)
    before = datetime(2025, 6, 1, tzinfo=UTC)
    after = datetime(2025, 6, 20, tzinfo=UTC)
    c_before = catalog.price("openai", "o3", u, before)
    c_after = catalog.price("openai", "o3", u, after)
    assert c_before.total == Decimal(50)  # $10 + $40
    assert c_after.total == Decimal(10)  # $2 + $8 from 2025-06-10
    assert "(2025-06-10..)" in c_after.source
    _check_against_calc_price(c_before, u, "o3", "openai", before)
    _check_against_calc_price(c_after, u, "o3", "openai", after)


def test_embedding(catalog):
    u = _usage(1_000, 0)
    cost = catalog.price("openai", "text-embedding-3-small", u, NOW)
    _assert_parts(cost, inp="0.00002", out="0")
    _check_against_calc_price(cost, u, "text-embedding-3-small", "openai", NOW)


def test_unknown_model_is_unpriced_never_zero(catalog):
    cost = catalog.price("openai", "gpt-nonexistent-9", _usage(10, 10), NOW)
    assert cost.status == "unpriced"
    assert (cost.input, cost.output, cost.cache_read, cost.cache_write, cost.total) == (None,) * 5
    assert "gpt-nonexistent-9" in cost.source
    assert catalog.price("", "", _usage(1, 1), NOW).status == "unpriced"
    assert catalog.price("self-hosted", "my-model", _usage(1, 1), NOW).status == "unpriced"


def test_cache_hit_costs_zero(catalog):
    cost = catalog.price("openai", "gpt-4o", _usage(10, 10), NOW, cache_hit=True)
    assert cost.status == "cache_hit"
    assert cost.total == 0


@pytest.mark.parametrize(
    ("otel", "catalog_id"),
    [
        ("gcp.gemini", "google"),
        ("gcp.vertex_ai", "google"),
        ("aws.bedrock", "aws"),
        ("azure.ai.openai", "azure"),
        ("x_ai", "x-ai"),
        ("mistral_ai", "mistral"),
        ("anthropic", "anthropic"),
        ("openai", "openai"),
        ("deepseek", "deepseek"),
        # LangChain's names (`ls_provider`, which LangSmith exports as langsmith.metadata.ls_provider)
        ("amazon_bedrock", "aws"),
        ("google_vertexai", "google"),
        ("google_genai", "google"),
        ("nonsense", None),
        ("", None),
    ],
)
def test_provider_mapping(otel, catalog_id):
    assert catalog_provider(otel) == catalog_id


def test_bedrock_and_azure_resolve(catalog):
    u = _usage(1_000, 1_000)
    assert (
        catalog.price("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", u, NOW).status == "priced"
    )
    assert catalog.price("azure.ai.openai", "gpt-4o", u, NOW).status == "priced"


def test_override_and_validity_window():
    catalog = PriceCatalog(TESTDATA / "prices.yaml")
    u = _usage(1_000_000, 1_000_000, cr=500_000)
    h1 = catalog.price("openai", "gpt-4o", u, datetime(2026, 3, 1, tzinfo=UTC))
    h2 = catalog.price("openai", "gpt-4o", u, datetime(2026, 9, 1, tzinfo=UTC))
    before = catalog.price("openai", "gpt-4o", u, datetime(2025, 12, 31, 23, 59, tzinfo=UTC))
    assert h1.source == "prices.yaml#gpt-4o-negotiated-h1"
    _assert_parts(h1, inp="1.0", out="8", cr="0.5")
    assert h2.source == "prices.yaml#gpt-4o-negotiated-h2"
    _assert_parts(h2, inp="0.75", out="6", cr="0.375")
    assert before.source.startswith("genai-prices")  # outside every window: the catalog
    llama = catalog.price("self-hosted", "Acme/Llama-70B", u, NOW)
    _assert_parts(llama, inp="0.4", out="1.2")  # no cache rate: cache tokens at the input rate
    assert catalog.price("openai", "acme/llama-70b", u, NOW).status == "unpriced"  # provider must match


def test_invalid_overrides_list_every_error():
    with pytest.raises(PriceConfigError) as info:
        PriceCatalog(TESTDATA / "prices_invalid.yaml")
    errors = info.value.errors
    expected = [
        "models[0].source: required",
        "models[1].prices.input_mtok: must be a decimal string",
        "models[1].prices.outptu_mtok: unknown price",
        "models[2].checked: must be a date",
        "models[2].until: must be after from",
        "models[2].prices.input_mtok: must not be negative",
        "models[3].color: unknown key",
        "models[3].model: must be a model name or a non-empty list",
        "models[4]: must be a mapping",
    ]
    for prefix in expected:
        assert any(e.startswith(prefix) for e in errors), (prefix, errors)
    assert len(errors) == len(expected)
    assert "prices_invalid.yaml" in str(info.value)


def test_missing_or_unreadable_override_file(tmp_path):
    with pytest.raises(PriceConfigError, match="cannot read"):
        PriceCatalog(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [")
    with pytest.raises(PriceConfigError, match="cannot read"):
        PriceCatalog(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(PriceConfigError, match="models: must be a list"):
        PriceCatalog(empty)


def test_unit_prices_are_cached_objects(catalog):
    a = catalog.unit_prices("openai", "gpt-4o", NOW)
    b = catalog.unit_prices("openai", "gpt-4o", NOW)
    assert a is b
    assert not isinstance(a, str)
    assert a.input_mtok == Decimal("2.5")


def test_threads_price_consistently(catalog):
    u = _usage(10_000, 500, cr=4_000, cw=1_000)
    results: list[Decimal | None] = []

    def work():
        for _ in range(200):
            results.append(catalog.price("anthropic", "claude-sonnet-4-5", u, NOW).total)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {Decimal("0.02745")}


_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_reasoning_mtok",
    "cache_write_1h_mtok",
)


def _random_rate(rng: random.Random, places: int) -> Decimal | None:
    """None, or a per-million rate with exactly `places` decimals (the last one non-zero)."""
    if rng.random() < 0.15:
        return None
    return Decimal(rng.randint(0, 10**7) * 10 + rng.randint(1, 9)).scaleb(-places)


def _random_prices(rng: random.Random, places: int) -> UnitPrices:
    rates = {key: _random_rate(rng, places) for key in _KEYS}
    tiers = {}
    if rng.random() < 0.3:
        start = rng.randint(1, 300_000)
        for key in _KEYS:
            if rates[key] is not None and rng.random() < 0.7:
                tiers[key] = ((start, _random_rate(rng, places) or Decimal(0)),)
    return UnitPrices("p", "m", "test", **rates, tiers=tiers)  # type: ignore[arg-type]


def _oracle(up: UnitPrices, n: tuple[int, ...], n_1h: int = 0) -> tuple[Decimal, ...] | None:
    """The module's rule written out in Decimal, independently of the implementation: the four
    components and the total, then the one-hour part of the cache writes."""
    n_in, n_out, n_cr, n_cw, n_rs = n
    r_in, r_out, r_cr, r_cw, r_rs, r_1h = (up.rate(key, n_in) for key in _KEYS)
    q = lambda d: d.quantize(COST_QUANTUM)  # noqa: E731 - half-even is the default rounding
    uncached, plain_out = n_in, n_out
    cache_read = cache_write = one_hour = reasoning = Decimal(0)
    if r_cr is not None:
        uncached -= n_cr
        cache_read = n_cr * r_cr.scaleb(-6)
    if r_cw is not None:
        if n_1h and r_1h is None:
            return None  # one-hour writes without a one-hour rate: never at the five-minute rate
        uncached -= n_cw
        one_hour = n_1h * r_1h.scaleb(-6) if r_1h is not None else Decimal(0)
        cache_write = (n_cw - n_1h) * r_cw.scaleb(-6) + one_hour
    elif r_1h is not None:
        uncached -= n_1h
        cache_write = one_hour = n_1h * r_1h.scaleb(-6)
    if r_rs is not None:
        plain_out -= n_rs
        reasoning = n_rs * r_rs.scaleb(-6)
    if (uncached and r_in is None) or (plain_out and r_out is None):
        return None
    inp = q(uncached * r_in.scaleb(-6)) if r_in is not None else q(Decimal(0))
    out = q((plain_out * r_out.scaleb(-6) if r_out is not None else Decimal(0)) + reasoning)
    parts = (inp, out, q(cache_read), q(cache_write))
    return (*parts, sum(parts, Decimal(0)), q(one_hour))


@pytest.mark.parametrize("places", [0, 2, 6, 7, 9])
def test_integer_path_equals_decimal_path(places):
    """Rates with <= 6 decimals per million take integer pico-dollars; the result is the exact Decimal."""
    rng = random.Random(places)
    for _ in range(1500):
        up = _random_prices(rng, places)
        has_rate = any(getattr(up, key) is not None for key in _KEYS)
        assert (up._pico is not None) == (places <= 6 or not has_rate)
        n_in = rng.choice([0, 1, rng.randint(0, 10**6), rng.randint(0, MAX_TOKENS)])
        n_cr, n_cw = rng.randint(0, n_in // 2), rng.randint(0, n_in // 3)
        n_out = rng.choice([0, rng.randint(0, 10**5), rng.randint(0, MAX_TOKENS)])
        n = (n_in, n_out, n_cr, n_cw, rng.randint(0, n_out))
        split = rng.choice([None, 0, rng.randint(0, n_cw)])  # one-hour cache writes, when split
        usage = Usage(*n, present=True, cache_write_1h_tokens=split)
        quote = up.quote(usage)
        assert quote == up._quote_decimal(*n, split)  # the integer path against the Decimal path
        cost = up.cost(usage)
        expected = _oracle(up, n, split or 0)
        if expected is None:
            assert quote.picos is None and cost.status == "unpriced" and cost.total is None
            continue
        got = (cost.input, cost.output, cost.cache_read, cost.cache_write, cost.total)
        assert got == expected[:5]
        assert all(d.as_tuple().exponent == -12 for d in got)  # type: ignore[union-attr]
        assert quote.picos == tuple(int(d.scaleb(12)) for d in expected[:5])
        assert cost.cache_write_1h == (None if split is None else expected[5])


def test_out_of_range_counts_take_the_decimal_path():
    up = UnitPrices("p", "m", "test", input_mtok=Decimal("2.5"), output_mtok=Decimal("10"))
    for n in [(-5, 0, 0, 0, 0), (MAX_TOKENS + 1, 3, 0, 0, 0), (10, 10**15, 0, 0, 0)]:
        assert up.quote(Usage(*n, present=True)) == up._quote_decimal(*n)
        assert up.cost(Usage(*n, present=True)).total == _oracle(up, n)[4]  # type: ignore[index]


def test_catalog_quote_follows_price_periods_and_overrides():
    """The hot path caches time-independent prices only: dated prices and overrides still apply."""
    catalog = PriceCatalog(TESTDATA / "prices.yaml")
    n = Usage(1_000_000, 1_000_000, 0, 0, 0, present=True)
    ns = lambda d: int(d.timestamp() * 10**9)  # noqa: E731
    for model, provider, at in [
        ("o3", "openai", datetime(2025, 6, 1, tzinfo=UTC)),
        ("o3", "openai", datetime(2025, 7, 1, tzinfo=UTC)),
        ("gpt-4o", "openai", datetime(2026, 3, 1, tzinfo=UTC)),
        ("gpt-4o", "openai", datetime(2026, 9, 1, tzinfo=UTC)),
        ("gpt-4o", "openai", datetime(2025, 3, 1, tzinfo=UTC)),
        ("gpt-4o-mini", "openai", NOW),
        ("acme/llama-70b", "self-hosted", NOW),  # an override without a window: cached
        ("acme/llama-70b", "openai", NOW),  # named by an override that does not match this provider
        ("no-such-model", "openai", NOW),
        ("", "openai", NOW),
    ]:
        for _ in range(2):  # the second call may come from the cache
            quote = catalog.quote(provider, model, n, ns(at))
            assert Cost.of_quote(quote) == catalog.price(provider, model, n, at)
    assert catalog.quote("openai", "gpt-4o", n, None, cache_hit=True)[:2] == (
        "cache_hit",
        "cache hit: no model call",
    )


def test_context_window_is_the_catalogs_or_none() -> None:
    from tokenbook.genai.pricing.catalog import PriceCatalog as _Catalog

    catalog = _Catalog()
    assert catalog.context_window("openai", "gpt-4o") == 128000
    assert catalog.context_window("openai", "no-such-model") is None
    assert catalog.context_window("openai", "") is None
