"""How a container is born: a monitor process, then the container's PID 1, one small step at a time.

``launch`` must be called from a single-threaded process (the CLI, or the zygote a notebook uses):
it forks, and a fork of a multithreaded process (a Jupyter kernel) may deadlock in the child.

    caller ──fork──> (intermediate, exits at once) ──fork──> monitor       own session, outlives callers
                                                              │ creates the cgroup (rootless: instead
                                                              │   becomes root of a user namespace)
                                                              │ unshare(CLONE_NEWPID)
                                                              └──fork──> PID 1 of the container (pid1.py):
                                                                    unshare mnt, uts, ipc, net
                                                                    /proc, /dev, /sys, masks (held aside)
                                                                    mount overlay, attach them, bind files
                                                                    pivot_root
                                                                    hostname, user, working directory
                                                                    (in the cgroup by now) unshare cgroup
                                                                    capabilities, no_new_privs, seccomp
                                                                    execve(the command)

The monitor tells PID 1 what to do in a *plan* (``init_plan``), as runc tells ``runc init`` in its
config.json. runc and proot containers get the same monitor, which runs ``runc run`` or ``proot`` in
PID 1's place. The API's zygote starts most containers from a *warm* monitor instead (``warm.py``),
which has done everything down to the cgroup ahead of time; both ways share PID 1's steps (``pid1``)
and the monitor's (``follow``).

The monitor reports to the caller through a pipe, one JSON line per event: ``started``, then
``exited`` with the exit code (or ``error`` if the command could not be started).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import os
import re
import select
import selectors
import shutil
import signal
import socket
import termios
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import attach, rootfs, seccomp
from .cgroup import Cgroup, CgroupError, machine_layout
from .container import (
    PROOT_SIGNAL_FILE,
    Container,
    auto_removing,
    cgroup_of,
    id_maps,
    is_rootless,
    monitoring,
    now_iso,
    process_start_time,
    signal_sent_to_proot,
)
from .errors import PyContainersError
from .image import Image
from .linux import (
    CLONE_NEWPID,
    DEFAULT_CAPABILITIES,
    PR_SET_NO_NEW_PRIVS,
    drop_capabilities,
    prctl,
    set_process_name,
    setns,
    unshare,
)
from .logs import LogWriter
from .pid1 import (
    EXIT_ENGINE,
    EXIT_NOT_EXECUTABLE,
    StartError,
    attach_stdio,
    default_env,
    enter_workdir,
    env_dict,
    find_executable,
    reset_signals,
    resolve_user,
    start_container,
    switch_user,
    workdir_error,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .health import Checker as HealthChecker
    from .network import PortForwarder

# ------------------------------------------------------------------------------------------ caller


def launch(container: Container, lowers: list[str], stdio: tuple[int, int, int], events_fd: int) -> None:
    """Start *container*'s monitor, detached from the caller (double fork), and return at once.

    What every monitor needs and never changes (the seccomp program, where the cgroup controllers are)
    is worked out here first, once per process: the monitor inherits it instead of redoing it each time.
    """
    if not is_external(container):
        seccomp_program(container)
        machine_layout()
    if container.state.get("networks"):
        from .network import load_netlink

        load_netlink()  # once per process, not in each monitor
    if is_external(container):
        spawn_detached(monitor_external, events_fd, container, lowers, stdio, events_fd)
    else:
        spawn_detached(monitor, events_fd, container, lowers, stdio, events_fd)


def is_external(container: Container) -> bool:
    """runc and proot do the container's birth themselves; the monitor only starts and waits for them."""
    return container.state.get("backend") in ("runc", "proot")


def spawn_detached(target: Callable[..., None], events_fd: int, *args: object) -> None:
    """Run *target(*args)* in a grandchild that nobody has to reap, reporting failures on *events_fd*."""
    pid = os.fork()
    if pid == 0:
        try:
            if os.fork() == 0:
                code = 0
                try:
                    target(*args)
                except BaseException as exc:  # never let Python unwind into the caller's code
                    _send(events_fd, {"event": "error", "message": f"{target.__name__} failed: {exc}",
                                      "exit_code": 125})
                    code = 1
                os._exit(code)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)  # the intermediate exits at once; the grandchild is now nobody's child


def _send(fd: int, event: dict[str, object]) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(event).encode() + b"\n")


# ----------------------------------------------------------------------------------------- monitor


def become_monitor(stdio: tuple[int, int, int], events_fd: int) -> tuple[tuple[int, int, int], int]:
    """Leave the caller's session (no SIGHUP or Ctrl-C meant for its terminal reaches us) and its files."""
    os.setsid()
    set_process_name("pyc-monitor")  # not the command line of the CLI or kernel we were forked from
    stdio, events_fd = keep_only_fds(stdio, events_fd)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    return stdio, events_fd


def monitor(container: Container, lowers: list[str], stdio: tuple[int, int, int], events_fd: int) -> None:
    stdio, events_fd = become_monitor(stdio, events_fd)
    if refuse_second_start(container, events_fd):
        return
    try:
        supervise(container, lowers, stdio, events_fd)
    except BaseException as exc:  # noqa: BLE001 (the caller hears why; nobody sees a traceback)
        report_failure(container, events_fd, exc)


# The monitor's children other than PID 1 whose owner waits for them (the health process, a warm monitor's
# forker): their PID, and their exit status once ``wait_for_pid1`` has reaped it for them.
_KEPT_STATUSES: dict[int, int | None] = {}


def keep_status_of(pid: int) -> None:
    """*pid*, a new child of the monitor, is waited for by its owner (with ``reap``): should ``wait_for_pid1``
    reap it first, its exit status is kept for that owner. (A stale entry for a reused PID is reset here.)"""
    _KEPT_STATUSES[pid] = None


def reap(pid: int, options: int = 0) -> tuple[int, int]:
    """``os.waitpid(pid, options)`` for a child registered with ``keep_status_of``: its kept status if
    ``wait_for_pid1`` reaped it already. ChildProcessError as waitpid's if it is no child of ours."""
    status = _KEPT_STATUSES.get(pid)
    if status is not None:
        del _KEPT_STATUSES[pid]
        return pid, status
    got, status = os.waitpid(pid, options)
    if got:
        _KEPT_STATUSES.pop(pid, None)
    return got, status


def reaped_already(pid: int) -> bool:
    """Has ``wait_for_pid1`` reaped *pid* (registered with ``keep_status_of``), its status kept for ``reap``?"""
    return _KEPT_STATUSES.get(pid) is not None


def wait_for_pid1(pid: int) -> int:
    """Wait for the container's PID 1 and return its wait status, reaping every other child meanwhile.

    A warm monitor is a subreaper: a process of the container whose parent outside it dies first (a health
    check whose runner was killed) becomes the monitor's child. When PID 1 exits, the kernel waits, PID 1
    still unreaped (zap_pid_ns_processes), until every process of its PID namespace has been reaped: a
    waitpid(PID 1) alone would wait for ever for such a zombie. So: waitpid(-1), one call for a container
    that has no other child; the statuses of children someone waits for are kept (``keep_status_of``), the
    others' dropped (an orphan; a port forwarder that died early, whose owner ignores ECHILD)."""
    while True:
        got, status = os.waitpid(-1, 0)
        if got == pid:
            return status
        if got in _KEPT_STATUSES:
            _KEPT_STATUSES[got] = status


def refuse_second_start(container: Container, events_fd: int) -> bool:
    """Another monitor runs this container already (two starts at once): say so, and touch nothing of
    it (not its cgroup, whose removal would kill it, nor its state)."""
    from .container import running_elsewhere

    if not running_elsewhere(container):
        return False
    _send(events_fd, {"event": "error", "message": f"container {container.name} is already running",
                      "exit_code": EXIT_ENGINE})
    os.close(events_fd)
    return True


def start_failed(exit_code: int, error: str, never_ran: bool) -> dict[str, Any]:
    """What a start that failed (its command not found, an unknown user, the monitor's own error) leaves in the
    state, as Docker keeps it: the code and why. A container that has never run stays ``created`` (Docker
    derives that status from a StartedAt never set: ``ps`` shows "Created"); one that ran before is ``exited``."""
    if never_ran:
        return {"status": "created", "exit_code": exit_code, "error": error, "started_at": None}
    return {"status": "exited", "exit_code": exit_code, "error": error, "finished_at": now_iso()}


def report_failure(container: Container, events_fd: int, exc: BaseException) -> None:
    """The monitor itself failed: record it in the container's state and tell the caller, in one line."""
    removing = auto_removing(container)
    with contextlib.suppress(Exception):
        container.save(**start_failed(EXIT_ENGINE, str(exc), container.state.get("started_at") is None))
    _finish(container, events_fd, {"event": "error", "message": str(exc) or type(exc).__name__,
                                   "exit_code": EXIT_ENGINE}, removing=removing)


def supervise(container: Container, lowers: list[str], stdio: tuple[int, int, int], events_fd: int) -> None:
    """The monitor's work: set up, fork the container's PID 1, wait for it, record how it ended."""
    program = seccomp_program(container)  # compiled (or read from its cache) here: PID 1 only loads it
    cgroup = enter_user_namespace_or_cgroup(container)
    ports = checker = None
    try:
        ports = attach_network(container)  # (then we are in the container's network namespace)
        if ports:
            ports.start()  # a process of its own, forked before unshare: see network.PortForwarder
        if health_checks_wanted(container):  # forked before unshare, it stays out of the container's PIDs
            from .health import Checker

            checker = Checker.fork(container)
        unshare(CLONE_NEWPID)  # our next child is PID 1 of a new PID namespace
        tee = output_keeper(container, stdio)
        child_stdio = tee.container_stdio if tee else stdio
        plan = init_plan(container, lowers)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
    except BaseException:  # (unshare refused to a caller without CAP_SYS_ADMIN): the cgroup goes too
        if checker:
            checker.end()
        if ports:
            ports.close()
        if cgroup:
            with contextlib.suppress(PyContainersError):
                cgroup.remove()
        raise
    if pid == 0:
        os.close(err_r)
        os.close(go_w)
        start_container(plan, child_stdio, err_w, go_r, program)  # never returns
    os.close(err_w)
    os.close(go_r)
    close_handed_over(stdio, tee)  # the container holds them now; the caller sees EOF when it exits
    attach_error = join_cgroup(cgroup, pid, go_w)
    with monitoring(container):
        follow(container, cgroup, pid, err_r, tee, events_fd, attach_error, ports, checker)


def attach_network(container: Container) -> PortForwarder | None:
    """A container on a network gets it now, from its monitor (``network.attach``): the forwarder of
    its published ports comes back, not yet serving."""
    if not container.spec.on_a_network:
        return None
    from .network import attach

    return attach(container)


def follow(container: Container, cgroup: Cgroup | None, pid: int, err_r: int,
           tee: OutputTee | TerminalLog | None,
           events_fd: int, attach_error: str = "", ports: PortForwarder | None = None,
           checker: HealthChecker | None = None) -> None:
    """From PID 1's fork to the end: record it running, see it reach execve, wait, record how it ended.

    PID 1 reports a failure on the *err_r* pipe; the pipe closes without a word when execve succeeds.
    The "running" state is saved first, while PID 1 is still mounting the image on another CPU: saving
    is a millisecond that no one waits for then. Should PID 1 fail, its error replaces it at once.
    A container with a health check has its checks run meanwhile (``health``): by *checker*, forked
    already (a cold monitor's, before its PID namespace), or by one forked here once it runs.
    """
    wants_health = checker is not None or health_checks_wanted(container)
    never_ran = container.state.get("started_at") is None
    container.save(status="running", pid=pid, pid_start=process_start_time(pid), monitor_pid=os.getpid(),
                   monitor_start=process_start_time(os.getpid()), started_at=now_iso(),
                   **({"ports": ports.bindings()} if ports else {}), **({"cgroup": cgroup.name} if cgroup else {}),
                   **(health_at_start(container) if wants_health else {}))
    failure = _read_all(err_r)
    if attach_error:  # PID 1 saw the pipe close without a go, and gave up
        failure = json.dumps({"message": attach_error, "exit_code": EXIT_ENGINE}).encode()
    if failure:
        if tee:
            tee.close()
        health = health_at_end(container, checker) if wants_health else {}
        _, status = os.waitpid(pid, 0)
        report = json.loads(failure)
        if ports:
            ports.close()
        removing = auto_removing(container)
        container.save(**start_failed(report["exit_code"], report["message"], never_ran), ports=[], **health)
        _finish(container, events_fd, {"event": "error", **report}, cgroup, removing=removing)
        os.close(events_fd)
        return
    mount_namespace = hold_mount_namespace(pid)
    _send(events_fd, {"event": "started", "pid": pid})
    if wants_health:
        checker = begin_health_checks(container, checker)
    if tee:
        tee.copy_until_eof()
    status = wait_for_pid1(pid)
    code = os.waitstatus_to_exitcode(status)
    exit_code = 128 - code if code < 0 else code  # killed by signal N: 128 + N, as a shell reports it
    oom = bool(cgroup and cgroup.oom_killed())
    if ports:
        ports.stop_listening()  # the ports are free before anyone hears that the container has ended
    ended = {"status": "exited", "exit_code": exit_code, "oom_killed": oom, "finished_at": now_iso(), "ports": [],
             **(checker.end(container) if checker else {})}
    removing = auto_removing(container)
    if removing:  # its state is about to go with it
        container.state.update(ended)
    else:
        container.save(**ended)
    _finish(container, events_fd, {"event": "exited", "exit_code": exit_code, "oom_killed": oom}, cgroup,
            mount_namespace, removing=removing)
    if ports:
        ports.close()  # its last connections deliver what the container sent (DRAIN_SECONDS at most)
    detach_network(container)  # (after: a pair deleted at once would cut off what it had still to send)
    os.close(events_fd)


def detach_network(container: Container) -> None:
    """The container has ended and its forwarded connections have drained: its veth pairs go now
    (``network.unplug_from_inside``), as Docker's endpoints leave. Left to the kernel, a pair goes with the
    network namespace, which a TCP connection still closing in it (data unsent to a peer that reads nothing)
    can keep alive for minutes."""
    if not container.spec.on_a_network or not container.state.get("networks"):
        return
    from .network import unplug_from_inside

    with contextlib.suppress(Exception):  # (gone already: the kernel finishes the job)
        unplug_from_inside()


def health_checks_wanted(container: Container) -> bool:
    """Has the container a health check to run? A dictionary lookup, for every start: no parsing, no import."""
    from .spec import has_healthcheck  # (imported with container.py already)

    return has_healthcheck(container.state["spec"].get("healthcheck"))


def health_at_start(container: Container) -> dict[str, object]:
    """What the "running" state says of a container with a health check: starting (``health.starting``)."""
    from .health import starting

    return {"health": starting(container.state.get("health"))}


def health_at_end(container: Container, checker: HealthChecker | None) -> dict[str, object]:
    """What the "exited" state says of a container with a health check, its health process (if any) ended
    first: unhealthy (``health.ended``), also when its command never started, as Docker's."""
    if checker is not None:
        return checker.end(container)
    from .health import ended

    return ended(container)


def begin_health_checks(container: Container, checker: HealthChecker | None) -> HealthChecker:
    """The container runs: let its health process check it, forked now if it was not before. (Forking here is
    for monitors whose children are not born in the container's PID namespace: warm, runc's and proot's.)"""
    if checker is None:
        from .health import Checker

        checker = Checker.fork(container)
    checker.begin()
    return checker


def hold_mount_namespace(pid: int) -> int | None:
    """Keep the container's mount namespace alive after its last process, until its exit is reported.

    Otherwise PID 1's exit unmounts every mount of the container (overlay, /proc, /dev, the masks) and
    waits for an RCU grace period on the way, and the caller waits with it. With this reference the
    unmounting happens when the monitor closes it, after the caller has its answer. None if PID 1 is
    gone already.
    """
    try:
        return os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None


def output_keeper(container: Container, stdio: tuple[int, int, int],
                  console_socket: bool = True) -> OutputTee | TerminalLog | None:
    """What the monitor puts between the container and *stdio*, the caller's, to log the output.

    A detached container's output goes to its log through its monitor (``OutputTee`` with no caller to copy
    to), or with a terminal, what the terminal shows (``TerminalLog``). An attached one's output is copied to
    the caller and the log (``OutputTee``), except with ``--rm`` (the log goes with the container at once)
    and with ``-t``, whose session the caller relays and logs itself. *console_socket*: see ``TerminalLog``.
    """
    detached = is_detached(container, stdio)
    if container.spec.tty:
        return TerminalLog(container, console_socket) if detached else None
    if detached:
        return OutputTee(container, stdio, to_caller=False, open_stdin=container.spec.interactive)
    if container.state.get("auto_remove"):
        return None
    return OutputTee(container, stdio)


def close_handed_over(stdio: tuple[int, int, int], keeper: OutputTee | TerminalLog | None) -> None:
    """Once PID 1 has its stdio: close the monitor's copies, and the caller's descriptors, but for those an
    ``OutputTee`` still copies the container's output to."""
    child = keeper.container_stdio if keeper else stdio
    copying = keeper.callers if isinstance(keeper, OutputTee) else set()
    for fd in (set(child) | set(stdio)) - copying:
        os.close(fd)


def is_detached(container: Container, stdio: tuple[int, int, int]) -> bool:
    """Is the stdout the caller gave the container's log file (``start_detached``)?"""
    try:
        log = os.stat(container.log_path())
    except FileNotFoundError:
        return False
    out = os.fstat(stdio[1])
    return (out.st_dev, out.st_ino) == (log.st_dev, log.st_ino)


class OutputTee:
    """A container's stdout and stderr, entered in its log (``logs.py``: each line with its stream and time),
    and for an attached container copied to the caller too, as the monitor of every Docker container
    (containerd-shim, conmon) does.

    A detached container (*to_caller* false) has no caller to copy to: its monitor only logs. With
    *open_stdin* (``run -di``) its stdin is a pipe that nobody writes to, whose other end the monitor holds
    while it runs, as under Docker (``sh`` waits on it, instead of reading the end of /dev/null and exiting).
    """

    def __init__(self, container: Container, stdio: tuple[int, int, int], to_caller: bool = True,
                 open_stdin: bool = False) -> None:
        self.log = LogWriter(container.log_path())
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        self.streams = {out_r: "stdout", err_r: "stderr"}
        self.routes: dict[int, int | None] = {out_r: stdio[1], err_r: stdio[2]} if to_caller else {}
        self.callers = {stdio[1], stdio[2]} if to_caller else set()  # (not to close: the caller closes those)
        self.stdin_end = -1
        stdin = stdio[0]
        if open_stdin:
            stdin, self.stdin_end = os.pipe2(os.O_CLOEXEC)
        self.container_stdio = (stdin, out_w, err_w)
        # Listening before the container is said to run: an `attach` right after `run -d` finds the socket.
        self.attachments = Attachments(container.dir)

    def copy_until_eof(self) -> None:
        """Log (and forward) the output until the container has closed it, and serve ``attach`` meanwhile."""
        codes = {"stdout": attach.STDOUT, "stderr": attach.STDERR}
        with self.attachments as clients:
            clients.take_input_for(self.stdin_end)
            outputs = set(self.streams)
            for fd in outputs:
                clients.selector.register(fd, selectors.EVENT_READ, "output")
            while outputs:
                for fd in clients.wait():
                    data = os.read(fd, 65536)
                    if not data:
                        clients.selector.unregister(fd)
                        outputs.discard(fd)
                        continue
                    self._forward(fd, data)
                    self.log.write(self.streams[fd], data)
                    clients.send(codes[self.streams[fd]], data)
        self.close()

    def _forward(self, pipe: int, data: bytes) -> None:
        target = self.routes.get(pipe)
        if target is None:
            return
        try:
            _write_all(target, data)
        except OSError:  # the caller went away (Ctrl-C on `run`): the log still gets everything
            self.routes[pipe] = None

    def close(self) -> None:
        for fd in {*self.streams, *self.callers, self.stdin_end} - {-1}:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.streams = {}
        self.callers = set()
        self.stdin_end = -1
        self.attachments.close()
        self.log.close()


class ConsoleEnd:
    """Our end of a ``-t`` container's terminal, whoever holds it (the CLI, the API, a monitor).

    With *console_socket* (the native runtime) PID 1 makes the terminal in the container's own devpts,
    so that it has a name there, and sends its master over a socket (runc's console socket,
    ``pid1.open_console``); runc and proot are given a terminal made here. ``container_end`` is what the
    container gets as stdin, stdout and stderr: the caller closes it once the container has it (``close``
    does not). ``receive`` gives the master.
    """

    def __init__(self, console_socket: bool, window: bytes | None = None) -> None:
        """*window*: the terminal's size from the start (a ``struct winsize``, as TIOCGWINSZ gives it), so
        that the command's first look at it (``stty size``, a shell's prompt) sees the right one."""
        self.sock: socket.socket | None = None
        if console_socket:
            self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            self.master, self.container_end = -1, theirs.detach()
            if window:
                self.sock.send(window)  # waiting there for PID 1, which sets it on the terminal it makes
        else:
            self.master, self.container_end = os.openpty()  # (close-on-exec: attach_stdio dup2s its end)
            if window:
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, window)

    def receive(self) -> int:
        """The terminal's master, once the container has started (PID 1 sends it before its execve);
        -1 if none came (it failed first)."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                _msg, fds, _flags, _addr = socket.recv_fds(self.sock, 64, 1)
                self.master = fds[0] if fds else -1
            self.sock.close()
            self.sock = None
        return self.master

    def close(self) -> None:
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def read_terminal(master: int) -> Iterator[bytes]:
    """What a terminal shows, chunk by chunk, until every process inside has closed it (EIO)."""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other end is closed everywhere
            return
        if not data:
            return
        yield data


class TerminalLog:
    """A detached ``-t`` container's terminal, held by its monitor (as Docker's shim holds it), which
    appends what the terminal shows to the log and shows it to those ``attach``ed, who type into it if the
    container has ``-i``."""

    def __init__(self, container: Container, console_socket: bool) -> None:
        self.interactive = container.spec.interactive
        self.log = LogWriter(container.log_path())
        self.console = ConsoleEnd(console_socket)
        self.container_stdio = (self.console.container_end,) * 3
        self.attachments = Attachments(container.dir)  # (listening before the container is said to run)

    def copy_until_eof(self) -> None:
        master = self.console.receive()
        if master >= 0:
            # Typed input goes to the terminal through a descriptor of its own: the selector watches it for
            # writing while it watches the master for reading. (Both become non-blocking: one open file.)
            typed = os.dup(master) if self.interactive else -1
            with self.attachments as clients:
                clients.take_input_for(typed, terminal=master)
                clients.selector.register(master, selectors.EVENT_READ, "output")
                done = False
                while not done:
                    for fd in clients.wait():
                        try:
                            data = os.read(fd, 65536)
                        except BlockingIOError:
                            continue
                        except OSError:  # EIO: every process inside has closed the terminal
                            data = b""
                        if not data:
                            done = True
                            break
                        self.log.write("stdout", data)  # (a terminal has one stream, as in Docker's log)
                        clients.send(attach.STDOUT, data)
            if typed >= 0:
                os.close(typed)
        self.close()

    def close(self) -> None:
        self.console.close()
        self.attachments.close()
        self.log.close()


class Attachments:
    """A monitor's loop around ``attach.AttachPoint``: one selector for the container's output (registered by
    the caller with the data "output"), the attach socket, its clients and, when typed input waits, the
    container's stdin. ``wait`` serves everything but the output, and returns the output descriptors ready.
    Without an attach point (it could not listen: a read-only store, say) only the output is served."""

    def __init__(self, directory: Path) -> None:
        from .attach import AttachPoint

        self.selector = selectors.DefaultSelector()
        self.terminal = -1  # a -t container's terminal: clients may set its window size
        self.point: AttachPoint | None = None
        self.writing = False
        try:
            self.point = AttachPoint(directory)
        except OSError:
            return
        self.selector.register(self.point.listener, selectors.EVENT_READ, "listener")

    def take_input_for(self, input_fd: int, terminal: int = -1) -> None:
        """Typed input goes to *input_fd* (the container's stdin, or its terminal; -1: it has none)."""
        self.terminal = terminal
        if self.point is not None and input_fd >= 0:
            self.point.input_fd = input_fd
            os.set_blocking(input_fd, False)  # (typed input waits in the monitor, never the monitor on it)

    def __enter__(self) -> Attachments:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """The socket goes (its clients see the end); safe to call twice."""
        if self.point is not None:
            self.point.close()
            self.point = None
        self.selector.close()

    def send(self, stream: bytes, data: bytes) -> None:
        if self.point is not None and self.point.clients:
            self.point.send(stream, data)
            self._forget_gone()

    def wait(self) -> list[int]:
        ready = []
        for key, _ in self.selector.select():
            if key.data == "output":
                ready.append(key.fd)
            elif self.point is not None:
                try:
                    self._serve(key)
                except Exception:  # noqa: BLE001 (a bug of attach's must not end the container's logging)
                    self._give_up()
        if self.point is not None:
            try:
                self._forget_gone()
                self._watch_input()
            except Exception:  # noqa: BLE001 (as above)
                self._give_up()
        return ready

    def _give_up(self) -> None:
        """Close the attach point and its clients (they see the end), and serve only the output from now on."""
        for key in list(self.selector.get_map().values()):
            if key.data != "output":
                self.selector.unregister(key.fileobj)
        if self.point is not None:
            with contextlib.suppress(Exception):
                self.point.close()
        self.point = None

    def _serve(self, key: selectors.SelectorKey) -> None:
        """One event of the attach socket, a client, or the container's stdin taking typed input."""
        assert self.point is not None
        if key.data == "listener":
            conn = self.point.accept()
            if conn is not None:
                self.selector.register(conn, selectors.EVENT_READ, "client")
        elif key.data == "client":
            self.point.take_input(key.fileobj)  # type: ignore[arg-type]
            if self.point.window is not None and self.terminal >= 0:
                with contextlib.suppress(OSError):
                    fcntl.ioctl(self.terminal, termios.TIOCSWINSZ, self.point.window)
                self.point.window = None
        elif key.data == "input":
            self.point.write_input()

    def _forget_gone(self) -> None:
        assert self.point is not None
        for key in list(self.selector.get_map().values()):
            if key.data == "client" and key.fileobj not in self.point.clients:
                self.selector.unregister(key.fileobj)

    def _watch_input(self) -> None:
        """Wait for the container's stdin to take what is typed; stop reading clients while too much waits."""
        assert self.point is not None
        if bool(self.point.pending) != self.writing:
            if self.point.pending:
                self.selector.register(self.point.input_fd, selectors.EVENT_WRITE, "input")
            else:
                self.selector.unregister(self.point.input_fd)
            self.writing = not self.writing
        reading = self.point.wants_input()
        for conn in self.point.clients:
            registered = conn in {k.fileobj for k in self.selector.get_map().values()}
            if reading and not registered:
                self.selector.register(conn, selectors.EVENT_READ, "client")
            elif not reading and registered:
                self.selector.unregister(conn)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def seccomp_program(container: Container) -> bytes | None:
    """Docker's default seccomp filter for Docker's default capabilities, cached in the store once built.

    None where this host cannot have one (no libseccomp, not x86_64): the container then runs without,
    as under a Docker engine built without seccomp."""
    try:
        return seccomp.compile_filter(DEFAULT_CAPABILITIES, cache_dir=container.store.home / "seccomp")
    except seccomp.SeccompUnavailable:
        return None


def join_cgroup(cgroup: Cgroup | None, pid: int, go_w: int) -> str:
    """Put the container's PID 1 into its cgroup, then let it exec; return an error, or "".

    PID 1 may have failed and exited meanwhile (its own error then comes through the error pipe), so
    a vanished process or a closed pipe here are not errors of their own.
    """
    error = ""
    try:
        if cgroup:
            cgroup.add(pid)
    except CgroupError as exc:
        error = str(exc)
    with contextlib.suppress(BrokenPipeError):
        if not error:
            os.write(go_w, b"1")
    os.close(go_w)
    return error


def enter_user_namespace_or_cgroup(container: Container) -> Cgroup | None:
    """native: make the container's cgroup. rootless: become root of a new user namespace instead.

    A rootless container has no cgroup: this machine does not delegate one to an ordinary user (cgroup v1
    never can), so ``create`` refuses resource limits for it. Everything the monitor creates from here on
    (the PID namespace, and through its child the other namespaces) belongs to the user namespace.
    """
    if is_rootless(container):
        from . import userns  # rootless only

        userns.enter_user_namespace(userns.IdMaps.from_json(container.state["id_maps"]))
        return None
    spec = container.spec
    cgroup = Cgroup(container.id)
    cgroup.create(memory=spec.memory, pids=spec.pids_limit, cpus=spec.cpus)
    return cgroup


def external_command(container: Container) -> tuple[list[str], dict[str, str] | None]:
    """The argv (and environment) that runs *container* with runc or with proot.

    runc runs the bundle ``prepare_runc_bundle`` made, with ``--keep``: the container's cgroup stays after
    it ends, until the monitor has read its OOM counter (``end_runc_container``)."""
    if container.state.get("backend") == "runc":
        return ["runc", "--root", str(runc_root(container)), "run", "--keep", "--bundle",
                str(container.dir / "bundle"), container.id], None
    spec = container.spec
    workdir = rootfs.host_path(str(container.dir / "rootfs"), spec.workdir)
    try:  # as run -w natively: made if missing (proot would start in / instead, and say so)
        os.makedirs(workdir, 0o755, exist_ok=True)
    except OSError as exc:
        raise workdir_error(spec.workdir, exc) from None
    return proot_command(container, spec.args, spec.workdir, spec.user, spec.env, spec.tty)


def proot_command(container: Container, args: list[str], workdir: str, user_spec: str,
                  env: list[str], tty: bool) -> tuple[list[str], dict[str, str]]:
    """The proot command line (and environment) that runs *args* on *container*'s files: its own command,
    and each ``exec`` (there are no namespaces to join: another proot on the same root is the way in)."""
    spec = container.spec
    root = str(container.dir / "rootfs")
    user = resolve_user(user_spec, root)
    full_env = default_env(env, user.home, spec.hostname, tty)
    binds = {"/dev": "/dev", "/proc": "/proc", "/sys": "/sys"}
    binds |= {f"/etc/{name}": str(container.dir / name) for name in ("hostname", "hosts", "resolv.conf")}
    binds |= {m.destination: m.source for m in spec.mounts}
    # A missing command gets Docker's message and 127 (or 126), not proot's error and 1.
    find_executable(args[0], full_env, lambda p: rootfs.host_path(root, os.path.join(workdir, p), binds))
    # -v -1: quiet but for fatal errors ("proot info: pid N: terminated with signal 15" is not the container's).
    argv = ["proot", "-v", "-1", "-r", root, "-w", workdir]
    for destination, source in binds.items():
        argv += ["-b", source if source == destination else f"{source}:{destination}"]
    argv += ["-0"] if user.uid == 0 else ["-i", f"{user.uid}:{user.gid}"]
    return argv + args, env_dict(full_env)


def monitor_external(container: Container, lowers: list[str], stdio: tuple[int, int, int], events_fd: int) -> None:
    """The same monitor duties, with runc (from the bundle) or proot doing the container's birth.

    runc's root file system is the native one, overlayfs over *lowers* (the image's layers), mounted for
    runc in a mount namespace of the monitor's own (``prepare_runc_bundle``); proot's is a copy."""
    stdio, events_fd = become_monitor(stdio, events_fd)
    if refuse_second_start(container, events_fd):
        return
    with monitoring(container):
        follow_external(container, lowers, stdio, events_fd)


def follow_external(container: Container, lowers: list[str], stdio: tuple[int, int, int], events_fd: int) -> None:
    """``monitor_external``'s work, from the birth of the container to the end of its clean-up."""
    uses_runc = container.state.get("backend") == "runc"
    ports = None
    try:
        if uses_runc:
            prepare_runc_bundle(container, lowers)
        argv, env = external_command(container)
        ports = attach_network(container)  # runc's container shares our network namespace, then
    except StartError as exc:
        removing = auto_removing(container)
        container.save(**start_failed(exc.exit_code, str(exc), container.state.get("started_at") is None),
                       **(health_at_end(container, None) if health_checks_wanted(container) else {}))
        _finish(container, events_fd, {"event": "error", "message": str(exc), "exit_code": exc.exit_code},
                removing=removing)
        return
    except BaseException as exc:  # noqa: BLE001 (the caller hears why, in one line)
        report_failure(container, events_fd, exc)
        return
    with contextlib.suppress(FileNotFoundError):  # from the last run of this container
        os.unlink(container.dir / PROOT_SIGNAL_FILE)  # (only proot's is ever written)
    keeper = output_keeper(container, stdio, console_socket=False)  # the log, a held terminal or stdin
    child_stdio = keeper.container_stdio if keeper else stdio
    pid = os.fork()
    if pid == 0:
        try:
            if container.state.get("backend") == "proot" and not container.spec.tty:
                os.setpgid(0, 0)  # a process group of its own, which `rm -f` kills whole (see send_signal)
            attach_stdio(child_stdio, container.spec.tty)  # (with -t, a session of its own: a group too)
            reset_signals()
            if env is None:
                os.execvp(argv[0], argv)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(EXIT_ENGINE)
    close_handed_over(stdio, keeper)
    if ports:
        ports.start()
    container.save(status="running", pid=pid, pid_start=process_start_time(pid), monitor_pid=os.getpid(),
                   monitor_start=process_start_time(os.getpid()), started_at=now_iso(),
                   **({"ports": ports.bindings()} if ports else {}),
                   **(health_at_start(container) if health_checks_wanted(container) else {}))
    _send(events_fd, {"event": "started", "pid": pid})  # runc's or proot's PID (see container.send_signal)
    checker = begin_health_checks(container, None) if health_checks_wanted(container) else None  # (before threads)
    copier = None
    if keeper:  # a thread: the monitor forks nothing more, and proot's end is watched meanwhile
        import threading

        copier = threading.Thread(target=keeper.copy_until_eof, daemon=True)
        copier.start()
    if container.state.get("backend") == "proot":
        end_with_the_first_tracee(pid)
        remove_temp_files_when_proot_ends(pid)
    _, status = os.waitpid(pid, 0)
    health = checker.end(container) if checker else {}
    if copier:
        copier.join(timeout=5)  # the last output: EOF (EIO) once every process inside has let it go
    code = os.waitstatus_to_exitcode(status)
    exit_code = 128 - code if code < 0 else code
    proot_signal = signal_sent_to_proot(container) if container.state.get("backend") == "proot" else None
    if proot_signal:  # (see container.PROOT_SIGNAL_FILE)
        exit_code = 128 + proot_signal
    oom = end_runc_container(container) if uses_runc else False
    if ports:
        ports.stop_listening()
    removing = auto_removing(container)
    container.save(status="exited", exit_code=exit_code, oom_killed=oom, finished_at=now_iso(), ports=[], **health)
    _finish(container, events_fd, {"event": "exited", "exit_code": exit_code, "oom_killed": oom}, removing=removing)
    if ports:
        ports.close()  # (as in follow)
    detach_network(container)


# ------------------------------------------------------------------------------------ the runc back end


def runc_root(container: Container) -> Path:
    """runc's own state directory for this store's containers (``runc --root``)."""
    return container.store.home / "runc"


def prepare_runc_bundle(container: Container, lowers: list[str]) -> None:
    """Make the container's bundle ready for ``runc run``: its root file system mounted, config.json written.

    The root is the native runtime's: overlayfs with the image's layers (*lowers*, shared, read-only) under
    the container's ``upper/``, so ``diff``, ``commit`` and a second ``start`` see what the container
    wrote. It is mounted at ``bundle/rootfs`` (config.json's ``root.path``) in a mount namespace private
    to the monitor, which runc, its child, inherits: the host never sees the mount, and it goes when the
    last of them ends, whatever ends them. config.json is written now, not at ``create``: the user is
    looked up in the container's own /etc/passwd, as natively, and a command that cannot run gets
    Docker's message and exit code (126, 127) before runc starts, not a line of runc's log and 1.
    """
    from .bundle import runtime_config, write_config
    from .cgroup import PARENT
    from .container import runc
    from .linux import CLONE_NEWNS
    from .pid1 import make_mounts_private, mount_overlay

    spec = container.spec
    bundle = container.dir / "bundle"
    root = str(bundle / "rootfs")
    os.makedirs(root, exist_ok=True)
    cgroups_path = f"/{PARENT}/{cgroup_of(container).name}"  # where `top` and the OOM counter look for it
    unshare(CLONE_NEWNS)
    make_mounts_private()  # nothing mounted from here on reaches the host
    mount_overlay(lowers, str(container.dir / "upper"), str(container.dir / "work"), root)
    try:
        files = {f"/etc/{name}": str(container.dir / name) for name in ("hostname", "hosts", "resolv.conf")}
        config = runtime_config(spec, root, files=[(source, dest) for dest, source in files.items()],
                                cgroups_path=cgroups_path)
        binds = {"/dev": "/dev", "/proc": "/proc", "/sys": "/sys"} | files
        binds |= {m.destination: m.source for m in spec.process_mounts()}
        find_executable(spec.args[0], config["process"]["env"],
                        lambda p: rootfs.host_path(root, os.path.join(spec.workdir, p), binds))
        write_config(bundle, config)
        if (runc_root(container) / container.id).exists():  # left by a monitor that was killed (--keep)
            runc(container, "delete", "--force", container.id)
    except BaseException:
        unmount_runc_root(container)  # before an auto-removed container's directory is deleted
        raise


def end_runc_container(container: Container) -> bool:
    """After ``runc run --keep``: was the container OOM-killed (its cgroup's counter, as natively)? Then
    let runc delete it (its cgroup and state) and unmount its root, before its exit is reported: a
    ``start`` right after finds nothing in its way, and an ``rm`` nothing mounted."""
    from .container import runc

    oom = False
    with contextlib.suppress(Exception):
        oom = cgroup_of(container).oom_killed()
    runc(container, "delete", "--force", container.id)
    unmount_runc_root(container)
    return oom


def unmount_runc_root(container: Container) -> None:
    """Unmount the bundle's root in the monitor's mount namespace (the host has never seen it): deleting an
    auto-removed container's directory must not walk into the container's files through it."""
    from .linux import MNT_DETACH, umount2

    with contextlib.suppress(OSError):
        umount2(str(container.dir / "bundle" / "rootfs"), MNT_DETACH)


def end_with_the_first_tracee(proot_pid: int, timeout: float = 5.0, also: int | None = None) -> bool:
    """A container ends when its PID 1 does; proot, without a PID namespace, waits for every process.

    So the monitor watches the command proot started, and proot itself (a pidfd becomes readable when its
    process exits). When the command ends, whatever it left running in proot's process group is killed,
    but not proot, which then exits with the command's own exit code: without that, ``sh -c "sleep 100 &
    echo hi"`` would take 100 s. When proot ends first (killed from outside), its processes, no longer
    traced, would run on the host's files: they are killed too. An exec's second proot is watched the same
    way, and its container's end (*also*, a pidfd) ends the watch too: then True, and nothing is killed here.
    """
    from .container import child_pids, processes_in_group

    deadline = time.monotonic() + timeout
    ended_unseen = False
    for polls in itertools.count(1):
        if (children := child_pids(proot_pid)) or time.monotonic() > deadline:
            break
        if os.waitid(os.P_PID, proot_pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            break  # proot has ended already (it failed to start, or was killed): a zombie, still ours to reap
        if polls % 20 == 0 and any(pid != proot_pid for pid in processes_in_group(proot_pid)):
            # Processes of the container, none of them proot's child: the command ran, left them behind and
            # ended before we looked (a busy machine). Its exit code is proot's already.
            ended_unseen = True
            break
        time.sleep(0.001)
    fds = []
    for pid in [proot_pid, *children[:1]]:
        with contextlib.suppress(OSError):  # already gone
            fds.append(os.pidfd_open(pid))
    woken_by_also = False
    with selectors.DefaultSelector() as sel:
        for fd in fds if also is None else [*fds, also]:
            sel.register(fd, selectors.EVENT_READ)
        if not ended_unseen and len(fds) == 1 + len(children[:1]):
            woken_by_also = any(key.fd == also for key, _ in sel.select())
    for fd in fds:
        os.close(fd)
    if woken_by_also:
        return True
    for pid in processes_in_group(proot_pid):
        if pid != proot_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return False



# proot names its temporary files <P_tmpdir>/<prefix>-<its PID>-XXXXXX: "proot-" for the glue directory
# that stands in for bind mounts' destinations the image lacks, "prooted-" for the loader it extracts.
# It deletes them when it exits, but a SIGKILL (``rm -f``, ``kill``) leaves them in /tmp for good. proot 5.1
# (Debian 12, Ubuntu 22.04) ignores PROOT_TMP_DIR; later versions read it, but proot hands its own
# environment to the command, so the variable would show in the container's ``env``: instead, the monitor
# deletes them, and ``container prune`` what monitors that were killed too left behind.
PROOT_TEMP_DIR = "/tmp"  # P_tmpdir
PROOT_TEMP_NAME = re.compile(r"proot(?:ed)?-(\d+)-[A-Za-z0-9]{6}")


def remove_temp_files_when_proot_ends(proot_pid: int) -> None:
    """Wait for proot to end, delete its temporary files, and only then let the caller reap it.

    Unreaped, proot's PID stays taken (a zombie), so no other proot can meanwhile have made files under
    that PID; and the container is only recorded as exited once /tmp is clean (``rm -f`` waits for that).
    """
    with contextlib.suppress(ChildProcessError):
        os.waitid(os.P_PID, proot_pid, os.WEXITED | os.WNOWAIT)
    for path in proot_temp_files(proot_pid):
        remove_temp_path(path)


def remove_stale_proot_temp_files() -> None:
    """Delete the temporary files of proot processes that no longer exist: killed along with their monitor,
    or under older versions of pycontainers. A proot that runs keeps its own, whoever started it."""
    for path, pid in proot_temp_files().items():
        if not os.path.exists(f"/proc/{pid}"):
            remove_temp_path(path)


def proot_temp_files(proot_pid: int | None = None) -> dict[str, int]:
    """proot's temporary files that are ours to delete, with the PID of the proot that made each: named as
    proot names them (by *proot_pid*, or by any), owned by us, and no symbolic link (/tmp is everybody's)."""
    found = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(PROOT_TEMP_DIR):
            match = PROOT_TEMP_NAME.fullmatch(entry.name)
            if match is None or proot_pid is not None and int(match[1]) != proot_pid:
                continue
            with contextlib.suppress(OSError):
                if not entry.is_symlink() and entry.stat(follow_symlinks=False).st_uid == os.geteuid():
                    found[entry.path] = int(match[1])
    return found


def remove_temp_path(path: str) -> None:
    """Delete a file, or a directory with all it holds (made writable first: proot's glue may not be)."""
    from pathlib import Path

    from .container import make_removable

    with contextlib.suppress(FileNotFoundError):
        if not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
            return
        make_removable(Path(path))
        shutil.rmtree(path)


def keep_only_fds(stdio: tuple[int, int, int], events_fd: int) -> tuple[tuple[int, int, int], int]:
    """Hold nothing of the caller's but what the container needs: its stdio and the report pipe.

    A monitor forked from the CLI would otherwise keep the CLI's stdout open, and ``$(pycontainers
    run -d ...)`` in a shell would wait for it forever.
    """
    moved = {fd: os.dup(fd) for fd in {*stdio, events_fd}}  # dups are close-on-exec, numbered >= 3
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    keep = {0, 1, 2, *moved.values()}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
    return (moved[stdio[0]], moved[stdio[1]], moved[stdio[2]]), moved[events_fd]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _finish(container: Container, events_fd: int, event: dict[str, object], cgroup: Cgroup | None = None,
            mount_namespace: int | None = None, *, removing: bool) -> None:
    """Tell the caller how the container ended; an auto-removed one (*removing*: ``auto_removing``, asked
    before the end was saved) is gone before that.

    Gone means renamed out of sight (``discard_directory``), so ``run --rm`` returns without waiting for
    its files to be deleted, which happens after the event, as does removing the cgroup (an rmdir in a
    cgroup tree waits while any other process is being moved in that tree: an RCU grace period on v1)
    and unmounting its file systems (see ``hold_mount_namespace``).
    """
    from .container import (
        discard_anonymous_volumes,
        discard_directory,
        record_exit,
        remove_discarded,
        remove_volume_directory,
    )

    trash, volumes = None, []
    if removing:
        with contextlib.suppress(OSError):
            trash = discard_directory(container)
        with contextlib.suppress(OSError, PyContainersError):  # (`volume prune` removes what stays)
            volumes = discard_anonymous_volumes(container)
    if trash is not None:  # (before the report: a caller may delete the whole store once it has it)
        with contextlib.suppress(OSError):
            record_exit(container, int(event["exit_code"]))  # type: ignore[call-overload]
    _send(events_fd, event)
    if mount_namespace is not None:
        os.close(mount_namespace)  # the last reference: the kernel unmounts the container's file systems now
    if cgroup is not None:
        with contextlib.suppress(PyContainersError):  # `rm` and `container prune` try again
            cgroup.remove()
    if trash is not None:
        with contextlib.suppress(OSError, PyContainersError):  # `container prune` finishes the job
            remove_discarded(container, trash)
    for volume in volumes:
        with contextlib.suppress(OSError, PyContainersError):  # (`container prune` finishes the job)
            remove_volume_directory(volume)


# ---------------------------------------------------------------------------- the container's PID 1


def init_plan(container: Container, lowers: list[str]) -> dict[str, object]:
    """What the container's PID 1 needs to know, and nothing else (the plan ``pid1`` documents)."""
    spec = container.spec
    binds = [[str(container.dir / name), f"/etc/{name}", False] for name in ("hostname", "hosts", "resolv.conf")]
    binds += [[m.source, m.destination, m.readonly] for m in spec.process_mounts()]
    binds.sort(key=lambda bind: bind[1].rstrip("/").count("/"))  # as Docker: a volume on /etc, then /etc/hosts
    return {"root": str(container.dir / "rootfs"), "lowers": lowers, "upper": str(container.dir / "upper"),
            "work": str(container.dir / "work"), "userxattr": is_rootless(container),
            "volatile": bool(container.state.get("auto_remove")), "binds": binds,
            "read_only": spec.read_only, "hostname": spec.hostname, "user": spec.user, "env": spec.env,
            "workdir": spec.workdir, "args": spec.process_args(), "tty": spec.tty,
            "network": "given" if spec.on_a_network else spec.network}


# --------------------------------------------------------------------------------- starting, waiting


class Events:
    """The caller's end of the monitor's report pipe: ``started``, then ``exited`` or ``error``."""

    def __init__(self, fd: int) -> None:
        self.file = os.fdopen(fd, "rb")

    def next(self) -> dict[str, object]:
        line = self.file.readline()
        if not line:  # the monitor is gone without saying how the container ended
            return {"event": "error", "message": "the container's monitor process died", "exit_code": 125}
        return json.loads(line)

    def close(self) -> None:
        self.file.close()


class FirstEventUnlocks(Events):
    """Events of a start made under ``container.starting``'s lock, which it lets go with the first event
    (an attached ``start -a`` holds the terminal for the container's whole life, not the lock)."""

    def __init__(self, events: Events, lock: contextlib.ExitStack) -> None:
        self.file, self.lock = events.file, lock

    def next(self) -> dict[str, object]:
        try:
            return super().next()
        finally:
            self.lock.close()

    def close(self) -> None:
        self.lock.close()
        super().close()


def start_locked(container: Container, stdio: tuple[int, int, int]) -> Events:
    """``start`` under the container's start lock (``container.starting``): a second start at the same
    instant, from anywhere, waits for this one's first event and then finds it running."""
    from .container import ContainerError, starting

    lock = contextlib.ExitStack()
    if not lock.enter_context(starting(container)):
        lock.close()
        raise ContainerError(f"container {container.name} is already running", 1)
    try:
        return FirstEventUnlocks(start(container, stdio), lock)
    except BaseException:
        lock.close()
        raise


def start(container: Container, stdio: tuple[int, int, int], image: Image | None = None,
          helper: bool = False) -> Events:
    """Unpack the image's layers (if needed) and launch the container; fork only when it is safe.

    *image* is given by the builder, whose intermediate images are not in index.json. *helper* asks
    for the zygote even in a single-threaded process: a long-lived client (the Python API) gets its
    warm monitors, which make every start after the first faster (see ``warm``)."""
    from .container import make_mount_sources
    from .image import get_image
    from .zygote import Zygote

    store = container.store

    def no_monitor_came() -> None:  # a --rm container has nobody to remove it: it goes now
        if container.state.get("auto_remove"):
            from .container import delete_directory, remove_anonymous_volumes

            with contextlib.suppress(Exception):
                delete_directory(container)
                remove_anonymous_volumes(container)

    try:
        make_mount_sources(container.spec)  # (a -v host directory deleted since create comes back, as Docker's)
        image = image or container.image or get_image(store, container.spec.image_id)
        # proot works on a copy of the image (create_from_image); runc on the native overlayfs (prepare_runc_bundle)
        backend = container.state.get("backend", "native")
        lowers = [] if backend == "proot" else rootfs.lower_dirs(store, image, backend, id_maps(container))
    except BaseException:  # a layer that cannot be unpacked (a broken or malicious one): no monitor either
        no_monitor_came()
        raise
    return _forked(lambda events_fd: launch(container, lowers, stdio, events_fd),
                   lambda events_fd: Zygote.get().launch(str(store.home), container.id, container.state, lowers,
                                                            stdio, events_fd),
                   helper, no_monitor_came)


def start_detached(container: Container, helper: bool = False) -> dict[str, object]:
    """Start *container* in the background, its output going to its log; return the first event."""
    log = os.open(container.log_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        events = start(container, (null, log, log), helper=helper)
    finally:
        os.close(log)
        os.close(null)
    first = events.next()
    events.close()
    return first


def start_in_background(container: Container, helper: bool = False) -> dict[str, object] | None:
    """``docker start`` of one container, detached: its first event (an "error" one if it could not
    start), or None if it runs already (nothing to do, as Docker). Under the start lock (``starting``)."""
    from .container import ContainerError, starting

    with starting(container) as to_start:
        if not to_start:
            if container.paused:
                raise ContainerError(f"cannot start container {container.name}: it is paused (try unpause)")
            return None
        return start_detached(container, helper=helper)


def restart(container: Container, timeout: float = 10.0, helper: bool = False) -> dict[str, object] | None:
    """``docker restart``: ``stop`` (its signal, then SIGKILL after *timeout* seconds), then start again on the
    same writable layer; see ``start_in_background``."""
    from .container import flocked, kept_through_restart, stop

    with flocked(container, "restart.lock"):  # two restarts at once: one after the other, each a stop then a start
        with kept_through_restart(container):
            stop(container, timeout)
        return start_in_background(container, helper)


def _forked(direct: Callable[[int], None], via_zygote: Callable[[int], None], helper: bool = False,
            no_monitor_came: Callable[[], None] | None = None) -> Events:
    """Fork here if this process is single-threaded (and no *helper* is asked for), else ask the zygote;
    return the report pipe. A command server's worker always asks its server (``Zygote.adopted``).

    If starting fails, *no_monitor_came* is called when no monitor holds the report pipe's other end
    (an error, or a helper that died, before any fork): not on an interrupt that came after one."""
    from .zygote import Zygote, is_single_threaded

    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    try:
        fork_here = not helper and not Zygote.adopted() and is_single_threaded()
        (direct if fork_here else via_zygote)(write_fd)
    except BaseException:
        os.close(write_fd)
        nobody = _pipe_has_no_writer(read_fd)
        os.close(read_fd)
        if nobody and no_monitor_came is not None:
            no_monitor_came()
        raise
    os.close(write_fd)
    return Events(read_fd)


def _pipe_has_no_writer(read_fd: int) -> bool:
    """Is the pipe at its end of file (every write end closed) right now?"""
    poller = select.poll()  # (select.select cannot take a descriptor above 1023)
    poller.register(read_fd, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        return os.read(read_fd, 1) == b""
    except OSError:
        return False


def run_attached(container: Container, stdin: bytes | None = None,
                 on_output: Callable[[int, bytes], None] | None = None,
                 helper: bool = False) -> tuple[int, bytes, bytes]:
    """Run *container* with its stdout and stderr captured through pipes (the API's ``run``); with ``-t``,
    what its terminal shows, as stdout."""
    if container.spec.tty:
        return capture_terminal(lambda stdio: start(container, stdio, helper=helper), not is_external(container),
                                on_output, None if container.state.get("auto_remove") else container.log_path())
    return capture(lambda stdio: start(container, stdio, helper=helper), stdin, on_output)


def capture_terminal(starter: Callable[[tuple[int, int, int]], Events], console_socket: bool = True,
                     on_output: Callable[[int, bytes], None] | None = None,
                     log: Path | None = None) -> tuple[int, bytes, bytes]:
    """``capture`` for a process with a terminal (docker-py's ``run(tty=True)``, ``exec_run(tty=True)``): one
    stream, \\r\\n and all, as stdout; appended to *log* too (a container's: the monitor does not see it, as
    we hold the terminal). *console_socket*: see ``ConsoleEnd``."""
    console = ConsoleEnd(console_socket)
    try:
        events = starter((console.container_end,) * 3)
    finally:
        os.close(console.container_end)
    try:
        first = events.next()
        if first["event"] == "error":
            events.close()
            return int(first["exit_code"]), b"", str(first["message"]).encode() + b"\n"  # type: ignore[call-overload]
        master = console.receive()
        chunks = []
        log_writer = LogWriter(log) if log else None
        try:
            for data in read_terminal(master) if master >= 0 else ():
                chunks.append(data)
                if log_writer:
                    log_writer.write("stdout", data)
                if on_output:
                    on_output(1, data)
        finally:
            if log_writer:
                log_writer.close()
    finally:
        console.close()
    last = events.next()
    events.close()
    return int(last.get("exit_code", EXIT_ENGINE)), b"".join(chunks), b""  # type: ignore[call-overload]


def capture(starter: Callable[[tuple[int, int, int]], Events], stdin: bytes | None = None,
            on_output: Callable[[int, bytes], None] | None = None,
            on_started: Callable[[], object] | None = None) -> tuple[int, bytes, bytes]:
    """Start a process with ``starter(stdio)`` and collect its stdout and stderr through pipes.

    Returns (exit code, stdout, stderr). *on_output(fd, chunk)* sees each chunk as it arrives, so a
    notebook can show the output live; *on_started()* is called once the process runs. Start errors
    come back as Docker's exit codes (125/126/127) with the message as stderr.
    """
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    in_r = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    feed: tuple[int, int] | None = None
    if stdin is not None:
        os.close(in_r)
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        feed = (in_w, 0)
    try:
        events = starter((in_r, out_w, err_w))
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    first = events.next()
    if first["event"] == "error":
        for fd in (out_r, err_r):
            os.close(fd)
        if feed:
            os.close(feed[0])
        events.close()
        return int(first["exit_code"]), b"", str(first["message"]).encode() + b"\n"  # type: ignore[call-overload]
    if on_started:
        on_started()
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        if feed:
            os.set_blocking(feed[0], False)
            sel.register(feed[0], selectors.EVENT_WRITE)
        pending = memoryview(stdin or b"")
        while sel.get_map():
            for key, _ in sel.select():
                fd = key.fd
                if feed and fd == feed[0]:
                    try:
                        n = os.write(fd, pending[:65536])
                        pending = pending[n:]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(fd)
                        os.close(fd)
                    continue
                data = os.read(fd, 65536)
                if not data:
                    sel.unregister(fd)
                    os.close(fd)
                    continue
                chunks[fd].append(data)
                if on_output:
                    on_output(1 if fd == out_r else 2, data)
    last = events.next()
    events.close()
    return int(last.get("exit_code", 125)), b"".join(chunks[out_r]), b"".join(chunks[err_r])  # type: ignore[call-overload]


# ------------------------------------------------------------------------------------------- exec


# The namespaces an exec's monitor joins, mnt last: it changes what /proc shows. (The cgroup namespace is
# its child's to join, after the cgroup: see join_container.)
NAMESPACE_ORDER = ("ipc", "uts", "net", "pid", "mnt")


def exec_monitor(container: Container, args: list[str], env: list[str], workdir: str, user: str, tty: bool,
                 stdio: tuple[int, int, int], events_fd: int, die_with_runner: bool = False) -> None:
    """``docker exec``: join a running container's namespaces, fork a child that joins its cgroup and execs
    there, report (see ``join_container``). *die_with_runner*: the command is killed if we die (a health
    check: see ``die_with_parent``)."""
    os.setsid()
    stdio, events_fd = keep_only_fds(stdio, events_fd)
    if container.state.get("backend") == "proot":
        exec_under_proot(container, args, env, workdir, user, tty, stdio, events_fd)
        return
    program = seccomp_program(container)  # before joining: the store is not among the container's mounts
    try:
        cgroups, cgroup_ns = join_container(container)
    except BaseException as exc:  # noqa: BLE001
        _send(events_fd, {"event": "error", "message": f"cannot enter the container: {exc}",
                          "exit_code": EXIT_ENGINE})
        return
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    child = os.fork()  # only a child is inside the PID namespace we joined
    if child == 0:
        os.close(err_r)
        code = EXIT_ENGINE
        try:
            enter_cgroup(cgroups, cgroup_ns)
            account = resolve_user(user)
            full_env = default_env(env, account.home, container.spec.hostname, tty)
            enter_workdir(workdir, exit_code=EXIT_NOT_EXECUTABLE)  # (Docker: 126 for an exec that cannot start)
            path = find_executable(args[0], full_env)
            attach_stdio(stdio, tty, (account.uid, account.gid))
            reset_signals()
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            drop_capabilities()
            switch_user(account)
            if die_with_runner:
                die_with_parent(err_w)
            if program is not None:
                seccomp.load_filter(program)
            os.execve(path, args, env_dict(full_env))
        except StartError as exc:
            code = exc.exit_code
            os.write(err_w, json.dumps({"message": str(exc), "exit_code": code}).encode())
        except BaseException as exc:  # noqa: BLE001
            os.write(err_w, json.dumps({"message": str(exc) or type(exc).__name__, "exit_code": code}).encode())
        finally:
            os._exit(code)
    os.close(err_w)
    for fd in {*stdio, cgroup_ns, *(fd for fd, _ in cgroups)}:
        os.close(fd)
    failure = _read_all(err_r)
    if failure:
        os.waitpid(child, 0)
        _send(events_fd, {"event": "error", **json.loads(failure)})
        return
    _send(events_fd, {"event": "started", "pid": child})
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    _send(events_fd, {"event": "exited", "exit_code": 128 - code if code < 0 else code})


def die_with_parent(err_w: int) -> None:
    """Be killed when our parent dies (a health check's runner, killed with the health process): orphaned, a
    check would be left to the nearest subreaper, a warm monitor, not to the container's PID 1.

    Set after ``switch_user``: a change of user clears it. Our parent may have died already, and getppid()
    cannot tell (it is outside our PID namespace: 0 either way): *err_w*'s reading end is its alone, and a
    pipe whose readers are all gone polls POLLERR."""
    from .linux import PR_SET_PDEATHSIG

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    poller = select.poll()
    poller.register(err_w, 0)  # (POLLERR is always reported)
    if poller.poll(0):
        os._exit(EXIT_ENGINE)


def exec_under_proot(container: Container, args: list[str], env: list[str], workdir: str, user: str, tty: bool,
                     stdio: tuple[int, int, int], events_fd: int) -> None:
    """``exec`` into a proot container: a second proot on its files. Without a PID namespace nothing would
    end it with the container, so it is watched: when the container's proot ends, it is killed too."""
    try:
        argv, full_env = proot_command(container, args, workdir, user, env, tty)
    except StartError as exc:
        _send(events_fd, {"event": "error", "message": str(exc), "exit_code": exc.exit_code})
        return
    child = os.fork()
    if child == 0:
        try:
            if not tty:
                os.setpgid(0, 0)  # a group of its own, killed whole with its container (with -t: a session)
            attach_stdio(stdio, tty)
            reset_signals()
            os.execvpe(argv[0], argv, full_env)
        finally:
            os._exit(EXIT_ENGINE)
    for fd in set(stdio):
        os.close(fd)
    _send(events_fd, {"event": "started", "pid": child})
    try:
        container_end = os.pidfd_open(container.state["pid"])
    except OSError:  # the container ended meanwhile
        container_end = None
    # The exec ends with its command (what it left behind is killed), or with its container.
    if container_end is None or end_with_the_first_tracee(child, also=container_end):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):  # (not yet in a group of its own: not yet proot either)
            os.kill(child, signal.SIGKILL)
    if container_end is not None:
        os.close(container_end)
    remove_temp_files_when_proot_ends(child)
    _, status = os.waitpid(child, 0)
    code = os.waitstatus_to_exitcode(status)
    _send(events_fd, {"event": "exited", "exit_code": 128 - code if code < 0 else code})


def container_init_pid(container: Container) -> int:
    """The container's PID 1 as the host sees it: recorded in state.json, except under runc, whose monitor
    records runc's own PID (runc keeps its container's in its own state file)."""
    return container_init_process(container)[0]


def container_init_process(container: Container) -> tuple[int, int | None]:
    """The container's PID 1 and its start time (clock ticks since boot, /proc/PID/stat's 22nd field; None if
    not recorded): with both, whoever reaches it through /proc can tell it from a process that got its PID
    after it ended. runc records them in its own state file."""
    if container.state.get("backend") == "runc":
        deadline = time.monotonic() + 5  # (just started: runc writes its state once the container runs)
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError, KeyError), \
                    open(runc_root(container) / container.id / "state.json") as f:
                state = json.load(f)
                return int(state["init_process_pid"]), int(state["init_process_start"])
            time.sleep(0.01)
        raise StartError(f"runc has no running container {container.name}")
    start = container.state.get("pid_start")
    return int(container.state["pid"]), None if start is None else int(start)


def join_container(container: Container) -> tuple[list[tuple[int, Path]], int]:
    """Join the container's namespaces (only our children enter its PID one); return what the exec's child
    joins itself: the container's cgroups (rootless: none), as open ``cgroup.procs``, and its cgroup namespace.

    The monitor stays out of the container's cgroup, as runc exec's parent does: in it, it would count against
    the container's memory and pids limits, and show in ``top``. The cgroup namespace comes after the cgroup:
    from inside it, a process may only move between cgroups under its root (cgroup v2).
    """
    from .cgroup import open_for_joining, procs_files_of

    pid = container_init_pid(container)
    order = NAMESPACE_ORDER
    if is_rootless(container):
        order = ("user", *NAMESPACE_ORDER)  # first: it owns the others, and gives us the right to join them
        procs = []
    elif container.state.get("backend") == "runc":
        procs = procs_files_of(pid)  # runc's are in every hierarchy, not only ours (memory, pids, cpu)
    else:
        procs = cgroup_of(container).procs_files_to_join()
    cgroups = open_for_joining(procs)
    if order[0] == "user" and already_in_user_namespace_of(pid):  # (a health check from a rootless monitor)
        order = NAMESPACE_ORDER
    # One it shares with us (--network host: the host's) is not joined: we are in it, and from a rootless container's
    # user namespace, setns into one the host's user namespace owns is refused (EPERM).
    order = tuple(ns for ns in order if ns == "user" or not shares_namespace(pid, ns))
    ns_fds = [os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY | os.O_CLOEXEC) for ns in (*order, "cgroup")]
    cgroup_ns = ns_fds.pop()
    for fd in ns_fds:
        setns(fd)
        os.close(fd)
    return cgroups, cgroup_ns


def shares_namespace(pid: int, ns: str) -> bool:
    """Is *pid*'s namespace of kind *ns* (net, pid, ...) this process's own?"""
    ours, theirs = os.stat(f"/proc/self/ns/{ns}"), os.stat(f"/proc/{pid}/ns/{ns}")
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def already_in_user_namespace_of(pid: int) -> bool:
    """Are we in *pid*'s user namespace? Then it is not to be joined: setns refuses one's own (EINVAL)."""
    ours, theirs = os.stat("/proc/self/ns/user"), os.stat(f"/proc/{pid}/ns/user")
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def enter_cgroup(cgroups: list[tuple[int, Path]], cgroup_ns: int) -> None:
    """(In an exec's child.) Into the container's cgroups, then its cgroup namespace."""
    from .cgroup import join_self

    join_self(cgroups)
    setns(cgroup_ns)


def exec_detached(container: Container, args: list[str], *, env: list[str] = (),  # type: ignore[assignment]
                  workdir: str | None = None, user: str | None = None) -> None:
    """``docker exec -d``: start *args* in the container and return once it runs, its output going nowhere
    (Docker keeps none of an exec's); the exec's monitor follows it without us. EngineError if it cannot start."""
    from .errors import EngineError

    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        events = exec_start(container, args, (null, null, null), env=env, workdir=workdir, user=user)
    finally:
        os.close(null)
    first = events.next()
    events.close()
    if first["event"] == "error":
        raise EngineError(f"exec {args!r}: {first['message']}", int(first["exit_code"]))  # type: ignore[call-overload]


def exec_start(container: Container, args: list[str], stdio: tuple[int, int, int], *,
               env: list[str] = (), workdir: str | None = None, user: str | None = None,  # type: ignore[assignment]
               tty: bool = False) -> Events:
    """Start a process in a running container; read its ``started``/``exited`` events from the result."""
    from .container import ContainerError
    from .spec import merge_env
    from .zygote import Zygote

    if container.reload().status != "running":
        raise ContainerError(f"container {container.name} is not running", EXIT_ENGINE)
    if container.paused:
        raise ContainerError(f"container {container.name} is paused, unpause the container before exec", EXIT_ENGINE)
    if not args:
        raise ContainerError("no command given to exec", EXIT_ENGINE)
    spec = container.spec
    request = (list(args), merge_env(spec.env, list(env)), workdir or spec.workdir,
               spec.user if user is None else user, tty)
    return _forked(
        lambda events_fd: spawn_detached(exec_monitor, events_fd, container, *request, stdio, events_fd),
        lambda events_fd: Zygote.get().exec(str(container.store.home), container, request, stdio, events_fd))
