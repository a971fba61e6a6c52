"""The provider's own figures, as imported for reconciliation: rows of ``provider_usage`` (migration 120).

A `ProviderRow` is one bucket x model x token type of a provider export (`provider_exports` reads
them from OpenAI's and Anthropic's documented formats). `import_rows` writes one import: every row
gets the same ``version``, and for a tenant scope, provider, kind and day the latest import is the
provider's word (``v_provider_usage``), so importing a corrected export replaces the earlier one.
``v_reconcile_drift`` compares them with the ledger. `row_to_json` / `row_from_json` carry rows over
the admin API (``POST /v1/reconcile``) exactly: money as decimal strings, times as ISO 8601.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NamedTuple, Protocol

from tokenbook.collector.storage.tenancy import TENANT_PATTERN

__all__ = [
    "KINDS",
    "PROVIDERS",
    "PROVIDER_COLUMNS",
    "RECONCILE_PATH",
    "TOKEN_TYPES",
    "ProviderRow",
    "import_rows",
    "new_version",
    "row_from_json",
    "row_to_json",
]

#: The admin API path that imports rows into a collector's store (``tokenbook reconcile``).
RECONCILE_PATH: Final = "/v1/reconcile"
PROVIDERS: Final = ("openai", "anthropic")
KINDS: Final = ("usage", "cost")
#: Disjoint token types: input is the uncached input; output includes reasoning; other is not tokens.
TOKEN_TYPES: Final = ("input", "cache_read", "cache_write", "output", "other")


class ProviderRow(NamedTuple):
    """One figure of a provider export. Field order is the ``provider_usage`` column order after the
    import's own columns (imported_at, version, tenant_id)."""

    provider: str  # openai | anthropic
    kind: str  # usage (tokens) | cost (money)
    source: str  # the export format, e.g. openai.usage.completions (`provider_exports.FORMATS`)
    file: str  # the file's name
    bucket_start: datetime  # UTC
    bucket_end: datetime
    model: str  # as the provider names it; "" when not grouped by model or not a model charge
    token_type: str  # input | cache_read | cache_write | output | other
    line_item: str = ""  # the cost line as the provider words it (OpenAI line_item, Anthropic description)
    project: str = ""  # OpenAI project_id, Anthropic workspace
    api_key: str = ""
    service_tier: str = ""
    tokens: int | None = None  # None: this export reports no tokens (a cost export)
    requests: int | None = None  # model requests, on the input row of a usage result
    cost: Decimal | None = None  # None: this export reports no money (a usage export)
    currency: str = "USD"

    @property
    def day(self) -> date:
        """The UTC day of the bucket."""
        return self.bucket_start.astimezone(UTC).date()


PROVIDER_COLUMNS: Final = (
    "imported_at",
    "version",
    "tenant_id",
    *ProviderRow._fields[:6],
    "day",
    *ProviderRow._fields[6:],
)


class Inserter(Protocol):
    """Writes rows into a table of the store (`Store.insert_rows`)."""

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows` (values in `columns` order) into `table`."""
        ...


def new_version() -> int:
    """The version of a new import (microseconds since the epoch: later imports win)."""
    return time.time_ns() // 1000


def import_rows(
    store: Inserter, rows: Sequence[ProviderRow], *, tenant: str = "", version: int | None = None
) -> int:
    """Write `rows` for the tenant scope `tenant` ('' = the whole organization) as part of the import
    `version` (a new one when None: the parts of one import sent separately share it); returns it.
    Raises ValueError for a tenant ID that is not one."""
    if tenant and not TENANT_PATTERN.fullmatch(tenant):
        raise ValueError(f"invalid tenant {tenant!r}")
    version = new_version() if version is None else version
    now = datetime.now(UTC)
    values = [(now, version, tenant, *r[:6], r.day, *r[6:]) for r in rows]
    if values:
        store.insert_rows("provider_usage", PROVIDER_COLUMNS, values)
    return version


def row_to_json(row: ProviderRow) -> dict[str, Any]:
    """A row as JSON (exact: money as a decimal string, times as ISO 8601)."""
    doc = row._asdict()
    doc["bucket_start"] = row.bucket_start.isoformat()
    doc["bucket_end"] = row.bucket_end.isoformat()
    doc["cost"] = None if row.cost is None else str(row.cost)
    return doc


def _time(doc: Mapping[str, Any], key: str) -> datetime:
    value = datetime.fromisoformat(str(doc[key]))
    if value.tzinfo is None:
        raise ValueError(f"{key}: needs a time zone")
    return value.astimezone(UTC)


def _count(doc: Mapping[str, Any], key: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key}: must be an integer or null")
    return value


def row_from_json(doc: Any) -> ProviderRow:
    """Inverse of `row_to_json`; raises ValueError naming the field that is wrong."""
    if not isinstance(doc, Mapping):
        raise ValueError("a row must be an object")
    unknown = set(doc) - set(ProviderRow._fields)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    try:
        texts = {
            k: doc.get(k, "")
            for k in ("source", "file", "model", "line_item", "project", "api_key", "service_tier")
        }
        if not all(isinstance(v, str) for v in texts.values()):
            raise ValueError("text fields must be strings")
        provider, kind, token_type = doc.get("provider"), doc.get("kind"), doc.get("token_type")
        if provider not in PROVIDERS or kind not in KINDS or token_type not in TOKEN_TYPES:
            raise ValueError(
                f"provider, kind and token_type must be one of {PROVIDERS}, {KINDS}, {TOKEN_TYPES}"
            )
        cost = doc.get("cost")
        if cost is not None and not isinstance(cost, str):
            raise ValueError("cost: must be a decimal string or null")
        currency = doc.get("currency", "USD")
        if not isinstance(currency, str) or len(currency) != 3:
            raise ValueError("currency: must be an ISO 4217 code")
        return ProviderRow(
            provider=provider,
            kind=kind,
            bucket_start=_time(doc, "bucket_start"),
            bucket_end=_time(doc, "bucket_end"),
            token_type=token_type,
            tokens=_count(doc, "tokens"),
            requests=_count(doc, "requests"),
            cost=None if cost is None else Decimal(cost),
            currency=currency,
            **texts,
        )
    except (KeyError, TypeError, InvalidOperation) as exc:
        raise ValueError(f"invalid row: {exc!r}") from None
