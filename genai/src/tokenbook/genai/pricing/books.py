"""Price books: what each tenant is billed, for chargeback and resale, from validated YAML.

The list price of a call (the catalog's, or an override's) stays its cost (``total_cost``, FOCUS
``ListCost``). A tenant's price book turns it into the billed cost (``billed_cost``, FOCUS
``BilledCost``): a markup or a discount on the list price, or prices of its own per model. File
shape::

    books:
      - id: acme-resale                 # required, unique: rows cite "<file name>#<id>"
        tenants: [acme, acme-eu]        # required: tenant IDs, or "*" for every tenant without a book
        source: "Reseller agreement 2026, schedule B"   # required: where the terms come from
        checked: 2026-01-05             # required: date the terms were last checked
        currency: USD                   # optional, default USD: the currency of `prices` entries
        entries:                        # required: tried in file order, the first that matches bills
          - id: gpt4o-contract          # required, unique in the book: rows cite it
            model: gpt-4o               # optional: a name or a list of names; absent = every model
            provider: openai            # optional: OTel or catalog provider name; absent = any
            service_tier: flex          # optional: only calls of this tier; absent = any tier
            from: 2026-01-01            # optional: in force from (inclusive), date or ISO datetime (UTC)
            until: 2026-07-01           # optional: in force until (exclusive)
            prices:                     # per million tokens (the overrides' price keys); needs `model`
              input_mtok: "2.00"
              output_mtok: "8.00"
          - id: markup
            markup_percent: "20"        # +20 % on the list price; "-15" is a 15 % discount

Each entry has either ``markup_percent`` (a decimal string from -100 to 1000) or ``prices``. Floats are
rejected (quote them). Every problem is reported at once in `PriceConfigError`, each with its key path
(``books[0].entries[1].markup_percent: ...``); a tenant named by two books, or two ``"*"`` books, is a
problem.

Billing rule (`PriceBooks.bill`), per call:

* Only a priced call is billed through a book; an unpriced call stays unpriced (its billed cost is NULL,
  never 0) and a cache hit costs 0.
* The tenant's book is the one naming it, else the ``"*"`` book, else none (billed = list price). The
  first entry of the book that matches the call's model, provider, service tier and start time bills
  it; an entry whose ``prices`` cannot price the call (another currency, or a rate the call needs is
  missing) is skipped. When none matches, the billed cost is the list price, and the row still names the
  book (with no entry).
* ``markup_percent`` p: each cost component c (input, output, cache read, cache write, and the one-hour
  part of the cache writes) is billed ``c x (100 + p) / 100``, rounded half-even once, to the ledger's
  quantum (1e-12); ``prices``: the components are computed from the entry's rates by the list-price rule
  (`tokenbook.genai.pricing.rates`), which rounds each component once the same way. Either way the
  billed total is exactly the sum of the billed components.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar, Final, NamedTuple, Self

import yaml

from tokenbook.genai.billing import STATUS_PRICED, Picos
from tokenbook.genai.configspec import Report, items, load, optional_section, setting, type_name
from tokenbook.genai.pricing.fields import (
    PriceConfigError,
    anything,
    currency_code,
    day,
    decimal_value,
    instant,
    model_names,
    provider_key,
    provider_name,
    text,
    tier_name,
)
from tokenbook.genai.pricing.overrides import OverridePrices
from tokenbook.genai.pricing.rates import Quote, UnitPrices
from tokenbook.genai.pricing.tiers import STANDARD
from tokenbook.genai.usage import Usage
from tokenbook.genai.yamlfiles import read_yaml

__all__ = [
    "ANY_TENANT",
    "Billing",
    "BookEntry",
    "BooksFile",
    "LoadedBook",
    "LoadedEntry",
    "PriceBook",
    "PriceBooks",
    "load_books",
    "parse_books",
]

#: The tenants of a book that bills every tenant without a book of its own.
ANY_TENANT: Final = "*"
_MIN_PERCENT: Final = Decimal(-100)
_MAX_PERCENT: Final = Decimal(1000)


# --- parsers ----------------------------------------------------------------------------------------


@type_name("decimal string")
def _percent(v: Any) -> Decimal:
    value = decimal_value(v)
    if value is None:
        raise ValueError(
            'must be a decimal string such as "20" or "-12.5" (quote it: YAML floats are inexact)'
        )
    if not _MIN_PERCENT <= value <= _MAX_PERCENT:
        raise ValueError(f"must be from {_MIN_PERCENT} (free) to {_MAX_PERCENT}, got {value}")
    return value


@type_name("tenant ID or list of IDs")
def _tenants(v: Any) -> frozenset[str]:
    names = [v] if isinstance(v, str) else v
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError('must be a tenant ID, a non-empty list of IDs, or "*" (every other tenant)')
    return frozenset(n.strip() for n in names)


# --- the file format --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BookEntry:
    """One entry of a book's ``entries``: which calls it bills, when, and how."""

    id: str = setting("", parse=text, required=True, doc="Unique in the book; rows cite it.")
    model: frozenset[str] | None = setting(
        None, parse=model_names, doc="The model name(s) it bills (case-insensitive); absent: every model."
    )
    provider: str | None = setting(
        None, parse=provider_name, doc="OTel or catalog provider name; absent: any provider."
    )
    service_tier: str | None = setting(
        None, parse=tier_name, doc="Only calls of this service tier (`flex`, `batch`, ...); absent: any tier."
    )
    valid_from: datetime | None = setting(
        None, key="from", parse=instant, doc="In force from (inclusive); a date is midnight UTC."
    )
    valid_until: datetime | None = setting(
        None, key="until", parse=instant, doc="In force until (exclusive); a date is midnight UTC."
    )
    markup_percent: Decimal | None = setting(
        None,
        parse=_percent,
        doc='Percent added to the list price (`"20"`); negative for a discount (`"-15"`); -100 to 1000.',
    )
    prices: OverridePrices | None = optional_section(
        OverridePrices,
        doc="Prices of its own per million tokens, in the book's currency (the overrides' price keys); "
        "needs `model`.",
    )

    def check(self, report: Report) -> Self:
        """Exactly one of markup_percent and prices; prices name their models; the period is not empty."""
        both_or_none = (self.markup_percent is None) == (self.prices is None)
        if report.present and both_or_none and report.ok("markup_percent") and report.ok("prices"):
            report.problem("", "needs exactly one of markup_percent and prices")
        if self.prices is not None and self.model is None and report.ok("model"):
            report.problem("model", "required with prices (the model name(s) the prices are for)")
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            report.problem("until", f"must be after from ({self.valid_from.isoformat()})")
        return self


@dataclass(frozen=True, slots=True)
class PriceBook:
    """One book of ``books``: the tenants it bills and its entries."""

    id: str = setting("", parse=text, required=True, doc="Unique in the file; rows cite `<file name>#<id>`.")
    tenants: frozenset[str] = setting(
        frozenset(),
        parse=_tenants,
        required='a tenant ID, a list of IDs, or "*"',
        doc='The tenant IDs it bills; `"*"`: every tenant that no other book names.',
    )
    source: str = setting("", parse=text, required=True, doc="Where the terms come from (a contract, ...).")
    checked: date = setting(
        date.min,
        parse=day,
        required="the date the terms were last checked, e.g. 2026-01-05",
        doc="When the terms were last checked.",
    )
    currency: str = setting("USD", parse=currency_code, doc="The currency of its `prices` entries.")
    entries: tuple[BookEntry, ...] = items(
        BookEntry, doc="Tried in file order: the first that matches a call bills it (required)."
    )

    def check(self, report: Report) -> Self:
        """At least one entry; entry IDs are unique in the book."""
        given = report.raw.get("entries")
        if (not isinstance(given, list) or not given) and report.ok("entries"):
            report.problem("entries", "required: a non-empty list of entries")
        seen: set[str] = set()
        for i, entry in zip(report.item_indices("entries"), self.entries, strict=True):
            if report.ok(f"entries[{i}]"):
                if entry.id in seen:
                    report.problem(f"entries[{i}].id", f"duplicate id {entry.id!r} in this book")
                seen.add(entry.id)
        return self


@dataclass(frozen=True, slots=True)
class BooksFile:
    """A price books file."""

    config_unknown_key: ClassVar[str] = "unknown key (allowed: {known})"

    version: Any = setting(None, parse=anything, doc="Free-form format version, not interpreted.")
    books: tuple[PriceBook, ...] = items(PriceBook, doc="The price books (required).")

    def check(self, report: Report) -> Self:
        """Book IDs are unique; a tenant is named by one book at most; one ``"*"`` book at most."""
        ids: set[str] = set()
        owners: dict[str, str] = {}
        for i, book in zip(report.item_indices("books"), self.books, strict=True):
            if not report.ok(f"books[{i}]"):
                continue
            if book.id in ids:
                report.problem(f"books[{i}].id", f"duplicate id {book.id!r}")
            ids.add(book.id)
            for tenant in sorted(book.tenants):
                if tenant in owners:
                    who = "the every-tenant book" if tenant == ANY_TENANT else f"tenant {tenant!r}"
                    report.problem(f"books[{i}].tenants", f"{who} is already in book {owners[tenant]!r}")
                owners.setdefault(tenant, book.id)
        return self


# --- reading a file --------------------------------------------------------------------------------


def load_books(path: str | Path) -> tuple[PriceBook, ...]:
    """Read and validate a price books file; raises `PriceConfigError` (also for unreadable YAML)."""
    path = Path(path)
    try:
        data = read_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise PriceConfigError(str(path), [f"(file): cannot read: {exc}"], what="price books") from exc
    return parse_books(data, name=path.name)


def parse_books(data: object, *, name: str = "books.yaml") -> tuple[PriceBook, ...]:
    """Validate parsed YAML; `name` is the file name the errors cite."""
    if not isinstance(data, Mapping) or not isinstance(data.get("books"), list):
        raise PriceConfigError(name, ["books: must be a list of price books"], what="price books")
    spec, errors = load(BooksFile, data)
    if errors:
        raise PriceConfigError(name, errors, what="price books")
    return spec.books


# --- billing ----------------------------------------------------------------------------------------


class Billing(NamedTuple):
    """What a call is billed: the components and total (None when unpriced), the one-hour part of the
    cache writes (None when not split), and the book and entry that decided it ("" for none)."""

    picos: Picos | None
    cache_write_1h: int | None
    book: str
    entry: str


@dataclass(frozen=True, slots=True)
class LoadedEntry:
    """One validated entry as billing uses it."""

    id: str
    models: frozenset[str] | None  # lower-cased; None = every model
    provider: str | None  # catalog id (or lower-cased name when unmapped); None = any
    service_tier: str | None  # None = any tier
    valid_from: datetime | None
    valid_until: datetime | None
    factor: Fraction | None  # (100 + markup_percent) / 100, for a markup entry
    prices: UnitPrices | None  # for a prices entry

    @classmethod
    def of(cls, e: BookEntry, cite: str, currency: str) -> LoadedEntry:
        """The entry `e` of a book cited as `cite`, whose prices are in `currency`."""
        prices = None
        if e.prices is not None:
            p = e.prices
            prices = UnitPrices(
                provider=str(e.provider or "*"),
                model=sorted(e.model or ("*",))[0],
                source=f"{cite}/{e.id}",
                currency=currency,
                input_mtok=p.input_mtok,
                output_mtok=p.output_mtok,
                cache_read_mtok=p.cache_read_mtok,
                cache_write_mtok=p.cache_write_mtok,
                output_reasoning_mtok=p.output_reasoning_mtok,
                cache_write_1h_mtok=p.cache_write_1h_mtok,
            )
        factor = None if e.markup_percent is None else Fraction(100 + e.markup_percent) / 100
        provider = provider_key(e.provider) if e.provider is not None else None
        return cls(e.id, e.model, provider, e.service_tier, e.valid_from, e.valid_until, factor, prices)

    def matches(self, provider: str, model: str, tier: str, at: datetime) -> bool:
        """Whether this entry applies to a call of `model` by `provider` at `tier` started at `at`."""
        if self.models is not None and model.lower() not in self.models:
            return False
        if self.provider is not None and provider_key(provider) != self.provider:
            return False
        if self.service_tier is not None and (tier or STANDARD) != self.service_tier:
            return False
        if self.valid_from is not None and at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until


@dataclass(frozen=True, slots=True)
class LoadedBook:
    """One validated book: its citation (``<file>#<id>``), its terms and its entries."""

    cite: str
    source: str
    checked: date
    currency: str
    tenants: frozenset[str]
    entries: tuple[LoadedEntry, ...]


def _scaled(picos: int, factor: Fraction) -> int:
    """``picos x factor`` rounded half-even to a whole pico-unit (exact integer arithmetic)."""
    quotient, rest = divmod(picos * factor.numerator, factor.denominator)
    twice = 2 * rest
    if twice > factor.denominator or (twice == factor.denominator and quotient % 2):
        quotient += 1
    return quotient


class PriceBooks:
    """The tenants' price books of one file (or none: every call billed at its list price). Immutable,
    so thread-safe; `bill` never raises."""

    def __init__(self, path: str | Path | None = None) -> None:
        """`path`: a price books file (module docstring); a bad file raises `PriceConfigError`."""
        books: list[LoadedBook] = []
        if path is not None:
            name = Path(path).name
            for b in load_books(path):
                cite = f"{name}#{b.id}"
                entries = tuple(LoadedEntry.of(e, cite, b.currency) for e in b.entries)
                books.append(LoadedBook(cite, b.source, b.checked, b.currency, b.tenants, entries))
        self.books: tuple[LoadedBook, ...] = tuple(books)
        self._by_tenant = {t: b for b in books for t in b.tenants}

    def __bool__(self) -> bool:
        return bool(self.books)

    def book_of(self, tenant: str) -> LoadedBook | None:
        """The book that bills `tenant`: the one naming it, else the ``"*"`` book, else None."""
        return self._by_tenant.get(tenant) or self._by_tenant.get(ANY_TENANT)

    def bill(
        self, tenant: str, provider: str, model: str, tier: str, at: datetime, usage: Usage, quote: Quote
    ) -> Billing:
        """What `tenant` is billed for a call whose list price is `quote` (module rule; `at` aware)."""
        book = self.book_of(tenant) if quote.status == STATUS_PRICED else None
        if book is None or quote.picos is None:
            return Billing(quote.picos, quote.cache_write_1h, "", "")
        for entry in book.entries:
            if not entry.matches(provider, model, tier, at):
                continue
            if entry.factor is not None:
                f = entry.factor
                i, o, r, w, _ = quote.picos
                picos = Picos.of_parts(_scaled(i, f), _scaled(o, f), _scaled(r, f), _scaled(w, f))
                one_hour = None if quote.cache_write_1h is None else _scaled(quote.cache_write_1h, f)
                return Billing(picos, one_hour, book.cite, entry.id)
            assert entry.prices is not None
            if entry.prices.currency != quote.currency:
                continue
            own = entry.prices.quote(usage)
            if own.picos is None:
                continue
            return Billing(own.picos, own.cache_write_1h, book.cite, entry.id)
        return Billing(quote.picos, quote.cache_write_1h, book.cite, "")
