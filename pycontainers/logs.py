"""A container's log, in Docker's ``json-file`` format: what ``docker logs`` reads.

Docker's default log driver writes one JSON object per line of output, naming the stream it came from
and when the container's monitor read it::

    {"log":"Listening on 8080\\n","stream":"stdout","time":"2026-11-26T13:45:17.123456789Z"}
    {"log":"warning: no config\\n","stream":"stderr","time":"2026-11-26T13:45:17.123501234Z"}

So the log keeps stdout and stderr apart and in the order they came, and ``logs`` can give one stream
(docker-py's ``logs(stderr=False)``), times (``-t``), or a time window (``--since``, ``--until``). A line the
container has not finished yet (no newline when the monitor reads) is an entry of its own; the reader joins
them back, so the log gives back exactly the bytes written. Bytes that are not UTF-8 are kept too (JSON
strings hold them as ``\\udcXX`` escapes: Python's ``surrogateescape``), where Docker would put U+FFFD.

Who writes: a container's monitor (``runtime.OutputTee``, ``runtime.LogRelay``, ``runtime.TerminalLog``), or
the caller that holds a ``-t`` container's terminal. One writer at a time: each run of a container has one.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

TYPE_CHECKING = False  # (typing's, without importing typing: this module is on every start's path)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from datetime import datetime

LOG_NAME = "container-json.log"  # Docker's is <ID>-json.log, beside the container's config
STREAMS = ("stdout", "stderr")


def timestamp(ns: int | None = None) -> str:
    """RFC 3339 with nanoseconds, in UTC, as Docker writes them: fixed width, so they sort as text."""
    ns = time.time_ns() if ns is None else ns
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


class LogWriter:
    """Appends entries to a log file (``O_APPEND``: a second run of the container adds to the first's)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)

    def write(self, stream: str, data: bytes) -> None:
        """One entry per line of *data* (the last one may be unfinished), all in one ``write``."""
        if not data:
            return
        when = timestamp()
        records = b"".join(
            json.dumps({"log": line.decode("utf-8", "surrogateescape"), "stream": stream, "time": when},
                       separators=(",", ":")).encode() + b"\n"
            for line in data.splitlines(keepends=True))
        view = memoryview(records)
        while view:
            view = view[os.write(self.fd, view):]

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(frozen=True)
class Entry:
    """One entry of the log: a line (or the part of one that had come), its stream and time."""

    stream: str
    time: str
    data: bytes


def read_entries(path: Path, *, tail: int | None = None, since: str | None = None, until: str | None = None,
                 running: Callable[[], bool] | None = None, poll: float = 0.05) -> Iterator[Entry]:
    """The entries of the log at *path*, oldest first.

    *tail*: only the last *tail* entries of what is there now. *since*, *until*: only entries logged at or
    after, before or at, those times (``timestamp`` strings: see ``parse_time``). *running*: follow the log
    (``-f``), reading what comes until ``running()`` says the container has stopped.
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        return
    with f:
        if tail is not None:
            f.seek(_tail_start(f, tail))
        pending = b""  # an entry the monitor is still writing (read before its newline)
        while True:
            chunk = f.read(1 << 16)
            if chunk:
                *complete, pending = (pending + chunk).split(b"\n")
                for record in complete:
                    entry = _entry(record)
                    if entry and (since is None or entry.time >= since) and (until is None or entry.time <= until):
                        yield entry
                continue
            if running is None:
                return
            if not running():
                running = None  # read what was written while we looked, then stop
                continue
            time.sleep(poll)


def _entry(record: bytes) -> Entry | None:
    try:
        fields = json.loads(record)
        return Entry(fields["stream"], fields["time"], fields["log"].encode("utf-8", "surrogateescape"))
    except (ValueError, KeyError, TypeError, AttributeError):  # a line that is not an entry: skipped
        return None


def _tail_start(f, lines: int) -> int:  # noqa: ANN001 (a binary file)
    """The offset in *f* where its last *lines* lines begin (a final newline ends a line, begins none)."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    pos = end
    while pos > 0:
        size = min(1 << 16, pos)
        pos -= size
        f.seek(pos)
        block = f.read(size)
        i = len(block) - 1 if pos + size == end and block.endswith(b"\n") else len(block)
        while (i := block.rfind(b"\n", 0, i)) >= 0:
            lines -= 1
            if lines == 0:
                return pos + i + 1
    return 0


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_time(value: str | int | float | datetime, now_ns: int | None = None) -> str:
    """A time as ``--since``/``--until`` take it, as a ``timestamp`` string.

    Docker's forms: a Unix time (``1764164717``, ``1764164717.5``), an RFC 3339 time
    (``2026-11-26T13:45:17Z``, ``2026-11-26T14:45:17+01:00``, ``2026-11-26``), or a duration back from now
    (``10m``, ``1h30m``, ``2.5s``); the API's also a ``datetime``. A bad one raises ValueError naming it.
    """
    from datetime import datetime  # (only here: a start never needs it)

    now_ns = time.time_ns() if now_ns is None else now_ns
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.astimezone()  # a naive one is local time, as docker-py's
        return timestamp(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)
    if isinstance(value, int | float):
        return timestamp(int(value * 1_000_000_000))
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds, _, fraction = text.partition(".")
        return timestamp(int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9]))
    if text and _DURATION.sub("", text) == "":
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))
        return timestamp(now_ns - int(seconds * 1_000_000_000))
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{value!r} is not a time: give a Unix time, an RFC 3339 time "
                         "(2026-11-26T13:45:17Z) or a duration back from now (10m, 1h30m)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # no zone given: the local one, as Docker's client reads it
    return timestamp(int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000)
