"""Optional metrics of billed calls: ``gen_ai.client.token.usage`` (semconv) and ``tokenbook.cost``.

The histogram carries the semconv attributes (operation, provider, request/response model,
``gen_ai.token.type`` = input | output). The ``tokenbook.cost`` counter (unit USD) carries the same plus
the attribution attributes, and is a float because metric instruments are; the ledger stays Decimal.
Off by default: an instrumentation such as genai-openai may already record the token histogram.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from opentelemetry import metrics

from tokenbook.genai import semconv
from tokenbook.genai.pricing.rates import Cost
from tokenbook.genai.usage import Usage

__all__ = ["COST_COUNTER", "TOKEN_HISTOGRAM", "CostMetrics"]

TOKEN_HISTOGRAM: Final = "gen_ai.client.token.usage"
COST_COUNTER: Final = "tokenbook.cost"
#: The semconv advisory buckets for gen_ai.client.token.usage.
_TOKEN_BUCKETS: Final = [float(4**i) for i in range(14)]
_SEMCONV_KEYS: Final = (semconv.OPERATION, semconv.REQUEST_MODEL, semconv.RESPONSE_MODEL)


class CostMetrics:
    """Records one billed call on the token histogram and the cost counter. Thread-safe (SDK)."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter("tokenbook.processor", meter_provider=meter_provider)
        self._tokens = meter.create_histogram(
            TOKEN_HISTOGRAM,
            unit="{token}",
            description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
        )
        self._cost = meter.create_counter(
            COST_COUNTER, unit="USD", description="Cost of billed model calls, by attribution"
        )

    def record(
        self,
        attrs: Mapping[str, object],
        provider: str,
        usage: Usage,
        cost: Cost,
        attribution: Mapping[str, str],
    ) -> None:
        """Add one priced call to the token and cost instruments, with low-cardinality attributes.

        Called on the thread that ends the span; never blocks on export (the meter provider's reader
        exports on its own schedule).
        """
        base: dict[str, str] = {semconv.PROVIDER[0]: provider} if provider else {}
        for key in _SEMCONV_KEYS:
            value = attrs.get(key)
            if isinstance(value, str):
                base[key] = value
        self._tokens.record(usage.input_tokens, {**base, "gen_ai.token.type": "input"})
        self._tokens.record(usage.output_tokens, {**base, "gen_ai.token.type": "output"})
        if cost.total is not None:
            self._cost.add(float(cost.total), {**base, **attribution, semconv.TB.PRICE_STATUS: cost.status})
