"""Who owns an embedded data directory.

chDB allows one process per data directory. The collector `claim()`s the directory at start: it
writes `<data_dir>/collector.json` with its pid and admin address, and `release()`s it at exit.
CLI readers call `current_owner()`: when a live collector owns the directory they query it through
its admin API instead of opening the directory. A claim left by a dead process is stale and is
taken over.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

__all__ = ["OWNER_FILE", "DirectoryOwned", "claim", "current_owner", "release"]

_log = logging.getLogger(__name__)

OWNER_FILE = "collector.json"


class DirectoryOwned(RuntimeError):
    """Another live process owns the data directory."""


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _read(data_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((data_dir / OWNER_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        _log.warning("ignoring unreadable %s: %s", data_dir / OWNER_FILE, exc)
        return None
    return data if isinstance(data, dict) else None


def _live_owner(data_dir: Path) -> dict[str, object] | None:
    data = _read(data_dir)
    if data is None:
        return None
    pid = data.get("pid")
    return data if isinstance(pid, int) and _pid_alive(pid) else None


def current_owner(data_dir: str | Path) -> str | None:
    """The admin address (`host:port`) of the live collector owning `data_dir`, else None."""
    data = _live_owner(Path(data_dir))
    if data is None or data.get("pid") == os.getpid():
        return None
    admin = data.get("admin")
    return admin if isinstance(admin, str) else None


def claim(data_dir: str | Path, admin_address: str) -> None:
    """Record this process as the owner of `data_dir`; raise `DirectoryOwned` if a live one exists."""
    path = Path(data_dir)
    path.mkdir(parents=True, exist_ok=True)
    owner = _live_owner(path)
    if owner is not None and owner.get("pid") != os.getpid():
        raise DirectoryOwned(
            f"{path} is owned by a running collector (pid {owner.get('pid')}, admin {owner.get('admin')}); "
            "stop it or use another --data-dir"
        )
    tmp = path / f".{OWNER_FILE}.{os.getpid()}"
    tmp.write_text(json.dumps({"pid": os.getpid(), "admin": admin_address}), encoding="utf-8")
    tmp.replace(path / OWNER_FILE)


def release(data_dir: str | Path) -> None:
    """Remove this process's claim on `data_dir` (a claim by another process is left alone)."""
    path = Path(data_dir)
    data = _read(path)
    if data is not None and data.get("pid") == os.getpid():
        (path / OWNER_FILE).unlink(missing_ok=True)
