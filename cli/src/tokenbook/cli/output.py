"""Printing query results as an aligned table (rich), JSON lines or CSV.

Money stays exact: Decimal values are never converted to float. In a table every Decimal column is
printed with one fixed number of decimals, the fewest that show all its values exactly (at least 2);
JSON and CSV carry the full stored value as a string. NULL is `-` in a table (an unpriced cost is
NULL, never 0), `null` in JSON and empty in CSV.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO

from tokenbook.collector.query.api import json_value

__all__ = ["FORMATS", "print_result"]

FORMATS = ("table", "json", "csv")
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


def _decimals(values: Sequence[Any]) -> int:
    places = 2
    for v in values:
        if isinstance(v, Decimal) and v.is_finite():
            exponent = v.normalize().as_tuple().exponent
            if isinstance(exponent, int):
                places = max(places, -exponent)
    return places


def _cell(v: Any, places: int | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, Decimal) and places is not None:
        return f"{v:.{places}f}"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(v, list | tuple):
        return ", ".join(_cell(x, None) for x in v)
    if isinstance(v, dict):
        return json.dumps(json_value(v), ensure_ascii=False)
    return str(v)


def _print_table(
    columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO
) -> None:
    from rich.console import Console
    from rich.table import Table

    width = shutil.get_terminal_size((240, 24)).columns if out.isatty() else 1000
    table = Table(show_edge=False, header_style="bold", pad_edge=False)
    for name, type_name in zip(columns, types, strict=True):
        table.add_column(name, justify="right" if type_name.startswith(_NUMERIC) else "left", no_wrap=True)
    places = [_decimals([row[i] for row in rows]) for i in range(len(columns))]
    for row in rows:
        table.add_row(*(_cell(v, p) for v, p in zip(row, places, strict=True)))
    Console(file=out, width=width, highlight=False, soft_wrap=False).print(table)
    print(f"{len(rows)} row{'s' if len(rows) != 1 else ''}", file=out)


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
) -> None:
    """Print a result in `fmt` (`table`, `json`: one object per row, or `csv` with a header)."""
    out = out or sys.stdout
    try:
        _print(columns, types, rows, fmt, out)
    except BrokenPipeError:  # `tokenbook sql ... | head`: stop quietly, and keep Python's exit flush quiet
        if out is sys.stdout:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _print(
    columns: Sequence[str], types: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, out: TextIO
) -> None:
    if fmt == "table":
        _print_table(columns, types, rows, out)
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
