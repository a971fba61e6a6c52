"""What a refused user query raises; the guard itself is `collector.sqlguard`.

User SQL (`tokenbook sql`, the admin query API, Grafana-style reads) is checked by `sqlguard.SqlGuard`
on the tree that ClickHouse's own parser produces, never by scanning the text: the keyword scanner that
lived here disagreed with ClickHouse about where comments and strings end (nested ``/* */``,
``$$...$$`` heredocs, backquoted identifiers), which let SETTINGS, INTO OUTFILE, system tables and
``file()`` through. `Store.query_readonly` runs what the guard accepts with ``readonly=1`` and limits.
"""

from __future__ import annotations

__all__ = ["QueryRefused"]


class QueryRefused(ValueError):
    """The SQL is not an allowed read-only query; the message says what was refused."""
