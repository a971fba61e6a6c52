"""Every file or folder of the repository that the docs name (README.md, CONTRIBUTING.md, docs/) is
there: a module, test or script that moves takes its mentions with it. A path is a word that starts
with one of the repository's top folders (`tests/...`, `bench/...`, `collector/src/...`); a module
path inside a package (`collector/storage/guard.py`) may also be written from below its `src/tokenbook/`.
Globs (`tests/collector/test_security_*.py`) must match something; placeholders in capitals or angle
brackets (`bench/configs/NAME.yaml`, `bench/results/<name>.json`) are not paths."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("collector", "processor", "genai", "cli")
TOP = ("tests", "bench", "docs", "deploy", "dashboards", "requirements", *PACKAGES)
_PATH = re.compile(rf"(?<![\w./<-])((?:{'|'.join(TOP)})/[\w*./-]*\w)")
_PLACEHOLDER = re.compile(r"[A-Z]{3,}|<")


def _documents() -> list[Path]:
    return [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _exists(path: str) -> bool:
    roots = [ROOT, *(ROOT / package / "src" / "tokenbook" for package in PACKAGES)]
    return any(next(root.glob(path), None) is not None for root in roots)


def test_every_path_the_docs_name_exists() -> None:
    missing = []
    for document in _documents():
        for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
            for match in _PATH.finditer(line):
                path = match.group(1)
                if _PLACEHOLDER.search(line[match.start() : match.end() + 1]) or _exists(path):
                    continue
                missing.append(f"{document.relative_to(ROOT)}:{number}: {path}")
    assert missing == []


def test_a_moved_path_is_found() -> None:
    assert not _exists("collector/sqlguard.py") and _exists("collector/storage/guard.py")
    assert _exists("tests/collector/test_security_*.py") and not _exists("tests/collector/test_tls.py")
