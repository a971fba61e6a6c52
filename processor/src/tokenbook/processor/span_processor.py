"""`TokenbookSpanProcessor`: attribution on start; usage, price, budget and redaction for the exporter.

It wraps the downstream processor (usually a `BatchSpanProcessor`). As for every SDK span processor,
``on_start`` and ``on_end`` run synchronously on the thread that starts or ends the span; they never
block on I/O and never raise into the application. Their own failures are logged once per kind through
``logging.getLogger(__name__)`` and counted in `errors`; a failure of the wrapped processor is counted
in `downstream_errors`. The live span is only written through its public API (``set_attributes`` in
``on_start``); no private field of a live or ended span is ever written. For spans of exactly the SDK's
own classes (one type identity test per span), the checks below read a few of their fields in place
(``_name``, ``_context``, ``_parent``, ``_attributes._dict``, ``_events._dq``; `_sdk_span_types` finds
the classes at import with a probe span and checks that this SDK keeps the fields there, else the public
properties are used), since the public properties copy the attributes and events and cost a Python
call each: most of the cost of a span with nothing for tokenbook.

Where the processor's install built ``_plain.c``, the instance's ``on_start`` and ``on_end`` are
`PlainSpans`' (`_bind_plain_path`): the first checks below, in C, for a span of the SDK's classes,
which hand a plain span on without a Python frame and call the Python methods for every other span.

What runs where:

* **On the thread that starts the span** (``on_start``): one membership test of the span's name in the
  memo of names that do not read as an operation, and one test of its start attribute keys against the
  fixed set of kind and usage keys (the only keys by which a span is a call when it starts). A span
  that cannot be a call by them is not looked at further, nor is its context, even the first time its
  name is seen (with ``tag_all_spans`` every span goes on). For the others, the Baggage attribution and
  the active budgets of the parent context are looked up, once per run of spans under one parent ``Context``
  (immutable, so the last one seen is cached by identity, weakly); a model, tool or wrapper call by its
  start attributes or name (`calls.call_kind`) gets the attribution set on it and is remembered
  (bounded, per span) with the budgets active at its start. A local root is remembered as its trace's
  workflow until it ends.
* **On the thread that ends the span** (``on_end``): one check of the span's attribute keys against the
  memo of keys tokenbook has nothing to do with (any key that is not a usage key, a kind signal such
  as ``gen_ai.operation.name`` / ``openinference.span.kind`` / ``llm.request.type`` /
  ``traceloop.span.kind``, or content), plus the span name's membership in the memo and whether it has
  events (then their keys). The fields read there are handed to the rest of the ending path. A span
  with nothing for tokenbook is handed on unchanged, without a copy; a local root's
  workflow entry is dropped, and `DescendantTracker` is updated only while it holds marks. Any other
  span is handed on as a `_LazySpan`: a read-only proxy over the ended span that carries what had to
  be read on this thread (whether it carried usage, whether a descendant did, its workflow, and, for
  a span that was not a call when it started, the attribution and budgets of the context it ends in
  when that is its own or its parent's: `_late_context`). Only when the span carries usage and an
  in-app budget is on it (the budget needs the cost at once) is the proxy completed here, before it
  is handed on; budget callbacks then run on this thread.
* **Where the proxy is first read** (normally the export thread, when the batch processor encodes it;
  the thread that ends the span with a synchronous exporter): its attributes and events are computed
  once, under a lock: the ended span's attributes are copied; a span with usage and content has the
  sizes of its input's parts measured (`composition.measure`, numbers only, with the model's
  tokenizer when one is installed offline); content is redacted (span and event attributes, per the
  redaction mode), then the kind is decided, late attribution is added to
  calls, and spans with usage are read, billed and priced (`usage.read_usage`,
  `calls.is_billable`, `PriceCatalog.quote` in integer pico-dollars) and, with ``metrics`` on,
  recorded on the two metrics. Every public property of the
  proxy (``name``, ``context``, ``parent``, ``attributes``, ``events``, ``links``, ``to_json`` ...)
  answers as the enriched span; the content of the ended span is never reachable through it. An error
  there never reaches the exporter: it is logged and counted, and the attributes fall back to the
  redacted copy (to none at all if even redaction fails).

Attributes written, per span:

* calls (kind ``model``, ``tool``, ``wrapper``) and spans with usage get ``tokenbook.call.kind`` and the
  attribution; spans with usage also get the local root's name/ID as ``tokenbook.workflow.name``/``.id``
  and ``tokenbook.usage.issue`` when a value was coerced;
* billed spans get the price (``tokenbook.price.status``, ``tokenbook.price.source``,
  ``tokenbook.cost.currency``, ``tokenbook.cost.total`` and its non-zero components as decimal strings)
  and are charged to the budgets active at their start (``tokenbook.budget.state``); model calls
  measured above get their prompt composition (``tokenbook.prompt.<part>_tokens``, summing exactly to
  the input tokens, and ``tokenbook.prompt.estimated``; `tokenbook.genai.composition`); spans with usage
  that are not billed get ``tokenbook.billable=false`` and ``tokenbook.price.status=not_billable``;
* the context ID is not written again: ``context_id_of`` derives it from the attributes (the collector
  does the same), and ``tokenbook.context.id`` from Baggage is already on the span.
"""

from __future__ import annotations

import dis
import functools
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable, Container, Iterable, Mapping, Sequence, Sized
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from opentelemetry import baggage, context, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status
from opentelemetry.util.types import Attributes

from tokenbook.genai import semconv
from tokenbook.genai.billing import STATUS_NOT_BILLABLE, money, money_text
from tokenbook.genai.calls import (
    KIND_MODEL,
    KIND_OTHER,
    USAGE_KEYS,
    DescendantTracker,
    call_kind,
    first_text,
    is_billable,
    is_cache_hit,
    span_model,
    span_provider,
)
from tokenbook.genai.composition import Sizes, apportion, measure, offline_counter
from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.genai.pricing.rates import Cost
from tokenbook.genai.pricing.tiers import read_service_tier
from tokenbook.genai.redaction import Redactor, is_content_attribute
from tokenbook.genai.usage import read_usage
from tokenbook.processor.attribution import ATTRIBUTION_COLUMNS, ATTRIBUTION_KEYS
from tokenbook.processor.budgets import Budget, active_budgets, worst_state
from tokenbook.processor.metrics import CostMetrics
from tokenbook.processor.settings import ProcessorSettings

try:  # the path of plain spans in C (``_plain.c``), built when the processor is installed with a compiler
    from tokenbook.processor._plain import PlainSpans as PlainSpans  # (re-exported: tests set it aside)
except ImportError:  # pragma: no cover - a build without a C compiler: the same checks in Python
    PlainSpans = None  # type: ignore[assignment,misc]

__all__ = ["TokenbookSpanProcessor"]

_logger = logging.getLogger(__name__)
_TB = semconv.TB
_MAX_OPEN: Final = 100_000  # bound on per-trace/per-span state kept between start and end
_MAX_KNOWN: Final = 10_000  # bound on the memos of attribute keys and span names
_ATTRIBUTION_BAGGAGE: Final = tuple(ATTRIBUTION_KEYS.values())
_TENANT: Final = ATTRIBUTION_KEYS["tenant"]
#: Attribution on metrics: the low-cardinality keys only (no session or context IDs).
_METRIC_ATTRIBUTION: Final = tuple(ATTRIBUTION_COLUMNS)
#: Keys whose presence may make a span a call (`calls.call_kind`): usage and the kind signals.
_SIGNAL_KEYS: Final = USAGE_KEYS | set(semconv.KIND_SIGNALS)
#: First words of span names that `call_kind` reads as an operation (rule 4).
_NAME_OPERATIONS: Final = semconv.MODEL_OPERATIONS | semconv.TOOL_OPERATIONS | semconv.WRAPPER_OPERATIONS


class _StartCache(NamedTuple):
    """A context (weakly) and what spans started or ended under it get from it."""

    ref: Callable[[], context.Context | None]  # the weak reference; `_no_context` when not cached
    attribution: dict[str, str]  # Baggage values to copy (span attribute -> value)
    budgets: tuple[Budget, ...]  # the budgets active in the context, outermost first
    empty: bool  # neither attribution nor budgets: nothing for any span under it


#: What `on_end` read on the ending thread for the lazy part: (has usage, a descendant had usage,
#: workflow (name, span ID) or None, attribution not yet on the span or None, budgets to charge or None).
_Plan = tuple[bool, bool, tuple[str, int] | None, dict[str, str] | None, tuple[Budget, ...] | None]
#: The computed attributes and events of a `_LazySpan`.
_Done = tuple[MappingProxyType[str, Any], tuple[Event, ...]]


_get_current: Final = context.get_current


#: The instructions of a function body that does nothing but return None (CPython 3.11, 3.12+).
_RETURN_NONE: Final = ([("LOAD_CONST", None), ("RETURN_VALUE", None)], [("RETURN_CONST", None)])


def _does_nothing(method: Callable[..., object]) -> bool:
    """Whether `method` is a Python function whose body does nothing (``pass`` or a docstring), as the
    SDK's ``SpanProcessor.on_start`` and its batch and simple processors' are: not worth a call per span.
    """
    code = getattr(getattr(method, "__func__", method), "__code__", None)
    if code is None:
        return False
    body = [(i.opname, i.argval) for i in dis.get_instructions(code) if i.opname not in {"RESUME", "NOP"}]
    return body in _RETURN_NONE


class _Kept(SpanProcessor):
    """Keeps the ended spans the SDK hands to ``on_end`` (for `_sdk_span_types`)."""

    def __init__(self) -> None:
        self.ended: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


class _Unmatched:
    """A type no span has: the SDK types of `_sdk_span_types` when its fields are not where expected."""


def _sdk_span_types() -> tuple[type, type]:
    """The classes of the SDK's live and ended spans whose fields ``on_start`` and ``on_end`` read in
    place, or `_Unmatched` twice when this SDK keeps them elsewhere (then the public properties are used).

    For a span of exactly these classes they read (never write) ``_name``, ``_context``, ``_parent``,
    ``_attributes._dict`` and ``_events._dq``: the public properties cost a Python call each and copy the
    attributes and events, which is most of the cost of a span with nothing for tokenbook. One span is
    started and ended through a throwaway provider of this SDK to check where they are.
    """
    unmatched = (_Unmatched, _Unmatched)
    try:
        kept = _Kept()
        # sampled and without resource detection, whatever the environment configures for the app's own
        provider = TracerProvider(sampler=ALWAYS_ON, resource=Resource.get_empty(), shutdown_on_exit=False)
        provider.add_span_processor(kept)
        tracer = provider.get_tracer("tokenbook.probe")
        root = tracer.start_span("probe-root", attributes={"k": 1})
        live = tracer.start_span("probe", trace.set_span_in_context(root), attributes={"k": 1})
        live.add_event("e")
        live.end()
        (ended,) = kept.ended
        own, parent = live.get_span_context(), root.get_span_context()
        both: tuple[Any, Any] = (live, ended)  # their private fields, read as any
        readable = (
            (own[0], own[1], own[2], parent[1]) == (own.trace_id, own.span_id, own.is_remote, parent.span_id)
            and all(s._name == "probe" and s._context is own for s in both)
            and all(s._parent is not None and s._parent[1] == parent.span_id for s in both)
            and all(type(s._attributes._dict) is dict and s._attributes._dict == {"k": 1} for s in both)
            and type(both[1]._events._dq) is deque
            and len(both[1]._events._dq) == 1
            and type(ended) is ReadableSpan
        )
        return (type(live), type(ended)) if readable else unmatched
    except Exception:  # noqa: BLE001 - any other shape: the public properties
        return unmatched


#: The SDK's live and ended span classes whose fields are read in place (`_Unmatched` if none: then
#: every span goes through the public properties).
_SDK_LIVE, _SDK_ENDED = _sdk_span_types()
#: Positions in a `SpanContext` (a ``tuple[trace_id, span_id, is_remote, ...]`` by its declared type), read
#: by index on the per-span paths: its properties cost a Python call each.
_TRACE_ID: Final = 0
_SPAN_ID: Final = 1
_IS_REMOTE: Final = 2


def _no_context() -> None:
    """The reference of a `_StartCache` that is never reused (it matches no context)."""


class _EnrichedSpan(ReadableSpan):
    """A frozen copy of an ended span with other attributes/events; keeps the original drop counts.

    Built through the public `ReadableSpan` constructor from the source's public properties; no private
    field of either span is written here. Used for the redaction fallback and `_LazySpan.to_json`.
    """

    def __init__(self, span: ReadableSpan, attributes: Mapping[str, object], events: Sequence[Event]) -> None:
        ReadableSpan.__init__(  # positional: keyword matching is measurable per span
            self,
            span.name,
            span.context,
            span.parent,
            span.resource,
            attributes,  # type: ignore[arg-type]
            events,
            span.links,
            span.kind,
            None,  # instrumentation_info (deprecated): the scope below replaces it
            span.status,
            span.start_time,
            span.end_time,
            span.instrumentation_scope,
        )
        self._source = span

    @property
    def dropped_attributes(self) -> int:
        return self._source.dropped_attributes

    @property
    def dropped_events(self) -> int:
        return self._source.dropped_events

    @property
    def dropped_links(self) -> int:
        return self._source.dropped_links


class _LazySpan(ReadableSpan):
    """A read-only proxy over an ended span whose attributes and events are enriched on first read.

    Every public property answers from the ended span, except ``attributes`` and ``events``, computed
    once (thread-safely) by `TokenbookSpanProcessor._finish`, which never raises. ``ReadableSpan``'s
    constructor is not called: private names the base class or an exporter might read resolve through
    `__getattr__`, ``_attributes``/``_events`` to the computed (redacted) values and any other to the
    ended span's, so no path reaches unredacted content. Nothing is ever written to the ended span.
    """

    def __init__(self, source: ReadableSpan, processor: TokenbookSpanProcessor, plan: _Plan) -> None:
        # ReadableSpan.__init__ is deliberately not called: every field is the source's (see above)
        self._source = source
        self._processor = processor
        self._plan = plan
        self._done: _Done | None = None

    def _computed(self) -> _Done:
        done = self._done
        if done is None:
            with self._processor._lazy_lock:
                done = self._done
                if done is None:
                    done = self._processor._finish(self._source, self._plan)
                    self._done = done
        return done

    def __getattr__(self, name: str) -> Any:
        """Private names of ``ReadableSpan`` (read by its ``to_json`` and maybe by exporters)."""
        if name.startswith("__") or name in {"_source", "_processor", "_plan", "_done"}:
            raise AttributeError(name)  # not set yet (copy/pickle): never forwarded
        if name == "_attributes":
            return dict(self._computed()[0])
        if name == "_events":
            return self._computed()[1]
        return getattr(self._source, name)

    @property
    def attributes(self) -> Attributes:
        return self._computed()[0]

    @property
    def events(self) -> Sequence[Event]:
        return self._computed()[1]

    @property
    def name(self) -> str:
        return self._source.name

    def get_span_context(self) -> SpanContext | None:
        return self._source.get_span_context()

    @property
    def context(self) -> SpanContext | None:
        ctx: SpanContext | None = self._source.context
        return ctx

    @property
    def kind(self) -> SpanKind:
        return self._source.kind

    @property
    def parent(self) -> SpanContext | None:
        return self._source.parent

    @property
    def start_time(self) -> int | None:
        return self._source.start_time

    @property
    def end_time(self) -> int | None:
        return self._source.end_time

    @property
    def status(self) -> Status:
        return self._source.status

    @property
    def links(self) -> Sequence[Link]:
        return self._source.links

    @property
    def resource(self) -> Resource:
        return self._source.resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope | None:
        return self._source.instrumentation_scope

    @property
    def dropped_attributes(self) -> int:
        return self._source.dropped_attributes

    @property
    def dropped_events(self) -> int:
        return self._source.dropped_events

    @property
    def dropped_links(self) -> int:
        return self._source.dropped_links

    def to_json(self, indent: int | None = 4) -> str:
        attributes, events = self._computed()
        return str(_EnrichedSpan(self._source, attributes, events).to_json(indent))


def _dict_of(attributes: Attributes) -> dict[str, object]:
    """A plain-dict copy of a span's attributes.

    ``ReadableSpan.attributes`` is a ``MappingProxyType``; its public ``copy()`` returns the copy of the
    mapping underneath (for the SDK's ``BoundedAttributes``, a C-level ``dict`` copy), far cheaper than
    ``dict(proxy)``, which goes through ``BoundedAttributes.__getitem__`` once per key.
    """
    if not attributes:
        return {}
    try:
        copied = attributes.copy()  # type: ignore[attr-defined]
    except AttributeError:  # a Mapping without copy(): not the SDK's
        copied = None
    return copied if type(copied) is dict else dict(attributes)


def _without_content(attributes: Attributes) -> dict[str, object]:
    """The last-resort fallback: the attributes minus every content key (no redaction mode applied)."""
    return {k: v for k, v in (attributes or {}).items() if not is_content_attribute(k)}


class TokenbookSpanProcessor(SpanProcessor):
    """Wraps `wrapped` and hands it enriched views of ended spans. See the module docstring.

    Options (argument, else ``TOKENBOOK_*`` environment variable, else default; see
    `ProcessorSettings`): ``price_overrides`` (YAML path), ``redaction`` (drop | keep | hash),
    ``redaction_salt``, ``extra_keys`` (Baggage keys copied as ``tokenbook.tag.<key>``), ``metrics``,
    ``tracker_size``, ``tag_all_spans`` (attribution on every span, not only on calls),
    ``policy_path_key`` (the Baggage key of the policy path copied onto calls). ``catalog``
    shares a `PriceCatalog` (then ``price_overrides`` must be unset); ``tenant_salts`` gives per-tenant
    hash salts; ``meter_provider`` is used when metrics are on.
    """

    def __init__(
        self,
        wrapped: SpanProcessor,
        *,
        price_overrides: str | Path | None = None,
        redaction: str | None = None,
        redaction_salt: str | None = None,
        tenant_salts: Mapping[str, str] | None = None,
        extra_keys: Sequence[str] | None = None,
        metrics: bool | None = None,
        tracker_size: int | None = None,
        tag_all_spans: bool | None = None,
        policy_path_key: str | None = None,
        catalog: PriceCatalog | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        if not isinstance(wrapped, SpanProcessor):
            raise ValueError(f"wrapped: must be a SpanProcessor, got {type(wrapped).__name__}")
        if catalog is not None and price_overrides is not None:
            raise ValueError("price_overrides: give either catalog or price_overrides, not both")
        self.settings = ProcessorSettings.resolve(
            price_overrides=price_overrides,
            redaction=redaction,
            redaction_salt=redaction_salt,
            extra_keys=extra_keys,
            metrics=metrics,
            tracker_size=tracker_size,
            tag_all_spans=tag_all_spans,
            policy_path_key=policy_path_key,
        )
        self._wrapped = wrapped
        self._wrapped_on_end = wrapped.on_end
        #: The wrapped processor's on_start, or None when it is known to do nothing (not called).
        self._wrapped_on_start = None if _does_nothing(wrapped.on_start) else wrapped.on_start
        self.catalog = catalog or PriceCatalog(self.settings.price_overrides)
        self._redactor = Redactor(
            self.settings.redaction, salt=self.settings.redaction_salt, tenant_salts=tenant_salts
        )
        self._tracker = DescendantTracker(self.settings.tracker_size)
        #: The tracker's marks, read (never written) to skip it while nothing is marked.
        self._marks: Sized = self._tracker._marked
        self._metrics = CostMetrics(meter_provider) if self.settings.metrics else None
        self._tag_all = self.settings.tag_all_spans
        #: Baggage key -> span attribute, for every key copied in on_start (the reservation ID of
        #: `processor.reserve` too: the collector settles the reservation with the call).
        self._copied = (
            {key: key for key in (*_ATTRIBUTION_BAGGAGE, _TB.RESERVATION_ID)}
            | {key: _TB.TAG_PREFIX + key for key in self.settings.extra_keys}
            | {self.settings.policy_path_key: self.settings.policy_path_key}
        )
        #: The span attributes of `_copied`: what a call takes from its parent span when its own context
        #: holds no attribution (`_parent_attribution`).
        self._copied_attributes = tuple(dict.fromkeys(self._copied.values()))
        self._workflows: dict[int, Span] = {}  # trace id -> its local root, until the root ends
        #: The last context seen (weakly) with what it yields: attribution to copy and active budgets.
        #: A Context is immutable, so both are functions of its identity; sibling spans under one parent
        #: share it. Replaced as one tuple: safe across threads.
        self._start_cache: _StartCache | None = None
        #: (trace id, span id) -> budgets active at the start of a call recognised when it started
        #: under attribution or budgets (maybe none): until it ends.
        self._started_calls: dict[tuple[int, int], tuple[Budget, ...]] = {}
        #: Attribute keys that are neither a signal (`_SIGNAL_KEYS`) nor content, and keys that are:
        #: memos, so a span of known plain keys costs one superset test (bounded, cleared when full).
        self._inert: set[str] = set()
        self._relevant: set[str] = set()
        #: Span names known not to read as an operation (rule 4), and names known to: memos, so a span of
        #: a known plain name costs one set membership test (bounded, cleared when full).
        self._plain_names: set[str] = set()
        self._operation_names: set[str] = set()
        #: The names `on_start` may skip at once: none with ``tag_all_spans`` (every span is tagged).
        self._start_plain_names: Container[str] = frozenset() if self._tag_all else self._plain_names
        #: The memo test of every span's attribute keys, bound once (the memo is cleared in place).
        self._all_inert: Callable[[Iterable[str]], bool] = self._inert.issuperset
        self._lock = threading.Lock()
        self._lazy_lock = threading.Lock()  # computes a _LazySpan once
        self._logged: set[str] = set()
        self.errors = 0
        self.downstream_errors = 0
        self._bind_plain_path()

    def _bind_plain_path(self) -> None:
        """Bind ``on_start`` and ``on_end`` to `PlainSpans` (``_plain.c``) on this instance, where it is
        built and this SDK's span fields are read in place: it does their first checks for a span of the
        SDK's classes and passes a plain one on without a Python frame, and calls these methods for every
        other span (they decide from the start). Not for a subclass that overrides either method.
        """
        cls = TokenbookSpanProcessor
        if (
            PlainSpans is None
            or _SDK_LIVE is _Unmatched
            or type(self).on_start is not cls.on_start
            or type(self).on_end is not cls.on_end
        ):
            return
        path = PlainSpans(
            live_type=_SDK_LIVE,
            ended_type=_SDK_ENDED,
            start_plain_names=self._start_plain_names,
            plain_names=self._plain_names,
            signal_keys=_SIGNAL_KEYS,
            inert=self._inert,
            workflows=self._workflows,
            marks=self._marks,
            wrapped_on_start=self._wrapped_on_start,
            wrapped_on_end=self._wrapped_on_end,
            full_on_start=self.on_start,
            full_on_end=self.on_end,
            failed_start=functools.partial(self._failed, "wrapped on_start", downstream=True),
            failed_end=functools.partial(self._failed, "wrapped on_end", downstream=True),
            max_open=_MAX_OPEN,
        )
        self.on_start = path.on_start  # type: ignore[method-assign]
        self.on_end = path.on_end  # type: ignore[method-assign]

    # --- errors -------------------------------------------------------------------------------
    def _failed(self, stage: str, exc: BaseException, *, downstream: bool = False) -> None:
        key = f"{stage}:{type(exc).__name__}"
        with self._lock:
            if downstream:
                self.downstream_errors += 1
            else:
                self.errors += 1
            first = key not in self._logged
            self._logged.add(key)
        if first:
            _logger.error("tokenbook processor %s failed (logged once per kind)", stage, exc_info=exc)

    # --- cheap checks -------------------------------------------------------------------------
    def _name_is_operation(self, name: str) -> bool:
        """Whether `call_kind` reads the span name's first word as an operation (memoized per name)."""
        if name in self._plain_names:
            return False
        if name in self._operation_names:
            return True
        known = name.split(" ", 1)[0] in _NAME_OPERATIONS
        if len(self._plain_names) + len(self._operation_names) >= _MAX_KNOWN:
            self._plain_names.clear()
            self._operation_names.clear()
        (self._operation_names if known else self._plain_names).add(name)  # a racing thread adds the same
        return known

    def _has_relevant_keys(self, keys: Iterable[str]) -> bool:
        """Whether any key is a signal or content; learns the keys it had not seen."""
        inert = self._inert
        if inert.issuperset(keys):  # the common case: no set is built
            return False
        unknown = set(keys)
        unknown -= inert
        if not unknown:
            return False
        relevant = self._relevant
        if relevant.issuperset(unknown):
            return True
        found = False
        for key in unknown:
            if key in relevant:
                found = True
                continue
            if len(inert) + len(relevant) >= _MAX_KNOWN:
                inert.clear()
                relevant.clear()
            if key in _SIGNAL_KEYS or is_content_attribute(key):
                relevant.add(key)
                found = True
            else:
                inert.add(key)
        return found

    # --- start --------------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        """Copy attribution from Baggage onto a call span; remember a call's budgets; note local roots.

        Called synchronously on the thread that starts the span; does no I/O, never blocks and never
        raises into the application (an error is logged once and counted). Then calls the wrapped
        processor's ``on_start`` (unless it does nothing). A span that is not a call by its name and
        start attributes (once its name has been seen: one set membership test and one test of its keys
        against the fixed set of kind and usage keys) is not looked at further, and neither is its
        context, except to note a local root.
        """
        try:
            if type(span) is _SDK_LIVE:
                # the SDK's own span, not yet the app's: its fields are read in place (never written)
                name: str = span._name
                keys: Iterable[str] = span._attributes._dict  # type: ignore[union-attr]
                own: SpanContext | None = span._context
                parent: SpanContext | None = span._parent
            else:
                name, keys, own, parent = span.name, span.attributes or (), span.context, span.parent
            if name not in self._start_plain_names or not _SIGNAL_KEYS.isdisjoint(keys):
                self._start_call(span, parent_context, name, keys)  # maybe a call: its context is read
            if parent is None or parent[_IS_REMOTE]:  # a local root: remembered as its trace's workflow
                workflows = self._workflows
                if len(workflows) >= _MAX_OPEN:
                    workflows.clear()
                if own is not None:
                    workflows[own[_TRACE_ID]] = span  # name and ID read when a call needs them
        except Exception as exc:  # noqa: BLE001 - never raise into the app; logged and counted
            self._failed("on_start", exc)
        if self._wrapped_on_start is not None:
            try:
                self._wrapped_on_start(span, parent_context)
            except Exception as exc:  # noqa: BLE001 - never raise into the app; logged and counted
                self._failed("wrapped on_start", exc, downstream=True)

    def _start_call(
        self, span: Span, parent_context: context.Context | None, name: str, keys: Iterable[str]
    ) -> None:
        """Tag a call with the attribution of its context (every span with ``tag_all_spans``), and
        remember the budgets active there.

        A call recognised here under attribution or budgets is remembered until it ends (with the
        budgets active now, maybe none), so that ``on_end`` charges exactly those. Any other span is left
        alone: should it turn out to be a call when it ends, ``on_end`` reads the context it ends in
        (`_late_context`). `name` and `keys` are the span's name and start attribute keys.
        """
        tag_all = self._tag_all
        is_call: bool | None = None  # decided when needed
        if not tag_all:
            is_call = self._is_call_at_start(span, name, keys)
            if not is_call:
                return  # not a call (the name is learned): its context is not read
        ctx = parent_context if parent_context is not None else _get_current()
        cached = self._start_cache
        if cached is None or cached.ref() is not ctx:
            cached = self._cache(ctx)
        found = cached.attribution or self._parent_attribution(ctx)
        if cached.empty and not found:
            return
        if tag_all:
            if found:
                span.set_attributes(found)
            if not cached.budgets or not self._is_call_at_start(span, name, keys):
                return
        elif found:
            span.set_attributes(found)
        own = span.get_span_context()
        started = self._started_calls
        if len(started) >= _MAX_OPEN:
            started.clear()
        started[(own.trace_id, own.span_id)] = cached.budgets

    def _parent_attribution(self, ctx: context.Context) -> dict[str, str]:
        """The attribution its parent span carries, for a call started where no Baggage holds any: the
        current span of `ctx`, when it is a local, live span (a remote or invalid one carries none).

        A server may start its span on the context extracted from a request without making that context
        current (the mcp SDK's own middleware parents its `tools/call` span on the client's trace that
        way): that span is attributed from the extracted Baggage (its parent context), while the code it
        runs, a model call in the tool, sees no Baggage. The call then takes its parent span's
        attribution, as the span it runs under. Only the immediate parent is read (a live span holds
        no reference to its own parent).
        """
        parent = trace.get_current_span(ctx)
        if type(parent) is _SDK_LIVE:
            attrs: Mapping[str, object] = parent._attributes._dict  # type: ignore[attr-defined]  # read only
        else:
            attrs = getattr(parent, "attributes", None) or {}
            if not attrs:
                return {}
        found = {}
        for key in self._copied_attributes:
            value = attrs.get(key)
            if isinstance(value, str) and value:
                found[key] = value
        return found

    def _is_call_at_start(self, span: Span, name: str, keys: Iterable[str]) -> bool:
        """A model, tool or wrapper span by its start attributes or name (`call_kind`)."""
        if self._name_is_operation(name):
            return True
        if _SIGNAL_KEYS.isdisjoint(keys):  # the common case: no copy of the attributes is made
            return False
        return call_kind(name, span.attributes or {}) != KIND_OTHER

    def _cache(self, ctx: context.Context) -> _StartCache:
        """What spans started (or ending) under `ctx` get from it, cached by identity when it can be."""
        copied = self._copied
        found = {copied[k]: v for k, v in baggage.get_all(ctx).items() if k in copied and isinstance(v, str)}
        budgets = active_budgets(ctx)
        empty = not found and not budgets
        try:
            cached = _StartCache(weakref.ref(ctx), found, budgets, empty)
        except TypeError:  # a Context subclass without weak references: used once, not cached
            return _StartCache(_no_context, found, budgets, empty)
        self._start_cache = cached
        return cached

    def _late_context(self, own: SpanContext | None, parent: SpanContext | None) -> _StartCache | None:
        """The attribution and budgets of the context a span ends in (`own`: its context, `parent`: its
        parent's), for a span not recognised as a call when it started; None when there are none, or
        when that context is neither the span's own nor its parent's (its current span is another span:
        the span ended elsewhere). For a local root without a remote parent, that is any context without
        a current span.
        """
        ctx = _get_current()
        cached = self._start_cache
        if cached is None or cached.ref() is not ctx:
            cached = self._cache(ctx)
        if cached.empty:
            return None
        current = trace.get_current_span(ctx).get_span_context()
        if own is not None and current.trace_id == own.trace_id and current.span_id == own.span_id:
            return cached
        if parent is None:
            return cached if not current.is_valid else None
        return cached if (current.trace_id, current.span_id) == (parent.trace_id, parent.span_id) else None

    # --- end ----------------------------------------------------------------------------------
    def on_end(self, span: ReadableSpan) -> None:
        """Hand the span on: unchanged when tokenbook has nothing to do, else as a `_LazySpan`.

        Called synchronously on the thread that ends the span. Pricing and redaction run where the
        proxy is first read (normally the export thread), except for a span with usage under an in-app
        budget: that one is completed here and its budget callbacks run here. Never
        raises into the application: on an internal error the span is handed on redacted (or dropped
        if even that fails) and the error is logged and counted.
        """
        out: ReadableSpan | None
        try:
            keys: Iterable[str]
            events: Sized
            if type(span) is _SDK_ENDED:
                # the SDK's own ended span (immutable): its fields are read in place, without the copies
                try:
                    keys = span._attributes._dict  # type: ignore[union-attr]
                    events = span._events._dq  # type: ignore[attr-defined]
                except AttributeError:  # built by other code from other mappings: the public properties
                    keys, events = span.attributes or (), span.events
                name, own, parent = span._name, span._context, span._parent
            else:
                keys, events, name, own, parent = (
                    span.attributes or (),
                    span.events,
                    span.name,
                    span.context,
                    span.parent,
                )
            if (
                name in self._plain_names  # a name seen before, not an operation
                and (not events or self._quiet_events(span))
                and self._all_inert(keys)  # no usage, kind signal or content key
            ):  # nothing for tokenbook: note the end of a local root, hand the span on as it is
                if own is not None:
                    parent_id = None
                    if parent is None or parent[_IS_REMOTE]:
                        self._workflows.pop(own[_TRACE_ID], None)
                    else:
                        parent_id = parent[_SPAN_ID]
                    if self._marks:  # forgets the span's usage mark, or passes it on to the parent
                        self._tracker.span_ended(own[_TRACE_ID], own[_SPAN_ID], parent_id, False)
                out = span
            else:
                out = self._end(span, keys, events, name, own, parent)
        except Exception as exc:  # noqa: BLE001 - never raise into the app; logged and counted
            self._failed("on_end", exc)
            out = self._redact_only(span)
        if out is None:
            return
        try:
            self._wrapped_on_end(out)
        except Exception as exc:  # noqa: BLE001 - never raise into the app; logged and counted
            self._failed("wrapped on_end", exc, downstream=True)

    def _quiet_events(self, span: ReadableSpan) -> bool:
        """Whether no event of `span` carries a signal or content key."""
        events = span.events
        return not events or not any(e.attributes and self._has_relevant_keys(e.attributes) for e in events)

    def _end(
        self,
        span: ReadableSpan,
        keys: Iterable[str],
        events: Sized,
        name: str,
        own: SpanContext | None,
        parent: SpanContext | None,
    ) -> ReadableSpan:
        """The ending thread's part for a span that may need tokenbook: state, tracker, the output.

        `keys`, `events`, `name`, `own` and `parent` are the span's attribute keys, events, name, context
        and parent context, as `on_end` read them.
        """
        if not keys or self._inert.issuperset(keys):
            has_usage = False
            relevant = self._name_is_operation(name)
        else:
            has_usage = not USAGE_KEYS.isdisjoint(keys)
            relevant = has_usage or self._has_relevant_keys(keys) or self._name_is_operation(name)
        late: dict[str, str] | None = None
        budgets: tuple[Budget, ...] | None = None
        workflow: tuple[str, int] | None = None
        had_descendant = False
        if own is not None:
            trace_id, span_id = own[_TRACE_ID], own[_SPAN_ID]
            is_root = parent is None or parent[_IS_REMOTE]
            root = None
            if is_root:
                root = self._workflows.pop(trace_id, None) if self._workflows else None
            elif has_usage:
                root = self._workflows.get(trace_id)
            if root is not None and has_usage:
                workflow = (root.name, root.context.span_id)  # formatted only when written
            parent_id = None if is_root or parent is None else parent[_SPAN_ID]
            if self._marks or (has_usage and parent_id is not None):  # else it neither forgets nor marks
                had_descendant = self._tracker.span_ended(trace_id, span_id, parent_id, has_usage)
            if self._started_calls:
                budgets = self._started_calls.pop((trace_id, span_id), None)
        if not relevant and (not events or self._quiet_events(span)):
            return span  # nothing for tokenbook (keys or a name seen for the first time): no copy
        if budgets is None and (found := self._late_context(own, parent)) is not None:
            # not a call when it started: attribution (where the span lacks it) and budgets of the
            # context it ends in, when that is its own or its parent's
            late, budgets = found.attribution or None, found.budgets
        budgets = budgets or None
        lazy = _LazySpan(span, self, (has_usage, had_descendant, workflow if has_usage else None, late, None))
        if has_usage and budgets:
            # the budgets need the cost now: completed here, before anyone else can read it
            lazy._done = self._finish(span, (has_usage, had_descendant, workflow, late, budgets))
        return lazy

    def _redact_only(self, span: ReadableSpan) -> ReadableSpan | None:
        """Fallback after a failure: never let content escape; drop the span if even this fails."""
        try:
            attrs = _dict_of(span.attributes)
            changed, events = self._redact(span, attrs, self._tenant_of(attrs, None))
            return _EnrichedSpan(span, attrs, events) if changed else span
        except Exception as exc:  # noqa: BLE001 - never raise into the app; logged and counted
            self._failed("redaction fallback (span dropped)", exc)
            return None

    # --- the deferred part (`_LazySpan`) --------------------------------------------------------
    def _finish(self, span: ReadableSpan, plan: _Plan) -> _Done:
        """The enriched attributes and events of `span`: redacted, then annotated. Never raises.

        Runs once per `_LazySpan`, where it is first read (or on the ending thread when `plan` carries
        budgets). On an error in the annotation the redacted attributes are used; on an error in the
        redaction itself, the attributes without any content key and no events.
        """
        late = plan[3]
        try:
            attrs = _dict_of(span.attributes)  # our copy: redacted, read, then extended in place
            tenant = self._tenant_of(attrs, late)
            sizes = self._measure(attrs) if plan[0] else None  # numbers only, before the content goes
            _, events = self._redact(span, attrs, tenant)  # first: tokenbook's keys are never content
        except Exception as exc:  # noqa: BLE001 - never raise into the exporter; logged and counted
            self._failed("deferred redaction", exc)
            try:
                return MappingProxyType(_without_content(span.attributes)), ()
            except Exception as exc2:  # noqa: BLE001 - never raise into the exporter
                self._failed("deferred redaction fallback", exc2)
                return MappingProxyType({}), ()
        redacted = dict(attrs)
        try:
            self._annotate(span, attrs, plan, sizes)
        except Exception as exc:  # noqa: BLE001 - never raise into the exporter; logged and counted
            self._failed("deferred enrichment", exc)
            attrs = redacted
        return MappingProxyType(attrs), tuple(events)

    @staticmethod
    def _tenant_of(attrs: Mapping[str, object], late: Mapping[str, str] | None) -> str:
        """The tenant whose salt hashes content: the span's, else the one remembered from Baggage."""
        tenant = attrs.get(_TENANT)
        if not isinstance(tenant, str) and late:
            tenant = late.get(_TENANT)
        return tenant if isinstance(tenant, str) else ""

    def _measure(self, attrs: Mapping[str, object]) -> Sizes | None:
        """The sizes of the input's parts (`composition.measure`) when the span carries content."""
        if not self._redactor.content_keys(attrs):
            return None
        try:
            return measure(attrs, offline_counter(first_text(attrs, semconv.MODEL)))
        except Exception as exc:  # noqa: BLE001 - a composition is never worth losing the span
            self._failed("prompt composition", exc)
            return None

    def _annotate(
        self, span: ReadableSpan, attrs: dict[str, object], plan: _Plan, sizes: Sizes | None = None
    ) -> None:
        """Kind, late attribution and, with usage, billing, price and composition: written into `attrs`."""
        has_usage, had_descendant, workflow, late, budgets = plan
        kind = call_kind(span.name, attrs)
        if kind == KIND_OTHER and not has_usage:
            return
        if late:
            for key, value in late.items():  # values the app set on the span itself win
                attrs.setdefault(key, value)
        if has_usage:
            input_tokens = self._price(span, attrs, kind, had_descendant, budgets, workflow)
            if sizes is not None and kind == KIND_MODEL and (found := apportion(sizes, input_tokens)):
                attrs.update(found.attributes())
        attrs[_TB.CALL_KIND] = kind

    def _price(
        self,
        span: ReadableSpan,
        attrs: dict[str, object],
        kind: str,
        had_descendant: bool,
        budgets: tuple[Budget, ...] | None,
        workflow: tuple[str, int] | None,
    ) -> int:
        """Read usage, decide billing, price and charge budgets; writes the results into `attrs`.

        Returns the call's input tokens.
        """
        provider = span_provider(attrs)
        usage = read_usage(attrs, provider)
        billable = is_billable(kind, usage.present, had_descendant)
        if workflow is not None:
            attrs[_TB.WORKFLOW_NAME] = workflow[0]
            attrs[_TB.WORKFLOW_ID] = trace.format_span_id(workflow[1])
        if usage.issues:
            attrs[_TB.USAGE_ISSUE] = usage.issue_text
        if not billable:
            attrs[_TB.BILLABLE] = False
            attrs[_TB.PRICE_STATUS] = STATUS_NOT_BILLABLE
            return usage.input_tokens
        quote = self.catalog.quote(
            provider,
            span_model(attrs),
            usage,
            span.start_time,
            cache_hit=is_cache_hit(attrs),
            tier=read_service_tier(attrs),
        )
        picos = quote.picos
        if self._metrics is not None:
            attribution = {k: v for k in _METRIC_ATTRIBUTION if isinstance(v := attrs.get(k), str)}
            self._metrics.record(attrs, provider, usage, Cost.of_quote(quote), attribution)
        attrs[_TB.PRICE_STATUS] = quote.status
        attrs[_TB.PRICE_SOURCE] = quote.source
        attrs[_TB.COST_CURRENCY] = quote.currency
        if picos is not None:
            attrs[_TB.COST_TOTAL] = money_text(picos.total)
            # zero components are omitted: fewer attributes to export
            if picos.input:
                attrs[_TB.COST_INPUT] = money_text(picos.input)
            if picos.output:
                attrs[_TB.COST_OUTPUT] = money_text(picos.output)
            if picos.cache_read:
                attrs[_TB.COST_CACHE_READ] = money_text(picos.cache_read)
            if picos.cache_write:
                attrs[_TB.COST_CACHE_WRITE] = money_text(picos.cache_write)
        if budgets:
            total = None if picos is None else money(picos.total)
            for b in budgets:
                b.charge(usage.total_tokens, total)
            attrs[_TB.BUDGET_STATE] = worst_state(budgets)
        return usage.input_tokens

    def _redact(
        self, span: ReadableSpan, attrs: dict[str, object], tenant: str
    ) -> tuple[bool, Sequence[Event]]:
        """Redact `attrs` in place and the span's events: (whether anything changed, the events to keep)."""
        changed = self._redactor.apply(attrs, tenant)
        events = span.events
        if events and (redacted := self._redact_events(events, tenant)) is not None:
            return True, redacted
        return changed, events

    def _redact_events(self, events: Sequence[Event], tenant: str) -> tuple[Event, ...] | None:
        changed = False
        out: list[Event] = []
        for event in events:
            attrs = event.attributes
            redacted = self._redactor.redact(attrs, tenant) if attrs else None
            if redacted is None:
                out.append(event)
            else:
                changed = True
                out.append(Event(event.name, redacted, event.timestamp))  # type: ignore[arg-type]
        return tuple(out) if changed else None

    # --- lifecycle ----------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Shut the wrapped processor down (flushing what it holds); blocks until it returns."""
        self._wrapped.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped processor within `timeout_millis`; True when everything was exported."""
        return self._wrapped.force_flush(timeout_millis)
