"""Dated exchange rates from validated YAML, and exact conversion of the ledger's money into another
currency for reports and exports.

File shape::

    source: "ECB euro reference rates, as units per US dollar"   # required: where the rates come from
    base: USD                  # optional, default USD: the currency converted from (the ledger's)
    carry_forward_days: 3      # optional, default 0: a day without a rate takes the latest rate of the
                               # N days before it (weekends, holidays); 0: every day needs its own rate
    rates:                     # required: per date, units of each currency for one unit of `base`
      2026-01-30: {EUR: "0.9213", GBP: "0.7891"}
      2026-02-02: {EUR: "0.9240", GBP: "0.7902"}

Rates are decimal strings (floats are refused: quote them), positive. Every problem is reported at once
in `PriceConfigError`, each with its key path (``rates.2026-01-30.EUR: ...``).

Conversion rule (`ExchangeRates.convert`): an amount of day D becomes ``amount x rate(D)``, rounded
half-even once to the quantum asked for (the ledger's 1e-12 by default). Amounts of different days are
converted each at its own day's rate before they are added, so a sum never mixes currencies or rates.
A day without a rate (after `carry_forward_days`) raises `MissingRate`, naming the date and the
currency; converting from a currency other than `base` is refused the same way (no cross rates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, ClassVar, Final, Self

import yaml

from tokenbook.genai.billing import COST_QUANTUM
from tokenbook.genai.configspec import Invalid, Report, load, non_negative_int, setting, type_name
from tokenbook.genai.pricing.fields import PriceConfigError, currency_code, day, decimal_value, text
from tokenbook.genai.yamlfiles import read_yaml

__all__ = ["ExchangeRates", "MissingRate", "RateTable", "RatesFile", "load_rates"]

_WHAT: Final = "exchange rates"


class MissingRate(ValueError):
    """No exchange rate for a day and currency: the message says which, and how to add one."""


@dataclass(frozen=True, slots=True)
class RateTable:
    """Rates by day: ``(day, ((currency, rate), ...))`` in date order."""

    by_day: tuple[tuple[date, tuple[tuple[str, Decimal], ...]], ...] = ()

    def lookup(self, on: date, currency: str) -> Decimal | None:
        """The rate of `currency` given for day `on`, or None."""
        for when, rates in self.by_day:
            if when == on:
                return next((r for code, r in rates if code == currency), None)
        return None

    def days_with(self, currency: str) -> list[date]:
        """The days that give a rate of `currency`, in order."""
        return [when for when, rates in self.by_day if any(code == currency for code, _ in rates)]


@type_name("mapping of date -> {currency: decimal string}")
def _rate_table(v: Any) -> RateTable:
    if not isinstance(v, Mapping) or not v:
        raise ValueError('must be a mapping of dates to rates, e.g. 2026-01-30: {EUR: "0.9213"}')
    problems: list[tuple[str, str]] = []
    table: dict[date, dict[str, Decimal]] = {}
    for raw_day, per_currency in v.items():
        where = str(raw_day)
        try:
            when = day(raw_day)
        except ValueError as exc:
            problems.append((where, str(exc)))
            continue
        if when in table:
            problems.append((where, "the same date twice"))
            continue
        if not isinstance(per_currency, Mapping) or not per_currency:
            problems.append((where, 'must be a mapping of currency codes to rates, e.g. {EUR: "0.9213"}'))
            continue
        rates: dict[str, Decimal] = {}
        for raw_code, raw_rate in per_currency.items():
            try:
                code = currency_code(raw_code)
            except ValueError as exc:
                problems.append((f"{where}.{raw_code}", str(exc)))
                continue
            rate = decimal_value(raw_rate)
            if rate is None or rate <= 0:
                problems.append(
                    (f"{where}.{code}", 'must be a positive decimal string such as "0.9213" (quote it)')
                )
                continue
            rates[code] = rate
        table[when] = rates
    if problems:
        raise Invalid(problems)
    return RateTable(tuple((when, tuple(sorted(table[when].items()))) for when in sorted(table)))


@dataclass(frozen=True, slots=True)
class RatesFile:
    """An exchange rates file."""

    config_unknown_key: ClassVar[str] = "unknown key (allowed: {known})"

    source: str = setting("", parse=text, required=True, doc="Where the rates come from.")
    base: str = setting("USD", parse=currency_code, doc="The currency converted from: the ledger's.")
    carry_forward_days: int = setting(
        0,
        parse=non_negative_int,
        doc="A day without a rate takes the latest rate of this many days before it; 0: none.",
    )
    rates: RateTable = setting(
        RateTable(),
        parse=_rate_table,
        required="per date, units of each currency for one unit of base",
        doc="Per date (`2026-01-30`), each currency's units for one unit of `base` (decimal strings).",
    )

    def check(self, report: Report) -> Self:
        """The base currency is not among the rates."""
        for when in self.rates.days_with(self.base):
            report.problem(f"rates.{when.isoformat()}.{self.base}", "is the base currency (rate 1)")
        return self


def load_rates(path: str | Path) -> RatesFile:
    """Read and validate an exchange rates file; raises `PriceConfigError` (also for unreadable YAML)."""
    path = Path(path)
    try:
        data = read_yaml(path)
    except (OSError, yaml.YAMLError) as exc:
        raise PriceConfigError(str(path), [f"(file): cannot read: {exc}"], what=_WHAT) from exc
    if not isinstance(data, Mapping):
        raise PriceConfigError(path.name, ["(file): must be a mapping with source and rates"], what=_WHAT)
    spec, errors = load(RatesFile, data)
    if errors:
        raise PriceConfigError(path.name, errors, what=_WHAT)
    return spec


@dataclass(frozen=True, slots=True)
class ExchangeRates:
    """The rates of one file, for converting the ledger's money (module rule). Immutable."""

    name: str  # the file name, cited in errors
    spec: RatesFile

    @classmethod
    def load(cls, path: str | Path) -> ExchangeRates:
        """The rates of the file at `path`; raises `PriceConfigError`."""
        return cls(Path(path).name, load_rates(path))

    @property
    def source(self) -> str:
        """Where the rates come from (the file's ``source``)."""
        return self.spec.source

    def rate(self, source: str, target: str, on: date) -> Decimal:
        """Units of `target` for one unit of `source` on day `on` (1 when they are the same)."""
        if source == target:
            return Decimal(1)
        base = self.spec.base
        if source != base:
            raise MissingRate(
                f"{self.name} converts from {base} only: cannot convert {source} to {target} "
                f"(on {on.isoformat()})"
            )
        for back in range(self.spec.carry_forward_days + 1):
            found = self.spec.rates.lookup(on - timedelta(days=back), target)
            if found is not None:
                return found
        held = self.spec.rates.days_with(target)
        span = f"it has {target} rates from {held[0]} to {held[-1]}" if held else f"it has no {target} rate"
        carry = self.spec.carry_forward_days
        within = f" or in the {carry} days before" if carry else ""
        raise MissingRate(
            f"no {base}->{target} exchange rate for {on.isoformat()}{within} in {self.name} ({span}): "
            f'add `{on.isoformat()}: {{{target}: "..."}}` under rates'
            + ("" if carry else ", or set carry_forward_days")
        )

    def convert(
        self, amount: Decimal, source: str, target: str, on: date, quantum: Decimal = COST_QUANTUM
    ) -> Decimal:
        """`amount` of `source` on day `on` in `target`, rounded half-even once to `quantum`."""
        return (amount * self.rate(source, target, on)).quantize(quantum, ROUND_HALF_EVEN)
