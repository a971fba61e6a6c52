"""Decoder processes: OTLP request bodies decoded beside the collector, off its GIL.

Decoding (`decode.decode_protobuf`/`decode_json`) is a third of the collector's Python work per span
and needs no shared state, so ``receivers.otlp.decode_processes`` child processes do it while the
collector's own interpreter builds rows, logs and inserts. A receiver thread borrows an idle child,
writes the body to its stdin and reads back the `Decoded` (records as tuples, ``marshal``-encoded:
about a quarter of the cost of decoding again). The child is ``python -m
tokenbook.collector.decode.pool`` and is told the `KeyFilter` once, at start.

Contracts:

* `DecoderPool.decode` returns what the same decoder returns in-process, and raises
  `MalformedRequest` for the same bodies.
* While no child is running (none started yet, none could start, or the pool is stopped), or when
  every child is busy beyond `_WAIT_S`, the receiver thread decodes in-process: a request never
  waits on a child that is not there.
* A child that dies (killed, out of memory) is replaced; its request is decoded once more in a new
  child, and a second death on the same body is answered as malformed (a body that kills the
  decoder twice is poison, not data). Children exit when the collector closes their stdin, and on
  its death (EOF).

`DecoderPool.decode_for_log` is the same decode for a request acknowledged before its rows are built
(``receivers.otlp.ack: logged``): the child replies with the records already serialized as the
write-ahead log holds them (`records_payload`, read back by `records_of`) and, per record, only what
the answer depends on (`SpanSummary`: IDs, tenant, start time, largest token count). The collector
never rebuilds the records; it checks the summaries and logs the bytes as they came.

An exporter waits for each answer before it sends its next request, so the decode is most of what
it waits for. A protobuf body of `PARTS_FROM_BYTES` or more is therefore decoded for the log in
parts (`spans.Part`: spans by position) when two children or more are idle: each idle child decodes
one part at the same time, and the parts' payloads are logged side by side (`joined_payload`), read
back in order by `records_of`. The result is the whole body's: same records in the same order, same
summaries, rejections and first reason. Under concurrent requests the children are busy and each
request takes one, as before.

Frames: collector -> child ``<u8 format><u8 part number><u8 parts in all><u32 length><body>`` (format
0 protobuf, 1 JSON, plus ``_FOR_LOG`` for `decode_for_log`; the part is 0 of 1 but for a protobuf
body decoded for the log in parts); child -> collector ``<u32 length><marshal of (records, rejected,
reason) or (None, 0, message)>``, or for the log ``<marshal of (records payload, summaries,
rejected, reason)>``.
"""

from __future__ import annotations

import json
import logging
import marshal
import queue
import signal
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, Any, Final, NamedTuple

from tokenbook.collector import gc_settings
from tokenbook.collector.childproc import REPLY, ChildDied, PipeChild
from tokenbook.collector.decode.content import LogContent
from tokenbook.collector.decode.spans import (
    WHOLE,
    Decoded,
    KeyFilter,
    MalformedRequest,
    Part,
    SpanRecord,
    decode_json,
    decode_protobuf,
)
from tokenbook.collector.limits import AttributeLimits
from tokenbook.collector.metrics import IngestMetrics
from tokenbook.genai.records import build, unchecked
from tokenbook.genai.semconv import ATTRIBUTION_KEYS
from tokenbook.genai.usage import MAX_TOKENS, USAGE_KEYS, coerce_count

__all__ = [
    "FORMAT_JSON",
    "FORMAT_PROTOBUF",
    "PARTS_FROM_BYTES",
    "DecodedForLog",
    "DecoderPool",
    "SpanSummary",
    "decode_for_log",
    "joined_payload",
    "records_of",
    "serve",
]

_log = logging.getLogger(__name__)
FORMAT_PROTOBUF: Final = 0
FORMAT_JSON: Final = 1
_DECODERS: Final[tuple[Callable[[bytes, KeyFilter], Decoded], ...]] = (decode_protobuf, decode_json)
_REQUEST: Final = struct.Struct("<BBBI")  # format, part number, parts in all, body length
_WAIT_S: Final = 0.05  # how long a request waits for a busy child before decoding in-process
_FOR_LOG: Final = 0x80  # format flag: reply as `decode_for_log`
#: A protobuf body of at least this size is decoded for the log in parts, one per idle child.
PARTS_FROM_BYTES: Final = 64 << 10
_TENANT: Final = ATTRIBUTION_KEYS["tenant"]
_DROP: Final = LogContent()


class SpanSummary(NamedTuple):
    """What the answer to a request depends on, of one decoded span."""

    ident: bytes  # trace_id + span_id (24 bytes)
    tenant: str  # the ``tenant.id`` attribute as text ("" when absent)
    start_ns: int
    max_tokens: int  # the largest token count among its usage attributes (0 when none)


class DecodedForLog(NamedTuple):
    """`decode_for_log`'s result: the records serialized for the log, and a summary of each."""

    records: bytes  # `records_payload` of the decoded records, in request order
    spans: list[SpanSummary]  # one per record, same order
    rejected: int
    reason: str


def records_payload(records: list[SpanRecord]) -> bytes:
    """The records as logged: ``marshal`` of their tuples (read back by `records_of`)."""
    return marshal.dumps([tuple(r) for r in records])


def joined_payload(parts: Sequence[bytes]) -> bytes:
    """The `records_payload`s of a request's parts (`spans.Part`, in order) as one payload:
    ``marshal`` of a tuple of them, the parts' bytes copied as they are."""
    return marshal.dumps(tuple(parts))


def records_of(payload: bytes) -> list[SpanRecord]:
    """Inverse of `records_payload` and `joined_payload`. Raises ValueError for bytes neither wrote."""
    try:
        rows = marshal.loads(payload)
        if rows.__class__ is tuple:  # decoded in parts
            return [build(SpanRecord, r) for part in rows for r in marshal.loads(part)]
        return [build(SpanRecord, r) for r in rows]
    except (EOFError, TypeError, ValueError) as exc:
        raise ValueError(f"not a records payload: {exc}") from exc


def _largest_count(attrs: dict[str, Any]) -> int:
    largest = 0
    for key in USAGE_KEYS.intersection(attrs):
        value = attrs[key]
        # A plain int in range is its own count (`coerce_count`'s rule); anything else goes through it.
        count = value if value.__class__ is int and 0 <= value <= MAX_TOKENS else coerce_count(key, value)[0]
        if count is not None and count > largest:
            largest = count
    return largest


def decode_for_log(
    fmt: int, body: bytes, keys: KeyFilter, content: LogContent = _DROP, part: Part = WHOLE
) -> DecodedForLog:
    """Decode `body` (only the spans of `part`, a protobuf body's) in this thread and serialize it
    for the log (see the module docstring), its prompt content measured and redacted first
    (`content.LogContent`)."""
    if fmt == FORMAT_PROTOBUF:
        decoded = decode_protobuf(body, keys, part)
    elif part == WHOLE:
        decoded = decode_json(body, keys)
    else:
        raise ValueError("only a protobuf body is decoded in parts")
    content.apply(decoded.records)
    return DecodedForLog(
        records_payload(decoded.records), _summaries(decoded.records), decoded.rejected, decoded.reason
    )


def _summaries(records: list[SpanRecord]) -> list[SpanSummary]:
    """The `SpanSummary` of each record, in order."""
    spans: list[SpanSummary] = []
    for r in records:
        attrs = r.attrs
        tenant = attrs.get(_TENANT, "")
        if tenant.__class__ is not str:
            tenant = "" if tenant is None else str(tenant)
        spans.append(
            unchecked(SpanSummary, (r.trace_id + r.span_id, tenant, r.start_ns, _largest_count(attrs)))
        )
    return spans


class _Child(PipeChild):
    """One decoder process, used by one receiver thread at a time."""

    def __init__(self, keys: KeyFilter, content: LogContent) -> None:
        super().__init__("tokenbook.collector.decode.pool", "decoder process")
        body = _settings_json(keys, content)
        self._send(_REQUEST.pack(255, 0, 1, len(body)), body)

    def decode(self, fmt: int, body: bytes) -> Decoded:
        """`Decoded` records of `body` in format `fmt`; `MalformedRequest` if it is not one."""
        records, rejected, reason = marshal.loads(self._request(_REQUEST.pack(fmt, 0, 1, len(body)), body))
        if records is None:
            raise MalformedRequest(reason)
        return Decoded([build(SpanRecord, r) for r in records], rejected, reason)

    def decode_for_log(self, fmt: int, body: bytes) -> DecodedForLog:
        """`decode_for_log` of `body`, in the process."""
        self.ask_for_log(fmt, body, WHOLE)
        return self.answer_for_log()

    def ask_for_log(self, fmt: int, body: bytes, part: Part) -> None:
        """Have the process start `decode_for_log` of `part` of `body`; `answer_for_log` reads it."""
        self._ask(_REQUEST.pack(fmt | _FOR_LOG, part.number, part.total, len(body)), body)

    def answer_for_log(self) -> DecodedForLog:
        """The `DecodedForLog` that `ask_for_log` asked for; `MalformedRequest` if the body is not one."""
        reply = marshal.loads(self._answer())
        if reply[0] is None:
            raise MalformedRequest(reply[2])
        records, spans, rejected, reason = reply
        return DecodedForLog(records, [build(SpanSummary, s) for s in spans], rejected, reason)


class DecoderPool:
    """`size` decoder processes for `keys` (0: decode in the calling thread); thread-safe. `start()`
    returns at once (children start in the background); `stop()` ends them."""

    def __init__(
        self,
        keys: KeyFilter,
        size: int,
        metrics: IngestMetrics | None = None,
        content: LogContent = _DROP,
    ) -> None:
        """Replacements of dead children are counted in `metrics` (``decoder_restarts``); `content`:
        what `decode_for_log` does with prompt content (``privacy.content``)."""
        self.keys = keys
        self.content = content
        self.size = size
        self.metrics = metrics if metrics is not None else IngestMetrics()
        self._idle: queue.Queue[_Child] = queue.Queue()
        self._lock = threading.Lock()
        self._children: list[_Child] = []
        self._stopped = False

    def start(self) -> None:
        """Start the child processes in the background; until one is up, `decode` runs in-process."""
        for _ in range(self.size):
            threading.Thread(target=self._spawn, name="tokenbook-decoder-start", daemon=True).start()

    def _spawn(self) -> None:
        try:
            child = _Child(self.keys, self.content)
        except OSError as exc:  # no child: requests are decoded in the receiver threads
            _log.error("cannot start a decoder process (%s); decoding in the receiver threads", exc)
            return
        with self._lock:
            if self._stopped:
                child.close()
                return
            self._children.append(child)
        self._idle.put(child)

    def stop(self) -> None:
        """Stop every child; later `decode` calls run in-process."""
        with self._lock:
            self._stopped = True
            children, self._children = self._children, []
        for child in children:
            child.close()

    def decode(self, fmt: int, body: bytes) -> Decoded:
        """`decode_protobuf` (`FORMAT_PROTOBUF`) or `decode_json` (`FORMAT_JSON`) of `body`."""
        decoded: Decoded = self._run(lambda: _DECODERS[fmt](body, self.keys), lambda c: c.decode(fmt, body))
        return decoded

    def decode_for_log(self, fmt: int, body: bytes) -> DecodedForLog:
        """The module's `decode_for_log` of `body`, in a child when one is idle: in parts, one per idle
        child, for a protobuf body of `PARTS_FROM_BYTES` or more when two children or more are idle."""
        if fmt == FORMAT_PROTOBUF and len(body) >= PARTS_FROM_BYTES and self.size > 1:
            in_parts = self._in_parts(body)
            if in_parts is not None:
                return in_parts
        decoded: DecodedForLog = self._run(
            lambda: decode_for_log(fmt, body, self.keys, self.content), lambda c: c.decode_for_log(fmt, body)
        )
        return decoded

    def _in_parts(self, body: bytes) -> DecodedForLog | None:
        """`decode_for_log` of a protobuf `body` in parts, one on each idle child (two or more, at once);
        None when fewer than two are idle or a child died (the caller decodes the body whole)."""
        children: list[_Child] = []
        while len(children) < min(self.size, 255) and not self._stopped:  # the number of parts is one byte
            try:
                children.append(self._idle.get_nowait())
            except queue.Empty:
                break
        if len(children) < 2:
            for child in children:
                self._idle.put(child)
            return None
        outcomes: list[DecodedForLog | MalformedRequest | ChildDied | None] = []
        for i, child in enumerate(children):  # every child works at once ...
            try:
                child.ask_for_log(FORMAT_PROTOBUF, body, Part(i, len(children)))
                outcomes.append(None)
            except ChildDied as exc:
                outcomes.append(exc)
        for i, child in enumerate(children):  # ... and every reply is read before a child is lent again
            if outcomes[i] is None:
                try:
                    outcomes[i] = child.answer_for_log()
                except (ChildDied, MalformedRequest) as exc:
                    outcomes[i] = exc
        for child, outcome in zip(children, outcomes, strict=True):
            if isinstance(outcome, ChildDied):
                self._replace(child, outcome)
            else:
                self._idle.put(child)
        if any(isinstance(o, ChildDied) for o in outcomes):
            return None
        for outcome in outcomes:
            if isinstance(outcome, MalformedRequest):
                raise outcome
        parts = [o for o in outcomes if isinstance(o, DecodedForLog)]
        return DecodedForLog(
            joined_payload([p.records for p in parts]),
            [s for p in parts for s in p.spans],
            sum(p.rejected for p in parts),
            next((p.reason for p in parts if p.reason), ""),
        )

    def _run(self, here: Callable[[], Any], there: Callable[[_Child], Any]) -> Any:
        """`there` on an idle child (replaced when it dies), else `here` in this thread."""
        if not self._children or self._stopped:  # none started (yet), or shutting down
            return here()
        for attempt in (1, 2):
            try:
                child = self._idle.get(timeout=_WAIT_S)
            except queue.Empty:
                return here()
            try:
                decoded = there(child)
            except ChildDied as exc:
                self._replace(child, exc)
                if attempt == 2:
                    raise MalformedRequest("the request killed the decoder twice") from exc
                continue
            except MalformedRequest:
                self._idle.put(child)
                raise
            self._idle.put(child)
            return decoded
        raise AssertionError("unreachable")

    def _replace(self, child: _Child, exc: Exception) -> None:
        _log.error("decoder process %d died (%s); starting another", child.proc.pid, exc)
        with self._lock:
            if child in self._children:
                self._children.remove(child)
        self.metrics.add(decoder_restarts=1)
        child.close()
        self._spawn()


def _settings_json(keys: KeyFilter, content: LogContent) -> bytes:
    """The child's configuration frame: the key filter and the content policy."""
    limits = keys.limits
    return json.dumps(
        {
            "names": sorted(keys.names),
            "prefixes": list(keys.prefixes),
            "measure_only": sorted(keys.measure_only),
            "measure_only_prefixes": list(keys.measure_only_prefixes),
            "limits": None
            if limits is None
            else [limits.max_attributes, limits.max_value_length, limits.max_name_length],
            "content": [content.mode, content.salt],
        }
    ).encode()


def _key_filter(doc: dict[str, Any]) -> KeyFilter:
    limits = doc["limits"]
    return KeyFilter(
        frozenset(doc["names"]),
        tuple(doc["prefixes"]),
        None if limits is None else AttributeLimits(*limits),
        frozenset(doc.get("measure_only", ())),
        tuple(doc.get("measure_only_prefixes", ())),
    )


def _read_exact(stream: IO[bytes], n: int) -> bytes | None:
    data = stream.read(n)
    return data if len(data) == n else None


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The child's loop: a `KeyFilter` frame, then one reply per request frame, until EOF."""
    keys: KeyFilter | None = None
    content = _DROP
    while (header := _read_exact(stdin, _REQUEST.size)) is not None:
        fmt, number, total, length = _REQUEST.unpack(header)
        body = _read_exact(stdin, length)
        if body is None:
            return
        if keys is None:
            doc = json.loads(body)
            keys = _key_filter(doc)
            content = LogContent(*doc.get("content", ("drop", "")))
            continue
        try:
            if fmt & _FOR_LOG:
                d = decode_for_log(fmt & ~_FOR_LOG, body, keys, content, Part(number, total))
                reply = marshal.dumps((d.records, [tuple(s) for s in d.spans], d.rejected, d.reason))
            else:
                decoded = _DECODERS[fmt](body, keys)
                reply = marshal.dumps(([tuple(r) for r in decoded.records], decoded.rejected, decoded.reason))
        except MalformedRequest as exc:
            reply = marshal.dumps((None, 0, str(exc)))
        stdout.write(REPLY.pack(len(reply)))
        stdout.write(reply)
        stdout.flush()


if __name__ == "__main__":
    # Ctrl-C in a terminal reaches the whole process group: the parent collector drains and then
    # closes this child's stdin, so the child ignores SIGINT and ends at EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # As the collector: decoding allocates a dict and tuples per span and no reference cycles, so the
    # default thresholds (a young collection every 700 allocations) cost a quarter of the decode.
    gc_settings.settle()
    try:
        serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):  # the parent is gone
        sys.exit(0)
