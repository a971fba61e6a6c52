"""Settings of the span processor: constructor argument, then ``TOKENBOOK_*`` env var, then default.

Built once into a frozen `ProcessorSettings`; a bad argument raises ValueError naming the parameter, a
bad environment value raises ValueError naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from tokenbook.genai.calls import DEFAULT_TRACKER_SIZE
from tokenbook.genai.redaction import DEFAULT_REDACTION, REDACTION_MODES

__all__ = [
    "DEFAULT_EXTRA_KEYS",
    "DEFAULT_METRICS",
    "DEFAULT_PRICE_OVERRIDES",
    "DEFAULT_REDACTION",
    "DEFAULT_REDACTION_SALT",
    "DEFAULT_TAG_ALL_SPANS",
    "DEFAULT_TRACKER_SIZE",
    "ENV_EXTRA_KEYS",
    "ENV_METRICS",
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

DEFAULT_PRICE_OVERRIDES: Final[str | None] = None
DEFAULT_REDACTION_SALT: Final = ""
DEFAULT_EXTRA_KEYS: Final[tuple[str, ...]] = ()
DEFAULT_METRICS: Final = False
#: Off: attribution goes onto model, tool and wrapper spans only (`calls.call_kind`), not every span.
DEFAULT_TAG_ALL_SPANS: Final = False

_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off", ""})


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}: must be true or false, got {raw!r}")


@dataclass(frozen=True, slots=True)
class ProcessorSettings:
    """Resolved settings of one `TokenbookSpanProcessor`."""

    price_overrides: Path | None = None
    redaction: str = DEFAULT_REDACTION
    redaction_salt: str = DEFAULT_REDACTION_SALT
    extra_keys: tuple[str, ...] = DEFAULT_EXTRA_KEYS
    metrics: bool = DEFAULT_METRICS
    tracker_size: int = DEFAULT_TRACKER_SIZE
    tag_all_spans: bool = DEFAULT_TAG_ALL_SPANS

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
    ) -> ProcessorSettings:
        """Argument, else environment variable, else default."""
        overrides = price_overrides if price_overrides is not None else os.environ.get(ENV_PRICE_OVERRIDES)
        if overrides is not None and not str(overrides).strip():
            overrides = DEFAULT_PRICE_OVERRIDES
        mode = redaction if redaction is not None else os.environ.get(ENV_REDACTION, DEFAULT_REDACTION)
        if mode not in REDACTION_MODES:
            where = "redaction" if redaction is not None else ENV_REDACTION
            raise ValueError(f"{where}: must be one of {', '.join(REDACTION_MODES)}, got {mode!r}")
        salt = (
            redaction_salt
            if redaction_salt is not None
            else os.environ.get(ENV_REDACTION_SALT, DEFAULT_REDACTION_SALT)
        )
        if extra_keys is None:
            raw = os.environ.get(ENV_EXTRA_KEYS, "")
            keys = tuple(k.strip() for k in raw.split(",") if k.strip())
        else:
            if isinstance(extra_keys, str) or not all(isinstance(k, str) and k for k in extra_keys):
                raise ValueError(f"extra_keys: must be a sequence of non-empty strings, got {extra_keys!r}")
            keys = tuple(extra_keys)
        use_metrics = metrics if metrics is not None else _env_bool(ENV_METRICS, DEFAULT_METRICS)
        if tag_all_spans is not None and not isinstance(tag_all_spans, bool):
            raise ValueError(f"tag_all_spans: must be true or false, got {tag_all_spans!r}")
        tag_all = (
            _env_bool(ENV_TAG_ALL_SPANS, DEFAULT_TAG_ALL_SPANS) if tag_all_spans is None else tag_all_spans
        )
        if tracker_size is None:
            raw_size = os.environ.get(ENV_TRACKER_SIZE)
            try:
                size = int(raw_size) if raw_size else DEFAULT_TRACKER_SIZE
            except ValueError:
                raise ValueError(
                    f"{ENV_TRACKER_SIZE}: must be a positive integer, got {raw_size!r}"
                ) from None
            where = ENV_TRACKER_SIZE
        else:
            size, where = tracker_size, "tracker_size"
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"{where}: must be a positive integer, got {size!r}")
        return cls(
            price_overrides=Path(overrides) if overrides else None,
            redaction=mode,
            redaction_salt=salt,
            extra_keys=keys,
            metrics=use_metrics,
            tracker_size=size,
            tag_all_spans=tag_all,
        )
