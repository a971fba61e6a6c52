"""Prompt content in decoded records bound for the write-ahead log: measured, then redacted.

With ``receivers.otlp.ack: logged`` the log holds decoded span records until their rows are built, so
content must leave them before they are logged, as it leaves rows (``privacy.content``): `LogContent`
measures the prompt's composition first (`genai.composition.measure`, with the model's offline
tokenizer when installed, exactly as the row builder would), keeps the sizes in the record under
`MEASURED_SIZES`, removes the attributes read only to be measured, and applies the content policy to
the content attributes (drop, or the salted hash; keep leaves them). The row builder then takes the
sizes instead of measuring, and the content values as they are (`ingest.deferred`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from tokenbook.collector.decode.spans import SpanRecord
from tokenbook.genai import semconv
from tokenbook.genai.calls import first_text
from tokenbook.genai.composition import is_measured_key, measure, offline_counter
from tokenbook.genai.redaction import Redactor, is_content_attribute

__all__ = ["MEASURED_SIZES", "LogContent"]

#: The record attribute holding ``(sizes, counted)`` of a `genai.composition.Sizes` measured before
#: logging. No span can carry it: the decoder's key filter keeps no such key.
MEASURED_SIZES: Final = "\0tokenbook.measured_prompt_sizes"
_MAX_KNOWN: Final = 10_000  # plain keys remembered (indexed content keys vary without bound)


class LogContent:
    """Applies ``privacy.content`` (`mode`, `salt`) to decoded records before they are logged."""

    def __init__(self, mode: str = "drop", salt: str = "") -> None:
        """`mode`: drop, hash or keep (``privacy.content``); `salt`: ``privacy.salt``."""
        self.mode = mode
        self.salt = salt
        self.redactor = Redactor(mode, salt=salt)
        # Keys neither measured nor content: a span with only such keys costs one superset test.
        self._plain: set[str] = set()

    def apply(self, records: Iterable[SpanRecord]) -> None:
        """Measure and redact the content of `records`, in place."""
        redactor = self.redactor
        plain = self._plain
        for r in records:
            attrs = r.attrs
            if plain.issuperset(attrs):
                continue
            for k in attrs.keys() - plain:
                if not is_measured_key(k) and not is_content_attribute(k) and len(plain) < _MAX_KNOWN:
                    plain.add(k)
            if plain.issuperset(attrs):
                continue
            measured = [k for k in attrs if is_measured_key(k)]
            if measured:
                sizes = _measure(attrs)
                if sizes is not None:
                    attrs[MEASURED_SIZES] = sizes
                for k in measured:
                    if not is_content_attribute(k):
                        del attrs[k]  # read only to be measured
            redactor.apply(attrs)


def _measure(attrs: dict[str, Any]) -> tuple[tuple[int, ...], bool] | None:
    """What the row builder would measure (`rows._composition`), as a ``marshal``-able tuple."""
    try:
        sizes = measure(attrs, offline_counter(first_text(attrs, semconv.MODEL)))
    except Exception:  # noqa: BLE001 - a composition is never worth losing the call's row
        return None
    return None if sizes is None else (sizes.sizes, sizes.counted)
