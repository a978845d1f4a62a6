"""What a TTL may be: seconds from 0 to ten years, or ``None`` (never expire)."""

from __future__ import annotations

from typing import Any

#: The longest TTL accepted (ten years): longer ones overflow the database cache's dates and
#: memcached's expiry times. ``None`` never expires.
MAX_TTL = 10 * 365 * 24 * 3600


def ttl_problem(ttl: Any) -> str | None:
    """Why ``ttl`` is not a usable TTL, or ``None`` when it is (seconds up to :data:`MAX_TTL`, or ``None``)."""
    if ttl is None:
        return None
    if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or not 0 <= ttl <= MAX_TTL:
        return f"{ttl!r} is invalid; use seconds from 0 to {MAX_TTL} (ten years), or None to never expire"
    return None
