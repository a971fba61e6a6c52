"""What a call is billed: its billing status, and money in the ledger's quantum.

Money is `Decimal` with exactly 12 places (ClickHouse ``Decimal(18,12)``). On hot paths amounts are
carried as integer pico-dollars (1e-12 of the currency unit), which are exact; `money` and
`money_text` turn them into the `Decimal` or the 12-place text the ledger and the span attributes
hold. A `Picos` is one call's components and total; the total is exactly the sum of the parts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, NamedTuple

__all__ = [
    "COST_QUANTUM",
    "NO_COSTS",
    "STATUS_CACHE_HIT",
    "STATUS_DUPLICATE_LAYER",
    "STATUS_NOT_BILLABLE",
    "STATUS_PRICED",
    "STATUS_UNPRICED",
    "STATUS_WRAPPER",
    "UNBILLED_STATUSES",
    "Costs",
    "Picos",
    "money",
    "money_text",
]

#: Billed, with a price from the catalog or an override.
STATUS_PRICED: Final = "priced"
#: Billed, but no price is known: costs are NULL (never 0) and the reason is the price source.
STATUS_UNPRICED: Final = "unpriced"
#: A response served from a cache without a model call: costs 0.
STATUS_CACHE_HIT: Final = "cache_hit"
#: A model span without usage (a failed attempt): written to the ledger, not billed.
STATUS_NOT_BILLABLE: Final = "not_billable"

#: Not billed: another span of the same call bills it (a parent layer, the same response ID, or a
#: cross-layer match). Costs stay in the row for audit; every total leaves the row out.
STATUS_DUPLICATE_LAYER: Final = "duplicate_layer"
#: Not billed: a wrapper (agent, chain, workflow) whose descendants carry the usage. Costs kept, not totaled.
STATUS_WRAPPER: Final = "wrapper"
#: Statuses of rows that no total, view, report or budget counts (`UNBILLED_STATUSES`).
UNBILLED_STATUSES: Final = frozenset({STATUS_DUPLICATE_LAYER, STATUS_WRAPPER})

#: Costs are rounded half-even to this quantum.
COST_QUANTUM: Final = Decimal("1e-12")
_PICOS_PER_UNIT: Final = 10**12
_ZERO: Final = Decimal(0).scaleb(-12)


def money(picos: int) -> Decimal:
    """Integer pico-dollars as a `Decimal` with 12 places (``Decimal("0.004125000000")``)."""
    return _ZERO if picos == 0 else Decimal(picos).scaleb(-12)


def money_text(picos: int) -> str:
    """Integer pico-dollars as 12-place decimal text (``"0.004125000000"``), without a `Decimal`."""
    if picos < 0:
        return "-" + money_text(-picos)
    return "%d.%012d" % divmod(picos, _PICOS_PER_UNIT)  # noqa: UP031 - the fastest formatting here


class Costs(NamedTuple):
    """One call's cost components and total as `Decimal`s; all None when the call is unpriced."""

    input: Decimal | None
    output: Decimal | None
    cache_read: Decimal | None
    cache_write: Decimal | None
    total: Decimal | None


#: The costs of an unpriced or unbilled call.
NO_COSTS: Final = Costs(None, None, None, None, None)


class Picos(NamedTuple):
    """One call's cost components and total in integer pico-dollars; ``total`` is the exact sum."""

    input: int
    output: int
    cache_read: int
    cache_write: int
    total: int

    @classmethod
    def of_parts(cls, input: int, output: int, cache_read: int, cache_write: int) -> Picos:
        """The components with their exact total."""
        return cls(input, output, cache_read, cache_write, input + output + cache_read + cache_write)

    def costs(self) -> Costs:
        """The same amounts as `Decimal`s with 12 places."""
        return Costs(
            money(self.input),
            money(self.output),
            money(self.cache_read),
            money(self.cache_write),
            money(self.total),
        )
