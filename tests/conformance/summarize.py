"""Prints what the conformance fixtures hold: per fixture, its true calls and a table of its spans.

    .venv/bin/python tests/conformance/summarize.py [--dir DIR] [--match SUBSTRING] [--all-attributes]
    .venv/bin/python tests/conformance/summarize.py --report   # Markdown tables for the README

Each span line: the instrumentation scope and version, the span name, `gen_ai.operation.name`, the
model, the token-count attributes, the response id, and the parent (a span of the same fixture by its
index, `root`, or `ext:<id>` for a parent that is not in the fixture). Nothing is inferred: the table
shows the attributes as recorded, so the README's notes can be checked against it.

`--report` compares each usage span with the stub's true usage of the call it records (matched by
response id, else by its input or output count) and prints, per setup and instrumentation scope, which
attribute carries each count and whether it agrees with the truth (`input` says `inclusive` or
`exclusive` of cache tokens), then, per fixture, how many spans record each call and how they relate.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


INPUT_KEYS = ("gen_ai.usage.input_tokens", "llm.token_count.prompt", "gen_ai.usage.prompt_tokens")
OUTPUT_KEYS = ("gen_ai.usage.output_tokens", "llm.token_count.completion", "gen_ai.usage.completion_tokens")
MODEL_ATTRS = ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "embedding.model_name")


def _is_cache_read(k: str) -> bool:
    return "cache_read" in k or k.endswith("cached_tokens")


def _is_cache_write(k: str) -> bool:
    return ("cache_write" in k or "cache_creation" in k) and "ephemeral" not in k


def _is_reasoning(k: str) -> bool:
    return "reasoning" in k or "thinking" in k


def usage_spans(spans: list[Span]) -> list[Span]:
    return [s for s in spans if s.model and s.has_usage]


def match_call(span: Span, calls: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The true call a usage span records: by response id, else by an input or output count."""
    rid = next((span.attributes[k] for k in RESPONSE_ID_KEYS if k in span.attributes), None)
    if rid is not None:
        return next((c for c in calls if c["response_id"] == rid), None)
    ins = {span.attributes[k] for k in INPUT_KEYS if k in span.attributes}
    outs = {span.attributes[k] for k in OUTPUT_KEYS if k in span.attributes}
    for c in calls:
        exclusive = c["input_tokens"] - c["cache_read_tokens"] - c["cache_write_tokens"]
        if ins & {c["input_tokens"], exclusive} or (c["output_tokens"] and c["output_tokens"] in outs):
            return c
    return calls[0] if len(calls) == 1 else None


def _compare(span: Span, keys: list[str], true: int, how: Callable[[int, int], str]) -> str:
    if not keys:
        return "—" if true == 0 else f"none (true {true})"
    return "; ".join(f"`{k}` {how(span.attributes[k], true)}" for k in keys)


def _equal(value: int, true: int) -> str:
    return "=" if value == true else f"≠ ({value} vs {true})"


def verdicts(span: Span, call: dict[str, Any]) -> dict[str, str]:
    keys = list(span.usage)
    inclusive = call["input_tokens"]
    exclusive = inclusive - call["cache_read_tokens"] - call["cache_write_tokens"]

    def input_how(value: int, _: int) -> str:
        if value == inclusive:
            return "inclusive" if inclusive != exclusive else "="
        if value == exclusive:
            return "exclusive of cache"
        return f"≠ ({value} vs {inclusive})"

    model_keys = [k for k in MODEL_ATTRS if k in span.attributes]
    return {
        "model": ", ".join(f"`{k}`" for k in model_keys),
        "input": _compare(span, [k for k in INPUT_KEYS if k in keys], inclusive, input_how),
        "output": _compare(span, [k for k in OUTPUT_KEYS if k in keys], call["output_tokens"], _equal),
        "cache read": _compare(
            span, [k for k in keys if _is_cache_read(k)], call["cache_read_tokens"], _equal
        ),
        "cache write": _compare(
            span, [k for k in keys if _is_cache_write(k)], call["cache_write_tokens"], _equal
        ),
        "reasoning": _compare(span, [k for k in keys if _is_reasoning(k)], call["reasoning_tokens"], _equal),
        "response id": next((f"`{k}`" for k in RESPONSE_ID_KEYS if k in span.attributes), "none"),
        "operation": ", ".join(str(span.attributes[k]) for k in OPERATION_KEYS if k in span.attributes),
    }


def relation(spans: list[Span]) -> str:
    """How the spans that record one call relate: by scope, parent and trace."""
    if len(spans) == 1:
        return "1 span"
    ids = {s.span_id: s for s in spans}
    parts = []
    for s in spans:
        parent = ids.get(s.parent_span_id)
        if parent is not None:
            parts.append(f"{s.scope} child of {parent.scope}")
    same_trace = len({s.trace_id for s in spans}) == 1
    if not parts:
        ancestry = "same trace, not parent and child" if same_trace else "separate traces"
        parts.append(f"{' / '.join(sorted(s.scope for s in spans))}: {ancestry}")
    return f"{len(spans)} spans: " + "; ".join(parts)


FIELDS = ("model", "input", "output", "cache read", "cache write", "reasoning", "response id", "operation")


def report(paths: list[Path]) -> str:
    # (setup, scope) -> field -> verdict -> call styles
    table: dict[tuple[str, str], dict[str, dict[str, list[str]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    names: dict[tuple[str, str], set[str]] = defaultdict(set)
    layers: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in paths:
        fixture = load(path)
        calls = fixture["true_calls"]
        by_call: dict[str, list[Span]] = defaultdict(list)
        for span in usage_spans(fixture_spans(fixture)):
            row = (fixture["setup"], f"{span.scope} {span.scope_version}".strip())
            names[row].add(span.name)
            call = match_call(span, calls)
            if call is None:
                table[row]["input"]["unmatched span"].append(fixture["call_style"])
                continue
            by_call[str(call["response_id"]) + str(call["input_tokens"])].append(span)
            for field, verdict in verdicts(span, call).items():
                table[row][field][verdict].append(fixture["call_style"])
        for spans in by_call.values():
            layers[fixture["setup"]][relation(spans)].append(fixture["call_style"])

    out = ["| setup | scope | span names | " + " | ".join(FIELDS) + " |", "|---" * (len(FIELDS) + 3) + "|"]
    for (setup, scope), fields in sorted(table.items()):
        cells = []
        for field in FIELDS:
            verdicts_ = fields.get(field, {})
            if len(verdicts_) == 1:
                cells.append(next(iter(verdicts_)))
            else:
                cells.append(
                    "<br>".join(f"{v} ({', '.join(sorted(set(st)))})" for v, st in verdicts_.items())
                )
        out.append(
            f"| {setup} | `{scope}` | {', '.join(sorted(names[(setup, scope)]))} | "
            + " | ".join(cells)
            + " |"
        )
    out += ["", "| setup | spans recording one call | call styles |", "|---|---|---|"]
    for setup, relations in sorted(layers.items()):
        for rel, styles in relations.items():
            out.append(f"| {setup} | {rel} | {', '.join(sorted(set(styles)))} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=FIXTURES)
    ap.add_argument("--match", default="")
    ap.add_argument("--all-attributes", action="store_true")
    ap.add_argument("--report", action="store_true", help="Markdown tables: attributes vs the true usage")
    args = ap.parse_args(argv)
    if args.report:
        print(report([p for p in fixture_paths(args.dir) if args.match in p.name]))
        return 0
    for path in fixture_paths(args.dir):
        if args.match in path.name:
            print(describe(path, args.all_attributes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
