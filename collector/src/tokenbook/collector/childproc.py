"""A helper process of the collector, spoken to over its standard pipes.

The parent writes a request (a header, then the body whose length the header gives) and reads one
reply (a 4-byte little-endian length, then that many bytes). The decoder processes
(`decode.pool`) and the row-building workers (`ingest.buildpool`) are such processes; each of those
modules is also the program its processes run (``python -m <module>``), and each defines its own
request header.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import subprocess
import sys
from typing import IO, Final

__all__ = ["REPLY", "ChildDied", "PipeChild"]

#: The header of every reply: the reply's length.
REPLY: Final = struct.Struct("<I")
_PIPE_BYTES: Final = 1 << 20  # Linux's default maximum pipe size for unprivileged processes


class ChildDied(RuntimeError):
    """The helper process exited, or its pipes failed, before its reply was read whole."""


class PipeChild:
    """One helper process running ``python -m <module>``, used by one thread at a time.

    Its pipes are enlarged to 1 MiB where the system allows, so that a request goes in one write
    rather than 64 KiB at a time. `_request` blocks until the reply is read whole (`_ask` then
    `_answer`, for a caller that keeps several children busy at once); they raise `ChildDied` if the
    process exits or its pipes fail first (the caller replaces the process).
    """

    def __init__(self, module: str, name: str) -> None:
        """Start the process; `name` (e.g. "decoder process") is what errors call it."""
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in: IO[bytes] = self.proc.stdin
        self._out: IO[bytes] = self.proc.stdout
        for pipe in (self._in, self._out):
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)

    def _send(self, header: bytes, body: bytes) -> None:
        """Write one request (no reply is read: the process's set-up message)."""
        self._in.write(header)
        self._in.write(body)
        self._in.flush()

    def _request(self, header: bytes, body: bytes) -> bytes:
        """Write one request and return its reply."""
        self._ask(header, body)
        return self._answer()

    def _ask(self, header: bytes, body: bytes) -> None:
        """Write one request whose reply `_answer` reads (several children can work at once)."""
        try:
            self._send(header, body)
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise ChildDied(f"{self.name} failed: {exc}") from exc

    def _answer(self) -> bytes:
        """Read the reply to the request `_ask` wrote."""
        try:
            head = self._out.read(REPLY.size)
            if len(head) != REPLY.size:
                raise ChildDied(f"{self.name} exited")
            (length,) = REPLY.unpack(head)
            reply = self._out.read(length)
            if len(reply) != length:
                raise ChildDied(f"{self.name} exited mid-reply")
        except (BrokenPipeError, ValueError, OSError) as exc:
            raise ChildDied(f"{self.name} failed: {exc}") from exc
        return reply

    def close(self) -> None:
        """Close its input (the process ends when it reads the end) and wait up to 5 s, then kill it."""
        try:
            self._in.close()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self._out.close()
