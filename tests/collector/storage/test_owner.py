"""Ownership of an embedded data directory (`collector.json`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tokenbook.collector.storage.owner import OWNER_FILE, DirectoryOwned, claim, current_owner, release

# starts processes; names the default admin port, so it shares the guide tests' pytest-xdist worker
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("default-ports")]


def test_claim_and_release(tmp_path):
    assert current_owner(tmp_path) is None
    claim(tmp_path, "127.0.0.1:4319")
    assert json.loads((tmp_path / OWNER_FILE).read_text()) == {"pid": os.getpid(), "admin": "127.0.0.1:4319"}
    assert current_owner(tmp_path) is None  # this process is the owner: it reads its own store directly
    claim(tmp_path, "127.0.0.1:4320")  # re-claiming by the owner is allowed
    release(tmp_path)
    assert not (tmp_path / OWNER_FILE).exists()


def test_live_owner_is_reported_and_refuses_another_claim(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / OWNER_FILE).write_text(json.dumps({"pid": other.pid, "admin": "127.0.0.1:5000"}))
        assert current_owner(tmp_path) == "127.0.0.1:5000"
        with pytest.raises(DirectoryOwned, match=f"pid {other.pid}"):
            claim(tmp_path, "127.0.0.1:4319")
        release(tmp_path)  # not ours: left alone
        assert (tmp_path / OWNER_FILE).exists()
    finally:
        other.kill()
        other.wait()
    # The owner died: its claim is stale and can be taken over.
    assert current_owner(tmp_path) is None
    claim(tmp_path, "127.0.0.1:4319")
    assert json.loads((tmp_path / OWNER_FILE).read_text())["pid"] == os.getpid()


def test_unreadable_claim_is_ignored(tmp_path):
    (tmp_path / OWNER_FILE).write_text("{not json")
    assert current_owner(tmp_path) is None
