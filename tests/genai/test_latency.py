"""The latency rule: time to first token from attributes or events, a decode rate for streamed answers."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pytest

from tokenbook.genai.latency import NO_LATENCY, Latency, read_latency, streamed

START = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


def _read(
    attrs: Mapping[str, object], *, seconds: float = 2.0, event_at: float | None = None, out: int = 300
):
    end = START + int(seconds * SECOND)
    event = 0 if event_at is None else START + int(event_at * SECOND)
    return read_latency(attrs, START, end, event, out)


def test_attribute_in_seconds_and_the_decode_rate() -> None:
    latency = _read({"gen_ai.response.time_to_first_chunk": 0.5, "gen_ai.request.stream": True})
    assert latency == Latency(500.0, 200.0)  # 300 tokens over the 1.5 s after the first


def test_aliases_in_order_and_implausible_values_skipped() -> None:
    # a count of milliseconds written as seconds (250 s in a 2 s span) is skipped, never guessed at
    assert _read({"gen_ai.response.time_to_first_token": 250, "gen_ai.server.time_to_first_token": 0.25}) == (
        Latency(250.0, round(300 / 1.75, 3))
    )
    for bad in (True, "0.5", math.nan, math.inf, -0.1, None, [0.5]):
        assert _read({"gen_ai.response.time_to_first_chunk": bad}) == NO_LATENCY, bad


def test_a_value_just_past_the_end_is_capped_and_leaves_no_decode_time() -> None:
    latency = _read({"gen_ai.response.time_to_first_chunk": 2.0005})  # within the clock slack
    assert latency == Latency(2000.0, None)
    assert _read({"gen_ai.response.time_to_first_chunk": 2.01}) == NO_LATENCY


def test_first_token_event_when_no_attribute() -> None:
    assert _read({}, event_at=0.4) == Latency(400.0, round(300 / 1.6, 3))
    assert _read({}, event_at=-0.1) == NO_LATENCY  # before the span: not its first token
    assert _read({"gen_ai.response.time_to_first_chunk": 0.1}, event_at=0.4).time_to_first_token_ms == 100.0


def test_unstreamed_answers_have_a_time_to_first_token_but_no_decode_rate() -> None:
    """openlit sets gen_ai.server.time_to_first_token on unstreamed calls too (the whole answer at once)."""
    attrs = {"gen_ai.server.time_to_first_token": 1.9, "gen_ai.request.stream": False}
    assert _read(attrs) == Latency(1900.0, None)
    assert _read({"gen_ai.is_streaming": False}, event_at=0.4) == Latency(400.0, None)
    assert _read({"gen_ai.response.time_to_first_chunk": 0.5}, out=0) == Latency(500.0, None)


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({}, None),
        ({"gen_ai.request.stream": True}, True),
        ({"gen_ai.is_streaming": False}, False),
        ({"gen_ai.request.stream": "true"}, True),
        ({"gen_ai.request.stream": 1}, None),
        ({"gen_ai.request.stream": "maybe", "gen_ai.is_streaming": True}, True),
    ],
)
def test_stream_flags(attrs: dict[str, object], expected: bool | None) -> None:
    assert streamed(attrs) is expected


def test_a_span_without_duration_has_no_latency() -> None:
    assert read_latency({"gen_ai.response.time_to_first_chunk": 0.0}, START, START, 0, 10) == NO_LATENCY
