"""A FOCUS validator for the export tests: applies `rules_1_2.yaml` to exported rows.

It follows focus-validator's checks (column_required, allow_nulls, data_type, value_in, and sql_query
run over a table ``df``, here in SQLite, which is what focus-validator's pandasql uses), plus
`decimal_product` for exact arithmetic. Rows are text as in a CSV file: an empty field is null.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tokenbook.genai.yamlfiles import load_yaml

RULES = Path(__file__).with_name("rules_1_2.yaml")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def _decimal(v: str) -> Decimal | None:
    try:
        d = Decimal(v)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _json_object(v: str) -> bool:
    try:
        return isinstance(json.loads(v), dict)
    except ValueError:
        return False


def _datetime(v: str) -> bool:
    if not _DATETIME.fullmatch(v):
        return False
    datetime.fromisoformat(v)
    return True


_TYPES = {
    "decimal": lambda v: _decimal(v) is not None,
    "datetime": _datetime,
    "currency-code": lambda v: re.fullmatch(r"[A-Z]{3}", v) is not None,
    "stringified-json-object": _json_object,
    "string": lambda v: isinstance(v, str),
}


def validate(columns: Sequence[str], rows: Sequence[Mapping[str, str | None]]) -> list[str]:
    """Every failed check as ``"Column: what (n rows)"``; empty when the rows conform."""
    spec = load_yaml(RULES.read_text(encoding="utf-8"))
    failures = [f"{c}: required column missing" for c in spec["required"] if c not in columns]
    data = [{c: (r.get(c) or None) for c in columns} for r in rows]
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE df ({', '.join(f'{c!r} TEXT' for c in columns)})")
    db.executemany(
        f"INSERT INTO df VALUES ({', '.join('?' for _ in columns)})", [tuple(r.values()) for r in data]
    )
    for rule in spec["checks"]:
        column, check = rule["column_id"], rule["check"]
        if column not in columns:
            continue
        values = [r[column] for r in data]
        bad = 0
        if "allow_nulls" in check and not check["allow_nulls"]:
            bad = sum(v is None for v in values)
        elif "data_type" in check:
            bad = sum(v is not None and not _TYPES[check["data_type"]](v) for v in values)
        elif "value_in" in check:
            bad = sum(v is not None and v not in check["value_in"] for v in values)
        elif "sql_query" in check:
            bad = sum(not out for (out,) in db.execute(check["sql_query"].strip().rstrip(";")))
        elif "decimal_product" in check:
            price, quantity = check["decimal_product"]
            for r in data:
                a, b, product = (_decimal(r[c] or "") for c in (price, quantity, column))
                if a is None or b is None or r.get("ChargeClass") is not None:
                    continue
                bad += a * b != product
        if bad:
            failures.append(f"{column}: {check} ({bad} rows)")
    return failures


def validate_csv(path: Path) -> list[str]:
    """`validate` of a CSV file."""
    import csv

    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        return validate(list(reader.fieldnames or ()), rows)


def as_text(value: Any) -> str | None:
    """A Parquet or JSON value as its CSV text (None stays null)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)
