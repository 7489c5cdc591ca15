"""The issue's reference point: the least a Python container start can be, timed run by run.

fork, unshare new mount, UTS, IPC, network and PID namespaces, fork again (the command is PID 1 of
the new PID namespace), chroot into an unpacked image layer and exec the command; the parent waits.
No overlayfs, no pivot_root, no /proc or /dev, no cgroup, no capabilities dropped, no seccomp, no
container state: everything a real start adds is missing, which is what makes it the floor.

    sudo python benchmarks/bare_prototype.py ROOTFS RUNS [COMMAND...]

prints one time per run, in milliseconds. A fresh, single-threaded process, so forking it is safe.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time

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


def main() -> int:
    rootfs, runs, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:] or ["/bin/true"]
    times = []
    for _ in range(runs + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        code = run_once(rootfs, argv)
        times.append((time.perf_counter() - t0) * 1000)
        if code != 0:
            print(f"bare_prototype: {argv[0]} exited with {code}", file=sys.stderr)
            return 1
    print("\n".join(f"{t:.3f}" for t in times[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
