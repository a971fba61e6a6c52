"""End-to-end collector throughput: realistic gen_ai spans over OTLP/gRPC into a collector process.

Sender processes pre-build `ReadableSpan`s with a real TracerProvider (agent runs: an invoke_agent
wrapper, chat calls with usage and attribution, a tool call).

* ``--mode stub``: the spans are encoded beforehand by the official exporter's encoder
  (`encode_spans`) and sent with the generated `TraceServiceStub`: the figure is the collector's.
* ``--mode exporter``: the official `OTLPSpanExporter` (gRPC) ``export()`` runs inside the clock; its
  Python encoder (~12k spans/s per core here) competes with the collector for the 2 cores.
* ``--mode both`` (default): one run of each, both written to the result file.

The collector runs as a child process (`python -m tokenbook collector`) with its write-ahead log on
(every ack after fsync) and the embedded store. The clock starts when the senders start and stops
when every row is visible in ClickHouse (`llm_calls` + `context_steps`, read via the admin API).

Reported: spans/s end to end, the ack rate, when every context's row is in ``context_costs`` (the
aggregate refresh yields to inserts, so it trails), the collector's peak RSS (VmHWM) and its decoder
processes', and CPU per span (decoder processes included), for
each of ``--repeat`` runs (a fresh collector each), and per mode the median run (by spans/s): the
machines are shared, and one run can be a third off.
Memory: besides the peaks above, the collector's VmHWM once ``context_costs`` is complete and its
sampled RSS peak in each phase (until every row is visible; the aggregate refresh's catch-up);
``BENCH_TIMELINE=1`` also writes every sample (the tree's RSS, the collector's RSS and anonymous
RSS). ``BENCH_COLLECTOR_CONFIG=FILE`` gives the collector a config file, ``BENCH_COLLECTOR_SCRIPT``
runs a script in place of ``-m tokenbook collector`` (with the same arguments).
``--stages N`` also runs the collector's stages in-process on N of the same spans, one at a time, and
reports each stage's CPU per span (decode, rows, log encode, fsync, insert, one aggregate refresh)
plus the exporter's own client-side encoding cost.
``--stages-only`` runs the stages alone (no end-to-end run), e.g. with another checkout's interpreter
to compare two versions stage by stage.
Run: ``.venv/bin/python bench/collector_throughput.py [--spans 200000] [--senders 2] [--mode both]
[--repeat 5] [--stages 50000] [--stages-only]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from memsample import TreeMemory, tree_sample

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULT = HERE / "results" / "collector_throughput.json"
TIMELINE = bool(os.environ.get("BENCH_TIMELINE"))  # also every memory sample in the result
#: How the collector is started (BENCH_COLLECTOR_SCRIPT: a script of its own instead, e.g. one that
#: samples its memory from inside), and a config file for it (BENCH_COLLECTOR_CONFIG).
COLLECTOR_COMMAND = os.environ.get("BENCH_COLLECTOR_SCRIPT", "-m tokenbook collector").split()
COLLECTOR_OPTIONS = (
    ["--config", os.environ["BENCH_COLLECTOR_CONFIG"]] if os.environ.get("BENCH_COLLECTOR_CONFIG") else []
)
MODELS = (
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("openai", "o3"),
)
SPANS_PER_RUN = 5  # 1 wrapper + 3 chats + 1 tool
ROWS_PER_RUN = 5  # 3 calls + 1 tool step + 1 wrapper step


def named_config(text: str) -> tuple[str, Path | None]:
    """A ``--config NAME=FILE`` option of the benchmarks that compare collector configurations in one
    run: NAME and the config file, or ``NAME=`` for the built-in defaults."""
    name, sep, path = text.partition("=")
    if not sep or not name or (path and not Path(path).is_file()):
        raise argparse.ArgumentTypeError(f"expected NAME=FILE with an existing file, or NAME=, got {text!r}")
    return name, Path(path) if path else None


def add_config_option(parser: argparse.ArgumentParser, alone: str) -> None:
    """``--config NAME=FILE`` (repeatable, `named_config`); `alone`: what runs without one."""
    parser.add_argument(
        "--config",
        type=named_config,
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="a collector with this config file (none: the defaults), reported as NAME (repeat to compare "
        f"configurations in the same run; default: {alone})",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: What the throughput runs' chat spans carry beyond `agent_run`'s (a fuller instrumentation).
_CHAT_EXTRA = {
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.request.temperature": 0.2,
    "gen_ai.request.max_tokens": 1024,
    "server.port": 443,
    "tokenbook.cost.total": 0.0123,
}


def agent_run(tracer: Any, i: int, seed: int, chat_extra: dict[str, Any] | None = None) -> None:
    """Run `i` of application `seed`: an agent span over three chat calls and a tool call, attributed
    to one of 50 tenants; the chat spans also carry `chat_extra`."""
    tenant = f"tenant-{(seed * 7 + i) % 50}"
    base = {
        "tenant.id": tenant,
        "user.id": f"user-{i % 997}",
        "project.id": f"project-{i % 13}",
        "app.feature": "support",
        "tokenbook.context.id": f"ctx-{seed}-{i}",
        "session.id": f"sess-{seed}-{i // 10}",
    }
    with tracer.start_as_current_span(
        "invoke_agent support",
        attributes={**base, "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "support"},
    ):
        for k in range(3):
            provider_name, model = MODELS[(i + k) % len(MODELS)]
            with tracer.start_as_current_span(
                f"chat {model}",
                attributes={
                    **base,
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": provider_name,
                    "gen_ai.request.model": model,
                    "gen_ai.response.model": model,
                    "gen_ai.response.id": f"chatcmpl-{seed}-{i}-{k}",
                    "gen_ai.usage.input_tokens": 800 + (i * 37 + k) % 4000,
                    "gen_ai.usage.output_tokens": 50 + (i * 13 + k) % 700,
                    "gen_ai.usage.cache_read.input_tokens": (i % 5) * 100,
                    "server.address": "api.example.com",
                    **(chat_extra or {}),
                },
            ):
                pass
        with tracer.start_as_current_span(
            "execute_tool lookup_order",
            attributes={**base, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order"},
        ):
            pass


def _build_spans(runs: int, seed: int) -> list[Any]:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"agent-{seed}", "deployment.environment": "bench"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    for i in range(runs):
        agent_run(tracer, i, seed, _CHAT_EXTRA)
    return list(memory.get_finished_spans())


def _sender(
    endpoint: str, mode: str, runs: int, seed: int, batch: int, ready: Any, go: Any, out: Any
) -> None:
    """One sender process: build spans, wait for the start signal, export them all."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    spans = _build_spans(runs, seed)
    batches = [spans[i : i + batch] for i in range(0, len(spans), batch)]
    failures = 0
    if mode == "exporter":  # the official exporter, encoding included in the measured time
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=120)
        ready.release()
        go.wait()
        started = time.perf_counter()
        for b in batches:
            if exporter.export(b) != SpanExportResult.SUCCESS:
                failures += 1
        exporter.shutdown()
    else:  # requests encoded beforehand by the exporter's encoder, sent with the generated stub
        import grpc
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub

        requests = [encode_spans(b) for b in batches]
        channel = grpc.insecure_channel(endpoint)
        stub = TraceServiceStub(channel)
        ready.release()
        go.wait()
        started = time.perf_counter()
        for request in requests:
            stub.Export(request, timeout=120)
        channel.close()
    out.put(
        {"seed": seed, "spans": len(spans), "seconds": time.perf_counter() - started, "failures": failures}
    )


def _admin_scalar(admin: str, sql: str) -> Any:
    body = json.dumps({"sql": sql}).encode()
    request = urllib.request.Request(
        f"http://{admin}/v1/query", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.loads(r.read())["rows"][0][0]


class BenchCollector:
    """A collector process on free loopback ports with a data directory and a log in `folder`
    (`python -m tokenbook collector`, or ``BENCH_COLLECTOR_SCRIPT``; `config`: its config file, else
    ``BENCH_COLLECTOR_CONFIG`` or none). `wait_ready` waits for its admin API; `stop` ends it."""

    def __init__(self, folder: Path, name: str = "collector", config: Path | None = None) -> None:
        grpc_port, http_port, admin_port = _free_port(), _free_port(), _free_port()
        self.name = name
        self.endpoint = f"127.0.0.1:{grpc_port}"
        self.admin = f"127.0.0.1:{admin_port}"
        self.log_path = folder / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed by stop()
        options = ["--config", str(config)] if config is not None else COLLECTOR_OPTIONS
        self.process = subprocess.Popen(
            [sys.executable, *COLLECTOR_COMMAND, "--data-dir", str(folder / f"{name}-data"),
             "--grpc", self.endpoint, "--http", f"127.0.0.1:{http_port}", "--admin", self.admin, *options],
            cwd=REPO, stdout=self._log, stderr=self._log,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self, timeout: float = 120) -> None:
        """Wait until its admin API answers; raises `RuntimeError` with its log if it exits first or
        takes longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                _admin_scalar(self.admin, "SELECT 1")
                return
            except (urllib.error.URLError, OSError):
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError(self.log_path.read_text()) from None
                time.sleep(0.2)

    def metrics(self) -> dict[str, float]:
        """Its ``/metrics`` (Prometheus text) as name -> value, names without ``tokenbook_collector_``."""
        with urllib.request.urlopen(f"http://{self.admin}/metrics", timeout=30) as r:
            text = r.read().decode()
        prefix = "tokenbook_collector_"
        return {
            name.removeprefix(prefix): float(value)
            for name, _, value in (line.partition(" ") for line in text.splitlines())
            if name.startswith(prefix)
        }

    def stop(self) -> int:
        """SIGTERM, wait for the exit (at most 120 s), close the log; returns the exit code."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(120)
        self._log.close()
        return code


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _children(pid: int) -> list[int]:
    """The collector's child processes (its decoder and row-building processes)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _cpu_seconds(pid: int) -> float:
    return stat_cpu_seconds(Path(f"/proc/{pid}/stat"))


def stat_cpu_seconds(stat: Path) -> float:
    """The CPU seconds (user and system) a ``/proc`` ``stat`` file reports: a process's, or a thread's
    (``/proc/<pid>/task/<tid>/stat``). Raises OSError when it has ended."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _role(pid: int) -> str:
    """What a child process of the collector is: ``decoder``, ``build`` (a row-building worker)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    return "decoder" if b"decode.pool" in command else "build" if b"buildpool" in command else "other"


def run(spans: int, senders: int, batch: int, mode: str) -> dict[str, Any]:
    runs = spans // SPANS_PER_RUN
    with tempfile.TemporaryDirectory(prefix="tokenbook-bench-") as tmp:
        collector = BenchCollector(Path(tmp))
        admin = collector.admin
        try:
            collector.wait_ready()
            ctx = mp.get_context("spawn")
            ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
            procs = [
                ctx.Process(
                    target=_sender,
                    args=(collector.endpoint, mode, runs // senders, seed, batch, ready, go, out),
                )
                for seed in range(senders)
            ]
            for p in procs:
                p.start()
            for _ in procs:
                ready.acquire()
            idle = tree_sample(collector.pid)
            memory = TreeMemory(collector.pid).__enter__()
            decoders = _children(collector.pid)
            before = {pid: _cpu_seconds(pid) for pid in [collector.pid, *decoders]}
            expected_rows = (runs // senders) * senders * ROWS_PER_RUN
            sent = (runs // senders) * senders * SPANS_PER_RUN
            started = time.perf_counter()
            marks = {"start": time.monotonic()}
            go.set()
            reports = [out.get() for _ in procs]
            acked_at = time.perf_counter()
            marks["acked"] = time.monotonic()
            for p in procs:
                p.join()
            rows = 0
            while rows < expected_rows:
                rows = _admin_scalar(
                    admin, "SELECT (SELECT count() FROM llm_calls) + (SELECT count() FROM context_steps)"
                )
                if rows < expected_rows:
                    time.sleep(0.05)
            visible_at = time.perf_counter()
            marks["visible"] = time.monotonic()
            peak_rss = _peak_rss_mib(collector.pid)
            decoder_rss = sum(_peak_rss_mib(c) for c in decoders)
            used = {pid: _cpu_seconds(pid) - b for pid, b in before.items()}
            cpu_used = sum(used.values())
            by_role: dict[str, float] = {"collector": used[collector.pid]}
            for child in decoders:
                by_role[_role(child)] = by_role.get(_role(child), 0.0) + used[child]
            contexts = runs // senders * senders
            aggregated = "SELECT uniqExact(tenant_id, context_id) FROM context_costs"
            while _admin_scalar(admin, aggregated) < contexts:
                time.sleep(0.1)
            aggregates_at = time.perf_counter()
            marks["context_costs"] = time.monotonic()
            peak_rss_end = _peak_rss_mib(collector.pid)
            memory.__exit__()
            roles = [_role(c) for c in _children(collector.pid)]
            billed = _admin_scalar(admin, "SELECT count() FROM v_calls WHERE price_status = 'priced'")
        finally:
            code = collector.stop()
    elapsed = visible_at - started
    return {
        "mode": mode,
        "spans": sent,
        "rows": expected_rows,
        "priced_calls": billed,
        "senders": senders,
        "batch": batch,
        "seconds_to_visible": round(elapsed, 3),
        "seconds_to_context_costs": round(aggregates_at - started, 3),
        "spans_per_s": round(sent / elapsed),
        "ack_spans_per_s": round(sent / (acked_at - started)),
        "collector_peak_rss_mib": round(peak_rss, 1),
        # ... and when every context's row is in context_costs (the refresh catch-up included)
        "collector_peak_rss_mib_at_context_costs": round(peak_rss_end, 1),
        "decoder_processes": len(decoders),
        "decoders_peak_rss_mib": round(decoder_rss, 1),
        # the whole tree (collector, decoder and build workers), sampled: memsample.py
        "idle_tree_rss_mib": idle.rss_mib,
        "idle_tree_pss_mib": idle.pss_mib,
        **memory.figures(),
        # the collector's own peak RSS (sampled) in each phase: the burst until every row is visible,
        # then the aggregate refresh's catch-up until context_costs is complete
        "collector_sampled_peak_rss_mib_by_phase": {
            "until_visible": max((c for t, _, c in memory.series if t <= marks["visible"]), default=0.0),
            "refresh_catch_up": max((c for t, _, c in memory.series if t > marks["visible"]), default=0.0),
        },
        "timeline": [
            (round(t - marks["start"], 2), tree, own, anon)
            for (t, tree, own), anon in zip(memory.series, memory.anon, strict=True)
            if t >= marks["start"]
        ]
        if TIMELINE
        else None,
        "marks_s": {k: round(v - marks["start"], 2) for k, v in marks.items()},
        "child_processes": {role: roles.count(role) for role in ("decoder", "build")},
        "collector_cpu_us_per_span": round(1e6 * cpu_used / sent, 1),  # its child processes included
        "cpu_us_per_span_by_process": {k: round(1e6 * v / sent, 1) for k, v in by_role.items()},
        "load_average_1m": round(os.getloadavg()[0], 2),
        "export_failures": sum(r["failures"] for r in reports),
        "collector_exit_code": code,
        "cpus": os.cpu_count(),
        "wal": "on (fsync per request, group commit)",
    }


def stage_costs(spans: int, batch: int, max_rows: int = 20_000) -> dict[str, float]:
    """Collector CPU per span of each stage, in-process and one stage at a time (so each figure is
    that stage's own CPU): the same code the collector runs, fed the bench's requests."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from tokenbook.collector import gc_settings
    from tokenbook.collector.decode.spans import decode_protobuf
    from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
    from tokenbook.collector.storage.rowcodec import RowRecord, encode_record, join_blocks
    from tokenbook.collector.storage.store import Store
    from tokenbook.collector.wal.log import WriteAheadLog
    from tokenbook.genai.pricing.catalog import PriceCatalog

    built = _build_spans(spans // SPANS_PER_RUN, 0)
    n = len(built)
    started = time.process_time()
    requests = [encode_spans(built[i : i + batch]) for i in range(0, len(built), batch)]
    client_encode = 1e6 * (time.process_time() - started) / n  # the exporter's own encoder (client side)
    bodies = [r.SerializeToString() for r in requests]
    keys = pipeline_keys((), "drop")
    catalog = PriceCatalog()
    RowBuilder(catalog).build(decode_protobuf(bodies[0], keys).records)  # warm: catalog look-ups
    builder = RowBuilder(catalog)
    out: dict[str, float] = {}
    gc_settings.settle()  # as in the collector's processes

    def timed(stage: str, fn: Any) -> Any:
        started = time.process_time()
        result = fn()
        out[stage] = round(1e6 * (time.process_time() - started) / n, 2)
        return result

    with (
        tempfile.TemporaryDirectory(prefix="tokenbook-stages-") as tmp,
        Store.open(data_dir=Path(tmp) / "db") as store,
    ):
        store.migrate()
        decoded = timed("decode", lambda: [decode_protobuf(b, keys).records for b in bodies])
        batches = timed("rows", lambda: [builder.build(r) for r in decoded])
        encoded = timed("encode", lambda: [encode_record(b.calls, b.steps) for b in batches])
        wal = WriteAheadLog(Path(tmp) / "wal", max_bytes=1 << 40, segment_bytes=16 << 20)
        wal.open()

        def log() -> None:
            for payload, record in encoded:
                wal.append(payload, record)

        timed("wal_fsync", log)
        wal.close()
        records: list[RowRecord] = [r for _, r in encoded]
        groups: list[list[RowRecord]] = [[]]
        for r in records:
            if sum(len(x.calls) + len(x.steps) for x in groups[-1]) >= max_rows:
                groups.append([])
            groups[-1].append(r)

        def insert() -> None:
            for g in groups:
                calls = [c for r in g for c in r.calls]
                steps = [s for r in g for s in r.steps]
                blocks = (join_blocks([r.call_block for r in g]), join_blocks([r.step_block for r in g]))
                store.write(calls, steps, blocks=blocks)

        timed("insert", insert)
        timed("refresh_once", store.refresh_aggregates)
    out["total"] = round(sum(out.values()), 2)
    out["client_exporter_encode_spans"] = round(client_encode, 2)  # sender CPU, not in the total
    out.update(ack_stage_costs(bodies, n, max_rows))
    return out


def ack_stage_costs(bodies: list[bytes], n: int, max_rows: int) -> dict[str, float]:
    """CPU per span of each stage of ``receivers.otlp.ack: logged``, by process: the decoder process
    (decode, serialize for the log), the collector before the answer (read the reply, check, log),
    a build worker (read the records, rows, blocks and summary, reply) and the writer (read the
    reply, insert the blocks)."""
    import marshal

    from tokenbook.collector.decode.pool import DecodedForLog, SpanSummary, decode_for_log
    from tokenbook.collector.ingest.deferred import Built, LoggedBuilder, check, unbounded_in_time
    from tokenbook.collector.ingest.rows import RowBuilder, SpanBounds, pipeline_keys
    from tokenbook.collector.storage.rowcodec import join_blocks
    from tokenbook.collector.storage.store import Store
    from tokenbook.collector.storage.touched import Touched
    from tokenbook.collector.wal.log import WriteAheadLog
    from tokenbook.collector.wal.requests import LoggedRequest, decode_logged, encode_logged
    from tokenbook.genai.pricing.catalog import PriceCatalog
    from tokenbook.genai.records import build

    keys = pipeline_keys((), "drop")
    bounds = SpanBounds()
    builder = LoggedBuilder(RowBuilder(PriceCatalog(), bounds=unbounded_in_time(bounds)))
    out: dict[str, float] = {}

    def timed(stage: str, fn: Any) -> Any:
        started = time.process_time()
        result = fn()
        out[stage] = round(1e6 * (time.process_time() - started) / n, 2)
        return result

    with tempfile.TemporaryDirectory(prefix="tokenbook-ack-stages-") as tmp:
        decoded = timed("logged_decoder_decode", lambda: [decode_for_log(0, b, keys) for b in bodies])
        replies = timed(
            "logged_decoder_reply",
            lambda: [
                marshal.dumps((d.records, [tuple(s) for s in d.spans], d.rejected, d.reason)) for d in decoded
            ],
        )

        def read_replies() -> list[DecodedForLog]:
            out: list[DecodedForLog] = []
            for r in replies:
                records, spans, rejected, reason = marshal.loads(r)
                out.append(DecodedForLog(records, [build(SpanSummary, s) for s in spans], rejected, reason))
            return out

        read = timed("logged_collector_read_reply", read_replies)
        checked = timed("logged_collector_check", lambda: [check(d, None, bounds) for d in read])
        payloads = timed(
            "logged_collector_encode",
            lambda: [encode_logged(LoggedRequest(None, frozenset(c.dropped), c.records)) for c in checked],
        )
        wal = WriteAheadLog(Path(tmp) / "wal", max_bytes=1 << 40, segment_bytes=16 << 20)
        wal.open()

        def log() -> None:
            for payload in payloads:
                wal.append(payload)

        timed("logged_collector_wal_fsync", log)
        wal.close()
        requests = timed("logged_worker_read", lambda: [decode_logged(p) for p in payloads])
        built = timed("logged_worker_build", lambda: [builder.build(r) for r in requests if r is not None])
        wires = timed("logged_worker_reply", lambda: [marshal.dumps(b.wire()) for b in built])
        parts = timed("logged_writer_read_reply", lambda: [Built.from_wire(marshal.loads(w)) for w in wires])
        with Store.open(data_dir=Path(tmp) / "db") as store:
            store.migrate()

            def insert() -> None:
                group: list[Built] = []
                for i, part in enumerate(parts):
                    group.append(part)
                    if (
                        sum(p.touched.calls + p.touched.steps for p in group) >= max_rows
                        or i == len(parts) - 1
                    ):
                        blocks = (
                            join_blocks([p.call_block for p in group]),
                            join_blocks([p.step_block for p in group]),
                        )
                        store.write([], [], blocks=blocks, touched=Touched.joined(p.touched for p in group))
                        group = []

            timed("logged_writer_insert", insert)
    by_process = {
        "decoder": ("logged_decoder_",),
        "collector_before_answer": ("logged_collector_",),
        "worker": ("logged_worker_",),
        "writer": ("logged_writer_",),
    }
    for name, prefixes in by_process.items():
        out[f"logged_total_{name}"] = round(sum(v for k, v in out.items() if k.startswith(prefixes)), 2)
    out["logged_total"] = round(sum(out[f"logged_total_{name}"] for name in by_process), 2)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, default=200_000)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument(
        "--mode",
        choices=("stub", "exporter", "both"),
        default="both",
        help="stub: requests pre-encoded by the exporter's encoder, sent with the generated gRPC stub "
        "(measures the collector); exporter: OTLPSpanExporter.export(), encoding inside the clock",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs per mode; the median is the figure")
    parser.add_argument("--out", type=Path, default=RESULT, help="the result file")
    parser.add_argument(
        "--stages", type=int, default=0, metavar="SPANS",
        help="also measure the collector's CPU per span of each stage, in-process, on SPANS spans",
    )  # fmt: skip
    parser.add_argument(
        "--stages-only", action="store_true",
        help="only the in-process stages (--stages), no end-to-end run: for comparing checkouts "
        "(run this script with the other checkout's interpreter)",
    )  # fmt: skip
    args = parser.parse_args(argv if argv is not None else [])
    if args.stages_only:
        stages = stage_costs(args.stages or 50_000, args.batch)
        doc = {
            "command": f".venv/bin/python bench/collector_throughput.py --stages {args.stages or 50_000} "
            f"--batch {args.batch} --stages-only",
            "load_average_1m": round(os.getloadavg()[0], 2),
            "collector_cpu_us_per_span_by_stage": stages,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(doc, indent=2))
        return doc
    runs = []
    medians = []
    for mode in ("stub", "exporter") if args.mode == "both" else (args.mode,):
        command = (
            f".venv/bin/python bench/collector_throughput.py --spans {args.spans} --senders {args.senders} "
            f"--batch {args.batch} --mode {mode} --repeat {args.repeat}"
        )
        mode_runs = []
        for i in range(args.repeat):
            result = run(args.spans, args.senders, args.batch, mode)
            print(f"{mode} run {i + 1}/{args.repeat}: {result['spans_per_s']:,} spans/s", flush=True)
            mode_runs.append({**result, "command": command})
        runs += mode_runs
        rates = [r["spans_per_s"] for r in mode_runs]
        median = sorted(mode_runs, key=lambda r: r["spans_per_s"])[(len(mode_runs) - 1) // 2]
        medians.append({**median, "mode": f"{mode} (median of {len(rates)})", "all_spans_per_s": rates})
    report: dict[str, Any] = {"median_runs": medians, "runs": runs}
    if args.stages:
        report["collector_cpu_us_per_span_by_stage"] = stage_costs(args.stages, args.batch)
        print("collector CPU µs/span by stage:", report["collector_cpu_us_per_span_by_stage"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    keys = [k for k in medians[0] if k not in ("command", "all_spans_per_s")]
    width = max(len(k) for k in keys)
    print(f"{'':<{width}}  " + "  ".join(f"{r['mode']:>20}" for r in medians))
    for key in keys[1:]:
        print(f"{key:<{width}}  " + "  ".join(f"{r[key]!s:>20}" for r in medians))
    for r in medians:
        print(f"{r['mode']}: runs {r['all_spans_per_s']} spans/s; {r['command']}")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
