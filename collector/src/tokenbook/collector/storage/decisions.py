"""The decision pass: which stored candidate bills each call, recomputed from the stored facts.

`Store.write` remembers the decision keys of every candidate it writes (`DecisionKeys`: trace IDs,
response IDs, cross-layer match buckets). `Store.refresh_aggregates` then calls `run_pass`, which

1. loads the decision facts (`CandidateFacts`) of every candidate related to those keys, as the
   deduplicated ledger holds them, and closes the set: the traces, response IDs and buckets of the
   loaded rows are keys too, until no new key appears; each round reads only the keys the previous
   one found (a key's related calls lie in the windows read for that key), and a trace once read is
   not read again (`decision_candidates.sql`: the span of time of the touched traces' calls within a
   day of them, looked up in the ledger's trace-ordered projection, and at least the hour around the
   touched calls, read from the time-ordered one, so a pass costs what it touched, not the day or the
   month partitions; a call matched by response ID or bucket alone has its trace read whole, so that
   every version of it is seen before the newest is kept); plus the parent links of the steps of the
   traces that hold two candidates or more (`decision_links.sql`, by trace; in a trace with one
   candidate no link can change a decision).
   A match bucket (tenant, service instance, input tokens) relates only calls whose intervals
   contain one another (the cross-layer rule), so a bucket key carries the intervals of its calls and
   loads only the calls that contain, or lie within, one of them: a pass costs what the batch
   touched, not the whole day of a busy bucket (one service sending the same prompt all day).
   Model spans without usage are read too (`genai.decisions`, rule 4): by their trace and response
   ID, and a *lone* one (the root of its trace, not failed, with a model) by its interval. A lone
   layer's possible partners, the calls of its service instance around or within it, are read as
   `PARTNER`s, with the decision they have: their own keys are not followed, so concurrent streams do
   not chain into one set; the lone layers near a bucket's calls are read with them. Both are read
   where they meet a stretch of the touched intervals (at most `_MAX_STRETCHES`, in the same
   statement), not over the time between;
2. decides with `genai.decisions.decide`, a pure function of those facts;
3. reads the stored rows (every column, ``llm_calls FINAL`` by sorting key: `decision_rows.sql`) of
   the candidates whose ``price_status`` / ``billing_rule`` / ``billed_by`` changed and returns them
   with the new decision and a higher ``version`` (the ReplacingMergeTree keeps the newest), for the
   store to write.

Because each pass recomputes whole related sets from what is stored, the bills converge to the same
result whatever the batch split, arrival order, or restarts in between. Rows written before
migration 030 (no ``kind`` / ``quote_status``) are read as model calls quoted as they stand.
"""

from __future__ import annotations

import itertools
import logging
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, Protocol, TypeVar

from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.genai.billing import STATUS_NOT_BILLABLE, UNBILLED_STATUSES
from tokenbook.genai.calls import KIND_FETCH, KIND_MODEL
from tokenbook.genai.decisions import CONTAINMENT_TOLERANCE_US, Candidate, decide, is_lone_layer
from tokenbook.genai.profiles import profile_of

__all__ = ["CandidateFacts", "DecisionChange", "DecisionKeys", "KeyFacts", "run_pass"]

_log = logging.getLogger(__name__)
#: The spans of a touched trace are looked for this far around the touched rows' start times.
_WINDOW = timedelta(days=1)
#: Calls of other traces related by response ID or match bucket (two layers of one call) are looked
#: for this far around them.
_NEAR = timedelta(hours=1)
_MAX_ROUNDS = 8
#: Intervals of the keys this close (µs) are read as one stretch of time (`_load`), and at most this
#: many stretches (the nearest merged), all read by one statement.
_STRETCH_GAP_US = 10_000_000
_MAX_STRETCHES = 4
_CHUNK = 2_000

#: (row as stored before, row as decided now)
DecisionChange = tuple[CallRow, CallRow]
_Bucket = tuple[str, str, int]  # (tenant, service instance, input tokens)
_Interval = tuple[int, int]  # (start, end) in microseconds since the epoch


class CandidateFacts(NamedTuple):
    """What the decision reads of a stored candidate (the columns of `decision_candidates.sql`)."""

    timestamp: datetime
    tenant_id: str
    context_id: str
    trace_id: str
    span_id: str
    parent_span_id: str
    ancestors: str
    kind: str
    scope_name: str
    scope_version: str
    service_instance: str
    model: str
    response_id: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    duration_ms: float
    price_status: str
    quote_status: str
    billing_rule: str
    billed_by: str
    status: str
    version: int


class KeyFacts(NamedTuple):
    """What relates a stored call row to others (the columns of `decision_keys_since.sql`)."""

    trace_id: str
    tenant_id: str
    response_id: str
    service_instance: str
    input_tokens: int
    timestamp: datetime
    duration_ms: float
    kind: str
    price_status: str
    quote_status: str
    parent_span_id: str
    status: str
    model: str


#: A call row as written (`CallRow`), as the decision reads it back (`CandidateFacts`), or its keys as
#: read after a restart (`KeyFacts`).
_Row = CallRow | CandidateFacts | KeyFacts
_Key = tuple[str, str, str]  # (tenant, trace, span)


def interval_us(ts: datetime, duration_ms: float) -> _Interval:
    """A call's (start, end) in microseconds since the epoch, as the decision reads it."""
    start = int(ts.timestamp() * 1_000_000)
    return start, start + int(duration_ms * 1000)


class _Source(Protocol):
    database: str

    def query(
        self, sql: str, parameters: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[str], list[tuple[Any, ...]]]: ...


@dataclass
class DecisionKeys:
    """What the next decision pass must look at. Not locked: the store's lock guards it."""

    traces: set[str] = field(default_factory=set)
    response_ids: set[tuple[str, str]] = field(default_factory=set)  # (tenant, response ID)
    #: match bucket -> the intervals of its calls (a related call contains or lies within one)
    buckets: dict[_Bucket, set[_Interval]] = field(default_factory=dict)
    #: (tenant, service instance) -> the intervals of its lone layers without usage (`_lone`): the
    #: calls that contain or lie within one are read as their possible partners
    lone: dict[tuple[str, str], set[_Interval]] = field(default_factory=dict)
    earliest: datetime | None = None
    latest: datetime | None = None

    def __bool__(self) -> bool:
        return bool(self.traces or self.response_ids or self.buckets or self.lone)

    def note_time(self, ts: datetime) -> None:
        """Widen the time range to `ts`."""
        if self.earliest is None or ts < self.earliest:
            self.earliest = ts
        if self.latest is None or ts > self.latest:
            self.latest = ts

    def add_call(self, c: _Row) -> None:
        """Note the keys a written call row can be related by: a candidate's (`add`); a model span's
        without usage, its trace and response ID, and when it is a lone layer (`_lone`) its interval
        (`genai.decisions`, rule 4); a fetch row's none."""
        if c.kind == KIND_FETCH:
            return
        if _without_usage(c):
            self.traces.add(c.trace_id)
            if c.response_id:
                self.response_ids.add((c.tenant_id, c.response_id))
            if _lone(c):
                self.lone.setdefault((c.tenant_id, c.service_instance), set()).add(
                    interval_us(c.timestamp, c.duration_ms)
                )
            self.note_time(c.timestamp)
            return
        self.add(
            c.trace_id, c.tenant_id, c.response_id, c.service_instance, c.input_tokens, c.timestamp,
            c.duration_ms,
        )  # fmt: skip

    def add(
        self,
        trace: str,
        tenant: str,
        response_id: str,
        instance: str,
        tokens: int,
        ts: datetime,
        duration_ms: float,
    ) -> None:
        """Note one candidate's keys: its trace, its response ID and its cross-layer match bucket
        with its interval (start `ts`, `duration_ms` long)."""
        self.traces.add(trace)
        if response_id:
            self.response_ids.add((tenant, response_id))
        self.buckets.setdefault((tenant, instance, tokens), set()).add(interval_us(ts, duration_ms))
        self.note_time(ts)

    def add_step(self, s: StepRow) -> None:
        """A wrapper step can link a model span to a wrapper with usage above it."""
        if s.kind == "wrapper":
            self.traces.add(s.trace_id)
            self.note_time(s.timestamp)

    def merge(self, other: DecisionKeys) -> None:
        """Add every key of `other`."""
        self.traces |= other.traces
        self.response_ids |= other.response_ids
        for bucket, intervals in other.buckets.items():
            self.buckets.setdefault(bucket, set()).update(intervals)
        for instance, intervals in other.lone.items():
            self.lone.setdefault(instance, set()).update(intervals)
        for ts in (other.earliest, other.latest):
            if ts is not None:
                self.note_time(ts)

    def without(self, other: DecisionKeys) -> DecisionKeys:
        """The keys of these that `other` lacks (a trace, a response ID, an interval of a bucket or
        of a lone layer's instance), with these keys' time range."""
        return DecisionKeys(
            traces=self.traces - other.traces,
            response_ids=self.response_ids - other.response_ids,
            buckets={
                b: new
                for b, intervals in self.buckets.items()
                if (new := intervals - other.buckets.get(b, set()))
            },
            lone={
                i: new for i, intervals in self.lone.items() if (new := intervals - other.lone.get(i, set()))
            },
            earliest=self.earliest,
            latest=self.latest,
        )

    def span(self) -> tuple[int, int] | None:
        """The earliest start and the latest end of every bucket interval (µs), None without buckets."""
        if not self.buckets:
            return None
        return (
            min(start for intervals in self.buckets.values() for start, _ in intervals),
            max(end for intervals in self.buckets.values() for _, end in intervals),
        )


class _Intervals:
    """Intervals sorted by start, with the running maximum of their ends (does one contain a given
    interval?) and the minimum of the ends from each on (does one lie within it?): `relates` answers in
    log time, however many intervals there are."""

    def __init__(self, intervals: Iterable[_Interval]) -> None:
        ordered = sorted(intervals)
        self.starts = [start for start, _ in ordered]
        ends = [end for _, end in ordered]
        self.max_end = list(ends)
        for i in range(1, len(ends)):
            self.max_end[i] = max(self.max_end[i], self.max_end[i - 1])
        self.min_end = list(ends)
        for i in range(len(ends) - 2, -1, -1):
            self.min_end[i] = min(self.min_end[i], self.min_end[i + 1])

    def relates(self, start: int, end: int) -> bool:
        """Whether one of the intervals contains [start, end] or lies within it (within the tolerance)."""
        tol = CONTAINMENT_TOLERANCE_US
        within = bisect_right(self.starts, start + tol)  # intervals starting early enough to contain it
        if within and self.max_end[within - 1] >= end - tol:
            return True
        first = bisect_left(self.starts, start - tol)  # intervals starting late enough to lie within it
        return first < len(self.starts) and self.min_end[first] <= end + tol


#: How a row relates to the keys of a pass (`Related.relation`).
RELATED = "related"  # decided in the pass, its keys added to the pass's
PARTNER = "partner"  # a possible partner of a lone layer only: read, with its decision as stored


class Related:
    """How rows relate to a pass's keys (`relation`), for many rows: the intervals of each bucket, of
    each service instance's buckets together and of its lone layers, indexed (`_Intervals`), so a row
    is checked in log time, however many calls a bucket holds."""

    def __init__(self, keys: DecisionKeys) -> None:
        """Index the intervals of `keys` (later changes to `keys` are not seen)."""
        self.keys = keys
        self._buckets = {bucket: _Intervals(intervals) for bucket, intervals in keys.buckets.items()}
        by_instance: dict[tuple[str, str], list[_Interval]] = {}
        for (tenant, instance, _), intervals in keys.buckets.items():
            by_instance.setdefault((tenant, instance), []).extend(intervals)
        self._instances = {instance: _Intervals(intervals) for instance, intervals in by_instance.items()}
        self._lone = {instance: _Intervals(intervals) for instance, intervals in keys.lone.items()}

    def relation(self, c: _Row) -> str | None:
        """`RELATED`: `c` shares a trace or a response ID with the keys, or, with usage, a match bucket
        in which its interval contains or lies within one of the bucket's, or, a lone layer without
        usage, a service instance in which its interval contains or lies within one of a bucket's;
        `PARTNER`: with usage, it contains or lies within a lone layer's interval only; else None."""
        keys = self.keys
        if c.trace_id in keys.traces:
            return RELATED
        if c.response_id and (c.tenant_id, c.response_id) in keys.response_ids:
            return RELATED
        start, end = interval_us(c.timestamp, c.duration_ms)
        instance = (c.tenant_id, c.service_instance)
        if _without_usage(c):
            index = self._instances.get(instance) if _lone(c) else None
            return RELATED if index is not None and index.relates(start, end) else None
        index = self._buckets.get((c.tenant_id, c.service_instance, c.input_tokens))
        if index is not None and index.relates(start, end):
            return RELATED
        index = self._lone.get(instance)
        return PARTNER if index is not None and index.relates(start, end) else None


def _without_usage(c: _Row) -> bool:
    """Whether the row is a span's without usage, as quoted (a decision may have un-billed it since)."""
    return (c.quote_status or c.price_status) == STATUS_NOT_BILLABLE


def _lone(c: _Row) -> bool:
    """Whether a row without usage may be a lone layer of a call (`genai.decisions.is_lone_layer`)."""
    return is_lone_layer(c.parent_span_id, c.status == "error", c.model)


def _decided(c: _Row) -> bool:
    """Whether the decision reads the row: a candidate, or a model span without usage (not a fetch)."""
    return c.kind != KIND_FETCH


def _candidate(c: CandidateFacts) -> Candidate:
    start_us, end_us = interval_us(c.timestamp, c.duration_ms)
    quote = c.quote_status or c.price_status
    return Candidate(
        tenant=c.tenant_id,
        trace_id=c.trace_id,
        span_id=c.span_id,
        parent_span_id=c.parent_span_id,
        ancestors=tuple(c.ancestors.split()),
        kind=c.kind or KIND_MODEL,
        rank=profile_of(c.scope_name, c.scope_version).rank,
        scope_name=c.scope_name,
        service_instance=c.service_instance,
        model=c.model,
        response_id=c.response_id,
        input_tokens=c.input_tokens,
        output_tokens=c.output_tokens,
        start_us=start_us,
        end_us=end_us,
        quote_status=quote,
        has_usage=not _without_usage(c),
        cache_tokens=c.cache_read_tokens + c.cache_write_tokens,
        failed=c.status == "error",
    )


#: A stored version's rank: its version, then its ingestion time (the highest is the row FINAL keeps).
_Rank = tuple[int, datetime]
_K = TypeVar("_K")
_V = TypeVar("_V")
#: (tenant, context, trace, span) -> the newest version read of that span: its rank and its facts.
_Newest = dict[tuple[str, str, str, str], tuple[_Rank, CandidateFacts]]


class _Loaded(NamedTuple):
    """What a round of the pass reads: the rows it decides, and the possible partners of lone layers."""

    rows: dict[_Key, CandidateFacts]  # `RELATED`
    partners: dict[_Key, CandidateFacts]  # `PARTNER`


def _stretches(intervals: Iterable[_Interval], gap: int, most: int) -> list[_Interval]:
    """`intervals` merged where they overlap or lie less than `gap` apart, in order; past `most`
    stretches, merged across all but the `most - 1` widest gaps (a pass reads each with a statement)."""
    out: list[list[int]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    if len(out) <= most:
        return [(start, end) for start, end in out]
    # keep the `most - 1` widest gaps between stretches; merge across the others
    widest = sorted(range(1, len(out)), key=lambda i: out[i][0] - out[i - 1][1])[len(out) - most :]
    bounds = [0, *sorted(widest), len(out)]
    return [(out[a][0], max(end for _, end in out[a:b])) for a, b in itertools.pairwise(bounds)]


def _at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


def _load(
    source: _Source,
    keys: DecisionKeys,
    since: datetime,
    until: datetime,
    chunk: int,
    newest: _Newest,
    read_traces: set[str],
    related: Related,
) -> None:
    """Keep in `newest` the newest version of every candidate that matches `keys`, and of every span
    `related` (the pass's keys so far, `keys` among them) relates by a response ID, a bucket or a
    lone layer alone (read by its trace). A trace in `read_traces` (the traces read so far) is not
    read again; those read here are added to it."""
    sql = render_query("decision_candidates.sql", source.database)
    traces = sorted(keys.traces - read_traces)
    rids = sorted({r for _, r in keys.response_ids})
    inputs = sorted({n for _, _, n in keys.buckets})
    instances = sorted({i for _, i, _ in keys.buckets})
    lone_instances = sorted({i for _, i in keys.lone})
    # A call related through a bucket (or a lone layer's interval) ends after the earliest interval
    # starts and starts before the latest one ends (the engine's rounding of the end aside: one more
    # millisecond).
    slack = CONTAINMENT_TOLERANCE_US + 1_000
    first, last = keys.span() or (0, 0)
    # A lone layer's partners are every call of its service instance around it, and the lone layers of
    # a bucket's instance every root without usage there: read where they meet a stretch of the
    # intervals (a late span beside fresh ones), not over the hour between.
    intervals = itertools.chain(*keys.buckets.values(), *keys.lone.values())
    stretches = _stretches(intervals, _STRETCH_GAP_US, _MAX_STRETCHES) or [(0, 0)]
    earliest, latest = keys.earliest or since, keys.latest or until  # (`run_pass` has both)
    window = {
        "since": since,
        "until": until,
        "near_since": max(earliest - _NEAR, since),
        "near_until": min(latest + _NEAR, until),
        "bucket_from": _at(first - slack),
        "bucket_to": _at(last + slack),
        "stretches": [(_at(start - slack), _at(end + slack)) for start, end in stretches],
    }

    def read(
        traces: Sequence[str],
        rids: Sequence[str],
        inputs: Sequence[int],
        instances: Sequence[str],
        lone_instances: Sequence[str],
    ) -> None:
        for start in range(0, max(len(traces), len(rids), len(inputs), 1), chunk):
            params = {
                **window,
                "traces": traces[start : start + chunk],
                "response_ids": rids[start : start + chunk],
                "inputs": inputs[start : start + chunk],
                "instances": instances,
                "lone_instances": lone_instances,
            }
            columns, _, result = source.query(sql, params)
            _keep_newest(newest, columns, result)
        read_traces.update(traces)

    if traces or rids or inputs or lone_instances:  # (else nothing matches)
        read(traces, rids, inputs, instances, lone_instances)
    # A span related by a response ID, a bucket or a lone layer alone may have versions that match no
    # key (a newer one would have been read too, had it matched one: the version read is the newest):
    # every version of it, read by its trace (a second statement only when a relation crossed traces).
    # Only rows of traces not read yet can name one: the others are not sorted or related here again
    # (`_loaded` relates every row once the round has read them).
    crossed = {
        row.trace_id
        for _, row in newest.values()
        if row.trace_id not in read_traces and _decided(row) and related.relation(row) is not None
    }
    if others := sorted(crossed):
        read(others, [], [], [], [])


def _relations(newest: _Newest, related: Related) -> list[tuple[str, CandidateFacts]]:
    """The rows of `newest` that `related` relates, newest first, with their relation."""
    kept = sorted(newest.values(), key=lambda kept: kept[0], reverse=True)
    return [(how, row) for _, row in kept if _decided(row) and (how := related.relation(row)) is not None]


def _loaded(newest: _Newest, related: Related) -> _Loaded:
    """The rows of `newest` that `related` relates, and the possible partners of their lone layers."""
    loaded = _Loaded({}, {})
    for how, row in _relations(newest, related):
        (loaded.rows if how == RELATED else loaded.partners)[(row.tenant_id, row.trace_id, row.span_id)] = row
    return loaded


def _keep_newest(newest: _Newest, columns: Sequence[str], result: Sequence[Sequence[Any]]) -> None:
    """Keep in `newest` the newest version of each span among those `decision_candidates.sql` returned
    (the highest version, then the latest ingestion: the row FINAL keeps)."""
    # The query's columns are the facts' fields, in order, then ``ingested_at`` (then a row is built
    # without keywords, a tenth of the cost); by name otherwise (a server that returns another order).
    if not result:
        return  # (an empty result may come without its column names)
    fields = len(CandidateFacts._fields)
    in_order = tuple(columns[:fields]) == CandidateFacts._fields
    at = list(columns).index("ingested_at")
    for raw in result:
        row = (
            CandidateFacts(*raw[:fields])
            if in_order
            else CandidateFacts(**{c: v for c, v in zip(columns, raw, strict=True) if c != "ingested_at"})
        )
        _keep(newest, (row.tenant_id, row.context_id, row.trace_id, row.span_id), (row.version, raw[at]), row)


def _keep(newest: dict[_K, tuple[_Rank, _V]], key: _K, rank: _Rank, value: _V) -> None:
    """Keep `value` for `key` in `newest` unless a version ranked higher is kept (the rank: the
    version, then the ingestion time: the row FINAL keeps)."""
    kept = newest.get(key)
    if kept is None or rank > kept[0]:
        newest[key] = (rank, value)


def _stored(
    source: _Source, candidates: Sequence[CandidateFacts], since: datetime, until: datetime, chunk: int
) -> dict[_Key, CallRow]:
    """The stored rows (every column, deduplicated) of `candidates`, by their sorting key."""
    sql = render_query("decision_rows.sql", source.database)
    out: dict[_Key, CallRow] = {}
    for start in range(0, len(candidates), chunk):
        part = candidates[start : start + chunk]
        params = {
            "keys": [(c.tenant_id, c.context_id, c.trace_id, c.span_id) for c in part],
            "since": since,
            "until": until,
        }
        columns, _, result = source.query(sql, params)
        for raw in result:
            row = CallRow(**dict(zip(columns, raw, strict=True)))
            out[(row.tenant_id, row.trace_id, row.span_id)] = row
    return out


def _links(
    source: _Source, traces: Sequence[str], since: datetime, until: datetime, chunk: int
) -> dict[tuple[str, str, str], str]:
    """The parent link of each recorded step of `traces`, from the newest version of the step."""
    sql = render_query("decision_links.sql", source.database)
    newest: dict[tuple[str, str, str], tuple[_Rank, str]] = {}
    for start in range(0, len(traces), chunk):
        params = {"traces": list(traces[start : start + chunk]), "since": since, "until": until}
        for tenant, trace, span, parent, version, ingested_at in source.query(sql, params)[2]:
            _keep(newest, (tenant, trace, span), (version, ingested_at), parent)
    return {key: parent for key, (_, parent) in newest.items()}


def _shared_traces(rows: Mapping[_Key, CandidateFacts]) -> list[str]:
    """The traces in which a tenant has two candidates or more: the only ones whose step links can
    change a decision (`decide` follows a candidate's ancestry to the other candidates of its trace)."""
    seen: set[tuple[str, str]] = set()
    shared: set[str] = set()
    for tenant, trace, _ in rows:
        if (tenant, trace) in seen:
            shared.add(trace)
        seen.add((tenant, trace))
    return sorted(shared)


def _grown(closed: DecisionKeys, rows: Iterable[CandidateFacts]) -> DecisionKeys:
    """The keys the loaded `rows` add to `closed` (a trace, a response ID, a bucket interval or a lone
    layer's interval it lacks; empty: the set is closed), with the time range of every row."""
    grown = DecisionKeys()
    for row in rows:
        interval = interval_us(row.timestamp, row.duration_ms)
        if _without_usage(row):
            intervals = closed.lone.get((row.tenant_id, row.service_instance)) if _lone(row) else None
            known = not _lone(row) or (intervals is not None and interval in intervals)
        else:
            intervals = closed.buckets.get((row.tenant_id, row.service_instance, row.input_tokens))
            known = intervals is not None and interval in intervals
        if (
            known
            and row.trace_id in closed.traces
            and (not row.response_id or (row.tenant_id, row.response_id) in closed.response_ids)
        ):
            grown.note_time(row.timestamp)
        else:
            grown.add_call(row)
    return grown.without(closed)  # (a row's other keys may be known already)


def run_pass(
    source: _Source, keys: DecisionKeys, chunk: int = _CHUNK
) -> tuple[list[DecisionChange], DecisionKeys]:
    """Decide every candidate related to `keys`; return the changed rows and the keys left for a
    later pass (those of a set that did not close within the round limit). Keys are bound `chunk` at
    a time (each chunk is one scan of the window)."""
    if not keys or keys.earliest is None or keys.latest is None:
        return [], DecisionKeys()
    since, until = keys.earliest - _WINDOW, keys.latest + _WINDOW
    closed = DecisionKeys()
    closed.merge(keys)
    loaded = _Loaded({}, {})
    pending = DecisionKeys()
    # Each round reads what the keys the previous one found relate (the first: `keys`'), and decides
    # over everything read so far: a key's related rows lie in the windows its own reading spans.
    newest: _Newest = {}
    read_traces: set[str] = set()
    fresh = keys
    for _ in range(_MAX_ROUNDS):
        related = Related(closed)
        _load(source, fresh, since, until, chunk, newest, read_traces, related)
        loaded = _loaded(newest, related)
        fresh = _grown(closed, loaded.rows.values())
        if not fresh:
            break
        closed.merge(fresh)
    else:
        _log.warning("decision pass: related set did not close in %d rounds; continuing later", _MAX_ROUNDS)
        pending = closed
    rows = loaded.rows
    parents = _links(source, _shared_traces(rows), since, until, chunk)
    # A partner's decision is its own pass's (its related set is not read here): the span that bills
    # its call is the one it names, or itself.
    partners = [(_candidate(p), p.billed_by or p.span_id) for p in loaded.partners.values()]
    decisions = decide([_candidate(r) for r in rows.values()], parents, partners)
    changed = [
        key
        for key, row in sorted(rows.items())
        if (d := decisions.get(key)) is not None
        and (row.price_status, row.billing_rule, row.billed_by) != tuple(d)
    ]
    stored = _stored(source, [rows[key] for key in changed], since, until, chunk) if changed else {}
    floor = time.time_ns() // 1000
    changes: list[DecisionChange] = []
    for key in changed:
        d, old = decisions[key], stored.get(key)
        if old is None or (old.price_status, old.billing_rule, old.billed_by) == tuple(d):
            continue  # gone, or written again meanwhile with this decision
        new = old._replace(
            price_status=d.price_status,
            billing_rule=d.billing_rule,
            billed_by=d.billed_by,
            quote_status=old.quote_status or old.price_status,
            version=max(old.version + 1, floor),
        )
        changes.append((old, new))
    return changes, pending


def is_billed(c: CallRow) -> bool:
    """Whether a row counts in totals (every status but `UNBILLED_STATUSES`)."""
    return c.price_status not in UNBILLED_STATUSES
