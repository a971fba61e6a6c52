"""Latency of a model call: time to the first token (or chunk) and output tokens per second.

Time to first token (`read_latency`), the first that holds:

1. an attribute of `semconv.TIME_TO_FIRST_TOKEN` (seconds, as every library that sets one writes it:
   ``gen_ai.response.time_to_first_chunk``, its deprecated name ``gen_ai.response.time_to_first_token``,
   openlit's ``gen_ai.server.time_to_first_token``) whose value is *plausible*: a finite number, not a
   bool, at least 0 and at most the span's duration (plus `CLOCK_SLACK_MS`, since libraries time it
   with another clock; it is then capped at the duration). An implausible value (a count of
   milliseconds or nanoseconds written as seconds, a negative one) is skipped, never guessed at;
2. the time of the first span event of `semconv.FIRST_TOKEN_EVENTS` (OpenInference's "First Token
   Stream Event", OpenLLMetry's per-chunk ``gen_ai.content.completion.chunk``), after the span's start;
3. otherwise unknown: None (NULL in the ledger), never 0.

Output tokens per second is the decode rate of a streamed answer: the output tokens (reasoning
included, as billed) over the time from the first token to the end of the span. It is None when the
time to first token is unknown, when the call was not streamed (`semconv.STREAM_FLAGS` false: the
first token of an unstreamed answer arrives with the last, so there is no decode time to measure),
when there is no output, or when no time is left after the first token. A stream flag that is absent
does not prevent it (OpenInference sets none; its first-token event says the answer streamed).

Pure functions; `read_latency` never raises.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Final, NamedTuple

from tokenbook.genai import semconv

__all__ = ["CLOCK_SLACK_MS", "NO_LATENCY", "Latency", "read_latency", "streamed"]

#: How far past the span's end a reported time to first token may reach and still be read (ms).
CLOCK_SLACK_MS: Final = 1.0


class Latency(NamedTuple):
    """A call's time to first token (ms) and decode rate (output tokens per second); None: unknown."""

    time_to_first_token_ms: float | None
    output_tokens_per_second: float | None


#: Nothing known.
NO_LATENCY: Final = Latency(None, None)
_TTFT_KEYS: Final = frozenset(semconv.TIME_TO_FIRST_TOKEN)


def streamed(attrs: Mapping[str, object]) -> bool | None:
    """The first `semconv.STREAM_FLAGS` attribute that is a bool (or "true"/"false"); None when absent."""
    for key in semconv.STREAM_FLAGS:
        value = attrs.get(key)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    return None


def _seconds(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    seconds = float(value)
    return seconds if math.isfinite(seconds) else None


def _reported_ms(attrs: Mapping[str, object], duration_ms: float) -> float | None:
    for key in semconv.TIME_TO_FIRST_TOKEN:
        seconds = _seconds(attrs.get(key))
        if seconds is None:
            continue
        ms = seconds * 1000.0
        if 0.0 <= ms <= duration_ms + CLOCK_SLACK_MS:
            return min(ms, duration_ms)
    return None


def read_latency(
    attrs: Mapping[str, object], start_ns: int, end_ns: int, first_token_ns: int, output_tokens: int
) -> Latency:
    """The latency of a call span from its attributes, times and first-token event (`first_token_ns`,
    0 when none); see the module docstring."""
    if end_ns <= start_ns:
        return NO_LATENCY
    if _TTFT_KEYS.isdisjoint(attrs) and not start_ns <= first_token_ns <= end_ns:
        return NO_LATENCY  # no time to first token: no rate either
    duration_ms = (end_ns - start_ns) / 1e6
    ttft = _reported_ms(attrs, duration_ms)
    flag = streamed(attrs)
    if ttft is None and start_ns <= first_token_ns <= end_ns:
        ttft = (first_token_ns - start_ns) / 1e6
        flag = True if flag is None else flag
    if ttft is None:
        return NO_LATENCY
    decode_s = (duration_ms - ttft) / 1000.0
    rate = None
    if flag is not False and output_tokens > 0 and decode_s > 0:
        rate = round(output_tokens / decode_s, 3)
    return Latency(round(ttft, 3), rate)
