"""The acknowledged path's output, pinned: every recorded conformance fixture, decoded for the log and
built by a worker's `LoggedBuilder`, gives the same span summaries, rows (costs to the pico-dollar),
counts and touched keys as the golden file recorded before the path was optimized.

The golden file holds a SHA-256 per fixture and content mode of a canonical text of that output (row
times of the build itself, ``ingested_at`` and ``version``, left out): compact JSON, which the
standard library writes in C (indented, in Python, it took half the test's time). Costs come from the
installed price catalog, so the file names the catalog it was recorded with; after a lock update that
moves the catalog, regenerate it with ``.venv/bin/python -m tests.collector.ingest.test_logged_rows_golden``
and review the prices that moved (`tests/genai/test_golden_prices.py`). A mismatch prints the case's output
indented, to diff against the previous commit's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import marshal
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.otlp import Setup, check_each, fixture_paths, fixture_setups, load
from tokenbook.collector.decode.content import LogContent
from tokenbook.collector.decode.pool import decode_for_log
from tokenbook.collector.ingest.deferred import LoggedBuilder, unbounded_in_time
from tokenbook.collector.ingest.rows import RowBuilder, SpanBounds, pipeline_keys
from tokenbook.collector.wal.requests import LoggedRequest
from tokenbook.genai.pricing.catalog import CATALOG_NAME, PriceCatalog

GOLDEN = Path(__file__).resolve().parents[2] / "testdata" / "collector" / "logged_rows_golden.json"
MODES = ("drop", "hash", "keep")
SALT = "golden-salt"
_VOLATILE = ("ingested_at", "version")  # the build's own clock


def _canonical(value: Any) -> Any:
    """A JSON-able form that does not depend on set or dict order."""
    if isinstance(value, dict):
        return [[_canonical(k), _canonical(v)] for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))]
    if isinstance(value, set | frozenset):
        return sorted((_canonical(v) for v in value), key=repr)
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if isinstance(value, bytes):
        return "b:" + value.hex()
    if isinstance(value, Decimal | datetime | float):
        return repr(value)
    return value


def case_output(fixture: dict[str, Any], mode: str, catalog: PriceCatalog) -> Any:
    """One fixture's output in one content mode, in canonical form (JSON-able, in a fixed order)."""
    keys = pipeline_keys((), mode)
    content = LogContent(mode, SALT)
    builder = LoggedBuilder(
        RowBuilder(catalog, content=mode, salt=SALT, bounds=unbounded_in_time(SpanBounds()))
    )
    out: list[Any] = []
    for body in fixture["otlp"]:
        decoded = decode_for_log(0, base64.b64decode(body), keys, content)
        built = builder.build(LoggedRequest(None, frozenset(), decoded.records))
        record = built.record()
        fields = [c._asdict() for c in record.calls] + [s._asdict() for s in record.steps]
        rows = [{f: v for f, v in row.items() if f not in _VOLATILE} for row in fields]
        touched = built.touched.wire()
        out.append(
            {
                "records": marshal.loads(decoded.records),
                "summaries": [tuple(s) for s in decoded.spans],
                "rejected": (decoded.rejected, decoded.reason),
                "rows": rows,
                "counts": (built.billed, built.unpriced, built.unbilled, built.rejected, built.reason),
                "touched": (*touched[:2], *touched[3:]),  # less the oldest ingested_at
            }
        )
    return _canonical(out)


def _digest(output: Any) -> str:
    """The SHA-256 of `output`'s canonical text."""
    text = json.dumps(output, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _cases() -> list[tuple[Path, str]]:
    return [(p, m) for p in fixture_paths() for m in MODES]


@pytest.fixture(scope="module")
def catalog() -> PriceCatalog:
    return PriceCatalog()


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(GOLDEN.read_text(encoding="utf-8"))
    if doc["catalog"] != CATALOG_NAME:
        pytest.fail(
            f"golden file recorded with {doc['catalog']}, installed {CATALOG_NAME}: regenerate it with"
            " `python -m tests.collector.ingest.test_logged_rows_golden` and review the diff"
        )
    return doc


SETUPS = fixture_setups()


@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
def test_logged_path_output_is_unchanged(golden: dict[str, Any], catalog: PriceCatalog, setup: Setup) -> None:
    """Each fixture of the setup, in each content mode (`check_each`)."""
    fixtures = {path.stem: load(path) for path in setup.paths}

    def check(case: tuple[str, str]) -> None:
        stem, mode = case
        output = case_output(fixtures[stem], mode, catalog)
        expected = golden["cases"][f"{stem}/{mode}"]
        assert _digest(output) == expected, json.dumps(output, indent=1, sort_keys=True)  # (on failure)

    check_each({f"{stem}/{mode}": (stem, mode) for stem in fixtures for mode in MODES}, check)


def test_golden_file_covers_every_fixture(golden: dict[str, Any]) -> None:
    assert sorted(golden["cases"]) == sorted(f"{p.stem}/{m}" for p, m in _cases())


def main() -> None:
    """Record the golden file from the current code."""
    catalog = PriceCatalog()
    cases = {f"{p.stem}/{m}": _digest(case_output(load(p), m, catalog)) for p, m in _cases()}
    GOLDEN.write_text(
        json.dumps({"catalog": CATALOG_NAME, "cases": cases}, indent=1) + "\n", encoding="utf-8"
    )
    print(f"{GOLDEN}: {len(cases)} cases")


if __name__ == "__main__":
    main()
