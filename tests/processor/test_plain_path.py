"""The plain-span path in C (`PlainSpans`, ``_plain.c``): built by the install, bound where it may be,
and the same in everything observable as the processor's Python methods, for any mix of spans."""

from __future__ import annotations

import contextlib
import gc
import itertools
import weakref
from dataclasses import dataclass
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from tokenbook.processor import TokenbookSpanProcessor, attribute, budget
from tokenbook.processor import span_processor as module

from .conftest import Collect, chat_attrs

HTTP: dict[str, Any] = {"http.request.method": "GET", "http.route": "/orders/{id}", "server.port": 443}


class _Failing(SpanProcessor):
    """A downstream processor that raises `error` from both methods."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        raise self.error

    def on_end(self, span: ReadableSpan) -> None:
        raise self.error


pytestmark = pytest.mark.skipif(module.PlainSpans is None, reason="the C path was not built (no C compiler)")


def test_the_processor_binds_the_c_path():
    processor = TokenbookSpanProcessor(Collect())
    assert type(processor.on_start).__name__ == "builtin_function_or_method"
    assert processor.on_start.__self__ is processor.on_end.__self__  # type: ignore[attr-defined]
    assert type(processor.on_end.__self__) is module.PlainSpans  # type: ignore[attr-defined]


def test_a_processor_left_by_its_app_is_collected():
    """The processor and its C path hold each other (its methods, its memos): the cycle is collected."""
    processor = TokenbookSpanProcessor(Collect())
    provider = TracerProvider(shutdown_on_exit=False)  # else held until exit by its atexit hook
    provider.add_span_processor(processor)
    for _ in range(2):  # the second span takes the C path
        provider.get_tracer("t").start_span("GET", attributes=HTTP).end()
    gone = weakref.ref(processor)
    del processor, provider
    gc.collect()
    assert gone() is None


def test_a_subclass_that_overrides_a_method_keeps_its_own():
    class Counting(TokenbookSpanProcessor):
        ended = 0

        def on_end(self, span: ReadableSpan) -> None:
            self.ended += 1
            super().on_end(span)

    processor = Counting(Collect())
    assert processor.on_end.__func__ is Counting.on_end  # type: ignore[attr-defined]
    assert processor.on_start.__func__ is TokenbookSpanProcessor.on_start  # type: ignore[attr-defined]
    provider = TracerProvider()
    provider.add_span_processor(processor)
    provider.get_tracer("t").start_span("GET", attributes=HTTP).end()
    assert processor.ended == 1


@pytest.mark.parametrize("c_path", [True, False], ids=["c-path", "python"])
def test_a_failing_downstream_processor_is_counted_never_raised(c_path, monkeypatch, caplog):
    if not c_path:
        monkeypatch.setattr(module, "PlainSpans", None)
    processor = TokenbookSpanProcessor(_Failing(RuntimeError("downstream")))
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    for _ in range(3):  # the first span teaches the name and keys; the others take the plain path
        with tracer.start_as_current_span("GET", attributes=HTTP):
            pass
    assert (processor.errors, processor.downstream_errors) == (0, 6)
    logged = [r for r in caplog.records if "failed" in r.getMessage()]
    assert [r.getMessage() for r in logged] == [
        "tokenbook processor wrapped on_start failed (logged once per kind)",
        "tokenbook processor wrapped on_end failed (logged once per kind)",
    ]
    assert all(isinstance(r.exc_info[1], RuntimeError) for r in logged if r.exc_info)
    assert not processor._workflows


@pytest.mark.parametrize("c_path", [True, False], ids=["c-path", "python"])
def test_an_interrupt_in_a_downstream_processor_is_not_swallowed(c_path, monkeypatch):
    if not c_path:
        monkeypatch.setattr(module, "PlainSpans", None)
    processor = TokenbookSpanProcessor(_Failing(KeyboardInterrupt()))
    source = Collect()
    provider = TracerProvider()
    provider.add_span_processor(source)
    span = cast(Span, provider.get_tracer("t").start_span("GET", attributes=HTTP))
    span.end()
    for _ in range(2):  # the first call teaches the name and keys; the second takes the plain path
        with pytest.raises(KeyboardInterrupt):
            processor.on_start(span, None)
        with pytest.raises(KeyboardInterrupt):
            processor.on_end(source.spans[0])
    assert processor.downstream_errors == 0


def test_on_start_takes_the_parent_context_by_position_or_keyword():
    collect = Collect()
    processor = TokenbookSpanProcessor(collect)
    span = cast(Span, TracerProvider().get_tracer("t").start_span("GET", attributes=HTTP))
    processor.on_start(span)
    processor.on_start(span, None)
    processor.on_start(span, parent_context=Context())
    assert collect.started == [span] * 3
    with pytest.raises(TypeError):
        processor.on_start(span, None, None)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        processor.on_start(span, parent=None)  # type: ignore[call-arg]


# --- the same as the Python methods, for any mix of spans ----------------------------------------
class _Sequential(IdGenerator):
    """Trace and span IDs 1, 2, 3 ...: both runs of a script get the same IDs."""

    def __init__(self) -> None:
        self._next = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self._next)

    def generate_trace_id(self) -> int:
        return next(self._next)


NAMES = ["GET /orders/{id}", "SELECT", "work", "chat gpt-4o", "execute_tool get_weather", "invoke_agent a"]
ATTRIBUTES: list[dict[str, Any]] = [
    {},
    HTTP,
    {"db.system": "postgresql", "db.query.text": "SELECT 1"},
    chat_attrs(),
    {"gen_ai.prompt": "SECRET"},
    {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
    {"custom.key": 1},
]
EVENTS: list[dict[str, Any] | None] = [None, {"attempt": 1}, {"gen_ai.completion": "SECRET"}]


@dataclass(frozen=True)
class Step:
    """A span of a script: its name, start and end attributes, an event, and its children."""

    name: str
    start: dict[str, Any]
    end: dict[str, Any]
    event: dict[str, Any] | None
    children: tuple[Step, ...]


steps = st.recursive(
    st.builds(
        Step,
        st.sampled_from(NAMES),
        st.sampled_from(ATTRIBUTES),
        st.sampled_from(ATTRIBUTES),
        st.sampled_from(EVENTS),
        st.just(()),
    ),
    lambda children: st.builds(
        Step,
        st.sampled_from(NAMES),
        st.sampled_from(ATTRIBUTES),
        st.sampled_from(ATTRIBUTES),
        st.sampled_from(EVENTS),
        st.lists(children, max_size=3).map(tuple),
    ),
    max_leaves=8,
)


@dataclass(frozen=True)
class Script:
    """Root steps run in turn, under Baggage, a budget and a remote parent as chosen."""

    roots: tuple[Step, ...]
    baggage: bool
    with_budget: bool
    remote_parent: bool
    tag_all_spans: bool


scripts = st.builds(
    Script,
    st.lists(steps, min_size=1, max_size=4).map(tuple),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


def _run(script: Script, c_path: bool) -> dict[str, Any]:
    """What the script leaves observable: the spans handed on, the budget, the processor's state."""
    with pytest.MonkeyPatch.context() as patch:
        if not c_path:
            patch.setattr(module, "PlainSpans", None)
        collect = Collect()
        processor = TokenbookSpanProcessor(collect, tag_all_spans=script.tag_all_spans)
    assert (type(processor.on_end).__name__ == "builtin_function_or_method") is c_path
    provider = TracerProvider(id_generator=_Sequential())
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")

    def run(step: Step) -> None:
        with tracer.start_as_current_span(step.name, attributes=step.start) as span:
            for child in step.children:
                run(child)
            span.set_attributes(step.end)
            if step.event is not None:
                span.add_event("e", step.event)

    with contextlib.ExitStack() as stack:
        if script.baggage:
            stack.enter_context(attribute(tenant="acme", user="alice"))
        spent = stack.enter_context(budget(max_tokens=10**9)) if script.with_budget else None
        if script.remote_parent:
            remote = SpanContext(0xABC, 0xDEF, True, TraceFlags(TraceFlags.SAMPLED))
            stack.enter_context(trace.use_span(NonRecordingSpan(remote)))
        for _ in range(2):  # the second time every name and key is known
            for root in script.roots:
                run(root)
    return {
        "started": [s.name for s in collect.started],
        "spans": [
            (
                s.name,
                s.context.span_id if s.context else None,
                dict(s.attributes or {}),
                [(e.name, dict(e.attributes or {})) for e in s.events],
            )
            for s in collect.spans
        ],
        "handed_on_unchanged": [type(s) is ReadableSpan for s in collect.spans],
        "used_tokens": spent.used_tokens if spent else None,
        "state": (
            processor.errors,
            processor.downstream_errors,
            len(processor._workflows),
            len(processor._started_calls),
            len(processor._tracker),
        ),
    }


@given(scripts)
def test_the_c_path_and_the_python_methods_give_the_same_spans_and_state(script: Script) -> None:
    assert _run(script, c_path=True) == _run(script, c_path=False)
