"""``attach``: a running container's stdio joined through its monitor's socket (``attach.py``), from the CLI
(with a pseudo-terminal for ``-it`` containers) and the API."""

from __future__ import annotations

import contextlib
import os
import pty
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from processes import wait_for

from pycontainers import attach
from pycontainers.api import Client
from pycontainers.errors import EngineError, InvalidArgument
from pycontainers.store import Store

PYCONTAINERS = str(Path(sys.executable).with_name("pycontainers"))


def command(store: Store, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYCONTAINERS_HOME": str(store.home)}
    return subprocess.run([PYCONTAINERS, *args], env=env, capture_output=True, text=True, timeout=60, **kwargs)


def test_detach_keys_are_docker_s() -> None:
    assert attach.parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert attach.parse_detach_keys("a,ctrl-@,ctrl-[") == b"a\x00\x1b"
    for bad in ("ctrl-", "ctrl-1", "shift-a", ""):
        with pytest.raises(ValueError, match="invalid detach keys"):
            attach.parse_detach_keys(bad)
    keys = attach.DetachKeys(b"\x10\x11")
    assert keys.feed(b"ab\x10") == (b"ab", False)  # the ctrl-p is held back...
    assert keys.feed(b"c") == (b"\x10c", False)  # ...and given back when no ctrl-q follows
    assert keys.feed(b"x\x10\x11ignored") == (b"x", True)


def test_attach_shows_what_comes_and_ends_with_the_containers_exit_code(client: Client) -> None:
    script = "sleep 0.5; for i in 1 2 3; do echo out $i; echo err $i >&2; done; exit 3"
    client.containers.run("busybox", ["sh", "-c", script], detach=True, name="talker")
    r = command(client.store, "attach", "talker")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out 1\nout 2\nout 3\n", "err 1\nerr 2\nerr 3\n")


def test_a_container_with_stdin_gets_what_is_piped_to_attach(client: Client) -> None:
    k = client.containers.run("busybox", ["sh", "-c", "read line; echo got $line"], detach=True, stdin_open=True)
    r = command(client.store, "attach", k.id, input="hello\n")
    assert (r.returncode, r.stdout) == (0, "got hello\n")
    k2 = client.containers.run("busybox", ["sh", "-c", "read line; echo got $line"], detach=True, stdin_open=True)
    threading.Timer(1.5, k2.kill).start()
    r = command(client.store, "attach", "--no-stdin", k2.id, input="hello\n")
    assert (r.returncode, r.stdout) == (137, "")  # nothing typed reached it: it waited until killed


def test_attach_to_a_terminal_types_resizes_and_detaches_with_ctrl_p_ctrl_q(client: Client) -> None:
    client.containers.run("busybox", ["sh"], detach=True, tty=True, stdin_open=True, name="shell")
    env = {**os.environ, "PYCONTAINERS_HOME": str(client.store.home)}
    pid, fd = pty.fork()
    if pid == 0:  # (the child execs at once: no Python runs in it)
        os.execve(PYCONTAINERS, [PYCONTAINERS, "attach", "shell"], env)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    seen = b""

    def until(pattern: bytes, timeout: float = 10) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout
        while pattern not in seen and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.1)[0]:
                try:
                    seen += os.read(fd, 4096)
                except OSError:
                    break
        assert pattern in seen, seen

    try:
        time.sleep(0.5)  # (attached: its window size sent)
        os.write(fd, b"echo $((6*7)) $TERM; stty size\r")
        until(b"42 xterm")
        until(b"33 111")  # the terminal inside has our window's size
        os.write(fd, b"\x10\x11")
        until(b"read escape sequence")
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 1  # Docker's exit code for a detach
    assert client.containers.get("shell").status == "running"  # detached, not stopped
    assert b"42 xterm" in client.containers.get("shell").logs()  # the session is in its log too


def test_the_api_streams_what_comes_and_with_logs_what_came_before(client: Client) -> None:
    k = client.containers.run("busybox", ["sh", "-c", "echo before; sleep 1; echo after; echo oops >&2"],
                              detach=True)
    time.sleep(0.5)
    assert k.attach(logs=True) == b"before\nafter\noops\n"
    k2 = client.containers.run("busybox", ["sh", "-c", "sleep 0.5; echo a; echo b >&2"], detach=True)
    assert b"".join(k2.attach(stream=True, stderr=False)) == b"a\n"


def test_two_clients_see_the_same_output(client: Client) -> None:
    k = client.containers.run("busybox", ["sh", "-c", "sleep 1; seq 1 3"], detach=True)
    outputs: list[bytes] = []
    threads = [threading.Thread(target=lambda: outputs.append(k.attach())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert outputs == [b"1\n2\n3\n"] * 2


def test_only_a_running_container_s_monitor_can_be_attached_to(client: Client, cli: Any) -> None:
    done = client.containers.run("busybox", ["true"], detach=True)
    done.wait()
    with pytest.raises(EngineError, match="You cannot attach to a stopped container, start it first"):
        done.attach()
    assert cli("attach", done.id) == (1, "", "Error: You cannot attach to a stopped container, start it first\n")
    paused = client.containers.run("busybox", ["sleep", "30"], detach=True)
    paused.pause()
    assert cli("attach", paused.id)[2] == "Error: You cannot attach to a paused container, unpause it first\n"
    paused.unpause()
    with pytest.raises(InvalidArgument, match="demux"):
        paused.attach(demux=True)
    code, _, err = cli("attach", "--detach-keys", "ctrl-1", paused.id)
    assert code == 125 and "invalid detach keys" in err
    # run --rm in the foreground: its output goes straight to its terminal, and no monitor keeps it
    env = {**os.environ, "PYCONTAINERS_HOME": str(client.store.home)}
    fg = subprocess.Popen([PYCONTAINERS, "run", "--rm", "--name", "fg", "busybox", "sleep", "5"], env=env)
    try:
        wait_for(lambda: any(c.name == "fg" and c.status == "running" for c in client.containers.list()),
                 "the foreground container")
        code, _, err = cli("attach", "fg")
        assert code == 1 and "cannot attach to container fg" in err
    finally:
        fg.kill()
        fg.wait()


def test_a_client_that_does_not_read_is_let_go_and_the_monitor_goes_on(tmp_path: Path) -> None:
    """``send`` never waits for a client: one whose buffer is full is dropped, the one that reads gets it all."""
    point = attach.AttachPoint(tmp_path)
    lazy = attach.connect(tmp_path, "x")
    eager = attach.connect(tmp_path, "x")
    assert point.accept() is not None and point.accept() is not None
    eager.setblocking(False)
    lazy.setblocking(False)

    def drain(sock: socket.socket) -> int:
        count = 0
        with contextlib.suppress(BlockingIOError):
            while sock.recv(attach.MAX_MESSAGE):
                count += 1
        return count

    sent = 2000  # 8 MB: far more than a socket buffer holds
    eager_got = 0
    for _ in range(sent):
        point.send(attach.STDOUT, b"x" * 4096)
        eager_got += drain(eager)
    assert len(point.clients) == 1 and eager_got == sent  # the reader kept, and given every message
    assert 0 < drain(lazy) < sent  # the other one got what its buffer held, then was let go
    point.close()
    assert not (tmp_path / attach.SOCKET_NAME).exists()
