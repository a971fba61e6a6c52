"""Reading the conformance fixtures: the OTLP export bodies decoded into plain span records."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from tokenbook.genai import semconv

FIXTURES = Path(__file__).resolve().parents[1] / "testdata" / "conformance"

# Attribute keys that name a model, and keys that carry a token count, across the libraries recorded.
MODEL_KEYS = (
    "gen_ai.request.model",
    "gen_ai.response.model",
    "llm.model_name",
    "embedding.model_name",
    "langfuse.observation.model.name",
    "mlflow.llm.model",
)
USAGE_MARKERS = ("usage", "token_count")
# Text attributes holding a whole usage object (LiteLLM's, Langfuse's, MLflow's): usage, not a number.
USAGE_TEXT_KEYS = semconv.USAGE_OBJECTS


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    scope: str
    scope_version: str
    attributes: dict[str, Any]

    @property
    def model(self) -> str | None:
        for key in MODEL_KEYS:
            if isinstance(self.attributes.get(key), str):
                return str(self.attributes[key])
        return None

    @property
    def has_usage(self) -> bool:
        """Whether the span carries a token count, as a number or inside a usage object's text."""
        return bool(self.usage) or any(isinstance(self.attributes.get(k), str) for k in USAGE_TEXT_KEYS)

    @property
    def usage(self) -> dict[str, int | float]:
        """The numeric attributes that count tokens (`*usage*`, `*token_count*`)."""
        return {
            k: v
            for k, v in self.attributes.items()
            if any(m in k for m in USAGE_MARKERS) and isinstance(v, int | float) and not isinstance(v, bool)
        }


def any_value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, which)


def decode(body: bytes) -> list[Span]:
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(
                    Span(
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex(),
                        name=s.name,
                        kind=s.kind,
                        scope=scope_spans.scope.name,
                        scope_version=scope_spans.scope.version,
                        attributes={kv.key: any_value(kv.value) for kv in s.attributes},
                    )
                )
    return spans


def fixture_spans(fixture: dict[str, Any]) -> list[Span]:
    return [span for body in fixture["otlp"] for span in decode(base64.b64decode(body))]


def fixture_paths(directory: Path = FIXTURES) -> list[Path]:
    return sorted(p for p in directory.glob("*.json") if not p.name.startswith("_"))


class Setup(NamedTuple):
    """A recorded setup (an entry of the corpus's ``_index.json``) and the paths of its fixtures."""

    name: str
    paths: tuple[Path, ...]

    @property
    def fixtures(self) -> dict[str, Path]:
        """Its fixtures' paths by their files' stems."""
        return {path.stem: path for path in self.paths}


def fixture_setups(directory: Path = FIXTURES) -> list[Setup]:
    """The recorded setups that have fixtures, in the index's order: what the checks of every fixture
    are parametrized by (a test per setup, which checks each of its fixtures: `check_each`)."""
    index = json.loads((directory / "_index.json").read_text(encoding="utf-8"))
    return [
        Setup(name, tuple(directory / file for file in entry["fixtures"]))
        for name, entry in index.items()
        if entry.get("fixtures")
    ]


T = TypeVar("T")


def check_each(cases: Mapping[str, T], check: Callable[[T], object]) -> None:
    """Run `check` on every case, then, if any failed, fail once, naming each failed case with its
    assertion's message. The corpus's checks run a test per setup this way, not a test per fixture:
    each test item costs pytest-xdist about 3 ms of CPU (its reports go to the controller), which
    for every fixture and check came to a fifth of the in-process suite's CPU."""
    __tracebackhide__ = True
    failures = []
    for name, case in cases.items():
        try:
            check(case)
        except AssertionError as exc:
            failures.append(f"{name}: {exc}")
    if failures:
        raise AssertionError(f"{len(failures)} of {len(cases)} failed:\n\n" + "\n\n".join(failures))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def fixture_name(library: str, version: str, call_style: str, beside: str = "") -> str:
    """A fixture's file name, `<library>-<version>[+<beside>]-<call_style>.json`; a scoped npm package
    (`@scope/name`) is named `scope-name` there."""
    plus = f"+{beside}" if beside else ""
    return f"{library.removeprefix('@').replace('/', '-')}-{version}{plus}-{call_style}.json"
