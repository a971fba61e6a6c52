"""Usage counters and the state they put a quota or budget in.

A counter adds the tokens (input + output) and the priced cost (in the limit's currency) of calls.
States follow the in-app budgets (`tokenbook.processor.budgets`): `over_budget` when usage is above a
limit, `at_risk` when it reaches ``at_risk x limit``, else `within_budget`. An unpriced call counts its
tokens and `unpriced_calls`, never a cost of 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final

from tokenbook.collector.budgets.config import ATTRIBUTE_KEYS, TAG_PREFIX, Limits, Rule
from tokenbook.collector.ledger import CallRow
from tokenbook.processor.budgets import AT_RISK, OVER_BUDGET, WITHIN_BUDGET

__all__ = ["RANK", "Counter", "attribute_of", "call_cost", "call_tokens", "matches", "state_of", "subject_of"]

RANK: Final = {WITHIN_BUDGET: 0, AT_RISK: 1, OVER_BUDGET: 2}


def attribute_of(call: CallRow, key: str) -> str:
    """The value of a match / per key (`tenant`, `tags.team`, ...) on a call; "" when absent."""
    field = ATTRIBUTE_KEYS.get(key)
    if field is not None:
        return str(getattr(call, field))
    return call.tags.get(key[len(TAG_PREFIX) :], "")


def matches(rule: Rule, call: CallRow) -> bool:
    return all(attribute_of(call, key) == value for key, value in rule.match)


def subject_of(rule: Rule, call: CallRow) -> tuple[str, ...]:
    return tuple(attribute_of(call, key) for key in rule.per)


def call_tokens(call: CallRow) -> int:
    return call.input_tokens + call.output_tokens


def call_cost(call: CallRow, currency: str) -> Decimal | None:
    """The call's cost toward a limit in `currency`; None when unpriced (or in another currency)."""
    if call.total_cost is None or call.currency != currency:
        return None
    return call.total_cost


def state_of(limits: Limits, at_risk: Decimal, tokens: int, cost: Decimal) -> str:
    state = WITHIN_BUDGET
    for used, limit in ((Decimal(tokens), limits.tokens), (cost, limits.cost)):
        if limit is None:
            continue
        if used > limit:
            return OVER_BUDGET
        if used >= at_risk * limit:
            state = AT_RISK
    return state


@dataclass(slots=True)
class Counter:
    """One subject's usage in one window (or one context, for budgets). Guarded by the evaluator's lock."""

    start: datetime  # window start; for budgets the epoch
    end: datetime | None  # window end (exclusive); None for budgets
    tokens: int = 0
    cost: Decimal = Decimal(0)
    unpriced_calls: int = 0
    alerted: str = WITHIN_BUDGET  # the highest state already alerted for this counter
    last_seen: float = 0.0  # clock seconds of the last call (budgets expire after context_ttl)

    def add(self, tokens: int, cost: Decimal | None) -> None:
        self.tokens += tokens
        if cost is None:
            self.unpriced_calls += 1
        else:
            self.cost += cost

    def state(self, rule: Rule) -> str:
        return state_of(rule.limits, rule.at_risk, self.tokens, self.cost)
