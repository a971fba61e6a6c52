"""The guide, run as written: every ```sh and ```python block of every page, in order.

Each page of `docs/guide/` is read top to bottom; each ``sh`` block runs in ``bash -e`` and each
``python`` block in ``python -c``, in one fresh temporary directory per page (so a fresh store), with
the ``bin`` folder of the environment running the suite first on ``PATH`` (the checkout's ``.venv``
under ``make test``, ``.venv-latest`` under ``make test-latest``). Every block must exit 0; none is
skipped. Blocks in other languages (``yaml``, ``json``, ``sql``, or none: a synopsis) are
illustrations and are not run, unless a directive saves them as a file; `getting-started.md` may hold
only ``sh`` and ``python`` blocks, so nothing a newcomer is told to type escapes the test.

What a block needs from the harness is said in HTML comments (invisible when the page is rendered)
on the lines right before its fence, one directive per comment:

* ``<!-- run in the checkout -->``: the block runs in the repository's root instead of the
  temporary directory (installing from a checkout).
* ``<!-- run in a copy of the checkout -->``: the block runs in a copy of the repository's tracked
  files (an install from a checkout that must not leave build files in the real one).
* ``<!-- run in a new virtualenv -->``: from this block on, the page runs in a new virtualenv (an
  application's own environment). It sees the packages of the environment running the suite (so
  that pip installs nothing from the network: ``PIP_NO_INDEX``), and what the block installs goes
  into it.
* ``<!-- run in background; ready when URL answers -->``: the block is started and left running
  (a server); the next block runs once ``GET URL`` answers 200 (within 90 s). At the end it gets
  SIGTERM and must exit 0.
* ``<!-- expect output containing "TEXT" -->``: the block's stdout must contain TEXT;
  with ``(retried for N s)`` after it, the block is run again until it does, for up to N seconds
  (data that arrives asynchronously).
* ``<!-- expect the output shown below -->``: the next ``text`` block of the page is what the block
  prints: each of its lines, in order, must be a line of the block's stdout, whitespace aside, where
  a word ``...`` (or ``…``) stands for any text and a line of only ``...`` for lines left out
  (`tests.docs.samples.shows`). A sample output in the guide stays what the commands print.
* ``<!-- save as NAME -->``: the block is not run but written to the file NAME in the page's
  directory (a script or a config file that a later block uses).

A page whose examples talk to a running collector, as the reader's does after the getting-started
guide, says so once, anywhere outside a block: ``<!-- this page runs with a collector -->``. The
harness then starts ``tokenbook collector`` in the page's directory before the first block, on the
default ports, and stops it (SIGTERM, exit 0) after the last.

Any other comment right before a fence is an error. The OpenAI API is a loopback stub
(`tests.conformance.stubs`): the guide tells the reader to set ``OPENAI_API_KEY`` (and
``OPENAI_BASE_URL`` only for an OpenAI-compatible server); the test sets both, to the stub. The
collector runs on its default ports, 4317, 4318 and 4319: the test fails at once, saying so, when
one of them is taken. The README's Python example under "Point your app at it" must be the
getting-started guide's, character for character, so the README's lines are tested too.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conformance import stubs
from tests.docs.samples import shows

# The collector runs on its default ports: under pytest-xdist these tests share one worker.
pytestmark = pytest.mark.e2e  # on the default ports: one module, so one worker under --dist loadfile

REPO = Path(__file__).resolve().parents[2]
ENV_BIN = Path(sys.executable).parent  # the running environment's scripts (not resolved: a venv's link)
GUIDE_DIR = REPO / "docs" / "guide"
GETTING_STARTED = GUIDE_DIR / "getting-started.md"
README = REPO / "README.md"
DEFAULT_PORTS = (4317, 4318, 4319)
COLLECTOR_READY = "http://127.0.0.1:4319/readyz"
BLOCK_TIMEOUT = 180.0
READY_TIMEOUT = 90.0
RUN = {"sh", "python"}
ILLUSTRATIONS = {"", "yaml", "json", "sql", "text"}

_FENCE = re.compile(r"^```(\w*)\s*$")
_COMMENT = re.compile(r"^<!--\s*(.*?)\s*-->$")
_BACKGROUND = re.compile(r"run in background; ready when (\S+) answers")
_EXPECT = re.compile(r'expect output containing "([^"]+)"(?: \(retried for (\d+(?:\.\d+)?) s\))?')
_SAVE = re.compile(r"save as ([\w.-]+)")
_SHOWN_BELOW = "expect the output shown below"
_WITH_COLLECTOR = "this page runs with a collector"


@dataclass
class Block:
    """One fenced block of a Markdown page and the harness directives before it."""

    lang: str
    text: str
    where: str  # page:line of the opening fence
    in_checkout: bool = False
    in_copy: bool = False
    new_venv: bool = False
    ready_url: str | None = None
    expect: str | None = None
    retry_s: float = 0.0
    save_as: str | None = None
    shown_below: bool = False  # `shown` is the page's next text block
    shown: str | None = None
    directives: list[str] = field(default_factory=list)


@dataclass
class Page:
    """A guide page: its blocks, and whether it runs with a collector."""

    path: Path
    blocks: list[Block]
    with_collector: bool

    @property
    def runnable(self) -> list[Block]:
        """The blocks the harness runs or saves."""
        return [b for b in self.blocks if b.lang in RUN or b.save_as is not None]


def parse_page(path: Path, markdown: str | None = None) -> Page:
    """Every fenced block of a page, with the directive comments on the lines right before it."""
    text = path.read_text(encoding="utf-8") if markdown is None else markdown
    lines = text.splitlines()
    blocks: list[Block] = []
    comments: list[str] = []
    with_collector = False
    name = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        fence = _FENCE.match(line)
        if fence is None:
            comment = _COMMENT.match(line)
            if comment is not None and comment.group(1) == _WITH_COLLECTOR:
                with_collector = True
            elif comment is not None:
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
        block = Block(fence.group(1), "\n".join(body) + "\n", f"{name}:{start + 1} ({fence.group(1)} block)")
        block.directives = comments
        for directive in comments:
            _apply(block, directive)
        blocks.append(block)
        comments = []
    for n, block in enumerate(blocks):
        if block.shown_below:
            shown = next((b for b in blocks[n + 1 :] if b.lang == "text"), None)
            assert shown is not None, f"{block.where}: no text block below shows its output"
            block.shown = shown.text
    return Page(path, blocks, with_collector)


def _apply(block: Block, directive: str) -> None:
    if directive == "run in the checkout":
        block.in_checkout = True
    elif directive == "run in a copy of the checkout":
        block.in_copy = True
    elif directive == "run in a new virtualenv":
        block.new_venv = True
    elif (m := _BACKGROUND.fullmatch(directive)) is not None:
        block.ready_url = m.group(1)
    elif (m := _EXPECT.fullmatch(directive)) is not None:
        block.expect = m.group(1)
        block.retry_s = float(m.group(2) or 0)
    elif (m := _SAVE.fullmatch(directive)) is not None:
        block.save_as = m.group(1)
    elif directive == _SHOWN_BELOW:
        block.shown_below = True
    else:
        raise AssertionError(f"{block.where}: unknown harness directive <!-- {directive} -->")


def guide_pages() -> list[Page]:
    """Every page of the guide that has a block to run."""
    pages = [parse_page(p) for p in sorted(GUIDE_DIR.glob("*.md"))]
    return [p for p in pages if p.runnable]


def readme_python_example() -> str:
    """The ```python block of the README's "Point your app at it" section."""
    section = README.read_text(encoding="utf-8").split("## Point your app at it", 1)[1].split("\n## ", 1)[0]
    found = [b.text for b in parse_page(README, section).blocks if b.lang == "python"]
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


@pytest.fixture(scope="module")
def openai_stub() -> Iterator[str]:
    """The loopback OpenAI API's base URL (``.../v1``)."""
    running = stubs.start()
    try:
        yield running.url + "/v1"
    finally:
        running.close()


def test_readme_example_is_the_guides() -> None:
    guide = [b.text for b in parse_page(GETTING_STARTED).blocks if b.lang == "python"]
    assert readme_python_example() in guide, "README 'Point your app at it' differs from the guide's example"


def test_a_shown_output_is_matched_line_by_line_in_order() -> None:
    printed = "3 rows\ninitech  USD   72   24   3,131,776   7.137509\nacme  USD  81  0  547,899  2.033310\n"
    assert shows("initech USD 72 24 ... 7.137509\n...\nacme  USD  81  0  ...  2.033310\n", printed)
    assert not shows("acme USD 81 0 ... 2.033310\ninitech USD 72 24 ... 7.137509\n", printed)  # order
    assert not shows("acme USD 82 0 ... 2.051310\n", printed)  # a stale figure


def test_every_block_and_directive_is_known() -> None:
    started = parse_page(GETTING_STARTED)
    assert {b.lang for b in started.blocks} <= RUN, "getting-started.md may only hold sh and python blocks"
    assert sum(b.ready_url is not None for b in started.blocks) == 1  # the collector
    for path in sorted(GUIDE_DIR.glob("*.md")):
        for block in parse_page(path).blocks:
            assert block.lang in RUN | ILLUSTRATIONS, f"{block.where}: a language the harness does not know"


def _copy_checkout(dest: Path) -> Path:
    """The checkout's tracked files, copied to `dest`."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in listed.decode().split("\0"):
        if name and (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def _new_venv(dest: Path, env: dict[str, str]) -> None:
    """An application's virtualenv at `dest` that resolves every requirement from the environment
    running the suite.

    Its own setuptools (from ensurepip, too old for the project's metadata) is removed so that
    installs from a checkout build with the locked one.
    """
    subprocess.run([sys.executable, "-m", "venv", str(dest)], check=True, timeout=BLOCK_TIMEOUT)
    python = dest / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "checkout-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "setuptools"], check=True)
    env.update(
        PATH=f"{dest / 'bin'}{os.pathsep}{env['PATH']}",
        VIRTUAL_ENV=str(dest),
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",  # pip's inverted switch: build with the packages already installed
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )


class _Background:
    """Processes a page leaves running; each gets SIGTERM at the end and must exit 0."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, where: str, argv: list[str], cwd: Path, env: dict[str, str], ready_url: str) -> None:
        log = self.logs / f"background-{len(self.running)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.running.append((where, proc, log))
        deadline = time.monotonic() + READY_TIMEOUT
        while not _answers(ready_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                shown = log.read_text(errors="replace")
                raise AssertionError(f"{where}: {ready_url} answered no 200 (exit {proc.poll()}):\n{shown}")
            time.sleep(0.2)

    def stop(self) -> list[tuple[str, int, Path]]:
        codes = []
        for where, proc, log in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                codes.append((where, proc.wait(60), log))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                codes.append((where, -9, log))
        return codes


@pytest.mark.parametrize("page", guide_pages(), ids=lambda p: p.path.name)
def test_guide_page_runs_as_written(page: Page, tmp_path: Path, openai_stub: str) -> None:
    taken = [p for p in DEFAULT_PORTS if _port_taken(p)]
    if taken:
        pytest.fail(
            f"port(s) {', '.join(map(str, taken))} on 127.0.0.1 are in use: the guide runs the collector on "
            "its default ports 4317/4318/4319; stop what listens there and run this test again"
        )
    work = tmp_path / "guide"
    work.mkdir()
    inherited = ("OTEL_", "OPENAI_", "VIRTUAL_ENV", "PIP_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(inherited)}
    env.update(
        PATH=f"{ENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        OPENAI_API_KEY="sk-test-guide",
        OPENAI_BASE_URL=openai_stub,
        PYTHONUNBUFFERED="1",
    )
    copy: Path | None = None
    background = _Background(tmp_path)
    try:
        if page.with_collector:
            where = f"{page.path.name} (its collector)"
            background.start(where, ["tokenbook", "collector"], work, env, COLLECTOR_READY)
        for block in page.runnable:
            if block.save_as is not None:
                (work / block.save_as).write_text(block.text, encoding="utf-8")
                continue
            if block.new_venv:
                _new_venv(tmp_path / "app-venv", env)
            cwd = work
            if block.in_checkout:
                cwd = REPO
            elif block.in_copy:
                copy = copy or _copy_checkout(tmp_path / "checkout")
                cwd = copy
            argv = ["bash", "-e", "-c", block.text] if block.lang == "sh" else ["python", "-c", block.text]
            if block.ready_url is not None:
                background.start(block.where, argv, cwd, env, block.ready_url)
            else:
                _run(block, argv, cwd, env)
    finally:
        codes = background.stop()
    for where, code, log in codes:
        assert code == 0, f"{where}: exited {code} at SIGTERM:\n{log.read_text(errors='replace')}"


def _run(block: Block, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    deadline = time.monotonic() + block.retry_s
    while True:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
        shown = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        ok = (
            proc.returncode == 0
            and (block.expect is None or block.expect in proc.stdout)
            and (block.shown is None or shows(block.shown, proc.stdout))
        )
        if ok:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    assert proc.returncode == 0, f"{block.where}: exited {proc.returncode}\n{block.text}\n{shown}"
    if block.expect is not None and block.expect not in proc.stdout:
        raise AssertionError(f"{block.where}: output lacks {block.expect!r}\n{block.text}\n{shown}")
    raise AssertionError(f"{block.where}: output is not what the page shows:\n{block.shown}\n{shown}")
