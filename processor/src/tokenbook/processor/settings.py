"""Settings of the span processor: constructor argument, then ``TOKENBOOK_*`` env var, then default.

`ProcessorSettings` declares each setting with `tokenbook.genai.configspec` (default, environment
variable, parsers and description beside the field); `ProcessorSettings.resolve` builds the frozen
settings once. A bad argument raises ValueError naming the parameter, a bad environment value raises
ValueError naming the variable (every problem at once). An empty variable counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tokenbook.genai import configspec
from tokenbook.genai.attribution import POLICY_PATH_KEY, policy_key
from tokenbook.genai.calls import DEFAULT_TRACKER_SIZE
from tokenbook.genai.configspec import boolean, one_of, positive_int, setting, type_name
from tokenbook.genai.redaction import DEFAULT_REDACTION, REDACTION_MODES

__all__ = [
    "DEFAULT_EXTRA_KEYS",
    "DEFAULT_METRICS",
    "DEFAULT_POLICY_PATH_KEY",
    "DEFAULT_PRICE_OVERRIDES",
    "DEFAULT_REDACTION",
    "DEFAULT_REDACTION_SALT",
    "DEFAULT_TAG_ALL_SPANS",
    "DEFAULT_TRACKER_SIZE",
    "ENV_EXTRA_KEYS",
    "ENV_METRICS",
    "ENV_POLICY_PATH_KEY",
    "ENV_PRICE_OVERRIDES",
    "ENV_REDACTION",
    "ENV_REDACTION_SALT",
    "ENV_TAG_ALL_SPANS",
    "ENV_TRACKER_SIZE",
    "ProcessorSettings",
]

ENV_PRICE_OVERRIDES: Final = "TOKENBOOK_PRICE_OVERRIDES"
ENV_REDACTION: Final = "TOKENBOOK_REDACTION"
ENV_REDACTION_SALT: Final = "TOKENBOOK_REDACTION_SALT"
ENV_EXTRA_KEYS: Final = "TOKENBOOK_EXTRA_KEYS"
ENV_METRICS: Final = "TOKENBOOK_METRICS"
ENV_TRACKER_SIZE: Final = "TOKENBOOK_TRACKER_SIZE"
ENV_TAG_ALL_SPANS: Final = "TOKENBOOK_TAG_ALL_SPANS"
ENV_POLICY_PATH_KEY: Final = "TOKENBOOK_POLICY_PATH_KEY"

DEFAULT_PRICE_OVERRIDES: Final[str | None] = None
DEFAULT_REDACTION_SALT: Final = ""
DEFAULT_EXTRA_KEYS: Final[tuple[str, ...]] = ()
DEFAULT_METRICS: Final = False
#: Off: attribution goes onto model, tool and wrapper spans only (`calls.call_kind`), not every span.
DEFAULT_TAG_ALL_SPANS: Final = False
DEFAULT_POLICY_PATH_KEY: Final = POLICY_PATH_KEY

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


@type_name("path")
def _overrides(v: Any) -> Path | None:
    if not isinstance(v, str | Path):
        raise ValueError(f"must be a path, got {v!r}")
    return Path(v) if str(v).strip() else None


@type_name("string")
def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"must be a string, got {type(v).__name__}")
    return v


@type_name("list of names")
def _keys(v: Any) -> tuple[str, ...]:
    if isinstance(v, str) or not isinstance(v, Sequence) or not all(isinstance(k, str) and k for k in v):
        raise ValueError(f"must be a sequence of non-empty strings, got {v!r}")
    return tuple(v)


def _keys_env(text: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _bool_env(text: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"must be true or false, got {text!r}")


def _int_env(text: str) -> int:
    try:
        return positive_int(int(text))
    except ValueError:
        raise ValueError(f"must be a positive integer, got {text!r}") from None


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    """Resolved settings of one `TokenbookSpanProcessor`."""

    price_overrides: Path | None = setting(
        None,
        parse=_overrides,
        env=ENV_PRICE_OVERRIDES,
        doc="A price overrides YAML file (format in the configuration reference); absent: catalog prices.",
    )
    redaction: str = setting(
        DEFAULT_REDACTION,
        parse=one_of(REDACTION_MODES),
        env=ENV_REDACTION,
        doc="Prompt and completion content on exported spans: `drop`, `keep` or `hash` (salted).",
    )
    redaction_salt: str = setting(
        DEFAULT_REDACTION_SALT, parse=_text, env=ENV_REDACTION_SALT, doc="The salt of `hash` redaction."
    )
    extra_keys: tuple[str, ...] = setting(
        DEFAULT_EXTRA_KEYS,
        parse=_keys,
        env=ENV_EXTRA_KEYS,
        parse_env=_keys_env,
        doc="Baggage keys copied onto spans as `tokenbook.tag.<key>` (the variable: comma-separated).",
    )
    metrics: bool = setting(
        DEFAULT_METRICS,
        parse=boolean,
        env=ENV_METRICS,
        parse_env=_bool_env,
        doc="Record cost and token metrics (the variable: 1/true/yes/on or 0/false/no/off).",
    )
    tracker_size: int = setting(
        DEFAULT_TRACKER_SIZE,
        parse=positive_int,
        env=ENV_TRACKER_SIZE,
        parse_env=_int_env,
        doc="Spans remembered as having a descendant that carries usage (bounded memory).",
    )
    tag_all_spans: bool = setting(
        DEFAULT_TAG_ALL_SPANS,
        parse=boolean,
        env=ENV_TAG_ALL_SPANS,
        parse_env=_bool_env,
        doc="Copy attribution onto every span, not only onto model, tool and wrapper spans (the "
        "variable: 1/true/yes/on or 0/false/no/off).",
    )
    policy_path_key: str = setting(
        DEFAULT_POLICY_PATH_KEY,
        parse=policy_key,
        env=ENV_POLICY_PATH_KEY,
        doc="The Baggage key (and span attribute) of the policy path, the guard or route a call went "
        "through: copied onto calls like the attribution; the collector's "
        "`attribution.policy_path_key` must match.",
    )

    @classmethod
    def resolve(
        cls,
        *,
        price_overrides: str | Path | None = None,
        redaction: str | None = None,
        redaction_salt: str | None = None,
        extra_keys: Sequence[str] | None = None,
        metrics: bool | None = None,
        tracker_size: int | None = None,
        tag_all_spans: bool | None = None,
        policy_path_key: str | None = None,
    ) -> ProcessorSettings:
        """Argument, else environment variable, else default."""
        arguments = {
            "price_overrides": price_overrides,
            "redaction": redaction,
            "redaction_salt": redaction_salt,
            "extra_keys": extra_keys,
            "metrics": metrics,
            "tracker_size": tracker_size,
            "tag_all_spans": tag_all_spans,
            "policy_path_key": policy_path_key,
        }
        return configspec.resolve(cls, arguments, os.environ)
