"""The writer and the aggregate refresher on the real engine: inserts go on while a refresh runs."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.cli.seed_store import make_calls
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.storage.config import RefreshConfig
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.rowcodec import encode_record
from tokenbook.collector.storage.store import Store
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.collector.wal.refresher import lower_thread_priority
from tokenbook.collector.wal.writer import LedgerWriter


class HeldRefresh:
    """A real `Store` whose refreshes wait at a gate until the test opens it (a refresh that takes
    as long as the test wants: a decision pass over a flood, a slow server)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.gate = threading.Event()
        self.entered = threading.Event()

    def write(
        self, calls: Sequence[CallRow], steps: Sequence[StepRow], *, blocks: tuple[bytes, bytes] | None = None
    ) -> None:
        self.store.write(calls, steps, blocks=blocks)

    def refresh_aggregates(self, *, hourly: bool = True) -> int:
        self.entered.set()
        self.gate.wait()
        result: int = self.store.refresh_aggregates(hourly=hourly)
        return result

    def refresh_pending(self) -> bool:
        pending: bool = self.store.refresh_pending()
        return pending


def wait_until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def count(store: Store, sql: str) -> Any:
    return store.query(sql)[2][0][0]


def test_rows_are_inserted_while_a_refresh_runs(tmp_path: Path, migrated_store: Store) -> None:
    store = migrated_store
    held = HeldRefresh(store)
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 26, segment_bytes=1 << 20)
    wal.open()
    writer = LedgerWriter(wal, held, IngestMetrics(), max_rows=1000, max_delay=0.05)
    writer.start()
    calls = make_calls(40)
    wal.append(*encode_record(calls[:20], []))
    held.entered.wait(30)  # the refresher took the first rows ...
    wal.append(*encode_record(calls[20:], []))  # ... and while it runs, the writer goes on
    wait_until(lambda: count(store, "SELECT count() FROM v_calls") == 40)
    assert wal.pending_bytes == 0
    assert count(store, "SELECT count() FROM v_context_costs") == 0  # the refresh is still held
    held.gate.set()
    assert writer.stop(30)
    assert count(store, "SELECT sum(calls) FROM v_context_costs") == 40
    assert count(store, "SELECT sum(calls) FROM v_cost_hourly") == 40
    wal.close()


def test_a_refresh_that_does_not_end_does_not_hold_the_stop(tmp_path: Path, migrated_store: Store) -> None:
    """Stop drains the log and waits for the last refresh until its deadline, not longer; what the
    refresh did not finish is recomputed at the next start (the store's refresh watermark)."""
    store = migrated_store
    held = HeldRefresh(store)
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 26, segment_bytes=1 << 20)
    wal.open()
    writer = LedgerWriter(wal, held, IngestMetrics(), max_rows=1000, max_delay=0.05)
    writer.start()
    wal.append(*encode_record(make_calls(10), []))
    held.entered.wait(30)
    assert writer.stop(0.2)  # the log is empty; the refresh is still held at its gate
    assert count(store, "SELECT count() FROM v_calls") == 10
    assert not writer.refresher.stop(0)
    held.gate.set()
    assert writer.refresher.stop(30)
    assert count(store, "SELECT sum(calls) FROM v_context_costs") == 10
    wal.close()


class NotedRefresh(HeldRefresh):
    """A real `Store` that notes each refresh it is asked for: the CPU priority (nice value) of the
    thread that runs it, and whether it takes the hourly roll-ups."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.gate.set()
        self.priorities: list[int] = []
        self.hourly: list[bool] = []

    def refresh_aggregates(self, *, hourly: bool = True) -> int:
        self.priorities.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        self.hourly.append(hourly)
        return super().refresh_aggregates(hourly=hourly)


@pytest.mark.skipif(sys.platform != "linux", reason="a nice value per thread is Linux's")
def test_the_refresh_thread_runs_at_a_lower_priority_and_no_other_thread_does(
    tmp_path: Path, migrated_store: Store
) -> None:
    store = migrated_store
    noted = NotedRefresh(store)
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 26, segment_bytes=1 << 20)
    wal.open()
    writer = LedgerWriter(
        wal, noted, IngestMetrics(), max_rows=1000, max_delay=0.05, refresh=RefreshConfig(nice=7)
    )
    writer.start()
    wal.append(*encode_record(make_calls(10), []))
    assert writer.stop(30)
    assert noted.priorities and set(noted.priorities) == {min(base + 7, 19)}
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base  # the caller's is kept
    assert os.getpriority(os.PRIO_PROCESS, os.getpid()) == base  # and the process's main thread's
    assert count(store, "SELECT sum(calls) FROM v_context_costs") == 10
    wal.close()


def test_lowering_the_priority_touches_the_calling_thread_only() -> None:
    base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[tuple[bool, int]] = []

    def lower() -> None:
        lowered = lower_thread_priority(3)
        seen.append((lowered, os.getpriority(os.PRIO_PROCESS, threading.get_native_id())))

    thread = threading.Thread(target=lower)
    thread.start()
    thread.join()
    if sys.platform == "linux":
        assert seen == [(True, min(base + 3, 19))]
    else:
        assert seen == [(False, base)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == base


def test_the_refresh_waits_its_configured_intervals(tmp_path: Path, migrated_store: Store) -> None:
    """``storage.refresh.interval`` and ``hourly_interval``: after a refresh, rows written meanwhile
    wait for the next one (the stop refreshes what is left, roll-ups included)."""
    store = migrated_store
    noted = NotedRefresh(store)
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 26, segment_bytes=1 << 20)
    wal.open()
    longer = time.monotonic() + 3600.0  # than the host's uptime too: the first refresh is still due at once
    refresh = RefreshConfig(interval=longer, hourly_interval=longer)
    writer = LedgerWriter(wal, noted, IngestMetrics(), max_rows=1000, max_delay=0.05, refresh=refresh)
    writer.start()
    calls = make_calls(20)
    wal.append(*encode_record(calls[:10], []))
    wait_until(lambda: writer.refresher.refreshes == 1)  # the first rows: refreshed at once
    wal.append(*encode_record(calls[10:], []))
    wait_until(lambda: count(store, "SELECT count() FROM v_calls") == 20)
    time.sleep(1.5)  # past the default interval (1 s): with this one, no refresh yet
    assert writer.refresher.refreshes == 1
    assert count(store, "SELECT sum(calls) FROM v_context_costs") == 10
    assert writer.stop(30)
    assert noted.hourly == [True, True]
    assert count(store, "SELECT sum(calls) FROM v_context_costs") == 20
    assert count(store, "SELECT sum(calls) FROM v_cost_hourly") == 20
    wal.close()
