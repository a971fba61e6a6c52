"""Alert delivery: recording a crossing never waits for the webhook."""

from __future__ import annotations

import socket
import time
from datetime import UTC, datetime
from typing import Any

from tests.collector.budgets.budget_rows import seed_events
from tokenbook.collector.budgets import parse_budgets
from tokenbook.collector.budgets.alerts import AlertDispatcher
from tokenbook.collector.budgets.webhook import WebhookSender


class RecordingStore:
    database = "tokenbook"

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def command(self, sql: str, parameters: Any = None) -> None:
        self.commands.append(dict(parameters))


def test_a_hanging_webhook_does_not_delay_recording() -> None:
    """Failed before: the table insert and the webhook ran in turn on one thread, so while the webhook
    hung 1 of 2,000 crossings reached budget_events."""
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(100)  # accepts connections, never answers
    url = f"http://127.0.0.1:{hang.getsockname()[1]}/hook"
    config, problems = parse_budgets(
        {"alerts": {"webhook": {"url": url, "timeout": "30s", "max_attempts": 1}}}
    )
    assert problems == [] and config.webhook is not None
    store = RecordingStore()
    dispatcher = AlertDispatcher(log=False, webhook=WebhookSender(config.webhook), store=store)
    dispatcher.start()
    events = seed_events(datetime.now(UTC))
    try:
        for i in range(2000):
            dispatcher.publish(events[i % len(events)])
        deadline = time.monotonic() + 10
        while len(store.commands) < 2000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(store.commands) == 2000
    finally:
        hang.close()
        dispatcher.stop(0.1)
