"""The real OpenInference instrumentation and openai client, through the processor, against the loopback
OpenAI stub: prompt composition is measured from OpenInference's content, then the content is removed.
"""

from __future__ import annotations

import pytest

from tests.conversation import TEXTS, openinference_chat, openinference_openai
from tokenbook.genai.composition import ATTRIBUTES, ESTIMATED
from tokenbook.genai.redaction import is_content_attribute

_MESSAGES = "llm.input_messages."


@pytest.mark.parametrize("mode", ["drop", "hash"])
def test_prompt_composition_of_openinference_spans_sums_to_input_tokens_and_keeps_no_content(pipeline, mode):
    p = pipeline(redaction=mode)
    billed = openinference_chat(p.provider)
    (span,) = p.exporter.get_finished_spans()
    a = dict(span.attributes or {})
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "openinference.instrumentation.openai"
    assert a["llm.token_count.prompt"] == billed
    parts = {part: a[key] for part, key in ATTRIBUTES.items()}
    assert sum(parts.values()) == billed
    assert a[ESTIMATED] is True  # no offline tokenizer for gpt-4o-mini: an estimate has no overhead
    for part in ("system", "history", "tool_result", "user", "tool_definition"):
        assert parts[part] > 0, part
    assert parts["retrieved"] == parts["overhead"] == 0
    assert a["tokenbook.price.status"] == "priced"
    # no content in any form: no text of the conversation (or the answer) in any attribute or event
    exported = span.to_json()
    for text in TEXTS:
        assert text not in exported, text
    content = [k for k in a if is_content_attribute(k)]
    if mode == "drop":
        assert content == []
    else:
        assert any(k.startswith(_MESSAGES) for k in content) and "input.value" in content
        assert all(str(a[k]).startswith("sha256:") for k in content)


def test_openinference_records_the_content_that_keep_mode_keeps(pipeline):
    """OpenInference really writes the conversation, so the test above proves it is removed."""
    p = pipeline(redaction="keep")
    openinference_chat(p.provider)
    (span,) = p.exporter.get_finished_spans()
    exported = span.to_json()
    for text in TEXTS:
        assert text in exported, text
    a = dict(span.attributes or {})
    roles = [a[f"{_MESSAGES}{i}.message.role"] for i in range(5)]
    assert roles == ["system", "user", "assistant", "tool", "user"]
    assert "llm.tools.0.tool.json_schema" in a


@pytest.mark.parametrize("mode", ["drop", "hash"])
def test_openinference_embedding_text_is_content(pipeline, mode):
    """OpenInference records the embedded text under ``embedding.embeddings.{i}.embedding.text``."""
    p = pipeline(redaction=mode)
    with openinference_openai(p.provider) as (client, _):
        client.embeddings.create(model="text-embedding-3-small", input=["weather in Paris", "in Rome"])
    (span,) = p.exporter.get_finished_spans()
    a = dict(span.attributes or {})
    assert a["tokenbook.cost.total"] != "" and a["tokenbook.price.status"] == "priced"
    exported = span.to_json()
    assert "weather in Paris" not in exported and "in Rome" not in exported
    embedded = [k for k in a if k.startswith("embedding.embeddings.")]
    if mode == "drop":
        assert embedded == []
    else:
        assert "embedding.embeddings.0.embedding.text" in embedded
        assert all(str(a[k]).startswith("sha256:") for k in embedded)


def test_openinference_records_the_embedded_text_that_keep_mode_keeps(pipeline):
    p = pipeline(redaction="keep")
    with openinference_openai(p.provider) as (client, _):
        client.embeddings.create(model="text-embedding-3-small", input=["weather in Paris", "in Rome"])
    (span,) = p.exporter.get_finished_spans()
    assert (span.attributes or {})["embedding.embeddings.0.embedding.text"] == "weather in Paris"
