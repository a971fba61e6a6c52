"""Differential test of the SQL guard against the engine's own parser and the engine itself.

Hypothesis builds queries from pieces whose meaning *to ClickHouse* is known by construction: live
pieces (tables, table functions, scalar functions, SETTINGS / FORMAT / INTO OUTFILE placed at the top
or in a subquery) and inert pieces that merely look dangerous (comments, nested comments, ``--`` and
``#`` comments, '...' strings with both escapes, $$...$$ heredocs, "..." and backquoted aliases, all
holding SETTINGS, INTO OUTFILE, system.processes, file(...), quotes and comment markers). Expected
verdict: refuse iff a live piece is forbidden. The test fails when

* the guard's verdict differs from the expected one;
* the guard accepts, yet the engine's ``EXPLAIN AST`` of the text that will run (a different
  serialiser than the guard's JSON) shows a ``Set`` node, a ``FORMAT`` / ``INTO OUTFILE`` child, a
  table outside the database, or a forbidden function;
* the tables the guard reports differ from the tables in that ``EXPLAIN AST``;
* an accepted query fails on the engine with anything but an allowed limit error.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hypothesis_profiles import examples
from tests.stores import DatabasePool
from tokenbook.collector.storage.guard import QueryRefused
from tokenbook.collector.storage.store import Store, StoreError


@pytest.fixture(scope="module")
def store(database_pool: DatabasePool) -> Iterator[Store]:
    with database_pool.store() as s:
        yield s


@dataclass(frozen=True)
class Piece:
    sql: str
    forbidden: bool = False
    table: str | None = None  # a table of the database this piece reads (unqualified name)


BAIT = st.sampled_from(
    [
        "SETTINGS readonly = 0",
        "SETTINGS additional_table_filters = {}",
        "INTO OUTFILE '/tmp/x'",
        "FORMAT TSV",
        "FROM system.processes",
        "file('/etc/passwd')",
        "'",
        '"',
        "`",
        "$$",
        "*/",
        "/*",
        "--",
        ";",
        "\\",
        "\n",
    ]
)
TEXT = st.lists(st.one_of(BAIT, st.text(alphabet="abc xyz_01", max_size=5)), max_size=4).map("".join)


def _single_quoted(text: str, doubled: bool) -> str:
    body = text.replace("\\", "\\\\").replace("'", "''" if doubled else "\\'")
    return f"'{body}'"


@st.composite
def inert(draw: st.DrawFn) -> str:
    """Whitespace-like text: a comment of some kind (bait inside cannot close it early)."""
    text = draw(TEXT)
    kind = draw(st.sampled_from(["line", "hash", "block", "nested", "space"]))
    if kind == "line":
        return " --" + text.replace("\n", " ") + "\n"
    if kind == "hash":
        return " # " + text.replace("\n", " ") + "\n"  # ClickHouse: "# " or "#!" only
    safe = text.replace("*", "").replace("/", "")  # bait in comments: no marker can form
    if kind == "block":
        return f" /*{safe}*/ "
    if kind == "nested":
        return f" /* {safe} /* {safe} */ {safe} */ "
    return " "


@st.composite
def literal(draw: st.DrawFn) -> str:
    """A string-valued expression that holds bait: '...' (both escapes) or a $$ heredoc."""
    text = draw(TEXT)
    kind = draw(st.sampled_from(["single", "doubled", "heredoc"]))
    if kind == "heredoc":
        return "$$" + text.replace("$", "") + "$$"
    return _single_quoted(text, kind == "doubled")


@st.composite
def alias(draw: st.DrawFn, prefix: str) -> str:
    text = draw(TEXT).replace("\\", "").replace("\n", " ")
    style = draw(st.sampled_from(["backquote", "double"]))
    if style == "backquote":
        return f"`{prefix}" + text.replace("`", "``") + "`"
    return f'"{prefix}' + text.replace('"', '""') + '"'


TABLES = [
    Piece("llm_calls", table="llm_calls"),
    Piece("v_calls", table="v_calls"),
    Piece("{db}.context_steps", table="context_steps"),
    Piece("`{db}`.`v_context_costs`", table="v_context_costs"),
    Piece("numbers(3)"),
    Piece("values('x UInt8', 1, 2)"),
    Piece("system.columns"),  # rewritten to the database's columns: allowed
    Piece("system.processes", forbidden=True),
    Piece("`system`.`parts`", forbidden=True),
    Piece('"system".one', forbidden=True),
    Piece("system . users", forbidden=True),
    Piece("file('/etc/hostname', 'LineAsString')", forbidden=True),
    Piece("`file`('/etc/hostname', 'LineAsString')", forbidden=True),
    Piece("url('http://127.0.0.1:9/', 'LineAsString', 's String')", forbidden=True),
    Piece("merge('{db}', '.*')", forbidden=True),
    Piece("mergeTreeIndex('{db}', 'llm_calls')", forbidden=True),
]
EXPRESSIONS = [
    Piece("1"),
    Piece("length('x')"),
    Piece("getSetting('readonly')"),
    Piece("`file`('/etc/hostname')", forbidden=True),
    Piece("file('/etc/hostname')", forbidden=True),
    Piece("dictGet('d', 'a', 1)", forbidden=True),
    Piece("(SELECT count() FROM system.processes)", forbidden=True),
    Piece("(SELECT count() FROM llm_calls)", table="llm_calls"),
    Piece("1 IN system.users", forbidden=True),
]
SUFFIXES = [
    Piece(""),
    Piece(" SETTINGS max_threads = 1", forbidden=True),
    Piece(" SETTINGS additional_table_filters = {}", forbidden=True),
    Piece(" FORMAT TSV", forbidden=True),
    Piece(" INTO OUTFILE '/tmp/tokenbook-differential.tsv'", forbidden=True),
    Piece(" INTO OUTFILE $$/tmp/tokenbook-differential.tsv$$ TRUNCATE", forbidden=True),
]
INNER_SUFFIXES = [Piece(""), Piece(" SETTINGS max_threads = 1", forbidden=True), Piece(" LIMIT 1")]


@st.composite
def queries(draw: st.DrawFn) -> tuple[str, bool, frozenset[str]]:
    """(sql with {db} to fill, whether it must be refused, the database tables it reads live)."""
    pieces: list[Piece] = []
    table = draw(st.sampled_from(TABLES))
    expression = draw(st.sampled_from(EXPRESSIONS))
    pieces += [table, expression]
    source = table.sql
    if draw(st.booleans()):
        inner = draw(st.sampled_from(INNER_SUFFIXES))
        pieces.append(inner)
        source = f"({draw(inert())}SELECT *{draw(inert())}FROM {table.sql}{inner.sql}{draw(inert())})"
    items = [f"{expression.sql} AS {draw(alias('e'))}", f"{draw(literal())} AS {draw(alias('s'))}"]
    sql = f"{draw(inert())}SELECT{draw(inert())}{f',{draw(inert())}'.join(items)}{draw(inert())}FROM {source}"
    if draw(st.booleans()):
        sql = f"WITH {draw(literal())} AS w {sql.lstrip()}"
    suffix = draw(st.sampled_from(SUFFIXES))
    pieces.append(suffix)
    sql += suffix.sql + draw(inert())
    forbidden = any(p.forbidden for p in pieces)
    tables = frozenset(p.table for p in pieces if p.table)
    return sql, forbidden, tables


def _explain_ast(store: Store, sql: str, parameters: dict[str, str]) -> list[str]:
    return [str(r[0]) for r in store.query("EXPLAIN AST " + sql, parameters)[2]]


@settings(
    max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=queries())
def test_the_guard_agrees_with_the_engine(store: Store, case: tuple[str, bool, frozenset[str]]) -> None:
    template, forbidden, live_tables = case
    db = store.database
    sql = template.replace("{db}", db)
    try:
        checked = store.guard.check(sql)
    except QueryRefused as exc:
        assert forbidden, f"refused an allowed query ({exc}): {sql!r}"
        return
    assert not forbidden, f"accepted a forbidden query: {sql!r} -> {checked.sql!r}"
    # An independent look at what will run: EXPLAIN AST's text dump, not the guard's JSON.
    ast = _explain_ast(store, checked.sql, dict(checked.parameters))
    nodes = [line.strip() for line in ast]
    assert "Set" not in nodes, ast
    assert not any(n.startswith(("Function file", "Function url", "Function dictGet")) for n in nodes), ast
    named = {n.split()[1] for n in nodes if n.startswith("TableIdentifier ")}
    engine_tables = {t if "." in t else f"{db}.{t}" for t in named} - {"system.columns"}
    assert checked.tables == engine_tables, (sql, ast)
    assert {f"{db}.{t}" for t in live_tables} <= checked.tables
    top = [line for line in ast if line.startswith(" ") and not line.startswith("  ")]
    # the list of selects, and the client's own FORMAT Native: no FORMAT or INTO OUTFILE of the query
    assert top == [" ExpressionList (children 1)", " Identifier Native"], ast
    try:
        store.query_readonly(sql, max_rows=100_000)
    except StoreError as exc:  # a type error or the like is fine; a refusal by the engine's own guards is not
        assert not any(w in str(exc) for w in ("READONLY", "ACCESS_DENIED", "readonly")), (sql, exc)
