"""The collector process: `tokenbook collector` wires config, store, log, writer, receivers and admin API.

Start order: claim the data directory (one owner per chDB directory), open and migrate the store,
open the write-ahead log (its undelivered records are replayed by the writer), warm the dedup memory
from the log and from `Store.recent_span_keys`, start the writer, the receivers, then the admin API (so a
``/healthz`` answer means the receivers serve); then log ONE structured start line (endpoints,
store; no secrets). Every ``telemetry.summary_interval`` seconds ONE summary line gives the counters of the
interval.

Stop order (SIGTERM or SIGINT): stop the receivers (in-flight requests finish), wait for in-flight
ingests, drain the log into storage (up to ``drain_timeout``; what is left stays in the log for the
next start), stop the admin API, close the log and the store, release the directory. Exit code 0;
2 for a bad config.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tokenbook.collector.admin import AdminServer
from tokenbook.collector.budgets import BudgetRuntime
from tokenbook.collector.config import CollectorConfig
from tokenbook.collector.decode.pool import DecoderPool
from tokenbook.collector.ingest.dedup import RecentSpanKeys, span_key
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.rows import RowBuilder, SpanBounds, pipeline_keys
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.receive import GrpcReceiver, HttpReceiver
from tokenbook.collector.storage import owner
from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.reprice import RepriceResult, reprice
from tokenbook.collector.storage.rowcodec import decode_rows
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.collector.wal.writer import LedgerWriter
from tokenbook.genai.billing import UNBILLED_STATUSES
from tokenbook.genai.pricing.catalog import PriceCatalog

__all__ = ["Collector", "JsonLogFormatter"]

_log = logging.getLogger("tokenbook.collector")
_SWITCH_INTERVAL_S = 0.001  # seconds; CPython's default is 0.005
_DRAIN_TIMEOUT = 30.0


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
        self.budgets: BudgetRuntime | None = None
        self._owned = False

    def start(self) -> None:
        """Start in the module's order (store, log, writer, receivers, admin API) and log the start line.

        Raises OSError (a port in use), `StoreError` or `DirectoryOwned`; call `stop` after a failure.
        """
        from tokenbook.collector.storage.store import Store  # chDB loads only when a collector starts

        cfg = self.config
        started = time.monotonic()
        data_dir = cfg.clickhouse.data_dir.resolve()
        if cfg.clickhouse.url is None:
            owner.claim(data_dir, cfg.admin.endpoint)
            self._owned = True
        url = cfg.clickhouse.url.reveal() if cfg.clickhouse.url is not None else None
        self.store = Store.open(url=url, data_dir=data_dir, database=cfg.clickhouse.database)
        self.store.migrate()
        _preload_insert_path()
        if cfg.dedup.warm_hours > 0:  # a crash between an insert and its refresh left aggregates stale
            self.store.refresh_aggregates(since=datetime.now(tz=UTC) - timedelta(hours=cfg.dedup.warm_hours))
        self.wal = WriteAheadLog(
            cfg.spool.dir,
            max_bytes=cfg.spool.max_bytes,
            segment_bytes=cfg.spool.segment_bytes,
            on_corrupt=self.metrics.add,
        )
        replay_bytes = self.wal.open()
        self.metrics.spooled_bytes = lambda: self.wal.pending_bytes if self.wal is not None else 0
        dedup = RecentSpanKeys(cfg.dedup.max_keys)
        warmed = self._warm(dedup)
        # Before the writer and the receivers: counters from the ledger + the log's unstored calls.
        self.budgets = BudgetRuntime(cfg.budgets, self.store)
        self.budgets.start(self.store, (c for calls, _ in self.wal.pending(decode_rows) for c in calls))
        self.store.on_decisions = self._on_decisions
        self.writer = LedgerWriter(
            self.wal, self.store, self.metrics, max_rows=cfg.batch.max_rows, max_delay=cfg.batch.max_delay
        )
        self.writer.start()
        self.builder = builder = RowBuilder(
            PriceCatalog(cfg.pricing_overrides),
            extra_keys=cfg.extra_attribution_keys,
            content=cfg.privacy.content,
            salt=cfg.privacy.salt.reveal() if cfg.privacy.salt is not None else "",
            bounds=SpanBounds(
                cfg.limits.max_tokens_per_call, cfg.limits.max_span_age, cfg.limits.max_span_future
            ),
        )
        writer = self.writer
        keys = replace(
            pipeline_keys(cfg.extra_attribution_keys, cfg.privacy.content), limits=cfg.limits.attributes
        )
        self.decoders = DecoderPool(keys, cfg.decode_processes, self.metrics)
        self.decoders.start()
        self.ingestor = Ingestor(
            builder,
            self.decoders,
            dedup,
            self.wal,
            self.metrics,
            max_inflight_spans=cfg.max_inflight_spans,
            storage_up=lambda: writer.storage_up,
            on_calls=self.budgets.observe,
            rate_limiter=cfg.limits.rate_limiter(),
            on_unsure_calls=self.budgets.defer,
        )
        self.grpc = GrpcReceiver(
            self.ingestor,
            cfg.grpc.endpoint,
            max_request_bytes=cfg.grpc.max_request_bytes,
            tls=cfg.grpc.tls,
            tokens=cfg.auth,
            max_concurrent_rpcs=cfg.limits.max_connections,
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
            self.store,
            self.metrics,
            ready=self._ready,
            budgets=self.budgets,
            tokens=cfg.auth,
            limits=cfg.limits,
            reprice=self._reprice,
        )
        self.admin.start()  # last: once /healthz answers, the receivers serve
        # Start-up objects (catalog, protobuf descriptors, chDB bindings) never die: keep them out of
        # every collection; and collect the young generation per ~50k allocations instead of 700
        # (the hot path allocates no reference cycles), which saves ~25% CPU at full load.
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
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
                    "dedup_warm_keys": warmed,
                    "content": cfg.privacy.content,
                    "decode_processes": cfg.decode_processes,
                    "auth": f"{len(cfg.auth)} tokens" if cfg.auth is not None else "off",
                    "tls": {
                        "grpc": cfg.grpc.tls is not None,
                        "http": cfg.http.tls is not None,
                        "admin": cfg.admin.tls is not None,
                    },
                    "startup_s": round(time.monotonic() - started, 3),
                }
            },
        )

    def _on_decisions(self, changes: Sequence[tuple[CallRow, CallRow]]) -> None:
        """The store re-decided which span bills some calls: count it, and move the budget counters."""
        unbilled = sum(1 for before, after in changes if _unbilled(after) and not _unbilled(before))
        self.metrics.add(unbilled_calls=unbilled, rebilled_calls=len(changes) - unbilled)
        if self.budgets is not None:
            self.budgets.apply_decisions(changes)

    def _warm(self, dedup: RecentSpanKeys) -> int:
        assert self.wal is not None
        keys: list[bytes] = []
        if self.config.dedup.warm_hours > 0:
            hours = self.config.dedup.warm_hours
            keys.extend(span_key(n, t, s) for n, t, s in self.store.recent_span_keys(hours))
            dedup.known_since(time.time() - hours * 3600)  # read after the query: never before its start
        for calls, steps in self.wal.pending(decode_rows):
            keys.extend(span_key(r.tenant_id, r.trace_id, r.span_id) for r in calls)
            keys.extend(span_key(r.tenant_id, r.trace_id, r.span_id) for r in steps)
        dedup.remember(keys)
        return len(dedup)

    def _reprice(self, since: datetime, until: datetime, model: str) -> RepriceResult:
        """Reload `pricing.overrides` (new calls are priced with it from now on); re-price stored calls."""
        catalog = PriceCatalog(self.config.pricing_overrides)
        self.builder.catalog = catalog
        result = reprice(self.store, catalog, since=since, until=until, model=model)
        _log.info(
            "re-priced stored calls",
            extra={"fields": {"since": since.isoformat(), "until": until.isoformat(), "model": model,
                              "examined": result.examined, "changed": result.changed}},
        )  # fmt: skip
        return result

    def _ready(self) -> tuple[bool, str]:
        if self._stopped.is_set():
            return False, "shutting down"
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
            fields["insert_p_avg_ms"] = round(
                1000 * (now["insert_seconds_sum"] - previous["insert_seconds_sum"])
                / max(now["insert_count"] - previous["insert_count"], 1),
                3,
            )  # fmt: skip
            _log.info("collector summary", extra={"fields": fields})
            previous = now

    def stop(self, drain_timeout: float = _DRAIN_TIMEOUT) -> None:
        """Drain and shut down; safe to call once after `start` (also after a partial start)."""
        self._stopped.set()
        if self.grpc is not None:
            self.grpc.stop(grace=5.0)
        if self.http is not None:
            self.http.stop()
        if self.ingestor is not None:
            self.ingestor.wait_idle(timeout=10.0)
        if self.decoders is not None:
            self.decoders.stop()
        drained = self.writer.stop(drain_timeout) if self.writer is not None else True
        if self.budgets is not None:
            self.budgets.stop()
        if self.admin is not None:
            self.admin.stop()
        if self.wal is not None:
            self.wal.close()
        if self.store is not None:
            self.store.close()
        if self._owned:
            owner.release(self.config.clickhouse.data_dir.resolve())
        snap = self.metrics.snapshot()
        _log.info(
            "collector stopped",
            extra={"fields": {"drained": drained, "spooled_bytes": int(snap["spooled_bytes"])}},
        )


def _unbilled(call: CallRow) -> bool:
    return call.price_status in UNBILLED_STATUSES


def _preload_insert_path() -> None:
    """clickhouse-connect imports pandas lazily on the first insert (~1 s of CPU, while requests
    queue): pay that at start-up instead. Nothing to do when pandas is not installed."""
    with contextlib.suppress(ImportError):
        import pandas  # noqa: F401
