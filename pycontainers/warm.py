"""Warm monitors: a container's start done ahead of time, up to where it must know which container it is.

Much of starting a container does not depend on the container: forking a monitor and PID 1, new
mount, UTS, IPC, network and PID namespaces, a cgroup, and moving PID 1 into it (on cgroup v1 that move
waits for an RCU grace period, 5-25 ms here). So a long-lived client's zygote keeps a few *warm*
monitors with all of this done, and a launch only has to tell one which container to become::

    zygote ──fork (ahead of time)──> warm monitor "pyc-warm"         cgroup pycontainers/warm-<its PID>.<N>
                                      │ (a subreaper)
                                      ├── forker "pyc-forker"        a fresh small Python (pid1.forker),
                                      │     │                        while containers come quickly
                                      │     └─fork─> (exits) ─fork─> PID 1, handed to the monitor
                                      └── PID 1 "pyc-warm-init"      new mnt, uts, ipc, net, pid namespaces;
                                                                     /proc /dev /sys made; in the cgroup;
                                                                     waits on a socket
    launch: the zygote passes the request and the container's stdio to the warm monitor, which works out
            PID 1's plan (``runtime.init_plan``) and passes it on with the stdio. PID 1 mounts the image,
            pivot_roots and execs (``pid1.start_when_asked``); the monitor goes on like any other
            (``runtime.follow``), and when the container has ended it gets ready for the next one.

PID 1 is forked through a child that makes its PID namespace and exits at once, so the monitor, a
subreaper, becomes PID 1's parent and waits for it as for any child (``pid1.fork_warm_pid1``). As a
subreaper it also adopts any process of the container whose parent outside died first (a health check
whose runner died): ``runtime.wait_for_pid1`` reaps those too, or PID 1's exit would wait for them for ever.
Forked from the monitor, whose memory is the zygote's (the engine imported), PID 1 costs a few ms: the fork, the
copies of every page the monitor then writes, ``execve`` tearing it all down. So while containers come
quickly (the last one ran for less than ``pid1.FORKER_LINGER``), a *forker* forks them instead: a fresh
interpreter with nothing but ``pid1`` imported, half the memory. Starting one costs tens of ms, which only
a stream of short containers pays back: a new monitor, or one whose container ran long, forks its PID 1
itself.

The cgroup keeps its name (state.json's ``cgroup`` records it): renaming it would wait for the kernel's
cgroup lock, which another warm monitor moving its PID 1 may hold for a grace period. Only a container
that fits takes a warm monitor: native or rootless back end, network ``none`` (the default) and no memory
or CPU limit (on cgroup v1 each would join another hierarchy). Every other container starts cold, as the
CLI starts all of them. A rootless monitor is root of a user namespace with the container's id maps, and
has no cgroup.

Not a daemon: a warm monitor belongs to one zygote, which lives as long as its client (a notebook
kernel, a script). When the zygote's socket closes, the warm monitor kills its PID 1, removes its
cgroup and exits. One killed outright leaves an empty ``warm-<PID>.<N>`` cgroup, which the next zygote
and ``container prune`` remove.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import signal
import socket
import sys
import time
from pathlib import Path

from .cgroup import Cgroup, CgroupError, machine_layout
from .container import Container, monitoring
from .linux import PR_SET_CHILD_SUBREAPER, prctl, receive_fds, set_process_name
from .pid1 import FORKER_LINGER, fork_warm_pid1, keep_only
from .runtime import close_handed_over, follow, init_plan, keep_status_of, output_keeper, reap, report_failure
from .store import Store

PREFIX = "warm-"
SIZE = 3  # warm monitors made at once (see WarmPool)
MAX_IDLE = 2 * SIZE  # ... and kept waiting at most
READY_TIMEOUT = 2.0  # seconds a launch waits for the warm monitor to be ready before starting cold
FORKER_ANSWER_TIMEOUT = 2.0  # seconds a monitor waits for its forker to make a PID 1


def available() -> bool:
    """Can this machine have native warm monitors at all (root, and cgroups)?"""
    return os.geteuid() == 0 and machine_layout().version != "none"


def fits(container: Container) -> bool:
    """Can *container* start from a warm monitor (see the module's docstring)?"""
    spec = container.spec
    return (container.state.get("backend") in ("native", "rootless") and spec.network == "none"
            and spec.memory is None and spec.cpus is None)


def pool_key(container: Container) -> str:
    """Which warm monitors suit *container*: native ones, or rootless ones in a user namespace with its maps."""
    if container.state.get("backend") == "rootless":
        return "rootless " + json.dumps(container.state.get("id_maps"), sort_keys=True)
    return "native"


# ----------------------------------------------------------------------------------------- the zygote


class WarmPool:
    """The zygote's warm monitors: each is warming, ready, or busy with a container.

    A busy monitor comes back when its container has ended: it gets ready for another one and says
    "ready" again, so a steady stream of containers needs no new process but their PID 1s (making a
    monitor costs a fork of the zygote and, at its end, an exit: about 3 ms of CPU each here). New
    monitors are made only when none is idle: ``SIZE`` of them at once, whose cgroup moves share one
    RCU grace period. A monitor that comes back while ``MAX_IDLE`` others are idle is let go: so back-to-
    back containers, each started before the last one's monitor is ready again, settle on a few more
    monitors rather than make and end them over and over (each one starts a forker: tens of ms of CPU).
    """

    def __init__(self, id_maps: dict[str, object] | None = None) -> None:
        """*id_maps*: rootless monitors, each in a user namespace of its own with these maps."""
        self.state: dict[socket.socket, str] = {}  # "warming", "ready" or "busy", in the order made
        self.children: set[int] = set()
        self.id_maps = id_maps
        if id_maps is None:
            remove_abandoned()

    def idle(self) -> list[socket.socket]:
        return [s for s, st in self.state.items() if st != "busy"]

    def fill(self, seccomp_filter: bytes | None) -> None:
        """With no monitor idle (warming or ready), make ``SIZE`` new ones."""
        self.reap()
        if (self.id_maps is not None or available()) and not self.idle():
            for _ in range(SIZE):
                pid, sock = start_warm_monitor(seccomp_filter, self.id_maps)
                self.children.add(pid)
                self.state[sock] = "warming"

    def collect(self, timeout: float = 0) -> None:
        """Read what the monitors said: "ready", or nothing (gone). Keep at most ``MAX_IDLE`` idle."""
        if not self.state:
            return
        readable, _, _ = select.select(list(self.state), [], [], timeout)
        for sock in readable:
            try:
                said = sock.recv(16)
            except OSError:
                said = b""
            if said == b"ready" and (self.state[sock] != "busy" or len(self.idle()) < MAX_IDLE):
                self.state[sock] = "ready"
            else:  # gone, or one idle monitor too many: closing our end lets it go
                del self.state[sock]
                sock.close()

    def reap(self) -> None:
        """Collect the exit status of monitors that have ended (ours to reap: forked once, not twice)."""
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self.children.discard(pid)

    def launch(self, request: bytes, stdio: tuple[int, int, int], events_fd: int) -> bool:
        """Give a container to a ready monitor (the oldest), waiting for a warming one if need be;
        False if there is none (then it starts cold). *request* is the client's, as it came: the
        store's home, the container's ID and state, and its image's layers."""
        self.collect()
        if not any(st == "ready" for st in self.state.values()) and "warming" in self.state.values():
            self.collect(READY_TIMEOUT)
        sock = next((s for s, st in self.state.items() if st == "ready"), None)
        if sock is None:
            return False
        try:
            socket.send_fds(sock, [request], [*stdio, events_fd])
            sock.settimeout(READY_TIMEOUT)
            taken = sock.recv(16) == b"taken"  # a monitor killed an instant ago took the message to its grave
            sock.settimeout(None)
        except OSError:
            taken = False
        if not taken:
            del self.state[sock]
            sock.close()
            return False
        del self.state[sock]
        self.state[sock] = "busy"  # now last in the order: it comes back after the ones idle now
        return True


def start_warm_monitor(seccomp_filter: bytes | None,
                       id_maps: dict[str, object] | None = None) -> tuple[int, socket.socket]:
    """Fork a warm monitor; return its PID and the socket to it.

    One fork, not the double fork of a cold start (``runtime.spawn_detached``): the zygote is a
    process of ours that reaps it (``WarmPool.reap``). Should the zygote die first, the monitor is
    adopted like any orphan.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        with contextlib.suppress(BaseException):
            warm_monitor(theirs.detach(), seccomp_filter, id_maps)
        os._exit(0)
    theirs.close()
    return pid, ours


def remove_abandoned() -> None:
    """rmdir each ``warm-<PID>.<N>`` cgroup whose monitor is gone (the kernel refuses one with a process)."""
    any_group = Cgroup("any")
    for parent in {d.parent for d in (*any_group.dirs.values(), *filter(None, [any_group.freezer]))}:
        with contextlib.suppress(OSError):
            for d in parent.glob(f"{PREFIX}*"):
                pid = d.name[len(PREFIX):].partition(".")[0]
                if not (pid.isdigit() and os.path.exists(f"/proc/{pid}")):
                    with contextlib.suppress(OSError):
                        d.rmdir()


# ------------------------------------------------------------------------------------ the warm monitor


def warm_monitor(fd: int, seccomp_filter: bytes | None, id_maps: dict[str, object] | None = None) -> None:
    """Get ready, say so, monitor the container that comes; again, until the zygote lets us go.

    A rootless monitor first becomes root of a user namespace with *id_maps*, and has no cgroup.
    """
    become_warm(fd)
    sock = socket.socket(fileno=fd)
    if id_maps is not None:
        from .userns import IdMaps, enter_user_namespace

        enter_user_namespace(IdMaps.from_json(id_maps))
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # PID 1s are forked by children that exit at once: they become ours
    forker = Forker(seccomp_filter)
    signal.signal(signal.SIGCHLD, lambda *_: forker.collect())  # (PID 1 resets it before execve)
    took = None  # how long the last container ran, in seconds
    try:
        for generation in itertools.count():
            if generation:
                set_process_name("pyc-warm")
                keep_only(fd, *forker.fds())  # nothing of the last container's stays open
            cgroup_name = f"{PREFIX}{os.getpid()}.{generation}" if id_maps is None else None
            took = monitor_one(sock, cgroup_name, forker, quick=took is not None and took < FORKER_LINGER)
            if took is None:
                return
    finally:
        forker.close()


def monitor_one(sock: socket.socket, cgroup_name: str | None, forker: Forker, quick: bool) -> float | None:
    """One container's life: get ready, say "ready", take the request, follow the container to its end;
    how long it ran (seconds).

    None when no container came (the zygote is gone, or let us go): then nothing is left of it.
    *cgroup_name* None: no cgroup (rootless). *quick*: containers come quickly (``Forker``).
    """
    cgroup = Cgroup(cgroup_name) if cgroup_name else None
    if cgroup:
        cgroup.create()
    pid = None
    for from_forker in (quick, False):  # should the forker fail, once more from here, on new pipes
        init_sock, init_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        try:
            pid = forker.fork_pid1([init_end.fileno(), err_w, go_r], from_forker)
        except OSError:
            pass
        finally:
            init_end.close()
            os.close(err_w)
            os.close(go_r)
        if pid is not None:
            break
        # A PID 1 the forker may have made before it failed sees these close, and exits.
        init_sock.close()
        os.close(err_r)
        os.close(go_w)
    request, fds = b"", []
    if pid is not None:
        try:
            if cgroup:
                cgroup.add(pid)
            sock.send(b"ready")
            request, fds = receive_fds(sock, 1 << 20, 4)
            if request:
                sock.send(b"taken")
        except OSError:
            request, fds = b"", []
    if not request or len(fds) != 4:  # no PID 1 could be made, the zygote is gone, or it let us go
        for fd in fds:
            os.close(fd)
        if pid is not None:
            for fd in (err_r, go_w):
                os.close(fd)
            init_sock.close()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        if cgroup:
            with contextlib.suppress(CgroupError):  # (left for remove_abandoned: the next zygote, container prune)
                cgroup.remove()
        return None
    began = time.monotonic()
    req = json.loads(request)
    container = Container(Store(req["home"], create=False), req["id"], req["state"])
    stdio, events_fd = (fds[0], fds[1], fds[2]), fds[3]
    try:
        tee = output_keeper(container, stdio)
        child_stdio = tee.container_stdio if tee else stdio
        plan = json.dumps(init_plan(container, req["lowers"])).encode()
        socket.send_fds(init_sock, [plan], list(child_stdio))  # PID 1 starts on the root at once
        init_sock.close()
        forker.busy()  # (what nobody waits for comes after PID 1 has its plan)
        set_process_name("pyc-monitor")
        close_handed_over(stdio, tee)  # PID 1 holds them now
        # Meanwhile the cgroup gets the container's limit; PID 1 waits for it before execve. (Its name stays:
        # a rename waits for the cgroup lock, which a warm monitor joining its cgroup holds for milliseconds.)
        if cgroup and container.spec.pids_limit is not None:  # (its name is saved by runtime.follow)
            cgroup.limit_pids(container.spec.pids_limit)
        with contextlib.suppress(BrokenPipeError):  # PID 1 failed already: its error is on err_r
            os.write(go_w, b"1")
        os.close(go_w)
    except BaseException as exc:  # noqa: BLE001 (told to the caller in one line)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        with contextlib.suppress(Exception):
            if cgroup:
                cgroup.remove()
        report_failure(container, events_fd, exc)
        return None
    with monitoring(container):
        follow(container, cgroup, pid, err_r, tee, events_fd)
    return time.monotonic() - began


class Forker:
    """The warm monitor's end of its forker (``pid1.forker``): started when containers come quickly (the
    last one ended within ``pid1.FORKER_LINGER`` seconds), and again whenever the last one has gone."""

    def __init__(self, seccomp_filter: bytes | None) -> None:
        self.seccomp_filter = seccomp_filter
        self.sock: socket.socket | None = None
        self.pid: int | None = None

    def fork_pid1(self, fds: list[int], quick: bool) -> int:
        """A new warm PID 1 on *fds*, from the forker if containers come *quick*ly, else from here (a
        new monitor, or one whose last container ran long, is ready sooner that way); its PID.

        A forker is started when containers begin to come quickly, but used from the next PID 1 on:
        its interpreter takes tens of ms to start, and this monitor should be ready again before that.
        OSError if the forker took *fds* and then failed: it may have made a PID 1 on them already, so
        they must not be used again (``monitor_one`` makes new ones)."""
        if quick and self.sock is not None:
            try:
                socket.send_fds(self.sock, [b"fork"], fds)
            except OSError:
                self.close()  # gone before it took them: they are still ours alone
            else:
                try:
                    answer = self.sock.recv(64)
                except OSError:  # (a timeout: stopped, or stuck)
                    answer = b""
                if answer.startswith(b"pid "):
                    return int(answer[len(b"pid "):])
                self.close(kill=True)
                raise OSError(f"the forker failed ({answer.decode(errors='replace') or 'no answer'})")
        self.close()  # not worth keeping
        if quick:
            with contextlib.suppress(OSError):
                self.start()
        return fork_warm_pid1(fds, self.seccomp_filter)

    def busy(self) -> None:
        """Our PID 1 has its container: the forker may go if we do not need another one soon."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.send(b"busy")

    def fds(self) -> list[int]:
        return [self.sock.fileno()] if self.sock is not None else []

    def start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package_parent = str(Path(__file__).resolve().parents[1])
        code = (f"import sys; sys.path.insert(0, {package_parent!r}); "
                f"from pycontainers.pid1 import serve_forker; serve_forker(3)")
        try:
            # -I -S: nothing from the environment, the user's site directory or site-packages (pid1 needs none)
            self.pid = os.posix_spawn(sys.executable, [sys.executable, "-I", "-S", "-c", code], os.environ,
                                      file_actions=[(os.POSIX_SPAWN_DUP2, theirs.fileno(), 3)])
        finally:
            theirs.close()
        keep_status_of(self.pid)  # (``runtime.wait_for_pid1`` reaps every child of ours: it keeps its status)
        self.sock = ours
        ours.settimeout(FORKER_ANSWER_TIMEOUT)
        ours.send(b"seccomp " + (self.seccomp_filter or b""))

    def collect(self) -> None:
        """Collect the exit status of a forker that has exited on its own (``pid1.FORKER_LINGER``), at once:
        our SIGCHLD handler, so that no ``<defunct>`` forker stays in ``ps`` while the monitor is busy."""
        with contextlib.suppress(ChildProcessError):
            if self.pid is not None and reap(self.pid, os.WNOHANG)[0]:
                self.pid = None

    def close(self, kill: bool = False) -> None:
        """Let the forker go (it exits when its socket closes), or *kill* it, and collect its exit status."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})  # ``collect`` must not reap it meanwhile
        try:
            if self.pid is not None:
                if kill:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    reap(self.pid)
                self.pid = None
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


def become_warm(fd: int) -> None:
    """A session of our own, nothing of the zygote's but our socket, and deaf to signals meant for others."""
    os.setsid()
    set_process_name("pyc-warm")
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    keep_only(fd)  # the zygote's other sockets (other warm monitors') among them
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
