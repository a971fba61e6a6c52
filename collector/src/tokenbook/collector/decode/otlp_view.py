"""A reading view of OTLP's ``ExportTraceServiceRequest``: only the fields the pipeline reads.

The view is a protobuf schema built at import (no generated code) that declares, with OTLP's own field
numbers and wire types, the path to each span's IDs, name, times, status code, events (name, time,
attributes), its instrumentation scope's name and version, and resource/span/event attributes.
Everything else (scope attributes, links, trace state, dropped counts, ...) is skipped by upb without
creating Python objects. Attributes are declared as ``repeated bytes``: each ``KeyValue`` stays its own
serialized bytes, so `decode` can memoize the decoding of the attributes that repeat across spans
(model, provider, tenant, operation, ...) by those bytes.

Any body the full schema parses, the view parses to the same values for the declared fields (same
numbers and wire types); a body that is not protobuf at all raises ``DecodeError`` in both.

An attribute is read through two more views, `KeyValueView` (``key`` and ``value`` both ``bytes``) and
`AnyValueView` (OTLP's ``AnyValue`` oneof with ``string_value`` as ``bytes`` and ``array_value``'s
elements as ``bytes``): upb validates neither UTF-8 nor nesting inside them, so a value is parsed
only when its key is kept, one level at a time, and UTF-8 is checked by the decoder for kept values
only. A content value the privacy mode drops is never parsed at all.
"""

from __future__ import annotations

from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

__all__ = ["AnyValueView", "KeyValueView", "TraceRequestView"]

_F = descriptor_pb2.FieldDescriptorProto
_PACKAGE: Final = "tokenbook.otlp_view"
#: message -> (field name, OTLP field number, type, repeated, message type name)
_SCHEMA: Final[dict[str, tuple[tuple[str, int, int, bool, str], ...]]] = {
    "Request": (("resource_spans", 1, _F.TYPE_MESSAGE, True, "ResourceSpans"),),
    "ResourceSpans": (
        ("resource", 1, _F.TYPE_MESSAGE, False, "Resource"),
        ("scope_spans", 2, _F.TYPE_MESSAGE, True, "ScopeSpans"),
    ),
    "Resource": (("attributes", 1, _F.TYPE_BYTES, True, ""),),
    "ScopeSpans": (
        ("scope", 1, _F.TYPE_MESSAGE, False, "Scope"),
        ("spans", 2, _F.TYPE_MESSAGE, True, "Span"),
    ),
    "Scope": (("name", 1, _F.TYPE_STRING, False, ""), ("version", 2, _F.TYPE_STRING, False, "")),
    "Span": (
        ("trace_id", 1, _F.TYPE_BYTES, False, ""),
        ("span_id", 2, _F.TYPE_BYTES, False, ""),
        ("parent_span_id", 4, _F.TYPE_BYTES, False, ""),
        ("name", 5, _F.TYPE_STRING, False, ""),
        ("start_time_unix_nano", 7, _F.TYPE_FIXED64, False, ""),
        ("end_time_unix_nano", 8, _F.TYPE_FIXED64, False, ""),
        ("attributes", 9, _F.TYPE_BYTES, True, ""),
        ("events", 11, _F.TYPE_MESSAGE, True, "Event"),
        ("status", 15, _F.TYPE_MESSAGE, False, "Status"),
    ),
    "Event": (
        ("time_unix_nano", 1, _F.TYPE_FIXED64, False, ""),
        ("name", 2, _F.TYPE_STRING, False, ""),
        ("attributes", 3, _F.TYPE_BYTES, True, ""),
    ),
    "Status": (("code", 3, _F.TYPE_INT32, False, ""),),
    "KeyValue": (("key", 1, _F.TYPE_BYTES, False, ""), ("value", 2, _F.TYPE_BYTES, False, "")),
    "AnyValue": (
        ("string_value", 1, _F.TYPE_BYTES, False, ""),
        ("bool_value", 2, _F.TYPE_BOOL, False, ""),
        ("int_value", 3, _F.TYPE_INT64, False, ""),
        ("double_value", 4, _F.TYPE_DOUBLE, False, ""),
        ("array_value", 5, _F.TYPE_MESSAGE, False, "ArrayValue"),
        ("kvlist_value", 6, _F.TYPE_BYTES, False, ""),
        ("bytes_value", 7, _F.TYPE_BYTES, False, ""),
    ),
    "ArrayValue": (("values", 1, _F.TYPE_BYTES, True, ""),),
}
_ONEOF: Final = {"AnyValue": "value"}  # message -> the oneof holding all its fields


def _build() -> tuple[Any, Any, Any]:
    file = descriptor_pb2.FileDescriptorProto(
        name="tokenbook/otlp_view.proto", package=_PACKAGE, syntax="proto3"
    )
    for name, fields in _SCHEMA.items():
        message = file.message_type.add(name=name)
        if name in _ONEOF:
            message.oneof_decl.add(name=_ONEOF[name])
        for field, number, kind, repeated, type_name in fields:
            label = _F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL
            added = message.field.add(name=field, number=number, type=kind, label=label)
            if type_name:
                added.type_name = f".{_PACKAGE}.{type_name}"
            if name in _ONEOF:
                added.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return tuple(
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{name}"))
        for name in ("Request", "KeyValue", "AnyValue")
    )


#: The views' message classes: ``TraceRequestView.FromString(body)``; `KeyValueView` and
#: `AnyValueView` read one serialized attribute without validating what is not read.
TraceRequestView, KeyValueView, AnyValueView = _build()
