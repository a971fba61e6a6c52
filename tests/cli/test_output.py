"""Terminal tables, JSON and CSV from `tokenbook.cli.output` (no process, no store)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal

from tokenbook.cli.output import MONEY_PLACES, format_money, format_tokens, print_fields, print_result

BY_TENANT = (
    ["tenant", "currency", "calls", "unpriced_calls", "input_tokens", "output_tokens",
     "cache_read_tokens", "cache_write_tokens", "total_cost"],
    ["String", "String", "UInt64", "UInt64", "UInt64", "UInt64", "UInt64", "UInt64",
     "Nullable(Decimal(38, 12))"],
    [
        ("initech", "USD", 72, 24, 3131776, 50144, 0, 0, Decimal("7.137508750000")),
        ("globex", "USD", 78, 0, 457978, 195931, 91000, 0, Decimal("2.070537140000")),
        ("", "USD", 82, 0, 549399, 37319, 20480, 6144, Decimal("1.968365500000")),
    ],
)  # fmt: skip


def _table(columns, types, rows, **kwargs) -> str:
    out = io.StringIO()
    print_result(columns, types, rows, "table", out=out, **kwargs)
    return out.getvalue()


def test_tokens_have_separators_and_money_one_precision():
    text = _table(*BY_TENANT)
    assert "3,131,776" in text and "3131776" not in text
    assert "7.137509" in text and "1.968366" in text  # 6 decimals, half-even
    assert format_money(Decimal("0.0000005")) == "0.000000"  # half-even: to the even digit
    assert format_money(Decimal("0.0000015")) == "0.000002"
    assert format_tokens(4139153) == "4,139,153"
    assert MONEY_PLACES == 6


def test_exact_shows_every_digit():
    text = _table(*BY_TENANT, exact=True)
    assert "7.13750875" in text and "1.9683655" in text


def test_empty_attribution_is_none_label_in_tables_only():
    assert "(none)" in _table(*BY_TENANT)
    out = io.StringIO()
    print_result(*BY_TENANT, "json", out=out)
    assert json.loads(out.getvalue().splitlines()[2])["tenant"] == ""


def test_total_row_is_the_exact_sum_with_a_note_when_rounded_parts_differ():
    text = _table(*BY_TENANT, totals=True)
    total_line = next(line for line in text.splitlines() if line.startswith("total"))
    # exact sum 11.17641139 -> 11.176411; the shown parts add up to 11.176412
    assert total_line.split()[-1] == "11.176411"
    assert "232" in total_line and "4,139,153" in total_line
    assert "the rounded rows add up to 11.176412" in text


def test_json_and_csv_are_exact_and_csv_has_a_header_when_empty():
    out = io.StringIO()
    print_result(*BY_TENANT, "csv", out=out)
    assert out.getvalue().splitlines()[1].endswith(",7.137508750000")
    empty = io.StringIO()
    print_result(BY_TENANT[0], BY_TENANT[1], [], "csv", out=empty)
    assert empty.getvalue() == ",".join(BY_TENANT[0]) + "\n"
    nothing = io.StringIO()
    print_result(BY_TENANT[0], BY_TENANT[1], [], "json", out=nothing)
    assert nothing.getvalue() == ""


def test_a_result_without_columns_prints_its_row_count_only():
    for width in (None, 80, 20):
        out = io.StringIO()
        print_result([], [], [], "table", out=out, width=width)
        assert out.getvalue() == "0 rows\n"


def test_empty_table_keeps_its_headers():
    text = _table(BY_TENANT[0], BY_TENANT[1], [])
    assert text.splitlines()[0].split() == BY_TENANT[0]
    assert "0 rows" in text


def _cells_intact(text: str) -> None:
    for value in ("initech", "globex", "(none)", "72", "78", "82", "7.137509", "2.070537", "1.968366"):
        assert value in text, text


def test_narrow_terminals_leave_out_minor_columns_never_keys_or_money():
    for width in (80, 120):
        text = _table(*BY_TENANT, width=width, totals=True)
        assert all(len(line) <= width for line in text.splitlines()), text  # the notes too
        _cells_intact(text)
        assert "11.176411" in text
    narrow = _table(*BY_TENANT, width=80)
    assert "not shown at 80 columns: " in narrow and "cache_write_tokens" in narrow


def test_too_narrow_for_the_keys_switches_to_one_block_per_row():
    text = _table(*BY_TENANT, width=20)
    assert "total_cost: 7.137509" in text
    _cells_intact(text)


def test_context_calls_at_120_columns_keep_the_cost():
    columns = ["timestamp", "tenant_id", "span_id", "provider", "model", "operation", "attempt", "status",
               "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
               "reasoning_tokens", "price_status", "total_cost", "currency"]  # fmt: skip
    types = ["DateTime64(6)", "String", "String", "String", "String", "String", "UInt8", "String",
             "UInt64", "UInt64", "UInt64", "UInt64", "UInt64", "String", "Nullable(Decimal(38, 12))",
             "String"]  # fmt: skip
    at = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)
    rows = [(at, "acme", "00f067aa0ba902b7", "anthropic", "claude-sonnet-4-5", "chat", 0, "ok",
             12000, 900, 2048, 0, 0, "priced", Decimal("0.049500000000"), "USD")]  # fmt: skip
    text = _table(columns, types, rows, width=120)
    assert "0.049500" in text and "12,000" in text and "claude-sonnet-4-5" in text
    assert all(len(line) <= 120 for line in text.splitlines() if not line.startswith("note:"))


def test_fields_wrap_their_values_under_themselves_on_a_terminal():
    tiers = "; ".join(
        f"input_mtok above {n:,} input tokens: {n // 100_000}" for n in (200_000, 400_000, 800_000)
    )
    fields = [("model", "claude-sonnet-4-5"), ("tiers", tiers)]
    narrow = io.StringIO()
    print_fields(fields, narrow, 60, pad=12)
    lines = narrow.getvalue().splitlines()
    assert lines[0] == "model         claude-sonnet-4-5"
    assert all(len(line) <= 60 for line in lines) and len(lines) > 2
    assert all(line.startswith(" " * 14) and line[14] != " " for line in lines[2:])
    assert " ".join(" ".join(lines[1:]).split()) == f"tiers {tiers}"  # nothing lost or reordered
    piped = io.StringIO()
    print_fields(fields, piped, pad=12)  # not a terminal: one line per field, whatever its length
    assert piped.getvalue().splitlines()[1] == f"tiers         {tiers}"
