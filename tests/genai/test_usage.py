"""Usage normalization: every convention, the inclusive rule, and the value rule."""

from __future__ import annotations

import math
import random
from decimal import Decimal

import pytest

from tokenbook.genai import semconv
from tokenbook.genai.profiles import profile_of
from tokenbook.genai.usage import MAX_TOKENS, Usage, coerce_count, read_usage

_KINDS = (
    semconv.INPUT_TOKENS,
    semconv.OUTPUT_TOKENS,
    semconv.CACHE_READ_TOKENS,
    semconv.CACHE_WRITE_TOKENS,
    semconv.REASONING_TOKENS,
)
_LONGEST = max(len(aliases) for aliases in _KINDS)


@pytest.mark.parametrize(
    ("inp", "out", "cr", "cw", "rs"),
    # every alias of each kind at least once (the shorter kinds repeat their last alias)
    list(zip(*(aliases + aliases[-1:] * (_LONGEST - len(aliases)) for aliases in _KINDS), strict=True)),
)
def test_every_alias_is_read(inp, out, cr, cw, rs):
    u = read_usage({inp: 1000, out: 300, cr: 200, cw: 100, rs: 50})
    assert u == Usage(1000, 300, 200, 100, 50, present=True)


def test_first_present_alias_wins():
    u = read_usage({"gen_ai.usage.prompt_tokens": 7, "gen_ai.usage.input_tokens": 9, "llm.input_tokens": 1})
    assert u.input_tokens == 9


def test_no_usage_is_not_present():
    assert read_usage({"gen_ai.request.model": "gpt-4o"}) == Usage()


def test_exclusive_input_is_detected_when_inclusive_is_impossible():
    # Anthropic's native input_tokens (exclusive) copied verbatim: 100 fresh + 4000 read + 1000 written.
    u = read_usage(
        {
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.cache_read_input_tokens": 4000,
            "gen_ai.usage.cache_creation_input_tokens": 1000,
            "gen_ai.usage.output_tokens": 10,
        },
        provider="anthropic",
    )
    assert u.input_tokens == 5100
    assert "exclusive" in u.issue_text


def test_exclusive_flag_for_manual_anthropic_spans():
    u = read_usage(
        {
            "gen_ai.usage.input_tokens": 6000,
            "gen_ai.usage.cache_read.input_tokens": 4000,
            semconv.INPUT_EXCLUSIVE: True,
        }
    )
    assert u.input_tokens == 10000
    assert u.cache_read_tokens == 4000


def test_inclusive_input_is_kept():
    u = read_usage({"gen_ai.usage.input_tokens": 6000, "gen_ai.usage.cache_read.input_tokens": 4000})
    assert (u.input_tokens, u.cache_read_tokens, u.issues) == (6000, 4000, ())


def test_reasoning_above_output_is_added():
    u = read_usage({"gen_ai.usage.output_tokens": 10, "gen_ai.usage.reasoning.output_tokens": 90})
    assert u.output_tokens == 100
    assert u.issues


@pytest.mark.parametrize(
    ("value", "count", "has_issue"),
    [
        (12, 12, False),
        (12.0, 12, False),
        (Decimal("12"), 12, False),
        ("12", 12, True),
        (" 12 ", 12, True),
        (12.6, 13, True),
        ("12.5", 12, True),  # half to even
        (-5, None, True),
        (True, None, True),
        (False, None, True),
        (math.nan, None, True),
        (math.inf, None, True),
        ("nan", None, True),
        ("abc", None, True),
        (MAX_TOKENS, MAX_TOKENS, False),
        (MAX_TOKENS + 1, None, True),
        (1e13, None, True),
        ([1, 2], None, True),
    ],
)
def test_value_rule(value, count, has_issue):
    got, issue = coerce_count("k", value)
    assert got == count
    assert (issue is not None) == has_issue


def test_rejected_value_falls_through_to_next_alias_and_is_recorded():
    u = read_usage({"gen_ai.usage.input_tokens": -5, "gen_ai.usage.prompt_tokens": 40})
    assert u.input_tokens == 40
    assert u.issues == ("gen_ai.usage.input_tokens: negative (-5), treated as missing",)


def test_garbage_never_raises_and_is_present():
    u = read_usage({"gen_ai.usage.input_tokens": object(), "gen_ai.usage.output_tokens": "x"})
    assert u.present
    assert (u.input_tokens, u.output_tokens) == (0, 0)
    assert len(u.issues) == 2


_CATEGORIES = (
    semconv.INPUT_TOKENS,
    semconv.OUTPUT_TOKENS,
    semconv.CACHE_READ_TOKENS,
    semconv.CACHE_WRITE_TOKENS,
    semconv.REASONING_TOKENS,
)


def _oracle_first(attrs: dict[str, object], aliases: tuple[str, ...], issues: list[str]) -> int:
    """The alias rule written out plainly: first present, non-None, acceptable value; else 0."""
    for key in aliases:
        if attrs.get(key) is None:
            continue
        count, issue = coerce_count(key, attrs[key])
        # a library that writes its counts as text (semconv.TEXT_COUNTS): a numeric string is no issue
        text = key in semconv.TEXT_COUNTS and issue == f"{key}: numeric string ({attrs[key]!r}) coerced"
        if issue is not None and not text:
            issues.append(issue)
        if count is not None:
            return count
    return 0


def test_read_usage_matches_the_alias_rule_on_random_spans():
    rng = random.Random(3)
    keys = [key for aliases in _CATEGORIES for key in aliases]
    values = [0, 7, 12.0, 2.5, "40", "x", None, True, -1, MAX_TOKENS + 1, math.nan, Decimal("3.5")]
    for _ in range(3000):
        attrs: dict[str, object] = {"gen_ai.operation.name": "chat"}
        for key in rng.sample(keys, rng.randint(0, 8)):
            attrs[key] = rng.choice(values) if rng.random() < 0.4 else rng.randint(0, 10**6)
        counts = read_usage(attrs)
        issues: list[str] = []
        raw = [_oracle_first(attrs, aliases, issues) for aliases in _CATEGORIES]
        present = any(attrs.get(key) is not None for key in keys)
        assert counts.present is present
        if not present:
            assert counts == (0, 0, 0, 0, 0, False, (), None)
            continue
        assert list(counts.issues[: len(issues)]) == issues  # normalization issues follow the value issues
        inp, out, cr, cw, rs = raw
        if not counts.issues[len(issues) :]:  # nothing normalized: the counts are the values read
            assert counts[:5] == (inp, out, cr, cw, rs)
        assert type(counts) is Usage


def test_openlit_anthropic_input_is_read_as_exclusive_by_its_profile():
    # openlit passes Anthropic's raw input_tokens (exclusive of cache) through. With a large uncached
    # prompt the count can exceed the cache tokens, so "exclusive only when input < cache" misread it.
    from tokenbook.genai.profiles import profile_of

    attrs = {
        "gen_ai.usage.input_tokens": 5000,
        "gen_ai.usage.output_tokens": 10,
        "gen_ai.usage.cache_read.input_tokens": 2048,
        "gen_ai.usage.cache_creation.input_tokens": 1536,
    }
    u = read_usage(attrs, "anthropic", profile_of("openlit.instrumentation.anthropic", ""))
    assert (u.input_tokens, u.issues) == (5000 + 2048 + 1536, ())
    # The same numbers from a library that follows the conventions are inclusive.
    assert (
        read_usage(
            attrs, "anthropic", profile_of("opentelemetry.instrumentation.anthropic", "0.62.4")
        ).input_tokens
        == 5000
    )


def test_openlit_cohere_cached_tokens_are_not_read_as_cache_reads():
    # Cohere bills usage.billed_units (the user's tokens) and reports cached_tokens of the whole prompt
    # the model saw (usage.tokens: its template too), which it does not bill apart. OpenLIT 1.45.0 passes
    # billed_units through as the input and cached_tokens as the cache reads (recorded:
    # openlit-1.45.0-cohere_chat.json): read as such, the input became 30 + 448, priced 3.4 times the bill.
    attrs = {
        "gen_ai.usage.input_tokens": 30.0,
        "gen_ai.usage.output_tokens": 40.0,
        "gen_ai.usage.cache_read.input_tokens": 448.0,
        "gen_ai.usage.cache_creation.input_tokens": 0,
    }
    u = read_usage(attrs, "cohere", profile_of("openlit.instrumentation.cohere", ""))
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.issues) == (30, 40, 0, ())
    # OpenLIT's other providers' cache reads are read as ever
    assert read_usage(attrs, "groq", profile_of("openlit.instrumentation.groq", "")).cache_read_tokens == 448


def test_inclusive_profile_with_impossible_input_falls_back_to_the_flagged_guess():
    u = read_usage({"gen_ai.usage.input_tokens": 21, "gen_ai.usage.cache_read.input_tokens": 2048})
    assert u.input_tokens == 2069
    assert "a guess" in u.issue_text and "semconv" in u.issue_text


def test_cache_write_current_name_and_modality_subsets():
    u = read_usage({
        "gen_ai.usage.input_tokens": 3000,
        "gen_ai.usage.cache_write.input_tokens": 1536,
        "gen_ai.usage.text.input_tokens": 2900,  # a subset: never added on top
    })  # fmt: skip
    assert (u.input_tokens, u.cache_write_tokens, u.issues) == (3000, 1536, ())


# LiteLLM's `metadata.usage_object` as its OTel callback (1.110.2) writes it for an Anthropic call
# (tests/testdata/conformance/litellm-1.110.2-messages.json).
_LITELLM_ANTHROPIC = (
    "{'completion_tokens': 34, 'prompt_tokens': 3608, 'total_tokens': 3642, 'completion_tokens_details': "
    "{'reasoning_tokens': 0, 'text_tokens': 34}, 'prompt_tokens_details': {'audio_tokens': None, "
    "'cache_write_tokens': 1536, 'cached_tokens': 2048, 'text_tokens': 24, 'initial_prompt_tokens': None, "
    "'cache_creation_tokens': 1536, 'cache_creation_token_details': {'ephemeral_5m_input_tokens': 1024, "
    "'ephemeral_1h_input_tokens': 512}}, 'cache_creation_input_tokens': 1536, "
    "'cache_read_input_tokens': 2048, 'service_tier': 'standard'}"
)


def test_a_usage_object_gives_the_counts_the_span_has_no_attribute_for():
    attrs = {"gen_ai.usage.input_tokens": 3608, "gen_ai.usage.output_tokens": 34}
    u = read_usage({**attrs, semconv.USAGE_OBJECTS[0]: _LITELLM_ANTHROPIC})
    assert u == Usage(3608, 34, 2048, 1536, 0, present=True, cache_write_1h_tokens=512)
    # an attribute of a kind wins over the object's count of that kind
    u = read_usage(
        {**attrs, "gen_ai.usage.cache_read.input_tokens": 7, semconv.USAGE_OBJECTS[0]: _LITELLM_ANTHROPIC}
    )
    assert (u.cache_read_tokens, u.cache_write_tokens) == (7, 1536)
    # JSON as well as a Python repr; the object alone is enough
    u = read_usage(
        {semconv.USAGE_OBJECTS[0]: '{"prompt_tokens": 10, "completion_tokens": 2, "cached_tokens": 4}'}
    )
    assert u == Usage(10, 2, 4, 0, 0, present=True)


@pytest.mark.parametrize(
    "value",
    [
        None,
        12,
        b"{'cached_tokens': 5}",
        "",
        "not a dict",
        "{'cached_tokens': -5, 'prompt_tokens': 12345678901234567}",
        "{'cached_tokens': 'many'}",
        "'cached_tokens': " * 20_000,
        "{'initial_prompt_tokens': 9, 'completion_tokens_details': 3}",
    ],
)
def test_an_unreadable_usage_object_adds_nothing_and_never_raises(value):
    attrs = {
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 5,
        semconv.USAGE_OBJECTS[0]: value,
    }
    assert read_usage(attrs) == Usage(100, 5, 0, 0, 0, present=True)


def test_a_profile_whose_output_leaves_out_reasoning_reads_it_from_the_total():
    # OpenLLMetry's Google instrumentation (0.62.4) on a Gemini answer with 64 thoughts
    # (tests/testdata/conformance/opentelemetry-instrumentation-google-generativeai-0.62.4-generate.json)
    google = profile_of("opentelemetry.instrumentation.google_generativeai", "0.21.5")
    attrs = {
        "gen_ai.usage.input_tokens": 1201,
        "gen_ai.usage.output_tokens": 51,
        "gen_ai.usage.cache_read.input_tokens": 1024,
        "gen_ai.usage.total_tokens": 1316,
    }
    assert read_usage(attrs, "gcp.gen_ai", google) == Usage(1201, 115, 1024, 0, 64, present=True)
    # other profiles never read the total; a total that adds nothing, or a reasoning count, wins
    assert read_usage(attrs).output_tokens == 51
    assert read_usage({**attrs, "gen_ai.usage.total_tokens": 1252}, "", google).output_tokens == 51
    with_reasoning = {**attrs, "gen_ai.usage.reasoning_tokens": 10}
    assert read_usage(with_reasoning, "", google).reasoning_tokens == 10
    assert read_usage({**attrs, "gen_ai.usage.total_tokens": "x"}, "", google).output_tokens == 51


def test_a_profile_whose_input_leaves_out_cache_tokens_reads_it_from_the_total():
    # OpenInference's LangChain instrumentor (0.1.80) on langchain-aws's ChatBedrock (InvokeModel, Claude):
    # LangChain's prompt_tokens is Bedrock's cache-exclusive count, the cache reads and writes are under
    # names it does not read, its total counts them
    # (tests/testdata/conformance/openinference-instrumentation-langchain-0.1.80-bedrock_invoke.json)
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    langchain = profile_of("openinference.instrumentation.langchain", "0.1.80").for_call("ChatBedrock", model)
    attrs = {"llm.token_count.prompt": 23, "llm.token_count.completion": 33, "llm.token_count.total": 3640}
    usage = read_usage(attrs, "aws", langchain)
    assert usage._replace(issues=()) == Usage(3607, 33, 0, 0, 0, present=True)
    assert usage.issue_text.startswith("input read from the total (3640) less the output: 3584 tokens")
    # langchain-aws's LLM too (BedrockLLM); not its other calls (a Gemini total through LangChain's
    # Vertex AI integration counts the thoughts), nor other profiles' calls
    llm = profile_of("openinference.instrumentation.langchain", "0.1.80").for_call("BedrockLLM", model)
    assert read_usage(attrs, "aws", llm).input_tokens == 3607
    vertex = profile_of("openinference.instrumentation.langchain", "0.1.80").for_call("VertexAI", "gemini")
    assert read_usage(attrs, "google", vertex).input_tokens == 23
    assert read_usage(attrs).input_tokens == 23
    assert read_usage({**attrs, "llm.token_count.total": 56}, "", langchain).input_tokens == 23
    cached = {**attrs, "llm.token_count.prompt": 3607, "llm.token_count.prompt_details.cache_read": 2048}
    assert read_usage(cached, "", langchain) == Usage(3607, 33, 2048, 0, 0, present=True)
    assert read_usage({**attrs, "llm.token_count.total": "x"}, "", langchain).input_tokens == 23


@pytest.mark.parametrize(
    ("scope", "version", "attrs"),
    [
        # tests/testdata/conformance/opentelemetry-instrumentation-vertexai-0.62.4-generate.json
        (
            "opentelemetry.instrumentation.vertexai",
            "0.62.4",
            {
                "gen_ai.usage.input_tokens": 1301,
                "gen_ai.usage.output_tokens": 61,
                "gen_ai.usage.cache_read.input_tokens": 1024,
                "llm.usage.total_tokens": 1426,
            },
        ),
        # tests/testdata/conformance/openinference-instrumentation-vertexai-0.1.29-generate.json
        (
            "openinference.instrumentation.vertexai",
            "0.1.29",
            {"llm.token_count.prompt": 1301, "llm.token_count.completion": 61, "llm.token_count.total": 1426},
        ),
    ],
)
def test_the_vertex_ai_sdk_instrumentations_thoughts_are_read_from_the_total(
    scope: str, version: str, attrs: dict[str, object]
) -> None:
    """Gemini's 64 thoughts, billed as output, are only in these libraries' totals. Failed before:
    the output was the candidates' count alone (61)."""
    usage = read_usage(attrs, "google", profile_of(scope, version))
    assert (usage.output_tokens, usage.reasoning_tokens) == (125, 64)
    assert not usage.issues


def test_langfuse_usage_details_give_every_count():
    # tests/testdata/conformance/langfuse-5.2.0-reasoning.json and -embeddings.json
    details = (
        '{"completion_tokens": 235, "prompt_tokens": 1503, "total_tokens": 1738, '
        '"completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0, '
        '"reasoning_tokens": 192, "rejected_prediction_tokens": 0}, '
        '"prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 1024}}'
    )
    u = read_usage({"langfuse.observation.usage_details": details})
    assert u == Usage(1503, 235, 1024, 0, 192, present=True)
    u = read_usage({"langfuse.observation.usage_details": '{"input": 12}'})
    assert u == Usage(12, 0, 0, 0, 0, present=True)


def test_langfuse_own_usage_schema_counts_input_and_output_apart_from_their_details():
    # Langfuse's own keys: `input` and `output` leave out every `input_*` / `output_*` detail beside them, and
    # Anthropic's cache keys (tests/testdata/conformance/langfuse-5.2.0+langchain-*.json: its LangChain
    # callback handler on ChatOpenAI, on ChatAnthropic's stream, on ChatAnthropic)
    openai = (
        '{"input": 477, "output": 41, "total": 1542, "input_audio": 0, "input_cache_read": 1024, '
        '"output_audio": 0, "output_reasoning": 0}'
    )
    assert read_usage({"langfuse.observation.usage_details": openai}) == Usage(
        1501, 41, 1024, 0, 0, present=True
    )
    reasoning = '{"input": 100, "output": 40, "input_cache_read": 1024, "output_reasoning": 192}'
    u = read_usage({"langfuse.observation.usage_details": reasoning})
    assert u == Usage(1124, 232, 1024, 0, 192, present=True)
    stream = (
        '{"input": 28, "output": 38, "total": 3650, "input_cache_creation": 1536, "input_cache_read": 2048}'
    )
    u = read_usage({"langfuse.observation.usage_details": stream})
    assert u == Usage(3612, 38, 2048, 1536, 0, present=True)
    assert not u.issues
    anthropic = (
        '{"cache_creation_input_tokens": 1536, "cache_read_input_tokens": 2048, "input": 27, "output": 37, '
        '"cache_creation_ephemeral_1h_input_tokens": 512, "cache_creation_ephemeral_5m_input_tokens": 1024}'
    )
    u = read_usage({"langfuse.observation.usage_details": anthropic}, profile=profile_of("langfuse-sdk"))
    assert u == Usage(3611, 37, 2048, 1536, 0, present=True, cache_write_1h_tokens=512)
    assert not u.issues


def test_logfire_raw_usage_gives_the_lifetimes_of_cache_writes():
    # Logfire 5.4.0's Anthropic spans (tests/testdata/conformance/logfire-5.4.0+anthropic-no-sdk-spans-*):
    # the counts as gen_ai.usage.*, Anthropic's own usage object (with the lifetimes) as gen_ai.usage.raw
    raw = (
        '{"cache_creation":{"ephemeral_1h_input_tokens":512,"ephemeral_5m_input_tokens":1024},'
        '"cache_creation_input_tokens":1536,"cache_read_input_tokens":2048,"input_tokens":26,'
        '"output_tokens":132,"output_tokens_details":{"thinking_tokens":96},"service_tier":"standard"}'
    )
    attrs = {
        "gen_ai.usage.input_tokens": 3610,
        "gen_ai.usage.output_tokens": 132,
        "gen_ai.usage.cache_read.input_tokens": 2048,
        "gen_ai.usage.cache_creation.input_tokens": 1536,
        "gen_ai.usage.raw": raw,
    }
    u = read_usage(attrs, profile=profile_of("logfire"))
    assert u == Usage(3610, 132, 2048, 1536, 96, present=True, cache_write_1h_tokens=512)
    assert not u.issues


def test_mlflow_token_usage_gives_every_count_and_the_one_hour_writes():
    # tests/testdata/conformance/mlflow-3.17.2-messages.json
    usage = (
        '{"input_tokens": 3612, "output_tokens": 38, "total_tokens": 3650, "cache_read_input_tokens": 2048, '
        '"cache_creation_input_tokens": 1536, "cache_creation_input_tokens_above_1hr": 512}'
    )
    u = read_usage({"mlflow.chat.tokenUsage": usage})
    assert u == Usage(3612, 38, 2048, 1536, 0, present=True, cache_write_1h_tokens=512)


# The AI SDK 5.0.285 on an Anthropic call (tests/testdata/conformance/ai-5.0.285-messages.json): the span's
# input is Anthropic's own, exclusive of the cache; the cache is only in the provider metadata.
_AI5_METADATA = (
    '{"anthropic":{"usage":{"input_tokens":24,"output_tokens":34,"cache_creation_input_tokens":1536,'
    '"cache_read_input_tokens":2048,"cache_creation":{"ephemeral_5m_input_tokens":1024,'
    '"ephemeral_1h_input_tokens":512},"service_tier":"standard"},"cacheCreationInputTokens":1536}}'
)


def test_anthropics_own_usage_in_the_ai_sdks_provider_metadata_is_read_as_exclusive_without_a_guess():
    attrs = {
        "gen_ai.usage.input_tokens": 24,
        "gen_ai.usage.output_tokens": 34,
        "ai.usage.promptTokens": 24,
        "ai.response.providerMetadata": _AI5_METADATA,
    }
    u = read_usage(attrs)
    assert u == Usage(3608, 34, 2048, 1536, 0, present=True, cache_write_1h_tokens=512)
    assert not u.issues
    # an input count that is not Anthropic's own (already inclusive): the metadata is left alone
    assert read_usage({**attrs, "gen_ai.usage.input_tokens": 3608}).cache_write_tokens == 0


@pytest.mark.parametrize(
    "metadata",
    [
        '{"anthropic": 3}',
        '{"anthropic": {"usage": [1]}}',
        '{"anthropic"',
        '{"openai": {"x": 1}}',
        7,
        "x" * 20_000,
        "[" * 10_000 + '"anthropic"',  # nested deeper than the JSON parser goes
    ],
)
def test_unreadable_provider_metadata_changes_nothing(metadata):
    attrs = {
        "gen_ai.usage.input_tokens": 24,
        "gen_ai.usage.output_tokens": 34,
        "ai.response.providerMetadata": metadata,
    }
    assert read_usage(attrs) == Usage(24, 34, 0, 0, 0, present=True)


# LangSmith 0.15.1's OpenTelemetry export of a `wrap_openai` call to o3-mini (tests/testdata/conformance/
# langsmith-0.15.1-reasoning.json): input, output and total as gen_ai.usage.*; the cache reads and the
# reasoning only in LangChain's usage metadata (JSON) and in the token details (Python reprs).
_LANGSMITH = {
    "gen_ai.usage.input_tokens": 1503,
    "gen_ai.usage.output_tokens": 235,
    "gen_ai.usage.total_tokens": 1738,
}
_LANGSMITH_USAGE = (
    '{"input_tokens":1503,"output_tokens":235,"total_tokens":1738,"input_token_details":{"audio":0,'
    '"cache_read":1024},"output_token_details":{"audio":0,"reasoning":192}}'
)


def test_langsmiths_usage_metadata_gives_the_cache_reads_and_the_reasoning():
    u = read_usage({**_LANGSMITH, "langsmith.metadata.usage_metadata": _LANGSMITH_USAGE})
    assert u == Usage(1503, 235, 1024, 0, 192, present=True)
    # the usage metadata alone is enough
    assert read_usage({"langsmith.metadata.usage_metadata": _LANGSMITH_USAGE}) == u
    # an attribute of a kind wins over the metadata's count of that kind
    attrs = {**_LANGSMITH, "gen_ai.usage.cache_read.input_tokens": 7}
    assert read_usage({**attrs, "langsmith.metadata.usage_metadata": _LANGSMITH_USAGE}).cache_read_tokens == 7


def test_langsmiths_token_details_give_them_without_the_usage_metadata():
    attrs = {
        **_LANGSMITH,
        "gen_ai.usage.input_token_details": "{'audio': 0, 'cache_read': 1024}",
        "gen_ai.usage.output_token_details": "{'audio': 0, 'reasoning': 192}",
    }
    assert read_usage(attrs) == Usage(1503, 235, 1024, 0, 192, present=True)


@pytest.mark.parametrize(
    "details",
    [
        # langchain-anthropic: the cache writes split by lifetime, the generic count zeroed (its parts are
        # disjoint: LangSmith adds them up)
        '{"cache_read":2048,"cache_creation":0,"ephemeral_5m_input_tokens":1024,"ephemeral_1h_input_tokens":512}',
        # earlier releases: the generic count is every cache write, the lifetimes beside it
        '{"cache_read":2048,"cache_creation":1536,"ephemeral_5m_input_tokens":1024,"ephemeral_1h_input_tokens":512}',
    ],
)
def test_langchains_anthropic_usage_gives_the_cache_writes_and_their_lifetimes(details):
    usage = f'{{"input_tokens":3608,"output_tokens":34,"total_tokens":3642,"input_token_details":{details}}}'
    attrs = {"gen_ai.usage.input_tokens": 3608, "gen_ai.usage.output_tokens": 34}
    u = read_usage({**attrs, "langsmith.metadata.usage_metadata": usage})
    assert u == Usage(3608, 34, 2048, 1536, 0, present=True, cache_write_1h_tokens=512)
    without_split = '{"input_token_details":{"cache_read":2048,"cache_creation":1536}}'
    u = read_usage({**attrs, "langsmith.metadata.usage_metadata": without_split})
    assert u == Usage(3608, 34, 2048, 1536, 0, present=True)


def test_langchains_service_tier_parts_are_read_as_cache_reads_and_reasoning():
    # a flex call: the details split by tier (`flex_cache_read` + `flex` is the input)
    usage = (
        '{"input_tokens":1503,"output_tokens":235,"input_token_details":{"flex_cache_read":1024,"flex":479},'
        '"output_token_details":{"flex_reasoning":192,"flex":43}}'
    )
    u = read_usage({"langsmith.metadata.usage_metadata": usage})
    assert u == Usage(1503, 235, 1024, 0, 192, present=True)


@pytest.mark.parametrize(
    "value",
    [
        None,
        12,
        "",
        "not json",
        "[1, 2]",
        '{"input_token_details": [1]}',
        '{"input_token_details": {"cache_read": -4}}',
        '{"input_token_details": {"cache_read": true}}',
        "{" * 20_000,
        "[" * 10_000,  # nested deeper than the JSON parser goes
    ],
)
def test_unreadable_langchain_usage_adds_nothing_and_never_raises(value):
    attrs = {**_LANGSMITH, "langsmith.metadata.usage_metadata": value}
    assert read_usage(attrs) == Usage(1503, 235, 0, 0, 0, present=True)


def test_langtraces_cached_tokens_are_cache_reads():
    # Langtrace 3.8.21's OpenAI instrumentation, an unstreamed call
    # (tests/testdata/conformance/langtrace-python-sdk-3.8.21-chat.json)
    attrs = {
        "gen_ai.usage.input_tokens": 1501,
        "gen_ai.usage.output_tokens": 41,
        "gen_ai.usage.cached_tokens": 1024,
    }
    assert read_usage(attrs) == Usage(1501, 41, 1024, 0, 0, present=True)


def test_beeais_usage_under_openinference_metadata_carries_the_cache_reads_and_writes():
    """OpenInference's BeeAI instrumentor (0.1.30) writes the cache counts of BeeAI's usage only as
    ``metadata.usage.*`` (``llm.token_count.*`` has the prompt, completion and total counts). Failed
    before: no cache reads, the cached input priced at the input rate."""
    attrs: dict[str, object] = {
        "llm.token_count.prompt": 1501,
        "llm.token_count.completion": 41,
        "llm.token_count.total": 1542,
        "metadata.usage.prompt_tokens": 1501,
        "metadata.usage.cached_prompt_tokens": 1024,
        "metadata.usage.cached_creation_tokens": 0,
    }
    attrs |= {k: str(v) for k, v in attrs.items() if k.startswith("metadata.")}  # as the library writes them
    usage = read_usage(attrs, "openai", profile_of("openinference.instrumentation.beeai", "0.1.85"))
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (
        1501,
        41,
        1024,
        0,
    )
    assert not usage.issues


@pytest.mark.parametrize(("output", "reasoning"), [(64, 64), (400, 64), (51, 64)])
def test_a_total_that_counts_the_reasoning_apart_says_the_output_leaves_it_out(output: int, reasoning: int):
    """@traceloop/instrumentation-google-generativeai (0.27.0) writes Gemini's `candidatesTokenCount`
    (without the thoughts) as the output, `thoughtsTokenCount` as the reasoning and `totalTokenCount`,
    which counts both (tests/testdata/conformance/traceloop-instrumentation-google-generativeai-0.27.0-
    vertex_generate_stream.json: output 64, reasoning 64). Failed before: an output not below the
    reasoning was read as inclusive of it (the thoughts billed as nothing), a smaller one was added to it
    by a guess recorded in `usage_issue`."""
    attrs = {
        "gen_ai.usage.input_tokens": 1304,
        "gen_ai.usage.output_tokens": output,
        "gen_ai.usage.reasoning_tokens": reasoning,
        "gen_ai.usage.cache_read.input_tokens": 1024,
        "gen_ai.usage.total_tokens": 1304 + output + reasoning,
    }
    usage = read_usage(attrs, "gcp.gen_ai")
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == (
        1304,
        output + reasoning,
        reasoning,
    )
    assert usage.issues == ()
    # a total of input + output alone: the output already counts the reasoning
    inclusive = read_usage({**attrs, "gen_ai.usage.total_tokens": 1304 + output}, "gcp.gen_ai")
    assert inclusive.output_tokens == (output if output >= reasoning else output + reasoning)
