"""The span processor's path for spans with nothing for tokenbook, in C (``_plain.c``)."""

from collections.abc import Callable, Container, Sized
from typing import Any

class PlainSpans:
    """``on_start`` and ``on_end`` of `TokenbookSpanProcessor` for plain spans of the SDK's classes;
    every other span goes to the Python methods given as `full_on_start` and `full_on_end`."""

    def __init__(
        self,
        *,
        live_type: type,
        ended_type: type,
        start_plain_names: Container[str],
        plain_names: set[str],
        signal_keys: frozenset[str],
        inert: set[str],
        workflows: dict[int, Any],
        marks: Sized,
        wrapped_on_start: Callable[[Any, Any], object] | None,
        wrapped_on_end: Callable[[Any], object],
        full_on_start: Callable[..., None],
        full_on_end: Callable[[Any], None],
        failed_start: Callable[[BaseException], None],
        failed_end: Callable[[BaseException], None],
        max_open: int,
    ) -> None: ...
    def on_start(self, span: Any, parent_context: Any = None) -> None: ...
    def on_end(self, span: Any) -> None: ...
