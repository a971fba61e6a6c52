"""Embedded clients share their engine's handshake (`storage.embedded_client`): a later client of the
engine runs none of the handshake's statements and behaves as one that ran them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tokenbook.collector.storage import embedded_client
from tokenbook.collector.storage.config import EngineConfig
from tokenbook.collector.storage.store import Store

_OPTIONS = EngineConfig().server_settings()  # what `Store.open` passes by default


def _select_queries(client: Any) -> int:
    """The engine's count of SELECT queries so far (this one included)."""
    rows = client.query("SELECT value FROM system.events WHERE event = 'SelectQuery'").result_rows
    return int(rows[0][0])


@contextmanager
def _client(path: str) -> Iterator[Any]:
    client = embedded_client.connect(path, chdb_options=_OPTIONS)
    try:
        yield client
    finally:
        client.close()


def test_the_pinned_clickhouse_connect_has_the_hooked_methods() -> None:
    """A release without them makes ordinary clients: this fails so that the saving is not lost
    unnoticed when the lock moves."""
    assert embedded_client.shares_handshake()


def test_a_later_client_of_the_engine_runs_no_handshake(migrated_store: Store) -> None:
    path = migrated_store.description.removeprefix("chdb://")
    with _client(path) as observer:
        embedded_client.forget_handshakes()
        before = _select_queries(observer)
        with _client(path) as first:
            after_first = _select_queries(observer)
            with _client(path) as later:
                after_later = _select_queries(observer)
                # The handshake's three SELECTs (version, settings, protocol probe) ran for the first
                # client only; between the later client's two readings, the reading itself (and at
                # most one query of a thread another test left behind: a handshake would add three).
                assert after_first - before >= 4
                assert after_later - after_first <= 2
                assert later.server_version == first.server_version
                assert later.server_tz == first.server_tz
                assert later.protocol_version == first.protocol_version
                assert later.server_settings == first.server_settings
                assert len(later.server_settings) > 1000


def test_a_client_with_a_shared_handshake_has_its_own_session_and_settings(migrated_store: Store) -> None:
    path = migrated_store.description.removeprefix("chdb://")
    with _client(path) as first, _client(path) as later:
        setting = "SELECT getSetting('date_time_input_format')"
        # The client settings the handshake chose are applied in the later client's own session.
        assert later.get_client_setting("date_time_input_format") == "best_effort"
        assert later.query(setting).result_rows == [("best_effort",)]
        first.command("SET date_time_input_format = 'basic'")
        assert first.query(setting).result_rows == [("basic",)]
        assert later.query(setting).result_rows == [("best_effort",)]
        later.database = migrated_store.database
        assert later.query("SELECT count() FROM llm_calls").result_rows == [(0,)]
