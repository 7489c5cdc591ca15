"""``docker attach``: join a running container's stdin, stdout and stderr, through its monitor.

A detached container's output goes to its monitor, which logs it (``runtime.OutputTee``, or
``runtime.TerminalLog`` with ``-t``); its stdin, with ``-i``, is a pipe (or the terminal) the monitor holds.
So the monitor is where an ``attach`` must go, as Podman's ``conmon`` is: it listens on a socket in the
container's directory, sends every client what the container writes, and passes on what they type::

    pycontainers attach web ──connect──> containers/<id>/attach   (the monitor: AttachPoint)
        monitor ──> client    b"1" + bytes the container wrote on stdout (a terminal's, all of it)
                              b"2" + bytes it wrote on stderr
        client  ──> monitor   b"0" + bytes for its stdin (with -i), b"w" + struct winsize (with -t)
    the container ends: the monitor closes the socket; attach then reports its exit code, as Docker's.

SOCK_SEQPACKET keeps each message whole. The socket's path is too long for ``sockaddr_un`` (108 bytes) in
a deep store, so both sides name it through a descriptor of the container's directory:
``/proc/self/fd/<N>/attach``, as conmon does. Only its owner can connect: connecting takes write permission
on the socket, which is made 0600.
A client too slow to take what the container writes is let go rather than allowed to stall the container
(the log keeps everything); typed input waits in the monitor, and the clients are not read meanwhile.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path

SOCKET_NAME = "attach"
STDIN, STDOUT, STDERR, WINDOW = b"0", b"1", b"2", b"w"
MAX_MESSAGE = 65536
MAX_PENDING_INPUT = 1 << 20  # bytes typed ahead that the container has not read yet, before clients wait


def _path_through(directory: Path) -> tuple[int, str]:
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    return fd, f"/proc/self/fd/{fd}/{SOCKET_NAME}"


class AttachPoint:
    """The monitor's end: a listening socket and the clients attached now.

    The owner (an ``OutputTee`` or a ``TerminalLog``) polls ``listener``, each client, and ``input_fd`` when
    input waits; it calls ``send`` with the container's output, ``take_input`` when a client has something
    and ``write_input`` when the container's stdin (or terminal) can take it.
    """

    def __init__(self, directory: Path, input_fd: int = -1) -> None:
        """*input_fd*: where typed bytes go (the write end of the container's stdin, or the terminal's master),
        -1 if the container has no stdin to write to (run without -i)."""
        self.directory = directory
        self.input_fd = input_fd
        self.clients: list[socket.socket] = []
        self.pending = bytearray()
        self.window: bytes | None = None  # the last window size a client asked for (-t)
        dir_fd, path = _path_through(directory)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / SOCKET_NAME)  # (a monitor of an earlier run that was killed)
            self.listener.bind(path)
            os.chmod(path, 0o600)
            self.listener.listen(8)
            self.listener.setblocking(False)
        except OSError:
            self.listener.close()
            raise
        finally:
            os.close(dir_fd)

    def accept(self) -> socket.socket | None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return None
        conn.setblocking(False)
        self.clients.append(conn)
        return conn

    def send(self, stream: bytes, data: bytes) -> None:
        """Give every client *data*, in messages of at most ``MAX_MESSAGE``; let go of one that is not reading."""
        for conn in list(self.clients):
            try:
                for i in range(0, len(data), MAX_MESSAGE - 1):
                    conn.send(stream + data[i:i + MAX_MESSAGE - 1])
            except OSError:  # EAGAIN (a full buffer: too slow), EPIPE (gone)
                self.drop(conn)

    def take_input(self, conn: socket.socket) -> bool:
        """Read a client's message: typed bytes wait for ``write_input``, a window size is kept for the owner
        (``window``). False if the client has gone (it is dropped)."""
        try:
            message = conn.recv(MAX_MESSAGE)
        except BlockingIOError:
            return True
        except OSError:
            message = b""
        if not message:
            self.drop(conn)
            return False
        kind, data = message[:1], message[1:]
        if kind == STDIN and self.input_fd >= 0:
            self.pending += data
        elif kind == WINDOW and len(data) == 8:
            self.window = data
        return True

    def wants_input(self) -> bool:
        """May clients be read (typed bytes have room to wait)?"""
        return len(self.pending) < MAX_PENDING_INPUT

    def write_input(self) -> None:
        """Write what waits to the container's stdin, as much as it takes now (its end is non-blocking)."""
        try:
            n = os.write(self.input_fd, self.pending)
        except BlockingIOError:
            return
        except OSError as exc:  # the container closed its stdin: what was typed goes nowhere, as with a pipe
            if exc.errno not in (errno.EPIPE, errno.EIO):
                raise
            n = len(self.pending)
        del self.pending[:n]

    def drop(self, conn: socket.socket) -> None:
        with contextlib.suppress(ValueError):
            self.clients.remove(conn)
        conn.close()

    def close(self) -> None:
        """The container has ended: its clients see the end (EOF), and the socket goes."""
        for conn in list(self.clients):
            self.drop(conn)
        self.listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self.directory / SOCKET_NAME)


def connect(directory: Path, name: str) -> socket.socket:
    """The client's end: a connection to the monitor of the container in *directory* (named *name* in errors)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
    dir_fd, path = _path_through(directory)
    try:
        sock.connect(path)
    except OSError:
        from .errors import EngineError

        sock.close()
        raise EngineError(f"cannot attach to container {name}: its output is not kept by a monitor that takes "
                          "attachments (run it with -d; a container run in the foreground belongs to the "
                          "terminal that started it)", 1) from None
    finally:
        os.close(dir_fd)
    return sock


def parse_detach_keys(spec: str) -> bytes:
    """Docker's ``--detach-keys``: comma-separated keys, each a letter or ``ctrl-<letter>`` (or ``ctrl-@``,
    ``ctrl-[``, ``ctrl-\\``, ``ctrl-]``, ``ctrl-^``, ``ctrl-_``), e.g. the default ``ctrl-p,ctrl-q``."""
    keys = bytearray()
    for key in spec.split(","):
        key = key.strip()
        if len(key) == 1:
            keys.append(ord(key))
        elif key.lower().startswith("ctrl-") and len(key) == 6:
            c = key[5].lower()
            if "a" <= c <= "z":
                keys.append(ord(c) - ord("a") + 1)
            elif c in "@[\\]^_":
                keys.append(ord(c) ^ 0x40)
            else:
                raise ValueError(f"invalid detach keys ({key!r})")
        else:
            raise ValueError(f"invalid detach keys ({key!r}): use letters or ctrl-<letter>, comma-separated")
    if not keys:
        raise ValueError("invalid detach keys: none given")
    return bytes(keys)


class DetachKeys:
    """Watches typed bytes for the detach sequence: bytes that may begin it are held back until it is clear
    whether they do (then they are dropped, and we detach) or not (then they are passed on), as Docker does."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """What to pass on now, and whether the sequence was typed (the rest of *data* is then dropped)."""
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                if candidate == self.keys:
                    self.held = b""
                    return bytes(out), True
                self.held = candidate
            else:
                out += candidate
                self.held = b""
        return bytes(out), False


def check_attachable(status: str, paused: bool) -> None:
    """Docker's refusals: only a running container has a monitor passing its stdio on."""
    from .errors import EngineError

    if paused:
        raise EngineError("You cannot attach to a paused container, unpause it first", 1)
    if status != "running":
        raise EngineError("You cannot attach to a stopped container, start it first", 1)


def output(sock: socket.socket, streams: bytes = STDOUT + STDERR) -> Iterator[bytes]:
    """What the container writes from now on, chunk by chunk, of *streams* (stdout "1", stderr "2"),
    until it closes its output (its end)."""
    while True:
        message = sock.recv(MAX_MESSAGE)
        if not message:
            return
        if message[:1] in streams:
            yield message[1:]
