"""dashboards/*.json: valid Grafana dashboards whose every query runs, as Grafana would send it.

Two layers, as in Grafana itself:

1. Template variables, expanded in the browser by Grafana's template service. Every variable in SQL
   names its format explicitly: `${name:sqlstring}` (each value single-quoted, `'` doubled, `"`
   backslash-escaped, values joined with `,`: Grafana's `sqlstring` formatter) or `${name:raw}`.
   A multi-value variable selected as "All" has the custom `allValue` `'__all__'`, which Grafana
   inserts *unformatted*; the SQL reads `('__all__' IN (${v:sqlstring}) OR col IN (${v:sqlstring}))`.
2. Macros, expanded in the plugin's backend exactly as `grafana/clickhouse-datasource`
   `pkg/macros/macros.go` with `grafana/sqlds` `interpolate`: for each macro, the regex
   `\\$__NAME(?:\\((.*?)\\))?` (arguments end at the first `)`), arguments split on `,` and trimmed
   (no parentheses means one empty argument), every occurrence of the match replaced. sqlds walks a
   Go map, so the order is random: `_expand_macros` is run in two orders and must agree.

The expanded SQL then runs on the embedded engine (chDB, through `Store`) over seeded ledger rows,
written with `Store.write` + `Store.refresh_aggregates`, with ClickHouse `readonly=2` like a
read-only Grafana user; results are checked against Decimal sums computed here in Python.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.collector.budgets.budget_rows import BUDGET_PANEL_COLUMNS, seed_budget_events
from tests.stores import DatabasePool
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.store import Store
from tokenbook.genai.pricing.catalog import CATALOG_NAME

DASHBOARD_DIR = Path(__file__).resolve().parents[1] / "dashboards"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))
PLUGIN = "grafana-clickhouse-datasource"
DATASOURCE_REF = {"type": PLUGIN, "uid": "${datasource}"}
ALL_VALUE = "'__all__'"

# --- Grafana template variables ---------------------------------------------------------------------

# Grafana's variable syntax: $name, [[name(:format)]], ${name(.field)(:format)}.
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}")


def _sqlstring(values: list[str]) -> str:
    """Grafana's `sqlstring` formatter."""
    escape = {"'": "''", '"': '\\"'}
    return ",".join("'" + re.sub(r"['\"]", lambda m: escape[m.group(0)], v) + "'" for v in values)


_FORMATS: dict[str, Callable[[list[str]], str]] = {"sqlstring": _sqlstring, "raw": ",".join}

#: A variable's selection: a list of values, or ALL for Grafana's "All" option.
ALL = object()


def _expand_variables(
    text: str, variables: Mapping[str, dict[str, Any]], selection: Mapping[str, Any]
) -> str:
    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name.startswith("__"):
            return m.group(0)  # a plugin macro ($__timeFilter) or a Grafana built-in: not ours
        var = variables[name]
        value = selection[name]
        if value is ALL:
            assert var.get("allValue"), f"${name}: All selected but no allValue"
            return str(var["allValue"])  # Grafana inserts a custom all value unformatted
        assert fmt in _FORMATS, f"${name} has format {fmt!r}; SQL must use one of {sorted(_FORMATS)}"
        return _FORMATS[fmt](value)

    return _VARIABLE.sub(replace, text)


# --- the plugin's macros (pkg/macros/macros.go) --------------------------------------------------


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime
    interval_s: float


def _date_time(t: datetime) -> str:
    return f"toDateTime({int(t.timestamp())})"


def _date(t: datetime) -> str:
    return f"toDate('{t.astimezone(UTC):%Y-%m-%d}')"


def _one_arg(args: list[str]) -> str:
    assert len(args) == 1, f"expected 1 argument, received {len(args)}"
    return args[0]


def _time_filter(r: TimeRange, args: list[str]) -> str:
    c = _one_arg(args)
    return f"{c} >= {_date_time(r.start)} AND {c} <= {_date_time(r.end)}"


def _date_filter(r: TimeRange, args: list[str]) -> str:
    c = _one_arg(args)
    return f"{c} >= {_date(r.start)} AND {c} <= {_date(r.end)}"


def _date_time_filter(r: TimeRange, args: list[str]) -> str:
    assert len(args) == 2, f"expected 2 arguments, received {len(args)}"
    d, t = args
    return (
        f"({d} >= {_date(r.start)} AND {d} <= {_date(r.end)}) AND "
        f"({t} >= {_date_time(r.start)} AND {t} <= {_date_time(r.end)})"
    )


def _time_interval(r: TimeRange, args: list[str]) -> str:
    return f"toStartOfInterval(toDateTime({_one_arg(args)}), INTERVAL {int(max(r.interval_s, 1))} second)"


#: The macros this test expands. The plugin's `_ms` variants are deliberately absent: their names
#: extend other macro names (`timeFilter` / `timeFilter_ms`), and since sqlds tries macros in random
#: order, `$__timeFilter_ms(...)` can be taken for `$__timeFilter`. Dashboards must not use them.
MACROS: dict[str, Callable[[TimeRange, list[str]], str]] = {
    "fromTime": lambda r, _a: _date_time(r.start),
    "toTime": lambda r, _a: _date_time(r.end),
    "timeFilter": _time_filter,
    "dateFilter": _date_filter,
    "dateTimeFilter": _date_time_filter,
    "dt": _date_time_filter,
    "timeInterval": _time_interval,
    "interval_s": lambda r, _a: str(int(max(r.interval_s, 1))),
}


def _expand_macros(sql: str, r: TimeRange, order: list[str]) -> str:
    """sqlds `interpolate`: per macro, all matches found first, then each replaced everywhere."""
    for name in order:
        for m in list(re.finditer(r"\$__" + re.escape(name) + r"(?:\((.*?)\))?", sql)):
            args = [a.strip() for a in (m.group(1) or "").split(",")]
            sql = sql.replace(m.group(0), MACROS[name](r, args))
    return sql


def grafana_sql(
    sql: str, dashboard: dict[str, Any], selection: Mapping[str, Any], time_range: TimeRange
) -> str:
    """`sql` as the ClickHouse server receives it from Grafana and the plugin."""
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    text = _expand_variables(sql, variables, selection)
    order = list(MACROS)
    expanded = _expand_macros(text, time_range, order)
    assert expanded == _expand_macros(text, time_range, order[::-1]), "macro expansion depends on order"
    assert "$" not in expanded, f"unexpanded reference left in: {expanded}"
    return expanded


# --- loading ----------------------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    board = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(board, dict)
    return board


BOARDS = {p.name: _load(p) for p in DASHBOARD_FILES}
BOARD_NAMES = sorted(BOARDS)


def _board(uid: str) -> dict[str, Any]:
    (board,) = [b for b in BOARDS.values() if b["uid"] == uid]
    return board


def _panel(uid: str, title: str) -> dict[str, Any]:
    panels: list[dict[str, Any]] = _board(uid)["panels"]
    (panel,) = [p for p in panels if p["title"] == title]
    return panel


def _queries(board: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any] | None]]:
    """(label, SQL, panel or None for a variable) of every query in the dashboard."""
    for v in board["templating"]["list"]:
        if v["type"] == "query":
            yield f"variable {v['name']}", v["query"], None
    for p in board["panels"]:
        for t in p["targets"]:
            yield f"panel {p['id']} {p['title']!r}", t["rawSql"], p


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


# --- the expander itself ---------------------------------------------------------------------------


def test_macros_expand_like_the_plugin() -> None:
    """Expected strings follow pkg/macros/macros.go (and its macros_test.go cases)."""
    r = TimeRange(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 2, 12, tzinfo=UTC), interval_s=0.5)
    order = list(MACROS)
    expand = _expand_macros
    assert expand("$__timeFilter(ts)", r, order) == (
        "ts >= toDateTime(1772323200) AND ts <= toDateTime(1772452800)"
    )
    assert expand("$__fromTime|$__toTime", r, order) == "toDateTime(1772323200)|toDateTime(1772452800)"
    assert expand("$__dateFilter(d)", r, order) == "d >= toDate('2026-03-01') AND d <= toDate('2026-03-02')"
    assert expand("$__dt(d, t)", r, order) == (
        "(d >= toDate('2026-03-01') AND d <= toDate('2026-03-02')) AND "
        "(t >= toDateTime(1772323200) AND t <= toDateTime(1772452800))"
    )
    # Sub-second intervals round up to 1 second, as math.Max(seconds, 1) does.
    assert expand("$__timeInterval( ts )", r, order) == "toStartOfInterval(toDateTime(ts), INTERVAL 1 second)"
    assert expand("$__interval_s", r, order) == "1"
    # Arguments end at the first ')': a function call as an argument breaks (dashboards avoid it).
    assert expand("$__timeFilter(toDate(ts))", r, order) == (
        "toDate(ts >= toDateTime(1772323200) AND toDate(ts <= toDateTime(1772452800))"
    )


def test_variables_expand_like_grafana() -> None:
    variables: dict[str, dict[str, Any]] = {
        "t": {"name": "t", "multi": True, "allValue": ALL_VALUE},
        "db": {"name": "db"},
    }
    sql = "SELECT 1 FROM ${db:raw}.x WHERE t IN (${t:sqlstring}) AND $__timeFilter(ts)"
    picked = _expand_variables(sql, variables, {"db": ["tb"], "t": ["o'hare", 'say "hi"']})
    assert picked == r"SELECT 1 FROM tb.x WHERE t IN ('o''hare','say \"hi\"') AND $__timeFilter(ts)"
    everything = _expand_variables(sql, variables, {"db": ["tb"], "t": ALL})
    assert everything == "SELECT 1 FROM tb.x WHERE t IN ('__all__') AND $__timeFilter(ts)"


# --- structure --------------------------------------------------------------------------------------


def test_there_are_the_five_dashboards() -> None:
    uids = [b["uid"] for b in BOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert set(uids) == {
        "tokenbook-spend-overview",
        "tokenbook-tenant",
        "tokenbook-contexts",
        "tokenbook-efficiency",
        "tokenbook-pricing",
        "tokenbook-budgets",
        "tokenbook-prompt-anatomy",
    }


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_dashboard_top_level(name: str) -> None:
    b = BOARDS[name]
    assert b["title"] and b["uid"] and len(b["uid"]) <= 40
    assert b["schemaVersion"] >= 39
    assert b["time"]["from"] and b["time"]["to"]
    assert b["panels"] and isinstance(b["templating"]["list"], list)
    assert "id" not in b or b["id"] is None, "provisioned dashboards carry no database id"


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_panel_ids_unique_and_grid_positions_disjoint(name: str) -> None:
    panels = BOARDS[name]["panels"]
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) and i > 0 for i in ids)
    assert len(set(ids)) == len(ids)
    cells: dict[tuple[int, int], int] = {}
    for p in panels:
        g = p["gridPos"]
        assert set(g) == {"h", "w", "x", "y"} and all(isinstance(v, int) for v in g.values())
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0 and g["x"] + g["w"] <= 24
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"panel {p['id']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = p["id"]


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_panels_and_targets_use_the_datasource_variable(name: str) -> None:
    for p in BOARDS[name]["panels"]:
        assert p["datasource"] == DATASOURCE_REF, p["title"]
        assert p["targets"], p["title"]
        ref_ids = [t["refId"] for t in p["targets"]]
        assert len(set(ref_ids)) == len(ref_ids)
        for t in p["targets"]:
            assert t["datasource"] == DATASOURCE_REF
            assert t["editorType"] == "sql" and t["rawSql"].strip()
            # The plugin's query types; sqlds formats: 0 = time series (long to wide), 1 = table.
            timeseries = p["type"] == "timeseries"
            assert t["queryType"] == ("timeseries" if timeseries else "table")
            assert t["format"] == (0 if timeseries else 1)


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_variables_are_well_formed(name: str) -> None:
    variables = BOARDS[name]["templating"]["list"]
    names = [v["name"] for v in variables]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[a-z_][a-z0-9_]*", n) for n in names)
    ds = variables[0]
    assert ds["name"] == "datasource" and ds["type"] == "datasource" and ds["query"] == PLUGIN
    seen: set[str] = set()
    for v in variables:
        if v["type"] == "query":
            assert v["datasource"] == DATASOURCE_REF
            assert v["query"] == v["definition"] and v["query"].strip()
            assert v["refresh"] in (1, 2)  # on load / on time range change
            # Grafana resolves variables in order: a query may only use variables defined above it.
            used = {m[0] or m[1] or m[3] for m in _VARIABLE.findall(v["query"])}
            assert {u for u in used if not u.startswith("__")} <= seen, v["name"]
        if v.get("multi"):
            assert v["includeAll"] and v["allValue"] == ALL_VALUE
        if v["type"] == "constant":
            assert v["query"] and v["hide"] == 2
        seen.add(v["name"])


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_every_variable_used_is_defined(name: str) -> None:
    b = BOARDS[name]
    defined = {v["name"] for v in b["templating"]["list"]}
    for text in _strings(b):
        for m in _VARIABLE.finditer(text):
            var = m.group(1) or m.group(2) or m.group(4)
            assert var.startswith("__") or var in defined, f"${var} used but not defined: {text[:80]}"


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_sql_uses_only_known_macros_and_exact_reads(name: str) -> None:
    for label, sql, _ in _queries(BOARDS[name]):
        used = set(re.findall(r"\$__(\w+)", sql))
        assert used <= set(MACROS), f"{label}: unknown macros {used - set(MACROS)}"
        for m in re.finditer(r"\$__\w+\(([^)]*)\)", sql):
            assert "(" not in m.group(1), f"{label}: a macro argument ends at the first ')'"
        # Exact, deduplicated reads only: the v_* views (FINAL inside) or an explicit FINAL.
        for source in re.findall(r"(?<!WITH FILL )\b(?:FROM|JOIN)\s+([^\s(]+)(\s+FINAL)?", sql):
            table, final = source
            assert table.startswith("${database:raw}.v_") or final, f"{label}: reads {table} without FINAL"
        # Money stays Decimal: no float conversions of costs.
        assert not re.search(r"toFloat(32|64)", sql), label


@pytest.mark.parametrize("name", BOARD_NAMES)
def test_links_point_at_dashboards_and_their_variables(name: str) -> None:
    for text in _strings(BOARDS[name]["panels"]):
        for m in re.finditer(r"/d/([\w-]+)/[\w-]+\?([^\s\"]*)", text):
            target = _board(m.group(1))
            names = {v["name"] for v in target["templating"]["list"]}
            for var in re.findall(r"var-(\w+)=", m.group(2)):
                assert var in names, f"link sets var-{var}, unknown to {target['uid']}"


# --- seeded ledger ----------------------------------------------------------------------------------

NOW = datetime.now(UTC).replace(microsecond=0)
MONTH_START = NOW.replace(day=1, hour=0, minute=0, second=0)
RANGE = TimeRange(MONTH_START, NOW + timedelta(hours=1), interval_s=3600)
Q = Decimal("0.000000000001")


def _at(i: int, n: int) -> datetime:
    """The i-th of n instants spread over the current month so far (all inside RANGE)."""
    return MONTH_START + (NOW - MONTH_START) * (i + 1) / (n + 2)


def _call(
    ts: datetime,
    *,
    tenant: str,
    context: str,
    span: str,
    model: str,
    project: str = "support",
    provider: str = "openai",
    tokens: tuple[int, int, int, int, int] = (1000, 200, 0, 0, 0),
    rates: tuple[str, str, str, str] | None = ("0.0000025", "0.00001", "0.00000125", "0.000003125"),
    version: int = 1,
    client_cost: str | None = None,
    usage_issue: str = "",
    status: str = "ok",
    user: str = "alice",
    **extra: Any,
) -> CallRow:
    """A ledger row priced per token at `rates` (input, output, cache read, cache write), or unpriced;
    `extra`: other columns (prompt parts, saturation, latency, policy path)."""
    inp, out, cr, cw, reasoning = tokens
    costs: tuple[Decimal | None, ...] = (None,) * 5
    price_status, price_source = "unpriced", f"no price for {model}"
    if rates is not None:
        r_in, r_out, r_cr, r_cw = (Decimal(r) for r in rates)
        raw = ((inp - cr - cw) * r_in, out * r_out, cr * r_cr, cw * r_cw)
        parts = [p.quantize(Q) for p in raw]
        costs = (*parts, sum(parts, Decimal(0)))
        price_status, price_source = "priced", f"{CATALOG_NAME}: {provider}/{model}"
    return CallRow(
        timestamp=ts,
        trace_id=f"trace-{context}",
        span_id=span,
        parent_span_id="",
        context_id=context,
        workflow_name="support-agent",
        workflow_id=f"root-{context}",
        tenant_id=tenant,
        user_id=user,
        project_id=project,
        team_id="team-a",
        feature="chat",
        service_name="svc",
        tags={},
        provider=provider,
        model=model,
        operation="chat",
        input_tokens=inp,
        output_tokens=out,
        cache_read_tokens=cr,
        cache_write_tokens=cw,
        reasoning_tokens=reasoning,
        input_cost=costs[0],
        output_cost=costs[1],
        cache_read_cost=costs[2],
        cache_write_cost=costs[3],
        total_cost=costs[4],
        currency="USD",
        price_status=price_status,
        price_source=price_source,
        client_cost=None if client_cost is None else Decimal(client_cost),
        usage_issue=usage_issue,
        attempt=0,
        status=status,
        error_type="",
        duration_ms=12.5,
        ingested_at=NOW,
        version=version,
    )._replace(**extra)


SONNET = "claude-sonnet-4-5"
SONNET_RATES = ("0.000003", "0.000015", "0.0000003", "0.00000375")
PARTS = ("system", "history", "retrieved", "tool_result", "user", "tool_definition", "overhead")


def _anatomy(input_tokens: int, window: int, ttft: float | None, policy: str, **parts: int) -> dict[str, Any]:
    """The prompt parts (the rest of the input is history), saturation, latency and policy path of a call."""
    named = {f"prompt_{p}_tokens": parts.get(p, 0) for p in PARTS if p != "history"}
    return {
        **named,
        "prompt_history_tokens": input_tokens - sum(named.values()),
        "prompt_estimated": False,
        "context_window": window,
        "context_saturation": round(input_tokens / window, 6),
        "time_to_first_token_ms": ttft,
        "output_tokens_per_second": None if ttft is None else 40.0,
        "policy_path": policy,
    }


def _seed_calls() -> list[CallRow]:
    at = [_at(i, 8) for i in range(8)]
    return [
        _call(
            at[0],
            tenant="acme",
            context="ticket-1",
            span="s1",
            model="gpt-4o",
            client_cost="0.0045",
            **_anatomy(1000, 1250, 300.0, "guard/pii", system=200, user=100),
        ),
        _call(
            at[1],
            tenant="acme",
            context="ticket-1",
            span="s2",
            model="gpt-4o",
            tokens=(3000, 500, 2000, 0, 0),
            **_anatomy(3000, 128_000, None, "guard/pii", system=200, user=100, tool_result=700),
        ),
        _call(
            at[2],
            tenant="acme",
            context="ticket-1",
            span="s3",
            model=SONNET,
            provider="anthropic",
            tokens=(5000, 800, 3000, 1000, 300),
            rates=SONNET_RATES,
            **_anatomy(5000, 5500, 900.0, "route/cheap", system=200, user=100, tool_result=1500),
        ),
        _call(
            at[3],
            tenant="acme",
            context="ticket-9",
            span="s1",
            model="gpt-4o",
            project="search",
            user="bob",
            status="error",
        ),
        _call(
            at[4],
            tenant="globex",
            context="ticket-2",
            span="s1",
            model=SONNET,
            provider="anthropic",
            tokens=(8000, 1000, 6000, 0, 0),
            rates=SONNET_RATES,
        ),
        _call(
            at[5],
            tenant="globex",
            context="ticket-2",
            span="s2",
            model="mystery-model",
            provider="acme-ai",
            rates=None,
            usage_issue="output_tokens: negative value -5 rejected",
        ),
        _call(at[6], tenant="o'hare", context="sess-3", span="s1", model="gpt-4o", project="search"),
        _call(
            at[7],
            tenant="o'hare",
            context="sess-3",
            span="s2",
            model="gpt-4o",
            project="search",
            tokens=(400, 40, 0, 0, 0),
        ),
        # Last month: outside the time range and the month-to-date.
        _call(MONTH_START - timedelta(days=2), tenant="acme", context="old-1", span="s1", model="gpt-4o"),
    ]


def _redelivered(rows: list[CallRow]) -> list[CallRow]:
    """A second delivery: one span again as-is, and one re-priced with a higher version."""
    again = rows[0]
    first = rows[6]
    repriced = _call(
        first.timestamp,
        tenant=first.tenant_id,
        context=first.context_id,
        span=first.span_id,
        model=first.model,
        project=first.project_id,
        rates=("0.000005", "0.00002", "0.0000025", "0.00000625"),
        version=2,
    )
    return [again, repriced]


def _seed_steps() -> list[StepRow]:
    return [
        StepRow(
            _at(1, 8) + timedelta(seconds=1),
            "trace-ticket-1",
            "t1",
            "s2",
            "ticket-1",
            "acme",
            "tool",
            "search_kb",
            "execute_tool",
            "ok",
            40.0,
            "",
            NOW,
            1,
        ),
        StepRow(
            _at(2, 8) + timedelta(seconds=1),
            "trace-ticket-1",
            "o1",
            "",
            "ticket-1",
            "acme",
            "outcome",
            "resolve",
            "",
            "ok",
            0.0,
            "resolved",
            NOW,
            1,
        ),
    ]


def _ledger() -> list[CallRow]:
    """The deduplicated truth: per span key, the row with the highest version."""
    latest: dict[tuple[str, str, str, str], CallRow] = {}
    for row in _seed_calls() + _redelivered(_seed_calls()):
        key = (row.tenant_id, row.context_id, row.trace_id, row.span_id)
        if key not in latest or row.version > latest[key].version:
            latest[key] = row
    return list(latest.values())


def _in_range(row: CallRow) -> bool:
    return RANGE.start <= row.timestamp <= RANGE.end


def _spend(rows: list[CallRow]) -> Decimal:
    return sum((r.total_cost for r in rows if r.total_cost is not None), Decimal(0))


class Seeded:
    """The seeded store as the dashboards read it: `readonly=2`, and each distinct statement run once
    per test process (the tests only read, so every test sending the same SQL gets the same answer:
    the panels' queries run once, not once per test that looks at them)."""

    def __init__(self, store: Store) -> None:
        """`store`: seeded, and never written again."""
        self.database = store.database
        self._store = store
        self._answers: dict[str, tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]]] = {}

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """The columns and rows `sql` returns, as a read-only Grafana user."""
        if sql not in self._answers:
            columns, _types, rows = self._store.query(sql, settings={"readonly": 2})
            self._answers[sql] = (tuple(columns), tuple(tuple(row) for row in rows))
        answer = self._answers[sql]
        return list(answer[0]), list(answer[1])


@pytest.fixture(scope="module")
def store(database_pool: DatabasePool) -> Iterator[Seeded]:
    with database_pool.store() as s:
        s.write(_seed_calls(), _seed_steps())
        s.refresh_aggregates()
        s.write(_redelivered(_seed_calls()), _seed_steps())
        s.refresh_aggregates()
        seed_budget_events(s, NOW)  # budgets.json reads budget_events
        yield Seeded(s)


SCENARIOS: dict[str, dict[str, Any]] = {
    "all": {
        "tenant": ALL,
        "project": ALL,
        "team": ALL,
        "model": ALL,
        "currency": ["USD"],
        "context": ["ticket-1"],
        "feature": ALL,
        "threshold": ["0.8"],
    },
    "picked": {
        "tenant": ["o'hare", "acme"],
        "project": ["search"],
        "team": ["team-a"],
        "model": ["gpt-4o", "claude-sonnet-4-5"],
        "currency": ["USD"],
        "context": ["sess-3"],
        "feature": ["chat"],
        "threshold": ["0.5"],
    },
}


def _selection(board: dict[str, Any], scenario: str, database: str) -> dict[str, Any]:
    """The scenario's values for this dashboard's variables (a single-value variable takes the first)."""
    chosen = dict(SCENARIOS[scenario], database=[database])
    out: dict[str, Any] = {}
    for v in board["templating"]["list"]:
        if v["type"] == "datasource":
            continue
        value = chosen[v["name"]]
        if not v.get("multi"):
            value = [("acme" if value is ALL else value[0])]
        out[v["name"]] = value
    return out


def run(store: Seeded, sql: str, board: dict[str, Any], scenario: str = "all") -> list[dict[str, Any]]:
    expanded = grafana_sql(sql, board, _selection(board, scenario, store.database), RANGE)
    columns, rows = store.query(expanded)
    return [dict(zip(columns, row, strict=True)) for row in rows]


def run_panel(store: Seeded, uid: str, title: str, scenario: str = "all") -> list[dict[str, Any]]:
    (target,) = _panel(uid, title)["targets"]
    return run(store, target["rawSql"], _board(uid), scenario)


ALL_QUERIES = [
    pytest.param(name, sql, panel, id=f"{name}:{label}")
    for name in BOARD_NAMES
    for label, sql, panel in _queries(BOARDS[name])
]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize(("name", "sql", "panel"), ALL_QUERIES)
def test_every_query_runs_on_the_embedded_engine(
    store: Seeded, name: str, sql: str, panel: dict[str, Any] | None, scenario: str
) -> None:
    rows = run(store, sql, BOARDS[name], scenario)
    if panel is not None and panel["type"] == "timeseries" and rows:
        # sqlds turns long frames into wide ones: the time column first, ascending.
        assert next(iter(rows[0])) == "time"
        times = [r["time"] for r in rows]
        assert times == sorted(times) and all(isinstance(t, datetime) for t in times)


def test_panels_return_rows_with_everything_selected(store: Seeded) -> None:
    """Seeded data reaches every panel (the selected context and tenant have calls)."""
    for name in BOARD_NAMES:
        board = BOARDS[name]
        for p in board["panels"]:
            (t,) = p["targets"]
            assert run(store, t["rawSql"], board), f"{name}: panel {p['title']!r} returned no rows"


#: The columns each panel returns: field overrides, links and transformations in Grafana address them.
EXPECTED_COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    ("tokenbook-efficiency", "Cache savings (${currency})"): (
        "cache_read_savings",
        "cache_write_savings",
        "net_cache_savings",
    ),
    ("tokenbook-efficiency", "Ratios"): (
        "cache_hit_ratio",
        "input_per_output_token",
        "reasoning_share_of_output",
    ),
    ("tokenbook-efficiency", "Cache savings by model (${currency})"): (
        "provider",
        "model",
        "uncached_input",
        "cache_read",
        "cache_write",
        "uncached_input_cost",
        "cache_read_spend",
        "cache_write_spend",
        "cache_read_savings",
        "cache_write_savings",
    ),
    ("tokenbook-efficiency", "Cache hit ratio by model"): ("time", "model", "cache_hit_ratio"),
    ("tokenbook-efficiency", "Input tokens per output token by tenant"): (
        "time",
        "tenant_id",
        "input_per_output",
    ),
    ("tokenbook-efficiency", "Efficiency by tenant"): (
        "tenant_id",
        "call_count",
        "tokens_in",
        "tokens_out",
        "cache_hit_ratio",
        "input_per_output",
        "spend",
        "cost_per_call",
    ),
    ("tokenbook-contexts", "Contexts"): (
        "tenant_id",
        "context_id",
        "workflow_name",
        "user_id",
        "project_id",
        "first_seen",
        "last_seen",
        "calls",
        "tool_calls",
        "retries",
        "call_errors",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "total_cost",
        "currency",
        "models",
        "outcome",
        "budget_state",
    ),
    ("tokenbook-contexts", "Context ${context}"): (
        "total_cost",
        "calls",
        "tool_calls",
        "retries",
        "tokens",
        "span_ms",
    ),
    ("tokenbook-contexts", "Calls of context ${context}"): (
        "timestamp",
        "trace_id",
        "span_id",
        "parent_span_id",
        "provider",
        "model",
        "operation",
        "attempt",
        "input_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "total_cost",
        "currency",
        "price_status",
        "status",
        "error_type",
        "duration_ms",
    ),
    ("tokenbook-contexts", "Cumulative cost within context ${context}"): (
        "time",
        "cumulative_cost",
        "cumulative_tokens",
    ),
    ("tokenbook-contexts", "Steps of context ${context}"): (
        "timestamp",
        "kind",
        "name",
        "operation",
        "status",
        "duration_ms",
        "outcome",
        "trace_id",
        "span_id",
    ),
    ("tokenbook-pricing", "Unpriced"): ("unpriced_calls", "unpriced_models", "unpriced_share"),
    ("tokenbook-pricing", "Usage values coerced or rejected"): ("calls_with_usage_issues",),
    ("tokenbook-pricing", "Unpriced models"): (
        "provider",
        "model",
        "calls",
        "input_tokens",
        "output_tokens",
        "tenants",
        "first_seen",
        "last_seen",
    ),
    ("tokenbook-pricing", "Price sources"): (
        "price_source",
        "price_status",
        "currency",
        "calls",
        "models",
        "spend",
        "last_used",
    ),
    ("tokenbook-pricing", "Calls by price status"): ("time", "price_status", "calls"),
    ("tokenbook-pricing", "Client-reported vs collector cost"): (
        "provider",
        "model",
        "currency",
        "calls",
        "client_reported",
        "collector_priced",
        "difference",
    ),
    ("tokenbook-pricing", "Usage issues"): ("usage_issue", "provider", "model", "calls", "last_seen"),
    ("tokenbook-spend-overview", "Spend (${currency})"): ("spend",),
    ("tokenbook-spend-overview", "Calls and tokens"): ("calls", "input_tokens", "output_tokens"),
    ("tokenbook-spend-overview", "Unpriced calls"): ("unpriced_calls",),
    ("tokenbook-spend-overview", "Errors"): ("errors",),
    ("tokenbook-spend-overview", "This month (${currency}): to date, daily run rate, month-end forecast"): (
        "month_to_date",
        "daily_run_rate",
        "month_end_forecast",
    ),
    ("tokenbook-spend-overview", "This month (${currency}): cumulative spend and forecast"): (
        "time",
        "spend_to_date",
        "forecast",
    ),
    ("tokenbook-spend-overview", "Spend by tenant (${currency})"): ("time", "tenant_id", "spend"),
    ("tokenbook-spend-overview", "Spend by model (${currency})"): ("time", "model", "spend"),
    ("tokenbook-spend-overview", "Spend by project (${currency})"): ("time", "project_id", "spend"),
    ("tokenbook-spend-overview", "Spend by team (${currency})"): ("time", "team_id", "spend"),
    ("tokenbook-spend-overview", "Share by tenant (${currency})"): ("tenant_id", "spend"),
    ("tokenbook-spend-overview", "By model"): (
        "provider",
        "model",
        "call_count",
        "unpriced",
        "tokens_in",
        "tokens_out",
        "spend",
        "cost_per_1k_tokens",
    ),
    ("tokenbook-spend-overview", "By project"): (
        "project_id",
        "tenants",
        "calls",
        "input_tokens",
        "output_tokens",
        "spend",
    ),
    ("tokenbook-tenant", "Spend (${currency})"): ("spend",),
    ("tokenbook-tenant", "Calls, tokens, errors"): ("calls", "tokens", "errors", "unpriced_calls"),
    ("tokenbook-tenant", "Contexts, tool calls, retries"): ("contexts", "tool_calls", "retries"),
    ("tokenbook-tenant", "Spend by model (${currency})"): ("time", "model", "spend"),
    ("tokenbook-tenant", "Tokens by type"): (
        "time",
        "uncached_input",
        "cache_read",
        "cache_write",
        "visible_output",
        "reasoning",
    ),
    ("tokenbook-tenant", "By project and feature"): (
        "project_id",
        "feature",
        "calls",
        "input_tokens",
        "output_tokens",
        "spend",
    ),
    ("tokenbook-tenant", "By user"): (
        "user_id",
        "calls",
        "contexts",
        "input_tokens",
        "output_tokens",
        "spend",
    ),
    ("tokenbook-tenant", "Most expensive contexts"): (
        "tenant_id",
        "context_id",
        "workflow_name",
        "user_id",
        "first_seen",
        "last_seen",
        "calls",
        "tool_calls",
        "retries",
        "call_errors",
        "tokens",
        "total_cost",
        "currency",
        "models",
        "budget_state",
    ),
    ("tokenbook-prompt-anatomy", "Measured prompts"): (
        "measured_calls",
        "model_calls",
        "measured_input_tokens",
    ),
    ("tokenbook-prompt-anatomy", "At or above ${threshold} of the context window"): (
        "saturated_calls",
        "saturated_contexts",
    ),
    ("tokenbook-prompt-anatomy", "Tool loops"): ("looping_contexts", "longest_loop", "loop_tokens"),
    ("tokenbook-prompt-anatomy", "Prompt composition over time (tokens)"): ("time", "part", "tokens"),
    ("tokenbook-prompt-anatomy", "Highest context-window saturation by model"): (
        "time",
        "model",
        "max_saturation",
    ),
    ("tokenbook-prompt-anatomy", "Composition by feature (tokens)"): (
        "feature",
        "measured_calls",
        "input_tokens",
        *PARTS,
    ),
    ("tokenbook-prompt-anatomy", "Calls at or above ${threshold} of the context window"): (
        "timestamp",
        "tenant_id",
        "context_id",
        "feature",
        "model",
        "input_tokens",
        "context_window",
        "context_saturation",
    ),
    ("tokenbook-prompt-anatomy", "Tool loops (${currency})"): (
        "tenant_id",
        "context_id",
        "feature",
        "workflow_name",
        "tool_loops",
        "loop_steps",
        "loop_tokens",
        "loop_cost",
        "prompt_growth_per_step",
        "tokens",
        "total_cost",
    ),
    ("tokenbook-prompt-anatomy", "Loop tokens by feature"): ("time", "feature", "loop_tokens"),
    ("tokenbook-prompt-anatomy", "Cost against latency per model (${currency})"): (
        "model",
        "p50_duration_ms",
        "cost_per_call",
    ),
    ("tokenbook-prompt-anatomy", "Latency and cost by model (${currency})"): (
        "provider",
        "model",
        "calls",
        "p50_duration_ms",
        "p95_duration_ms",
        "ttft_calls",
        "p50_ttft_ms",
        "p50_output_tokens_per_second",
        "spend",
        "cost_per_call",
    ),
    ("tokenbook-prompt-anatomy", "Tool-call latency"): (
        "tool",
        "calls",
        "errors",
        "contexts",
        "avg_ms",
        "max_ms",
    ),
    ("tokenbook-prompt-anatomy", "Spend by policy path (${currency})"): (
        "policy_path",
        "calls",
        "tokens",
        "spend",
    ),
    **BUDGET_PANEL_COLUMNS,
}


@pytest.mark.parametrize(
    ("uid", "title"), sorted(EXPECTED_COLUMNS), ids=[f"{u}:{t}" for u, t in sorted(EXPECTED_COLUMNS)]
)
def test_panel_returns_the_expected_columns(store: Seeded, uid: str, title: str) -> None:
    (target,) = _panel(uid, title)["targets"]
    sql = grafana_sql(target["rawSql"], _board(uid), _selection(_board(uid), "all", store.database), RANGE)
    columns, _rows = store.query(sql)
    assert tuple(columns) == EXPECTED_COLUMNS[(uid, title)]


def test_every_panel_has_expected_columns() -> None:
    panels = {(b["uid"], p["title"]) for b in BOARDS.values() for p in b["panels"]}
    assert panels == set(EXPECTED_COLUMNS)


def test_links_and_overrides_name_returned_columns() -> None:
    for (uid, title), columns in EXPECTED_COLUMNS.items():
        for o in _panel(uid, title)["fieldConfig"]["overrides"]:
            if o["matcher"]["id"] == "byName":
                assert o["matcher"]["options"] in columns, (uid, title, o["matcher"])
            for text in _strings(o["properties"]):
                for field in re.findall(r"__data\.fields\.(\w+)", text):
                    assert field in columns, (uid, title, field)


# --- results ----------------------------------------------------------------------------------------

OVERVIEW = "tokenbook-spend-overview"


def test_variables_list_the_seeded_values(store: Seeded) -> None:
    board = _board(OVERVIEW)
    by_name = {v["name"]: v for v in board["templating"]["list"]}
    in_range = [r for r in _ledger() if _in_range(r)]
    tenants = run(store, by_name["tenant"]["query"], board)
    assert [r["tenant_id"] for r in tenants] == sorted({r.tenant_id for r in in_range})
    models = run(store, by_name["model"]["query"], board, "picked")
    picked = {r.model for r in in_range if r.tenant_id in ("o'hare", "acme") and r.project_id == "search"}
    assert {r["model"] for r in models} == picked
    assert [r["currency"] for r in run(store, by_name["currency"]["query"], board)] == ["USD"]
    explorer = _board("tokenbook-contexts")
    contexts = run(store, explorer["templating"]["list"][-1]["query"], explorer)
    assert {r["context_id"] for r in contexts} == {r.context_id for r in in_range}


def test_spend_total_and_by_tenant_equal_the_decimal_sum_of_the_ledger(store: Seeded) -> None:
    in_range = [r for r in _ledger() if _in_range(r)]
    (total,) = run_panel(store, OVERVIEW, "Spend (${currency})")
    assert total == {"spend": _spend(in_range)}
    shares = run_panel(store, OVERVIEW, "Share by tenant (${currency})")
    expected = {t: _spend([r for r in in_range if r.tenant_id == t]) for t in {r.tenant_id for r in in_range}}
    assert {r["tenant_id"]: r["spend"] for r in shares} == expected
    assert sum(expected.values(), Decimal(0)) == total["spend"]
    series = run_panel(store, OVERVIEW, "Spend by tenant (${currency})")
    assert list(series[0]) == ["time", "tenant_id", "spend"]
    assert sum((r["spend"] for r in series if r["spend"] is not None), Decimal(0)) == total["spend"]


def test_team_variable_and_spend_by_team(store: Seeded) -> None:
    board = _board(OVERVIEW)
    by_name = {v["name"]: v for v in board["templating"]["list"]}
    in_range = [r for r in _ledger() if _in_range(r)]
    teams = run(store, by_name["team"]["query"], board)
    assert [r["team_id"] for r in teams] == sorted({r.team_id for r in in_range})
    (total,) = run_panel(store, OVERVIEW, "Spend (${currency})")
    series = run_panel(store, OVERVIEW, "Spend by team (${currency})")
    assert {r["team_id"] for r in series} == {r.team_id for r in in_range}
    assert sum((r["spend"] for r in series if r["spend"] is not None), Decimal(0)) == total["spend"]
    nobody = grafana_sql(
        _panel(OVERVIEW, "Spend (${currency})")["targets"][0]["rawSql"],
        board,
        {**_selection(board, "all", store.database), "team": ["no-such-team"]},
        RANGE,
    )
    assert store.query(nobody)[1] in ([], [(None,)])


def test_filters_narrow_to_the_picked_tenants_projects_and_models(store: Seeded) -> None:
    picked = [
        r
        for r in _ledger()
        if _in_range(r)
        and r.tenant_id in ("o'hare", "acme")
        and r.project_id == "search"
        and r.model in ("gpt-4o", "claude-sonnet-4-5")
    ]
    (total,) = run_panel(store, OVERVIEW, "Spend (${currency})", "picked")
    assert total["spend"] == _spend(picked)
    (counts,) = run_panel(store, OVERVIEW, "Calls and tokens", "picked")
    assert counts == {
        "calls": len(picked),
        "input_tokens": sum(r.input_tokens for r in picked),
        "output_tokens": sum(r.output_tokens for r in picked),
    }


def test_by_model_and_unpriced_counts(store: Seeded) -> None:
    in_range = [r for r in _ledger() if _in_range(r)]
    rows = {r["model"]: r for r in run_panel(store, OVERVIEW, "By model")}
    assert set(rows) == {r.model for r in in_range}
    for model, row in rows.items():
        mine = [r for r in in_range if r.model == model]
        assert row["call_count"] == len(mine)
        assert row["spend"] == (_spend(mine) if any(r.total_cost is not None for r in mine) else None)
    assert rows["mystery-model"]["unpriced"] == 1
    (unpriced,) = run_panel(store, OVERVIEW, "Unpriced calls")
    assert unpriced == {"unpriced_calls": 1}


def test_month_to_date_and_forecast(store: Seeded) -> None:
    this_month = [r for r in _ledger() if r.timestamp >= MONTH_START]  # the month in UTC, as the panel
    month = "This month (${currency}): to date, daily run rate, month-end forecast"
    (row,) = run_panel(store, OVERVIEW, month)
    assert row["month_to_date"] == _spend(this_month)
    next_month = (MONTH_START + timedelta(days=32)).replace(day=1)
    days_in_month = Decimal((next_month - MONTH_START).days)
    assert row["month_end_forecast"] >= row["month_to_date"]
    # forecast = run rate x days in month (both from the same elapsed time; Decimal truncation only).
    assert abs(row["daily_run_rate"] * days_in_month - row["month_end_forecast"]) < Decimal("0.000001")
    series = run_panel(store, OVERVIEW, "This month (${currency}): cumulative spend and forecast")
    assert [r["time"] for r in series] == [MONTH_START + timedelta(days=d) for d in range(int(days_in_month))]
    so_far = [r["spend_to_date"] for r in series if r["spend_to_date"] is not None]
    assert so_far == sorted(so_far) and so_far[-1] == row["month_to_date"]
    assert len(so_far) == NOW.day  # future days have no actual spend, only the forecast line
    # the two panels are separate queries a moment apart, and the run rate is per elapsed second
    assert abs(series[-1]["forecast"] - row["month_end_forecast"]) <= row["month_end_forecast"] * Decimal(
        "1e-4"
    )


def test_tenant_drilldown(store: Seeded) -> None:
    acme = [r for r in _ledger() if _in_range(r) and r.tenant_id == "acme"]
    uid = "tokenbook-tenant"
    (spend,) = run_panel(store, uid, "Spend (${currency})")
    assert spend["spend"] == _spend(acme)
    (ctx,) = run_panel(store, uid, "Contexts, tool calls, retries")
    assert ctx == {"contexts": 2, "tool_calls": 1, "retries": 0}
    users = {r["user_id"]: r for r in run_panel(store, uid, "By user")}
    assert users["bob"]["calls"] == 1 and users["alice"]["calls"] == 3
    top = run_panel(store, uid, "Most expensive contexts")
    assert [r["context_id"] for r in top] == ["ticket-1", "ticket-9"]
    assert top[0]["total_cost"] == _spend([r for r in acme if r.context_id == "ticket-1"])


def test_context_explorer_lists_contexts_then_the_selected_contexts_calls(store: Seeded) -> None:
    uid = "tokenbook-contexts"
    ledger = [r for r in _ledger() if _in_range(r)]
    contexts = {r["context_id"]: r for r in run_panel(store, uid, "Contexts")}
    assert set(contexts) == {r.context_id for r in ledger}
    for cid, row in contexts.items():
        assert row["calls"] == len([r for r in ledger if r.context_id == cid])
    assert contexts["ticket-1"]["outcome"] == "resolved"
    calls = run_panel(store, uid, "Calls of context ${context}")  # context ticket-1
    expected = sorted((r for r in ledger if r.context_id == "ticket-1"), key=lambda r: r.timestamp)
    assert [c["span_id"] for c in calls] == [r.span_id for r in expected]  # s1 delivered twice, listed once
    assert [c["total_cost"] for c in calls] == [r.total_cost for r in expected]
    steps = run_panel(store, uid, "Steps of context ${context}")
    assert [s["kind"] for s in steps] == ["tool", "outcome"]
    # "picked" selects sess-3, whose first span was re-priced: the newest version is shown.
    calls = run_panel(store, uid, "Calls of context ${context}", "picked")
    repriced = [r for r in ledger if r.context_id == "sess-3"]
    assert sorted(c["total_cost"] for c in calls) == sorted(_spend([r]) for r in repriced)
    growth = run_panel(store, uid, "Cumulative cost within context ${context}", "picked")
    assert growth[-1]["cumulative_cost"] == _spend(repriced)


def test_cache_savings_against_the_input_rate(store: Seeded) -> None:
    by_model = run_panel(store, "tokenbook-efficiency", "Cache savings by model (${currency})")
    rows = {r["model"]: r for r in by_model}
    assert "mystery-model" not in rows  # unpriced: no rate to compare against
    mine = [r for r in _ledger() if _in_range(r) and r.model == "claude-sonnet-4-5"]
    uncached = sum(r.input_tokens - r.cache_read_tokens - r.cache_write_tokens for r in mine)
    input_cost = sum((r.input_cost or Decimal(0) for r in mine), Decimal(0))
    cache_read = sum(r.cache_read_tokens for r in mine)
    read_cost = sum((r.cache_read_cost or Decimal(0) for r in mine), Decimal(0))
    row = rows["claude-sonnet-4-5"]
    assert row["cache_read"] == cache_read
    expected = input_cost * cache_read / uncached - read_cost
    assert abs(row["cache_read_savings"] - expected) < Decimal("0.000000001")
    assert row["cache_read_savings"] > 0 > row["cache_write_savings"]  # writes cost more than input
    (total,) = run_panel(store, "tokenbook-efficiency", "Cache savings (${currency})")
    assert total["net_cache_savings"] == total["cache_read_savings"] + total["cache_write_savings"]


def test_pricing_health(store: Seeded) -> None:
    uid = "tokenbook-pricing"
    ledger = [r for r in _ledger() if _in_range(r)]
    (unpriced,) = run_panel(store, uid, "Unpriced models")
    assert (unpriced["provider"], unpriced["model"], unpriced["calls"], unpriced["tenants"]) == (
        "acme-ai",
        "mystery-model",
        1,
        "globex",
    )
    sources = run_panel(store, uid, "Price sources")
    assert sum(r["calls"] for r in sources) == len(ledger)
    assert sum((r["spend"] for r in sources if r["spend"] is not None), Decimal(0)) == _spend(ledger)
    (client,) = run_panel(store, uid, "Client-reported vs collector cost")
    assert client["client_reported"] == Decimal("0.0045")
    (issues,) = run_panel(store, uid, "Usage issues")
    assert issues["model"] == "mystery-model" and issues["calls"] == 1


ANATOMY = "tokenbook-prompt-anatomy"


def test_prompt_anatomy_composition_and_saturation(store: Seeded) -> None:
    """Parts sum to the measured calls' input; saturation counts follow the threshold variable."""
    rows = [r for r in _ledger() if _in_range(r)]
    measured = [r for r in rows if r.prompt_system_tokens is not None]
    (stat,) = run_panel(store, ANATOMY, "Measured prompts")
    assert stat == {
        "measured_calls": len(measured),
        "model_calls": len(rows),
        "measured_input_tokens": sum(r.input_tokens for r in measured),
    }
    over_time = run_panel(store, ANATOMY, "Prompt composition over time (tokens)")
    assert sum(r["tokens"] for r in over_time) == sum(r.input_tokens for r in measured)
    (chat,) = run_panel(store, ANATOMY, "Composition by feature (tokens)")
    for part in PARTS:
        assert chat[part] == sum(getattr(r, f"prompt_{part}_tokens") for r in measured), part
    assert chat["input_tokens"] == sum(chat[p] for p in PARTS)
    picks = SCENARIOS["picked"]
    chosen = [r for r in rows if r.tenant_id in picks["tenant"] and r.model in picks["model"]]
    for scenario, picked in (("all", rows), ("picked", chosen)):
        threshold = float(SCENARIOS[scenario]["threshold"][0])
        saturated = [s for r in picked if (s := r.context_saturation) is not None and s >= threshold]
        (sat,) = run_panel(store, ANATOMY, "At or above ${threshold} of the context window", scenario)
        assert sat["saturated_calls"] == len(saturated) > 0
        listed = run_panel(store, ANATOMY, "Calls at or above ${threshold} of the context window", scenario)
        assert [r["context_saturation"] for r in listed] == sorted(saturated, reverse=True)


def test_prompt_anatomy_loops_latency_and_policy(store: Seeded) -> None:
    (loop,) = run_panel(store, ANATOMY, "Tool loops (${currency})")
    s2, s3 = (r for r in _ledger() if r.context_id == "ticket-1" and r.span_id in ("s2", "s3"))
    # ticket-1: s1, s2, the tool step t1, s3: one loop of two model calls (s2 -> s3)
    assert (loop["context_id"], loop["tool_loops"], loop["loop_steps"]) == ("ticket-1", 1, 2)
    assert loop["loop_tokens"] == s3.input_tokens + s3.output_tokens and loop["loop_cost"] == s3.total_cost
    assert loop["prompt_growth_per_step"] == s3.input_tokens - s2.input_tokens
    by_model = {r["model"]: r for r in run_panel(store, ANATOMY, "Latency and cost by model (${currency})")}
    rows = [r for r in _ledger() if _in_range(r)]
    for model, r in by_model.items():
        calls = [c for c in rows if c.model == model]
        priced = [c.total_cost for c in calls if c.total_cost is not None]
        assert r["calls"] == len(calls)
        assert r["ttft_calls"] == sum(c.time_to_first_token_ms is not None for c in calls)
        assert r["spend"] == (sum(priced, Decimal(0)) if priced else None)
    points = {
        r["model"]: r for r in run_panel(store, ANATOMY, "Cost against latency per model (${currency})")
    }
    assert points[SONNET]["cost_per_call"] == by_model[SONNET]["spend"] / by_model[SONNET]["calls"]
    (tool,) = run_panel(store, ANATOMY, "Tool-call latency")
    assert (tool["tool"], tool["calls"], tool["max_ms"]) == ("search_kb", 1, 40.0)
    spend = {
        r["policy_path"]: r["spend"] for r in run_panel(store, ANATOMY, "Spend by policy path (${currency})")
    }
    for path in ("guard/pii", "route/cheap", ""):
        costs = [c.total_cost for c in rows if c.policy_path == path and c.total_cost is not None]
        assert spend[path] == (sum(costs, Decimal(0)) if costs else None), path
