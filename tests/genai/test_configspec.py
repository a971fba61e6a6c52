"""The declarative config mechanism: defaults beside fields, every problem with its key path."""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass
from typing import Any, Self

import pytest

from tokenbook.genai.configspec import (
    Invalid,
    Report,
    Secret,
    boolean,
    duration,
    items,
    load,
    optional_section,
    positive_int,
    reference,
    resolve,
    section,
    setting,
    size,
)


def _pair(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list):
        raise ValueError("must be a list")
    bad = [(f"[{i}]", "must be a string") for i, x in enumerate(v) if not isinstance(x, str)]
    if bad:
        raise Invalid(bad)
    return tuple(v)


@dataclass(frozen=True, slots=True)
class Item:
    name: str = setting("", parse=str, required="a name", doc="Name.")
    weight: int = setting(1, parse=positive_int, inherit="weight", doc="Weight.")


@dataclass(frozen=True, slots=True)
class Inner:
    delay: float = setting(0.5, parse=duration, doc="Delay.")
    low: int = setting(1, parse=positive_int, doc="Low.")
    high: int = setting(10, parse=positive_int, doc="High.")

    def check(self, report: Report) -> Self:
        if report.ok() and self.high < self.low:
            report.problem("high", "must be >= low")
        return self


@dataclass(frozen=True, slots=True)
class Outer:
    weight: int = setting(5, parse=positive_int, doc="Default weight of items.")
    on: bool = setting(False, parse=boolean, doc="On.")
    tags: tuple[str, ...] = setting((), parse=_pair, doc="Tags.")
    inner: Inner = section(Inner, doc="Inner.")
    other: Inner = section(Inner, default=Inner(delay=2.0), doc="Another inner, other default.")
    extra: Inner | None = optional_section(Inner, doc="Optional.")
    things: tuple[Item, ...] = items(Item, doc="Things.")
    space: int = setting(16 * 1024 * 1024, parse=size, doc="Space.")


def test_defaults_come_from_beside_the_fields() -> None:
    cfg, problems = load(Outer, None)
    assert problems == []
    assert cfg == Outer() and cfg.inner.delay == 0.5 and cfg.other.delay == 2.0 and cfg.extra is None
    with pytest.raises(FrozenInstanceError):
        cfg.weight = 1  # type: ignore[misc]


def test_every_problem_is_reported_with_its_path() -> None:
    raw = {
        "on": "yes",
        "tags": ["a", 1],
        "inner": {"delay": "soon", "low": 5, "high": 2, "surprise": 1},
        "other": {"low": 3, "high": 2},
        "extra": [],
        "things": [{"weight": 0}, "x", {"name": "b"}],
        "nope": 1,
    }
    cfg, problems = load(Outer, raw, "top")
    assert sorted(problems) == sorted(
        [
            "top.nope: unknown key (known here: extra, inner, on, other, space, tags, things, weight)",
            "top.on: must be true or false, got 'yes'",
            "top.tags[1]: must be a string",
            "top.inner.surprise: unknown key (known here: delay, high, low)",
            "top.inner.delay: must be a duration (e.g. 2, '250ms', '1m'), got 'soon'",
            "top.other.high: must be >= low",
            "top.extra: must be a mapping",
            "top.things[0].name: required (a name)",
            "top.things[0].weight: must be a positive integer, got 0",
            "top.things[1]: must be a mapping",
        ]
    )
    assert cfg.things[-1] == Item("b", 5)  # the weight is inherited from the enclosing section


def test_reference_lists_every_key() -> None:
    rows = {r.path: r for r in reference(Outer)}
    assert rows["space"].default == "16MiB" and rows["space"].type == "size"
    assert rows["other.delay"].default == "2s" and rows["inner.delay"].default == "500ms"
    assert rows["things[].name"].default == "required"
    assert rows["things[].weight"].default == "`weight`"
    assert rows["extra"].default == "absent" and "extra.low" in rows


@dataclass(frozen=True, slots=True)
class Flat:
    size: int = setting(3, parse=positive_int, env="APP_SIZE", parse_env=lambda s: int(s), doc="")
    on: bool = setting(False, parse=boolean, env="APP_ON", doc="")


def test_resolve_takes_arguments_then_environment_then_defaults() -> None:
    assert resolve(Flat, {}, {}) == Flat()
    assert resolve(Flat, {}, {"APP_SIZE": "7", "APP_ON": "  "}) == Flat(size=7)
    assert resolve(Flat, {"size": 9}, {"APP_SIZE": "7"}) == Flat(size=9)
    with pytest.raises(ValueError, match=r"^size: must be a positive integer, got 0; APP_ON: must be true"):
        resolve(Flat, {"size": 0}, {"APP_ON": "maybe"})


def test_secrets_never_print() -> None:
    s = Secret("hunter22")
    assert "hunter22" not in f"{s} {s!r} {[s]}" and s.reveal() == "hunter22" and s == Secret("hunter22")
