"""The CLI's command server (pycontainers/server.py): the same commands, run by a warm engine.

Every test runs the real console script as a separate process, as a user types it, against a store of
its own; the server each test starts is stopped at its end, and nothing of it may be left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import unprivileged
from processes import wait_for

from pycontainers import server, warm
from pycontainers.container import get_container, list_containers, remove
from pycontainers.store import Store

pytestmark = pytest.mark.skipif(not warm.available(), reason="these tests start containers as root")

PYCONTAINERS = str(Path(sys.executable).with_name("pycontainers"))  # the console script: server.main




def stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()


def alive(pid: int) -> bool:
    """Running (a zombie its new parent has not reaped yet counts as gone)."""
    try:
        return stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def children(pid: int, name: str | None = None) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(stat_fields(int(entry))[1]) == pid and alive(int(entry)) and (
                        name is None or Path(f"/proc/{entry}/comm").read_text().strip() == name):
                    out.append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    return out


def intruder(address: bytes) -> str:
    """Python code that connects to *address*, sends a request with its stdio, and prints the answer
    ("closed" when the server hangs up without one)."""
    return f"""
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect({address!r})
s.settimeout(10)
try:
    socket.send_fds(s, [b"anything"], [0, 1, 2])
    print(s.recv(64).decode() or "closed")
except (BrokenPipeError, ConnectionResetError):  # hung up on at once
    print("closed")
"""


def worker_writing_to(server_pid: int, pipe_fd: int) -> int:
    """The server's worker whose stdout is the pipe we read through *pipe_fd* (not its spare)."""
    pipe = f"pipe:[{os.fstat(pipe_fd).st_ino}]"
    found = [w for w in children(server_pid, "pyc-cli") if os.readlink(f"/proc/{w}/fd/1") == pipe]
    assert len(found) == 1, found
    return found[0]


class Shell:
    """Runs ``pycontainers`` commands with an environment that selects one store and allows a server."""

    def __init__(self, home: Path, **extra: str) -> None:
        self.env = {**os.environ, "PYCONTAINERS_HOME": str(home), "PYCONTAINERS_SERVER": "1",
                    "PYCONTAINERS_SERVER_IDLE": "120", **extra}

    def __call__(self, *args: str, input: str | None = None, cwd: Path | None = None,
                 ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYCONTAINERS, *args], env=self.env, input=input, cwd=cwd, capture_output=True,
                              text=True, timeout=60, check=False)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([PYCONTAINERS, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, text=True)

    def server(self) -> int | None:
        return server.running(self.env)

    def started_server(self) -> int:
        """The first command finds no server: it runs by itself and starts one."""
        assert self.server() is None
        assert self("version").returncode == 0
        return wait_for(self.server, "the command server to start")


@pytest.fixture
def shell(busybox_store: Store) -> Iterator[Shell]:
    sh = Shell(busybox_store.home)
    yield sh
    pid = server.stop(sh.env)
    for c in list_containers(busybox_store):
        remove(c, force=True)
    if pid is not None:
        wait_for(lambda: not alive(pid), "the server to exit")
        wait_for(lambda: not any(f"/{warm.PREFIX}" in d for d in _warm_cgroups_of(pid)), "its warm cgroups to go")


def _warm_cgroups_of(server_pid: int) -> list[str]:
    """The warm cgroups whose monitor is a child of *server_pid* (or whose monitor is gone)."""
    from pycontainers.cgroup import Cgroup

    found = []
    for parent in {d.parent for d in Cgroup("any").dirs.values()}:
        for d in parent.glob(f"{warm.PREFIX}*") if parent.exists() else []:
            pid = int(d.name[len(warm.PREFIX):].partition(".")[0])
            try:
                if int(stat_fields(pid)[1]) == server_pid:
                    found.append(str(d))
            except OSError:
                continue
    return found


def test_commands_run_in_the_server_and_answer_as_the_cli_does(shell: Shell) -> None:
    pid = shell.started_server()
    r = shell("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = shell("run", "--rm", "busybox", "nosuch")
    assert r.returncode == 127 and '"nosuch": executable file not found' in r.stderr
    r = shell("run", "--no-such-flag", "busybox")
    assert r.returncode == 125 and "unknown flag: --no-such-flag" in r.stderr
    r = shell("--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: pycontainers")
    assert shell("run", "-i", "--rm", "busybox", "cat", input="typed in\n").stdout == "typed in\n"
    assert shell.server() == pid  # one server answered all of them


def test_a_servers_containers_start_from_its_warm_monitors(shell: Shell, busybox_store: Store) -> None:
    pid = shell.started_server()
    shell("run", "--rm", "busybox", "true")  # the server makes its warm monitors
    r = shell("run", "-d", "--name", "bg", "busybox", "sleep", "30")
    assert r.returncode == 0, r.stderr
    state = get_container(busybox_store, "bg").state
    assert int(stat_fields(int(state["monitor_pid"]))[1]) == pid  # a warm monitor: a child of the server
    assert state["cgroup"].startswith(warm.PREFIX)
    assert shell("rm", "-f", "bg").returncode == 0


def test_containers_of_a_server_start_with_no_signal_ignored(shell: Shell) -> None:
    """The server is started with posix_spawn, whose child ignores glibc's own signals (32 and 33) before
    execve; the containers it starts, warm or cold, must not inherit that."""
    shell.started_server()
    grep = ["busybox", "grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"]
    for options in ([], ["--memory", "64m"], []):  # warm (the monitors are made by the first), cold, warm
        r = shell("run", "--rm", *options, *grep)
        assert (r.returncode, r.stdout) == (0, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"), r.stderr


def test_the_command_gets_the_callers_directory_environment_and_umask(shell: Shell, tmp_path: Path) -> None:
    shell.started_server()
    (tmp_path / "vars.list").write_text("FROM_FILE=file\n")
    shell.env["FROM_CALLER"] = "caller"
    r = shell("run", "--rm", "--env-file", "vars.list", "-e", "FROM_CALLER", "busybox", "sh", "-c",
              "echo $FROM_FILE $FROM_CALLER", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (0, "file caller\n"), r.stderr
    r = subprocess.run(["sh", "-c", f"umask 077 && {PYCONTAINERS} volume create private && "
                                    f"stat -c %a $PYCONTAINERS_HOME/volumes/private"],
                       env=shell.env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    plain = subprocess.run(["sh", "-c", "umask 077 && mkdir d && stat -c %a d"], cwd=tmp_path,
                           capture_output=True, text=True, check=True)
    assert r.stdout.split()[-1] == plain.stdout.strip()


def test_signals_go_to_the_command_and_on_to_the_container(shell: Shell, busybox_store: Store) -> None:
    shell.started_server()
    proc = shell.popen("run", "--rm", "--name", "trapper", "busybox", "sh", "-c",
                       "trap 'echo got TERM; exit 7' TERM; echo ready; sleep 30 & wait")
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)  # the client passes it to its worker, which passes it to PID 1
    out, _ = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (7, "got TERM\n")


def test_a_killed_client_takes_its_command_with_it(shell: Shell) -> None:
    pid = shell.started_server()
    proc = shell.popen("run", "--rm", "--name", "orphan", "busybox", "sh", "-c", "echo ready; sleep 30")
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    worker = worker_writing_to(pid, proc.stdout.fileno())
    proc.kill()
    proc.wait()
    wait_for(lambda: not alive(worker), "the worker to be killed")
    # As when an in-process CLI is killed: the container itself runs on, until `rm -f`.
    assert shell("rm", "-f", "orphan").returncode == 0


def test_a_killed_clients_build_is_cancelled_and_leaves_no_container(shell: Shell, tmp_path: Path) -> None:
    """As Docker's daemon cancels the build of a client that went away: its RUN step's container goes too."""
    pid = shell.started_server()
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo step running; sleep 30\nRUN touch /never\n")
    proc = subprocess.Popen([PYCONTAINERS, "build", "--progress", "plain", "-t", "cancelled", str(tmp_path)],
                            env=shell.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None
    while "step running" not in (line := proc.stdout.readline()):
        assert line, "the build ended before its RUN step ran"
    worker = worker_writing_to(pid, proc.stdout.fileno())
    assert shell("ps", "-aq").stdout.strip() != ""  # the step's container
    proc.kill()
    proc.wait()
    wait_for(lambda: not alive(worker), "the build's worker to end", timeout=20)
    assert shell("ps", "-aq").stdout == ""  # killed and removed, not left for `container prune`
    assert shell("images", "-q", "cancelled").stdout == ""


def test_the_server_may_die_while_a_command_runs(shell: Shell) -> None:
    pid = shell.started_server()
    proc = shell.popen("run", "--rm", "busybox", "sh", "-c", "echo ready; sleep 1; exit 4")
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=20) == 4  # the worker reports its exit code itself
    wait_for(lambda: not alive(pid), "the server to exit")
    assert shell("version").returncode == 0  # runs by itself, and starts a new server
    assert wait_for(shell.server, "a new server") != pid


def test_a_server_with_older_code_steps_down(shell: Shell) -> None:
    pid = shell.started_server()
    source = Path(server.__file__).with_name("errors.py")
    before = source.stat()
    try:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # "an upgrade"
        r = shell("run", "--rm", "busybox", "echo", "still runs")
        assert (r.returncode, r.stdout) == (0, "still runs\n")
        wait_for(lambda: not alive(pid), "the old server to exit")
    finally:
        os.utime(source, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_an_idle_server_exits_and_takes_its_warm_monitors_along(busybox_store: Store) -> None:
    shell = Shell(busybox_store.home, PYCONTAINERS_SERVER_IDLE="3")
    pid = shell.started_server()
    assert shell("run", "--rm", "busybox", "true").returncode == 0
    # Look at its helpers while a command runs: the idle clock only starts when none does.
    running = shell.popen("run", "--rm", "busybox", "sh", "-c", "echo ready; sleep 3")
    assert running.stdout is not None and running.stdout.readline() == "ready\n"
    monitors = wait_for(lambda: children(pid, "pyc-warm"), "the warm monitors")
    spares = wait_for(lambda: children(pid, "pyc-cli"), "the next command's worker, forked ahead")
    assert running.wait(timeout=30) == 0
    running.stdout.close()
    running.stderr.close()  # type: ignore[union-attr]
    wait_for(lambda: not alive(pid), "the idle server to exit")
    wait_for(lambda: not any(alive(m) for m in monitors), "its warm monitors to exit")
    wait_for(lambda: not any(alive(w) for w in spares), "its spare worker to exit")
    wait_for(lambda: not _warm_cgroups_of(pid), "their cgroups to be removed")


def test_without_a_server(busybox_store: Store) -> None:
    shell = Shell(busybox_store.home, PYCONTAINERS_SERVER="0")
    assert shell("run", "--rm", "busybox", "echo", "alone").stdout == "alone\n"
    time.sleep(0.5)
    assert shell.server() is None


def test_a_closed_stdin_is_no_reason_to_fail(shell: Shell) -> None:
    shell.started_server()
    r = subprocess.run(["sh", "-c", f"exec 0<&-; {PYCONTAINERS} run --rm busybox echo fine"], env=shell.env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert (r.returncode, r.stdout) == (0, "fine\n"), r.stderr


@pytest.mark.skipif(unprivileged.why_not() is not None, reason=str(unprivileged.why_not()))
def test_another_user_cannot_use_the_server(shell: Shell) -> None:
    shell.started_server()
    address = server.server_address(server.server_key(shell.env))  # root's server
    student = unprivileged.make_student()
    try:
        r = student.script(intruder(address))
    finally:
        student.close()
    assert r.stdout.strip() == "closed", r.stderr  # without a word: no worker was started


@pytest.mark.skipif(unprivileged.why_not() is not None, reason=str(unprivileged.why_not()))
def test_a_students_commands_go_through_a_server_of_their_own() -> None:
    """Without root (rootless back end): the server is the student's, its containers start warm in a user
    namespace, and stopping it leaves nothing of the student's running."""
    command = ("import sys; from pycontainers.server import main; "
               "sys.argv = ['pycontainers', *sys.argv[1:]]; sys.exit(main())")
    with unprivileged.student_with_busybox() as student:
        env = {"PYCONTAINERS_SERVER": "1"}
        first = student.python_run(["-c", command, "version"], env=env)
        assert first.returncode == 0, first.stderr
        ask = "from pycontainers import server; print(server.running())"
        server_pid = wait_for(lambda: student.script(ask).stdout.strip() != "None" and student.script(ask).stdout,
                              "the student's server")
        for _ in range(3):
            r = student.python_run(["-c", command, "run", "--rm", "busybox", "sh", "-c", "id -u; exit 5"], env=env)
            assert (r.returncode, r.stdout) == (5, "0\n"), r.stderr
        assert student.script(ask).stdout == server_pid  # the same server answered
        pid = int(server_pid)
        assert os.stat(f"/proc/{pid}").st_uid == student.uid  # the student's own process, not root's
        assert student.script("from pycontainers import server; print(server.stop())").stdout.strip() == str(pid)
        wait_for(lambda: not alive(pid), "the student's server to exit")
        wait_for(lambda: not student.processes(), "the student's processes to exit")


def test_a_container_on_the_hosts_network_cannot_use_the_server(shell: Shell, busybox_store: Store) -> None:
    """CVE-2020-15257's lesson: an abstract socket is reachable from `--network host` containers."""
    from pycontainers.bases import PYTHON_TAG, cache_store, copy_image
    from pycontainers.image import get_image

    cache = cache_store()
    copy_image(cache, get_image(cache, PYTHON_TAG), busybox_store)
    shell.started_server()
    address = server.server_address(server.server_key(shell.env))
    r = shell("run", "--rm", "--network", "host", PYTHON_TAG, "python3", "-c", intruder(address))
    assert (r.returncode, r.stdout) == (0, "closed\n"), r.stderr  # root in the container, but not served


@pytest.mark.parametrize("message", [b"not marshal", b"\xe9", "marshal of the wrong shape"],
                         ids=["garbage", "truncated", "wrong-shape"])
def test_a_bad_request_is_refused_and_its_descriptors_closed(shell: Shell, message: bytes | str) -> None:
    import marshal
    import select
    import socket

    shell.started_server()
    if isinstance(message, str):
        message = marshal.dumps({"argv": ["pycontainers"], "key": server.server_key(shell.env)})  # no cwd...
    read_end, write_end = os.pipe()
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.connect(server.server_address(server.server_key(shell.env)))
        s.settimeout(10)
        socket.send_fds(s, [message], [write_end] * 3)
        os.close(write_end)
        assert s.recv(64) in (b"bad request", b"")  # refused, and no worker
    # The server kept no copy of the pipe's write end: the pipe reads as closed.
    assert select.select([read_end], [], [], 10)[0] and os.read(read_end, 1) == b""
    os.close(read_end)
    assert shell("run", "--rm", "busybox", "echo", "still serving").stdout == "still serving\n"


def test_a_client_that_gives_up_never_sees_its_command_run(shell: Shell) -> None:
    """The worker waits for the client's "go": a client that timed out runs the command itself, once."""
    import marshal
    import socket

    shell.started_server()
    request = marshal.dumps({"argv": [PYCONTAINERS, "volume", "create", "ghost"], "cwd": "/", "env": shell.env,
                             "umask": 0o022, "ignored": [], "key": server.server_key(shell.env),
                             "stamp": server.code_stamp()})
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s, open(os.devnull, "r+b") as null:
        s.connect(server.server_address(server.server_key(shell.env)))
        s.settimeout(10)
        socket.send_fds(s, [request], [null.fileno()] * 3)
        answer = s.recv(64).decode()
        assert answer.startswith("started ")
        worker = int(answer.split()[1])
    wait_for(lambda: not alive(worker), "the worker to give up")
    assert "ghost" not in shell("volume", "ls", "-q").stdout.split()


def test_a_client_trusts_no_server_inside_a_container(shell: Shell, busybox_store: Store, tmp_path: Path) -> None:
    """A container on the host's network can bind the name of a server that is not running: the command
    must see it is not ours and send it nothing (neither its environment nor its terminal)."""
    from pycontainers.bases import PYTHON_TAG, cache_store, copy_image
    from pycontainers.image import get_image

    cache = cache_store()
    copy_image(cache, get_image(cache, PYTHON_TAG), busybox_store)
    other = {**shell.env, "PYCONTAINERS_HOME": str(tmp_path / "other-store")}
    fake = f"""
import socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.bind({server.server_address(server.server_key(other))!r})
s.listen()
print("listening", flush=True)
c, _ = s.accept()
c.settimeout(5)
try:
    print("received", repr(c.recv(65536)), flush=True)
except TimeoutError:
    print("received nothing in 5 s", flush=True)
"""
    assert shell("run", "-d", "--name", "impostor", "--network", "host", PYTHON_TAG, "python3", "-c",
                 fake).returncode == 0
    wait_for(lambda: "listening" in shell("logs", "impostor").stdout, "the impostor to listen")
    r = subprocess.run([PYCONTAINERS, "version"], env=other, capture_output=True, text=True, timeout=60,
                       check=False)
    assert (r.returncode, r.stdout) == (0, "pycontainers version 0.1.0\n")  # ran by itself
    assert wait_for(lambda: "received" in (log := shell("logs", "impostor").stdout) and log,
                    "the impostor's verdict").splitlines()[-1] == "received b''"


def test_signals_the_caller_ignores_stay_ignored(shell: Shell) -> None:
    shell.started_server()
    proc = subprocess.Popen(["sh", "-c", f"trap '' INT; exec {PYCONTAINERS} run --rm busybox sh -c "
                                         "'echo ready; sleep 1; echo done'"],
                            env=shell.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)  # like Ctrl-C to a background job of a script: not for it
    out, err = proc.communicate(timeout=20)
    assert (proc.returncode, out) == (0, "done\n"), err


def test_a_closed_stdout_is_no_reason_to_fail(shell: Shell) -> None:
    shell.started_server()
    r = subprocess.run(["sh", "-c", f"exec 1>&-; {PYCONTAINERS} version; echo $? >&2"], env=shell.env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.stderr == "0\n"


def test_a_large_environment_reaches_the_container(shell: Shell) -> None:
    shell.started_server()
    r = shell("run", "--rm", "-e", "BIG=" + "x" * 70000, "busybox", "sh", "-c", "echo ${#BIG}")
    assert (r.returncode, r.stdout) == (0, "70000\n"), r.stderr


def test_a_peer_gone_since_it_connected_is_refused_even_if_its_pid_now_looks_ours(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SO_PEERCRED gives a PID, which may belong to another process by the time /proc is read; where the kernel
    gives a pidfd of the peer (SO_PEERPIDFD), a peer that has exited is refused."""
    import socket

    address = b"\0pycontainers-test-peer-%d" % os.getpid()
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as listener:
        listener.bind(address)
        listener.listen(1)
        subprocess.run([sys.executable, "-c", "import socket, sys; socket.socket(socket.AF_UNIX, "
                        f"socket.SOCK_SEQPACKET).connect({address!r})"], check=True)  # connects, then exits
        conn, _ = listener.accept()
        with conn:
            try:
                os.close(conn.getsockopt(socket.SOL_SOCKET, 77))
            except OSError as exc:
                if exc.errno == 92:  # ENOPROTOOPT (ESRCH or EINVAL: the peer is gone, which the check sees too)
                    pytest.skip(f"no SO_PEERPIDFD on this kernel ({exc.strerror})")
            monkeypatch.setattr(server, "_peer", lambda sock: (os.getpid(), os.getuid()))  # "its PID, now ours"
            assert server.same_standing(os.getpid())
            assert server.our_peer(conn) is None
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # a peer alive (ourselves): accepted
        with a, b:
            assert server.our_peer(a) == os.getpid()


def test_a_confined_caller_is_not_served(shell: Shell) -> None:
    """Without capabilities (or under no_new_privs) a command must not get the server's."""
    shell.started_server()
    confined_env = {**shell.env, "PYCONTAINERS_SERVER_IDLE": "0"}  # (nor may it leave a confined server behind)
    r = subprocess.run(["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", PYCONTAINERS,
                        "run", "--rm", "-v", "/etc:/hostetc", "busybox", "head", "-1", "/hostetc/shadow"],
                       env=confined_env, capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode != 0 and "root:" not in r.stdout


def test_the_server_stays_single_threaded_in_the_root_directory(shell: Shell, tmp_path: Path) -> None:
    """Workers and monitors are forked from it, so it must have one thread, even after a build (whose
    Dockerfile parser is a Go library with threads of its own); and it holds no caller's directory."""
    pid = shell.started_server()
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo built > /f\n")
    r = shell("build", "-q", "-t", "threads-test", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert shell("run", "--rm", "threads-test", "cat", "/f").stdout == "built\n"
    assert len(os.listdir(f"/proc/{pid}/task")) == 1
    assert os.readlink(f"/proc/{pid}/cwd") == "/"


def test_a_container_state_too_large_for_a_message_still_starts(shell: Shell, tmp_path: Path) -> None:
    shell.started_server()
    (tmp_path / "big.env").write_text("".join(f"{name}={name.lower() * 90000}\n" for name in "ABC"))
    r = shell("run", "--rm", "--env-file", str(tmp_path / "big.env"), "busybox", "sh", "-c", "echo ${#B}")
    assert (r.returncode, r.stdout) == (0, "90000\n"), r.stderr


def test_connections_that_say_nothing_do_not_stop_commands(shell: Shell) -> None:
    import socket

    pid = shell.started_server()
    idle = []
    try:
        for _ in range(100):  # more than the server waits for at once
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.connect(server.server_address(server.server_key(shell.env)))
            idle.append(s)
        r = shell("run", "--rm", "busybox", "echo", "still fine")
        assert (r.returncode, r.stdout) == (0, "still fine\n"), r.stderr
    finally:
        for s in idle:
            s.close()
    assert alive(pid)
    time.sleep(0.5)  # the server reads the closed ones' ends and frees their places
    assert shell("run", "--rm", "busybox", "true").returncode == 0  # (the server makes warm monitors)
    r = shell("run", "-d", "--name", "served", "busybox", "sleep", "30")
    assert r.returncode == 0, r.stderr
    monitor = get_container(Store(Path(shell.env["PYCONTAINERS_HOME"])), "served").state["monitor_pid"]
    assert int(stat_fields(int(monitor))[1]) == pid  # started by the server (a warm monitor of its own)


def test_without_proc_the_command_runs_by_itself(shell: Shell) -> None:
    """No /proc (a bare chroot, a sandbox): no way to tell a server is ours, so the command runs alone."""
    shell.started_server()
    r = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                        f"umount -l /proc && {PYCONTAINERS} version"],
                       env=shell.env, capture_output=True, text=True, timeout=60, check=False)
    assert (r.returncode, r.stdout) == (0, "pycontainers version 0.1.0\n"), r.stderr


def test_kill_takes_this_stores_server_and_its_commands_only(shell: Shell, tmp_path: Path) -> None:
    """``server.kill`` (notebook 05's crash): this store's server and the commands it runs, SIGKILLed; a
    detached container goes on, and another store's server is left alone (``pkill pyc-server`` is not)."""
    other = Shell(tmp_path / "other-store")
    other_pid = other.started_server()
    pid = shell.started_server()
    assert shell("run", "-d", "--name", "web", "busybox", "sleep", "60").returncode == 0
    running_command = shell.popen("run", "--rm", "busybox", "sleep", "60")
    wait_for(lambda: [c.status for c in list_containers(Store(shell.env["PYCONTAINERS_HOME"]))] == ["running"] * 2,
             "the command's container to run (not only to exist: a start cut short by the kill would end it)")
    commands = children(pid, "pyc-cli")
    killed = server.kill(shell.env)
    assert killed[0] == pid and set(commands) <= set(killed)
    assert running_command.wait(timeout=15) != 0  # its command died with the server: the client says so
    wait_for(lambda: not alive(pid), "the server to die")
    assert shell.server() is None and alive(other_pid) and other.server() == other_pid
    # Both containers go on (as Docker's when the CLI or dockerd dies during `docker run --rm`).
    assert shell("ps", "--format", "{{.State}}").stdout.split() == ["running", "running"]
    assert server.stop(other.env) == other_pid
