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
from collections import namedtuple
from json.encoder import encode_basestring_ascii as escape  # (C: a JSON string, quotes and all)
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


MAX_ENTRY = 16 * 1024  # a longer line is logged in pieces of this size, as Docker's


class LogWriter:
    """Appends entries to a log file (``O_APPEND``: a second run of the container adds to the first's).

    An entry is a line: what comes of a line is held until its newline, as Docker's copier holds it, unless
    it reaches ``MAX_ENTRY`` bytes or the stream ends (``close``). A log that cannot be written (a full disk)
    is given up, and the container goes on: its output still reaches an attached caller.
    """

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.pending: dict[str, bytes] = {}  # per stream: the start of a line whose newline has not come

    def write(self, stream: str, data: bytes) -> None:
        """Log the lines *data* completes, in one ``write``; keep the rest for later."""
        *lines, rest = (self.pending.pop(stream, b"") + data).split(b"\n")
        pieces = [line + b"\n" for line in lines]
        if len(rest) >= MAX_ENTRY:
            cut = len(rest) - len(rest) % MAX_ENTRY
            pieces.append(rest[:cut])  # (split in MAX_ENTRY pieces by _append)
            rest = rest[cut:]
        if rest:
            self.pending[stream] = rest
        self._append(stream, pieces)

    def _append(self, stream: str, pieces: list[bytes]) -> None:
        if not pieces or self.fd < 0:
            return
        # {"log":...,"stream":...,"time":...} with the text escaped by json's C encoder: the monitor of a
        # chatty container formats every line it outputs, so this is the fast way round json.dumps.
        tail = f',"stream":"{stream}","time":"{timestamp()}"}}\n'.encode()
        records = b"".join(
            b'{"log":' + escape(piece[i:i + MAX_ENTRY].decode("utf-8", "surrogateescape")).encode() + tail
            for piece in pieces for i in range(0, max(len(piece), 1), MAX_ENTRY))
        view = memoryview(records)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:  # ENOSPC, EIO: no more log (what was written stays), never the monitor's end
            self.close()

    def close(self) -> None:
        """Log the unfinished lines (the stream has ended), then close."""
        pending, self.pending = self.pending, {}
        for stream, rest in pending.items():
            self._append(stream, [rest])
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# One entry of the log: a line (or the part of one that had come), its stream and its time. A plain tuple with
# names: a log can hold millions of entries, each made in a blink (and typing's NamedTuple would cost a start
# the import of typing).
Entry = namedtuple("Entry", ["stream", "time", "data"])


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
                for entry in _entries(complete):
                    if since is not None and entry.time < since:
                        continue
                    if until is not None and entry.time > until:
                        return  # (entries come in time order: none after this one is wanted either)
                    yield entry
                continue
            if running is None:
                return
            if not running() or (until is not None and timestamp() > until):
                running = None  # read what was written while we looked, then stop
                continue
            time.sleep(poll)


def _entries(records: list[bytes]) -> list[Entry]:
    """The entries of complete log lines. All at once, as one JSON array, which json's C parser reads many
    times faster than line by line; line by line only if one of them is not an entry (it is skipped)."""
    try:
        fields = json.loads(b"[" + b",".join(records) + b"]")
        return [Entry(f["stream"], f["time"], f["log"].encode("utf-8", "surrogateescape")) for f in fields]
    except (ValueError, KeyError, TypeError, AttributeError):
        return [e for e in map(_entry, records) if e is not None]


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


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")  # Go's time.ParseDuration, as Docker's
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_FRACTION = re.compile(r"(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)", re.IGNORECASE)  # nanoseconds, which datetime cannot hold


def parse_time(value: str | int | float | datetime, now_ns: int | None = None) -> str:
    """A time as ``--since``/``--until`` take it, as a ``timestamp`` string.

    Docker's forms: a Unix time (``1764164717``, ``1764164717.5``), an RFC 3339 time
    (``2026-11-26T13:45:17.123456789Z``, ``2026-11-26T14:45:17+01:00``, ``2026-11-26``; no zone: local time),
    or a duration back from now (``10m``, ``1h30m``, ``.5s``; ``-2s`` is two seconds ahead); the API's also a
    ``datetime``. A bad one raises ValueError naming it.
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
    unsigned = text[1:] if text[:1] in "+-" else text
    if unsigned and _DURATION.sub("", unsigned) == "":
        seconds = sum(float(n) * _UNITS[unit] for n, unit in _DURATION.findall(unsigned))
        return timestamp(now_ns - int(seconds * 1_000_000_000) * (-1 if text.startswith("-") else 1))
    nanos = 0
    if match := _FRACTION.fullmatch(text):
        text, nanos = match[1] + match[3], int((match[2] + "000000000")[:9])
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise ValueError(f"{value!r} is not a time: give a Unix time, an RFC 3339 time "
                         "(2026-11-26T13:45:17Z) or a duration back from now (10m, 1h30m)") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # no zone given: the local one, as Docker's client reads it
    return timestamp(int(moment.timestamp()) * 1_000_000_000 + nanos)
