"""In-app budgets: cap the tokens and money of one execution (a request, a context).

``with budget(max_tokens=..., max_cost="0.50") as b:`` makes `b` active for the code inside the block.
It lives in the OTel context (not in Baggage: it never leaves the process), so spans started in threads
that copy the context and in asyncio tasks created inside the block count too. Budgets nest: a span
counts against every budget active when it started.

`TokenbookSpanProcessor` charges each *billed* span to its budgets when the span ends (tokens = input +
output; cost when priced; an unpriced call counts its tokens and ``unpriced_calls``, not its cost).
States: ``within_budget``, ``at_risk`` (usage >= ``at_risk`` x a limit), ``over_budget`` (usage above a
limit). The processor never raises: the app calls `Budget.check()` where it chooses, or passes a
``callback`` that is called once per state crossing, on the thread that ended the span.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from types import TracebackType
from typing import Final

from opentelemetry import context

from tokenbook.genai.budgets import AT_RISK, OVER_BUDGET, RANK, WITHIN_BUDGET, UsageCounter, state_of

__all__ = [
    "AT_RISK",
    "DEFAULT_AT_RISK",
    "ENV_AT_RISK",
    "OVER_BUDGET",
    "WITHIN_BUDGET",
    "Budget",
    "BudgetCallback",
    "BudgetExceeded",
    "active_budgets",
    "budget",
    "worst_state",
]

_logger = logging.getLogger(__name__)

ENV_AT_RISK: Final = "TOKENBOOK_BUDGET_AT_RISK"
DEFAULT_AT_RISK: Final = Decimal("0.8")
_BUDGETS_KEY: Final = context.create_key("tokenbook.budgets")

#: ``callback(budget, new_state)``, called once per upward state crossing.
BudgetCallback = Callable[["Budget", str], None]


class BudgetExceeded(Exception):
    """Raised by `Budget.check()` when a budget is over one of its limits."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        super().__init__(budget.describe())


def _decimal_arg(name: str, value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool | float):
        raise ValueError(f"{name} must be a decimal string, int or Decimal (never float), got {value!r}")
    try:
        result = Decimal(value) if isinstance(value, int | str | Decimal) else None
    except InvalidOperation:
        result = None
    if result is None or not result.is_finite() or result < 0:
        raise ValueError(f"{name} must be a non-negative decimal, got {value!r}")
    return result


def _at_risk_default() -> Decimal:
    raw = os.environ.get(ENV_AT_RISK)
    if not raw:
        return DEFAULT_AT_RISK
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not Decimal(0) < value <= Decimal(1):
        _logger.warning("%s=%r is not in (0, 1]; using %s", ENV_AT_RISK, raw, DEFAULT_AT_RISK)
        return DEFAULT_AT_RISK
    return value


class Budget:
    """Limits and running usage of one execution. Thread-safe; also a context manager."""

    def __init__(
        self,
        max_tokens: int | None = None,
        max_cost: str | int | Decimal | None = None,
        *,
        at_risk: str | Decimal | None = None,
        callback: BudgetCallback | None = None,
        name: str = "",
    ) -> None:
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0
        ):
            raise ValueError(f"max_tokens must be a non-negative int, got {max_tokens!r}")
        if max_tokens is None and max_cost is None:
            raise ValueError("budget needs max_tokens or max_cost")
        self.max_tokens = max_tokens
        self.max_cost = _decimal_arg("max_cost", max_cost)
        ratio = _decimal_arg("at_risk", at_risk) if at_risk is not None else _at_risk_default()
        if ratio is None or not Decimal(0) < ratio <= Decimal(1):
            raise ValueError(f"at_risk must be in (0, 1], got {at_risk!r}")
        self.at_risk = ratio
        self.callback = callback
        self.name = name
        self._usage = UsageCounter()
        self._state = WITHIN_BUDGET
        self._lock = threading.Lock()
        self._tokens: list[object] = []

    @property
    def state(self) -> str:
        """The budget's state: ``within_budget``, ``at_risk`` or ``over_budget``."""
        return self._state

    @property
    def used_tokens(self) -> int:
        """Tokens (input + output) of the billed calls charged so far."""
        return self._usage.tokens

    @property
    def used_cost(self) -> Decimal:
        """Priced cost charged so far (unpriced calls add none)."""
        return self._usage.cost

    @property
    def calls(self) -> int:
        """Billed calls charged so far."""
        return self._usage.calls

    @property
    def unpriced_calls(self) -> int:
        """Charged calls that had no price."""
        return self._usage.unpriced_calls

    def charge(self, tokens: int, cost: Decimal | None) -> str:
        """Add one call; returns the new state and calls the callback on a crossing. Never raises."""
        with self._lock:
            self._usage.add(tokens, cost)
            before = self._state
            self._state = state_of(
                self.max_tokens, self.max_cost, self.at_risk, self.used_tokens, self.used_cost
            )
            state = self._state
        if state != before and self.callback is not None and RANK[state] > RANK[before]:
            try:
                self.callback(self, state)
            except Exception:  # the app's callback must not break span processing
                _logger.exception("budget callback %r failed", self.callback)
        return state

    def check(self) -> None:
        """Raise `BudgetExceeded` when over a limit."""
        if self._state == OVER_BUDGET:
            raise BudgetExceeded(self)

    def describe(self) -> str:
        """One line for people: the state and usage against each limit."""
        limits = []
        if self.max_tokens is not None:
            limits.append(f"tokens {self.used_tokens:,} of {self.max_tokens:,}")
        if self.max_cost is not None:
            limits.append(f"cost {self.used_cost} of {self.max_cost} USD")
        label = f"budget {self.name!r}" if self.name else "budget"
        return f"{label} {self._state}: " + ", ".join(limits)

    def __repr__(self) -> str:
        return f"<Budget {self.describe()}>"

    def __enter__(self) -> Budget:
        ctx = context.set_value(_BUDGETS_KEY, (*active_budgets(), self))
        self._tokens.append(context.attach(ctx))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        context.detach(self._tokens.pop())  # type: ignore[arg-type]


def budget(
    max_tokens: int | None = None,
    max_cost: str | int | Decimal | None = None,
    *,
    at_risk: str | Decimal | None = None,
    callback: BudgetCallback | None = None,
    name: str = "",
) -> Budget:
    """A new `Budget`; use it as ``with budget(...) as b:``. ValueError names a bad argument.

    ``at_risk`` defaults to ``$TOKENBOOK_BUDGET_AT_RISK`` or 0.8.
    """
    return Budget(max_tokens, max_cost, at_risk=at_risk, callback=callback, name=name)


def active_budgets(ctx: context.Context | None = None) -> tuple[Budget, ...]:
    """The budgets active in `ctx` (default: the current context), outermost first."""
    value = context.get_value(_BUDGETS_KEY, ctx)
    return value if isinstance(value, tuple) else ()


def worst_state(budgets: tuple[Budget, ...]) -> str:
    """The most severe state among `budgets`."""
    return max((b.state for b in budgets), key=RANK.__getitem__, default=WITHIN_BUDGET)
