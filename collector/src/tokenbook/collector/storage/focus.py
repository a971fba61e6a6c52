"""FOCUS rows (FinOps Open Cost and Usage Specification, version 1.2) from the ledger.

One row per UTC day x tenant x project x model x token type (input, output with reasoning inside, cache
read, cache write), split further when calls were priced at different unit prices, read from the
``v_focus_daily`` view (billed calls with a price). Money is `Decimal` throughout:

* ``ListCost`` is the ledger's cost (catalog or override price); ``ListUnitPrice`` the price per
  ``PricingUnit`` (one million tokens).
* ``BilledCost`` (= ``EffectiveCost`` = ``ContractedCost``) is the list cost as the tenant's price book
  in force on that day bills it (a markup, a discount or a per-model price; without a book: the list
  cost), computed here at export time, rounded half-even to 12 places per row; ``x_PriceBook`` names
  the book and entry.
* Unpriced calls have no cost and are left out (`unpriced_calls` counts them); cache hits made no call.

Corrections (``ChargeClass = Correction``) come from `tokenbook.collector.storage.export_log`, which
records what each export wrote.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Any, Final, Protocol

from genai_prices.data_snapshot import get_snapshot

from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.genai.billing import COST_QUANTUM
from tokenbook.genai.pricing.providers import catalog_provider

__all__ = [
    "DECIMAL_COLUMNS",
    "FOCUS_COLUMNS",
    "FOCUS_VERSION",
    "LIST_PRICE",
    "TOKEN_TYPES",
    "Biller",
    "Billing",
    "FocusLine",
    "Query",
    "focus_record",
    "month_of",
    "unpriced_calls",
    "usage_lines",
]

FOCUS_VERSION: Final = "1.2"
#: token_type -> (SkuMeter, token direction, cache action).
TOKEN_TYPES: Final[Mapping[str, tuple[str, str, str]]] = {
    "input": ("Input Tokens", "input", "none"),
    "output": ("Output Tokens", "output", "none"),
    "cache_read": ("Cache Read Tokens", "input", "read"),
    "cache_write": ("Cache Write Tokens", "input", "write"),
}
#: The columns of an export, in order: FOCUS 1.2, then tokenbook's own (``x_``).
FOCUS_COLUMNS: Final = (
    "AvailabilityZone",
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingAccountType",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "CapacityReservationId",
    "CapacityReservationStatus",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargeFrequency",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "CommitmentDiscountCategory",
    "CommitmentDiscountId",
    "CommitmentDiscountName",
    "CommitmentDiscountQuantity",
    "CommitmentDiscountStatus",
    "CommitmentDiscountType",
    "CommitmentDiscountUnit",
    "ConsumedQuantity",
    "ConsumedUnit",
    "ContractedCost",
    "ContractedUnitPrice",
    "EffectiveCost",
    "InvoiceId",
    "InvoiceIssuerName",
    "ListCost",
    "ListUnitPrice",
    "PricingCategory",
    "PricingCurrency",
    "PricingCurrencyContractedUnitPrice",
    "PricingCurrencyEffectiveCost",
    "PricingCurrencyListUnitPrice",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "RegionId",
    "RegionName",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceCategory",
    "ServiceName",
    "ServiceSubcategory",
    "SkuId",
    "SkuMeter",
    "SkuPriceDetails",
    "SkuPriceId",
    "SubAccountId",
    "SubAccountName",
    "SubAccountType",
    "Tags",
    "x_PriceSource",
    "x_CatalogVersion",
    "x_PriceBook",
    "x_TokenType",
    "x_Calls",
)
#: Money and quantity columns (Decimal; exported as decimal strings or decimal128).
DECIMAL_COLUMNS: Final = frozenset(
    {
        "BilledCost",
        "CommitmentDiscountQuantity",
        "ConsumedQuantity",
        "ContractedCost",
        "ContractedUnitPrice",
        "EffectiveCost",
        "ListCost",
        "ListUnitPrice",
        "PricingCurrencyContractedUnitPrice",
        "PricingCurrencyEffectiveCost",
        "PricingCurrencyListUnitPrice",
        "PricingQuantity",
    }
)
_PER_UNIT: Final = 1_000_000  # tokens per PricingUnit
_PRICING_UNIT: Final = "1000000 Tokens"

#: Runs one read-only query: (sql, parameters) -> (columns, types, rows).
Query = Callable[[str, Mapping[str, Any]], tuple[list[str], list[str], Sequence[Sequence[Any]]]]


@dataclass(frozen=True, slots=True)
class Billing:
    """What a price book bills for one usage row: the cost, the unit price behind it (per million
    tokens; None when it is a percentage of a mixed list price) and which book entry decided it."""

    cost: Decimal
    unit_price: Decimal | None
    book: str  # "<file>#<book>/<entry>", or "" for the list price


class Biller(Protocol):
    """Turns a list-price usage row into the billed cost (a tenant's price book)."""

    def bill(self, line: FocusLine) -> Billing:
        """The billed cost of `line` (its list cost and quantity), by the book in force on its day."""
        ...


class _ListPrice:
    """No price book: the billed cost is the list cost."""

    def bill(self, line: FocusLine) -> Billing:
        return Billing(line.list_cost, line.list_unit_price, "")


LIST_PRICE: Final[Biller] = _ListPrice()


@dataclass(frozen=True, slots=True)
class FocusLine:
    """One FOCUS row before its presentation: its identity and its amounts."""

    day: date
    tenant: str
    project: str
    provider: str
    model: str
    currency: str
    price_source: str
    token_type: str
    list_unit_price: Decimal | None  # per million tokens
    catalog_version: str
    book: str = ""
    contracted_unit_price: Decimal | None = None
    list_cost: Decimal = Decimal(0)
    billed_cost: Decimal = Decimal(0)
    quantity: int = 0
    calls: int = 0
    correction: bool = False

    @property
    def key(self) -> tuple[Any, ...]:
        """The identity of the row: what two exports of the same charge compare by."""
        return (
            self.day,
            self.tenant,
            self.project,
            self.provider,
            self.model,
            self.currency,
            self.price_source,
            self.token_type,
            self.list_unit_price,
            self.catalog_version,
            self.book,
            self.contracted_unit_price,
        )


def month_of(day: date) -> tuple[date, date]:
    """The calendar month holding `day`: (first day, first day of the next month)."""
    start = day.replace(day=1)
    end = date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start, end


def usage_lines(
    query: Query,
    database: str,
    *,
    since: date,
    until: date,
    tenant: str = "",
    biller: Biller = LIST_PRICE,
) -> list[FocusLine]:
    """The usage rows of days [since, until), billed by `biller`."""
    params = {"since": since, "until": until, "tenant": tenant}
    columns, _, rows = query(render_query("focus_daily.sql", database), params)
    lines = []
    for raw in rows:
        r = dict(zip(columns, raw, strict=True))
        line = FocusLine(
            day=r["day"],
            tenant=r["tenant_id"],
            project=r["project_id"],
            provider=r["provider"],
            model=r["model"],
            currency=r["currency"],
            price_source=r["price_source"],
            token_type=r["token_type"],
            list_unit_price=None if r["ListUnitPrice"] is None else _plain(r["ListUnitPrice"]),
            catalog_version=r["x_CatalogVersion"],
            list_cost=r["ListCost"],
            quantity=int(r["ConsumedQuantity"]),
            calls=int(r["x_Calls"]),
        )
        billing = biller.bill(line)
        lines.append(
            replace(
                line,
                billed_cost=billing.cost.quantize(COST_QUANTUM, ROUND_HALF_EVEN),
                contracted_unit_price=billing.unit_price,
                book=billing.book,
            )
        )
    return lines


def unpriced_calls(query: Query, database: str, *, since: date, until: date, tenant: str = "") -> int:
    """Billed calls of days [since, until) without a price: not in the export (their cost is unknown)."""
    params = {"since": _midnight(since), "until": _midnight(until), "tenant": tenant}
    _, _, rows = query(render_query("focus_unpriced.sql", database), params)
    return sum(int(r[3]) for r in rows)


def focus_record(
    line: FocusLine,
    *,
    billing_period: tuple[date, date] | None = None,
    billing_account: str = "tokenbook",
) -> dict[str, Any]:
    """`line` as a FOCUS row (column -> value; Decimal money, aware datetimes, JSON text, None).

    `billing_period` defaults to the calendar month of the line's day; a correction carries the
    billing period of the export it appears in.
    """
    period_start, period_end = billing_period or month_of(line.day)
    meter, direction, cache_action = TOKEN_TYPES[line.token_type]
    provider = provider_name(line.provider)
    sku = f"{line.provider}/{line.model}/{line.token_type}"
    pricing_quantity = Decimal(line.quantity).scaleb(-6)
    what = "correction of " if line.correction else ""
    return {
        "AvailabilityZone": None,
        "BilledCost": line.billed_cost,
        "BillingAccountId": billing_account,
        "BillingAccountName": billing_account,
        "BillingAccountType": None,
        "BillingCurrency": line.currency,
        "BillingPeriodEnd": _midnight(period_end),
        "BillingPeriodStart": _midnight(period_start),
        "CapacityReservationId": None,
        "CapacityReservationStatus": None,
        "ChargeCategory": "Usage",
        "ChargeClass": "Correction" if line.correction else None,
        "ChargeDescription": f"{what}{line.model} {meter.lower()} ({provider})",
        "ChargeFrequency": "Usage-Based",
        "ChargePeriodEnd": _midnight(date.fromordinal(line.day.toordinal() + 1)),
        "ChargePeriodStart": _midnight(line.day),
        "CommitmentDiscountCategory": None,
        "CommitmentDiscountId": None,
        "CommitmentDiscountName": None,
        "CommitmentDiscountQuantity": None,
        "CommitmentDiscountStatus": None,
        "CommitmentDiscountType": None,
        "CommitmentDiscountUnit": None,
        "ConsumedQuantity": Decimal(line.quantity),
        "ConsumedUnit": "Tokens",
        "ContractedCost": line.billed_cost,
        "ContractedUnitPrice": line.contracted_unit_price,
        "EffectiveCost": line.billed_cost,
        "InvoiceId": None,
        "InvoiceIssuerName": provider,
        "ListCost": line.list_cost,
        "ListUnitPrice": line.list_unit_price,
        "PricingCategory": "Standard",
        "PricingCurrency": line.currency,
        "PricingCurrencyContractedUnitPrice": line.contracted_unit_price,
        "PricingCurrencyEffectiveCost": line.billed_cost,
        "PricingCurrencyListUnitPrice": line.list_unit_price,
        "PricingQuantity": pricing_quantity,
        "PricingUnit": _PRICING_UNIT,
        "ProviderName": provider,
        "PublisherName": provider,
        "RegionId": None,
        "RegionName": None,
        "ResourceId": None,
        "ResourceName": None,
        "ResourceType": None,
        "ServiceCategory": "AI and Machine Learning",
        "ServiceName": f"{provider} API",
        "ServiceSubcategory": "Generative AI",
        "SkuId": sku,
        "SkuMeter": meter,
        "SkuPriceDetails": json.dumps(
            {
                "x_ModelDeveloper": line.provider,
                "x_ModelId": line.model,
                "x_TokenDirection": direction,
                "x_CacheAction": cache_action,
            },
            sort_keys=True,
        ),
        "SkuPriceId": f"{sku}@{_text(line.list_unit_price)}",
        "SubAccountId": line.tenant,
        "SubAccountName": line.tenant,
        "SubAccountType": "Tenant",
        "Tags": json.dumps({"project": line.project}, sort_keys=True),
        "x_PriceSource": line.price_source,
        "x_CatalogVersion": line.catalog_version,
        "x_PriceBook": line.book,
        "x_TokenType": line.token_type,
        "x_Calls": line.calls,
    }


@lru_cache(maxsize=256)
def provider_name(provider: str) -> str:
    """The provider's display name in the price catalog (``OpenAI``), else the name as recorded."""
    provider_id = catalog_provider(provider)
    for p in get_snapshot().providers:
        if p.id == provider_id:
            return str(p.name)
    return provider or "unknown"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _plain(value: Decimal) -> Decimal:
    """`value` without trailing zeros (``2.500000000000`` -> ``2.5``), never in exponent form."""
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


def _text(value: Decimal | None) -> str:
    return "mixed" if value is None else f"{value:f}"
