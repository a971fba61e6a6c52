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
        prices:                         # per million tokens, as decimal strings (or integers)
          input_mtok: "0.50"
          output_mtok: "1.50"
          cache_read_mtok: "0.05"       # optional
          cache_write_mtok: "0.60"      # optional
          output_reasoning_mtok: "2"    # optional

Floats are rejected (``0.5`` unquoted would be a binary float: quote it). Every problem is reported at
once in `PriceConfigError`, each naming its key path (``models[2].prices.input_mtok: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

import yaml

from tokenbook.genai.pricing.providers import catalog_provider
from tokenbook.genai.pricing.rates import PRICE_KEYS, UnitPrices

__all__ = ["OverrideEntry", "PriceConfigError", "load_overrides", "parse_overrides"]

_ENTRY_KEYS: Final = frozenset(
    {"id", "model", "provider", "source", "checked", "from", "until", "currency", "prices"}
)


class PriceConfigError(ValueError):
    """A price overrides file is invalid; `errors` lists every problem as ``"key.path: message"``."""

    def __init__(self, path: str, errors: list[str]) -> None:
        self.errors = tuple(errors)
        super().__init__(f"invalid price overrides {path}:\n  " + "\n  ".join(errors))


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


def load_overrides(path: str | Path) -> tuple[OverrideEntry, ...]:
    """Read and validate an overrides file; raises `PriceConfigError` (also for unreadable YAML)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PriceConfigError(str(path), [f"(file): cannot read: {exc}"]) from exc
    return parse_overrides(data, name=path.name)


def parse_overrides(data: object, *, name: str = "overrides.yaml") -> tuple[OverrideEntry, ...]:
    """Validate parsed YAML; `name` is the file name that prices cite as their source."""
    errors: list[str] = []
    entries: list[OverrideEntry] = []
    if not isinstance(data, Mapping) or not isinstance(data.get("models"), list):
        raise PriceConfigError(name, ["models: must be a list of price entries"])
    unknown_top = sorted(str(k) for k in data if k not in ("models", "version"))
    errors.extend(f"{k}: unknown key (allowed: models, version)" for k in unknown_top)
    seen: set[str] = set()
    for i, raw in enumerate(data["models"]):
        entry = _parse_entry(raw, f"models[{i}]", name, errors)
        if entry is None:
            continue
        if entry.id in seen:
            errors.append(f"models[{i}].id: duplicate id {entry.id!r}")
        seen.add(entry.id)
        entries.append(entry)
    if errors:
        raise PriceConfigError(name, errors)
    return tuple(entries)


def _parse_entry(raw: object, at: str, file_name: str, errors: list[str]) -> OverrideEntry | None:

    if not isinstance(raw, Mapping):
        errors.append(f"{at}: must be a mapping with id, model, source, checked, prices")
        return None
    before = len(errors)
    errors.extend(
        f"{at}.{k}: unknown key (allowed: {', '.join(sorted(_ENTRY_KEYS))})"
        for k in sorted(str(k) for k in raw if k not in _ENTRY_KEYS)
    )
    entry_id = _required_str(raw, "id", at, errors)
    source = _required_str(raw, "source", at, errors)
    models = _models(raw.get("model"), f"{at}.model", errors)
    provider = raw.get("provider")
    if provider is not None and (not isinstance(provider, str) or not provider.strip()):
        errors.append(f"{at}.provider: must be a non-empty string")
    currency = raw.get("currency", "USD")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        errors.append(f"{at}.currency: must be a 3-letter currency code such as USD")
    checked = _date(raw.get("checked"), f"{at}.checked", errors, required=True)
    valid_from = _instant(raw.get("from"), f"{at}.from", errors)
    valid_until = _instant(raw.get("until"), f"{at}.until", errors)
    if valid_from and valid_until and valid_until <= valid_from:
        errors.append(f"{at}.until: must be after from ({valid_from.isoformat()})")
    rates = _prices(raw.get("prices"), f"{at}.prices", errors)
    if len(errors) > before or entry_id is None or source is None or checked is None or rates is None:
        return None
    prices = UnitPrices(
        provider=str(provider or "*"),
        model=sorted(models)[0],
        source=f"{file_name}#{entry_id}",
        currency=str(currency).upper(),
        input_mtok=rates["input_mtok"],
        output_mtok=rates["output_mtok"],
        cache_read_mtok=rates["cache_read_mtok"],
        cache_write_mtok=rates["cache_write_mtok"],
        output_reasoning_mtok=rates["output_reasoning_mtok"],
    )
    return OverrideEntry(
        id=entry_id,
        models=models,
        provider=_provider_key(provider) if isinstance(provider, str) else None,
        valid_from=valid_from,
        valid_until=valid_until,
        source=source,
        checked=checked,
        prices=prices,
    )


def _required_str(raw: Mapping[object, object], key: str, at: str, errors: list[str]) -> str | None:
    value = raw.get(key)
    if value is None:
        errors.append(f"{at}.{key}: required")
        return None
    if not isinstance(value, str) or not value.strip():
        errors.append(f"{at}.{key}: must be a non-empty string")
        return None
    return value.strip()


def _models(value: object, at: str, errors: list[str]) -> frozenset[str]:
    names = [value] if isinstance(value, str) else value
    if value is None:
        errors.append(f"{at}: required (a model name or a list of names)")
        return frozenset()
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        errors.append(f"{at}: must be a model name or a non-empty list of names")
        return frozenset()
    return frozenset(n.strip().lower() for n in names)


def _date(value: object, at: str, errors: list[str], *, required: bool) -> date | None:
    if value is None:
        if required:
            errors.append(f"{at}: required (the date the price was last checked, e.g. 2026-10-01)")
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    errors.append(f"{at}: must be a date such as 2026-10-01")
    return None


def _instant(value: object, at: str, errors: list[str]) -> datetime | None:
    """A date (midnight UTC) or an ISO datetime (naive = UTC)."""
    if value is None:
        return None
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(0))
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            moment = None
    if moment is None:
        errors.append(f"{at}: must be a date (2026-01-01) or an ISO datetime (2026-01-01T00:00:00Z)")
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _prices(value: object, at: str, errors: list[str]) -> dict[str, Decimal | None] | None:

    if not isinstance(value, Mapping):
        errors.append(f"{at}: required mapping of per-million-token prices (input_mtok, output_mtok, ...)")
        return None
    rates: dict[str, Decimal | None] = dict.fromkeys(PRICE_KEYS)
    ok = True
    for key, raw in value.items():
        if key not in PRICE_KEYS:
            errors.append(f"{at}.{key}: unknown price (allowed: {', '.join(PRICE_KEYS)})")
            ok = False
            continue
        rate = _decimal(raw)
        if rate is None:
            errors.append(
                f'{at}.{key}: must be a decimal string such as "0.50" (quote it: YAML floats are inexact)'
            )
            ok = False
            continue
        if rate < 0:
            errors.append(f"{at}.{key}: must not be negative")
            ok = False
            continue
        rates[str(key)] = rate
    if ok and rates["input_mtok"] is None and rates["output_mtok"] is None:
        errors.append(f"{at}: needs at least input_mtok or output_mtok")
        ok = False
    return rates if ok else None


def _decimal(raw: object) -> Decimal | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, str):
        try:
            value = Decimal(raw.strip())
        except InvalidOperation:
            return None
        return value if value.is_finite() else None
    return None
