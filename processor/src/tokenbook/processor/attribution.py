"""Attribution: who and what a call is for, carried in OTel Baggage.

`attribute(...)` puts the values into Baggage and attaches the new context, so they follow the code:
into threads (through `contextvars.copy_context()` or the OTel-instrumented executors), into asyncio
tasks (which copy the context when created), and into other services through the W3C ``baggage``
header (`opentelemetry.propagate.inject` / `extract`). The span processor copies them onto model, tool
and wrapper spans (every span with ``tag_all_spans``).

The keys and the context ID rule are `tokenbook.genai.attribution`'s, shared with the collector.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import baggage, context

from tokenbook.genai.attribution import ATTRIBUTION_COLUMNS, ATTRIBUTION_KEYS, context_id_of

__all__ = ["ATTRIBUTION_COLUMNS", "ATTRIBUTION_KEYS", "attribute", "context_id_of"]


@contextmanager
def attribute(**values: str | None) -> Iterator[dict[str, str]]:
    """Set attribution for the code inside the ``with`` block, through Baggage.

    Known keywords: ``tenant``, ``user``, ``project``, ``team``, ``feature``, ``session``,
    ``context_id`` and ``policy_path`` (the guard or route the calls go through) (mapped by
    `ATTRIBUTION_KEYS`). Any other keyword is an extra key, stored in Baggage under its own name; the
    processor copies extra keys it is configured with (``extra_keys``) onto spans as
    ``tokenbook.tag.<key>``, and the one named by its ``policy_path_key`` under that name. ``None``
    leaves a key as it is. Nested blocks override single keys and inherit the rest. Yields the Baggage
    keys and values this block set.

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
