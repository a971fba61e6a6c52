"""Run the real `tokenbook` command on a pseudo-terminal of a given width, as a user's terminal would."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import sys
import termios


def run_on_pty(
    args: list[str], columns: int, *, timeout: float = 120, cwd: str | None = None
) -> tuple[int, str]:
    """(exit code, what the terminal showed) of `python -m tokenbook ARGS` on a `columns`-wide pty."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {**os.environ, "COLUMNS": str(columns), "LINES": "50", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tokenbook", *args],
        stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


if __name__ == "__main__":
    code, text = run_on_pty(sys.argv[2:], int(sys.argv[1]))
    print(text, end="")
    print(f"[exit {code}]")
