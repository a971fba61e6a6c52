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
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["TreeMemory", "TreeSample", "descendants", "tree_sample"]


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
