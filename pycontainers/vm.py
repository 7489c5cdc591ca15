"""Run an image's command in a real virtual machine, to race a VM against a container.

A container shares the host's kernel; a VM boots its own. To make that difference measurable, ``run``
boots a real Linux kernel (Debian's cloud kernel, fetched by ``setup.sh``) in QEMU with the image's file
system as its initramfs, runs one command there and powers off. The guest's ``/init`` prints markers on
the serial console, so the host can time each phase: QEMU starting, the kernel's first line, user space
ready, the command finished, the VM gone.

Nested KVM is broken on some machines (the guest dies on an MSR assertion), so ``kvm_usable`` tries a
short, time-limited boot before KVM is trusted; otherwise QEMU emulates the CPU (TCG), which is slower
but works everywhere.

Only ``subprocess.Popen`` (fork+exec in C) starts processes: a notebook kernel must never ``os.fork``.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import os
import selectors
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .errors import PyContainersError
from .store import Store

QEMU = "qemu-system-x86_64"
READY_MARKER = "PYCONTAINERS-READY"
EXIT_MARKER = "PYCONTAINERS-EXIT"
KERNEL_MARKER = "PYCONTAINERS-KERNEL"
COMMAND_FILE = ".pycontainers-command"
# Fixed mtime of every archive entry: the same image and command must give the same bytes.
EPOCH = 0
KVM_PROBE_TIMEOUT = 8.0
MIN_MEMORY_MIB = 256  # enough for busybox; bigger images get more (memory_for)

# The guest's PID 1. Builtins only (read, echo) until the command runs, so the ready marker measures
# the kernel's boot, not forks. ``poweroff -f`` ends the VM; if it is missing, PID 1 exiting makes the
# kernel panic, and ``panic=-1`` plus QEMU's ``-no-reboot`` turn that into QEMU exiting too.
INIT_SCRIPT = f"""#!/bin/sh
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mkdir -p /proc /dev /tmp 2>/dev/null
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev 2>/dev/null
read -r release < /proc/sys/kernel/osrelease
echo "{KERNEL_MARKER} $release"
read -r uptime idle < /proc/uptime
echo "{READY_MARKER} $uptime"
/bin/sh /{COMMAND_FILE} </dev/null
echo "{EXIT_MARKER} $?"
poweroff -f
echo o > /proc/sysrq-trigger
"""


class VMError(PyContainersError):
    """QEMU or the guest kernel is missing, or the VM did not finish in time."""


@dataclass
class VMResult:
    """What a VM run printed and how long each phase took (seconds since QEMU was started)."""

    output: str
    exit_code: int
    kernel_release: str | None
    timings: dict[str, float] = field(default_factory=dict)
    guest_uptime: float = 0.0
    accel: str = "tcg"


# Finding QEMU and the kernel --------------------------------------------------------------------


def kernel_cache_path() -> Path:
    """Where ``setup.sh`` puts the guest kernel (``vm_kernel``), so notebooks find it without settings."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "pycontainers" / "kernel" / "vmlinuz"


def find_kernel() -> Path | None:
    """The guest kernel: ``$PYCONTAINERS_KERNEL`` if set (and present), else the one ``setup.sh`` cached."""
    override = os.environ.get("PYCONTAINERS_KERNEL")
    candidates = [Path(override)] if override else []
    candidates.append(kernel_cache_path())
    for path in candidates:
        if path.is_file() and path.stat().st_size > 0:
            return path
    return None


def find_qemu() -> str | None:
    """The QEMU binary on PATH, or None."""
    return shutil.which(QEMU)


def require_qemu_and_kernel() -> tuple[str, Path]:
    """QEMU and the kernel, or one clear line saying how to get whichever is missing."""
    qemu = find_qemu()
    if qemu is None:
        raise VMError(f"{QEMU} is not installed (apt-get install qemu-system-x86)")
    kernel = find_kernel()
    if kernel is None:
        raise VMError("no guest kernel: run ./setup.sh")
    return qemu, kernel


@functools.cache
def microvm_available(qemu: str) -> bool:
    """Whether this QEMU has the ``microvm`` machine (no PCI, no firmware: the fastest boot)."""
    try:
        proc = subprocess.run([qemu, "-machine", "help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(line.split()[:1] == ["microvm"] for line in proc.stdout.splitlines())


# The initramfs ----------------------------------------------------------------------------------


def command_script(command: str | Sequence[str]) -> str:
    """The command as a shell script: a string runs as a shell line, a list as exactly those words."""
    line = command if isinstance(command, str) else shlex.join(command)
    return line + "\n"


def newc_header(ino: int, mode: int, nlink: int, size: int, name: bytes, rdev: tuple[int, int] = (0, 0)) -> bytes:
    """One cpio "newc" header (what the kernel's initramfs unpacker reads); uid/gid 0, fixed mtime."""
    fields = [ino, mode, 0, 0, nlink, EPOCH, size, 0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    return b"070701" + b"".join(b"%08X" % value for value in fields) + name + b"\0"


def pad4(length: int) -> bytes:
    """newc aligns every header+name and every body to 4 bytes."""
    return b"\0" * (-length % 4)


class CpioWriter:
    """Writes newc entries; hard links share an inode number and only the first carries the data."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.next_ino = 1

    def entry(self, name: str, mode: int, data: bytes = b"", *, ino: int | None = None, nlink: int = 1,
              rdev: tuple[int, int] = (0, 0)) -> None:
        if ino is None:
            ino = self.new_ino()
        header = newc_header(ino, mode, nlink, len(data), name.encode(), rdev)
        self.out.write(header + pad4(len(header)))
        self.out.write(data + pad4(len(data)))

    def new_ino(self) -> int:
        ino = self.next_ino
        self.next_ino += 1
        return ino

    def trailer(self) -> None:
        self.entry("TRAILER!!!", 0, ino=0, nlink=1)


def walk_sorted(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every path under *root* (relative, sorted, parents first) with its lstat: a reproducible order."""
    paths: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            paths.append(os.path.normpath(os.path.join(rel, name)))
    for rel in sorted(paths):
        yield rel, os.lstat(root / rel)


def write_tree(writer: CpioWriter, root: Path, skip: set[str]) -> None:
    """Archive the flattened image; hard-linked files (busybox's applets) are stored once."""
    inodes: dict[tuple[int, int], int] = {}
    links: dict[tuple[int, int], int] = {}
    entries = [(rel, st) for rel, st in walk_sorted(root) if rel not in skip]
    for _, st in entries:
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            links[key] = links.get(key, 0) + 1
    for rel, st in entries:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            writer.entry(rel, mode, nlink=2)
        elif stat.S_ISLNK(mode):
            writer.entry(rel, mode, os.readlink(root / rel).encode())
        elif stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            count = links.get(key, 1)
            if count == 1:
                writer.entry(rel, mode, (root / rel).read_bytes())
            elif key in inodes:
                writer.entry(rel, mode, ino=inodes[key], nlink=count)
            else:
                inodes[key] = writer.new_ino()
                writer.entry(rel, mode, (root / rel).read_bytes(), ino=inodes[key], nlink=count)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            writer.entry(rel, mode, rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)))
        elif stat.S_ISFIFO(mode):
            writer.entry(rel, mode)
        # sockets are not archived: nothing in an image needs one before boot


def build_initramfs(store: Store, image_name: str, out_path: Path | str,
                    command: str | Sequence[str] = "true") -> Path:
    """Write the image's file system, ``/init`` and *command* as a gzip'ed newc cpio the kernel unpacks.

    The image is flattened into a temporary directory (whiteouts applied, as overlayfs would show it);
    entries are sorted with fixed mtimes and owner 0, and gzip gets no name or time, so the same image
    and command always give the same bytes (cacheable, comparable).
    """
    from .bundle import flatten
    from .image import get_image

    image = get_image(store, image_name)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"init": INIT_SCRIPT.encode(), COMMAND_FILE: command_script(command).encode()}
    with tempfile.TemporaryDirectory(prefix="pycontainers-initramfs-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        flatten(store, image, root)
        partial = out_path.with_name(out_path.name + ".part")
        try:
            with open(partial, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=EPOCH,
                                                            compresslevel=6) as gz:
                writer = CpioWriter(gz)  # type: ignore[arg-type]
                write_tree(writer, root, skip=set(extra) | {"dev/console"})
                if not (root / "dev").is_dir():
                    writer.entry("dev", stat.S_IFDIR | 0o755, nlink=2)
                # The kernel opens /dev/console for PID 1 before any devtmpfs exists.
                writer.entry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
                for name, data in sorted(extra.items()):
                    writer.entry(name, stat.S_IFREG | 0o755, data)
                writer.trailer()
            os.replace(partial, out_path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
    return out_path


# Booting ----------------------------------------------------------------------------------------


def qemu_command(qemu: str, kernel: Path, initrd: Path | None, *, accel: str, microvm: bool,
                 append: str = "", memory_mib: int = MIN_MEMORY_MIB) -> list[str]:
    """The QEMU command line: one CPU, *memory_mib* of RAM, serial console on stdout, no devices we do not use."""
    cmd = [qemu]
    if microvm:
        cmd += ["-M", "microvm"]
    else:
        cmd += ["-M", "q35"]
    if accel == "kvm":
        cmd += ["-enable-kvm", "-cpu", "host"]
    else:
        cmd += ["-accel", "tcg"]
    cmd += ["-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio", "-no-reboot",
            "-m", str(memory_mib), "-smp", "1", "-kernel", str(kernel)]
    if initrd is not None:
        cmd += ["-initrd", str(initrd)]
    if accel == "tcg":
        append = f"{tsc_hint()} {append}"
    cmd += ["-append", f"console=ttyS0 quiet panic=-1 {append}".strip()]
    return cmd


def memory_for(image_bytes: int) -> int:
    """RAM for a guest whose whole file system is an initramfs of *image_bytes*.

    The kernel unpacks the archive into a tmpfs, which may fill only half of the RAM, while the compressed
    archive is still in memory too; and the kernel and the command need room of their own. So: 2.5 times
    the image, plus 192 MiB; at least ``MIN_MEMORY_MIB``, rounded up to 64 MiB."""
    needed = 192 + (5 * image_bytes) // (2 << 20)
    return max(MIN_MEMORY_MIB, -(-needed // 64) * 64)


def tsc_hint() -> str:
    """``tsc_early_khz=<host TSC>`` for TCG guests, whose TSC runs at the host's rate.

    Without it the kernel calibrates the TSC against the emulated PIT, which under TCG fails now and
    then ("Unable to calibrate against PIT"); the boot then hangs silently. Measured: 2 boots in 5 hung.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return f"tsc_early_khz={round(float(line.split(':')[1]) * 1000)}"
    except (OSError, ValueError, IndexError):
        pass
    return "tsc_early_khz=2000000"


@dataclass
class ConsoleLog:
    """Serial console lines, each with the time (since QEMU started) it arrived."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    stderr: bytes = b""

    def first(self, prefix: str) -> tuple[float, str] | None:
        for at, line in self.lines:
            if line.startswith(prefix):
                return at, line
        return None


def start_qemu(cmd: list[str]) -> subprocess.Popen[bytes]:
    """Start QEMU in its own process group, so a timeout kills it and anything it started."""
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def kill_and_reap(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL QEMU's process group and wait for it: no zombie, no orphan VM eating a core."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def read_console(proc: subprocess.Popen[bytes], started: float, deadline: float,
                 stop_at: str | None = None) -> tuple[ConsoleLog, bool]:
    """Collect timestamped console lines until QEMU closes stdout (True) or *deadline* passes (False).

    *stop_at*: a line prefix after which waiting for the VM is no longer needed (the probe's case).
    """
    log = ConsoleLog()
    partial = b""
    assert proc.stdout is not None and proc.stderr is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    open_streams = 2
    try:
        while open_streams:
            left = deadline - time.monotonic()
            if left <= 0:
                return log, False
            for key, _ in sel.select(timeout=left):
                chunk = os.read(key.fd, 65536)
                now = time.monotonic() - started
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == "err":
                    log.stderr += chunk
                    continue
                partial += chunk
                *complete, partial = partial.split(b"\n")
                for raw in complete:
                    line = raw.decode("utf-8", "replace").rstrip("\r")
                    log.lines.append((now, line))
                    if stop_at and line.startswith(stop_at):
                        return log, True
        if partial:
            log.lines.append((time.monotonic() - started, partial.decode("utf-8", "replace").rstrip("\r")))
        return log, True
    finally:
        sel.close()


def boot(cmd: list[str], timeout: float, stop_at: str | None = None) -> tuple[ConsoleLog, int | None, float]:
    """Run QEMU to the end (or *timeout*), always killing and reaping it; (console, return code, exit time)."""
    started = time.monotonic()
    proc = start_qemu(cmd)
    try:
        log, finished = read_console(proc, started, started + timeout, stop_at)
        stopped_early = stop_at is not None and log.first(stop_at) is not None
        if finished and not stopped_early:  # QEMU closed its output: collect its exit status
            rc: int | None = proc.wait(timeout=max(0.1, started + timeout - time.monotonic()))
        else:
            rc = proc.poll()
        return log, rc, time.monotonic() - started
    except subprocess.TimeoutExpired:
        return log, None, time.monotonic() - started
    finally:
        kill_and_reap(proc)


# KVM probe --------------------------------------------------------------------------------------

_kvm_answer: tuple[bool, str] | None = None


def kvm_usable(timeout: float = KVM_PROBE_TIMEOUT) -> tuple[bool, str]:
    """Whether QEMU can really boot a guest with KVM here, and one sentence saying why (cached per process).

    /dev/kvm existing is not enough: under nested virtualisation the guest may die on its first MSR
    write. So a kernel is booted with no initramfs, ``-enable-kvm -cpu host``; reaching the kernel's
    "Kernel panic" about the missing root (or powering off) means KVM works.
    """
    global _kvm_answer
    if _kvm_answer is None:
        _kvm_answer = probe_kvm(timeout)
    return _kvm_answer


def probe_kvm(timeout: float) -> tuple[bool, str]:
    """The uncached KVM probe (see ``kvm_usable``)."""
    if not os.path.exists("/dev/kvm"):
        return False, "KVM is not available: /dev/kvm does not exist."
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "KVM is not available: /dev/kvm is not readable and writable by this user."
    qemu, kernel = find_qemu(), find_kernel()
    if qemu is None or kernel is None:
        return False, "KVM was not probed: QEMU or the guest kernel is missing."
    cmd = qemu_command(qemu, kernel, None, accel="kvm", microvm=microvm_available(qemu))
    cmd[-1] = "console=ttyS0 panic=-1"  # not quiet: the kernel's own lines are the proof of life
    log, rc, elapsed = boot(cmd, timeout, stop_at="Linux version")
    if log.first("Linux version") is not None:
        return True, f"KVM works: a guest kernel started under KVM in {elapsed:.1f} s."
    problem = last_line(log.stderr.decode("utf-8", "replace"))
    if rc is None:
        return False, f"KVM is not usable: a KVM guest printed nothing within {timeout:g} s{colon(problem)}."
    return False, f"KVM is not usable: QEMU with -enable-kvm exited with code {rc}{colon(problem)}."


def unfinished(log: ConsoleLog, rc: int | None, accel: str, timeout: float) -> str:
    """Why a VM gave no exit marker: it panicked, QEMU quit, or it ran out of time (and was killed)."""
    panic = next((line for _, line in log.lines if "Kernel panic" in line), None)
    if panic is not None:
        return f"the VM's kernel panicked before the command ran: {panic.split('] ', 1)[-1]}"
    seen = log.lines[-1][1] if log.lines else last_line(log.stderr.decode("utf-8", "replace"))
    what = 'last console line: ' + seen if seen else 'no console output'
    if rc is not None:
        return f"QEMU ({accel}) exited with code {rc} before the command finished{colon(what)}"
    return f"the VM ({accel}) did not finish within {timeout:g} s and was killed{colon(what)}"


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def colon(detail: str) -> str:
    return f" ({detail.rstrip('.')})" if detail else ""


# Running a command in a VM ----------------------------------------------------------------------


def choose_accel(accel: str) -> str:
    """``auto`` means KVM only when the probe booted a guest with it, else TCG."""
    if accel == "auto":
        return "kvm" if kvm_usable()[0] else "tcg"
    if accel not in ("kvm", "tcg"):
        raise VMError(f"accel must be 'auto', 'kvm' or 'tcg', not {accel!r}")
    return accel


def phase_timings(log: ConsoleLog, exited: float) -> dict[str, float]:
    """Seconds since QEMU started at which each phase was seen on the console."""
    timings = {"process_start": 0.0}
    if log.lines:
        timings["first_console_line"] = log.lines[0][0]
    for name, marker in (("ready_marker", READY_MARKER), ("exit_marker", EXIT_MARKER)):
        seen = log.first(marker)
        if seen is not None:
            timings[name] = seen[0]
    timings["vm_exited"] = exited
    return timings


def command_output(log: ConsoleLog) -> str:
    """What the command printed: the console lines between the ready and exit markers."""
    lines = [line for _, line in log.lines]
    start = next((i for i, line in enumerate(lines) if line.startswith(READY_MARKER)), len(lines))
    end = next((i for i, line in enumerate(lines) if line.startswith(EXIT_MARKER)), len(lines))
    body = lines[start + 1:end]
    return "".join(line + "\n" for line in body)


def marker_value(log: ConsoleLog, marker: str) -> str | None:
    seen = log.first(marker)
    if seen is None:
        return None
    parts = seen[1].split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def run(store: Store, image_name: str, command: str | Sequence[str], *, timeout: float = 20,
        accel: str = "auto") -> VMResult:
    """Boot a VM whose root file system is *image_name*, run *command* in it, power off, report.

    Raises ``VMError`` when QEMU or the kernel is missing, or when the guest does not print its exit
    marker within *timeout* seconds (QEMU is then killed; nothing is left running).
    """
    from .image import get_image

    qemu, kernel = require_qemu_and_kernel()
    accel = choose_accel(accel)
    memory = memory_for(sum(layer.size for layer in get_image(store, image_name).layers))
    with tempfile.TemporaryDirectory(prefix="pycontainers-vm-") as tmp:
        initrd = build_initramfs(store, image_name, Path(tmp) / "initramfs.cpio.gz", command)
        cmd = qemu_command(qemu, kernel, initrd, accel=accel, microvm=microvm_available(qemu), memory_mib=memory)
        log, rc, exited = boot(cmd, timeout)
    code = marker_value(log, EXIT_MARKER)
    if code is None or not code.lstrip("-").isdigit():
        raise VMError(unfinished(log, rc, accel, timeout))
    uptime = marker_value(log, READY_MARKER) or "0"
    return VMResult(output=command_output(log), exit_code=int(code), kernel_release=marker_value(log, KERNEL_MARKER),
                    timings=phase_timings(log, exited), guest_uptime=float(uptime.split()[0]), accel=accel)
