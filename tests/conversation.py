"""A support conversation with every kind of prompt part, and one real OpenInference-instrumented call of it.

Not a test module. `CONVERSATION` has a system message, an earlier turn (a user question and an
assistant tool call), a tool result and the latest user message; `TOOLS` one tool definition. `TEXTS`
are pieces of that text that must never survive redaction. `openinference_openai` is the real `openai`
client instrumented by OpenInference's `OpenAIInstrumentor`, calling the loopback OpenAI stub
(`tests/conformance/stubs.py`); `openinference_chat` sends the conversation with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

from tests.conformance import stubs

if TYPE_CHECKING:  # imported where used: `openai` alone takes a second to import, at every collection
    from openai import OpenAI
    from opentelemetry.sdk.trace import TracerProvider

CONVERSATION: Final[list[dict[str, Any]]] = [
    {"role": "system", "content": "You are a support agent. Answer briefly and cite the order number."},
    {"role": "user", "content": "Where is my order?"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": '{"order": 42}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": '{"order": 42, "status": "shipped", "eta": "Friday"}'},
    {"role": "user", "content": "Can it come sooner?"},
]
TOOLS: Final[list[dict[str, Any]]] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Find an order by its number",
            "parameters": {"type": "object", "properties": {"order": {"type": "integer"}}},
        },
    }
]
#: Text of every part (system, history, tool result, user, tool definition) and of the answer.
TEXTS: Final = (
    "support agent",
    "Where is my order",
    "shipped",
    "Can it come sooner",
    "Find an order",
    "Sunny, 21",
)


@contextmanager
def openinference_openai(provider: TracerProvider) -> Iterator[tuple[OpenAI, stubs.Stubs]]:
    """The real `openai` client, instrumented by OpenInference into `provider`, and the stub it calls.

    OpenInference records content by default. The instrumentation is removed on exit.
    """
    from openai import OpenAI
    from openinference.instrumentation.openai import OpenAIInstrumentor

    stub = stubs.start()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    client = OpenAI(api_key="test", base_url=f"{stub.url}/v1", max_retries=0)
    try:
        yield client, stub
    finally:
        instrumentor.uninstrument()
        client.close()
        stub.close()


def openinference_chat(provider: TracerProvider) -> int:
    """One chat completion of `CONVERSATION` with `TOOLS`, traced by OpenInference into `provider`.

    Returns the input tokens the stub answered with (what the provider billed).
    """
    with openinference_openai(provider) as (client, stub):
        client.chat.completions.create(model="gpt-4o-mini", messages=CONVERSATION, tools=TOOLS)  # type: ignore[arg-type]
    (call,) = stub.recording.calls_of("")
    return int(call["input_tokens"])
