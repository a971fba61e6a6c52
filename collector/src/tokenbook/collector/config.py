"""The collector's configuration: YAML shaped like an OpenTelemetry Collector config, loaded once.

`load_config` reads the file (or nothing: every key has a default), applies command-line overrides,
validates everything and returns a frozen `CollectorConfig`. Validation collects *every* problem with
its full key path (``receivers.otlp.protocols.grpc.endpoint: must be HOST:PORT``) and raises one
`ConfigError`; unknown keys are errors. Secrets (`storage.clickhouse.url`, `privacy.salt`) are
`Secret` values whose ``repr``/``str`` never show the secret.

`CollectorConfig` composes the sections, each a frozen class declared with
`tokenbook.genai.configspec` (default, parser and description beside each field) and owned by its
component where it has one: `StorageConfig` (storage), `LimitsConfig` (limits), `AuthConfig` (auth),
`TLSConfig` (tls), `BudgetsConfig` (budgets), `ReconcileConfig` (reconcile). The receivers, admin,
pricing, attribution, privacy, dedup and telemetry sections are declared here.
``docs/reference/config.md`` is generated from them (``python -m tokenbook.cli.configdoc``).

Durations accept seconds as a number or a string with a unit (``250ms``, ``2s``, ``1m``, ``1h``);
sizes accept bytes as an integer or a string with a unit (``64KiB``, ``16MiB``, ``1GiB``, ``10MB``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

import yaml

from tokenbook.collector.auth import AuthConfig, TokenTable
from tokenbook.collector.budgets.config import BudgetsConfig
from tokenbook.collector.budgets.drift import ReconcileConfig
from tokenbook.collector.limits import LimitsConfig
from tokenbook.collector.storage.config import BatchConfig, ClickHouseConfig, SpoolConfig, StorageConfig
from tokenbook.collector.storage.engine import HeapTuning
from tokenbook.collector.storage.guard import QueryLimits
from tokenbook.collector.storage.location import DEFAULT_DATA_DIR, redact_url
from tokenbook.collector.tls import TLSConfig, parse_tls
from tokenbook.genai.attribution import POLICY_PATH_KEY, policy_key
from tokenbook.genai.configspec import (
    Report,
    Secret,
    duration,
    duration_or_zero,
    endpoint,
    int_in,
    load,
    non_negative_int,
    non_negative_number,
    one_of,
    path,
    positive_int,
    section,
    setting,
    size,
    size_or_zero,
    type_name,
)
from tokenbook.genai.redaction import REDACTION_MODES, is_content_attribute
from tokenbook.genai.yamlfiles import read_yaml

__all__ = [
    "DEFAULT_DATA_DIR",
    "AdminConfig",
    "AttributionConfig",
    "BatchConfig",
    "ClickHouseConfig",
    "CollectorConfig",
    "ConfigError",
    "DedupConfig",
    "PricingConfig",
    "PrivacyConfig",
    "ReceiverConfig",
    "Secret",
    "SpoolConfig",
    "TelemetryConfig",
    "load_config",
    "parse_duration",
    "parse_positive_int",
    "redact_url",
]

_MIB: Final = 1024 * 1024

#: Kept for callers of the former names.
parse_duration: Final = duration
parse_positive_int: Final = positive_int


class ConfigError(ValueError):
    """Every problem found in a config, each prefixed by its key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid collector config:\n  " + "\n  ".join(problems))


@type_name("list of attribute names")
def _key_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(k, str) and k for k in v):
        raise ValueError("must be a list of attribute names")
    content = [k for k in v if is_content_attribute(k)]
    if content:
        raise ValueError(
            f"{', '.join(map(repr, content))} carry prompt or completion content, which is never a tag: "
            "privacy.content alone decides whether content is dropped, hashed or kept"
        )
    return tuple(v)


@type_name("secret string")
def _salt(v: Any) -> Secret:
    if not isinstance(v, str) or len(v) < 8:
        raise ValueError("must be a string of at least 8 characters")
    return Secret(v)


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """One OTLP protocol endpoint."""

    endpoint: str = setting("127.0.0.1:4317", parse=endpoint, doc="The listening address.")
    max_request_bytes: int = setting(
        16 * _MIB,
        parse=size,
        doc="Larger requests are refused (HTTP 413 / gRPC RESOURCE_EXHAUSTED).",
    )
    tls: TLSConfig | None = setting(
        None, parse=parse_tls, shape=TLSConfig, type_doc="mapping", doc="TLS; absent: plaintext."
    )


@dataclass(frozen=True, slots=True)
class ProtocolsConfig:
    """``receivers.otlp.protocols``: the gRPC and HTTP endpoints."""

    grpc: ReceiverConfig = section(
        ReceiverConfig,
        default=ReceiverConfig(endpoint="127.0.0.1:4317"),
        doc="OTLP/gRPC (`TraceService/Export`). Command line: `--grpc HOST:PORT`.",
    )
    http: ReceiverConfig = section(
        ReceiverConfig,
        default=ReceiverConfig(endpoint="127.0.0.1:4318"),
        doc="OTLP/HTTP (`POST /v1/traces`). Command line: `--http HOST:PORT`.",
    )


@dataclass(frozen=True, slots=True)
class OTLPConfig:
    """``receivers.otlp``."""

    protocols: ProtocolsConfig = section(ProtocolsConfig, doc="The endpoints.")
    max_inflight_spans: int = setting(
        200_000,
        parse=positive_int,
        doc="Spans being decoded and logged at once; beyond, requests get 429 / RESOURCE_EXHAUSTED.",
    )
    max_inflight_bytes: int = setting(
        64 * _MIB,
        parse=size,
        doc="Request bodies being decoded and logged at once, in bytes; beyond, requests get 429 / "
        "RESOURCE_EXHAUSTED (one request is always let in, up to `max_request_bytes`).",
    )
    decode_processes: int = setting(
        2,
        parse=non_negative_int,
        doc="Child processes decoding request bodies; 0: decode in the receivers. With two or more, a "
        "large protobuf request (64 KiB or more) is decoded in parts, one on each idle child at once, "
        "so that the answer comes sooner.",
    )
    ack: str = setting(
        "logged",
        parse=one_of(("logged", "built")),
        doc="When a request is answered: `logged` once it is decoded, checked and its span records are in "
        "the write-ahead log (rows are built behind the answer by `build_processes`); `built` once its "
        "rows are logged.",
    )
    build_processes: int = setting(
        0,
        parse=non_negative_int,
        doc="Worker processes building rows behind the answer (`ack: logged`); 0: one per core.",
    )
    build_nice: int = setting(
        10,
        parse=int_in(0, 19),
        doc="How much lower the CPU priority of the `build_processes` is (the Linux nice increment): the "
        "decoding an answer waits for, and the applications sharing the host, go first; 0: the same.",
    )


@dataclass(frozen=True, slots=True)
class ReceiversConfig:
    """The ``receivers`` section."""

    otlp: OTLPConfig = section(OTLPConfig, doc="The OTLP receivers.")


_QUERY_LIMITS: Final = QueryLimits()  # the defaults of the admin.query_* limits


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The admin API: health, readiness, metrics and queries."""

    endpoint: str = setting(
        "127.0.0.1:4319", parse=endpoint, doc="The listening address. Command line: `--admin HOST:PORT`."
    )
    query_timeout: float = setting(30.0, parse=duration, doc="Longest run of one `POST /v1/query`.")
    query_max_rows: int = setting(100_000, parse=positive_int, doc="Most rows one query returns.")
    tls: TLSConfig | None = setting(
        None,
        parse=parse_tls,
        shape=TLSConfig,
        type_doc="mapping",
        doc="TLS for the admin API; absent: plaintext.",
    )
    query_max_memory: int = setting(
        _QUERY_LIMITS.max_memory, parse=size, doc="Most memory one query may use (bytes or `1GiB`)."
    )
    query_max_rows_to_read: int = setting(
        _QUERY_LIMITS.max_rows_to_read,
        parse=non_negative_int,
        doc="Most rows one query may read; 0: no limit.",
    )
    query_max_bytes_to_read: int = setting(
        _QUERY_LIMITS.max_bytes_to_read,
        parse=size_or_zero,
        doc="Most bytes one query may read (bytes or `100GiB`); 0: no limit.",
    )
    query_max_threads: int = setting(
        _QUERY_LIMITS.max_threads,
        parse=non_negative_int,
        doc="Threads one query may use (fewer leaves more CPU to ingest); 0: the engine's default.",
    )
    query_concurrency: int = setting(
        4,
        parse=positive_int,
        doc="`POST /v1/query` queries running at once (at most `limits.workers` - 1, so that other "
        "requests keep a worker); one more waits up to `query_queue_timeout` for a slot, then gets 429 "
        "with `Retry-After: 1`.",
    )
    query_queue_timeout: float = setting(
        2.0,
        parse=duration_or_zero,
        default_doc="2s",
        doc="How long a query waits for a slot (`query_concurrency`) before it is refused; 0: refused at "
        "once when every slot is taken.",
    )

    @property
    def query_limits(self) -> QueryLimits:
        """The limits of a ``/v1/query`` query (`Store.query_readonly`), which the query cannot lift."""
        return QueryLimits(
            self.query_timeout,
            self.query_max_memory,
            self.query_max_rows_to_read,
            self.query_max_bytes_to_read,
            self.query_max_threads,
        )


@dataclass(frozen=True, slots=True)
class PricingConfig:
    """The ``pricing`` section."""

    overrides: Path | None = setting(
        None,
        parse=path,
        doc="A price overrides file (format below); absent: catalog prices only. "
        "Command line: `--overrides FILE`.",
    )
    books: Path | None = setting(
        None,
        parse=path,
        doc="A price books file: what each tenant is billed (format below); absent: every tenant is billed "
        "the list price. Command line: `--books FILE`.",
    )


@dataclass(frozen=True, slots=True)
class AttributionConfig:
    """The ``attribution`` section."""

    extra_keys: tuple[str, ...] = setting(
        (),
        parse=_key_list,
        doc="Span attributes kept as tags besides the standard attribution keys. Content attributes "
        "(`gen_ai.prompt`, `input.value`, ...) are refused: `privacy.content` alone governs them.",
    )
    policy_path_key: str = setting(
        POLICY_PATH_KEY,
        parse=policy_key,
        doc="The span attribute whose value is a call's policy path (the guard or route it went "
        "through), stored in `llm_calls.policy_path`; the processor's `policy_path_key` must match.",
    )


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    """What happens to prompt and completion content."""

    content: str = setting(
        "drop", parse=one_of(REDACTION_MODES), doc="`drop` it, `keep` it, or `hash` it (salted per tenant)."
    )
    salt: Secret | None = setting(
        None, parse=_salt, doc="The hash salt, 8+ characters (never printed); required for `hash`."
    )

    def check(self, report: Report) -> Self:
        """Hashing needs a salt."""
        if self.content == "hash" and self.salt is None and report.ok("salt"):
            report.problem("salt", "required when privacy.content is hash")
        return self


@dataclass(frozen=True, slots=True)
class DedupConfig:
    """Duplicate spans (retries, re-deliveries) are stored once."""

    max_keys: int = setting(
        1_000_000,
        parse=positive_int,
        doc="Recent span keys remembered (16 bytes each; the oldest eighth is forgotten at a time).",
    )
    warm_hours: float = setting(
        24.0,
        parse=non_negative_number,
        type_doc="hours >= 0",
        doc=(
            "After start, in the background: keys of spans ingested this many hours back are loaded "
            "from storage (at most max_keys), and aggregates are recomputed from the refresh "
            "watermark, at most this far back."
        ),
    )


@dataclass(frozen=True, slots=True)
class HeapConfig:
    """The collector process's C library heap (glibc ``mallopt``), set before its threads start."""

    arenas: int = setting(
        2,
        parse=non_negative_int,
        doc="Heaps (arenas) the collector's threads allocate from (`M_ARENA_MAX`); more let threads "
        "allocate without waiting for each other, and each keeps its own free memory. 0: the C "
        "library's default, 8 per core.",
    )
    mmap_threshold: int = setting(
        256 * 1024,
        parse=size_or_zero,
        doc="Blocks from this size (request bodies, row blocks, query results) are mapped on their own "
        "and handed back to the kernel when freed (`M_MMAP_THRESHOLD`, at most 32 MiB). 0: the C "
        "library's default, 128 KiB rising after each such block freed, up to 32 MiB (the blocks of "
        "a burst then stay in the heaps' free memory).",
    )
    trim_threshold: int = setting(
        4 * _MIB,
        parse=size_or_zero,
        doc="Free memory at the top of the main heap beyond which it is handed back (`M_TRIM_THRESHOLD`). "
        "0: the C library's default (twice the mapping threshold as it rises).",
    )

    def tuning(self) -> HeapTuning:
        """These as `mallopt` parameters."""
        return HeapTuning(self.arenas, self.mmap_threshold, self.trim_threshold)


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """The collector's own logs."""

    summary_interval: float = setting(60.0, parse=duration, doc="Time between summary log lines.")
    log_level: str = setting(
        "info", parse=one_of(("debug", "info", "warning", "error"), lower=True), doc="Log level."
    )


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """The whole collector config, section by section as in the YAML file."""

    receivers: ReceiversConfig = section(ReceiversConfig, doc="Where spans come in.")
    storage: StorageConfig = section(StorageConfig, doc="Where the ledger is kept.")
    admin: AdminConfig = section(AdminConfig, doc="The admin API.")
    pricing: PricingConfig = section(
        PricingConfig, doc="Local prices, used before the built-in catalog, and the tenants' price books."
    )
    attribution: AttributionConfig = section(
        AttributionConfig, doc="Which span attributes attribute spend, besides the standard ones."
    )
    privacy: PrivacyConfig = section(PrivacyConfig, doc="Prompt and completion content.")
    dedup: DedupConfig = section(DedupConfig, doc="Duplicate spans (retries, re-deliveries) are stored once.")
    authentication: AuthConfig = section(AuthConfig, key="auth", doc="Bearer-token authentication.")
    limits: LimitsConfig = section(
        LimitsConfig, doc="Limits that keep one sender from exhausting the collector."
    )
    telemetry: TelemetryConfig = section(TelemetryConfig, doc="The collector's logs.")
    heap: HeapConfig = section(HeapConfig, doc="The collector process's heap.")
    budgets: BudgetsConfig = section(BudgetsConfig, doc="Quotas, budgets, alerts and the breaker.")
    reconcile: ReconcileConfig = section(
        ReconcileConfig, doc="Drift alerts between the provider's imported figures and the ledger."
    )

    @property
    def grpc(self) -> ReceiverConfig:
        """``receivers.otlp.protocols.grpc``."""
        return self.receivers.otlp.protocols.grpc

    @property
    def http(self) -> ReceiverConfig:
        """``receivers.otlp.protocols.http``."""
        return self.receivers.otlp.protocols.http

    @property
    def max_inflight_spans(self) -> int:
        """``receivers.otlp.max_inflight_spans``."""
        return self.receivers.otlp.max_inflight_spans

    @property
    def max_inflight_bytes(self) -> int:
        """``receivers.otlp.max_inflight_bytes``."""
        return self.receivers.otlp.max_inflight_bytes

    @property
    def decode_processes(self) -> int:
        """``receivers.otlp.decode_processes``."""
        return self.receivers.otlp.decode_processes

    @property
    def ack(self) -> str:
        """``receivers.otlp.ack``."""
        return self.receivers.otlp.ack

    @property
    def build_processes(self) -> int:
        """``receivers.otlp.build_processes``."""
        return self.receivers.otlp.build_processes

    @property
    def build_nice(self) -> int:
        """``receivers.otlp.build_nice``."""
        return self.receivers.otlp.build_nice

    @property
    def clickhouse(self) -> ClickHouseConfig:
        """``storage.clickhouse``."""
        return self.storage.clickhouse

    @property
    def spool(self) -> SpoolConfig:
        """``storage.spool`` (its directory resolved)."""
        return self.storage.spool

    @property
    def batch(self) -> BatchConfig:
        """``storage.batch``."""
        return self.storage.batch

    @property
    def pricing_overrides(self) -> Path | None:
        """``pricing.overrides``."""
        return self.pricing.overrides

    @property
    def extra_attribution_keys(self) -> tuple[str, ...]:
        """``attribution.extra_keys``."""
        return self.attribution.extra_keys

    @property
    def auth(self) -> TokenTable | None:
        """The accepted tokens; None: no authentication (``auth.enabled`` false)."""
        return self.authentication.table


def _set_path(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for p in parents:
        child = node.get(p)
        if not isinstance(child, dict):
            child = node[p] = {}
        node = child
    node[leaf] = value


def load_config(
    path: str | Path | None = None,
    *,
    data_dir: str | None = None,
    grpc: str | None = None,
    http: str | None = None,
    admin: str | None = None,
    overrides: str | None = None,
    books: str | None = None,
    backfill: bool = False,
) -> CollectorConfig:
    """Load, override with command-line flags, validate. Raises `ConfigError` listing every problem.

    `backfill` lifts ``limits.max_span_age``: spans of any age are accepted.
    """
    raw: Any = {}
    if path is not None:
        try:
            raw = read_yaml(path)
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([f"{path}: cannot read YAML: {exc}"]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    flags: dict[str, Any] = {
        "storage.clickhouse.data_dir": data_dir,
        "receivers.otlp.protocols.grpc.endpoint": grpc,
        "receivers.otlp.protocols.http.endpoint": http,
        "admin.endpoint": admin,
        "pricing.overrides": overrides,
        "pricing.books": books,
        "limits.max_span_age": 0 if backfill else None,
    }
    for dotted, value in flags.items():
        if value is not None:
            _set_path(raw, dotted, value)
    config, problems = load(CollectorConfig, raw)
    if problems:
        raise ConfigError(problems)
    return config
