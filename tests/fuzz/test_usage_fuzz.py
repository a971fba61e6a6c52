"""Fuzzing usage normalization (`read_usage`) with every kind of value an attribute can hold.

Contract: never raises; every count is an ``int`` in ``[0, 10**12]``; the result is inclusive
(``input >= cache_read + cache_write``, ``output >= reasoning``) whenever usage is kept; an attribute
that was coerced or rejected leaves an issue; a span with no usage attribute gives an empty `Usage`.
"""

from __future__ import annotations

from decimal import Decimal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import PIPELINE_KEYS, hostile_float, hostile_int, odd_text
from tests.hypothesis_profiles import examples
from tokenbook.genai import semconv
from tokenbook.genai.usage import MAX_TOKENS, Usage, coerce_count, read_usage

USAGE_KEYS = (
    *semconv.INPUT_TOKENS,
    *semconv.OUTPUT_TOKENS,
    *semconv.CACHE_READ_TOKENS,
    *semconv.CACHE_WRITE_TOKENS,
    *semconv.REASONING_TOKENS,
)
values = st.one_of(
    hostile_int,
    st.integers(min_value=-(10**40), max_value=10**40),
    hostile_float,
    st.decimals(allow_nan=True, allow_infinity=True),
    st.sampled_from([Decimal("sNaN"), Decimal("1e999999"), Decimal("-0"), Decimal("12.5")]),
    odd_text,
    st.integers(0, 10**13).map(str),
    st.booleans(),
    st.none(),
    st.tuples(hostile_int),
    st.binary(max_size=4),
)
attributes = st.dictionaries(
    st.one_of(st.sampled_from(USAGE_KEYS + PIPELINE_KEYS), st.text(max_size=10)),
    values,
    max_size=12,
)


@settings(max_examples=examples(400), deadline=None)
@given(attributes, st.sampled_from(["", "openai", "anthropic", "gcp.gemini"]))
@example({"gen_ai.usage.input_tokens": "1e999999"}, "")  # 9 bytes that once pinned a CPU for minutes
@example({"gen_ai.usage.output_tokens": Decimal("-1e999999")}, "")
@example({"gen_ai.usage.input_tokens": "1e9999999"}, "")  # beyond the decimal context: abs() overflows
def test_read_usage_never_raises_and_stays_inclusive(attrs: dict[str, object], provider: str) -> None:
    usage = read_usage(attrs, provider)
    counts = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )
    assert all(type(c) is int and 0 <= c <= MAX_TOKENS for c in counts)
    if not any(attrs.get(k) is not None for k in USAGE_KEYS):
        assert usage == Usage()
        return
    assert usage.present
    if usage.input_tokens or usage.output_tokens:
        assert usage.input_tokens >= usage.cache_read_tokens + usage.cache_write_tokens
        assert usage.output_tokens >= usage.reasoning_tokens
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


@settings(max_examples=examples(400), deadline=None)
@given(values)
def test_coerce_count_accepts_or_explains(value: object) -> None:
    count, issue = coerce_count("k", value)
    assert count is not None or issue  # a rejection always says why
    if count is not None:
        assert type(count) is int and 0 <= count <= MAX_TOKENS
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        assert (count, issue) == (value, None)
