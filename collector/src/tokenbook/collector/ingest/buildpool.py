"""Worker processes that turn logged requests into rows, behind the acknowledgement.

``receivers.otlp.build_processes`` children (``python -m tokenbook.collector.ingest.buildpool``; 0: one
per core) each run a `deferred.LoggedBuilder` (decode, normalize, classify, price, encode the row
blocks). The writer submits the logged requests it reads (`BuildPool.submit`, a `Future` of
`deferred.Built`) and waits for them in log order, so several records are built at once on as many
cores.

Contracts:

* A result is what `LoggedBuilder.build` returns in-process for the same record.
* A record that cannot be built (the builder raises) fails its future with `PoisonRecord`; so does
  one that kills its worker twice (a dead worker is replaced and the record tried once more). The
  writer sets a poison record aside; it never blocks the log.
* While no worker runs (none could start, or after `stop`), records are built in the calling thread;
  the calling process loads its price catalog only then (`pricing.LazyCatalog`).
* `reload()` replaces the workers (a new price override file is read by the new ones).
* Workers run at a lower CPU priority (``receivers.otlp.build_nice``, the Linux nice increment): when
  the cores are busy, the decoding an exporter's answer waits for, and the applications on the host,
  go first; the log holds what the workers have not built yet.

Frames: collector -> worker ``<u32 length><payload>`` (the first frame is the JSON configuration, then
logged payloads); worker -> collector ``<u32 length><marshal of Built.wire() or (None, message)>``.
"""

from __future__ import annotations

import json
import logging
import marshal
import os
import queue
import signal
import struct
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from tokenbook.collector import gc_settings
from tokenbook.collector.childproc import REPLY, ChildDied, PipeChild
from tokenbook.collector.ingest.deferred import (
    Built,
    LoggedBuilder,
    unbounded_in_time,
)
from tokenbook.collector.ingest.pricing import LazyCatalog
from tokenbook.collector.ingest.rows import RowBuilder, SpanBounds
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.wal.requests import LoggedRequest, decode_logged, encode_logged
from tokenbook.genai import semconv
from tokenbook.genai.pricing.books import PriceBooks
from tokenbook.genai.redaction import Redactor

__all__ = ["BuildPool", "BuildSettings", "PoisonRecord", "serve"]

_log = logging.getLogger(__name__)
_FRAME: Final = struct.Struct("<I")


class PoisonRecord(RuntimeError):
    """A logged record that cannot be built into rows (set aside by the writer)."""


@dataclass(frozen=True, slots=True)
class BuildSettings:
    """What a worker needs to build rows as the collector would."""

    bounds: SpanBounds
    extra_keys: Sequence[str] = ()
    content: str = "drop"
    salt: str = ""
    overrides: Path | None = None
    books: Path | None = None
    policy_key: str = semconv.TB.POLICY_PATH
    nice: int = 0  # the workers' nice increment: rows are built at a lower CPU priority than the answer

    def builder(self, *, lazy: bool = False) -> LoggedBuilder:
        """A `LoggedBuilder` with these settings (no time window: it was applied at the answer); `lazy`:
        its price catalog is built at its first price (`LazyCatalog`: the collector's own fallback)."""
        catalog = LazyCatalog(self.overrides)
        rows = RowBuilder(
            catalog if lazy else catalog.get(),
            books=PriceBooks(self.books),
            policy_key=self.policy_key,
            extra_keys=self.extra_keys,
            content=self.content,
            salt=self.salt,
            bounds=unbounded_in_time(self.bounds),
        )
        if rows.redactor is not None:  # the decoder redacted the content before it was logged
            rows.redactor = Redactor("keep")
        return LoggedBuilder(rows)

    def to_json(self) -> bytes:
        """The configuration frame."""
        b = self.bounds
        return json.dumps({
            "bounds": [b.max_tokens_per_call, b.max_span_age, b.max_span_future],
            "extra_keys": list(self.extra_keys),
            "content": self.content,
            "salt": self.salt,
            "overrides": None if self.overrides is None else str(self.overrides),
            "books": None if self.books is None else str(self.books),
            "policy_key": self.policy_key,
            "nice": self.nice,
        }).encode()  # fmt: skip

    @classmethod
    def from_json(cls, body: bytes) -> BuildSettings:
        """Inverse of `to_json`."""
        doc = json.loads(body)
        return cls(
            SpanBounds(*doc["bounds"]),
            tuple(doc["extra_keys"]),
            doc["content"],
            doc["salt"],
            None if doc["overrides"] is None else Path(doc["overrides"]),
            None if doc["books"] is None else Path(doc["books"]),
            doc["policy_key"],
            doc["nice"],
        )


class _Worker(PipeChild):
    """One worker process, driven by one thread of the pool."""

    def __init__(self, settings: BuildSettings) -> None:
        super().__init__("tokenbook.collector.ingest.buildpool", "row-building process")
        body = settings.to_json()
        self._send(_FRAME.pack(len(body)), body)

    def build(self, payload: bytes) -> Built:
        """The rows of one logged payload; `PoisonRecord` if the worker could not build them."""
        doc = marshal.loads(self._request(_FRAME.pack(len(payload)), payload))
        if doc[0] is None:
            raise PoisonRecord(doc[2])
        return Built.from_wire(doc)


_STOP: Final[Any] = object()


class BuildPool:
    """`size` worker processes (0: one per core); thread-safe `submit`."""

    def __init__(self, settings: BuildSettings, size: int, metrics: IngestMetrics | None = None) -> None:
        """Replacements of dead workers are counted in `metrics` (``decoder_restarts``)."""
        self.settings = settings
        self.size = size or os.cpu_count() or 1
        self.metrics = metrics if metrics is not None else IngestMetrics()
        self.local = settings.builder(lazy=True)  # in-process fallback: priced when first used
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._live = 0
        self._generation = 0
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Start the workers (in the background: until one runs, records are built in-process)."""
        for i in range(self.size):
            t = threading.Thread(target=self._serve, name=f"tokenbook-build-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        """Stop the workers; later records are built in the calling thread."""
        with self._lock:
            self._stopped = True
        for _ in self._threads:
            self._jobs.put(_STOP)
        for t in self._threads:
            t.join(10)

    def reload(self) -> None:
        """Replace the workers before their next record (e.g. after the price overrides changed)."""
        self.local = self.settings.builder(lazy=True)
        with self._lock:
            self._generation += 1

    def submit(self, request: LoggedRequest) -> Future[Built]:
        """Build `request` on a worker; the future fails with `PoisonRecord` for a poison record."""
        future: Future[Built] = Future()
        with self._lock:
            pooled = self._live > 0 and not self._stopped
        if pooled:
            self._jobs.put((request, future))
        else:
            self._build_here(request, future)
        return future

    def _build_here(self, request: LoggedRequest, future: Future[Built]) -> None:
        try:
            future.set_result(self.local.build(request))
        except Exception as exc:  # noqa: BLE001 - any failure to build is a poison record
            future.set_exception(PoisonRecord(f"{type(exc).__name__}: {exc}"))

    def _spawn(self) -> _Worker | None:
        try:
            return _Worker(self.settings)
        except OSError as exc:
            _log.error("cannot start a row-building process (%s); building in the writer", exc)
            return None

    def _serve(self) -> None:
        worker = self._spawn()
        if worker is None:
            return
        generation = self._generation
        with self._lock:
            self._live += 1
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    return
                request, future = job
                try:
                    if generation != self._generation:
                        worker.close()
                        worker, generation = _Worker(self.settings), self._generation
                    worker = self._run(worker, request, future)
                except OSError as exc:  # no replacement worker: build here
                    _log.error("cannot start a row-building process (%s)", exc)
                    if not future.done():
                        self._build_here(request, future)
                    return
        finally:
            with self._lock:
                self._live -= 1
            worker.close()
            self._drain_here()

    def _drain_here(self) -> None:
        """Jobs queued while the last worker stopped: built here."""
        with self._lock:
            if self._live:
                return
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not _STOP:
                self._build_here(*job)

    def _run(self, worker: _Worker, request: LoggedRequest, future: Future[Built]) -> _Worker:
        payload = encode_logged(request)
        for attempt in (1, 2):
            try:
                future.set_result(worker.build(payload))
                return worker
            except PoisonRecord as exc:
                future.set_exception(exc)
                return worker
            except ChildDied as exc:
                _log.error("row-building process %d died (%s); starting another", worker.proc.pid, exc)
                self.metrics.add(decoder_restarts=1)
                worker.close()
                worker = _Worker(self.settings)  # OSError: this thread ends, the others go on
                if attempt == 2:
                    future.set_exception(PoisonRecord("the record killed a row-building process twice"))
        return worker


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker's loop: a configuration frame, then one reply per logged payload, until EOF."""
    builder: LoggedBuilder | None = None
    while len(header := stdin.read(_FRAME.size)) == _FRAME.size:
        (length,) = _FRAME.unpack(header)
        body = stdin.read(length)
        if len(body) != length:
            return
        if builder is None:
            settings = BuildSettings.from_json(body)
            builder = settings.builder()
            if settings.nice:
                os.nice(settings.nice)
            gc_settings.settle()  # the catalog and price books, loaded once: never traversed again
            continue
        try:
            request = decode_logged(body)
            if request is None:
                raise ValueError("not a logged request")
            reply = marshal.dumps(builder.build(request).wire())
        except Exception as exc:  # noqa: BLE001 - reported to the collector as a poison record
            reply = marshal.dumps((None, 0, f"{type(exc).__name__}: {exc}"))
        stdout.write(REPLY.pack(len(reply)))
        stdout.write(reply)
        stdout.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the collector drains, then closes stdin
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)
