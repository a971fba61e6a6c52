"""FOCUS rows (FinOps Open Cost and Usage Specification, version 1.2) from the ledger.

One row per UTC day x tenant x project x model x service tier x token type (input, output with
reasoning inside, cache read, five-minute and one-hour cache write), split further when calls were
priced or billed at different unit prices or by different price book entries, read from the
``v_focus_daily`` view (billed calls with a price). Money is `Decimal` throughout:

* ``ListCost`` is the ledger's list cost (catalog or override price); ``ListUnitPrice`` the price per
  ``PricingUnit`` (one million tokens).
* ``BilledCost`` (= ``EffectiveCost`` = ``ContractedCost``) is what the tenant's price book bills
  (``billed_cost`` in the ledger: the list cost without a book); ``ContractedUnitPrice`` its unit price
  when exact; ``x_PriceBook`` names the book and entry (``<file>#<book>/<entry>``).
* Unpriced calls have no cost and are left out (`unpriced_calls` counts them); cache hits made no call.
* In another currency (`Conversion`, ``tokenbook export focus --currency``), ``BillingCurrency`` is the
  target and the ledger's currency is the ``PricingCurrency``: the unit prices are converted at the
  day's rate, rounded half-even once to 1e-6 per million tokens (the ledger's 1e-12 per token), and the
  costs are those unit prices times the quantity, so that FOCUS's cost = unit price x quantity stays
  exact; a billed cost without an exact unit price is converted itself, rounded half-even once to
  1e-12. The ``PricingCurrency*`` columns keep the ledger currency's figures and ``x_ExchangeRate`` the
  rate.

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
from typing import Any, Final

from genai_prices.data_snapshot import get_snapshot

from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.genai.billing import COST_QUANTUM
from tokenbook.genai.pricing.exchange import ExchangeRates
from tokenbook.genai.pricing.providers import catalog_provider

__all__ = [
    "DECIMAL_COLUMNS",
    "FOCUS_COLUMNS",
    "FOCUS_VERSION",
    "TOKEN_TYPES",
    "Conversion",
    "FocusLine",
    "Query",
    "convert_line",
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
    "cache_write_1h": ("Cache Write Tokens (1 hour)", "input", "write"),
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
    "x_ServiceTier",
    "x_TokenType",
    "x_ExchangeRate",
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
        "x_ExchangeRate",
    }
)
_PER_UNIT: Final = 1_000_000  # tokens per PricingUnit
#: A unit price per million tokens to the ledger's quantum per token (1e-12): 6 places.
_UNIT_QUANTUM: Final = Decimal("1e-6")
_PRICING_UNIT: Final = "1000000 Tokens"

#: Runs one read-only query: (sql, parameters) -> (columns, types, rows).
Query = Callable[[str, Mapping[str, Any]], tuple[list[str], list[str], Sequence[Sequence[Any]]]]


@dataclass(frozen=True, slots=True)
class Conversion:
    """Converting FOCUS rows into `currency` with dated exchange `rates` (module docstring)."""

    currency: str
    rates: ExchangeRates


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
    book: str = ""  # "<file>#<book>/<entry>", "" without a book
    contracted_unit_price: Decimal | None = None  # the billed unit price, when exact
    list_cost: Decimal = Decimal(0)
    billed_cost: Decimal = Decimal(0)
    quantity: int = 0
    calls: int = 0
    correction: bool = False
    service_tier: str = ""
    # In another currency: the ledger currency's figures, and the day's rate (else ""/None).
    pricing_currency: str = ""
    pricing_list_unit_price: Decimal | None = None
    pricing_contracted_unit_price: Decimal | None = None
    pricing_billed_cost: Decimal | None = None
    exchange_rate: Decimal | None = None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> FocusLine:
        """The line a row of `focus_daily.sql` (a usage row of the ledger) or of the
        ``focus_export_rows`` table (a line an export wrote; it also holds the correction flag and
        the conversion's columns) holds, by column name; unit prices and rates without trailing zeros."""
        return cls(
            day=row["day"],
            tenant=row["tenant_id"],
            project=row["project_id"],
            provider=row["provider"],
            model=row["model"],
            currency=row["currency"],
            price_source=row["price_source"],
            token_type=row["token_type"],
            list_unit_price=_plain_or_none(row["list_unit_price"]),
            catalog_version=row["catalog_version"],
            book=row["book"],
            contracted_unit_price=_plain_or_none(row["contracted_unit_price"]),
            list_cost=row["list_cost"],
            billed_cost=row["billed_cost"],
            quantity=int(row["quantity"]),
            calls=int(row["calls"]),
            correction=bool(row.get("correction", False)),
            service_tier=row["service_tier"],
            pricing_currency=row.get("pricing_currency", ""),
            pricing_list_unit_price=_plain_or_none(row.get("pricing_list_unit_price")),
            pricing_contracted_unit_price=_plain_or_none(row.get("pricing_contracted_unit_price")),
            pricing_billed_cost=row.get("pricing_billed_cost"),
            exchange_rate=_plain_or_none(row.get("exchange_rate")),
        )

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
            self.service_tier,
            self.pricing_currency,
            self.pricing_list_unit_price,
            self.pricing_contracted_unit_price,
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
    conversion: Conversion | None = None,
) -> list[FocusLine]:
    """The usage rows of days [since, until), converted by `conversion` when given. Raises
    `MissingRate` (a ValueError) for a day without an exchange rate."""
    params = {"since": since, "until": until, "tenant": tenant}
    columns, _, rows = query(render_query("focus_daily.sql", database), params)
    lines = [FocusLine.of(dict(zip(columns, raw, strict=True))) for raw in rows]
    return lines if conversion is None else [convert_line(line, conversion) for line in lines]


def convert_line(line: FocusLine, conversion: Conversion) -> FocusLine:
    """`line` in the conversion's currency at its day's rate (module docstring); unchanged when it is
    in that currency already. Raises `MissingRate` for a day or currency without a rate."""
    target = conversion.currency
    if line.currency == target:
        return line
    rate = conversion.rates.rate(line.currency, target, line.day)
    tokens = Decimal(line.quantity).scaleb(-6)  # PricingQuantity

    def unit(price: Decimal | None) -> Decimal | None:
        return None if price is None else _plain((price * rate).quantize(_UNIT_QUANTUM, ROUND_HALF_EVEN))

    def cost(unit_price: Decimal | None, amount: Decimal) -> Decimal:
        if unit_price is not None:
            return (unit_price * tokens).quantize(COST_QUANTUM)  # exact: at most 12 places
        return (amount * rate).quantize(COST_QUANTUM, ROUND_HALF_EVEN)

    list_unit, contracted_unit = unit(line.list_unit_price), unit(line.contracted_unit_price)
    return replace(
        line,
        currency=target,
        list_unit_price=list_unit,
        contracted_unit_price=contracted_unit,
        list_cost=cost(list_unit, line.list_cost),
        billed_cost=cost(contracted_unit, line.billed_cost),
        pricing_currency=line.currency,
        pricing_list_unit_price=line.list_unit_price,
        pricing_contracted_unit_price=line.contracted_unit_price,
        pricing_billed_cost=line.billed_cost,
        exchange_rate=rate,
    )


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
    tier = f", {line.service_tier} tier" if line.service_tier else ""
    if line.pricing_currency:  # converted: the ledger currency's figures
        pricing_unit, pricing_contracted = line.pricing_list_unit_price, line.pricing_contracted_unit_price
        pricing_billed = line.pricing_billed_cost
    else:
        pricing_unit, pricing_contracted = line.list_unit_price, line.contracted_unit_price
        pricing_billed = line.billed_cost
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
        "ChargeDescription": f"{what}{line.model} {meter.lower()} ({provider}{tier})",
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
        "PricingCurrency": line.pricing_currency or line.currency,
        "PricingCurrencyContractedUnitPrice": pricing_contracted,
        "PricingCurrencyEffectiveCost": pricing_billed,
        "PricingCurrencyListUnitPrice": pricing_unit,
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
                "x_ServiceTier": line.service_tier or "standard",
            },
            sort_keys=True,
        ),
        "SkuPriceId": f"{sku}{_tier_suffix(line.service_tier)}@{_text(pricing_unit)}",
        "SubAccountId": line.tenant,
        "SubAccountName": line.tenant,
        "SubAccountType": "Tenant",
        "Tags": json.dumps({"project": line.project}, sort_keys=True),
        "x_PriceSource": line.price_source,
        "x_CatalogVersion": line.catalog_version,
        "x_PriceBook": line.book,
        "x_ServiceTier": line.service_tier,
        "x_TokenType": line.token_type,
        "x_ExchangeRate": line.exchange_rate,
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


def _tier_suffix(tier: str) -> str:
    return f"#{tier}" if tier and tier != "standard" else ""


def _plain_or_none(value: Decimal | None) -> Decimal | None:
    return None if value is None else _plain(value)


def _plain(value: Decimal) -> Decimal:
    """`value` without trailing zeros (``2.500000000000`` -> ``2.5``), never in exponent form."""
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal == normal.to_integral_value() else normal


def _text(value: Decimal | None) -> str:
    return "mixed" if value is None else f"{value:f}"
