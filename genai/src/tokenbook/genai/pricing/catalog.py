"""The genai-prices catalog (offline) behind `PriceCatalog`, with local YAML overrides tried first.

Contract of `PriceCatalog.price`:

* Overrides are tried first (first matching entry in file order, whose validity window holds the call
  time), then the catalog, with the OTel provider name mapped to a catalog provider (`catalog_provider`).
* The price in force at the call's start time is used (genai-prices date and time-of-day constraints,
  override ``from``/``until``); the arithmetic is `rates.UnitPrices`'.
* An unknown model gives ``status="unpriced"`` with every cost ``None`` and the reason in ``source``:
  never 0. A cache hit costs 0 (``cache_hit``).
* A local model server's call (`providers.LOCAL_PROVIDERS`: Ollama, vLLM, LM Studio, ...) is unpriced
  unless an override prices it: the catalog is not searched by the model's name, so a local model is
  never priced as a hosted model that shares its name (``deepseek-r1:8b``, ``gpt-oss-20b``).
* A hosted provider that bills at prices of its own which the catalog does not list
  (`providers.UNLISTED_PROVIDERS`: IBM watsonx.ai, Replicate, Amazon SageMaker, AI21, ...) is unpriced
  unless an override prices it: its models are never priced from another provider's list by their
  names (``openai/gpt-oss-120b`` on watsonx.ai is not OpenAI's).
* Service tiers (`tokenbook.genai.pricing.tiers`): a call of a non-standard tier (``flex``,
  ``priority``, ``batch``, ...) is priced by an override naming that tier, else by the catalog's price
  variant for it (genai-prices ``price_variants``: a variant's prices replace the base prices key by
  key, as genai-prices does) when one is in force at the call's time; else it is unpriced, with the
  reason, never priced at the standard rate. A call of the standard tier, or naming none, is priced
  as before.
* Unit prices are cached per (provider, model) and per price period, so no span calls
  ``genai_prices.calc_price``. The catalog is thread-safe and never raises from `price`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Final

import genai_prices
from genai_prices import types as gp_types
from genai_prices.data_snapshot import get_snapshot

from tokenbook.genai.billing import STATUS_UNPRICED
from tokenbook.genai.pricing.overrides import OverrideEntry, load_entries
from tokenbook.genai.pricing.providers import (
    BEDROCK_VENDORS,
    catalog_provider,
    is_local_provider,
    provider_of_model,
    unlisted_provider,
)
from tokenbook.genai.pricing.rates import (
    CACHE_HIT_COST,
    CACHE_HIT_QUOTE,
    PRICE_KEYS,
    Cost,
    Quote,
    Tiers,
    UnitPrices,
)
from tokenbook.genai.pricing.tiers import is_standard, price_context
from tokenbook.genai.usage import Usage

__all__ = ["CATALOG_NAME", "PriceCatalog"]

#: The catalog in use: the installed genai-prices, e.g. ``"genai-prices 0.2.5"``.
CATALOG_NAME: Final = f"genai-prices {genai_prices.__version__}"
_MAX_CACHED_MODELS: Final = 10_000
#: A model named by its resource name: Vertex AI's (``projects/{project}/locations/{location}/publishers/
#: {publisher}/models/{model}``, ``publishers/{publisher}/models/{model}``: OpenInference's Vertex AI
#: spans) or the Gemini API's (``models/{model}``). The model is the part after ``models/``.
_RESOURCE_NAME: Final = re.compile(
    r"(?P<vertex>(?:projects/[^/]+/locations/[^/]+/)?publishers/[^/]+/)?models/(?P<model>[^/]+)"
)


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
    provider: gp_types.Provider, model: gp_types.ModelInfo, price: gp_types.ModelPrice, tier_label: str = ""
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
    source = f"{CATALOG_NAME} {provider.id}/{model.id}{tier_label or _period_label(model, price)}"
    if not any(m is model for m in provider.models):  # genai-prices' fallback to another provider's list
        owner = _owner(provider, model)
        source += f" ({owner}'s price: {provider.id} lists none of its own)"
    return UnitPrices(
        provider=provider.id,
        model=model.id,
        source=source,
        input_mtok=rates["input_mtok"],
        output_mtok=rates["output_mtok"],
        cache_read_mtok=rates["cache_read_mtok"],
        cache_write_mtok=rates["cache_write_mtok"],
        output_reasoning_mtok=rates["output_reasoning_mtok"],
        cache_write_1h_mtok=rates["cache_write_1h_mtok"],
        tiers=tiers,
    )


def _owner(provider: gp_types.Provider, model: gp_types.ModelInfo) -> str:
    """The provider among `provider`'s fallbacks (genai-prices ``fallback_model_providers``: azure's are
    openai, anthropic, ...) whose list holds `model`."""
    snapshot = get_snapshot()
    for provider_id in provider.fallback_model_providers or ():
        other = next((p for p in snapshot.providers if p.id == provider_id), None)
        if other is not None and any(m is model for m in other.models):
            return other.id
    return "another provider"


def _variants_in_force(
    model: gp_types.ModelInfo, context: dict[str, str], at: datetime
) -> tuple[gp_types.PriceVariant, ...]:
    """The model's price variants that `context` selects at `at` (genai-prices' own rule)."""
    return tuple(
        v
        for v in model.price_variants or ()
        if (v.constraint is None or v.constraint.active(at))
        and all(context.get(key) == value for key, value in v.when.items())
    )


def _tier_label(tier: str, variants: tuple[gp_types.PriceVariant, ...]) -> str:
    starts = sorted(
        v.constraint.start_date.isoformat()
        for v in variants
        if isinstance(v.constraint, gp_types.StartDateConstraint)
    )
    return f" ({tier} tier{f', {starts[-1]}..' if starts else ''})"


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


class PriceCatalog:
    """Prices calls from YAML overrides, then the genai-prices catalog. Thread-safe.

    `overrides` is a YAML file (see `tokenbook.genai.pricing.overrides`); a bad file raises
    `PriceConfigError` listing every problem with its key path.
    """

    def __init__(self, overrides: str | Path | None = None) -> None:
        self._overrides: tuple[OverrideEntry, ...] = load_entries(overrides) if overrides else ()
        self._snapshot = get_snapshot()
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], tuple[gp_types.Provider, gp_types.ModelInfo] | str] = {}
        #: (catalog provider, price id) -> (the price, kept alive, and its unit prices). The provider is
        #: part of the key: a provider whose list falls back to another's (azure to openai) prices
        #: with the other's price objects, and the unit prices name the provider.
        self._rates: dict[tuple[str, int], tuple[gp_types.ModelPrice, UnitPrices]] = {}
        #: (provider, base price and variants ids) -> (the objects, kept alive, and the tier's unit prices).
        self._tier_rates: dict[tuple[str, tuple[int, ...]], tuple[tuple[object, ...], UnitPrices]] = {}
        #: (provider, model, tier) -> `unit_prices` result, for models whose price cannot change with time.
        self._fixed: dict[tuple[str, str, str], UnitPrices | str] = {}

    @classmethod
    def with_entries(cls, overrides: Sequence[OverrideEntry]) -> PriceCatalog:
        """A catalog whose overrides are `overrides`: entries already read from a file (`load_entries`)."""
        catalog = cls()
        catalog._overrides = tuple(overrides)
        return catalog

    @property
    def overrides(self) -> tuple[OverrideEntry, ...]:
        """The override entries in file order (tried before the catalog)."""
        return self._overrides

    def price(
        self,
        provider: str,
        model: str,
        usage: Usage,
        at: datetime,
        *,
        cache_hit: bool = False,
        tier: str = "",
    ) -> Cost:
        """The cost of a call of `model` by `provider` with `usage`, started at `at`, served at service
        tier `tier` (``""``: none named). Never raises."""
        if cache_hit:
            return CACHE_HIT_COST
        found = self.unit_prices(provider, model, at, tier)
        if isinstance(found, str):
            return Cost.unpriced(found)
        return found.cost(usage)

    def quote(
        self,
        provider: str,
        model: str,
        usage: Usage,
        start_ns: int | None,
        *,
        cache_hit: bool = False,
        tier: str = "",
    ) -> Quote:
        """`price` as a `Quote`, for a call started at `start_ns` (ns since the epoch; None = now).

        The processor's hot path: a model whose price has no time constraint (no dated catalog prices,
        no override with a ``from``/``until`` window naming it, no dated variant for a tier) is looked
        up once, without building a datetime. Never raises.
        """
        if cache_hit:
            return CACHE_HIT_QUOTE
        key = (provider, model, tier)
        found = self._fixed.get(key)
        if found is None:
            at = datetime.fromtimestamp(start_ns / 1e9, UTC) if start_ns else datetime.now(UTC)
            found = self.unit_prices(provider, model, at, tier)
            if self._time_independent(provider, model, tier):
                with self._lock:
                    if len(self._fixed) >= _MAX_CACHED_MODELS:
                        self._fixed.clear()
                    self._fixed[key] = found
        if isinstance(found, str):
            return Quote(STATUS_UNPRICED, found, "USD", None)
        return found.quote(usage)

    def _time_independent(self, provider: str, model: str, tier: str = "") -> bool:
        """Whether `unit_prices` gives the same answer for `model` and `tier` at any time (see `quote`)."""
        if not model:
            return True
        name = model.lower()
        if any(name in e.models and (e.valid_from or e.valid_until) for e in self._overrides):
            return False
        found = self._find_model(provider, model)
        if isinstance(found, str):
            return True
        gp_model = found[1]
        if isinstance(gp_model.prices, list):
            return False
        return is_standard(tier) or all(v.constraint is None for v in gp_model.price_variants or ())

    def unit_prices(
        self, provider: str, model: str, at: datetime | None = None, tier: str = ""
    ) -> UnitPrices | str:
        """The rates in force for `model` at `at` (default now) for service tier `tier` (``""``: none
        named), or the reason there are none."""
        at = _utc(at) if at is not None else datetime.now(tz=UTC)
        if not model:
            return "no model name on the span"
        for entry in self._overrides:
            if entry.matches(provider, model, at, tier):
                return entry.prices
        found = self._find_model(provider, model)
        if isinstance(found, str):
            return found
        gp_provider, gp_model = found
        try:
            price = gp_model.get_prices(at)
        except (ValueError, TypeError) as exc:  # a malformed catalog entry: unpriced, with the reason
            return f"{CATALOG_NAME}: {exc}"
        context = price_context(tier)
        if context is not None:
            return self._tier_prices(gp_provider, gp_model, price, tier, context, at)
        rate_key = (gp_provider.id, id(price))
        cached = self._rates.get(rate_key)
        if cached is not None and cached[0] is price:
            return cached[1]
        unit = _unit_prices_of(gp_provider, gp_model, price)
        with self._lock:
            self._rates[rate_key] = (price, unit)
        return unit

    def _tier_prices(
        self,
        gp_provider: gp_types.Provider,
        gp_model: gp_types.ModelInfo,
        base: gp_types.ModelPrice,
        tier: str,
        context: dict[str, str],
        at: datetime,
    ) -> UnitPrices | str:
        """The unit prices of `tier` (the base price with the variants in force), or why there are none."""
        variants = tuple(v for v in _variants_in_force(gp_model, context, at) if v.prices.__dict__)
        if not variants:
            return (
                f"{CATALOG_NAME}: no {tier} tier price for {gp_provider.id}/{gp_model.id} on "
                f"{at.date().isoformat()}: add a price override with service_tier: {tier}"
            )
        ids = (id(base), *(id(v) for v in variants))
        key = (gp_provider.id, ids)
        cached = self._tier_rates.get(key)
        if (
            cached is not None
            and len(cached[0]) == len(ids)
            and all(a is b for a, b in zip(cached[0], (base, *variants), strict=True))
        ):
            return cached[1]
        resolved = gp_model.get_prices(at, context)
        unit = _unit_prices_of(gp_provider, gp_model, resolved, _tier_label(tier, variants))
        with self._lock:
            if len(self._tier_rates) >= _MAX_CACHED_MODELS:
                self._tier_rates.clear()
            self._tier_rates[key] = ((base, *variants), unit)
        return unit

    def context_window(self, provider: str, model: str) -> int | None:
        """The model's context window in tokens from the catalog, or None when unknown (never 0)."""
        if not model:
            return None
        found = self._find_model(provider, model)
        if isinstance(found, str):
            return None
        window = found[1].context_window
        return window if isinstance(window, int) and window > 0 else None

    def _find_or_unprefixed(
        self, model: str, provider_id: str | None
    ) -> tuple[gp_types.Provider, gp_types.ModelInfo]:
        """The catalog's model `model` of `provider_id`; failing that, for a model named by its resource
        name (``projects/p/locations/l/publishers/google/models/gemini-2.5-flash``: `_RESOURCE_NAME`),
        the model after ``models/`` (of Google, Vertex AI's biller, when a Vertex AI name comes with no
        provider); for a model named the LiteLLM way (``openai/gpt-4o-mini``,
        ``anthropic/claude-sonnet-4-5``: OpenInference's LiteLLM spans), the model after the prefix, of
        the provider the prefix names; and for a Bedrock model ID without its vendor (``nova-lite-v1:0``,
        ``llama3-3-70b-instruct-v1:0``: OpenLLMetry's Bedrock spans), the one Bedrock model that some
        vendor's prefix makes of it. Raises LookupError."""
        try:
            return self._snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError as exc:
            if (resource := _RESOURCE_NAME.fullmatch(model)) is not None:
                vertex = "google" if resource["vertex"] else None
                return self._snapshot.find_provider_model(
                    resource["model"], None, provider_id or vertex, None
                )
            prefix, _, rest = model.partition("/")
            named = catalog_provider(prefix) if rest else None
            if named is None or (provider_id is not None and named != provider_id):
                if provider_id == "aws" and "." not in model.partition(":")[0]:
                    return self._bedrock_with_vendor(model, exc)
                raise
            return self._snapshot.find_provider_model(rest, None, named, None)

    def _bedrock_with_vendor(
        self, model: str, unfound: LookupError
    ) -> tuple[gp_types.Provider, gp_types.ModelInfo]:
        """The Bedrock model that ``<vendor>.<model>`` names for exactly one of `BEDROCK_VENDORS`;
        `unfound` when none does; LookupError when several do (never a guess)."""
        found: dict[str, tuple[gp_types.Provider, gp_types.ModelInfo]] = {}
        for vendor in BEDROCK_VENDORS:
            try:
                hit = self._snapshot.find_provider_model(f"{vendor}.{model}", None, "aws", None)
            except LookupError:
                continue
            found[hit[1].id] = hit
        if not found:
            raise unfound
        if len(found) > 1:
            raise LookupError(
                f"{model!r} without a vendor prefix names several models of aws: {sorted(found)}"
            )
        return next(iter(found.values()))

    def _find_model(self, provider: str, model: str) -> tuple[gp_types.Provider, gp_types.ModelInfo] | str:
        key = (provider, model)
        found = self._models.get(key)
        if found is not None:
            return found
        provider_id = (catalog_provider(provider) if provider else None) or provider_of_model(model)
        result: tuple[gp_types.Provider, gp_types.ModelInfo] | str
        if provider_id is None and provider and is_local_provider(provider):
            # a local model: billed by nobody, whatever hosted model shares its name (not looked up)
            result = (
                f"{CATALOG_NAME}: no price for model {model!r} of {provider!r}, a local model server: "
                f"its calls are billed by nobody (add a price override to price them)"
            )
        elif provider_id is None and provider and (host := unlisted_provider(provider)) is not None:
            # a provider with prices of its own that the catalog does not list: whatever other
            # provider's model shares the model's name, not looked up
            result = (
                f"{CATALOG_NAME}: no price for model {model!r} of {provider!r} ({host}): the catalog lists "
                f"none of {host}'s prices (add a price override to price its calls)"
            )
        else:
            try:
                result = self._find_or_unprefixed(model, provider_id)
            except LookupError as exc:
                sole = self._sole_lister(model) if provider_id is None else None
                result = sole if sole is not None else self._unfound(provider, provider_id, model, exc)
        with self._lock:
            if len(self._models) >= _MAX_CACHED_MODELS:
                self._models.clear()
            self._models[key] = result
        return result

    def _sole_lister(self, model: str) -> tuple[gp_types.Provider, gp_types.ModelInfo] | None:
        """The one catalog provider whose own list has `model`, for a call that names no provider the
        catalog knows (none, or a gateway's name: Portkey's ``portkey``) and whose model's name the
        catalog's own provider inference does not place (``llama-3.3-70b-versatile``: Groq's alone);
        None when no provider or several list it (``text-embedding-3-small``: OpenAI's and Azure's),
        never a guess."""
        found = [
            (provider, info)
            for provider in self._snapshot.providers
            if (info := provider.find_model(model)) is not None
        ]
        return found[0] if len(found) == 1 else None

    def _unfound(self, provider: str, provider_id: str | None, model: str, exc: LookupError) -> str:
        """Why `model` of `provider` has no catalog price (an unpriced quote's source)."""
        where = f"provider {provider!r}" if provider else "any provider"
        if provider and provider_id is None:
            where = f"unknown provider {provider!r} (no catalog mapping)"
        result = f"{CATALOG_NAME}: no price for model {model!r} of {where}: {exc}"
        if provider_id == "azure":
            result += (
                f" (an Azure deployment name? a span that names the deployed model "
                f"(gen_ai.response.model) is priced by it; else add a price override for {model!r})"
            )
        return result
