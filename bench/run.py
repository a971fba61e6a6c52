"""Run every benchmark in this folder (`make bench`); each writes `bench/results/<name>.json`.

Usage: `python bench/run.py [NAME ...]` — names are module names in bench/ (default: all).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ("processor_overhead", "store_insert", "collector_throughput", "budget_gateway")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    if spec is None or spec.loader is None:
        raise SystemExit(f"bench/{name}.py not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(names: list[str]) -> int:
    for name in names or BENCHMARKS:
        print(f"== {name}", flush=True)
        _load(name).main([])  # each benchmark with its default arguments
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    choices = ", ".join(BENCHMARKS)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"one of {choices} (default: all)")
    names = parser.parse_args().names
    if unknown := [name for name in names if name not in BENCHMARKS]:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {choices}")
    sys.exit(main(names))
