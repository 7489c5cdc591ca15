"""The native runtime, end to end: real containers (namespaces, overlayfs, pivot_root, cgroups) from busybox.

Every test works on a store of its own (``busybox_store``); the CLI runs in-process (``main``, output through
``capfd``) or, where real file descriptors and exit statuses matter, as the console script in a subprocess.
An autouse fixture force-removes whatever a test leaves, and a module fixture checks at the end that no
container directory, cgroup, mount or process of these tests remains on the machine.

Tests marked ``xfail(strict=True)`` assert Docker's behaviour where the engine differs today: each one is an
engine bug, explained in its ``reason``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import container_entries, containers_left, logged, wait_for

from pycontainers import spec as spec_module
from pycontainers.api import Client, ContainerError
from pycontainers.cgroup import Cgroup
from pycontainers.cli import main
from pycontainers.container import (
    cgroup_of,
    containers_dir,
    get_container,
    list_containers,
    pid_alive,
    process_start_time,
    remove,
    top,
)
from pycontainers.container import processes as container_processes
from pycontainers.errors import PyContainersError
from pycontainers.image import ImageBuilder
from pycontainers.spec import DEFAULT_PATH
from pycontainers.store import Store
from pycontainers.zygote import Zygote

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0,
                       reason="the native runtime needs root (namespaces, mounts, pivot_root, cgroups)"),
    pytest.mark.timeout(120),
]

PYC = str(Path(sys.executable).with_name("pycontainers"))
HEX64 = re.compile(r"^[0-9a-f]{64}$")
DOCKER_CAPS = "00000000a80425fb"  # Docker's default capability set (moby oci/caps/defaults.go)
Run = Callable[..., tuple[int, str, str]]


# ------------------------------------------------------------------------------------------ helpers




CGROUP_NAMES: dict[str, str] = {}
"""Container ID -> its cgroup's name, for containers that started warm (state.json's ``cgroup``), as seen."""


def cgroup_dirs_of(cid: str) -> list[str]:
    """Every cgroup directory a container may own, whichever the layout (v1, v2, hybrid): named after its ID,
    or after the warm monitor it started from (pycontainers/warm.py)."""
    found = []
    for name in {cid, CGROUP_NAMES.get(cid, cid)}:
        found += glob.glob(f"/sys/fs/cgroup/*/pycontainers/{name}") + glob.glob(f"/sys/fs/cgroup/pycontainers/{name}")
    return found


def used_warm_cgroups() -> list[str]:
    """``warm-<PID>`` cgroups whose monitor no longer waits for a container: one that took a container must
    go with it (a waiting one belongs to a live zygote)."""
    left = []
    for d in glob.glob("/sys/fs/cgroup/*/pycontainers/warm-*") + glob.glob("/sys/fs/cgroup/pycontainers/warm-*"):
        pid = d.rpartition("/warm-")[2].partition(".")[0]
        if _read(f"/proc/{pid}/comm").strip() != b"pyc-warm":
            left.append(d)
    return left


def cgroup_parents() -> list[Path]:
    return sorted({d.parent for d in Cgroup("probe").dirs.values()})


def cgroup_entries() -> set[str]:
    """``<tree>/<id>`` for every container cgroup under the pycontainers parents (of every user)."""
    out = set()
    for parent in cgroup_parents():
        with contextlib.suppress(FileNotFoundError):
            out |= {f"{parent.parent.name}/{d.name}" for d in parent.iterdir() if d.is_dir()}
    return out


def mountinfo() -> list[str]:
    return Path("/proc/self/mountinfo").read_text().splitlines()


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def processes() -> Iterator[int]:
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, session, ...]."""
    return _read(f"/proc/{pid}/stat").decode(errors="replace").rpartition(")")[2].split()


def children_of(pid: int) -> set[tuple[int, int | None]]:
    """(pid, start time) of this process's children, read from /proc/*/stat (no psutil)."""
    out = set()
    for p in processes():
        fields = stat_fields(p)
        if len(fields) > 1 and int(fields[1]) == pid:
            out.add((p, process_start_time(p)))
    return out


def processes_mentioning(text: str) -> list[str]:
    """Processes whose command line or environment contains *text*."""
    found = []
    needle = text.encode()
    for p in processes():
        if p == os.getpid():
            continue
        cmdline = _read(f"/proc/{p}/cmdline")
        if needle in cmdline or needle in _read(f"/proc/{p}/environ"):
            shown = cmdline.replace(b"\0", b" ").decode(errors="replace")[:200]
            found.append(f"{p}: {shown}")
    return found


class Tracker:
    """What this module created, for the final check: stores, container IDs, forks of this process."""

    def __init__(self) -> None:
        self.homes: list[Path] = []
        self.ids: set[str] = set()

    def note(self, cid: str) -> str:
        self.ids.add(cid)
        return cid


TRACK = Tracker()


def leftovers(children_before: set[tuple[int, int | None]], own_cmdline: bytes,
              forks_before: set[int]) -> list[str]:
    problems = []
    for home in TRACK.homes:
        cdir = home / "containers"
        if cdir.exists():
            problems += [f"container dir left: {cdir / d}" for d in container_entries(home)]
        problems += [f"process refers to {home}: {p}" for p in processes_mentioning(str(home))]
    for cid in TRACK.ids:
        problems += [f"cgroup dir left: {d}" for d in cgroup_dirs_of(cid)]
    problems += [f"cgroup dir of a used warm monitor left: {d}" for d in used_warm_cgroups()]
    markers = [str(h) for h in TRACK.homes] + sorted(TRACK.ids)
    problems += [f"mount left on the host: {line}" for line in mountinfo() if any(m in line for m in markers)]
    for p in processes():
        cg = _read(f"/proc/{p}/cgroup").decode(errors="replace")
        if any(f"pycontainers/{cid}" in cg for cid in TRACK.ids):
            problems.append(f"process {p} is still in a container's cgroup")
        fields = stat_fields(p)
        # A monitor forked from this process (setsid'd, same command line) that is still around.
        if p != os.getpid() and p not in forks_before and len(fields) > 3 and int(fields[3]) == p \
                and _read(f"/proc/{p}/cmdline") == own_cmdline:
            problems.append(f"a fork of this test process is still running: {p}")
    # The zygote is this process's own helper: it lives as long as its client (this pytest) does.
    zygote = Zygote._instance.process.pid if Zygote._instance is not None else None
    problems += [f"child process left: {pid}" for pid, _ in children_of(os.getpid()) - children_before
                 if pid != zygote]
    return [p for p in problems if zygote is None or not p.startswith("process refers to") or f": {zygote}:" not in p]


@pytest.fixture(scope="module", autouse=True)
def nothing_left_behind() -> Iterator[Tracker]:
    """At the end of the module: no container dir, cgroup dir, mount or process of these tests may remain."""
    own_cmdline = _read(f"/proc/{os.getpid()}/cmdline")
    forks_before = {p for p in processes() if _read(f"/proc/{p}/cmdline") == own_cmdline}
    children_before = children_of(os.getpid())
    real_new_id = spec_module.new_container_id
    with pytest.MonkeyPatch.context() as mp:  # record the ID of every container created in this process
        mp.setattr(spec_module, "new_container_id", lambda: TRACK.note(real_new_id()))
        yield TRACK
    problems: list[str] = []

    def clean() -> bool:
        problems[:] = leftovers(children_before, own_cmdline, forks_before)
        return not problems

    with contextlib.suppress(AssertionError):
        wait_for(clean, "the last monitors to finish", timeout=15)
    assert not problems, "left behind by tests/test_runtime.py:\n" + "\n".join(problems)


@pytest.fixture(autouse=True)
def home(busybox_store: Store, monkeypatch: pytest.MonkeyPatch, nothing_left_behind: Tracker) -> Iterator[Store]:
    """The test's own store (busybox inside) as PYCONTAINERS_HOME; afterwards ``rm -f`` whatever is left."""
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    TRACK.homes.append(busybox_store.home)
    yield busybox_store
    for c in list_containers(busybox_store):
        TRACK.note(c.id)
        with contextlib.suppress(PyContainersError):
            remove(c, force=True)


@pytest.fixture
def cli(home: Store, capfd: pytest.CaptureFixture[str]) -> Run:
    """``pycontainers ARGS`` in-process: (exit code, stdout, stderr), the container's output included."""
    capfd.readouterr()

    def run(*args: str) -> tuple[int, str, str]:
        saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            code = main(list(args))
        finally:  # `run` forwards these signals to its container; give pytest its handlers back
            for s, handler in saved.items():
                signal.signal(s, handler)
        out, err = capfd.readouterr()
        return code, out, err

    return run


def pyc(store: Store, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The console script in a subprocess: real file descriptors, real exit status."""
    env = {**os.environ, "PYCONTAINERS_HOME": str(store.home)}
    proc = subprocess.run([PYC, *args], env=env, capture_output=True, text=True, input=input,
                          stdin=None if input is not None else subprocess.DEVNULL, timeout=timeout)
    if args[:1] == ("run",) and "-d" in args and HEX64.match(proc.stdout.strip()):
        TRACK.note(proc.stdout.strip())
    return proc


def state(store: Store, name: str) -> dict[str, Any]:
    st = get_container(store, name).state
    if "cgroup" in st:
        CGROUP_NAMES[st["id"]] = st["cgroup"]
    return st


def status(store: Store, name: str) -> str:
    return get_container(store, name).status


def cdir(store: Store, cid: str) -> Path:
    return containers_dir(store) / cid


def ps_rows(cli: Run, *flags: str) -> dict[str, str]:
    """``ps`` as {NAMES: STATUS}."""
    code, out, err = cli("ps", *flags, "--format", "{{.Names}}|{{.Status}}")
    assert (code, err) == (0, "")
    return dict(line.split("|") for line in out.splitlines() if line)


def ready(store: Store, name: str, marker: str = "ready") -> Callable[[], bool]:
    """A detached container has printed *marker* (so its traps are installed)."""
    def check() -> bool:
        try:
            return marker in logged(get_container(store, name)).decode()
        except FileNotFoundError:
            return False
    return check


def gone(store: Store, cid: str, pid: int | None = None, pid_start: int | None = None) -> None:
    """The container is entirely removed: directory, cgroups and its PID 1."""
    assert not cdir(store, cid).exists()
    assert cgroup_dirs_of(cid) == []
    if pid:
        assert not pid_alive(pid, pid_start)


# ------------------------------------------------------------------------------- run: output and exit codes


def test_run_prints_the_commands_output(cli: Run) -> None:
    assert cli("run", "--rm", "busybox", "echo", "hello", "world") == (0, "hello world\n", "")


def test_init_is_pid_1_and_passes_ctrl_c_on(cli: Run, home: Store) -> None:
    """--init (Docker's tini): a command that is PID 1 ignores Ctrl-C (no handler, the kernel shields a
    namespace's init); under tini it is PID 2, gets the signal, and the run ends with 130."""
    pid_and_init = cli("run", "--init", "--rm", "busybox", "sh", "-c", "echo $$; cat /proc/1/comm")
    assert pid_and_init == (0, "2\ndocker-init\n", "")
    proc = subprocess.Popen([PYC, "run", "--init", "--rm", "busybox", "sh", "-c", "echo ready; sleep 30"],
                            env={**os.environ, "PYCONTAINERS_HOME": str(home.home)}, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 130


def test_init_and_volumes_follow_the_images_symlinks_without_leaving_it(cli: Run, home: Store, tmp_path: Path) -> None:
    """A merged-/usr image (/sbin -> usr/sbin, as debian's and python's): tini's mount point goes through the
    link, as under Docker; a link pointing out of the image (absolute, or with ..) stays inside it."""
    from pycontainers.build import build

    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN mkdir -p /usr/local/merged && cp -a /sbin/. /usr/local/merged/ && rm -rf /sbin && "
        "ln -s usr/local/merged /sbin && ln -s /etc /abs && ln -s ../../../../tmp /up\n")
    build(home, tmp_path, tags=["merged"], on_event=lambda e: None)
    assert cli("run", "--init", "--rm", "merged", "sh", "-c", "cat /proc/1/comm; ls /usr/local/merged/docker-init") \
        == (0, "docker-init\n/usr/local/merged/docker-init\n", "")
    host = tmp_path / "shared"
    host.mkdir()
    (host / "marker").write_text("from the host\n")
    shown = cli("run", "--rm", "-v", f"{host}:/abs/shared", "-v", f"{host}:/up/shared", "merged", "sh", "-c",
                "cat /etc/shared/marker /tmp/shared/marker")
    assert shown == (0, "from the host\nfrom the host\n", "")  # (the image's /etc and /tmp, not the host's)
    assert not Path("/etc/shared").exists()


def test_init_is_recorded_and_refused_where_there_is_no_pid_namespace(cli: Run, home: Store) -> None:
    client = Client(home.home)
    c = client.containers.run("busybox", ["sleep", "30"], init=True, detach=True)
    assert c.attrs["HostConfig"]["Init"] is True
    # As Docker's: the command, not tini's wrapper around it, and no mount for tini (an internal detail).
    assert (c.attrs["Path"], c.attrs["Args"], c.attrs["Config"]["Cmd"]) == ("sleep", ["30"], ["sleep", "30"])
    assert c.attrs["Mounts"] == [] and c.attrs["HostConfig"]["Binds"] == []
    with open(f"/proc/{c.attrs['State']['Pid']}/cmdline", "rb") as f:  # yet tini is what runs
        assert f.read().split(b"\0")[:4] == [b"/sbin/docker-init", b"--", b"sleep", b"30"]
    c.remove(force=True)
    code, out, err = cli("run", "--init", "--runtime", "proot", "--rm", "busybox", "true")
    assert (code, out) == (125, "") and "--init is not supported by the proot back end" in err


def test_run_exits_with_the_commands_exit_code(cli: Run) -> None:
    code, _, _ = cli("run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert code == 3


def test_unknown_command_is_127_with_dockers_message(cli: Run) -> None:
    code, out, err = cli("run", "--rm", "busybox", "no-such-command")
    assert code == 127
    assert out == ""
    assert 'exec: "no-such-command": executable file not found in $PATH' in err


def test_file_that_is_not_executable_is_126(cli: Run) -> None:
    code, _, err = cli("run", "--rm", "busybox", "/etc/passwd")
    assert code == 126
    assert "permission denied" in err


@pytest.mark.parametrize(("args", "message"), [
    (["no-such-image:latest", "true"], "no-such-image"),
    (["--no-such-flag", "busybox", "true"], "--no-such-flag"),
    (["-v", "only-one-part", "busybox", "true"], "invalid volume specification"),
    (["-m", "1k", "busybox", "true"], "memory"),
], ids=["unknown-image", "bad-flag", "bad-volume-spec", "tiny-memory"])
def test_engine_errors_are_125(cli: Run, home: Store, args: list[str], message: str) -> None:
    code, out, err = cli("run", "--rm", *args)
    assert code == 125
    assert out == ""
    assert message in err
    assert "Traceback" not in err
    assert list_containers(home) == []


@pytest.mark.parametrize(("args", "code"), [
    (["busybox", "sh", "-c", "exit 3"], 3), (["busybox", "no-such-command"], 127), (["busybox", "/etc/passwd"], 126),
    (["--bogus", "busybox", "true"], 125), (["no-such-image", "true"], 125),
], ids=["own", "not-found", "not-executable", "bad-flag", "no-image"])
def test_console_script_exits_with_dockers_status(home: Store, args: list[str], code: int) -> None:
    assert pyc(home, "run", "--rm", *args).returncode == code


def test_unknown_user_is_refused(cli: Run) -> None:
    code, _, err = cli("run", "--rm", "-u", "nosuchuser", "busybox", "true")
    assert code != 0
    assert "unable to find user nosuchuser" in err


def test_container_killed_by_sigkill_exits_137(home: Store) -> None:
    env = {**os.environ, "PYCONTAINERS_HOME": str(home.home)}
    proc = subprocess.Popen([PYC, "run", "--name", "victim", "busybox", "sleep", "60"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: (home.home / "containers").exists() and list_containers(home)
                 and status(home, "victim") == "running", "the container to start")
        st = state(home, "victim")
        TRACK.note(st["id"])
        os.kill(st["pid"], signal.SIGKILL)
        assert proc.wait(timeout=30) == 137
        assert state(home, "victim")["exit_code"] == 137
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    remove(get_container(home, "victim"))


# ---------------------------------------------------------------------------------- ENTRYPOINT and CMD


@pytest.fixture
def hello_image(home: Store) -> str:
    b = ImageBuilder(home, "busybox")
    b.set(Entrypoint=["/bin/echo", "Hello"], Cmd=["world"])
    b.commit("hello:test")
    return "hello:test"


def test_entrypoint_plus_cmd(cli: Run, hello_image: str) -> None:
    assert cli("run", "--rm", hello_image) == (0, "Hello world\n", "")


def test_arguments_replace_cmd_only(cli: Run, hello_image: str) -> None:
    assert cli("run", "--rm", hello_image, "Pavlos") == (0, "Hello Pavlos\n", "")


def test_entrypoint_flag_replaces_entrypoint_and_drops_cmd(cli: Run, hello_image: str) -> None:
    assert cli("run", "--rm", "--entrypoint", "/bin/echo", hello_image) == (0, "\n", "")
    assert cli("run", "--rm", "--entrypoint", "/bin/echo", hello_image, "bye") == (0, "bye\n", "")


# ----------------------------------------------------------------------------- environment, user, hostname


def env_of(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_environment_flags(cli: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_CALLER", "caller's value")
    monkeypatch.setenv("FILE_FROM_CALLER", "via the file")
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    env_file = tmp_path / "env.list"
    env_file.write_text("# a comment\nFILE_VAR=from file\n\nFILE_FROM_CALLER\nOVERRIDDEN=file\n")
    code, out, err = cli("run", "--rm", "-e", "K=V=W", "-e", "FROM_CALLER", "-e", "NOT_SET_ANYWHERE",
                         "--env-file", str(env_file), "-e", "OVERRIDDEN=flag", "busybox", "env")
    assert (code, err) == (0, "")
    env = env_of(out)
    assert env["K"] == "V=W"
    assert env["FROM_CALLER"] == "caller's value"
    assert "NOT_SET_ANYWHERE" not in env
    assert env["FILE_VAR"] == "from file"
    assert env["FILE_FROM_CALLER"] == "via the file"
    assert env["OVERRIDDEN"] == "flag"
    assert "# a comment" not in out


def test_default_environment_and_hostname(cli: Run, home: Store) -> None:
    code, out, err = cli("run", "--name", "defaults", "busybox", "sh", "-c",
                         "env; echo hostname=$(hostname); echo etc_hostname=$(cat /etc/hostname); "
                         "echo pwd=$(pwd); cat /etc/hosts")
    assert (code, err) == (0, "")
    cid = state(home, "defaults")["id"]
    env = env_of(out)
    assert env["HOSTNAME"] == cid[:12]
    assert env["hostname"] == cid[:12]
    assert env["etc_hostname"] == cid[:12]
    assert env["HOME"] == "/root"
    assert env["PATH"] == DEFAULT_PATH
    assert env["pwd"] == "/"
    assert re.search(r"^127\.0\.0\.1\s+localhost$", out, re.M)
    assert re.search(rf"^\S+\s+{cid[:12]}$", out, re.M)
    assert cli("rm", "defaults")[0] == 0
    gone(home, cid)


def test_hostname_flag(cli: Run) -> None:
    code, out, _ = cli("run", "--rm", "--hostname", "teacher", "busybox", "sh", "-c",
                       "hostname; cat /etc/hostname; echo $HOSTNAME; grep -c teacher /etc/hosts")
    assert code == 0
    assert out.split() == ["teacher", "teacher", "teacher", "1"]


def test_user_nobody_and_created_workdir(cli: Run) -> None:
    code, out, err = cli("run", "--rm", "-u", "nobody", "-w", "/made/by/run", "busybox", "sh", "-c",
                         "id -u; id -g; pwd; echo $HOME; touch /made/by/run/ok && echo writable")
    assert (code, err) == (0, "")
    assert out.split() == ["65534", "65534", "/made/by/run", "/home", "writable"]


def test_workdir_of_root_is_created(cli: Run) -> None:
    assert cli("run", "--rm", "-w", "/new/dir", "busybox", "pwd") == (0, "/new/dir\n", "")


def test_numeric_user_without_passwd_entry_gets_gid_0(cli: Run) -> None:
    code, out, _ = cli("run", "--rm", "-u", "4321", "busybox", "sh", "-c", "id -u; id -g; echo $HOME")
    assert code == 0
    assert out.split() == ["4321", "0", "/"]


# ------------------------------------------------------------------------------------------- isolation


def test_command_is_pid_1_and_sees_only_its_processes(cli: Run) -> None:
    code, out, _ = cli("run", "--rm", "busybox", "sh", "-c", "echo $$; sleep 30 & ps -o pid,comm; true")
    assert code == 0
    first, *ps = out.splitlines()
    assert first == "1"
    rows = [line.split() for line in ps[1:]]
    assert rows[0] == ["1", "sh"]
    assert len(rows) == 3  # sh, the background sleep (maybe still "exe" before its execve) and ps
    assert rows[-1][1] == "ps"
    assert all(int(r[0]) < 10 for r in rows)


def test_host_processes_are_invisible(cli: Run) -> None:
    marker = f"pycontainers-marker-{uuid.uuid4().hex}"
    host = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker], stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: marker.encode() in _read(f"/proc/{host.pid}/cmdline"), "the host process")
        code, out, _ = cli("run", "--rm", "busybox", "sh", "-c",
                           "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; echo; ls -d /proc/[0-9]* | wc -l")
        assert code == 0
        assert marker not in out
        assert int(out.split()[-1]) <= 5
    finally:
        host.kill()
        host.wait()


def test_same_kernel_as_the_host(cli: Run) -> None:
    assert cli("run", "--rm", "busybox", "uname", "-r") == (0, os.uname().release + "\n", "")


def interfaces(proc_net_dev: str) -> set[str]:
    return {line.split(":")[0].strip() for line in proc_net_dev.splitlines()[2:] if ":" in line}


def test_network_none_has_only_loopback(cli: Run) -> None:
    code, out, _ = cli("run", "--rm", "--network", "none", "busybox", "cat", "/proc/net/dev")
    assert code == 0
    assert interfaces(out) == {"lo"}


def test_network_host_sees_the_hosts_interfaces(cli: Run) -> None:
    code, out, _ = cli("run", "--rm", "--network", "host", "busybox", "cat", "/proc/net/dev")
    assert code == 0
    assert interfaces(out) == interfaces(Path("/proc/net/dev").read_text())


def test_own_cgroup_namespace(cli: Run) -> None:
    code, out, _ = cli("run", "--rm", "busybox", "cat", "/proc/self/cgroup")
    assert code == 0
    assert out and all(line.endswith(":/") for line in out.splitlines())


def test_container_mounts_are_not_seen_by_the_host(cli: Run, home: Store) -> None:
    before = mountinfo()
    code, out, _ = cli("run", "-d", "--name", "mounts", "busybox", "sh", "-c",
                       "mount -t tmpfs x /mnt 2>/dev/null; echo ready; sleep 60")
    assert code == 0
    cid = out.strip()
    wait_for(ready(home, "mounts"), "the container")
    during = mountinfo()
    assert len(during) == len(before)
    assert not [line for line in during if cid in line or str(home.home) in line]
    assert cli("rm", "-f", "mounts")[0] == 0
    gone(home, cid)


def test_only_stdio_is_inherited(cli: Run, home: Store) -> None:
    """The command holds its stdin, stdout and stderr, and nothing else of the engine's or the caller's."""
    code, out, _ = cli("run", "-d", "--name", "fds", "busybox", "sleep", "60")
    assert code == 0
    st = state(home, "fds")
    fds = {int(fd): os.readlink(f"/proc/{st['pid']}/fd/{fd}") for fd in os.listdir(f"/proc/{st['pid']}/fd")}
    assert sorted(fds) == [0, 1, 2], fds
    assert fds[0] == "/dev/null"
    # stdout and stderr: two pipes, whose other ends its monitor holds (it logs each line with its stream)
    assert fds[1].startswith("pipe:") and fds[2].startswith("pipe:") and fds[1] != fds[2]
    monitor = st["monitor_pid"]
    held = {os.readlink(f"/proc/{monitor}/fd/{fd}") for fd in os.listdir(f"/proc/{monitor}/fd")}
    assert {fds[1], fds[2]} <= held
    assert cli("rm", "-f", "fds")[0] == 0


def test_stdin_is_passed_only_with_interactive(home: Store) -> None:
    assert pyc(home, "run", "--rm", "-i", "busybox", "cat", input="piped in\n").stdout == "piped in\n"
    proc = pyc(home, "run", "--rm", "busybox", "cat", input="piped in\n")
    assert (proc.returncode, proc.stdout) == (0, "")


# ------------------------------------------------------------------------------------------ copy-on-write


def test_writes_stay_in_the_container(cli: Run, home: Store) -> None:
    code, out, _ = cli("run", "--name", "writer", "busybox", "sh", "-c",
                       "echo new > /created.txt; echo extra >> /etc/passwd; rm /bin/true; echo done")
    assert (code, out) == (0, "done\n")
    cid = state(home, "writer")["id"]
    upper = cdir(home, cid) / "upper"
    assert (upper / "created.txt").read_text() == "new\n"
    assert (upper / "etc" / "passwd").read_text().endswith("extra\n")  # copied up, then changed
    code, out, _ = cli("run", "--rm", "busybox", "sh", "-c",
                       "cat /created.txt 2>/dev/null || echo absent; grep -c extra /etc/passwd; ls /bin/true")
    assert (code, out) == (0, "absent\n0\n/bin/true\n")
    assert list((home.home / "layers").rglob("created.txt")) == []  # the image's layers are untouched
    assert cli("rm", "writer")[0] == 0
    gone(home, cid)


def test_rm_f_during_a_commit_waits_for_it(cli: Run, home: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Removing a container whose writable layer is being committed would delete its files while they are
    read (an internal error, half an image): the removal waits for the commit, as for a cp."""
    import threading

    from pycontainers import image as image_module
    from pycontainers.container import commit

    assert cli("run", "--name", "wrote", "busybox", "sh", "-c", "echo kept > /f")[0] == 0
    real, entered, release = image_module.write_layer, threading.Event(), threading.Event()

    def slow(store: Store, entries: Any) -> Any:
        entered.set()
        release.wait(10)
        return real(store, entries)

    monkeypatch.setattr(image_module, "write_layer", slow)
    committed: list[Any] = []
    removed: list[bool] = []
    committing = threading.Thread(target=lambda: committed.append(commit(get_container(home, "wrote"), "kept:1")))
    committing.start()
    assert entered.wait(10)
    removing = threading.Thread(target=lambda: removed.append(remove(get_container(home, "wrote"), force=True)
                                                              is None))
    removing.start()
    time.sleep(0.3)
    assert removed == []  # waiting for the commit
    release.set()
    committing.join(30)
    removing.join(30)
    assert removed == [True] and committed
    got = cli("run", "--rm", "kept:1", "cat", "/f")
    assert got[:2] == (0, "kept\n"), got


def test_commit_keeps_the_containers_configuration(cli: Run, home: Store) -> None:
    """Docker's commit: the new image runs as the container ran (its entrypoint, command, environment, user,
    working directory); a container run with the image's defaults leaves the image's settings as they were."""
    from pycontainers.image import get_image

    code, out, _ = cli("run", "--name", "configured", "--entrypoint", "/bin/echo", "-e", "A=1", "-w", "/tmp",
                       "-u", "nobody", "busybox", "a", "b")
    assert (code, out) == (0, "a b\n")
    assert cli("commit", "configured", "configured:1")[0] == 0
    busybox = get_image(home, "busybox").settings
    settings = get_image(home, "configured:1").settings
    assert {k: settings.get(k) for k in ("Entrypoint", "Cmd", "Env", "User", "WorkingDir")} == {
        "Entrypoint": ["/bin/echo"], "Cmd": ["a", "b"], "Env": [*busybox["Env"], "A=1"], "User": "nobody",
        "WorkingDir": "/tmp"}
    assert settings["Labels"] == busybox["Labels"]  # what run did not change stays the image's
    assert cli("run", "--rm", "configured:1")[:2] == (0, "a b\n")
    assert cli("run", "--rm", "configured:1", "x")[:2] == (0, "x\n")  # arguments replace the Cmd only
    code, out, _ = cli("run", "--rm", "--entrypoint", "sh", "configured:1", "-c", "id -un; pwd; echo $A")
    assert (code, out) == (0, "nobody\n/tmp\n1\n")
    assert cli("run", "--name", "plain", "busybox", "sh", "-c", "echo x > /x")[0] == 0
    assert cli("commit", "plain", "plain:1")[0] == 0
    plain = get_image(home, "plain:1").settings
    assert plain == {**busybox, "Cmd": ["sh", "-c", "echo x > /x"]}  # its command, and nothing else, changed
    assert cli("run", "--name", "default", "busybox")[0] == 0
    assert cli("commit", "default", "default:1")[0] == 0
    assert get_image(home, "default:1").settings == busybox
    assert cli("rm", "configured", "plain", "default")[0] == 0


def test_bind_mount_keeps_files_on_the_host(cli: Run, tmp_path: Path) -> None:
    host_dir = tmp_path / "shared"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("hi\n")
    code, out, _ = cli("run", "--rm", "-v", f"{host_dir}:/data", "busybox", "sh", "-c",
                       "cat /data/from-host; echo kept > /data/from-container")
    assert (code, out) == (0, "hi\n")
    assert (host_dir / "from-container").read_text() == "kept\n"


def test_bind_mount_from_the_hosts_dev(cli: Run) -> None:
    """The container's own /dev is made over the host's in its mount namespace, then set aside: a source
    under the host's /dev (here /dev/shm) is the host's, not the container's."""
    shared = Path("/dev/shm") / f"pyc-test-{uuid.uuid4().hex[:8]}"
    shared.mkdir()
    try:
        (shared / "note").write_text("host\n")
        assert cli("run", "--rm", "-v", f"{shared}:/data", "busybox", "cat", "/data/note") == (0, "host\n", "")
    finally:
        (shared / "note").unlink()
        shared.rmdir()


@pytest.mark.parametrize("open_tree", ["available", "refused"])
def test_a_store_under_the_hosts_dev(cli: Run, monkeypatch: pytest.MonkeyPatch, open_tree: str) -> None:
    """A store in /dev/shm: its layers stay reachable while PID 1 mounts the image, whether /proc, /dev and
    /sys were made ahead and held aside (open_tree) or not (a kernel before 5.2, a seccomp profile)."""
    import errno

    from pycontainers import bases, pid1
    from pycontainers.linux import KernelError

    if open_tree == "refused":
        def refused(path: str, clone: bool = True) -> int:
            raise KernelError(f"open_tree({path!r})", errno.EPERM)

        monkeypatch.setattr(pid1, "open_tree", refused)
    shm_home = Path("/dev/shm") / f"pyc-test-{uuid.uuid4().hex[:8]}"
    cache = bases.cache_store()
    bases.copy_image(cache, bases.get_image(cache, "busybox"), Store(shm_home))
    monkeypatch.setenv("PYCONTAINERS_HOME", str(shm_home))
    try:
        assert cli("run", "--rm", "busybox", "sh", "-c", "echo $$; ls /sys/firmware | wc -l; grep -c ' /proc/sys ' "
                   "/proc/mounts") == (0, "1\n0\n1\n", "")  # PID 1, with Docker's masked and read-only paths
        # The monitor of a --rm container records its exit code (for `wait`) before it reports it: the
        # rmtree below, as soon as it has, finds nothing being written in the store.
        [record] = (shm_home / "containers" / ".exits").iterdir()  # (one file a minute: one line a container)
        assert re.fullmatch(r"[0-9a-f]{64} 0\n", record.read_text())
    finally:
        import shutil

        shutil.rmtree(shm_home, ignore_errors=True)


def test_named_volume_persists_across_containers(cli: Run, home: Store) -> None:
    assert cli("run", "--rm", "-v", "notes:/data", "busybox", "sh", "-c", "echo persisted > /data/n")[0] == 0
    data = home.home / "volumes" / "notes" / "_data"
    assert (data / "n").read_text() == "persisted\n"
    assert cli("run", "--rm", "-v", "notes:/elsewhere", "busybox", "cat", "/elsewhere/n") == (0, "persisted\n", "")


def test_read_only_volume_refuses_writes(cli: Run, home: Store) -> None:
    code, _, err = cli("run", "--rm", "-v", "ro-vol:/data:ro", "busybox", "touch", "/data/x")
    assert code != 0
    assert "Read-only file system" in err
    assert list((home.home / "volumes" / "ro-vol" / "_data").iterdir()) == []


def test_read_only_root_allows_dev_shm_only(cli: Run) -> None:
    code, out, err = cli("run", "--rm", "--read-only", "busybox", "sh", "-c",
                         "touch /x 2>/dev/null && echo root-writable; echo shm > /dev/shm/f && cat /dev/shm/f")
    assert (code, out) == (0, "shm\n")


def test_bind_mount_source_is_created_when_missing(cli: Run, tmp_path: Path) -> None:
    missing = tmp_path / "not" / "yet"
    code, _, err = cli("run", "--rm", "-v", f"{missing}:/data", "busybox", "touch", "/data/x")
    assert (code, err) == (0, "")
    assert (missing / "x").exists()


def test_read_only_root_with_a_volume_at_a_new_path(cli: Run) -> None:
    code, out, err = cli("run", "--rm", "--read-only", "-v", "ro-root-data:/data", "busybox", "sh", "-c",
                         "echo ok > /data/f && cat /data/f")
    assert (code, out, err) == (0, "ok\n", "")


# ---------------------------------------------------------------------------------------------- limits


def test_memory_limit_kills_a_hog_with_137_and_oomkilled(cli: Run, home: Store) -> None:
    code, _, _ = cli("run", "--name", "hog", "-m", "16m", "busybox", "sh", "-c", "x=a; while true; do x=$x$x; done")
    assert code == 137
    st = state(home, "hog")
    assert (st["status"], st["exit_code"], st["oom_killed"]) == ("exited", 137, True)
    attrs = Client(home.home).containers.get("hog").attrs
    assert attrs["State"]["OOMKilled"] is True
    assert attrs["State"]["ExitCode"] == 137
    assert attrs["HostConfig"]["Memory"] == 16 << 20
    wait_for(lambda: cgroup_dirs_of(st["id"]) == [], "the cgroup to be removed after the exit was reported")
    assert cli("rm", "hog")[0] == 0


def test_pids_limit_stops_forks_and_the_container_still_dies_cleanly(cli: Run, home: Store) -> None:
    code, out, _ = cli("run", "-d", "--name", "forky", "--pids-limit", "5", "busybox", "sh", "-c",
                       "sh -c 'for i in $(seq 20); do sleep 30 & done' 2>&1; echo ready; sleep 60")
    assert code == 0
    cid = out.strip()
    wait_for(ready(home, "forky"), "the fork loop to give up")
    assert "can't fork" in logged(get_container(home, "forky")).decode()
    pids = cgroup_of(get_container(home, "forky")).pids()
    assert 1 < len(pids) <= 5
    state(home, "forky")  # notes its cgroup's name
    assert cli("kill", "forky") == (0, "forky\n", "")
    assert cli("wait", "forky") == (0, "137\n", "")
    assert all(not pid_alive(p, None) for p in pids)
    wait_for(lambda: cgroup_dirs_of(cid) == [], "the cgroup to be removed after the exit was reported")
    assert cli("rm", "forky")[0] == 0
    gone(home, cid)


def test_an_exec_joins_the_cgroup_but_its_monitor_does_not(cli: Run, home: Store) -> None:
    # Two processes allowed: PID 1 and the exec's command. The exec's monitor, had it joined the cgroup
    # as well, would be a third: the exec could not fork, and `top` would list the monitor.
    assert cli("run", "-d", "--name", "pair", "--pids-limit", "2", "busybox", "sleep", "60")[0] == 0
    container = get_container(home, "pair")
    assert cli("exec", "pair", "cat", "/proc/self/cgroup")[1] == cli("exec", "pair", "cat", "/proc/1/cgroup")[1]
    napper = subprocess.Popen([sys.executable, "-m", "pycontainers", "exec", "pair", "sleep", "30"],
                              env={**os.environ, "PYCONTAINERS_HOME": str(home.home)})
    try:
        # (the exec's child joins the cgroup, then execs `sleep`: until then `top` shows it as Python)
        wait_for(lambda: {row["CMD"] for row in top(container)} == {"sleep 60", "sleep 30"},
                 "the exec's sleep to run in the cgroup, and nothing else")
        assert len(cgroup_of(container).pids()) == 2
    finally:
        cli("rm", "-f", "pair")
        napper.wait(timeout=10)


def test_cpu_memory_and_pids_limits_are_written_to_the_cgroup(cli: Run, home: Store) -> None:
    code, out, _ = cli("run", "-d", "--name", "limited", "--cpus", "0.5", "-m", "32m", "--pids-limit", "50",
                       "busybox", "sleep", "60")
    assert code == 0
    cid = out.strip()
    cg = cgroup_of(get_container(home, "limited"))
    st = state(home, "limited")
    if cg.version == "v2":
        d = cg.dirs["unified"]
        assert (d / "cpu.max").read_text().split() == ["50000", "100000"]
        assert int((d / "memory.max").read_text()) == 32 << 20
        assert (d / "pids.max").read_text().strip() == "50"
    else:
        assert int((cg.dirs["cpu"] / "cpu.cfs_quota_us").read_text()) == 50000
        assert int((cg.dirs["cpu"] / "cpu.cfs_period_us").read_text()) == 100000
        assert int((cg.dirs["memory"] / "memory.limit_in_bytes").read_text()) == 32 << 20
        assert (cg.dirs["pids"] / "pids.max").read_text().strip() == "50"
    assert st["pid"] in cg.pids()
    assert cli("rm", "-f", "limited") == (0, "limited\n", "")
    gone(home, cid, st["pid"], st["pid_start"])


def test_a_limit_the_kernel_refuses_leaves_no_cgroup(home: Store) -> None:
    """The cgroup is made, then its limits written: one refused (a CPU quota under the kernel's 1 ms) takes it away."""
    from pycontainers.cgroup import CgroupError

    cg = Cgroup(f"test-refused-{uuid.uuid4().hex[:8]}")
    with pytest.raises(CgroupError, match="cfs_quota_us|cpu.max"):
        cg.create(cpus=0.001)
    assert [d for d in cg.dirs.values() if d.exists()] == []


def test_cpus_below_the_smallest_quota_is_refused_in_one_line(cli: Run) -> None:
    code, _out, err = cli("run", "--rm", "--cpus", "0.005", "busybox", "true")
    assert code == 125 and err.count("\n") == 1 and "--cpus must be between 0.01" in err


# ------------------------------------------------------------------------------------ privileges, escapes


ESCAPES = {
    "mount": "mount -t tmpfs x /tmp",
    "proc-sys": "echo evil > /proc/sys/kernel/hostname",
    "sysrq": "echo h > /proc/sysrq-trigger",
    "kcore": "test -n \"$(head -c 16 /proc/kcore)\"",
    "keys": "test -n \"$(cat /proc/keys)\"",
    "timer-list": "test -n \"$(cat /proc/timer_list)\"",
    "sys-write": "cat /sys/kernel/mm/ksm/run > /sys/kernel/mm/ksm/run",  # writes back the same value
    "cgroup-mkdir": "mkdir /sys/fs/cgroup/x",
    "sethostname": "hostname evil",
    "unshare": "unshare -m true",
}


def test_escape_attempts_are_denied(cli: Run) -> None:
    script = "; ".join(f"if ({cmd}) 2>/dev/null; then echo {name}=ALLOWED; else echo {name}=denied; fi"
                       for name, cmd in ESCAPES.items())
    host_name = socket.gethostname()
    code, out, _ = cli("run", "--rm", "busybox", "sh", "-c", script)
    assert code == 0
    assert dict(line.split("=") for line in out.split()) == dict.fromkeys(ESCAPES, "denied")
    assert socket.gethostname() == host_name


def test_capabilities_are_dockers_default_and_no_new_privs(cli: Run) -> None:
    code, out, _ = cli("run", "--rm", "busybox", "grep", "-E", "^(Cap|NoNewPrivs)", "/proc/self/status")
    assert code == 0
    proc_status = dict(line.split(":\t") for line in out.splitlines())
    assert proc_status["CapEff"] == DOCKER_CAPS
    assert proc_status["CapPrm"] == DOCKER_CAPS
    assert proc_status["CapBnd"] == DOCKER_CAPS
    assert proc_status["CapAmb"] == "0000000000000000"
    assert proc_status["NoNewPrivs"] == "1"


def test_non_root_user_has_no_effective_capabilities(cli: Run) -> None:
    code, out, _ = cli("run", "--rm", "-u", "nobody", "busybox", "grep", "-E", "^Cap(Eff|Prm)", "/proc/self/status")
    assert code == 0
    assert [line.split()[1] for line in out.splitlines()] == ["0000000000000000"] * 2


def test_inheritable_capabilities_are_empty(cli: Run) -> None:
    code, out, _ = cli("run", "--rm", "busybox", "grep", "CapInh", "/proc/self/status")
    assert (code, out.split()) == (0, ["CapInh:", "0000000000000000"])


def _host_device() -> tuple[str, int, int]:
    """A device the host's root may open but Docker's default device rules forbid to a container."""
    for path in ("/dev/loop0", "/dev/fuse", "/dev/loop-control"):
        with contextlib.suppress(OSError):
            st = os.stat(path)
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
            return ("b" if stat.S_ISBLK(st.st_mode) else "c"), os.major(st.st_rdev), os.minor(st.st_rdev)
    pytest.skip("no host device to try (loop0, fuse, loop-control)")


def test_host_devices_cannot_be_opened_through_mknod(cli: Run) -> None:
    kind, major, minor = _host_device()
    code, out, _ = cli("run", "--rm", "busybox", "sh", "-c",
                       f"mknod /dev/host-dev {kind} {major} {minor} && mknod /tmp/host-dev {kind} {major} {minor} "
                       "&& echo made; for d in /dev/host-dev /tmp/host-dev; do "
                       "if (exec 3< $d) 2>/dev/null; then echo opened; else echo denied; fi; done")
    assert code == 0
    assert out.split() == ["made", "denied", "denied"]


# ---------------------------------------------------------------------------------- detached life cycle


def test_the_command_starts_with_no_signal_ignored_or_blocked(cli: Run) -> None:
    """The monitor ignores SIGINT, SIGTERM, SIGHUP and SIGPIPE, and an ignored signal stays ignored across
    execve: PID 1 gives the command the default dispositions, and an empty signal mask."""
    code, out, _ = cli("run", "--rm", "busybox", "grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status")
    assert (code, out) == (0, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n")


def test_run_detached_returns_at_once_and_the_container_outlives_the_cli(home: Store, cli: Run) -> None:
    script = f'id=$("{PYC}" run -d --name bg busybox sh -c "echo started; sleep 60"); echo "$id"'
    proc = subprocess.run(["bash", "-c", script], env={**os.environ, "PYCONTAINERS_HOME": str(home.home)},
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    cid = TRACK.note(proc.stdout.strip())
    assert HEX64.match(cid)
    # The CLI has exited: the container still runs, and neither it nor its monitor is the CLI's child.
    st = state(home, "bg")
    assert pid_alive(st["pid"], st["pid_start"])
    assert pid_alive(st["monitor_pid"], st["monitor_start"])
    assert stat_fields(st["pid"])[1] == str(st["monitor_pid"])
    assert ps_rows(cli)["bg"].startswith("Up")
    assert status(home, "bg") == "running"
    wait_for(ready(home, "bg", "started"), "the container's output")
    assert cli("logs", "bg") == (0, "started\n", "")
    assert cli("rm", "-f", "bg") == (0, "bg\n", "")
    gone(home, cid, st["pid"], st["pid_start"])
    assert "bg" not in ps_rows(cli, "-a")


def test_logs_follow_until_the_container_exits(home: Store, cli: Run) -> None:
    code, out, _ = cli("run", "-d", "--name", "chatty", "busybox", "sh", "-c",
                       "for i in 1 2 3 4 5; do echo line $i; sleep 0.2; done")
    assert code == 0
    proc = pyc(home, "logs", "-f", "chatty", timeout=30)
    assert proc.returncode == 0
    assert proc.stdout == "".join(f"line {i}\n" for i in range(1, 6))
    assert status(home, "chatty") == "exited"
    assert cli("wait", "chatty") == (0, "0\n", "")
    assert cli("logs", "chatty")[1] == proc.stdout
    assert re.match(r"Exited \(0\) ", ps_rows(cli, "-a")["chatty"])
    assert "chatty" not in ps_rows(cli)
    assert cli("rm", "chatty")[0] == 0


def test_an_attached_run_is_logged_too(home: Store, cli: Run) -> None:
    code, out, err = cli("run", "--name", "talker", "busybox", "sh", "-c", "echo to-out; echo to-err >&2; exit 4")
    assert (code, out, err) == (4, "to-out\n", "to-err\n")  # the caller still gets both streams apart
    assert cli("logs", "talker") == (0, "to-out\n", "to-err\n")  # and so does the log, and `logs`
    assert cli("rm", "talker")[0] == 0


def test_logs_timestamps_since_and_until(home: Store, cli: Run) -> None:
    assert cli("run", "--name", "stamped", "busybox", "sh", "-c", "echo a; echo b >&2")[0] == 0
    code, out, err = cli("logs", "-t", "stamped")
    assert code == 0 and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z a\n", out), out
    assert re.fullmatch(r"\S+Z b\n", err), err
    assert cli("logs", "--since", "10m", "stamped") == (0, "a\n", "b\n")  # logged in the last ten minutes
    assert cli("logs", "--until", "10m", "stamped") == (0, "", "")  # ... none before that
    assert cli("logs", "--since", str(int(time.time()) + 60), "stamped") == (0, "", "")
    code, _, err = cli("logs", "--since", "yesterday", "stamped")
    assert code != 0 and "'yesterday' is not a time" in err
    assert cli("rm", "stamped")[0] == 0


def test_anonymous_volumes_on_the_command_line(home: Store, cli: Run) -> None:
    assert cli("run", "--rm", "-v", "/data", "busybox", "sh", "-c", "echo x > /data/f") == (0, "", "")
    assert cli("volume", "ls", "-q") == (0, "", "")  # --rm took its anonymous volume along
    assert cli("create", "--name", "keeper", "-v", "/data", "busybox", "true")[0] == 0
    code, out, _ = cli("volume", "ls", "-q")
    assert code == 0 and re.fullmatch(r"[0-9a-f]{64}\n", out)
    assert cli("rm", "-v", "keeper") == (0, "keeper\n", "")
    assert cli("volume", "ls", "-q") == (0, "", "")


def test_a_log_that_cannot_be_written_costs_the_log_not_the_container(home: Store, cli: Run) -> None:
    assert cli("create", "--name", "full", "busybox", "sh", "-c", "for i in 1 2 3; do echo line $i; done")[0] == 0
    log = get_container(home, "full").log_path()
    log.symlink_to("/dev/full")  # every write: ENOSPC, as on a full disk
    assert cli("start", "full") == (0, "full\n", "")
    assert cli("wait", "full") == (0, "0\n", "")  # its monitor saw it to its end
    assert status(home, "full") == "exited"
    assert cli("rm", "full")[0] == 0


def test_stop_honours_a_term_trap(cli: Run, home: Store) -> None:
    assert cli("run", "-d", "--name", "polite", "busybox", "sh", "-c",
               "trap 'echo bye; exit 0' TERM; echo ready; while true; do sleep 0.1; done")[0] == 0
    wait_for(ready(home, "polite"), "the trap to be set")
    assert cli("stop", "-t", "30", "polite") == (0, "polite\n", "")
    assert state(home, "polite")["exit_code"] == 0
    assert cli("logs", "polite")[1] == "ready\nbye\n"
    assert cli("rm", "polite")[0] == 0


def test_stop_kills_after_the_timeout_when_term_is_ignored(cli: Run, home: Store) -> None:
    assert cli("run", "-d", "--name", "stubborn", "busybox", "sh", "-c",
               "trap '' TERM; echo ready; while true; do sleep 0.1; done")[0] == 0
    wait_for(ready(home, "stubborn"), "the trap to be set")
    assert cli("stop", "-t", "1", "stubborn") == (0, "stubborn\n", "")
    assert cli("wait", "stubborn") == (0, "137\n", "")
    assert cli("rm", "stubborn")[0] == 0


@pytest.mark.parametrize("sig", ["SIGUSR1", "USR1", "10"])
def test_kill_sends_the_chosen_signal(cli: Run, home: Store, sig: str) -> None:
    assert cli("run", "-d", "--name", "signalled", "busybox", "sh", "-c",
               "trap 'exit 5' USR1; echo ready; while true; do sleep 0.1; done")[0] == 0
    wait_for(ready(home, "signalled"), "the trap to be set")
    assert cli("kill", "-s", sig, "signalled") == (0, "signalled\n", "")
    assert cli("wait", "signalled") == (0, "5\n", "")
    assert cli("rm", "signalled")[0] == 0


def test_kill_accepts_lowercase_signal_names(cli: Run, home: Store) -> None:
    assert cli("run", "-d", "--name", "lower", "busybox", "sh", "-c",
               "trap 'exit 5' USR1; echo ready; while true; do sleep 0.1; done")[0] == 0
    wait_for(ready(home, "lower"), "the trap to be set")
    try:
        assert cli("kill", "-s", "usr1", "lower") == (0, "lower\n", "")
        assert cli("wait", "lower") == (0, "5\n", "")
    finally:
        cli("rm", "-f", "lower")


def test_kill_then_wait_gives_137(cli: Run, home: Store) -> None:
    assert cli("run", "-d", "--name", "killed", "busybox", "sleep", "60")[0] == 0
    assert cli("kill", "killed") == (0, "killed\n", "")
    assert cli("wait", "killed") == (0, "137\n", "")
    code, _, err = cli("kill", "killed")
    assert code != 0 and "not running" in err
    assert cli("rm", "killed")[0] == 0


def test_a_failed_start_leaves_created_if_it_never_ran_else_exited(cli: Run, home: Store, tmp_path: Path) -> None:
    """As Docker: ``run`` of a command that is not there exits 127 and the container stays "Created" (it never
    ran: no StartedAt), its code and error kept; a container that ran before and fails to start is "Exited"."""
    code, _, err = cli("run", "--name", "typo", "busybox", "ecoh", "hi")
    assert code == 127 and "ecoh" in err
    assert cli("ps", "-a", "--format", "{{.Names}} {{.Status}}")[1] == "typo Created\n"
    assert cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", "typo")[1] == "created 127\n"
    assert state(home, "typo")["started_at"] is None and "ecoh" in state(home, "typo")["error"]
    code, _, err = cli("start", "typo")  # it may be started again: it fails again, the same way
    assert code != 0 and "ecoh" in err and status(home, "typo") == "created"
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\necho ran\n")
    script.chmod(0o755)
    assert cli("run", "--name", "ran", "-v", f"{tmp_path}:/job", "busybox", "/job/job.sh")[:2] == (0, "ran\n")
    first = state(home, "ran")["started_at"]
    script.unlink()  # its command gone: the next start fails
    assert cli("start", "ran")[0] != 0
    assert status(home, "ran") == "exited" and state(home, "ran")["exit_code"] == 127
    assert state(home, "ran")["started_at"] >= first


def test_a_state_a_crash_left_empty_is_pruned_and_hides_no_other_container(cli: Run, home: Store) -> None:
    """state.json is not fsync'ed (runc's is not either): a power cut may leave it empty or cut. Such a
    container is skipped by ps, not an error for every other, and container prune removes its directory
    (once it has not changed for a minute: not a container being made right now)."""
    for name in ("emptied", "wrong", "fine"):
        assert cli("create", "--name", name, "busybox", "true")[0] == 0
    emptied, wrong = (home.home / "containers" / state(home, n)["id"] for n in ("emptied", "wrong"))
    (emptied / "state.json").write_text("")
    (wrong / "state.json").write_text("[]")
    assert cli("ps", "-a", "--format", "{{.Names}}") == (0, "fine\n", "")
    assert cli("container", "prune", "-f")[0] == 0
    assert emptied.exists()  # (just now changed: it might be in the making)
    long_ago = time.time() - 120
    for d in (emptied, wrong):
        os.utime(d / "state.json", (long_ago, long_ago))
        os.utime(d, (long_ago, long_ago))
    assert cli("container", "prune", "-f")[0] == 0
    assert not emptied.exists() and not wrong.exists()
    assert not any(p.name.endswith(".removing") for p in (home.home / "containers").iterdir())


def test_an_interrupted_first_unpacking_leaves_no_container(home: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run of an image unpacks its layers (seconds, for python): done before the container is made,
    a Ctrl-C or a kill meanwhile leaves no `Created` container holding the name and the image."""
    from pycontainers import rootfs
    from pycontainers.container import create_from_image

    def interrupted(*_args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rootfs, "_extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        create_from_image(home, "busybox", ["true"], name="first", auto_remove=True)
    assert list_containers(home) == []
    assert not any(home.tmp_dir.iterdir())  # nor half a layer


def test_rm_refuses_a_running_container_unless_forced(cli: Run, home: Store) -> None:
    assert cli("run", "-d", "--name", "busy", "busybox", "sleep", "60")[0] == 0
    st = state(home, "busy")
    code, out, err = cli("rm", "busy")
    assert code != 0
    assert out == ""
    assert err == ('Error: cannot remove container "/busy": container is running: stop the container before '
                   "removing or force remove\n")  # (Docker's words)
    assert status(home, "busy") == "running"
    assert cli("rm", "-f", "busy") == (0, "busy\n", "")
    gone(home, st["id"], st["pid"], st["pid_start"])


def test_rm_f_takes_a_running_rm_container_whose_monitor_removes_it_too(cli: Run, home: Store) -> None:
    assert cli("run", "-d", "--rm", "--name", "ephemeral", "busybox", "sleep", "60")[0] == 0
    st = state(home, "ephemeral")
    assert cli("rm", "-f", "ephemeral") == (0, "ephemeral\n", "")  # the monitor renamed it first: fine
    assert containers_left(home.home) == []  # the monitor deletes the files, a moment later
    gone(home, st["id"], st["pid"], st["pid_start"])


def test_rm_f_of_a_container_that_ends_meanwhile_removes_it(home: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """It was running when rm -f looked, and has exited by the time rm -f kills it: as Docker, that is no error."""
    from pycontainers import container as containers
    from pycontainers.runtime import start_detached

    c = containers.create_from_image(home, "busybox", ["sleep", "0.2"])
    assert start_detached(c)["event"] == "started"
    really_kill = containers.kill

    def kill_too_late(container: containers.Container, sig: int = signal.SIGKILL) -> None:
        containers.wait(container, 10)
        really_kill(container, sig)  # "it is not running"

    monkeypatch.setattr(containers, "kill", kill_too_late)
    containers.remove(c, force=True)
    assert containers_left(home.home) == []


def test_a_signal_never_reaches_a_process_that_reused_the_containers_pid(home: Store) -> None:
    """The state names PID 1 by PID and start time: a PID now another process's (reused) is not signalled."""
    from pycontainers import container as containers

    c = containers.create_from_image(home, "busybox", ["true"])
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        start = process_start_time(stranger.pid)
        assert start is not None
        c.state.update(status="running", pid=stranger.pid, pid_start=start + 1)  # as if PID 1's PID were reused
        containers.send_signal(c, signal.SIGKILL)
        time.sleep(0.1)
        assert stranger.poll() is None  # untouched
        c.state["pid_start"] = start  # the very process: now it is signalled
        containers.send_signal(c, signal.SIGKILL)
        assert stranger.wait(5) == -signal.SIGKILL
    finally:
        stranger.kill()
        stranger.wait()
        containers.remove(containers.get_container(home, c.id))


def test_a_rm_container_whose_launch_fails_is_removed_at_once(home: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """No monitor ever existed to remove it (its helper died, say): `run --rm` leaves nothing behind."""
    from pycontainers import runtime
    from pycontainers.container import ContainerError as CoreContainerError
    from pycontainers.container import create_from_image

    def helper_gone() -> Zygote:
        raise CoreContainerError("zygote: the helper process that starts containers exited")

    container = create_from_image(home, "busybox", ["true"], name="never-started", auto_remove=True)
    monkeypatch.setattr(Zygote, "get", staticmethod(helper_gone))
    with pytest.raises(CoreContainerError, match="helper process"):
        runtime.start(container, (0, 1, 2), helper=True)
    assert container_entries(home.home) == []  # its directory and its name


def test_an_interrupted_launch_leaves_a_rm_container_to_its_monitor() -> None:
    """Only when no monitor holds the report pipe may a failed start remove a --rm container itself."""
    from pycontainers.runtime import _forked

    removed: list[str] = []
    holder: list[subprocess.Popen[bytes]] = []

    def monitor_forked_then_interrupted(write_fd: int) -> None:
        holder.append(subprocess.Popen(["sleep", "5"], pass_fds=(write_fd,)))  # "the monitor" holds it
        raise KeyboardInterrupt

    def refused(_write_fd: int) -> None:
        raise PyContainersError("zygote: no such image")

    try:
        with pytest.raises(KeyboardInterrupt):
            _forked(monitor_forked_then_interrupted, monitor_forked_then_interrupted, False,
                    lambda: removed.append("interrupted"))
        with pytest.raises(PyContainersError):
            _forked(refused, refused, False, lambda: removed.append("refused"))
    finally:
        for p in holder:
            p.kill()
            p.wait()
    assert removed == ["refused"]


def test_name_conflicts_are_rejected(cli: Run, home: Store) -> None:
    assert cli("run", "-d", "--name", "unique", "busybox", "sleep", "60")[0] == 0
    code, out, err = cli("run", "--rm", "--name", "unique", "busybox", "true")
    assert code == 125
    assert out == ""
    assert 'The container name "/unique" is already in use by container' in err
    assert len(list_containers(home)) == 1
    assert cli("rm", "-f", "unique")[0] == 0


def test_container_prune_removes_only_stopped_containers(home: Store) -> None:
    client = Client(home.home)
    done = client.containers.run("busybox", ["true"], detach=True, name="finished")
    running = client.containers.run("busybox", ["sleep", "60"], detach=True, name="still-running")
    try:
        assert done.wait()["StatusCode"] == 0
        result = client.containers.prune()
        assert result["ContainersDeleted"] == [done.id]
        assert not cdir(home, done.id).exists()
        assert [c.name for c in client.containers.list()] == ["still-running"]
    finally:
        running.remove(force=True)  # a handle that never reloaded: remove() must read the state itself
    assert client.containers.list(all=True) == []


def test_ps_format_with_no_containers(cli: Run) -> None:
    assert cli("ps", "-a", "--format", "{{.Names}} {{.State}}") == (0, "", "")


# ------------------------------------------------------------------------------------------ daemonless


@pytest.fixture
def multithreaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make this process multithreaded (so the API must use the zygote); close the zygote afterwards."""
    monkeypatch.setattr(Zygote, "_instance", None)
    release = threading.Event()
    thread = threading.Thread(target=release.wait, daemon=True)
    thread.start()
    try:
        yield
    finally:
        release.set()
        thread.join()
        zygote = Zygote._instance
        if zygote is not None:
            zygote.sock.close()  # the helper exits when its client goes away
            zygote.process.wait(timeout=30)


def test_container_outlives_the_zygote(home: Store, multithreaded: None) -> None:
    client = Client(home.home)
    c = client.containers.run("busybox", ["sh", "-c", "echo ready; sleep 60"], detach=True, name="orphan")
    zygote = Zygote._instance
    assert zygote is not None and zygote.process.poll() is None
    st = state(home, "orphan")
    assert stat_fields(st["monitor_pid"])[1] != str(zygote.process.pid)  # double fork: not the zygote's child
    zygote.process.send_signal(signal.SIGKILL)
    zygote.process.wait()
    wait_for(ready(home, "orphan"), "the container's output")
    assert c.status == "running"
    assert pid_alive(st["pid"], st["pid_start"])
    # The next container gets a new helper.
    assert client.containers.run("busybox", ["echo", "again"], remove=True) == b"again\n"
    assert Zygote._instance is not None and Zygote._instance.process.pid != zygote.process.pid
    assert c.status == "running"
    c.remove(force=True)
    gone(home, c.id, st["pid"], st["pid_start"])


def test_killed_monitor_leaves_a_truthful_status_and_rm_f_cleans_up(cli: Run, home: Store) -> None:
    code, out, _ = cli("run", "-d", "--name", "unmonitored", "busybox", "sleep", "60")
    assert code == 0
    cid = out.strip()
    st = state(home, "unmonitored")
    os.kill(st["monitor_pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(st["monitor_pid"], st["monitor_start"]), "the monitor to die")
    assert pid_alive(st["pid"], st["pid_start"])
    assert status(home, "unmonitored") == "running"
    assert ps_rows(cli)["unmonitored"].startswith("Up")
    os.kill(st["pid"], signal.SIGKILL)  # nobody is left to record the exit
    wait_for(lambda: status(home, "unmonitored") == "dead", "the container to be seen dead")
    assert ps_rows(cli, "-a")["unmonitored"].startswith("Dead")
    assert "unmonitored" not in ps_rows(cli)
    assert cgroup_dirs_of(cid) != []  # nobody removed them yet...
    assert cli("rm", "-f", "unmonitored") == (0, "unmonitored\n", "")
    gone(home, cid, st["pid"], st["pid_start"])  # ...rm -f did


# ------------------------------------------------------------------------------------------------- API


def test_api_run_returns_stdout(home: Store) -> None:
    client = Client(home.home)
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], remove=True)
    assert out == b"out\n"


def test_api_run_with_stderr(home: Store) -> None:
    client = Client(home.home)
    out = client.containers.run("busybox", "sh -c 'echo out; echo err >&2'", remove=True, stderr=True)
    assert b"out\n" in out and b"err\n" in out


def test_api_run_raises_container_error(home: Store) -> None:
    client = Client(home.home)
    with pytest.raises(ContainerError) as info:
        client.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 3"], remove=True)
    assert info.value.exit_status == 3
    assert info.value.stderr == b"oops\n"
    assert "oops" in str(info.value)
    with pytest.raises(ContainerError) as info:
        client.containers.run("busybox", ["no-such-command"], remove=True)
    assert info.value.exit_status == 127
    assert b"executable file not found in $PATH" in info.value.stderr


def test_api_run_detached(home: Store) -> None:
    client = Client(home.home)
    c = client.containers.run("busybox", ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo ready; "
                                          "while true; do sleep 0.1; done"], detach=True, name="api-detached")
    assert HEX64.match(c.id)
    assert c.name == "api-detached"
    assert c.status == "running"
    assert client.containers.get("api-detached").id == c.id
    assert [x.id for x in client.containers.list()] == [c.id]
    wait_for(lambda: b"ready" in c.logs(), "the trap to be set")
    c.stop(timeout=30)
    assert c.wait() == {"StatusCode": 0, "Error": None}
    assert c.status == "exited"
    assert c.logs() == b"ready\nbye\n"
    assert c.attrs["State"]["ExitCode"] == 0
    c.remove()
    assert not cdir(home, c.id).exists()


def test_api_run_echo_streams_to_sys_stdout(home: Store, capsys: pytest.CaptureFixture[str]) -> None:
    client = Client(home.home)
    out = client.containers.run("busybox", ["echo", "shown"], remove=True, echo=True)
    assert out == b"shown\n"
    assert capsys.readouterr().out == "shown\n"


def test_api_kill_on_a_fresh_detached_handle(home: Store) -> None:
    """The handle from run(detach=True) was made before the container ran: kill() must read the state itself."""
    c = Client(home.home).containers.run("busybox", ["sleep", "60"], detach=True, name="fresh-kill")
    c.kill()
    assert c.wait()["StatusCode"] == 137


def test_api_stop_on_a_fresh_detached_handle(home: Store) -> None:
    c = Client(home.home).containers.run("busybox", ["sh", "-c", "trap 'exit 0' TERM; echo ready; "
                                                     "while true; do sleep 0.1; done"], detach=True, name="fresh-stop")
    wait_for(lambda: b"ready" in c.logs(), "the trap to be set")
    c.stop(timeout=30)
    assert status(home, "fresh-stop") == "exited"
    c.remove()
    assert not cdir(home, c.id).exists()


def test_api_run_remove_true_has_removed_the_container_on_return(home: Store) -> None:
    client = Client(home.home)
    for _ in range(10):
        client.containers.run("busybox", ["true"], remove=True)
        # Gone from `ps -a` on return: its directory renamed out of sight, its files deleted right after.
        assert list_containers(home) == []
        assert [d for d in container_entries(home.home) if not d.endswith(".removing")] == []
    wait_for(lambda: not container_entries(home.home), "the last container's files to be deleted")


def test_wait_gives_the_exit_code_of_a_container_that_removed_itself(cli: Run, home: Store) -> None:
    code, out, _ = cli("run", "-d", "--rm", "--name", "brief", "busybox", "sh", "-c", "sleep 0.3; exit 3")
    assert code == 0
    assert cli("wait", "brief") == (0, "3\n", "")  # as Docker: the code, though the container is gone
    assert "brief" not in ps_rows(cli, "-a")
    client = Client(home.home)
    c = client.containers.run("busybox", ["sh", "-c", "sleep 0.3; exit 4"], detach=True, remove=True)
    assert c.wait()["StatusCode"] == 4


def test_a_name_belongs_to_one_container_until_it_is_removed(home: Store) -> None:
    from pycontainers.container import claim_name, create_from_image, names_dir

    first = create_from_image(home, "busybox", ["true"], name="unique")
    with pytest.raises(PyContainersError, match=f'name "/unique" is already in use by container "{first.id}"'):
        create_from_image(home, "busybox", ["true"], name="unique")
    made = [home.home / "containers" / (c * 64) for c in "fab"]
    for d in made:  # (create makes a container's directory, then claims its name from it)
        d.mkdir()
    assert not claim_name(home, "unique", "f" * 64)  # what two `run --name unique` at once come down to
    assert claim_name(home, "in-the-making", "a" * 64)  # claimed, its state not written yet...
    assert not claim_name(home, "in-the-making", "b" * 64)  # ...so it is not stale
    link = names_dir(home) / "in-the-making"
    os.utime(link, (0, 0), follow_symlinks=False)  # a claim from long ago whose container never came
    assert claim_name(home, "in-the-making", "b" * 64) and os.readlink(link) == "b" * 64
    assert os.path.samestat(os.lstat(link), os.lstat(made[2] / "name"))  # a hard link: no new inode in .names
    os.unlink(link)
    for d in made:
        shutil.rmtree(d)
    assert get_container(home, "unique").id == first.id
    assert [c.id for c in list_containers(home)] == [first.id]  # the refused one left nothing behind
    remove(first)
    assert not (names_dir(home) / "unique").is_symlink()  # the name went with it
    assert create_from_image(home, "busybox", ["true"], name="unique").id != first.id


def test_a_class_worth_of_containers_gets_random_names_of_dockers_kind(home: Store) -> None:
    """Hundreds of unnamed containers each draw a free ``adjective_scientist`` name (none falls back to
    ``container_<ID>``, which a small word list would come to after a couple of hundred)."""
    from pycontainers.container import create_from_image

    made = [create_from_image(home, "busybox", ["true"]) for _ in range(250)]
    try:
        names = [c.name for c in made]
        assert len(set(names)) == len(names)
        assert all(re.fullmatch(r"[a-z]+_[a-z]+", n) for n in names), [n for n in names if "_" not in n][:3]
    finally:
        for c in made:
            remove(c)


def test_containers_directories_are_spread_over_an_ext4_disk(home: Store) -> None:
    """``chattr +T`` on ``containers/``: on ext2/3/4 each container's directory goes to a block group of its own
    (see ``linux.set_top_directory``); where there is no such flag (tmpfs), the engine goes on without it."""
    from pycontainers.container import create_from_image
    from pycontainers.linux import set_top_directory

    create_from_image(home, "busybox", ["true"])
    where = str(home.home / "containers")
    kind = subprocess.run(["stat", "-f", "-c", "%T", where], capture_output=True, text=True, check=True).stdout
    if kind.strip() == "ext2/ext3":  # (how stat names ext4 too)
        attrs = subprocess.run(["lsattr", "-d", where], capture_output=True, text=True, check=True).stdout
        assert "T" in attrs.split()[0], attrs
    shm = Path("/dev/shm") / f"pyc-test-{uuid.uuid4().hex[:8]}"
    shm.mkdir()
    try:
        assert set_top_directory(str(shm)) is False
    finally:
        shm.rmdir()


def test_names_of_a_store_from_before_name_links_are_still_taken(home: Store) -> None:
    import shutil

    from pycontainers.container import create_from_image, names_dir

    old = create_from_image(home, "busybox", ["true"], name="veteran")
    shutil.rmtree(names_dir(home))  # as an older version left the store
    with pytest.raises(PyContainersError, match="already in use"):
        create_from_image(home, "busybox", ["true"], name="veteran")
    assert os.readlink(names_dir(home) / "veteran") == old.id


def test_container_prune_finishes_a_removal_that_a_killed_monitor_left_half_done(home: Store) -> None:
    from pycontainers.api import prune_containers
    from pycontainers.container import create_from_image, discard_directory

    c = create_from_image(home, "busybox", ["true"])
    (c.dir / "upper" / "left-over").write_text("x")
    trash = discard_directory(c)  # the monitor of a --rm container renames it, then is killed
    assert trash.name == f".{c.id}.removing" and trash.exists()
    assert list_containers(home) == []  # out of sight at once
    assert prune_containers(home)["ContainersDeleted"] == []
    assert not trash.exists()


# ------------------------------------------------------------------------------------------------- leaks


def snapshot(store: Store) -> dict[str, Any]:
    return {
        "mount lines": len(mountinfo()),
        "cgroups": cgroup_entries(),
        "children": children_of(os.getpid()),
        "container dirs": set(container_entries(store.home)),
    }


def test_no_leaks_over_200_runs(home: Store) -> None:
    client = Client(home.home)
    assert client.containers.run("busybox", ["true"], remove=True) == b""  # layers unpacked, helper (if any) up
    wait_for(lambda: not container_entries(home.home), "the warm-up container to be removed")
    before = snapshot(home)
    for _ in range(200):
        assert client.containers.run("busybox", ["true"], remove=True) == b""
    assert list_containers(home) == []  # run(remove=True) returns only once the container is gone
    # Its files and cgroup go right after the exit is reported (see runtime._finish).
    wait_for(lambda: not container_entries(home.home), "the last container's files to be deleted")
    wait_for(lambda: not any(cgroup_dirs_of(cid) for cid in TRACK.ids), "the last container's cgroup to go")
    after = snapshot(home)
    # Other users' containers may come and go under the shared cgroup parents: compare only ours.
    ours = {e for e in before["cgroups"] ^ after["cgroups"] if e.rpartition("/")[2] in TRACK.ids}
    assert ours == set()
    del before["cgroups"], after["cgroups"]
    assert after == before
    assert processes_mentioning(str(home.home)) == []


def test_a_cgroup_that_cannot_be_joined_stops_the_start_in_one_line(home: Store,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from pycontainers import cgroup as cgroup_module
    from pycontainers import container as containers
    from pycontainers import runtime

    def refuse(self: Cgroup, pid: int) -> None:
        raise cgroup_module.CgroupError(f"write {pid!r} to cgroup.procs: No space left on device")

    monkeypatch.setattr(Cgroup, "add", refuse)  # the monitor is forked from this process: it inherits this
    monkeypatch.setattr("pycontainers.zygote.is_single_threaded", lambda: True)  # fork here, not in the zygote
    c = containers.create_from_image(home, "busybox", ["echo", "never"])
    code, out, err = runtime.run_attached(c)
    assert (code, out) == (125, b"")  # PID 1 never got its go, so the command never ran
    assert err.decode().count("\n") == 1 and "No space left on device" in err.decode()
    # Never run: "created", with the code and why, as Docker keeps a failed first start
    assert c.reload().state["status"] == "created" and "cgroup.procs" in c.state["error"]
    assert c.state["exit_code"] == 125 and c.state["started_at"] is None and c.status_text() == "Created"
    containers.remove(c)


def test_it_without_a_terminal_to_read_is_refused_at_once(home: Store) -> None:
    """`run -it` / `exec -it` with stdin that is not a terminal would wait forever for keys: Docker refuses."""
    proc = pyc(home, "run", "--rm", "-it", "busybox", "sh", timeout=30)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "pycontainers: the input device is not a TTY\n")
    assert pyc(home, "run", "-it", "-d", "--name", "bg", "busybox", "sh").returncode == 0  # detached: no keys
    proc = pyc(home, "exec", "-it", "bg", "sh", timeout=30)
    assert (proc.returncode, proc.stderr) == (1, "pycontainers: the input device is not a TTY\n")
    assert pyc(home, "rm", "-f", "bg").returncode == 0
    assert list_containers(home) == []


def test_wait_gives_the_exit_code_of_a_container_removed_by_force(home: Store) -> None:
    """`wait` in one shell, `rm -f` in another: the waiter hears 137 (SIGKILL), not 0, though the container's
    state went with it."""
    assert pyc(home, "run", "-d", "--name", "w", "busybox", "sleep", "100").returncode == 0
    env = {**os.environ, "PYCONTAINERS_HOME": str(home.home)}
    waiter = subprocess.Popen([PYC, "wait", "w"], env=env, stdout=subprocess.PIPE, text=True)
    wait_for(lambda: Path(f"/proc/{waiter.pid}/wchan").read_text() in ("hrtimer_nanosleep", "do_nanosleep"),
             "the waiter to poll")  # (it has found the container by now)
    assert pyc(home, "rm", "-f", "w").returncode == 0
    out, _ = waiter.communicate(timeout=30)
    assert (waiter.returncode, out) == (0, "137\n")


def test_start_attach_runs_on_this_terminal_with_its_exit_code(home: Store) -> None:
    """`start -a` (`-ai`): the container's output here and its exit code ours, as `run` without -d; logged."""
    assert pyc(home, "create", "--name", "sa", "busybox", "sh", "-c", "echo out; echo err >&2; exit 4").returncode == 0
    proc = pyc(home, "start", "-a", "sa")
    assert (proc.returncode, proc.stdout, proc.stderr) == (4, "out\n", "err\n")
    assert pyc(home, "create", "-i", "--name", "echoes", "busybox", "cat").returncode == 0
    proc = pyc(home, "start", "-ai", "echoes", input="piped in\n")
    assert (proc.returncode, proc.stdout) == (0, "piped in\n")
    assert pyc(home, "logs", "sa").stdout.count("out") == 1
    assert pyc(home, "start", "-a", "sa", "echoes").returncode == 125  # one at a time, as docker
    assert pyc(home, "rm", "sa", "echoes").returncode == 0


def test_two_attached_starts_at_once_run_the_container_once(home: Store) -> None:
    """`start -a` twice at the same instant: one runs it on its terminal, the other is told it is running."""
    created = pyc(home, "create", "--name", "attached", "busybox", "sh", "-c", "sleep 5; echo ran")
    assert created.returncode == 0, created.stderr
    TRACK.note(created.stdout.strip())
    env = {**os.environ, "PYCONTAINERS_HOME": str(home.home)}
    starts = [subprocess.Popen([PYC, "start", "-a", "attached"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((p.wait(60), p.stdout.read(), p.stderr.read()) for p in starts)  # type: ignore[union-attr]
    assert results[0] == (0, "ran\n", "")
    assert results[1][0] == 1 and "container attached is already running" in results[1][2]
    assert pyc(home, "logs", "attached").stdout == "ran\n"  # it ran once
    assert pyc(home, "rm", "-f", "attached").returncode == 0


def test_two_starts_at_once_start_one_container(home: Store) -> None:
    """Two `pycontainers start` at the same instant (two terminals): one PID 1, and both commands succeed."""
    created = pyc(home, "create", "--name", "twice", "busybox", "sleep", "3598")
    assert created.returncode == 0, created.stderr
    TRACK.note(created.stdout.strip())
    env = {**os.environ, "PYCONTAINERS_HOME": str(home.home)}
    starts = [subprocess.Popen([PYC, "start", "twice"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True) for _ in range(2)]
    results = [(p.wait(60), p.stderr.read()) for p in starts]  # type: ignore[union-attr]
    assert results == [(0, ""), (0, "")]
    container = get_container(home, "twice")
    assert len(container_processes(container)) == 1  # one `sleep`, PID 1 of the one container
    assert pyc(home, "rm", "-f", "twice").returncode == 0
