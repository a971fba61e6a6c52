"""What an insert touches, as a row-building worker sends it to the collector (`Touched.wire`)."""

from __future__ import annotations

import marshal
from dataclasses import fields

from tests.cli.seed_store import make_calls, make_steps
from tokenbook.collector.storage.decisions import DecisionKeys
from tokenbook.collector.storage.touched import Touched


def test_what_an_insert_touches_crosses_the_wire_whole() -> None:
    """Every key of the decision pass, a lone layer without usage's too, survives `wire` and `marshal`
    (a field carried by position, and one added without its wire, failed here)."""
    calls = make_calls(12)
    lone = calls[0]._replace(
        span_id="f" * 16, trace_id="e" * 32, parent_span_id="", input_tokens=0, output_tokens=0,
        price_status="not_billable", quote_status="not_billable", status="ok", response_id="resp-1",
    )  # fmt: skip
    touched = Touched.of([*calls, lone], make_steps(calls))
    keys = touched.decisions
    assert all(getattr(keys, f.name) for f in fields(DecisionKeys)), "every key in use"
    assert Touched.from_wire(marshal.loads(marshal.dumps(touched.wire()))) == touched
