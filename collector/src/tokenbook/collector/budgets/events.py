"""A budget event: one state crossing of a quota or budget, a loop rule's crossing, or a breaker trip
or reset.

The same event is the structured log line, the webhook body (`webhook_body`, documented in the
README) and a row of `budget_events` (`row`). `event_id` is derived from what crossed (rule,
subject, window, state), so the same crossing always has the same ID: receivers can deduplicate on
it, and the table (ReplacingMergeTree keyed by it) keeps one row.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple

__all__ = ["EPOCH", "EVENT_COLUMNS", "LOOP", "RESET", "TRIPPED", "BudgetEvent", "LoopFacts", "event_id"]

EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)  # window_start of budgets (no window)
TRIPPED: Final = "tripped"
RESET: Final = "reset"
LOOP: Final = "loop"  # the kind and the state of a loop rule's crossing
EVENT_COLUMNS: Final = (
    "event_time",
    "event_id",
    "kind",
    "rule",
    "state",
    "previous_state",
    "enforcement",
    "tenant_id",
    "context_id",
    "subject_keys",
    "subject_values",
    "window",
    "window_start",
    "window_end",
    "used_tokens",
    "limit_tokens",
    "used_cost",
    "limit_cost",
    "currency",
    "message",
)


_TYPES: Final = {"breaker": "tokenbook.breaker", "reconcile": "tokenbook.reconcile.drift"}


def event_id(rule: str, subject: tuple[str, ...], window_start: datetime, state: str) -> str:
    """A stable ID for one crossing: the same crossing has the same ID after a restart."""
    text = "\x1f".join((rule, *subject, window_start.astimezone(UTC).isoformat(), state))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _money(d: Decimal) -> str:
    return f"{d.normalize():f}"


def _tokens(n: int) -> str:
    return f"{n / 1000:g}K" if n >= 1000 and n % 100 == 0 else f"{n:,}"


class LoopFacts(NamedTuple):
    """What a loop crossing saw of its context (`context_costs`) and the rule's limits."""

    tool_loops: int
    steps: int  # model calls of the context's longest tool loop
    max_steps: int | None
    prompt_growth_per_step: float | None  # the largest average growth of the input per step
    max_prompt_growth: int | None


@dataclass(frozen=True, slots=True)
class BudgetEvent:
    """One crossing, reset, loop or breaker event (module docstring): the log line, the webhook body and
    the `budget_events` row."""

    event_time: datetime
    kind: str  # quota | budget | loop | breaker | reconcile
    rule: str  # the quota / budget / loop rule name; "breaker" for breaker events
    state: str  # within_budget | at_risk | over_budget | loop | tripped | reset | drift (reconcile)
    previous_state: str
    enforcement: str  # soft | hard
    subject: tuple[tuple[str, str], ...]  # (key, value): e.g. (("tenant", "acme"),)
    window: str  # "1d (Europe/Paris)", "context", or "60s" for the breaker
    window_start: datetime
    window_end: datetime | None  # the reset time; None for budgets
    used_tokens: int
    limit_tokens: int | None
    used_cost: Decimal
    limit_cost: Decimal | None
    currency: str
    detail: str = ""  # reconcile events: the causes of the drift
    loop: LoopFacts | None = None  # loop crossings: used_tokens / used_cost are the loops' tokens and cost

    @property
    def event_id(self) -> str:
        """This crossing's stable ID (`event_id` of its rule, subject, window and state)."""
        return event_id(self.rule, tuple(v for _, v in self.subject), self.window_start, self.state)

    def _value(self, key: str) -> str:
        return next((v for k, v in self.subject if k == key), "")

    @property
    def message(self) -> str:
        """One human sentence, e.g. "Budget 'ContractAnalyzer' exceeded token budget of 100K per context.
        Context ID: sess_xyz789, Actual: 142,350 tokens."."""
        who = ", ".join(f"{k}={v}" for k, v in self.subject)
        if self.kind == "reconcile":
            scope = self._value("tenant")
            ledger = "unknown (unpriced calls)" if self.limit_cost is None else f"{_money(self.limit_cost)}"
            whose = f" for tenant {scope!r}" if scope else ""
            return (
                f"Provider drift on {self.window_start.date().isoformat()}: {self._value('provider')} "
                f"{self._value('model') or '(charges without a model)'}"
                f"{whose} billed {_money(self.used_cost)} {self.currency} "
                f"and {self.used_tokens:,} tokens; the ledger has {ledger} {self.currency} and "
                f"{self.limit_tokens or 0:,} tokens. {self.detail}."
            )
        if self.loop is not None:
            return self._loop_message()
        if self.kind == "breaker":
            if self.state == TRIPPED:
                tenant = self._value("tenant")
                return (
                    f"Circuit breaker tripped for tenant '{tenant}': {self.used_tokens:,} tokens "
                    f"in {self.window} (threshold {self.limit_tokens or 0:,}); until "
                    f"{self.window_end.isoformat() if self.window_end else '?'}."
                )
            return f"Circuit breaker reset for tenant '{self._value('tenant')}' after its cool-down."
        verb = "exceeded" if self.state == "over_budget" else "is at risk of exceeding"
        if self.state == "within_budget":
            verb = "is back within"
        parts = []
        if self.limit_tokens is not None:
            parts.append(f"token {self.kind} of {_tokens(self.limit_tokens)}")
        if self.limit_cost is not None:
            parts.append(f"cost {self.kind} of {_money(self.limit_cost)} {self.currency}")
        scope = "per context" if self.kind == "budget" else f"per {self.window}"
        where = f"Context ID: {self._value('context')}" if self.kind == "budget" else who
        actual = f"{self.used_tokens:,} tokens"
        if self.limit_cost is not None:
            actual += f", {_money(self.used_cost)} {self.currency}"
        label = "Budget" if self.kind == "budget" else "Quota"
        return f"{label} '{self.rule}' {verb} {' and '.join(parts)} {scope}. {where}, Actual: {actual}."

    def _loop_message(self) -> str:
        """E.g. "Loop rule 'agent-loops' crossed in context ticket-7 (tenant acme): a tool loop of 12
        model calls (limit 8); 48,210 tokens after each loop's first call."."""
        facts = self.loop
        assert facts is not None
        parts = [f"a tool loop of {facts.steps:,} model calls"]
        if facts.max_steps is not None:
            parts[0] += f" (limit {facts.max_steps:,})"
        if facts.prompt_growth_per_step is not None:
            growth = f"its prompt growing {facts.prompt_growth_per_step:,.0f} tokens per step"
            if facts.max_prompt_growth is not None:
                growth += f" (limit {facts.max_prompt_growth:,})"
            parts.append(growth)
        return (
            f"Loop rule '{self.rule}' crossed in context {self._value('context')} (tenant "
            f"{self._value('tenant')}): {', '.join(parts)}; {self.used_tokens:,} tokens after each loop's "
            "first call."
        )

    def webhook_body(self) -> dict[str, Any]:
        """The JSON body POSTed to the webhook (money as exact strings, times ISO 8601 UTC)."""
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "type": _TYPES.get(self.kind, f"tokenbook.{self.kind}.state_changed"),
            "time": self.event_time.isoformat(),
            "kind": self.kind,
            "rule": self.rule,
            "state": self.state,
            "previous_state": self.previous_state,
            "enforcement": self.enforcement,
            "subject": dict(self.subject),
            "window": {
                "spec": self.window,
                "start": None if self.kind in ("budget", LOOP) else self.window_start.isoformat(),
                "end": None if self.window_end is None else self.window_end.isoformat(),
            },
            "used": {"tokens": self.used_tokens, "cost": str(self.used_cost)},
            "limit": {
                "tokens": self.limit_tokens,
                "cost": None if self.limit_cost is None else str(self.limit_cost),
            },
            "currency": self.currency,
            "message": self.message,
        }
        if self.loop is not None:
            body["loop"] = self.loop._asdict()
        return body

    def row(self) -> tuple[Any, ...]:
        """The `budget_events` row, in `EVENT_COLUMNS` order."""
        return (
            self.event_time,
            self.event_id,
            self.kind,
            self.rule,
            self.state,
            self.previous_state,
            self.enforcement,
            self._value("tenant"),
            self._value("context"),
            [k for k, _ in self.subject],
            [v for _, v in self.subject],
            self.window,
            self.window_start,
            self.window_end,
            self.used_tokens,
            self.limit_tokens,
            self.used_cost,
            self.limit_cost,
            self.currency,
            self.message,
        )
