"""The collector's start path without its store: readiness, the store stand-in, and budget counting.

Calls accepted before the store is up are counted once when the counters are rebuilt: held in memory
(with the log's replayed calls), or re-read from the log when too many to hold, and never also passed
to `observe`. (The process-level behaviour is `tests/collector/storage/test_server_startup.py`.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.collector.budgets.budget_rows import call, inside_the_day
from tokenbook.collector import service
from tokenbook.collector.config import load_config
from tokenbook.collector.ingest.deferred import PendingSpans
from tokenbook.collector.service import Collector
from tokenbook.collector.storage.store import StoreUnavailable

NOW = inside_the_day()


class _Budgets:
    def __init__(self) -> None:
        self.started: list[Any] | None = None
        self.observed: list[Any] = []

    def start(self, source: Any, pending: Sequence[Any] = ()) -> None:
        self.started = list(pending)

    def observe(self, calls: Sequence[Any]) -> None:
        self.observed.extend(calls)


class _Log:
    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls

    def pending(self, decode: Any) -> Iterator[PendingSpans]:
        yield PendingSpans([], self.calls)


def _collector(tmp_path: Path) -> tuple[Collector, _Budgets]:
    c = Collector(load_config(None, data_dir=str(tmp_path / "data")))
    budgets = _Budgets()
    c.budgets = budgets  # type: ignore[assignment]
    c._count_budgets = True
    return c, budgets


def test_calls_accepted_before_the_store_is_up_are_counted_once(tmp_path: Path) -> None:
    c, budgets = _collector(tmp_path)
    c.wal = _Log([])  # type: ignore[assignment]
    c._replayed = ["replayed"]  # type: ignore[list-item]
    c._observe(["early-1", "early-2"])  # type: ignore[list-item]
    assert budgets.observed == [] and budgets.started is None
    c._start_budgets(store=object())
    assert budgets.started == ["replayed", "early-1", "early-2"]
    c._observe(["late"])  # type: ignore[list-item]
    assert budgets.observed == ["late"]


def test_calls_accepted_during_the_rebuild_neither_wait_for_it_nor_count_twice(tmp_path: Path) -> None:
    """The rebuild reads the ledger (long on a big one): an accepted call is held meanwhile, not
    blocked behind it (with `ack: built` the receivers count before they answer), then counted once."""
    c, budgets = _collector(tmp_path)
    c.wal = _Log([])  # type: ignore[assignment]
    c._observe(["early"])  # type: ignore[list-item]
    during: list[bool] = []

    def rebuild(source: Any, pending: Sequence[Any] = ()) -> None:
        budgets.started = list(pending)
        accept = threading.Thread(target=c._observe, args=(["during"],))
        accept.start()
        accept.join(5)
        during.append(not accept.is_alive())

    budgets.start = rebuild  # type: ignore[method-assign]
    c._start_budgets(store=object())
    assert during == [True]  # not blocked by the rebuild
    assert budgets.started == ["early"] and budgets.observed == ["during"]
    c._observe(["late"])  # type: ignore[list-item]
    assert budgets.observed == ["during", "late"]


def test_an_overflow_during_the_rebuild_reads_the_log_again_without_what_the_rebuild_had(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "_BUDGET_BUFFER", 2)
    c, budgets = _collector(tmp_path)
    replayed, early, *during = [call(NOW, f"{i:016x}") for i in range(6)]
    log = _Log([replayed, early])
    c.wal = log  # type: ignore[assignment]
    c._replayed = [replayed]
    c._observe([early])

    def rebuild(source: Any, pending: Sequence[Any] = ()) -> None:
        budgets.started = list(pending)
        log.calls.extend(during)  # accepted and logged during the rebuild: more than the buffer holds
        for accepted in during:
            c._observe([accepted])
        assert c._budget_overflow

    budgets.start = rebuild  # type: ignore[method-assign]
    c._start_budgets(store=object())
    assert budgets.started == [replayed, early]
    assert budgets.observed == during  # each call once: the rebuild's are not counted again


def test_beyond_the_buffer_the_log_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "_BUDGET_BUFFER", 2)
    c, budgets = _collector(tmp_path)
    c.wal = _Log(["replayed", "a", "b", "c"])  # type: ignore[assignment]
    c._replayed = ["replayed"]  # type: ignore[list-item]
    for accepted in ("a", "b", "c"):
        c._observe([accepted])  # type: ignore[list-item]
    assert c._budget_overflow and c._budget_buffer == []
    c._start_budgets(store=object())
    assert budgets.started == ["replayed", "a", "b", "c"]
    assert budgets.observed == []


def test_without_budgets_nothing_is_held(tmp_path: Path) -> None:
    c, budgets = _collector(tmp_path)
    c._count_budgets = False
    c._observe(["x"])  # type: ignore[list-item]
    assert c._budget_buffer == [] and budgets.observed == []


def test_readiness_and_queries_name_the_reason_until_the_store_is_up(tmp_path: Path) -> None:
    c, _ = _collector(tmp_path)
    problem = "cannot open http://default@127.0.0.1:9: Connection refused"
    c._waiting(StoreUnavailable(problem))
    ready, reason = c._ready()
    assert not ready
    assert reason == f"storage unreachable: {problem}; retrying"
    with pytest.raises(StoreUnavailable, match="storage unreachable"):
        c._handle.query_readonly("SELECT 1")
    assert c._handle.database == "tokenbook"
    c._waiting(RuntimeError("Code: 60. table missing"))
    assert c._ready()[1].startswith("storage not ready: Code: 60.")
