"""Warm monitors: a container's start done ahead of time, up to where it must know which container it is.

Much of starting a container does not depend on the container: forking a monitor and PID 1, new
mount, UTS, IPC, network and PID namespaces, a cgroup, and moving PID 1 into it (on cgroup v1 that move
waits for an RCU grace period, 5-25 ms here). So a long-lived client's zygote keeps a few *warm*
monitors with all of this done, and a launch only has to tell one which container to become::

    zygote ──fork (ahead of time)──> warm monitor "pyc-warm"         cgroup pycontainers/warm-<its PID>
                                           └── PID 1 "pyc-warm-init"  new mnt, uts, ipc, net, pid namespaces;
                                                                      in the cgroup; waits on a socket
    launch: the zygote passes the request and the container's stdio to the warm monitor, which passes
            them on to PID 1. PID 1 mounts the image, pivot_roots and execs (``runtime.build_root``,
            ``runtime.exec_command``); the monitor goes on like any other (``runtime.follow``). The
            zygote then makes a new warm monitor.

The cgroup keeps its name (state.json's ``cgroup`` records it): renaming it would wait for the kernel's
cgroup lock, which another warm monitor moving its PID 1 may hold for a grace period. Only a container
that fits takes a warm monitor: native back end, network ``none`` (the default) and no memory or CPU
limit (on cgroup v1 each would join another hierarchy). Every other container starts cold, as the CLI
starts all of them.

Not a daemon: a warm monitor belongs to one zygote, which lives as long as its client (a notebook
kernel, a script). When the zygote's socket closes, the warm monitor kills its PID 1, removes its
cgroup and exits. One killed outright leaves an empty ``warm-<PID>`` cgroup, which the next zygote and
``container prune`` remove.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket

from . import rootfs
from .cgroup import Cgroup, machine_layout
from .container import Container
from .linux import CLONE_NEWCGROUP, CLONE_NEWPID, receive_fds, set_process_name, unshare
from .runtime import (
    OutputTee,
    StartError,
    build_root,
    enter_namespaces,
    exec_command,
    follow,
    keeps_log,
    prepare_to_exec,
    report_failure,
    run_as_init,
)
from .store import Store

PREFIX = "warm-"
SIZE = 3  # warm monitors per zygote (see WarmPool)
READY_TIMEOUT = 2.0  # seconds a launch waits for the warm monitor to be ready before starting cold


def available() -> bool:
    """Can this machine have warm monitors at all (root, and cgroups)?"""
    return os.geteuid() == 0 and machine_layout().version != "none"


def fits(container: Container) -> bool:
    """Can *container* start from a warm monitor (see the module's docstring)?"""
    spec = container.spec
    return (container.state.get("backend") == "native" and spec.network == "none" and spec.memory is None
            and spec.cpus is None)


# ----------------------------------------------------------------------------------------- the zygote


class WarmPool:
    """The zygote's warm monitors, oldest first: ``SIZE`` of them, one new for each one used.

    One at a time rather than in batches: making one costs a few milliseconds of CPU (forks, the mount
    namespace's copy) and holds the cgroup lock for an RCU grace period, and a batch of them running
    beside a container's start slowed that start by as much again.
    """

    def __init__(self) -> None:
        self.socks: list[socket.socket] = []
        self.children: set[int] = set()
        remove_abandoned()

    def fill(self, seccomp_filter: bytes | None) -> None:
        """Top the pool up: all of it the first time, then one for the one just used."""
        self.reap()
        if available():
            while len(self.socks) < SIZE:
                pid, sock = start_warm_monitor(seccomp_filter)
                self.children.add(pid)
                self.socks.append(sock)

    def reap(self) -> None:
        """Collect the exit status of warm monitors that have ended (ours to reap: forked once, not twice)."""
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self.children.discard(pid)

    def launch(self, container: Container, lowers: list[str], stdio: tuple[int, int, int], events_fd: int) -> bool:
        """Give *container* to the oldest warm monitor; False if none is ready (then start it cold)."""
        if not self.socks:
            return False
        sock = self.socks.pop(0)
        request = json.dumps({"home": str(container.store.home), "id": container.id, "state": container.state,
                              "lowers": lowers}).encode()
        try:
            sock.settimeout(READY_TIMEOUT)
            if sock.recv(16) != b"ready":  # "" if it failed while getting ready
                return False
            socket.send_fds(sock, [request], [*stdio, events_fd])
            return True
        except OSError:  # not ready in time, or gone: closing our end makes it clean up
            return False
        finally:
            sock.close()

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks.clear()


def start_warm_monitor(seccomp_filter: bytes | None) -> tuple[int, socket.socket]:
    """Fork a warm monitor; return its PID and the socket to it.

    One fork, not the double fork of a cold start (``runtime.spawn_detached``): the zygote is a
    process of ours that reaps it (``WarmPool.reap``), and a fork less leaves more of the CPU to the
    container starting meanwhile. Should the zygote die first, the monitor is adopted like any orphan.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        with contextlib.suppress(BaseException):
            warm_monitor(theirs.detach(), seccomp_filter)
        os._exit(0)
    theirs.close()
    return pid, ours


def remove_abandoned() -> None:
    """rmdir each ``warm-<PID>`` cgroup whose monitor is gone (the kernel refuses one with a process)."""
    for parent in {d.parent for d in Cgroup("any").dirs.values()}:
        with contextlib.suppress(OSError):
            for d in parent.glob(f"{PREFIX}*"):
                pid = d.name[len(PREFIX):]
                if not (pid.isdigit() and os.path.exists(f"/proc/{pid}")):
                    with contextlib.suppress(OSError):
                        d.rmdir()


# ------------------------------------------------------------------------------------ the warm monitor


def warm_monitor(fd: int, seccomp_filter: bytes | None) -> None:
    """Get ready (cgroup, PID namespace, PID 1 in both), say so, then become the monitor of a container."""
    become_warm(fd)
    sock = socket.socket(fileno=fd)
    cgroup = Cgroup(f"{PREFIX}{os.getpid()}")
    cgroup.create()
    unshare(CLONE_NEWPID)  # our next child is PID 1 of a new PID namespace
    init_sock, init_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        sock.close()
        init_sock.close()
        os.close(err_r)
        os.close(go_w)
        warm_init(init_end, err_w, go_r, seccomp_filter)  # never returns
    init_end.close()
    os.close(err_w)
    os.close(go_r)
    try:
        cgroup.add(pid)
        sock.send(b"ready")
        request, fds = receive_fds(sock, 1 << 20, 4)
    except OSError:
        request, fds = b"", []
    sock.close()
    if not request or len(fds) != 4:  # the zygote is gone, or started the container cold after all
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        cgroup.remove()
        return
    set_process_name("pyc-monitor")
    req = json.loads(request)
    container = Container(Store(req["home"], create=False), req["id"], req["state"])
    stdio, events_fd = (fds[0], fds[1], fds[2]), fds[3]
    try:
        tee = OutputTee(container, stdio) if keeps_log(container, stdio) else None
        child_stdio = tee.container_stdio if tee else stdio
        socket.send_fds(init_sock, [request], list(child_stdio))  # PID 1 starts on the root at once
        init_sock.close()
        for fd in set(child_stdio):
            os.close(fd)  # PID 1 holds them now
        # Meanwhile the cgroup gets the container's limit; PID 1 waits for it before execve. (Its name stays:
        # a rename waits for the cgroup lock, which a warm monitor joining its cgroup holds for milliseconds.)
        container.state["cgroup"] = cgroup.name  # saved with the container's "running" state
        if container.spec.pids_limit is not None:
            cgroup.limit_pids(container.spec.pids_limit)
        with contextlib.suppress(BrokenPipeError):  # PID 1 failed already: its error is on err_r
            os.write(go_w, b"1")
        os.close(go_w)
    except BaseException as exc:  # noqa: BLE001 (told to the caller in one line)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with contextlib.suppress(Exception):
            cgroup.remove()
        report_failure(container, events_fd, exc)
        return
    follow(container, cgroup, pid, err_r, tee, events_fd)


def become_warm(fd: int) -> None:
    """A session of our own, nothing of the zygote's but our socket, and deaf to signals meant for others."""
    os.setsid()
    set_process_name("pyc-warm")
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.closerange(3, fd)  # the zygote's other sockets, among them an older warm monitor's
    os.closerange(fd + 1, os.sysconf("SC_OPEN_MAX"))
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)


def warm_init(sock: socket.socket, err_w: int, go_r: int, seccomp_filter: bytes | None) -> None:
    """PID 1 of a warm monitor: namespaces now; the image, the root and the command once a request comes."""

    def steps() -> None:
        set_process_name("pyc-warm-init")
        enter_namespaces("none")
        rootfs.make_mounts_private()
        prepare_to_exec()
        request, fds = receive_fds(sock, 1 << 20, 3)
        if not request:  # no container after all (the warm monitor is cleaning up)
            os._exit(0)
        req = json.loads(request)
        container = Container(Store(req["home"], create=False), req["id"], req["state"])
        unshare(CLONE_NEWCGROUP)  # the monitor moved us into our cgroup before it passed the request on
        command = build_root(container, req["lowers"])
        if not os.read(go_r, 1):
            raise StartError("the container's cgroup could not be given its limits")
        exec_command(command, (fds[0], fds[1], fds[2]), seccomp_filter)

    run_as_init(steps, err_w)

