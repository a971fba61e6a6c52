"""The collector process: `tokenbook collector` wires config, store, log, writer, receivers and admin API.

Start order: claim the data directory (one owner per chDB directory), open the write-ahead log (its
undelivered records are replayed by the writer), warm the dedup memory from the log, then open the
store (`_open_store`: open and migrate it, read the refresh watermark) and attach it
(`_attach_store`: rebuild the budget counters from the ledger and the log, start the writer), then
start the receivers and the admin API (so a ``/healthz`` answer means the receivers serve); then log
ONE structured start line (endpoints, store; no secrets). With budgets configured, the counters'
rebuild reads every quota's window of the ledger, which grows with the ledger, so the store is
attached after the receivers and the admin API are up, on a background thread
(`_attach_when_serving`): meanwhile requests are acknowledged into the log, as during a storage
outage, ``/readyz`` answers 503 (``starting: the budget counters are being rebuilt ...``), the
reservation and budget-state endpoints answer 503 with ``Retry-After``, and admin queries read the
store. What grows with the traffic of the last hours runs after the attach, on one background thread
(`_catch_up`), each in slices bounded in memory: warm the dedup memory from the spans ingested in the
last ``dedup.warm_hours`` (at most ``dedup.max_keys`` keys, newest first; a span it does not know yet
is stored once all the same, and the budget counters check the ledger before counting it), then
recompute the aggregates and billing decisions of what was ingested after the refresh watermark (a
crash between an insert and its refresh; nothing after a clean stop; without a watermark, the last
``dedup.warm_hours``). Each logs one line when done. Every ``telemetry.summary_interval`` seconds ONE
summary line gives the counters of the interval.

A ClickHouse server (``storage.clickhouse.url``) that cannot be reached at start does not stop the
collector: the receivers and the log come up without it, requests are acknowledged into the log as
during any storage outage, ``/readyz`` answers 503 (``storage unreachable: ...; retrying``), and a
background thread (`_connect_until_up`) retries bringing up the store with backoff (0.5 s doubling to
10 s). Once it succeeds the writer drains the log and ``/readyz`` turns 200. Calls accepted before the
counters are rebuilt are counted once when they are (held in memory up to `_BUDGET_BUFFER` calls,
re-read from the log beyond that). The embedded store is opened synchronously: a failure to open it
still fails the start.

Stop order (SIGTERM or SIGINT): refuse new admin queries and cancel the running ones, stop the
receivers (in-flight requests finish, 5 s at most), wait for in-flight ingests (10 s at most), drain
the log into storage and refresh the aggregates (``drain_timeout``, 30 s, at most; what is left stays
in the log, and stale aggregates are recomputed, at the next start), stop the budgets (alerts still
queued: 10 s at most) and the admin API (5 s), close the log and the store, release the directory.
A stop therefore takes about a minute at the very most, and a few seconds when nothing is slow.
Exit code 0; 2 for a bad config.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from tokenbook.collector import gc_settings
from tokenbook.collector.admin import AdminServer
from tokenbook.collector.budgets import BudgetRuntime
from tokenbook.collector.config import CollectorConfig
from tokenbook.collector.decode.content import LogContent
from tokenbook.collector.decode.pool import DecoderPool
from tokenbook.collector.ingest.buildpool import BuildPool, BuildSettings
from tokenbook.collector.ingest.dedup import RecentSpanKeys
from tokenbook.collector.ingest.deferred import pending_spans
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.pricing import LazyCatalog
from tokenbook.collector.ingest.rows import RowBuilder, SpanBounds, pipeline_keys
from tokenbook.collector.limits import raise_open_files_limit
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.receive import GrpcReceiver, HttpReceiver
from tokenbook.collector.storage import owner
from tokenbook.collector.storage.engine import tune_heap
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.reprice import RepriceResult, reprice
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.collector.wal.writer import LedgerWriter
from tokenbook.genai.billing import UNBILLED_STATUSES
from tokenbook.genai.pricing.books import PriceBooks

__all__ = ["Collector", "JsonLogFormatter"]

_log = logging.getLogger("tokenbook.collector")
_SWITCH_INTERVAL_S = 0.001  # seconds; CPython's default is 0.005
_DRAIN_TIMEOUT = 30.0
_CONNECT_BACKOFF_MIN = 0.5  # seconds between attempts to reach the store at start, doubling ...
_CONNECT_BACKOFF_MAX = 10.0  # ... up to this
_BRING_UP_JOIN_TIMEOUT = 15.0  # a bring-up in progress at stop: a connect times out in 10 s
_BUDGET_BUFFER = 200_000  # calls held for the budget rebuild while the store is not up
_WATERMARK_FILE = "refresh-watermark.json"  # in the data directory (Store.track_refresh)
_RECOVER_HOURLY_S = 60.0  # seconds between recomputations of the hourly roll-ups during the recovery
#: /readyz while the budget counters are rebuilt after the receivers came up
_REBUILDING = (
    "starting: the budget counters are being rebuilt from the ledger; requests are acknowledged into "
    "the write-ahead log meanwhile"
)


class _OpenedStore(NamedTuple):
    """A store opened and migrated (`Collector._open_store`), not yet written to."""

    store: Any
    recover_since: datetime | None  # the aggregates of rows ingested since then are recomputed


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, plus the record's ``fields`` extra."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object per line: time, level, logger, message and the record's ``fields``."""
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class _StepClock:
    """Seconds each step of a sequence took (`done(step)` at the end of each), for a log line."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}
        self._mark = time.monotonic()

    def done(self, step: str) -> None:
        """`step` ended now: record the seconds since the previous step ended."""
        now = time.monotonic()
        self.steps[step] = round(now - self._mark, 3)
        self._mark = now


class _StoreHandle:
    """The store as the admin API and alert delivery see it: the real `Store` once it is up; before,
    every use raises `StoreUnavailable` with the reason (so a query answers 400 with it)."""

    def __init__(self, database: str) -> None:
        self.database = database
        self.store: Any = None
        self.reason = "storage is not connected yet"

    def __getattr__(self, name: str) -> Any:
        store = self.__dict__.get("store")
        if store is None:
            from tokenbook.collector.storage.store import StoreUnavailable

            raise StoreUnavailable(self.__dict__.get("reason", "storage is not connected yet"))
        return getattr(store, name)


class Collector:
    """One collector: `start()`, then `stop()`. Not restartable."""

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config
        self.metrics = IngestMetrics()
        self._stopped = threading.Event()
        self._summary_thread: threading.Thread | None = None
        self.store: Any = None
        self.wal: WriteAheadLog | None = None
        self.writer: LedgerWriter | None = None
        self.admin: AdminServer | None = None
        self.grpc: GrpcReceiver | None = None
        self.http: HttpReceiver | None = None
        self.ingestor: Ingestor | None = None
        self.decoders: DecoderPool | None = None
        self.builds: BuildPool | None = None
        self.budgets: BudgetRuntime | None = None
        self._owned = False
        self._handle: Any = _StoreHandle(config.clickhouse.database)  # stands in for a `Store`
        self._dedup = RecentSpanKeys(config.dedup.max_keys)
        self._store_problem: str | None = None  # why the store is not up yet (None: up, or not tried)
        self._up_lock = threading.Lock()  # the store's bring-up vs `stop`
        # brings up the store once the receivers serve: retries a server, or rebuilds the budgets
        self._bring_up_thread: threading.Thread | None = None
        self._serving = threading.Event()  # the receivers and the admin API are up
        # Budgets: calls accepted before the counters are rebuilt, replayed calls of the log.
        self._budget_lock = threading.Lock()
        self._count_budgets = config.budgets.enabled
        self._budgets_live = False
        self._budget_buffer: list[CallRow] = []
        self._budget_overflow = False  # more than `_BUDGET_BUFFER` calls: re-read the log instead
        self._replayed: list[CallRow] = []
        self._start_clock = _StepClock()  # the seconds of each start step, for the start line

    def start(self) -> None:
        """Start in the module's order (log, store, writer, receivers, admin API) and log the start line.

        Raises OSError (a port in use), `StoreError` (the embedded store cannot be opened, or a server's
        schema cannot be migrated) or `DirectoryOwned`; call `stop` after a failure. A server that
        cannot be reached is not an error: the collector starts without it and keeps retrying.
        """
        from tokenbook.collector.storage.store import StoreUnavailable

        cfg = self.config
        started = time.monotonic()
        clock = self._start_clock
        tune_heap(cfg.heap.tuning())  # before the threads: each may start an arena of its own
        open_files = raise_open_files_limit()  # before the first connection
        data_dir = cfg.clickhouse.data_dir.resolve()
        if cfg.clickhouse.url is None:
            owner.claim(data_dir, cfg.admin.endpoint)
            self._owned = True
        self.wal = WriteAheadLog(
            cfg.spool.dir,
            max_bytes=cfg.spool.max_bytes,
            segment_bytes=cfg.spool.segment_bytes,
            memory_bytes=cfg.spool.memory_bytes,
            on_corrupt=self.metrics.add,
        )
        replay_bytes = self.wal.open()
        self.metrics.spooled_bytes = lambda: self.wal.pending_bytes if self.wal is not None else 0
        keys = replace(
            pipeline_keys(cfg.extra_attribution_keys, cfg.privacy.content, cfg.attribution.policy_path_key),
            limits=cfg.limits.attributes,
        )
        dedup = self._dedup
        self._warm_from_log(dedup)
        clock.done("log")
        # A server may be shared by several collectors: their budgets reconcile with its ledger.
        self.budgets = BudgetRuntime(
            cfg.budgets,
            self._handle,
            reconcile=cfg.reconcile,
            fleet=cfg.clickhouse.url is not None,
            write_delay=cfg.batch.max_delay,
        )
        salt = cfg.privacy.salt.reveal() if cfg.privacy.salt is not None else ""
        bounds = SpanBounds(
            cfg.limits.max_tokens_per_call, cfg.limits.max_span_age, cfg.limits.max_span_future
        )
        # Rows are built (and priced) in this process only with `ack: built`, or while no build worker
        # runs: the catalog is built then (`LazyCatalog`), and at once with `ack: built`.
        catalog = LazyCatalog(cfg.pricing_overrides)
        if cfg.ack == "built":
            catalog.get()
        self.builder = builder = RowBuilder(
            catalog,
            books=PriceBooks(cfg.pricing.books),
            extra_keys=cfg.extra_attribution_keys,
            content=cfg.privacy.content,
            salt=salt,
            bounds=bounds,
            policy_key=cfg.attribution.policy_path_key,
        )
        # Row building behind the answer (`receivers.otlp.ack: logged`): worker processes fed by the
        # writer; also used to build logged requests found in the log at start, whatever `ack` is now.
        self.builds = BuildPool(
            BuildSettings(
                bounds,
                cfg.extra_attribution_keys,
                cfg.privacy.content,
                salt,
                cfg.pricing_overrides,
                cfg.pricing.books,
                cfg.attribution.policy_path_key,
                cfg.build_nice,
            ),
            cfg.build_processes if cfg.ack == "logged" else 1,
            self.metrics,
        )
        self.builds.start()
        self.decoders = DecoderPool(
            keys, cfg.decode_processes, self.metrics, content=LogContent(cfg.privacy.content, salt)
        )
        self.decoders.start()
        clock.done("pipeline")
        # Before the writer: it tells the ingestor of each logged request it builds (`Ingestor.built`).
        self.ingestor = Ingestor(
            builder,
            self.decoders,
            dedup,
            self.wal,
            self.metrics,
            max_inflight_spans=cfg.max_inflight_spans,
            max_inflight_bytes=cfg.max_inflight_bytes,
            storage_up=self._storage_up,
            on_calls=self._observe,
            rate_limiter=cfg.limits.rate_limiter(),
            on_unsure_calls=self.budgets.defer,
            deferred=cfg.ack == "logged",
            counting=self._counting,
        )
        try:
            opened = self._open_store()
        except StoreUnavailable as exc:
            if cfg.clickhouse.url is None:
                raise  # the embedded store is a directory: retrying does not help
            self._waiting(exc)
            self._bring_up_thread = threading.Thread(
                target=self._connect_until_up, name="tokenbook-store-connect", daemon=True
            )
        else:
            if self._count_budgets:  # the counters' rebuild reads the ledger: once the receivers serve
                self._store_problem = _REBUILDING
                self._bring_up_thread = threading.Thread(
                    target=self._attach_when_serving, args=(opened,), name="tokenbook-budgets-rebuild",
                    daemon=True,
                )  # fmt: skip
            else:
                self._attach_store(opened, clock)
        clock.done("writer")
        self.grpc = GrpcReceiver(
            self.ingestor,
            cfg.grpc.endpoint,
            max_request_bytes=cfg.grpc.max_request_bytes,
            tls=cfg.grpc.tls,
            tokens=cfg.auth,
            max_concurrent_rpcs=cfg.limits.max_connections,
            idle_timeout=cfg.limits.grpc_idle_timeout,
        )
        self.http = HttpReceiver(
            self.ingestor,
            cfg.http.endpoint,
            max_request_bytes=cfg.http.max_request_bytes,
            tls=cfg.http.tls,
            tokens=cfg.auth,
            limits=cfg.limits,
        )
        self.grpc.start()
        self.http.start()
        self.admin = AdminServer(
            cfg.admin,
            self._handle,
            self.metrics,
            ready=self._ready,
            budgets=self.budgets,
            tokens=cfg.auth,
            limits=cfg.limits,
            reprice=self._reprice,
            on_reconcile=self.budgets.check_drift,
        )
        self.admin.start()  # last: once /healthz answers, the receivers serve
        clock.done("serve")
        released = self._release_startup_pages()
        self._serving.set()  # the warm-up and the recovery may begin (`_catch_up`)
        if self._bring_up_thread is not None:
            self._bring_up_thread.start()
        # Start-up objects (protobuf descriptors, chDB bindings, the catalog with `ack: built`) never
        # die: kept out of every collection, and the young generation collected per ~50k allocations
        # instead of 700 (the hot path allocates no reference cycles): ~25% less CPU at full load.
        gc_settings.settle()
        # A receiver thread back from an fsync or a decoder process waits for the GIL up to the switch
        # interval before it can answer; 1 ms instead of 5 took 512-span requests from 26.5k to 31k
        # spans/s (bench/collector_throughput.py --batch 512), and 2000-span ones did not get slower.
        sys.setswitchinterval(_SWITCH_INTERVAL_S)
        self._summary_thread = threading.Thread(target=self._summaries, name="tokenbook-summary", daemon=True)
        self._summary_thread.start()
        _log.info(
            "collector started",
            extra={
                "fields": {
                    "otlp_grpc": cfg.grpc.endpoint,
                    "otlp_http": f"{'https' if cfg.http.tls else 'http'}://{cfg.http.endpoint}/v1/traces",
                    "admin": f"{'https' if cfg.admin.tls else 'http'}://{cfg.admin.endpoint}",
                    "store": cfg.clickhouse.describe(),
                    "spool": str(cfg.spool.dir),
                    "replay_bytes": replay_bytes,
                    "storage": "connected" if self._handle.store is not None else "waiting",
                    "dedup_warm_keys": len(dedup),
                    "content": cfg.privacy.content,
                    "decode_processes": cfg.decode_processes,
                    "auth": f"{len(cfg.auth)} tokens" if cfg.auth is not None else "off",
                    "tls": {
                        "grpc": cfg.grpc.tls is not None,
                        "http": cfg.http.tls is not None,
                        "admin": cfg.admin.tls is not None,
                    },
                    "open_files_limit": open_files,
                    "startup_s": round(time.monotonic() - started, 3),
                    "startup_steps_s": clock.steps,
                    "engine_pages_released_mib": released,
                }
            },
        )

    def _release_startup_pages(self) -> float | None:
        """The embedded engine's library pages that only its start-up read go back to the kernel
        (``storage.clickhouse.engine.release_startup_pages``): the MiB advised, or None (not done)."""
        store = self._handle.store
        if not self.config.clickhouse.engine.release_startup_pages or store is None or not store.embedded:
            return None
        from tokenbook.collector.storage.engine import release_startup_pages

        released = release_startup_pages()
        return round(released.bytes / 2**20, 1)

    def _on_decisions(self, changes: Sequence[tuple[CallRow, CallRow]]) -> None:
        """The store re-decided which span bills some calls: count it, and move the budget counters."""
        unbilled = sum(1 for before, after in changes if _unbilled(after) and not _unbilled(before))
        self.metrics.add(unbilled_calls=unbilled, rebilled_calls=len(changes) - unbilled)
        if self.budgets is not None:
            self.budgets.apply_decisions(changes)

    def _catch_up(self, store: Any, recover_since: datetime | None) -> None:
        """Once the receivers serve: warm the dedup memory from storage, then recompute the aggregates
        of the rows ingested since `recover_since` (None: nothing), each in bounded slices."""
        self._serving.wait()
        if self._stopped.is_set():
            return
        if self.config.dedup.warm_hours > 0:
            self._warm_from_store(store)
        if recover_since is not None:
            self._recover(store, recover_since)

    def _warm_from_store(self, store: Any) -> None:
        """Add the keys of the spans ingested in the last ``dedup.warm_hours`` before the start, newest
        first, until the memory is full (`RecentSpanKeys.warm`). A failure leaves the memory as it is:
        spans it does not know are still stored once, and their budget counting checks the ledger."""
        dedup = self._dedup
        started = time.monotonic()
        until = datetime.fromtimestamp(dedup.created, tz=UTC)
        since = until - timedelta(hours=self.config.dedup.warm_hours)
        slices = store.span_key_slices(since, until, dedup.generation_keys)
        try:
            added = dedup.warm(slices, stopped=self._stopped.is_set)
        except Exception as exc:  # noqa: BLE001 - the memory only saves work; exactness never needs it
            _log.error("warming the dedup memory from storage failed: %s", exc)
            return
        finally:
            slices.close()
        _log.info(
            "dedup memory warmed from storage",
            extra={"fields": {"dedup_warm_keys": added, "dedup_keys": len(dedup),
                              "dedup_known_since": datetime.fromtimestamp(dedup.horizon, tz=UTC).isoformat(),
                              "seconds": round(time.monotonic() - started, 3)}},
        )  # fmt: skip

    def _recover(self, store: Any, since: datetime) -> None:
        """Recompute the aggregates of rows ingested since `since`, retrying until it succeeds."""
        started = hourly_at = time.monotonic()
        keys = 0
        while not self._stopped.is_set():
            # The hourly roll-ups rescan whole hours: recomputed every _RECOVER_HOURLY_S, not per slice.
            hourly = time.monotonic() - hourly_at >= _RECOVER_HOURLY_S
            try:
                keys += store.refresh_aggregates(since=since, slices=1, hourly=hourly)
                if not store.recovering:
                    keys += store.refresh_aggregates()
            except Exception as exc:  # noqa: BLE001 - the store keeps what is left pending; retry
                _log.error("recomputing aggregates after restart failed (retried): %s", exc)
                self._stopped.wait(5.0)
                continue
            if hourly:
                hourly_at = time.monotonic()
            if not store.recovering:
                _log.info(
                    "aggregates recomputed after restart",
                    extra={"fields": {"since": since.isoformat(), "keys": keys,
                                      "seconds": round(time.monotonic() - started, 3)}},
                )  # fmt: skip
                return

    def _warm_from_log(self, dedup: RecentSpanKeys) -> None:
        """Remember the spans of the log's undelivered records; keep their calls for the budgets (a
        logged request's calls are counted when the writer builds them)."""
        assert self.wal is not None
        keys: list[bytes] = []
        keep = self._count_budgets
        for pending in self.wal.pending(pending_spans):
            keys.extend(pending.keys)
            if keep:
                self._replayed.extend(pending.calls)
        dedup.remember(keys)

    def _bring_up_store(self) -> None:
        """Open the store, then everything that needs it (`_open_store`, `_attach_store`).

        Raises `StoreError` (`StoreUnavailable` when the store cannot be reached); nothing is kept then.
        """
        self._attach_store(self._open_store())

    def _open_store(self) -> _OpenedStore:
        """Open and migrate the store and read its refresh watermark; the admin API's queries use it
        from now on. Raises `StoreError` (`StoreUnavailable` when it cannot be reached), closing it."""
        from tokenbook.collector.storage.store import Store  # chDB loads only when a collector starts

        cfg = self.config
        url = cfg.clickhouse.url.reveal() if cfg.clickhouse.url is not None else None
        data_dir = cfg.clickhouse.data_dir.resolve()
        reader = cfg.clickhouse.tenant_reader
        store = Store.open(
            url=url,
            data_dir=data_dir,
            database=cfg.clickhouse.database,
            tenant_reader=reader.reveal() if reader is not None else None,
            engine=cfg.clickhouse.engine,
            refresh=cfg.storage.refresh,
        )
        self._start_clock.done("engine")
        try:
            store.migrate()
            self._start_clock.done("migrations")
            # A crash between an insert and its refresh left aggregates stale: recompute (in the
            # background, with the decision pass) what was ingested after the refresh watermark;
            # nothing after a clean stop.
            refreshed = store.track_refresh(data_dir / _WATERMARK_FILE)
        except BaseException:
            store.close()
            raise
        recover_since: datetime | None = None
        if cfg.dedup.warm_hours > 0:
            recover_since = datetime.now(tz=UTC) - timedelta(hours=cfg.dedup.warm_hours)
            if refreshed is not None:
                recover_since = max(recover_since, refreshed)
        self._handle.store = store
        return _OpenedStore(store, recover_since)

    def _attach_store(self, opened: _OpenedStore, clock: _StepClock | None = None) -> None:
        """Rebuild the budget counters from the opened store, then start the writer and the catch-up
        (the rebuild's seconds as `clock`'s step ``budgets``, if given).

        The rebuild holds no lock a stop or an accepted call waits for; a store attached after the
        collector began stopping is closed, not used. Raises what the rebuild's setup raises; the store
        is closed then.
        """
        assert self.wal is not None and self.budgets is not None
        cfg = self.config
        store = opened.store
        try:
            self._start_budgets(store)  # before the writer: the counters read what the ledger holds
            if clock is not None:
                clock.done("budgets")
            with self._up_lock:
                if self._stopped.is_set():
                    store.close()
                    return
                writer = LedgerWriter(
                    self.wal,
                    store,
                    self.metrics,
                    max_rows=cfg.batch.max_rows,
                    max_bytes=cfg.batch.max_bytes,
                    max_delay=cfg.batch.max_delay,
                    builds=self.builds,
                    on_built=self.ingestor.built if self.ingestor is not None else None,
                    refresh=cfg.storage.refresh,
                )
                store.on_decisions = self._on_decisions
                store.on_refreshed = self.budgets.contexts_refreshed
                self.writer = writer
                self.store = self._handle.store = store
                self._store_problem = None
                self.writer.start()
                threading.Thread(
                    target=self._catch_up, args=(store, opened.recover_since), name="tokenbook-catch-up",
                    daemon=True,
                ).start()  # fmt: skip
        except BaseException:
            if self.store is not store:
                self._handle.store = None
                store.close()
            raise

    def _attach_when_serving(self, opened: _OpenedStore) -> None:
        """`_attach_store` once the receivers serve (they acknowledge into the log meanwhile); after a
        failure, `_connect_until_up` opens the store again."""
        self._serving.wait()
        started = time.monotonic()
        try:
            self._attach_store(opened)
        except Exception as exc:  # noqa: BLE001 - retried; the reason is in /readyz
            _log.error("bringing up the store failed (retried): %s", exc)
            self._waiting(exc)
            self._connect_until_up()
            return
        if self.store is not None:
            _log.info(
                "budget counters rebuilt; writing the ledger",
                extra={"fields": {"seconds": round(time.monotonic() - started, 3),
                                  "spooled_bytes": self.wal.pending_bytes if self.wal else 0}},
            )  # fmt: skip

    def _start_budgets(self, store: Any) -> None:
        """Rebuild the budget counters from the ledger, the log's replayed calls and the calls accepted
        so far; from then on `_observe` counts each accepted call as it comes. The rebuild runs without
        `_budget_lock`: the calls accepted meanwhile are held, then counted (the writer has not
        started, so none of them is stored)."""
        assert self.budgets is not None
        with self._budget_lock:
            pending = self._take_held()
        self.budgets.start(store, pending)
        with self._budget_lock:
            self.budgets.observe(self._take_held(besides=pending))
            self._budgets_live = True

    def _take_held(self, besides: Sequence[CallRow] = ()) -> list[CallRow]:
        """The calls held for the counters, forgotten here (under `_budget_lock`): the log's replayed
        calls and those accepted since, or, when they were too many to hold, every call of the log
        except `besides`'s."""
        assert self.wal is not None
        if self._budget_overflow:
            held = [c for p in self.wal.pending(pending_spans) for c in p.calls]
            if besides:
                taken = {c.identity for c in besides}
                held = [c for c in held if c.identity not in taken]
        else:
            held = self._replayed + self._budget_buffer
        self._replayed, self._budget_buffer, self._budget_overflow = [], [], False
        return held

    def _observe(self, calls: Sequence[CallRow]) -> None:
        """The ingest hook: count accepted calls, or hold them until the counters are rebuilt."""
        assert self.budgets is not None
        if not self._budgets_live:
            with self._budget_lock:
                if not self._budgets_live:
                    if self._count_budgets and not self._budget_overflow:
                        self._budget_buffer.extend(calls)
                        if len(self._budget_buffer) > _BUDGET_BUFFER:
                            self._budget_overflow, self._budget_buffer = True, []
                    return
        self.budgets.observe(calls)

    def _counting(self) -> bool:
        """Whether `_observe` counts (or holds) calls now."""
        assert self.budgets is not None
        return self.budgets.counting if self._budgets_live else self._count_budgets

    def _waiting(self, exc: BaseException) -> None:
        """Record why the store is not up (for ``/readyz`` and the admin API) and log it."""
        from tokenbook.collector.storage.store import StoreUnavailable

        what = "storage unreachable" if isinstance(exc, StoreUnavailable) else "storage not ready"
        self._store_problem = self._handle.reason = f"{what}: {exc}; retrying"
        _log.warning(
            "storage is not up; requests are acknowledged into the write-ahead log meanwhile",
            extra={"fields": {"store": self.config.clickhouse.describe(), "reason": self._store_problem}},
        )

    def _connect_until_up(self) -> None:
        """Retry `_bring_up_store` with backoff until it succeeds or the collector stops."""
        delay = _CONNECT_BACKOFF_MIN
        while not self._stopped.wait(delay):
            try:
                self._bring_up_store()
            except Exception as exc:  # noqa: BLE001 - any failure is retried; the reason is in /readyz
                self._waiting(exc)
                delay = min(delay * 2, _CONNECT_BACKOFF_MAX)
                continue
            if self.store is not None:
                _log.info(
                    "storage is up; draining the write-ahead log",
                    extra={"fields": {"store": self.config.clickhouse.describe(),
                                      "spooled_bytes": self.wal.pending_bytes if self.wal else 0}},
                )  # fmt: skip
            return

    def _storage_up(self) -> bool:
        writer = self.writer
        return writer is not None and writer.storage_up

    def _reprice(self, since: datetime, until: datetime, model: str) -> RepriceResult:
        """Reload `pricing.overrides` and `pricing.books` (new calls are priced and billed with them
        from now on); re-price and bill the stored calls again."""
        catalog = LazyCatalog(self.config.pricing_overrides)
        books = PriceBooks(self.config.pricing.books)
        self.builder.catalog, self.builder.books = catalog, books
        if self.builds is not None:
            self.builds.reload()
        result = reprice(self._handle, catalog.get(), books=books, since=since, until=until, model=model)
        _log.info(
            "re-priced stored calls",
            extra={"fields": {"since": since.isoformat(), "until": until.isoformat(), "model": model,
                              "examined": result.examined, "changed": result.changed}},
        )  # fmt: skip
        return result

    def _ready(self) -> tuple[bool, str]:
        if self._stopped.is_set():
            return False, "shutting down"
        if self._store_problem is not None:
            return False, self._store_problem
        if self.writer is None or not self.writer.storage_up:
            return False, "storage unavailable: requests are spooled to the write-ahead log"
        return True, "ready"

    def _summaries(self) -> None:
        previous = self.metrics.snapshot()
        while not self._stopped.wait(self.config.telemetry.summary_interval):
            now = self.metrics.snapshot()
            fields: dict[str, float] = {
                k: int(now[k] - previous[k])
                for k in now
                if k.endswith(("_spans", "_calls", "_rows", "steps"))
            }
            fields["interval_s"] = self.config.telemetry.summary_interval
            fields["spooled_bytes"] = int(now["spooled_bytes"])
            fields["insert_p_avg_ms"] = _mean_ms(now, previous, "insert_seconds")
            fields["answer_avg_ms"] = _mean_ms(now, previous, "answer_seconds")
            _log.info("collector summary", extra={"fields": fields})
            previous = now

    def stop(self, drain_timeout: float = _DRAIN_TIMEOUT) -> None:
        """Drain and shut down; safe to call once after `start` (also after a partial start). The
        ``collector stopped`` line gives the seconds each step took (``stop_s``)."""
        clock = _StepClock()
        done = clock.done
        with self._up_lock:  # a store brought up from now on is closed, not used
            self._stopped.set()
        self._serving.set()  # a catch-up still waiting sees the stop
        if self.admin is not None:
            self.admin.refuse_queries()  # a user query never holds the shutdown
        done("queries")
        if self._bring_up_thread is not None and self._bring_up_thread.is_alive():
            self._bring_up_thread.join(_BRING_UP_JOIN_TIMEOUT)
        if self.grpc is not None:
            self.grpc.stop(grace=5.0)
        if self.http is not None:
            self.http.stop()
        if self.ingestor is not None:
            self.ingestor.wait_idle(timeout=10.0)
        if self.decoders is not None:
            self.decoders.stop()
        done("receivers")
        if self.writer is not None:
            drained = self.writer.stop(drain_timeout)
        else:
            drained = self.wal is None or self.wal.pending_bytes == 0
        if self.builds is not None:
            self.builds.stop()
        done("drain")
        if self.budgets is not None:
            self.budgets.stop()
        done("budgets")
        if self.admin is not None:
            self.admin.stop()
        if self.wal is not None:
            self.wal.close()
        if self.store is not None:
            self.store.close()
        if self._owned:
            owner.release(self.config.clickhouse.data_dir.resolve())
        done("close")
        snap = self.metrics.snapshot()
        _log.info(
            "collector stopped",
            extra={
                "fields": {
                    "drained": drained,
                    "spooled_bytes": int(snap["spooled_bytes"]),
                    "stop_s": clock.steps,
                }
            },
        )


def _mean_ms(now: dict[str, float], previous: dict[str, float], summary: str) -> float:
    """The mean of a latency summary of `IngestMetrics` between two snapshots, in milliseconds."""
    count = now[f"{summary}_count"] - previous[f"{summary}_count"]
    return round(1000 * (now[f"{summary}_sum"] - previous[f"{summary}_sum"]) / max(count, 1), 3)


def _unbilled(call: CallRow) -> bool:
    return call.price_status in UNBILLED_STATUSES
