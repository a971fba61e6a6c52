"""Attribution: who and what a call is for, carried in OTel Baggage.

`attribute(...)` puts the values into Baggage and attaches the new context, so they follow the code:
into threads (through `contextvars.copy_context()` or the OTel-instrumented executors), into asyncio
tasks (which copy the context when created), and into other services through the W3C ``baggage``
header (`opentelemetry.propagate.inject` / `extract`). The span processor copies them onto every span
in ``on_start``.

The context ID, the key of per-context aggregation, is the first non-empty of ``tokenbook.context.id``,
``gen_ai.conversation.id``, ``session.id``, then the trace ID (`context_id_of`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

from opentelemetry import baggage, context

from tokenbook.processor import semconv

__all__ = ["ATTRIBUTION_COLUMNS", "ATTRIBUTION_KEYS", "attribute", "context_id_of"]

#: Keyword of `attribute(...)` -> Baggage key and span attribute.
ATTRIBUTION_KEYS: Final = semconv.ATTRIBUTION_KEYS

#: Span attribute -> `llm_calls` column.
ATTRIBUTION_COLUMNS: Final[Mapping[str, str]] = {
    "tenant.id": "tenant_id",
    "user.id": "user_id",
    "project.id": "project_id",
    "team.id": "team_id",
    "app.feature": "feature",
}


def context_id_of(attrs: Mapping[str, object], trace_id_hex: str) -> str:
    """The first non-empty string of `semconv.CONTEXT_ID_SOURCES` in `attrs`, else `trace_id_hex`."""
    for key in semconv.CONTEXT_ID_SOURCES:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return trace_id_hex


@contextmanager
def attribute(**values: str | None) -> Iterator[dict[str, str]]:
    """Set attribution for the code inside the ``with`` block, through Baggage.

    Known keywords: ``tenant``, ``user``, ``project``, ``team``, ``feature``, ``session``,
    ``context_id`` (mapped by `ATTRIBUTION_KEYS`). Any other keyword is an extra key, stored in Baggage
    under its own name; the processor copies extra keys it is configured with (``extra_keys``) onto
    spans as ``tokenbook.tag.<key>``. ``None`` leaves a key as it is. Nested blocks override single
    keys and inherit the rest. Yields the Baggage keys and values this block set.

    Raises ValueError (naming the keyword) for an empty or non-string value.
    """
    items: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ValueError(f"attribute({name}=...): must be a non-empty string, got {value!r}")
        items[ATTRIBUTION_KEYS.get(name, name)] = value
    ctx = context.get_current()
    for key, value in items.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        yield items
    finally:
        context.detach(token)
