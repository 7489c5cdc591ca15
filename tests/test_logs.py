"""The log format (pycontainers/logs.py): Docker's json-file entries, written and read back, and the times
``--since``/``--until`` take. No container here: tests/test_api_compat.py and test_runtime.py read real ones."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pycontainers.logs import MAX_ENTRY, Entry, LogWriter, parse_time, read_entries, timestamp


def write(path: Path, *chunks: tuple[str, bytes]) -> None:
    writer = LogWriter(path)
    try:
        for stream, data in chunks:
            writer.write(stream, data)
    finally:
        writer.close()


def test_each_line_is_an_entry_in_docker_json_file_form(tmp_path: Path) -> None:
    log = tmp_path / "container-json.log"
    write(log, ("stdout", b"one\ntwo\n"), ("stderr", b"oops\n"), ("stdout", b"unfinished"))
    records = [json.loads(line) for line in log.read_bytes().splitlines()]
    assert [(r["stream"], r["log"]) for r in records] == [
        ("stdout", "one\n"), ("stdout", "two\n"), ("stderr", "oops\n"), ("stdout", "unfinished")]
    assert all(set(r) == {"log", "stream", "time"} for r in records)
    assert all(len(r["time"]) == 30 and r["time"].endswith("Z") for r in records)  # RFC 3339, nanoseconds


def test_the_bytes_come_back_exactly_even_if_not_utf8(tmp_path: Path) -> None:
    log = tmp_path / "log"
    data = bytes(range(256)) + b"\n\xff\xfe half a line"
    write(log, ("stdout", data), ("stdout", b" and its end\n"))
    assert b"".join(e.data for e in read_entries(log)) == data + b" and its end\n"


def test_tail_since_until_select_entries(tmp_path: Path) -> None:
    log = tmp_path / "log"
    lines = [{"log": f"{i}\n", "stream": "stdout", "time": timestamp(i * 1_000_000_000)} for i in range(10)]
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [e.data for e in read_entries(log, tail=3)] == [b"7\n", b"8\n", b"9\n"]
    assert [e.data for e in read_entries(log, since=timestamp(4 * 10**9), until=timestamp(6 * 10**9))] == [
        b"4\n", b"5\n", b"6\n"]  # both ends included, as Docker's
    assert list(read_entries(log, tail=0)) == []
    assert list(read_entries(tmp_path / "never-written")) == []


def test_a_line_that_is_not_an_entry_is_skipped(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b'not json\n{"log":"ok\\n","stream":"stdout","time":"' + timestamp().encode() + b'"}\n[]\n')
    assert [e.data for e in read_entries(log)] == [b"ok\n"]


def test_follow_reads_what_comes_until_the_container_stops_and_never_half_an_entry(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write(log, ("stdout", b"first\n"))
    running = threading.Event()
    running.set()
    record = json.dumps({"log": "second\n", "stream": "stderr", "time": timestamp()}).encode() + b"\n"

    def container() -> None:
        with open(log, "ab", buffering=0) as f:
            f.write(record[:10])  # a writer caught in the middle of an entry
            time.sleep(0.3)
            f.write(record[10:])
        time.sleep(0.2)
        running.clear()

    thread = threading.Thread(target=container)
    thread.start()
    got = list(read_entries(log, running=running.is_set, poll=0.01))
    thread.join()
    assert [(e.stream, e.data) for e in got] == [("stdout", b"first\n"), ("stderr", b"second\n")]


def test_parse_time_takes_dockers_forms() -> None:
    now = 1_764_164_717 * 10**9
    assert parse_time("1764164717", now) == "2025-11-26T13:45:17.000000000Z"
    assert parse_time("1764164717.25", now) == "2025-11-26T13:45:17.250000000Z"
    assert parse_time(1764164717, now) == parse_time(1764164717.0, now) == "2025-11-26T13:45:17.000000000Z"
    assert parse_time("2025-11-26T13:45:17Z", now) == "2025-11-26T13:45:17.000000000Z"
    assert parse_time("2025-11-26T14:45:17+01:00", now) == "2025-11-26T13:45:17.000000000Z"
    assert parse_time("10m", now) == "2025-11-26T13:35:17.000000000Z"
    assert parse_time("1h30m", now) == "2025-11-26T12:15:17.000000000Z"
    assert parse_time("1.5s", now) == "2025-11-26T13:45:15.500000000Z"
    assert parse_time(datetime(2025, 11, 26, 13, 45, 17, 500000, tzinfo=UTC), now) == "2025-11-26T13:45:17.500000000Z"
    east = timezone(timedelta(hours=2))
    assert parse_time(datetime(2025, 11, 26, 15, 45, 17, tzinfo=east), now) == "2025-11-26T13:45:17.000000000Z"
    for bad in ("yesterday", "10x", "", "2025-13-40"):
        with pytest.raises(ValueError, match="not a time"):
            parse_time(bad, now)


def test_timestamps_sort_as_text() -> None:
    moments = [0, 5, 999_999_999, 10**9, 1_764_164_717 * 10**9 + 1]
    assert sorted(timestamp(m) for m in moments) == [timestamp(m) for m in moments]
    assert Entry("stdout", timestamp(0), b"") == Entry("stdout", "1970-01-01T00:00:00.000000000Z", b"")


def test_an_entry_is_a_line_however_the_reads_cut_it(tmp_path: Path) -> None:
    log = tmp_path / "log"
    writer = LogWriter(log)
    writer.write("stdout", b"a")  # held: its newline has not come
    writer.write("stderr", b"err\n")
    writer.write("stdout", b"b\nx\ry\n")  # only \n ends a line, as in Docker's log
    writer.write("stdout", b"z" * (MAX_ENTRY + 10))  # a long line: logged in pieces of MAX_ENTRY
    writer.write("stdout", b"\nend without newline")
    writer.close()  # the stream ended: the unfinished line is logged
    got = [(e.stream, e.data) for e in read_entries(log)]
    assert got == [("stderr", b"err\n"), ("stdout", b"ab\n"), ("stdout", b"x\ry\n"), ("stdout", b"z" * MAX_ENTRY),
                   ("stdout", b"z" * 10 + b"\n"), ("stdout", b"end without newline")]


def test_a_log_that_cannot_be_written_is_given_up_quietly() -> None:
    writer = LogWriter(Path("/dev/full"))  # every write: ENOSPC, as on a full disk
    writer.write("stdout", b"lost\n")  # no exception: the monitor must go on watching the container
    assert writer.fd == -1
    writer.write("stdout", b"also lost\n")
    writer.close()


def test_follow_stops_at_until_though_the_container_runs_on(tmp_path: Path) -> None:
    log = tmp_path / "log"
    write(log, ("stdout", b"before\n"))
    started = time.monotonic()
    got = list(read_entries(log, until=timestamp(time.time_ns() + 200_000_000), running=lambda: True, poll=0.01))
    assert [e.data for e in got] == [b"before\n"] and time.monotonic() - started < 5


def test_parse_time_keeps_nanoseconds_and_takes_go_durations() -> None:
    now = 1_764_164_717 * 10**9
    assert parse_time("2025-11-26T13:45:17.123456789Z", now) == "2025-11-26T13:45:17.123456789Z"
    assert parse_time("2025-11-26T14:45:17.5+01:00", now) == "2025-11-26T13:45:17.500000000Z"
    assert parse_time(".5s", now) == "2025-11-26T13:45:16.500000000Z"
    assert parse_time("-2s", now) == "2025-11-26T13:45:19.000000000Z"  # ahead of now
    assert parse_time("+1m", now) == "2025-11-26T13:44:17.000000000Z"
