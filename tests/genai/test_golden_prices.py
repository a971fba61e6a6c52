"""The catalog prices that the suite's expected costs are computed from.

Other tests assert exact costs (for example gpt-4o at $2.50 / $10 per million tokens). Those figures
are golden on purpose: a cost must not move silently. When a new genai-prices release changes one of
these prices, this test names the model and the rate that moved, so the failure says "the catalog
changed" instead of a cost mismatch far away. Update the table and the tests that use that model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tokenbook.genai.pricing.catalog import CATALOG_NAME, PriceCatalog
from tokenbook.genai.pricing.rates import UnitPrices

#: (provider, model, at) -> {price key: USD per million tokens}, as the suite relies on them.
GOLDEN: dict[tuple[str, str, str], dict[str, str]] = {
    ("openai", "gpt-4o", "2026-01-01"): {"input_mtok": "2.5", "output_mtok": "10", "cache_read_mtok": "1.25"},
    ("openai", "gpt-4o-mini", "2026-01-01"): {"input_mtok": "0.15", "output_mtok": "0.6"},
    ("openai", "o3", "2025-06-01"): {"input_mtok": "10", "output_mtok": "40"},
    ("openai", "o3", "2025-06-20"): {"input_mtok": "2", "output_mtok": "8"},
    ("openai", "text-embedding-3-small", "2026-01-01"): {"input_mtok": "0.02"},
    ("anthropic", "claude-sonnet-4-5", "2026-01-01"): {
        "input_mtok": "3",
        "output_mtok": "15",
        "cache_read_mtok": "0.3",
        "cache_write_mtok": "3.75",
    },
    ("google", "gemini-2.5-pro", "2026-01-01"): {"input_mtok": "1.25", "output_mtok": "10"},
}


@pytest.mark.parametrize(("provider", "model", "at"), list(GOLDEN), ids=lambda v: str(v))
def test_catalog_still_has_the_golden_price(provider: str, model: str, at: str) -> None:
    found = PriceCatalog().unit_prices(provider, model, datetime.fromisoformat(at).replace(tzinfo=UTC))
    assert isinstance(found, UnitPrices), f"{CATALOG_NAME} no longer prices {provider}/{model}: {found}"
    moved = {
        key: f"{want} -> {getattr(found, key)}"
        for key, want in GOLDEN[provider, model, at].items()
        if getattr(found, key) != Decimal(want)
    }
    assert not moved, (
        f"{CATALOG_NAME} moved the price of {provider}/{model} at {at} (USD per million tokens): {moved}. "
        "Update GOLDEN here and the expected costs of the tests that use this model."
    )
