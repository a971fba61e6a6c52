"""Unit prices and the arithmetic of a call's cost (no catalog: see `catalog` and `overrides`).

* Tiers follow genai-prices' threshold rule: when the inclusive input count is above a tier's start,
  that tier's rate applies to all tokens of that unit.
* Each token is priced once: ``input - cache_read - cache_write`` at the input rate, cache tokens at
  their own rates (at the input rate, inside ``input``, when the price has no cache rate, as genai-prices
  does), output at the output rate, with reasoning at ``output_reasoning_mtok`` when the price has one.
* Cache writes by lifetime: when the usage splits them (`Usage.cache_write_1h_tokens`, not None), the
  one-hour writes are priced at ``cache_write_1h_mtok`` and the rest at ``cache_write_mtok`` (the
  five-minute rate); a price with a cache-write rate but no one-hour rate cannot price one-hour writes:
  the call is unpriced, never priced at the five-minute rate. ``cache_write`` is the cost of all cache
  writes, and `Quote.cache_write_1h` the part of it for one-hour writes (None when not split).
* Money is `Decimal`. Each component is rounded half-even to 12 decimal places (ClickHouse
  ``Decimal(18,12)``), and ``total`` is exactly the sum of the rounded components.
* A price lacking a rate that a non-zero count needs gives ``status="unpriced"`` with every cost
  ``None`` and the reason in ``source``: never 0.
* Arithmetic: when every rate is a whole number of pico-dollars per token (at most 6 decimals per
  million) the components are computed in integer pico-dollars (1e-12 USD, the ledger's quantum),
  which equals the Decimal computation exactly; otherwise in Decimal. `UnitPrices.quote` returns that
  as a `Quote` for the span processor's hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final, NamedTuple, TypeVar

from tokenbook.genai.billing import (
    COST_QUANTUM,
    STATUS_CACHE_HIT,
    STATUS_PRICED,
    STATUS_UNPRICED,
    Picos,
    money,
)
from tokenbook.genai.usage import MAX_TOKENS, Usage

__all__ = ["CACHE_HIT_COST", "CACHE_HIT_QUOTE", "PRICE_KEYS", "Cost", "Quote", "Tiers", "UnitPrices"]

_ZERO: Final = Decimal(0).quantize(COST_QUANTUM)
#: Per-token rates up to this many pico-dollars take the integer path (products stay exact in Decimal).
_MAX_PICO_RATE: Final = 10**14

#: The per-million-token rate fields of `UnitPrices` (and price keys of the catalog and overrides).
PRICE_KEYS: Final = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_reasoning_mtok",
    "cache_write_1h_mtok",
)


class Quote(NamedTuple):
    """A call's price on the hot path: integer pico-dollars instead of `Decimal`s.

    `picos` is None exactly when the call is unpriced (then `source` says why). `cache_write_1h` is the
    part of ``picos.cache_write`` paid for one-hour cache writes, None when the usage does not split
    cache writes by lifetime or the call is unpriced.
    """

    status: str  # priced | unpriced | cache_hit
    source: str  # where the price came from; for unpriced: why
    currency: str
    picos: Picos | None
    cache_write_1h: int | None = None


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
    cache_write_1h: Decimal | None = None  # of `cache_write`, one-hour writes; None: not split

    @classmethod
    def unpriced(cls, reason: str, currency: str = "USD") -> Cost:
        """An unpriced call's cost: no amounts (never 0), the reason as the source."""
        return cls(None, None, None, None, None, currency, STATUS_UNPRICED, reason)

    @classmethod
    def of_quote(cls, quote: Quote) -> Cost:
        """The `Cost` of a `Quote`: pico-dollars become `Decimal` with 12 places."""
        if quote.picos is None:
            return cls.unpriced(quote.source, quote.currency)
        one_hour = None if quote.cache_write_1h is None else money(quote.cache_write_1h)
        return cls(*quote.picos.costs(), quote.currency, quote.status, quote.source, one_hour)


#: A cache hit: no model call, so nothing to pay.
CACHE_HIT_QUOTE: Final = Quote(STATUS_CACHE_HIT, "cache hit: no model call", "USD", Picos(0, 0, 0, 0, 0))
CACHE_HIT_COST: Final = Cost.of_quote(CACHE_HIT_QUOTE)

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
    cache_write_1h_mtok: Decimal | None = None  # one-hour cache writes (Anthropic); None: no such rate
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
        return Cost.of_quote(self.quote(usage))

    def quote(self, usage: Usage) -> Quote:
        """`cost` as a `Quote`.

        Integer arithmetic when the rates are whole pico-dollars and the counts within
        ``[0, MAX_TOKENS]``, where it equals the Decimal computation exactly; Decimal otherwise.
        """
        n_in = usage.input_tokens
        n_out = usage.output_tokens
        n_cr = usage.cache_read_tokens
        n_cw = usage.cache_write_tokens
        n_reason = usage.reasoning_tokens
        split = usage.cache_write_1h_tokens
        n_1h = split or 0
        pico = self._pico
        if pico is None or not (
            0 <= n_in <= MAX_TOKENS
            and 0 <= n_out <= MAX_TOKENS
            and 0 <= n_cr <= MAX_TOKENS
            and 0 <= n_cw <= MAX_TOKENS
            and 0 <= n_reason <= MAX_TOKENS
            and 0 <= n_1h <= n_cw
        ):
            return self._quote_decimal(n_in, n_out, n_cr, n_cw, n_reason, split)
        rates = _tier(pico, n_in) if pico[1] else pico[0]
        raw = _components(rates, n_in, n_out, n_cr, n_cw, n_reason, n_1h, 0)
        if isinstance(raw, str):
            return self._unpriced(raw)
        i, o, r, w, w_1h = raw
        return Quote(
            STATUS_PRICED,
            self.source,
            self.currency,
            Picos.of_parts(i, o, r, w),
            None if split is None else w_1h,
        )

    def _quote_decimal(
        self, n_in: int, n_out: int, n_cr: int, n_cw: int, n_reason: int, split: int | None = None
    ) -> Quote:
        """`quote` in Decimal: each component rounded half-even to 12 places, then in pico-dollars."""
        n_1h = min(max(split or 0, 0), max(n_cw, 0))
        raw = _components(_tier(self._per_token, n_in), n_in, n_out, n_cr, n_cw, n_reason, n_1h, _ZERO)
        if isinstance(raw, str):
            return self._unpriced(raw)
        i, o, r, w, w_1h = (int(c.quantize(COST_QUANTUM, ROUND_HALF_EVEN).scaleb(12)) for c in raw)
        return Quote(
            STATUS_PRICED,
            self.source,
            self.currency,
            Picos.of_parts(i, o, r, w),
            None if split is None else w_1h,
        )

    def _unpriced(self, missing: str) -> Quote:
        return Quote(STATUS_UNPRICED, f"{self.source} has no {missing} token price", self.currency, None)


def _tier(table: _RateTable[_N], n_in: int) -> tuple[_N | None, ...]:
    """The rates in force for a call with `n_in` inclusive input tokens (genai-prices' tier rule)."""
    rates, tiers = table
    for start, tier_rates in reversed(tiers):
        if n_in > start:
            return tier_rates
    return rates


def _components(
    rates: tuple[_N | None, ...],
    n_in: int,
    n_out: int,
    n_cr: int,
    n_cw: int,
    n_reason: int,
    n_1h: int,
    zero: _N,
) -> tuple[_N, _N, _N, _N, _N] | str:
    """Unrounded (input, output, cache read, cache write, of which one-hour writes) by the module's
    rule, in the rates' type (int pico-dollars or Decimal dollars); or which rates are missing
    (``"input or output"``). `n_1h` (<= `n_cw`) of the cache writes are one-hour writes."""
    r_in, r_out, r_cr, r_cw, r_reason, r_1h = rates
    uncached = n_in
    cache_read = cache_write = one_hour = reasoning = zero
    if r_cr is not None:
        uncached -= n_cr
        cache_read = n_cr * r_cr
    if r_cw is not None:
        if n_1h and r_1h is None:
            return "one-hour cache write"
        uncached -= n_cw
        one_hour = n_1h * r_1h if r_1h is not None else zero
        cache_write = (n_cw - n_1h) * r_cw + one_hour
    elif r_1h is not None:  # a one-hour rate only: the other cache writes are input
        uncached -= n_1h
        cache_write = one_hour = n_1h * r_1h
    plain_out = n_out
    if r_reason is not None:
        plain_out -= n_reason
        reasoning = n_reason * r_reason
    if (uncached and r_in is None) or (plain_out and r_out is None):
        needed = (("input", uncached, r_in), ("output", plain_out, r_out))
        return " or ".join(name for name, n, r in needed if n and r is None)
    input_cost = uncached * r_in if r_in is not None else zero
    output_cost = (plain_out * r_out if r_out is not None else zero) + reasoning
    return input_cost, output_cost, cache_read, cache_write, one_hour


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
