"""The ``storage`` section of the collector config: where the ledger lives, the spool, the batches.

Declared with `tokenbook.genai.configspec`; `tokenbook.collector.config` composes `StorageConfig`
into the collector's config. ``spool.dir`` defaults to ``<clickhouse.data_dir>/wal``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Self
from urllib.parse import urlsplit

from tokenbook.collector.storage.location import DEFAULT_DATA_DIR, redact_url
from tokenbook.genai.configspec import (
    Report,
    Secret,
    boolean,
    duration,
    duration_or_zero,
    int_in,
    path,
    positive_int,
    section,
    setting,
    size,
    size_or_zero,
    type_name,
)

__all__ = ["BatchConfig", "ClickHouseConfig", "EngineConfig", "RefreshConfig", "SpoolConfig", "StorageConfig"]

_MIB: Final = 1024 * 1024
#: The engine's settings that compile to machine code (`EngineConfig.jit`).
_JIT_SETTINGS: Final = ("compile_expressions", "compile_aggregate_expressions", "compile_sort_description")


@type_name("URL (secret)")
def _server_url(v: Any) -> Secret:
    if not isinstance(v, str) or urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).hostname:
        raise ValueError(
            "must be a URL http(s)://[user[:password]@]host[:port], or absent for the embedded store"
        )
    return Secret(v)


@type_name("identifier")
def _identifier(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        raise ValueError(f"must be a ClickHouse identifier ([A-Za-z_][A-Za-z0-9_]*), got {v!r}")
    return v


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """The embedded engine's memory: its caches, its ceiling, the library pages only its start-up
    needs, and whether it compiles expressions. Each size is the ClickHouse server setting of the
    same name (engine defaults in brackets); a ClickHouse server (`url`) is configured on the server
    instead."""

    mark_cache_size: int = setting(
        64 * _MIB,
        parse=size,
        doc="Cache of the marks (where each granule of a column starts) of the parts queries read [5 GiB].",
    )
    index_mark_cache_size: int = setting(
        16 * _MIB, parse=size, doc="Cache of the marks of data-skipping indexes [5 GiB]."
    )
    primary_index_cache_size: int = setting(
        16 * _MIB, parse=size, doc="Cache of primary indexes loaded on demand [5 GiB]."
    )
    uncompressed_cache_size: int = setting(
        0, parse=size_or_zero, doc="Cache of decompressed blocks; 0: none [0]."
    )
    compiled_expression_cache_size: int = setting(
        16 * _MIB, parse=size, doc="Cache of expressions compiled to machine code [128 MiB]."
    )
    max_memory: int = setting(
        0,
        parse=size_or_zero,
        doc="`max_server_memory_usage`: the memory the engine may allocate in all (code excluded); "
        "beyond it a query or merge fails with MEMORY_LIMIT_EXCEEDED (an insert is retried from the "
        "spool, a user query gets the error). A ceiling below ~2 GiB can fail large reports, "
        "reprices and bulk loads. 0: the engine's default, 90% of the machine's RAM.",
    )
    release_startup_pages: bool = setting(
        True,
        parse=boolean,
        doc="Once the collector serves, hand back to the kernel the pages of the engine's library "
        "that only its start-up read (~150 MiB of RSS; the pages later queries need are read again "
        "from the file), and those of the libraries its package loads that the store never runs "
        "(pyarrow's, ~20 MiB).",
    )
    jit: bool = setting(
        False,
        parse=boolean,
        doc="Compile expressions, aggregate functions and sort orders to machine code "
        "(`compile_expressions`, `compile_aggregate_expressions`, `compile_sort_description`) [on]. "
        "Off: the documented queries over a 10M-row ledger take as long either way, and the "
        "collector's peak under load is ~35 MiB lower (docs/operations/benchmarks.md).",
    )
    dirty_decay: float = setting(
        0.25,
        parse=duration_or_zero,
        type_doc="duration or 0",
        default_doc="250ms",
        doc="How long the engine's allocator keeps the pages it freed before handing them back to the "
        "kernel (jemalloc's `dirty_decay_ms`) [5 s]; 0: at once. Kept pages serve the next statements' "
        "allocations without a page fault: under the throughput benchmark 250 ms costs the collector "
        "~20 MiB more at its peak than 0 and saves it 5-7 µs of CPU per span; the engine's 5 s keeps "
        "~50 MiB more again, ~100 MiB after a burst of inserts and merges. "
        "Read once, when the engine's library loads (an operator's `JE_MALLOC_CONF` wins).",
    )

    def server_settings(self) -> dict[str, str]:
        """The ClickHouse settings these make, as chDB's start-up options: the server's, and the
        query settings each connection of the engine starts with (`jit`)."""
        settings = {
            "mark_cache_size": self.mark_cache_size,
            "index_mark_cache_size": self.index_mark_cache_size,
            "primary_index_cache_size": self.primary_index_cache_size,
            "uncompressed_cache_size": self.uncompressed_cache_size,
            "compiled_expression_cache_size": self.compiled_expression_cache_size,
        }
        if self.max_memory:
            settings["max_server_memory_usage"] = self.max_memory
        if not self.jit:
            settings.update(dict.fromkeys(_JIT_SETTINGS, 0))
        return {name: str(value) for name, value in settings.items()}


@dataclass(frozen=True, slots=True)
class ClickHouseConfig:
    """Where the ledger is: a ClickHouse server, or the embedded store in a directory."""

    url: Secret | None = setting(
        None,
        parse=_server_url,
        doc="A ClickHouse server, `http(s)://[user[:password]@]host[:port]` (never printed); "
        "absent: the embedded store in `data_dir`.",
    )
    data_dir: Path = setting(
        Path(DEFAULT_DATA_DIR),
        parse=path,
        doc="The embedded store's directory (also the default home of the spool). "
        "Command line: `--data-dir`.",
    )
    database: str = setting("tokenbook", parse=_identifier, doc="The database holding the ledger.")
    tenant_reader: Secret | None = setting(
        None,
        parse=_server_url,
        doc="Server only: the user that tenant-scoped queries run as, "
        "`http(s)://user:password@host[:port]` (never printed), each query with its tenant's role, "
        "whose row policies (`tokenbook tenants policies`) confine it to the tenant's rows; absent: "
        "tenants are confined by query settings alone.",
    )
    engine: EngineConfig = section(EngineConfig, doc="The embedded store's engine (ignored with `url`).")

    def describe(self) -> str:
        """Where the store is, for logs: a server URL without its password, or the embedded directory."""
        if self.url is None:
            return f"embedded chdb:{self.data_dir} database={self.database}"
        return f"server {redact_url(self.url.reveal())} database={self.database}"


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    """The write-ahead log: accepted spans wait here until they are stored."""

    dir: Path = setting(
        Path(DEFAULT_DATA_DIR) / "wal",
        parse=path,
        default_doc="`<storage.clickhouse.data_dir>/wal`",
        doc="The spool's directory.",
    )
    max_bytes: int = setting(
        1024 * _MIB,
        parse=size,
        doc="Undelivered bytes beyond which requests are refused (gRPC UNAVAILABLE / HTTP 503).",
    )
    segment_bytes: int = setting(16 * _MIB, parse=size, doc="Size of one spool segment file.")
    memory_bytes: int = setting(
        32 * _MIB,
        parse=size_or_zero,
        doc="Undelivered records also kept in memory, by their bytes in the spool, so that the writer "
        "need not read them back; beyond (the writer is behind), records are read back from the spool's "
        "files. 0: always read back.",
    )


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """How rows are grouped into inserts."""

    max_rows: int = setting(20_000, parse=positive_int, doc="Rows per ClickHouse insert.")
    max_bytes: int = setting(
        32 * _MIB,
        parse=size,
        doc="Bytes of logged records per insert (the requests a batch holds, and their rows' blocks "
        "once built): a batch ends at the first record that reaches `max_rows` or this.",
    )
    max_delay: float = setting(0.5, parse=duration, doc="How long a row may wait for a fuller batch.")


@dataclass(frozen=True, slots=True)
class RefreshConfig:
    """How the aggregates and billing decisions catch up with the writes, a slice at a time."""

    max_keys: int = setting(
        5_000,
        parse=positive_int,
        doc="Keys one slice of the aggregate refresh takes at most, of each kind: contexts "
        "(`context_costs`), traces of the billing decision pass, (tenant, hour) pairs of the hourly "
        "roll-ups. A refresh catches up a burst in slices of this many keys, one after another, so "
        "the rows and keys it holds at once are bounded by it, not by the burst; larger slices cost "
        "less CPU per key and more memory.",
    )
    release_memory: bool = setting(
        True,
        parse=boolean,
        doc="After each refresh, hand back to the kernel the memory freed since: the process heap's "
        "free pages (`malloc_trim`) and, with the embedded store, the engine allocator's "
        "(`SYSTEM JEMALLOC PURGE`), instead of keeping them for the next burst.",
    )
    interval: float = setting(
        1.0,
        parse=duration,
        doc="How often, at most, `context_costs` and the billing decisions catch up with the rows written "
        "while the writer keeps up (30 s, or this if longer, while it has a backlog). Each refresh costs "
        "the engine's planning of its statements (tens of ms of CPU) however few rows it covers, so under a "
        "light steady load this sets the refresh's share of a core; the lag of `context_costs` and of "
        "the decisions is about this long.",
    )
    hourly_interval: float = setting(
        10.0,
        parse=duration,
        doc="How often, at most, the hourly roll-ups (`cost_hourly`, `tenant_hourly`, `model_hourly`) "
        "catch up while the writer keeps up (60 s, or this if longer, while it has a backlog); each "
        "refresh rescans the touched hours of the touched tenants.",
    )
    nice: int = setting(
        10,
        parse=int_in(0, 19),
        doc="How much lower the CPU priority of the collector's refresh thread is (the Linux nice "
        "increment, applied to the thread that plans and runs the refresh's statements): receiving, "
        "logging and inserting spans, and the applications sharing the host, go first, and the "
        "refresh takes the CPU they leave; 0: the same.",
    )


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """The ``storage`` section."""

    clickhouse: ClickHouseConfig = section(ClickHouseConfig, doc="The ledger's store.")
    spool: SpoolConfig = section(SpoolConfig, doc="The write-ahead log.")
    batch: BatchConfig = section(BatchConfig, doc="Insert batches.")
    refresh: RefreshConfig = section(RefreshConfig, doc="The aggregate refresh.")

    def check(self, report: Report) -> Self:
        """An unset spool directory follows the data directory; a tenant reader needs a server."""
        if self.clickhouse.tenant_reader is not None and self.clickhouse.url is None:
            report.problem(
                "clickhouse.tenant_reader", "needs clickhouse.url: the embedded store has no users or roles"
            )
        if not report.given("spool.dir"):
            return replace(self, spool=replace(self.spool, dir=self.clickhouse.data_dir / "wal"))
        return self
