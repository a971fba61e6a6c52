"""The write-ahead log: acknowledged spans survive ``kill -9`` and absorb storage outages.

Layout: a directory of segment files ``000000000001.wal``, ``000000000002.wal``, ... plus a
``checkpoint`` file naming the first byte not yet delivered to storage. Each record is framed as
``<u32 little-endian payload length><u32 CRC-32 of the payload><payload>``.

Contracts:

* `append` returns only after the record is on disk (``fsync``). Concurrent appends share fsyncs
  (group commit): one caller syncs everything written so far while the others wait for it.
* `append` raises `SpoolFull` when the undelivered bytes would exceed ``max_bytes``.
* Every start opens a fresh segment, so a torn record (a crash mid-write, never acknowledged) can
  only be the tail of an older segment; replay stops reading that segment at the first record whose
  length or CRC does not match.
* Delivery (`read` then `commit`) is in append order. `commit` moves the checkpoint and deletes
  segments that are fully delivered. The checkpoint is written without fsync: after a crash a few
  records may be delivered again, which storage deduplicates (ReplacingMergeTree + FINAL views).
* A record may carry an in-memory object beside its bytes (`append(..., obj=rows)`); the reader then
  skips decoding it. At most ``memory_bytes`` of payload is held this way; the rest is read back from
  disk (page cache).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

__all__ = ["Position", "SpoolFull", "WalRecord", "WriteAheadLog"]

_log = logging.getLogger(__name__)
_HEADER = struct.Struct("<II")
_SUFFIX = ".wal"
_CHECKPOINT = "checkpoint"


class SpoolFull(RuntimeError):
    """The log holds `max_bytes` of undelivered data (storage is down or too slow)."""


class Position(NamedTuple):
    """A byte position in the log: (segment number, offset)."""

    segment: int
    offset: int


class WalRecord(NamedTuple):
    """One undelivered record of the log, as `read` returns it."""

    end: Position  # commit this to mark the record delivered
    payload: bytes | None  # None when `obj` is set
    obj: Any  # the in-memory object passed to `append`, or None


class WriteAheadLog:
    """Segmented, CRC-framed, fsynced log. Thread-safe; one writer process per directory."""

    def __init__(
        self, directory: Path, *, max_bytes: int, segment_bytes: int, memory_bytes: int = 256 << 20
    ) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.memory_bytes = memory_bytes
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)
        self._sync = threading.Condition(threading.Lock())
        self._syncing = False
        self._written_seq = 0  # records written (not necessarily synced)
        self._synced_seq = 0
        self._segment = 0
        self._fd = -1
        self._size = 0  # bytes in the current segment
        self._unsynced_old: list[int] = []  # fds of rolled segments awaiting their final fsync
        self._ends: dict[int, int] = {}  # segment -> readable end (completed records only)
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
        for seg in self._segments():
            if seg < self._delivered.segment:
                (self._path(seg)).unlink()
                continue
            self._ends[seg] = self._valid_end(seg)
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
            os.fsync(fd)
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
                f.seek(off)
                data = f.read(end - off)
            pos = 0
            while pos + _HEADER.size <= len(data):
                length, _ = _HEADER.unpack_from(data, pos)
                yield decode(data[pos + _HEADER.size : pos + _HEADER.size + length])
                pos += _HEADER.size + length

    # --- appending ---------------------------------------------------------------------------------
    def append(self, payload: bytes, obj: Any = None) -> None:
        """Write one record and return once it is fsynced. Raises `SpoolFull` or `OSError`."""
        frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        with self._lock:
            if self._closed:
                raise OSError("write-ahead log is closed")
            if self._pending_bytes + len(frame) > self.max_bytes:
                raise SpoolFull(
                    f"write-ahead log holds {self._pending_bytes} undelivered bytes "
                    f"(storage.spool.max_bytes={self.max_bytes})"
                )
            if self._size >= self.segment_bytes:
                self._unsynced_old.append(self._fd)
                self._open_segment(self._segment + 1)
            start = Position(self._segment, self._size)
            os.write(self._fd, frame)
            self._size += len(frame)
            self._ends[self._segment] = self._size
            self._pending_bytes += len(frame)
            if obj is not None and self._memory_used + len(payload) <= self.memory_bytes:
                self._memory[start] = (obj, len(payload))
                self._memory_used += len(payload)
            self._written_seq += 1
            seq = self._written_seq
            self._appended.notify_all()
        self._wait_synced(seq)

    def _wait_synced(self, seq: int) -> None:
        with self._sync:
            while self._synced_seq < seq:
                if self._syncing:
                    self._sync.wait()
                    continue
                self._syncing = True
                with self._lock:
                    target = self._written_seq
                    fds = [*self._unsynced_old, self._fd]
                    self._unsynced_old = []
                self._sync.release()
                try:
                    for fd in fds:
                        os.fsync(fd)
                    for fd in fds[:-1]:
                        os.close(fd)
                finally:
                    self._sync.acquire()
                    self._syncing = False
                    self._sync.notify_all()
                self._synced_seq = max(self._synced_seq, target)

    def _open_segment(self, seg: int) -> None:
        self._fd = os.open(self._path(seg), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._segment = seg
        self._size = 0
        self._ends[seg] = 0
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's directory entry survives a crash
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
            if payload is None:  # torn tail of a crashed segment: skip the rest of it
                _log.warning(
                    "write-ahead log segment %s: torn record at offset %s, ignoring the rest", seg, off
                )
                with self._lock:
                    self._pending_bytes -= end - off
                    self._ends[seg] = off
                continue
            nxt = Position(seg, off + _HEADER.size + len(payload))
            self._read_pos = nxt
            obj = cached[0] if cached is not None else decode(payload)
            out.append(WalRecord(nxt, None, obj))
        return out

    def _read_at(self, seg: int, off: int, end: int) -> bytes | None:
        if self._reader is None or self._reader[0] != seg:
            if self._reader is not None:
                self._reader[1].close()
            self._reader = (seg, open(self._path(seg), "rb"))  # noqa: SIM115 - kept open across reads
        f = self._reader[1]
        f.seek(off)
        header = f.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return None
        length, crc = _HEADER.unpack(header)
        if off + _HEADER.size + length > end:
            return None
        payload = f.read(length)
        if len(payload) != length or zlib.crc32(payload) != crc:
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
        tmp = self.directory / (_CHECKPOINT + ".tmp")
        tmp.write_text(f"{upto.segment} {upto.offset}\n", encoding="ascii")
        tmp.replace(self.directory / _CHECKPOINT)
        for s in doomed:
            self._path(s).unlink(missing_ok=True)

    def _bytes_between(self, a: Position, b: Position) -> int:
        if a.segment == b.segment:
            return b.offset - a.offset
        total = self._ends.get(a.segment, a.offset) - a.offset
        total += sum(end for s, end in self._ends.items() if a.segment < s < b.segment)
        return total + b.offset

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

    def _valid_end(self, seg: int) -> int:
        """The end of the last intact record of a segment (a crash may have torn the tail)."""
        off = 0
        with open(self._path(seg), "rb") as f:
            data = f.read()
        while off + _HEADER.size <= len(data):
            length, crc = _HEADER.unpack_from(data, off)
            body = data[off + _HEADER.size : off + _HEADER.size + length]
            if len(body) != length or zlib.crc32(body) != crc:
                _log.warning(
                    "write-ahead log segment %s: torn record at offset %s, ignoring the rest", seg, off
                )
                break
            off += _HEADER.size + length
        return off
