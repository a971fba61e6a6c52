"""Throughput of the SDK with and without TokenbookSpanProcessor, on one core.

Each run starts and ends `SPANS` realistic chat spans (15 attributes, varying token counts, inside an
`attribute(...)` block) through a BatchSpanProcessor into a no-op exporter, then flushes, so the export
thread's work is counted too. Bare and tokenbook runs alternate; the figure is the median of the
per-pair ratios (tokenbook spans/s / bare spans/s). The process is pinned to one CPU, and a run's rate
is spans per second of the process's CPU time (both threads), so other load on the machine does not
distort it; wall-clock rates are reported beside it.

`noop` is the original headline. Since tokenbook prices and redacts where a span's
attributes are first read (normally the export thread), and the no-op exporter reads nothing, `noop`
no longer counts that work: `read` is `noop` with an exporter that reads each span's attributes and
events (the least any exporter does), and the fair figure. Two labelled variants change one thing each:
`otlp-encode` also encodes each batch to OTLP protobuf bytes as the OTLP exporters do (nothing is
sent); `noop-set-after-start` starts each span with its 9 request attributes and sets the 6 response
attributes (model, id, finish reasons, token counts) one by one before ending it, as instrumentations
do after the call returns.

`floor` runs `noop` with `_FloorProcessor` in tokenbook's place: only the minimum (attribution on
every span, an enriched copy), in the cheapest public way (the 3 attribution values set with
``set_attributes`` in ``on_start``; in ``on_end`` a copy of the span whose attributes gain a constant
dict of as many ``tokenbook.*`` attributes as tokenbook writes on these spans). Its ratio is the best
a processor that tags every span and copies it on the ending thread could reach here.

`cases` crosses the span (`http`: a server span with no gen_ai key; `chat`: the
chat span above) with Baggage (attribution set or not) and an in-app budget (active or not). For each
case (through the `read` exporter) the bare SDK and each processor run in turn, `--case-pairs` rounds
of `--case-spans` spans, the order alternating between rounds, the heap collected and frozen before
each run; it reports the CPU ratio to the bare SDK per round (median, quartiles, extremes), the CPU
added per span, the latency of ``span.end()`` itself (``perf_counter_ns`` around each call, over every
span of every run) at p50 and p99, and for the http cases whether every processor exported the same
attributes (the runs did the same work). ``--baseline REF`` also measures the processor as it was at
git revision REF (``span_processor.py`` loaded from ``git show``), in the same runs, so before and
after share one run. `stages` also measures a plain HTTP span's ``on_start`` and ``on_end`` alone.

`instructions` (opt-in; needs valgrind) counts the instructions each processor executes per span of
each of ``--instruction-cases`` with cachegrind, as the difference of two child runs (`_child`, with
fixed string hashes, without address randomization where ``setarch -R`` is allowed, and one export
batch at the flush): a figure that does not move with the machine's load, beside the CPU-time ratios
that do. The load averages at the start and end of a run are recorded with its results.

    .venv/bin/python bench/processor_overhead.py [--spans N] [--pairs N] [--cpu N]
        [--sections configs,stages,cases,instructions] [--case-pairs N] [--case-spans N] [--baseline REF]
        [--cases http,chat,...] [--instruction-cases http,chat,...] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, NamedTuple, cast

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from tokenbook.processor import TokenbookSpanProcessor, attribute, budget
from tokenbook.processor.span_processor import _EnrichedSpan

RESULTS = Path(__file__).parent / "results" / "processor_overhead.json"
SPANS = 20_000
PAIRS = 7


class _NoOpExporter(SpanExporter):
    """Counts spans and drops them (the benchmark's specified exporter)."""

    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


class _OtlpEncodingExporter(_NoOpExporter):
    """Does what the OTLP exporters do before the network: encode to protobuf bytes; sends nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        encode_spans(spans).SerializeToString()
        return super().export(spans)


class _ReadingExporter(_NoOpExporter):
    """Reads each span's attributes and events, the least any real exporter does, and drops them.

    tokenbook's processor defers pricing and redaction to the first read of a span's attributes; an
    exporter that never reads them (`_NoOpExporter`) would leave that work undone and uncounted.
    """

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            span.attributes  # noqa: B018 - the read is the point
            span.events  # noqa: B018
        return super().export(spans)


EXPORTERS: dict[str, type[_NoOpExporter]] = {
    "noop": _NoOpExporter,
    "read": _ReadingExporter,
    "otlp-encode": _OtlpEncodingExporter,
}


def _span_attributes(n: int) -> list[dict[str, object]]:
    rng = random.Random(42)
    models = [("openai", "gpt-4o"), ("anthropic", "claude-sonnet-4-5"), ("openai", "gpt-4o-mini")]
    out = []
    for i in range(n):
        provider, model = models[i % len(models)]
        inp = rng.randint(200, 20_000)
        out.append(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": provider,
                "gen_ai.request.model": model,
                "gen_ai.response.model": model,
                "gen_ai.response.id": f"chatcmpl-{i}",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 1024,
                "gen_ai.response.finish_reasons": ("stop",),
                "gen_ai.usage.input_tokens": inp,
                "gen_ai.usage.output_tokens": rng.randint(10, 1_000),
                "gen_ai.usage.cache_read.input_tokens": rng.randint(0, inp // 2),
                "gen_ai.conversation.id": f"conv-{i % 97}",
                "server.address": "api.example.com",
                "server.port": 443,
                "gen_ai.output.type": "text",
            }
        )
    return out


#: Attributes an instrumentation knows only after the call returns (set one by one in the variant).
RESPONSE_KEYS = frozenset(
    {
        "gen_ai.response.model",
        "gen_ai.response.id",
        "gen_ai.response.finish_reasons",
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.cache_read.input_tokens",
    }
)


class _Collect(SpanProcessor):
    """Keeps the ended spans the SDK hands to on_end."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


#: name -> (exporter, response attributes set after start, processor measured against the bare SDK)
CONFIGS: dict[str, tuple[str, bool, str]] = {
    "noop": ("noop", False, "tokenbook"),
    "read": ("read", False, "tokenbook"),
    "otlp-encode": ("otlp-encode", False, "tokenbook"),
    "noop-set-after-start": ("noop", True, "tokenbook"),
    "floor": ("noop", False, "floor"),
}
#: The attribution `attribute(...)` puts into Baggage in every run, as span attributes.
ATTRIBUTION: dict[str, str] = {"tenant.id": "acme", "user.id": "alice", "project.id": "support"}


class _FloorProcessor(SpanProcessor):
    """The least work per span (attribution on every span, an enriched copy), done the cheapest
    public way; wraps `wrapped`.

    ``on_start``: ``set_attributes`` of the 3 attribution values (a constant: no Baggage lookup).
    ``on_end``: hands `wrapped` a copy of the span (`_EnrichedSpan`, as tokenbook builds it) whose
    attributes are the span's plus the constant `extra`. No reading, pricing, budgets or redaction.
    """

    def __init__(self, wrapped: SpanProcessor, extra: dict[str, object]) -> None:
        self._wrapped = wrapped
        self._extra = extra

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        span.set_attributes(ATTRIBUTION)
        self._wrapped.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        attrs = span.attributes.copy()  # type: ignore[union-attr]  # the proxy's C-level dict copy
        attrs.update(self._extra)
        self._wrapped.on_end(_EnrichedSpan(span, attrs, span.events))

    def shutdown(self) -> None:
        self._wrapped.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._wrapped.force_flush(timeout_millis)


def tokenbook_attributes(attrs: dict[str, object]) -> dict[str, object]:
    """The ``tokenbook.*`` attributes tokenbook's processor exports on a span with `attrs`."""
    collect = _Collect()
    provider = TracerProvider()
    provider.add_span_processor(TokenbookSpanProcessor(collect))
    with attribute(tenant="acme", user="alice", project="support"):
        provider.get_tracer("floor").start_span("chat", attributes=attrs).end()  # type: ignore[arg-type]
    (span,) = collect.spans
    return {k: v for k, v in (span.attributes or {}).items() if k.startswith("tokenbook.")}


def _split(attrs: dict[str, object]) -> tuple[dict[str, object], list[tuple[str, object]]]:
    """(request attributes, response attributes in order) of one span."""
    request = {k: v for k, v in attrs.items() if k not in RESPONSE_KEYS}
    return request, [(k, v) for k, v in attrs.items() if k in RESPONSE_KEYS]


def _run(with_tokenbook: bool, attrs: list[dict[str, object]], config: str = "noop") -> tuple[float, float]:
    """(spans per CPU-second, spans per wall-second) of one run; `with_tokenbook`: with the config's
    processor (tokenbook's, or `_FloorProcessor`), else the bare SDK."""
    exporter_kind, after_start, measured = CONFIGS[config]
    split = [_split(a) for a in attrs] if after_start else []
    exporter = EXPORTERS[exporter_kind]()
    batch = BatchSpanProcessor(exporter, max_queue_size=max(len(attrs) + 1, 2048))
    processor: SpanProcessor = batch
    if with_tokenbook:
        floor = measured == "floor"
        processor = (
            _FloorProcessor(batch, tokenbook_attributes(attrs[0])) if floor else TokenbookSpanProcessor(batch)
        )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")
    with attribute(tenant="acme", user="alice", project="support"):
        start, cpu_start = time.perf_counter(), time.process_time()
        if after_start:
            for request, response in split:
                span = tracer.start_span("chat", attributes=request)  # type: ignore[arg-type]
                for key, value in response:
                    span.set_attribute(key, value)  # type: ignore[arg-type]
                span.end()
        else:
            for a in attrs:
                span = tracer.start_span("chat", attributes=a)  # type: ignore[arg-type]
                span.end()
        provider.force_flush()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    provider.shutdown()
    if exporter.exported != len(attrs):
        raise RuntimeError(f"exported {exporter.exported} of {len(attrs)} spans: the queue dropped spans")
    return len(attrs) / cpu, len(attrs) / elapsed


def _per_span_us(fn: Callable[[Any], object], items: Sequence[Any], repeats: int = 5) -> float:
    """Best-of-`repeats` thread CPU time of `fn` per item, in µs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time_ns()
        for item in items:
            fn(item)
        best = min(best, (time.thread_time_ns() - start) / len(items))
    return round(best / 1000, 2)


def _stages(attrs: list[dict[str, object]]) -> dict[str, float]:
    """CPU cost of each step of tokenbook's per-span work, measured alone (no pipeline around it)."""
    attribution: dict[str, Any] = ATTRIBUTION
    collect = _Collect()
    provider = TracerProvider()
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("stages")
    for a in attrs:
        tracer.start_span("chat", attributes={**a, **attribution}).end()  # type: ignore[dict-item]
    ended = collect.spans
    processor = TokenbookSpanProcessor(SpanProcessor())
    live = [TracerProvider().get_tracer("stages").start_span("chat", attributes=a) for a in attrs]  # type: ignore[arg-type]
    out: dict[str, float] = {}
    with attribute(tenant="acme", user="alice", project="support"):
        out["sdk_set_attributes_of_3_attribution_values"] = _per_span_us(
            lambda span: span.set_attributes(attribution), live
        )
        out["tokenbook_on_start"] = _per_span_us(lambda span: processor.on_start(span, None), live)
    out["tokenbook_on_end"] = _per_span_us(processor.on_end, ended)
    out["of_which_sdk_attributes_copy"] = _per_span_us(lambda span: span.attributes.copy(), ended)
    out["of_which_sdk_events_and_links_tuples"] = _per_span_us(lambda span: (span.events, span.links), ended)
    out["of_which_enriched_span_copy_incl_links_tuple"] = _per_span_us(
        lambda span: _EnrichedSpan(span, {}, ()), ended
    )
    # Alternation: an SDK span (no-op processor) and tokenbook's on_end of another span, in turn, cost
    # more than the two measured alone. Not GC (the same with gc disabled), not the spans' data (the same
    # with one ended span every time), not the copy's allocations (SDK span + copy alone: ~+1 µs); it
    # grows with how much Python code runs in turn: most likely the CPU caches and branch predictors.
    # The three are measured in each of 7 rounds; the figures are medians over the rounds.
    bare_tracer = TracerProvider().get_tracer("stages")  # no processor: the SDK's own work only
    pairs = list(zip(attrs, ended, strict=True))

    def sdk_span(a: dict[str, object]) -> None:
        bare_tracer.start_span("chat", attributes=a).end()  # type: ignore[arg-type]

    def alternate(pair: tuple[dict[str, object], ReadableSpan]) -> None:
        sdk_span(pair[0])
        processor.on_end(pair[1])

    rounds = [
        (
            _per_span_us(sdk_span, attrs, 1),
            _per_span_us(processor.on_end, ended, 1),
            _per_span_us(alternate, pairs, 1),
        )
        for _ in range(7)
    ]
    out["sdk_span_start_end_alone"] = statistics.median(r[0] for r in rounds)
    out["sdk_span_then_tokenbook_on_end_alternating"] = statistics.median(r[2] for r in rounds)
    out["alternation_penalty"] = round(statistics.median(r[2] - r[0] - r[1] for r in rounds), 2)
    return out


# --- cases: span kind x Baggage x budget; CPU ratio and span.end() latency -------------------------
#: A server span with no gen_ai key (what most spans of an app look like).
HTTP_ATTRIBUTES: dict[str, object] = {
    "http.request.method": "GET",
    "http.route": "/api/orders/{id}",
    "url.path": "/api/orders/42",
    "url.scheme": "https",
    "server.address": "api.example.com",
    "server.port": 443,
    "user_agent.original": "curl/8.5.0",
    "http.response.status_code": 200,
}


def _http_stages(n: int) -> dict[str, float]:
    """CPU per plain HTTP span (a local root, no gen_ai key) of each part, measured alone, in µs.

    The SDK's own start and end of such a span (no processor) beside tokenbook's ``on_start`` and
    ``on_end`` of it (keys and name already learned), and what a processor that only passes the span on
    costs in their place: the part of tokenbook's cost that any wrapping processor pays.
    """
    collect = _Collect()
    provider = TracerProvider()
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("stages")
    name = "GET /api/orders/{id}"
    live = [tracer.start_span(name, attributes=HTTP_ATTRIBUTES) for _ in range(n)]  # type: ignore[arg-type]
    for span in live:
        span.end()
    ended = collect.spans
    fresh = [cast(Span, tracer.start_span(name, attributes=HTTP_ATTRIBUTES)) for _ in range(n)]  # type: ignore[arg-type]
    processor = TokenbookSpanProcessor(SpanProcessor())
    processor.on_start(fresh[0], None)  # learn the keys and the name
    processor.on_end(ended[0])
    passing = SpanProcessor()
    bare_tracer = TracerProvider().get_tracer("stages")

    def sdk_span(_: object) -> None:
        bare_tracer.start_span(name, attributes=HTTP_ATTRIBUTES).end()  # type: ignore[arg-type]

    def start_and_end(pair: tuple[Span, ReadableSpan]) -> None:
        processor.on_start(pair[0], None)
        processor.on_end(pair[1])

    def pass_through(pair: tuple[Span, ReadableSpan]) -> None:
        passing.on_start(pair[0], None)
        passing.on_end(pair[1])

    pairs = list(zip(fresh, ended, strict=True))
    out = {
        "sdk_span_start_end_alone": _per_span_us(sdk_span, range(n)),
        "tokenbook_on_start": _per_span_us(lambda span: processor.on_start(span, None), fresh),
        "tokenbook_on_end": _per_span_us(processor.on_end, ended),
        "tokenbook_on_start_then_on_end": _per_span_us(start_and_end, pairs),
        "pass_through_on_start_then_on_end": _per_span_us(pass_through, pairs),
    }
    return out


#: case name -> (span kind, Baggage set, budget active)
CASES: dict[str, tuple[str, bool, bool]] = {
    f"{kind}{'-baggage' if bag else ''}{'-budget' if bud else ''}": (kind, bag, bud)
    for kind in ("http", "chat")
    for bag in (False, True)
    for bud in (False, True)
}
#: processor factories measured in `cases`: "bare" (none), "tokenbook", and "baseline" with --baseline
Factory = Callable[[SpanProcessor], SpanProcessor] | None


def _load_baseline(ref: str) -> type[SpanProcessor]:
    """`TokenbookSpanProcessor` of span_processor.py as it was at git revision `ref`."""
    root = Path(__file__).resolve().parents[1]
    source = subprocess.run(
        ["git", "show", f"{ref}:processor/src/tokenbook/processor/span_processor.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp(prefix="tokenbook-baseline-")) / "baseline_span_processor.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("tokenbook_baseline_span_processor", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    baseline: type[SpanProcessor] = module.TokenbookSpanProcessor
    return baseline


class _CountingExporter(_ReadingExporter):
    """`_ReadingExporter` that also counts the attributes it read (to check that runs did the same work)."""

    def __init__(self) -> None:
        super().__init__()
        self.attributes = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.attributes += sum(len(span.attributes or ()) for span in spans)
        return super().export(spans)


class _Run(NamedTuple):
    """One run of a case: its CPU time, the ``span.end()`` latencies, what the exporter saw."""

    cpu_s: float
    ends_ns: list[int]
    exported: int
    attributes: int


def _case_run(factory: Factory, case: str, attrs: list[dict[str, object]], *, timer: bool = True) -> _Run:
    """One run of `case`: every span started and ended, then flushed; timed in CPU seconds.

    Bare and processor runs differ only in the processor between the provider and the batch processor:
    same spans, contexts, exporter, clock calls and flush. The heap is collected and frozen first, so a
    garbage collection during the run walks only what the run allocated.
    """
    kind, with_baggage, with_budget = CASES[case]
    exporter = _CountingExporter()
    batch = BatchSpanProcessor(
        exporter,
        max_queue_size=max(len(attrs) + 1, 2048),
        # without a timer, one export of the whole run, at the flush: the export thread does not run
        # while spans are ended, so what it costs does not depend on when it is scheduled
        schedule_delay_millis=None if timer else 10**9,
        max_export_batch_size=None if timer else len(attrs) + 1,
    )
    provider = TracerProvider()
    provider.add_span_processor(batch if factory is None else factory(batch))
    tracer = provider.get_tracer("bench")
    name = "chat gpt-4o" if kind == "chat" else "GET /api/orders/{id}"
    spans_attrs = attrs if kind == "chat" else [HTTP_ATTRIBUTES] * len(attrs)
    ends: list[int] = []
    clock = time.perf_counter_ns
    with contextlib.ExitStack() as stack:
        if with_baggage:
            stack.enter_context(attribute(tenant="acme", user="alice", project="support"))
        if with_budget:
            stack.enter_context(budget(max_tokens=10**15, name="bench"))
        gc.collect()
        gc.freeze()
        cpu_start = time.process_time()
        for a in spans_attrs:
            span = tracer.start_span(name, attributes=a)  # type: ignore[arg-type]
            t0 = clock()
            span.end()
            ends.append(clock() - t0)
        provider.force_flush()
        cpu = time.process_time() - cpu_start
        gc.unfreeze()
    provider.shutdown()
    if exporter.exported != len(attrs):
        raise RuntimeError(f"exported {exporter.exported} of {len(attrs)} spans: the queue dropped spans")
    return _Run(cpu, ends, exporter.exported, exporter.attributes)


def _pct(values: Sequence[float], q: float) -> float:
    """The `q` quantile of `values`, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _spread(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """Median, quartiles and extremes of `values`."""
    return {
        "min": round(min(values), digits),
        "p25": round(_pct(values, 0.25), digits),
        "median": round(statistics.median(values), digits),
        "p75": round(_pct(values, 0.75), digits),
        "max": round(max(values), digits),
    }


def _ratio_text(row: dict[str, Any], name: str) -> str:
    """A case's ratio for processor `name` with its quartiles, for the printed table."""
    spread = row[f"{name}_ratio_spread"]
    return f"{row[f'{name}_ratio_median']:>12} [{spread['p25']}-{spread['p75']}]"


def _cases(
    attrs: list[dict[str, object]], pairs: int, baseline: type[SpanProcessor] | None, only: Sequence[str]
) -> dict[str, Any]:
    """Each case: the bare SDK and each processor in turn, `pairs` rounds; ratios, spread and latencies.

    Within a round the order alternates (bare first in even rounds, last in odd ones) so that a drift of
    the machine's speed during a round does not favour either side. A round's ratio is the processor's
    spans per CPU-second over the bare SDK's in the same round; the figure is the median over rounds,
    reported with its quartiles and extremes.
    """
    factories: dict[str, Factory] = {"bare": None, "tokenbook": TokenbookSpanProcessor}
    if baseline is not None:
        factories["baseline"] = baseline
    out: dict[str, Any] = {}
    header = f"{'case':<22}" + "".join(f"{n + ' ratio [p25-p75]':>28}" for n in factories if n != "bare")
    print(header + "   end() µs p50/p99: " + " | ".join(factories))
    for case in only:
        for factory in factories.values():  # warm-up run of each (caches, first-seen keys)
            _case_run(factory, case, attrs[:2000])
        cpu: dict[str, list[float]] = {n: [] for n in factories}
        ends: dict[str, list[int]] = {n: [] for n in factories}
        seen: dict[str, set[int]] = {n: set() for n in factories}
        for round_ in range(pairs):
            order = list(factories.items())
            for n, factory in order if round_ % 2 == 0 else reversed(order):
                run = _case_run(factory, case, attrs)
                cpu[n].append(run.cpu_s)
                ends[n].extend(run.ends_ns)
                seen[n].add(run.attributes)
        spans = len(attrs)
        row: dict[str, Any] = {
            "bare_spans_per_cpu_s_median": round(spans / statistics.median(cpu["bare"])),
            "bare_cpu_us_per_span": _spread([c / spans * 1e6 for c in cpu["bare"]], 2),
        }
        if CASES[case][0] == "http":  # the processor adds nothing to these spans: same attributes exported
            row["same_attributes_exported"] = all(seen[n] == seen["bare"] for n in factories)
        for n in factories:
            row[f"{n}_end_us"] = {
                "p50": round(_pct(ends[n], 0.50) / 1000, 2),
                "p99": round(_pct(ends[n], 0.99) / 1000, 2),
            }
            if n == "bare":
                continue
            ratios = [b / t for t, b in zip(cpu[n], cpu["bare"], strict=True)]  # = rate ratio
            added = [(t - b) / spans * 1e6 for t, b in zip(cpu[n], cpu["bare"], strict=True)]
            row[f"{n}_spans_per_cpu_s_median"] = round(spans / statistics.median(cpu[n]))
            row[f"{n}_ratio_median"] = round(statistics.median(ratios), 3)
            row[f"{n}_ratio_spread"] = _spread(ratios)
            row[f"{n}_ratios"] = [round(r, 3) for r in ratios]
            row[f"{n}_cpu_us_added_per_span"] = _spread(added, 2)
            row[f"{n}_end_added_us"] = {
                q: round(row[f"{n}_end_us"][q] - row["bare_end_us"][q], 2) for q in ("p50", "p99")
            }
        out[case] = row
        print(
            f"{case:<22}"
            + "".join(_ratio_text(row, n) for n in factories if n != "bare")
            + "   "
            + " | ".join(f"{row[f'{n}_end_us']['p50']}/{row[f'{n}_end_us']['p99']}" for n in factories),
            flush=True,
        )
    return out


#: Spans of the two child runs whose instruction counts are subtracted (start-up cancels out).
INSTRUCTION_SPANS: Final = (1000, 3000)


def _child(spec: str, baseline_ref: str | None) -> None:
    """``--child CASE:PROCESSOR:SPANS``: one untimed run, for `_instructions` to count under valgrind."""
    case, name, spans = spec.split(":")
    factories: dict[str, Factory] = {"bare": None, "tokenbook": TokenbookSpanProcessor}
    if name == "baseline":
        assert baseline_ref is not None, "--child ...:baseline needs --baseline"
        factories["baseline"] = _load_baseline(baseline_ref)
    attrs = _span_attributes(int(spans))
    # No export on a timer or while spans are ended (one batch, at the flush), and no automatic garbage
    # collection: under valgrind a run lasts long enough for the batch processor's timer to fire a
    # number of times that depends on its speed (smaller batches cost more per span); the work of
    # ending a span while the export thread is behind (a check of its wake-up event per span) and how
    # many spans wait in its queue when a collection walks them depend on when valgrind switches
    # threads. Any of these would make the count depend on scheduling rather than on the work.
    gc.disable()
    _case_run(factories[name], case, attrs[:200], timer=False)  # the same warm-up in both runs
    _case_run(factories[name], case, attrs, timer=False)


def _setarch_works() -> bool:
    """Whether ``setarch -R`` (run without address space randomization) is allowed here."""
    if shutil.which("setarch") is None:
        return False
    return subprocess.run(["setarch", "-R", "true"], capture_output=True, check=False).returncode == 0


def _instruction_count(spec: str, baseline_ref: str | None) -> int:
    """Instructions executed by a `_child` run of `spec`, counted by valgrind's cachegrind."""
    # Fixed string hashes and, where setarch can, no address randomization: set and dict probes of the
    # attribute keys, and the layout of the heap, are then the same in every run (less noise in the count)
    command = ["setarch", "-R"] if _setarch_works() else []
    command += ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--child", spec]
    if baseline_ref:
        command += ["--baseline", baseline_ref]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    match = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if match is None:
        raise RuntimeError(f"no instruction count in valgrind's output: {done.stderr[-500:]}")
    return int(match.group(1).replace(",", ""))


def _instructions(cases: Sequence[str], baseline_ref: str | None) -> dict[str, Any]:
    """Instructions per span of each processor in each case: deterministic, whatever the machine's load.

    Each count is the difference of two runs (`INSTRUCTION_SPANS`) divided by the difference of their
    spans, so start-up and imports cancel out. It counts work, not time: cache misses and branch
    mispredictions are not in it, so it complements the CPU-time ratios rather than replacing them.
    """
    if shutil.which("valgrind") is None:
        print("instructions: valgrind not found, skipped")
        return {"skipped": "valgrind not found"}
    names = ["bare", "tokenbook"] + (["baseline"] if baseline_ref else [])
    low, high = INSTRUCTION_SPANS
    out: dict[str, Any] = {}
    for case in cases:
        row: dict[str, Any] = {}
        for name in names:
            counts = [_instruction_count(f"{case}:{name}:{n}", baseline_ref) for n in (low, high)]
            row[f"{name}_per_span"] = round((counts[1] - counts[0]) / (high - low))
        for name in names[1:]:
            row[f"{name}_ratio"] = round(row["bare_per_span"] / row[f"{name}_per_span"], 3)
        out[case] = row
        print(f"instructions per span, {case}: {row}", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=SPANS)
    parser.add_argument("--pairs", type=int, default=PAIRS)
    parser.add_argument("--cpu", type=int, default=None, help="CPU to pin to (default: the lowest allowed)")
    parser.add_argument(
        "--sections",
        default="configs,stages,cases",
        help="comma list of sections to run (configs, stages, cases, instructions: needs valgrind, ~10 min)",
    )
    parser.add_argument("--case-pairs", type=int, default=40, help="rounds (runs of each processor) per case")
    parser.add_argument("--case-spans", type=int, default=5000, help="spans per run in the cases")
    parser.add_argument("--baseline", default=None, help="git revision whose processor is also measured")
    parser.add_argument("--cases", default=None, help="comma list of cases to run (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON file written")
    parser.add_argument(
        "--instruction-cases",
        default="http,http-baggage,http-budget,http-baggage-budget,chat",
        help="cases whose instructions per span are counted (section instructions; needs valgrind)",
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # CASE:PROCESSOR:SPANS
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.baseline)
        return {}
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    cpu = min(os.sched_getaffinity(0)) if args.cpu is None else args.cpu
    os.sched_setaffinity(0, {cpu})
    attrs = _span_attributes(args.spans)
    _run(True, attrs[:2000])  # warm caches (price lookups, imports) before timing
    _run(False, attrs[:2000])
    result: dict[str, object] = {
        "benchmark": "processor_overhead",
        "command": " ".join(["python bench/processor_overhead.py", *(argv or sys.argv[1:])]),
        "spans_per_run": args.spans,
        "pairs": args.pairs,
        "cpu": cpu,
        "python": platform.python_version(),
        "goal_ratio": 0.90,
        "headline": "noop",
        "load_average_1_5_15_min_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    if "configs" in sections:
        _configs(result, attrs, args.pairs)
    if "stages" in sections:
        stages = _stages(attrs[:5000])
        per_span: Any = result.setdefault("per_span_us", {})
        per_span["stages_measured_alone"] = stages
        print(f"stages (µs of CPU): {stages}")
        per_span["http_stages_measured_alone"] = http_stages = _http_stages(5000)
        print(f"http stages (µs of CPU): {http_stages}")
    if "cases" in sections:
        baseline = _load_baseline(args.baseline) if args.baseline else None
        result["cases_goals"] = {"http_ratio_min": 0.95, "chat_no_budget_end_added_p50_us_max": 3.0}
        result["case_pairs"] = args.case_pairs
        result["case_spans_per_run"] = args.case_spans
        if args.baseline:
            result["baseline_ref"] = args.baseline
        only = [c.strip() for c in args.cases.split(",")] if args.cases else list(CASES)
        result["cases"] = _cases(_span_attributes(args.case_spans), args.case_pairs, baseline, only)
    if "instructions" in sections:
        counted = [c.strip() for c in args.instruction_cases.split(",") if c.strip()]
        result["instructions"] = _instructions(counted, args.baseline)
    result["load_average_1_5_15_min_at_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def _configs(result: dict[str, object], attrs: list[dict[str, object]], pairs: int) -> None:
    """The `CONFIGS` rows (throughput ratios) and the per-span summary, into `result`."""
    print(f"{'config':<22}{'bare spans/cpu-s':>18}{'tokenbook':>12}{'ratio':>8}{'wall ratio':>12}  per pair")
    for kind in CONFIGS:
        bare: list[tuple[float, float]] = []
        tokenbook: list[tuple[float, float]] = []
        for _ in range(pairs):
            bare.append(_run(False, attrs, kind))
            tokenbook.append(_run(True, attrs, kind))
        ratios = [t[0] / b[0] for t, b in zip(tokenbook, bare, strict=True)]
        wall_ratios = [t[1] / b[1] for t, b in zip(tokenbook, bare, strict=True)]
        row: dict[str, object] = {
            "processor": CONFIGS[kind][2],  # the "tokenbook_*" keys hold this processor's figures
            "bare_spans_per_cpu_s_median": round(statistics.median(b[0] for b in bare)),
            "tokenbook_spans_per_cpu_s_median": round(statistics.median(t[0] for t in tokenbook)),
            "ratio_median": round(statistics.median(ratios), 3),
            "ratios": [round(r, 3) for r in ratios],
            "bare_spans_per_wall_s_median": round(statistics.median(b[1] for b in bare)),
            "tokenbook_spans_per_wall_s_median": round(statistics.median(t[1] for t in tokenbook)),
            "wall_ratio_median": round(statistics.median(wall_ratios), 3),
        }
        if CONFIGS[kind][2] == "floor":
            row["tokenbook_attributes_added"] = len(tokenbook_attributes(attrs[0]))
        result[kind] = row
        print(
            f"{kind:<22}{row['bare_spans_per_cpu_s_median']:>18,}{row['tokenbook_spans_per_cpu_s_median']:>12,}"
            f"{row['ratio_median']:>8}{row['wall_ratio_median']:>12}  {row['ratios']}"
        )
    headline: Any = result["noop"]
    floor: Any = result["floor"]
    bare_us = 1e6 / headline["bare_spans_per_cpu_s_median"]
    result["per_span_us"] = {
        "bare_sdk_span": round(bare_us, 2),
        "tokenbook_added": round(1e6 / headline["tokenbook_spans_per_cpu_s_median"] - bare_us, 2),
        "floor_added": round(
            1e6 / floor["tokenbook_spans_per_cpu_s_median"] - 1e6 / floor["bare_spans_per_cpu_s_median"], 2
        ),
        "allowed_for_goal_ratio": round(bare_us * (1 / 0.90 - 1), 2),
    }
    print(f"per span (µs of CPU): {result['per_span_us']}")


if __name__ == "__main__":
    main()
