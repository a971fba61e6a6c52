"""Attribution keys: which span attributes say who and what a call is for, and the context ID.

The context ID, the key of per-context aggregation, is the first non-empty of ``tokenbook.context.id``,
``gen_ai.conversation.id``, ``session.id``, then the trace ID (`context_id_of`). The in-app processor
sets these attributes from Baggage (`tokenbook.processor.attribute`); the collector reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from tokenbook.genai import semconv

__all__ = ["ATTRIBUTION_COLUMNS", "ATTRIBUTION_KEYS", "context_id_of"]

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
    """The first non-empty string of `semconv.CONTEXT_ID_SOURCES` in `attrs`, else `trace_id_hex`.

    Pure and thread-safe; never raises.
    """
    for key in semconv.CONTEXT_ID_SOURCES:
        value = attrs.get(key)
        if isinstance(value, str) and value:
            return value
    return trace_id_hex
