"""Process checks the VM tests share: nothing QEMU may outlive a test."""

from __future__ import annotations

import os
from pathlib import Path


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
