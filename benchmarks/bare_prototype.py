"""The issue's reference point: the least a Python container start can be, timed run by run.

fork, unshare new mount, UTS, IPC, network and PID namespaces, fork again (the command is PID 1 of
the new PID namespace), chroot into an unpacked image layer and exec the command; the parent waits.
No overlayfs, no pivot_root, no /proc or /dev, no cgroup, no capabilities dropped, no seccomp, no
container state: everything a real start adds is missing, which is what makes it the floor.

``--warm SECCOMP_PROGRAM``: the floor of a *warm* start instead, the design pycontainers uses
(pycontainers/warm.py). The forks and the namespaces are made before the clock starts, as a warm
monitor makes them; timed are only the steps that depend on the container, each done once, plainly:
make its upper and work directories, wake PID 1, mount overlayfs over the layer, ``pivot_root`` into
it, drop to Docker's capabilities, ``no_new_privs``, load the seccomp program (a file of BPF
instructions, ``pycontainers.seccomp``) and exec, then wait for the command (its mount namespace held
meanwhile, as the engine holds it). Still no /proc, /dev or /sys, no cgroup, no /etc/hosts, no user
lookup, no state, no monitor, no report to a caller: the engine's time beyond this is what those cost.

    sudo python benchmarks/bare_prototype.py [--warm SECCOMP_PROGRAM] ROOTFS RUNS [COMMAND...]

prints one time per run, in milliseconds. A fresh, single-threaded process, so forking it is safe.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pycontainers import linux  # noqa: E402 (system-call wrappers only: ctypes and the standard library)

# <sched.h> (os.unshare is Python 3.12's): mount, UTS, IPC, network and PID namespaces.
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWPID = (
    0x00020000, 0x04000000, 0x08000000, 0x40000000, 0x20000000)
NAMESPACES = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWPID
libc = ctypes.CDLL(None, use_errno=True)


def unshare(flags: int) -> None:
    if libc.unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare: {os.strerror(errno)}")


def run_once(rootfs: str, argv: list[str]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            unshare(NAMESPACES)
            init = os.fork()  # the first child in the new PID namespace is its PID 1
            if init == 0:
                os.chroot(rootfs)
                os.chdir("/")
                os.execv(argv[0], argv)
            _, status = os.waitpid(init, 0)
            os._exit(os.waitstatus_to_exitcode(status))
        except BaseException as exc:  # noqa: BLE001 (a child: say why, never return into the caller's loop)
            os.write(2, f"bare_prototype: {exc}\n".encode())
        os._exit(127)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def warm_pid1(scratch: str) -> tuple[int, int]:
    """Before the clock: fork PID 1 into new namespaces, waiting on a pipe; return its PID and the pipe.

    Its parent, the namespaces' maker, exits at once: we are a subreaper, so PID 1 becomes our child."""
    go_r, go_w = os.pipe()
    maker = os.fork()
    if maker == 0:
        try:
            os.close(go_w)
            unshare(NAMESPACES)
            linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)  # our mounts stay ours
            if os.fork() == 0:
                os.read(go_r, 1)  # asleep until the clock starts
                start_isolated(scratch)
        except BaseException as exc:  # noqa: BLE001 (a child: say why, never return into the caller's loop)
            os.write(2, f"bare_prototype: {exc}\n".encode())
            os._exit(127)
        os._exit(0)
    os.close(go_r)
    os.waitpid(maker, 0)
    for name in os.listdir("/proc/self/task"):  # PID 1, adopted by us when the maker exited
        with open(f"/proc/self/task/{name}/children") as f:
            children = f.read().split()
        if children:
            return int(children[0]), go_w
    raise RuntimeError("the warm PID 1 is gone")


def start_isolated(scratch: str) -> None:
    """(PID 1) Root on overlayfs, pivot_root, capabilities, no_new_privs, seccomp, exec: never returns."""
    try:
        merged = os.path.join(scratch, "merged")
        linux.mount("overlay", merged, "overlay", 0,
                    f"lowerdir={ROOTFS},upperdir={scratch}/upper,workdir={scratch}/work")
        os.chdir(merged)
        linux.pivot_root(".", ".")  # the old root ends up stacked on the new one ...
        linux.umount2(".", linux.MNT_DETACH)  # ... and is taken off it
        os.chdir("/")
        linux.set_capabilities(linux.DEFAULT_CAPABILITIES)
        linux.load_seccomp_filter(PROGRAM)  # (sets no_new_privs first)
        os.execv(ARGV[0], ARGV)
    except BaseException as exc:  # noqa: BLE001
        os.write(2, f"bare_prototype: {exc}\n".encode())
    os._exit(127)


def run_warm(scratch: str) -> tuple[int, float]:
    """One warm start: PID 1 made before the clock; its exit status and the time from go to its end."""
    for name in ("upper", "work", "merged"):
        shutil.rmtree(os.path.join(scratch, name), ignore_errors=True)
    os.makedirs(os.path.join(scratch, "merged"))
    pid, go = warm_pid1(scratch)
    # Held, as the engine's monitor holds it (runtime.hold_mount_namespace): else PID 1's exit unmounts
    # everything and waits for an RCU grace period on the way, which nobody needs to wait for.
    mount_namespace = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY)
    t0 = time.perf_counter()
    os.mkdir(os.path.join(scratch, "upper"))  # a container's own directories are part of its start
    os.mkdir(os.path.join(scratch, "work"))
    os.write(go, b"1")
    _, status = os.waitpid(pid, 0)
    took = (time.perf_counter() - t0) * 1000
    os.close(go)
    os.close(mount_namespace)
    return os.waitstatus_to_exitcode(status), took


ROOTFS, PROGRAM, ARGV = "", b"", ["/bin/true"]


def main() -> int:
    global ROOTFS, PROGRAM, ARGV
    args = sys.argv[1:]
    warm = args[0] == "--warm"
    if warm:
        PROGRAM = Path(args[1]).read_bytes()
        args = args[2:]
        linux.prctl(linux.PR_SET_CHILD_SUBREAPER, 1)
    rootfs, runs, argv = args[0], int(args[1]), args[2:] or ["/bin/true"]
    ROOTFS, ARGV = rootfs, argv
    scratch = tempfile.mkdtemp(prefix="bare-prototype-")
    times = []
    try:
        for _ in range(runs + 1):  # the first is a warm-up
            if warm:
                code, took = run_warm(scratch)
            else:
                t0 = time.perf_counter()
                code = run_once(rootfs, argv)
                took = (time.perf_counter() - t0) * 1000
            times.append(took)
            if code != 0:
                print(f"bare_prototype: {argv[0]} exited with {code}", file=sys.stderr)
                return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\n".join(f"{t:.3f}" for t in times[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
