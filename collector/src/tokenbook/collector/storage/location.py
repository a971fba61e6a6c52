"""Where the ledger lives: the default embedded directory, and server URLs safe to print."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit, urlunsplit

__all__ = ["DEFAULT_DATA_DIR", "redact_url"]

#: The embedded store's directory when none is given (relative to the working directory).
DEFAULT_DATA_DIR: Final = "tokenbook-data"


def redact_url(url: str) -> str:
    """`url` for logs and messages: its password replaced by ``***``, its query and fragment dropped."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
