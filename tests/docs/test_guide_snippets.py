"""The getting-started guide, run as written: every ```sh and ```python block, in order.

`docs/guide/getting-started.md` is read top to bottom; each ``sh`` block runs in ``bash -e`` and each
``python`` block in ``python -c``, in one fresh temporary directory (so a fresh store), with the
checkout's ``.venv/bin`` first on ``PATH``. Every block must exit 0; none is skipped, and a block in
any other language fails the test (so nothing the reader is told to type escapes it).

What a block needs from the harness is said in HTML comments (invisible when the page is rendered)
on the lines right before its fence, one directive per comment:

* ``<!-- run in the checkout -->``: the block runs in the repository's root instead of the
  temporary directory (installing from a checkout).
* ``<!-- run in background; ready when URL answers -->``: the block is started and left running
  (a server); the next block runs once ``GET URL`` answers 200 (within 90 s). At the end it gets
  SIGTERM and must exit 0.
* ``<!-- expect output containing "TEXT" -->``: the block's stdout must contain TEXT;
  with ``(retried for N s)`` after it, the block is run again until it does, for up to N seconds
  (data that arrives asynchronously).

Any other comment right before a fence is an error. The OpenAI API is a loopback stub
(`tests.conformance.stubs`): the guide tells the reader to set ``OPENAI_API_KEY`` (and
``OPENAI_BASE_URL`` only for an OpenAI-compatible server); the test sets both, to the stub. The
collector runs on its default ports, 4317, 4318 and 4319: the test fails at once, saying so, when
one of them is taken. The README's Python example under "Point your app at it" must be the guide's,
character for character, so the README's lines are tested too.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conformance import stubs

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "guide" / "getting-started.md"
README = REPO / "README.md"
DEFAULT_PORTS = (4317, 4318, 4319)
BLOCK_TIMEOUT = 180.0
READY_TIMEOUT = 90.0

_FENCE = re.compile(r"^```(\w*)\s*$")
_COMMENT = re.compile(r"^<!--\s*(.*?)\s*-->$")
_BACKGROUND = re.compile(r"run in background; ready when (\S+) answers")
_EXPECT = re.compile(r'expect output containing "([^"]+)"(?: \(retried for (\d+(?:\.\d+)?) s\))?')


@dataclass
class Block:
    """One fenced block of a Markdown page and the harness directives before it."""

    lang: str
    text: str
    line: int  # of the opening fence, 1-based
    in_checkout: bool = False
    ready_url: str | None = None
    expect: str | None = None
    retry_s: float = 0.0
    directives: list[str] = field(default_factory=list)

    def where(self) -> str:
        return f"{GUIDE.relative_to(REPO)}:{self.line} ({self.lang} block)"


def parse_blocks(markdown: str) -> list[Block]:
    """Every fenced block, with the directive comments on the lines right before it."""
    lines = markdown.splitlines()
    blocks: list[Block] = []
    comments: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        fence = _FENCE.match(line)
        if fence is None:
            comment = _COMMENT.match(line)
            if comment is not None:
                comments.append(comment.group(1))
            elif line:
                comments = []
            i += 1
            continue
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        block = Block(fence.group(1), "\n".join(body) + "\n", start + 1, directives=comments)
        for directive in comments:
            _apply(block, directive)
        blocks.append(block)
        comments = []
    return blocks


def _apply(block: Block, directive: str) -> None:
    if directive == "run in the checkout":
        block.in_checkout = True
    elif (m := _BACKGROUND.fullmatch(directive)) is not None:
        block.ready_url = m.group(1)
    elif (m := _EXPECT.fullmatch(directive)) is not None:
        block.expect = m.group(1)
        block.retry_s = float(m.group(2) or 0)
    else:
        raise AssertionError(f"{block.where()}: unknown harness directive <!-- {directive} -->")


def readme_python_example() -> str:
    """The ```python block of the README's "Point your app at it" section."""
    section = README.read_text(encoding="utf-8").split("## Point your app at it", 1)[1].split("\n## ", 1)[0]
    found = [b.text for b in parse_blocks(section) if b.lang == "python"]
    assert len(found) == 1, "the README's 'Point your app at it' section has one python block"
    return found[0]


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture
def openai_stub() -> Iterator[str]:
    """The loopback OpenAI API's base URL (``.../v1``)."""
    running = stubs.start()
    try:
        yield running.url + "/v1"
    finally:
        running.close()


def test_readme_example_is_the_guides() -> None:
    guide = [b.text for b in parse_blocks(GUIDE.read_text(encoding="utf-8")) if b.lang == "python"]
    assert readme_python_example() in guide, "README 'Point your app at it' differs from the guide's example"


def test_every_directive_is_known() -> None:
    blocks = parse_blocks(GUIDE.read_text(encoding="utf-8"))
    assert {b.lang for b in blocks} <= {"sh", "python"}, "the guide may only hold sh and python blocks"
    assert sum(b.ready_url is not None for b in blocks) == 1  # the collector


def test_getting_started_guide_runs_as_written(tmp_path: Path, openai_stub: str) -> None:
    taken = [p for p in DEFAULT_PORTS if _port_taken(p)]
    if taken:
        pytest.fail(
            f"port(s) {', '.join(map(str, taken))} on 127.0.0.1 are in use: the guide runs the collector on "
            "its default ports 4317/4318/4319; stop what listens there and run this test again"
        )
    blocks = parse_blocks(GUIDE.read_text(encoding="utf-8"))
    assert blocks, f"no blocks in {GUIDE}"
    work = tmp_path / "guide"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OPENAI_", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        OPENAI_API_KEY="sk-test-guide",
        OPENAI_BASE_URL=openai_stub,
        PYTHONUNBUFFERED="1",
    )
    background: list[tuple[Block, subprocess.Popen[bytes], Path]] = []
    try:
        for n, block in enumerate(blocks):
            argv = ["bash", "-e", "-c", block.text] if block.lang == "sh" else ["python", "-c", block.text]
            cwd = REPO if block.in_checkout else work
            if block.ready_url is not None:
                log = tmp_path / f"block-{n}.log"
                with log.open("wb") as out:
                    proc = subprocess.Popen(
                        argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
                    )
                background.append((block, proc, log))
                deadline = time.monotonic() + READY_TIMEOUT
                while not _answers(block.ready_url):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise AssertionError(
                            f"{block.where()}: {block.ready_url} did not answer 200 "
                            f"(exit code {proc.poll()}):\n{log.read_text(errors='replace')}"
                        )
                    time.sleep(0.2)
                continue
            _run(block, argv, cwd, env)
    finally:
        codes = []
        for block, proc, log in background:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                codes.append((block, proc.wait(60), log))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                codes.append((block, -9, log))
    for block, code, log in codes:
        assert code == 0, f"{block.where()}: exited {code} at SIGTERM:\n{log.read_text(errors='replace')}"


def _run(block: Block, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    deadline = time.monotonic() + block.retry_s
    while True:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
        shown = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        ok = proc.returncode == 0 and (block.expect is None or block.expect in proc.stdout)
        if ok:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    assert proc.returncode == 0, f"{block.where()}: exited {proc.returncode}\n{block.text}\n{shown}"
    raise AssertionError(f"{block.where()}: output lacks {block.expect!r}\n{block.text}\n{shown}")
