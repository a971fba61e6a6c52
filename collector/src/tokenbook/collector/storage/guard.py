"""The guard in front of user SQL: ClickHouse's own parser, then an allow-list walk of its tree.

A keyword scanner cannot know where ClickHouse thinks a comment or a string ends (``/* */`` nests,
``$$...$$`` is a string, identifiers may be backquoted), so nothing here reads SQL text. `SqlGuard`
asks the engine to parse the query once (``parseQueryToJSON``: the engine's parser, its tree as
JSON), walks that tree against an allow-list, rewrites the few things it confines, and has the
engine format the checked tree back to canonical SQL (``formatQueryFromJSON``). What runs is that
canonical text, never the user's: it holds no comments, heredocs or odd quoting, and the guard checks
that it parses back to exactly the checked tree (so the formatter and the parser cannot disagree).

What passes (`Checked.kind`):

* ``select``: exactly one SELECT, a UNION/INTERSECT/EXCEPT of selects, WITH, subqueries, JOINs,
  ARRAY JOIN, window functions... reading only

  - tables and views of the store's database (an unqualified name is that database; a CTE name is
    the CTE);
  - ``system.tables`` and ``system.columns``: each is replaced by a subquery of a fixed set of
    harmless columns with a mandatory ``database = <the store's database>`` filter
    (``sql/guard_system_tables.sql``, ``sql/guard_system_columns.sql``);
  - the table functions of `ALLOWED_TABLE_FUNCTIONS`, which read no table or only through the
    checked subquery (``view``);
  - the parameterized views of the store's database, by their unqualified name
    (``v_saturated_calls(threshold = 0.8)``), whose arguments are checked like any expression; not for
    a tenant-scoped caller (the engine lists no columns for them, so no tenant filter can name them).

  Refused anywhere in the tree: a ``SETTINGS`` clause (it could lift the limits or the tenant
  filter), ``FORMAT``, ``INTO OUTFILE``, query parameters of type Identifier (an unchecked table
  name), the functions of `REFUSED_FUNCTIONS` even in scalar position (files, URLs, other servers,
  dictionaries and Join tables of any database, other databases' metadata, the host's and the server
  process's facts such as ``hostName()``, what acts on the server such as ``logTrace``, and the AI
  functions, which send ledger data to a model provider over HTTP), table functions outside the list (also as
  ``x IN tablefunc(...)``), user-defined functions (their body is not checked), ``x IN db.table``
  for another database, and any node type the walk does not know. Every function of the engine is
  in a reviewed list (``tests/testdata/engine/functions.txt``): one a new engine adds fails the
  suite until it is reviewed.
  ``getSetting`` is allowed: it reads the query's own settings, which hold no secret (the tenant
  filter names the caller's own tenant).
* ``explain``: ``EXPLAIN [AST|SYNTAX|PLAN|PIPELINE|QUERY TREE|ESTIMATE]`` of an allowed SELECT (the
  inner query is checked as above); EXPLAIN options (``indexes = 1``) only from `EXPLAIN_OPTIONS`.
  A tenant-scoped caller gets no ESTIMATE (row counts of every tenant's parts).
* ``describe`` / ``show_create`` / ``show_tables``: ``DESCRIBE [TABLE] t``, ``SHOW CREATE [TABLE|VIEW]
  t`` and ``SHOW TABLES [FROM db] [LIKE 'p']`` of the store's database, answered by fixed SELECTs on
  ``system.columns`` / ``system.tables`` with bound parameters (``sql/guard_*.sql``). DESCRIBE and
  SHOW CREATE have no JSON form, so they are recognised on the engine's own tokens
  (``tokenizeQuery``), not on text.

Refusals are `QueryRefused` naming what was refused in the caller's terms ("table system.processes is
not in the tokenbook database"). The guard is one half; the store runs what passes with ``readonly=1``
and limits the query cannot lift, and a tenant's ``additional_table_filters`` (`Store.query_readonly`).

The engine used to parse is the store's own engine when it has ``parseQueryToJSON`` (chDB, a server
of 26.x), so that the tree checked is the tree of the engine that runs the query; otherwise the
collector's bundled chDB parses, and the server runs the canonical text, whose plain syntax (no
comments, no heredocs, every odd identifier backquoted) any ClickHouse parses alike.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tokenbook.collector.storage.sqltemplate import render_query

__all__ = [
    "ALLOWED_TABLE_FUNCTIONS",
    "EXPLAIN_OPTIONS",
    "REFUSED_FUNCTIONS",
    "USER_QUERY_NICE",
    "Catalog",
    "Checked",
    "EngineRefusal",
    "QueryLimits",
    "QueryRefused",
    "SqlGuard",
]


class QueryRefused(ValueError):
    """The SQL is not an allowed read-only query; the message says what was refused."""


#: Run one query on the engine: (sql, parameters) -> rows; raises `EngineRefusal` when the engine
#: answers with an error (anything else, e.g. the store being down, propagates).
Runner = Callable[[str, Mapping[str, Any]], list[tuple[Any, ...]]]


class EngineRefusal(Exception):
    """The parsing engine answered with an error (a syntax error, a statement without JSON form)."""


#: Table functions a query may call (compared case-insensitively): they read no table, or read
#: through a checked subquery (``view``).
ALLOWED_TABLE_FUNCTIONS: Final = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "generateseries", "generate_series", "values", "view"}
)
#: Functions refused wherever they appear (lower case): they read files, URLs or other servers,
#: read tables, dictionaries or metadata of any database by a name in a string argument, describe
#: the machine the engine runs on and the server process (its host name, kernel, ports, build,
#: identity and symbols, the client's HTTP request) rather than the ledger, or act on the server
#: (a message into its log, a counter in its Keeper).
REFUSED_FUNCTIONS: Final = frozenset(
    {
        "file",
        "url",
        "s3",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "executable",
        "input",
        "merge",
        "mergetreeindex",
        "mergetreeanalyzeindexes",
        "mergetreeprojection",
        "dictionary",
        "joinget",
        "joingetornull",
        "hascolumnintable",
        "catboostevaluate",
        "filesystemavailable",
        "filesystemcapacity",
        "filesystemunreserved",
        "getmacro",
        "getserversetting",
        "getmergetreesetting",
        "hostname",
        "fqdn",
        "fullhostname",
        "displayname",
        "getoskernelversion",
        "serveruuid",
        "getserverport",
        "tcpport",
        "buildid",
        "zookeepersessionuptime",
        "getclienthttpheader",
        "currentrequesturl",
        "getmaxtablenamelengthfordatabase",
        "addresstoline",
        "addresstolinewithinlines",
        "addresstosymbol",
        "demangle",
        "logtrace",
        "generateserialid",
        "showcertificate",
    }
)
#: Families of refused functions, by their lower-case name: the dictionaries' (dictGet*, dictHas,
#: dictIsIn, dictGetChildren...; the geobase's regionToName, regionIn, regionHierarchy..., read from
#: the server's files) and the AI functions' (aiGenerate, aiEmbed, aiClassify...: each sends its
#: arguments, ledger data, to a model provider over HTTP, with the credentials the server holds).
_REFUSED_FAMILY = re.compile(r"dict[a-z0-9]*|region(?:in|hierarchy|to[a-z]+)|ai[a-z0-9]+")
_IN_FUNCTIONS: Final = frozenset(
    {"in", "notin", "globalin", "globalnotin", "nullin", "notnullin", "globalnullin", "globalnotnullin"}
)
#: EXPLAIN options (``EXPLAIN indexes = 1 SELECT ...``), not settings: the only SetQuery allowed.
EXPLAIN_OPTIONS: Final = frozenset(
    {"header", "description", "indexes", "actions", "json", "sorting", "distributed", "compact", "graph"}
)
_EXPLAIN_KINDS: Final = {
    "EXPLAIN": True,
    "EXPLAIN AST": True,
    "EXPLAIN SYNTAX": True,
    "EXPLAIN PLAN": True,
    "EXPLAIN PIPELINE": True,
    "EXPLAIN QUERY TREE": True,
    "EXPLAIN ESTIMATE": False,  # False: not for a tenant-scoped caller
}
#: Node types of a SELECT tree the walk knows; anything else is refused.
_NODE_TYPES: Final = frozenset(
    {
        "SelectWithUnionQuery",
        "SelectIntersectExceptQuery",
        "SelectQuery",
        "ExpressionList",
        "Identifier",
        "Literal",
        "Function",
        "Asterisk",
        "QualifiedAsterisk",
        "ColumnsRegexpMatcher",
        "ColumnsListMatcher",
        "QualifiedColumnsRegexpMatcher",
        "QualifiedColumnsListMatcher",
        "ColumnsTransformerList",
        "ColumnsApplyTransformer",
        "ColumnsExceptTransformer",
        "ColumnsReplaceTransformer",
        "ColumnsReplaceTransformerReplacement",
        "Subquery",
        "TablesInSelectQuery",
        "TablesInSelectQueryElement",
        "TableExpression",
        "TableIdentifier",
        "TableJoin",
        "ArrayJoin",
        "WithElement",
        "OrderByElement",
        "QueryParameter",
        "WindowDefinition",
        "WindowListElement",
        "SampleRatio",
        "InterpolateElement",
    }
)
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CATALOG_TTL_S = 5.0

#: The engine's own table functions that are not also its own functions, by engine (`SqlGuard`'s
#: `engine` key): fixed by the engine's build, so read once per engine and process, not with every
#: catalog (the statement lists every one of the engine's ~1,900 functions: ~30 ms of CPU).
_TABLE_FUNCTIONS: dict[str, frozenset[str]] = {}
_table_functions_lock = threading.Lock()
_SYSTEM_REWRITES: Final = {"tables": "guard_system_tables.sql", "columns": "guard_system_columns.sql"}
DATABASE_PARAMETER: Final = "tokenbook_guard_database"


#: The Linux nice value of the engine's threads for a user query (``os_thread_priority``): the lowest.
USER_QUERY_NICE: Final = 19


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """Limits of one user query, passed as query-level settings with ``readonly=1`` (so the query
    cannot change them). 0 means no limit, as in ClickHouse; `config.AdminConfig` holds the defaults."""

    timeout_s: float = 30.0  # max_execution_time
    max_memory: int = 1 << 30  # max_memory_usage, bytes
    max_rows_to_read: int = 1_000_000_000
    max_bytes_to_read: int = 100 << 30
    max_threads: int = 2  # the ingest path keeps the other cores

    def settings(self, max_rows: int) -> dict[str, Any]:
        """The query-level settings, `max_rows` result rows at most (more is an error)."""
        return {
            "readonly": 1,
            "max_execution_time": self.timeout_s,
            "timeout_overflow_mode": "throw",
            "max_memory_usage": self.max_memory,
            "max_rows_to_read": self.max_rows_to_read,
            "max_bytes_to_read": self.max_bytes_to_read,
            "read_overflow_mode": "throw",
            "max_result_rows": max_rows,
            "result_overflow_mode": "throw",
            "max_threads": self.max_threads,
            # The engine's threads for a user query run at the lowest CPU priority (nice 19), so
            # that inserts and the refresh, at the default priority, go first on a busy machine.
            "os_thread_priority": USER_QUERY_NICE,
        }


@dataclass(frozen=True)
class Catalog:
    """What the guard checks names against, read from the store (`SqlGuard.catalog`)."""

    database: str
    tables: Mapping[str, bool]  # table or view name -> has a tenant_id column
    table_only_functions: frozenset[str]  # lower-case names that are only table functions
    user_functions: frozenset[str]  # lower-case names of user-defined (SQL or executable) functions


@dataclass(frozen=True)
class Checked:
    """A query that passed: the canonical SQL to run and its extra bound parameters."""

    sql: str
    kind: str  # select | explain | describe | show_create | show_tables
    tables: frozenset[str]  # "db.table" of every table or view the query names (rewrites excluded)
    parameters: Mapping[str, Any] = field(default_factory=dict)


class SqlGuard:
    """Checks user SQL with the engine's parser (see module docstring). Thread-safe."""

    def __init__(
        self, database: str, run: Runner, catalog_run: Runner | None = None, *, engine: str | None = None
    ) -> None:
        """`run` executes the guard's own parse/format queries on the parsing engine; `catalog_run`
        (default `run`) reads the catalog of the store that will run the query. `engine` names the
        engine `catalog_run` reads (e.g. the store's location): the guards of one engine read its
        table functions once in the process; None: this guard reads them itself, once."""
        if not _PLAIN_NAME.fullmatch(database):
            raise ValueError(f"database {database!r} is not a plain identifier")
        self.database = database
        self._run = run
        self._catalog_run = catalog_run or run
        self._engine = engine
        self._table_functions: frozenset[str] | None = None
        self._catalog: tuple[float, Catalog] | None = None
        self._rewrites: dict[str, dict[str, Any]] = {}

    # -- engine calls ------------------------------------------------------------------------------

    def parse(self, sql: str) -> dict[str, Any]:
        """The engine's JSON tree of `sql`; `QueryRefused` when it does not parse or has no JSON form."""
        try:
            rows = self._run("SELECT parseQueryToJSON({q:String})", {"q": sql})
        except EngineRefusal as exc:
            raise QueryRefused(_engine_message(str(exc))) from None
        tree = json.loads(rows[0][0])
        if not isinstance(tree, dict):
            raise QueryRefused("the query did not parse to a statement")
        return tree

    def catalog(self) -> Catalog:
        """Tables of the database (with tenant_id or not) and function names, cached a few seconds
        (the engine's table functions: for as long as the process runs, `engine_table_functions`)."""
        cached = self._catalog
        if cached is not None and time.monotonic() - cached[0] < _CATALOG_TTL_S:
            return cached[1]
        db = self.database
        tables = {
            str(r[0]): bool(r[1])
            for r in self._catalog_run(render_query("tenant_tables.sql", db), {"db": db})
        }
        udf = frozenset(
            str(r[0]).lower() for r in self._catalog_run(render_query("user_functions.sql", db), {})
        )
        # a user-defined function may take a table function's name: then the name is not only that
        catalog = Catalog(db, tables, self.engine_table_functions() - udf, udf)
        self._catalog = (time.monotonic(), catalog)
        return catalog

    def engine_table_functions(self) -> frozenset[str]:
        """Lower-case names of the engine's table functions that are not also its own (built-in)
        functions: read once per engine (`engine`) in the process, as the engine's build fixes them."""
        if self._table_functions is None:
            key = self._engine
            with _table_functions_lock:
                known = None if key is None else _TABLE_FUNCTIONS.get(key)
            if known is None:
                sql = render_query("table_functions.sql", self.database)
                known = frozenset(str(r[0]).lower() for r in self._catalog_run(sql, {}))
                if key is not None:
                    with _table_functions_lock:
                        known = _TABLE_FUNCTIONS.setdefault(key, known)
            self._table_functions = known
        return self._table_functions

    def _format(self, tree: dict[str, Any]) -> str:
        """Canonical SQL of `tree`, checked to parse back to exactly `tree`."""
        encoded = json.dumps(tree, separators=(",", ":"))
        try:
            sql, again = self._run(
                "SELECT formatQueryFromJSON({j:String}) AS s, parseQueryToJSON(s)", {"j": encoded}
            )[0]
        except EngineRefusal as exc:
            raise QueryRefused(_engine_message(str(exc))) from None
        if json.loads(again) != tree:
            raise QueryRefused("the query does not survive canonical formatting; simplify its syntax")
        return str(sql)

    def _rewrite_tree(self, table: str) -> dict[str, Any]:
        tree = self._rewrites.get(table)
        if tree is None:
            tree = self.parse(render_query(_SYSTEM_REWRITES[table], self.database))
            self._rewrites[table] = tree
        copy: dict[str, Any] = json.loads(json.dumps(tree))  # a fresh copy
        return copy

    # -- the check ---------------------------------------------------------------------------------

    def check(self, sql: str, *, tenant_scoped: bool = False) -> Checked:
        """`sql` as canonical SQL that may run, or `QueryRefused` saying what is not allowed."""
        if not sql.strip().strip(";").strip():
            raise QueryRefused("empty query")
        catalog = self.catalog()
        introspection = self._introspection(sql, catalog)
        if introspection is not None:
            return introspection
        tree = self.parse(sql)
        kind = tree.get("type")
        if kind == "ShowTablesQuery":
            return self._show_tables(tree)
        if kind == "ExplainQuery":
            walk = _Walk(self, catalog, tenant_scoped)
            self._check_explain(tree, tenant_scoped)
            walk.select(tree["query"])
            return Checked(self._format(tree), "explain", frozenset(walk.tables), walk.parameters)
        if kind != "SelectWithUnionQuery":
            raise QueryRefused(
                f"only SELECT (or WITH ... SELECT), EXPLAIN, DESCRIBE, SHOW TABLES and SHOW CREATE are "
                f"allowed, not {_statement_name(str(kind))}"
            )
        walk = _Walk(self, catalog, tenant_scoped)
        walk.select(tree)
        return Checked(self._format(tree), "select", frozenset(walk.tables), walk.parameters)

    def _check_explain(self, tree: dict[str, Any], tenant_scoped: bool) -> None:
        kind = str(tree.get("kind", ""))
        for_tenants = _EXPLAIN_KINDS.get(kind)
        if for_tenants is None:
            raise QueryRefused(f"{kind} is not allowed; EXPLAIN kinds: {', '.join(_EXPLAIN_KINDS)}")
        if tenant_scoped and not for_tenants:
            raise QueryRefused(f"{kind} reads every tenant's row counts: not for a tenant-scoped token")
        _outputs(tree)
        options = tree.get("settings")
        unknown = set(tree) - {"type", "kind", "query", "settings", *_OUTPUT_FLAGS}
        if unknown:
            raise QueryRefused(f"unsupported EXPLAIN syntax ({', '.join(sorted(unknown))})")
        if options is not None:
            if tenant_scoped:
                raise QueryRefused("EXPLAIN options are not allowed for a tenant-scoped token")
            for change in options.get("changes", []):
                name = str(change.get("name"))
                if name not in EXPLAIN_OPTIONS:
                    raise QueryRefused(
                        f"EXPLAIN option {name} is not allowed; options: {sorted(EXPLAIN_OPTIONS)}"
                    )
        query = tree.get("query")
        if not isinstance(query, dict) or query.get("type") != "SelectWithUnionQuery":
            raise QueryRefused("EXPLAIN is allowed of a SELECT only")

    # -- introspection -----------------------------------------------------------------------------

    def _tokens(self, sql: str) -> list[tuple[str, str]]:
        """The engine's tokens of `sql` (type, text), without whitespace and comments."""
        rows = self._run("SELECT tokenizeQuery({q:String})", {"q": sql})
        raw = sql.encode("utf-8")
        out = []
        for token in rows[0][0]:
            begin, end, kind = (
                (token["begin"], token["end"], token["type"]) if isinstance(token, dict) else token
            )
            if kind not in ("Whitespace", "Comment"):
                out.append((str(kind), raw[int(begin) : int(end)].decode("utf-8", "replace")))
        while out and out[-1][0] == "Semicolon":
            out.pop()
        return out

    def _introspection(self, sql: str, catalog: Catalog) -> Checked | None:
        """DESCRIBE / SHOW CREATE (no JSON form) recognised on the engine's tokens; None otherwise."""
        head = sql.lstrip()[:16].upper()
        if not head.startswith(("DESC", "SHOW", "/*", "--", "#", "(")):
            return None
        tokens = self._tokens(sql)
        words = [text.upper() if kind == "BareWord" else text for kind, text in tokens]
        if words[:1] in (["DESCRIBE"], ["DESC"]):
            rest, kind, file = tokens[1:], "describe", "guard_describe.sql"
            if words[1:2] == ["TABLE"]:
                rest = tokens[2:]
        elif words[:2] == ["SHOW", "CREATE"]:
            rest, kind, file = tokens[2:], "show_create", "guard_show_create.sql"
            if words[2:3] in (["TABLE"], ["VIEW"]):
                rest = tokens[3:]
        else:
            return None
        table = self._table_name(rest, catalog)
        parameters = {DATABASE_PARAMETER: self.database, "tokenbook_guard_table": table}
        return Checked(
            render_query(file, self.database), kind, frozenset({f"{self.database}.{table}"}), parameters
        )

    def _table_name(self, tokens: list[tuple[str, str]], catalog: Catalog) -> str:
        names = [_unquote(kind, text) for kind, text in tokens if kind != "Dot"]
        dots = sum(1 for kind, _ in tokens if kind == "Dot")
        if not names or None in names or len(names) > 2 or dots != len(names) - 1:
            raise QueryRefused("DESCRIBE and SHOW CREATE take one table name")
        db, table = (self.database, names[0]) if len(names) == 1 else (names[0], names[1])
        assert db is not None and table is not None
        if db != self.database:
            raise QueryRefused(f"table {db}.{table} is not in the {self.database} database")
        if table not in catalog.tables:
            raise QueryRefused(f"there is no table {table} in the {self.database} database")
        return table

    def _show_tables(self, tree: dict[str, Any]) -> Checked:
        unknown = set(tree) - {"type", "from", "like", *_OUTPUT_FLAGS}
        _outputs(tree)
        if unknown:
            raise QueryRefused(f"SHOW TABLES supports FROM and LIKE only (not {', '.join(sorted(unknown))})")
        source = tree.get("from")
        if source is not None:
            name = source.get("name") if isinstance(source, dict) else None
            if name != self.database:
                raise QueryRefused(f"SHOW TABLES is allowed of the {self.database} database only")
        parameters = {DATABASE_PARAMETER: self.database, "tokenbook_guard_like": str(tree.get("like", "%"))}
        return Checked(
            render_query("guard_show_tables.sql", self.database), "show_tables", frozenset(), parameters
        )


_OUTPUT_FLAGS: Final = ("is_outfile_append", "is_outfile_truncate", "is_into_outfile_with_stdout")


def _outputs(node: Mapping[str, Any]) -> None:
    """Refuse FORMAT, INTO OUTFILE and its options on a statement node."""
    if node.get("out_file") is not None or any(node.get(flag) for flag in _OUTPUT_FLAGS):
        raise QueryRefused("INTO OUTFILE is not allowed: results go back to the caller only")
    if node.get("compression") is not None or node.get("compression_level") is not None:
        raise QueryRefused("INTO OUTFILE is not allowed: results go back to the caller only")
    if node.get("format_ast") is not None or node.get("format") is not None:
        raise QueryRefused("FORMAT is not allowed: the collector chooses the result format")


class _Walk:
    """One walk of a SELECT tree: checks every node, rewrites system.tables/columns in place."""

    def __init__(self, guard: SqlGuard, catalog: Catalog, tenant_scoped: bool = False) -> None:
        self.guard = guard
        self.catalog = catalog
        self.tenant_scoped = tenant_scoped
        self.tables: set[str] = set()
        self.parameters: dict[str, Any] = {}
        self.ctes: set[str] = set()
        self.rewritten: set[int] = set()  # ids of the guard's own subqueries: not walked

    def select(self, tree: dict[str, Any]) -> None:
        self.ctes = {str(n["name"]) for n in _nodes(tree) if n.get("type") == "WithElement"}
        self.node(tree)

    def node(self, node: dict[str, Any]) -> None:
        if id(node) in self.rewritten:
            return
        kind = node.get("type")
        if kind not in _NODE_TYPES:
            raise QueryRefused(f"{_statement_name(str(kind))} is not allowed in a read-only query")
        if "settings" in node:
            raise QueryRefused("SETTINGS is not allowed: the collector sets the query's limits")
        _outputs(node)
        if kind == "QueryParameter" and str(node.get("param_type", "")).strip() == "Identifier":
            raise QueryRefused("a query parameter of type Identifier is not allowed (it would name a table)")
        if kind == "TableExpression":
            self.table_expression(node)
        elif kind == "Function":
            self.function(node)
        for key, value in node.items():
            if key == "settings":
                continue
            for child in _children(value):
                self.node(child)

    def table_expression(self, node: dict[str, Any]) -> None:
        table = node.get("database_and_table_name")
        if isinstance(table, dict):
            if table.get("children"):
                raise QueryRefused("a table name may not be a query parameter")
            rewrite = self.table(table)
            if rewrite is not None:
                del node["database_and_table_name"]
                node["subquery"] = rewrite
        function = node.get("table_function")
        if isinstance(function, dict):
            name = str(function.get("name", ""))
            view = self.parameterized_view(name)
            if view is not None:
                self.tables.add(view)
            elif name.lower() not in ALLOWED_TABLE_FUNCTIONS:
                raise QueryRefused(
                    f"table function {name}() is not allowed; allowed: "
                    f"{', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))}"
                )

    def parameterized_view(self, name: str) -> str | None:
        """ "db.view" when `name` (``v_saturated_calls``, unqualified: the engine cannot format a qualified
        one back) calls a view of the store's database with parameters, else None. Its arguments are
        checked like any others. Refused to a tenant-scoped caller: the engine lists no columns for such
        a view, so no tenant filter could name it (`tenancy`)."""
        if name not in self.catalog.tables:
            return None
        if self.tenant_scoped:
            raise QueryRefused(
                f"{name}() is a parameterized view, which a tenant-scoped token cannot read: query the "
                "view it reads instead (e.g. v_calls)"
            )
        return f"{self.guard.database}.{name}"

    def table(self, node: Mapping[str, Any]) -> dict[str, Any] | None:
        """Check a TableIdentifier; returns the subquery replacing system.tables/columns, else None."""
        parts = [str(p) for p in node.get("name_parts") or [node.get("name", "")]]
        db = self.guard.database
        if len(parts) == 1 and parts[0] in self.ctes:
            return None
        if len(parts) == 2 and parts[0] == "system" and parts[1] in _SYSTEM_REWRITES:
            subquery = self.guard._rewrite_tree(parts[1])
            self.parameters[DATABASE_PARAMETER] = db
            rewrite = {
                "type": "Subquery",
                "alias": str(node.get("alias") or parts[1]),
                "children": [subquery],
            }
            self.rewritten.add(id(rewrite))
            return rewrite
        if len(parts) == 1:
            parts = [db, parts[0]]
        name = ".".join(parts)
        if len(parts) != 2 or parts[0] != db:
            raise QueryRefused(f"table {name} is not in the {db} database")
        if parts[1] not in self.catalog.tables:
            raise QueryRefused(f"there is no table {parts[1]} in the {db} database")
        self.tables.add(name)
        return None

    def function(self, node: Mapping[str, Any]) -> None:
        name = str(node.get("name", ""))
        lower = name.lower()
        if lower in REFUSED_FUNCTIONS or _REFUSED_FAMILY.fullmatch(lower):
            raise QueryRefused(
                f"{name}() reaches outside the {self.guard.database} database and is not allowed"
            )
        if lower in self.catalog.user_functions:
            raise QueryRefused(f"{name}() is a user-defined function and is not allowed")
        if lower in self.catalog.table_only_functions and lower not in ALLOWED_TABLE_FUNCTIONS:
            raise QueryRefused(f"table function {name}() is not allowed")
        if lower in _IN_FUNCTIONS:
            arguments = node.get("arguments")
            children = arguments.get("children", []) if isinstance(arguments, dict) else []
            if len(children) == 2 and children[1].get("type") == "Identifier":
                self.in_table(children[1])

    def in_table(self, node: Mapping[str, Any]) -> None:
        """`x IN name`: a name with a database is a table; one without may be a column or a CTE."""
        parts = [str(p) for p in node.get("name_parts") or [node.get("name", "")]]
        if len(parts) == 1:
            if parts[0] in self.catalog.tables:
                self.tables.add(f"{self.guard.database}.{parts[0]}")
            return
        self.table({"name_parts": parts})
        if parts[0] == "system":
            raise QueryRefused(f"table {'.'.join(parts)} is not in the {self.guard.database} database")


def _children(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict) and "type" in value:
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _children(item)


def _nodes(tree: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield tree
    for value in tree.values():
        for child in _children(value):
            yield from _nodes(child)


def _unquote(kind: str, text: str) -> str | None:
    """A plain table name from a BareWord or QuotedIdentifier token; None for anything else."""
    if kind == "QuotedIdentifier" and len(text) >= 2 and text[0] == text[-1] and text[0] in '`"':
        text = text[1:-1]
    elif kind != "BareWord":
        return None
    return text if _PLAIN_NAME.fullmatch(text) else None


_STATEMENT_NAMES: Final = {
    "InsertQuery": "INSERT",
    "AlterQuery": "ALTER",
    "CreateQuery": "CREATE",
    "DropQuery": "DROP/DETACH/TRUNCATE",
    "RenameQuery": "RENAME/EXCHANGE",
    "SetQuery": "SET/SETTINGS",
    "SystemQuery": "a SYSTEM statement",
    "KillQueryQuery": "KILL",
    "OptimizeQuery": "OPTIMIZE",
    "UseQuery": "USE",
    "GrantQuery": "GRANT/REVOKE",
    "DeleteQuery": "DELETE",
    "UpdateQuery": "UPDATE",
    "BackupQuery": "BACKUP/RESTORE",
}


def _statement_name(kind: str) -> str:
    return _STATEMENT_NAMES.get(kind, f"this syntax ({kind.removesuffix('Query')})")


def _engine_message(message: str) -> str:
    """The engine's parse error without the guard's own wrapper query."""
    message = re.sub(
        r"\s*:?\s*In scope SELECT (parseQueryToJSON|formatQueryFromJSON|tokenizeQuery)\(.*",
        "",
        message,
        flags=re.DOTALL,
    )
    message = re.sub(r"\s*\(version [^)]*\)\s*$", "", message)
    message = re.sub(r"^Code: \d+\. DB::Exception: ", "", message.strip())
    if "Multi-statements are not allowed" in message:
        return "only one statement is allowed"
    if "JSON serialization" in message or "not supported by parseQueryToJSON" in message:
        return "this statement is not allowed: only SELECT, EXPLAIN, DESCRIBE, SHOW TABLES and SHOW CREATE"
    return f"the query does not parse: {message.strip()}"
