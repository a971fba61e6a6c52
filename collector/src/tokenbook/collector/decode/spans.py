"""OTLP trace requests (protobuf and OTLP/JSON) -> compact `SpanRecord`s.

Only what the pipeline needs is extracted: IDs (kept as ``bytes`` until a row is built), name, times,
status, the outcome event, the time of the first first-token event (`semconv.FIRST_TOKEN_EVENTS`), the
instrumentation scope (name, version), ``service.name``,
``service.instance.id`` and the attributes accepted by a `KeyFilter` (exact names
plus prefixes). Protobuf is parsed by upb through `otlp_view.TraceRequestView`, which leaves each
attribute as its serialized ``KeyValue``; `_AttributeMemo` maps those bytes to the decoded attribute,
parsing (``KeyValueView``, then ``AnyValueView`` for a kept key only; the usual encodings, a short key
and a short string or small integer, are sliced instead, to the same result) the ones not seen
recently: a value whose key is not kept (content under ``privacy.content: drop``) is never parsed or
validated. ``MessageToDict`` is never used. Where the collector was built with its C extension
(``_walk.c``), that walk of the request's envelope (resources, scopes, spans, events) runs in C on the
body upb has parsed, calling back this module for the resources, the memo's misses and the rejection
messages; it hands back to the Python walk a body it would read otherwise, so the records are the
same either way (`tests/collector/decode/test_walk.py`).

A request that cannot be parsed at all raises `MalformedRequest` (-> 400 / INVALID_ARGUMENT). A span
that parses but is unusable (a trace ID that is not 16 bytes, a span ID that is not 8 bytes, all-zero
IDs, more attributes or a longer kept value than ``KeyFilter.limits`` allow, an attribute that is not
a KeyValue, a kept value that is not valid UTF-8 or nests arrays deeper than 16 levels, a JSON span
with an unreadable field) is
*rejected*: it is counted in `Decoded.rejected` with the first reason, and its siblings are kept
(-> ``partial_success``). A span name longer than ``KeyFilter.limits.max_name_length`` is truncated
(`AttributeLimits.span_name`), the span kept. OTLP/JSON follows the spec: IDs are hex strings, 64-bit
integers may be JSON strings, field names are lowerCamelCase (snake_case is accepted too, as protobuf's
JSON mapping does), enums are integers.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from google.protobuf.message import DecodeError

from tokenbook.collector.decode.otlp_view import AnyValueView, KeyValueView, TraceRequestView
from tokenbook.collector.limits import AttributeLimits
from tokenbook.genai import semconv
from tokenbook.genai.records import unchecked
from tokenbook.genai.redaction import is_content_attribute

try:  # the envelope walked in C (``_walk.c``), built when the collector is installed with a compiler
    from tokenbook.collector.decode import _walk as _walk  # (re-exported: tests set it aside)
except ImportError:  # pragma: no cover - a build without a C compiler: the same walk in Python
    _walk = None  # type: ignore[assignment]

__all__ = [
    "WHOLE",
    "Decoded",
    "KeyFilter",
    "MalformedRequest",
    "Part",
    "SpanRecord",
    "decode_json",
    "decode_protobuf",
]

_STATUS_ERROR = 2
_INSTANCE: Final = semconv.SERVICE_INSTANCE_ID


class MalformedRequest(ValueError):
    """The request body is not a valid OTLP ExportTraceServiceRequest."""


class SpanRecord(NamedTuple):
    """One span, reduced to what the pipeline reads."""

    trace_id: bytes  # 16 bytes
    span_id: bytes  # 8 bytes
    parent_span_id: bytes  # b"" for a root span
    name: str
    start_ns: int
    end_ns: int
    error: bool  # status code ERROR
    service_name: str
    attrs: dict[str, Any]  # resource then span attributes accepted by the filter (span wins)
    outcome: str  # value of a `tokenbook.outcome` event or attribute, else ""
    scope_name: str = ""  # instrumentation scope (ScopeSpans.scope): which library wrote the span
    scope_version: str = ""
    service_instance: str = ""  # resource `service.instance.id`, else "" (the service name stands in)
    first_token_ns: int = 0  # time of the earliest `semconv.FIRST_TOKEN_EVENTS` event; 0 when none


@dataclass(frozen=True, slots=True)
class Decoded:
    """What decoding a request gave: the records of the spans kept, how many spans were rejected, and
    the first rejection's reason (reported in ``partial_success``)."""

    records: list[SpanRecord]
    rejected: int
    reason: str  # the first rejection reason, "" when none


@dataclass(frozen=True, slots=True)
class KeyFilter:
    """Which attribute keys are kept: exact names, or names starting with one of `prefixes`."""

    names: frozenset[str]
    prefixes: tuple[str, ...] = ()
    #: A span with more attributes (all counted) or a kept value over the length limit is rejected.
    limits: AttributeLimits | None = None
    #: Keys decoded only to be measured (prompt content under ``privacy.content: drop``): a value that
    #: cannot be read is left out, never a reason to reject its span.
    measure_only: frozenset[str] = frozenset()
    measure_only_prefixes: tuple[str, ...] = ()

    def only_measured(self, key: str) -> bool:
        """Whether `key` is decoded only to be measured (see `measure_only`)."""
        return key in self.measure_only or key.startswith(self.measure_only_prefixes)

    def __contains__(self, key: object) -> bool:
        return key in self.names or (isinstance(key, str) and key.startswith(self.prefixes))


# --- protobuf ---------------------------------------------------------------------------------------


_MAX_VALUE_DEPTH: Final = 16  # arrays nested deeper in a kept value reject the span


class _BadValue(ValueError):
    """A kept attribute value that cannot be read (not protobuf, not UTF-8, nested too deep)."""


def _pb_value(v: Any, depth: int = 0) -> Any:
    """The Python value of an `AnyValueView`; `_BadValue` when it cannot be read."""
    # HasField in the order of frequency is ~30% faster than WhichOneof + a string switch.
    if v.HasField("string_value"):
        try:
            return v.string_value.decode()
        except UnicodeDecodeError as exc:
            raise _BadValue("is not valid UTF-8") from exc
    if v.HasField("int_value"):
        return v.int_value
    if v.HasField("double_value"):
        return v.double_value
    if v.HasField("bool_value"):
        return v.bool_value
    if v.HasField("array_value"):
        if depth >= _MAX_VALUE_DEPTH:
            raise _BadValue(f"nests arrays deeper than {_MAX_VALUE_DEPTH} levels")
        return tuple(_pb_value(_any_value(x), depth + 1) for x in v.array_value.values)
    if v.HasField("bytes_value"):
        return v.bytes_value.hex()
    return None  # kvlist and empty values are not read by the pipeline


def _any_value(raw: bytes) -> Any:
    """One serialized ``AnyValue`` as an `AnyValueView` (its own fields only: nothing nested is parsed)."""
    try:
        return AnyValueView.FromString(raw)
    except DecodeError as exc:
        raise _BadValue(f"is not a protobuf AnyValue ({exc})") from exc


def _value(raw: bytes) -> Any:
    """The Python value of one serialized ``AnyValue``; `_BadValue` when it cannot be read.

    The usual encodings, a string shorter than 128 bytes or an integer below 2**14 as the only field,
    are sliced; anything else (and a string that is not UTF-8) goes through `AnyValueView`."""
    n = len(raw)
    if n >= 2:
        tag, first = raw[0], raw[1]
        if tag == 0x0A and first == n - 2 and first < 0x80:  # string_value
            try:
                return raw[2:].decode()
            except UnicodeDecodeError:
                pass  # `_view_value` says why
        elif tag == 0x18:  # int_value, as a varint of one or two bytes
            if n == 2 and first < 0x80:
                return first
            if n == 3 and first >= 0x80 and raw[2] < 0x80:
                return (first & 0x7F) | raw[2] << 7
    return _view_value(raw)


def _view_value(raw: bytes) -> Any:
    """`_value` of any encoding, through `AnyValueView`."""
    return _pb_value(_any_value(raw))


def _kept_value(key: str, raw: bytes) -> tuple[str, Any] | str:
    """(key, value) of a kept attribute, or why its span is rejected."""
    try:
        return key, _value(raw)
    except _BadValue as exc:
        return _rejected(f"attribute {key[:64]!r} {exc}")


class _KeyRule(NamedTuple):
    """How `_AttributeMemo` treats a kept attribute key (`_AttributeMemo._rule`)."""

    key: str
    only_measured: bool  # content measured, then dropped: an unreadable value is left out, not refused
    readable: bool  # False for a key that is not UTF-8: its value is not read


class _AttributeMemo:
    """Serialized ``KeyValue`` -> ``(key, value)`` when `keys` keeps the key, else None; or, for a
    kept value over ``keys.limits``' length limit, why the span is rejected (a str).

    Spans repeat most attributes byte for byte (model, provider, tenant, operation, ...), so a dict
    lookup replaces a parse for most of them. An attribute not seen recently is split into its key and
    value (`_split_key_value`), the key looked up among the keys seen (`_rule`: kept or not, only
    measured), and the value of a kept key read (`_value`). Bounded: cleared when full; values of long
    attributes are not kept. Shared by the receiver threads (single dict operations; a race recomputes
    a value).
    """

    __slots__ = ("_keys", "_rules", "_table")
    _MAX_ENTRIES: Final = 100_000
    _MAX_BYTES: Final = 512  # a longer KeyValue is decoded every time
    _MAX_KEYS: Final = 10_000  # keys remembered: a sender can vary them without bound

    def __init__(self, keys: KeyFilter) -> None:
        self._keys = keys
        self._table: dict[bytes, tuple[str, Any] | str | None] = {}
        self._rules: dict[bytes, _KeyRule | None] = {}

    def into(self, raws: Iterable[bytes], attrs: dict[str, Any]) -> str:
        """Add the kept attributes of `raws` to `attrs` (a later duplicate key wins); return why the
        span is rejected, "" when it is not."""
        get = self._table.get
        for raw in raws:
            kv = get(raw, _UNSEEN)
            if kv is _UNSEEN:
                kv = self._learn(raw)
            if kv is not None:
                if kv.__class__ is str:
                    return kv
                attrs[kv[0]] = kv[1]
        return ""

    def _learn(self, raw: bytes) -> tuple[str, Any] | str | None:
        kv = self._read(raw)
        if len(raw) <= self._MAX_BYTES:
            if len(self._table) >= self._MAX_ENTRIES:
                self._table.clear()
            self._table[raw] = kv
        return kv

    def _read(self, raw: bytes) -> tuple[str, Any] | str | None:
        split = _split_key_value(raw)
        if split is None:
            return _rejected("an attribute is not a protobuf KeyValue")
        key_bytes, value = split
        rule = self._rules.get(key_bytes, _UNSEEN)
        if rule is _UNSEEN:
            rule = self._rule(key_bytes)
        if rule is None:
            return None
        kv = _kept_value(rule.key, value if rule.readable else b"")
        if isinstance(kv, str):
            return None if rule.only_measured else kv  # unreadable content that is only measured: left out
        limits = self._keys.limits
        if limits is None or (v := kv[1]).__class__ is not str or len(v) <= limits.max_value_length:
            return kv  # within the limit: `violation` is not called (once per miss, a measured cost)
        return _rejected(limits.violation(rule.key, v)) or kv

    def _rule(self, key_bytes: bytes) -> _KeyRule | None:
        """How an attribute key is treated: None when `keys` does not keep it, else (key, only
        measured, readable: False for a key that is not UTF-8, whose value is then not read)."""
        try:
            key, readable = key_bytes.decode(), True
        except UnicodeDecodeError:
            key, readable = "", False  # no filter keeps it
        rule = _KeyRule(key, self._keys.only_measured(key), readable) if key in self._keys else None
        if len(self._rules) >= self._MAX_KEYS:
            self._rules.clear()
        self._rules[key_bytes] = rule
        return rule


def _split_key_value(raw: bytes) -> tuple[bytes, bytes] | None:
    """(key, serialized AnyValue) of one serialized ``KeyValue``, neither parsed; None when `raw` is not
    a KeyValue. The usual encoding (key then value, each shorter than 128 bytes) is sliced; anything
    else goes through `KeyValueView`."""
    n = len(raw)
    if n >= 4 and raw[0] == 0x0A and raw[1] < 0x80:
        k = raw[1] + 2  # where the value's field starts
        if k + 2 <= n and raw[k] == 0x12 and raw[k + 1] == n - k - 2 and raw[k + 1] < 0x80:
            return raw[2:k], raw[k + 2 :]
    return _view_key_value(raw)


def _view_key_value(raw: bytes) -> tuple[bytes, bytes] | None:
    """`_split_key_value` of any encoding, through `KeyValueView`."""
    try:
        kv = KeyValueView.FromString(raw)
    except DecodeError:
        return None
    return kv.key, kv.value


_UNSEEN: Final[Any] = object()


def _rejected(problem: str) -> str:
    return f"span rejected: {problem}" if problem else ""


def _resource_problem(res: Mapping[str, Any], limits: AttributeLimits | None) -> str:
    """Why every span of a resource is rejected (a kept resource value over the limit), or ""."""
    if limits is not None:
        for k, v in res.items():
            if problem := limits.violation(k, v):
                return _rejected(problem)
    return ""


def _key_value(raw: bytes) -> tuple[str | None, bytes]:
    """(key, serialized AnyValue) of one serialized ``KeyValue``; the value is not parsed. The key is
    None when `raw` is not a KeyValue, "" when the key is not UTF-8 (no filter keeps it)."""
    split = _split_key_value(raw)
    if split is None:
        return None, b""
    try:
        return split[0].decode(), split[1]
    except UnicodeDecodeError:
        return "", b""


@functools.lru_cache(maxsize=16)
def _memo(keys: KeyFilter) -> _AttributeMemo:
    return _AttributeMemo(keys)


class _Resource(NamedTuple):
    """What a resource gives each of its spans (`_resource`)."""

    attrs: dict[str, Any]  # its attributes the filter keeps (``service.*`` apart)
    service: str  # ``service.name`` (text), else ""
    instance: str  # ``service.instance.id`` (text), else ""
    problem: str  # why every span of the resource is rejected, "" when none


def _resource(raws: Iterable[bytes], keys: KeyFilter) -> _Resource:
    """The `_Resource` of a resource's serialized attributes."""
    res: dict[str, Any] = {}
    service = instance = problem = ""
    for raw in raws:
        k, v = _key_value(raw)
        if k is None:
            problem = problem or _rejected("a resource attribute is not a protobuf KeyValue")
        elif k in (semconv.SERVICE_NAME, _INSTANCE) or k in keys:
            kv = _kept_value(k, v)
            if kv.__class__ is str:
                problem = problem or str(kv)
                continue
            value = kv[1]
            if k == semconv.SERVICE_NAME:
                service = value if value.__class__ is str else ""
            elif k == _INSTANCE:
                instance = value if value.__class__ is str else ""
            else:
                res[k] = value
    return _Resource(res, service, instance, problem or _resource_problem(res, keys.limits))


@functools.lru_cache(maxsize=16)
def _walk_context(memo: _AttributeMemo) -> tuple[Any, ...]:
    """What `_walk.walk` reads (see ``_walk.c``): `memo`'s table and its miss, the rules of
    `decode_protobuf` for the memo's key filter, as Python objects, and what a miss in the usual form
    needs to be read in C as `_AttributeMemo._learn` reads it (the memo's key rules, the length limit,
    the bounds of its table)."""
    keys = memo._keys
    limits = keys.limits
    return (
        memo._table,
        memo._learn,
        functools.partial(_resource, keys=keys),
        limits.max_attributes if limits is not None else 0,
        semconv.TB.OUTCOME,
        semconv.FIRST_TOKEN_EVENTS,
        limits.max_name_length if limits is not None else -1,
        limits.span_name if limits is not None else None,
        SpanRecord,
        _id_problem,
        _too_many_attributes,
        memo._rules,
        limits.max_value_length if limits is not None else -1,
        memo._MAX_BYTES,
        memo._MAX_ENTRIES,
    )


_NO_TRACE = bytes(16)
_NO_SPAN = bytes(8)


def _id_problem(trace_id: bytes, span_id: bytes, parent: bytes) -> str:
    if len(trace_id) != 16 or trace_id == bytes(16):
        return "invalid trace_id: must be 16 non-zero bytes"
    if len(span_id) != 8 or span_id == bytes(8):
        return "invalid span_id: must be 8 non-zero bytes"
    if parent and len(parent) != 8:
        return "invalid parent_span_id: must be 8 bytes or empty"
    return ""


class Part(NamedTuple):
    """Part `number` (from 0) of `total` of a request's spans, by position: of its N spans in request
    order, those from ``N * number // total`` up to ``N * (number + 1) // total``. The parts of a
    request, in order, decode to what the whole request decodes to (records, rejections, first reason)."""

    number: int = 0
    total: int = 1


WHOLE: Final = Part()


def _span_count(resource_spans: Iterable[Any]) -> int:
    return sum(len(ss.spans) for rs in resource_spans for ss in rs.scope_spans)


def decode_protobuf(body: bytes, keys: KeyFilter, part: Part = WHOLE) -> Decoded:
    """Parse a binary `ExportTraceServiceRequest` (through `otlp_view.TraceRequestView`); only the spans
    of `part` are decoded (the whole request by default)."""
    try:
        request = TraceRequestView.FromString(body)
    except DecodeError as exc:
        raise MalformedRequest(f"cannot parse ExportTraceServiceRequest: {exc}") from exc
    whole = part.total == 1
    first = last = position = 0  # the part's spans: [first, last) of the request's, in order
    if not whole:
        total = _span_count(request.resource_spans)
        first, last = total * part.number // part.total, total * (part.number + 1) // part.total
    if _walk is not None:  # the same walk in C, on the body upb has just validated
        walked = _walk.walk(body, _walk_context(_memo(keys)), first, -1 if whole else last)
        if walked is not None:
            return Decoded(*walked)
    memo = _memo(keys)
    records: list[SpanRecord] = []
    rejected = 0
    reason = ""
    outcome_key = semconv.TB.OUTCOME
    first_token_events = semconv.FIRST_TOKEN_EVENTS
    limits = keys.limits
    max_attributes = limits.max_attributes if limits is not None else 0
    for rs in request.resource_spans:
        if not whole:
            n = _span_count((rs,))
            if position + n <= first or position >= last:  # none of its spans is in the part
                position += n
                continue
        res, service, instance, res_problem = _resource(rs.resource.attributes, keys)
        for ss in rs.scope_spans:
            scope_name, scope_version = ss.scope.name, ss.scope.version
            spans = ss.spans
            if not whole:
                n = len(spans)
                spans = spans[max(first - position, 0) : max(last - position, 0)]
                position += n
            for span in spans:
                trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                if (
                    len(trace_id) != 16
                    or len(span_id) != 8
                    or trace_id == _NO_TRACE
                    or span_id == _NO_SPAN
                    or (parent and len(parent) != 8)
                ):
                    rejected += 1
                    reason = reason or _id_problem(trace_id, span_id, parent)
                    continue
                raws = span.attributes
                attrs = res.copy()
                problem = res_problem or memo.into(raws, attrs)
                if not problem and max_attributes and len(raws) > max_attributes:
                    problem = _too_many_attributes(attrs, res, max_attributes)
                if problem:
                    rejected += 1
                    reason = reason or problem
                    continue
                outcome = ""
                first_token = 0
                if span.events:
                    for ev in span.events:
                        if ev.name == outcome_key:
                            found: dict[str, Any] = {}
                            memo.into(ev.attributes, found)  # event values are not length-limited
                            outcome = str(found.get(outcome_key) or "")
                        elif ev.name in first_token_events:
                            t = ev.time_unix_nano
                            if t and (not first_token or t < first_token):
                                first_token = t
                if not outcome and outcome_key in attrs:
                    outcome = str(attrs[outcome_key])
                name = span.name
                if limits is not None and len(name) > limits.max_name_length:
                    name = limits.span_name(name)
                records.append(
                    unchecked(  # `records.build` without its check: the 14 fields
                        SpanRecord,
                        (
                            trace_id,
                            span_id,
                            parent,
                            name,
                            span.start_time_unix_nano,
                            span.end_time_unix_nano,
                            span.status.code == _STATUS_ERROR,
                            service,
                            attrs,
                            outcome,
                            scope_name,
                            scope_version,
                            instance,
                            first_token,
                        ),
                    )
                )
    return Decoded(records, rejected, reason)


# --- OTLP/JSON --------------------------------------------------------------------------------------


def _get(d: Mapping[str, Any], camel: str, snake: str) -> Any:
    v = d.get(camel)
    return d.get(snake) if v is None else v


def _json_value(v: Any) -> Any:
    if not isinstance(v, Mapping):
        raise ValueError("attribute value must be an AnyValue object")
    if "stringValue" in v or "string_value" in v:
        return str(_get(v, "stringValue", "string_value"))
    if "intValue" in v or "int_value" in v:
        raw = _get(v, "intValue", "int_value")
        if isinstance(raw, bool) or not isinstance(raw, int | str):
            raise ValueError(f"intValue must be an integer or a decimal string, got {raw!r}")
        return int(raw)
    if "doubleValue" in v or "double_value" in v:
        raw = _get(v, "doubleValue", "double_value")
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise ValueError(f"doubleValue must be a number, got {raw!r}")
        return float(raw)  # OTLP/JSON also allows "NaN"/"Infinity" strings
    if "boolValue" in v or "bool_value" in v:
        return bool(_get(v, "boolValue", "bool_value"))
    if "arrayValue" in v or "array_value" in v:
        arr = _get(v, "arrayValue", "array_value") or {}
        return tuple(_json_value(x) for x in arr.get("values", ()))
    if "bytesValue" in v or "bytes_value" in v:
        return _json_bytes(_get(v, "bytesValue", "bytes_value")).hex()  # as `_pb_value` reads bytes
    return None  # kvlist and empty values are not read by the pipeline


def _json_bytes(v: Any) -> bytes:
    """A JSON `bytes` field: base64, standard or URL-safe, with or without padding (the protobuf JSON
    mapping); ValueError otherwise."""
    if not isinstance(v, str):
        raise ValueError(f"bytesValue must be a base64 string, got {v!r}")
    text = v.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"bytesValue is not base64: {exc}") from None


def _json_attrs(kvs: Any, keys: KeyFilter, into: dict[str, Any]) -> dict[str, Any]:
    """The kept attributes of `kvs` added to `into`; ValueError for an unreadable or too long one."""
    if kvs is None:
        return into
    if not isinstance(kvs, list):
        raise ValueError("attributes must be a list")
    limits = keys.limits
    for kv in kvs:
        k = kv.get("key") if isinstance(kv, Mapping) else None
        if not isinstance(k, str):
            raise ValueError("an attribute has no string key")
        if k in keys:
            into[k] = value = _json_value(kv.get("value"))
            if limits is not None and (problem := limits.violation(k, value)):
                raise ValueError(problem)
    return into


def _json_id(v: Any, size: int, what: str, *, optional: bool = False) -> bytes:
    if optional and (v is None or v == ""):
        return b""
    if not isinstance(v, str):
        raise ValueError(f"{what} must be a hex string")
    b = bytes.fromhex(v)
    if len(b) != size or (not optional and b == bytes(size)):
        raise ValueError(f"{what} must be {size} {'' if optional else 'non-zero '}bytes of hex")
    return b


def _json_time(v: Any) -> int:
    """A fixed64 nanosecond time: an integer (or decimal string) in [0, 2^64); absent is 0."""
    if v is None or v == "":
        return 0
    if isinstance(v, bool) or not isinstance(v, int | str):
        raise ValueError(f"a time must be an integer number of nanoseconds, got {v!r}")
    t = int(v)
    if not 0 <= t < 2**64:
        raise ValueError(f"a time must be in [0, 2^64) nanoseconds, got {v!r}")
    return t


def _too_many_attributes(attrs: Mapping[str, Any], resource: Mapping[str, Any], limit: int) -> str:
    """Why a span is rejected for its number of attributes, or "": more than `limit` of the span's
    attributes that the collector keeps (`attrs`, with the `resource`'s it started from), content
    aside. Attributes it does not read are not counted (an instrumentation that flattens a long
    conversation into thousands of message attributes loses nothing), nor content, measured or kept
    by the privacy mode, which the request's size bounds as it bounds their length. Asked only of a
    span with more than `limit` attributes in all."""
    kept = sum(1 for key in attrs if key not in resource and not is_content_attribute(key))
    if kept <= limit:
        return ""
    return f"span has {kept} attributes the collector keeps (limits.max_attributes_per_span={limit})"


def _json_span(
    span: Any, res: dict[str, Any], service: str, keys: KeyFilter, scope: tuple[str, str, str]
) -> SpanRecord:
    """One span; `scope` = (scope name, scope version, service instance)."""
    if not isinstance(span, Mapping):
        raise ValueError("a span must be an object")
    trace_id = _json_id(_get(span, "traceId", "trace_id"), 16, "traceId")
    span_id = _json_id(_get(span, "spanId", "span_id"), 8, "spanId")
    parent = _json_id(_get(span, "parentSpanId", "parent_span_id"), 8, "parentSpanId", optional=True)
    raw_attrs = span.get("attributes")
    attrs = _json_attrs(raw_attrs, keys, dict(res))
    max_attributes = keys.limits.max_attributes if keys.limits is not None else 0
    over = max_attributes and isinstance(raw_attrs, list) and len(raw_attrs) > max_attributes
    if over and (problem := _too_many_attributes(attrs, res, max_attributes)):
        raise ValueError(problem)
    outcome_key = semconv.TB.OUTCOME
    outcome = ""
    first_token = 0
    for ev in span.get("events") or ():
        if not isinstance(ev, Mapping):
            continue
        if ev.get("name") == outcome_key:
            found = _json_attrs(ev.get("attributes"), KeyFilter(frozenset((outcome_key,))), {})
            outcome = str(found.get(outcome_key, "") or "")
        elif isinstance(ev.get("name"), str) and ev["name"] in semconv.FIRST_TOKEN_EVENTS:
            t = _json_time(_get(ev, "timeUnixNano", "time_unix_nano"))
            if t and (not first_token or t < first_token):
                first_token = t
    if not outcome and outcome_key in attrs:
        outcome = str(attrs[outcome_key])
    status = span.get("status") or {}
    name = str(span.get("name", ""))
    return SpanRecord(
        trace_id,
        span_id,
        parent,
        name if keys.limits is None else keys.limits.span_name(name),
        _json_time(_get(span, "startTimeUnixNano", "start_time_unix_nano")),
        _json_time(_get(span, "endTimeUnixNano", "end_time_unix_nano")),
        isinstance(status, Mapping) and status.get("code") in (_STATUS_ERROR, "STATUS_CODE_ERROR"),
        service,
        attrs,
        outcome,
        *scope,
        first_token,
    )


def _json_scope(ss: Mapping[str, Any]) -> tuple[str, str]:
    scope = ss.get("scope")
    if not isinstance(scope, Mapping):
        return "", ""
    name, version = scope.get("name"), scope.get("version")
    return (name if isinstance(name, str) else ""), (version if isinstance(version, str) else "")


def decode_json(body: bytes, keys: KeyFilter) -> Decoded:
    """Parse an OTLP/JSON `ExportTraceServiceRequest`."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MalformedRequest(f"invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise MalformedRequest("the body must be a JSON object")
    resource_spans = _get(doc, "resourceSpans", "resource_spans") or []
    if not isinstance(resource_spans, list):
        raise MalformedRequest("resourceSpans must be a list")
    records: list[SpanRecord] = []
    rejected = 0
    reason = ""
    resource_keys = _with_service(keys)
    for rs in resource_spans:
        if not isinstance(rs, Mapping):
            raise MalformedRequest("each resourceSpans entry must be an object")
        res: dict[str, Any] = {}
        try:
            _json_attrs((rs.get("resource") or {}).get("attributes"), resource_keys, res)
        except (ValueError, TypeError, AttributeError) as exc:
            raise MalformedRequest(f"resource: {exc}") from exc
        service = str(res.pop(semconv.SERVICE_NAME, "") or "")
        instance = str(res.pop(_INSTANCE, "") or "")
        res_problem = _resource_problem(res, keys.limits)
        scope_spans = _get(rs, "scopeSpans", "scope_spans") or []
        if not isinstance(scope_spans, list):
            raise MalformedRequest("scopeSpans must be a list")
        for ss in scope_spans:
            spans = ss.get("spans") if isinstance(ss, Mapping) else None
            if not isinstance(spans, list):
                raise MalformedRequest("scopeSpans[].spans must be a list")
            scope = (*_json_scope(ss), instance)
            for span in spans:
                if res_problem:
                    rejected += 1
                    reason = reason or res_problem
                    continue
                try:
                    records.append(_json_span(span, res, service, keys, scope))
                except (ValueError, TypeError, AttributeError, RecursionError) as exc:
                    rejected += 1
                    reason = reason or f"span rejected: {exc}"
    return Decoded(records, rejected, reason)


def _with_service(keys: KeyFilter) -> KeyFilter:
    """`keys` plus ``service.name`` and ``service.instance.id``, without the value limit
    (`_resource_problem` applies it)."""
    return KeyFilter(keys.names | {semconv.SERVICE_NAME, _INSTANCE}, keys.prefixes)
