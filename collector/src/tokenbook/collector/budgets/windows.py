"""Quota windows: `1h`, `1d` and `calendar_month`, aligned to the wall clock of an IANA time zone.

`WindowSpec.bounds(ts)` is the half-open interval ``[start, end)`` (aware UTC datetimes) that holds
`ts`. Days and months start at local midnight, so a `1d` window on a DST change lasts 23 or 25 hours;
`1h` windows start on the local hour (a 30- or 45-minute offset zone starts them at :30 or :45 UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["WINDOW_KINDS", "WindowSpec"]

WINDOW_KINDS: Final = ("1h", "1d", "calendar_month")
_TICK: Final = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A window kind and the zone its boundaries follow (validated by `parse_budgets`)."""

    kind: str  # one of WINDOW_KINDS
    timezone: str = "UTC"

    def bounds(self, ts: datetime) -> tuple[datetime, datetime]:
        """``(start, end)`` in UTC of the window that contains `ts` (an aware datetime)."""
        zone = ZoneInfo(self.timezone)
        local = ts.astimezone(zone)
        if self.kind == "1h":
            start = local.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
            return start, start + timedelta(hours=1)
        if self.kind == "1d":
            day = datetime(local.year, local.month, local.day, tzinfo=zone)
            following = day.date() + timedelta(days=1)
            end = datetime(following.year, following.month, following.day, tzinfo=zone)
            return day.astimezone(UTC), end.astimezone(UTC)
        if self.kind == "calendar_month":
            first = datetime(local.year, local.month, 1, tzinfo=zone)
            year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
            return first.astimezone(UTC), datetime(year, month, 1, tzinfo=zone).astimezone(UTC)
        raise ValueError(f"window must be one of {', '.join(WINDOW_KINDS)}, got {self.kind!r}")

    def previous(self, start: datetime) -> tuple[datetime, datetime]:
        """The window just before the one starting at `start`."""
        return self.bounds(start - _TICK)

    def describe(self) -> str:
        """The window for people, e.g. ``day`` or ``month (Europe/Paris)``."""
        return self.kind if self.timezone == "UTC" else f"{self.kind} ({self.timezone})"
