"""Drift between the provider's figures and the ledger, read from ``v_reconcile_drift`` (migration 120).

`drift_rows` reads one window's rows (day x provider x model x token type) for one tenant scope;
`subjects` sums them per day x provider x model, the grain alerts are raised at; `beyond` says whether
a pair of figures drifts past a threshold. Money stays Decimal; an unknown figure (NULL: a token type
the export does not report, or calls without a price) is never taken as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any, Final, NamedTuple

from tokenbook.collector.storage.sqltemplate import render_query

__all__ = ["CAUSES", "DriftRow", "DriftSubject", "beyond", "drift_rows", "subjects"]

#: cause code -> what it means (docs/guide/reconciliation.md explains each at length)
CAUSES: Final = {
    "untraced_model": "calls billed but never traced: no call of this model in the ledger that day",
    "untraced_calls": "calls billed but never traced: the provider counts more than the ledger",
    "missing_reasoning": "missing reasoning tokens: input matches, the ledger records no reasoning tokens",
    "cache_not_reported": "cache tokens not reported: the ledger counted them as plain input",
    "unpriced_calls": "unpriced calls in the ledger: their cost is unknown, not 0",
    "price_difference": "price differences: the tokens match, the cost differs",
    "not_billed": "calls traced but not billed by the provider",
    "non_token_charge": "a charge that is not tokens (e.g. web search): the ledger records none",
    "unexplained": "a drift no visible cause explains",
}

#: Query(sql, parameters) -> (columns, types, rows): `Store.query_readonly` or the admin API client.
Query = Callable[[str, Mapping[str, Any]], tuple[list[str], list[str], list[tuple[Any, ...]]]]


class DriftRow(NamedTuple):
    """One row of ``v_reconcile_drift``."""

    tenant_id: str
    day: date
    provider: str
    model: str
    token_type: str
    provider_tokens: int | None
    ledger_tokens: int
    token_drift: int | None
    provider_cost: Decimal | None
    ledger_cost: Decimal | None
    cost_drift: Decimal | None
    provider_requests: int | None
    ledger_calls: int
    ledger_unpriced_calls: int
    ledger_reasoning_tokens: int
    cause: str


class DriftSubject(NamedTuple):
    """The drift of one day x provider x model, over its token types."""

    tenant_id: str
    day: date
    provider: str
    model: str
    provider_tokens: int | None  # None: the export reports no tokens for it
    ledger_tokens: int
    provider_cost: Decimal | None  # None: the export reports no money for it
    ledger_cost: Decimal | None  # None: some of its calls are unpriced
    causes: tuple[str, ...]  # the causes named on its rows, in row order


def drift_rows(
    query: Query,
    database: str,
    *,
    since: date,
    until: date,
    provider: str = "",
    tenant: str = "",
) -> list[DriftRow]:
    """The drift of the days [since, until) for the tenant scope `tenant` ('' = the whole organization),
    of one `provider` ('' = both)."""
    params = {"since": since, "until": until, "provider": provider, "tenant": tenant}
    columns, _, rows = query(render_query("reconcile/drift.sql", database), params)
    if rows and tuple(columns) != DriftRow._fields:
        raise RuntimeError(f"v_reconcile_drift columns {columns} do not match {DriftRow._fields}")
    return [DriftRow._make(r) for r in rows]


def _sum(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present[1:], present[0]) if present else None


def subjects(rows: Iterable[DriftRow]) -> list[DriftSubject]:
    """`rows` summed per tenant scope x day x provider x model (in first-seen order)."""
    groups: dict[tuple[str, date, str, str], list[DriftRow]] = {}
    for row in rows:
        groups.setdefault((row.tenant_id, row.day, row.provider, row.model), []).append(row)
    out = []
    for (tenant, day, provider, model), group in groups.items():
        ledger_cost = (
            None if any(r.ledger_cost is None for r in group) else _sum(r.ledger_cost for r in group)
        )
        provider_tokens = _sum(r.provider_tokens for r in group)
        if provider_tokens is None and all(r.cause == "not_billed" for r in group):
            provider_tokens = 0  # a model missing from the export of a day it covers: billed nothing
        out.append(
            DriftSubject(
                tenant_id=tenant,
                day=day,
                provider=provider,
                model=model,
                provider_tokens=provider_tokens,
                ledger_tokens=sum(r.ledger_tokens for r in group),
                provider_cost=_sum(r.provider_cost for r in group),
                ledger_cost=ledger_cost,
                causes=tuple(dict.fromkeys(r.cause for r in group if r.cause)),
            )
        )
    return out


def beyond(
    provider: int | Decimal | None, ledger: int | Decimal | None, threshold: Decimal, minimum: Decimal
) -> bool:
    """Whether the provider's figure and the ledger's differ by more than `threshold` (a fraction of the
    larger) and by at least `minimum`; False when either is unknown."""
    if provider is None or ledger is None:
        return False
    gap = abs(Decimal(provider) - Decimal(ledger))
    scale = max(abs(Decimal(provider)), abs(Decimal(ledger)))
    return gap >= minimum and gap > threshold * scale
