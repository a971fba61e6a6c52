"""No prompt or answer text survives the default redaction, in the spans of any recorded library.

The corpus is recorded with every library's content capture off where it has a setting; what is left
is what a library writes whatever its setting says (Langfuse's and MLflow's inputs and outputs, the
CrewAI instrumentors' tasks and results, pydantic-ai's messages, LiteLLM's requests). The in-app
processor drops every content attribute before export by default (`tokenbook.genai.redaction`), so
none of the driver's prompt, system prompt or answer may remain in what it would export."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conformance.otlp import Setup, check_each, fixture_setups, fixture_spans, load
from tokenbook.genai.redaction import Redactor

#: Texts the driver sends or the stubs answer (driver.py's prompts, stubs.py's answers).
NEEDLES = ("What is the weather in Paris", "weather in Paris?", "terse weather bot", "Sunny, 21")
SETUPS = fixture_setups()


def _texts(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)


@pytest.mark.parametrize("setup", SETUPS, ids=[s.name for s in SETUPS])
def test_no_prompt_or_answer_text_survives_the_default_redaction(setup: Setup) -> None:
    check_each(setup.fixtures, _check_redacted)


def _check_redacted(path: Path) -> None:
    redactor = Redactor()
    left = set()
    for span in fixture_spans(load(path)):
        attrs = dict(span.attributes)
        redactor.apply(attrs)
        for key, value in attrs.items():
            if any(needle in text for text in _texts(value) for needle in NEEDLES):
                left.add(key)
    assert not left, f"content left in {sorted(left)}"
