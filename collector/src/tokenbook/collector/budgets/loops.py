"""Loop rules: a runaway tool loop raises one ``loop`` crossing per (rule, tenant, context).

A context's loop figures are part of its per-context aggregate (`context_costs`: ``tool_loops``,
``loop_steps``, ``loop_tokens``, ``loop_cost``, ``prompt_growth_per_step``), recomputed by the store from
the exact, deduplicated ledger whatever order calls and tool steps arrive in
(``refresh_context_costs.sql``). The store reports each context it recomputed (`Store.on_refreshed`,
-> `touched`); `check`, run by the budget runtime's ticker, reads their figures
(``budgets/context_loops.sql``) and publishes a `BudgetEvent` (kind and state ``loop``) for every loop
rule whose match holds and that the context crosses (`LoopRule.crossed`), once:

* a crossing published is remembered (at most ``budgets.max_subjects``, least recently seen first out);
* before publishing, the ones not remembered are looked up in ``budget_events``
  (``budgets/recorded_loops.sql``): one recorded there, by this process or before a restart, is never
  sent again.

Restart-safe: `rebuild` (at start, before the receivers) restores the crossings recorded within
``budgets.context_ttl`` (``budgets/alerted_states.sql``), then checks every context active within it
whose figures cross a rule (``budgets/recent_loops.sql``): a crossing that happened but was never
recorded (a crash between the refresh and the alert) is sent once, at start. The event ID is derived
from (rule, tenant, context), so receivers and the table deduplicate even a repeat.

Bounded: at most ``max_subjects`` contexts wait to be checked; beyond, the oldest is dropped (`dropped`
counts them; its crossing is found when the context is recomputed again, or at the next start).
`status` answers the gateway: the loop rules a context crossed. Thread-safe.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, NamedTuple

from tokenbook.collector.budgets.config import BudgetsConfig, LoopRule
from tokenbook.collector.budgets.evaluator import UsageSource
from tokenbook.collector.budgets.events import EPOCH, LOOP, BudgetEvent, LoopFacts
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.genai.budgets import WITHIN_BUDGET

__all__ = ["ContextLoops", "LoopWatch"]

_log = logging.getLogger(__name__)
_NO_STEPS: Final = 2**32 - 1  # no max_steps: a bound no loop reaches
_NO_GROWTH: Final = 1e18
_Key = tuple[int, str, str]  # (rule index, tenant, context)


class ContextLoops(NamedTuple):
    """A context's loop figures and the attribution loop rules match on (a `context_costs` row)."""

    tenant_id: str
    context_id: str
    user_id: str
    project_id: str
    feature: str
    tool_loops: int
    loop_steps: int
    loop_tokens: int
    loop_cost: Decimal | None
    prompt_growth_per_step: float | None
    currency: str

    def value(self, key: str) -> str:
        """The value of a loop rule's match key (`config.LOOP_MATCH_KEYS`)."""
        field = {"tenant": "tenant_id", "user": "user_id", "project": "project_id"}.get(key, key)
        return str(getattr(self, field, ""))


class LoopWatch:
    """Checks recomputed contexts against the loop rules; publishes each crossing once (see module)."""

    def __init__(
        self,
        config: BudgetsConfig,
        *,
        publish: Callable[[BudgetEvent], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules: tuple[LoopRule, ...] = config.loops
        self.context_ttl = config.context_ttl
        self.max_subjects = config.max_subjects
        self._publish = publish
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._alerted: OrderedDict[_Key, None] = OrderedDict()  # least recently seen first
        self.dropped = 0  # contexts dropped from a full queue before they were checked
        self.errors = 0

    @property
    def enabled(self) -> bool:
        """Whether any loop rule is configured."""
        return bool(self.rules)

    @property
    def pending(self) -> int:
        """Contexts waiting to be checked."""
        return len(self._pending)

    def touched(self, contexts: Iterable[tuple[str, str]]) -> None:
        """(tenant, context) pairs whose aggregate the store just recomputed; never raises or blocks."""
        if not self.rules:
            return
        try:
            with self._lock:
                pending = self._pending
                for key in contexts:
                    pending[key] = None
                    pending.move_to_end(key)
                while len(pending) > self.max_subjects:
                    pending.popitem(last=False)
                    self.dropped += 1
        except Exception:  # noqa: BLE001 - the store's refresh must not fail because of loop rules
            self.errors += 1
            _log.exception("loop rules: cannot queue recomputed contexts")

    def check(self, source: UsageSource, limit: int = 2000) -> int:
        """Check up to `limit` pending contexts; returns how many. A store error leaves them queued
        (raised)."""
        with self._lock:
            batch = [self._pending.popitem(last=False)[0] for _ in range(min(limit, len(self._pending)))]
        if not batch:
            return 0
        try:
            _, _, rows = source.query(
                render_query("budgets/context_loops.sql", source.database),
                {"tenants": sorted({t for t, _ in batch}), "contexts": sorted({c for _, c in batch})},
            )
            self._alert(source, [ContextLoops(*r) for r in rows])
        except BaseException:
            with self._lock:
                for key in reversed(batch):
                    self._pending[key] = None
                    self._pending.move_to_end(key, last=False)
            raise
        return len(batch)

    def rebuild(self, source: UsageSource) -> int:
        """Restore the recorded crossings and send the ones never recorded (see module); returns how
        many crossings were sent."""
        if not self.rules:
            return 0
        now = self._clock()
        since = datetime.fromtimestamp(now - self.context_ttl, tz=UTC)
        _, _, recorded = source.query(
            render_query("budgets/alerted_states.sql", source.database), {"since": since}
        )
        index = {rule.name: i for i, rule in enumerate(self.rules)}
        with self._lock:
            for kind, rule, subject, *_ in recorded:
                if kind == LOOP and rule in index and len(subject) == 2:
                    self._remember((index[rule], subject[0], subject[1]))
        steps = min((r.max_steps for r in self.rules if r.max_steps is not None), default=_NO_STEPS)
        growth = min(
            (r.max_prompt_growth for r in self.rules if r.max_prompt_growth is not None), default=_NO_GROWTH
        )
        _, _, rows = source.query(
            render_query("budgets/recent_loops.sql", source.database),
            {"since": since, "steps": steps, "growth": float(growth)},
        )
        return self._alert(source, [ContextLoops(*r) for r in rows])

    def status(self, query: Mapping[str, str]) -> list[dict[str, Any]]:
        """The loop rules the context of `query` (``tenant`` and ``context``) crossed, for the gateway."""
        tenant, context = query.get("tenant"), query.get("context")
        if tenant is None or context is None:
            return []
        with self._lock:
            crossed = [i for i in range(len(self.rules)) if (i, tenant, context) in self._alerted]
        return [
            {
                "rule": self.rules[i].name,
                "kind": LOOP,
                "subject": {"tenant": tenant, "context": context},
                "window": "context",
                "state": LOOP,
                "enforcement": self.rules[i].enforcement,
            }
            for i in crossed
        ]

    def _alert(self, source: UsageSource, rows: Sequence[ContextLoops]) -> int:
        """Publish the crossings of `rows` that were neither sent nor recorded; returns how many."""
        crossings: list[tuple[_Key, ContextLoops]] = []
        with self._lock:
            for row in rows:
                for i, rule in enumerate(self.rules):
                    key = (i, row.tenant_id, row.context_id)
                    if not rule.crossed(row.loop_steps, row.prompt_growth_per_step):
                        continue
                    if not all(row.value(k) == v for k, v in rule.match):
                        continue
                    if key in self._alerted:
                        self._alerted.move_to_end(key)
                    else:
                        crossings.append((key, row))
        if not crossings:
            return 0
        _, _, recorded = source.query(
            render_query("budgets/recorded_loops.sql", source.database),
            {
                "tenants": sorted({row.tenant_id for _, row in crossings}),
                "keys": [(self.rules[i].name, t, c) for (i, t, c), _ in crossings],
            },
        )
        done = {(rule, tenant, context) for rule, tenant, context in recorded}
        events = []
        with self._lock:
            for key, row in crossings:
                if key in self._alerted:  # a concurrent check sent it meanwhile
                    continue
                self._remember(key)
                if (self.rules[key[0]].name, key[1], key[2]) not in done:
                    events.append(self._event(self.rules[key[0]], row))
        for event in events:
            self._publish(event)
        return len(events)

    def _remember(self, key: _Key) -> None:
        self._alerted[key] = None
        self._alerted.move_to_end(key)
        while len(self._alerted) > self.max_subjects:
            self._alerted.popitem(last=False)

    def _event(self, rule: LoopRule, row: ContextLoops) -> BudgetEvent:
        return BudgetEvent(
            event_time=datetime.fromtimestamp(self._clock(), tz=UTC),
            kind=LOOP,
            rule=rule.name,
            state=LOOP,
            previous_state=WITHIN_BUDGET,
            enforcement=rule.enforcement,
            subject=(("tenant", row.tenant_id), ("context", row.context_id)),
            window="context",
            window_start=EPOCH,
            window_end=None,
            used_tokens=row.loop_tokens,
            limit_tokens=None,
            used_cost=row.loop_cost if row.loop_cost is not None else Decimal(0),
            limit_cost=None,
            currency=row.currency,
            loop=LoopFacts(
                row.tool_loops,
                row.loop_steps,
                rule.max_steps,
                row.prompt_growth_per_step,
                rule.max_prompt_growth,
            ),
        )
