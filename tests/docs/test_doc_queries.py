"""Every SQL example of the schema reference and the questions guide runs (no refusal, no engine error)
through the query guard users' queries go through, on a seeded embedded store (calls with measured
prompts, latency, policy paths, tool steps, re-delivered in part)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.seed_store import make_calls, make_steps
from tests.stores import DatabasePool
from tokenbook.collector.storage.store import Store

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ("reference/schema.md", "guide/questions.md")


def _queries(page: str) -> list[str]:
    text = (DOCS / page).read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", text, re.DOTALL)
    return [q.strip() for block in blocks for q in block.split(";\n") if q.strip()]


QUERIES = [(page, i, sql) for page in PAGES for i, sql in enumerate(_queries(page))]


@pytest.fixture(scope="module")
def store(database_pool: DatabasePool) -> Iterator[Store]:
    with database_pool.store() as s:
        calls = make_calls()
        s.write(calls, make_steps(calls))
        s.write(calls[:50], [])  # a re-delivery
        s.refresh_aggregates()
        yield s


def test_the_pages_have_queries() -> None:
    assert len(_queries("reference/schema.md")) >= 8 and len(_queries("guide/questions.md")) >= 15


@pytest.mark.parametrize(("page", "index", "sql"), QUERIES, ids=[f"{p}#{i}" for p, i, _ in QUERIES])
def test_the_example_runs(store: Store, page: str, index: int, sql: str) -> None:
    sql = sql.replace("tokenbook.", f"{store.database}.")
    store.query_readonly(sql, {}, max_rows=100_000)  # a refusal or an engine error raises
