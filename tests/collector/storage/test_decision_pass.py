"""The decision pass on the real engine: a pass costs what the batch touched, not a busy bucket's day."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cli.seed_store import make_calls, reads_at_most, write_busy_day
from tests.stores import Counting, DatabasePool
from tokenbook.collector.storage.decisions import DecisionChange, DecisionKeys, _stretches, run_pass
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import QueryResult, Store
from tokenbook.genai.decisions import RULE_CROSS_LAYER, RULE_DESCENDANT, RULE_RESPONSE_ID, RULE_WITHIN_CALL


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    """A migrated embedded store in a fresh database."""
    with database_pool.store() as s:
        yield s


def busy_bucket(n: int, start: datetime) -> list[CallRow]:
    """`n` calls of one service with the same input tokens, one a second, each in its own trace."""
    fields: dict[str, Any] = dict(
        tenant_id="acme", service_instance="svc-1", input_tokens=100, scope_name="openai",
        duration_ms=500.0, response_id="", price_status="priced", quote_status="priced",
    )  # fmt: skip
    return [
        c._replace(**fields, timestamp=start + timedelta(seconds=i), trace_id=f"{i + 1:032x}")
        for i, c in enumerate(make_calls(n, base=start))
    ]


def test_a_pass_reads_the_calls_that_meet_the_batch_not_the_whole_bucket(store: Store) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    calls = busy_bucket(2_001, start)
    store.write(calls[:2_000], [])
    store.refresh_aggregates(hourly=False)
    keys = DecisionKeys()
    keys.add_call(calls[2_000])
    store.write(calls[2_000:], [])
    source = Counting(store)
    changes, pending = run_pass(source, keys)
    assert (changes, bool(pending)) == ([], False)
    assert source.rows <= 3  # the new call (and its neighbours' links), not the bucket's 2,001 calls


def test_layers_of_one_call_written_apart_are_still_one_call(store: Store) -> None:
    """Among 1,000 calls of the same bucket, a client library's span and the SDK's span of the same
    call arrive in separate batches, the containing one last: the pass relates them."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    calls = busy_bucket(1_000, start)
    inner = calls[500]
    outer = inner._replace(
        span_id="f" * 16, trace_id="e" * 32, scope_name="opentelemetry.instrumentation.openai",
        timestamp=inner.timestamp - timedelta(milliseconds=20), duration_ms=540.0,
    )  # fmt: skip
    store.write(calls, [])
    store.refresh_aggregates(hourly=False)
    store.write([outer], [])
    store.refresh_aggregates(hourly=False)
    _, _, rows = store.query(
        "SELECT span_id, price_status, billing_rule, billed_by FROM llm_calls FINAL"
        " WHERE span_id IN {s:Array(String)}",
        {"s": [inner.span_id, outer.span_id]},
    )
    decided = {r[0]: r[1:] for r in rows}
    billed = [s for s, (status, rule, _) in decided.items() if rule == ""]
    assert len(billed) == 1
    (other,) = set(decided) - set(billed)
    assert decided[other] == ("duplicate_layer", RULE_CROSS_LAYER, billed[0])
    _, _, totals = store.query("SELECT count() FROM v_calls")
    assert totals[0][0] == 1_000


class Reordered(Counting):
    """The store as a server whose ``llm_calls`` lists its columns in another order."""

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        columns, types, rows = super().query(sql, parameters)
        return columns[::-1], types[::-1], [tuple(r)[::-1] for r in rows]


def _two_layers(store: Store) -> tuple[CallRow, CallRow, DecisionKeys]:
    """One call recorded by two layers (an inner span and the OpenAI instrumentation's outer span around
    it, in another trace), written, and the decision keys of both."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    inner = busy_bucket(1, start)[0]
    outer = inner._replace(
        span_id="f" * 16, trace_id="e" * 32, scope_name="opentelemetry.instrumentation.openai",
        timestamp=inner.timestamp - timedelta(milliseconds=20), duration_ms=540.0,
    )  # fmt: skip
    store.write([inner, outer], [])
    keys = DecisionKeys()
    for c in (inner, outer):
        keys.add_call(c)
    return inner, outer, keys


def test_a_pass_reads_rows_by_column_name_whatever_the_column_order(store: Store) -> None:
    """The same decisions whether the engine returns the columns in the row's order or another."""
    *_, keys = _two_layers(store)
    # (before, after) per changed call; the new version is the pass's clock
    in_order = [(old, new._replace(version=0)) for old, new in run_pass(Counting(store), keys)[0]]
    reordered = [(old, new._replace(version=0)) for old, new in run_pass(Reordered(store), keys)[0]]
    assert len(in_order) == 1 and in_order[0][1].billing_rule == RULE_CROSS_LAYER
    assert reordered == in_order


def test_a_pass_reads_the_newest_version_of_each_span(store: Store) -> None:
    """The pass reads every version of the candidates' spans and keeps the newest (as FINAL does): after
    a pass has written its decisions as new versions, a pass over the same keys finds them decided; when
    the billed span gets a newer version without usage, the other layer is billed again."""
    inner, outer, keys = _two_layers(store)
    changes, _ = run_pass(Counting(store), keys)
    assert [new.billing_rule for _, new in changes] == [RULE_CROSS_LAYER]
    store.write([new for _, new in changes], [])
    _, _, versions = store.query("SELECT count() FROM llm_calls")
    assert versions[0][0] == 3  # both spans, one of them in two versions
    assert run_pass(Counting(store), keys)[0] == []
    # A newer version of the billed span without usage: the other layer is billed again.
    (duplicate,) = [new for _, new in changes]
    billed = inner if duplicate.span_id == outer.span_id else outer
    store.write([billed._replace(price_status="not_billable", quote_status="not_billable", version=2)], [])
    changes, _ = run_pass(Counting(store), keys)
    assert [(old.span_id, new.price_status, new.billing_rule) for old, new in changes] == [
        (duplicate.span_id, duplicate.quote_status, "")
    ]


def test_a_span_of_another_trace_is_judged_by_its_newest_version(store: Store) -> None:
    """A pass whose keys hold one layer of a call finds the other layer, in another trace, by its
    bucket alone (reading that trace again, for every version of the span); when a newer version of
    that span leaves the bucket, the older one that matched relates nothing."""
    inner, outer, _ = _two_layers(store)
    keys = DecisionKeys()
    keys.add_call(inner)
    candidates = render_query("decision_candidates.sql", store.database)
    source = Counting(store)
    changes, _ = run_pass(source, keys)
    assert [new.billing_rule for _, new in changes] == [RULE_CROSS_LAYER]
    assert source.statements.count(candidates) == 3  # the other trace read again; then a round with it
    store.write([outer._replace(input_tokens=outer.input_tokens + 50, version=2)], [])
    source = Counting(store)
    assert run_pass(source, keys)[0] == []
    assert source.statements.count(candidates) == 2  # the old version matched: its trace read again


def test_a_related_set_that_does_not_close_in_the_round_limit_is_left_pending(store: Store) -> None:
    """Traces chained by response IDs (each trace's second call answers with the next trace's first
    call's ID) reach one trace further every other round: a pass stops at its round limit and leaves
    the keys it reached pending, and the next pass goes on from there."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    calls = [
        c._replace(response_id=f"resp-{(i + 1) // 2}", input_tokens=100 + i, trace_id=f"{i // 2 + 1:032x}")
        for i, c in enumerate(busy_bucket(24, start))
    ]
    store.write(calls, [])
    keys = DecisionKeys()
    keys.add_call(calls[0])
    _, pending = run_pass(Counting(store), keys)
    reached = {f"{i + 1:032x}" for i in range(12)} & pending.traces
    assert pending and calls[0].trace_id in pending.traces and 1 < len(reached) < 12
    while pending:  # each pass goes further, until the chain's end closes the set
        _, more = run_pass(Counting(store), pending)
        assert not more or more.traces > pending.traces
        pending = more


def _chain(start: datetime, trace: str, span: int) -> tuple[list[CallRow], list[StepRow]]:
    """A framework's model span with usage over a recorded step (no usage) over the client library's
    span of the same call: only the step's parent link relates the two calls."""
    top, inner = busy_bucket(2, start)
    top = top._replace(
        trace_id=trace, span_id=f"{span:016x}", scope_name="langchain", input_tokens=90, kind="model"
    )
    step = StepRow(
        top.timestamp, trace, f"{span + 1:016x}", top.span_id, top.context_id, top.tenant_id, "wrapper",
        "agent", "invoke_agent", "ok", 400.0, "", top.ingested_at, 1,
    )  # fmt: skip
    inner = inner._replace(
        trace_id=trace, span_id=f"{span + 2:016x}", parent_span_id=step.span_id, timestamp=top.timestamp,
        kind="model",
    )  # fmt: skip
    return [top, inner], [step]


def test_step_links_are_read_only_for_traces_holding_two_candidates(store: Store) -> None:
    """Links can relate only candidates of one trace: a batch of one call per trace reads none, and a
    trace with two calls joined by a step is still decided through the step's link."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    links = render_query("decision_links.sql", store.database)
    alone = [c._replace(input_tokens=100 + i) for i, c in enumerate(busy_bucket(3, start))]
    store.write(alone, [])
    keys = DecisionKeys()
    for c in alone:
        keys.add_call(c)
    source = Counting(store)
    assert run_pass(source, keys)[0] == []
    assert source.statements and links not in source.statements

    calls, steps = _chain(start + timedelta(minutes=5), "c" * 32, 1 << 40)
    store.write(calls, steps)
    keys = DecisionKeys()
    for c in calls:
        keys.add_call(c)
    source = Counting(store)
    changes, _ = run_pass(source, keys)
    assert links in source.statements
    assert [(old.span_id, new.billing_rule, new.billed_by) for old, new in changes] == [
        (calls[0].span_id, RULE_DESCENDANT, calls[1].span_id)
    ]


def test_a_pass_over_a_wrapper_step_whose_calls_are_not_stored_yet(store: Store) -> None:
    """A wrapper step arriving before the calls under it: its trace is a key, the candidates query
    finds nothing (an empty result, which may come without column names), and the refresh goes on."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    calls, steps = _chain(start, "d" * 32, 1 << 41)
    store.write([], steps)
    assert store.refresh_aggregates() == 1  # the step's context
    _, _, rows = store.query(
        "SELECT tool_calls, calls FROM v_context_costs WHERE context_id = {c:String}",
        {"c": steps[0].context_id},
    )
    assert rows == [(0, 0)]
    store.write(calls, [])
    store.refresh_aggregates(hourly=False)
    _, _, decided = store.query(
        "SELECT span_id, billing_rule FROM llm_calls FINAL WHERE trace_id = {t:String} ORDER BY span_id",
        {"t": "d" * 32},
    )
    assert decided == [(calls[0].span_id, RULE_DESCENDANT), (calls[1].span_id, "")]


def test_a_pass_reads_its_traces_and_the_hour_around_them_not_the_day(store: Store) -> None:
    """On a ledger holding a busy day (60,000 calls and steps of other traces), a pass over a trace
    whose decision changes reads that trace, and the hour around its calls for calls of other traces
    related by response ID or bucket, not the day: every statement of the pass reads at most 30,000
    rows (the engine reads whole granules of 8,192), and the decision is the one a quiet day gives."""
    now = datetime.now(UTC).replace(microsecond=0)
    write_busy_day(store, 60_000, now)
    calls, steps = _chain(now - timedelta(minutes=30), "b" * 32, 1 << 42)
    store.write(calls, steps)
    keys = DecisionKeys()
    for c in calls:
        keys.add_call(c)
    source = Counting(store, settings=reads_at_most(30_000))
    changes, pending = run_pass(source, keys)
    assert [(old.span_id, new.billing_rule, new.billed_by) for old, new in changes] == [
        (calls[0].span_id, RULE_DESCENDANT, calls[1].span_id)
    ]
    assert not pending
    assert render_query("decision_links.sql", store.database) in source.statements
    assert render_query("decision_rows.sql", store.database) in source.statements


def test_calls_of_one_trace_hours_apart_are_still_related(store: Store) -> None:
    """A trace's calls are related however far apart they are within the day: the model call under
    a wrapper that began 20 hours earlier, written later, un-bills the wrapper's usage."""
    now = datetime.now(UTC).replace(microsecond=0)
    calls, steps = _chain(now - timedelta(hours=21), "a" * 32, 1 << 43)
    top, inner = calls
    inner = inner._replace(timestamp=top.timestamp + timedelta(hours=20))
    store.write([top], steps)
    store.refresh_aggregates(hourly=False)
    store.write([inner], [])
    keys = DecisionKeys()
    keys.add_call(inner)
    changes, _ = run_pass(Counting(store), keys)
    assert [(old.span_id, new.billing_rule, new.billed_by) for old, new in changes] == [
        (top.span_id, RULE_DESCENDANT, inner.span_id)
    ]


def test_layers_of_one_call_in_two_traces_are_related_within_the_hour(store: Store) -> None:
    """Two layers of one call in two traces (no shared trace context), related by their response ID,
    though one started 50 minutes before the other (a long call, the outer layer around retries)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    inner = busy_bucket(1, start)[0]._replace(response_id="resp-long")
    outer = inner._replace(
        span_id="f" * 16, trace_id="e" * 32, scope_name="opentelemetry.instrumentation.openai",
        timestamp=inner.timestamp - timedelta(minutes=50), duration_ms=3_100_000.0,
    )  # fmt: skip
    store.write([outer], [])
    store.refresh_aggregates(hourly=False)
    store.write([inner], [])
    keys = DecisionKeys()
    keys.add_call(inner)
    changes, _ = run_pass(Counting(store), keys)
    assert [new.billing_rule for _, new in changes] == [RULE_RESPONSE_ID]


class CandidateReads(Counting):
    """A `Counting` that also counts how often the pass's candidate statement returns each version."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.sql = render_query("decision_candidates.sql", store.database)
        self.versions: Counter[tuple[str, int]] = Counter()  # (span ID, version) -> times read

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None) -> QueryResult:
        result = super().query(sql, parameters)
        if sql == self.sql:
            columns, _, rows = result
            span, version = columns.index("span_id"), columns.index("version")
            self.versions.update((row[span], row[version]) for row in rows)
        return result


def test_each_round_reads_what_the_previous_one_found_not_everything_again(store: Store) -> None:
    """Three traces chained by response IDs (each trace's second call and the next trace's first are
    layers of one call): from the first trace's keys, the rounds find the next trace, then its other
    call, six rounds in all. Every version is read at most three times (by the key that found it, by
    its trace, by its own keys), not again in every later round, and each shared response ID bills
    its call once."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    template = busy_bucket(1, start)[0]
    rows = []
    for t in range(3):
        trace = f"{t + 1:032x}"
        for k in range(2):  # k = 0: the call shared with the previous trace; 1: with the next one
            rows.append(
                template._replace(
                    trace_id=trace, span_id=f"{2 * t + k + 1:016x}", response_id=f"resp-{t + k}",
                    input_tokens=1_000 + 10 * t + k, timestamp=start + timedelta(seconds=10 * t + 2 * k),
                )
            )  # fmt: skip
    store.write(rows, [])
    keys = DecisionKeys()
    keys.add_call(rows[0])
    source = CandidateReads(store)
    changes, pending = run_pass(source, keys)
    assert not pending
    assert sorted(new.billing_rule for _, new in changes) == [RULE_RESPONSE_ID] * 2
    assert {span for span, _ in source.versions} == {row.span_id for row in rows}
    assert max(source.versions.values()) <= 3  # each round re-reading all: 6


def _layers_of_one_call(start: datetime) -> list[CallRow]:
    """One call recorded by three spans of one trace: a framework's model span without usage, the
    client library's span with the usage below it, and a span without usage per streamed chunk below
    that; and a failed attempt, without usage, in a trace of its own: two calls."""
    client = busy_bucket(1, start)[0]._replace(
        trace_id="c" * 32, span_id="c" * 16, parent_span_id="b" * 16, ancestors="b" * 16,
        scope_name="opentelemetry.instrumentation.litellm",
    )  # fmt: skip
    without_usage: dict[str, Any] = dict(
        input_tokens=0, output_tokens=0, cache_read_tokens=0, input_cost=None, output_cost=None,
        cache_read_cost=None, cache_write_cost=None, total_cost=None, price_status="not_billable",
        quote_status="not_billable",
    )  # fmt: skip
    framework = client._replace(**without_usage, span_id="b" * 16, parent_span_id="", ancestors="",
                                scope_name="openinference.instrumentation.dspy")  # fmt: skip
    chunk = client._replace(**without_usage, span_id="d" * 16, parent_span_id="c" * 16, ancestors="")
    failed = client._replace(
        **without_usage, trace_id="f" * 32, span_id="f" * 16, parent_span_id="", ancestors="",
        status="error", timestamp=start - timedelta(seconds=5),
    )  # fmt: skip
    return [framework, client, chunk, failed]


def _statuses(store: Store) -> dict[str, tuple[str, str, str]]:
    _, _, rows = store.query("SELECT span_id, price_status, billing_rule, billed_by FROM llm_calls FINAL")
    return {span: (status, rule, by) for span, status, rule, by in rows}


def _calls(store: Store) -> int:
    _, _, rows = store.query("SELECT sum(calls) FROM v_context_costs")
    return int(rows[0][0])


EXPECTED_LAYERS = {
    "b" * 16: ("duplicate_layer", RULE_DESCENDANT, "c" * 16),
    "c" * 16: ("priced", "", ""),
    "d" * 16: ("duplicate_layer", RULE_WITHIN_CALL, "c" * 16),
    "f" * 16: ("not_billable", "", ""),
}


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 2, 0), (2, 0, 1)], ids=str)
def test_layers_without_usage_count_as_no_call_whatever_the_order(
    database_pool: DatabasePool, order: tuple[int, ...]
) -> None:
    """A model span without usage over the call's span, or below it, is a layer of the call: one call
    (and a failed attempt of its own, another), whichever of the spans arrives first (each first once,
    each before and after each other)."""
    rows = _layers_of_one_call(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2))
    with database_pool.store() as store:
        store.write([rows[3]], [])
        for i in order:
            store.write([rows[i]], [])
            store.refresh_aggregates(hourly=False)
        assert _statuses(store) == EXPECTED_LAYERS
        assert _calls(store) == 2


def test_layers_without_usage_are_decided_after_a_crash(store: Store, database_pool: DatabasePool) -> None:
    """Written, then a crash before the decision pass: the recovery decides the layers without usage."""
    store.write(_layers_of_one_call(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)), [])
    with Store.open(data_dir=database_pool.data_dir, database=store.database) as fresh:
        fresh.refresh_aggregates(since=datetime.now(UTC) - timedelta(hours=1))
        assert _statuses(fresh) == EXPECTED_LAYERS
        assert _calls(fresh) == 2


def _pass_over(store: Store, rows: list[CallRow]) -> tuple[list[DecisionChange], DecisionKeys, Counting]:
    """Write `rows`, then run a pass over their keys: its changes, the keys it left, what it read."""
    store.write(rows, [])
    keys = DecisionKeys()
    for row in rows:
        keys.add_call(row)
    source = Counting(store)
    changes, pending = run_pass(source, keys)
    return changes, pending, source


def _lone_layers(n: int, start: datetime) -> list[tuple[CallRow, CallRow]]:
    """`n` concurrent streams of one service, each recorded by LangChain.js's span (the usage) and, in
    a trace of its own (the context lost), the OpenAI instrumentation's span without usage within it;
    each stream starts 10 ms after the previous one and lasts 500 ms."""
    base = busy_bucket(1, start)[0]
    pairs = []
    for i in range(n):
        begin = start + timedelta(milliseconds=10 * i)
        call = base._replace(
            trace_id=f"{2 * i + 1:032x}", span_id=f"{2 * i + 1:016x}", timestamp=begin, duration_ms=500.0,
            input_tokens=100 + i, scope_name="@traceloop/instrumentation-langchain", model="gpt-4o-mini",
            status="ok",
        )  # fmt: skip
        layer = call._replace(
            trace_id=f"{2 * i + 2:032x}", span_id=f"{2 * i + 2:016x}",
            timestamp=begin + timedelta(milliseconds=5), duration_ms=492.0, input_tokens=0, output_tokens=0,
            input_cost=None, output_cost=None,
            cache_read_cost=None, cache_write_cost=None, total_cost=None, price_status="not_billable",
            quote_status="not_billable", scope_name="@traceloop/instrumentation-openai",
            model="gpt-4o-mini-2024-07-18", context_id=f"ctx-{2 * i + 2}",
        )  # fmt: skip
        pairs.append((call, layer))
    return pairs


@pytest.mark.parametrize("layer_first", [False, True], ids=["call-first", "layer-first"])
def test_a_lone_layer_without_usage_counts_as_no_call_whatever_the_order(
    database_pool: DatabasePool, layer_first: bool
) -> None:
    """A LangChain.js stream: the OpenAI instrumentation's span, without usage, in a trace of its own
    within LangChain's span of the call, is a layer of that call, whichever arrives first."""
    ((call, layer),) = _lone_layers(1, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2))
    with database_pool.store() as store:
        for row in (layer, call) if layer_first else (call, layer):
            store.write([row], [])
            store.refresh_aggregates(hourly=False)
        assert _statuses(store) == {
            call.span_id: ("priced", "", ""),
            layer.span_id: ("duplicate_layer", RULE_CROSS_LAYER, call.span_id),
        }
        assert _calls(store) == 1


def test_concurrent_lone_layers_each_belong_to_their_own_call(store: Store) -> None:
    """200 overlapping streams (one every 10 ms, each 500 ms long), each with a lone layer within it:
    each layer belongs to its own stream, and every pass closes in a round or two and reads the calls
    around its batch's stretch of time (a layer's possible calls are read, not the calls related to
    those), so the keys never chain through the whole stretch of traffic."""
    pairs = _lone_layers(200, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2))
    rows = [row for pair in pairs for row in pair]
    candidates = render_query("decision_candidates.sql", store.database)
    for at in range(0, len(rows), 41):  # batches that split pairs
        changes, pending, source = _pass_over(store, rows[at : at + 41])
        assert not pending and source.statements.count(candidates) <= 3
        # the batch's 20 streams and the 50 open around each end of its stretch, twice (call, layer)
        assert source.rows <= 2 * (20 + 2 * 50) + 20
        store.write([new for _, new in changes], [])
    store.refresh_aggregates(hourly=False)
    statuses = _statuses(store)
    for call, layer in pairs:
        assert statuses[call.span_id] == ("priced", "", "")
        assert statuses[layer.span_id] == ("duplicate_layer", RULE_CROSS_LAYER, call.span_id)
    assert _calls(store) == 200


def test_a_lone_layer_is_decided_after_a_crash(store: Store, database_pool: DatabasePool) -> None:
    ((call, layer),) = _lone_layers(1, datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2))
    store.write([call, layer], [])
    with Store.open(data_dir=database_pool.data_dir, database=store.database) as fresh:
        fresh.refresh_aggregates(since=datetime.now(UTC) - timedelta(hours=1))
        assert _statuses(fresh)[layer.span_id] == ("duplicate_layer", RULE_CROSS_LAYER, call.span_id)
        assert _calls(fresh) == 1


def _layer_of(call: CallRow, n: int) -> CallRow:
    """A lone layer without usage of `call` (another scope, a trace of its own, within it)."""
    return call._replace(
        trace_id=f"{0xE0 + n:032x}", span_id=f"{0xE0 + n:016x}", scope_name="openllmetry-js",
        timestamp=call.timestamp + timedelta(milliseconds=5), duration_ms=call.duration_ms - 20,
        input_tokens=0, output_tokens=0, price_status="not_billable", quote_status="not_billable",
        total_cost=None,
    )  # fmt: skip


def _call_of(layer: CallRow, n: int) -> CallRow:
    """A call with usage of another scope, in a trace of its own, around the lone layer `layer`."""
    return layer._replace(
        trace_id=f"{0xE0 + n:032x}", span_id=f"{0xE0 + n:016x}", scope_name="langchain-js",
        timestamp=layer.timestamp - timedelta(milliseconds=5), duration_ms=layer.duration_ms + 20,
        input_tokens=100, output_tokens=10, price_status="priced", quote_status="priced",
    )  # fmt: skip


@pytest.mark.parametrize("touched", ["layers", "calls"])
def test_far_apart_the_pass_reads_around_each_not_the_time_between(store: Store, touched: str) -> None:
    """Two lone layers 10 minutes apart in one pass (a late span beside fresh ones), in a service that
    made a call every second between them; or two calls, in a service whose spans without usage lost
    their context every second between them: the pass reads the rows around each of the two, not the
    600 between (1,210 and 1,208 rows read over the whole stretch)."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    stored = [c._replace(model="gpt-4o-mini", status="ok") for c in busy_bucket(600, start)]
    if touched == "calls":
        stored = [_layer_of(c, 0)._replace(trace_id=c.trace_id, span_id=c.span_id) for c in stored]
    ends = (stored[0], stored[-1])
    new_rows = [(_layer_of if touched == "layers" else _call_of)(row, i) for i, row in enumerate(ends)]
    store.write(stored, [])
    store.refresh_aggregates(hourly=False)
    changes, pending, source = _pass_over(store, new_rows)
    assert not pending and source.rows <= 40  # 20: the rows around each, read by trace again
    layers, calls = (new_rows, ends) if touched == "layers" else (ends, new_rows)
    assert sorted((new.span_id, new.billing_rule, new.billed_by) for _, new in changes) == sorted(
        (layer.span_id, RULE_CROSS_LAYER, call.span_id) for layer, call in zip(layers, calls, strict=True)
    )


def test_a_pass_over_calls_spread_over_hours_reads_a_few_stretches(store: Store) -> None:
    """240 calls a minute apart over four hours (a backfill, a recovery slice): the pass reads them in a
    statement a round (two rounds), not one per stretch of time between them (240 statements before,
    then one per stretch kept: up to 4 a round)."""
    calls = make_calls(240, base=datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6))
    _, _, source = _pass_over(store, calls)
    assert source.statements.count(render_query("decision_candidates.sql", store.database)) <= 2


def test_stretches_keep_the_widest_gaps() -> None:
    """The stretches a pass reads: intervals closer than the gap together, then, past the most a pass
    reads, the widest gaps kept apart (10,000 intervals 30 s apart: four stretches, at once)."""
    assert _stretches([(0, 10), (5, 20), (100, 110)], 50, 4) == [(0, 20), (100, 110)]
    assert _stretches([(0, 10), (100, 110), (130, 140), (1000, 1010)], 5, 2) == [(0, 140), (1000, 1010)]
    assert _stretches([(0, 10), (100, 110), (130, 140), (1000, 1010)], 5, 3) == [
        (0, 10), (100, 140), (1000, 1010),
    ]  # fmt: skip
    many = [(i * 30_000_000, i * 30_000_000 + 500_000) for i in range(10_000)]
    assert len(_stretches(many, 10_000_000, 4)) == 4
