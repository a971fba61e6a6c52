"""The e2e marker: every test that starts a process carries it, also one whose process a session
fixture starts (the HTTP test server behind `clickhouse_url`), which the per-test refusal cannot see."""

from __future__ import annotations

import pytest


def test_every_test_of_the_http_test_server_is_e2e(request: pytest.FixtureRequest) -> None:
    unmarked = [
        item.nodeid
        for item in request.session.items
        if "clickhouse_url" in getattr(item, "fixturenames", ()) and item.get_closest_marker("e2e") is None
    ]
    assert unmarked == []
