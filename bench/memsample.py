"""Memory of a process tree (the collector, its decoder and row-building processes), sampled.

Two sums, both over the process and every descendant, read from ``/proc/<pid>/smaps_rollup``:

* **RSS**: each process's resident set, added up. Pages two processes share (the interpreter's and
  the libraries' code, anything inherited over ``fork``) are counted once per process, so the sum
  overstates what the tree holds.
* **PSS** (proportional set size): each shared page is divided among the processes that map it, so
  the sum is what the tree holds in RAM, each page counted once. This is the figure the memory goal
  is stated in.

`TreeMemory` samples both every `interval` seconds on a thread and keeps the peak of each sum (the
peaks of the sums, not the sum of each process's own peak: processes peak at different moments).

Run as a script, it measures an idle collector: ``python bench/memsample.py --idle [--repeat 3]``
starts ``python -m tokenbook collector`` (this interpreter's installation) on a fresh directory,
waits until ``/readyz`` answers, lets it settle (``--settle`` seconds, no traffic) and reports the
collector process's RSS, anonymous and file-backed resident memory and its start-up peak (VmHWM),
then stops it; with another checkout's interpreter it measures that checkout. The less noisy figure
of what the collector holds before any work: the throughput benchmark's peaks add what a burst holds.

``python bench/memsample.py --inside FILE [collector options]`` runs ``tokenbook collector`` in this
process with a thread that samples its memory every 0.2 s and writes the sample at its RSS peak to
FILE (`inside_sample`: RSS, anonymous and file-backed, the engine library's pages, the C library
heap's used, free and mapped bytes, Python's allocated blocks); with the throughput benchmark:
``BENCH_COLLECTOR_SCRIPT="bench/memsample.py --inside FILE"``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, NamedTuple

from tokenbook.cli import main as tokenbook

__all__ = ["TreeMemory", "TreeSample", "descendants", "idle_collector", "inside_sample", "tree_sample"]

RESULT = Path(__file__).resolve().parent / "results" / "collector_memory_idle.json"


class TreeSample(NamedTuple):
    """One reading of a process tree, MiB."""

    rss_mib: float
    pss_mib: float
    processes: int


def descendants(pid: int) -> list[int]:
    """The child processes of `pid`, their children, and so on."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        with contextlib.suppress(OSError):  # ended meanwhile
            for task in Path(f"/proc/{parent}/task").iterdir():
                with contextlib.suppress(OSError):
                    children = [int(c) for c in (task / "children").read_text().split()]
                    found += children
                    todo += children
    return found


def _rollup(pid: int) -> tuple[int, int]:
    """(Rss, Pss) of `pid`, KiB; (0, 0) once it has ended."""
    rss = pss = 0
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="ascii")
    except OSError:
        return 0, 0
    for line in text.splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def tree_sample(pid: int, each: dict[int, tuple[int, int]] | None = None) -> TreeSample:
    """The summed RSS and PSS of `pid` and its descendants now (each process's (Rss, Pss) KiB into
    `each`, when given)."""
    pids = [pid, *descendants(pid)]
    rss = pss = 0
    for p in pids:
        r, s = _rollup(p)
        rss, pss = rss + r, pss + s
        if each is not None:
            each[p] = (r, s)
    return TreeSample(round(rss / 1024, 1), round(pss / 1024, 1), len(pids))


def _status_mib(pid: int, field: str) -> float:
    """A ``kB`` field of ``/proc/<pid>/status`` in MiB (0 once the process has ended)."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _command(pid: int) -> str:
    """What a process runs: its module (``-m``) or program."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    if b"-m" in args and args.index(b"-m") + 1 < len(args):
        return args[args.index(b"-m") + 1].decode(errors="replace")
    return args[0].decode(errors="replace")


class TreeMemory:
    """Peak summed RSS and PSS of a process tree, sampled on a thread (a context manager)."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        """Sample `pid`'s tree every `interval` seconds between `__enter__` and `__exit__`."""
        self.pid = pid
        self.interval = interval
        self.peak_rss_mib = 0.0
        self.peak_pss_mib = 0.0
        self.last = TreeSample(0.0, 0.0, 0)
        #: pid -> (command, peak RSS KiB, peak PSS KiB) of every process seen in the tree
        self.processes: dict[int, tuple[str, int, int]] = {}
        #: every sample: (monotonic seconds, the tree's summed RSS MiB, the root process's RSS MiB)
        self.series: list[tuple[float, float, float]] = []
        self.anon: list[float] = []  # the root process's anonymous resident memory (heaps), MiB
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-memory", daemon=True)

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def sample(self) -> TreeSample:
        """Take one sample now (also raising the peaks), and return it."""
        each: dict[int, tuple[int, int]] = {}
        s = tree_sample(self.pid, each)
        for p, (r, q) in each.items():
            command, peak_r, peak_q = self.processes.get(p) or (_command(p), 0, 0)
            self.processes[p] = (command, max(peak_r, r), max(peak_q, q))
        self.last = s
        self.series.append((time.monotonic(), s.rss_mib, round(each.get(self.pid, (0, 0))[0] / 1024, 1)))
        self.anon.append(_status_mib(self.pid, "RssAnon:"))
        self.peak_rss_mib = max(self.peak_rss_mib, s.rss_mib)
        self.peak_pss_mib = max(self.peak_pss_mib, s.pss_mib)
        return s

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def figures(self) -> dict[str, Any]:
        """The peaks, for a result file: of the sums, and of each process (by command)."""
        each = [
            {"command": c, "peak_rss_mib": round(r / 1024, 1), "peak_pss_mib": round(q / 1024, 1)}
            for c, r, q in self.processes.values()
        ]
        return {
            "tree_peak_rss_mib": self.peak_rss_mib,
            "tree_peak_pss_mib": self.peak_pss_mib,
            "tree_processes": sorted(each, key=lambda x: -x["peak_pss_mib"]),
        }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def idle_collector(settle: float = 8.0) -> dict[str, Any]:
    """Start a collector (this interpreter's) on a fresh directory, wait until it is ready and
    `settle` seconds more, and return its memory (MiB, ``/proc/<pid>/status``) and its start time."""
    with tempfile.TemporaryDirectory(prefix="tokenbook-idle-") as tmp:
        admin = f"127.0.0.1:{_free_port()}"
        log = open(Path(tmp) / "collector.log", "wb")  # noqa: SIM115 - closed below
        collector = subprocess.Popen(
            [sys.executable, "-m", "tokenbook", "collector", "--data-dir", str(Path(tmp) / "data"),
             "--grpc", f"127.0.0.1:{_free_port()}", "--http", f"127.0.0.1:{_free_port()}", "--admin", admin],
            stdout=log, stderr=log,
        )  # fmt: skip
        try:
            started = time.monotonic()
            while True:
                try:
                    with urllib.request.urlopen(f"http://{admin}/readyz", timeout=2):
                        break
                except (urllib.error.URLError, OSError):
                    if collector.poll() is not None or time.monotonic() - started > 120:
                        raise RuntimeError((Path(tmp) / "collector.log").read_text()) from None
                    time.sleep(0.1)
            ready_s = time.monotonic() - started
            time.sleep(settle)
            figures = {
                name: _status_mib(collector.pid, field)
                for name, field in (("rss", "VmRSS:"), ("anon", "RssAnon:"), ("file", "RssFile:"),
                                    ("start_peak", "VmHWM:"))
            }  # fmt: skip
            children = len(descendants(collector.pid))
        finally:
            collector.send_signal(signal.SIGTERM)
            code = collector.wait(120)
            log.close()
    return {
        **{f"{k}_mib": v for k, v in figures.items()},
        "seconds_to_ready": round(ready_s, 2),
        "child_processes": children,
        "exit_code": code,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2``."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                     "fordblks", "keepcost")
    ]  # fmt: skip


def inside_sample() -> dict[str, float]:
    """This process's memory now, MiB (see the module docstring; glibc and Linux only)."""
    me = os.getpid()
    out = {
        name: _status_mib(me, field)
        for name, field in (("rss", "VmRSS:"), ("anon", "RssAnon:"), ("file", "RssFile:"))
    }
    engine = 0
    mapping = ""
    for line in Path("/proc/self/smaps").read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) >= 5 and "-" in fields[0] and ":" in fields[3]:
            mapping = fields[5] if len(fields) > 5 else ""
        elif fields and fields[0] == "Rss:" and mapping.endswith("/_chdb.abi3.so"):
            engine += int(fields[1])
    out["engine_library_file"] = round(engine / 1024, 1)
    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = _MallInfo2
    heap = mallinfo2()
    out["c_heap_used"] = round(heap.uordblks / 2**20, 1)
    out["c_heap_free"] = round(heap.fordblks / 2**20, 1)
    out["c_heap_mapped_blocks"] = round(heap.hblkhd / 2**20, 1)
    out["python_allocated_blocks"] = sys.getallocatedblocks()
    out["threads"] = threading.active_count()
    return out


def _sample_inside(path: Path, interval: float = 0.2) -> None:
    """Sample this process forever; write the sample at each new RSS peak to `path`."""
    peak = 0.0
    while True:
        rss = _status_mib(os.getpid(), "VmRSS:")
        if rss > peak:
            peak = rss
            sample = {"seconds": round(time.monotonic(), 2), **inside_sample()}
            path.with_suffix(".part").write_text(json.dumps(sample), encoding="utf-8")
            path.with_suffix(".part").replace(path)
        time.sleep(interval)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``--idle``: the idle collector's memory, `--repeat` times; printed and written to `--out`."""
    parser = argparse.ArgumentParser(
        description="The memory of an idle collector (see the docstring).",
        epilog="--inside FILE [collector options]: run `tokenbook collector` in this process and write "
        "its memory to FILE at each new peak (the throughput benchmark's BENCH_COLLECTOR_SCRIPT).",
    )
    parser.add_argument("--idle", action="store_true", required=True, help="measure an idle collector")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--settle", type=float, default=8.0, help="seconds after ready, no traffic")
    parser.add_argument("--out", type=Path, default=RESULT, help="the result file")
    args = parser.parse_args(argv)
    runs = []
    for i in range(args.repeat):
        runs.append(idle_collector(args.settle))
        print(f"run {i + 1}/{args.repeat}: {json.dumps(runs[-1])}", flush=True)
    command = f".venv/bin/python bench/memsample.py --idle --repeat {args.repeat} --settle {args.settle:g}"
    doc = {"command": command, "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return doc


if __name__ == "__main__":
    if sys.argv[1:2] == ["--inside"]:
        threading.Thread(target=_sample_inside, args=(Path(sys.argv[2]),), daemon=True).start()
        sys.exit(tokenbook(["collector", *sys.argv[3:]]))
    main(sys.argv[1:])
