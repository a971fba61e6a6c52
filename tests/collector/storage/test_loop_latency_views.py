"""Tool loops per context, latency and the policy path in the ledger, on the real embedded engine."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.cli.seed_store import make_calls
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import Store


@pytest.fixture
def store(database_pool):
    with database_pool.store() as s:
        yield s


def _rows(store: Store, sql: str) -> list[dict[str, Any]]:
    columns, _, rows = store.query(sql.replace("DB.", f"{store.database}."))
    return [dict(zip(columns, r, strict=True)) for r in rows]


_BASE = make_calls(1)[0]


def _call(context: str, n: int, input_tokens: int, cost: str | None) -> CallRow:
    """The n-th call of `context` (10 s apart), priced at `cost` (all of it input) or unpriced."""
    money = None if cost is None else Decimal(cost)
    zero = None if cost is None else Decimal(0)
    return _BASE._replace(
        context_id=context, span_id=f"{context[:4]}{n:012d}",
        timestamp=_BASE.timestamp + timedelta(seconds=10 * n),
        input_tokens=input_tokens, output_tokens=100, cache_read_tokens=0, cache_write_tokens=0,
        price_status="priced" if cost is not None else "unpriced", attempt=0, status="ok",
        total_cost=money, input_cost=money, output_cost=zero, cache_read_cost=zero,
    )  # fmt: skip


def _tool(context: str, after: CallRow, n: int, ms: float = 40.0, status: str = "ok") -> StepRow:
    """A tool step one second after the call `after`."""
    return StepRow(
        after.timestamp + timedelta(seconds=1), after.trace_id, f"t{context[:3]}{n:012d}", after.span_id,
        context, after.tenant_id, "tool", "search", "execute_tool", status, ms, "", after.ingested_at, 1,
    )  # fmt: skip


def test_loops_steps_tokens_growth_and_no_loop(store: Store) -> None:
    # ctx-loop: call 0 -> tool -> call 1 -> tool -> call 2 (a 3-step loop), call 3 (no tool: a new
    # start), then tool -> call 4 (a 2-step loop: 3 -> 4). One failed attempt without usage counts not.
    inputs = [1000, 2500, 4000, 4100, 6100]
    calls = [_call("ctx-loop", i, tokens, "0.01" if i != 2 else None) for i, tokens in enumerate(inputs)]
    failed = _call("ctx-loop", 9, 0, None)._replace(
        timestamp=calls[1].timestamp + timedelta(seconds=2), price_status="not_billable", output_tokens=0
    )
    steps = [_tool("ctx-loop", calls[0], 0), _tool("ctx-loop", calls[1], 1, ms=120.0, status="error"),
             _tool("ctx-loop", calls[3], 2)]  # fmt: skip
    plain = [_call("ctx-plain", i, 500, "0.02") for i in range(3)]  # calls, no tool: no loop
    store.write([*calls, failed, *plain], steps)
    store.write(calls[:2], steps[:1])  # a re-delivery changes nothing
    store.refresh_aggregates(hourly=False)
    (loop,) = _rows(store, "SELECT * FROM DB.v_context_loops")
    assert loop["context_id"] == "ctx-loop" and loop["tool_loops"] == 2 and loop["loop_steps"] == 3
    # tokens of the calls after the first of each loop: calls 1, 2 and 4
    assert loop["loop_tokens"] == (2500 + 100) + (4000 + 100) + (6100 + 100)
    assert loop["loop_cost"] == Decimal("0.02")  # call 2 is unpriced: NULL, never 0, and left out
    # growth per step: (4000 - 1000) / 2 = 1500 in the first loop, 2000 in the second: the largest
    assert loop["prompt_growth_per_step"] == 2000.0
    (plain_row,) = _rows(store, "SELECT * FROM DB.v_context_costs WHERE context_id = 'ctx-plain'")
    assert (plain_row["tool_loops"], plain_row["loop_steps"], plain_row["loop_tokens"]) == (0, 0, 0)
    assert plain_row["loop_cost"] is None and plain_row["prompt_growth_per_step"] is None
    tools = _rows(store, "SELECT * FROM DB.v_tool_latency ORDER BY context_id")
    assert [
        (t["context_id"], t["tool_calls"], t["tool_errors"], t["max_ms"], t["total_ms"]) for t in tools
    ] == [("ctx-loop", 3, 1, 120.0, 200.0)]


def test_a_late_tool_step_turns_calls_into_a_loop(store: Store) -> None:
    """Steps and calls arrive in any order: the loop is recomputed from the whole context."""
    calls = [_call("ctx-late", i, 1000 * (i + 1), "0.01") for i in range(3)]
    store.write(calls, [])
    store.refresh_aggregates(hourly=False)
    assert _rows(store, "SELECT * FROM DB.v_context_loops") == []
    store.write([], [_tool("ctx-late", calls[0], 0), _tool("ctx-late", calls[1], 1)])
    store.refresh_aggregates(hourly=False)
    (loop,) = _rows(store, "SELECT loop_steps, prompt_growth_per_step FROM DB.v_context_loops")
    assert loop == {"loop_steps": 3, "prompt_growth_per_step": 1000.0}


def _loop_figures(events: list[tuple[int, int, int, Decimal | None]]) -> dict[str, Any]:
    """The loop figures of a context by the documented rules, from its billed calls and tool steps
    as (second, is_tool, input tokens, cost): in time order, a call before a tool step of the same
    instant; a call continues a loop when a tool step started since the previous call."""
    loops: list[list[tuple[int, Decimal | None]]] = []
    segment: list[tuple[int, Decimal | None]] = []
    seen_call = tool_since = False
    for _, is_tool, tokens, cost in sorted(events, key=lambda e: (e[0], e[1])):
        if is_tool:
            tool_since = True
            continue
        if not (seen_call and tool_since):  # a call that continues nothing starts a segment
            if len(segment) > 1:
                loops.append(segment)
            segment = []
        segment.append((tokens, cost))
        seen_call, tool_since = True, False
    if len(segment) > 1:
        loops.append(segment)
    after_first = [call for loop in loops for call in loop[1:]]
    costs = [cost for _, cost in after_first if cost is not None]
    return {
        "tool_loops": len(loops),
        "loop_steps": max((len(loop) for loop in loops), default=0),
        "loop_tokens": sum(tokens + 100 for tokens, _ in after_first),  # each call's output: 100
        "loop_cost": sum(costs, Decimal(0)) if costs else None,
        "prompt_growth_per_step": max(
            ((loop[-1][0] - loop[0][0]) / (len(loop) - 1) for loop in loops), default=None
        ),
    }


def test_loop_figures_of_random_contexts_follow_the_rules(store: Store) -> None:
    """Seeded random contexts (tool steps before the first call and after the last, a call and a tool
    step at the same instant, unpriced calls, calls without usage, no tool at all) in one refresh:
    every context's loop figures equal the rules computed independently here."""
    rng = random.Random(20261206)
    calls: list[CallRow] = []
    steps: list[StepRow] = []
    expected: dict[str, dict[str, Any]] = {}
    for c in range(80):
        context, trace = f"ctx-rand-{c:03d}", f"{c + 1:032x}"
        events: list[tuple[int, int, int, Decimal | None]] = []
        seconds = sorted(rng.sample(range(60), rng.randrange(0, 9)))  # one call per second at most
        for n, second in enumerate(seconds):
            tokens = rng.randrange(100, 9000)
            cost = rng.choice([None, Decimal(rng.randrange(1, 10**6)) / 10**8])
            billable = rng.random() > 0.1
            status = ("priced" if cost is not None else "unpriced") if billable else "not_billable"
            at = _BASE.timestamp + timedelta(seconds=second)
            call = _call(context, n, tokens, None if cost is None else str(cost))
            calls.append(
                call._replace(trace_id=trace, span_id=f"{c:08x}{n:08x}", timestamp=at, price_status=status)
            )
            if billable:
                events.append((second, 0, tokens, cost))
        for n in range(rng.randrange(0, 7) if rng.random() > 0.2 else 0):
            second = rng.choice([*seconds, rng.randrange(60)]) if seconds else rng.randrange(60)
            after = calls[-1] if seconds else _call(context, 0, 0, None)._replace(trace_id=trace)
            step = _tool(context, after, 100 + n)
            steps.append(step._replace(timestamp=_BASE.timestamp + timedelta(seconds=second)))
            events.append((second, 1, 0, None))
        expected[context] = _loop_figures(events)
    store.write(calls, steps)
    store.refresh_aggregates(hourly=False)
    got = {
        row.pop("context_id"): row
        for row in _rows(
            store,
            "SELECT context_id, tool_loops, loop_steps, loop_tokens, loop_cost, prompt_growth_per_step"
            " FROM DB.v_context_costs WHERE context_id LIKE 'ctx-rand-%'",
        )
    }
    assert sum(1 for e in expected.values() if e["tool_loops"]) >= 20  # the rules are exercised
    for context, want in expected.items():
        if context not in got:  # a context with neither a call nor a step has no row
            assert want["tool_loops"] == 0
            continue
        row = got[context]
        growth, want_growth = row.pop("prompt_growth_per_step"), want.pop("prompt_growth_per_step")
        assert row == want, context
        assert (growth is None) == (want_growth is None), context
        assert growth is None or abs(growth - want_growth) <= 0.05 + 1e-9, context  # to 0.1 token


def test_latency_views_and_spend_per_policy_path(store: Store) -> None:
    a, b, c, d = make_calls(4)
    a, b, c = (r._replace(model="gpt-4o", price_status="priced") for r in (a, b, c))
    a = a._replace(duration_ms=1000.0, time_to_first_token_ms=200.0, output_tokens_per_second=50.0,
                   policy_path="guard/pii/allow")  # fmt: skip
    b = b._replace(duration_ms=3000.0, time_to_first_token_ms=None, output_tokens_per_second=None,
                   policy_path="guard/pii/allow")  # fmt: skip
    c = c._replace(duration_ms=2000.0, time_to_first_token_ms=400.0, output_tokens_per_second=None,
                   policy_path="route/cheap")  # fmt: skip
    d = d._replace(policy_path="", price_status="duplicate_layer")  # billed by another span: no spend
    store.write([a, b, c, d], [])
    latency = {r["span_id"]: r for r in _rows(store, "SELECT * FROM DB.v_call_latency")}
    assert set(latency) == {a.span_id, b.span_id, c.span_id}
    assert latency[a.span_id]["decode_ms"] == 800.0 and latency[b.span_id]["decode_ms"] is None
    assert latency[b.span_id]["time_to_first_token_ms"] is None  # unknown: NULL, never 0
    per_model = _rows(
        store,
        "SELECT sum(calls) AS calls, sum(ttft_calls) AS ttft_calls, sum(total_cost) AS cost "
        "FROM DB.v_model_latency WHERE model = 'gpt-4o'",
    )
    assert per_model[0]["calls"] == 3 and per_model[0]["ttft_calls"] == 2
    assert per_model[0]["cost"] == _exact_sum([a, b, c])
    policy = _rows(
        store,
        "SELECT policy_path, sum(calls) AS calls, sum(total_cost) AS cost FROM DB.v_policy_daily "
        "GROUP BY policy_path ORDER BY policy_path",
    )
    expected = {
        "guard/pii/allow": [a, b],
        "route/cheap": [c],
    }
    assert {r["policy_path"]: r["calls"] for r in policy} == {k: len(v) for k, v in expected.items()}
    for r in policy:
        assert r["cost"] == _exact_sum(expected[r["policy_path"]])


def _exact_sum(rows: list[CallRow]) -> Decimal | None:
    costs = [r.total_cost for r in rows if r.total_cost is not None]
    return sum(costs, Decimal(0)) if costs else None


def test_a_tool_call_recorded_by_two_layers_counts_once(store: Store) -> None:
    """AutoGen's own ``execute_tool get_weather`` span, a child of OpenInference's ``weather.get_weather``
    span of the same tool call: one tool call (and its failure one tool error). A tool that runs another
    tool, and two calls of the same tool side by side, are two tool calls each."""
    call = _call("ctx-tools", 0, 1000, "0.01")
    outer = _tool("ctx-tools", call, 0)._replace(name="weather.get_weather", status="error")
    inner = _tool("ctx-tools", call, 1)._replace(
        name="execute_tool get_weather", parent_span_id=outer.span_id, status="error"
    )
    composite = _tool("ctx-tools", call, 2)._replace(name="execute_tool research")
    sub = _tool("ctx-tools", call, 3)._replace(name="execute_tool search", parent_span_id=composite.span_id)
    parallel = [_tool("ctx-tools", call, 4 + i)._replace(name="execute_tool get_weather") for i in range(2)]
    store.write([call], [outer, inner, composite, sub, *parallel])
    store.refresh_aggregates(hourly=False)
    (row,) = _rows(store, "SELECT tool_calls, tool_errors FROM DB.v_context_costs")
    assert row == {"tool_calls": 5, "tool_errors": 1}
    # the tool latency view counts them alike, per tool (the last word of the span's name)
    latency = "SELECT tool, tool_calls, tool_errors, total_ms FROM DB.v_tool_latency ORDER BY tool"
    tools = _rows(store, latency)
    assert tools == [
        {"tool": "get_weather", "tool_calls": 3, "tool_errors": 1, "total_ms": 120.0},
        {"tool": "research", "tool_calls": 1, "tool_errors": 0, "total_ms": 40.0},
        {"tool": "search", "tool_calls": 1, "tool_errors": 0, "total_ms": 40.0},
    ]


def test_a_runaway_context_s_tool_calls_cost_what_its_steps_do(store: Store) -> None:
    """A runaway agent loop: one context of 20,000 tool steps of 7 tools, every third a second layer of
    the step before it. Its tool calls are counted within 200 MiB for the refresh and for the latency
    view; before, each tool step was looked up in the context's array of them: the square of its
    steps (a 10,000-step context took 54 s a refresh, and 20,000 more than 200 MiB)."""
    call = _call("ctx-runaway", 0, 1000, "0.01")
    steps: list[StepRow] = []
    for i in range(20_000):
        step = _tool("ctx-runaway", call, i)._replace(name=f"execute_tool tool{i % 7}")
        if i % 3 == 2:  # a second layer of the step before: its child, same tool
            step = step._replace(name=steps[-1].name, parent_span_id=steps[-1].span_id)
        steps.append(step)
    store.write([call], steps)
    bounded = {"max_memory_usage": 200 << 20}
    refresh = render_query("refresh_context_costs.sql", store.database)
    store.command(refresh, {"tenants": [call.tenant_id], "contexts": ["ctx-runaway"]}, settings=bounded)
    layers = 20_000 // 3
    ((tool_calls,),) = store.query("SELECT tool_calls FROM v_context_costs")[2]
    assert tool_calls == 20_000 - layers
    latency = "SELECT sum(tool_calls), uniqExact(tool) FROM v_tool_latency WHERE context_id = 'ctx-runaway'"
    assert store.query(latency, settings=bounded)[2] == [(20_000 - layers, 7)]


def test_parallel_tool_calls_recorded_beside_themselves_count_once_each(store: Store) -> None:
    """Two calls of the MCP tool at once, each recorded twice (OpenInference's span and, within it, the
    MCP SDK's): a long call (0–500 ms, failed) and a short one (10–30 ms); the short call's inner layer
    (15–17 ms) starts before the long call's (300–303 ms, failed), so the long call's layer is not the
    next span after it. Two tool calls and one tool error, whatever the order the layers started in."""
    call = _call("ctx-parallel", 0, 1000, "0.01")
    start = call.timestamp + timedelta(seconds=1)
    steps = [
        _tool("ctx-parallel", call, n, ms=ms, status=status)._replace(
            name=name, timestamp=start + timedelta(milliseconds=at)
        )
        for n, name, at, ms, status in (
            (0, "mcp__weather__get_weather", 0, 500.0, "error"),
            (1, "mcp__weather__get_weather", 10, 20.0, "ok"),
            (2, "tools/call get_weather", 15, 2.0, "ok"),
            (3, "tools/call get_weather", 300, 3.0, "error"),
        )
    ]
    store.write([call], steps)
    store.refresh_aggregates(hourly=False)
    (row,) = _rows(store, "SELECT tool_calls, tool_errors FROM DB.v_context_costs")
    assert row == {"tool_calls": 2, "tool_errors": 1}
    latency = "SELECT tool, tool_calls, tool_errors, max_ms FROM DB.v_tool_latency"
    expected = {"tool": "get_weather", "tool_calls": 2, "tool_errors": 1, "max_ms": 500.0}
    assert _rows(store, latency) == [expected]


def test_a_tool_call_recorded_beside_itself_counts_once(store: Store) -> None:
    """The Claude Agent SDK's in-process MCP tool: OpenInference's ``mcp__weather__get_weather`` span and,
    within it, the MCP SDK's ``tools/call get_weather``, both children of the agent's span (as
    recorded: 747–802 ms and 787–790 ms): one tool call, and its failure one tool error. Two calls of
    one tool under one name, one within the other (parallel calls), and two under other names with the
    same interval, are two each."""
    call = _call("ctx-siblings", 0, 1000, "0.01")
    start = call.timestamp + timedelta(seconds=1)
    outer = _tool("ctx-siblings", call, 0, ms=54.3, status="error")._replace(
        name="mcp__weather__get_weather", timestamp=start
    )
    inner = _tool("ctx-siblings", call, 1, ms=2.4, status="error")._replace(
        name="tools/call get_weather", timestamp=start + timedelta(milliseconds=40)
    )
    long, short = (
        _tool("ctx-siblings", call, n, ms=ms)._replace(name="execute_tool search", timestamp=at)
        for n, ms, at in ((2, 500.0, start), (3, 20.0, start + timedelta(milliseconds=100)))
    )
    same = [
        _tool("ctx-siblings", call, 4 + i)._replace(name=name, timestamp=start)
        for i, name in enumerate(("lookup", "execute_tool lookup"))
    ]
    store.write([call], [inner, outer, short, long, *same])
    store.refresh_aggregates(hourly=False)
    (row,) = _rows(store, "SELECT tool_calls, tool_errors FROM DB.v_context_costs")
    assert row == {"tool_calls": 5, "tool_errors": 1}
    latency = "SELECT tool, tool_calls, tool_errors FROM DB.v_tool_latency ORDER BY tool"
    assert _rows(store, latency) == [
        {"tool": "get_weather", "tool_calls": 1, "tool_errors": 1},
        {"tool": "lookup", "tool_calls": 2, "tool_errors": 0},
        {"tool": "search", "tool_calls": 2, "tool_errors": 0},
    ]
