"""Token usage read from span attributes, normalized to OTel's inclusive convention.

Every alias of the usage table (docs/guide/processor.md) is read in precedence order
(`semconv.INPUT_TOKENS`, ...): the first alias holding an *acceptable* value wins; a rejected value is
recorded as an issue and the next alias is tried.

Value rule (`coerce_count`), applied to every token attribute:

* ``int`` in ``[0, 10**12]``: taken as is.
* ``float`` / ``Decimal``: finite and integral (``12.0``) is taken; a fractional value is rounded half
  to even and an issue is recorded.
* ``str``: stripped and parsed as a decimal number, then the numeric rule applies; an issue is recorded
  (not for an alias whose library writes its counts as text, `semconv.TEXT_COUNTS`).
* rejected (treated as missing, with an issue): ``bool``, negative, NaN, ±inf, over ``10**12``, any
  other type, an unparsable string.

Convention rule (`read_usage`): the result is *inclusive*, i.e. ``input_tokens`` includes cache read and
cache write tokens and ``output_tokens`` includes reasoning tokens, as in OTel.

* Anthropic's native API reports ``input_tokens`` *exclusive* of cache tokens. Most instrumentations
  that forward it (OpenLLMetry, OpenInference, the official ones, the anthropic SDK) add the cache
  tokens before writing ``gen_ai.usage.input_tokens`` / ``llm.token_count.prompt``; openlit's Anthropic
  spans do not. Which convention a span follows is its scope's profile (`profiles.profile_of`): the
  cache tokens are added for an exclusive profile. They are also added, with an issue, when the
  attribute ``tokenbook.usage.input_exclusive`` is true (manual instrumentation that copies
  Anthropic's response verbatim), and, as a flagged guess, when the profile says inclusive but the
  inclusive reading is impossible (``input < cache_read + cache_write``).
* A profile whose cache-read count is of tokens outside the billed input (``unbilled_cache_reads``:
  OpenLIT's Cohere spans carry Cohere's ``cached_tokens``, of a prompt ``billed_units`` leaves its
  template out of) has that count dropped: the input is Cohere's bill.
* A profile whose input count may leave out cache tokens that it neither reports nor leaves out of its
  total (``input_from_total``, for the calls the profile names: OpenInference's LangChain instrumentor
  passes langchain-aws's cache-exclusive ``prompt_tokens`` through) has, where it reports no cache
  tokens and its total is larger than input + output, the input read as the total less the output: the
  call's whole input, its cache reads and writes (of unknown split) priced as input.
* A profile whose output count leaves out the reasoning count written beside it (``output_exclusive``:
  OpenLIT's Google AI Studio spans pass Gemini's ``candidatesTokenCount`` through) has the reasoning
  added to the output, whatever their sizes.
* Otherwise the output is read as exclusive of reasoning (Gemini's ``candidatesTokenCount`` excludes
  ``thoughtsTokenCount``), and reasoning added to it, where the span's total is input + output +
  reasoning (the total says so: no issue), and, as a flagged guess, where ``reasoning > output``.

Cache writes by lifetime (`Usage.cache_write_1h_tokens`): the anthropic SDK's spans split the cache
writes into one-hour and five-minute writes (`semconv.CACHE_WRITE_1H_TOKENS`, `CACHE_WRITE_5M_TOKENS`),
which are priced apart. The one-hour count is the 1h attribute, else the cache writes minus the 5m
attribute. None when the span carries neither (every cache write is then a five-minute write, the
providers' default); a split that does not fit the cache writes (1h > cache writes, or 1h + 5m
differing from them) is recorded as an issue, and a split larger than the cache writes is dropped.

LangChain's usage metadata (`semconv.LANGCHAIN_USAGE`, as LangSmith exports it): its input and output
counts are inclusive and its token details are disjoint parts of them; where a span has no attribute of
a kind, its cache reads, cache writes (and their one-hour part) and reasoning come from those details.

`read_usage` never raises.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Final, NamedTuple

from tokenbook.genai import semconv
from tokenbook.genai.profiles import DEFAULT_PROFILE, Profile
from tokenbook.genai.records import build

__all__ = ["MAX_TOKENS", "NO_USAGE", "USAGE_KEYS", "Usage", "coerce_count", "read_usage"]

#: Token counts above this are rejected as absurd (no single call uses a trillion tokens).
MAX_TOKENS = 10**12


class Usage(NamedTuple):
    """Normalized token counts of one call: inclusive, non-negative, at most `MAX_TOKENS` each.

    A named tuple: the span processor builds one per model span on the application's thread.
    """

    input_tokens: int = 0  # OTel-inclusive: includes cache_read + cache_write
    output_tokens: int = 0  # includes reasoning
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    present: bool = False  # any usage attribute was found
    issues: tuple[str, ...] = ()  # why a value was coerced or rejected
    cache_write_1h_tokens: int | None = None  # of cache_write_tokens, one-hour writes; None: not split

    @property
    def total_tokens(self) -> int:
        """Input plus output: every token once."""
        return self.input_tokens + self.output_tokens

    @property
    def issue_text(self) -> str:
        """The issues joined by ``"; "``, as written to ``tokenbook.usage.issue``."""
        return "; ".join(self.issues)


def coerce_count(key: str, value: object) -> tuple[int | None, str | None]:
    """Apply the module's value rule: ``(count, None)``, ``(count, issue)`` or ``(None, issue)``."""
    if isinstance(value, bool):
        return None, f"{key}: bool ({value!r}), treated as missing"
    if isinstance(value, int):
        return _check_range(key, value, value)
    note: str | None = None
    number: float | Decimal
    if isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None, f"{key}: not a number ({value[:40]!r}), treated as missing"
        note = f"{key}: numeric string ({value[:40]!r}) coerced"
    elif isinstance(value, float | Decimal):
        number = value
    else:
        return None, f"{key}: unsupported type {type(value).__name__}, treated as missing"
    finite = number.is_finite() if isinstance(number, Decimal) else math.isfinite(number)
    if not finite:
        return None, f"{key}: not finite ({value!r}), treated as missing"
    if not -MAX_TOKENS <= number <= MAX_TOKENS:  # before rounding: int(Decimal("1e999999")) takes minutes
        return _check_range(key, MAX_TOKENS + 1 if number > 0 else -1, value)
    rounded = round(number)
    if rounded != number:
        note = f"{key}: fractional ({value!r}) rounded to {rounded}"
    count, issue = _check_range(key, int(rounded), value)
    return count, issue or note


def _text_note(key: str, raw: object) -> str:
    """`coerce_count`'s note on a numeric string read as it is (the note a `semconv.TEXT_COUNTS` alias
    does not record)."""
    return f"{key}: numeric string ({raw[:40]!r}) coerced" if isinstance(raw, str) else ""


def _check_range(key: str, count: int, raw: object) -> tuple[int | None, str | None]:
    if count < 0:
        return None, f"{key}: negative ({raw!r}), treated as missing"
    if count > MAX_TOKENS:
        return None, f"{key}: over 10^12 ({raw!r}), treated as missing"
    return count, None


#: Every usage attribute name (any alias, and the usage object's), for cheap presence tests.
USAGE_KEYS: Final = frozenset(
    semconv.INPUT_TOKENS
    + semconv.OUTPUT_TOKENS
    + semconv.CACHE_READ_TOKENS
    + semconv.CACHE_WRITE_TOKENS
    + semconv.REASONING_TOKENS
    + semconv.USAGE_OBJECTS
    + (semconv.PROVIDER_METADATA, semconv.LANGCHAIN_USAGE)
    + semconv.LANGCHAIN_TOKEN_DETAILS
)
#: The usage of a span that carries none.
NO_USAGE: Final = Usage()
#: Aliases whose library writes every count as decimal text (`semconv.TEXT_COUNTS`): read without an issue.
_TEXT_COUNT_KEYS: Final = frozenset(semconv.TEXT_COUNTS)


#: The alias tuples in `Usage` field order.
_CATEGORIES: Final = (
    semconv.INPUT_TOKENS,
    semconv.OUTPUT_TOKENS,
    semconv.CACHE_READ_TOKENS,
    semconv.CACHE_WRITE_TOKENS,
    semconv.REASONING_TOKENS,
)
_MAX_PLANS: Final = 1_000
#: Present usage keys -> for each category, its present aliases in precedence order (memoized: spans
#: of one instrumentation share a few key sets).
_plans: dict[frozenset[str], tuple[tuple[int, tuple[str, ...]], ...]] = {}


def _plan(present: frozenset[str]) -> tuple[tuple[int, tuple[str, ...]], ...]:
    """(field index in `Usage`, present aliases in precedence order) of each category with an alias."""
    plan = tuple(
        (i, keys)
        for i, aliases in enumerate(_CATEGORIES)
        if (keys := tuple(k for k in aliases if k in present))
    )
    if len(_plans) >= _MAX_PLANS:
        _plans.clear()
    _plans[present] = plan  # a racing thread computes the same value: harmless
    return plan


def read_usage(attrs: Mapping[str, object], provider: str = "", profile: Profile = DEFAULT_PROFILE) -> Usage:
    """Read and normalize the usage of one span's attributes by the module's rule. Never raises.

    `provider` is the span's provider name (OTel or catalog spelling); it is used only to word issues.
    `profile` is the convention profile of the span's instrumentation scope (`profiles.profile_of`):
    it says whether the input count includes cache tokens.
    Pure and thread-safe.
    """
    if semconv.PROVIDER_METADATA in attrs:
        attrs = _with_anthropic_usage(attrs)
    if not _LANGCHAIN_KEYS.isdisjoint(attrs):
        attrs = _with_langchain_usage(attrs)
    if semconv.LANGFUSE_USAGE in attrs:
        attrs = _with_langfuse_usage(attrs)
    if not _OBJECT_KEYS.isdisjoint(attrs):
        attrs = _with_usage_object(attrs)
    present = USAGE_KEYS.intersection(attrs)
    if not present:
        return NO_USAGE
    issues: list[str] = []
    counts = [0, 0, 0, 0, 0]
    found = False
    for i, keys in _plans.get(present) or _plan(present):
        for key in keys:  # the first acceptable value wins; a rejected one is an issue
            raw = attrs[key]
            if raw is None:  # a value the SDK could not clean: absent
                continue
            found = True
            if type(raw) is int and 0 <= raw <= MAX_TOKENS:  # the common case, without a call
                counts[i] = raw
                break
            count, issue = coerce_count(key, raw)
            if issue is not None and not (key in _TEXT_COUNT_KEYS and issue == _text_note(key, raw)):
                issues.append(issue)
            if count is not None:
                counts[i] = count
                break
    if not found:
        return NO_USAGE
    input_tokens, output_tokens, cache_read, cache_write, reasoning_tokens = counts
    as_written = input_tokens
    if profile.unbilled_cache_reads:  # the library's known convention (Cohere's cached_tokens): not read
        cache_read = 0
    if profile.input_from_total and not (cache_read or cache_write):
        total = _first_count(attrs, semconv.TOTAL_TOKENS, issues)
        if total is not None and total > input_tokens + output_tokens:
            unreported = total - input_tokens - output_tokens
            issues.append(
                f"input read from the total ({total}) less the output: {unreported} tokens the library "
                f"counts in neither input nor cache (profile {profile.name!r}: cache reads and writes it "
                "does not report), priced as input"
            )
            input_tokens = total - output_tokens
    if profile.output_from_total and not reasoning_tokens:
        total = _first_count(attrs, semconv.TOTAL_TOKENS, issues)
        if total is not None and total > input_tokens + output_tokens:
            reasoning_tokens = total - input_tokens - output_tokens
            output_tokens += reasoning_tokens
    if profile.output_exclusive:  # the library's known convention (Gemini's candidatesTokenCount)
        output_tokens += reasoning_tokens
    cache = cache_read + cache_write
    if cache:
        if attrs.get(semconv.INPUT_EXCLUSIVE) is True:
            who = f" ({provider})" if provider else ""
            flag = f"{semconv.INPUT_EXCLUSIVE}=true"
            issues.append(f"input read as exclusive of cache tokens{who}: {flag}; cache tokens added")
            input_tokens += cache
        elif not profile.input_inclusive:  # the library's known convention: not an issue
            input_tokens += cache
        elif input_tokens < cache:  # the profile says inclusive, but it cannot be: guess, and say so
            who = f" ({provider})" if provider else ""
            issues.append(
                f"input read as exclusive of cache tokens{who}: input ({input_tokens}) < cache read + write "
                f"({cache}) though profile {profile.name!r} says inclusive (a guess); cache tokens added"
            )
            input_tokens += cache
    if reasoning_tokens and not profile.output_exclusive:  # (an output_exclusive profile's: added above)
        if _total_counts_apart(attrs, (as_written, input_tokens), output_tokens, reasoning_tokens):
            output_tokens += reasoning_tokens  # the total counts the reasoning apart from the output
        elif reasoning_tokens > output_tokens:
            issues.append(
                f"reasoning ({reasoning_tokens}) > output ({output_tokens}): output read as exclusive of "
                "reasoning; reasoning added"
            )
            output_tokens += reasoning_tokens
    if input_tokens > MAX_TOKENS or output_tokens > MAX_TOKENS:
        issues.append("normalized counts over 10^12, usage treated as missing")
        return build(Usage, (0, 0, 0, 0, 0, True, tuple(issues), None))
    one_hour = None if _SPLIT_KEYS.isdisjoint(attrs) else _cache_split(attrs, cache_write, issues)
    return build(Usage, (
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        reasoning_tokens,
        True,
        tuple(issues) if issues else (),
        one_hour,
    ))  # fmt: skip


#: The counts read from a usage object's text (`semconv.USAGE_OBJECTS`): the object's key, in a Python
#: repr or JSON (``'cached_tokens': 1024``, ``"cached_tokens": 1024``), then its value.
_OBJECT_COUNT: Final = re.compile(
    r"""['"](prompt_tokens|input_tokens|input|completion_tokens|output_tokens|output|cached_tokens"""
    r"""|cache_read_input_tokens|cache_creation_input_tokens|reasoning_tokens|thinking_tokens"""
    r"""|ephemeral_1h_input_tokens"""
    r"""|cache_creation_input_tokens_above_1hr|ephemeral_5m_input_tokens)['"]\s*:\s*(\d{1,13})\b"""
)
_OBJECT_KEYS: Final = frozenset(semconv.USAGE_OBJECTS)
#: The usage object's keys of each kind (first present wins), and the aliases whose presence on the
#: span makes the object's count of that kind unread.
_OBJECT_KINDS: Final = (
    (("prompt_tokens", "input_tokens", "input"), semconv.INPUT_TOKENS),
    (("completion_tokens", "output_tokens", "output"), semconv.OUTPUT_TOKENS),
    (("cached_tokens", "cache_read_input_tokens"), semconv.CACHE_READ_TOKENS),
    (("cache_creation_input_tokens",), semconv.CACHE_WRITE_TOKENS),
    (("reasoning_tokens", "thinking_tokens"), semconv.REASONING_TOKENS),
    (("ephemeral_1h_input_tokens", "cache_creation_input_tokens_above_1hr"), semconv.CACHE_WRITE_1H_TOKENS),
    (("ephemeral_5m_input_tokens",), semconv.CACHE_WRITE_5M_TOKENS),
)
#: A usage object longer than this is read up to here (a provider's is a few hundred characters).
_MAX_OBJECT: Final = 16_384


def _with_usage_object(attrs: Mapping[str, object]) -> Mapping[str, object]:
    """`attrs` with the counts of its usage object (the first of `semconv.USAGE_OBJECTS` it has, as
    text) as the first alias of their kind, for each kind the span has no attribute of; `attrs` itself
    when there are none."""
    text = next((v for k in semconv.USAGE_OBJECTS if isinstance(v := attrs.get(k), str)), None)
    if text is None:
        return attrs
    found = _text_counts(_OBJECT_COUNT, text)
    extra: dict[str, object] = {}
    for names, aliases in _OBJECT_KINDS:
        if any(a in attrs for a in aliases):
            continue
        value = next((found[n] for n in names if n in found), None)
        if value is not None:
            extra[aliases[0]] = value
    return {**attrs, **extra} if extra else attrs


#: Langfuse's own usage keys for the cache (`_with_langfuse_usage`): its ``input_*`` details, and
#: Anthropic's keys, which its LangChain handler passes on beside an input count exclusive of them.
_LANGFUSE_READ: Final = ("input_cache_read", "cache_read_input_tokens", "input_cached_tokens")
_LANGFUSE_WRITE: Final = ("input_cache_creation", "cache_creation_input_tokens", "input_cache_write")
_LANGFUSE_ANTHROPIC_CACHE: Final = ("cache_read_input_tokens", "cache_creation_input_tokens")


def _with_langfuse_usage(attrs: Mapping[str, object]) -> Mapping[str, object]:
    """`attrs` with the counts of Langfuse's usage details in Langfuse's own keys, as the first alias of
    each kind the span has no attribute of; `attrs` itself for any other object (a provider's usage object,
    read by `_with_usage_object`).

    In Langfuse's keys each key is a usage type priced on its own: ``input`` leaves out every ``input_*``
    detail (``input_cache_read``, ``input_cache_creation``, ``input_audio``, ...) and Anthropic's
    ``cache_read_input_tokens`` / ``cache_creation_input_tokens`` beside it, ``output`` every ``output_*``
    detail (``output_reasoning``, ...). The input and output read here are their sums: inclusive, as the
    conventions count them."""
    text = attrs.get(semconv.LANGFUSE_USAGE)
    if not isinstance(text, str) or len(text) > _MAX_OBJECT or '"input' not in text:
        return attrs
    try:
        details = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: nested too deep
        return attrs
    counts = _counts(details)
    if "input" not in counts and "output" not in counts:
        return attrs  # a provider's usage object (OpenAI's prompt_tokens, ...), or none
    input_parts = [v for k, v in counts.items() if k.startswith("input_")]
    input_parts += [counts[k] for k in _LANGFUSE_ANTHROPIC_CACHE if k in counts]
    output_parts = [v for k, v in counts.items() if k.startswith("output_")]
    found: dict[tuple[str, ...], int | None] = {
        semconv.INPUT_TOKENS: counts.get("input", 0) + sum(input_parts),
        semconv.OUTPUT_TOKENS: counts.get("output", 0) + sum(output_parts),
        semconv.CACHE_READ_TOKENS: next((counts[k] for k in _LANGFUSE_READ if k in counts), None),
        semconv.CACHE_WRITE_TOKENS: next((counts[k] for k in _LANGFUSE_WRITE if k in counts), None),
        semconv.REASONING_TOKENS: counts.get("output_reasoning", counts.get("output_reasoning_tokens")),
        semconv.CACHE_WRITE_1H_TOKENS: counts.get("cache_creation_ephemeral_1h_input_tokens"),
        semconv.CACHE_WRITE_5M_TOKENS: counts.get("cache_creation_ephemeral_5m_input_tokens"),
    }
    extra = {
        aliases[0]: value
        for aliases, value in found.items()
        if value is not None and not any(a in attrs for a in aliases)
    }
    return {**attrs, **extra} if extra else attrs


def _with_anthropic_usage(attrs: Mapping[str, object]) -> Mapping[str, object]:
    """`attrs` with the counts of Anthropic's own usage object in the AI SDK's provider metadata
    (`semconv.PROVIDER_METADATA`: ``{"anthropic": {"usage": {...}}}``) as the first alias of each kind.

    Anthropic's ``input_tokens`` leaves out the cache reads and writes; the AI SDK 5 passes it on as the
    span's input count and reports the cache writes nowhere else. So where the span's input is that
    count (or absent), the input becomes input + cache read + cache write, with the cache counts and
    their split by lifetime beside it: Anthropic's own numbers, read without a guess. `attrs` itself
    otherwise."""
    text = attrs.get(semconv.PROVIDER_METADATA)
    if not isinstance(text, str) or '"anthropic"' not in text or len(text) > _MAX_OBJECT:
        return attrs
    try:
        usage = json.loads(text)["anthropic"]["usage"]
    except (ValueError, KeyError, TypeError, RecursionError):  # RecursionError: nested too deep
        return attrs
    if not isinstance(usage, dict):
        return attrs

    uncached = _count(usage.get("input_tokens"))
    read = _count(usage.get("cache_read_input_tokens")) or 0
    write = _count(usage.get("cache_creation_input_tokens")) or 0
    reported = next((attrs[k] for k in semconv.INPUT_TOKENS if attrs.get(k) is not None), None)
    if uncached is None or (reported is not None and reported != uncached):
        return attrs
    extra: dict[str, object] = {
        semconv.INPUT_TOKENS[0]: uncached + read + write,
        semconv.CACHE_READ_TOKENS[0]: read,
        semconv.CACHE_WRITE_TOKENS[0]: write,
    }
    lifetimes = usage.get("cache_creation")
    if isinstance(lifetimes, dict):
        for key, alias in (
            ("ephemeral_1h_input_tokens", semconv.CACHE_WRITE_1H_TOKENS[0]),
            ("ephemeral_5m_input_tokens", semconv.CACHE_WRITE_5M_TOKENS[0]),
        ):
            if (n := _count(lifetimes.get(key))) is not None:
                extra[alias] = n
    return {**attrs, **extra}


_LANGCHAIN_KEYS: Final = frozenset((semconv.LANGCHAIN_USAGE, *semconv.LANGCHAIN_TOKEN_DETAILS))
#: A count in a flat details dict's text, a Python repr or JSON (``'cache_read': 1024``).
_DETAIL_COUNT: Final = re.compile(r"""['"](\w{1,64})['"]\s*:\s*(\d{1,13})\b""")


def _with_langchain_usage(attrs: Mapping[str, object]) -> Mapping[str, object]:
    """`attrs` with the counts of LangChain's usage metadata (`semconv.LANGCHAIN_USAGE`, else its token
    details, `semconv.LANGCHAIN_TOKEN_DETAILS`) as the first alias of each kind the span has no attribute
    of; `attrs` itself when there are none.

    LangChain's details are disjoint parts of its (inclusive) counts: the cache reads are `cache_read`
    and each service tier's `<tier>_cache_read`; the cache writes are `cache_creation` and the writes
    split by lifetime (`ephemeral_5m_input_tokens`, `ephemeral_1h_input_tokens`), except that earlier
    langchain-anthropic releases put every cache write in `cache_creation` beside the split (so a
    `cache_creation` at least as large as the split is every write); the reasoning is `reasoning` and
    each tier's `<tier>_reasoning`."""
    inputs, outputs, counts = _langchain_details(attrs)
    split_5m = inputs.get("ephemeral_5m_input_tokens")
    one_hour = inputs.get("ephemeral_1h_input_tokens")
    generic = inputs.get("cache_creation")
    write: int | None = None
    if generic is not None or split_5m is not None or one_hour is not None:
        split = (split_5m or 0) + (one_hour or 0)
        write = generic if generic is not None and generic >= split else (generic or 0) + split
    found = (
        (semconv.INPUT_TOKENS, counts[0]),
        (semconv.OUTPUT_TOKENS, counts[1]),
        (semconv.CACHE_READ_TOKENS, _parts(inputs, "cache_read")),
        (semconv.CACHE_WRITE_TOKENS, write),
        (semconv.REASONING_TOKENS, _parts(outputs, "reasoning")),
        (semconv.CACHE_WRITE_1H_TOKENS, one_hour if write is not None else None),
    )
    extra = {
        aliases[0]: value
        for aliases, value in found
        if value is not None and value <= MAX_TOKENS and not any(a in attrs for a in aliases)
    }
    return {**attrs, **extra} if extra else attrs


def _langchain_details(
    attrs: Mapping[str, object],
) -> tuple[dict[str, int], dict[str, int], tuple[int | None, int | None]]:
    """LangChain's input and output token details, and its input and output counts (None: absent)."""
    text = attrs.get(semconv.LANGCHAIN_USAGE)
    if isinstance(text, str) and len(text) <= _MAX_OBJECT:
        try:
            usage = json.loads(text)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
            usage = None
        if isinstance(usage, dict):
            return (
                _counts(usage.get("input_token_details")),
                _counts(usage.get("output_token_details")),
                (_count(usage.get("input_tokens")), _count(usage.get("output_tokens"))),
            )
    inputs, outputs = (
        _text_counts(_DETAIL_COUNT, value) if isinstance(value := attrs.get(key), str) else {}
        for key in semconv.LANGCHAIN_TOKEN_DETAILS
    )
    return inputs, outputs, (None, None)


def _text_counts(pattern: re.Pattern[str], text: str) -> dict[str, int]:
    """Key -> count of each match of `pattern` (its key, then its count) in the first `_MAX_OBJECT`
    characters of `text`, a Python repr or JSON; the outermost (first) occurrence of a key wins."""
    found: dict[str, int] = {}
    for m in pattern.finditer(text, 0, _MAX_OBJECT):
        found.setdefault(m[1], int(m[2]))
    return found


def _count(value: object) -> int | None:
    return value if type(value) is int and 0 <= value <= MAX_TOKENS else None


def _counts(details: object) -> dict[str, int]:
    """The counts of a details dict (an int in range each); {} for anything else."""
    if not isinstance(details, dict):
        return {}
    return {k: v for k, v in details.items() if isinstance(k, str) and _count(v) is not None}


def _parts(details: Mapping[str, int], name: str) -> int | None:
    """The sum of the parts `name` and `<tier>_<name>` of `details`; None when it has neither."""
    parts = [v for k, v in details.items() if k == name or k.endswith("_" + name)]
    return sum(parts) if parts else None


#: The attributes that split cache writes by lifetime.
_SPLIT_KEYS: Final = frozenset(semconv.CACHE_WRITE_1H_TOKENS + semconv.CACHE_WRITE_5M_TOKENS)


def _total_counts_apart(
    attrs: Mapping[str, object], inputs: tuple[int, int], output_tokens: int, reasoning_tokens: int
) -> bool:
    """Whether the span's total is its input (as written, or as read) + output + reasoning: its output
    count leaves the reasoning out. A rejected total is an issue where it is read for the input."""
    total = _first_count(attrs, semconv.TOTAL_TOKENS, [])
    return total is not None and any(total == i + output_tokens + reasoning_tokens for i in inputs)


def _first_count(attrs: Mapping[str, object], keys: tuple[str, ...], issues: list[str]) -> int | None:
    """The first acceptable count of `keys` (`coerce_count`), or None; rejected values are issues."""
    for key in keys:
        raw = attrs.get(key)
        if raw is None:
            continue
        count, issue = coerce_count(key, raw)
        if issue is not None:
            issues.append(issue)
        if count is not None:
            return count
    return None


def _cache_split(attrs: Mapping[str, object], cache_write: int, issues: list[str]) -> int | None:
    """The one-hour cache writes of `cache_write` by the module's rule, or None when not split."""
    one_hour = _first_count(attrs, semconv.CACHE_WRITE_1H_TOKENS, issues)
    five_min = _first_count(attrs, semconv.CACHE_WRITE_5M_TOKENS, issues)
    if one_hour is None and five_min is None:
        return None
    if one_hour is None:
        assert five_min is not None
        one_hour = cache_write - five_min
    if not 0 <= one_hour <= cache_write:
        issues.append(
            f"cache write split (1h {one_hour}, 5m {five_min}) does not fit the {cache_write} cache write "
            "tokens: split ignored, every cache write priced as a five-minute write"
        )
        return None
    if five_min is not None and one_hour + five_min != cache_write:
        issues.append(
            f"cache write split (1h {one_hour} + 5m {five_min}) differs from the {cache_write} cache write "
            f"tokens: {one_hour} one-hour writes, the rest five-minute writes"
        )
    return one_hour
