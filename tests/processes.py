"""Checks the tests share: nothing QEMU may outlive a test; no container may outlive its removal."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pycontainers.store import Store


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    """Poll until *predicate* is truthy and return its value; a guard against hangs, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return value


def qemu_children() -> list[int]:
    """PIDs of qemu-system processes (zombies included) whose parent is this test process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        if comm.startswith("qemu-system") and ppid == os.getpid():
            found.append(int(entry.name))
    return found


def children(pid: int) -> list[int]:
    """PIDs of *pid*'s children, whichever of its threads forked them (runc and a notebook's kernel have many)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
        except FileNotFoundError:  # a thread that has just ended
            continue
    return found


def cmdline(pid: int) -> bytes:
    """A process's arguments, each ended by a NUL; empty once it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def containers_left(home: Path, timeout: float = 15.0) -> list[str]:
    """The entries of a store's containers/ directory once in-flight removals are done.

    A ``--rm`` container is renamed ``.<id>.removing`` when it exits and its files are deleted right
    after the exit is reported (runtime._finish): give that a moment, then list what is really left.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = container_entries(home)
        if not any(name.endswith(".removing") for name in left) or time.monotonic() > deadline:
            return left
        time.sleep(0.02)


def container_entries(home: Path) -> list[str]:
    """What a store's containers/ directory holds: container directories, removals in flight, and each
    name link of containers/.names/ as ``.names/<name>`` (a removed container must take its name along)."""
    base = home / "containers"
    entries = sorted(os.listdir(base)) if base.exists() else []
    if ".exits" in entries:  # exit codes of --rm containers, for `wait`: kept for two minutes by design
        entries.remove(".exits")
    if ".names" in entries:
        entries.remove(".names")
        entries += [f".names/{name}" for name in sorted(os.listdir(base / ".names"))]
    return entries


def veths() -> set[str]:
    """The host ends of containers' veth pairs (``pv<container ID>``)."""
    return {d for d in os.listdir("/sys/class/net") if d.startswith("pv")}


def forwarders(store: Store | None = None) -> list[int]:
    """Port forwarders (``pyc-ports``) of *store*'s containers, and any orphaned one (whose monitor died
    and which did not end with it): others' on this machine (another test session's) are not ours."""
    monitors = {1}
    for state in (store.home / "containers").glob("*/state.json") if store else ():
        monitors.add(json.loads(state.read_text()).get("monitor_pid"))
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm, ppid = stat[stat.index("(") + 1:stat.rindex(")")], int(stat[stat.rindex(")") + 2:].split()[1])
        if comm == "pyc-ports" and ppid in monitors:
            found.append(int(pid))
    return found


def logged(container: Any) -> bytes:
    """Everything in a container's log (``logs.py``), both streams, as ``docker logs`` shows it."""
    from pycontainers.container import log_entries

    return b"".join(entry.data for entry in log_entries(container))
