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
* Arithmetic: when every rate is a whole number of pico-dollars per token (at most 6 decimals per
  million) the components are computed in integer pico-dollars (1e-12 USD, the ledger's quantum),
  which equals the Decimal computation exactly; otherwise in Decimal. `PriceCatalog.quote` /
  `UnitPrices.quote` return that as a `Quote` tuple for the span processor's hot path.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Final, TypeVar

import genai_prices
from genai_prices import types as gp_types
from genai_prices.data_snapshot import get_snapshot

from tokenbook.genai.pricing.overrides import PriceOverride, load_overrides
from tokenbook.genai.usage import MAX_TOKENS, Counts, Usage

__all__ = [
    "CATALOG_NAME",
    "COST_QUANTUM",
    "PRICE_KEYS",
    "PROVIDER_ALIASES",
    "STATUS_CACHE_HIT",
    "STATUS_PRICED",
    "STATUS_UNPRICED",
    "Cost",
    "OverrideEntry",
    "PriceCatalog",
    "Quote",
    "Tiers",
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
#: Per-token rates up to this many pico-dollars take the integer path (products stay exact in Decimal).
_MAX_PICO_RATE: Final = 10**14
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

#: The per-million-token rate fields of `UnitPrices` (and price keys of the catalog and overrides).
PRICE_KEYS: Final = (
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

    @classmethod
    def of_quote(cls, quote: Quote) -> Cost:
        """The `Cost` of a `Quote`: pico-dollars become `Decimal` with 12 places."""
        status, source, currency, picos = quote
        if picos is None:
            return cls.unpriced(source, currency)
        i, o, r, w, t = (Decimal(p).scaleb(-12) for p in picos)
        return cls(i, o, r, w, t, currency, status, source)


#: A `Cost` as a plain tuple, for the processor's hot path: ``(status, source, currency, picos)``, where
#: `picos` is ``(input, output, cache_read, cache_write, total)`` in integer pico-dollars (1e-12 USD,
#: the ledger's quantum), or None exactly when unpriced.
Quote = tuple[str, str, str, tuple[int, int, int, int, int] | None]

_CACHE_HIT_QUOTE: Final[Quote] = (STATUS_CACHE_HIT, "cache hit: no model call", "USD", (0, 0, 0, 0, 0))
_CACHE_HIT_COST: Final = Cost.of_quote(_CACHE_HIT_QUOTE)

#: A tier list: (start threshold on inclusive input tokens, price per million), ascending.
Tiers = tuple[tuple[int, Decimal], ...]
#: A money amount: int pico-dollars on the integer path, Decimal dollars on the exact fallback.
_N = TypeVar("_N", int, Decimal)
#: Rates in `PRICE_KEYS` order: the base rates, then ``(start, rates)`` per tier, ascending.
_RateTable = tuple[tuple[_N | None, ...], tuple[tuple[int, tuple[_N | None, ...]], ...]]


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

    #: Per-token rates (rate / 10^6, exact) in `PRICE_KEYS` order: base, then one tuple per tier.
    _per_token: _RateTable[Decimal] = field(init=False, repr=False, compare=False)
    #: The same in integer pico-dollars, or None when a rate is not a whole number of them (> 6
    #: decimals per million) or is absurdly large: then `quote` computes in Decimal.
    _pico: _RateTable[int] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        base = tuple(getattr(self, key) for key in PRICE_KEYS)
        starts = sorted({start for tiers in self.tiers.values() for start, _ in tiers})
        tiered = tuple((start, tuple(self.rate(key, start + 1) for key in PRICE_KEYS)) for start in starts)
        per_token = (_per_token(base), tuple((start, _per_token(rates)) for start, rates in tiered))
        object.__setattr__(self, "_per_token", per_token)
        object.__setattr__(self, "_pico", _pico_table(per_token))

    def rate(self, key: str, input_tokens: int) -> Decimal | None:
        """The per-million rate of `key` for a call with `input_tokens` (inclusive) input tokens."""
        base: Decimal | None = getattr(self, key)
        for start, price in reversed(self.tiers.get(key, ())):
            if input_tokens > start:
                return price
        return base

    def cost(self, usage: Usage) -> Cost:
        """Price `usage` by the module's rule."""
        return Cost.of_quote(self.quote(_counts_of(usage)))

    def quote(self, counts: Counts | tuple[int, int, int, int, int]) -> Quote:
        """`cost` as a `Quote` (in, out, cache read, cache write, reasoning are `counts[:5]`).

        Integer arithmetic when the rates are whole pico-dollars and the counts within
        ``[0, MAX_TOKENS]``, where it equals the Decimal computation exactly; Decimal otherwise.
        """
        n_in, n_out, n_cr, n_cw, n_reason = counts[:5]
        pico = self._pico
        if pico is None or not (
            0 <= n_in <= MAX_TOKENS
            and 0 <= n_out <= MAX_TOKENS
            and 0 <= n_cr <= MAX_TOKENS
            and 0 <= n_cw <= MAX_TOKENS
            and 0 <= n_reason <= MAX_TOKENS
        ):
            return self._quote_decimal(n_in, n_out, n_cr, n_cw, n_reason)
        rates = _tier(pico, n_in) if pico[1] else pico[0]
        raw = _components(rates, n_in, n_out, n_cr, n_cw, n_reason, 0)
        if isinstance(raw, str):
            return self._unpriced(raw)
        i, o, r, w = raw
        return STATUS_PRICED, self.source, self.currency, (i, o, r, w, i + o + r + w)

    def _quote_decimal(self, n_in: int, n_out: int, n_cr: int, n_cw: int, n_reason: int) -> Quote:
        """`quote` in Decimal: each component rounded half-even to 12 places, then in pico-dollars."""
        raw = _components(_tier(self._per_token, n_in), n_in, n_out, n_cr, n_cw, n_reason, _ZERO)
        if isinstance(raw, str):
            return self._unpriced(raw)
        i, o, r, w = (int(c.quantize(COST_QUANTUM, ROUND_HALF_EVEN).scaleb(12)) for c in raw)
        return STATUS_PRICED, self.source, self.currency, (i, o, r, w, i + o + r + w)

    def _unpriced(self, missing: str) -> Quote:
        return STATUS_UNPRICED, f"{self.source} has no {missing} token price", self.currency, None


def _counts_of(u: Usage) -> tuple[int, int, int, int, int]:
    return u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens


def _tier(table: _RateTable[_N], n_in: int) -> tuple[_N | None, ...]:
    """The rates in force for a call with `n_in` inclusive input tokens (genai-prices' tier rule)."""
    rates, tiers = table
    for start, tier_rates in reversed(tiers):
        if n_in > start:
            return tier_rates
    return rates


def _components(
    rates: tuple[_N | None, ...], n_in: int, n_out: int, n_cr: int, n_cw: int, n_reason: int, zero: _N
) -> tuple[_N, _N, _N, _N] | str:
    """Unrounded (input, output, cache read, cache write) by the module's rule, in the rates' type
    (int pico-dollars or Decimal dollars); or which rates are missing (``"input or output"``)."""
    r_in, r_out, r_cr, r_cw, r_reason = rates
    uncached = n_in
    cache_read = cache_write = reasoning = zero
    if r_cr is not None:
        uncached -= n_cr
        cache_read = n_cr * r_cr
    if r_cw is not None:
        uncached -= n_cw
        cache_write = n_cw * r_cw
    plain_out = n_out
    if r_reason is not None:
        plain_out -= n_reason
        reasoning = n_reason * r_reason
    if (uncached and r_in is None) or (plain_out and r_out is None):
        needed = (("input", uncached, r_in), ("output", plain_out, r_out))
        return " or ".join(name for name, n, r in needed if n and r is None)
    input_cost = uncached * r_in if r_in is not None else zero
    output_cost = (plain_out * r_out if r_out is not None else zero) + reasoning
    return input_cost, output_cost, cache_read, cache_write


def _pico_table(table: _RateTable[Decimal]) -> _RateTable[int] | None:
    """`table` in integer pico-dollars per token, or None when a rate is not exactly one."""
    try:
        base, tiers = table
        return _pico_rates(base), tuple((start, _pico_rates(rates)) for start, rates in tiers)
    except ValueError:
        return None


def _pico_rates(rates: tuple[Decimal | None, ...]) -> tuple[int | None, ...]:
    out: list[int | None] = []
    for rate in rates:
        if rate is None:
            out.append(None)
            continue
        pico = rate.scaleb(12)
        if pico != pico.to_integral_value() or not 0 <= pico <= _MAX_PICO_RATE:
            raise ValueError(f"not a whole number of pico-dollars: {rate}")
        out.append(int(pico))
    return tuple(out)


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
    for key in PRICE_KEYS:
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


@dataclass(frozen=True, slots=True)
class OverrideEntry:
    """One validated override: which calls it matches, when, and its unit prices."""

    id: str
    models: frozenset[str]  # lower-cased
    provider: str | None  # catalog id (or lower-cased name when unmapped); None = any
    valid_from: datetime | None
    valid_until: datetime | None
    source: str  # the entry's `source` text: where the negotiated/self-hosted price comes from
    checked: date
    prices: UnitPrices

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
        )
        provider = _provider_key(o.provider) if o.provider is not None else None
        return cls(o.id, o.model, provider, o.valid_from, o.valid_until, o.source, o.checked, prices)

    def matches(self, provider: str, model: str, at: datetime) -> bool:
        """Whether this entry prices `model` of `provider` for a call started at `at` (aware)."""
        if model.lower() not in self.models:
            return False
        if self.provider is not None and _provider_key(provider) != self.provider:
            return False
        if self.valid_from is not None and at < self.valid_from:
            return False
        return self.valid_until is None or at < self.valid_until


def _provider_key(name: str) -> str:
    return catalog_provider(name) or name.strip().lower()


def _load_overrides(path: str | Path) -> tuple[OverrideEntry, ...]:
    return tuple(OverrideEntry.of(o, Path(path).name) for o in load_overrides(path))


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


class PriceCatalog:
    """Prices calls from YAML overrides, then the genai-prices catalog. Thread-safe.

    `overrides` is a YAML file (see `tokenbook.genai.pricing.overrides`); a bad file raises
    `PriceConfigError` listing every problem with its key path.
    """

    def __init__(self, overrides: str | Path | None = None) -> None:
        self._overrides: tuple[OverrideEntry, ...] = _load_overrides(overrides) if overrides else ()
        self._snapshot = get_snapshot()
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], tuple[gp_types.Provider, gp_types.ModelInfo] | str] = {}
        self._rates: dict[int, tuple[gp_types.ModelPrice, UnitPrices]] = {}
        #: (provider, model) -> `unit_prices` result, for models whose price cannot change with time.
        self._fixed: dict[tuple[str, str], UnitPrices | str] = {}

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

    def quote(
        self,
        provider: str,
        model: str,
        counts: Counts | tuple[int, int, int, int, int],
        start_ns: int | None,
        *,
        cache_hit: bool = False,
    ) -> Quote:
        """`price` as a `Quote`, for a call started at `start_ns` (ns since the epoch; None = now).

        The processor's hot path: a model whose price has no time constraint (no dated catalog prices,
        no override with a ``from``/``until`` window naming it) is looked up once, without building a
        datetime. Never raises.
        """
        if cache_hit:
            return _CACHE_HIT_QUOTE
        key = (provider, model)
        found = self._fixed.get(key)
        if found is None:
            at = datetime.fromtimestamp(start_ns / 1e9, UTC) if start_ns else datetime.now(UTC)
            found = self.unit_prices(provider, model, at)
            if self._time_independent(provider, model):
                with self._lock:
                    if len(self._fixed) >= _MAX_CACHED_MODELS:
                        self._fixed.clear()
                    self._fixed[key] = found
        if isinstance(found, str):
            return STATUS_UNPRICED, found, "USD", None
        return found.quote(counts)

    def _time_independent(self, provider: str, model: str) -> bool:
        """Whether `unit_prices` gives the same answer for `model` at any time (see `quote`)."""
        if not model:
            return True
        name = model.lower()
        if any(name in e.models and (e.valid_from or e.valid_until) for e in self._overrides):
            return False
        found = self._find_model(provider, model)
        return isinstance(found, str) or not isinstance(found[1].prices, list)

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
