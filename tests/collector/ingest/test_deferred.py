"""Acknowledged once logged: the answer equals building first; rows built behind it are the same rows;
poison records are set aside; old row records and logged requests replay side by side."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.collector.collector_process import SpanFactory
from tests.collector.decode.test_pool import started_pool
from tokenbook.collector.decode.content import LogContent
from tokenbook.collector.decode.pool import FORMAT_PROTOBUF, PARTS_FROM_BYTES, DecoderPool, decode_for_log
from tokenbook.collector.decode.spans import MalformedRequest
from tokenbook.collector.ingest.buildpool import BuildPool, BuildSettings
from tokenbook.collector.ingest.dedup import RecentSpanKeys, record_key, span_key
from tokenbook.collector.ingest.deferred import check, pending_spans
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.rows import RowBuilder, SpanBounds, pipeline_keys
from tokenbook.collector.limits import AttributeLimits
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.collector.storage.rowcodec import decode_block, encode_rows
from tokenbook.collector.storage.touched import Touched
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.collector.wal.requests import LoggedRequest, decode_logged, encode_logged
from tokenbook.collector.wal.writer import LedgerWriter
from tokenbook.genai.pricing.catalog import PriceCatalog

SALT = "s3cret-salt"
CANARY = "CANARY-prompt-text-7f3a"
BOUNDS = SpanBounds(max_tokens_per_call=10_000, max_span_age=86400.0, max_span_future=600.0)
KEYS = replace(pipeline_keys((), "drop"), limits=AttributeLimits(max_attributes=64, max_value_length=100))


class MemoryStore:
    """Collects what the writer inserts."""

    def __init__(self) -> None:
        self.calls: list[CallRow] = []
        self.steps: list[StepRow] = []

    def write(
        self,
        calls: Sequence[CallRow],
        steps: Sequence[StepRow],
        *,
        blocks: tuple[bytes, bytes] | None = None,
        touched: Touched | None = None,
    ) -> None:
        if touched is not None:  # built rows: only their blocks
            assert blocks is not None and not calls and not steps
            calls = [c for b in blocks[0].split(b"\n") if b for c in decode_block("llm_calls", b)]
            steps = [s for b in blocks[1].split(b"\n") if b for s in decode_block("context_steps", b)]
            assert (touched.calls, touched.steps) == (len(calls), len(steps))
        self.calls.extend(calls)
        self.steps.extend(steps)

    def refresh_aggregates(self, *, hourly: bool = True) -> None:
        pass

    def refresh_pending(self) -> bool:
        return False


def _body(spans: Any) -> bytes:
    return bytes(encode_spans(spans).SerializeToString())


def _records(spans: Any) -> bytes:
    """The decoded records of `spans`, as a logged request holds them."""
    return decode_for_log(FORMAT_PROTOBUF, _body(spans), KEYS).records


def _mixed(factory: SpanFactory) -> list[Any]:
    """Good chats, one over the token limit, one from last year, one with a too long value."""
    spans = factory.chats(5, tenant="t1")
    too_many: dict[str, Any] = {"gen_ai.usage.input_tokens": 50_000}
    spans += factory.chats(1, tenant="t1", **too_many)
    spans += factory.chats(1, tenant="t1", **{"user.id": "u" * 500})
    old = factory.chats(1, tenant="t1")[0]
    old._start_time = time.time_ns() - 400 * 86400 * 10**9
    return [*spans, old]


def _ingestor(
    wal: WriteAheadLog,
    *,
    deferred: bool,
    calls: list[CallRow] | None = None,
    content: str = "drop",
    decoders: DecoderPool | None = None,
) -> Ingestor:
    keys = replace(pipeline_keys((), content), limits=KEYS.limits)
    return Ingestor(
        RowBuilder(PriceCatalog(), bounds=BOUNDS, content=content, salt=SALT),
        decoders or DecoderPool(keys, 0, content=LogContent(content, SALT)),
        RecentSpanKeys(10_000),
        wal,
        IngestMetrics(),
        max_inflight_spans=100_000,
        storage_up=lambda: True,
        on_calls=None if calls is None else calls.extend,
        deferred=deferred,
    )


def _run(
    tmp_path: Path,
    bodies: list[bytes],
    *,
    deferred: bool,
    pool: int = 0,
    content: str = "drop",
    decoders: DecoderPool | None = None,
) -> tuple[Any, MemoryStore]:
    wal = WriteAheadLog(tmp_path / ("d" if deferred else "b"), max_bytes=1 << 30, segment_bytes=1 << 20)
    wal.open()
    store = MemoryStore()
    observed: list[CallRow] = []
    ingestor = _ingestor(wal, deferred=deferred, calls=observed, content=content, decoders=decoders)
    builds = BuildPool(BuildSettings(BOUNDS, content=content, salt=SALT), pool)
    if pool:
        builds.start()
    writer = LedgerWriter(
        wal, store, ingestor.metrics, max_rows=10_000, max_delay=0.01, builds=builds, on_built=ingestor.built
    )
    writer.start()
    answers = [ingestor.export_protobuf(b) for b in bodies]
    writer.stop(30)
    builds.stop()
    wal.close()
    return (answers, ingestor.metrics.snapshot(), observed), store


def _strip(rows: Sequence[Any]) -> list[Any]:
    return sorted(r._replace(ingested_at=None, version=0) for r in rows)


def test_the_answer_and_the_rows_are_those_of_building_first(tmp_path: Path) -> None:
    factory = SpanFactory()
    bodies = [_body(_mixed(factory)), _body(factory.chats(3, tenant="t2"))]
    bodies.append(bodies[1])  # a re-delivery: deduplicated
    (built_answers, built_metrics, built_observed), built = _run(tmp_path, bodies, deferred=False)
    (logged_answers, logged_metrics, logged_observed), logged = _run(tmp_path, bodies, deferred=True)
    assert [(a.accepted, a.rejected) for a in logged_answers] == [
        (a.accepted, a.rejected) for a in built_answers
    ]
    assert [a.message for a in logged_answers] == [a.message for a in built_answers]
    assert logged_answers[0].rejected == 3
    assert _strip(logged.calls) == _strip(built.calls) and len(built.calls) == 8
    assert _strip(logged.steps) == _strip(built.steps)
    assert _strip(logged_observed) == _strip(built_observed)  # budgets see each call once
    for name in ("received_spans", "rejected_spans", "deduplicated_spans", "billed_calls", "steps"):
        assert logged_metrics[name] == built_metrics[name], name


@pytest.mark.parametrize("deferred", [True, False], ids=["logged", "built"])
def test_the_answers_latency_is_measured_by_stage(tmp_path: Path, deferred: bool) -> None:
    factory = SpanFactory()
    bodies = [_body(factory.chats(3, tenant="t1")), _body(_mixed(factory))]
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 30, segment_bytes=1 << 20)
    wal.open()
    ingestor = _ingestor(wal, deferred=deferred)
    for body in bodies:
        ingestor.export_protobuf(body)
    with pytest.raises(MalformedRequest):  # no answer with success: not observed
        ingestor.export_protobuf(b"\xff not protobuf")
    wal.close()
    m = ingestor.metrics.snapshot()
    stages = ("answer_decode_seconds", "answer_log_seconds")
    assert [m[f"{name}_count"] for name in ("answer_seconds", *stages)] == [2, 2, 2]
    assert all(m[f"{name}_sum"] > 0 for name in stages)
    assert sum(m[f"{name}_sum"] for name in stages) <= m["answer_seconds_sum"]
    assert 0 < m["answer_seconds_max"] <= m["answer_seconds_sum"]
    text = ingestor.metrics.prometheus()
    assert "# TYPE tokenbook_collector_answer_seconds summary" in text
    assert "tokenbook_collector_answer_log_seconds_count 2\n" in text


@pytest.mark.parametrize("content", ["drop", "hash"])
def test_prompt_content_leaves_the_records_before_they_are_logged(tmp_path: Path, content: str) -> None:
    """The log holds no prompt text (measured, then dropped or hashed, before it is logged), and the
    rows, with their prompt composition and hashed content, are those of building first."""
    messages = json.dumps([
        {"role": "system", "parts": [{"type": "text", "content": "You are terse. " * 20}]},
        {"role": "user", "parts": [{"type": "text", "content": f"{CANARY} where is my order?"}]},
    ])  # fmt: skip
    spans = SpanFactory().chats(3, tenant="c", **{"gen_ai.input.messages": messages})
    bodies = [_body(spans)]
    (_, _, _), built = _run(tmp_path, bodies, deferred=False, content=content)
    (_, _, _), logged = _run(tmp_path, bodies, deferred=True, content=content)
    assert _strip(logged.calls) == _strip(built.calls) and len(built.calls) == 3
    assert (built.calls[0].prompt_system_tokens or 0) > 0  # the composition was measured
    assert [p for p in (tmp_path / "d").rglob("*") if p.is_file() and CANARY.encode() in p.read_bytes()] == []


@pytest.mark.e2e
def test_rows_are_built_in_worker_processes(tmp_path: Path) -> None:
    factory = SpanFactory()
    bodies = [_body(factory.chats(20, tenant=f"w{i}")) for i in range(6)]
    (_, _, observed), store = _run(tmp_path, bodies, deferred=True, pool=2)
    assert len(store.calls) == 120 == len(observed)
    assert {c.tenant_id for c in store.calls} == {f"w{i}" for i in range(6)}


def _workers() -> list[int]:
    """This process's row-building children."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if ppid == os.getpid() and b"tokenbook.collector.ingest.buildpool" in cmdline:
            pids.append(int(proc.name))
    return pids


@pytest.mark.e2e
def test_row_building_workers_run_at_a_lower_cpu_priority() -> None:
    """``receivers.otlp.build_nice``: each worker's nice value is the collector's plus the setting."""
    builds = BuildPool(BuildSettings(BOUNDS, nice=7), 2)
    builds.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            nice = [os.getpriority(os.PRIO_PROCESS, pid) for pid in _workers()]
            if nice == [os.getpriority(os.PRIO_PROCESS, 0) + 7] * 2:
                break
            assert time.monotonic() < deadline, f"workers' nice values: {nice}"
            time.sleep(0.05)
    finally:
        builds.stop()


@pytest.mark.e2e
def test_large_requests_decoded_in_parts_give_the_rows_of_building_first(tmp_path: Path) -> None:
    """Requests of 64 KiB or more, decoded in parts on two decoder processes and built in two workers:
    the answers, rows and counted calls of building first in-process."""
    factory = SpanFactory()
    bodies = [_body(_mixed(factory) + factory.chats(300, tenant="p")), _body(factory.chats(300, tenant="q"))]
    assert min(map(len, bodies)) >= PARTS_FROM_BYTES
    decoders = started_pool(2, KEYS)
    in_parts = decoders._in_parts
    parted: list[bool] = []

    def spy(body: bytes) -> Any:
        result = in_parts(body)
        parted.append(result is not None)
        return result

    decoders._in_parts = spy  # type: ignore[method-assign]
    try:
        (logged_answers, _, logged_observed), logged = _run(
            tmp_path, bodies, deferred=True, pool=2, decoders=decoders
        )
    finally:
        decoders.stop()
    (built_answers, _, built_observed), built = _run(tmp_path, bodies, deferred=False)
    assert [tuple(a) for a in logged_answers] == [tuple(a) for a in built_answers]
    assert logged_answers[0].rejected == 3
    assert _strip(logged.calls) == _strip(built.calls) and len(built.calls) == 605
    assert _strip(logged.steps) == _strip(built.steps)
    assert _strip(logged_observed) == _strip(built_observed)
    assert parted == [True, True]


def test_check_refuses_what_the_decoder_refuses() -> None:
    with pytest.raises(MalformedRequest):
        decode_for_log(FORMAT_PROTOBUF, b"\xff\xff\xff", KEYS)
    decoded = decode_for_log(FORMAT_PROTOBUF, _body(SpanFactory().chats(2, tenant="x")), KEYS)
    checked = check(decoded, "cred", BOUNDS)
    assert checked.rejected == 0 and checked.tenants() == {"cred": 2}
    assert check(decoded, None, BOUNDS).tenants() == {"x": 2}


def test_the_answers_keys_are_the_keys_the_store_and_the_log_give() -> None:
    """The dedup keys of the check before the answer are those warmed from storage and from the log
    (`record_key`): a span delivered again after a restart is recognised."""
    spans = SpanFactory().chats(3, tenant="x")
    decoded = decode_for_log(FORMAT_PROTOBUF, _body(spans), KEYS)
    expected = [
        record_key("x", s.context.trace_id.to_bytes(16, "big"), s.context.span_id.to_bytes(8, "big"))
        for s in spans
    ]
    assert check(decoded, None, BOUNDS).keys == expected
    assert check(decoded, "cred", BOUNDS).keys == [
        record_key("cred", s.context.trace_id.to_bytes(16, "big"), s.context.span_id.to_bytes(8, "big"))
        for s in spans
    ]
    assert pending_spans(encode_logged(LoggedRequest(None, frozenset(), decoded.records))).keys == expected


@pytest.mark.e2e
def test_a_poison_record_is_set_aside_and_the_log_goes_on(tmp_path: Path) -> None:
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 30, segment_bytes=1 << 20)
    wal.open()
    factory = SpanFactory()
    poison = LoggedRequest(None, frozenset(), b"\xff\xff\xff not records")
    wal.append(encode_logged(poison))  # as read back after a restart
    wal.append(encode_logged(poison), poison)  # as held in memory
    good = LoggedRequest("t", frozenset(), _records(factory.chats(4)))
    wal.append(encode_logged(good))
    store = MemoryStore()
    metrics = IngestMetrics()
    builds = BuildPool(BuildSettings(BOUNDS), 1)
    builds.start()
    writer = LedgerWriter(wal, store, metrics, max_rows=1000, max_delay=0.01, builds=builds)
    writer.start()
    assert writer.stop(30)
    builds.stop()
    assert len(store.calls) == 4 and {c.tenant_id for c in store.calls} == {"t"}
    assert metrics.snapshot()["undecodable_records"] == 2
    assert len(list((tmp_path / "wal" / "undecodable").iterdir())) == 2


def test_old_row_records_and_logged_requests_replay_together(tmp_path: Path) -> None:
    factory = SpanFactory()
    (_, _, _), built = _run(tmp_path, [_body(factory.chats(3, tenant="old"))], deferred=False)
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 30, segment_bytes=1 << 20)
    wal.open()
    wal.append(encode_rows(built.calls, built.steps))  # a record written before requests were logged
    new = factory.chats(2, tenant="new")
    wal.append(encode_logged(LoggedRequest(None, frozenset(), _records(new))))
    wal.close()
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 30, segment_bytes=1 << 20)
    wal.open()
    keys = [k for p in wal.pending(pending_spans) for k in p.keys]
    assert sorted(keys) == sorted(
        [span_key(c.tenant_id, c.trace_id, c.span_id) for c in built.calls]
        + [
            record_key("new", s.context.trace_id.to_bytes(16, "big"), s.context.span_id.to_bytes(8, "big"))
            for s in new
        ]
    )
    store = MemoryStore()
    writer = LedgerWriter(
        wal,
        store,
        IngestMetrics(),
        max_rows=1000,
        max_delay=0.01,
        builds=BuildPool(BuildSettings(BOUNDS), 0),
    )
    writer.start()
    assert writer.stop(30)
    assert sorted(c.tenant_id for c in store.calls) == ["new", "new", "old", "old", "old"]


def test_a_logged_request_round_trips_and_row_payloads_are_not_mistaken_for_one() -> None:
    request = LoggedRequest("t", frozenset({b"x" * 24}), b"[]")
    assert decode_logged(encode_logged(request)) == request
    assert decode_logged(encode_rows([], [])) is None


def test_a_span_too_old_is_built_when_replayed_late(tmp_path: Path) -> None:
    """The time window is the answer's: a record replayed after a long outage is still built."""
    span = SpanFactory().chats(1, tenant="late")[0]
    span._start_time = time.time_ns() - 2 * 86400 * 10**9  # beyond max_span_age (1 day) at replay
    request = LoggedRequest(None, frozenset(), _records([span]))
    built = BuildSettings(BOUNDS).builder().build(request)
    assert len(built.record().calls) == 1 and built.rejected == 0


def test_budgets_count_a_request_once_whatever_the_order_of_append_and_build(tmp_path: Path) -> None:
    """A record built before its append returned is counted with the final dedup outcome, and one
    whose append failed (the client retries) is not counted."""
    import threading

    from tokenbook.collector.ingest.deferred import Built

    observed: list[CallRow] = []
    wal = WriteAheadLog(tmp_path / "wal", max_bytes=1 << 30, segment_bytes=1 << 20)
    wal.open()
    ingestor = _ingestor(wal, deferred=True, calls=observed)
    spans = SpanFactory().chats(2, tenant="b")
    body = _body(spans)
    record = BuildSettings(BOUNDS).builder().build(LoggedRequest(None, frozenset(), _records(spans)))
    settled = threading.Event()
    early = LoggedRequest(None, frozenset(), _records(spans), settled=settled)
    done = threading.Thread(target=ingestor.built, args=(early, record))
    done.start()
    time.sleep(0.05)
    assert observed == []  # waits for the append to settle
    early.counted = frozenset()  # e.g. a concurrent request remembered both spans first
    settled.set()
    done.join(5)
    assert observed == []
    failed = LoggedRequest(None, frozenset(), b"", settled=threading.Event())
    wal.close()  # the append fails: 503, nothing remembered, nothing counted
    original = ingestor.wal.append

    def captured(payload: bytes, obj: Any = None) -> None:
        nonlocal failed
        failed = obj
        original(payload, obj)

    ingestor.wal.append = captured  # type: ignore[method-assign]
    with pytest.raises(Exception, match="write-ahead log"):
        ingestor.export_protobuf(body)
    assert failed.counted == frozenset() and failed.settled is not None and failed.settled.is_set()
    ingestor.built(failed, record)
    assert observed == []
    assert isinstance(record, Built)
