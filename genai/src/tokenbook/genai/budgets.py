"""Budget states, and the usage counter both the in-app budgets and the collector's quotas keep.

A counter adds the tokens (input + output) and the priced cost of calls. Its state against limits is
`over_budget` when usage is above a limit, `at_risk` when it reaches ``at_risk x limit``, else
`within_budget`. An unpriced call counts its tokens and ``unpriced_calls``, never a cost of 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

__all__ = ["AT_RISK", "OVER_BUDGET", "RANK", "WITHIN_BUDGET", "UsageCounter", "state_of", "worse"]

WITHIN_BUDGET: Final = "within_budget"
AT_RISK: Final = "at_risk"
OVER_BUDGET: Final = "over_budget"
#: Severity of each state, for "the worst of" and "an upward crossing".
RANK: Final = {WITHIN_BUDGET: 0, AT_RISK: 1, OVER_BUDGET: 2}


def state_of(
    max_tokens: int | None, max_cost: Decimal | None, at_risk: Decimal, tokens: int, cost: Decimal
) -> str:
    """The state of `tokens` and `cost` against the limits (None: no limit). Pure; never raises."""
    state = WITHIN_BUDGET
    for used, limit in ((Decimal(tokens), max_tokens), (cost, max_cost)):
        if limit is None:
            continue
        if used > limit:
            return OVER_BUDGET
        if used >= at_risk * limit:
            state = AT_RISK
    return state


def worse(a: str, b: str) -> bool:
    """Whether state `a` is more severe than state `b`."""
    return RANK[a] > RANK[b]


@dataclass(slots=True)
class UsageCounter:
    """Tokens, priced cost, calls and unpriced calls added so far. Not locked: its owner guards it."""

    tokens: int = 0
    cost: Decimal = Decimal(0)
    calls: int = 0
    unpriced_calls: int = 0

    def add(self, tokens: int, cost: Decimal | None) -> None:
        """Count one call: `cost` None means unpriced (its tokens count, its cost does not)."""
        self.tokens += tokens
        self.calls += 1
        if cost is None:
            self.unpriced_calls += 1
        else:
            self.cost += cost
