"""Row payloads written before columns were added to `CallRow` are read with the new columns' defaults."""

from __future__ import annotations

import marshal
from datetime import UTC, datetime
from decimal import Decimal

import orjson

from tokenbook.collector.storage.ledger import CallRow
from tokenbook.collector.storage.rowcodec import decode_record, encode_record


def _row(**changes: object) -> CallRow:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    values: dict[str, object] = dict.fromkeys(CallRow._fields, "")
    ints = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")
    values.update(dict.fromkeys(f for f in CallRow._fields if f.endswith("_cost")))
    values.update(dict.fromkeys(ints, 0), timestamp=now, ingested_at=now, tags={}, attempt=0, version=1)
    values.update(duration_ms=1.0, input_cost=Decimal("0.5"), total_cost=Decimal("0.5"), client_cost=None)
    values.update(output_cost=None, cache_read_cost=None, cache_write_cost=None)
    values.update(dict.fromkeys([f for f in CallRow._fields if f.startswith("prompt_")]))
    values.update(changes)
    return CallRow(**values)  # type: ignore[arg-type]


def test_a_version_4_payload_reads_with_no_composition() -> None:
    old_fields = CallRow._fields.index("prompt_system_tokens")
    row = _row(input_tokens=10)
    cols = [list(c) for c in zip(*[row[:old_fields]], strict=True)]
    for i, name in enumerate(CallRow._fields[:old_fields]):
        if name.endswith("_cost"):
            cols[i] = [None if v is None else str(v) for v in cols[i]]
    payload = marshal.dumps((4, orjson.dumps(cols), b""))
    (call,) = decode_record(payload).calls
    assert call.input_tokens == 10 and call.input_cost == Decimal("0.5")
    assert call.prompt_system_tokens is None and call.prompt_estimated is None


def test_composition_round_trips() -> None:
    row = _row(input_tokens=10, prompt_user_tokens=7, prompt_system_tokens=3, prompt_estimated=True)
    payload, _ = encode_record([row], [])
    assert decode_record(payload).calls == [row]


def test_a_version_5_payload_reads_with_the_new_columns_defaults() -> None:
    """Logged before the latency, policy-path, tier and price-book columns: NULL latency, an empty path,
    no tier and no book."""
    old_fields = CallRow._fields.index("time_to_first_token_ms")
    row = _row(input_tokens=10, context_window=1000, context_saturation=0.01)
    cols = [list(c) for c in zip(*[row[:old_fields]], strict=True)]
    for i, name in enumerate(CallRow._fields[:old_fields]):
        if name.endswith("_cost"):
            cols[i] = [None if v is None else str(v) for v in cols[i]]
    (call,) = decode_record(marshal.dumps((5, orjson.dumps(cols), b""))).calls
    assert (call.context_window, call.context_saturation) == (1000, 0.01)
    assert (call.time_to_first_token_ms, call.output_tokens_per_second, call.policy_path) == (None, None, "")
    assert call.input_cost == Decimal("0.5") and call.billed_cost is None
    assert (call.service_tier, call.price_book, call.price_book_entry) == ("", "", "")
    assert call.cache_write_1h_tokens is None
    payload, _ = encode_record([row._replace(time_to_first_token_ms=12.5, policy_path="guard/a")], [])
    assert decode_record(payload).calls[0].policy_path == "guard/a"


def test_tier_and_book_round_trip() -> None:
    row = _row(
        service_tier="flex",
        cache_write_1h_tokens=512,
        cache_write_1h_cost=Decimal("0.000003"),
        billed_cost=Decimal("0.6"),
        billed_input_cost=Decimal("0.6"),
        price_book="books.yaml#acme",
        price_book_entry="markup",
    )
    payload, _ = encode_record([row], [])
    assert decode_record(payload).calls == [row]
