"""Limits that keep one sender from exhausting the collector.

* `AttributeLimits`: a span with more than ``limits.max_attributes_per_span`` attributes that the
  collector keeps (the keys it reads and the tags; content aside, and attributes it does not read are
  not counted, so a conversation flattened into thousands of message attributes is no reason to lose
  a call), or a kept attribute whose string value is longer than
  ``limits.max_attribute_value_length`` characters, is rejected (counted in ``partial_success``; its
  siblings are kept). Content attributes that the privacy mode keeps or hashes are exempt from the
  length limit (the request size bounds them).
* A span name longer than ``limits.max_span_name_length`` characters (default 1024) is truncated by
  the decoder to that length, ending with `NAME_TRUNCATED`; the span is kept (a name is a label,
  not a reason to lose a call's spend).
* `TenantRateLimiter`: a token bucket per tenant in spans per second
  (``limits.tenant_rate.spans_per_second`` with a ``burst``; 0 = off). A request is admitted when
  each of its tenants' buckets holds its spans (or is full, for a request larger than the burst: the
  bucket then goes into debt, so the average rate still holds). Otherwise it is refused as a whole,
  nothing taken, with the time after which it would be admitted: 429 / RESOURCE_EXHAUSTED with
  ``Retry-After`` / ``RetryInfo``. At most ``max_tenants`` buckets are kept (the least recently used
  is forgotten, i.e. refilled).

* Connections (``limits.max_open_connections``, ``read_timeout``, ``request_timeout``,
  ``max_connections``, ``workers``) on the HTTP servers (OTLP/HTTP, admin API):
  `tokenbook.collector.receive.server`. The gRPC receiver has a fixed worker pool and refuses calls
  beyond ``limits.max_connections`` in progress with RESOURCE_EXHAUSTED and a ``RetryInfo``.

* Span bounds, checked before the acknowledgement (`tokenbook.collector.pipeline.SpanBounds`):
  ``limits.max_tokens_per_call`` (default 10^8: at the most expensive catalog price, o1-pro's
  150 + 600 USD per million input and output tokens, a call at the bound costs at most 75,000 USD, far
  inside the ledger's ``Decimal(18, 12)``, which holds less than 10^6), ``limits.max_span_age``
  (default 30 days; 0 = no bound, also ``tokenbook collector --backfill``) and
  ``limits.max_span_future`` (default 1 hour: clock skew). A span outside them is rejected in
  ``partial_success`` with the reason.

Request size (``receivers.otlp.protocols.*.max_request_bytes``) and in-flight spans
(``receivers.otlp.max_inflight_spans``) are enforced by the receivers and the ingestor.

* `raise_open_files_limit`: the collector raises its soft limit of open files to the hard limit when
  it starts (as the Go runtime does for the OpenTelemetry Collector): the usual soft limit of 1,024
  would be exhausted by connections (each a file) well before ``limits.max_open_connections``, and then
  the write-ahead log and the engine could open no file.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from tokenbook.genai.configspec import (
    duration,
    duration_or_zero,
    non_negative_number,
    positive_int,
    section,
    setting,
    type_name,
)
from tokenbook.genai.redaction import is_content_attribute

__all__ = [
    "DEFAULT_LIMITS",
    "NAME_TRUNCATED",
    "AttributeLimits",
    "LimitsConfig",
    "TenantRateConfig",
    "TenantRateLimiter",
    "raise_open_files_limit",
]

_log = logging.getLogger(__name__)

#: The end of a span name truncated to ``limits.max_span_name_length``.
NAME_TRUNCATED: Final = "...[truncated]"


@dataclass(frozen=True, slots=True)
class AttributeLimits:
    """The limits the decoder applies to each span's attributes and name (``limits.*``; see the module
    docstring)."""

    max_attributes: int  # per span, all attributes counted by the decoder (`KeyFilter.max_attributes`)
    max_value_length: int  # characters of a kept string value
    max_name_length: int = 1024  # characters of a span name; longer names are truncated (`span_name`)

    def span_name(self, name: str) -> str:
        """`name` within ``max_name_length`` characters: a longer one is cut and ends with
        `NAME_TRUNCATED` (the result has exactly ``max_name_length`` characters)."""
        if len(name) <= self.max_name_length:
            return name
        keep = max(self.max_name_length - len(NAME_TRUNCATED), 0)
        return (name[:keep] + NAME_TRUNCATED)[: self.max_name_length]

    def violation(self, key: str, value: object) -> str:
        """Why one kept attribute breaks the value-length limit, or "" when it does not."""
        if isinstance(value, str) and len(value) > self.max_value_length and not is_content_attribute(key):
            return (
                f"attribute {key[:64]!r} is {len(value)} characters "
                f"(limits.max_attribute_value_length={self.max_value_length})"
            )
        return ""


class TenantRateLimiter:
    """Per-tenant token buckets (spans/s). Thread-safe."""

    def __init__(
        self,
        spans_per_second: float,
        burst: int,
        *,
        max_tenants: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if spans_per_second <= 0 or burst < 1:
            raise ValueError("spans_per_second must be > 0 and burst >= 1")
        self.rate = spans_per_second
        self.burst = burst
        self.max_tenants = max_tenants
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tenant -> (tokens, at)
        self._lock = threading.Lock()

    def admit(self, spans_by_tenant: Mapping[str, int]) -> float:
        """Take the spans from every tenant's bucket and return 0, or take nothing and return the
        seconds after which the request would be admitted."""
        now = self._clock()
        with self._lock:
            levels: dict[str, float] = {}
            wait = 0.0
            for tenant, n in spans_by_tenant.items():
                tokens, at = self._buckets.get(tenant, (float(self.burst), now))
                tokens = min(float(self.burst), tokens + (now - at) * self.rate)
                levels[tenant] = tokens
                need = min(n, self.burst)
                if need > tokens:
                    wait = max(wait, (need - tokens) / self.rate)
            if wait:
                return wait
            for tenant, n in spans_by_tenant.items():
                self._buckets[tenant] = (levels[tenant] - n, now)
                self._buckets.move_to_end(tenant)
            while len(self._buckets) > self.max_tenants:
                self._buckets.popitem(last=False)
        return 0.0


@type_name("number >= 0")
def _burst(v: Any) -> int:
    return int(non_negative_number(v))


@dataclass(frozen=True, slots=True)
class TenantRateConfig:
    """``limits.tenant_rate``: a token bucket per tenant."""

    spans_per_second: float = setting(
        0.0, parse=non_negative_number, doc="Spans per second admitted per tenant; 0: no per-tenant limit."
    )
    burst: int = setting(0, parse=_burst, doc="Spans a tenant may send at once; 0: twice the rate.")


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """The ``limits`` section of the collector config."""

    max_attributes_per_span: int = setting(
        1024,
        parse=positive_int,
        doc="A span with more attributes that the collector keeps (the keys it reads, tags) is rejected; "
        "attributes it does not read and content are not counted.",
    )
    max_attribute_value_length: int = setting(
        65536,
        parse=positive_int,
        doc="A kept attribute with a longer string value (in characters) rejects its span; content "
        "attributes the privacy mode keeps or hashes are exempt.",
    )
    max_span_name_length: int = setting(
        1024,
        parse=positive_int,
        doc="A longer span name (in characters) is truncated to this length, its end replaced by "
        "`...[truncated]`; the span is kept.",
    )
    tenant_rate: TenantRateConfig = section(
        TenantRateConfig, doc="Per-tenant rate limit: beyond it, 429 / RESOURCE_EXHAUSTED with a retry delay."
    )
    max_connections: int = setting(
        64,
        parse=positive_int,
        doc="Requests queued for or running on the worker threads per HTTP server (OTLP/HTTP and admin, "
        "each; beyond: 429 / 503 with `Retry-After: 1`); gRPC calls in progress (beyond: "
        "RESOURCE_EXHAUSTED with a RetryInfo of 1 s).",
    )
    read_timeout: float = setting(
        30.0,
        parse=duration,
        doc="A connection must deliver a request's complete headers within this of being opened or of "
        "its previous response (keep-alive idle time and TLS handshakes count); else it is closed.",
    )
    request_timeout: float = setting(
        60.0,
        parse=duration,
        doc="A request's body must arrive within this of its headers, however its bytes trickle in; "
        "else the connection is closed unanswered.",
    )
    grpc_idle_timeout: float = setting(
        300.0,
        parse=duration,
        default_doc="5m",
        doc="A gRPC connection with no call in progress for this long is closed (an HTTP/2 GOAWAY; an "
        "exporter reconnects for its next export), so that idle connections do not pile up.",
    )
    max_open_connections: int = setting(
        4096,
        parse=positive_int,
        doc="Connections an HTTP server keeps open at once; beyond, a new connection is closed at once, "
        "unread.",
    )
    workers: int = setting(
        8, parse=positive_int, doc="Threads per HTTP server that run request work (decode, log, query)."
    )
    max_tokens_per_call: int = setting(
        100_000_000,
        parse=positive_int,
        doc="A call with a larger token count is rejected in `partial_success`. At the most expensive "
        "catalog price (o1-pro, 150 + 600 USD per million input and output tokens) a call at the bound "
        "costs at most 75,000 USD, far inside the ledger's Decimal(18, 12).",
    )
    max_span_age: float = setting(
        30 * 86400.0,
        parse=duration_or_zero,
        default_doc="30d",
        doc="A span that started longer ago is rejected in `partial_success`; 0: no bound, for "
        "backfills (also `tokenbook collector --backfill`).",
    )
    max_span_future: float = setting(
        3600.0,
        parse=duration,
        default_doc="1h",
        doc="A span that starts further in the future (clock skew) is rejected in `partial_success`.",
    )

    @property
    def attributes(self) -> AttributeLimits:
        """The attribute limits, for the decoder."""
        return AttributeLimits(
            self.max_attributes_per_span, self.max_attribute_value_length, self.max_span_name_length
        )

    @property
    def tenant_spans_per_second(self) -> float:
        """``tenant_rate.spans_per_second`` (0: no per-tenant rate limit)."""
        return self.tenant_rate.spans_per_second

    @property
    def tenant_burst(self) -> int:
        """``tenant_rate.burst`` (0: twice the rate)."""
        return self.tenant_rate.burst

    def rate_limiter(self) -> TenantRateLimiter | None:
        """The per-tenant limiter, or None when the rate is 0."""
        if self.tenant_spans_per_second <= 0:
            return None
        burst = self.tenant_burst or max(1, round(2 * self.tenant_spans_per_second))
        return TenantRateLimiter(self.tenant_spans_per_second, burst)


DEFAULT_LIMITS: Final = LimitsConfig()


#: The most open files the collector asks for when the hard limit is unlimited (the kernel's usual
#: ``fs.nr_open``).
_MAX_OPEN_FILES: Final = 1 << 20


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files (``RLIMIT_NOFILE``) to its hard limit (at most
    `_MAX_OPEN_FILES` when that is unlimited); returns the soft limit in force after. Never lowers it;
    a refusal of the kernel leaves it as it was. Not thread-safe with other changes of the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        _log.warning("cannot raise the open files limit from %d to %d: %s", soft, target, exc)
        return soft
    return target
