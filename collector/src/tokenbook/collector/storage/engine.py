"""The embedded engine in this process: handing back the library pages only its start-up needed, and
the heap pages freed after a burst; how soon both allocators give freed memory back.

chDB is one shared library of ~550 MB. Opening the engine runs its static initializers (every
function, format and table engine registers itself), which reads ~220 MiB of its code into this
process's resident set; the code queries and inserts run afterwards is a fraction of that (~60-90
MiB). Those pages are clean copies of the file, so the kernel may drop them at any moment and read
them again on the next access: `release_startup_pages` asks it to do so now (``MADV_PAGEOUT``), after
which only the pages still in use come back. Nothing is lost: a page that was written to (relocations)
is anonymous memory, which ``MADV_PAGEOUT`` can only move to swap, never discard. The same goes for
the libraries the engine's Python package loads with it that the store never calls (`COMPANIONS`:
chDB imports pyarrow for its Arrow results, ~22 MiB of code resident once loaded): their pages are
handed back with the engine's and, never run again, stay out. The kernel takes back only the pages
no other process maps: those another process of the same installation has loaded at the time stay.

Linux 5.4 or later; elsewhere (no ``/proc``, an older kernel) nothing happens.

Memory freed by Python objects larger than 512 bytes (request bodies, row blocks, query results)
goes back to the C library's heap, which keeps it for later allocations; after a burst and its
aggregate refresh, `trim_heap` (``malloc_trim``) returns the free pages to the kernel. The engine's
own allocator is asked to do the same with a statement (`Store.release_freed_memory`).

Between refreshes the two allocators decide alone when freed memory goes back, and under a burst
their defaults keep a lot of it: the engine's allocator (jemalloc) keeps freed pages 5 s
(``dirty_decay_ms``), ~100 MiB after the inserts and merges of a burst; the C library starts an arena
per thread up to 8 per core, and after freeing a large block raises the size from which blocks are
mapped on their own (up to 32 MiB), so that request bodies and row blocks end up in arenas whose free
space it keeps (~50 MiB). `engine_allocator_options` sets the engine's decay before its library loads
(the ``JE_MALLOC_CONF`` environment variable, read once when the library loads); `tune_heap` bounds
the C library's arenas and thresholds (``mallopt``) before the collector starts its threads.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from collections.abc import MutableMapping
from functools import cache
from pathlib import Path
from typing import Final, NamedTuple

__all__ = [
    "ALLOCATOR_ENV",
    "COMPANIONS",
    "HeapTuning",
    "Released",
    "engine_allocator_options",
    "engine_library",
    "release_startup_pages",
    "trim_heap",
    "tune_heap",
]

_log = logging.getLogger(__name__)

_MADV_PAGEOUT: Final = 21  # linux/mman.h, since 5.4
_ENGINE_MODULE: Final = "chdb._chdb"
#: Packages the engine's package imports with it whose shared libraries the store never runs: chDB
#: imports pyarrow for its Arrow APIs (results as Arrow tables), the store reads its native format.
COMPANIONS: Final = ("pyarrow",)
#: The environment variable the engine's allocator reads its options from, once, as its library loads
#: (jemalloc built with the ``je_`` prefix: ``<PREFIX>MALLOC_CONF``).
ALLOCATOR_ENV: Final = "JE_MALLOC_CONF"
# mallopt(3) parameters, malloc.h
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8


class Released(NamedTuple):
    """What `release_startup_pages` advised: mappings of the library and their bytes (address space,
    not all of it resident)."""

    mappings: int
    bytes: int


@cache
def _libc() -> ctypes.CDLL:
    """The C library's symbols in this process (looked up once: `trim_heap` runs after every refresh)."""
    return ctypes.CDLL(None, use_errno=True)


def engine_library() -> Path | None:
    """The engine's shared library, if this process has loaded it."""
    module = sys.modules.get(_ENGINE_MODULE)
    file = getattr(module, "__file__", None)
    return Path(file).resolve() if file else None


def _companion_folders() -> tuple[str, ...]:
    """The folders (with a trailing slash) of the `COMPANIONS` loaded in this process."""
    folders = []
    for name in COMPANIONS:
        file = getattr(sys.modules.get(name), "__file__", None)
        if file:
            folders.append(f"{Path(file).resolve().parent}/")
    return tuple(folders)


def release_startup_pages(maps: Path = Path("/proc/self/maps")) -> Released:
    """Advise the kernel to reclaim this process's pages of the engine's library and of its
    `COMPANIONS`' libraries now (see the module docstring); `Released(0, 0)` when the engine is not
    loaded or the system cannot."""
    library = engine_library()
    if library is None:
        return Released(0, 0)
    companions = _companion_folders()
    try:
        lines = maps.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return Released(0, 0)
    madvise = _libc().madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    mappings = advised = 0
    for line in lines:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or (fields[5] != str(library) and not fields[5].startswith(companions)):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if madvise(start, end - start, _MADV_PAGEOUT) != 0:
            _log.debug("madvise(MADV_PAGEOUT) of %s failed: errno %d", library, ctypes.get_errno())
            continue
        mappings += 1
        advised += end - start
    return Released(mappings, advised)


def engine_allocator_options(dirty_decay: float, environ: MutableMapping[str, str] | None = None) -> bool:
    """Have the engine's allocator return freed pages to the kernel `dirty_decay` seconds after they
    are freed (0: at once) instead of its built-in 5 s, by its environment variable (`ALLOCATOR_ENV`);
    options already in it (set by the operator) come after, so they win. False when the engine's library
    is already loaded in this process: its allocator read its options then, and this changes nothing."""
    env = os.environ if environ is None else environ
    if engine_library() is not None:
        return False
    given = env.get(ALLOCATOR_ENV, "")
    ours = f"dirty_decay_ms:{round(dirty_decay * 1000)}"
    env[ALLOCATOR_ENV] = f"{ours},{given}" if given else ours
    return True


class HeapTuning(NamedTuple):
    """The C library heap's parameters (``mallopt``); 0 leaves one at the C library's default."""

    arenas: int
    mmap_threshold: int
    trim_threshold: int


def tune_heap(tuning: HeapTuning) -> bool:
    """Set the C library heap's arena count and thresholds in this process (glibc's ``mallopt``;
    effective for arenas and blocks created afterwards). False where the C library has no such call or
    refuses a value."""
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = True
    for parameter, value in (
        (_M_ARENA_MAX, tuning.arenas),
        (_M_MMAP_THRESHOLD, tuning.mmap_threshold),
        (_M_TRIM_THRESHOLD, tuning.trim_threshold),
    ):
        if value and mallopt(parameter, value) != 1:
            _log.warning("mallopt(%d, %d) refused", parameter, value)
            done = False
    return done


def trim_heap() -> bool:
    """Return the C library heap's free pages to the kernel (glibc's ``malloc_trim``); False where the
    C library has no such call."""
    try:
        malloc_trim = _libc().malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = [ctypes.c_size_t]
    malloc_trim.restype = ctypes.c_int
    malloc_trim(0)
    return True
