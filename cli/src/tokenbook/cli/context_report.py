"""`tokenbook report --context ID` as terminal tables: the calls and their cost, then the prompt of each
billed call (its parts, its growth since the previous call, its context-window saturation), then the
context's tool loops. Each table is narrow enough for 80 columns; JSON and CSV print the one result
with every column instead (`CALL_COLUMNS` and the rest)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from tokenbook.cli.output import format_money, format_tokens, print_note, print_result
from tokenbook.genai.billing import UNBILLED_STATUSES

__all__ = ["CALL_COLUMNS", "print_context", "prompt_table"]

#: The columns of the calls table (the rest of `report_context_calls.sql` is shown per call below it).
CALL_COLUMNS: Final = (
    "timestamp", "tenant_id", "span_id", "provider", "model", "operation", "attempt", "status",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "price_status", "total_cost", "currency", "billing_rule", "billed_by",
)  # fmt: skip
#: Ledger column -> heading in the prompt table.
_PARTS: Final = (
    ("prompt_system_tokens", "system"),
    ("prompt_history_tokens", "history"),
    ("prompt_retrieved_tokens", "retrieved"),
    ("prompt_tool_result_tokens", "tool_results"),
    ("prompt_user_tokens", "user"),
    ("prompt_tool_definition_tokens", "tool_defs"),
    ("prompt_overhead_tokens", "overhead"),
)
_PROMPT_HEADING: Final = "prompt per billed call (tokens): parts, growth, context-window saturation"


def prompt_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> tuple[list[str], list[str], list[list[Any]]]:
    """(columns, types, rows) of the prompt table: one row per billed call, the parts any call has."""
    at = {name: i for i, name in enumerate(columns)}
    billed = [r for r in rows if r[at["price_status"]] not in UNBILLED_STATUSES]
    parts = [(col, head) for col, head in _PARTS if any(r[at[col]] for r in billed)]
    names = ["time", "input", "growth", *(head for _, head in parts), "saturation"]
    types = ["String", "UInt64", "Int64", *(["Nullable(UInt64)"] * len(parts)), "Nullable(Float64)"]
    out: list[list[Any]] = []
    previous: int | None = None
    for r in billed:
        tokens = int(r[at["input_tokens"]])
        saturation = r[at["context_saturation"]]
        out.append(
            [
                r[at["timestamp"]].strftime("%H:%M:%S"),
                tokens,
                None if previous is None else tokens - previous,
                *(r[at[col]] for col, _ in parts),
                None if saturation is None else round(float(saturation), 4),
            ]
        )
        previous = tokens
    return names, types, out


def print_context(
    columns: Sequence[str],
    types: Sequence[str],
    rows: Sequence[Sequence[Any]],
    loops: Sequence[Sequence[Any]],
    *,
    exact: bool,
) -> None:
    """The calls table, the prompt table and one line per tenant's tool loops (`report_context_loops.sql`
    rows) of one context."""
    keep = [i for i, name in enumerate(columns) if name in CALL_COLUMNS]
    print_result(
        [columns[i] for i in keep], [types[i] for i in keep], [[r[i] for i in keep] for r in rows], "table",
        exact=exact,
    )  # fmt: skip
    names, prompt_types, prompt_rows = prompt_table(columns, rows)
    measured = any(any(v is not None for v in row[3:]) for row in prompt_rows)
    if prompt_rows and measured:
        print("\n" + _PROMPT_HEADING)
        print_result(names, prompt_types, prompt_rows, "table")
        at = columns.index("prompt_estimated")
        if any(r[at] for r in rows):
            print_note("parts estimated by their share of the prompt's text (no tokenizer for the model)")
    for tenant, n, steps, tokens, cost, growth, currency in loops:
        money = "" if cost is None else f" ({format_money(cost, exact=exact)} {currency})"
        print(f"\ntool loops of tenant {tenant}: {n}; the longest has {steps} model calls")
        print(f"  {format_tokens(tokens)} tokens after each loop's first call{money}")
        if growth is not None:
            print(
                f"  prompt growth: {format_tokens(round(growth))} tokens per step (the largest loop average)"
            )
