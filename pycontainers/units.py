"""Sizes and durations printed the way Docker prints them (its go-units package), so tables match the
lecture slides: ``96.7MB``, ``811B``, ``3 weeks ago``."""

from __future__ import annotations

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from datetime import datetime

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(size: float, precision: int = 3) -> str:
    """``HumanSizeWithPrecision``: decimal units, *precision* significant digits (``1.01MB``)."""
    i = 0
    while size >= 1000 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{_DECIMAL_UNITS[i]}"


def human_duration(seconds: float) -> str:
    """``HumanDuration``: "Less than a second", "About a minute", "3 weeks", "56 years"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds // 3600) // 24 // 365} years"


def since(when: datetime, now: datetime | None = None) -> str:
    """``3 weeks ago``, as in the CREATED column."""
    from datetime import UTC, datetime

    now = now or datetime.now(UTC)
    return human_duration((now - when).total_seconds()) + " ago"


def parse_size(text: str) -> int:
    """``512m``, ``1g``, ``100k``, ``42`` -> bytes (Docker's RAMInBytes: binary multiples)."""
    t = text.strip().lower().removesuffix("b")
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}.get(t[-1:] if t else "", 1)
    number = t[:-1] if mult != 1 else t
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"invalid size {text!r}: use a number with an optional unit (k, m, g)") from None
    if value < 0:
        raise ValueError(f"invalid size {text!r}: must not be negative")
    return int(value * mult)
