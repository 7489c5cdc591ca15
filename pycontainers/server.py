"""The CLI's command server: each ``pycontainers`` command hands its work to an engine already loaded.

Why: the CLI is a Python program, and starting Python and importing the engine costs 90-150 ms on
these machines, more than runc takes to run a whole container. Mercurial's ``chg`` met the same
problem the same way. The first command starts a server that imports the engine once; every later
command is a small client that imports nothing of the engine and passes the server its arguments,
working directory, environment and its stdin, stdout and stderr themselves (file descriptors sent
with ``SCM_RIGHTS``). The server forks a worker that runs the command exactly as the CLI would
(``cli.main``), writing straight to the caller's terminal or pipe; its containers start from the
server's warm monitors (``warm``), like the Python API's::

    $ pycontainers run --rm busybox true       client: Python's start-up and this module, nothing more
          │ connect to "@pycontainers-cli-<uid>-<key>", send argv, cwd, environment + fds 0, 1, 2
          ▼
    pyc-server        the engine imported; a zygote with warm monitors (zygote.Launcher)
          └─ fork ──> worker "pyc-cli": cli.main(argv) on the caller's fds ── launch ──> server
    client <── "started <PID>"  the worker, its signal handlers set
    client ──> "go"             only now does the worker run the command: a client that gave up
                                (and runs the command itself) never sees it run twice
    client <── "code <N>"       from the worker as it ends ("exit <wait status>" from the server if
                                it was killed); meanwhile the client passes its signals (Ctrl-C, a
                                window resize, ...) on to the worker, and a worker whose client dies
                                dies with it, as a command killed in its own process would

Not a daemon in Docker's sense: the server owns nothing. Every container has its own monitor and its
state is in the store, and a command's worker reports its end itself, so nothing is lost when the server
goes: the command that finds no server runs in its own process as before and starts a new one. It
exits after ``$PYCONTAINERS_SERVER_IDLE`` seconds without a command (default 300), when its code
changes, or when asked to (``stop``), each time once the commands it runs have ended. Killed outright,
a command it runs that still has a container to start fails with one line. ``PYCONTAINERS_SERVER=0``
turns it off. As with Docker's daemon, the containers it starts get the server's resource limits,
not those of the shell that typed the command.

Who may use it: the socket is in Linux's abstract namespace (no file to leave behind), which every process
of the network namespace can reach, a container run with ``--network host`` included. containerd's shim
once served root's API there and any such container could take over the host (CVE-2020-15257). So each
side checks the other (``same_standing``): same user, same mount, PID and user namespaces, same
capabilities, ``no_new_privs``, seccomp mode and LSM label. A container cannot use the server, nor pose as one.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing's, without importing typing (the client must start fast)
if TYPE_CHECKING:
    import selectors
    import socket
    from typing import NoReturn

SWITCH_ENV = "PYCONTAINERS_SERVER"  # "0": every command runs in its own process
IDLE_ENV = "PYCONTAINERS_SERVER_IDLE"  # seconds without a command before the server exits
IDLE_SECONDS = 300.0
ANSWER_TIMEOUT = 5.0  # seconds a client waits for "started" before it gives up on the server
FORWARDED_SIGNALS = (1, 2, 3, 15, 10, 12, 28)  # SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH
SIGINT = 2
CANCEL_SECONDS = 30  # at most this long for a build whose client was killed to remove its step's container
MAX_REQUEST = 1 << 20
MAX_PENDING = 64  # connections waiting for their request
F_SETOWN_EX, F_OWNER_TID = 15, 0  # fcntl(2), not in Python's fcntl module
_SOL_SOCKET, _SCM_RIGHTS, _SO_PEERCRED, _SO_PEERPIDFD = 1, 1, 17, 77


# ------------------------------------------------------------------------------------------ the client


def main() -> int:
    """The ``pycontainers`` command: through the command server if there is one, else in this process."""
    if os.environ.get(SWITCH_ENV, "1") != "0":
        code = run_through_server(sys.argv)
        if code is not None:
            # The worker has done it all: this process holds nothing that needs finalizing, and Python's own
            # finalization (every module torn down) would add 1.5 ms to every command.
            for stream in (sys.stdout, sys.stderr):
                try:  # noqa: SIM105
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(code)
    from .cli import main as cli_main

    return cli_main()


def server_key(environ: dict[str, str] | os._Environ[str]) -> str:
    """What a server serves: this interpreter, the variables that choose the store (``store.default_home``),
    and callers of our standing (a terminal and a JupyterLab run as a confined service each get their own)."""
    store = (environ.get(v, "") for v in ("PYCONTAINERS_HOME", "XDG_DATA_HOME", "HOME"))
    return "\0".join([sys.executable, *store, *_standing("self", label=False)])


def server_address(key: str) -> bytes:
    """The server's name in the abstract socket namespace: one per user and key."""
    import zlib

    return b"\0pycontainers-cli-%d-%08x" % (os.getuid(), zlib.crc32(key.encode()))


def code_stamp() -> int:
    """A checksum of this package's files' names, sizes and times: a server whose code is not its client's
    (an upgrade, a checkout, an edit) steps down."""
    import zlib

    here = os.path.dirname(os.path.abspath(__file__))
    stamp = 0
    for name in sorted(os.listdir(here)):
        if name.endswith(".py"):
            st = os.stat(os.path.join(here, name))
            stamp = zlib.crc32(f"{name} {st.st_size} {st.st_mtime_ns}\n".encode(), stamp)
    return stamp


def same_standing(pid: int) -> bool:
    """Is process *pid* where we are and as privileged as we are (not in a container, not more confined)?"""
    try:
        return _standing(str(pid)) == _standing("self")
    except OSError:  # gone already, or not ours to look at
        return False


def _standing(pid: str, label: bool = True) -> list[str]:
    """Where a process is (its mount, PID and user namespaces) and how confined (capabilities, no_new_privs,
    seccomp, and its LSM label unless *label* is False: an exec may change that one)."""
    standing = [os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("mnt", "pid", "user")]
    with open(f"/proc/{pid}/status") as f:
        standing += [line for line in f if line.startswith(("CapEff:", "CapBnd:", "NoNewPrivs:", "Seccomp:"))]
    if not label:
        return standing
    try:
        with open(f"/proc/{pid}/attr/current") as f:
            standing.append(f.read())
    except OSError:  # no LSM that labels processes
        pass
    return standing


def run_through_server(argv: list[str]) -> int | None:
    """Have the server run *argv*; its exit code, or None if this process must run it (no server).

    The first command finds no server, starts one, and runs in this process meanwhile.
    """
    import _socket

    if not _stdio_open():
        return None
    try:
        key = server_key(os.environ)
    except OSError:  # no /proc (a bare chroot): no way to tell a server of ours, so none
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(server_address(key))
        server_pid = our_peer(sock)
    except OSError:
        sock.close()
        start_server(key)
        return None
    if server_pid is None:  # not our server: do without one
        sock.close()
        return None
    ignored, early = _catch_signals()
    worker = _hand_over(sock, server_pid, argv, key, ignored)
    if worker is None:
        sock.close()
        return _give_up(early)
    return _follow_worker(sock, worker, ignored, early)


def _stdio_open() -> bool:
    """Are fds 0, 1 and 2 open? (Else our socket could take one's number and be passed as stdio.)"""
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return True


def _hand_over(sock: socket.socket, server_pid: int, argv: list[str], key: str, ignored: list[int]) -> int | None:
    """Send the command, our directory, environment, umask and stdio; the worker's PID, or None."""
    import marshal

    umask = os.umask(0o022)
    os.umask(umask)
    try:
        request = marshal.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask,
                                 "ignored": ignored, "key": key, "stamp": code_stamp()})
        stdio = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        sock.settimeout(ANSWER_TIMEOUT)
        sock.sendmsg([request], [(_SOL_SOCKET, _SCM_RIGHTS, stdio)])
        answer = sock.recv(64)
    except TimeoutError:  # busy (or stuck): this command runs by itself; closing tells a worker not to run
        print(f"pycontainers: the command server (PID {server_pid}) did not answer in {ANSWER_TIMEOUT:g} s; "
              "running the command by itself", file=sys.stderr)
        return None
    except OSError:  # no working directory, a request too large, a server gone meanwhile
        return None
    if not answer.startswith(b"started "):  # "stale" (older code: it is going), another store's, ...
        return None
    return int(answer.split()[1])


def _catch_signals() -> tuple[list[int], list[int]]:
    """The forwarded signals our caller has us ignore (the worker will too), and a list that collects the
    others until the worker exists (Ctrl-C at once is for it)."""
    import _signal

    ignored = [s for s in FORWARDED_SIGNALS if _signal.getsignal(s) == _signal.SIG_IGN]
    early: list[int] = []
    for signum in FORWARDED_SIGNALS:
        if signum not in ignored:
            _signal.signal(signum, lambda signum, _frame: early.append(signum))
    return ignored, early


def _give_up(early: list[int]) -> int | None:
    """No worker after all: Python's signal handling again, and the command runs here (None), unless a
    Ctrl-C came meanwhile (130, as it would have been); any other signal held is delivered to us."""
    import _signal

    for signum in FORWARDED_SIGNALS:
        if _signal.getsignal(signum) != _signal.SIG_IGN:
            _signal.signal(signum, _signal.default_int_handler if signum == SIGINT else _signal.SIG_DFL)
    if SIGINT in early:
        return 130
    for signum in early:
        _kill(os.getpid(), signum)
    return None


def _follow_worker(sock: socket.socket, worker: int, ignored: list[int], early: list[int]) -> int:
    """Let the worker run, pass our signals on to it, and return its exit code (128 + N for signal N)."""
    import _signal

    try:
        pidfd = os.pidfd_open(worker)  # signals through it never reach another process that got its PID
    except OSError:  # gone already: the answer tells how it ended
        pidfd = -1

    def forward(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105
            _signal.pidfd_send_signal(pidfd, signum)
        except OSError:
            pass

    forwarded = [s for s in FORWARDED_SIGNALS if s not in ignored]
    for signum in forwarded:
        _signal.signal(signum, forward)
    for signum in early:
        forward(signum, None)
    sock.settimeout(None)
    try:
        sock.send(b"go")
        answer = sock.recv(64)
    except OSError:
        answer = b""
    for signum in forwarded:
        _signal.signal(signum, _signal.SIG_DFL)
    if pidfd >= 0:
        os.close(pidfd)
    sock.close()
    if answer.startswith(b"code "):
        return int(answer.split()[1])
    if answer.startswith(b"exit "):  # the worker was killed: say so as a shell would, 128 + the signal
        code = os.waitstatus_to_exitcode(int(answer.split()[1]))
        return 128 - code if code < 0 else code
    print("pycontainers: the command server and the command's worker stopped before the command ended",
          file=sys.stderr)
    return 125


def _peer(sock: socket.socket) -> tuple[int, int]:
    """The PID and user ID of the process at the other end (SO_PEERCRED: struct ucred)."""
    cred = sock.getsockopt(_SOL_SOCKET, _SO_PEERCRED, 12)
    return int.from_bytes(cred[0:4], sys.byteorder), int.from_bytes(cred[4:8], sys.byteorder)


def our_peer(sock: socket.socket) -> int | None:
    """The PID of the process at the other end of *sock* if it is ours: same user, ``same_standing``; else None.

    That standing is read in /proc under the PID SO_PEERCRED gives, which the process may have left, and the
    kernel given to another, since it connected. So where the kernel gives a pidfd of the peer as it connected
    (SO_PEERPIDFD, Linux 6.5), that process must still be alive once /proc has been read: then what was read
    was its own. OSError if the socket cannot say who is there."""
    pid, uid = _peer(sock)
    try:
        pidfd: int | None = sock.getsockopt(_SOL_SOCKET, _SO_PEERPIDFD)
    except OSError as exc:
        if exc.errno != 92:  # ESRCH or EINVAL, as 6.5-6.8 say it: the peer is gone already
            return None
        pidfd = None  # ENOPROTOOPT, an older kernel: the PID alone
    try:
        if uid != os.getuid() or not same_standing(pid):
            return None
        if pidfd is not None:
            import _signal  # (not signal, whose enum import is milliseconds on every command's way)

            try:
                _signal.pidfd_send_signal(pidfd, 0)  # signal 0: only whether it is there
            except OSError:
                return None
        return pid
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _kill(pid: int, signum: int) -> None:
    try:  # noqa: SIM105 (contextlib is one import more for the client)
        os.kill(pid, signum)
    except OSError:
        pass


def start_server(key: str) -> None:
    """Start a server for *key* in the background: a session of its own, none of our descriptors, default
    signals. (It takes our key rather than working its own out: an exec can change a process's LSM label.)"""
    import _signal

    if os.environ.get(IDLE_ENV) == "0":
        return
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"import sys; sys.path[0] = {package_parent!r}; from pycontainers.server import serve; "
            f"serve({key!r})")
    null = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    defaults = [s for s in _signal.valid_signals() if s not in (9, 19)]  # what our caller ignores is not for it
    try:  # noqa: SIM105 (no server, then: every command runs in its own process)
        # -P: nothing of the current directory on sys.path (a file there named json.py would run as root)
        os.posix_spawn(sys.executable, [sys.executable, "-P", "-c", code], os.environ, setsid=True, file_actions=null,
                       setsigdef=defaults, setsigmask=())
    except OSError:
        pass


def running(environ: dict[str, str] | os._Environ[str] | None = None) -> int | None:
    """The PID of our server for *environ*'s store (default: ours), if one is running."""
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(server_address(server_key(os.environ if environ is None else environ)))
        return our_peer(sock)
    except OSError:  # none, or no /proc to work out its name
        return None
    finally:
        sock.close()


def kill(environ: dict[str, str] | os._Environ[str] | None = None) -> list[int]:
    """SIGKILL our server for *environ*'s store (default: ours) and the commands it is running, as a crash
    would; the PIDs killed. (``pkill pyc-server`` would take every store's servers, and as root every
    user's.) The containers do not notice: their monitors are not the server's commands."""
    import contextlib
    import signal

    from .container import child_pids

    pid = running(environ)
    if pid is None:
        return []
    commands = []
    for child in child_pids(pid):
        with contextlib.suppress(OSError), open(f"/proc/{child}/comm") as f:
            if f.read().strip() == "pyc-cli":
                commands.append(child)
    for target in (pid, *commands):
        _kill(target, signal.SIGKILL)
    return [pid, *commands]


def stop(environ: dict[str, str] | os._Environ[str] | None = None) -> int | None:
    """Ask the server for *environ*'s store (default: ours) to stop; its PID, None if there is none.

    It stops taking commands at once and exits when the commands it runs have ended."""
    import _socket
    import marshal

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        key = server_key(os.environ if environ is None else environ)
        sock.connect(server_address(key))
        pid = our_peer(sock)
        if pid is None:
            return None
        sock.settimeout(ANSWER_TIMEOUT)
        sock.send(marshal.dumps({"stop": True, "key": key}))
        return pid if sock.recv(64) == b"stopping" else None
    except OSError:
        return None
    finally:
        sock.close()


# ------------------------------------------------------------------------------------------ the server


def serve(key: str) -> None:
    """The server's process, for clients of *key*: claim the name, load the engine, serve until idle."""
    import signal
    import socket

    os.chdir("/")  # not the first caller's directory, which someone may want to unmount
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # what the first client held open is not ours to keep
    stamp = code_stamp()  # before the first client can reach us
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        listener.bind(server_address(key))
    except OSError:  # another server started first
        return
    listener.listen(64)  # from here clients wait in the backlog while the engine loads
    listener.setblocking(False)
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _load_engine()
    from .linux import set_process_name
    from .zygote import is_single_threaded

    if not is_single_threaded():  # a library started a thread: forking workers would not be safe
        return
    set_process_name("pyc-server")
    try:
        idle = float(os.environ.get(IDLE_ENV) or IDLE_SECONDS)
    except ValueError:
        idle = IDLE_SECONDS
    Server(key, stamp, listener, idle).run()


class Server:
    """The loop: connections accepted, requests read, workers dispatched, launches served, exits reported.

    Each event the selector reports carries its kind: "connection" (the listener), "request" (a client's
    first message), "launch" (a worker asks for a container), "exit" (a worker ended), "spare gone".
    """

    def __init__(self, key: str, stamp: int, listener: socket.socket, idle: float) -> None:
        import selectors
        import time

        from .zygote import Launcher

        self.key, self.stamp, self.listener, self.idle = key, stamp, listener, idle
        self.launcher = Launcher()
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, ("connection", None))
        self.workers: dict[int, Worker] = {}  # by PID
        self.pending: dict[socket.socket, float] = {}  # connections whose request has not come, and until when
        self.listening = True
        self.paused_until: float | None = None  # not accepting for a moment (out of descriptors)
        self.spare: Worker | None = None  # the next command's worker, forked while nothing else is to be done
        self.last_activity = self.now = time.monotonic()

    def run(self) -> None:
        handlers = {"connection": self.on_connection, "request": self.on_request, "launch": self.on_launch,
                    "exit": self.on_exit}
        while True:
            for selected, _ in self.wait():
                kind, worker = selected.data
                if kind == "spare gone":
                    self.on_spare_gone(worker)
                elif worker is None or self.workers.get(worker.pid) is worker:  # (not one ended in this batch)
                    handlers[kind](selected.fileobj, worker)
            self.drop_silent_connections()
            if not self.workers and not self.pending and (not self.listening or
                                                          self.now >= self.last_activity + self.idle):
                return  # (a spare sees its control socket close, and exits)

    def wait(self) -> list[tuple[selectors.SelectorKey, int]]:
        """The next events; with nothing to do, first fork a spare worker."""
        import selectors
        import time

        deadlines = list(self.pending.values()) + ([self.last_activity + self.idle] if not self.workers else [])
        if self.paused_until is not None:
            deadlines.append(self.paused_until)
        events = self.selector.select(0)
        if not events and self.spare is None and self.listening and (spare := _fork_spare()) is not None:
            self.spare = spare
            self.selector.register(spare.pidfd, selectors.EVENT_READ, ("spare gone", spare))
        if not events:
            events = self.selector.select(max(0.0, min(deadlines) - time.monotonic()) if deadlines else None)
        self.now = time.monotonic()
        if self.paused_until is not None and self.now >= self.paused_until and self.listening:
            self.selector.register(self.listener, selectors.EVENT_READ, ("connection", None))  # try again
            self.paused_until = None
        return events

    def on_connection(self, _listener: object, _worker: None) -> None:
        if not self.listening:
            return
        accepted = _accept(self.listener, self.selector, self.pending, self.now)
        if accepted:  # (a refused connection must not keep us alive)
            self.last_activity = self.now
        elif accepted is None:  # out of descriptors: the connection stays queued; do not spin on it
            self.selector.unregister(self.listener)
            self.paused_until = self.now + 0.2

    def on_request(self, conn: socket.socket, _worker: None) -> None:
        import selectors

        self.last_activity = self.now
        self.selector.unregister(conn)
        del self.pending[conn]
        try:
            started = _start_worker(conn, self.key, self.stamp, self.listening, self.spare)
        except OSError:  # no descriptor, process or memory left for it: the client runs it itself
            started = None
        if isinstance(started, Worker):
            if started is self.spare:
                self.selector.unregister(started.pidfd)
                self.spare = None
            self.workers[started.pid] = started
            self.selector.register(started.pidfd, selectors.EVENT_READ, ("exit", started))
            self.selector.register(started.zygote, selectors.EVENT_READ, ("launch", started))
            return
        conn.close()
        if started in ("stale", "stop"):
            self.stop_listening()

    def stop_listening(self) -> None:
        """Take no more commands (the next client starts a new server); leave once those running end."""
        if not self.listening:
            return
        if self.paused_until is None:
            self.selector.unregister(self.listener)
        self.listener.close()
        self.listening = False
        if self.spare is not None and self.spare.control is not None:
            self.spare.control.close()  # it exits: "spare gone"
            self.spare.control = None

    def on_launch(self, _zygote: object, worker: Worker) -> None:
        self.last_activity = self.now
        if not self.launcher.handle(worker.zygote):
            self.selector.unregister(worker.zygote)

    def on_exit(self, _pidfd: object, worker: Worker) -> None:
        import contextlib

        self.last_activity = self.now
        _, status = os.waitpid(worker.pid, 0)
        assert worker.conn is not None
        _no_more_sigio(worker.conn)  # the worker asked for it, and is gone: its PID may be reused
        with contextlib.suppress(OSError):  # unless the worker said its code itself
            worker.conn.send(b"exit %d" % status)
        for f in (worker.pidfd, worker.zygote):
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(f)
        worker.close()
        del self.workers[worker.pid]

    def on_spare_gone(self, worker: Worker) -> None:
        """The spare exited before a command came: let go (we are leaving), or killed."""
        if worker is self.spare:
            os.waitpid(worker.pid, 0)
            self.selector.unregister(worker.pidfd)
            worker.close()
            self.spare = None

    def drop_silent_connections(self) -> None:
        for conn, deadline in list(self.pending.items()):
            if deadline <= self.now:
                self.selector.unregister(conn)
                conn.close()
                del self.pending[conn]


def _accept(listener: socket.socket, selector: selectors.BaseSelector, pending: dict[socket.socket, float],
            now: float) -> bool | None:
    """Take a connection if it is ours to serve (anyone in our network namespace can connect), and wait for
    its request without blocking: a client that connects and says nothing must not stall the others.
    True if taken, False if refused, None if we are out of descriptors (it stays in the backlog)."""
    import errno
    import selectors

    try:
        conn, _addr = listener.accept()
    except BlockingIOError:  # gone from the backlog meanwhile
        return False
    except OSError as exc:
        if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
            return None
        return False
    try:
        ours = our_peer(conn) is not None and len(pending) < MAX_PENDING
    except OSError:
        ours = False
    if not ours:
        conn.close()
        return False
    conn.setblocking(False)
    pending[conn] = now + ANSWER_TIMEOUT
    selector.register(conn, selectors.EVENT_READ, ("request", None))
    return True


class Worker:
    """A command being run: the worker's PID and pidfd, the client's connection, the worker's zygote socket.

    A spare (forked ahead of time, waiting for a command on *control*) has no connection yet."""

    def __init__(self, pid: int, conn: socket.socket | None, zygote: socket.socket,
                 control: socket.socket | None = None) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.conn = conn
        self.zygote = zygote
        self.control = control

    def close(self) -> None:
        os.close(self.pidfd)
        for sock in (self.conn, self.zygote, self.control):
            if sock is not None:
                sock.close()


def _fork_spare() -> Worker | None:
    """Fork the next command's worker ahead of time (the fork is then off the command's path)."""
    import socket

    from .linux import receive_fds

    try:
        control, control_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        zygote, zygote_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        pid = os.fork()
    except OSError:
        return None
    if pid == 0:
        from .linux import set_process_name
        from .pid1 import keep_only

        keep_only(control_theirs.fileno(), zygote_theirs.fileno())
        set_process_name("pyc-cli")  # (not "pyc-server": `pkill pyc-server` must not take it for the server)
        try:
            message, fds = receive_fds(control_theirs, MAX_REQUEST, 4)  # stdin, stdout, stderr, the client
        except BaseException:  # noqa: BLE001
            os._exit(0)
        if len(fds) != 4:  # the server let us go (it is leaving), or is gone
            os._exit(0)
        control_theirs.close()
        import marshal

        run_worker(marshal.loads(message), fds[:3], zygote_theirs, socket.socket(fileno=fds[3]))
    control_theirs.close()
    zygote_theirs.close()
    try:
        return Worker(pid, None, zygote, control)
    except OSError:
        control.close()  # it exits on its own
        zygote.close()
        return None


def _load_engine() -> None:
    """Import what commands use, once, so that workers are forked with all of it loaded.

    Not ``build``: it loads Docker's Dockerfile parser, a Go library whose runtime starts threads, and a
    process with threads must not fork (see ``zygote``). A ``build`` command's worker imports it itself."""
    import contextlib
    import importlib

    for name in ("cli", "api", "container", "runtime", "warm", "image", "store", "tables", "layer"):
        importlib.import_module(f"pycontainers.{name}")
    from .cli import build_parser

    build_parser(None)
    with contextlib.suppress(ImportError):  # tables in a terminal
        import rich.box  # noqa: F401
        import rich.console  # noqa: F401
        import rich.table  # noqa: F401


def _start_worker(conn: socket.socket, key: str, stamp: int, listening: bool,
                  spare: Worker | None = None) -> Worker | str | None:
    """Read a request from a client of ours (``_accept`` checked it); fork the worker of a command (a
    Worker), or say why not ("stale": our code is out of date; "stop": asked to stop; None: refused)."""
    import contextlib
    import socket

    from .linux import receive_fds

    try:
        message, fds = receive_fds(conn, MAX_REQUEST, 3)
    except OSError:
        return None
    try:  # the caller's stdio is the worker's alone: ours is closed whatever happens
        verdict, request = _check_request(message, fds, key, stamp, listening)
        if verdict != "ok":
            with contextlib.suppress(OSError):
                conn.send(verdict.encode())
            return {"stale": "stale", "stopping": "stop"}.get(verdict)
        if spare is not None and spare.control is not None:
            try:
                socket.send_fds(spare.control, [message], [*fds, conn.fileno()])
            except OSError:  # it died meanwhile: fork one now
                pass
            else:
                spare.control.close()
                spare.control = None
                spare.conn = conn
                return spare
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            raise
        if pid == 0:
            ours.close()
            run_worker(request, fds, theirs, conn)
        theirs.close()
    finally:
        for fd in fds:
            os.close(fd)
    try:
        return Worker(pid, conn, ours)
    except OSError:  # no pidfd to follow it by: it must not run (it is waiting for "go")
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        ours.close()
        raise


def _check_request(message: bytes, fds: list[int], key: str, stamp: int,
                   listening: bool) -> tuple[str, dict[str, object]]:
    """"ok" and the request if we run it; else what to answer: "bad request", "another store", "stale",
    "no stdio", or "stopping" to a request to stop ("stop" to our caller)."""
    import marshal

    try:
        request = marshal.loads(message)
        if not isinstance(request, dict) or request.get("key") != key:
            return "another store" if isinstance(request, dict) else "bad request", {}
        if request.get("stop"):
            return "stopping" if not fds else "bad request", {}
        if not {"argv", "cwd", "env", "umask", "ignored", "stamp"} <= request.keys():
            return "bad request", {}
    except Exception:  # noqa: BLE001 (EOFError, ValueError, a MemoryError for a huge length: all refused)
        return "bad request", {}
    if request["stamp"] != stamp or code_stamp() != stamp or not listening:
        return "stale", {}
    if len(fds) != 3:
        return "no stdio", {}
    return "ok", request


def run_worker(request: dict[str, object], stdio: list[int], zygote: socket.socket,
               client: socket.socket) -> NoReturn:
    """In the forked worker: become the client's command (its fds, directory, environment) and run it.

    The worker says "started" once its signal handlers are set (so no signal the client passes on is
    lost), runs the command only on the client's "go", and tells the client its exit code itself."""
    import contextlib
    import signal

    from .cli import main as cli_main
    from .linux import set_process_name
    from .pid1 import keep_only
    from .zygote import Zygote

    code = 125
    try:
        ignored = set(request["ignored"])  # type: ignore[call-overload]
        for sig in FORWARDED_SIGNALS:
            handler = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
            signal.signal(sig, signal.SIG_IGN if sig in ignored else handler)
        client.setblocking(True)
        try:  # before touching the caller's stdio: a client that gave up (and runs the command itself) or
            client.send(b"started %d" % os.getpid())  # died must not hear a word from us
            go = client.recv(16) == b"go"
        except OSError:
            go = False
        if not go:
            os._exit(0)
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        keep_only(zygote.fileno(), client.fileno())
        set_process_name("pyc-cli")  # in `ps -e`, beside pyc-server and the monitors
        _die_with(client)
        os.chdir(str(request["cwd"]))
        os.umask(int(request["umask"]))  # type: ignore[call-overload]
        os.environ.clear()
        os.environ.update(request["env"])  # type: ignore[arg-type]
        sys.argv = list(request["argv"])  # type: ignore[call-overload]
        # Python chose the server's buffering at its start (a /dev/null stdout); choose as the caller's would.
        sys.stdin = open(0, encoding="utf-8", errors="surrogateescape", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, encoding="utf-8",  # noqa: SIM115
                          errors="surrogateescape", closefd=False)
        sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                          closefd=False)
        Zygote.adopt(zygote)
        code = cli_main(sys.argv[1:])
    except SystemExit as exc:  # argparse's --help (0) and usage errors (2)
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        code = 130
    except BaseException as exc:  # noqa: BLE001 (one line, as the CLI prints its own errors)
        print(f"pycontainers: internal error in the command server: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(BaseException):  # a reader gone: nothing more to say
                stream.flush()
        with contextlib.suppress(BaseException):
            _no_more_sigio(client)
            client.send(b"code %d" % (code & 0xFF))
    os._exit(code & 0xFF)


def _die_with(client: socket.socket) -> None:
    """Be killed when the client is (its end of the connection closes): SIGIO, as O_ASYNC asks for.

    Except a build: as Docker's daemon does when its client goes, it is cancelled (``build.cancel_builds``:
    its RUN step's container is killed and removed, no other step runs) and the worker ends with it, or
    at the latest after ``CANCEL_SECONDS`` (SIGALRM's default action)."""
    import fcntl
    import select
    import signal
    import struct
    import threading

    poller = select.poll()  # (select.select cannot take a descriptor above 1023)
    poller.register(client, select.POLLIN)
    cancelling = []

    def check(_signum: int, _frame: object) -> None:
        if not poller.poll(0) or cancelling:  # the client sends nothing after "go": this is its end
            return
        cancelling.append(True)  # (first: a SIGIO during what follows must not do it all again)
        build = sys.modules.get(f"{__package__}.build")  # (imported only if a build runs)
        try:
            cancelled = build is not None and build.cancel_builds()
        except Exception:  # noqa: BLE001 (a handler must not raise into whatever the worker was doing)
            cancelled = False
        if cancelled:
            signal.alarm(CANCEL_SECONDS)
            return
        os.kill(os.getpid(), signal.SIGKILL)

    signal.signal(signal.SIGIO, check)
    # To this (main) thread, the one that runs Python's handlers, even if a library has started others.
    fcntl.fcntl(client.fileno(), F_SETOWN_EX, struct.pack("ii", F_OWNER_TID, threading.get_native_id()))
    fcntl.fcntl(client.fileno(), fcntl.F_SETFL, fcntl.fcntl(client.fileno(), fcntl.F_GETFL) | os.O_ASYNC)
    check(signal.SIGIO, None)  # it may have gone already


def _no_more_sigio(conn: socket.socket) -> None:
    """Clear O_ASYNC (``_die_with``) on the connection, shared by the worker and the server."""
    import contextlib
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.fcntl(conn.fileno(), fcntl.F_SETFL, fcntl.fcntl(conn.fileno(), fcntl.F_GETFL) & ~os.O_ASYNC)
