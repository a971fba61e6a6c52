"""The schema reference (docs/reference/schema.md) has a row for every table and view the migrations
create: an object added without its row fails here."""

from __future__ import annotations

from pathlib import Path

from tokenbook.collector.storage.store import Store

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "reference" / "schema.md"


def test_every_table_and_view_has_a_row_in_the_schema_reference(migrated_store: Store) -> None:
    _, _, rows = migrated_store.query(
        "SELECT name FROM system.tables WHERE database = {db:String} ORDER BY name",
        {"db": migrated_store.database},
    )
    objects = [name for (name,) in rows]
    table = SCHEMA.read_text(encoding="utf-8").split("| object | what |", 1)[1].split("\n\n", 1)[0]
    assert len(objects) > 30 and [name for name in objects if f"`{name}`" not in table] == []
