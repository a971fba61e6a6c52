"""Coverage-guided fuzzing (atheris / libFuzzer) of the OTLP decoders and usage normalization.

Not part of the test suite (pytest does not collect it). Run for a fixed number of cases:

    .venv/bin/pip install -e '.[fuzz]'
    .venv/bin/python tests/fuzz/atheris_decode.py --runs 200000

Each case picks a target from its first byte: the protobuf decoder, the OTLP/JSON decoder (both
followed by the row builder and the write-ahead-log codec, as in the collector), or `read_usage` over
attributes made from the input. The contract is the in-suite hypothesis one: a decoder returns
`Decoded` or raises `MalformedRequest`; nothing else escapes, and rows always round-trip. libFuzzer
stops at the first crash (an uncaught exception) or a case slower than ``--timeout`` seconds (a hang).
The summary (cases run, seconds, crashes) is printed and written to
``bench/results/atheris_decode.json``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RESULT = REPO / "bench" / "results" / "atheris_decode.json"


def _fuzz(argv: list[str]) -> None:
    """The libFuzzer child: instrument the code under test, then run `argv` (libFuzzer flags)."""
    import atheris

    with atheris.instrument_imports():
        from tokenbook.collector.decode.spans import MalformedRequest, decode_json, decode_protobuf
        from tokenbook.collector.ingest.rows import RowBuilder, pipeline_keys
        from tokenbook.collector.storage.rowcodec import decode_rows, encode_rows
        from tokenbook.genai import semconv
        from tokenbook.genai.pricing.catalog import PriceCatalog
        from tokenbook.genai.usage import read_usage

    keys = pipeline_keys(("team.cost_centre",), "hash")
    builder = RowBuilder(PriceCatalog(), content="hash", salt="atheris-salt")
    usage_keys = [*semconv.INPUT_TOKENS, *semconv.OUTPUT_TOKENS, *semconv.CACHE_READ_TOKENS]

    def one_input(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        target = fdp.ConsumeIntInRange(0, 2)
        if target == 2:
            attrs: dict[str, Any] = {}
            for key in usage_keys[: fdp.ConsumeIntInRange(0, len(usage_keys))]:
                kind = fdp.ConsumeIntInRange(0, 3)
                attrs[key] = (
                    fdp.ConsumeInt(9)
                    if kind == 0
                    else fdp.ConsumeRegularFloat()
                    if kind == 1
                    else fdp.ConsumeUnicodeNoSurrogates(24)
                    if kind == 2
                    else fdp.ConsumeBool()
                )
            read_usage(attrs, "anthropic")
            return
        body = fdp.ConsumeBytes(fdp.remaining_bytes())
        try:
            decoded = (decode_protobuf if target == 0 else decode_json)(body, keys)
        except MalformedRequest:
            return
        batch = builder.build(decoded.records)
        if decode_rows(encode_rows(batch.calls, batch.steps)) != (batch.calls, batch.steps):
            raise AssertionError("rows changed through the write-ahead-log codec")

    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()


_DICTIONARY = [
    *("resourceSpans", "scopeSpans", "spans", "resource", "attributes", "events", "status", "code"),
    *("traceId", "spanId", "parentSpanId", "startTimeUnixNano", "endTimeUnixNano", "name", "key"),
    *("value", "stringValue", "intValue", "doubleValue", "boolValue", "arrayValue", "values"),
    *("gen_ai.usage.input_tokens", "gen_ai.operation.name", "gen_ai.request.model", "tenant.id"),
    *("1e999", "-1", "NaN", "Infinity", "18446744073709551616", "\\ud800", "[[[[", "true", "null"),
]


def _seeds(directory: Path) -> None:
    """A small seed corpus: one valid protobuf and one valid JSON request (prefixed by the target byte)."""
    from tests.fuzz.test_decode_fuzz import VALID_JSON, VALID_PB

    (directory / "pb").write_bytes(b"\x00" + VALID_PB)
    (directory / "json").write_bytes(b"\x01" + VALID_JSON)
    (directory / "usage").write_bytes(b"\x02\x05" + b"1e999999" * 4)


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200_000, help="cases to run (default 200000)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds after which one case is a hang")
    parser.add_argument("--seed", type=int, default=1, help="libFuzzer random seed")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    flags = [f"-runs={args.runs}", f"-timeout={args.timeout}", f"-seed={args.seed}", "-max_len=4096"]
    flags.append(f"-artifact_prefix={tempfile.gettempdir()}/atheris-")
    if args.child:
        _fuzz(flags + rest)
        return {}
    with tempfile.TemporaryDirectory() as corpus:
        _seeds(Path(corpus))
        dictionary = Path(corpus) / "otlp.dict"
        dictionary.write_text("".join(f"{json.dumps(t)}\n" for t in _DICTIONARY), encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, __file__, "--child", *sys.argv[1:], f"-dict={dictionary}", corpus],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
    done = re.search(r"Done (\d+) runs in (\d+) second", proc.stderr)
    crashed = proc.returncode != 0
    result: dict[str, Any] = {
        "runs": int(done.group(1)) if done else None,
        "seconds": int(done.group(2)) if done else None,
        "crashes": 1 if crashed else 0,
        "exit_code": proc.returncode,
        "targets": ["decode_protobuf+RowBuilder", "decode_json+RowBuilder", "read_usage"],
        "command": f".venv/bin/python tests/fuzz/atheris_decode.py --runs {args.runs} --seed {args.seed}",
    }
    if crashed:
        result["crash_report"] = proc.stderr[-4000:]
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"atheris: {result['runs']} cases in {result['seconds']} s, crashes: {result['crashes']}")
    if crashed:
        print(proc.stderr[-4000:], file=sys.stderr)
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(0 if main().get("crashes", 0) == 0 else 1)
