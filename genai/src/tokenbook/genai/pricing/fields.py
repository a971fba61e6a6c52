"""The fields of the pricing YAML files (overrides, price books, exchange rates): their parsers and error.

Each parser takes a raw YAML value and returns the typed value, or raises `ValueError` saying how to
fix it (`tokenbook.genai.configspec` adds the key path). Amounts are decimal strings or integers: a
YAML float (``0.5`` unquoted) is binary and inexact, so it is refused.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from tokenbook.genai.configspec import type_name
from tokenbook.genai.pricing.providers import catalog_provider
from tokenbook.genai.pricing.tiers import normalize_tier

__all__ = [
    "PriceConfigError",
    "anything",
    "currency_code",
    "day",
    "decimal_value",
    "instant",
    "model_names",
    "provider_key",
    "provider_name",
    "rate",
    "text",
    "tier_name",
]


class PriceConfigError(ValueError):
    """A pricing file is invalid; `errors` lists every problem as ``"key.path: message"``."""

    def __init__(self, path: str, errors: list[str], *, what: str = "price overrides") -> None:
        """`what` names the kind of file (``price overrides``, ``price books``, ``exchange rates``)."""
        self.errors = tuple(errors)
        self.what = what
        super().__init__(f"invalid {what} {path}:\n  " + "\n  ".join(errors))


@type_name("string")
def text(v: Any) -> str:
    """A non-empty string, stripped."""
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a non-empty string")
    return v.strip()


@type_name("string")
def provider_name(v: Any) -> str:
    """A non-empty provider name, as written."""
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a non-empty string")
    return v


@type_name("name or list of names")
def model_names(v: Any) -> frozenset[str]:
    """A model name or a non-empty list of names, lower-cased."""
    names = [v] if isinstance(v, str) else v
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ValueError("must be a model name or a non-empty list of names")
    return frozenset(n.strip().lower() for n in names)


@type_name("3-letter code")
def currency_code(v: Any) -> str:
    """An ISO 4217 style currency code (``USD``), upper-cased."""
    if not isinstance(v, str) or len(v) != 3 or not v.isalpha():
        raise ValueError("must be a 3-letter currency code such as USD")
    return v.upper()


@type_name("tier name")
def tier_name(v: Any) -> str:
    """A service tier name, normalized (`tiers.normalize_tier`: ``default`` is ``standard``)."""
    tier = normalize_tier(v) if isinstance(v, str) else ""
    if not tier:
        raise ValueError("must be a service tier name such as flex, priority or batch")
    return tier


@type_name("date")
def day(v: Any) -> date:
    """A date (``2026-10-01``)."""
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, str):
        try:
            return date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ValueError("must be a date such as 2026-10-01")


@type_name("date or ISO datetime")
def instant(v: Any) -> datetime:
    """A date (midnight UTC) or an ISO datetime (naive = UTC)."""
    moment: datetime | None = None
    if isinstance(v, datetime):
        moment = v
    elif isinstance(v, date):
        moment = datetime.combine(v, time(0))
    elif isinstance(v, str):
        try:
            moment = datetime.fromisoformat(v.strip())
        except ValueError:
            moment = None
    if moment is None:
        raise ValueError("must be a date (2026-01-01) or an ISO datetime (2026-01-01T00:00:00Z)")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@type_name("decimal string")
def rate(v: Any) -> Decimal:
    """A price: a decimal string (or an integer), not negative."""
    value = decimal_value(v)
    if value is None:
        raise ValueError('must be a decimal string such as "0.50" (quote it: YAML floats are inexact)')
    if value < 0:
        raise ValueError("must not be negative")
    return value


@type_name("any")
def anything(v: Any) -> Any:
    """Any value, not interpreted."""
    return v


def decimal_value(raw: object) -> Decimal | None:
    """A finite `Decimal` from a decimal string or an integer; None for anything else (floats included)."""
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


def provider_key(name: str) -> str:
    """The catalog provider id of an OTel or catalog provider name (lower-cased name when unmapped)."""
    return catalog_provider(name) or name.strip().lower()
