"""The processor side of reservations: the reservation ID in Baggage lands on call spans (the collector
settles by it), and `reserve` refuses bad arguments before any request. The round trip against a real
collector is tests/collector/budgets/test_reservations_e2e.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry import baggage, context

from tests.processor.conftest import Pipeline, chat_attrs
from tokenbook.genai.semconv import TB
from tokenbook.processor import ReservationError, reserve


def test_the_reservation_id_in_baggage_is_copied_onto_call_spans(pipeline: Callable[..., Pipeline]) -> None:
    p = pipeline()
    token = context.attach(baggage.set_baggage(TB.RESERVATION_ID, "rsv_0123"))
    try:
        with p.tracer.start_as_current_span("chat gpt-4o", attributes=chat_attrs()):
            pass
        with p.tracer.start_as_current_span("render page"):  # not a call: left alone
            pass
    finally:
        context.detach(token)
    assert p.attrs("chat gpt-4o")[TB.RESERVATION_ID] == "rsv_0123"
    assert TB.RESERVATION_ID not in p.attrs("render page")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tenant": "acme"}, "give tokens and/or cost"),
        ({"tenant": "acme", "cost": 0.05}, "never a float"),
        ({"tokens": 10}, "name the subject"),
        ({"tokens": 10, "tenant": ""}, "name the subject"),
    ],
)
def test_bad_arguments_are_refused_before_any_request(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message), reserve(admin="127.0.0.1:9", **kwargs):
        pass


def test_an_unreachable_collector_is_a_reservation_error() -> None:
    with (
        pytest.raises(ReservationError, match="not reachable"),
        reserve(tokens=1, tenant="a", admin="127.0.0.1:9"),
    ):
        pass
