"""POST an event's JSON body to the configured webhook, with bounded retries and an HMAC signature.

Headers: ``Content-Type: application/json``, ``X-Tokenbook-Event-Id`` (deduplicate on it) and,
when `alerts.webhook.secret` is set, ``X-Tokenbook-Signature: sha256=<hex>``: the HMAC-SHA256 of the
exact body bytes under the secret. A 2xx answer is success. A network error, a timeout, a 429 or a
5xx is retried up to `max_attempts` in all, after `backoff` seconds doubling up to `max_backoff`;
another 4xx is final. Runs on the alert dispatcher's thread, never on the ingest path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Final

from tokenbook.collector.budgets.config import WebhookConfig

__all__ = ["EVENT_ID_HEADER", "SIGNATURE_HEADER", "WebhookSender", "sign"]

_log = logging.getLogger(__name__)
SIGNATURE_HEADER: Final = "X-Tokenbook-Signature"
EVENT_ID_HEADER: Final = "X-Tokenbook-Event-Id"


def sign(secret: str, body: bytes) -> str:
    """The signature header value for `body`: ``sha256=`` + hex HMAC-SHA256."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Posts budget events as signed JSON to the configured URL, with retries and backoff."""

    def __init__(self, config: WebhookConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep

    def send(self, event_id: str, body: dict[str, Any]) -> bool:
        """Deliver one event; returns whether a 2xx answer came back within the attempts."""
        cfg = self.config
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: event_id}
        if cfg.secret is not None:
            headers[SIGNATURE_HEADER] = sign(cfg.secret.reveal(), data)
        delay = cfg.backoff
        for attempt in range(1, cfg.max_attempts + 1):
            request = urllib.request.Request(cfg.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=cfg.timeout) as response:
                    response.read()
                return True
            except urllib.error.HTTPError as exc:
                retryable = exc.code == 429 or exc.code >= 500
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                retryable, reason = True, str(exc)
            if not retryable or attempt == cfg.max_attempts:
                _log.error(
                    "budget webhook gave up on event %s after %d attempt(s): %s", event_id, attempt, reason
                )
                return False
            self._sleep(delay)
            delay = min(delay * 2, cfg.max_backoff)
        return False
