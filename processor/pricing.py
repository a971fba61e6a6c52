"""Prices of model calls: the genai-prices catalog (offline) plus local YAML overrides.

Contract of `PriceCatalog.price`:

* Overrides are tried first (first matching entry in file order, whose validity window holds the call
  time), then the catalog, with the OTel provider name mapped to a catalog provider (`catalog_provider`).
* The price in force at the call's start time is used (genai-prices date and time-of-day constraints,
  override ``from``/``until``). Tiers follow genai-prices' threshold rule: when the inclusive input
  count is above a tier's start, that tier's rate applies to all tokens of that unit.
* Each token is priced once: ``input - cache_read - cache_write`` at the input rate, cache tokens at
  their own rates (at the input rate, inside ``input``, when the price has no cache rate, as genai-prices
  does), output at the output rate, with reasoning at ``output_reasoning_mtok`` when the price has one.
* Money is `Decimal`. Each component is rounded half-even to 12 decimal places (ClickHouse
  ``Decimal(18,12)``), and ``total`` is exactly the sum of the rounded components.
* An unknown model, or a price lacking a rate that a non-zero count needs, gives ``status="unpriced"``
  with every cost ``None`` and the reason in ``source``: never 0. A cache hit costs 0 (``cache_hit``).
* Unit prices are cached per (provider, model) and per price period, so no span calls
  ``genai_prices.calc_price``. The catalog is thread-safe and never raises from `price`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Final

import genai_prices
from genai_prices import types as gp_types
from genai_prices.data_snapshot import get_snapshot

from tokenbook.processor.overrides import OverrideEntry, load_overrides
from tokenbook.processor.usage import Usage

__all__ = [
    "CATALOG_NAME",
    "COST_QUANTUM",
    "PROVIDER_ALIASES",
    "STATUS_CACHE_HIT",
    "STATUS_PRICED",
    "STATUS_UNPRICED",
    "Cost",
    "PriceCatalog",
    "UnitPrices",
    "catalog_provider",
]

STATUS_PRICED: Final = "priced"
STATUS_UNPRICED: Final = "unpriced"
STATUS_CACHE_HIT: Final = "cache_hit"
#: Costs are rounded to this quantum (ClickHouse Decimal(18,12)).
COST_QUANTUM: Final = Decimal("1e-12")
CATALOG_NAME: Final = f"genai-prices {genai_prices.__version__}"
_ZERO: Final = Decimal(0).quantize(COST_QUANTUM)
_MAX_CACHED_MODELS: Final = 10_000

#: OTel `gen_ai.provider.name` / `gen_ai.system` values (and common spellings) -> genai-prices provider id.
PROVIDER_ALIASES: Final[Mapping[str, str]] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "aws": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure": "azure",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "together_ai": "together",
    "together": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "moonshot": "moonshotai",
}

# price key of the catalog -> field of UnitPrices
_PRICE_KEYS: Final = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_reasoning_mtok",
)


def catalog_provider(name: str) -> str | None:
    """The genai-prices provider id for an OTel (or catalog) provider name; None when unknown/empty."""
    key = name.strip().lower()
    if not key:
        return None
    if (alias := PROVIDER_ALIASES.get(key)) is not None:
        return alias
    if any(p.id == key for p in get_snapshot().providers):
        return key
    return None


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of one call. Components are None exactly when ``status == "unpriced"``."""

    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    total: Decimal | None
    currency: str  # "USD"
    status: str  # "priced" | "unpriced" | "cache_hit"
    source: str  # where the price came from; for unpriced: why

    @classmethod
    def unpriced(cls, reason: str, currency: str = "USD") -> Cost:
        return cls(None, None, None, None, None, currency, STATUS_UNPRICED, reason)


_CACHE_HIT_COST: Final = Cost(
    _ZERO, _ZERO, _ZERO, _ZERO, _ZERO, "USD", STATUS_CACHE_HIT, "cache hit: no model call"
)

#: A tier list: (start threshold on inclusive input tokens, price per million), ascending.
Tiers = tuple[tuple[int, Decimal], ...]


@dataclass(frozen=True, slots=True)
class UnitPrices:
    """Per-million-token rates in force for one model and price period, and where they came from."""

    provider: str
    model: str
    source: str
    currency: str = "USD"
    input_mtok: Decimal | None = None
    output_mtok: Decimal | None = None
    cache_read_mtok: Decimal | None = None
    cache_write_mtok: Decimal | None = None
    output_reasoning_mtok: Decimal | None = None
    #: price key -> tiers above the base rate (genai-prices TieredPrices).
    tiers: Mapping[str, Tiers] = field(default_factory=dict)

    #: Per-token rates (rate / 10^6, exact) in `_RATE_KEYS` order: base, then one tuple per tier.
    _per_token: tuple[tuple[Decimal | None, ...], tuple[tuple[int, tuple[Decimal | None, ...]], ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        base = tuple(getattr(self, key) for key in _PRICE_KEYS)
        starts = sorted({start for tiers in self.tiers.values() for start, _ in tiers})
        tiered = tuple((start, tuple(self.rate(key, start + 1) for key in _PRICE_KEYS)) for start in starts)
        object.__setattr__(
            self,
            "_per_token",
            (_per_token(base), tuple((start, _per_token(rates)) for start, rates in tiered)),
        )

    def rate(self, key: str, input_tokens: int) -> Decimal | None:
        """The per-million rate of `key` for a call with `input_tokens` (inclusive) input tokens."""
        base: Decimal | None = getattr(self, key)
        for start, price in reversed(self.tiers.get(key, ())):
            if input_tokens > start:
                return price
        return base

    def cost(self, usage: Usage) -> Cost:
        """Price `usage` by the module's rule."""
        n_in = usage.input_tokens
        rates, tiers = self._per_token
        for start, tier_rates in reversed(tiers):
            if n_in > start:
                rates = tier_rates
                break
        r_in, r_out, r_cr, r_cw, r_reason = rates
        uncached = n_in
        cache_read = cache_write = _ZERO
        if r_cr is not None:
            uncached -= usage.cache_read_tokens
            cache_read = (usage.cache_read_tokens * r_cr).quantize(COST_QUANTUM, ROUND_HALF_EVEN)
        if r_cw is not None:
            uncached -= usage.cache_write_tokens
            cache_write = (usage.cache_write_tokens * r_cw).quantize(COST_QUANTUM, ROUND_HALF_EVEN)
        plain_out = usage.output_tokens
        reasoning = _ZERO
        if r_reason is not None:
            plain_out -= usage.reasoning_tokens
            reasoning = usage.reasoning_tokens * r_reason
        if (uncached and r_in is None) or (plain_out and r_out is None):
            missing = " or ".join(
                name
                for name, n, r in (("input", uncached, r_in), ("output", plain_out, r_out))
                if n and r is None
            )
            return Cost.unpriced(f"{self.source} has no {missing} token price", currency=self.currency)
        input_cost = (uncached * r_in).quantize(COST_QUANTUM, ROUND_HALF_EVEN) if r_in is not None else _ZERO
        output_cost = (plain_out * r_out if r_out is not None else _ZERO) + reasoning
        output_cost = output_cost.quantize(COST_QUANTUM, ROUND_HALF_EVEN)
        total = input_cost + output_cost + cache_read + cache_write
        return Cost(
            input_cost, output_cost, cache_read, cache_write, total, self.currency, STATUS_PRICED, self.source
        )


def _per_token(rates: tuple[Decimal | None, ...]) -> tuple[Decimal | None, ...]:
    """Per-million rates -> exact per-token rates."""
    return tuple(None if r is None else r.scaleb(-6) for r in rates)


def _period_label(model: gp_types.ModelInfo, price: gp_types.ModelPrice) -> str:
    if not isinstance(model.prices, list):
        return ""
    for cond in model.prices:
        if cond.prices is price:
            constraint = cond.constraint
            if isinstance(constraint, gp_types.StartDateConstraint):
                return f" ({constraint.start_date.isoformat()}..)"
            if isinstance(constraint, gp_types.TimeOfDateConstraint):
                return f" ({constraint.start_time:%H:%M}-{constraint.end_time:%H:%M} UTC)"
            return " (base price)"
    return ""


def _unit_prices_of(
    provider: gp_types.Provider, model: gp_types.ModelInfo, price: gp_types.ModelPrice
) -> UnitPrices:
    rates: dict[str, Decimal | None] = {}
    tiers: dict[str, Tiers] = {}
    for key in _PRICE_KEYS:
        value = getattr(price, key, None)
        if isinstance(value, gp_types.TieredPrices):
            rates[key] = value.base
            tiers[key] = tuple((t.start, t.price) for t in sorted(value.tiers, key=lambda t: t.start))
        else:
            rates[key] = value
    source = f"{CATALOG_NAME} {provider.id}/{model.id}{_period_label(model, price)}"
    return UnitPrices(
        provider=provider.id,
        model=model.id,
        source=source,
        input_mtok=rates["input_mtok"],
        output_mtok=rates["output_mtok"],
        cache_read_mtok=rates["cache_read_mtok"],
        cache_write_mtok=rates["cache_write_mtok"],
        output_reasoning_mtok=rates["output_reasoning_mtok"],
        tiers=tiers,
    )


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


class PriceCatalog:
    """Prices calls from YAML overrides, then the genai-prices catalog. Thread-safe.

    `overrides` is a YAML file (see `tokenbook.processor.overrides`); a bad file raises
    `PriceConfigError` listing every problem with its key path.
    """

    def __init__(self, overrides: str | Path | None = None) -> None:
        self._overrides: tuple[OverrideEntry, ...] = load_overrides(overrides) if overrides else ()
        self._snapshot = get_snapshot()
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], tuple[gp_types.Provider, gp_types.ModelInfo] | str] = {}
        self._rates: dict[int, tuple[gp_types.ModelPrice, UnitPrices]] = {}

    @property
    def overrides(self) -> tuple[OverrideEntry, ...]:
        return self._overrides

    def price(
        self, provider: str, model: str, usage: Usage, at: datetime, *, cache_hit: bool = False
    ) -> Cost:
        """The cost of a call of `model` by `provider` with `usage`, started at `at`. Never raises."""
        if cache_hit:
            return _CACHE_HIT_COST
        found = self.unit_prices(provider, model, at)
        if isinstance(found, str):
            return Cost.unpriced(found)
        return found.cost(usage)

    def unit_prices(self, provider: str, model: str, at: datetime | None = None) -> UnitPrices | str:
        """The rates in force for `model` at `at` (default now), or the reason there are none."""
        at = _utc(at) if at is not None else datetime.now(tz=UTC)
        if not model:
            return "no model name on the span"
        for entry in self._overrides:
            if entry.matches(provider, model, at):
                return entry.prices
        found = self._find_model(provider, model)
        if isinstance(found, str):
            return found
        gp_provider, gp_model = found
        try:
            price = gp_model.get_prices(at)
        except (ValueError, TypeError) as exc:  # a malformed catalog entry: unpriced, with the reason
            return f"{CATALOG_NAME}: {exc}"
        cached = self._rates.get(id(price))
        if cached is not None and cached[0] is price:
            return cached[1]
        unit = _unit_prices_of(gp_provider, gp_model, price)
        with self._lock:
            self._rates[id(price)] = (price, unit)
        return unit

    def _find_model(self, provider: str, model: str) -> tuple[gp_types.Provider, gp_types.ModelInfo] | str:
        key = (provider, model)
        found = self._models.get(key)
        if found is not None:
            return found
        provider_id = catalog_provider(provider) if provider else None
        try:
            result: tuple[gp_types.Provider, gp_types.ModelInfo] | str = self._snapshot.find_provider_model(
                model, None, provider_id, None
            )
        except LookupError as exc:
            where = f"provider {provider!r}" if provider else "any provider"
            if provider and provider_id is None:
                where = f"unknown provider {provider!r} (no catalog mapping)"
            result = f"{CATALOG_NAME}: no price for model {model!r} of {where}: {exc}"
        with self._lock:
            if len(self._models) >= _MAX_CACHED_MODELS:
                self._models.clear()
            self._models[key] = result
        return result
