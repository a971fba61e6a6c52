"""The test harness's collector process: a start that finds a port taken for a moment still starts.

`CollectorProcess` picks its ports free, then the child binds them about a second later; meanwhile an
outgoing connection of another test process (pytest-xdist workers run side by side) may hold one as
its local port, and the child then exits with "Address already in use".
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from tests.collector.collector_process import CollectorProcess


@pytest.mark.e2e
@pytest.mark.parametrize("port", ["grpc_port", "http_port", "admin_port"])
def test_a_port_taken_for_a_moment_is_retried_on_the_same_ports(tmp_path: Path, port: str) -> None:
    collector = CollectorProcess(tmp_path / "data")
    ports = (collector.grpc_port, collector.http_port, collector.admin_port)
    held = socket.socket()
    held.bind(("127.0.0.1", getattr(collector, port)))
    held.listen()
    released = threading.Timer(2.5, held.close)  # after the first start has failed on it
    released.start()
    try:
        collector.start()
        assert (collector.grpc_port, collector.http_port, collector.admin_port) == ports
        assert "failed to start" not in collector.log()  # the failed attempt's lines are dropped
        assert collector.stop() == 0
    finally:
        released.cancel()
        held.close()
