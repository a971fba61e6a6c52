"""The collector's configuration: YAML shaped like an OpenTelemetry Collector config, loaded once.

`load_config` reads the file (or nothing: every key has a default), applies command-line overrides,
validates everything and returns a frozen `CollectorConfig`. Validation collects *every* problem with
its full key path (``receivers.otlp.protocols.grpc.endpoint: must be HOST:PORT``) and raises one
`ConfigError`; unknown keys are errors. Secrets (`storage.clickhouse.url`, `privacy.salt`) are
`Secret` values whose ``repr``/``str`` never show the secret.

Durations accept seconds as a number or a string with a unit (``250ms``, ``2s``, ``1m``, ``1h``);
sizes accept bytes as an integer or a string with a unit (``64KiB``, ``16MiB``, ``1GiB``, ``10MB``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import yaml

from tokenbook.collector.auth import TokenTable, parse_tokens
from tokenbook.collector.limits import DEFAULT_LIMITS, AttributeLimits, LimitsConfig
from tokenbook.collector.storage.location import DEFAULT_DATA_DIR, redact_url
from tokenbook.collector.tls import TLSConfig, parse_tls
from tokenbook.genai.redaction import REDACTION_MODES

if TYPE_CHECKING:
    from tokenbook.collector.budgets.config import BudgetsConfig

#: The embedded store's directory when none is given (collector, `migrate`, `report`, `budgets`).

__all__ = [
    "DEFAULT_DATA_DIR",
    "AdminConfig",
    "BatchConfig",
    "ClickHouseConfig",
    "CollectorConfig",
    "ConfigError",
    "DedupConfig",
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


class ConfigError(ValueError):
    """Every problem found in a config, each prefixed by its key path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid collector config:\n  " + "\n  ".join(problems))


class Secret:
    """A string that never prints: ``repr`` and ``str`` show ``'***'``; `reveal` returns the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """One OTLP protocol endpoint."""

    endpoint: str  # HOST:PORT
    max_request_bytes: int  # larger requests: HTTP 413 / gRPC RESOURCE_EXHAUSTED
    tls: TLSConfig | None = None  # None: plaintext


@dataclass(frozen=True, slots=True)
class ClickHouseConfig:
    url: Secret | None  # a ClickHouse server (http(s)://...); None = the embedded store
    data_dir: Path  # the embedded store's directory (also the default home of the spool)
    database: str

    def describe(self) -> str:
        """Where the store is, for logs: a server URL without its password, or the embedded directory."""
        if self.url is None:
            return f"embedded chdb:{self.data_dir} database={self.database}"
        return f"server {redact_url(self.url.reveal())} database={self.database}"


@dataclass(frozen=True, slots=True)
class SpoolConfig:
    """The write-ahead log."""

    dir: Path
    max_bytes: int  # undelivered bytes beyond which requests get UNAVAILABLE / 503
    segment_bytes: int


@dataclass(frozen=True, slots=True)
class BatchConfig:
    max_rows: int  # rows per ClickHouse insert
    max_delay: float  # seconds a row may wait for a fuller batch


@dataclass(frozen=True, slots=True)
class AdminConfig:
    endpoint: str
    query_timeout: float
    query_max_rows: int
    tls: TLSConfig | None = None  # None: plaintext


@dataclass(frozen=True, slots=True)
class PrivacyConfig:
    content: str  # drop | keep | hash
    salt: Secret | None  # required for hash; hashes are salted per tenant


@dataclass(frozen=True, slots=True)
class DedupConfig:
    max_keys: int  # recent span keys remembered
    warm_hours: float  # at start, keys of spans ingested this many hours back are loaded from storage


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    summary_interval: float  # seconds between summary log lines
    log_level: str


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    grpc: ReceiverConfig
    http: ReceiverConfig
    max_inflight_spans: int  # spans being decoded/logged at once; beyond: 429 / RESOURCE_EXHAUSTED
    decode_processes: int  # child processes decoding request bodies (`decoders`); 0: in the receivers
    clickhouse: ClickHouseConfig
    spool: SpoolConfig
    batch: BatchConfig
    admin: AdminConfig
    pricing_overrides: Path | None
    extra_attribution_keys: tuple[str, ...]
    privacy: PrivacyConfig
    dedup: DedupConfig
    telemetry: TelemetryConfig
    budgets: BudgetsConfig  # the `budgets:` section, validated by `collector.budgets.parse_budgets`
    auth: TokenTable | None = None  # None: no authentication (auth.enabled false)
    limits: LimitsConfig = DEFAULT_LIMITS


# --- schema -----------------------------------------------------------------------------------------
# A leaf is (default, parser); parsers raise ValueError with a message that says how to fix it.
# Defaults of None mean "absent". `None` for spool.dir means "<data_dir>/wal".

_Parser = Callable[[Any], Any]
_MIB: Final = 1024 * 1024


def _endpoint(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("must be HOST:PORT")
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be HOST:PORT with a port in 1..65535, got {v!r}")
    return v


_SIZE_UNITS: Final = {
    **{"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3},
    **{"kib": 1024, "mib": 1024**2, "gib": 1024**3},
}
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "": 1.0}


def _number_with_unit(v: Any, units: Mapping[str, float], what: str) -> float:
    if isinstance(v, bool):
        raise ValueError(f"must be {what}, got {v!r}")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", v)
        if m and m.group(2).lower() in units:
            return float(m.group(1)) * units[m.group(2).lower()]
    raise ValueError(f"must be {what}, got {v!r}")


def _size(v: Any) -> int:
    n = _number_with_unit(v, _SIZE_UNITS, "a size in bytes (e.g. 1048576 or '16MiB')")
    if n < 1:
        raise ValueError(f"must be at least 1 byte, got {v!r}")
    return int(n)


def parse_duration(v: Any) -> float:
    """Seconds (> 0) from a number or a string with a unit (``250ms``, ``2s``, ``1m``, ``1h``)."""
    n = _number_with_unit(v, _DURATION_UNITS, "a duration (e.g. 2, '250ms', '1m')")
    if n <= 0:
        raise ValueError(f"must be positive, got {v!r}")
    return n


def parse_positive_int(v: Any) -> int:
    """An int >= 1 (not a bool)."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"must be a positive integer, got {v!r}")
    return v


def _non_negative_int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError(f"must be an integer >= 0, got {v!r}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {v!r}")
    return v


def _non_negative_number(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ValueError(f"must be a number >= 0, got {v!r}")
    return float(v)


def _path(v: Any) -> Path:
    if not isinstance(v, str) or not v:
        raise ValueError("must be a path")
    return Path(v).expanduser()


def _optional_path(v: Any) -> Path | None:
    return None if v is None else _path(v)


def _server_url(v: Any) -> Secret | None:
    if v is None:
        return None
    if not isinstance(v, str) or urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).hostname:
        raise ValueError(
            "must be a URL http(s)://[user[:password]@]host[:port], or absent for the embedded store"
        )
    return Secret(v)


def _identifier(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        raise ValueError(f"must be a ClickHouse identifier ([A-Za-z_][A-Za-z0-9_]*), got {v!r}")
    return v


def _key_list(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(k, str) and k for k in v):
        raise ValueError("must be a list of attribute names")
    return tuple(v)


def _content_mode(v: Any) -> str:
    if v not in REDACTION_MODES:
        raise ValueError(f"must be one of {', '.join(REDACTION_MODES)}, got {v!r}")
    return str(v)


def _salt(v: Any) -> Secret | None:
    if v is None:
        return None
    if not isinstance(v, str) or len(v) < 8:
        raise ValueError("must be a string of at least 8 characters")
    return Secret(v)


def _log_level(v: Any) -> str:
    levels = ("debug", "info", "warning", "error")
    if not isinstance(v, str) or v.lower() not in levels:
        raise ValueError(f"must be one of {', '.join(levels)}, got {v!r}")
    return v.lower()


_SCHEMA: Final[dict[str, Any]] = {
    "receivers": {
        "otlp": {
            "protocols": {
                "grpc": {
                    "endpoint": ("127.0.0.1:4317", _endpoint),
                    "max_request_bytes": (16 * _MIB, _size),
                    "tls": (None, parse_tls),
                },
                "http": {
                    "endpoint": ("127.0.0.1:4318", _endpoint),
                    "max_request_bytes": (16 * _MIB, _size),
                    "tls": (None, parse_tls),
                },
            },
            "max_inflight_spans": (200_000, parse_positive_int),
            "decode_processes": (1, _non_negative_int),
        }
    },
    "storage": {
        "clickhouse": {
            "url": (None, _server_url),
            "data_dir": (DEFAULT_DATA_DIR, _path),
            "database": ("tokenbook", _identifier),
        },
        "spool": {
            "dir": (None, _optional_path),
            "max_bytes": (1024 * _MIB, _size),
            "segment_bytes": (16 * _MIB, _size),
        },
        "batch": {
            "max_rows": (20_000, parse_positive_int),
            "max_delay": (0.5, parse_duration),
        },
    },
    "admin": {
        "endpoint": ("127.0.0.1:4319", _endpoint),
        "query_timeout": (30.0, parse_duration),
        "query_max_rows": (100_000, parse_positive_int),
        "tls": (None, parse_tls),
    },
    "pricing": {"overrides": (None, _optional_path)},
    "attribution": {"extra_keys": ([], _key_list)},
    "privacy": {"content": ("drop", _content_mode), "salt": (None, _salt)},
    "dedup": {
        "max_keys": (1_000_000, parse_positive_int),
        "warm_hours": (24.0, _non_negative_number),
    },
    "auth": {"enabled": (False, _bool), "tokens": ([], parse_tokens)},
    "limits": {
        "max_attributes_per_span": (1024, parse_positive_int),
        "max_attribute_value_length": (65536, parse_positive_int),
        "tenant_rate": {"spans_per_second": (0, _non_negative_number), "burst": (0, _non_negative_number)},
        "max_connections": (64, parse_positive_int),
        "read_timeout": (30.0, parse_duration),
        "request_timeout": (60.0, parse_duration),
        "max_open_connections": (4096, parse_positive_int),
        "workers": (8, parse_positive_int),
    },
    "telemetry": {
        "summary_interval": (60.0, parse_duration),
        "log_level": ("info", _log_level),
    },
}


def _walk(schema: Mapping[str, Any], raw: Any, path: str, out: dict[str, Any], problems: list[str]) -> None:
    """Validate `raw` against `schema`, filling `out[dotted.path] = value` and collecting problems."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        problems.append(f"{path}: must be a mapping")
        raw = {}
    for key in raw:
        if key not in schema:
            known = ", ".join(sorted(schema))
            problems.append(f"{path + '.' if path else ''}{key}: unknown key (known here: {known})")
    for key, spec in schema.items():
        sub = f"{path}.{key}" if path else key
        if isinstance(spec, dict):
            _walk(spec, raw.get(key), sub, out, problems)
            continue
        default, parse = spec
        value = raw.get(key, default)
        try:
            out[sub] = parse(value) if value is not None else None
        except ValueError as exc:
            problems.append(f"{sub}: {exc}")


def _set_path(raw: dict[str, Any], dotted: str, value: str) -> None:
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
) -> CollectorConfig:
    """Load, override with command-line flags, validate. Raises `ConfigError` listing every problem."""
    raw: Any = {}
    if path is not None:
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError([f"{path}: cannot read YAML: {exc}"]) from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the top level must be a mapping"])
    flags = {
        "storage.clickhouse.data_dir": data_dir,
        "receivers.otlp.protocols.grpc.endpoint": grpc,
        "receivers.otlp.protocols.http.endpoint": http,
        "admin.endpoint": admin,
    }
    for dotted, value in flags.items():
        if value is not None:
            _set_path(raw, dotted, value)
    from tokenbook.collector.budgets.config import parse_budgets

    budgets, problems = parse_budgets(raw.pop("budgets", None), "budgets")
    v: dict[str, Any] = {}
    _walk(_SCHEMA, raw, "", v, problems)
    if v.get("privacy.content") == "hash" and v.get("privacy.salt") is None and "privacy.salt" in v:
        problems.append("privacy.salt: required when privacy.content is hash")
    if v.get("auth.enabled") and "auth.tokens" in v and not v["auth.tokens"]:
        problems.append("auth.tokens: at least one token is required when auth.enabled is true")
    if problems:
        raise ConfigError(problems)
    data = v["storage.clickhouse.data_dir"]
    return CollectorConfig(
        grpc=ReceiverConfig(
            v["receivers.otlp.protocols.grpc.endpoint"],
            v["receivers.otlp.protocols.grpc.max_request_bytes"],
            v["receivers.otlp.protocols.grpc.tls"],
        ),
        http=ReceiverConfig(
            v["receivers.otlp.protocols.http.endpoint"],
            v["receivers.otlp.protocols.http.max_request_bytes"],
            v["receivers.otlp.protocols.http.tls"],
        ),
        max_inflight_spans=v["receivers.otlp.max_inflight_spans"],
        decode_processes=v["receivers.otlp.decode_processes"],
        clickhouse=ClickHouseConfig(v["storage.clickhouse.url"], data, v["storage.clickhouse.database"]),
        spool=SpoolConfig(
            v["storage.spool.dir"] or data / "wal",
            v["storage.spool.max_bytes"],
            v["storage.spool.segment_bytes"],
        ),
        batch=BatchConfig(v["storage.batch.max_rows"], v["storage.batch.max_delay"]),
        admin=AdminConfig(
            v["admin.endpoint"], v["admin.query_timeout"], v["admin.query_max_rows"], v["admin.tls"]
        ),
        pricing_overrides=v["pricing.overrides"],
        extra_attribution_keys=v["attribution.extra_keys"],
        privacy=PrivacyConfig(v["privacy.content"], v["privacy.salt"]),
        dedup=DedupConfig(v["dedup.max_keys"], v["dedup.warm_hours"]),
        telemetry=TelemetryConfig(v["telemetry.summary_interval"], v["telemetry.log_level"]),
        budgets=budgets,
        auth=v["auth.tokens"] if v["auth.enabled"] else None,
        limits=LimitsConfig(
            AttributeLimits(v["limits.max_attributes_per_span"], v["limits.max_attribute_value_length"]),
            v["limits.tenant_rate.spans_per_second"],
            int(v["limits.tenant_rate.burst"]),
            v["limits.max_connections"],
            v["limits.read_timeout"],
            v["limits.request_timeout"],
            v["limits.max_open_connections"],
            v["limits.workers"],
        ),
    )
