"""Prints what the conformance fixtures hold: per fixture, its true calls and a table of its spans.

    .venv/bin/python tests/conformance/summarize.py [--dir DIR] [--match SUBSTRING] [--all-attributes]

Each span line: the instrumentation scope and version, the span name, `gen_ai.operation.name`, the
model, the token-count attributes, the response id, and the parent (a span of the same fixture by its
index, `root`, or `ext:<id>` for a parent that is not in the fixture). Nothing is inferred: the table
shows the attributes as recorded, so the README's notes can be checked against it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests.conformance` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.conformance.otlp import FIXTURES, Span, fixture_paths, fixture_spans, load

RESPONSE_ID_KEYS = ("gen_ai.response.id", "llm.response.id", "openai.response.id")
PROVIDER_KEYS = ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system")
OPERATION_KEYS = ("gen_ai.operation.name", "llm.request.type", "openinference.span.kind")


def first(span: Span, keys: tuple[str, ...]) -> str:
    return " ".join(f"{k}={span.attributes[k]}" for k in keys if k in span.attributes) or "-"


def describe(path: Path, all_attributes: bool) -> str:
    fixture = load(path)
    spans = fixture_spans(fixture)
    ids = {s.span_id: i for i, s in enumerate(spans)}
    traces = {t: i for i, t in enumerate(dict.fromkeys(s.trace_id for s in spans))}
    lines = [f"== {path.name}  ({fixture['setup']}: {', '.join(fixture['instrumentation'])})"]
    for call in fixture["true_calls"]:
        lines.append(
            "   true: {provider} {model} {operation} stream={stream} in={input_tokens} out={output_tokens}"
            " cache_read={cache_read_tokens} cache_write={cache_write_tokens}"
            " reasoning={reasoning_tokens} id={response_id}".format(**call)
        )
    for i, s in enumerate(spans):
        if not s.parent_span_id:
            parent = "root"
        elif s.parent_span_id in ids:
            parent = f"#{ids[s.parent_span_id]}"
        else:
            parent = f"ext:{s.parent_span_id[:6]}"
        lines.append(
            f"   #{i} trace{traces[s.trace_id]} parent={parent} [{s.scope} {s.scope_version}] {s.name!r}"
            f" kind={s.kind}"
        )
        lines.append(f"      op: {first(s, OPERATION_KEYS)} | provider: {first(s, PROVIDER_KEYS)}")
        models = " ".join(
            f"{k}={v}" for k, v in s.attributes.items() if "model" in k and not isinstance(v, list)
        )
        lines.append(f"      model: {models or '-'} | id: {first(s, RESPONSE_ID_KEYS)}")
        if s.usage:
            lines.append("      usage: " + " ".join(f"{k}={v}" for k, v in sorted(s.usage.items())))
        if all_attributes:
            for k, v in sorted(s.attributes.items()):
                lines.append(f"        {k} = {str(v)[:100]!s}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=FIXTURES)
    ap.add_argument("--match", default="")
    ap.add_argument("--all-attributes", action="store_true")
    args = ap.parse_args(argv)
    for path in fixture_paths(args.dir):
        if args.match in path.name:
            print(describe(path, args.all_attributes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
