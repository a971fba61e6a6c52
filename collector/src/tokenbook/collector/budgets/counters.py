"""Usage counters and the state they put a quota or budget in.

A counter adds the tokens (input + output) and the priced cost (in the limit's currency) of calls.
States and the counting rule are `tokenbook.genai.budgets`', shared with the in-app budgets: an
unpriced call counts its tokens and `unpriced_calls`, never a cost of 0.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final, NamedTuple

from tokenbook.collector.budgets.config import ATTRIBUTE_KEYS, TAG_PREFIX, Rule
from tokenbook.collector.budgets.events import EPOCH
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.genai.budgets import RANK, WITHIN_BUDGET, UsageCounter, state_of

__all__ = [
    "CONFIRM_S",
    "RANK",
    "Counter",
    "Readings",
    "Usage",
    "attribute_of",
    "call_cost",
    "call_tokens",
    "matches",
    "subject_of",
    "usage_state",
]


def attribute_of(call: CallRow, key: str) -> str:
    """The value of a match / per key (`tenant`, `tags.team`, ...) on a call; "" when absent."""
    field = ATTRIBUTE_KEYS.get(key)
    if field is not None:
        return str(getattr(call, field))
    return call.tags.get(key[len(TAG_PREFIX) :], "")


def matches(rule: Rule, call: CallRow) -> bool:
    """Whether `call` has every attribute value `rule` matches on."""
    return all(attribute_of(call, key) == value for key, value in rule.match)


def subject_of(rule: Rule, call: CallRow) -> tuple[str, ...]:
    """The values of `rule`'s ``per`` keys on `call`: whose counter the call goes to."""
    return tuple(attribute_of(call, key) for key in rule.per)


def call_tokens(call: CallRow) -> int:
    """The tokens a call counts toward a limit: input plus output (each token once)."""
    return call.input_tokens + call.output_tokens


def call_cost(call: CallRow, currency: str) -> Decimal | None:
    """The call's cost toward a limit in `currency`; None when unpriced (or in another currency)."""
    if call.total_cost is None or call.currency != currency:
        return None
    return call.total_cost


class Usage(NamedTuple):
    """One counter's usage as read from the ledger (a fleet reconciliation)."""

    tokens: int
    cost: Decimal
    unpriced_calls: int


#: A fleet decides a crossing on readings of the ledger spanning at least ``budgets.fleet_sync`` +
#: ``storage.batch.max_delay`` + this: a call two collectors each stored once is billed twice until
#: the decision pass of the one that stored it second settles it (run before each reconciliation),
#: so such a transient double count never raises an alert. This margin covers the insert, the pass
#: and the queries.
CONFIRM_S: Final = 2.0


@dataclass(slots=True)
class Readings:
    """Fleet readings of one usage: the latest ones over the last `span` seconds, and the one before."""

    items: deque[tuple[float, Usage]] = field(default_factory=deque)

    def add(self, at: float, usage: Usage, span: float) -> Usage | None:
        """Keep `usage`, read at clock time `at`. Returns the lowest usage read since the latest
        reading at least `span` old (what the usage surely was over the whole span), or None while
        the readings cover less than `span`."""
        self.items.append((at, usage))
        while len(self.items) >= 2 and self.items[1][0] <= at - span:
            self.items.popleft()
        if self.items[0][0] > at - span:
            return None
        return Usage(
            min(u.tokens for _, u in self.items),
            min(u.cost for _, u in self.items),
            min(u.unpriced_calls for _, u in self.items),
        )


def usage_state(rule: Rule, tokens: int, cost: Decimal) -> str:
    """The state `tokens` and `cost` put `rule` in."""
    return state_of(rule.limits.tokens, rule.limits.cost, rule.at_risk, tokens, cost)


@dataclass(slots=True)
class Counter(UsageCounter):
    """One subject's usage in one window (or one context, for budgets). Guarded by the evaluator's lock."""

    start: datetime = EPOCH  # window start; for budgets the epoch
    end: datetime | None = None  # window end (exclusive); None for budgets
    alerted: str = WITHIN_BUDGET  # the highest state already alerted for this counter
    last_seen: float = 0.0  # clock seconds of the last call (budgets expire after context_ttl)
    readings: Readings | None = None  # fleet reconciliations' values (crossings are confirmed on them)

    def remove(self, tokens: int, cost: Decimal | None) -> None:
        """Take back one call counted by `add` (a billing decision un-billed it)."""
        self.tokens -= tokens
        self.calls -= 1
        if cost is None:
            self.unpriced_calls -= 1
        else:
            self.cost -= cost

    def state(self, rule: Rule) -> str:
        """This counter's state against `rule`'s limits."""
        return usage_state(rule, self.tokens, self.cost)
