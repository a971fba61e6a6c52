"""Just enough of ClickHouse's SQL lexer for the HTTP test server (`server.py`) to shape a request.

The engine parses and runs every statement itself; this module only answers what an HTTP front end
has to know before handing text to the engine:

- where an ``INSERT ... FORMAT <name>`` (or ``INSERT ... VALUES``) statement ends and its inline data
  begins, so the data can be streamed to the engine however large it is (chDB caps query text at
  ``max_query_size``, ClickHouse's HTTP handler does not cap the data after the statement);
- whether the text holds more than one statement: ClickHouse's HTTP interface refuses those
  ("Multi-statements are not allowed"), chDB would run them all;
- the explicit ``FORMAT`` clause of a query, for the ``X-ClickHouse-Format`` response header.

Tokens follow ClickHouse's lexer: ``'...'`` strings and ``"..."``/`` `...` `` identifiers with
backslash escapes and doubled quotes, ``$tag$...$tag$`` heredocs, ``--`` and ``# ``/``#!`` line
comments, nested ``/* */`` comments. Where the two could disagree the lexer errs towards seeing a
second statement (refusing a query), never towards hiding one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["SqlError", "Statement", "analyse"]

_WORD = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") | frozenset(
    range(0x80, 0x100)
)
_SPACE = frozenset(b" \t\n\r\f\v")
_QUOTES = frozenset(b"'\"`")
_OPEN = frozenset(b"([")
_CLOSE = frozenset(b")]")
#: Statements whose pipeline produces a result set (ClickHouse then sends ``X-ClickHouse-Format``).
RESULT_KINDS = frozenset(
    {"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS", "CHECK", "KILL", "("}
)


class SqlError(Exception):
    """A request the HTTP front end refuses the way ClickHouse would (code, symbolic name, message)."""

    def __init__(self, code: int, name: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.name = name


@dataclass(frozen=True)
class Token:
    kind: str  # "word", "string", "ident", "heredoc", "punct"
    start: int
    end: int
    upper: str = ""  # the upper-cased text of a word


@dataclass(frozen=True)
class Statement:
    """One statement of a request, as the server hands it to the engine."""

    kind: str  # its first keyword, upper-cased ("(" for a parenthesised query)
    text: bytes  # the statement (for an insert with inline data: without its FORMAT clause and data)
    insert_format: str | None = None  # set when the statement is an INSERT carrying inline data
    data: bytes = b""  # that inline data
    output_format: str | None = None  # the explicit FORMAT clause of a query

    @property
    def has_result(self) -> bool:
        return self.kind in RESULT_KINDS


def _skip_quoted(sql: bytes, i: int, quote: int) -> int:
    """Index after the quoted token starting at `i` (end of text when unterminated)."""
    n = len(sql)
    i += 1
    while i < n:
        c = sql[i]
        if c == 0x5C:  # backslash escapes the next byte
            i += 2
            continue
        if c == quote:
            if i + 1 < n and sql[i + 1] == quote:  # a doubled quote
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_block_comment(sql: bytes, i: int) -> int:
    n, depth = len(sql), 0
    while i < n:
        if sql.startswith(b"/*", i):
            depth += 1
            i += 2
        elif sql.startswith(b"*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n


def _heredoc_end(sql: bytes, i: int) -> int | None:
    """End of the heredoc starting at `i` (a ``$``), or None when `i` starts none."""
    j = i + 1
    while j < len(sql) and sql[j] in _WORD and sql[j] < 0x80:
        j += 1
    if j >= len(sql) or sql[j] != 0x24:
        return None
    tag = sql[i : j + 1]
    close = sql.find(tag, j + 1)
    return len(sql) if close < 0 else close + len(tag)


def tokens(sql: bytes, start: int = 0) -> Iterator[Token]:
    """The tokens of `sql` from `start`, skipping whitespace and comments."""
    i, n = start, len(sql)
    while i < n:
        c = sql[i]
        if c in _SPACE:
            i += 1
        elif sql.startswith(b"--", i) or sql.startswith(b"# ", i) or sql.startswith(b"#!", i):
            newline = sql.find(b"\n", i)
            i = n if newline < 0 else newline + 1
        elif sql.startswith(b"/*", i):
            i = _skip_block_comment(sql, i)
        elif c in _QUOTES:
            end = _skip_quoted(sql, i, c)
            yield Token("string" if c == 0x27 else "ident", i, end)
            i = end
        elif c == 0x24 and (heredoc := _heredoc_end(sql, i)) is not None:
            yield Token("heredoc", i, heredoc)
            i = heredoc
        elif c in _WORD:
            j = i + 1
            while j < n and sql[j] in _WORD:
                j += 1
            yield Token("word", i, j, sql[i:j].decode("utf-8", "replace").upper())
            i = j
        else:
            yield Token("punct", i, i + 1)
            i += 1


def _insert_with_data(sql: bytes, first: Token) -> Statement | None:
    """The statement and inline data of ``INSERT ... FORMAT f <data>`` / ``INSERT ... VALUES ...``."""
    depth = 0
    stream = tokens(sql, first.end)
    for tok in stream:
        if tok.kind == "punct":
            c = sql[tok.start]
            if c in _OPEN:
                depth += 1
            elif c in _CLOSE:
                depth -= 1
            elif c == 0x3B and depth == 0:  # ";": a statement without inline data
                return None
            continue
        if depth or tok.kind != "word":
            continue
        if tok.upper in ("SELECT", "WITH", "INFILE"):
            return None
        if tok.upper == "VALUES":
            return Statement("INSERT", sql[: tok.start].rstrip(), "Values", sql[tok.end :])
        if tok.upper == "FORMAT":
            name = next(stream, None)
            if name is None or name.kind != "word":
                return None
            # ClickHouse: the data starts after the first newline if there is one, else after the blanks.
            i = name.end
            while i < len(sql) and sql[i] in b" \t\f":
                i += 1
            if sql.startswith(b"\r", i):
                i += 1
            if sql.startswith(b"\n", i):
                i += 1
            fmt = sql[name.start : name.end].decode("ascii", "replace")
            return Statement("INSERT", sql[: tok.start].rstrip(), fmt, sql[i:])
    return None


def analyse(sql: bytes) -> Statement:
    """Shape one request's SQL (`SqlError` for an empty text or several statements)."""
    stream = tokens(sql)
    first = next(stream, None)
    while first is not None and first.kind == "punct" and sql[first.start] == 0x3B:
        first = next(stream, None)
    if first is None:
        raise SqlError(62, "SYNTAX_ERROR", "Empty query")
    kind = first.upper if first.kind == "word" else sql[first.start : first.end].decode("ascii", "replace")
    if kind == "INSERT" and (insert := _insert_with_data(sql, first)) is not None:
        return insert
    all_tokens = [first, *stream]
    depth, end_of_statement = 0, None
    output_format: str | None = None
    for index, tok in enumerate(all_tokens):
        if end_of_statement is not None:
            if tok.kind == "punct" and sql[tok.start] == 0x3B:
                continue
            raise SqlError(
                62,
                "SYNTAX_ERROR",
                "Syntax error (Multi-statements are not allowed): failed at position "
                f"{end_of_statement + 1} (end of query): "
                f"{sql[end_of_statement : end_of_statement + 100].decode('utf-8', 'replace')}. ",
            )
        if tok.kind == "punct":
            c = sql[tok.start]
            if c in _OPEN:
                depth += 1
            elif c in _CLOSE:
                depth -= 1
            elif c == 0x3B and depth <= 0:
                end_of_statement = tok.start
            continue
        if tok.kind == "word" and tok.upper == "FORMAT" and depth == 0 and index + 1 < len(all_tokens):
            name, after = all_tokens[index + 1], all_tokens[index + 2 : index + 3]
            ends = not after or (after[0].kind == "punct" and sql[after[0].start] == 0x3B)
            if name.kind == "word" and (ends or after[0].upper == "SETTINGS"):
                output_format = sql[name.start : name.end].decode("ascii", "replace")
    return Statement(kind, sql, output_format=output_format)
