"""Printing query results as an aligned table, JSON lines or CSV.

Terminal tables (``--format table``, the default):

* Token and call counts carry thousands separators (``4,139,153``).
* Money (every Decimal column) is shown at one display precision, `MONEY_PLACES` decimals, rounded
  half-even; ``--exact`` shows every stored digit instead. Money is never converted to float.
* A ``total`` row (when asked for) is computed from the exact values and then rounded once, so it
  can differ from the sum of the rounded parts in the last digit; a note says so when it does.
* NULL is ``-`` (an unpriced cost is NULL, never 0); an empty attribution value is ``(none)``.
* Cells are never cut. When the table is wider than the terminal, minor columns are left out (and
  named in a note); when even the key columns do not fit, each row is printed as a block of
  ``column: value`` lines. Through a pipe or into a file the table is never narrowed.

JSON (one object per line) and CSV (always with its header row) carry exact values: Decimal as its
full string, NULL as ``null`` / an empty field, empty attribution as ``""``. An empty result prints
nothing in JSON lines and only the header row in CSV; the commands explain empty results on stderr.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Sequence
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TextIO

from tokenbook.collector.query.api import json_value

__all__ = [
    "FORMATS",
    "MONEY_PLACES",
    "format_money",
    "format_tokens",
    "print_fields",
    "print_note",
    "print_result",
    "terminal_width",
]

FORMATS = ("table", "json", "csv")
#: Decimals shown for money in terminal tables (``--exact`` shows all stored digits).
MONEY_PLACES = 6
_NUMERIC = (
    "Int",
    "UInt",
    "Float",
    "Decimal",
    "Nullable(Int",
    "Nullable(UInt",
    "Nullable(Float",
    "Nullable(Decimal",
)
#: Attribution columns: an empty value there means "not attributed" and is shown as ``(none)``.
ATTRIBUTION = frozenset(
    {
        "tenant",
        "tenant_id",
        "user",
        "user_id",
        "project",
        "project_id",
        "team",
        "team_id",
        "feature",
        "context",
        "context_id",
        "workflow_name",
        "service_name",
    }
)
NONE_LABEL = "(none)"
#: Columns a narrow terminal keeps whatever happens (besides the first column and money columns).
_KEY = frozenset({"calls", "tenant", "tenant_id", "context_id", "model", "timestamp", "kind", "subject"})
#: Columns left out first on a narrow terminal, in this order; other non-key columns follow,
#: rightmost first.
_MINOR = (
    "cache_write_tokens",
    "reasoning_tokens",
    "workflow_name",
    "models",
    "first_seen",
    "last_seen",
    "span_id",
    "operation",
    "attempt",
    "cache_read_tokens",
    "unpriced_calls",
    "errors",
    "retries",
    "tool_calls",
    "currency",
    "price_status",
    "output_tokens",
)
_GAP = 2


def format_tokens(n: int) -> str:
    """A count with thousands separators: ``4,139,153``."""
    return f"{n:,}"


def format_money(v: Decimal, *, exact: bool = False, places: int = MONEY_PLACES) -> str:
    """Money at the display precision (half-even), or every stored digit with `exact`."""
    if exact:
        return f"{v.normalize():f}"
    return f"{v.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN):f}"


def terminal_width(out: TextIO) -> int | None:
    """The terminal's width when `out` is a terminal, else None (never narrow a pipe or a file)."""
    try:
        if not out.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size((100, 24)).columns


def _exact_places(values: Sequence[Any]) -> int:
    places = 2
    for v in values:
        if isinstance(v, Decimal) and v.is_finite():
            exponent = v.normalize().as_tuple().exponent
            if isinstance(exponent, int):
                places = max(places, -exponent)
    return places


class _Column:
    def __init__(self, name: str, type_name: str, values: Sequence[Any], exact: bool) -> None:
        self.name = name
        self.numeric = type_name.startswith(_NUMERIC)
        self.money = any(isinstance(v, Decimal) for v in values) or "Decimal" in type_name
        self.exact = exact
        self.places = _exact_places(values)
        self.attribution = name in ATTRIBUTION

    def cell(self, v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, Decimal):
            return f"{v:.{self.places}f}" if self.exact else format_money(v)
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, int):
            return format_tokens(v)
        if isinstance(v, datetime):
            return v.strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(v, str):
            return NONE_LABEL if (v == "" and self.attribution) else v
        if isinstance(v, list | tuple):
            return ", ".join(str(x) for x in v)
        if isinstance(v, dict):
            return json.dumps(json_value(v), ensure_ascii=False)
        return str(v)


def _total_row(cols: Sequence[_Column], rows: Sequence[Sequence[Any]]) -> list[Any] | None:
    """Exact sums of the count and money columns; None when money of several currencies would mix."""
    names = [c.name for c in cols]
    if "currency" in names:
        currencies = {row[names.index("currency")] for row in rows}
        if len(currencies) > 1:
            return None
    total: list[Any] = []
    for i, col in enumerate(cols):
        values = [row[i] for row in rows]
        if col.money:
            present = [v for v in values if v is not None]
            total.append(sum(present, Decimal(0)) if present else None)
        elif col.numeric and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            total.append(sum(values))
        elif col.name == "currency":
            total.append(values[0] if values else "")
        else:
            total.append("")
    total[0] = "total"
    return total


def _keep(cols: Sequence[_Column], widths: Sequence[int], width: int) -> list[int]:
    """Indexes of the columns that fit in `width`, leaving out minor ones first; [] if keys don't fit."""
    keep = list(range(len(cols)))

    def used() -> int:
        return sum(widths[i] for i in keep) + _GAP * (len(keep) - 1)

    def is_key(i: int) -> bool:
        return i == 0 or cols[i].money or cols[i].name in _KEY

    order = [i for name in _MINOR for i, c in enumerate(cols) if c.name == name and not is_key(i)]
    order += [i for i in reversed(range(len(cols))) if i not in order and not is_key(i)]
    for i in order:
        if used() <= width:
            break
        keep.remove(i)
    return keep if used() <= width else []


def _print_table(
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
    out: TextIO,
    *,
    exact: bool,
    totals: bool,
    width: int | None,
) -> None:
    if not columns:  # nothing to head a table with (an empty result without its columns)
        _print_footer(rows, [], out, width)
        return
    cols = [
        _Column(name, type_name, [row[i] for row in rows], exact)
        for i, (name, type_name) in enumerate(zip(columns, types, strict=True))
    ]
    body = [[c.cell(v) for c, v in zip(cols, row, strict=True)] for row in rows]
    total = _total_row(cols, rows) if totals and len(rows) > 1 else None
    footer = [c.cell(v) if v != "" else "" for c, v in zip(cols, total, strict=True)] if total else None
    notes: list[str] = []
    if total is not None and not exact:
        for i, col in enumerate(cols):
            shown = [Decimal(cells[i]) for cells in body if col.money and cells[i] != "-"]
            if col.money and total[i] is not None and sum(shown, Decimal(0)) != Decimal(footer[i]):  # type: ignore[index]
                notes.append(
                    f"{col.name}: the total is the exact sum rounded once; the rounded rows add up to "
                    f"{sum(shown, Decimal(0))} (--exact shows every digit)"
                )
    lines = [list(columns), *body, *([footer] if footer else [])]
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols))]
    keep = list(range(len(cols)))
    if width is not None:
        keep = _keep(cols, widths, width)
        if not keep:
            _print_vertical(columns, body, footer, out)
            _print_footer(rows, notes, out, width)
            return
        hidden = [cols[i].name for i in range(len(cols)) if i not in keep]
        if hidden:
            notes.append(
                f"not shown at {width} columns: {', '.join(hidden)} "
                "(a wider terminal, --format csv or --format json shows every column)"
            )

    def render(cells: Sequence[str]) -> str:
        parts = [cells[i].rjust(widths[i]) if cols[i].numeric else cells[i].ljust(widths[i]) for i in keep]
        return (" " * _GAP).join(parts).rstrip()

    rule = (" " * _GAP).join("-" * widths[i] for i in keep)
    out.write(render(columns) + "\n" + rule + "\n")
    for cells in body:
        out.write(render(cells) + "\n")
    if footer:
        out.write(rule + "\n" + render(footer) + "\n")
    _print_footer(rows, notes, out, width)


def _print_vertical(
    columns: Sequence[str], body: Sequence[Sequence[str]], footer: Sequence[str] | None, out: TextIO
) -> None:
    """One block of `column: value` lines per row: nothing is cut on however narrow a terminal."""
    label = max(len(c) for c in columns)
    if not body:
        out.write("  ".join(columns) + "\n")
    for n, cells in enumerate([*body, *([footer] if footer else [])]):
        if n:
            out.write("\n")
        for name, cell in zip(columns, cells, strict=True):
            if cell != "" or name == columns[0]:
                out.write(f"{name.rjust(label)}: {cell}\n")


def _print_footer(
    rows: Sequence[Sequence[Any]], notes: Sequence[str], out: TextIO, width: int | None
) -> None:
    """The row count, then each note (`print_note`)."""
    out.write(f"{len(rows)} row{'s' if len(rows) != 1 else ''}\n")
    for note in notes:
        print_note(note, out, width)


def print_fields(
    fields: Sequence[tuple[str, str]], out: TextIO | None = None, width: int | None = None, *, pad: int = 0
) -> None:
    """One ``name  value`` line per field, the names padded to the longest (and to `pad` at least); on a
    terminal (`width`, default: the terminal's when `out` is one), a longer value wraps under itself."""
    out = out or sys.stdout
    label = max([pad, *(len(name) for name, _ in fields)])
    width = width if width is not None else terminal_width(out)
    for name, value in fields:
        line = f"{name:<{label}}  {value}"
        if width is not None and width > label + 20:
            line = textwrap.fill(line, width, subsequent_indent=" " * (label + 2), break_on_hyphens=False)
        out.write(line + "\n")


def print_note(note: str, out: TextIO | None = None, width: int | None = None) -> None:
    """Print ``note: <note>``, wrapped to `width` (default: the terminal's, when `out` is one; a pipe or
    a file gets it on one line)."""
    out = out or sys.stdout
    text = f"note: {note}"
    width = width if width is not None else terminal_width(out)
    if width is not None:
        text = textwrap.fill(text, width, subsequent_indent="  ", break_on_hyphens=False)
    out.write(text + "\n")


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    value = json_value(v)
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


def print_result(
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str,
    *,
    out: TextIO | None = None,
    exact: bool = False,
    totals: bool = False,
    width: int | None = None,
) -> None:
    """Print a result in `fmt`: `table`, `json` (one object per row) or `csv` (with a header).

    `exact` shows money with every stored digit in a table (JSON and CSV always are exact);
    `totals` adds a total row to a table; `width` overrides the terminal's width (tests).
    """
    out = out or sys.stdout
    try:
        if fmt == "table":
            _print_table(
                columns,
                types,
                rows,
                out,
                exact=exact,
                totals=totals,
                width=width if width is not None else terminal_width(out),
            )
        elif fmt == "json":
            for row in rows:
                doc = {name: json_value(v) for name, v in zip(columns, row, strict=True)}
                out.write(json.dumps(doc, ensure_ascii=False) + "\n")
        elif fmt == "csv":
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(columns)
            writer.writerows([_csv_value(v) for v in row] for row in rows)
        else:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        out.flush()
    except BrokenPipeError:  # `tokenbook sql ... | head`: stop quietly, and keep Python's exit flush quiet
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
