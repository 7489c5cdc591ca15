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
          └─ fork ──> worker: cli.main(argv) on the caller's fds ── launch ──> server ──> warm monitor
    client <── "started <worker PID>" ... "code <exit code>" from the worker as it ends (or, if it
               was killed, "exit <wait status>" from the server); the client passes its signals
               (Ctrl-C, a window resize, ...) on to the worker

Not a daemon in Docker's sense: the server owns nothing. Every container has its own monitor and its
state is in the store, so the server may die at any time and nothing is lost: the command that finds
no server runs in its own process as before and starts a new one. It exits after
``$PYCONTAINERS_SERVER_IDLE`` seconds without a command (default 300) and as soon as its code changes.
``PYCONTAINERS_SERVER=0`` turns it off.

Who may use it: the socket is in Linux's abstract namespace (no file to leave behind), which every process
of the network namespace can reach, a container run with ``--network host`` included. containerd's shim
once served root's API there and any such container could take over the host (CVE-2020-15257). So the
server serves only a process of its own user (``SO_PEERCRED``) in its own mount and PID namespaces: never
one inside a container.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing's, without importing typing (the client must start fast)
if TYPE_CHECKING:
    import socket
    from typing import NoReturn

SWITCH_ENV = "PYCONTAINERS_SERVER"  # "0": every command runs in its own process
IDLE_ENV = "PYCONTAINERS_SERVER_IDLE"  # seconds without a command before the server exits
IDLE_SECONDS = 300.0
ANSWER_TIMEOUT = 5.0  # seconds a client waits for "started" before it gives up on the server
FORWARDED_SIGNALS = (1, 2, 3, 15, 10, 12, 28)  # SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH
_SOL_SOCKET, _SCM_RIGHTS, _SO_PEERCRED = 1, 1, 17


# ------------------------------------------------------------------------------------------ the client


def main() -> int:
    """The ``pycontainers`` command: through the command server if there is one, else in this process."""
    if os.environ.get(SWITCH_ENV, "1") != "0":
        code = run_through_server(sys.argv)
        if code is not None:
            return code
    from .cli import main as cli_main

    return cli_main()


def server_key(environ: dict[str, str] | os._Environ[str]) -> str:
    """What a server serves: this interpreter, and the variables that choose the store (``store.default_home``)."""
    return "\0".join([sys.executable, *(environ.get(v, "") for v in ("PYCONTAINERS_HOME", "XDG_DATA_HOME", "HOME"))])


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


def run_through_server(argv: list[str]) -> int | None:
    """Have the server run *argv*; its exit code, or None if this process must run it (no server).

    The first command finds no server, starts one, and runs in this process meanwhile.
    """
    import _socket

    key = server_key(os.environ)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(server_address(key))
        server_pid, server_uid = _peer(sock)
    except OSError:
        sock.close()
        start_server()
        return None
    if server_uid != os.getuid():  # someone else's process holds our name: do without it
        sock.close()
        return None
    early = _catch_signals()
    worker = _hand_over(sock, server_pid, argv, key)
    if worker is None:
        sock.close()
        _release_signals(early)
        return None
    return _follow_worker(sock, worker, early)


def _hand_over(sock: socket.socket, server_pid: int, argv: list[str], key: str) -> int | None:
    """Send the command, our directory, environment, umask and stdio; the worker's PID, or None."""
    import marshal

    umask = os.umask(0o022)
    os.umask(umask)
    try:
        request = marshal.dumps({"argv": list(argv), "cwd": os.getcwd(), "env": dict(os.environ), "umask": umask,
                                 "key": key, "stamp": code_stamp()})
        stdio = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        sock.settimeout(ANSWER_TIMEOUT)
        sock.sendmsg([request], [(_SOL_SOCKET, _SCM_RIGHTS, stdio)])
        answer = sock.recv(64)
    except TimeoutError:  # a server that does not answer is stopped; the next command starts a new one
        print(f"pycontainers: the command server (PID {server_pid}) did not answer in {ANSWER_TIMEOUT:g} s; "
              "stopping it", file=sys.stderr)
        _kill(server_pid, 9)
        return None
    except OSError:  # no stdin or stdout to pass on (closed), no working directory, a server gone meanwhile
        return None
    if not answer.startswith(b"started "):  # "stale" (older code: it is going), or another store's
        return None
    return int(answer.split()[1])


def _catch_signals() -> list[int]:
    """Hold on to the signals that come before the worker exists (Ctrl-C at once): they are for it."""
    import _signal

    early: list[int] = []
    for signum in FORWARDED_SIGNALS:
        _signal.signal(signum, lambda signum, _frame: early.append(signum))
    return early


def _release_signals(early: list[int]) -> None:
    """Python's own signal handling again (the command runs here after all), and the signals held, to us."""
    import _signal

    for signum in FORWARDED_SIGNALS:
        _signal.signal(signum, _signal.default_int_handler if signum == _signal.SIGINT else _signal.SIG_DFL)
    for signum in early:
        _kill(os.getpid(), signum)


def _follow_worker(sock: socket.socket, worker: int, early: list[int]) -> int:
    """Wait for the worker's end, passing our signals on to it; its exit code (128 + N for signal N)."""
    import _signal

    def forward(signum: int, _frame: object) -> None:
        _kill(worker, signum)

    for signum in FORWARDED_SIGNALS:
        _signal.signal(signum, forward)
    for signum in early:
        forward(signum, None)
    sock.settimeout(None)
    try:
        answer = sock.recv(64)
    except OSError:
        answer = b""
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


def _kill(pid: int, signum: int) -> None:
    try:  # noqa: SIM105 (contextlib is one import more for the client)
        os.kill(pid, signum)
    except OSError:
        pass


def start_server() -> None:
    """Start a server in the background, in a session of its own, holding none of our descriptors."""
    if os.environ.get(IDLE_ENV) == "0":
        return
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"import sys; sys.path[0] = {package_parent!r}; from pycontainers.server import serve; serve()"
    null = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:  # noqa: SIM105 (no server, then: every command runs in its own process)
        os.posix_spawn(sys.executable, [sys.executable, "-c", code], os.environ, setsid=True, file_actions=null)
    except OSError:
        pass


def running(environ: dict[str, str] | os._Environ[str] | None = None) -> int | None:
    """The PID of the server for *environ*'s store (default: ours), if one is running."""
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC)
    try:
        sock.connect(server_address(server_key(os.environ if environ is None else environ)))
        pid, uid = _peer(sock)
    except OSError:
        return None
    finally:
        sock.close()
    return pid if uid == os.getuid() else None


def stop(environ: dict[str, str] | os._Environ[str] | None = None) -> int | None:
    """Stop the server for *environ*'s store (default: ours), if one is running; its PID.

    Safe at any time (see the module's docstring): commands running finish and report by themselves."""
    pid = running(environ)
    if pid is not None:
        _kill(pid, 15)
    return pid


# ------------------------------------------------------------------------------------------ the server


def serve() -> None:
    """The server's loop: commands in, workers forked, launches served, exits reported; until idle."""
    import contextlib
    import selectors
    import signal
    import socket
    import time

    # Whatever the first client held open (a pipe its caller waits on) is not ours to keep.
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    key = server_key(os.environ)
    stamp = code_stamp()  # before the first client can reach us
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    try:
        listener.bind(server_address(key))
    except OSError:  # another server started first
        return
    listener.listen(64)  # from here clients wait in the backlog while the engine loads
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    _load_engine()
    from .linux import set_process_name
    from .zygote import Launcher

    set_process_name("pyc-server")
    idle = float(os.environ.get(IDLE_ENV) or IDLE_SECONDS)
    launcher = Launcher()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, ("command", None))
    workers: dict[int, Worker] = {}  # by PID
    last_activity = time.monotonic()
    while True:
        events = selector.select(timeout=max(0.0, last_activity + idle - time.monotonic()) if not workers else None)
        if not events and not workers and time.monotonic() >= last_activity + idle:
            return
        last_activity = time.monotonic()
        for selected, _ in events:
            kind, worker = selected.data
            if worker is not None and worker.pid not in workers:  # its exit came first in this batch
                continue
            if kind == "command":
                conn, _addr = listener.accept()
                started = _start_worker(conn, key, stamp)
                if started is None:
                    conn.close()
                elif started == "stale":  # newer code is installed: let the next client start a server for it
                    selector.unregister(listener)
                    listener.close()
                    conn.close()
                    idle = 0.0
                else:
                    workers[started.pid] = started
                    selector.register(started.pidfd, selectors.EVENT_READ, ("exit", started))
                    selector.register(started.conn, selectors.EVENT_READ, ("client gone", started))
                    selector.register(started.zygote, selectors.EVENT_READ, ("launch", started))
            elif kind == "launch":
                if not launcher.handle(worker.zygote):
                    selector.unregister(worker.zygote)
            elif kind == "client gone":  # killed, most likely: so is its command, as if it ran in-process
                selector.unregister(worker.conn)
                with contextlib.suppress(OSError):
                    os.kill(worker.pid, signal.SIGKILL)
            elif kind == "exit":
                _, status = os.waitpid(worker.pid, 0)
                with contextlib.suppress(OSError):
                    worker.conn.send(b"exit %d" % status)
                for f in (worker.pidfd, worker.conn, worker.zygote):
                    with contextlib.suppress(KeyError, ValueError):
                        selector.unregister(f)
                os.close(worker.pidfd)
                worker.conn.close()
                worker.zygote.close()
                del workers[worker.pid]
        if idle == 0.0 and not workers:
            return


class Worker:
    """A command being run: the worker's PID and pidfd, the client's connection, the worker's zygote socket."""

    def __init__(self, pid: int, conn: socket.socket, zygote: socket.socket) -> None:
        self.pid = pid
        self.pidfd = os.pidfd_open(pid)
        self.conn = conn
        self.zygote = zygote


def _shares_our_namespaces(pid: int) -> bool:
    """Is process *pid* in our mount, PID and user namespaces (not in a container)?"""
    try:
        return all(os.readlink(f"/proc/{pid}/ns/{ns}") == os.readlink(f"/proc/self/ns/{ns}")
                   for ns in ("mnt", "pid", "user"))
    except OSError:  # gone already, or not ours to look at
        return False


def _load_engine() -> None:
    """Import what commands use, once, so that workers are forked with all of it loaded."""
    import contextlib
    import importlib

    for name in ("cli", "api", "container", "runtime", "warm", "image", "store", "tables", "layer", "build"):
        importlib.import_module(f"pycontainers.{name}")
    from .cli import build_parser

    build_parser(None)
    with contextlib.suppress(ImportError):  # tables in a terminal
        import rich.box  # noqa: F401
        import rich.console  # noqa: F401
        import rich.table  # noqa: F401


def _start_worker(conn: socket.socket, key: str, stamp: int) -> Worker | str | None:
    """Read a command, fork its worker and answer "started <PID>"; "stale" if our code is out of date."""
    import contextlib
    import socket

    from .linux import receive_fds

    conn.settimeout(ANSWER_TIMEOUT)
    try:
        pid, uid = _peer(conn)
        if uid != os.getuid() or not _shares_our_namespaces(pid):
            return None  # before reading: nothing of theirs is ever received
        message, fds = receive_fds(conn, 1 << 20, 3)
    except OSError:
        return None
    try:  # the caller's stdio is the worker's alone: ours is closed whatever happens
        verdict, request = _check_command(message, fds, key, stamp)
        if verdict != "ok":
            with contextlib.suppress(OSError):
                conn.send(verdict.encode())
            return "stale" if verdict == "stale" else None
        conn.settimeout(None)
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            ours.close()
            run_worker(request, fds, theirs, conn)
        theirs.close()
    finally:
        for fd in fds:
            os.close(fd)
    try:
        conn.send(b"started %d" % pid)
    except OSError:  # the client is gone already: so is its command
        os.kill(pid, 9)
    return Worker(pid, conn, ours)


def _check_command(message: bytes, fds: list[int], key: str, stamp: int) -> tuple[str, dict[str, object]]:
    """"ok" and the request if we can run it; else why not: "bad request", "another store", "stale", "no stdio"."""
    import marshal

    try:
        request = marshal.loads(message)
        if not isinstance(request, dict) or not {"argv", "cwd", "env", "umask", "key", "stamp"} <= request.keys():
            return "bad request", {}
    except (EOFError, ValueError, TypeError):
        return "bad request", {}
    if request["key"] != key:
        return "another store", {}
    if request["stamp"] != stamp or code_stamp() != stamp:
        return "stale", {}
    if len(fds) != 3:
        return "no stdio", {}
    return "ok", request


def run_worker(request: dict[str, object], stdio: list[int], zygote: socket.socket,
               client: socket.socket) -> NoReturn:
    """In the forked worker: become the client's command (its fds, directory, environment) and run it.

    The worker tells the client its exit code itself, so a command outlives a server killed meanwhile."""
    import contextlib
    import signal

    from .cli import main as cli_main
    from .linux import set_process_name
    from .warm import keep_only
    from .zygote import Zygote

    code = 125
    try:
        for target, fd in enumerate(stdio):
            os.dup2(fd, target)
        keep_only(zygote.fileno(), client.fileno())
        set_process_name("pyc-cli")  # in `ps -e`, beside pyc-server and the monitors
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for sig in (signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
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
            client.send(b"code %d" % (code & 0xFF))
    os._exit(code & 0xFF)
