"""The write-ahead log under disk faults: short writes, a full disk, a damaged record, kill -9.

The log never acknowledges what it did not write: a short write is completed or the append fails
(and the receivers answer 503 / UNAVAILABLE), the segment is truncated back to its last good record,
and appends succeed again once space returns. A damaged record in the middle of a segment costs that
record only, and is counted.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from tests.collector.collector_process import REPO, SpanFactory
from tokenbook.collector.decode.pool import DecoderPool
from tokenbook.collector.ingest.dedup import RecentSpanKeys
from tokenbook.collector.ingest.ingestor import Ingestor
from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.collector.receive import GrpcReceiver, HttpReceiver
from tokenbook.collector.wal.log import WriteAheadLog
from tokenbook.genai.pricing.catalog import PriceCatalog

_real_write = os.write


def _wal(path: Path, **kw: Any) -> WriteAheadLog:
    wal = WriteAheadLog(
        path, max_bytes=kw.pop("max_bytes", 1 << 20), segment_bytes=kw.pop("segment_bytes", 1 << 20), **kw
    )
    wal.open()
    return wal


def _drain(wal: WriteAheadLog) -> list[bytes]:
    out: list[bytes] = []
    while records := wal.read(bytes, max_records=3):
        out.extend(r.obj for r in records)
        wal.commit(records[-1].end)
    return out


def _reopen(path: Path) -> WriteAheadLog:
    return _wal(path)


def _segment_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.glob("*.wal"))


def _patch_write(monkeypatch: pytest.MonkeyPatch, fake: Callable[[int, Any], int]) -> None:
    monkeypatch.setattr("tokenbook.collector.wal.log.os.write", fake)


# --- short writes and a full disk ------------------------------------------------------------------


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _patch_write(monkeypatch, lambda fd, data: _real_write(fd, bytes(data[:7])))  # at most 7 bytes a call
    wal = _wal(tmp_path)
    payloads = [b"record-%d-" % i + b"x" * 50 for i in range(5)]
    for p in payloads:
        wal.append(p)
    wal.close()
    monkeypatch.undo()
    again = _reopen(tmp_path)
    assert _drain(again) == payloads
    again.close()


def test_a_full_disk_fails_the_append_and_the_tail_is_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = _wal(tmp_path)
    wal.append(b"acknowledged-1")
    good_size = _segment_bytes(tmp_path)
    calls = 0

    def half_then_enospc(fd: int, data: Any) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return _real_write(fd, bytes(data[: len(data) // 2]))  # part of the frame reaches the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    _patch_write(monkeypatch, half_then_enospc)
    with pytest.raises(OSError) as err:
        wal.append(b"never-acknowledged" * 10)
    assert err.value.errno == errno.ENOSPC
    assert _segment_bytes(tmp_path) == good_size  # truncated back to the last good record
    monkeypatch.undo()
    wal.append(b"acknowledged-2")  # space is back: the log recovers by itself
    assert _drain(wal) == [b"acknowledged-1", b"acknowledged-2"]
    wal.append(b"acknowledged-3")
    wal.close()
    again = _reopen(tmp_path)
    assert _drain(again) == [b"acknowledged-3"]
    assert again.corrupt_records == 0
    again.close()


def test_a_write_that_makes_no_progress_fails_the_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = _wal(tmp_path)
    wal.append(b"acknowledged-1")
    _patch_write(monkeypatch, lambda fd, data: 0)
    with pytest.raises(OSError):
        wal.append(b"never-acknowledged")
    monkeypatch.undo()
    wal.append(b"acknowledged-2")
    wal.close()
    again = _reopen(tmp_path)
    assert _drain(again) == [b"acknowledged-1", b"acknowledged-2"]
    again.close()


def test_a_failed_fsync_refuses_the_append_and_the_next_one_starts_a_new_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal = _wal(tmp_path)
    wal.append(b"acknowledged-1")

    def eio(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("tokenbook.collector.wal.log.os.fsync", eio)
    with pytest.raises(OSError) as err:
        wal.append(b"not-acknowledged")
    assert err.value.errno == errno.EIO
    monkeypatch.undo()
    before = set(tmp_path.glob("*.wal"))
    wal.append(b"acknowledged-2")
    assert len(set(tmp_path.glob("*.wal")) - before) == 1  # written to a fresh segment
    # the refused record may still be delivered (stored but unacknowledged: the client retries, dedup)
    assert [p for p in _drain(wal) if p != b"not-acknowledged"] == [b"acknowledged-1", b"acknowledged-2"]
    wal.close()


@pytest.mark.parametrize("fault", ["enospc", "edquot", "eio"])
def test_the_receivers_answer_503_and_unavailable_when_the_log_cannot_be_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    code = {"enospc": errno.ENOSPC, "edquot": errno.EDQUOT, "eio": errno.EIO}[fault]
    wal = _wal(tmp_path / "wal")
    metrics = IngestMetrics()
    ingestor = Ingestor(
        RowBuilder(PriceCatalog()),
        DecoderPool(pipeline_keys((), "drop"), 0),
        RecentSpanKeys(10_000),
        wal,
        metrics,
        max_inflight_spans=10_000,
        storage_up=lambda: True,  # storage is fine: only the disk of the log is not
    )
    http = HttpReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20)
    grpc_receiver = GrpcReceiver(ingestor, "127.0.0.1:0", max_request_bytes=1 << 20)
    http.start()
    grpc_receiver.start()
    try:
        factory = SpanFactory()
        body = encode_spans(factory.chats(3, tenant="disk")).SerializeToString()

        def broken(fd: int, data: Any) -> int:
            raise OSError(code, os.strerror(code))

        _patch_write(monkeypatch, broken)
        request = urllib.request.Request(
            f"http://127.0.0.1:{http.port}/v1/traces",
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        with pytest.raises(urllib.error.HTTPError) as http_err:
            urllib.request.urlopen(request, timeout=30)
        assert http_err.value.code == 503 and http_err.value.headers.get("Retry-After")
        with grpc.insecure_channel(f"127.0.0.1:{grpc_receiver.port}") as channel:
            export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            with pytest.raises(grpc.RpcError) as grpc_err:
                export(body, timeout=10)
        assert grpc_err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert metrics.snapshot()["wal_write_failures"] == 2
        monkeypatch.undo()  # the disk has room again: the same request is now acknowledged
        with urllib.request.urlopen(request, timeout=30) as r:
            assert r.status == 200
        assert len(_drain(wal)) == 1
    finally:
        grpc_receiver.stop(1)
        http.stop()
        wal.close()


@pytest.fixture
def tiny_fs() -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root and mount permission; skipped otherwise)."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    mnt = Path(tempfile.mkdtemp(prefix="tokenbook-tinyfs-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
        mnt.rmdir()


@pytest.mark.e2e  # starts a process
def test_a_real_full_filesystem(tiny_fs: Path) -> None:
    wal = _wal(tiny_fs / "wal", max_bytes=1 << 30, segment_bytes=64 << 10)
    acked: list[bytes] = []
    refused = 0
    for i in range(2000):
        payload = b"%06d" % i + os.urandom(994)  # 1000 bytes, incompressible
        try:
            wal.append(payload)
        except OSError as exc:
            assert exc.errno in (errno.ENOSPC, errno.EDQUOT)
            refused += 1
            if refused == 5:
                break
            continue
        acked.append(payload)
    assert refused == 5 and 100 < len(acked) < 260
    assert _drain(wal) == acked  # every acknowledged record, nothing else; delivered segments deleted
    wal.append(b"after-space-returned")  # the log recovers by itself
    assert _drain(wal) == [b"after-space-returned"]
    wal.close()
    again = _reopen(tiny_fs / "wal")
    assert _drain(again) == [] and again.corrupt_records == 0
    again.close()


# --- a damaged record in the middle of a segment ---------------------------------------------------


def _ten_records(path: Path) -> list[bytes]:
    wal = _wal(path)
    payloads = [b"request-%02d:" % i + os.urandom(200) for i in range(10)]
    for p in payloads:
        wal.append(p)
    wal.close()
    return payloads


def _flip(segment: Path, offset: int) -> None:
    data = bytearray(segment.read_bytes())
    data[offset] ^= 0x10
    segment.write_bytes(bytes(data))


@pytest.mark.parametrize("where", ["payload", "length"])
def test_a_bit_flip_mid_segment_costs_that_record_only(tmp_path: Path, where: str) -> None:
    payloads = _ten_records(tmp_path)
    (segment,) = [p for p in tmp_path.glob("*.wal") if p.stat().st_size]
    data = segment.read_bytes()
    start = data.index(payloads[3])  # the 4th acknowledged request
    _flip(segment, start + 100 if where == "payload" else start - 8)
    again = _reopen(tmp_path)
    pending = list(again.pending(bytes))
    assert pending == payloads[:3] + payloads[4:]
    assert _drain(again) == payloads[:3] + payloads[4:]
    assert again.corrupt_records == 1
    assert again.pending_bytes == 0
    again.close()


def test_the_damage_is_counted_in_the_metrics(tmp_path: Path) -> None:
    payloads = _ten_records(tmp_path)
    (segment,) = [p for p in tmp_path.glob("*.wal") if p.stat().st_size]
    _flip(segment, segment.read_bytes().index(payloads[5]) + 7)
    metrics = IngestMetrics()
    again = WriteAheadLog(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20, on_corrupt=metrics.add)
    again.open()
    assert len(_drain(again)) == 9
    assert metrics.snapshot()["wal_corrupt_records"] == 1
    assert "tokenbook_collector_wal_corrupt_records_total 1" in metrics.prometheus()
    again.close()


def test_segments_of_the_old_format_are_still_replayed(tmp_path: Path) -> None:
    import struct
    import zlib

    old = [b"old-format-%d" % i for i in range(3)]
    (tmp_path / "000000000001.wal").write_bytes(
        b"".join(struct.pack("<II", len(p), zlib.crc32(p)) + p for p in old)
    )
    wal = _reopen(tmp_path)
    assert list(wal.pending(bytes)) == old
    wal.append(b"new-format")
    assert _drain(wal) == [*old, b"new-format"]
    assert wal.corrupt_records == 0
    wal.close()


# --- kill -9 in the middle of appends --------------------------------------------------------------

_APPENDER = """
import sys
from pathlib import Path
from tokenbook.collector.wal.log import WriteAheadLog
wal = WriteAheadLog(Path(sys.argv[1]), max_bytes=1 << 30, segment_bytes=64 << 10)
wal.open()
i = 0
while True:
    wal.append(b"%08d" % i + b"y" * (i % 3000))
    sys.stdout.write(f"{i}\\n")
    sys.stdout.flush()
    i += 1
"""


@pytest.mark.e2e  # starts a process
def test_kill_9_during_appends_loses_no_acknowledged_record(tmp_path: Path) -> None:
    acked = -1
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _APPENDER, str(tmp_path)], stdout=subprocess.PIPE, cwd=REPO, text=True
        )
        assert proc.stdout is not None
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        lines = proc.stdout.read().split()
        acked = int(lines[-1]) if lines else -1
        wal = _reopen(tmp_path)
        got = [int(p[:8]) for p in wal.pending(bytes)]
        # every acknowledged record of this run, in order, and at most the one being written after them
        assert got[: acked + 1] == list(range(acked + 1))
        assert len(got) - (acked + 1) <= 1
        assert wal.corrupt_records == 0
        _drain(wal)
        wal.close()
    assert acked > 0
