"""Per-tenant circuit breaker on the token burn rate.

Tokens are counted by ingest time (the evaluator's clock) in buckets of ``window / 6``. A tenant
trips when the tokens of the last `window` exceed ``factor x`` its baseline (the average tokens per
`window` over the trailing `baseline` before it) while being at least `min_tokens`, or exceed the
absolute cap `max_tokens`. A tripped tenant stays tripped for `cooldown`, then resets. Each trip and
each reset is one `BudgetEvent`. Not thread-safe: the evaluator calls it under its lock.

A baseline needs history. The breaker counts in memory from the moment it was made (`started`: the
collector's start), so for the first `baseline` seconds it has not seen what a tenant normally
spends, and a steady heavy tenant would look like a spike from zero. The factor rule therefore waits
until `baseline` seconds have been observed; until then only the absolute cap `max_tokens` trips
(set it to keep a hard ceiling through restarts). Once active, the baseline is the average over the
observed part of the trailing `baseline` (never diluted by the time before the start).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tokenbook.collector.budgets.config import BreakerConfig
from tokenbook.collector.budgets.events import RESET, TRIPPED, BudgetEvent

__all__ = ["BurnRateBreaker"]

_BUCKETS_PER_WINDOW = 6


@dataclass(slots=True)
class _Tenant:
    buckets: deque[tuple[int, int]] = field(default_factory=deque)  # (bucket index, tokens), ascending
    tripped_at: float | None = None
    until: float = 0.0


class BurnRateBreaker:
    """Trips a tenant whose spend rate over `window` jumps past its baseline; not thread-safe (the
    evaluator guards it)."""

    def __init__(self, config: BreakerConfig, started: float = 0.0) -> None:
        """`started`: clock time from which spend is observed (the factor rule waits `baseline` after it)."""
        self.config = config
        self.started = started
        self._first_bucket = int(started // (config.window / _BUCKETS_PER_WINDOW))
        self._bucket_s = config.window / _BUCKETS_PER_WINDOW
        self._keep = math.ceil((config.baseline + config.window) / self._bucket_s) + 1
        self._tenants: dict[str, _Tenant] = {}

    def tripped(self, tenant: str, now: float) -> float | None:
        """The clock time the tenant's trip ends, or None when not tripped."""
        t = self._tenants.get(tenant)
        return t.until if t is not None and t.tripped_at is not None and now < t.until else None

    def tenants(self) -> list[str]:
        """The tenants with spend in the breaker's memory, sorted."""
        return sorted(self._tenants)

    def restore(self, tenant: str, tripped_at: float, until: float) -> None:
        """A trip recorded before a restart (from `budget_events`)."""
        t = self._tenants.setdefault(tenant, _Tenant())
        t.tripped_at, t.until = tripped_at, until

    def burn(self, tenant: str, now: float) -> int:
        """Tokens of the last `window`."""
        t = self._tenants.get(tenant)
        if t is None:
            return 0
        current = int(now // self._bucket_s)
        return sum(n for i, n in t.buckets if i > current - _BUCKETS_PER_WINDOW)

    def add(self, tenant: str, tokens: int, now: float) -> list[BudgetEvent]:
        """Count tokens; returns the reset and/or trip events this causes."""
        t = self._tenants.setdefault(tenant, _Tenant())
        events = self._expire(tenant, t, now)
        current = int(now // self._bucket_s)
        if t.buckets and t.buckets[-1][0] == current:
            t.buckets[-1] = (current, t.buckets[-1][1] + tokens)
        else:
            t.buckets.append((current, tokens))
        while t.buckets and t.buckets[0][0] <= current - self._keep:
            t.buckets.popleft()
        if t.tripped_at is None:
            recent = sum(n for i, n in t.buckets if i > current - _BUCKETS_PER_WINDOW)
            threshold = self._threshold(t, current, now)
            if threshold is not None and recent > threshold:
                t.tripped_at, t.until = now, now + self.config.cooldown
                events.append(self._event(tenant, TRIPPED, "ok", recent, threshold, now))
        return events

    def expire(self, now: float) -> list[BudgetEvent]:
        """Reset every tenant whose cool-down is over (called periodically)."""
        events: list[BudgetEvent] = []
        for tenant, t in self._tenants.items():
            events += self._expire(tenant, t, now)
        return events

    def _expire(self, tenant: str, t: _Tenant, now: float) -> list[BudgetEvent]:
        if t.tripped_at is None or now < t.until:
            return []
        tripped_at = t.tripped_at
        t.tripped_at = None
        return [self._event(tenant, RESET, TRIPPED, 0, 0, tripped_at, reset_at=t.until)]

    def _threshold(self, t: _Tenant, current: int, now: float) -> int | None:
        """Tokens per window above which the tenant trips; None: nothing can trip it yet (no
        baseline observed and no absolute cap)."""
        cfg = self.config
        cap = cfg.max_tokens
        if now - self.started < cfg.baseline:  # no baseline observed yet: only the cap applies
            return cap
        first = current - _BUCKETS_PER_WINDOW  # newest bucket of the baseline
        history = [n for i, n in t.buckets if i <= first]
        span_buckets = int(cfg.baseline // self._bucket_s)
        observed = min(span_buckets, first - self._first_bucket + 1)  # buckets of it since `started`
        baseline = Decimal(sum(history)) * _BUCKETS_PER_WINDOW / max(observed, 1)
        by_factor = max(int(cfg.factor * baseline), cfg.min_tokens)
        return by_factor if cap is None else min(by_factor, cap)

    def _event(
        self,
        tenant: str,
        state: str,
        previous: str,
        used: int,
        threshold: int,
        tripped_at: float,
        reset_at: float | None = None,
    ) -> BudgetEvent:
        start = datetime.fromtimestamp(tripped_at, tz=UTC)
        end = start + timedelta(seconds=self.config.cooldown)
        now = datetime.fromtimestamp(reset_at, tz=UTC) if reset_at is not None else start
        return BudgetEvent(
            event_time=now,
            kind="breaker",
            rule="breaker",
            state=state,
            previous_state=previous,
            enforcement="hard",
            subject=(("tenant", tenant),),
            window=f"{self.config.window:g}s",
            window_start=start,
            window_end=end,
            used_tokens=used,
            limit_tokens=threshold if state == TRIPPED else None,
            used_cost=Decimal(0),
            limit_cost=None,
            currency="",
        )
