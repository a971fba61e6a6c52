"""Stage 2, decode: OTLP request bodies (protobuf or JSON) -> compact span records.

`spans` holds the decoders and `SpanRecord`; `otlp_view` the reading view of the protobuf schema;
`pool` the decoder processes that run them off the collector's GIL.
"""

__all__: list[str] = []
