"""The guard in front of user-supplied SQL (`tokenbook sql`, the admin query API, Grafana-style reads).

`check_select(sql)` accepts exactly one `SELECT` or `WITH ... SELECT` statement and refuses
everything else *before* it reaches ClickHouse: several statements, any write/DDL/admin keyword
(INSERT, ALTER, SYSTEM, ATTACH, KILL, ...), `INTO OUTFILE`, `SETTINGS`/`FORMAT` clauses (they could
lift the limits the store applies), and functions that read files, URLs or remote servers (`file`,
`url`, `s3`, `remote`, `executable`, `mysql`, ...). Keywords inside string literals, quoted
identifiers and comments do not count. The store additionally runs the query with ClickHouse's
`readonly=2` setting, row and time limits (defence in depth: chDB honours `readonly`).
"""

from __future__ import annotations

import re

__all__ = ["QueryRefused", "check_select"]


class QueryRefused(ValueError):
    """The SQL is not a single read-only SELECT; the message says why."""


_FORBIDDEN_WORDS = frozenset(
    [
        "insert",
        "alter",
        "create",
        "drop",
        "truncate",
        "rename",
        "attach",
        "detach",
        "system",
        "kill",
        "optimize",
        "grant",
        "revoke",
        "set",
        "use",
        "exchange",
        "undrop",
        "delete",
        "update",
        "backup",
        "restore",
        "outfile",
        "into",
        "settings",
        "format",
    ]
)
_FORBIDDEN_FUNCTIONS = frozenset(
    [
        "file",
        "filecluster",
        "url",
        "urlcluster",
        "s3",
        "s3cluster",
        "gcs",
        "oss",
        "cosn",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "mysql",
        "postgresql",
        "sqlite",
        "mongodb",
        "redis",
        "hdfs",
        "hdfscluster",
        "input",
        "executable",
        "jdbc",
        "odbc",
        "azureblobstorage",
        "azureblobstoragecluster",
        "iceberg",
        "icebergs3",
        "icebergazure",
        "iceberghdfs",
        "icebergcluster",
        "deltalake",
        "deltalakecluster",
        "hudi",
        "hudicluster",
        "hive",
        "merge",
        "loop",
        "fuzzjson",
        "fuzzquery",
        "dictionary",
    ]
)
_TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
    | (?P<string>'(?:[^'\\]|\\.|'')*')
    | (?P<quoted>"(?:[^"\\]|\\.|"")*"|`(?:[^`\\]|\\.|``)*`)
    | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
    | (?P<semicolon>;)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(sql: str) -> list[tuple[str, str, int]]:
    """(kind, text, end offset) tokens without whitespace/comments; refuses unterminated quotes/comments."""
    out = []
    pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None or m.lastgroup is None:  # pragma: no cover - `other` matches any character
            raise QueryRefused(f"cannot read the query at offset {pos}")
        kind, text = m.lastgroup, m.group()
        if kind == "other" and text in "'\"`":
            raise QueryRefused("unterminated quoted string or identifier")
        if kind == "other" and sql.startswith("/*", pos):
            raise QueryRefused("unterminated comment")
        if kind not in ("ws", "comment"):
            out.append((kind, text, m.end()))
        pos = m.end()
    return out


def check_select(sql: str) -> str:
    """Return `sql` without a trailing `;` if it is one read-only SELECT; raise `QueryRefused` otherwise."""
    tokens = _tokens(sql)
    while tokens and tokens[-1][0] == "semicolon":
        tokens.pop()
    if not tokens:
        raise QueryRefused("empty query")
    if any(kind == "semicolon" for kind, _, _ in tokens):
        raise QueryRefused("only one statement is allowed")
    first = next((text.lower() for kind, text, _ in tokens if not (kind == "other" and text == "(")), "")
    if first not in ("select", "with"):
        raise QueryRefused("only SELECT (or WITH ... SELECT) queries are allowed")
    for i, (kind, text, _) in enumerate(tokens):
        if kind != "word":
            continue
        word = text.lower()
        call = i + 1 < len(tokens) and tokens[i + 1][:2] == ("other", "(")
        if call and word in _FORBIDDEN_FUNCTIONS:
            raise QueryRefused(f"{text}() reads outside the store and is not allowed")
        if word in _FORBIDDEN_WORDS and not (call and word == "format"):  # format(...) is a string function
            raise QueryRefused(f"{text.upper()} is not allowed in a read-only query")
    # Without the trailing `;` and comments: the client appends its own clauses.
    return sql[: tokens[-1][2]].strip()
