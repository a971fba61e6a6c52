"""The ClickHouse store: one code path for embedded chDB and a ClickHouse server.

`Store.open()` with no URL opens the embedded engine in `data_dir` (`chdb:///abs/path`); an
`http(s)://user:pass@host:8123` URL talks to a server. Both go through clickhouse-connect, and the
SQL (in `storage/sql/*.sql`) is the same.

Exactness: `llm_calls` and `context_steps` are ReplacingMergeTree tables keyed by span identity, so
reading them with `FINAL` counts a re-delivered span once. The aggregates (`context_costs`,
`cost_hourly`) are recomputed from the deduplicated ledger for every key a write touched
(`refresh_aggregates`), replacing their previous rows: re-delivery never changes a visible total.

Connections and threads: every method may be called from any thread. The writer's inserts (`write`,
`quarantine`, `insert_rows`) and schema changes (`command`, `migrate`) have a connection of their own,
serialised by the store's lock; everything else runs on connections lent by a pool
(`connections.ConnectionPool`; embedded: each its own chDB session on the one engine; server: its own
HTTP client) and never takes that lock: reads (`query`), user queries (`query_readonly`) and the
aggregate refresh with its decision pass (`refresh_aggregates`, one at a time). So ingest never waits
behind a user query or a refresh. A user query runs at the lowest CPU priority the engine grants
(``os_thread_priority`` 19: the engine's threads for it are niced), is ended by its own limits, and is
cancelled by `cancel_user_queries` (at shutdown). The password of a server URL never appears in
`repr`, logs or exception messages.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, NamedTuple, Self
from urllib.parse import unquote, urlsplit

from tokenbook.collector.storage.binding import bound
from tokenbook.collector.storage.config import EngineConfig, RefreshConfig
from tokenbook.collector.storage.connections import ConnectionPool, PoolClosed
from tokenbook.collector.storage.decisions import DecisionChange, DecisionKeys, KeyFacts, run_pass
from tokenbook.collector.storage.engine import engine_allocator_options, trim_heap
from tokenbook.collector.storage.guard import EngineRefusal, QueryLimits, SqlGuard
from tokenbook.collector.storage.ledger import CALL_COLUMNS, STEP_COLUMNS, CallRow, StepRow
from tokenbook.collector.storage.location import DEFAULT_DATA_DIR, redact_url
from tokenbook.collector.storage.migrate import apply_migrations
from tokenbook.collector.storage.row_policies import PolicyTable, role_prefix, tenant_role
from tokenbook.collector.storage.rowcodec import BLOCK_FORMAT, decode_block, encode_block
from tokenbook.collector.storage.slicing import PendingDecisions, slices_needed, take
from tokenbook.collector.storage.sqltemplate import SchemaTarget, load_sql, render, render_query
from tokenbook.collector.storage.tenancy import tenant_filters
from tokenbook.collector.storage.touched import Touched

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "PARTITIONS_PER_INSERT",
    "QUARANTINE_COLUMNS",
    "KeySlice",
    "QueryResult",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "error_code",
    "quarantine_entry",
]

_log = logging.getLogger(__name__)

#: (column names, ClickHouse type names, rows)
QueryResult = tuple[list[str], list[str], list[tuple[Any, ...]]]

#: Keys per recompute query (bound as one Array parameter). Embedded, one query per 20k keys costs
#: half as much per key as 2k-key queries; a server gets its parameters in the request URL, which
#: ClickHouse caps (``http_max_uri_size``, 1 MiB), so it gets smaller chunks.
_REFRESH_CHUNK_EMBEDDED = 20_000
_REFRESH_CHUNK_SERVER = 2_000
#: Rows ingested per slice of the restart's recovery (`refresh_aggregates(since=...)`): each slice's
#: keys, decision pass and recomputation are held in memory at once, and the refresh lock is let go
#: between slices.
_RECOVER_ROWS = 10_000
#: Engine settings of the recovery's queries: one thread each and small blocks (a background job: it
#: leaves the other core to ingest, and holds one thread's small buffers at once; the hourly
#: recomputation's FINAL read peaked 75 MiB higher with the defaults).
_RECOVER_SETTINGS: Final = {"max_threads": 1, "max_block_size": 8192}
#: ClickHouse's error codes for a role that does not exist or is not granted (UNKNOWN_ROLE,
#: SET_NON_GRANTED_ROLE): a tenant without row policies for the tenant reader.
_ROLE_ERRORS: Final = frozenset({511, 512})
#: ClickHouse's ``max_partitions_per_insert_block`` default: no insert (the writer's, or a refresh's
#: INSERT ... SELECT into the month-partitioned ``cost_hourly``) may touch more months than this.
PARTITIONS_PER_INSERT = 100
#: The embedded engine's settings when the caller gives none (`storage.clickhouse.engine` defaults).
_ENGINE_DEFAULTS: Final = EngineConfig()
#: The aggregate refresh's slices when the caller gives none (`storage.refresh` defaults).
_REFRESH_DEFAULTS: Final = RefreshConfig()


class KeySlice(NamedTuple):
    """Dedup keys of the spans ingested in [since, until) (`Store.span_key_slices`)."""

    keys: bytes  # 16 bytes a span, concatenated
    since: datetime
    until: datetime


class StoreError(RuntimeError):
    """A storage operation failed; the message never contains credentials."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (server down, network); retrying later may succeed."""


_CODE = re.compile(r"Code: (\d+)\.")

#: Columns of the ``quarantine`` table (migration 030), in order.
QUARANTINE_COLUMNS: tuple[str, ...] = (
    "quarantined_at", "table_name", "tenant_id", "trace_id", "span_id", "span_time", "error_code",
    "reason", "row", "state", "version",
)  # fmt: skip


def quarantine_entry(
    table: str, row: CallRow | StepRow, code: int, reason: str, state: str = "quarantined"
) -> tuple[Any, ...]:
    """A row of the ``quarantine`` table for one ledger row of `table` (``llm_calls``/``context_steps``)."""
    return (
        datetime.now(UTC), table, row.tenant_id, row.trace_id, row.span_id, row.timestamp.isoformat(), code,
        reason, encode_block(table, [row]).decode("utf-8", "surrogateescape"), state, time.time_ns() // 1000,
    )  # fmt: skip


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code in a `StoreError` message (``Code: 69. DB::Exception: ...``), if any."""
    m = _CODE.search(str(exc))
    return int(m.group(1)) if m else None


class Store:
    """A ClickHouse database holding the tokenbook schema (see module docstring)."""

    def __init__(
        self,
        client: Any,
        *,
        database: str,
        description: str,
        secret: str,
        embedded: bool,
        connect: Callable[[], Any] | None = None,
        connect_tenant_reader: Callable[[], Any] | None = None,
        refresh: RefreshConfig = _REFRESH_DEFAULTS,
    ) -> None:
        """Use `Store.open()`; this wraps an already connected clickhouse-connect client. `connect()`
        opens another connection to the same store, for everything but the writer's inserts (without
        it everything shares `client`, under the store's lock); `connect_tenant_reader()` one as the
        user that tenant-scoped user queries run as (`row_policies`). `secret`: the passwords to keep
        out of messages, one per line. `refresh`: the aggregate refresh's slices."""
        self._client = client
        self._secrets = tuple(filter(None, secret.split("\n")))
        self.description = description  # the location without secrets, for logs and messages
        self._pool = ConnectionPool(self._opener(connect)) if connect is not None else None
        self._tenant_pool = (
            ConnectionPool(self._opener(connect_tenant_reader)) if connect_tenant_reader is not None else None
        )
        self._refresh_lock = threading.Lock()  # one refresh (and decision pass) at a time
        #: In the text of every user query of this store (a comment), so that `cancel_user_queries`
        #: finds them, and only them, among the engine's running queries.
        self._user_marker = f"tokenbook-user-query-{uuid.uuid4().hex}"
        self._user_lock = threading.Lock()
        self._user_running = 0  # `query_readonly` calls in progress (guard check included)
        self._user_refused = False  # `cancel_user_queries(refuse_new=True)` was called: a shutdown
        self._guard: SqlGuard | None = None
        self.database = SchemaTarget(database=database).database
        self.embedded = embedded
        self._lock = threading.RLock()
        self._touched_contexts: set[tuple[str, str]] = set()
        self._touched_hours: set[tuple[str, datetime]] = set()
        self._touched_decisions = PendingDecisions(refresh.max_keys)
        #: The oldest ``ingested_at`` of the rows written since the last complete refresh.
        self._unrefreshed_since: datetime | None = None
        #: Rows ingested in [_recover_since, _recover_until) are still to recover (restart recovery,
        #: a slice at a time): the refresh watermark stays at or before `_recover_since`.
        self._recover_since: datetime | None = None
        self._recover_until: datetime | None = None
        #: The `since` the recovery in progress was asked for: a call with it (or later) resumes it.
        self._recover_from: datetime | None = None
        self.recover_rows = _RECOVER_ROWS  # rows per recovery slice
        #: Where the refresh watermark is kept (`track_refresh`), and its persisted value.
        self._watermark_path: Path | None = None
        self._watermark: datetime | None = None
        #: Called with the rows a decision pass changed (before -> after), after they are written:
        #: the budget evaluator moves its counters by them. Set by the collector.
        self.on_decisions: Callable[[Sequence[DecisionChange]], None] | None = None
        #: Called with the (tenant, context) pairs whose `context_costs` row a refresh recomputed, right
        #: after it: the loop rules check their loop figures. Must not block or raise. Set by the collector.
        self.on_refreshed: Callable[[Sequence[tuple[str, str]]], None] | None = None
        self.decision_changes = 0  # rows re-decided since the store was opened (metric)
        # A lone surrogate (possible in OTLP/JSON) is stored as its escape text instead of failing
        # the insert, which the writer would retry forever. Blocks are small: parsing them in
        # parallel only adds thread hand-offs. A block is written as it comes, not first collapsed to
        # the newest version of each key (the readers keep the newest version of a span whatever part
        # holds it; collapsing copied every row, column by column: a quarter of the insert's CPU).
        self._insert_settings: dict[str, Any] = {
            "input_format_json_throw_on_bad_escape_sequence": 0,
            "input_format_parallel_parsing": 0,
            "optimize_on_insert": 0,
        }
        if not embedded:
            self._insert_settings["insert_distributed_sync"] = 1
        self._refresh_chunk = _REFRESH_CHUNK_EMBEDDED if embedded else _REFRESH_CHUNK_SERVER
        #: Keys of each kind per refresh slice (`storage.refresh.max_keys`; `storage.slicing`).
        self.refresh_keys = refresh.max_keys
        self.release_memory = refresh.release_memory  # after each refresh: `release_freed_memory`
        self._writes = 0  # `write` calls so far: a refresh tells its own leftovers from new writes'

    # -- lifecycle -------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        url: str | None = None,
        data_dir: str | Path = DEFAULT_DATA_DIR,
        database: str = "tokenbook",
        *,
        tenant_reader: str | None = None,
        engine: EngineConfig = _ENGINE_DEFAULTS,
        refresh: RefreshConfig = _REFRESH_DEFAULTS,
    ) -> Store:
        """Connect: `url` = None (embedded chDB in `data_dir`), `chdb:///abs/dir`, or `http(s)://...`.

        `tenant_reader` (server only): the ``http(s)://user:password@host:port`` of the user that
        tenant-scoped user queries run as, each with its tenant's role (`row_policies`). `engine`: the
        embedded engine's caches and memory ceiling (its server settings; they take effect when this
        process first opens the engine); `refresh`: the aggregate refresh's slices."""
        from clickhouse_connect.driver.exceptions import ClickHouseError

        from tokenbook.collector.storage import embedded_client

        SchemaTarget(database=database)  # validate the name before connecting
        secret = ""
        connect_reader: Callable[[], Any] | None = None
        description = redact_url(url) if url is not None else f"chdb://{Path(data_dir).resolve()}"
        connect: Callable[[], Any]
        try:
            if url is None or url.startswith("chdb://"):
                path = Path(description.removeprefix("chdb://"))
                path.mkdir(parents=True, exist_ok=True)
                server_settings = engine.server_settings()
                engine_allocator_options(engine.dirty_decay)  # before the engine's library loads

                def connect() -> Any:  # each client is its own chDB session on the one engine
                    return embedded_client.connect(str(path), chdb_options=server_settings)

                embedded = True
            elif url.startswith(("http://", "https://")):
                connect, secret = _server_connector(url)
                if tenant_reader is not None:
                    connect_reader, reader_secret = _server_connector(tenant_reader)
                    secret = "\n".join(filter(None, (secret, reader_secret)))
                embedded = False
            else:
                raise StoreError(f"unsupported store URL {description!r}: use http(s)://... or chdb:///dir")
            if embedded and tenant_reader is not None:
                raise StoreError("a tenant reader user needs a ClickHouse server (storage.clickhouse.url)")
            client = connect()
        except (ClickHouseError, OSError) as exc:
            message = str(exc)
            for part in filter(None, secret.split("\n")):
                message = message.replace(part, "***")
            raise StoreUnavailable(f"cannot open {description}: {message}") from None
        store = cls(
            client,
            database=database,
            description=description,
            secret=secret,
            embedded=embedded,
            connect=connect,
            connect_tenant_reader=connect_reader,
            refresh=refresh,
        )
        if store._database_exists():
            store._use_database()
        return store

    def close(self) -> None:
        """Cancel the user queries still running, close every connection (embedded: release the
        engine's directory for this process). A connection still lent (a refresh in progress) is
        closed when it comes back."""
        with self._user_lock:
            self._user_refused = True
            running = self._user_running
        if self._pool is not None:
            try:
                if running:
                    self.cancel_user_queries(wait=1.0)
            except (StoreError, PoolClosed) as exc:
                _log.warning("store %s: cancelling user queries at close failed: %s", self.description, exc)
            self._pool.close()
        if self._tenant_pool is not None:
            self._tenant_pool.close()
        with self._lock:
            self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.description!r}, database={self.database!r})"

    # -- schema ----------------------------------------------------------------------------------

    def migrate(self, cluster: str | None = None) -> list[str]:
        """Apply pending migrations (idempotent); returns the file names applied."""
        with self._lock:
            applied = apply_migrations(self, SchemaTarget(database=self.database, cluster=cluster))
            self._use_database()
            if "050_query_paths.sql" in applied:
                self.rebuild_rollups()
        if applied:
            _log.info("store %s: applied migrations %s", self.description, ", ".join(applied))
        return applied

    def _database_exists(self) -> bool:
        """Whether the store's database exists, asked on the writer's connection (which `open` has
        made already: the pool opens its first one when something reads)."""
        with self._lock:
            sql = render_query("database_exists.sql", self.database)
            _, _, rows = _Session(self, self._client).query(sql, {"db": self.database})
        return bool(rows[0][0])

    def _use_database(self) -> None:
        """Make unqualified table names (`SELECT ... FROM llm_calls`) resolve to this database."""
        self._client.database = self.database
        for pool in (self._pool, self._tenant_pool):
            if pool is not None:
                pool.use_database(self.database)

    # -- raw access ------------------------------------------------------------------------------

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """`fn(...)` on the writer's connection, under the store's lock, errors mapped (`_mapped`)."""
        with self._lock:
            return self._mapped(fn, *args, **kwargs)

    def _mapped(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """`fn(...)`, its clickhouse-connect errors as `StoreError` / `StoreUnavailable`, scrubbed."""
        from clickhouse_connect.driver.exceptions import ClickHouseError, OperationalError

        try:
            return fn(*args, **kwargs)
        except OperationalError as exc:
            raise StoreUnavailable(self._scrub(f"{self.description}: {exc}")) from None
        except ClickHouseError as exc:
            raise StoreError(self._scrub(str(exc))) from None

    @contextmanager
    def _session(self, pool: ConnectionPool | None = None) -> Iterator[_Session]:
        """A connection of `pool` (default: the store's) for the caller alone (the writer's, under the
        lock, without a pool)."""
        pool = pool or self._pool
        if pool is None:
            with self._lock:
                yield _Session(self, self._client)
            return
        with ExitStack() as stack:
            try:
                client = stack.enter_context(pool.lend())
            except PoolClosed as exc:
                raise StoreUnavailable(f"{self.description}: {exc}") from None
            yield _Session(self, client)

    def _opener(self, connect: Callable[[], Any]) -> Callable[[], Any]:
        """`connect` with its failures as `StoreUnavailable` (scrubbed), for the pool."""

        def open_connection() -> Any:
            from clickhouse_connect.driver.exceptions import ClickHouseError

            try:
                return connect()
            except (ClickHouseError, OSError) as exc:
                raise StoreUnavailable(self._scrub(f"{self.description}: {exc}")) from None

        return open_connection

    def _scrub(self, message: str) -> str:
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return message

    def command(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        """Run one statement that returns no rows (DDL, INSERT ... SELECT) on the writer's connection,
        with engine `settings` of its own if given."""
        self._call(self._client.command, sql, parameters=bound(parameters), settings=dict(settings or {}))

    def query(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """Run one query on a connection of the pool (never waiting for the writer's inserts);
        `{name:Type}` placeholders are bound server-side from `parameters`."""
        with self._session() as session:
            return session.query(sql, parameters, settings=settings)

    def query_readonly(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        max_rows: int = 10_000,
        timeout_s: float | None = None,
        tenant: str | None = None,
        limits: QueryLimits | None = None,
    ) -> QueryResult:
        """Run user SQL that `guard` accepts (else `QueryRefused`), on the user-query connection.

        What runs is the guard's canonical SQL, with query-level settings the query cannot lift
        (``readonly=1``: no SETTINGS clause may change anything, and the guard refuses one anyway):
        `limits` (time, memory, rows and bytes read, threads), `max_rows` result rows at most (more is
        an error, not a silent truncation; `timeout_s` overrides ``limits.timeout_s``). With `tenant`,
        every table and view of the database is read through ClickHouse's ``additional_table_filters``
        (`tenancy.tenant_filters`), which also applies inside subqueries, CTEs, JOINs and views. An
        empty result names its columns and their types too.
        """
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        limits = limits or QueryLimits()
        if timeout_s is not None:
            limits = QueryLimits(
                timeout_s,
                limits.max_memory,
                limits.max_rows_to_read,
                limits.max_bytes_to_read,
                limits.max_threads,
            )
        with self._user_lock:
            if self._user_refused:
                raise StoreUnavailable(f"{self.description}: the store is closing; no new queries")
            self._user_running += 1
        try:
            guard = self.guard
            checked = guard.check(sql, tenant_scoped=tenant is not None)
            settings = limits.settings(max_rows)
            if tenant is not None:
                settings["additional_table_filters"] = tenant_filters(
                    self.database, guard.catalog().tables.items(), tenant
                )
            marked = f"/* {self._user_marker} */ {checked.sql}"  # found by `cancel_user_queries`
            values = {**(parameters or {}), **checked.parameters}
            if tenant is None or self._tenant_pool is None:
                return self._read(marked, values, settings, described=True)
            settings["role"] = tenant_role(self.database, tenant)  # the tenant's row policies
            try:
                return self._read(marked, values, settings, self._tenant_pool, described=True)
            except StoreError as exc:
                if error_code(exc) in _ROLE_ERRORS:
                    raise StoreError(
                        f"tenant {tenant!r} has no row policies on the server for the tenant reader: run "
                        f"`tokenbook tenants policies` ({exc})"
                    ) from None
                raise
        finally:
            with self._user_lock:
                self._user_running -= 1

    def cancel_user_queries(self, *, refuse_new: bool = False, wait: float = 0.0) -> int:
        """Cancel the user queries (`query_readonly`) of this store that are running; returns how many.
        Each ends with an error for its caller (``QUERY_WAS_CANCELLED``). With `refuse_new`, every
        later `query_readonly` is refused (`StoreUnavailable`: a shutdown). With `wait`, a query still
        being checked by the guard is cancelled too, once it runs: the engine is asked again until no
        user query is left in progress or `wait` seconds passed."""
        with self._user_lock:
            self._user_refused = self._user_refused or refuse_new
        pools = [p for p in (self._pool, self._tenant_pool) if p is not None]
        if not pools:
            return 0
        deadline = time.monotonic() + wait
        cancelled: set[str] = set()
        while True:
            ids: list[str] = []
            for pool in pools:  # each user kills its own queries
                with self._session(pool) as session:
                    _, _, rows = session.query(
                        render_query("user_queries_running.sql", self.database),
                        {"head": self._user_marker[:10], "tail": self._user_marker[10:]},
                    )
                    found = sorted({query_id for (query_id,) in rows} - cancelled)
                    if found:
                        session.command(
                            "KILL QUERY WHERE query_id IN {ids:Array(String)} ASYNC", {"ids": found}
                        )
                ids += found
            cancelled.update(ids)
            with self._user_lock:
                running = self._user_running
            if running <= len(ids) or time.monotonic() >= deadline:
                return len(cancelled)
            time.sleep(0.05)

    @property
    def guard(self) -> SqlGuard:
        """The `SqlGuard` of this store: parses with the store's own engine when it can."""
        if self._guard is None:
            parse_settings = QueryLimits(
                timeout_s=10, max_rows_to_read=10, max_bytes_to_read=1 << 20
            ).settings(1)

            def read(sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
                return self._read(sql, parameters, {"readonly": 1})[2]

            def parse(sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
                try:
                    return self._read(sql, parameters, parse_settings)[2]
                except StoreUnavailable:
                    raise
                except StoreError as exc:
                    raise EngineRefusal(str(exc)) from None

            engine = self.description  # the guards of one engine read its table functions once
            if self.embedded or self._server_parses():
                self._guard = SqlGuard(self.database, parse, read, engine=engine)
            else:
                self._guard = SqlGuard(self.database, _local_parser(), read, engine=engine)
        return self._guard

    def _server_parses(self) -> bool:
        """Whether the server has the parser functions the guard needs (ClickHouse 26.x)."""
        rows = self._read(render_query("server_parser_functions.sql", self.database), {}, {"readonly": 1})[2]
        return int(rows[0][0]) == 3

    def _read(
        self,
        sql: str,
        parameters: Mapping[str, Any],
        settings: Mapping[str, Any],
        pool: ConnectionPool | None = None,
        *,
        described: bool = False,
    ) -> QueryResult:
        """One query on a connection of `pool` (default: the store's), outside the store's lock. With
        `described`, an empty result that came without its columns (the embedded engine sends no block
        at all for one) gets them from ``DESCRIBE`` of the same query, with the same settings but the
        result-row limit (one row per column)."""
        with self._session(pool) as session:
            columns, types, rows = session.query(sql, parameters, settings=settings)
            if rows or columns or not described:
                return columns, types, rows
            unlimited = {k: v for k, v in settings.items() if k != "max_result_rows"}
            _, _, found = session.query(f"DESCRIBE TABLE ({sql})", parameters, settings=unlimited)
        return [str(r[0]) for r in found], [str(r[1]) for r in found], []

    def policy_tables(self) -> list[PolicyTable]:
        """The tables (not views) of the store's database, and which have a ``tenant_id`` column: what
        per-tenant row policies cover (`row_policies.policy_statements`)."""
        _, _, rows = self.query(render_query("policy_tables.sql", self.database), {"db": self.database})
        return [PolicyTable(str(name), bool(has_tenant)) for name, has_tenant in rows]

    def tenant_roles(self) -> list[str]:
        """The tenant roles of the store's database on the server (`row_policies.tenant_role`)."""
        sql = render_query("tenant_roles.sql", self.database)
        _, _, rows = self.query(sql, {"prefix": role_prefix(self.database)})
        return [str(name) for (name,) in rows]

    def ping(self) -> bool:
        """True when the store answers a trivial query."""
        try:
            self.query("SELECT 1")
        except StoreError:
            return False
        return True

    # -- writes and aggregates ------------------------------------------------------------------

    def write(
        self,
        calls: Sequence[CallRow],
        steps: Sequence[StepRow],
        *,
        blocks: tuple[bytes, bytes] | None = None,
        touched: Touched | None = None,
    ) -> None:
        """Insert ledger rows (one insert per table) and remember which aggregate keys they touch.

        The rows are sent in `rowcodec.BLOCK_FORMAT` and parsed by ClickHouse (no Python-side Native
        serialisation). `blocks` = (calls block, steps block) already encoded by
        `rowcodec.encode_block`/`join_blocks` for exactly these rows (the write-ahead log's bytes);
        without it they are encoded here. `touched`: what the rows touch (`touched.Touched`), when
        the caller has it without the rows (then `calls` and `steps` may be empty and `blocks` is
        required). Idempotent: writing the same spans again changes no total once read with FINAL.
        Call `refresh_aggregates()` afterwards (the collector's writer does).
        """
        if blocks is None:
            blocks = (encode_block("llm_calls", calls), encode_block("context_steps", steps))
        call_block, step_block = blocks
        if touched is None:
            touched = Touched.of(calls, steps)
        with self._lock:
            if touched.oldest is not None:
                self._note_unrefreshed(touched.oldest)
            if call_block:
                self._insert("llm_calls", call_block, CALL_COLUMNS, touched.calls)
            if step_block:
                self._insert("context_steps", step_block, STEP_COLUMNS, touched.steps)
            self._touched_contexts.update(touched.contexts)
            self._touched_decisions.add(touched.decisions)
            self._touched_hours.update((t, datetime.fromtimestamp(h * 3600, UTC)) for t, h in touched.hours)
            self._writes += 1

    def _insert(
        self, table: str, block: bytes, columns: Sequence[str], rows: int, client: Any = None
    ) -> None:
        """Insert a `rowcodec` block on `client` (default: the writer's, whose lock the caller holds)."""
        started = time.perf_counter()
        self._mapped(
            (client or self._client).raw_insert,
            f"{self.database}.{table}",
            list(columns),
            insert_block=block,
            fmt=BLOCK_FORMAT,
            settings=self._insert_settings,
        )
        _log.debug("inserted %d rows into %s in %.1f ms", rows, table, 1000 * (time.perf_counter() - started))

    def quarantine(self, entries: Sequence[tuple[Any, ...]]) -> None:
        """Insert rows of the ``quarantine`` table (`QUARANTINE_COLUMNS` order; times as datetimes)."""
        if not entries:
            return
        cols: list[Any] = [
            [v.isoformat() if isinstance(v, datetime) else v for v in c] for c in zip(*entries, strict=True)
        ]
        block = json.dumps(cols, separators=(",", ":")).encode("ascii")  # any text, escaped
        with self._lock:
            self._insert("quarantine", block, QUARANTINE_COLUMNS, len(entries))

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert `rows` (values in `columns` order) into `table` of the store's database: dates and
        times as ISO text, Decimal as its exact text, None as NULL (e.g. the FOCUS export record)."""
        if not rows:
            return

        def text(v: Any) -> Any:
            if isinstance(v, datetime | date):
                return v.isoformat()
            return f"{v:f}" if isinstance(v, Decimal) else v

        cols = [[text(v) for v in c] for c in zip(*rows, strict=True)]
        block = json.dumps(cols, separators=(",", ":")).encode("ascii")
        with self._lock:
            self._insert(table, block, columns, len(rows))

    def replay_quarantine(self) -> tuple[int, int]:
        """Insert every quarantined row again; return (replayed, still refused). A replayed entry is
        marked ``replayed``; a refused one keeps ``quarantined`` with the new reason. A store that cannot
        be reached raises `StoreUnavailable` (what was replayed so far stays replayed)."""
        _, _, rows = self.query(render_query("quarantine_to_replay.sql", self.database))
        replayed = refused = 0
        for table, text in rows:
            (row,) = decode_block(table, text.encode("utf-8", "surrogateescape"))
            calls, steps = ([row], []) if table == "llm_calls" else ([], [row])
            try:
                self.write(calls, steps)
            except StoreUnavailable:
                raise
            except StoreError as exc:
                self.quarantine([quarantine_entry(table, row, error_code(exc) or 0, str(exc)[:2000])])
                refused += 1
                continue
            self.quarantine([quarantine_entry(table, row, 0, "replayed", state="replayed")])
            replayed += 1
        if replayed:
            self.refresh_aggregates()
        return replayed, refused

    def refresh_aggregates(
        self, *, since: datetime | None = None, hourly: bool = True, slices: int | None = None
    ) -> int:
        """Recompute `context_costs` and the hourly roll-ups (`cost_hourly`, then `tenant_hourly` and
        `model_hourly` from it) for every key touched since the last refresh.

        With `since`, also every key of rows ingested from `since` until now (recovery after a crash
        between a write and its refresh), in slices of `recover_rows` rows ingested, oldest first:
        each slice's keys are read, decided and recomputed before the next one is read, so memory is
        bounded by a slice whatever the window holds, and the refresh lock is let go between slices
        (the writer's own refreshes go on). The part not recovered yet stays pending (and under the
        refresh watermark) if this call fails or is interrupted; the next call with `since` resumes
        it; with `slices`, the call returns after that many slices (`recovering` tells whether more
        are left). With ``hourly=False`` only `context_costs` is recomputed and the touched hours stay
        pending for a later call (the writer refreshes the hourly roll-ups less often: each of its
        refreshes rescans whole hours). Returns the number of keys recomputed. On failure the keys
        stay pending and the next call retries them. When nothing is left pending, the refresh
        watermark (`track_refresh`) moves to now.

        The keys go in slices of at most `refresh_keys` of each kind (``storage.refresh.max_keys``;
        `storage.slicing`): a slice decides its traces, then recomputes its contexts and hours, before
        the next is taken, so a burst's backlog is held a slice at a time. A call refreshes as many
        slices as were pending when it started and, unless writes came meanwhile, those its own
        decisions re-touched; the rest waits for the next call (`refresh_pending`). A recovery slice
        is read only once the keys pending fit in a slice.

        One refresh runs at a time, on a connection of the pool: the store's lock is held only to take
        the pending keys (and to put them back on failure), so writes go on meanwhile; what they touch
        is left for the next refresh.
        """
        if since is not None:
            with self._lock:
                if self._recover_since is None:  # a new recovery: up to now (later rows are touched)
                    self._recover_since, self._recover_until = since, datetime.now(UTC)
                    self._recover_from = since
                elif self._recover_from is None or since < self._recover_from:  # earlier: from there
                    self._recover_since = self._recover_from = since
        with self._lock:
            budget, writes = self._slices_pending(hourly=hourly), self._writes
        extended = False
        total = done = 0
        try:
            while True:
                keys, more = self._refresh_once(hourly=hourly, recover=since is not None)
                total += keys
                done += 1
                if slices is not None and done >= slices:
                    return total
                if more or done < budget:
                    if not more and not self.refresh_pending(hourly=hourly):
                        return total
                    continue
                with self._lock:  # what the slices' own decisions re-touched: once more, unless written
                    if extended or self._writes != writes or not self._slices_pending(hourly=hourly):
                        return total
                    budget += self._slices_pending(hourly=hourly)
                    extended = True
        finally:
            if self.release_memory:
                self.release_freed_memory()

    def release_freed_memory(self) -> None:
        """Hand back to the kernel the memory freed and kept for later (`storage.engine`): the process
        heap's free pages and, embedded, the engine allocator's. Never raises."""
        if self.embedded:
            try:
                with self._session() as session:
                    session.command(render_query("jemalloc_purge.sql", self.database))
            except Exception as exc:  # noqa: BLE001 - memory only: an engine without the statement
                _log.debug("the engine's allocator did not release its free pages: %s", exc)
        trim_heap()

    def refresh_pending(self, *, hourly: bool = False) -> bool:
        """Keys written (or re-decided) and not refreshed yet: contexts or decision keys, and with
        `hourly` also hours (`refresh_aggregates`)."""
        with self._lock:
            return bool(self._touched_contexts or self._touched_decisions or (hourly and self._touched_hours))

    def _slices_pending(self, *, hourly: bool) -> int:
        """Slices the keys pending now take (the store's lock held)."""
        most = self.refresh_keys
        hours = len(self._touched_hours) if hourly else 0
        return max(
            slices_needed(most, len(self._touched_contexts), hours),
            self._touched_decisions.slices(),
        )

    @property
    def recovering(self) -> bool:
        """Rows ingested before the restart are still to recover (`refresh_aggregates(since=...)`)."""
        return self._recover_since is not None

    def _refresh_once(self, *, hourly: bool, recover: bool) -> tuple[int, bool]:
        """One refresh of the touched keys, with the next recovery slice when `recover`; returns the
        keys recomputed and whether recovery slices are left."""
        with self._refresh_lock, self._session() as session:
            piece: tuple[datetime, datetime] | None = None
            if recover:
                session.settings = _RECOVER_SETTINGS
                with self._lock:
                    lo, until = self._recover_since, self._recover_until
                    behind = self._slices_pending(hourly=False) > 1  # the last piece's keys come first
                if lo is not None and until is not None and not behind:
                    hi = self._ingested_bound(session, lo, until, self.recover_rows, newest=False) or until
                    self._touch_ingested(session, lo, hi)
                    piece = (lo, hi)
            self._decide(session)
            with self._lock:
                contexts = take(self._touched_contexts, self.refresh_keys)
                hours: set[tuple[str, datetime]] = set()
                if hourly:  # neighbouring hours together: a statement per month at most
                    hours = take(self._touched_hours, self.refresh_keys, lambda k: (k[1], k[0]))
            ordered = sorted(contexts)
            try:
                self._refresh_contexts(session, ordered)
            except BaseException:
                with self._lock:
                    self._touched_contexts |= contexts
                    self._touched_hours |= hours
                raise
            if ordered and self.on_refreshed is not None:
                self.on_refreshed(ordered)
            try:  # recovering: an hour per statement (each rescans its hour)
                self._refresh_hours(session, sorted(hours), 1 if recover else None)
            except BaseException:
                with self._lock:
                    self._touched_hours |= hours
                raise
            with self._lock:  # a write in progress holds the lock: its keys are pending or to come
                if piece is not None and self._recover_since == piece[0]:
                    done = self._recover_until is None or piece[1] >= self._recover_until
                    self._recover_since = None if done else piece[1]
                    if done:
                        self._recover_until = None
                more = recover and self._recover_since is not None
                if not (self._touched_contexts or self._touched_hours or self._touched_decisions):
                    self._unrefreshed_since = None
                    self._persist_watermark(datetime.now(UTC))
        return len(contexts) + len(hours), more

    def track_refresh(self, path: Path) -> datetime | None:
        """Keep the refresh watermark in the file `path` and return the one found there (None: none).

        The watermark W is a time such that every ledger row ingested before W that this store wrote
        has its aggregates recomputed: after a crash, `refresh_aggregates(since=W)` recomputes all
        that may be stale, and after a clean stop (everything refreshed) nothing. It moves to now when
        a refresh leaves nothing pending, and back, before the insert, to the oldest ``ingested_at``
        of a write that is older than it (rows can wait in the write-ahead log).
        """
        with self._lock:
            self._watermark_path = path
            try:
                text = path.read_text(encoding="utf-8")
                self._watermark = datetime.fromisoformat(json.loads(text)["refreshed_until"])
            except FileNotFoundError:
                self._watermark = None
            except (OSError, ValueError, KeyError, TypeError) as exc:
                _log.warning("ignoring unreadable refresh watermark %s: %s", path, exc)
                self._watermark = None
            return self._watermark

    def _note_unrefreshed(self, oldest: datetime) -> None:
        """Rows ingested at `oldest` or later are about to be written: lower the watermark first."""
        if self._unrefreshed_since is None or oldest < self._unrefreshed_since:
            self._unrefreshed_since = oldest
        if self._watermark_path is not None and (self._watermark is None or oldest < self._watermark):
            self._persist_watermark(oldest)

    def _persist_watermark(self, value: datetime) -> None:
        path = self._watermark_path
        if path is None:
            return
        for pending in (self._unrefreshed_since, self._recover_since):
            if pending is not None and pending < value:
                value = pending
        if value == self._watermark:
            return
        tmp = path.with_name(path.name + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"refreshed_until": value.isoformat()}), encoding="utf-8")
        tmp.replace(path)
        self._watermark = value

    def decide(self) -> list[DecisionChange]:
        """Run the decision pass over the candidates touched since the last one (`storage.decisions`),
        write the rows it changed and hand them to `on_decisions`. Run by `refresh_aggregates`; on
        failure the keys stay pending."""
        with self._refresh_lock, self._session() as session:
            return self._decide(session)

    def _decide(self, session: _Session) -> list[DecisionChange]:
        with self._lock:
            keys = self._touched_decisions.take()
        if not keys:
            return []
        try:
            changes, pending = run_pass(session, keys, self._refresh_chunk)
            new = [after for _, after in changes]
            if new:
                session.insert("llm_calls", encode_block("llm_calls", new), CALL_COLUMNS, len(new))
        except BaseException:
            with self._lock:
                self._touched_decisions.put_back(keys)
            raise
        with self._lock:
            self._touched_contexts.update({(c.tenant_id, c.context_id) for c in new})
            hours = {(c.tenant_id, c.timestamp.timestamp() // 3600) for c in new}
            self._touched_hours.update((t, datetime.fromtimestamp(h * 3600, UTC)) for t, h in hours)
            self._touched_decisions.add(pending)
            self.decision_changes += len(changes)
        if changes and self.on_decisions is not None:
            self.on_decisions(changes)
        return changes

    def _touch_ingested(self, session: _Session, since: datetime, until: datetime) -> None:
        """Mark for the refresh every key of the rows ingested in [since, until)."""
        params = {"since": since, "until": until}
        _, _, keys = session.query(render_query("decision_keys_since.sql", self.database), params)
        found = DecisionKeys()
        for row in keys:
            found.add_call(KeyFacts(*row))
        with self._lock:
            self._touched_decisions.add(found)
        del keys
        _, _, rows = session.query(render_query("touched_since.sql", self.database), params)
        with self._lock:
            for tenant_id, context_id, hour in rows:
                self._touched_contexts.add((tenant_id, context_id))
                if hour is not None:
                    self._touched_hours.add((tenant_id, hour))

    def _ingested_bound(
        self, session: _Session, since: datetime, until: datetime, rows: int, *, newest: bool
    ) -> datetime | None:
        """The ingestion time that ends a slice of at most `rows` calls and steps ingested in [since,
        until), taken from the oldest end (the slice is [since, bound)) or, with `newest`, from the
        newest end (the slice is [bound, until)); None when the whole range fits in one slice."""
        _, _, found = session.query(
            render_query("ingested_bound.sql", self.database),
            {"since": since, "until": until, "rows": rows, "newest": int(newest)},
        )
        if not found:
            return None
        bound: datetime = found[0][0]
        if newest:  # `bound` is the (rows+1)-th newest: the slice is what is newer
            bound += timedelta(microseconds=1)
            return bound if bound < until else until - timedelta(microseconds=1)
        return bound if bound > since else since + timedelta(microseconds=1)

    def span_key_slices(self, since: datetime, until: datetime, rows: int) -> Iterator[KeySlice]:
        """The dedup keys (`ingest.dedup.record_key`, 16 bytes each, concatenated) of the calls and
        steps ingested in [since, until), newest first, in slices of about `rows` spans (more only when
        more spans share one ingestion time): the warm-up of the dedup memory, which stops reading
        when it is full. Each slice is one query returning 16 bytes a span; memory is bounded by the
        slice, whatever the window holds."""
        hi = until
        while hi > since:
            with self._session() as session:
                bound = self._ingested_bound(session, since, hi, rows, newest=True)
                lo = since if bound is None else bound
                raw = self._mapped(
                    session.client.raw_query,
                    render_query("span_key_slice.sql", self.database),
                    parameters={"since": lo, "until": hi},
                    fmt="RowBinary",
                )
            yield KeySlice(bytes(raw), lo, hi)
            hi = lo

    def _refresh_contexts(self, session: _Session, keys: list[tuple[str, str]]) -> None:
        sql = render_query("refresh_context_costs.sql", self.database)
        for chunk in _chunks(keys, self._refresh_chunk):
            tenants, contexts = sorted({t for t, _ in chunk}), sorted({c for _, c in chunk})
            session.command(sql, {"tenants": tenants, "contexts": contexts})

    def _refresh_hours(
        self, session: _Session, keys: list[tuple[str, datetime]], hours_per_statement: int | None = None
    ) -> None:
        sql = render_query("refresh_cost_hourly.sql", self.database)
        by_tenant = render_query("refresh_tenant_hourly.sql", self.database)
        by_model = render_query("refresh_model_hourly.sql", self.database)
        for chunk in _month_chunks(keys, self._refresh_chunk, hours_per_statement):
            tenants, hours = sorted({t for t, _ in chunk}), sorted({h for _, h in chunk})
            params = {
                "tenants": tenants,
                "hours": hours,
                "since": hours[0],
                "until": hours[-1] + timedelta(hours=1),
            }
            session.command(sql, params)
            session.command(by_tenant, {"tenants": tenants, "hours": hours})
            session.command(by_model, {"hours": hours})

    def rebuild_rollups(self) -> None:
        """Fill `tenant_hourly` and `model_hourly` from the whole of `cost_hourly` (after migration 050
        on a store with data; harmless to repeat: each group's row is replaced)."""
        with self._lock:
            for statement in render(load_sql("backfill_rollups.sql"), SchemaTarget(database=self.database)):
                self.command(statement)


class _Session:
    """One connection of the store, lent to one caller: queries, statements and inserts with the
    store's error mapping (`Store._mapped`). The decision pass reads through it (`decisions._Source`)."""

    def __init__(self, store: Store, client: Any) -> None:
        self.store = store
        self.client = client
        self.database = store.database
        self.settings: Mapping[str, Any] = {}  # engine settings of every query and statement

    def query(
        self,
        sql: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """Run one query (`Store.query`)."""
        result = self.store._mapped(
            self.client.query,
            sql,
            parameters=bound(parameters),
            settings={**self.settings, **(settings or {})},
        )
        return list(result.column_names), [t.name for t in result.column_types], list(result.result_rows)

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> None:
        """Run one statement that returns no rows (`Store.command`)."""
        self.store._mapped(
            self.client.command, sql, parameters=bound(parameters), settings=dict(self.settings)
        )

    def insert(self, table: str, block: bytes, columns: Sequence[str], rows: int) -> None:
        """Insert a `rowcodec` block of `rows` rows into `table` of the store's database."""
        self.store._insert(table, block, columns, rows, self.client)


def _server_connector(url: str) -> tuple[Callable[[], Any], str]:
    """A function that opens one HTTP client to the server of `url`, and the URL's password."""
    import clickhouse_connect

    parts = urlsplit(url)
    secret = unquote(parts.password or "")
    server: dict[str, Any] = {
        "host": parts.hostname,
        "port": parts.port or (8443 if parts.scheme == "https" else 8123),
        "username": unquote(parts.username or "default"),
        "password": secret,
        "secure": parts.scheme == "https",
    }

    def connect() -> Any:
        return clickhouse_connect.get_client(
            **server,
            tz_mode="aware",
            autogenerate_session_id=False,
            connect_timeout=10,
            send_receive_timeout=300,
        )

    return connect, secret


def _local_parser() -> Callable[[str, Mapping[str, Any]], list[tuple[Any, ...]]]:
    """The bundled chDB engine (in memory) as the guard's parser, for a server without one."""
    import clickhouse_connect

    client = clickhouse_connect.get_client(dsn="chdb://:memory:")
    lock = threading.Lock()

    def parse(sql: str, parameters: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        from clickhouse_connect.driver.exceptions import ClickHouseError

        with lock:
            try:
                result = client.query(sql, parameters=dict(parameters), settings={"readonly": 1})
            except ClickHouseError as exc:
                raise EngineRefusal(str(exc)) from None
            return [tuple(row) for row in result.result_rows]

    return parse


def _month_chunks(
    keys: list[tuple[str, datetime]], size: int, max_hours: int | None = None
) -> Iterable[list[tuple[str, datetime]]]:
    """(tenant, hour) keys in chunks of at most `size` keys, `PARTITIONS_PER_INSERT` months and
    `max_hours` hours (None: any)."""
    chunk: list[tuple[str, datetime]] = []
    months: set[tuple[int, int]] = set()
    hours: set[datetime] = set()
    for key in sorted(keys, key=lambda k: (k[1], k[0])):
        month = (key[1].year, key[1].month)
        if (
            len(chunk) >= size
            or (month not in months and len(months) >= PARTITIONS_PER_INSERT)
            or (max_hours is not None and key[1] not in hours and len(hours) >= max_hours)
        ):
            yield chunk
            chunk, months, hours = [], set(), set()
        chunk.append(key)
        months.add(month)
        hours.add(key[1])
    if chunk:
        yield chunk


def _chunks(keys: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]
