"""`TokenbookSpanProcessor`: attribution on start; usage, price, budget and redaction on end.

It wraps the downstream processor (usually a `BatchSpanProcessor`) and hands it, in ``on_end``, an
enriched copy of the span carrying the ``tokenbook.*`` attributes (DESIGN.md). Threading contract, as
for every SDK span processor: ``on_start`` and ``on_end`` run synchronously on the thread that starts
or ends the span; they never block on I/O and never raise into the application. Their own failures
are logged once per kind through ``logging.getLogger(__name__)`` and counted in `errors`; a failure of
the wrapped processor is counted in `downstream_errors`. The live span is only written through its
public API (``set_attributes`` in ``on_start``); private fields are never touched.

On end, per span:

* the kind (`calls.call_kind`) and the billing rule (`calls.is_billable`, with `DescendantTracker`);
* spans of a known kind (model, tool, wrapper) or with usage get ``tokenbook.call.kind``; spans with
  usage also get the local root's name/ID as ``tokenbook.workflow.name``/``.id`` and
  ``tokenbook.usage.issue`` when a value was coerced;
* billed spans get the price (``tokenbook.price.status``, ``tokenbook.price.source``,
  ``tokenbook.cost.currency``, ``tokenbook.cost.total`` and its non-zero components as decimal strings)
  and are charged to the budgets active at their start (``tokenbook.budget.state``); spans with usage
  that are not billed get ``tokenbook.billable=false`` and ``tokenbook.price.status=not_billable``;
* the context ID is not written again: ``context_id_of`` derives it from the attributes (the collector
  does the same), and ``tokenbook.context.id`` from Baggage is already on the span;
* content attributes are redacted (span and event attributes) per the redaction mode.

A span needing none of this is passed on unchanged (no copy).

Per-span cost (bench/processor_overhead.py): ``on_start`` looks Baggage and budgets up once per run of
spans under one parent ``Context`` (immutable, so the last one seen is cached by identity, weakly);
``on_end`` copies the attributes with the mapping's own ``copy()``, redacts them before adding its own
keys (never content), reads usage and prices into plain tuples and integer pico-dollars
(`usage.read_usage`, `PriceCatalog.quote`), and builds the public `Usage`/`Cost` only for metrics.
The enriched copy is built by the public `ReadableSpan` constructor from the ended span's properties.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from opentelemetry import baggage, context, trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.util.types import Attributes

from tokenbook.genai import semconv
from tokenbook.genai.billing import STATUS_NOT_BILLABLE, money, money_text
from tokenbook.genai.calls import (
    KIND_OTHER,
    DescendantTracker,
    call_kind,
    first_text,
    has_usage_attributes,
    is_billable,
    is_cache_hit,
)
from tokenbook.genai.pricing.catalog import PriceCatalog
from tokenbook.genai.pricing.rates import Cost
from tokenbook.genai.redaction import Redactor
from tokenbook.genai.usage import read_usage
from tokenbook.processor.attribution import ATTRIBUTION_COLUMNS, ATTRIBUTION_KEYS
from tokenbook.processor.budgets import Budget, active_budgets, worst_state
from tokenbook.processor.metrics import CostMetrics
from tokenbook.processor.settings import ProcessorSettings

__all__ = ["TokenbookSpanProcessor"]

_logger = logging.getLogger(__name__)
_TB = semconv.TB
_MAX_OPEN: Final = 100_000  # bound on per-trace/per-span state kept between start and end
_ATTRIBUTION_BAGGAGE: Final = tuple(ATTRIBUTION_KEYS.values())
_TENANT: Final = ATTRIBUTION_KEYS["tenant"]
#: Attribution on metrics: the low-cardinality keys only (no session or context IDs).
_METRIC_ATTRIBUTION: Final = tuple(ATTRIBUTION_COLUMNS)
#: A parent context (weakly), the attribution copied from its Baggage, and its active budgets.
_StartCache = tuple[Callable[[], context.Context | None], dict[str, str], tuple[Budget, ...]]


def _no_context() -> None:
    """The reference of a `_StartCache` that is never reused (it matches no context)."""


class _EnrichedSpan(ReadableSpan):
    """A frozen copy of an ended span with other attributes/events; keeps the original drop counts.

    Built through the public `ReadableSpan` constructor from the source's public properties; no private
    field of either span is written here.
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


class TokenbookSpanProcessor(SpanProcessor):
    """Wraps `wrapped` and hands it enriched copies of ended spans. See the module docstring.

    Options (argument, else ``TOKENBOOK_*`` environment variable, else default; see
    `ProcessorSettings`): ``price_overrides`` (YAML path), ``redaction`` (drop | keep | hash),
    ``redaction_salt``, ``extra_keys`` (Baggage keys copied as ``tokenbook.tag.<key>``), ``metrics``,
    ``tracker_size``. ``catalog`` shares a `PriceCatalog` (then ``price_overrides`` must be unset);
    ``tenant_salts`` gives per-tenant hash salts; ``meter_provider`` is used when metrics are on.
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
        )
        self._wrapped = wrapped
        self.catalog = catalog or PriceCatalog(self.settings.price_overrides)
        self._redactor = Redactor(
            self.settings.redaction, salt=self.settings.redaction_salt, tenant_salts=tenant_salts
        )
        self._tracker = DescendantTracker(self.settings.tracker_size)
        self._metrics = CostMetrics(meter_provider) if self.settings.metrics else None
        #: Baggage key -> span attribute, for every key copied in on_start.
        self._copied = {key: key for key in _ATTRIBUTION_BAGGAGE} | {
            key: _TB.TAG_PREFIX + key for key in self.settings.extra_keys
        }
        self._workflows: dict[int, tuple[str, int]] = {}  # trace id -> local root (name, span id)
        #: The last parent context seen in on_start (weakly) with what it yields: attribution to copy
        #: and active budgets. A Context is immutable, so both are functions of its identity; sibling
        #: spans under one parent share it. Replaced as one tuple: safe across threads.
        self._start_cache: _StartCache | None = None
        self._span_budgets: dict[tuple[int, int], tuple[Budget, ...]] = {}
        self._lock = threading.Lock()
        self._logged: set[str] = set()
        self.errors = 0
        self.downstream_errors = 0

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

    # --- start --------------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: context.Context | None = None) -> None:
        """Copy attribution from Baggage onto `span` and note the budgets active in its context.

        Called synchronously on the thread that starts the span; does no I/O, never blocks and never
        raises into the application (an error is logged once and counted). Then calls the wrapped
        processor's ``on_start``.
        """
        try:
            parent_ctx = parent_context if parent_context is not None else context.get_current()
            cached = self._start_cache
            if cached is None or cached[0]() is not parent_ctx:
                cached = self._cache_start(parent_ctx)
            if cached[1]:
                span.set_attributes(cached[1])
            parent = span.parent
            if parent is None or parent.is_remote:  # a local root: its trace's workflow
                ctx = span.context
                if len(self._workflows) >= _MAX_OPEN:
                    self._workflows.clear()
                self._workflows[ctx.trace_id] = (span.name, ctx.span_id)  # formatted only when written
            if cached[2]:
                self._remember_budgets(span, cached[2])
        except Exception as exc:  # noqa: BLE001 - never raise into the app; logged and counted
            self._failed("on_start", exc)
        try:
            self._wrapped.on_start(span, parent_context)
        except Exception as exc:  # noqa: BLE001 - never raise into the app; logged and counted
            self._failed("wrapped on_start", exc, downstream=True)

    def _cache_start(self, parent_ctx: context.Context) -> _StartCache:
        """What spans started under `parent_ctx` get (`_start_cache`), cached when it can be."""
        found, budgets = self._context_values(parent_ctx)
        try:
            cached: _StartCache = (weakref.ref(parent_ctx), found, budgets)
        except TypeError:  # a Context subclass without weak references: used once, not cached
            return (_no_context, found, budgets)
        self._start_cache = cached
        return cached

    def _remember_budgets(self, span: Span, budgets: tuple[Budget, ...]) -> None:
        """Keep the budgets a span is charged to when it ends (those active when it started)."""
        ctx = span.context
        if len(self._span_budgets) >= _MAX_OPEN:
            self._span_budgets.clear()
        self._span_budgets[(ctx.trace_id, ctx.span_id)] = budgets

    def _context_values(self, ctx: context.Context) -> tuple[dict[str, str], tuple[Budget, ...]]:
        """The attribution copied from `ctx`'s Baggage, and the budgets active in `ctx`."""
        copied = self._copied
        found = {copied[k]: v for k, v in baggage.get_all(ctx).items() if k in copied and isinstance(v, str)}
        return found, active_budgets(ctx)

    # --- end ----------------------------------------------------------------------------------
    def on_end(self, span: ReadableSpan) -> None:
        """Price a model call, charge its budgets, redact content, and hand an enriched copy on.

        Called synchronously on the thread that ends the span. A span with nothing for tokenbook to
        do is handed on unchanged. Never raises into the application: on an internal error the
        original span is handed on and the error is logged and counted. Budget callbacks run here,
        on this thread.
        """
        out: ReadableSpan | None
        try:
            out = self._enrich(span)
        except Exception as exc:  # noqa: BLE001 - never raise into the app; logged and counted
            self._failed("on_end", exc)
            out = self._redact_only(span)
        if out is None:
            return
        try:
            self._wrapped.on_end(out)
        except Exception as exc:  # noqa: BLE001 - never raise into the app; logged and counted
            self._failed("wrapped on_end", exc, downstream=True)

    def _redact_only(self, span: ReadableSpan) -> ReadableSpan | None:
        """Fallback after a failure: never let content escape; drop the span if even this fails."""
        try:
            attrs = _dict_of(span.attributes)
            changed, events = self._redact(span, attrs)
            return _EnrichedSpan(span, attrs, events) if changed else span
        except Exception as exc:  # noqa: BLE001 - never raise into the app; logged and counted
            self._failed("redaction fallback (span dropped)", exc)
            return None

    def _enrich(self, span: ReadableSpan) -> ReadableSpan:
        ctx = span.context
        if ctx is None:
            return span
        attrs = _dict_of(span.attributes)  # our copy: redacted, read, then extended in place
        changed, events = self._redact(span, attrs)  # first: tokenbook's own keys are never content
        parent = span.parent
        has_usage = has_usage_attributes(attrs)
        budgets = self._span_budgets.pop((ctx.trace_id, ctx.span_id), None) if self._span_budgets else None
        is_root = parent is None or parent.is_remote
        workflow = self._workflows.pop(ctx.trace_id, None) if is_root else self._workflows.get(ctx.trace_id)
        had_descendant = self._tracker.span_ended(
            ctx.trace_id, ctx.span_id, None if is_root or parent is None else parent.span_id, has_usage
        )
        kind = call_kind(span.name, attrs)
        if kind == KIND_OTHER and not has_usage:
            return _EnrichedSpan(span, attrs, events) if changed else span
        if has_usage:
            self._price(span, attrs, kind, had_descendant, budgets, workflow)
        attrs[_TB.CALL_KIND] = kind
        return _EnrichedSpan(span, attrs, events)

    def _price(
        self,
        span: ReadableSpan,
        attrs: dict[str, object],
        kind: str,
        had_descendant: bool,
        budgets: tuple[Budget, ...] | None,
        workflow: tuple[str, int] | None,
    ) -> None:
        """Read usage, decide billing, price and charge budgets; writes the results into `attrs`."""
        provider = first_text(attrs, semconv.PROVIDER)
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
            return
        quote = self.catalog.quote(
            provider, first_text(attrs, semconv.MODEL), usage, span.start_time, cache_hit=is_cache_hit(attrs)
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

    def _redact(self, span: ReadableSpan, attrs: dict[str, object]) -> tuple[bool, Sequence[Event]]:
        """Redact `attrs` in place and the span's events: (whether anything changed, the events to keep)."""
        tenant = attrs.get(_TENANT)
        tenant_id = tenant if isinstance(tenant, str) else ""
        changed = self._redactor.apply(attrs, tenant_id)
        events = span.events
        if events and (redacted := self._redact_events(events, tenant_id)) is not None:
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
