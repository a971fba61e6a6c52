"""A real SDK TracerProvider whose TokenbookSpanProcessor feeds an in-memory exporter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tokenbook.processor import TokenbookSpanProcessor


class Collect(SpanProcessor):
    """A downstream processor that keeps the spans handed to it, started and ended, in order."""

    def __init__(self) -> None:
        self.started: list[Span] = []
        self.spans: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.started.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


class Pipeline:
    """A tracer, the processor under test, and the spans it exported (by name)."""

    def __init__(self, **options: object) -> None:
        self.exporter = InMemorySpanExporter()
        self.processor = TokenbookSpanProcessor(SimpleSpanProcessor(self.exporter), **options)  # type: ignore[arg-type]
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("tests")

    def spans(self) -> dict[str, ReadableSpan]:
        return {s.name: s for s in self.exporter.get_finished_spans()}

    def attrs(self, name: str) -> dict[str, object]:
        return dict(self.spans()[name].attributes or {})


@pytest.fixture
def pipeline() -> Iterator[Callable[..., Pipeline]]:
    made: list[Pipeline] = []

    def make(**options: object) -> Pipeline:
        made.append(Pipeline(**options))
        return made[-1]

    yield make
    for p in made:
        p.provider.shutdown()


def chat_attrs(
    model: Any = "gpt-4o", provider: Any = "openai", inp: Any = 1000, out: Any = 100, **extra: Any
) -> Any:
    """Attributes of a chat span as genai instrumentations write them (any value type, for the tests)."""
    return {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.usage.input_tokens": inp,
        "gen_ai.usage.output_tokens": out,
        **extra,
    }
