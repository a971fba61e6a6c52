"""Prompt composition and context-window saturation in the ledger, on the real embedded engine."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.seed_store import make_calls
from tokenbook.collector.storage.store import Store


@pytest.fixture
def store(database_pool):
    with database_pool.store() as s:
        yield s


def _rows(store: Store, sql: str) -> list[dict[str, Any]]:
    columns, _, rows = store.query(sql.replace("DB.", f"{store.database}."))
    return [dict(zip(columns, r, strict=True)) for r in rows]


def test_parts_saturation_and_thresholds(store: Store) -> None:
    a, b, c = make_calls(3)
    a = a._replace(
        context_id="ctx-1", span_id="a" * 16, input_tokens=1000, price_status="priced", model="gpt-4o",
        prompt_system_tokens=100, prompt_history_tokens=500, prompt_retrieved_tokens=0,
        prompt_tool_result_tokens=150, prompt_user_tokens=50, prompt_tool_definition_tokens=200,
        prompt_overhead_tokens=0, prompt_estimated=True, context_window=128000, context_saturation=0.0078,
    )  # fmt: skip
    b = b._replace(
        context_id="ctx-1", span_id="b" * 16, input_tokens=120000, price_status="priced",
        context_window=128000, context_saturation=0.9375,
    )  # fmt: skip
    c = c._replace(context_id="ctx-2", span_id="c" * 16, price_status="priced")  # unknown window: NULL
    store.write([a, b, c], [])
    parts = _rows(store, "SELECT part, tokens, input_tokens FROM DB.v_prompt_parts ORDER BY part")
    assert {r["part"]: r["tokens"] for r in parts}["history"] == 500
    assert sum(r["tokens"] for r in parts) == 1000  # only the measured call, summing to its input
    sat = {r["context_id"]: r for r in _rows(store, "SELECT * FROM DB.v_context_saturation")}
    assert sat["ctx-1"]["max_saturation"] == 0.9375 and sat["ctx-1"]["max_saturation_span_id"] == "b" * 16
    assert sat["ctx-2"]["max_saturation"] is None and sat["ctx-2"]["measured_calls"] == 0
    over = _rows(store, "SELECT span_id FROM DB.v_saturated_calls(threshold = 0.8)")
    assert [r["span_id"] for r in over] == ["b" * 16]
    assert len(_rows(store, "SELECT span_id FROM DB.v_saturated_calls(threshold = 0.001)")) == 2
