"""tokenbook.processor: the in-app OpenTelemetry span processor and its helpers.

`TokenbookSpanProcessor` wraps the downstream processor: it copies attribution from Baggage onto
spans (`attribute`), prices model calls, charges in-app budgets (`budget`), redacts content and hands
an enriched copy on; `reserve` holds a call's estimate against the collector's hard limits first.
`configure()` sets the whole pipeline up from the standard ``OTEL_*`` variables.
The call model it applies (usage, call kinds, pricing, redaction) is `tokenbook.genai`'s, shared with
the collector; the names below re-export the parts an application uses.

Names are resolved lazily (PEP 562): importing one module of the package does not load the OTel SDK,
the exporters or the price catalog until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenbook.genai.attribution import ATTRIBUTION_COLUMNS, context_id_of
    from tokenbook.genai.calls import DescendantTracker, call_kind, is_billable, is_cache_hit
    from tokenbook.genai.pricing.catalog import PriceCatalog
    from tokenbook.genai.pricing.overrides import PriceConfigError
    from tokenbook.genai.pricing.providers import catalog_provider
    from tokenbook.genai.pricing.rates import Cost, UnitPrices
    from tokenbook.genai.redaction import Redactor, is_content_attribute
    from tokenbook.genai.usage import Usage, read_usage
    from tokenbook.processor.attribution import attribute
    from tokenbook.processor.autoconfigure import TokenbookConfigurator, configure
    from tokenbook.processor.budgets import Budget, BudgetExceeded, budget
    from tokenbook.processor.reservations import (
        Reservation,
        ReservationError,
        ReservationRefused,
        reserve,
    )
    from tokenbook.processor.span_processor import TokenbookSpanProcessor

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "Budget",
    "BudgetExceeded",
    "Cost",
    "DescendantTracker",
    "PriceCatalog",
    "PriceConfigError",
    "Redactor",
    "Reservation",
    "ReservationError",
    "ReservationRefused",
    "TokenbookConfigurator",
    "TokenbookSpanProcessor",
    "UnitPrices",
    "Usage",
    "attribute",
    "budget",
    "call_kind",
    "catalog_provider",
    "configure",
    "context_id_of",
    "is_billable",
    "is_cache_hit",
    "is_content_attribute",
    "read_usage",
    "reserve",
]

_HOME = {
    "ATTRIBUTION_COLUMNS": "tokenbook.genai.attribution",
    "context_id_of": "tokenbook.genai.attribution",
    "DescendantTracker": "tokenbook.genai.calls",
    "call_kind": "tokenbook.genai.calls",
    "is_billable": "tokenbook.genai.calls",
    "is_cache_hit": "tokenbook.genai.calls",
    "PriceCatalog": "tokenbook.genai.pricing.catalog",
    "PriceConfigError": "tokenbook.genai.pricing.overrides",
    "catalog_provider": "tokenbook.genai.pricing.providers",
    "Cost": "tokenbook.genai.pricing.rates",
    "UnitPrices": "tokenbook.genai.pricing.rates",
    "Redactor": "tokenbook.genai.redaction",
    "is_content_attribute": "tokenbook.genai.redaction",
    "Usage": "tokenbook.genai.usage",
    "read_usage": "tokenbook.genai.usage",
    "attribute": "tokenbook.processor.attribution",
    "TokenbookConfigurator": "tokenbook.processor.autoconfigure",
    "configure": "tokenbook.processor.autoconfigure",
    "Budget": "tokenbook.processor.budgets",
    "BudgetExceeded": "tokenbook.processor.budgets",
    "budget": "tokenbook.processor.budgets",
    "Reservation": "tokenbook.processor.reservations",
    "ReservationError": "tokenbook.processor.reservations",
    "ReservationRefused": "tokenbook.processor.reservations",
    "reserve": "tokenbook.processor.reservations",
    "TokenbookSpanProcessor": "tokenbook.processor.span_processor",
}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'tokenbook.processor' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
