"""Sizes and durations printed the way Docker prints them (its go-units package), so tables match the
lecture slides: ``96.7MB``, ``811B``, ``3 weeks ago``."""

from __future__ import annotations

import re

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


def bytes_size(size: float) -> str:
    """``BytesSize``: binary units, four significant digits (``1.203MiB``, ``15.55GiB``), as ``docker stats``
    shows memory."""
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
    i = 0
    while size >= 1024 and i < len(units) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{units[i]}"


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


_SIZE = re.compile(r"([0-9][0-9_,]*(?:\.[0-9]*)?|\.[0-9]+)\s*(?:([kmgtp])(i?))?(b?)", re.IGNORECASE)
_LARGEST = 1 << 63  # Docker keeps sizes in an int64


def parse_size(text: str, *, decimal: bool = False) -> int:
    """``512m``, ``1g``, ``100k``, ``42``, ``7.14 MiB``, ``7,14MB`` -> bytes.

    Units as Docker reads them: by default like its RAMInBytes, for memory limits (binary: 1m = 1 MiB);
    with *decimal* like its FromHumanSize, the way ``human_size`` prints sizes (1MB = 1,000,000 bytes). An
    explicit binary unit (KiB, MiB, ...) is binary either way. A comma is read only where its meaning is
    clear: thousands in ``7,140,000`` (or ``7,140.5``), a decimal point in ``7,14``; ``7,140`` is refused,
    since misreading it would be off by a factor of 1000.
    """
    stripped = text.strip()
    if stripped.startswith("-"):
        raise ValueError(f"invalid size {text!r}: a size is never negative")
    match = _SIZE.fullmatch(stripped)
    if not match:
        units = "kB, MB, GB, or KiB, MiB, GiB" if decimal else "k, m, g"
        raise ValueError(f"invalid size {text!r}: use a number with an optional unit ({units})")
    digits, unit, binary, _ = match.groups()
    base = 1024 if binary or not decimal else 1000
    size = _number(digits, text) * base ** ("kmgtp".index(unit.lower()) + 1 if unit else 0)
    if size >= _LARGEST:
        raise ValueError(f"invalid size {text!r}: that is more bytes than any disk holds")
    return round(size)


def _number(digits: str, text: str) -> float:
    """The number in *digits*, with ``_`` and ``,`` read as ``parse_size`` says."""
    digits = digits.replace("_", "")
    if "," in digits:
        whole, dot, fraction = digits.partition(".")
        groups = whole.split(",")
        thousands = 1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])
        if thousands and (dot or len(groups) > 2):
            digits = whole.replace(",", "") + dot + fraction
        elif not dot and len(groups) == 2 and groups[0] and groups[1] and not thousands:
            digits = ".".join(groups)
        elif thousands:
            raise ValueError(f"invalid size {text!r}: its comma could separate thousands or decimals, so "
                             f"write {groups[0]}.{groups[1]} or {groups[0]}{groups[1]}")
        else:
            raise ValueError(f"invalid size {text!r}: its commas are not where thousands separators go")
    return float(digits)


_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                   "h": 3600 * 10**9}


def parse_duration(text: str) -> int:
    """A Go duration (``30s``, ``1m30s``, ``1.5h``, ``100ms``, ``-5s``) in nanoseconds, as Go's
    ``time.ParseDuration`` reads it (Docker's ``--health-*`` flags, HEALTHCHECK, Compose). ValueError if it
    is not one."""
    sign = -1 if text.startswith("-") else 1
    body = text.removeprefix("-") if sign < 0 else text.removeprefix("+")
    if body == "0":
        return 0
    parts = _DURATION_PART.findall(body)
    if not parts or "".join(number + unit for number, unit in parts) != body:
        raise ValueError(f"invalid duration {text!r} (use e.g. 30s, 1m30s, 500ms)")
    return sign * round(sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts))


def go_duration(ns: int) -> str:
    """Nanoseconds as Go's ``Duration.String`` writes them: ``100ms``, ``1.5s``, ``1m30s``, ``1h0m0s``
    (Docker's "Health check exceeded timeout (30s)")."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)
    if ns < 10**9:
        unit, size = next((u, s) for u, s in (("ms", 10**6), ("µs", 10**3), ("ns", 1)) if ns >= s)
        return sign + _with_fraction(ns, size) + unit
    hours, rest = divmod(ns, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    seconds = _with_fraction(rest, 10**9) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    return f"{sign}{minutes}m{seconds}" if minutes else sign + seconds


def _with_fraction(ns: int, size: int) -> str:
    whole, fraction = divmod(ns, size)
    if not fraction:
        return str(whole)
    return f"{whole}." + str(fraction).rjust(len(str(size)) - 1, "0").rstrip("0")
