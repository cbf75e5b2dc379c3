"""The production clock and the local time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


def to_local(ts: datetime, tz: ZoneInfo = LOCAL_TZ) -> datetime:
    """Convert an aware UTC timestamp for display."""
    return ts.astimezone(tz)
