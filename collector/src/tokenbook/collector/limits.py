"""Limits that keep one sender from exhausting the collector.

* `AttributeLimits`: a span with more than ``limits.max_attributes_per_span`` attributes (all of
  them, counted by the decoder), or a kept attribute whose string value is longer than
  ``limits.max_attribute_value_length`` characters, is rejected (counted in ``partial_success``; its
  siblings are kept). Content attributes that the privacy mode keeps or hashes are exempt from the
  length limit (the request size bounds them).
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

Request size (``receivers.otlp.protocols.*.max_request_bytes``) and in-flight spans
(``receivers.otlp.max_inflight_spans``) are enforced by the receivers and the ingestor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tokenbook.genai.redaction import is_content_attribute

__all__ = [
    "DEFAULT_LIMITS",
    "AttributeLimits",
    "LimitsConfig",
    "TenantRateLimiter",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AttributeLimits:
    max_attributes: int  # per span, all attributes counted by the decoder (`KeyFilter.max_attributes`)
    max_value_length: int  # characters of a kept string value

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


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """The ``limits`` section of the collector config."""

    attributes: AttributeLimits
    tenant_spans_per_second: float  # 0: no per-tenant rate limit
    tenant_burst: int  # spans; 0: twice the rate
    max_connections: int
    read_timeout: float
    request_timeout: float = 60.0
    max_open_connections: int = 4096  # per HTTP server; beyond: closed at once, unread
    workers: int = 8  # threads per HTTP server running request work (decode, log, query)

    def rate_limiter(self) -> TenantRateLimiter | None:
        if self.tenant_spans_per_second <= 0:
            return None
        burst = self.tenant_burst or max(1, round(2 * self.tenant_spans_per_second))
        return TenantRateLimiter(self.tenant_spans_per_second, burst)


DEFAULT_LIMITS = LimitsConfig(AttributeLimits(1024, 65536), 0.0, 0, 64, 30.0, 60.0, 4096, 8)
