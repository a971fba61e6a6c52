"""Call kinds, the billing rule, cache hits and the descendant tracker."""

from __future__ import annotations

import threading

import pytest

from tokenbook.genai import semconv
from tokenbook.genai.calls import DescendantTracker, call_kind, first_text, is_billable, is_cache_hit

U = {"gen_ai.usage.input_tokens": 10}


@pytest.mark.parametrize(
    ("name", "attrs", "kind"),
    [
        ("x", {"gen_ai.operation.name": "chat"}, "model"),
        ("x", {"gen_ai.operation.name": "embeddings"}, "model"),
        ("x", {"gen_ai.operation.name": "generate_content"}, "model"),
        ("x", {"gen_ai.operation.name": "text_completion"}, "model"),
        ("x", {"gen_ai.operation.name": "execute_tool"}, "tool"),
        ("x", {"gen_ai.operation.name": "invoke_agent", **U}, "wrapper"),
        ("x", {"gen_ai.operation.name": "create_agent"}, "wrapper"),
        ("x", {"openinference.span.kind": "LLM"}, "model"),
        ("x", {"openinference.span.kind": "EMBEDDING"}, "model"),
        ("x", {"openinference.span.kind": "TOOL"}, "tool"),
        ("x", {"openinference.span.kind": "CHAIN", **U}, "wrapper"),
        ("x", {"openinference.span.kind": "AGENT"}, "wrapper"),
        ("x", {"llm.request.type": "chat"}, "model"),
        ("x", {"llm.request.type": "embedding"}, "model"),
        ("x", {"traceloop.span.kind": "tool"}, "tool"),
        ("x", {"traceloop.span.kind": "workflow", **U}, "wrapper"),
        ("x", {"lmnr.span.type": "LLM"}, "model"),  # Laminar's `@observe(span_type=...)`
        ("x", {"lmnr.span.type": "TOOL"}, "tool"),
        ("x", {"lmnr.span.type": "DEFAULT", **U}, "wrapper"),
        ("x", {"lmnr.span.type": "EXECUTOR", **U}, "wrapper"),
        ("x", {"langfuse.observation.type": "generation"}, "model"),  # Langfuse
        ("x", {"langfuse.observation.type": "tool"}, "tool"),
        ("x", {"langfuse.observation.type": "chain", **U}, "wrapper"),
        ("x", {"langfuse.observation.type": "agent", **U}, "wrapper"),
        ("x", {"mlflow.spanType": '"CHAT_MODEL"'}, "other"),  # MLflow (JSON strings): by usage
        ("x", {"mlflow.spanType": '"CHAT_MODEL"', **U}, "model"),
        ("x", {"mlflow.spanType": '"TOOL"'}, "tool"),
        ("x", {"mlflow.spanType": '"AGENT"', **U}, "wrapper"),
        ("x", {"mlflow.spanType": "null", **U}, "model"),
        ("ai.toolCall", {"ai.operationId": "ai.toolCall"}, "tool"),  # the AI SDK's own spans
        ("ai.generateText", {"ai.operationId": "ai.generateText", **U}, "model"),  # by usage
        # LangSmith names its runs' operations after their run type, lossily: the run type comes first
        ("ChatPromptTemplate", {"langsmith.span.kind": "prompt", "gen_ai.operation.name": "chat"}, "wrapper"),
        ("retriever", {"langsmith.span.kind": "retriever", "gen_ai.operation.name": "embeddings"}, "wrapper"),
        ("ChatOpenAI", {"langsmith.span.kind": "llm", "gen_ai.operation.name": "chat"}, "model"),
        ("search", {"langsmith.span.kind": "tool", "gen_ai.operation.name": "execute_tool"}, "tool"),
        ("x", {"langsmith.span.kind": "custom", "gen_ai.operation.name": "chat"}, "model"),
        ("watsonx.model_init", {"llm.request.type": "completion"}, "other"),  # OpenLLMetry: no call
        ("chat gpt-4o", {}, "model"),
        ("execute_tool search", {}, "tool"),
        ("invoke_agent planner", {}, "wrapper"),
        ("handler", U, "model"),
        ("handler", {}, "other"),
    ],
)
def test_call_kind(name, attrs, kind):
    assert call_kind(name, attrs) == kind


def test_billing_rule():
    assert is_billable("model", True, False)
    assert not is_billable("model", True, True)  # the descendant (closer to the wire) bills the call
    assert not is_billable("model", False, False)
    assert not is_billable("fetch", True, False)
    assert not is_billable("tool", True, False)
    assert not is_billable("wrapper", True, True)
    assert is_billable("wrapper", True, False)
    assert not is_billable("other", True, True)


@pytest.mark.parametrize(
    ("attrs", "hit"),
    [
        ({"tokenbook.cache_hit": True}, True),
        ({"gen_ai.response.cache_hit": "true"}, True),
        ({"litellm.cache_hit": "True"}, True),
        ({"cache_hit": False}, False),
        ({}, False),
    ],
)
def test_cache_hit(attrs, hit):
    assert is_cache_hit(attrs) is hit


def test_tracker_marks_every_ancestor():
    t = DescendantTracker()
    # root(1) -> agent(2) -> chain(3) -> chat(4, usage); children end first
    assert t.span_ended("T", 4, 3, True) is False
    assert t.span_ended("T", 3, 2, False) is True
    assert t.span_ended("T", 2, 1, True) is True
    assert t.span_ended("T", 1, None, False) is True
    assert len(t) == 0


def test_tracker_without_usage_marks_nothing():
    t = DescendantTracker()
    assert t.span_ended("T", 2, 1, False) is False
    assert t.span_ended("T", 1, None, True) is False


def test_tracker_is_bounded():
    t = DescendantTracker(max_entries=10)
    for i in range(100):
        t.span_ended("T", 1000 + i, i, True)
    assert len(t) == 10
    assert t.evicted == 90
    with pytest.raises(ValueError, match="max_entries"):
        DescendantTracker(0)


def test_tracker_threads():
    t = DescendantTracker()

    def work(n):
        for i in reversed(range(1000)):  # a chain of 1000 spans, deepest first
            t.span_ended(n, i + 1, i, True)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # every chain ends marked at its root's id 0 (never ended) and each intermediate got popped
    assert all(t.has_descendant_usage(n, 0) for n in range(4))
    assert len(t) == 4


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ('"gpt-4o-mini-2024-07-18"', "gpt-4o-mini-2024-07-18"),  # MLflow writes every attribute as JSON
        ('"caf\\u00e9"', "café"),
        ('""', '""'),
        ('"a', '"a'),
        ('"not" json"', '"not" json"'),
        ("gpt-4o", "gpt-4o"),
        (7, "7"),
    ],
)
def test_first_text_reads_a_json_string_literal_as_its_string(value: object, text: str) -> None:
    assert first_text({"mlflow.llm.model": value}, ("gen_ai.request.model", "mlflow.llm.model")) == text


def test_langsmiths_provider_wins_over_its_guess_from_the_model_name() -> None:
    """LangSmith 0.15.1 guesses `gen_ai.system` from the model's name ("langchain" for o3-mini:
    tests/testdata/conformance/langsmith-0.15.1-reasoning.json); the provider LangChain's integration
    declares is `langsmith.metadata.ls_provider`. Failed before: "langchain"."""
    attrs = {"gen_ai.system": "langchain", "langsmith.metadata.ls_provider": "openai"}
    assert first_text(attrs, semconv.PROVIDER) == "openai"
    # the semantic conventions' own name comes first
    official = {**attrs, "gen_ai.provider.name": "azure.ai.openai"}
    assert first_text(official, semconv.PROVIDER) == "azure.ai.openai"
