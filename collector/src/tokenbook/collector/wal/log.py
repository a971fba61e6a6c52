"""The write-ahead log: acknowledged spans survive ``kill -9``, a full disk and absorb storage outages.

Layout: a directory of segment files ``000000000001.wal``, ``000000000002.wal``, ... plus a
``checkpoint`` file naming the first byte not yet delivered to storage. Each record is framed as
``<4-byte sync marker b"\\xd7TBW"><u32 little-endian payload length><u32 CRC-32 of length + payload>
<payload>``. Segments written before the marker existed (``<u32 length><u32 CRC-32 of the payload>
<payload>``, no marker) are still read; a segment's format is told by its first four bytes.

Contracts:

* `append` returns only after the record is on disk (``fsync``). Concurrent appends share fsyncs
  (group commit): one caller syncs everything written so far while the others wait for it.
* `append` raises `SpoolFull` when the undelivered bytes would exceed ``max_bytes``.
* `append` never acknowledges what it did not write: a short ``write`` is continued until the whole
  frame is written; a write that makes no progress, ``ENOSPC``/``EDQUOT``/``EIO`` or a failed
  ``fsync`` raises `WalWriteError` (an `OSError`: the receivers answer 503 / UNAVAILABLE), and the
  segment is truncated back to its last complete record so the next append starts clean (when even
  that fails, the next append starts a new segment). Appends succeed again as soon as the disk has room.
* Every start opens a fresh segment, so a torn record (a crash mid-write, never acknowledged) can
  only be the tail of an older segment, where it is ignored.
* A damaged record in the middle of a segment (a flipped bit) costs that record only: replay skips
  forward to the next marker that starts a frame whose length fits and whose CRC matches. Each
  damaged region is logged and reported through ``on_corrupt(wal_corrupt_records=n,
  wal_corrupt_bytes=b)`` (the collector's ``tokenbook_collector_wal_corrupt_records_total``); `n`
  counts the markers in the region (at least 1). In a segment of the old format, replay stops at the
  first damaged record, as that format has no marker to resynchronise on.
* Creating and deleting segments fsyncs the directory.
* Delivery (`read` then `commit`) is in append order. `commit` moves the checkpoint and deletes
  segments that are fully delivered. The checkpoint is written without fsync: after a crash a few
  records may be delivered again, which storage deduplicates (ReplacingMergeTree + FINAL views).
* A record may carry an in-memory object beside its bytes (`append(..., obj=rows)`); the reader then
  skips decoding it. At most ``memory_bytes`` of payload is held this way; the rest is read back from
  disk (page cache).
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

__all__ = ["MAGIC", "Position", "SpoolFull", "WalRecord", "WalWriteError", "WriteAheadLog"]

_log = logging.getLogger(__name__)
MAGIC = b"\xd7TBW"  # as a v1 length (u32 LE) it would be 1.46 GB: never a record of the old format
_FRAME = struct.Struct("<4sII")  # marker, payload length, CRC-32 of (length bytes + payload)
_LENGTH = struct.Struct("<I")
_HEADER_V1 = struct.Struct("<II")  # the old format: payload length, CRC-32 of the payload
_SUFFIX = ".wal"
_CHECKPOINT = "checkpoint"


class SpoolFull(RuntimeError):
    """The log holds `max_bytes` of undelivered data (storage is down or too slow)."""


class WalWriteError(OSError):
    """A record could not be written or synced (disk full, quota, I/O error): it was not logged."""


class Position(NamedTuple):
    """A byte position in the log: (segment number, offset)."""

    segment: int
    offset: int


class WalRecord(NamedTuple):
    """One undelivered record of the log, as `read` returns it."""

    end: Position  # commit this to mark the record delivered
    payload: bytes | None  # None when `obj` is set
    obj: Any  # the in-memory object passed to `append`, or None


def frame(payload: bytes) -> bytes:
    """The bytes `append` writes for `payload`."""
    length = _LENGTH.pack(len(payload))
    return MAGIC + length + _LENGTH.pack(zlib.crc32(payload, zlib.crc32(length))) + payload


def _frame_at(data: bytes | memoryview, off: int) -> int:
    """The size of the intact frame starting at `off` in `data`, or 0 when there is none."""
    if len(data) - off < _FRAME.size:
        return 0
    magic, length, crc = _FRAME.unpack_from(data, off)
    end: int = off + _FRAME.size + length
    if magic != MAGIC or end > len(data):
        return 0
    if zlib.crc32(data[off + _FRAME.size : end], zlib.crc32(_LENGTH.pack(length))) != crc:
        return 0
    return end - off


def _next_frame(data: bytes, off: int) -> int:
    """The offset of the first intact frame after `off`, or -1 (the resynchronisation scan)."""
    pos = data.find(MAGIC, off + 1)
    while pos >= 0:
        if _frame_at(data, pos):
            return pos
        pos = data.find(MAGIC, pos + 1)
    return -1


def _torn(data: bytes, off: int) -> bool:
    """Whether the bytes at `off` are a record cut short by the end of the file (a crash mid-write)."""
    if len(data) - off < _FRAME.size:
        return MAGIC.startswith(data[off : off + len(MAGIC)])
    magic, length, _ = _FRAME.unpack_from(data, off)
    return bool(magic == MAGIC and off + _FRAME.size + length > len(data))


def _v1_records(data: bytes, off: int) -> Iterator[tuple[int, int]]:
    """(offset, size) of each intact record of an old-format segment, up to the first damaged one."""
    while off + _HEADER_V1.size <= len(data):
        length, crc = _HEADER_V1.unpack_from(data, off)
        body = data[off + _HEADER_V1.size : off + _HEADER_V1.size + length]
        if len(body) != length or zlib.crc32(body) != crc:
            return
        yield off, _HEADER_V1.size + length
        off += _HEADER_V1.size + length


class _Damage(NamedTuple):
    start: int
    end: int  # the next intact frame
    records: int  # markers in [start, end): the records lost (at least 1)


def _scan(data: bytes, off: int) -> tuple[list[tuple[int, int]], list[_Damage], int]:
    """Intact frames (offset, size) of a segment from `off`, the damaged regions between them, and the
    end of the last intact frame."""
    frames: list[tuple[int, int]] = []
    damage: list[_Damage] = []
    end = off
    while off < len(data):
        size = _frame_at(data, off)
        if size:
            frames.append((off, size))
            off = end = off + size
            continue
        nxt = _next_frame(data, off)
        if nxt < 0:
            break
        damage.append(_Damage(off, nxt, max(1, data.count(MAGIC, off, nxt))))
        off = nxt
    return frames, damage, end


class WriteAheadLog:
    """Segmented, CRC-framed, fsynced log. Thread-safe; one writer process per directory."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        segment_bytes: int,
        memory_bytes: int = 32 << 20,
        on_corrupt: Callable[..., None] | None = None,
    ) -> None:
        """`on_corrupt(wal_corrupt_records=n, wal_corrupt_bytes=b)` is told of every damaged region
        skipped (e.g. `IngestMetrics.add`)."""
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.memory_bytes = memory_bytes
        self.on_corrupt = on_corrupt
        self.corrupt_records = 0  # records lost to damage found so far
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self._sync = threading.Condition(threading.Lock())
        self._syncing = False
        self._written_seq = 0  # records written (not necessarily synced)
        self._synced_seq = 0
        self._sync_failed: tuple[int, OSError] | None = None  # (last seq written before the failure, error)
        self._segment = 0
        self._fd = -1
        self._size = 0  # bytes in the current segment
        self._broken = False  # the current segment's tail could not be truncated: roll before appending
        self._unsynced_old: list[int] = []  # fds of rolled segments awaiting their final fsync
        self._ends: dict[int, int] = {}  # segment -> readable end (completed records only)
        self._legacy: set[int] = set()  # segments of the old format (no sync marker)
        self._damage: dict[Position, _Damage] = {}  # damaged regions found at open (counted then)
        self._skipped: list[tuple[int, int, int]] = []  # (segment, start, end) skipped, not yet committed
        self._delivered = Position(0, 0)
        self._reader: tuple[int, BinaryIO] | None = None
        self._read_pos = Position(0, 0)
        self._pending_bytes = 0
        self._memory: dict[Position, Any] = {}  # record start -> in-memory object
        self._memory_used = 0
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------------
    def open(self) -> int:
        """Create or reopen the log; return the number of undelivered bytes found (to be replayed)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._delivered = self._read_checkpoint()
        removed = False
        for seg in self._segments():
            if seg < self._delivered.segment:
                (self._path(seg)).unlink()
                removed = True
                continue
            start = self._delivered.offset if seg == self._delivered.segment else 0
            self._ends[seg] = self._valid_end(seg, start)
        if removed:
            self._sync_directory()
        self._read_pos = self._delivered
        replay = sum(self._ends.values()) - (
            self._delivered.offset if self._delivered.segment in self._ends else 0
        )
        self._pending_bytes = max(replay, 0)
        last = max(self._ends, default=self._delivered.segment)
        if self._read_pos.segment not in self._ends:
            self._read_pos = Position(min(self._ends, default=last + 1), 0)
        self._open_segment(last + 1)
        return self._pending_bytes

    def close(self) -> None:
        """Sync and close; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            fds = [*self._unsynced_old, self._fd]
            self._unsynced_old = []
            self._appended.notify_all()
        for fd in fds:
            try:
                os.fsync(fd)
            except OSError as exc:  # nothing acknowledged depends on it (appends sync themselves)
                _log.warning("write-ahead log: fsync at close failed: %s", exc)
            os.close(fd)
        if self._reader is not None:
            self._reader[1].close()
            self._reader = None

    @property
    def pending_bytes(self) -> int:
        """Bytes appended but not yet committed as delivered."""
        return self._pending_bytes

    def pending(self, decode: Callable[[bytes], Any]) -> Iterator[Any]:
        """Decode every undelivered record, without moving the read cursor (used at start)."""
        with self._lock:
            start = self._delivered
            ends = sorted((s, e) for s, e in self._ends.items() if s >= start.segment)
        for seg, end in ends:
            off = start.offset if seg == start.segment else 0
            with open(self._path(seg), "rb") as f:
                data = f.read(end)
            if seg in self._legacy:
                for pos, size in _v1_records(data, off):
                    yield decode(data[pos + _HEADER_V1.size : pos + size])
                continue
            for pos, size in _scan(data, off)[0]:
                yield decode(data[pos + _FRAME.size : pos + size])

    # --- appending ---------------------------------------------------------------------------------
    def append(self, payload: bytes, obj: Any = None) -> None:
        """Write one record and return once it is fsynced. Raises `SpoolFull` or `WalWriteError`."""
        data = frame(payload)
        with self._lock:
            if self._closed:
                raise OSError("write-ahead log is closed")
            if self._pending_bytes + len(data) > self.max_bytes:
                raise SpoolFull(
                    f"write-ahead log holds {self._pending_bytes} undelivered bytes "
                    f"(storage.spool.max_bytes={self.max_bytes})"
                )
            if self._broken or self._size >= self.segment_bytes:
                try:
                    self._roll()
                except OSError as exc:
                    if self._broken:  # no clean place to write
                        raise WalWriteError(
                            exc.errno, f"cannot start a write-ahead log segment: {exc}"
                        ) from exc
                    _log.warning("write-ahead log: cannot start a new segment (%s); continuing this one", exc)
            start = Position(self._segment, self._size)
            try:
                self._write_all(data)
            except OSError as exc:
                self._truncate_tail()
                raise WalWriteError(
                    exc.errno or errno.EIO, f"write-ahead log: record not written: {exc.strerror or exc}"
                ) from exc
            self._size += len(data)
            self._ends[self._segment] = self._size
            self._pending_bytes += len(data)
            if obj is not None and self._memory_used + len(payload) <= self.memory_bytes:
                self._memory[start] = (obj, len(payload))
                self._memory_used += len(payload)
            self._written_seq += 1
            seq = self._written_seq
            self._appended.notify_all()
        self._wait_synced(seq)

    def _write_all(self, data: bytes) -> None:
        """Write every byte of `data` at the end of the current segment (caller holds the lock)."""
        view = memoryview(data)
        done = 0
        while done < len(data):
            n = os.write(self._fd, view[done:])
            if n <= 0:
                raise OSError(errno.ENOSPC, f"short write: no progress after {done} of {len(data)} bytes")
            done += n

    def _truncate_tail(self) -> None:
        """Cut the current segment back to its last complete record after a failed write."""
        try:
            os.ftruncate(self._fd, self._size)
            os.fsync(self._fd)
        except OSError as exc:
            _log.error(
                "write-ahead log segment %s: cannot truncate a failed write (%s); the next append "
                "starts a new segment",
                self._segment,
                exc,
            )
            self._broken = True

    def _wait_synced(self, seq: int) -> None:
        with self._sync:
            while self._synced_seq < seq:
                failed = self._sync_failed
                if failed is not None and seq <= failed[0]:
                    raise WalWriteError(
                        failed[1].errno or errno.EIO, f"write-ahead log: fsync failed: {failed[1]}"
                    )
                if self._syncing:
                    self._sync.wait()
                    continue
                self._syncing = True
                with self._lock:
                    target = self._written_seq
                    fds = [*self._unsynced_old, self._fd]
                    self._unsynced_old = []
                self._sync.release()
                error: OSError | None = None
                try:
                    for fd in fds:
                        os.fsync(fd)
                except OSError as exc:
                    error = exc
                finally:
                    for fd in fds[:-1]:
                        os.close(fd)
                    self._sync.acquire()
                    self._syncing = False
                    self._sync.notify_all()
                if error is not None:
                    # What was written since the last good fsync may not be on disk: refuse it all and
                    # write the next records into a new segment.
                    _log.error(
                        "write-ahead log: fsync failed (%s); the records being synced are refused", error
                    )
                    self._sync_failed = (target, error)
                    with self._lock:
                        self._broken = True
                    continue
                self._synced_seq = max(self._synced_seq, target)

    def _roll(self) -> None:
        """Start the next segment (caller holds the lock); the old fd is synced by the next group commit."""
        old = self._fd
        self._open_segment(self._segment + 1)
        self._unsynced_old.append(old)
        self._broken = False

    def _open_segment(self, seg: int) -> None:
        path = self._path(seg)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.ftruncate(fd, 0)  # a leftover of a failed earlier attempt
            self._sync_directory()  # the new file's directory entry survives a crash
        except OSError:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd = fd
        self._segment = seg
        self._size = 0
        self._ends[seg] = 0

    def _sync_directory(self) -> None:
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    # --- delivering --------------------------------------------------------------------------------
    def wait_for_data(self, timeout: float) -> bool:
        """Block until there is something to read (or `timeout`); return whether there is."""
        with self._lock:
            if not self._has_unread():
                self._appended.wait(timeout)
            return self._has_unread()

    def _has_unread(self) -> bool:
        seg, off = self._read_pos
        return any(s > seg or (s == seg and end > off) for s, end in self._ends.items())

    def read(self, decode: Callable[[bytes], Any], max_records: int) -> list[WalRecord]:
        """Up to `max_records` undelivered records after the read cursor (not yet committed)."""
        out: list[WalRecord] = []
        while len(out) < max_records:
            with self._lock:
                seg, off = self._read_pos
                end = self._ends.get(seg)
                if end is None or off >= end:
                    later = [s for s in self._ends if s > seg]
                    if not later or (end is not None and seg == self._segment):
                        break
                    self._read_pos = Position(min(later), 0)
                    continue
                cached = self._memory.pop(Position(seg, off), None)
                if cached is not None:
                    self._memory_used -= cached[1]
            payload = self._read_at(seg, off, end)
            if payload is None:  # damage: skip to the next intact frame (old format: the rest)
                self._skip_damage(seg, off, end)
                continue
            header = _HEADER_V1.size if seg in self._legacy else _FRAME.size
            nxt = Position(seg, off + header + len(payload))
            self._read_pos = nxt
            obj = cached[0] if cached is not None else decode(payload)
            out.append(WalRecord(nxt, None, obj))
        return out

    def _skip_damage(self, seg: int, off: int, end: int) -> None:
        known = self._damage.pop(Position(seg, off), None)
        if known is not None:
            damage = known
        else:  # damaged since the log was opened
            with open(self._path(seg), "rb") as f:
                data = f.read(end)
            nxt = -1 if seg in self._legacy else _next_frame(data, off)
            if nxt < 0 or nxt >= end:
                nxt = end
            damage = _Damage(off, nxt, max(1, data.count(MAGIC, off, nxt)))
            self._report(seg, damage)
        with self._lock:
            self._pending_bytes -= damage.end - damage.start
            self._skipped.append((seg, damage.start, damage.end))
            self._read_pos = Position(seg, damage.end)

    def _report(self, seg: int, damage: _Damage) -> None:
        _log.error(
            "write-ahead log segment %s: damaged bytes %s..%s skipped (%s record(s) lost); "
            "reading resumes at the next intact record",
            seg,
            damage.start,
            damage.end,
            damage.records,
        )
        self.corrupt_records += damage.records
        if self.on_corrupt is not None:
            self.on_corrupt(wal_corrupt_records=damage.records, wal_corrupt_bytes=damage.end - damage.start)

    def _read_at(self, seg: int, off: int, end: int) -> bytes | None:
        if self._reader is None or self._reader[0] != seg:
            if self._reader is not None:
                self._reader[1].close()
            self._reader = (seg, open(self._path(seg), "rb"))  # noqa: SIM115 - kept open across reads
        f = self._reader[1]
        f.seek(off)
        if seg in self._legacy:
            header = f.read(_HEADER_V1.size)
            if len(header) < _HEADER_V1.size:
                return None
            length, crc = _HEADER_V1.unpack(header)
            if off + _HEADER_V1.size + length > end:
                return None
            payload = f.read(length)
            if len(payload) != length or zlib.crc32(payload) != crc:
                return None
            return payload
        header = f.read(_FRAME.size)
        if len(header) < _FRAME.size:
            return None
        magic, length, crc = _FRAME.unpack(header)
        if magic != MAGIC or off + _FRAME.size + length > end:
            return None
        payload = f.read(length)
        if len(payload) != length or zlib.crc32(payload, zlib.crc32(header[4:8])) != crc:
            return None
        return payload

    def commit(self, upto: Position) -> None:
        """Mark everything before `upto` delivered: move the checkpoint, delete delivered segments."""
        with self._lock:
            prev = self._delivered
            delivered = self._bytes_between(prev, upto)
            self._pending_bytes -= delivered
            self._delivered = upto
            doomed = [s for s in self._ends if s < upto.segment]
            for s in doomed:
                del self._ends[s]
                self._legacy.discard(s)
        tmp = self.directory / (_CHECKPOINT + ".tmp")
        try:
            tmp.write_text(f"{upto.segment} {upto.offset}\n", encoding="ascii")
            tmp.replace(self.directory / _CHECKPOINT)
        except OSError as exc:  # e.g. a full disk: an older checkpoint only means re-delivery (deduplicated)
            _log.warning(
                "write-ahead log: cannot write the checkpoint (%s); delivered records may be "
                "delivered again after a restart",
                exc,
            )
            tmp.unlink(missing_ok=True)
        for s in doomed:
            self._path(s).unlink(missing_ok=True)
        if doomed:
            try:
                self._sync_directory()
            except OSError as exc:  # a deleted segment coming back after a crash is only re-delivered
                _log.warning("write-ahead log: directory fsync after deleting segments failed: %s", exc)

    def _bytes_between(self, a: Position, b: Position) -> int:
        """Bytes from `a` to `b`, less the damaged regions between them (already taken off)."""
        if a.segment == b.segment:
            total = b.offset - a.offset
        else:
            total = self._ends.get(a.segment, a.offset) - a.offset
            total += sum(end for s, end in self._ends.items() if a.segment < s < b.segment)
            total += b.offset
        inside = [d for d in self._skipped if a <= (d[0], d[1]) and (d[0], d[2]) <= b]
        for d in inside:
            self._skipped.remove(d)
            total -= d[2] - d[1]
        return total

    # --- files -------------------------------------------------------------------------------------
    def _path(self, seg: int) -> Path:
        return self.directory / f"{seg:012d}{_SUFFIX}"

    def _segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*" + _SUFFIX) if p.stem.isdigit())

    def _read_checkpoint(self) -> Position:
        try:
            seg, off = (self.directory / _CHECKPOINT).read_text(encoding="ascii").split()
            return Position(int(seg), int(off))
        except FileNotFoundError:
            return Position(0, 0)
        except ValueError:
            _log.warning("write-ahead log checkpoint unreadable; replaying every segment")
            return Position(0, 0)

    def _valid_end(self, seg: int, start: int) -> int:
        """The end of the last intact record of a segment (a crash may have torn the tail); damaged
        regions before it are reported now and skipped when read."""
        with open(self._path(seg), "rb") as f:
            data = f.read()
        if data and not data.startswith(MAGIC):  # a segment of the old format
            self._legacy.add(seg)
            end = start
            for off, size in _v1_records(data, start):
                end = off + size
            if end < len(data):
                _log.warning(
                    "write-ahead log segment %s: torn record at offset %s, ignoring the rest", seg, end
                )
            return end
        _, damage, end = _scan(data, start)
        for d in damage:
            self._damage[Position(seg, d.start)] = d
            self._report(seg, d)
        if end < len(data):
            if _torn(data, end):  # a crash in the middle of an append: never acknowledged
                _log.warning(
                    "write-ahead log segment %s: torn record at offset %s, ignoring the rest", seg, end
                )
            else:  # intact length, wrong CRC or marker: the last record(s) of the segment were damaged
                tail = _Damage(end, len(data), max(1, data.count(MAGIC, end)))
                self._report(seg, tail)
        return end
