"""Which span bills a model call: a pure function of the recorded facts (docs/reference/billing-rule.md).

A call may be recorded by several spans: an instrumentor's span over the provider SDK's own, a
framework's span beside a client library's, two libraries in separate traces. Every span with usage
is a *candidate*; `decide` settles, for a set of related candidates, which one bills each call:

1. **Descendant** (`RULE_DESCENDANT`): a candidate with a descendant candidate (same trace) is not
   billed: the descendant is closer to the wire. A wrapper's status is ``wrapper``, a model span's
   ``duplicate_layer``. So a wrapper is billed only when nothing below it carries usage. Except a
   model span over a descendant that records the same call (another scope, the same input tokens,
   output within ±1, within its interval) with fewer cache tokens (read + write) than it reports:
   that descendant lost the cache counts (the mistralai 1 SDK's own span under an instrumentor's), so
   both stay candidates of the call, for rules 2 and 3.
2. The remaining candidates (*leaves*) are grouped into calls; two leaves are one call when
   * **same response ID** (`RULE_RESPONSE_ID`): same tenant and the same ``gen_ai.response.id``; or
   * **cross-layer match** (`RULE_CROSS_LAYER`): same tenant, same service instance
     (``service.instance.id``, else the service name), different instrumentation scopes, same model
     family (`model_family`; a span whose model prices nothing, quoted ``unpriced``, matches any: an
     Azure deployment name, which one layer may report where another reports the deployed model),
     the same input tokens, output tokens within ±1 (OpenLLMetry's Anthropic streams count one too
     many), and one span's interval contains the other's (1 ms tolerance).
   Groups are the connected components of these relations, so the grouping does not depend on order.
3. In each group the leaf with the lowest (unpriced, fewest cache tokens, profile rank, non-model kind,
   trace ID, span ID) bills: a priced span before an unpriced one, then the one with the most cache
   tokens (read + write: a layer that reports fewer than another of the same call dropped some), then
   by profile rank; the others are ``duplicate_layer``. Profile rank (`profiles.Profile.rank`): the
   provider SDK's own span, then an official instrumentor, then client-library instrumentors, then
   frameworks.
4. A model span without usage (``not_billable``: a layer that did not record the usage, or a failed
   attempt) is a call of its own unless it is a layer of a call recorded with usage; then it is
   ``duplicate_layer``, and counts as no call:
   * it has a candidate among its descendants (same trace: `RULE_DESCENDANT`), e.g. a framework's
     span over the client library's;
   * it lies below a model span that is a leaf of rule 2, in the same trace (`RULE_WITHIN_CALL`):
     a layer under the span of the call, or a span per streamed chunk; or
   * it has the response ID of a leaf (`RULE_RESPONSE_ID`); or
   * it is a *lone* layer (`RULE_CROSS_LAYER`): the root of its trace (the context was not carried
     into it: a LangChain.js stream's OpenAI span, OpenLLMetry's Mistral span beside the SDK's own),
     not failed, whose model family is that of a model leaf of the same tenant and service instance,
     from another scope, whose interval contains its own or lies within it (1 ms slack); of several,
     the nearest (the smallest sum of the differences of the starts and of the ends), then by trace
     and span ID.
   A failed attempt beside the successful one (siblings under a framework's span) is none of these,
   and stays a call.

The result depends only on the set of candidates and the parent links, never on the order they
arrived in, so recomputing it after any batch converges to the same bills. Pure; thread-safe.
"""

from __future__ import annotations

import functools
import itertools
import re
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, NamedTuple

from tokenbook.genai.billing import STATUS_DUPLICATE_LAYER, STATUS_UNPRICED, STATUS_WRAPPER
from tokenbook.genai.calls import KIND_FETCH, KIND_MODEL
from tokenbook.genai.pricing.providers import BEDROCK_VENDORS

__all__ = [
    "CONTAINMENT_TOLERANCE_US",
    "RULES",
    "RULE_CROSS_LAYER",
    "RULE_DESCENDANT",
    "RULE_RESPONSE_ID",
    "RULE_WITHIN_CALL",
    "Candidate",
    "Decision",
    "decide",
    "is_lone_layer",
    "match_key",
    "model_family",
]

RULE_DESCENDANT: Final = "descendant_has_usage"
RULE_RESPONSE_ID: Final = "same_response_id"
RULE_CROSS_LAYER: Final = "cross_layer_match"
RULE_WITHIN_CALL: Final = "within_billed_call"
#: Rule -> how `tokenbook explain` and the docs word it.
RULES: Final = {
    "": "billed: no other span of this call is closer to the wire",
    RULE_DESCENDANT: "not billed: a descendant span in the same trace carries the usage",
    RULE_RESPONSE_ID: "not billed: another span has the same gen_ai.response.id and bills the call",
    RULE_CROSS_LAYER: (
        "not billed: another layer recorded the same call (same process, model and time; the same tokens, "
        "or none on this span)"
    ),
    RULE_WITHIN_CALL: "not billed: a span without usage inside the span of the call that carries it",
}
#: Slack allowed when testing that one span's interval contains another's (clock rounding).
CONTAINMENT_TOLERANCE_US: Final = 1_000
_MAX_DEPTH: Final = 256
_DATE_SUFFIX: Final = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-latest)$")
#: A Bedrock model ID's parts around the model's own name: an ARN's resource path, a cross-region
#: inference profile's region, the vendor (`providers.BEDROCK_VENDORS`), and the version (``-v1:0``).
_BEDROCK_ID: Final = re.compile(
    r"(?:arn:aws[a-z-]*:bedrock:[a-z0-9-]*:\d*:[a-z-]+/)?"
    r"(?:(?:us|us-gov|eu|apac|jp|au|ca|in|global)\.)?"
    rf"(?:(?:{'|'.join(BEDROCK_VENDORS)})\.)?"
    r"(?P<model>[a-z0-9][a-z0-9.\-]*?)-v\d+:\d+"
)
_Key = tuple[str, str, str]  # (tenant, trace ID, span ID)


class Candidate(NamedTuple):
    """The facts of one recorded span that the decision reads."""

    tenant: str
    trace_id: str
    span_id: str
    parent_span_id: str
    ancestors: tuple[str, ...]  # ancestors seen in the span's own request, nearest first
    kind: str
    rank: int  # profile rank of the span's scope (lower is closer to the wire)
    scope_name: str
    service_instance: str
    model: str
    response_id: str
    input_tokens: int
    output_tokens: int
    start_us: int
    end_us: int
    quote_status: str  # the price status as quoted (what a billed row shows)
    has_usage: bool
    cache_tokens: int = 0  # cache read + cache write tokens the span reports
    failed: bool = False  # the span's status is an error


class Decision(NamedTuple):
    """How one candidate is billed: its status, the rule that un-bills it, and the span that bills it."""

    price_status: str
    billing_rule: str  # "" when billed
    billed_by: str  # span ID of the span that bills the call; "" when this one does


@functools.lru_cache(maxsize=4096)
def model_family(model: str) -> str:
    """The model without provider prefix and date or ``-latest`` suffix, lowercased:
    ``openai/gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``; a Bedrock model ID (or ARN) without its region,
    vendor and version as well, the name by which another layer of the same call may report it (the
    answer's model, or the ID without region and vendor): ``us.anthropic.claude-sonnet-4-5-20250929-v1:0``
    -> ``claude-sonnet-4-5``. Memoized: the cross-layer match compares it for every pair of a bucket's
    calls whose intervals meet."""
    name = model.strip().lower()
    if bedrock := _BEDROCK_ID.fullmatch(name):
        name = bedrock["model"]
    return _DATE_SUFFIX.sub("", name.rsplit("/", 1)[-1])


def match_key(c: Candidate) -> tuple[str, str, int]:
    """The bucket of the cross-layer match: (tenant, service instance, input tokens); the model family
    is compared within it (`_same_call`), where an unpriced span's model matches any."""
    return c.tenant, c.service_instance, c.input_tokens


def _participates(c: Candidate) -> bool:
    return c.has_usage and c.kind != KIND_FETCH


def _silent(c: Candidate) -> bool:
    """A model span without usage (the module's rule 4)."""
    return not c.has_usage and c.kind == KIND_MODEL


def _contains(a: Candidate, b: Candidate) -> bool:
    tol = CONTAINMENT_TOLERANCE_US
    return a.start_us - tol <= b.start_us and b.end_us <= a.end_us + tol


def _same_model(a: Candidate, b: Candidate) -> bool:
    """Same model family, or one span's model prices nothing (a deployment name, an alias): then the
    model tells nothing, and the other facts decide."""
    return (
        a.quote_status == STATUS_UNPRICED
        or b.quote_status == STATUS_UNPRICED
        or model_family(a.model) == model_family(b.model)
    )


def _same_call(a: Candidate, b: Candidate) -> bool:
    return (
        a.scope_name != b.scope_name
        and abs(a.output_tokens - b.output_tokens) <= 1
        and _same_model(a, b)
        and (_contains(a, b) or _contains(b, a))
    )


def _lost_cache(below: Candidate, above: Candidate) -> bool:
    """Whether `below`, a descendant of the model span `above`, records the same call with fewer cache
    tokens than `above` reports (it lost them): then it does not un-bill `above` (the module's rule 1)."""
    return (
        above.kind == KIND_MODEL
        and below.cache_tokens < above.cache_tokens
        and below.input_tokens == above.input_tokens
        and _same_call(above, below)
    )


def _order(c: Candidate) -> tuple[bool, int, int, int, str, str]:
    unpriced = c.quote_status == STATUS_UNPRICED
    return unpriced, -c.cache_tokens, c.rank, 0 if c.kind == KIND_MODEL else 1, c.trace_id, c.span_id


def _ancestry(c: Candidate, parents: Mapping[_Key, str], by_key: Mapping[_Key, Candidate]) -> set[str]:
    """Every known ancestor span ID of `c` in its trace."""
    seen: set[str] = set()
    todo = [c.parent_span_id, *c.ancestors]
    while todo and len(seen) < _MAX_DEPTH:
        span = todo.pop()
        if not span or span in seen:
            continue
        seen.add(span)
        key = (c.tenant, c.trace_id, span)
        if (parent := parents.get(key)) is not None:
            todo.append(parent)
        if (known := by_key.get(key)) is not None:
            todo.append(known.parent_span_id)
            todo.extend(known.ancestors)
    return seen


def _overlapping_pairs(
    bucket: Sequence[_Key], active: Mapping[_Key, Candidate]
) -> Iterable[tuple[_Key, _Key]]:
    """The pairs of a match bucket that may be one call: different scopes, intervals that meet.

    One span's interval containing the other's (within the tolerance) implies that the earlier-starting
    one ends no sooner than the later one starts, less the tolerance. A sweep in start order therefore
    only compares a candidate with the still-open candidates of the other scopes: a bucket of many
    sequential or same-scope calls (one service sending the same prompt all day) costs n log n, not n².
    """
    tol = CONTAINMENT_TOLERANCE_US
    ordered = sorted(bucket, key=lambda k: (active[k].start_us, k))
    open_by_scope: dict[str, list[_Key]] = defaultdict(list)
    for key in ordered:
        c = active[key]
        for scope, still_open in open_by_scope.items():
            if scope == c.scope_name:
                continue
            still_open[:] = [k for k in still_open if active[k].end_us + tol >= c.start_us]
            for other in still_open:
                yield other, key
        open_by_scope[c.scope_name].append(key)


def _layer_of(
    c: Candidate,
    parents: Mapping[_Key, str],
    by_key: Mapping[_Key, Candidate],
    active: Mapping[_Key, Candidate],
    biller_of: Mapping[_Key, _Key],
    by_response: Mapping[tuple[str, str], _Key],
) -> tuple[str, _Key] | None:
    """The rule and the leaf by which the model span without usage `c`, which has no candidate below
    it, is a layer of a call recorded with usage (the module's rule 4); None: a call of its own.
    `biller_of`: each leaf -> the leaf that bills its call; `by_response`: (tenant, response ID) -> a
    leaf with it."""
    for span in sorted(_ancestry(c, parents, by_key)):
        up = (c.tenant, c.trace_id, span)
        if up in biller_of and active[up].kind == KIND_MODEL:
            return RULE_WITHIN_CALL, up
    leaf = by_response.get((c.tenant, c.response_id)) if c.response_id else None
    return None if leaf is None else (RULE_RESPONSE_ID, leaf)


def is_lone_layer(parent_span_id: str, failed: bool, model: str) -> bool:
    """Whether a model span without usage may be a *lone* layer of a call (the module's rule 4): the
    root of its trace (`parent_span_id` empty), not `failed`, with a `model`."""
    return not parent_span_id and not failed and bool(model)


def _lone(c: Candidate) -> bool:
    return is_lone_layer(c.parent_span_id, c.failed, c.model)


class _LonePartners:
    """The model candidates a lone layer without usage may belong to (the module's rule 4, last case),
    per (tenant, service instance), sorted by start, each with the span ID that bills its call."""

    def __init__(self, partners: Iterable[tuple[Candidate, str]]) -> None:
        by_instance: dict[tuple[str, str], list[tuple[Candidate, str]]] = defaultdict(list)
        for p, billed_by in partners:
            if p.kind == KIND_MODEL and p.model:
                by_instance[(p.tenant, p.service_instance)].append((p, billed_by))
        self._index: dict[tuple[str, str], tuple[list[int], list[tuple[Candidate, str]], int]] = {}
        for key, found in by_instance.items():
            found.sort(key=lambda pb: (pb[0].start_us, pb[0].trace_id, pb[0].span_id))
            longest = max(p.end_us - p.start_us for p, _ in found)
            self._index[key] = ([p.start_us for p, _ in found], found, longest)

    def billed_by(self, c: Candidate) -> str | None:
        """The span that bills the call of which `c` is a lone layer; None: none (a call of its own)."""
        index = self._index.get((c.tenant, c.service_instance))
        if index is None:
            return None
        starts, found, longest = index
        tol = CONTAINMENT_TOLERANCE_US
        family = model_family(c.model)
        best: tuple[int, str, str, str] | None = None
        # a partner that contains c starts at most `longest` before c ends; one within c starts within c
        for i in range(bisect_left(starts, c.end_us - tol - longest), bisect_right(starts, c.end_us + tol)):
            p, billed_by = found[i]
            if p.scope_name == c.scope_name or model_family(p.model) != family:
                continue
            if not (_contains(p, c) or _contains(c, p)):
                continue
            gap = abs(p.start_us - c.start_us) + abs(p.end_us - c.end_us)
            if best is None or (gap, p.trace_id, p.span_id) < best[:3]:
                best = (gap, p.trace_id, p.span_id, billed_by)
        return None if best is None else best[3]


class _Groups:
    def __init__(self, keys: Iterable[_Key]) -> None:
        self.up: dict[_Key, _Key] = {k: k for k in keys}

    def find(self, k: _Key) -> _Key:
        root = k
        while self.up[root] != root:
            root = self.up[root]
        while self.up[k] != root:
            self.up[k], k = root, self.up[k]
        return root

    def union(self, a: _Key, b: _Key) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.up[max(ra, rb)] = min(ra, rb)


def decide(
    candidates: Sequence[Candidate],
    parents: Mapping[_Key, str],
    partners: Sequence[tuple[Candidate, str]] = (),
) -> dict[_Key, Decision]:
    """The decision of every candidate, keyed by (tenant, trace ID, span ID). `parents` maps (tenant,
    trace ID, span ID) -> parent span ID for the other recorded spans of the same traces (steps).
    `partners`: other model candidates, each with the span ID that bills its call as already decided,
    that a lone layer without usage among `candidates` may belong to (rule 4); they are not decided
    here (the candidates related to them need not be among `candidates`). Deterministic."""
    by_key: dict[_Key, Candidate] = {}
    for c in sorted(candidates, key=lambda c: (c.tenant, c.trace_id, c.span_id, -c.input_tokens)):
        by_key.setdefault((c.tenant, c.trace_id, c.span_id), c)
    active = {k: c for k, c in by_key.items() if _participates(c)}
    silent = {k: c for k, c in by_key.items() if _silent(c)}
    below: dict[_Key, list[_Key]] = defaultdict(list)  # candidate -> its descendant candidates
    for key, c in active.items():
        for span in _ancestry(c, parents, by_key):
            up = (c.tenant, c.trace_id, span)
            if (up in active and up != key and not _lost_cache(c, active[up])) or up in silent:
                below[up].append(key)
    leaves = sorted(k for k in active if k not in below)
    groups = _Groups(leaves)
    by_response: dict[tuple[str, str], _Key] = {}
    buckets: dict[tuple[str, str, int], list[_Key]] = defaultdict(list)
    for key in leaves:
        c = active[key]
        if c.response_id:
            first = by_response.setdefault((c.tenant, c.response_id), key)
            groups.union(first, key)
        buckets[match_key(c)].append(key)
    for bucket in buckets.values():
        for earlier, later in _overlapping_pairs(bucket, active):
            if _same_call(active[earlier], active[later]):
                groups.union(earlier, later)
    members: dict[_Key, list[_Key]] = defaultdict(list)
    for key in leaves:
        members[groups.find(key)].append(key)
    biller_of: dict[_Key, _Key] = {}
    out: dict[_Key, Decision] = {}
    for group in members.values():
        biller = min(group, key=lambda k: _order(active[k]))
        b = active[biller]
        for key in group:
            biller_of[key] = biller
            c = active[key]
            if key == biller:
                out[key] = Decision(c.quote_status, "", "")
            else:
                same_id = bool(c.response_id) and c.response_id == b.response_id and c.tenant == b.tenant
                rule = RULE_RESPONSE_ID if same_id else RULE_CROSS_LAYER
                out[key] = Decision(STATUS_DUPLICATE_LAYER, rule, b.span_id)
    for key, descendants in below.items():
        c = by_key[key]
        leaf = min((d for d in descendants if d in biller_of), default=None)
        billed_by = active[biller_of[leaf]].span_id if leaf is not None else ""
        status = STATUS_DUPLICATE_LAYER if c.kind == KIND_MODEL else STATUS_WRAPPER
        out[key] = Decision(status, RULE_DESCENDANT, billed_by)
    lone: _LonePartners | None = None
    for key, c in silent.items():
        if key in out:
            continue
        if (layer := _layer_of(c, parents, by_key, active, biller_of, by_response)) is not None:
            rule, leaf = layer
            out[key] = Decision(STATUS_DUPLICATE_LAYER, rule, active[biller_of[leaf]].span_id)
        elif _lone(c):
            if lone is None:
                leaf_partners = ((active[k], active[b].span_id) for k, b in biller_of.items())
                lone = _LonePartners(itertools.chain(leaf_partners, partners))
            if (partner := lone.billed_by(c)) is not None:
                out[key] = Decision(STATUS_DUPLICATE_LAYER, RULE_CROSS_LAYER, partner)
    for key, c in by_key.items():
        if key not in out:
            out[key] = Decision(c.quote_status, "", "")
    return out
