"""Price books: validated YAML (every problem with its key path) and the billing rule, exactly."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from tokenbook.genai.billing import COST_QUANTUM, Picos
from tokenbook.genai.pricing.books import PriceBooks
from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.genai.pricing.fields import PriceConfigError
from tokenbook.genai.pricing.rates import Quote
from tokenbook.genai.usage import Usage

FEB = datetime(2026, 2, 10, tzinfo=UTC)
AUG = datetime(2026, 8, 10, tzinfo=UTC)
BOOKS = """
books:
  - id: acme-resale
    tenants: [acme, acme-eu]
    source: "Reseller agreement 2026, schedule B"
    checked: 2026-01-05
    entries:
      - id: gpt4o-contract
        model: gpt-4o
        provider: openai
        from: 2026-01-01
        until: 2026-07-01
        prices: {input_mtok: "2.00", output_mtok: "8.00", cache_read_mtok: "1.00"}
      - id: flex-at-cost
        service_tier: flex
        markup_percent: "0"
      - id: markup
        markup_percent: "12.5"
  - id: everyone-else
    tenants: "*"
    source: "Internal chargeback policy"
    checked: 2026-01-05
    entries:
      - id: discount
        model: [claude-sonnet-4-5, claude-haiku-4-5]
        markup_percent: "-15"
"""


@pytest.fixture
def books(tmp_path: Path) -> PriceBooks:
    path = tmp_path / "books.yaml"
    path.write_text(BOOKS)
    return PriceBooks(path)


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


USAGE = Usage(123_457, 3_333, 50_001, 0, 0, present=True)


def _scaled(picos: int, percent: str) -> int:
    exact = Decimal(picos) * (100 + Decimal(percent)) / 100
    return int(exact.to_integral_value(ROUND_HALF_EVEN))


def test_a_markup_scales_each_component_rounded_once(books: PriceBooks, catalog: PriceCatalog) -> None:
    quote = catalog.quote("anthropic", "claude-sonnet-4-5", USAGE, int(FEB.timestamp() * 1e9))
    assert quote.picos is not None
    bill = books.bill("acme", "anthropic", "claude-sonnet-4-5", "", FEB, USAGE, quote)
    assert (bill.book, bill.entry) == ("books.yaml#acme-resale", "markup")
    expected = [_scaled(p, "12.5") for p in quote.picos[:4]]
    assert bill.picos == Picos.of_parts(*expected)
    assert bill.picos.total == sum(expected)  # the total is exactly the sum of the billed parts


def test_per_model_prices_apply_in_their_window(books: PriceBooks, catalog: PriceCatalog) -> None:
    at = int(FEB.timestamp() * 1e9)
    quote = catalog.quote("openai", "gpt-4o", USAGE, at)
    bill = books.bill("acme-eu", "openai", "gpt-4o", "", FEB, USAGE, quote)
    assert (bill.book, bill.entry) == ("books.yaml#acme-resale", "gpt4o-contract")
    fresh = USAGE.input_tokens - USAGE.cache_read_tokens
    expected = (fresh * 2 + USAGE.cache_read_tokens * 1 + USAGE.output_tokens * 8) * 10**6  # picos
    assert bill.picos is not None and bill.picos.total == expected
    later = books.bill(
        "acme", "openai", "gpt-4o", "", AUG, USAGE, catalog.quote("openai", "gpt-4o", USAGE, at)
    )
    assert later.entry == "markup"  # the contract ended on 1 July


def test_tier_entries_every_tenant_and_no_match(books: PriceBooks, catalog: PriceCatalog) -> None:
    quote = catalog.quote(
        "openai", "gpt-5", USAGE, int(datetime(2026, 11, 2, tzinfo=UTC).timestamp() * 1e9), tier="flex"
    )
    flex = books.bill("acme", "openai", "gpt-5", "flex", AUG, USAGE, quote)
    assert flex.entry == "flex-at-cost" and flex.picos == quote.picos
    claude = catalog.quote("anthropic", "claude-sonnet-4-5", USAGE, int(FEB.timestamp() * 1e9))
    other = books.bill("initech", "anthropic", "claude-sonnet-4-5", "", FEB, USAGE, claude)
    assert (other.book, other.entry) == ("books.yaml#everyone-else", "discount")
    assert other.picos is not None and claude.picos is not None and other.picos.total < claude.picos.total
    gpt = catalog.quote("openai", "gpt-4o", USAGE, int(FEB.timestamp() * 1e9))
    listed = books.bill("initech", "openai", "gpt-4o", "", FEB, USAGE, gpt)
    assert (listed.book, listed.entry, listed.picos) == ("books.yaml#everyone-else", "", gpt.picos)
    assert PriceBooks().bill("acme", "openai", "gpt-4o", "", FEB, USAGE, gpt) == (gpt.picos, None, "", "")


def test_unpriced_stays_unpriced_and_a_cache_hit_costs_nothing(books: PriceBooks) -> None:
    unpriced = Quote("unpriced", "no price for model 'mystery'", "USD", None)
    assert books.bill("acme", "acme-labs", "mystery", "", FEB, USAGE, unpriced).picos is None
    hit = Quote("cache_hit", "cache hit", "USD", Picos(0, 0, 0, 0, 0))
    bill = books.bill("acme", "openai", "gpt-4o", "", FEB, USAGE, hit)
    assert (bill.picos, bill.book) == (Picos(0, 0, 0, 0, 0), "")


def test_an_entry_that_cannot_price_the_call_is_skipped(tmp_path: Path, catalog: PriceCatalog) -> None:
    path = tmp_path / "books.yaml"
    path.write_text(
        "books:\n  - id: b\n    tenants: [acme]\n    source: s\n    checked: 2026-01-01\n    entries:\n"
        "      - id: no-1h\n        model: claude-sonnet-4-5\n"
        '        prices: {input_mtok: "2", output_mtok: "9", cache_write_mtok: "2.5"}\n'
        '      - id: rest\n        markup_percent: "10"\n'
    )
    split = Usage(5000, 100, 0, 1500, 0, present=True, cache_write_1h_tokens=500)
    quote = catalog.quote("anthropic", "claude-sonnet-4-5", split, int(FEB.timestamp() * 1e9))
    bill = PriceBooks(path).bill("acme", "anthropic", "claude-sonnet-4-5", "", FEB, split, quote)
    assert bill.entry == "rest"  # the first entry has no one-hour rate for the one-hour writes
    assert quote.cache_write_1h is not None and bill.cache_write_1h == _scaled(quote.cache_write_1h, "10")
    whole = split._replace(cache_write_1h_tokens=None)
    plain = PriceBooks(path).bill(
        "acme",
        "anthropic",
        "claude-sonnet-4-5",
        "",
        FEB,
        whole,
        catalog.quote("anthropic", "claude-sonnet-4-5", whole, None),
    )
    assert plain.entry == "no-1h" and plain.cache_write_1h is None


def test_every_problem_is_reported_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "books:\n"
        "  - id: a\n    tenants: [acme]\n    source: s\n    checked: 2026-01-01\n    entries:\n"
        "      - id: x\n        markup_percent: 20.5\n"  # a float
        '      - id: v\n        markup_percent: "5"\n        prices: {input_mtok: "1"}\n'  # both
        '      - id: y\n        prices: {input_mtok: "1"}\n'  # prices without a model
        '      - {id: dup, markup_percent: "1"}\n      - {id: dup, markup_percent: "2"}\n'
        '      - id: z\n        markup_percent: "-150"\n        from: 2026-05-01\n        until: 2026-04-01\n'
        "  - id: a\n    tenants: [acme, '*']\n    source: s\n    checked: someday\n    entries: []\n"
        "  - id: c\n    tenants: '*'\n    source: s\n    checked: 2026-01-01\n    colour: red\n"
        '    entries:\n      - {id: w, markup_percent: "1"}\n'
    )
    with pytest.raises(PriceConfigError) as info:
        PriceBooks(path)
    errors = "\n".join(info.value.errors)
    for expected in (
        "books[0].entries[0].markup_percent: must be a decimal string",
        "books[0].entries[1]: needs exactly one of markup_percent and prices",
        "books[0].entries[4].id: duplicate id 'dup' in this book",
        "books[0].entries[2].model: required with prices",
        "books[0].entries[5].markup_percent: must be from -100 (free) to 1000",
        "books[0].entries[5].until: must be after from",
        "books[1].checked: must be a date",
        "books[1].entries: required: a non-empty list of entries",
        "books[2].colour: unknown key",
    ):
        assert expected in errors, (expected, errors)
    assert "invalid price books bad.yaml" in str(info.value)
    assert info.value.what == "price books"


def test_a_tenant_in_two_books_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    book = (
        "  - id: {id}\n    tenants: {tenants}\n    source: s\n    checked: 2026-01-01\n"
        '    entries: [{{id: m, markup_percent: "1"}}]\n'
    )
    path.write_text(
        "books:\n"
        + book.format(id="a", tenants="[acme, '*']")
        + book.format(id="b", tenants="[acme]")
        + book.format(id="c", tenants="'*'")
    )
    with pytest.raises(PriceConfigError) as info:
        PriceBooks(path)
    assert info.value.errors == (
        "books[1].tenants: tenant 'acme' is already in book 'a'",
        "books[2].tenants: the every-tenant book is already in book 'a'",
    )


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PriceConfigError, match="cannot read"):
        PriceBooks(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(PriceConfigError, match="books: must be a list"):
        PriceBooks(tmp_path / "list.yaml")


def test_money_stays_at_the_ledger_quantum(books: PriceBooks, catalog: PriceCatalog) -> None:
    quote = catalog.quote("anthropic", "claude-sonnet-4-5", USAGE, int(FEB.timestamp() * 1e9))
    bill = books.bill("acme", "anthropic", "claude-sonnet-4-5", "", FEB, USAGE, quote)
    assert bill.picos is not None
    costs = bill.picos.costs()
    assert all(c is not None and c.as_tuple().exponent == -12 for c in costs)
    parts = [c for c in costs[:4] if c is not None]
    assert costs.total == sum(parts, Decimal(0)).quantize(COST_QUANTUM)
