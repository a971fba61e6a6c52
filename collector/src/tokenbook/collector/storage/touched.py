"""What an insert of ledger rows touches, summarized where the rows are built.

`Store.write` notes, for every insert, the keys its background work must revisit: the oldest
``ingested_at`` (the refresh watermark), the contexts (``context_costs``), the tenants' hours
(``cost_hourly``) and the billing decision keys (`decisions.DecisionKeys`); the writer splits a batch by
month (`months`). `Touched.of` computes them from rows; a row-building worker process computes them
beside the row blocks and sends them over (`wire`/`from_wire`, ``marshal``-able), so the writer inserts
the blocks without reading the rows back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from tokenbook.collector.storage.decisions import DecisionKeys
from tokenbook.collector.storage.ledger import CallRow, StepRow

__all__ = ["Touched", "month"]


def month(row: CallRow | StepRow) -> tuple[int, int]:
    """(year, month) of a row's ``timestamp`` in UTC: its partition (``toYYYYMM(timestamp)``)."""
    ts = row.timestamp.astimezone(UTC)
    return ts.year, ts.month


@dataclass(slots=True)
class Touched:
    """The keys touched by some rows (see the module docstring)."""

    calls: int = 0  # rows of llm_calls
    steps: int = 0  # rows of context_steps
    oldest: datetime | None = None  # the earliest ingested_at
    contexts: set[tuple[str, str]] = field(default_factory=set)  # (tenant, context_id)
    hours: set[tuple[str, float]] = field(default_factory=set)  # (tenant, hours since the epoch)
    months: set[tuple[int, int]] = field(default_factory=set)
    decisions: DecisionKeys = field(default_factory=DecisionKeys)

    @classmethod
    def of(cls, calls: Sequence[CallRow], steps: Sequence[StepRow]) -> Touched:
        """The keys `calls` and `steps` touch."""
        decisions = DecisionKeys()
        for c in calls:
            decisions.add_call(c)
        for s in steps:
            decisions.add_step(s)
        # Hours since the epoch of every row; a month is a whole number of hours, so the months are
        # those of the distinct hours (a few per request), not one time-zone conversion per row.
        call_hours = [c.timestamp.timestamp() // 3600 for c in calls]
        step_hours = {s.timestamp.timestamp() // 3600 for s in steps}
        return cls(
            len(calls),
            len(steps),
            min((r.ingested_at for rows in (calls, steps) for r in rows), default=None),
            {(c.tenant_id, c.context_id) for c in calls} | {(s.tenant_id, s.context_id) for s in steps},
            set(zip([c.tenant_id for c in calls], call_hours, strict=True)),
            {_hour_month(h) for h in step_hours.union(call_hours)},
            decisions,
        )

    @classmethod
    def joined(cls, parts: Iterable[Touched]) -> Touched:
        """One summary of several."""
        out = cls()
        for p in parts:
            out.calls += p.calls
            out.steps += p.steps
            if p.oldest is not None and (out.oldest is None or p.oldest < out.oldest):
                out.oldest = p.oldest
            out.contexts |= p.contexts
            out.hours |= p.hours
            out.months |= p.months
            out.decisions.merge(p.decisions)
        return out

    def wire(self) -> tuple[Any, ...]:
        """A tuple ``marshal`` can carry (datetimes as integer microseconds since the epoch)."""
        d = self.decisions
        return (
            self.calls,
            self.steps,
            _stamp(self.oldest),
            self.contexts,
            self.hours,
            self.months,
            (d.traces, d.response_ids, d.buckets, d.lone, _stamp(d.earliest), _stamp(d.latest)),
        )

    @classmethod
    def from_wire(cls, doc: Sequence[Any]) -> Touched:
        """Inverse of `wire`."""
        calls, steps, oldest, contexts, hours, months, keys = doc
        traces, responses, buckets, lone, earliest, latest = keys
        decisions = DecisionKeys(
            traces=traces,
            response_ids=responses,
            buckets=buckets,
            lone=lone,
            earliest=_time(earliest),
            latest=_time(latest),
        )
        return cls(calls, steps, _time(oldest), contexts, hours, months, decisions)


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _hour_month(hour: float) -> tuple[int, int]:
    """(year, month) in UTC of an hour since the epoch."""
    ts = _EPOCH + timedelta(hours=hour)
    return ts.year, ts.month


def _stamp(ts: datetime | None) -> int | None:
    """Microseconds since the epoch, exactly."""
    return None if ts is None else (ts - _EPOCH) // _MICROSECOND


def _time(stamp: int | None) -> datetime | None:
    return None if stamp is None else _EPOCH + stamp * _MICROSECOND
