"""Control groups: the kernel's accounting and limits for a group of processes (memory, pids, cpu).

Two layouts exist. cgroup v2 (Binder, most laptops) is one tree at ``/sys/fs/cgroup`` where a
directory's ``cgroup.subtree_control`` lists the controllers its children get. cgroup v1 has one tree
per controller (``/sys/fs/cgroup/memory/...``, ``/sys/fs/cgroup/pids/...``). Some machines, like the
ones this course is developed on, are *hybrid*: v1 controllers plus an empty v2 tree at
``/sys/fs/cgroup/unified``. A container's cgroup is ``pycontainers/<id>`` in each tree that has a
controller we need, and is removed with the container.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import PyContainersError

PARENT = "pycontainers"
V1_CONTROLLERS = ("memory", "pids", "cpu")
CFS_PERIOD_US = 100_000


class CgroupError(PyContainersError):
    pass


# ------------------------------------------------------------------------------ where the controllers are

# Every cgroup v1 controller a kernel may mount (the mount options that name one).
KNOWN_V1_CONTROLLERS = frozenset({"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls",
                                  "net_prio", "blkio", "perf_event", "hugetlb", "pids", "rdma", "misc"})


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


@dataclass(frozen=True)
class CgroupLayout:
    """Where the cgroup controllers live: ``version`` is "v1", "v2", "hybrid" or "none"."""

    version: str
    v1_mounts: tuple[tuple[str, str], ...] = ()
    """(controller, mount point) for each cgroup v1 controller, e.g. ("memory", "/sys/fs/cgroup/memory")."""
    v2_mount: str | None = None
    v2_controllers: tuple[str, ...] = ()

    def where(self, controller: str) -> str | None:
        """The directory a controller is used through, or None if it is not mounted."""
        for name, path in self.v1_mounts:
            if name == controller:
                return path
        if self.v2_mount is not None and controller in self.v2_controllers:
            return self.v2_mount
        return None

    def describe(self) -> str:
        """A short phrase for ``pycontainers info``: the layout and, for v2, its controllers."""
        if self.version == "none":
            return "none (no cgroup file system mounted)"
        if self.v2_mount is None:
            return f"v1 (controllers under {os.path.dirname(self.v1_mounts[0][1])})"
        controllers = " ".join(self.v2_controllers) or "no controllers"
        if self.version == "v2":
            return f"v2 (cgroup2 at {self.v2_mount}: {controllers})"
        return f"hybrid (v1 controllers, cgroup2 at {self.v2_mount}: {controllers})"


def _unescape_mount_path(path: str) -> str:
    r"""Mount points in mountinfo escape space, tab, newline and backslash as octal (\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def parse_cgroup_mountinfo(mountinfo: str, v2_controllers: str = "") -> CgroupLayout:
    """The cgroup layout described by a /proc/self/mountinfo text (a pure function, for tests).

    *v2_controllers* is the text of the cgroup2 tree's ``cgroup.controllers`` (which mountinfo does not
    say). Pure v1 has only ``cgroup`` mounts, pure v2 one ``cgroup2`` mount, and hybrid (systemd's
    compromise) both: v1 for the controllers, plus a cgroup2 tree for process tracking.
    """
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in mountinfo.splitlines():
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 5 or len(tail) < 2:
            continue
        fstype, superoptions, mount_point = tail[0], tail[-1], _unescape_mount_path(fields[4])
        if fstype == "cgroup2" and v2 is None:
            v2 = mount_point
        elif fstype == "cgroup":
            for option in superoptions.split(","):
                if option in KNOWN_V1_CONTROLLERS:
                    v1.setdefault(option, mount_point)
    version = ("hybrid" if v1 else "v2") if v2 is not None else ("v1" if v1 else "none")
    controllers = tuple(v2_controllers.split()) if v2 is not None else ()
    return CgroupLayout(version, tuple(sorted(v1.items())), v2, controllers)


def _own_cgroup2_path(proc_self_cgroup: str) -> str:
    """This process's cgroup in the cgroup2 tree ("0::/user.slice/..."), "/" if none is listed."""
    for line in proc_self_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:] or "/"
    return "/"


def cgroup_layout() -> CgroupLayout:
    """This machine's cgroup layout, with the controllers the cgroup2 tree offers this process."""
    layout = parse_cgroup_mountinfo(_read("/proc/self/mountinfo"))
    if layout.v2_mount is None:
        return layout
    own = os.path.join(layout.v2_mount, _own_cgroup2_path(_read("/proc/self/cgroup")).lstrip("/"))
    text = _read(os.path.join(own, "cgroup.controllers")) or _read(os.path.join(layout.v2_mount, "cgroup.controllers"))
    return replace(layout, v2_controllers=tuple(text.split()))


@functools.cache
def machine_layout() -> CgroupLayout:
    """Read once per process: where each controller is mounted (see ``cgroup_layout``)."""
    return cgroup_layout()


def procs_files_of(pid: int) -> list[Path]:
    """The ``cgroup.procs`` of every cgroup *pid* is in, as ``runc exec`` joins them: each v1 hierarchy's
    (devices, freezer, cpuset...: runc makes its container one in all of them) and the cgroup2 tree's.
    Read from the host's cgroup namespace, so the paths are the host's."""
    layout = machine_layout()
    files = []
    for line in _read(f"/proc/{pid}/cgroup").splitlines():
        _hierarchy, controllers, path = line.split(":", 2)
        if controllers:
            base = next((where for c in controllers.split(",") if (where := layout.where(c))), None)
        else:
            base = layout.v2_mount
        if base is not None and path != "/":
            files.append(Path(f"{base}{path}") / "cgroup.procs")
    return files


def open_for_joining(files: list[Path]) -> list[tuple[int, Path]]:
    """Open *files* (``cgroup.procs``) for a process to join later, from wherever it is by then: an
    ``exec``'s child, already in the container's mount namespace, no longer sees the host's cgroup trees."""
    opened: list[tuple[int, Path]] = []
    try:
        for path in files:
            opened.append((os.open(path, os.O_WRONLY | os.O_CLOEXEC), path))
    except OSError as exc:
        for fd, _ in opened:
            os.close(fd)
        raise CgroupError(f"open {path}: {exc.strerror}") from None
    return opened


def join_self(opened: list[tuple[int, Path]]) -> None:
    """Move the calling process into the cgroups whose ``cgroup.procs`` are *opened*: writing "0" means the
    writer itself (v1 and v2 alike), which holds inside a PID namespace, where our own PID is another."""
    for fd, path in opened:
        try:
            os.write(fd, b"0")
        except OSError as exc:
            raise CgroupError(f"write '0' to {path}: {exc.strerror}") from None


def _pids_in(d: Path) -> list[int]:
    with contextlib.suppress(OSError):
        return [int(p) for p in (d / "cgroup.procs").read_text().split()]
    return []


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise CgroupError(f"write {value!r} to {path}: {exc.strerror}") from None


class Cgroup:
    """One container's cgroup, in every tree that holds a controller it uses."""

    def __init__(self, name: str, layout: CgroupLayout | None = None) -> None:
        self.name = name
        layout = layout or machine_layout()
        # Hybrid machines count as v1 here: their cgroup2 tree has none of the controllers we use.
        self.version = "v2" if layout.version == "v2" else "v1"
        self.dirs: dict[str, Path] = {}
        self.freezer: Path | None = None  # v1: made by the first ``freeze`` only (see there)
        if layout.version == "v2" and layout.v2_mount:
            self.root = Path(layout.v2_mount)
            self.dirs = {"unified": self.root / PARENT / name}
        else:
            for controller, mount_point in layout.v1_mounts:
                if controller in V1_CONTROLLERS:
                    self.dirs[controller] = Path(mount_point) / PARENT / name
                elif controller == "freezer":
                    self.freezer = Path(mount_point) / PARENT / name

    def _dir(self, controller: str) -> Path | None:
        return self.dirs.get("unified") if self.version == "v2" else self.dirs.get(controller)

    def create(self, *, memory: int | None = None, pids: int | None = None, cpus: float | None = None) -> None:
        """mkdir the cgroup(s), then write the limits (each controller's own file names).

        On v1 every hierarchy a process joins costs a migration, and each migration waits for an RCU
        grace period (5-25 ms measured here): so only ``pids`` (to find and kill every process) and the
        hierarchies that enforce a requested limit are used.
        """
        if self.version == "v2":
            self._enable_v2_controllers()
        else:
            wanted = {"pids"} | ({"memory"} if memory is not None else set()) | ({"cpu"} if cpus is not None else set())
            self.dirs = {c: d for c, d in self.dirs.items() if c in wanted}
        for d in self.dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        try:
            self._set_limits(memory, pids, cpus)
        except BaseException:  # a limit the kernel refuses: the cgroup goes too, as nothing will use it
            with contextlib.suppress(CgroupError):
                self.remove()
            raise

    def _set_limits(self, memory: int | None, pids: int | None, cpus: float | None) -> None:
        if memory is not None:
            self._limit_memory(memory)
        if pids is not None:
            self.limit_pids(pids)
        if cpus is not None:
            quota = int(cpus * CFS_PERIOD_US)
            d = self._dir("cpu")
            if d is not None and self.version == "v2":
                _write(d / "cpu.max", f"{quota} {CFS_PERIOD_US}")
            elif d is not None:
                _write(d / "cpu.cfs_period_us", str(CFS_PERIOD_US))
                _write(d / "cpu.cfs_quota_us", str(quota))

    def limit_pids(self, pids: int) -> None:
        d = self._dir("pids")
        if d is not None:
            _write(d / "pids.max", str(pids))

    def _enable_v2_controllers(self) -> None:
        # A child gets only the controllers its parent lists in cgroup.subtree_control.
        (self.root / PARENT).mkdir(exist_ok=True)
        available = (self.root / "cgroup.controllers").read_text().split()
        wanted = [c for c in ("memory", "pids", "cpu") if c in available]
        for d in (self.root, self.root / PARENT):
            current = (d / "cgroup.subtree_control").read_text().split()
            for c in wanted:
                if c not in current:
                    with contextlib.suppress(CgroupError):
                        _write(d / "cgroup.subtree_control", f"+{c}")

    def _limit_memory(self, limit: int) -> None:
        d = self._dir("memory")
        if d is None:
            return
        if self.version == "v2":
            _write(d / "memory.max", str(limit))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")  # the limit is the limit: no escape into swap
        else:
            _write(d / "memory.limit_in_bytes", str(limit))
            if (d / "memory.memsw.limit_in_bytes").exists():
                _write(d / "memory.memsw.limit_in_bytes", str(limit))
            if (d / "memory.swappiness").exists():
                with contextlib.suppress(CgroupError):
                    _write(d / "memory.swappiness", "0")

    def procs_files(self) -> list[Path]:
        """``cgroup.procs`` in each tree this container uses (a hierarchy it does not is not made: see create)."""
        return [d / "cgroup.procs" for d in self.dirs.values() if d.exists()]

    def procs_files_to_join(self) -> list[Path]:
        """What a process joining the container later (``exec``) writes itself into: ``procs_files``, and
        the v1 freezer's once a ``pause`` has made it, so that the next pause freezes it too."""
        frozen_too = [self.freezer / "cgroup.procs"] if self.freezer is not None and self.freezer.is_dir() else []
        return [*self.procs_files(), *frozen_too]

    def add(self, pid: int) -> None:
        for procs in self.procs_files():
            _write(procs, str(pid))

    def pids(self) -> list[int]:
        found: set[int] = set()
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                found.update(int(p) for p in (d / "cgroup.procs").read_text().split())
        return sorted(found)

    def oom_killed(self) -> bool:
        """Did the kernel's OOM killer kill a process of this cgroup?"""
        d = self._dir("memory")
        if d is None:
            return False
        name = "memory.events" if self.version == "v2" else "memory.oom_control"
        with contextlib.suppress(OSError):
            for line in (d / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        return False

    def memory_usage(self) -> int | None:
        d = self._dir("memory")
        if d is None:
            return None
        name = "memory.current" if self.version == "v2" else "memory.usage_in_bytes"
        try:
            return int((d / name).read_text())
        except (OSError, ValueError):
            return None

    def kill_all(self, timeout: float = 2.0) -> None:
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(CgroupError):
                self.thaw()  # a frozen process dies of SIGKILL only once thawed (v1)
            time.sleep(0.005)

    # -------------------------------------------------------------------------- the freezer (docker pause)

    def freeze(self, timeout: float = 5.0) -> None:
        """Stop every process of the cgroup where it stands (``docker pause``): the kernel's freezer, which
        a process cannot see or catch, unlike SIGSTOP.

        cgroup v2 has ``cgroup.freeze`` in every cgroup. On v1 the freezer is a hierarchy of its own, which
        a container joins only now (joining it at start would cost every start an RCU grace period): its
        processes are moved in one by one, and, since one may fork meanwhile, again until none is left
        outside; a process moved into a frozen cgroup is frozen at once."""
        try:
            self._freeze(timeout)
        except CgroupError:
            with contextlib.suppress(CgroupError):
                self.thaw()  # all or nothing: none stays frozen
            raise

    def _freeze(self, timeout: float) -> None:
        if self.version == "v2":
            d = self.dirs["unified"]
            _write(d / "cgroup.freeze", "1")
            self._wait_until(lambda: "frozen 1" in _read(str(d / "cgroup.events")).splitlines(), timeout, d)
            return
        if self.freezer is None:
            raise CgroupError("this machine has no cgroup freezer (the v1 freezer controller is not mounted)")
        if not self.pids():  # ended, and maybe cleaned up already: no freezer cgroup made again behind it
            raise CgroupError("no process is left to freeze")
        self.freezer.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        while True:
            inside = set(_pids_in(self.freezer))
            outside = [pid for pid in self.pids() if pid not in inside]
            if not outside and not inside:  # everything ended meanwhile
                with contextlib.suppress(OSError):
                    self.freezer.rmdir()
                raise CgroupError("no process is left to freeze")
            if not outside and _read(str(self.freezer / "freezer.state")).strip() == "FROZEN":
                return
            if time.monotonic() > deadline:
                raise CgroupError(f"{self.freezer}: the processes did not all freeze within {timeout:g} s")
            for pid in outside:
                with contextlib.suppress(CgroupError):  # (ended meanwhile: ESRCH)
                    _write(self.freezer / "cgroup.procs", str(pid))
            _write(self.freezer / "freezer.state", "FROZEN")
            with contextlib.suppress(CgroupError):  # FREEZING until every task has stopped (as runc waits)
                self._wait_until(lambda: _read(str(self.freezer / "freezer.state")).strip() != "FREEZING",
                                 deadline - time.monotonic(), self.freezer)

    def thaw(self) -> None:
        """Let the processes run again (``docker unpause``)."""
        if self.version == "v2":
            d = self.dirs["unified"]
            if (d / "cgroup.freeze").exists():
                _write(d / "cgroup.freeze", "0")
        elif self.freezer is not None and self.freezer.is_dir():
            _write(self.freezer / "freezer.state", "THAWED")

    def frozen(self) -> bool:
        """Is the cgroup frozen, or freezing (the processes being stopped now)? On v1, only with processes in
        it: an empty freezer cgroup left by a pause that met the end of its container freezes nobody."""
        if self.version == "v2":
            return _read(str(self.dirs["unified"] / "cgroup.freeze")).strip() == "1"
        if self.freezer is None:
            return False
        return _read(str(self.freezer / "freezer.state")).strip() in ("FROZEN", "FREEZING") \
            and bool(_pids_in(self.freezer))

    @staticmethod
    def _wait_until(done: Callable[[], bool], timeout: float, where: Path) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise CgroupError(f"{where}: the processes did not all freeze within {timeout:g} s")
            time.sleep(0.001)

    def remove(self) -> None:
        """Kill what is left inside, then rmdir each tree's directory (the kernel refuses one that still holds a
        process or a child cgroup: EBUSY); every tree is tried, and the first failure is raised at the end."""
        self.kill_all()
        failures = []
        dirs = [*self.dirs.values(), *([self.freezer] if self.freezer is not None and self.freezer.is_dir() else [])]
        for d in dirs:
            for _ in range(200):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        failures.append(f"rmdir {d}: {exc.strerror}")
                        break
                    time.sleep(0.005)
            else:
                failures.append(f"rmdir {d}: still busy after 1 s (a process or a child cgroup is in it)")
        if failures:
            raise CgroupError(failures[0])
