"""The write-ahead log: framing, group commit, replay after a crash, truncation, the spool cap."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tokenbook.collector.wal.log import SpoolFull, WriteAheadLog


def _wal(path: Path, **kw) -> WriteAheadLog:
    wal = WriteAheadLog(
        path, max_bytes=kw.pop("max_bytes", 1 << 20), segment_bytes=kw.pop("segment_bytes", 256), **kw
    )
    wal.open()
    return wal


def _drain(wal: WriteAheadLog) -> list[bytes]:
    out: list[bytes] = []
    while records := wal.read(bytes, max_records=3):
        out.extend(r.obj for r in records)
        wal.commit(records[-1].end)
    return out


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    wal = _wal(tmp_path)
    payloads = [f"record-{i}".encode() * 10 for i in range(20)]
    for p in payloads:
        wal.append(p)
    assert len(list(tmp_path.glob("*.wal"))) > 3  # rolled at segment_bytes
    assert _drain(wal) == payloads
    assert wal.pending_bytes == 0
    assert len(list(tmp_path.glob("*.wal"))) == 1  # delivered segments deleted
    wal.close()


def test_in_memory_objects_skip_decoding(tmp_path: Path) -> None:
    wal = _wal(tmp_path)
    wal.append(b"bytes", obj=("rows",))
    (rec,) = wal.read(bytes, max_records=10)
    assert rec.obj == ("rows",)
    wal.close()


def test_objects_beyond_the_memory_bytes_are_read_back_from_the_files(tmp_path: Path) -> None:
    # storage.spool.memory_bytes: 25 bytes of payload held in memory; the rest decoded from disk
    wal = _wal(tmp_path, segment_bytes=1 << 16, memory_bytes=25)
    for i in range(4):
        wal.append(b"payload-%02d" % i, obj=("rows", i))  # 10 bytes each: two fit
    records = wal.read(bytes, max_records=10)
    assert [r.obj for r in records] == [("rows", 0), ("rows", 1), b"payload-02", b"payload-03"]
    wal.commit(records[-1].end)
    wal.append(b"payload-04", obj=("rows", 4))  # delivered ones no longer count
    assert [r.obj for r in wal.read(bytes, max_records=10)] == [("rows", 4)]
    wal.close()


def test_undelivered_records_are_replayed_after_reopen(tmp_path: Path) -> None:
    wal = _wal(tmp_path)
    for i in range(10):
        wal.append(b"x%d" % i)
    records = wal.read(bytes, max_records=4)
    wal.commit(records[-1].end)
    wal.close()  # (a kill -9 leaves the same files: every append was fsynced)
    again = WriteAheadLog(tmp_path, max_bytes=1 << 20, segment_bytes=256)
    assert again.open() > 0
    assert list(again.pending(bytes)) == [b"x%d" % i for i in range(4, 10)]
    assert _drain(again) == [b"x%d" % i for i in range(4, 10)]
    again.close()


def test_a_torn_tail_is_ignored_and_earlier_records_survive(tmp_path: Path) -> None:
    wal = _wal(tmp_path, segment_bytes=1 << 20)
    wal.append(b"acknowledged-1")
    wal.append(b"acknowledged-2")
    wal.close()
    (segment,) = tmp_path.glob("*.wal")
    with segment.open("ab") as f:  # a crash in the middle of an (unacknowledged) append
        f.write(b"\x40\x00\x00\x00\x12\x34\x56\x78half-a-rec")
    again = WriteAheadLog(tmp_path, max_bytes=1 << 20, segment_bytes=1 << 20)
    again.open()
    assert _drain(again) == [b"acknowledged-1", b"acknowledged-2"]
    again.append(b"after-restart")
    assert _drain(again) == [b"after-restart"]
    again.close()


def test_spool_cap_refuses_appends_until_delivery(tmp_path: Path) -> None:
    wal = _wal(tmp_path, max_bytes=110)  # two 52-byte frames (12-byte header) fit, not three
    wal.append(b"a" * 40)
    wal.append(b"b" * 40)
    with pytest.raises(SpoolFull, match=r"storage\.spool\.max_bytes=110"):
        wal.append(b"c" * 40)
    _drain(wal)
    wal.append(b"c" * 40)
    wal.close()


def test_concurrent_appends_share_fsyncs_and_all_land(tmp_path: Path) -> None:
    wal = _wal(tmp_path, segment_bytes=4096)
    n_threads, per_thread = 8, 50

    def work(t: int) -> None:
        for i in range(per_thread):
            wal.append(f"{t}:{i}".encode())

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    got = _drain(wal)
    assert sorted(got) == sorted(f"{t}:{i}".encode() for t in range(n_threads) for i in range(per_thread))
    for t in range(n_threads):  # each thread's records stay in its order
        mine = [g for g in got if g.startswith(f"{t}:".encode())]
        assert mine == [f"{t}:{i}".encode() for i in range(per_thread)]
    wal.close()


def _rows():
    from datetime import UTC, datetime
    from decimal import Decimal

    from tokenbook.collector.storage.ledger import CallRow, StepRow

    ts = datetime(2026, 11, 22, 8, 30, 15, 123456, tzinfo=UTC)
    call = CallRow(
        ts, "ab" * 16, "cd" * 8, "", "ctx", "wf", "ef" * 8, "acme", "alice", "p", "t", "f", "svc",
        {"k": "v"}, "openai", "gpt-4o", "chat", 1200, 50, 200, 0, 10,
        Decimal("0.002500000000"), Decimal("0.000500000000"), Decimal("0.000250000000"), Decimal(0),
        Decimal("0.003250000000"), "USD", "priced", "genai-prices", None, "", 1, "ok", "", 12.5, ts, 7,
    )  # fmt: skip
    unpriced = call._replace(
        input_cost=None, output_cost=None, cache_read_cost=None, cache_write_cost=None, total_cost=None,
        price_status="unpriced", client_cost=Decimal("0.5"),
    )  # fmt: skip
    step = StepRow(
        ts, "ab" * 16, "01" * 8, "", "ctx", "acme", "tool", "lookup", "execute_tool", "ok", 3.0, "", ts, 7
    )
    return [call, unpriced], [step]


@pytest.mark.parametrize("which", ["both", "calls", "steps", "none"])
def test_row_codec_round_trips_exactly(which: str) -> None:
    from tokenbook.collector.storage.rowcodec import decode_rows, encode_rows

    calls, steps = _rows()
    calls = calls if which in ("both", "calls") else []
    steps = steps if which in ("both", "steps") else []
    assert decode_rows(encode_rows(calls, steps)) == (calls, steps)
    with pytest.raises(ValueError, match="payload"):
        decode_rows(b"garbage")


def test_row_codec_keeps_any_text_and_the_blocks_are_the_logged_bytes() -> None:
    from tokenbook.collector.storage.rowcodec import decode_record, encode_record, join_blocks

    calls, steps = _rows()
    texts = ("tab\there", "new\nline", "back\\slash", "quote \" '", "é 漢字 😀", "lone \udfff", "\\N")
    calls = [calls[0]._replace(span_id=f"{i:016x}", user_id=t, tags={t: t}) for i, t in enumerate(texts)]
    payload, record = encode_record(calls, steps)
    again = decode_record(payload)
    assert (again.calls, again.steps) == (calls, steps)
    assert (again.call_block, again.step_block) == (record.call_block, record.step_block)
    assert (
        join_blocks([record.call_block, b"", record.call_block])
        == record.call_block + b"\n" + record.call_block
    )
