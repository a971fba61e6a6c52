"""`tokenbook explain TRACE_ID|CONTEXT_ID`: why each recorded span of a trace or context is billed or not.

Lists every span tokenbook recorded (model-call candidates and steps) with the rule that decided it
(docs/reference/billing-rule.md), the span that bills it, the convention profile and instrumentation
scope its usage was read with (docs/reference/profiles.md), and its price source.
"""

from __future__ import annotations

import argparse
import sys

from tokenbook.cli.output import print_result
from tokenbook.cli.reports import open_reader, report_failure
from tokenbook.collector.storage.sqltemplate import render_query
from tokenbook.collector.storage.store import StoreError
from tokenbook.genai.decisions import RULES

__all__ = ["cmd_explain"]

_MAX_ROWS = 10_000


def cmd_explain(args: argparse.Namespace) -> int:
    """`tokenbook explain TRACE_ID|CONTEXT_ID`: every recorded span, billed or not, and why."""
    params = {"id": args.id, "tenant": args.tenant or ""}
    try:
        with open_reader(args) as reader:
            columns, types, rows = reader.query_readonly(
                render_query("explain_spans.sql", "tokenbook"), params, max_rows=_MAX_ROWS
            )
    except (ValueError, StoreError) as exc:
        return report_failure("explain", exc)
    if not rows:
        print(f"tokenbook explain: nothing recorded for trace or context {args.id!r}", file=sys.stderr)
        return 1
    rule = columns.index("billing_rule")
    kind = columns.index("recorded_as")
    columns = [*columns, "why"]
    types = [*types, "String"]
    out = []
    for row in rows:
        why = RULES.get(row[rule], row[rule]) if row[kind] == "call" else "a step: never billed"
        out.append((*row, why))
    print_result(columns, types, out, args.format)
    return 0
