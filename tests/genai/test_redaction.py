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


def test_mastras_inputs_outputs_and_answer_bodies_are_content() -> None:
    """@mastra/otel-exporter (1.4.0) writes each span's input and output as `mastra.<span type>.input` /
    `.output` unless a run's tracing options hide them, and a model step's raw provider answer as
    `mastra.metadata.body` whatever they say
    (tests/testdata/conformance/mastra-core-1.71.0-generate.json). Failed before: the default redaction
    kept the prompt and the answer in the exported spans."""
    answer = json.dumps({"choices": [{"message": {"content": "Sunny, 21 °C."}}]})
    attrs: dict[str, object] = {
        "mastra.agent_run.input": "What is the weather in Paris?",
        "mastra.model_step.output": json.dumps({"text": "Sunny, 21 °C."}),
        "mastra.tool_call.input": json.dumps({"city": "Paris"}),
        "mastra.metadata.body": answer,
        "mastra.metadata.runId": "58c50e55",
        "mastra.span.type": "model_step",
        "mastra.model_step.step_index": 0,
    }
    assert Redactor().apply(attrs)
    assert attrs == {
        "mastra.metadata.runId": "58c50e55",
        "mastra.span.type": "model_step",
        "mastra.model_step.step_index": 0,
    }
