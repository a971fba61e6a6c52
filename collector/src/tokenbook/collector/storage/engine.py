"""The embedded engine in this process: handing back the library pages only its start-up needed, and
the heap pages freed after a burst.

chDB is one shared library of ~550 MB. Opening the engine runs its static initializers (every
function, format and table engine registers itself), which reads ~220 MiB of its code into this
process's resident set; the code queries and inserts run afterwards is a fraction of that (~60-90
MiB). Those pages are clean copies of the file, so the kernel may drop them at any moment and read
them again on the next access: `release_startup_pages` asks it to do so now (``MADV_PAGEOUT``), after
which only the pages still in use come back. Nothing is lost: a page that was written to (relocations)
is anonymous memory, which ``MADV_PAGEOUT`` can only move to swap, never discard.

Linux 5.4 or later; elsewhere (no ``/proc``, an older kernel) nothing happens.

Memory freed by Python objects larger than 512 bytes (request bodies, row blocks, query results)
goes back to the C library's heap, which keeps it for later allocations; after a burst and its
aggregate refresh, `trim_heap` (``malloc_trim``) returns the free pages to the kernel. The engine's
own allocator is asked to do the same with a statement (`Store.release_freed_memory`).
"""

from __future__ import annotations

import ctypes
import logging
import sys
from functools import cache
from pathlib import Path
from typing import Final, NamedTuple

__all__ = ["Released", "engine_library", "release_startup_pages", "trim_heap"]

_log = logging.getLogger(__name__)

_MADV_PAGEOUT: Final = 21  # linux/mman.h, since 5.4
_ENGINE_MODULE: Final = "chdb._chdb"


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


def release_startup_pages(maps: Path = Path("/proc/self/maps")) -> Released:
    """Advise the kernel to reclaim this process's pages of the engine's library now (see the module
    docstring); `Released(0, 0)` when the engine is not loaded or the system cannot."""
    library = engine_library()
    if library is None:
        return Released(0, 0)
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
        if len(fields) < 6 or fields[5] != str(library):
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if madvise(start, end - start, _MADV_PAGEOUT) != 0:
            _log.debug("madvise(MADV_PAGEOUT) of %s failed: errno %d", library, ctypes.get_errno())
            continue
        mappings += 1
        advised += end - start
    return Released(mappings, advised)


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
