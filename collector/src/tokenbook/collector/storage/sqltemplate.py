"""SQL files shipped with the collector, and the placeholders that render them.

Only identifiers and cluster clauses are templated; values are always bound parameters
(`{name:Type}`, bound server-side by clickhouse-connect). Placeholders use double braces so that
ClickHouse's own `{shard}`/`{replica}` macros and `{name:Type}` parameters pass through untouched:

- `{{db}}`: the database name (`tokenbook`).
- `{{on_cluster}}`: nothing, or `ON CLUSTER c`.
- `{{table:T}}`: `tokenbook.T`, or the shard-local `tokenbook.T_local`.
- `{{engine:E(args)}}`: `E(args)`, or
  `ReplicatedE('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', args)`.
- `{{global_engine:E(args)}}`: as `engine`, but one replicated copy for the whole cluster
  (`/clickhouse/tables/all/...`), for `schema_migrations`.
- `{{distributed:T:key}}`: no statement, or
  `CREATE TABLE tokenbook.T ON CLUSTER c AS tokenbook.T_local
  ENGINE = Distributed(c, tokenbook, T_local, key)`.
- `{{expr:NAME}}`: an expression the caller composes (`render_query`'s keyword NAME) from identifiers
  it names itself and bound parameters, never from values: e.g. a budget rule's subject as columns.

A file holds one or more statements separated by lines that contain only `;`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

__all__ = ["SchemaTarget", "load_sql", "render", "render_query"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER = re.compile(r"\{\{(\w+)(?::([^{}]*))?\}\}")
_ENGINE = re.compile(r"(\w+)\((.*)\)", re.DOTALL)
_SEPARATOR = re.compile(r"^\s*;\s*$", re.MULTILINE)


@dataclass(frozen=True)
class SchemaTarget:
    """Where the schema goes: a database name and, for a cluster, the cluster name."""

    database: str = "tokenbook"
    cluster: str | None = None

    def __post_init__(self) -> None:
        if not _IDENTIFIER.fullmatch(self.database):
            raise ValueError(
                f"database: {self.database!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)"
            )
        if self.cluster is not None and not _IDENTIFIER.fullmatch(self.cluster):
            raise ValueError(f"cluster: {self.cluster!r} is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)")


def load_sql(name: str) -> str:
    """The text of `storage/sql/<name>` (package data)."""
    return resources.files("tokenbook.collector.storage").joinpath("sql", name).read_text(encoding="utf-8")


def _engine(spec: str, zk_path: str, target: SchemaTarget) -> str:
    if target.cluster is None:
        return spec
    m = _ENGINE.fullmatch(spec.strip())
    if m is None:
        raise ValueError(f"engine placeholder {spec!r} is not of the form Engine(args)")
    name, args = m.group(1), m.group(2).strip()
    replicated = f"'{zk_path}', '{{replica}}'" + (f", {args}" if args else "")
    return f"Replicated{name}({replicated})"


def _substitute(m: re.Match[str], target: SchemaTarget, expressions: Mapping[str, str]) -> str:
    kind, arg = m.group(1), m.group(2) or ""
    db, cluster = target.database, target.cluster
    if kind == "expr":
        if arg not in expressions:
            raise ValueError(f"no expression given for {m.group(0)!r}")
        return expressions[arg]
    if kind == "db":
        return db
    if kind == "on_cluster":
        return "" if cluster is None else f"ON CLUSTER {cluster}"
    if kind == "table":
        return f"{db}.{arg}" if cluster is None else f"{db}.{arg}_local"
    if kind == "engine":
        return _engine(arg, "/clickhouse/tables/{shard}/{database}/{table}", target)
    if kind == "global_engine":
        return _engine(arg, "/clickhouse/tables/all/{database}/{table}", target)
    if kind == "distributed":
        table, _, key = arg.partition(":")
        if cluster is None:
            return ""
        return (
            f"CREATE TABLE IF NOT EXISTS {db}.{table} ON CLUSTER {cluster} AS {db}.{table}_local\n"
            f"ENGINE = Distributed({cluster}, {db}, {table}_local, {key})"
        )
    raise ValueError(f"unknown placeholder {m.group(0)!r}")


def render(template: str, target: SchemaTarget, expressions: Mapping[str, str] | None = None) -> list[str]:
    """The statements of `template` for `target` (and its `{{expr:NAME}}` placeholders from
    `expressions`); comment-only lines and empty statements are dropped."""
    given = expressions or {}
    text = _PLACEHOLDER.sub(lambda m: _substitute(m, target, given), template)
    statements = []
    for chunk in _SEPARATOR.split(text):
        lines = [line.rstrip() for line in chunk.splitlines() if not line.lstrip().startswith("--")]
        statement = "\n".join(line for line in lines if line).strip()
        if statement:
            statements.append(statement)
    return statements


@lru_cache(maxsize=1024)
def render_query(name: str, database: str, **expressions: str) -> str:
    """The single query in `storage/sql/<name>`, with `{{db}}` replaced by `database` and each
    `{{expr:NAME}}` by `expressions[NAME]` (kept: the files are package data, and a refresh renders
    several per pass)."""
    statements = render(load_sql(name), SchemaTarget(database=database), expressions)
    if len(statements) != 1:
        raise ValueError(f"{name}: expected one statement, found {len(statements)}")
    return statements[0]
