"""Local price overrides (negotiated or self-hosted prices) from YAML, validated.

File shape::

    models:
      - id: acme-llama-70b              # required, unique: prices cite "<file name>#<id>"
        model: llama-3.1-70b-instruct   # required: a model name or a list of names (case-insensitive)
        provider: self-hosted           # optional: OTel or catalog provider name; absent = any provider
        source: "Acme contract 2026-03" # required: where the price comes from
        checked: 2026-10-01             # required: date the price was last checked
        from: 2026-01-01                # optional: in force from (inclusive), date or ISO datetime (UTC)
        until: 2026-07-01               # optional: in force until (exclusive)
        currency: USD                   # optional, default USD
        service_tier: flex              # optional: prices this tier's calls; absent = the standard tier
        prices:                         # per million tokens, as decimal strings (or integers)
          input_mtok: "0.50"
          output_mtok: "1.50"
          cache_read_mtok: "0.05"       # optional
          cache_write_mtok: "0.60"      # optional (five-minute cache writes)
          cache_write_1h_mtok: "1.00"   # optional (one-hour cache writes)
          output_reasoning_mtok: "2"    # optional

Floats are rejected (``0.5`` unquoted would be a binary float: quote it). Every problem is reported at
once in `PriceConfigError`, each naming its key path (``models[2].prices.input_mtok: ...``).

The format is declared with `tokenbook.genai.configspec` (`OverridesFile`, `PriceOverride`,
`OverridePrices`); the configuration reference documents it from these classes. `load_overrides`
returns the validated entries; `tokenbook.genai.pricing.catalog` turns them into unit prices.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Self

import yaml

from tokenbook.genai.configspec import Report, items, load, section, setting
from tokenbook.genai.pricing.fields import (
    PriceConfigError,
    anything,
    currency_code,
    day,
    instant,
    model_names,
    provider_key,
    provider_name,
    rate,
    text,
    tier_name,
)
from tokenbook.genai.pricing.rates import UnitPrices
from tokenbook.genai.pricing.tiers import STANDARD
from tokenbook.genai.yamlfiles import read_yaml

__all__ = [
    "OverrideEntry",
    "OverridePrices",
    "OverridesFile",
    "PriceConfigError",
    "PriceOverride",
    "load_entries",
    "load_overrides",
    "parse_overrides",
]


# --- the file format --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OverridePrices:
    """An entry's ``prices``: per million tokens, as decimal strings (or integers)."""

    config_unknown_key: ClassVar[str] = "unknown price (allowed: {known})"

    input_mtok: Decimal | None = setting(None, parse=rate, doc="Input tokens (cache tokens excluded).")
    output_mtok: Decimal | None = setting(None, parse=rate, doc="Output tokens.")
    cache_read_mtok: Decimal | None = setting(
        None, parse=rate, doc="Cache-read input tokens; absent: at the input rate."
    )
    cache_write_mtok: Decimal | None = setting(
        None, parse=rate, doc="Cache-write input tokens; absent: at the input rate."
    )
    output_reasoning_mtok: Decimal | None = setting(
        None, parse=rate, doc="Reasoning output tokens; absent: at the output rate."
    )
    cache_write_1h_mtok: Decimal | None = setting(
        None,
        parse=rate,
        doc="One-hour cache-write input tokens; absent: a call with one-hour cache writes is unpriced "
        "(when `cache_write_mtok` is given).",
    )

    def check(self, report: Report) -> Self:
        """Input or output is priced."""
        if report.present and report.ok() and self.input_mtok is None and self.output_mtok is None:
            report.problem("", "needs at least input_mtok or output_mtok")
        return self


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """One entry of ``models``: which calls it prices, when, at what rates."""

    id: str = setting(
        "", parse=text, required=True, doc="Unique in the file; prices cite `<file name>#<id>`."
    )
    model: frozenset[str] = setting(
        frozenset(),
        parse=model_names,
        required="a model name or a list of names",
        doc="The model name(s) it prices (case-insensitive).",
    )
    provider: str | None = setting(
        None, parse=provider_name, doc="OTel or catalog provider name; absent: any provider."
    )
    source: str = setting("", parse=text, required=True, doc="Where the price comes from.")
    checked: date = setting(
        date.min,
        parse=day,
        required="the date the price was last checked, e.g. 2026-10-01",
        doc="When the price was last checked.",
    )
    valid_from: datetime | None = setting(
        None, key="from", parse=instant, doc="In force from (inclusive); a date is midnight UTC."
    )
    valid_until: datetime | None = setting(
        None, key="until", parse=instant, doc="In force until (exclusive); a date is midnight UTC."
    )
    currency: str = setting("USD", parse=currency_code, doc="The currency of the prices.")
    service_tier: str | None = setting(
        None,
        parse=tier_name,
        doc="The service tier it prices (`flex`, `priority`, `batch`, ...); absent: calls of the standard "
        "tier and calls that name no tier.",
    )
    prices: OverridePrices = section(OverridePrices, doc="The rates (required).")

    def check(self, report: Report) -> Self:
        """Prices are given; the period is not empty."""
        if report.raw.get("prices") is None:
            report.problem(
                "prices", "required mapping of per-million-token prices (input_mtok, output_mtok, ...)"
            )
        if self.valid_from and self.valid_until and self.valid_until <= self.valid_from:
            report.problem("until", f"must be after from ({self.valid_from.isoformat()})")
        return self


@dataclass(frozen=True, slots=True)
class OverridesFile:
    """A price overrides file."""

    config_unknown_key: ClassVar[str] = "unknown key (allowed: {known})"

    version: Any = setting(None, parse=anything, doc="Free-form format version, not interpreted.")
    models: tuple[PriceOverride, ...] = items(PriceOverride, doc="The price entries (required).")

    def check(self, report: Report) -> Self:
        """Entry ids are unique (among valid entries)."""
        seen: set[str] = set()
        for i, entry in zip(report.item_indices("models"), self.models, strict=True):
            if not report.ok(f"models[{i}]"):
                continue
            if entry.id in seen:
                report.problem(f"models[{i}].id", f"duplicate id {entry.id!r}")
            seen.add(entry.id)
        return self


# --- reading a file --------------------------------------------------------------------------------


def load_overrides(path: str | Path) -> tuple[PriceOverride, ...]:
    """Read and validate an overrides file; raises `PriceConfigError` (also for unreadable YAML)."""
    path = Path(path)
    try:
        data = read_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise PriceConfigError(str(path), [f"(file): cannot read: {exc}"]) from exc
    return parse_overrides(data, name=path.name)


def parse_overrides(data: object, *, name: str = "overrides.yaml") -> tuple[PriceOverride, ...]:
    """Validate parsed YAML; `name` is the file name the errors cite."""
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), list):
        raise PriceConfigError(name, ["models: must be a list of price entries"])
    spec, errors = load(OverridesFile, data)
    if errors:
        raise PriceConfigError(name, errors)
    return spec.models


@dataclass(frozen=True, slots=True)
class OverrideEntry:
    """One validated override as the catalog uses it: which calls it matches, when, its unit prices."""

    id: str
    models: frozenset[str]  # lower-cased
    provider: str | None  # catalog id (or lower-cased name when unmapped); None = any
    valid_from: datetime | None
    valid_until: datetime | None
    source: str  # the entry's `source` text: where the negotiated/self-hosted price comes from
    checked: date
    prices: UnitPrices
    service_tier: str = STANDARD  # the tier it prices (the standard tier also prices calls naming none)

    @classmethod
    def of(cls, o: PriceOverride, file_name: str) -> OverrideEntry:
        """The entry of a validated override of file `file_name` (its prices cite ``<file>#<id>``)."""
        p = o.prices
        prices = UnitPrices(
            provider=str(o.provider or "*"),
            model=sorted(o.model)[0],
            source=f"{file_name}#{o.id}",
            currency=o.currency,
            input_mtok=p.input_mtok,
            output_mtok=p.output_mtok,
            cache_read_mtok=p.cache_read_mtok,
            cache_write_mtok=p.cache_write_mtok,
            output_reasoning_mtok=p.output_reasoning_mtok,
            cache_write_1h_mtok=p.cache_write_1h_mtok,
        )
        provider = provider_key(o.provider) if o.provider is not None else None
        tier = o.service_tier or STANDARD
        return cls(o.id, o.model, provider, o.valid_from, o.valid_until, o.source, o.checked, prices, tier)

    def matches(self, provider: str, model: str, at: datetime, tier: str = "") -> bool:
        """Whether this entry prices `model` of `provider` for a call of service tier `tier` (``""``:
        none named, the standard tier) started at `at` (aware)."""
        if (tier or STANDARD) != self.service_tier or model.lower() not in self.models:
            return False
        if self.provider is not None and provider_key(provider) != self.provider:
            return False
        if self.valid_from is not None and at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until


def load_entries(path: str | Path) -> tuple[OverrideEntry, ...]:
    """The overrides of the file at `path`, ready for the catalog. Raises `PriceConfigError`."""
    return tuple(OverrideEntry.of(o, Path(path).name) for o in load_overrides(path))
