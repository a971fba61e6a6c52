"""The official exporter against the collector, and against a sink that answers at once.

An application process creates realistic gen_ai spans (`collector_throughput._build_spans`' agent runs:
an invoke_agent wrapper, three chat calls with usage and attribution, a tool call) with the SDK's
`TracerProvider` and `BatchSpanProcessor` (``max_export_batch_size`` 512, the SDK default) and the
official `OTLPSpanExporter` (gRPC). The queue holds every span (``max_queue_size`` = spans), so
nothing is dropped and the figure is the exporter's: spans per second from the first span to the end
of `force_flush`, every export answered with success (checked).

Targets, the same generator, alternating runs (sink, collector, sink, collector, ...):

* ``sink``: a trivial gRPC ``TraceService`` on loopback, in its own process, that answers every
  export with an empty response at once;
* ``collector``: the real collector (`python -m tokenbook collector`, write-ahead log on, embedded
  store), one for all its runs;
* with ``--durable-sink``, also ``durable_sink``: a sink that answers once the request's bytes are
  appended to a file and fsynced, and does nothing else: the rate any receiver that acknowledges only
  what is durable can reach here (reported as ``durable_sink_ratio``).

Reported: the rate of each run, the median per target and their ratio (collector / sink; the goal is
at least 0.90); per target (``application_per_span``), the application's own CPU and wall time per
span, how often the kernel took its core away (involuntary context switches per 1,000 spans), the
time until its last span ended (``generated_us``; the flush follows) and the time its export thread
spent in export calls, encoding and waiting for the answer (``exporting_us``): when the export thread
is busy all along, the rate is the exporter's, one batch per encoding plus answer; the collector's
CPU per span over its runs (its worker processes included) and
its mean time to answer a request, with the two stages of that answer (``answer_ms``: ``decode``, the
spans decoded and checked; ``log``, the request in the write-ahead log with its fsync), read from its
``tokenbook_collector_answer*_seconds`` metrics.
``--config NAME=FILE`` (repeatable) runs one collector per config file instead, each in every round
(sink, then each collector), and reports each one's ratio and CPU: configurations compared under the
same load.
Run: ``.venv/bin/python bench/exporter_vs_sink.py [--spans 20000] [--pairs 5] [--config NAME=FILE ...]
[--durable-sink]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import resource
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bench.collector_throughput import (  # noqa: E402 - after the path set-up
    SPANS_PER_RUN,
    BenchCollector,
    _admin_scalar,
    _children,
    _cpu_seconds,
    _free_port,
    add_config_option,
)
from bench.result_file import write_result  # noqa: E402

RESULT = HERE / "results" / "exporter_vs_sink.json"
#: the reported stages of the answer -> the collector's latency summary
_ANSWER = {
    "answer": "answer_seconds",
    "decode": "answer_decode_seconds",
    "log": "answer_log_seconds",
}


def _sink(port: int, ready: Any, log: str | None = None) -> None:
    """A TraceService that acknowledges every export at once; with `log` (a file), once the request is
    parsed (as without) and its bytes, as they came, are appended to it and fsynced."""
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

    class Sink(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    if log is None:
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Sink(), server)
    else:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        lock = threading.Lock()
        empty: bytes = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()

        def export(body: bytes, context: Any) -> bytes:
            trace_service_pb2.ExportTraceServiceRequest.FromString(body)  # parsed, as the sink does
            with lock:
                os.write(fd, len(body).to_bytes(4, "little") + body)
                os.fsync(fd)
            return empty

        service = "opentelemetry.proto.collector.trace.v1.TraceService"  # bytes in, bytes out
        handler = grpc.method_handlers_generic_handler(
            service, {"Export": grpc.unary_unary_rpc_method_handler(export)}
        )
        server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    ready.set()
    server.wait_for_termination()


def _application(endpoint: str, spans: int, seed: int, out: Any) -> None:
    """Create `spans` gen_ai spans through the SDK's batch processor and the official exporter."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult

    from bench.collector_throughput import agent_run

    class Counting(OTLPSpanExporter):
        exported = 0
        failures = 0
        exporting = 0.0  # seconds the export thread spent in export calls (encoding and waiting)

        def export(self, batch: Any) -> SpanExportResult:
            started = time.perf_counter()
            result = super().export(batch)
            Counting.exporting += time.perf_counter() - started
            if result == SpanExportResult.SUCCESS:
                Counting.exported += len(batch)
            else:
                Counting.failures += 1
            return result

    provider = TracerProvider(
        resource=Resource.create({"service.name": f"agent-{seed}", "deployment.environment": "bench"})
    )
    exporter = Counting(endpoint=endpoint, insecure=True, timeout=60)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=max(spans + 1, 2048), max_export_batch_size=512)
    )
    tracer = provider.get_tracer("bench")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for i in range(spans // SPANS_PER_RUN):
        agent_run(tracer, i, seed)
    generated = time.perf_counter() - started
    provider.force_flush(300_000)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    provider.shutdown()
    out.put(
        {
            "seconds": seconds,
            "exported": Counting.exported,
            "failures": Counting.failures,
            # the application's own CPU (all its threads) and how often the kernel took its core away
            "cpu_s": after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime,
            "preempted": after.ru_nivcsw - usage.ru_nivcsw,
            "generated_s": generated,  # until the last span ended (then the flush)
            "exporting_s": Counting.exporting,
        }
    )


def _run_application(ctx: Any, endpoint: str, spans: int, seed: int) -> dict[str, Any]:
    out = ctx.Queue()
    p = ctx.Process(target=_application, args=(endpoint, spans, seed, out))
    p.start()
    while True:
        try:
            report: dict[str, Any] = out.get(timeout=1.0)
            break
        except queue.Empty:
            if not p.is_alive():
                raise RuntimeError(f"the application process exited with {p.exitcode}") from None
    p.join()
    if report["exported"] != spans or report["failures"]:
        raise RuntimeError(f"not every span was exported with success: {report}")
    return {**report, "spans_per_s": round(spans / report["seconds"])}


class _Collector(BenchCollector):
    """A collector process of one configuration, with the spans sent to it and the CPU it spent."""

    def __init__(self, name: str, config: Path | None, folder: Path) -> None:
        super().__init__(folder, name, config)
        self.rows = 0  # spans sent to it so far
        self.cpu = 0.0  # seconds of CPU over its runs (worker processes included)
        self.answers: dict[str, float] = {}  # the answer's latency summaries over its runs

    def answer_ms(self) -> dict[str, float]:
        """The mean time to answer a request over its runs, and of each stage of the answer, in ms."""
        got = self.answers
        return {
            name: round(1000 * got.get(f"{s}_sum", 0.0) / max(got.get(f"{s}_count", 0.0), 1.0), 2)
            for name, s in _ANSWER.items()
        }

    def run(self, ctx: Any, spans: int, seed: int) -> dict[str, Any]:
        """One application run against it; its CPU counted until every span's row is visible."""
        pids = [self.process.pid, *_children(self.process.pid)]
        before = sum(_cpu_seconds(p) for p in pids)
        metrics = self.metrics()
        result = _run_application(ctx, self.endpoint, spans, seed)
        for name, value in self.metrics().items():
            if name.startswith("answer"):
                self.answers[name] = self.answers.get(name, 0.0) + value - metrics.get(name, 0.0)
        self.rows += spans
        while _admin_scalar(self.admin, "SELECT count() FROM llm_calls") * 5 // 3 < self.rows:
            time.sleep(0.05)
        self.cpu += sum(_cpu_seconds(p) for p in pids) - before
        return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=5)
    add_config_option(parser, "one collector, `collector`, with the defaults")
    parser.add_argument(
        "--durable-sink",
        action="store_true",
        help="also a sink that answers once the request's bytes are appended to a file and fsynced: "
        "what a receiver that acknowledges only what is durable, and does nothing else, reaches",
    )
    parser.add_argument("--out", type=Path, default=RESULT, help="the result file")
    args = parser.parse_args(argv if argv is not None else [])
    spans = args.spans // SPANS_PER_RUN * SPANS_PER_RUN
    configs: list[tuple[str, Path | None]] = list(args.config) or [("collector", None)]
    ctx = mp.get_context("spawn")
    tmp = tempfile.TemporaryDirectory(prefix="tokenbook-bench-")
    sinks = {
        "sink": None,
        **({"durable_sink": str(Path(tmp.name) / "requests.log")} if args.durable_sink else {}),
    }
    endpoints: dict[str, str] = {}
    sink_processes = []
    for name, log in sinks.items():
        port, ready = _free_port(), ctx.Event()
        sink_processes.append(ctx.Process(target=_sink, args=(port, ready, log), daemon=True))
        sink_processes[-1].start()
        ready.wait(30)
        endpoints[name] = f"127.0.0.1:{port}"
    collectors = [_Collector(name, config, Path(tmp.name)) for name, config in configs]
    runs: dict[str, list[dict[str, Any]]] = {
        **{name: [] for name in sinks},
        **{c.name: [] for c in collectors},
    }
    try:
        for collector in collectors:
            collector.wait_ready()
        for pair in range(args.pairs):
            for name, endpoint in endpoints.items():
                result = _run_application(ctx, endpoint, spans, seed=pair)
                runs[name].append(result)
                print(f"pair {pair + 1}/{args.pairs} {name}: {result['spans_per_s']:,} spans/s", flush=True)
            for collector in collectors:
                result = collector.run(ctx, spans, seed=pair)
                runs[collector.name].append(result)
                print(
                    f"pair {pair + 1}/{args.pairs} {collector.name}: {result['spans_per_s']:,} spans/s",
                    flush=True,
                )
    finally:
        for collector in collectors:
            collector.stop()
        for sink in sink_processes:
            sink.terminate()
        tmp.cleanup()
    medians = {t: sorted(r["spans_per_s"] for r in rs)[(len(rs) - 1) // 2] for t, rs in runs.items()}
    options = "".join(f" --config {name}={config or ''}" for name, config in args.config)
    options += " --durable-sink" if args.durable_sink else ""
    report: dict[str, Any] = {
        "command": f".venv/bin/python bench/exporter_vs_sink.py --spans {args.spans} --pairs {args.pairs}"
        + options,
        "spans_per_run": spans,
        "batch": 512,
        "median_spans_per_s": medians,
    }
    if len(collectors) == 1:
        report["ratio"] = round(medians[collectors[0].name] / medians["sink"], 3)
        report["collector_cpu_us_per_span"] = round(1e6 * collectors[0].cpu / (spans * args.pairs), 1)
        report["collector_answer_ms"] = collectors[0].answer_ms()
    else:
        report["ratio"] = {c.name: round(medians[c.name] / medians["sink"], 3) for c in collectors}
        report["collector_cpu_us_per_span"] = {
            c.name: round(1e6 * c.cpu / (spans * args.pairs), 1) for c in collectors
        }
        report["collector_answer_ms"] = {c.name: c.answer_ms() for c in collectors}
    if args.durable_sink:
        report["durable_sink_ratio"] = round(medians["durable_sink"] / medians["sink"], 3)
    #: what the application reported -> (the figure per span, its scale)
    per_span = {
        "cpu_us": ("cpu_s", 1e6),
        "wall_us": ("seconds", 1e6),
        "preempted_per_1000": ("preempted", 1e3),
        "generated_us": ("generated_s", 1e6),
        "exporting_us": ("exporting_s", 1e6),
    }
    report["application_per_span"] = {
        t: {
            name: round(scale * sum(r[key] for r in rs) / (spans * len(rs)), 2)
            for name, (key, scale) in per_span.items()
        }
        for t, rs in runs.items()
    }
    report |= {
        "runs": {t: [r["spans_per_s"] for r in rs] for t, rs in runs.items()},
        "load_average_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    write_result(args.out, report, {k: v for k, v in report.items() if k != "runs"})
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
