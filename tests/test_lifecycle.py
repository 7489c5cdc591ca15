"""`start` runs a stopped container again, on the same writable layer, in the background."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from processes import logged

from pycontainers import container as c
from pycontainers import server
from pycontainers.cli import main
from pycontainers.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native runtime needs root")


def test_start_reruns_on_the_same_writable_layer(busybox_store: Store, monkeypatch: pytest.MonkeyPatch,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    script = "echo run >> /count; wc -l < /count"
    assert main(["run", "--name", "again", "busybox", "sh", "-c", script]) == 0
    assert capfd.readouterr().out.strip() == "1"
    assert main(["start", "again"]) == 0
    again = c.get_container(busybox_store, "again")
    assert c.wait(again, timeout=10) == 0
    # The file written by the first run is still there; the log has both runs' output, as Docker's does.
    assert logged(again).decode().split() == ["1", "2"]
    assert main(["rm", "again"]) == 0
    assert c.list_containers(busybox_store) == []


def _drive_tty(argv: list[str], keys: list[tuple[bytes | tuple[int, int], float | bytes]],
               env: dict[str, str]) -> tuple[bytes, int]:
    """Run *argv* on a pseudo-terminal of ours and type *keys*: each is bytes (or a new window size), then
    how long to read (seconds, or until the end of the output), or what to read until (bytes, 30 s at most:
    a loaded machine is slow, not wrong); the output and the exit code."""
    import fcntl
    import pty
    import select
    import struct
    import termios
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child only execs: nothing of pytest runs in it
        os.execve(argv[0], argv, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    out, ended = b"", False
    for data, until in keys:
        if isinstance(data, tuple):  # the kernel sends SIGWINCH to the terminal's foreground process
            fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", *data, 0, 0))
        elif data:
            os.write(fd, data)
        end = time.monotonic() + (30.0 if isinstance(until, bytes) else until)
        while not ended and time.monotonic() < end and not (isinstance(until, bytes) and until in out):
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    out += os.read(fd, 4096)
                except OSError:  # EIO: every process holding the terminal has ended
                    ended = True
        if isinstance(until, bytes):
            assert until in out, f"{until!r} never came; the output was {out!r}"
    end = time.monotonic() + 30
    while not (reaped := os.waitpid(pid, os.WNOHANG))[0]:
        if time.monotonic() > end:  # (a failure, not a hang: the CLI is told to stop as by a closed window)
            os.kill(pid, signal.SIGHUP)
            os.waitpid(pid, 0)
            raise AssertionError(f"{argv[1:]} did not end; the output was {out!r}")
        time.sleep(0.05)
    os.close(fd)
    return out, os.waitstatus_to_exitcode(reaped[1])


@pytest.mark.parametrize("through_server", [False, True], ids=["by-itself", "command-server"])
def test_run_it_gives_a_real_terminal_inside(busybox_store: Store, through_server: bool) -> None:
    cli = os.path.join(os.path.dirname(sys.executable), "pycontainers")
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": str(int(through_server))}
    if through_server:  # the first command starts it (pycontainers/server.py)
        subprocess.run([cli, "version"], env=env, check=True, capture_output=True)
        while server.running(env) is None:
            time.sleep(0.05)
    try:
        out, code = _drive_tty([cli, "run", "-it", "--rm", "busybox", "sh"],
                               [(b"", b"# "), (b"tty; stty size; echo m-$((1+1)); sleep 30\r", b"m-2"),
                                (b"\x03", 0.5), ((40, 120), 0.3),
                                (b"stty size; echo still here; exit 7\r", 30.0)], env)
    finally:
        server.stop(env)
    text = out.decode(errors="replace")
    assert "/dev/pts/0" in text  # the terminal lives in the container's own devpts
    assert "33 101" in text  # our window size reached it
    assert "40 120" in text  # and so did its change
    assert "still here" in text  # Ctrl-C stopped sleep, not the shell
    assert code == 7
    assert c.list_containers(busybox_store) == []


def test_keys_typed_before_the_container_is_ready_reach_it(busybox_store: Store) -> None:
    """`run -it` with keys typed at once, before the CLI made the terminal raw: they are not thrown away
    (tty.setraw's default, TCSAFLUSH, discarded them; Docker's CLI keeps them)."""
    cli = os.path.join(os.path.dirname(sys.executable), "pycontainers")
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
    out, code = _drive_tty([cli, "run", "-it", "--rm", "busybox", "sh"],
                           [(b"echo typed-$((2+3)); exit 5\r", 30.0)], env)
    assert b"typed-5" in out and code == 5


def test_a_terminal_session_is_logged_as_docker_logs_it(busybox_store: Store) -> None:
    """`run -t`: the session (as the terminal shows it, \\r\\n and all) is in `logs` afterwards."""
    cli = os.path.join(os.path.dirname(sys.executable), "pycontainers")
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
    out, code = _drive_tty([cli, "run", "-t", "--name", "session", "busybox", "sh", "-c", "echo hello; tty"],
                           [(b"", 30.0)], env)
    assert code == 0 and b"hello" in out and b"/dev/pts/0" in out  # (our own terminal adds a \r of its own)
    session = c.get_container(busybox_store, "session")
    assert logged(session) == b"hello\r\n/dev/pts/0\r\n"
    c.remove(session)


@pytest.mark.parametrize("how", ["cli", "api"])
def test_detached_with_a_terminal(busybox_store: Store, how: str, monkeypatch: pytest.MonkeyPatch,
                                  capfd: pytest.CaptureFixture[str]) -> None:
    """`run -dt` (and the API's tty=True, through a warm monitor): the monitor holds the terminal, made in
    the container's devpts, and logs what it shows; `-dit sh` waits on it, as under Docker."""
    from pycontainers.api import Client

    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    script = "tty; echo done"
    if how == "cli":
        assert main(["run", "-dt", "--name", "shown", "busybox", "sh", "-c", script]) == 0
        capfd.readouterr()
    else:
        Client(busybox_store.home).containers.run("busybox", ["sh", "-c", script], detach=True, tty=True,
                                                  name="shown")
    shown = c.get_container(busybox_store, "shown")
    assert c.wait(shown, timeout=10) == 0
    assert logged(shown) == b"/dev/pts/0\r\ndone\r\n"
    c.remove(shown)
    assert main(["run", "-dit", "--name", "waiting", "busybox", "sh"]) == 0
    waiting = c.get_container(busybox_store, "waiting")
    time.sleep(0.5)
    assert waiting.reload().status == "running"  # sh reads its terminal, which nobody writes to
    assert main(["exec", "waiting", "sh", "-c", "readlink /proc/1/fd/0"]) == 0
    assert capfd.readouterr().out.splitlines()[-1] == "/dev/pts/0"
    c.remove(waiting, force=True)
    assert c.list_containers(busybox_store) == []


@pytest.mark.parametrize("backend", ["rootless", "runc", "proot"])
def test_the_other_back_ends_give_a_terminal_too(busybox_store: Store, backend: str) -> None:
    """`-t` with the other back ends: attached, on a terminal of the CLI's (rootless: made in the container's
    devpts, as natively); detached, of the monitor's."""
    import shutil

    if backend != "rootless" and shutil.which(backend) is None:
        pytest.skip(f"{backend} is not installed")
    cli = os.path.join(os.path.dirname(sys.executable), "pycontainers")
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
    argv = [cli, "run", "-t", "--rm", "--runtime", backend, "busybox", "sh", "-c", "tty; exit 3"]
    out, code = _drive_tty(argv, [(b"", 30.0)], env)
    assert code == 3 and out.startswith(b"/dev/pts/0\r" if backend == "rootless" else b"/dev/pts/")
    detached = c.create_from_image(busybox_store, "busybox", ["sh", "-c", "tty; echo done"], runtime=backend,
                                   tty=True)
    from pycontainers import runtime

    assert runtime.start_detached(detached)["event"] == "started"
    assert c.wait(detached, timeout=10) == 0
    log = logged(detached)
    assert log.startswith(b"/dev/pts/") and log.endswith(b"\r\ndone\r\n")
    c.remove(detached)


@pytest.mark.parametrize("backend", ["native", "rootless", "runc"])
def test_the_api_runs_with_a_terminal(busybox_store: Store, backend: str) -> None:
    """docker-py's ``run(tty=True)``: the terminal's output, one stream with \\r\\n; logged unless removed."""
    from pycontainers.api import Client, ContainerError

    client = Client(busybox_store.home)
    out = client.containers.run("busybox", ["sh", "-c", "tty; echo hi"], tty=True, remove=True, runtime=backend)
    assert out == b"/dev/pts/0\r\nhi\r\n"
    kept = client.containers.run("busybox", ["sh", "-c", "echo kept"], tty=True, name="kept", runtime=backend)
    assert kept == b"kept\r\n" == client.containers.get("kept").logs()
    client.containers.get("kept").remove()
    with pytest.raises(ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "exit 4"], tty=True, remove=True, runtime=backend)
    assert failed.value.exit_status == 4
    assert c.list_containers(busybox_store) == []


def test_the_terminal_has_its_size_from_the_first_instant(busybox_store: Store) -> None:
    """The caller's window size waits on the console socket and PID 1 sets it on the terminal it makes:
    a command that looks at once (``stty size``) sees it (it saw 0 x 0 when the size came afterwards)."""
    cli = os.path.join(os.path.dirname(sys.executable), "pycontainers")
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
    for argv in (["run", "-it", "--rm", "busybox", "stty", "size"],
                 ["run", "-it", "--rm", "--runtime", "rootless", "busybox", "stty", "size"]):
        out, code = _drive_tty([cli, *argv], [(b"", 30.0)], env)
        assert (code, out) == (0, b"33 101\r\n")


@pytest.mark.parametrize("how", ["cli", "api"])
def test_detached_interactive_keeps_stdin_open(busybox_store: Store, how: str, monkeypatch: pytest.MonkeyPatch,
                                               capfd: pytest.CaptureFixture[str]) -> None:
    """`run -di busybox sh`: as under Docker, sh waits on a stdin that stays open (its monitor holds a pipe),
    instead of reading /dev/null's end of file and exiting at once."""
    from pycontainers.api import Client

    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    if how == "cli":
        assert main(["run", "-di", "--name", "listening", "busybox", "sh"]) == 0
    else:
        Client(busybox_store.home).containers.run("busybox", ["sh"], detach=True, interactive=True,
                                                  name="listening")
    listening = c.get_container(busybox_store, "listening")
    time.sleep(0.5)
    assert listening.reload().status == "running"
    capfd.readouterr()
    assert main(["exec", "listening", "sh", "-c", "readlink /proc/1/fd/0"]) == 0
    assert capfd.readouterr().out.strip().startswith("pipe:")
    c.remove(listening, force=True)
    assert main(["run", "-d", "--name", "deaf", "busybox", "sh"]) == 0  # without -i: stdin is empty, sh ends
    assert c.wait(c.get_container(busybox_store, "deaf"), timeout=10) == 0
    c.remove(c.get_container(busybox_store, "deaf"))


@pytest.mark.parametrize("backend", ["native", "rootless"])
def test_the_terminal_belongs_to_the_commands_user(busybox_store: Store, backend: str) -> None:
    """run -t -u nobody: nobody may write to its own terminal (it was root's: Permission denied)."""
    cli = os.path.join(os.path.dirname(sys.executable), "pycontainers")
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
    argv = [cli, "run", "--rm", "-t", "-u", "nobody", "--runtime", backend, "busybox", "sh", "-c",
            "stat -c %U $(tty); echo written > $(tty)"]
    out, code = _drive_tty(argv, [(b"", 30.0)], env)
    assert code == 0 and out.replace(b"\r", b"") == b"nobody\nwritten\n"  # (our own terminal adds \r's)


def test_ctrl_c_reaches_a_t_container_without_i(busybox_store: Store) -> None:
    """run -t without -i: the terminal is not raw, so Ctrl-C is a signal to the CLI, which passes it on (as
    Docker's sig-proxy); it ended the CLI and left the container running."""
    cli = os.path.join(os.path.dirname(sys.executable), "pycontainers")
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
    script = 'trap "echo got INT; exit 7" INT; echo ready; sleep 20 & wait'
    out, code = _drive_tty([cli, "run", "--rm", "-t", "busybox", "sh", "-c", script],
                           [(b"", b"ready"), (b"\x03", 30.0)], env)
    assert code == 7 and b"got INT" in out
    assert c.list_containers(busybox_store) == []
