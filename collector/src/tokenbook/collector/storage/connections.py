"""The store's connections besides the writer's: opened on demand, lent to one caller at a time.

One connection runs one statement at a time: clickhouse-connect's chDB backend holds a lock per
connection (each is its own chDB session on the one engine), and a server's HTTP client is used the
same way. So that the writer's inserts never wait behind a read, the store keeps its own connection
for inserts and lends these to everything else (user queries, the aggregate refresh and decision
pass, budget reads): `ConnectionPool.lend` gives an idle connection or opens a new one, and takes it
back afterwards (at most `keep` idle ones are kept; the others are closed). A connection on which a
statement failed is closed rather than reused: a failure can leave session state behind (the chDB
backend applies some settings with ``SET`` and restores them afterwards, which ``readonly=1`` refuses).
The callers bound how many are in use at once (the admin API's query slots, one refresh at a time).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["ConnectionPool", "PoolClosed"]


class PoolClosed(RuntimeError):
    """The store was closed: no connection is lent any more."""


class ConnectionPool:
    """Connections made by `connect()` (clickhouse-connect clients), lent one caller at a time."""

    def __init__(self, connect: Callable[[], Any], *, keep: int = 8) -> None:
        """`connect()` opens one connection (its errors reach the caller of `lend`); `keep`: idle ones
        kept open for reuse."""
        self._connect = connect
        self._keep = keep
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._database: str | None = None
        self._closed = False
        self.in_use = 0

    @contextmanager
    def lend(self) -> Iterator[Any]:
        """A connection for the caller alone until the block ends; `PoolClosed` after `close`."""
        with self._lock:
            if self._closed:
                raise PoolClosed("the store is closed")
            client = self._idle.pop() if self._idle else None
            database = self._database
            self.in_use += 1
        try:
            if client is None:
                client = self._connect()
            if database is not None and client.database != database:
                client.database = database
        except BaseException:
            with self._lock:
                self.in_use -= 1
            raise
        failed = True
        try:
            yield client
            failed = False
        finally:
            with self._lock:
                self.in_use -= 1
                keep = not (failed or self._closed) and len(self._idle) < self._keep
                if keep:
                    self._idle.append(client)
            if not keep:
                client.close()

    def use_database(self, database: str) -> None:
        """Make unqualified table names of every connection resolve to `database` from now on."""
        with self._lock:
            self._database = database
            for client in self._idle:
                client.database = database

    def close(self) -> None:
        """Close the idle connections; one in use is closed when it comes back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for client in idle:
            client.close()
