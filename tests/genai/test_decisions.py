"""The decision: which candidate span bills a call; the same whatever the order of the facts."""

from __future__ import annotations

import itertools
import random

import pytest

from tokenbook.genai import decisions
from tokenbook.genai.decisions import (
    RULE_CROSS_LAYER,
    RULE_DESCENDANT,
    RULE_RESPONSE_ID,
    RULE_WITHIN_CALL,
    Candidate,
    Decision,
    decide,
    model_family,
)


def cand(span: str, **kw: object) -> Candidate:
    base: dict[str, object] = dict(
        tenant="t", trace_id="a" * 32, span_id=span, parent_span_id="", ancestors=(), kind="model", rank=2,
        scope_name="lib", service_instance="svc", model="gpt-4o-mini", response_id="", input_tokens=100,
        output_tokens=10, start_us=1_000_000, end_us=2_000_000, quote_status="priced", has_usage=True,
    )  # fmt: skip
    base.update(kw)
    return Candidate(**base)  # type: ignore[arg-type]


def test_model_family() -> None:
    assert model_family("openai/GPT-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert model_family("claude-sonnet-4-5-20250929") == model_family("claude-sonnet-4-5")


def test_model_family_of_a_bedrock_model_id() -> None:
    """A Bedrock model ID (an inference profile's region, the vendor, the version; or an ARN) names the
    model that another layer of the same call names by itself (the answer's model, or the ID without
    its region and vendor)."""
    claude = model_family("claude-sonnet-4-5-20250929")
    assert model_family("us.anthropic.claude-sonnet-4-5-20250929-v1:0") == claude
    assert model_family("anthropic.claude-sonnet-4-5-20250929-v1:0") == claude
    assert model_family("global.anthropic.claude-sonnet-4-5-20250929-v1:0") == claude
    arn = (
        "arn:aws:bedrock:us-east-1:111122223333:inference-profile/"
        + "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    )
    assert model_family(arn) == claude
    assert model_family("claude-sonnet-4-5-20250929-v1:0") == claude
    assert model_family("us.amazon.nova-lite-v1:0") == model_family("nova-lite")
    assert model_family("us.meta.llama3-3-70b-instruct-v1:0") == "llama3-3-70b-instruct"
    assert model_family("text-embedding-v1") == "text-embedding-v1"  # no Bedrock version: kept


def test_a_bedrock_model_id_and_the_answers_model_are_one_call() -> None:
    """A framework's span names the Bedrock model ID it was given; the Bedrock instrumentor's span of the
    same call names the model of Claude's answer: one call, billed once."""
    lc = cand("1", scope_name="langchain", rank=3, model="us.anthropic.claude-sonnet-4-5-20250929-v1:0",
              trace_id="b" * 32)  # fmt: skip
    bedrock = cand("2", scope_name="bedrock", model="claude-sonnet-4-5-20250929", cache_tokens=64,
                   start_us=1_100_000, end_us=1_900_000)  # fmt: skip
    got = decide([lc, bedrock], {})
    assert got[("t", "a" * 32, "2")] == Decision("priced", "", "")
    assert got[("t", "b" * 32, "1")] == Decision("duplicate_layer", RULE_CROSS_LAYER, "2")


def test_descendant_bills_and_wrapper_does_not() -> None:
    agent = cand("1", kind="wrapper", scope_name="agents", rank=3)
    parent = cand("2", parent_span_id="1", scope_name="official", rank=1)
    sdk = cand("3", parent_span_id="2", scope_name="sdk", rank=0)
    got = decide([agent, parent, sdk], {})
    assert got[("t", "a" * 32, "3")] == Decision("priced", "", "")
    assert got[("t", "a" * 32, "2")] == Decision("duplicate_layer", RULE_DESCENDANT, "3")
    assert got[("t", "a" * 32, "1")] == Decision("wrapper", RULE_DESCENDANT, "3")


def test_descendant_through_an_unrecorded_step() -> None:
    agent = cand("1", kind="wrapper")
    model = cand("3", parent_span_id="2")
    got = decide([agent, model], {("t", "a" * 32, "2"): "1"})
    assert got[("t", "a" * 32, "1")].billing_rule == RULE_DESCENDANT


def test_response_id_and_cross_layer_choose_the_lowest_rank() -> None:
    a = cand("1", trace_id="b" * 32, scope_name="sdk", rank=0, response_id="msg_1")
    b = cand("2", trace_id="c" * 32, scope_name="openllmetry", output_tokens=11, response_id="msg_1",
             start_us=900_000, end_us=2_100_000)  # fmt: skip
    c = cand("3", trace_id="d" * 32, scope_name="openinference", start_us=800_000, end_us=2_200_000)
    got = decide([a, b, c], {})
    assert got[("t", "b" * 32, "1")] == Decision("priced", "", "")
    assert got[("t", "c" * 32, "2")] == Decision("duplicate_layer", RULE_RESPONSE_ID, "1")
    assert got[("t", "d" * 32, "3")] == Decision("duplicate_layer", RULE_CROSS_LAYER, "1")


def test_no_cross_layer_match_without_containment_or_with_other_counts() -> None:
    a = cand("1", trace_id="b" * 32, scope_name="x")
    later = cand("2", trace_id="c" * 32, scope_name="y", start_us=3_000_000, end_us=4_000_000)
    other_out = cand("3", trace_id="d" * 32, scope_name="y", output_tokens=12)
    same_scope = cand("4", trace_id="e" * 32, scope_name="x")
    got = decide([a, later, other_out, same_scope], {})
    assert all(d.billing_rule == "" for d in got.values())


def test_decision_does_not_depend_on_order() -> None:
    facts = [
        cand("1", kind="wrapper", scope_name="agents", rank=3),
        cand("2", parent_span_id="1", scope_name="official", rank=1, response_id="r"),
        cand("3", parent_span_id="2", scope_name="sdk", rank=0, response_id="r"),
        cand("4", trace_id="f" * 32, scope_name="openllmetry", response_id="r", output_tokens=11),
        cand("5", trace_id="e" * 32, scope_name="oi", input_tokens=7),
        cand("6", trace_id="e" * 32, parent_span_id="5", scope_name="oi2", input_tokens=7, kind="other"),
    ]
    expected = decide(facts, {})
    for perm in itertools.permutations(facts):
        assert decide(list(perm), {}) == expected
    rng = random.Random(7)
    for _ in range(20):  # any partial view decides without error; the complete view decides the same
        decide(rng.sample(facts, rng.randint(1, len(facts))), {})
    assert decide(facts[::-1], {}) == expected


def _biller(got: dict[tuple[str, str, str], Decision], c: Candidate) -> str:
    return got[(c.tenant, c.trace_id, c.span_id)].billed_by or c.span_id


def test_every_cross_layer_pair_is_found_whatever_the_intervals() -> None:
    """The sweep over start times finds every pair the rule relates: two leaves of one bucket that
    `_same_call` relates always end up billed by the same span."""
    rng = random.Random(11)
    for _ in range(40):
        facts = []
        for i in range(rng.randint(2, 40)):
            start = rng.choice([0, 1_000, 5_000, rng.randint(0, 20_000)])
            facts.append(
                cand(f"{i:04x}", trace_id=f"{i:032x}", scope_name=rng.choice("xyz"), rank=rng.randint(0, 3),
                     input_tokens=rng.choice([100, 101]), output_tokens=rng.choice([10, 11, 13]),
                     start_us=start, end_us=start + rng.choice([0, 500, 1_000, 3_000, 30_000]))
            )  # fmt: skip
        got = decide(facts, {})
        for a, b in itertools.combinations(facts, 2):
            if decisions.match_key(a) == decisions.match_key(b) and decisions._same_call(a, b):
                assert _biller(got, a) == _biller(got, b), (a, b)
        assert decide(facts[::-1], {}) == got


def test_a_busy_bucket_compares_only_calls_that_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """One service sending the same prompt all day puts every call in one match bucket: only the pairs
    of other scopes whose intervals meet are compared (all pairs were: n² work per decision pass)."""
    compared = 0
    same_call = decisions._same_call

    def counting(a: Candidate, b: Candidate) -> bool:
        nonlocal compared
        compared += 1
        return same_call(a, b)

    monkeypatch.setattr(decisions, "_same_call", counting)
    n = 2_000
    one_scope = [
        cand(f"{i:04x}", trace_id=f"{i:032x}", start_us=i * 10_000, end_us=i * 10_000 + 5_000)
        for i in range(n)
    ]
    decide(one_scope, {})
    assert compared == 0  # same scope: never one call
    two_scopes = [c._replace(scope_name="xy"[i % 2]) for i, c in enumerate(one_scope)]
    got = decide(two_scopes, {})
    assert compared <= n  # each call meets at most its neighbour
    assert all(d.billing_rule == "" for d in got.values())
    nested = [*one_scope[:100], *(c._replace(span_id=c.span_id + "b", scope_name="outer",
              start_us=c.start_us - 100, end_us=c.end_us + 100) for c in one_scope[:100])]  # fmt: skip
    got = decide(nested, {})
    assert sum(d.billing_rule == RULE_CROSS_LAYER for d in got.values()) == 100


def test_a_descendant_that_lost_the_cache_counts_does_not_bill_the_call() -> None:
    """The mistralai 1 SDK's own span (on with any global provider) records a call without its cache
    reads, inside OpenLIT's span of the same call, which has them (openlit-1.45.0-mistral_chat.json):
    the span that reports the cache tokens bills, though it is the ancestor (before: the SDK's span
    billed, the cached prompt priced at the input rate)."""
    openlit = cand("1", scope_name="openlit", rank=2, cache_tokens=512, response_id="cmpl-1")
    sdk = cand("2", parent_span_id="1", scope_name="mistralai_sdk_tracer", rank=0,
               start_us=1_100_000, end_us=1_900_000)  # fmt: skip
    got = decide([openlit, sdk], {})
    assert got[("t", "a" * 32, "1")] == Decision("priced", "", "")
    assert got[("t", "a" * 32, "2")] == Decision("duplicate_layer", RULE_CROSS_LAYER, "1")
    # in separate traces (OpenLLMetry's span beside the SDK's): the same, whatever the ranks
    beside = sdk._replace(trace_id="b" * 32, parent_span_id="")
    got = decide([openlit, beside], {})
    assert got[("t", "b" * 32, "2")] == Decision("duplicate_layer", RULE_CROSS_LAYER, "1")
    # a descendant with the cache counts, or of another call, or under a wrapper, still bills as before
    for below, above in (
        (sdk._replace(cache_tokens=512), openlit),
        (sdk._replace(input_tokens=99), openlit),
        (sdk, openlit._replace(kind="wrapper")),
    ):
        got = decide([above, below], {})
        assert got[("t", "a" * 32, "2")].billing_rule == ""
        assert got[("t", "a" * 32, "1")].billing_rule == RULE_DESCENDANT


def silent(span: str, **kw: object) -> Candidate:
    """A model span without usage (`not_billable`): a layer that did not record it, or a failed attempt."""
    facts: dict[str, object] = dict(input_tokens=0, output_tokens=0, quote_status="not_billable",
                                    has_usage=False, model="")  # fmt: skip
    return cand(span, **{**facts, **kw})


def test_a_model_span_without_usage_over_the_call_is_a_layer_of_it() -> None:
    """DSPy's LM span (or CrewAI's, or Logfire's Anthropic stream span) over the client library's span
    that carries the usage: one call, not two."""
    framework = cand("1", kind="wrapper", scope_name="crewai", rank=3)
    lm = silent("2", parent_span_id="1", scope_name="dspy", rank=3)
    client = cand("3", parent_span_id="2", scope_name="litellm")
    got = decide([framework, lm, client], {})
    assert got[("t", "a" * 32, "3")] == Decision("priced", "", "")
    assert got[("t", "a" * 32, "2")] == Decision("duplicate_layer", RULE_DESCENDANT, "3")
    assert got[("t", "a" * 32, "1")] == Decision("wrapper", RULE_DESCENDANT, "3")


def test_a_model_span_without_usage_below_the_call_is_a_layer_of_it() -> None:
    """An agent SDK's model span with the usage over the OpenAI instrumentor's span of the same stream
    (which lost it), or a span per streamed chunk below the call's span (through a step the pass
    knows only by its link): one call."""
    call = cand("1", scope_name="openai_agents")
    client = silent("2", parent_span_id="1", scope_name="openai", model="gpt-4o-mini")
    chunks = [silent(f"c{i}", parent_span_id="s", scope_name="openai_agents") for i in range(3)]
    got = decide([call, client, *chunks], {("t", "a" * 32, "s"): "1"})
    assert got[("t", "a" * 32, "1")] == Decision("priced", "", "")
    for layer in (client, *chunks):
        assert got[("t", "a" * 32, layer.span_id)] == Decision("duplicate_layer", RULE_WITHIN_CALL, "1")


def test_a_model_span_without_usage_with_the_response_id_of_a_call_is_a_layer_of_it() -> None:
    sdk = cand("1", trace_id="b" * 32, scope_name="sdk", rank=0, response_id="msg_1")
    other = silent("2", trace_id="c" * 32, scope_name="openllmetry", response_id="msg_1")
    got = decide([sdk, other], {})
    assert got[("t", "c" * 32, "2")] == Decision("duplicate_layer", RULE_RESPONSE_ID, "1")


def test_a_failed_attempt_beside_the_call_stays_a_call() -> None:
    """A framework's span (with the usage of the call) over a failed attempt and the retry that
    succeeded: the attempt is not a layer of the call; neither is a span without usage in a trace of its
    own of the call's own scope (another attempt), nor one below a wrapper."""
    framework = cand("1", scope_name="langchain", rank=3)
    failed = silent("2", parent_span_id="1", scope_name="openai", model="gpt-4o-mini")
    retry = cand("3", parent_span_id="1", scope_name="openai")
    alone = silent("4", trace_id="b" * 32, scope_name="openai", model="gpt-4o-mini")
    agent = cand("5", trace_id="c" * 32, kind="wrapper", scope_name="agents")
    below_agent = silent("6", trace_id="c" * 32, parent_span_id="5", scope_name="openai")
    got = decide([framework, failed, retry, alone, agent, below_agent], {})
    assert got[("t", "a" * 32, "3")] == Decision("priced", "", "")
    assert got[("t", "a" * 32, "1")] == Decision("duplicate_layer", RULE_DESCENDANT, "3")
    for key in (("t", "a" * 32, "2"), ("t", "b" * 32, "4"), ("t", "c" * 32, "6")):
        assert got[key] == Decision("not_billable", "", "")


def test_layers_without_usage_are_decided_the_same_whatever_the_order() -> None:
    facts = [
        cand("1", kind="wrapper", scope_name="crewai", rank=3),
        silent("2", parent_span_id="1", scope_name="crewai"),
        cand("3", parent_span_id="2", scope_name="litellm", response_id="r"),
        silent("4", parent_span_id="3", scope_name="chunks"),
        silent("5", trace_id="b" * 32, scope_name="other", response_id="r"),
        silent("6", trace_id="c" * 32, scope_name="failed"),
    ]
    expected = decide(facts, {})
    assert sum(d.price_status == "not_billable" for d in expected.values()) == 1
    for perm in itertools.permutations(facts):
        assert decide(list(perm), {}) == expected


def test_a_lone_layer_without_usage_is_a_layer_of_the_call_around_it_or_within_it() -> None:
    """A root span without usage (its context was lost) of the same service, model family and time as a
    call of another scope: a LangChain.js stream's OpenAI span inside LangChain's span of the call, or
    OpenLLMetry's Mistral span around the SDK's own. Not a failed one, one of the same scope, one of
    another model, or one that neither contains nor lies within the call."""
    langchain = cand("1", trace_id="b" * 32, scope_name="langchain", start_us=1_000_000, end_us=1_130_000)
    openai = silent("2", trace_id="c" * 32, scope_name="openai", model="gpt-4o-mini-2024-07-18",
                    start_us=1_012_000, end_us=1_127_000)  # fmt: skip
    sdk = cand("3", trace_id="d" * 32, scope_name="mistral_sdk", model="mistral-embed", input_tokens=12,
               start_us=5_002_000, end_us=5_005_000)  # fmt: skip
    mistral = silent("4", trace_id="e" * 32, scope_name="openllmetry", model="mistral-embed",
                     start_us=5_000_000, end_us=5_006_000)  # fmt: skip
    failed = silent("5", trace_id="f" * 32, scope_name="openai", model="gpt-4o-mini", failed=True,
                    start_us=1_020_000, end_us=1_100_000)  # fmt: skip
    same_scope = silent("6", trace_id="9" * 32, scope_name="langchain", model="gpt-4o-mini",
                        start_us=1_020_000, end_us=1_100_000)  # fmt: skip
    other_model = silent("7", trace_id="8" * 32, scope_name="openai", model="gpt-4o",
                         start_us=1_020_000, end_us=1_100_000)  # fmt: skip
    overlapping = silent("8", trace_id="7" * 32, scope_name="openai", model="gpt-4o-mini",
                         start_us=1_100_000, end_us=1_300_000)  # fmt: skip
    child = silent("9", trace_id="6" * 32, parent_span_id="x", scope_name="openai", model="gpt-4o-mini",
                   start_us=1_020_000, end_us=1_100_000)  # fmt: skip
    facts = [langchain, openai, sdk, mistral, failed, same_scope, other_model, overlapping, child]
    got = decide(facts, {})
    assert got[("t", "c" * 32, "2")] == Decision("duplicate_layer", RULE_CROSS_LAYER, "1")
    assert got[("t", "e" * 32, "4")] == Decision("duplicate_layer", RULE_CROSS_LAYER, "3")
    for c in (failed, same_scope, other_model, overlapping, child):
        assert got[(c.tenant, c.trace_id, c.span_id)] == Decision("not_billable", "", ""), c.span_id
    expected = decide(facts[:4], {})
    for perm in itertools.permutations(facts[:4]):
        assert decide(list(perm), {}) == expected


def test_a_lone_layer_belongs_to_the_nearest_call_even_one_decided_elsewhere() -> None:
    """Of two concurrent calls around a lone layer, the one whose interval is nearest its own; a call
    decided in another pass (a partner, with the span that bills it) counts as well."""
    early = cand("1", trace_id="b" * 32, scope_name="langchain", start_us=1_000_000, end_us=1_200_000)
    layer = silent("2", trace_id="c" * 32, scope_name="openai", model="gpt-4o-mini",
                   start_us=1_050_000, end_us=1_150_000)  # fmt: skip
    near = cand("3", trace_id="d" * 32, scope_name="langchain", start_us=1_040_000, end_us=1_160_000)
    assert decide([early, layer, near], {})[("t", "c" * 32, "2")].billed_by == "3"
    got = decide([early, layer], {}, partners=[(near, "sdk-span")])
    assert got[("t", "c" * 32, "2")] == Decision("duplicate_layer", RULE_CROSS_LAYER, "sdk-span")
    assert ("t", "d" * 32, "3") not in got  # a partner is not decided
