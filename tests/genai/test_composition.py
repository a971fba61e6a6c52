"""Prompt composition: every convention's content, exact sums, counted and estimated, bounded."""

from __future__ import annotations

import json

import pytest

from tokenbook.genai import composition
from tokenbook.genai.composition import ATTRIBUTES, PARTS, Composition, Sizes, apportion, compose, measure


def _parts(c: Composition | None) -> dict[str, int]:
    assert c is not None
    return dict(zip(PARTS, c.tokens, strict=True))


SEMCONV = {
    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "S" * 100}]),
    "gen_ai.input.messages": json.dumps(
        [
            {"role": "user", "parts": [{"type": "text", "content": "H" * 50}]},
            {"role": "assistant", "parts": [{"type": "tool_call", "name": "f", "arguments": {"q": "x"}}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "response": "T" * 200}]},
            {"role": "user", "parts": [{"type": "text", "content": "U" * 30}]},
        ]
    ),
    "gen_ai.tool.definitions": json.dumps([{"name": "f", "parameters": {"type": "object"}}]),
}


def test_semconv_parts_are_classified_and_sum_exactly():
    sizes = measure(SEMCONV)
    assert sizes is not None and not sizes.counted
    got = dict(zip(PARTS, sizes.sizes, strict=False))
    assert got["system"] == 100 and got["tool_result"] == 200 and got["user"] == 30
    assert got["history"] == 50 + len("f") + len('{"q":"x"}')
    assert got["tool_definition"] == len(SEMCONV["gen_ai.tool.definitions"])
    for tokens in (1, 7, 999, 1000, 123457):
        c = compose(SEMCONV, tokens)
        assert c is not None and sum(c.tokens) == tokens and c.estimated
        assert _parts(c)["overhead"] == 0


def test_largest_remainder_is_exact_and_ties_go_to_the_earlier_part():
    c = apportion(Sizes((1, 1, 1, 0, 0, 0), counted=False), 10)
    assert c is not None and c.tokens == (4, 3, 3, 0, 0, 0, 0)
    assert apportion(Sizes((0,) * 6, counted=False), 10) is None
    assert apportion(Sizes((1,) * 6, counted=False), 0) is None


def test_counted_parts_keep_their_counts_and_the_rest_is_overhead():
    c = compose(SEMCONV, 10_000, count=lambda text: len(text) // 10)
    parts = _parts(c)
    assert c is not None and not c.estimated
    assert parts["system"] == 10 and parts["tool_result"] == 20 and parts["user"] == 3
    assert sum(c.tokens) == 10_000 and parts["overhead"] == 10_000 - sum(c.tokens[:-1])
    # a tokenizer counting more than the call used is not the model's: back to the estimate
    over = compose(SEMCONV, 5, count=len)
    assert over is not None and over.estimated and sum(over.tokens) == 5


def test_older_indexed_prompt_attributes():
    attrs = {
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "s" * 10,
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "h" * 20,
        "gen_ai.prompt.2.role": "assistant",
        "gen_ai.prompt.2.content": "a" * 5,
        "gen_ai.prompt.3.role": "tool",
        "gen_ai.prompt.3.content": "t" * 40,
        "gen_ai.prompt.4.role": "user",
        "gen_ai.prompt.4.content": "u" * 25,
        "gen_ai.prompt.10.role": "user",  # index order is numeric: 10 is after 4
        "gen_ai.prompt.10.content": "v" * 7,
    }
    sizes = measure(attrs)
    assert sizes is not None
    assert dict(zip(PARTS, sizes.sizes, strict=False)) == {
        "system": 10,
        "history": 20 + 5 + 25,
        "retrieved": 0,
        "tool_result": 40,
        "user": 7,
        "tool_definition": 0,
    }


def test_openinference_messages_tools_and_retrieved_documents():
    document = "D" * 300
    attrs = {
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "S" * 60,
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.contents.0.message_content.type": "text",
        "llm.input_messages.1.message.contents.0.message_content.text": "Q" * 40 + document,
        "llm.tools.0.tool.json_schema": '{"name": "search"}',
        "retrieval.documents.0.document.content": document,
        "retrieval.documents.0.document.id": "doc-1",
    }
    sizes = measure(attrs)
    assert sizes is not None
    got = dict(zip(PARTS, sizes.sizes, strict=False))
    # the document sent inside the user message is counted once, as retrieved
    assert got == {
        "system": 60,
        "history": 0,
        "retrieved": 300,
        "tool_result": 0,
        "user": 40,
        "tool_definition": len('{"name": "search"}'),
    }
    c = compose(attrs, 4321)
    assert c is not None and sum(c.tokens) == 4321


def test_nothing_to_measure_gives_no_composition():
    assert compose({"gen_ai.usage.input_tokens": 5}, 5) is None
    assert compose(SEMCONV, 0) is None
    assert compose({"gen_ai.input.messages": "not json at all"}, 10) == Composition(
        (0, 0, 0, 0, 10, 0, 0), True
    )


def test_oversized_content_is_not_measured(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(composition, "MAX_CONTENT_CHARS", 100)
    assert measure({"gen_ai.input.messages": "x" * 101}) is None


@pytest.mark.parametrize(
    "value",
    [None, 3, 2.5, True, ["a", "b"], "[1, {}, null]", '{"messages": 1}', "[" * 10_000],  # nested too deep
)
def test_any_value_is_measured_without_raising(value: object):
    measure(
        {"gen_ai.input.messages": value, "gen_ai.system_instructions": value, "gen_ai.prompt.x.role": value}
    )


def test_read_composition_round_trips_and_repairs():
    c = compose(SEMCONV, 777)
    assert c is not None
    attrs = c.attributes()
    assert set(attrs) == {*ATTRIBUTES.values(), composition.ESTIMATED}
    assert composition.read_composition(attrs, 777) == c
    repaired = composition.read_composition(attrs, 800)
    assert repaired is not None and sum(repaired.tokens) == 800 and repaired.estimated
    assert composition.read_composition({}, 10) is None


def test_offline_counter_only_for_known_models():
    assert composition.offline_counter("claude-sonnet-4") is None
    assert composition._encoding_name("openai/gpt-4o-mini") == "o200k_base"
    assert composition._encoding_name("gpt-4-turbo") == "cl100k_base"
