"""A context found by its ID alone, without its tenant, reads its own granule of `context_costs` and
almost never another (the bloom filter over `context_id`, migration 190)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cli.seed_store import reads_at_most
from tests.stores import DatabasePool
from tokenbook.collector.storage.store import Store, StoreError

CONTEXTS = 200_000  # ~25 granules of 8,192 rows
LOOKUPS = 100
GRANULE = 8192


@pytest.fixture
def store(database_pool: DatabasePool) -> Iterator[Store]:
    """A migrated store whose `context_costs` holds `CONTEXTS` contexts of 100 tenants in one part."""
    with database_pool.store() as s:
        s.command(
            f"INSERT INTO {s.database}.context_costs (tenant_id, context_id, currency, refreshed_at) "
            f"SELECT concat('tenant-', toString(number % 100)), concat('ctx-', toString(number)), 'USD', "
            f"now64(6) FROM numbers({CONTEXTS})"
        )
        s.command(f"OPTIMIZE TABLE {s.database}.context_costs FINAL")
        yield s


def test_a_context_by_its_id_alone_reads_one_granule_almost_always(store: Store) -> None:
    more = 0
    for i in range(LOOKUPS):
        context = f"ctx-{i * (CONTEXTS // LOOKUPS) + 7}"
        try:
            _, _, rows = store.query(
                "SELECT tenant_id, context_id FROM v_context_costs WHERE context_id = {c:String}",
                {"c": context},
                settings=reads_at_most(GRANULE),
            )
        except StoreError as exc:  # read a second granule: a false positive of the filter
            assert "TOO_MANY_ROWS" in str(exc)
            more += 1
            continue
        assert rows == [(f"tenant-{(i * (CONTEXTS // LOOKUPS) + 7) % 100}", context)]
    # at the filter's former false-positive rate of 1 %, 14 of these lookups read two granules; at 0.1 %, 2
    assert more <= 8, f"{more} of {LOOKUPS} lookups read more than one granule"
