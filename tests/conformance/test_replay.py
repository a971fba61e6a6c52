"""Conformance replay: every recorded fixture, through the collector's pipeline into a real store,
bills each true call exactly once at the price of its true usage (README "What is billed"). A test per
recorded setup checks each of its fixtures (`check_each`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.conformance.otlp import Setup, check_each, fixture_paths, fixture_setups, load
from tests.conformance.replay import (
    KNOWN_DEFECTS,
    billed_rows_by_tenant,
    calls_by_tenant,
    candidate_rows_by_tenant,
    decode_fixture,
    judge,
    replay_side_by_side,
)
from tests.stores import DatabasePool

PATHS = fixture_paths()
SETUPS = fixture_setups()


class Replayed(NamedTuple):
    """The rows of every fixture replayed once, by tenant (the fixture file's stem)."""

    billed: dict[str, list[dict[str, Any]]]  # `billed_rows`
    candidates: dict[str, list[dict[str, Any]]]  # `candidate_rows`
    calls: dict[str, int]  # `calls_by_tenant`


@pytest.fixture(scope="module")
def replayed(database_pool: DatabasePool) -> Iterator[Replayed]:
    """Every fixture replayed once, each as the tenant named by its file's stem, and its rows read."""
    tenants = [path.stem for path in PATHS]
    with database_pool.store() as s:
        replay_side_by_side(s, {path.stem: decode_fixture(load(path), path.stem) for path in PATHS})
        yield Replayed(
            billed_rows_by_tenant(s, tenants),
            candidate_rows_by_tenant(s, tenants),
            calls_by_tenant(s, tenants),
        )


@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
def test_each_call_is_billed_once_at_its_true_price(replayed: Replayed, setup: Setup) -> None:
    def check(path: Path) -> None:
        tenant = path.stem
        verdict = judge(load(path), replayed.billed.get(tenant, []), len(replayed.candidates.get(tenant, [])))
        if tenant in KNOWN_DEFECTS:
            assert not verdict.exact, f"{tenant} is exact now: drop it from KNOWN_DEFECTS"
            return
        assert verdict.exact, verdict.why

    check_each(setup.fixtures, check)


@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
def test_unbilled_rows_name_the_span_that_bills(replayed: Replayed, setup: Setup) -> None:
    def check(path: Path) -> None:
        rows = replayed.candidates.get(path.stem, [])
        billed = {r["span_id"] for r in rows if r["price_status"] not in ("duplicate_layer", "wrapper")}
        for r in rows:
            if r["price_status"] in ("duplicate_layer", "wrapper"):
                assert r["billing_rule"] and r["billed_by"] in billed, r
            else:
                assert (r["billing_rule"], r["billed_by"]) == ("", "")

    check_each(setup.fixtures, check)


@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
def test_each_call_counts_once(replayed: Replayed, setup: Setup) -> None:
    """The calls the aggregates count (``calls`` of ``v_context_costs``) are the calls made: a layer of a
    call that records it without usage (a framework's span over the client library's, a span per
    streamed chunk, a span whose context was lost beside the span of the call) counts as no call of its
    own."""

    def check(path: Path) -> None:
        if path.stem not in KNOWN_DEFECTS:  # (a library that misses a call misses its count too)
            true_calls = len(load(path)["true_calls"])
            counted = replayed.calls.get(path.stem, 0)
            assert counted == true_calls, f"{counted} calls counted for {true_calls}"

    check_each(setup.fixtures, check)


def _issues(replayed: Replayed, stem: str) -> list[tuple[str, str]]:
    return [(r["scope_name"], r["usage_issue"]) for r in replayed.billed.get(stem, []) if r["usage_issue"]]


#: The setups with fixtures outside `KNOWN_DEFECTS`, each with those fixtures only.
EXACT_SETUPS = [
    Setup(s.name, exact)
    for s in SETUPS
    if (exact := tuple(path for path in s.paths if path.stem not in KNOWN_DEFECTS))
]


@pytest.mark.parametrize("setup", EXACT_SETUPS, ids=[s.name for s in EXACT_SETUPS])
def test_a_library_read_by_its_profile_leaves_no_usage_issue(replayed: Replayed, setup: Setup) -> None:
    """What a library's profile knows of its counts (exclusive input, output from the total) is read
    without a guess: the billed rows of its fixtures carry no usage issue."""

    def check(path: Path) -> None:
        assert not _issues(replayed, path.stem)

    check_each(setup.fixtures, check)


def test_a_bill_read_from_a_total_says_so_on_its_row(replayed: Replayed) -> None:
    """OpenInference's LangChain spans of langchain-aws's ChatBedrock, alone (a known defect: the prompt
    count without the cache tokens, which only the total counts): the input is read from the total and
    the billed row says that its cache tokens were priced as input."""
    ((scope, issue),) = _issues(replayed, "openinference-instrumentation-langchain-0.1.80-bedrock_invoke")
    assert scope == "openinference.instrumentation.langchain"
    assert issue.startswith("input read from the total") and issue.endswith("priced as input")


def test_the_end_user_named_on_a_call_is_its_user(replayed: Replayed) -> None:
    """An app that names its end user on the call (the OpenAI API's `user` parameter, `driver.END_USER`)
    and puts no user in Baggage: the instrumentations that record it (OpenLIT's
    ``gen_ai.request.user``, OpenLLMetry's ``gen_ai.user``, LiteLLM's ``llm.user``) give the call its
    ``user_id``; a call that names none (OpenLIT records an empty value) has none."""
    stems = sorted(path.stem for path in PATHS if path.stem.endswith("-chat_user"))
    assert stems == [
        "litellm-1.110.2-chat_user",
        "openlit-1.45.0-chat_user",
        "opentelemetry-instrumentation-openai-0.62.4-chat_user",
    ]
    for stem in stems:
        assert [row["user_id"] for row in replayed.billed[stem]] == ["end-user-42"], stem
    assert [row["user_id"] for row in replayed.billed["openlit-1.45.0-chat"]] == [""]
