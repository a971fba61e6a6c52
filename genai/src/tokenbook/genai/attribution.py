"""Attribution keys: which span attributes say who and what a call is for, and the context ID.

The policy path (`POLICY_PATH_KEY`, or a key the app chooses: `policy_key` checks it) says which guard
or route a call went through; the processor copies it from Baggage onto calls and the collector
stores it in ``llm_calls.policy_path``.

The context ID, the key of per-context aggregation, is the first non-empty of ``tokenbook.context.id``,
``gen_ai.conversation.id``, ``session.id``, the session other SDKs record, then the trace ID
(`context_id_of`, `semconv.CONTEXT_ID_SOURCES`); the user, team and project other SDKs and gateways
record are read where a span has none of its own (`semconv.ATTRIBUTION_ALIASES`). The in-app processor
sets these attributes from Baggage (`tokenbook.processor.attribute`); the collector reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tokenbook.genai import semconv
from tokenbook.genai.configspec import type_name
from tokenbook.genai.redaction import is_content_attribute

__all__ = ["ATTRIBUTION_COLUMNS", "ATTRIBUTION_KEYS", "POLICY_PATH_KEY", "context_id_of", "policy_key"]

#: The default attribute (and Baggage key) of a call's policy path: which guard or route it went through.
POLICY_PATH_KEY: Final = semconv.TB.POLICY_PATH

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


@type_name("attribute name")
def policy_key(v: Any) -> str:
    """A policy-path key: a non-empty attribute name that is not content (content is never stored)."""
    if not isinstance(v, str) or not v.strip() or v != v.strip():
        raise ValueError(f"must be a non-empty attribute name without surrounding spaces, got {v!r}")
    if is_content_attribute(v):
        raise ValueError(
            f"{v!r} carries prompt or completion content, which is never stored as a policy path"
        )
    return v
