"""Which attributes the default redaction treats as content."""

from __future__ import annotations

import json

from tokenbook.genai.redaction import Redactor, is_content_attribute


def test_openinference_invocation_parameters_are_content() -> None:
    """OpenInference's Anthropic instrumentation for Node.js (0.2.8) writes the request's parameters as
    `llm.invocation_parameters`, with the `system` prompt and the tools, whatever its hide settings say
    (tests/testdata/conformance/arizeai-openinference-instrumentation-anthropic-0.2.8-*.json). Failed
    before: the default redaction kept the system prompt in the exported span."""
    parameters = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "You are a terse weather bot."}],
    }
    attrs: dict[str, object] = {
        "llm.invocation_parameters": json.dumps(parameters),
        "llm.model_name": "claude-sonnet-4-5-20250929",
    }
    assert is_content_attribute("llm.invocation_parameters")
    assert Redactor().apply(attrs)
    assert attrs == {"llm.model_name": "claude-sonnet-4-5-20250929"}
