"""bench/processor_overhead.py's `floor`: the least a processor meeting issue 2's constraints does."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tokenbook.processor import TokenbookSpanProcessor, attribute


def _load_bench() -> ModuleType:
    """bench/processor_overhead.py by path (bench/ is not an installed package)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "processor_overhead.py"
    spec = importlib.util.spec_from_file_location("bench_processor_overhead", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and typing resolve the module by name
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


def _export(processor_of, attrs: dict[str, object]) -> dict[str, object]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(processor_of(SimpleSpanProcessor(exporter)))
    with attribute(tenant="acme", user="alice", project="support"):
        provider.get_tracer("t").start_span("chat", attributes=attrs).end()  # type: ignore[arg-type]
    provider.shutdown()
    (span,) = exporter.get_finished_spans()
    return dict(span.attributes or {})


def test_floor_exports_what_tokenbook_exports_with_constant_tokenbook_values():
    attrs = bench._span_attributes(1)[0]
    extra = bench.tokenbook_attributes(attrs)
    assert len(extra) == 10 and {"tokenbook.cost.total", "tokenbook.workflow.id"} <= set(extra)
    floor = _export(lambda wrapped: bench._FloorProcessor(wrapped, extra), attrs)
    tokenbook = _export(TokenbookSpanProcessor, attrs)
    assert floor.keys() == tokenbook.keys()  # same attributes: the span's, attribution, tokenbook.*
    assert {k: floor[k] for k in bench.ATTRIBUTION} == bench.ATTRIBUTION
    assert {k: v for k, v in floor.items() if k in attrs} == attrs
    assert {k: v for k, v in floor.items() if k.startswith("tokenbook.")} == extra


def test_floor_config_runs_and_exports_every_span():
    cpu_rate, wall_rate = bench._run(True, bench._span_attributes(200), "floor")  # raises on a lost span
    assert cpu_rate > 0 and wall_rate > 0
