"""Decoded spans -> ledger rows: normalize, classify, price, attribute (processor code throughout).

Rules, per span (`RowBuilder.build`):

* Usage is read with `genai.usage.read_usage`; unreadable values (``"abc"``, NaN, negative) are
  recorded in ``usage_issue`` and the call is still written: one bad attribute never drops a span.
* The kind and the billing rule are `processor.calls`: a ``model`` span is a row of ``llm_calls``
  (billed when it carries usage; without usage, e.g. a failed attempt, it is written with
  ``price_status = not_billable`` and NULL costs); a ``wrapper``/``other`` span with usage is billed
  only when no descendant in the same trace carried usage (`DescendantTracker`), otherwise it is a
  ``wrapper`` step. Spans of a batch are processed in end-time order so children precede parents.
* ``tool`` spans become ``tool`` steps and unbilled wrappers ``wrapper`` steps. A ``tokenbook.outcome``
  attribute or event is stored in the step's ``outcome``; a span that is no step of its own (a model
  call, or any other span) gives an ``outcome`` step. One span is at most one step (steps share the
  span's dedup key).
* Calls are priced by `genai.pricing.catalog.PriceCatalog` at the span's start time (or a
  `pricing.LazyCatalog`, which builds one at the first price). A client-sent
  ``tokenbook.cost.total`` (or openlit's float ``gen_ai.usage.cost``) is kept in ``client_cost`` and
  never billed.
* ``attempt`` is the first integer of `semconv.RESEND_COUNTS` (``http.request.resend_count``, ...),
  0 when absent.
* The context ID is `processor.attribution.context_id_of`; attribution columns follow
  `ATTRIBUTION_COLUMNS`; `attribution.extra_keys` and ``tokenbook.tag.*`` attributes land in ``tags``,
  and so does ``tokenbook.reservation.id`` (under that name: the budgets settle the reservation by it).
  The workflow is ``tokenbook.workflow.name``/``.id`` when the app set them, else the trace's root span
  when it is in the same request.
* Bounds checked before the acknowledgement (`SpanBounds`, from ``limits.*``): a span starting more than
  ``limits.max_span_age`` before now (0: no bound, for backfills) or more than ``limits.max_span_future``
  after now, a call with a token count above ``limits.max_tokens_per_call``, or a call whose cost does
  not fit ``Decimal(18, 12)`` (|cost| < 10^6, possible with a price override) is rejected: counted in
  the batch's ``rejected`` with the first reason (OTLP ``partial_success``); its siblings are kept.
* Prompt composition (`genai.composition`, ``prompt_*_tokens``): the parts the app measured
  (``tokenbook.prompt.*``) are kept; otherwise a model call that arrives with content has its input
  measured here, with the model's tokenizer when one is installed offline, else estimated by share.
  So the content keys that `composition.measure` reads are decoded in every mode (bounded by the
  request size and `composition.MAX_CONTENT_CHARS`), for that measurement only.
* ``context_window`` is the model's window from the genai-prices catalog and ``context_saturation``
  the call's input tokens over it; both NULL (never 0) when the window is unknown.
* Latency (`genai.latency`): ``time_to_first_token_ms`` from the span's time-to-first-token attribute
  or its first first-token event, and ``output_tokens_per_second`` (the decode rate of a streamed
  answer); both NULL (never 0) when unknown.
* ``policy_path`` is the value of the policy-path attribute (``attribution.policy_path_key``, default
  ``tokenbook.policy.path``): which guard or route the call went through; "" when absent.
* The service tier (`genai.pricing.tiers.read_service_tier`) is recorded in ``service_tier`` and
  prices the call (a tier without a known price leaves it unpriced, with the reason); the one-hour part
  of its cache writes, when the span splits them, in ``cache_write_1h_tokens`` / ``_cost``.
* The tenant's price book (`genai.pricing.books.PriceBooks`, ``pricing.books``) gives the billed costs
  (``billed_*_cost``), with the book and entry that decided them; a billed cost that does not fit
  ``Decimal(18, 12)`` rejects the span like a list cost that does not.
* Content attributes are never stored in ``drop`` mode (the default): decoded for the measurement
  above, then dropped with the span's record; in ``keep``/``hash`` mode they go to ``tags`` through
  `processor.redaction.Redactor` (hash: salted SHA-256).
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

from tokenbook.collector.decode.content import MEASURED_SIZES
from tokenbook.collector.decode.spans import KeyFilter, SpanRecord
from tokenbook.collector.ingest.pricing import LazyCatalog
from tokenbook.collector.storage.ledger import CallRow, StepRow
from tokenbook.genai import semconv
from tokenbook.genai.attribution import ATTRIBUTION_COLUMNS, context_id_of
from tokenbook.genai.billing import (
    COST_QUANTUM,
    NO_COSTS,
    STATUS_DUPLICATE_LAYER,
    STATUS_NOT_BILLABLE,
    STATUS_UNPRICED,
    STATUS_WRAPPER,
    UNBILLED_STATUSES,
    Costs,
    Picos,
    money,
)
from tokenbook.genai.calls import (
    KIND_FETCH,
    KIND_MODEL,
    KIND_OTHER,
    KIND_TOOL,
    KIND_WRAPPER,
    USAGE_KEYS,
    DescendantTracker,
    call_kind,
    first_text,
    has_usage_attributes,
    is_billable,
    is_cache_hit,
    span_model,
    span_provider,
)
from tokenbook.genai.composition import (
    ATTRIBUTES as PROMPT_ATTRIBUTES,
)
from tokenbook.genai.composition import (
    ESTIMATED as PROMPT_ESTIMATED,
)
from tokenbook.genai.composition import (
    MEASURED_KEYS,
    MEASURED_PREFIXES,
    Composition,
    Sizes,
    apportion,
    compose,
    offline_counter,
    read_composition,
)
from tokenbook.genai.decisions import RULE_DESCENDANT
from tokenbook.genai.latency import read_latency
from tokenbook.genai.pricing.books import Billing, PriceBooks
from tokenbook.genai.pricing.tiers import read_service_tier
from tokenbook.genai.profiles import STREAM_REQUEST_KEYS, is_stream_request, profile_of
from tokenbook.genai.records import build
from tokenbook.genai.redaction import Redactor, is_content_attribute
from tokenbook.genai.usage import read_usage

if TYPE_CHECKING:  # a builder may be given a `LazyCatalog`, which imports it on first use
    from tokenbook.genai.pricing.catalog import PriceCatalog

__all__ = ["RowBatch", "RowBuilder", "SpanBounds", "pipeline_keys"]

_CLIENT_COST_LIMIT: Final = Decimal(10) ** 6  # Decimal(18,12) holds |x| < 10^6
_COST_LIMIT_PICOS: Final = 10**18  # Decimal(18,12) holds |x| < 10^6, in pico-units
_TAG_PREFIX: Final = semconv.TB.TAG_PREFIX
_CALL_ATTRIBUTION_ORDER: Final = ("tenant.id", "user.id", "project.id", "team.id", "app.feature")
_TENANT: Final = "tenant.id"
_END_NS: Final = operator.attrgetter("end_ns")
_MAX_MEMO: Final = 10_000
#: Read by `RowBuilder._call` in one pass: workflow name/id, error type, then attribution after tenant.
_CALL_TEXT_KEYS: Final = (
    semconv.TB.WORKFLOW_NAME,
    semconv.TB.WORKFLOW_ID,
    semconv.ERROR_TYPE,
    *_CALL_ATTRIBUTION_ORDER[1:],
)

assert tuple(ATTRIBUTION_COLUMNS[k] for k in _CALL_ATTRIBUTION_ORDER) == CallRow._fields[7:12]
_USER_ALIASES: Final = semconv.ATTRIBUTION_ALIASES["user.id"]
_PROJECT_ALIASES: Final = semconv.ATTRIBUTION_ALIASES["project.id"]
_TEAM_ALIASES: Final = semconv.ATTRIBUTION_ALIASES["team.id"]


def _stream_request(r: SpanRecord) -> bool:
    """Whether the span is a stream's request span, which records no call (`profiles.is_stream_request`)."""
    return is_stream_request(profile_of(r.scope_name, r.scope_version), r.attrs)


def pipeline_keys(
    extra_keys: Sequence[str], content: str, policy_key: str = semconv.TB.POLICY_PATH
) -> KeyFilter:
    """The attribute keys the pipeline reads (decode nothing else)."""
    names = set(USAGE_KEYS)
    names.update(semconv.PROVIDER, semconv.MODEL, semconv.CLIENT_COST, semconv.RESEND_COUNTS)
    names.update((semconv.SERVER_ADDRESS, semconv.SERVER_PORT, semconv.SERVER_URL))
    names.update(semconv.TIME_TO_FIRST_TOKEN, semconv.STREAM_FLAGS, (policy_key,))
    names.update(semconv.SERVICE_TIER, semconv.CACHE_WRITE_1H_TOKENS, semconv.CACHE_WRITE_5M_TOKENS)
    names.update(semconv.TOTAL_TOKENS)
    names.update(semconv.CONTEXT_ID_SOURCES, ATTRIBUTION_COLUMNS, semconv.CACHE_HIT_FLAGS)
    names.update(key for aliases in semconv.ATTRIBUTION_ALIASES.values() for key in aliases)
    names.update(k for k in extra_keys if not is_content_attribute(k))  # content: `content` decides
    names.update(
        (
            semconv.TB.RESERVATION_ID,
            *semconv.KIND_SIGNALS,
            semconv.RESPONSE_ID,
            semconv.INPUT_EXCLUSIVE,
            semconv.ERROR_TYPE,
            semconv.TB.OUTCOME,
            semconv.TB.WORKFLOW_NAME,
            semconv.TB.WORKFLOW_ID,
            PROMPT_ESTIMATED,
        )
    )
    names.update(PROMPT_ATTRIBUTES.values())
    names.update(STREAM_REQUEST_KEYS)
    names.update(MEASURED_KEYS)  # content, decoded to measure the prompt's composition
    prefixes: tuple[str, ...] = (_TAG_PREFIX, *MEASURED_PREFIXES)
    if content != "drop":
        names.update(semconv.CONTENT_ATTRIBUTES)
        prefixes += semconv.CONTENT_PREFIXES
        return KeyFilter(frozenset(names), prefixes)
    # Under drop, content is decoded only to be measured: an unreadable value is left out, and never
    # costs its span (it would not have been stored anyway).
    return KeyFilter(
        frozenset(names), prefixes, measure_only=MEASURED_KEYS, measure_only_prefixes=MEASURED_PREFIXES
    )


@dataclass(frozen=True, slots=True)
class RowBatch:
    """What `RowBuilder.build` made of a request's records: the call and step rows, and the counts the
    receiver reports and the metrics add."""

    calls: list[CallRow]
    steps: list[StepRow]
    billed: int  # calls with a price (priced or cache_hit)
    unpriced: int
    unbilled: int = 0  # candidates another span bills (duplicate_layer / wrapper), as far as known now
    rejected: int = 0  # spans out of `SpanBounds`
    reason: str = ""  # why the first one was rejected
    rejected_keys: tuple[bytes, ...] = ()  # their trace_id + span_id (not remembered as delivered)


@dataclass(frozen=True, slots=True)
class SpanBounds:
    """What a span must satisfy to be acknowledged (``limits.*``); see the module docstring."""

    max_tokens_per_call: int = 100_000_000
    max_span_age: float = 30 * 86400.0  # seconds before now; 0: no bound (backfill)
    max_span_future: float = 3600.0  # seconds after now

    def time_violation(self, start_ns: int, now_ns: int) -> str:
        """Why a span starting at `start_ns` is out of the window around `now_ns`, or ""."""
        if start_ns - now_ns > self.max_span_future * 1e9:
            return (
                f"span starts {(start_ns - now_ns) / 1e9:.0f} s in the future "
                f"(limits.max_span_future={self.max_span_future:g}s)"
            )
        if self.max_span_age and now_ns - start_ns > self.max_span_age * 1e9:
            return (
                f"span starts {(now_ns - start_ns) / 86400e9:.1f} days ago (limits.max_span_age="
                f"{self.max_span_age:g}s; 0 or `tokenbook collector --backfill` accepts older spans)"
            )
        return ""


NO_BOUNDS: Final = SpanBounds(max_tokens_per_call=2**63 - 1, max_span_age=0.0, max_span_future=float("inf"))


class _Rejected(Exception):
    pass


def _first(attrs: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for k in keys:
        v = attrs.get(k)
        if v is not None and v != "":
            return v
    return None


def _texts(get: Callable[[str, str], Any], keys: Sequence[str]) -> list[str]:
    """`_text` of several keys, given `attrs.get`."""
    out = []
    for k in keys:
        v = get(k, "")
        out.append(v if v.__class__ is str else _str(v))
    return out


def _parse_client_cost(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    if not d.is_finite() or abs(d) >= _CLIENT_COST_LIMIT:
        return None
    return d.quantize(COST_QUANTUM)


_client_costs: dict[tuple[type, Any], Decimal | None] = {}


def _client_cost(value: Any) -> Decimal | None:
    """`value` as Decimal(18,12), or None when unreadable; memoized (clients repeat a few values)."""
    key = (value.__class__, value)  # 1, 1.0 and True are equal keys otherwise
    try:
        return _client_costs[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable value (cannot come from the decoder; kept for safety)
        return _parse_client_cost(value)
    found = _parse_client_cost(value)
    if len(_client_costs) >= _MAX_MEMO:
        _client_costs.clear()
    _client_costs[key] = found
    return found


def _attempt(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    return value if isinstance(value, int) and 0 <= value < 2**31 else 0


def _str(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _text(attrs: Mapping[str, Any], key: str) -> str:
    """`attrs[key]` as a string ("" when absent): the hot path of every row."""
    value = attrs.get(key, "")
    return value if value.__class__ is str else _str(value)


def _ancestors(parents: Mapping[tuple[bytes, bytes], bytes], trace_id: bytes, parent: bytes) -> str:
    """Span IDs (hex) of the ancestors of a span found among the request's spans, nearest first,
    space-separated."""
    out: list[str] = []
    while parent and len(out) < 64:
        out.append(parent.hex())
        parent = parents.get((trace_id, parent), b"")
    return " ".join(out)


_NO_PROMPT: Final = (None,) * (len(PROMPT_ATTRIBUTES) + 1)
_PROMPT_KEYS: Final = frozenset(PROMPT_ATTRIBUTES.values())


def _composition(attrs: Mapping[str, Any], input_tokens: int, model: str, plain: bool) -> Composition | None:
    """The composition the app measured, else the one measured here from content, else None. `plain`:
    every key of `attrs` is a plain name of the key filter (so none is content or measured)."""
    if input_tokens <= 0:
        return None
    if not _PROMPT_KEYS.isdisjoint(attrs):
        return read_composition(attrs, input_tokens)
    if plain:
        return None
    measured = attrs.get(MEASURED_SIZES)
    if measured is not None:  # measured before the record was logged (`decode.content`)
        return apportion(Sizes(*measured), input_tokens)
    if MEASURED_KEYS.isdisjoint(attrs) and not any(k.startswith(MEASURED_PREFIXES) for k in attrs):
        return None
    try:
        return compose(attrs, input_tokens, offline_counter(model))
    except Exception:  # noqa: BLE001 - a composition is never worth losing the call's row
        return None


def _check_fits(picos: Picos, currency: str) -> None:
    """Reject a call whose cost does not fit the ledger's ``Decimal(18, 12)``."""
    if max(picos) >= _COST_LIMIT_PICOS or min(picos) <= -_COST_LIMIT_PICOS:
        raise _Rejected(
            f"a cost of {money(max(picos, key=abs))} {currency} does not fit Decimal(18, 12) (the ledger "
            "holds less than 10^6 per call)"
        )


def _billed(bill: Billing, currency: str) -> Costs:
    """The billed costs of a priced call (checked to fit the ledger)."""
    assert bill.picos is not None
    _check_fits(bill.picos, currency)
    return bill.picos.costs()


def _one_hour(listed: int | None, billed: int | None) -> tuple[Decimal | None, Decimal | None]:
    """The one-hour parts of the cache-write costs, list and billed (None: not split)."""
    return (None if listed is None else money(listed), None if billed is None else money(billed))


class RowBuilder:
    """Turns `SpanRecord`s into `CallRow`/`StepRow`s. Thread-safe (the tracker, catalog and books are)."""

    def __init__(
        self,
        catalog: PriceCatalog | LazyCatalog,
        *,
        extra_keys: Sequence[str] = (),
        content: str = "drop",
        salt: str = "",
        tracker: DescendantTracker | None = None,
        bounds: SpanBounds = NO_BOUNDS,
        policy_key: str = semconv.TB.POLICY_PATH,
        books: PriceBooks | None = None,
    ) -> None:
        """`bounds`: spans outside them are rejected (the collector passes its ``limits.*``);
        `policy_key`: the attribute whose value is the call's ``policy_path``; `books`: the tenants'
        price books (``pricing.books``; none: every call billed at its list price)."""
        self.catalog = catalog
        self.books = books or PriceBooks()
        self.bounds = bounds
        self.policy_key = policy_key
        # Content is governed by `content` alone: a content key is never copied as a plain tag.
        kept = (*extra_keys, semconv.TB.RESERVATION_ID)  # the reservation ID is always kept as a tag
        self.extra_keys = tuple(dict.fromkeys(k for k in kept if not is_content_attribute(k)))
        self.redactor = Redactor(content, salt=salt) if content != "drop" else None
        self.tracker = tracker or DescendantTracker()
        # Attribute names that are neither tags nor content: a span with no other key skips `_tags`'
        # prefix scan (keys outside this set can only have come through a prefix or be content).
        self._exact_keys = frozenset(
            k
            for k in pipeline_keys(self.extra_keys, "drop", policy_key).names
            if not k.startswith(_TAG_PREFIX) and not is_content_attribute(k)
        )

    def build(self, records: Sequence[SpanRecord]) -> RowBatch:
        """Rows for `records` (which may be in any order). Never raises on span content."""
        now_ns = time.time_ns()
        now = datetime.fromtimestamp(now_ns / 1e9, tz=UTC)
        version = now_ns // 1000
        bounds = self.bounds
        rejected: list[bytes] = []
        reason = ""
        ordered = sorted(records, key=_END_NS)
        roots = {r.trace_id: r for r in ordered if not r.parent_span_id}
        calls: list[CallRow] = []
        steps: list[StepRow] = []
        billed = unpriced = unbilled = 0
        tracker = self.tracker
        parents = {(r.trace_id, r.span_id): r.parent_span_id for r in records}
        for r in ordered:
            attrs = r.attrs
            kind = call_kind(r.name, attrs)
            has_usage = has_usage_attributes(attrs)
            if kind == KIND_MODEL and not has_usage and not r.error and _stream_request(r):
                kind = KIND_WRAPPER  # another span records the call (`profiles.Profile.stream_request`)
            below = tracker.span_ended(r.trace_id, r.span_id, r.parent_span_id or None, has_usage)
            billable = is_billable(kind, has_usage, below)
            # Every span with usage is a candidate row (the decision pass settles which one bills).
            candidate = has_usage and kind != KIND_TOOL
            if kind == KIND_OTHER and not candidate and not r.outcome:
                continue
            why = bounds.time_violation(r.start_ns, now_ns)
            if why:
                rejected.append(r.trace_id + r.span_id)
                reason = reason or why
                continue
            trace_hex = r.trace_id.hex()
            span_hex = r.span_id.hex()
            parent_hex = r.parent_span_id.hex()
            context_id = context_id_of(attrs, trace_hex)
            tenant = _text(attrs, _TENANT)
            start = datetime.fromtimestamp(r.start_ns / 1e9, tz=UTC)
            duration_ms = max(r.end_ns - r.start_ns, 0) / 1e6
            status = "error" if r.error else "ok"
            operation = _text(attrs, semconv.OPERATION)
            if candidate or kind in (KIND_MODEL, KIND_FETCH):
                ids = (trace_hex, span_hex, parent_hex, context_id)
                tail = (duration_ms, now, version)
                ancestors = _ancestors(parents, r.trace_id, r.parent_span_id) if r.parent_span_id else ""
                try:
                    call = self._call(
                        r,
                        attrs,
                        (kind, billable, below),
                        start,
                        ids,
                        roots,
                        tail,
                        tenant,
                        operation,
                        ancestors,
                    )
                except _Rejected as exc:
                    rejected.append(r.trace_id + r.span_id)
                    reason = reason or str(exc)
                    continue
                calls.append(call)
                if call.price_status == STATUS_UNPRICED:
                    unpriced += 1
                elif call.price_status in UNBILLED_STATUSES:
                    unbilled += 1
                elif call.price_status != STATUS_NOT_BILLABLE:
                    billed += 1
                step_kind = "outcome" if r.outcome else ""
            else:
                step_kind = "tool" if kind == KIND_TOOL else "wrapper" if kind != KIND_OTHER else "outcome"
            if step_kind:
                steps.append(
                    build(StepRow, (
                        start, trace_hex, span_hex, parent_hex, context_id, tenant, step_kind, r.name,
                        operation, status, duration_ms, r.outcome, now, version,
                    ))
                )  # fmt: skip
        return RowBatch(calls, steps, billed, unpriced, unbilled, len(rejected), reason, tuple(rejected))

    def _call(
        self,
        r: SpanRecord,
        attrs: Mapping[str, Any],
        decision: tuple[str, bool, bool],
        start: datetime,
        ids: tuple[str, str, str, str],
        roots: Mapping[bytes, SpanRecord],
        tail: tuple[float, datetime, int],
        tenant: str,
        operation: str,
        ancestors: str,
    ) -> CallRow:
        """`decision` = (kind, billable, a descendant carried usage); `ids` = (trace, span, parent,
        context); `tail` = (duration_ms, ingested_at, version); `ancestors`: the ``ancestors`` column."""
        kind, billable, below = decision
        get = attrs.get
        plain = self._exact_keys.issuperset(attrs)  # no tag, content or measured key
        provider = span_provider(attrs)
        model = span_model(attrs)
        profile = profile_of(r.scope_name, r.scope_version).for_call(r.name, model)
        usage = read_usage(attrs, provider, profile)
        limit = self.bounds.max_tokens_per_call
        if (most := max(usage[:5])) > limit:
            raise _Rejected(f"a token count of {most} (limits.max_tokens_per_call={limit})")
        costs = billed = NO_COSTS
        one_hour: tuple[Decimal | None, Decimal | None] = (None, None)  # list and billed
        book = entry = rule = ""
        tier = read_service_tier(attrs)
        if usage.present and kind != KIND_FETCH:
            quote = self.catalog.quote(
                provider, model, usage, r.start_ns, cache_hit=is_cache_hit(attrs), tier=tier
            )
            currency, quote_status, price_source = quote.currency, quote.status, quote.source
            if quote.picos is not None:
                _check_fits(quote.picos, currency)
                costs = billed = quote.picos.costs()
                one_hour = _one_hour(quote.cache_write_1h, quote.cache_write_1h)
                if self.books:
                    bill = self.books.bill(tenant, provider, model, tier, start, usage, quote)
                    if bill.book:
                        billed, book, entry = _billed(bill, currency), bill.book, bill.entry
                        one_hour = _one_hour(quote.cache_write_1h, bill.cache_write_1h)
            price_status = quote_status
            if not billable and below:  # provisional; the decision pass settles it
                price_status = STATUS_DUPLICATE_LAYER if kind == KIND_MODEL else STATUS_WRAPPER
                rule = RULE_DESCENDANT
        elif kind == KIND_FETCH:
            currency, quote_status, price_source = (
                "USD",
                STATUS_NOT_BILLABLE,
                f"{operation}: not a model call",
            )
            price_status = quote_status
        else:
            currency, quote_status, price_source = "USD", STATUS_NOT_BILLABLE, "no usage on the span"
            price_status = quote_status
        wf_name, wf_id, error_type, user, project, team, feature = _texts(get, _CALL_TEXT_KEYS)
        if not (user and project and team):  # other SDKs' and gateways' attribution
            user = user or first_text(attrs, _USER_ALIASES)
            project = project or first_text(attrs, _PROJECT_ALIASES)
            team = team or first_text(attrs, _TEAM_ALIASES)
        if not wf_id:
            root = roots.get(r.trace_id)
            if root is not None:
                wf_name, wf_id = root.name, root.span_id.hex()
        client_cost = _first(attrs, semconv.CLIENT_COST)
        attempt = _first(attrs, semconv.RESEND_COUNTS)
        prompt = _composition(attrs, usage.input_tokens, model, plain) if kind == KIND_MODEL else None
        window = self.catalog.context_window(provider, model) if kind == KIND_MODEL else None
        latency = read_latency(attrs, r.start_ns, r.end_ns, r.first_token_ns, usage.output_tokens)
        return build(CallRow, (
            start, *ids, wf_name, wf_id,
            tenant, user, project, team, feature, r.service_name, self._tags(attrs, tenant, plain),
            provider, model, operation,
            usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
            usage.reasoning_tokens, *costs, currency, price_status, price_source,
            None if client_cost is None else _client_cost(client_cost),
            usage.issue_text,
            0 if attempt is None else _attempt(attempt), "error" if r.error else "ok",
            error_type, *tail,
            _text(attrs, semconv.RESPONSE_ID), r.scope_name, r.scope_version,
            r.service_instance or r.service_name, kind, profile.name, quote_status, rule, "", ancestors,
            *(_NO_PROMPT if prompt is None else (*prompt.tokens, prompt.estimated)),
            window, None if window is None else round(usage.input_tokens / window, 6),
            *latency, _text(attrs, self.policy_key),
            tier, usage.cache_write_1h_tokens, one_hour[0], *billed[:4], one_hour[1], billed.total,
            book, entry,
        ))  # fmt: skip

    def _tags(self, attrs: Mapping[str, Any], tenant: str, plain: bool) -> dict[str, str]:
        """The ``tags`` column; `plain`: every key of `attrs` is among the filter's exact names."""
        tags: dict[str, str] = {}
        for k in self.extra_keys:
            v = attrs.get(k)
            if v is not None:
                tags[k] = _str(v)
        # Only keys kept by a prefix of the filter (tags, content) are outside its exact names.
        if plain:
            return tags
        prefixed = attrs.keys() - self._exact_keys
        for k, v in attrs.items():
            if k in prefixed and k.startswith(_TAG_PREFIX):
                tags[k[len(_TAG_PREFIX) :]] = _str(v)
        if self.redactor is not None:
            content = {k: v for k, v in attrs.items() if is_content_attribute(k)}
            if content:
                redacted = self.redactor.redact(content, tenant) or content
                tags.update((k, _str(v)) for k, v in redacted.items())
        return tags
