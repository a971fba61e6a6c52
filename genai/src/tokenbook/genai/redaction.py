"""Prompt and completion content is removed from exported spans unless configured otherwise.

Modes: ``drop`` (default) removes every content attribute (`is_content_attribute`) from span and event
attributes; ``keep`` leaves them; ``hash`` replaces each value with ``"sha256:<hex>"`` of a salted
SHA-256, so equal prompts stay comparable without being readable. The salt can differ per tenant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Final

from tokenbook.genai import semconv

__all__ = ["DEFAULT_REDACTION", "REDACTION_MODES", "Redactor", "is_content_attribute"]

REDACTION_MODES: Final = ("drop", "keep", "hash")
DEFAULT_REDACTION: Final = "drop"
_MAX_KNOWN: Final = 10_000


def is_content_attribute(key: str) -> bool:
    """Whether `key` carries prompt/completion/tool content (`semconv.CONTENT_ATTRIBUTES`, prefixes and
    suffixes)."""
    return (
        key in semconv.CONTENT_ATTRIBUTES
        or key.startswith(semconv.CONTENT_PREFIXES)
        or any(key.startswith(prefix) and key.endswith(ends) for prefix, ends in semconv.CONTENT_SUFFIXES)
    )


class Redactor:
    """Applies one redaction mode to attribute mappings. Immutable after construction; thread-safe."""

    def __init__(
        self,
        mode: str = DEFAULT_REDACTION,
        *,
        salt: str = "",
        tenant_salts: Mapping[str, str] | None = None,
    ) -> None:
        if mode not in REDACTION_MODES:
            raise ValueError(f"mode must be one of {', '.join(REDACTION_MODES)}, got {mode!r}")
        self.mode = mode
        self._salt = salt
        self._tenant_salts = dict(tenant_salts or {})
        # Keys seen before, split by kind; a span whose keys are all known plain keys costs one
        # superset test. Bounded: cleared when `_MAX_KNOWN` keys are known (indexed content keys vary).
        self._plain: set[str] = set()
        self._content: set[str] = set()

    def content_keys(self, attrs: Mapping[str, object]) -> list[str]:
        """The content attributes among `attrs`' keys (memoized per key)."""
        if self._plain.issuperset(attrs):  # the common case: no set is built
            return []
        unknown = attrs.keys() - self._plain
        if not unknown:
            return []
        found = []
        for key in unknown:
            if key in self._content:
                found.append(key)
                continue
            if len(self._plain) + len(self._content) >= _MAX_KNOWN:
                self._plain.clear()
                self._content.clear()
            if is_content_attribute(key):
                self._content.add(key)
                found.append(key)
            else:
                self._plain.add(key)
        return found

    def apply(self, attrs: dict[str, object], tenant: str = "") -> bool:
        """Redact `attrs` in place; returns whether anything changed."""
        if self.mode == "keep":
            return False
        content = self.content_keys(attrs)
        if not content:
            return False
        if self.mode == "drop":
            for key in content:
                del attrs[key]
        else:
            salt = self._tenant_salts.get(tenant, self._salt).encode()
            for key in content:
                attrs[key] = self.digest(attrs[key], salt)
        return True

    def redact(self, attrs: Mapping[str, object], tenant: str = "") -> dict[str, object] | None:
        """A redacted copy of `attrs`, or None when nothing needs to change."""
        if self.mode == "keep" or not self.content_keys(attrs):
            return None
        out = dict(attrs)
        self.apply(out, tenant)
        return out

    @staticmethod
    def digest(value: object, salt: bytes) -> str:
        """``"sha256:" + hex(sha256(salt + utf8(value)))``; sequences are joined with NUL."""
        text = "\0".join(str(v) for v in value) if isinstance(value, list | tuple) else str(value)
        return "sha256:" + hashlib.sha256(salt + text.encode("utf-8")).hexdigest()
