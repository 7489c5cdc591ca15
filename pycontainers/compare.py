"""Measure, on this machine and in this run, what the lectures compare: a venv, a container and a VM.

The lectures rank virtual environments, containers and virtual machines by cost, deployment, versatility and
portability. Those rankings are claims; this module turns each into a measurement, so a student sees the
numbers of *their* machine, not of somebody's slide:

* ``race``: a container and a VM start from the same image at the same moment and run the same command;
  each side reports its phases, and the ratio says how many times longer the VM took.
* ``compare``: a venv, a container and a VM, each asked the same questions by a small probe that runs inside
  it (which kernel, which processes and network interfaces it sees, whether it sees the host's files), timed
  from nothing to the probe's answer, with its disk and memory.
* ``measure_density``: many sleeping containers and a few sleeping VMs at once, their memory read from /proc,
  extrapolated to a memory budget.

Nothing is estimated from a table. A number comes from a clock or from /proc during the call, or the result
says in one sentence why it could not be measured (no QEMU, no guest kernel, no root).

This is core code: no notebook library is imported here; ``pycontainers.raceviews`` draws the results.
Threads are safe: when this process has more than one thread, containers are forked by the zygote helper,
and QEMU is started with ``subprocess`` (fork+exec in C).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from . import container as core_container
from . import host, runtime, vm
from .errors import PyContainersError
from .store import Store

if TYPE_CHECKING:
    pass

GIB = 1 << 30
T = TypeVar("T")
KINDS = ("venv", "container", "vm")
LABELS = {"venv": "venv", "container": "container", "vm": "VM"}
TICK = 0.05  # seconds between progress calls while a race runs: smooth live timers, negligible cost
SLEEP_SECONDS = 600  # how long the sleepers of the density experiment would live; they are killed long before

# Phase names, in order, as ``TimedRun.phases`` uses them (views and exercises refer to these).
CONTAINER_PHASES = ("create", "start", "command")
VM_PHASES = ("prepare", "kernel start", "boot", "command", "power off")
VENV_PHASES = ("create", "command")
PHASE_MEANING = {  # (kind, phase) -> what the phase is
    ("venv", "create"): "python -m venv: the environment's directory and its python",
    ("venv", "command"): "the command itself, run by the venv's python",
    ("container", "create"): "the container's directory and state",
    ("container", "start"): "namespaces, mounts (and as root a cgroup), until the command is executed",
    ("container", "command"): "the command itself, until it exits and the container is removed",
    ("vm", "prepare"): "the image packed as an initramfs, QEMU's options chosen",
    ("vm", "kernel start"): "QEMU starts and loads the kernel, which unpacks itself and boots until its first "
                            "console line (booted quiet: the first warning it prints)",
    ("vm", "boot"): "the rest of the kernel's boot and the image's /init, until user space is ready",
    ("vm", "command"): "the command itself, until it exits",
    ("vm", "power off"): "the guest shuts down, QEMU exits",
}


def phase_meaning(kind: str, phase: str) -> str:
    """What *phase* of a *kind* ("venv", "container", "vm") run is, in a few words ("" if unknown)."""
    return PHASE_MEANING.get((kind, phase), "")


class CompareError(PyContainersError):
    """A measurement could not be taken (the container did not start, the probe printed nonsense)."""


# ------------------------------------------------------------------------------------------ availability


def vm_unavailable() -> str | None:
    """Why no VM can be booted here, in one sentence; None when QEMU and a guest kernel are present."""
    try:
        vm.require_qemu_and_kernel()
    except vm.VMError as exc:
        return f"No VM was measured: {exc}."
    return None


def container_unavailable() -> str | None:
    """Why containers cannot be measured here, in one sentence; None when they are really isolated.

    Under proot an image's files are used but nothing is isolated, so its "container" would be a host process
    with a changed root: measuring it as a container would teach the wrong thing.
    """
    backend, why = host.backend_choice()
    if backend in ("native", "rootless"):
        return None
    return f"No container was measured: {why}"


# -------------------------------------------------------------------------------------------- timed runs


@dataclass(frozen=True)
class Phase:
    """One step of a start-up, in seconds since the measurement (or the race) began."""

    name: str
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class TimedRun:
    """A command run in a venv, a container or a VM: its phases, output and exit code."""

    kind: str
    phases: tuple[Phase, ...]
    output: str
    exit_code: int
    accel: str | None = None  # the VM's: "kvm" or "tcg"
    kernel: str | None = None  # the VM's guest kernel release, from its console

    @property
    def start(self) -> float:
        return self.phases[0].start

    @property
    def end(self) -> float:
        return self.phases[-1].end

    @property
    def total(self) -> float:
        """Wall seconds from the first phase's start to the last one's end."""
        return self.end - self.start

    def phase(self, name: str) -> Phase | None:
        return next((p for p in self.phases if p.name == name), None)


def phases_from_marks(marks: Sequence[tuple[str, float]], end: float) -> tuple[Phase, ...]:
    """Consecutive phases from (name, start) marks: each phase ends where the next one starts."""
    stops = [at for _, at in marks[1:]] + [end]
    return tuple(Phase(name, at, stop) for (name, at), stop in zip(marks, stops, strict=True))


class _TimedEvents:
    """Wraps the monitor's report pipe to note when the command really started (its ``started`` event)."""

    def __init__(self, events: runtime.Events, on_event: Callable[[str], None]) -> None:
        self.events = events
        self.on_event = on_event

    def next(self) -> dict[str, object]:
        event = self.events.next()
        self.on_event(str(event.get("event")))
        return event

    def close(self) -> None:
        self.events.close()


def run_container(store: Store, image: str, command: Sequence[str], *, origin: float | None = None,
                  on_phase: Callable[[str], None] | None = None) -> TimedRun:
    """Run *command* in a new container of *image* (removed afterwards), timing create, start and command.

    The core functions are used instead of ``Client.containers.run`` only to see the monitor's ``started``
    event, which marks the moment the command was executed inside its namespaces.
    *origin*: the ``time.monotonic()`` that phases are measured from (default: now).
    """
    origin = time.monotonic() if origin is None else origin
    tell = on_phase or (lambda _phase: None)
    marks = [("create", time.monotonic() - origin)]
    tell("create")
    c = core_container.create_from_image(store, image, list(command), auto_remove=True)
    marks.append(("start", time.monotonic() - origin))
    tell("start")

    def seen(event: str) -> None:
        if event == "started":
            marks.append(("command", time.monotonic() - origin))
            tell("command")

    try:
        code, out, err = runtime.capture(lambda stdio: _TimedEvents(runtime.start(c, stdio), seen))  # type: ignore[arg-type, return-value]
    except BaseException:
        with contextlib.suppress(PyContainersError, OSError):
            core_container.remove(c, force=True, volumes=True)
        raise
    end = time.monotonic() - origin
    if len(marks) < 3:  # no "started": the engine could not start the command
        detail = err.decode(errors="replace").strip().splitlines()
        raise CompareError(f"the container did not start (exit code {code}){': ' + detail[-1] if detail else ''}")
    return TimedRun("container", phases_from_marks(marks, end), out.decode(errors="replace"), code)


def run_vm(store: Store, image: str, command: Sequence[str], *, accel: str = "auto", timeout: float = 30,
           origin: float | None = None) -> TimedRun:
    """Boot a VM from *image* with ``vm.run``, run *command*, and place its phases on the caller's clock.

    ``vm.run`` times each phase from QEMU's start; QEMU's start on our clock is the moment ``vm.run`` returned
    minus QEMU's measured lifetime. So "prepare" (initramfs and QEMU options) also holds the milliseconds of
    clean-up after QEMU exited.
    """
    origin = time.monotonic() if origin is None else origin
    called = time.monotonic() - origin
    result = vm.run(store, image, list(command), timeout=timeout, accel=accel)
    returned = time.monotonic() - origin
    t = result.timings
    qemu = returned - t["vm_exited"]
    marks = [("prepare", called), ("kernel start", qemu)]
    for name, key in (("boot", "first_console_line"), ("command", "ready_marker"), ("power off", "exit_marker")):
        if key in t:
            marks.append((name, qemu + t[key]))
    return TimedRun("vm", phases_from_marks(marks, qemu + t["vm_exited"]), result.output, result.exit_code,
                    accel=result.accel, kernel=result.kernel_release)


def warm_up(store: Store, image: str) -> None:
    """Pay the one-time costs before anything is timed: the image's layers are unpacked and the zygote runs.

    Run from a short-lived thread, so this process is multithreaded for a moment and the runtime starts the
    zygote, exactly as it will during a race (whose container also starts from a thread).
    """
    failure: list[BaseException] = []

    def go() -> None:
        try:
            run_container(store, image, ["true"])
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
            failure.append(exc)

    thread = threading.Thread(target=go, name="pycontainers-warm-up")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


# ------------------------------------------------------------------------------------------------- race


@dataclass(frozen=True)
class RaceEvent:
    """What a progress callback receives: a side's current phase and the seconds since the race began."""

    sample: int  # 0-based index of the race, when several are run
    side: str  # "container" or "vm"
    phase: str  # a phase name, "waiting", or "done"
    elapsed: float
    done: bool = False


@dataclass(frozen=True)
class RaceSample:
    """One race: both sides on one clock, started at the same moment (0.0)."""

    container: TimedRun
    vm: TimedRun

    @property
    def ratio(self) -> float:
        """How many times longer the VM took than the container, from start to the command's exit."""
        return self.vm.total / self.container.total

    @property
    def winner(self) -> str:
        return "container" if self.container.end < self.vm.end else "vm"


@dataclass(frozen=True)
class RaceReport:
    """Every race of one ``race()`` call, or the one sentence saying why none could be run here."""

    image: str
    command: tuple[str, ...]
    samples: tuple[RaceSample, ...] = ()
    unavailable: str | None = None

    @property
    def measured(self) -> bool:
        return bool(self.samples)

    def totals(self, side: str) -> list[float]:
        return [getattr(s, side).total for s in self.samples]

    def median(self, side: str) -> float:
        return statistics.median(self.totals(side))

    def median_phase(self, side: str, name: str) -> float | None:
        values = [p.seconds for s in self.samples if (p := getattr(s, side).phase(name)) is not None]
        return statistics.median(values) if values else None

    @property
    def ratio(self) -> float:
        """Median VM time over median container time: how many containers start in the time of one VM."""
        return self.median("vm") / self.median("container")

    @property
    def accel(self) -> str | None:
        return self.samples[0].vm.accel if self.samples else None


def race(store: Store, image: str = "busybox", command: Sequence[str] = ("uname", "-r"), *, repeat: int = 1,
         progress: Callable[[RaceEvent], None] | None = None, timeout: float = 30,
         accel: str = "auto") -> RaceReport:
    """Start a container and a VM from *image* at the same moment, both running *command*; *repeat* times.

    Before the first race, the one-time costs are paid untimed: the KVM probe (``accel="auto"``), the image's
    layers unpacked, the zygote started. *progress* is called in this thread with a ``RaceEvent`` at every
    phase change and every ``TICK`` seconds, so a widget can run live timers without this module knowing it.
    A missing QEMU, kernel or root gives a report without races that says why; a side that fails while racing
    (a VM that does not finish within *timeout*, a container that does not start) raises its one-line error.
    """
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    command = tuple(command)
    why = container_unavailable() or vm_unavailable()
    if why:
        return RaceReport(image, command, unavailable=why)
    accel = vm.choose_accel(accel)
    warm_up(store, image)
    samples = tuple(race_once(store, image, command, sample=i, accel=accel, timeout=timeout, progress=progress)
                    for i in range(repeat))
    return RaceReport(image, command, samples)


def race_once(store: Store, image: str, command: Sequence[str], *, sample: int = 0, accel: str = "tcg",
              timeout: float = 30, progress: Callable[[RaceEvent], None] | None = None) -> RaceSample:
    """One race: two threads released by one barrier; this thread reports progress until both are done."""
    events: queue.SimpleQueue[RaceEvent] = queue.SimpleQueue()
    results: dict[str, TimedRun] = {}
    failures: list[BaseException] = []
    threads_of: dict[str, int] = {}
    barrier = threading.Barrier(3)
    origin = time.monotonic()  # set again just before the barrier opens: both sides read it only after that

    def side(name: str, work: Callable[[float, Callable[[str], None]], TimedRun]) -> None:
        def tell(phase: str) -> None:
            events.put(RaceEvent(sample, name, phase, time.monotonic() - origin))

        threads_of[name] = threading.get_native_id()
        barrier.wait()
        try:
            results[name] = work(origin, tell)
        except BaseException as exc:  # noqa: BLE001 (re-raised in the caller's thread)
            failures.append(exc)
        events.put(RaceEvent(sample, name, "done", time.monotonic() - origin, done=True))

    def container_work(start: float, tell: Callable[[str], None]) -> TimedRun:
        return run_container(store, image, command, origin=start, on_phase=tell)

    def vm_work(start: float, tell: Callable[[str], None]) -> TimedRun:
        tell("prepare")
        return run_vm(store, image, command, accel=accel, timeout=timeout, origin=start)

    threads = [threading.Thread(target=side, args=("container", container_work), name="race-container"),
               threading.Thread(target=side, args=("vm", vm_work), name="race-vm")]
    for t in threads:
        t.start()
    origin = time.monotonic()  # written before the barrier opens, read by both sides after it
    barrier.wait()
    try:
        _report_until_done(events, sample, origin, progress, lambda: qemu_running(threads_of["vm"]))
    finally:
        for t in threads:
            t.join()  # the VM side always ends: vm.run kills QEMU at its timeout
    if failures:
        raise failures[0]
    return RaceSample(results["container"], results["vm"])


def _report_until_done(events: queue.SimpleQueue[RaceEvent], sample: int, origin: float,
                       progress: Callable[[RaceEvent], None] | None, vm_booting: Callable[[], bool]) -> None:
    """Pass each side's events on, plus a tick for every side still running every ``TICK`` seconds.

    ``vm.run`` reports its phases only when it returns; meanwhile *vm_booting* tells when QEMU is running,
    so the live timer can say "booting" instead of "prepare". Live times never go back: a phase change that
    was queued while a tick was being sent is shown at the tick's time (at most ``TICK`` late). The phases
    in the result are exact.
    """
    current = {"container": "waiting", "vm": "waiting"}
    shown = {"container": 0.0, "vm": 0.0}
    done: set[str] = set()
    next_tick = time.monotonic()

    def send(event: RaceEvent) -> None:
        if event.elapsed < shown[event.side]:
            event = dataclasses.replace(event, elapsed=shown[event.side])
        shown[event.side] = event.elapsed
        if progress:
            progress(event)

    while len(done) < len(current):
        try:
            event: RaceEvent | None = events.get(timeout=max(0.0, next_tick - time.monotonic()))
        except queue.Empty:
            event = None
        if event is not None:
            current[event.side] = event.phase
            if event.done:
                done.add(event.side)
            send(event)
        if time.monotonic() >= next_tick:
            next_tick = time.monotonic() + TICK
            if current["vm"] == "prepare" and "vm" not in done and vm_booting():
                current["vm"] = "booting"
            for name in sorted(current.keys() - done):
                send(RaceEvent(sample, name, current[name], time.monotonic() - origin))


def qemu_running(thread_id: int) -> bool:
    """Whether the thread *thread_id* of this process has a QEMU child that boots a kernel right now.

    ``/proc/self/task/TID/children`` lists the children that thread forked: a cheap read, no /proc scan.
    (``qemu -machine help``, which ``vm.run`` also starts, has no ``-kernel``.)
    """
    try:
        with open(f"/proc/self/task/{thread_id}/children") as f:
            children = f.read().split()
    except OSError:
        return False
    for pid in children:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"\0-kernel\0" in f.read():
                    return True
        except OSError:
            continue
    return False


# ------------------------------------------------------------------------------------------------ probes


# What each environment is asked, by the same questions in sh (container, VM: the image's tools) and in
# Python (the venv, and the host for reference). The marker is a file that only the host's file system has.
PROBE_KEYS = ("kernel", "boot_id", "pid", "processes", "interfaces", "pid_ns", "net_ns", "host_file")


def probe_script(marker: str) -> str:
    """The probe as one shell line (busybox's or coreutils' tools; no bash needed)."""
    return "; ".join([
        'echo "kernel=$(uname -r)"',
        'echo "boot_id=$(cat /proc/sys/kernel/random/boot_id)"',
        'echo "pid=$$"',
        'echo "processes=$(ls -d /proc/[0-9]* | wc -l)"',
        "echo \"interfaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ')\"",
        'echo "pid_ns=$(readlink /proc/self/ns/pid)"',
        'echo "net_ns=$(readlink /proc/self/ns/net)"',
        f"if [ -e {shlex.quote(marker)} ]; then echo host_file=yes; else echo host_file=no; fi",
    ])


PYTHON_PROBE = """
import os, sys

def ns(name):
    try:
        return os.readlink("/proc/self/ns/" + name)
    except OSError:
        return ""

with open("/proc/sys/kernel/random/boot_id") as f:
    boot_id = f.read().strip()
with open("/proc/net/dev") as f:
    interfaces = [line.split(":")[0].strip() for line in f.readlines()[2:]]
print("kernel=" + os.uname().release)
print("boot_id=" + boot_id)
print("pid=%d" % os.getpid())
print("processes=%d" % sum(name.isdigit() for name in os.listdir("/proc")))
print("interfaces=" + " ".join(interfaces))
print("pid_ns=" + ns("pid"))
print("net_ns=" + ns("net"))
print("host_file=" + ("yes" if os.path.exists(sys.argv[1]) else "no"))
print("interpreter=" + os.path.realpath(sys.executable))
"""


@dataclass(frozen=True)
class Probe:
    """What a process saw from inside its environment."""

    kernel: str  # uname -r
    boot_id: str  # random per kernel boot: equal boot IDs mean the same running kernel
    pid: int  # the probe's own PID there
    processes: int  # how many processes it could see in /proc
    interfaces: tuple[str, ...]  # network interfaces, from /proc/net/dev
    pid_ns: str  # readlink /proc/self/ns/pid, e.g. "pid:[4026531836]"
    net_ns: str
    sees_host_file: bool  # whether a file just made on the host was visible
    interpreter: str | None = None  # the Python probe's real interpreter path

    def own_kernel(self, host_probe: Probe) -> bool:
        """A different boot ID is a different running kernel. (uname -r alone cannot tell: a VM may boot the
        host's kernel version; and namespace numbers cannot either: every kernel numbers its first ones alike.)"""
        return self.boot_id != host_probe.boot_id

    def own_processes(self, host_probe: Probe) -> bool:
        return self.own_kernel(host_probe) or self.pid_ns != host_probe.pid_ns

    def own_network(self, host_probe: Probe) -> bool:
        return self.own_kernel(host_probe) or self.net_ns != host_probe.net_ns

    def own_files(self) -> bool:
        return not self.sees_host_file


def parse_probe(text: str) -> Probe:
    """The probe's ``key=value`` lines (other console lines, e.g. a kernel message, are ignored)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.strip().partition("=")
        if eq and key in (*PROBE_KEYS, "interpreter") and key not in values:
            values[key] = value.strip()
    missing = [k for k in PROBE_KEYS if k not in values]
    if missing or not values["pid"].isdigit() or not values["processes"].isdigit():
        raise CompareError(f"the probe's answer is incomplete (missing {', '.join(missing) or 'numbers'}): "
                           f"{text.strip()[:200]!r}")
    return Probe(kernel=values["kernel"], boot_id=values["boot_id"], pid=int(values["pid"]),
                 processes=int(values["processes"]), interfaces=tuple(values["interfaces"].split()),
                 pid_ns=values["pid_ns"], net_ns=values["net_ns"], sees_host_file=values["host_file"] == "yes",
                 interpreter=values.get("interpreter"))


def probe_command(marker: Path) -> list[str]:
    return ["sh", "-c", probe_script(str(marker))]


def host_probe(marker: Path) -> Probe:
    """The same questions asked here, by a fresh Python process: the reference every verdict compares with."""
    proc = subprocess.run([sys.executable, "-I", "-c", PYTHON_PROBE, str(marker)], capture_output=True,
                          text=True, timeout=30, check=True)
    return parse_probe(proc.stdout)


# --------------------------------------------------------------------------------------- memory, disk


@dataclass(frozen=True)
class Footprint:
    """Memory of one running instance, read from /proc (bytes).

    ``pss`` splits each shared page among the processes sharing it, so summing it over many instances counts
    shared libraries once. ``helper_pss`` is what the engine keeps per instance besides the instance itself: a
    container's monitor process. The host kernel's own bookkeeping (page tables, mounts, cgroups) is in
    neither, for either kind.
    """

    rss: int
    peak_rss: int
    pss: int
    helper_pss: int = 0

    @property
    def cost(self) -> int:
        return self.pss + self.helper_pss


def _status_kib(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


def _pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def process_memory(pids: Sequence[int]) -> Footprint:
    """RSS, peak RSS (VmHWM) and PSS of *pids* together; processes that vanished meanwhile count 0."""
    rss = peak = pss = 0
    for pid in pids:
        try:
            status = _status_kib(pid)
            pss += _pss_kib(pid) * 1024
        except (OSError, ValueError):
            continue
        rss += status.get("VmRSS", 0) * 1024
        peak += status.get("VmHWM", 0) * 1024
    return Footprint(rss, peak, pss)


def process_tree(pid: int) -> list[int]:
    """*pid* and all its descendants (from the parent PIDs in /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def tree_size(path: Path) -> int:
    """Bytes of the files and symlinks under *path* (apparent sizes, each hard-linked inode once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]  # listed as dirs, not followed
        for name in filenames + links:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


# --------------------------------------------------------------------------------------------- density


@dataclass(frozen=True)
class Density:
    """*count* instances running at once, each one's memory, and how many would fit in *budget* bytes."""

    kind: str
    count: int
    instances: tuple[Footprint, ...]
    budget: int
    ready_seconds: float  # from starting the first to all of them running

    @property
    def per_instance(self) -> Footprint:
        n = len(self.instances)
        return Footprint(*(sum(getattr(f, k) for f in self.instances) // n
                           for k in ("rss", "peak_rss", "pss", "helper_pss")))

    @property
    def total_cost(self) -> int:
        return sum(f.cost for f in self.instances)

    @property
    def fits(self) -> int:
        """Instances that would fit in the budget at the measured cost each (an extrapolation, said as one)."""
        return self.budget // max(1, self.per_instance.cost)


@dataclass(frozen=True)
class DensityReport:
    """The density experiment: containers and VMs, or why one kind could not be measured."""

    budget: int
    container: Density | None = None
    vm: Density | None = None
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def containers_per_vm(self) -> float | None:
        """How many of these containers use the memory of one of these VMs (None: one side not measured)."""
        if self.container is None or self.vm is None:
            return None
        return self.vm.per_instance.cost / max(1, self.container.per_instance.cost)


@contextlib.contextmanager
def sleeping_containers(store: Store, image: str, count: int,
                        seconds: int = SLEEP_SECONDS) -> Iterator[list[core_container.Container]]:
    """*count* detached containers running ``sleep``; all of them are removed on the way out, whatever happens."""
    started: list[core_container.Container] = []
    try:
        for _ in range(count):
            c = core_container.create_from_image(store, image, ["sleep", str(seconds)])
            started.append(c)
            first = runtime.start_detached(c)
            if first.get("event") != "started":
                raise CompareError(f"a sleeping container did not start: {first.get('message', first)}")
            c.reload()
        yield started
    finally:
        each_to_the_end(started, lambda c: core_container.remove(c, force=True, volumes=True))


def each_to_the_end(items: list[T], clean_up: Callable[[T], None]) -> None:
    """*clean_up* each item, even if an interrupt (the notebook's stop button) comes meanwhile: that item's
    clean-up is done again, the others still get theirs, and the interrupt is raised once all are done.
    Stopped half-way, twenty sleeping containers would stay behind. Errors of one item do not stop the rest."""
    interrupted: KeyboardInterrupt | None = None
    for item in items:
        for _ in range(3):  # (a stop button held down gives up after three tries of one item)
            try:
                with contextlib.suppress(PyContainersError, OSError):
                    clean_up(item)
                break
            except KeyboardInterrupt as exc:
                interrupted = exc
    if interrupted is not None:
        raise interrupted


def container_footprint(c: core_container.Container) -> Footprint:
    """The container's processes (its PID 1 and descendants) and, as its helper, its monitor."""
    own = process_memory(process_tree(int(c.state["pid"])))
    monitor = process_memory([int(c.state["monitor_pid"])]) if c.state.get("monitor_pid") else Footprint(0, 0, 0)
    return Footprint(own.rss, own.peak_rss, own.pss, monitor.pss)


@dataclass
class SleepingVMs:
    """VMs booted with ``sleep`` and all in user space; their QEMU processes and what they were booted from."""

    processes: list[subprocess.Popen[bytes]]
    ready_seconds: float
    kernel: Path
    initramfs: Path
    accel: str


@contextlib.contextmanager
def sleeping_vms(store: Store, image: str, count: int, *, seconds: int = SLEEP_SECONDS,
                 timeout: float = 60) -> Iterator[SleepingVMs]:
    """Boot *count* VMs at once that run ``sleep``, and wait until each one's user space is ready.

    Every QEMU is killed and reaped on the way out, and the initramfs deleted, whatever happens.
    """
    qemu, kernel = vm.require_qemu_and_kernel()
    accel = vm.choose_accel("auto")
    with tempfile.TemporaryDirectory(prefix="pycontainers-compare-vm-") as tmp:
        initrd = vm.build_initramfs(store, image, Path(tmp) / "initramfs.cpio.gz", ["sleep", str(seconds)])
        cmd = vm.qemu_command(qemu, kernel, initrd, accel=accel, microvm=vm.microvm_available(qemu))
        procs: list[subprocess.Popen[bytes]] = []
        try:
            started = time.monotonic()
            for _ in range(count):
                procs.append(vm.start_qemu(cmd))
            for proc in procs:
                log, _ = vm.read_console(proc, started, started + timeout, stop_at=vm.READY_MARKER)
                if log.first(vm.READY_MARKER) is None:
                    raise vm.VMError(f"a VM ({accel}) did not reach user space within {timeout:g} s")
            yield SleepingVMs(procs, time.monotonic() - started, kernel, initrd, accel)
        finally:
            each_to_the_end(procs, vm.kill_and_reap)


def container_density(store: Store, image: str, count: int, budget: int) -> tuple[Density, int]:
    """*count* sleeping containers: their memory, and the bytes of one container's own directory."""
    started = time.monotonic()
    with sleeping_containers(store, image, count) as sleepers:
        ready = time.monotonic() - started
        footprints = tuple(container_footprint(c) for c in sleepers)
        own_dir = tree_size(sleepers[0].dir) if sleepers else 0
    return Density("container", count, footprints, budget, ready), own_dir


def vm_density(store: Store, image: str, count: int, budget: int) -> tuple[Density, tuple[tuple[str, int], ...]]:
    """*count* sleeping VMs: their QEMU processes' memory, and the disk a VM needs (kernel, initramfs)."""
    with sleeping_vms(store, image, count) as vms:
        footprints = tuple(process_memory(process_tree(p.pid)) for p in vms.processes)
        disk = (("guest kernel", vms.kernel.stat().st_size),
                ("initramfs (image + /init)", vms.initramfs.stat().st_size))
        return Density("vm", count, footprints, budget, vms.ready_seconds), disk


def measure_density(store: Store, image: str = "busybox", *, containers: int = 20, vms: int = 2,
                    budget: int = GIB) -> DensityReport:
    """Start *containers* sleeping containers, then *vms* sleeping VMs, and read each one's memory.

    Each kind is cleaned up before the next starts, so neither's memory is read while the other runs.
    """
    result: dict[str, Density] = {}
    unavailable: dict[str, str] = {}
    for kind, why, measure in (("container", container_unavailable(), container_density),
                               ("vm", vm_unavailable(), vm_density)):
        if why:
            unavailable[kind] = why
            continue
        try:
            result[kind] = measure(store, image, containers if kind == "container" else vms, budget)[0]
        except PyContainersError as exc:
            unavailable[kind] = failed(kind, exc)
    return DensityReport(budget, result.get("container"), result.get("vm"), unavailable)


def failed(kind: str, exc: BaseException) -> str:
    """One sentence for a measurement that went wrong: which kind, and the error's own line."""
    return f"The {LABELS[kind]} could not be measured: {str(exc).rstrip('.')}."


# ------------------------------------------------------------------------------------------ comparison


@dataclass(frozen=True)
class Environment:
    """One column of the comparison: a venv, a container or a VM, or why it could not be measured."""

    kind: str
    unavailable: str | None = None
    startup: TimedRun | None = None
    probe: Probe | None = None
    density: Density | None = None
    disk: tuple[tuple[str, int], ...] = ()
    how: str = ""  # what exactly was started, in a few words

    @property
    def measured(self) -> bool:
        return self.unavailable is None

    @property
    def disk_total(self) -> int:
        return sum(size for _, size in self.disk)


QUESTIONS = ("own kernel", "own processes", "own network", "own files")


@dataclass(frozen=True)
class Comparison:
    """The venv, container and VM columns, the host's own probe, and the image and budget used."""

    image: str
    host: Probe
    budget: int
    environments: tuple[Environment, ...]

    def __getitem__(self, kind: str) -> Environment:
        for env in self.environments:
            if env.kind == kind:
                return env
        raise KeyError(kind)

    def verdict(self, kind: str, question: str) -> bool | None:
        """Answer one of ``QUESTIONS`` for one kind from its probe; None when it was not measured."""
        probe = self[kind].probe
        if probe is None:
            return None
        answers = {"own kernel": probe.own_kernel(self.host), "own processes": probe.own_processes(self.host),
                   "own network": probe.own_network(self.host), "own files": probe.own_files()}
        return answers[question]

    def having(self, question: str) -> set[str]:
        """The kinds that measured yes to *question*."""
        return {env.kind for env in self.environments if self.verdict(env.kind, question)}


def measure_venv(workdir: Path, marker: Path) -> Environment:
    """``python -m venv --without-pip`` (pip would only add copying), then the probe run by the venv's Python."""
    target = workdir / "venv"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(target)], check=True, capture_output=True,
                   timeout=120)
    created = time.monotonic() - started
    proc = subprocess.run([str(target / "bin" / "python"), "-c", PYTHON_PROBE, str(marker)], capture_output=True,
                          text=True, timeout=30)
    ended = time.monotonic() - started
    run = TimedRun("venv", phases_from_marks([("create", 0.0), ("command", created)], ended), proc.stdout,
                   proc.returncode)
    return Environment("venv", startup=run, probe=parse_probe(proc.stdout),
                       disk=(("venv directory", tree_size(target)),),
                       how="python -m venv --without-pip, then a command run by the venv's python")


def measure_container(store: Store, image: str, marker: Path, count: int, budget: int) -> Environment:
    """The probe in a new container (timed, warm), then *count* sleeping containers for memory."""
    why = container_unavailable()
    if why:
        return Environment("container", unavailable=why)
    from .image import get_image

    warm_up(store, image)
    run = run_container(store, image, probe_command(marker))
    density, own_dir = container_density(store, image, count, budget)
    disk = (("image in the store", get_image(store, image).size), ("the container's own directory", own_dir))
    return Environment("container", startup=run, probe=parse_probe(run.output), density=density, disk=disk,
                       how=f"pycontainers run {image} (layers already unpacked)")


def measure_vm(store: Store, image: str, marker: Path, count: int, budget: int, timeout: float = 60) -> Environment:
    """The probe in a VM booted from the same image (timed), then *count* sleeping VMs for memory."""
    why = vm_unavailable()
    if why:
        return Environment("vm", unavailable=why)
    run = run_vm(store, image, probe_command(marker), timeout=timeout)
    density, disk = vm_density(store, image, count, budget)
    return Environment("vm", startup=run, probe=parse_probe(run.output), density=density, disk=disk,
                       how=f"QEMU microvm ({run.accel}) booting a Debian kernel with {image} as its initramfs")


def compare(store: Store, image: str = "busybox", *, containers: int = 20, vms: int = 2, budget: int = GIB,
            progress: Callable[[str], None] | None = None) -> Comparison:
    """Measure a venv, a container and a VM one after the other (never two at once: they share the CPUs).

    *progress* receives a short sentence before each step, for a status line.
    """
    say = progress or (lambda _message: None)
    with tempfile.TemporaryDirectory(prefix="pycontainers-compare-") as tmp:
        marker = Path(tmp) / "only-on-the-host"
        marker.write_text("a file that only the host's file system has\n")
        say("Asking the host the probe's questions")
        reference = host_probe(marker)
        steps: tuple[tuple[str, str, Callable[[], Environment]], ...] = (
            ("venv", "Creating a venv and running the probe in it", lambda: measure_venv(Path(tmp), marker)),
            ("container", f"Running the probe in a container, then {containers} sleeping containers",
             lambda: measure_container(store, image, marker, containers, budget)),
            ("vm", f"Booting a VM with the probe, then {vms} sleeping VMs",
             lambda: measure_vm(store, image, marker, vms, budget)),
        )
        environments = []
        for kind, message, measure in steps:
            say(message)
            try:
                environments.append(measure())
            except (PyContainersError, subprocess.SubprocessError) as exc:
                environments.append(Environment(kind, unavailable=failed(kind, exc)))
    say("Done")
    return Comparison(image, reference, budget, tuple(environments))


__all__ = ["CONTAINER_PHASES", "GIB", "PHASE_MEANING", "QUESTIONS", "VENV_PHASES", "VM_PHASES", "CompareError",
           "Comparison", "Density", "DensityReport", "Environment", "Footprint", "Phase", "Probe", "RaceEvent",
           "RaceReport", "RaceSample", "TimedRun", "compare", "container_unavailable", "measure_density", "race",
           "phase_meaning", "race_once", "run_container", "run_vm", "vm_unavailable"]
