"""A clean process that forks containers on behalf of a multithreaded one (a Jupyter kernel).

Forking a multithreaded process copies only the calling thread: a lock another thread held (in
malloc, in the import system, in logging) stays locked forever in the child, which may then hang.
So the kernel never forks. On its first container it starts this helper with ``fork + exec`` (safe
in any process), a fresh single-threaded interpreter that waits on a socket; each request carries the
container's ID and, as ``SCM_RIGHTS`` file descriptors, its stdin, stdout, stderr and the pipe its
monitor reports on. The zygote calls ``runtime.launch`` and answers ``ok`` or the error; a container
that fits starts instead from one of the warm monitors the zygote keeps ready (``warm``).

It is not a daemon: it exits when its client closes the socket (the kernel exits or restarts), and the
containers it launched do not depend on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import threading
from pathlib import Path

MAX_FDS = 4
MAX_REQUEST = 1 << 20  # a container's state, with its environment
REAP_INTERVAL = 1.0  # seconds an idle zygote waits before it collects warm monitors that ended
LARGE_STATE = 64 << 10  # larger states are not sent: the zygote reads them from the store


def serve(fd: int) -> None:
    """The helper's loop: one request, one ``launch``, one answer, until the client goes away."""
    import select
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C / interrupt in the notebook is not for us
    sock = socket.socket(fileno=fd)
    launcher = Launcher()
    while True:
        if not select.select([sock], [], [], REAP_INTERVAL)[0]:
            launcher.reap()  # a warm monitor that ended while no request came (killed): no <defunct> stays
        elif not launcher.handle(sock):
            return


class Launcher:
    """The zygote's side of a request: start the container (warm if it fits), answer, refill the pool.

    Shared by the notebook's zygote (``serve``) and the CLI's command server (``server``), which
    reads requests from each of its workers' sockets in turn.
    """

    def __init__(self) -> None:
        from . import warm
        from .store import Store

        self.pools: dict[str, warm.WarmPool] = {}  # native, or rootless with given id maps (warm.pool_key)
        self.stores: dict[str, Store] = {}

    def reap(self) -> None:
        """Collect the warm monitors of every pool that have ended."""
        for pool in self.pools.values():
            pool.reap()

    def handle(self, sock: socket.socket) -> bool:
        """Serve one request from *sock*; False when its client has gone."""
        from . import warm
        from .container import Container, containers_dir, read_state
        from .linux import receive_fds
        from .runtime import exec_monitor, launch, seccomp_program, spawn_detached
        from .store import Store

        pool: warm.WarmPool | None = None
        try:
            msg, fds = receive_fds(sock, MAX_REQUEST, MAX_FDS)
        except OSError:
            return False
        if not msg:
            return False
        try:
            req = json.loads(msg)
            store = self.stores.get(req["home"]) or self.stores.setdefault(req["home"], Store(req["home"]))
            state = req.get("state") or read_state(containers_dir(store) / req["id"])
            container = Container(store, req["id"], state)
            stdin, stdout, stderr, events = fds
            if req.get("exec"):
                args, env, workdir, user, tty = req["exec"]
                spawn_detached(exec_monitor, events, container, args, env, workdir, user, tty,
                               (stdin, stdout, stderr), events)
            elif warm.fits(container) and "state" in req:  # (a state too large to send starts cold)
                key = warm.pool_key(container)
                if key not in self.pools:
                    maps = container.state.get("id_maps") if key != "native" else None
                    self.pools[key] = warm.WarmPool(maps)  # type: ignore[arg-type]
                pool = self.pools[key]
                if not pool.launch(msg, (stdin, stdout, stderr), events):
                    launch(container, req["lowers"], (stdin, stdout, stderr), events)
            else:
                launch(container, req["lowers"], (stdin, stdout, stderr), events)
            reply = b"ok"
        except Exception as exc:  # noqa: BLE001 (sent back as one line)
            reply = f"zygote: {exc}".encode()
        finally:
            for f in fds:
                os.close(f)
        with contextlib.suppress(OSError):  # a client gone meanwhile hears nothing
            sock.send(reply)
        if pool is not None:  # after answering: more warm monitors if none is idle
            with contextlib.suppress(Exception):
                pool.fill(seccomp_program(container))
        return True


def netlink_path() -> list[str]:
    """Where pyroute2 is installed (the directory holding its package), for a helper without site-packages."""
    import importlib.util

    spec = importlib.util.find_spec("pyroute2")
    return [str(Path(spec.origin).parent.parent)] if spec and spec.origin else []


class Zygote:
    """The client side: starts the helper once per process and sends it launch requests."""

    _lock = threading.Lock()
    _instance: Zygote | None = None

    def __init__(self) -> None:
        import subprocess

        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        package_parent = str(Path(__file__).resolve().parent.parent)
        code = (f"import sys; sys.path.insert(0, {package_parent!r}); sys.path += {netlink_path()!r}; "
                f"from pycontainers.zygote import serve; serve({child.fileno()})")
        # -S skips site-packages (fast start); the engine needs nothing beyond the standard library but
        # pyroute2 (for containers on a network), found where this process has it.
        # Requests name their store; the helper needs no environment of the client's (nor keeps one alive).
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYCONTAINERS")}
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            # -P: nothing of the current directory on sys.path (a notebook's folder, where files come and go)
            [sys.executable, "-P", "-S", "-c", code], pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL,
            close_fds=True,
            env=env)
        child.close()
        self.sock = parent
        self.request_lock = threading.Lock()
        self.broken = False

    @classmethod
    def get(cls) -> Zygote:
        with cls._lock:
            zygote = cls._instance
            if zygote is None or zygote.broken or (zygote.process is not None and zygote.process.poll() is not None):
                cls._instance = Zygote()
            return cls._instance  # type: ignore[return-value]

    @classmethod
    def adopt(cls, sock: socket.socket) -> None:
        """Use *sock*, a connection to a zygote already running, for every launch of this process.

        A worker of the CLI's command server (``server``) starts its containers this way, from the
        server's warm monitors."""
        zygote = cls.__new__(cls)
        zygote.process = None
        zygote.sock = sock
        zygote.request_lock = threading.Lock()
        zygote.broken = False
        cls._instance = zygote

    @classmethod
    def adopted(cls) -> bool:
        """Was a running zygote handed to this process (``adopt``)? Then every launch goes to it."""
        return cls._instance is not None and cls._instance.process is None

    def launch(self, home: str, container_id: str, state: dict[str, object], lowers: list[str],
               stdio: tuple[int, int, int], events_fd: int) -> None:
        request = json.dumps({"home": home, "id": container_id, "state": state, "lowers": lowers}).encode()
        if len(request) > LARGE_STATE:  # a socket message has to fit its buffer (~208 KiB): without the state,
            request = json.dumps({"home": home, "id": container_id, "lowers": lowers}).encode()  # read from disk
        self._request(request, stdio, events_fd)

    def exec(self, home: str, container: object, exec_args: tuple[object, ...], stdio: tuple[int, int, int],
             events_fd: int) -> None:
        request = {"home": home, "id": container.id, "exec": list(exec_args)}  # type: ignore[attr-defined]
        self._request(json.dumps(request).encode(), stdio, events_fd)

    def _request(self, req: bytes, stdio: tuple[int, int, int], events_fd: int) -> None:
        from .container import ContainerError

        with self.request_lock:
            try:
                socket.send_fds(self.sock, [req], [*stdio, events_fd])
                reply = self.sock.recv(65536)
            except OSError:  # it died (killed?): the next request starts a new one
                reply = b""
            except BaseException:  # interrupted (Ctrl-C in a notebook) before the answer: that answer would
                self.broken = True  # be taken for the next request's, so this helper is left; a new one starts
                self.sock.close()
                raise
        if reply != b"ok":
            raise ContainerError(reply.decode() or "zygote: the helper process that starts containers exited; "
                                 "run the command again to start a new one")


def is_single_threaded() -> bool:
    """True when this process has exactly one thread (counting native threads), so fork is safe."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return threading.active_count() == 1
