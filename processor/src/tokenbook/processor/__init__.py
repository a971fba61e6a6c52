"""tokenbook.processor: the in-app library (attribution, usage normalization, pricing, budgets,
redaction) and the `TokenbookSpanProcessor` that applies it to OTel spans.

The collector reuses `usage.read_counts` (the tuple form of `read_usage`), `call_kind`, `is_billable`,
`DescendantTracker`, `PriceCatalog` and `Redactor`.
"""

from tokenbook.genai.calls import DescendantTracker, call_kind, is_billable, is_cache_hit
from tokenbook.genai.pricing.catalog import Cost, PriceCatalog, UnitPrices, catalog_provider
from tokenbook.genai.pricing.overrides import PriceConfigError
from tokenbook.genai.redaction import Redactor, is_content_attribute
from tokenbook.genai.usage import Usage, read_usage
from tokenbook.processor.attribution import ATTRIBUTION_COLUMNS, attribute, context_id_of
from tokenbook.processor.autoconfigure import TokenbookConfigurator, configure
from tokenbook.processor.budgets import Budget, BudgetExceeded, budget
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
]
