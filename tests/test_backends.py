"""The back ends really run the container: runc from the exported bundle, proot on a copy; the monitor."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from processes import children, cmdline, logged

from pycontainers import container as containers
from pycontainers import runtime
from pycontainers.store import Store

needs_runc = pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
needs_proot = pytest.mark.skipif(shutil.which("proot") is None, reason="proot is not installed")


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@needs_runc
def test_runc_back_end_runs_the_bundle_with_runc(busybox_store: Store) -> None:
    c = containers.create_from_image(busybox_store, "busybox", ["sleep", "60"], runtime="runc")
    assert runtime.start_detached(c)["event"] == "started"
    c.reload()
    pid = c.state["pid"]
    assert eventually(lambda: comm(pid) == "runc")  # the monitor's child is runc itself ...
    state_dir = busybox_store.home / "runc" / c.id
    assert eventually((state_dir / "state.json").exists)  # ... which keeps its own state for the container
    assert eventually(lambda: bool(children(pid)) and comm(children(pid)[0]) == "sleep")
    inside = children(pid)
    containers.remove(c, force=True)  # SIGKILL is delivered by `runc kill`, so nothing is orphaned
    assert eventually(lambda: not any(alive(p) for p in inside))
    assert not state_dir.exists()


@needs_runc
def test_runc_back_end_passes_exit_codes_and_output(busybox_store: Store) -> None:
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "echo $$; exit 3"], runtime="runc")
    code, out, _ = runtime.run_attached(c)
    assert (code, out) == (3, b"1\n")


@needs_runc
def test_runc_back_end_runs_init_too(busybox_store: Store) -> None:
    """--init reaches runc through config.json: tini bound at /sbin/docker-init, the command behind it."""
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "echo $$; cat /proc/1/comm"],
                                     runtime="runc", init=True)
    code, out, _ = runtime.run_attached(c)
    pid, pid1 = out.split()
    assert (code, pid1) == (0, b"docker-init") and int(pid) > 1  # (runc init's Go threads took PIDs 2, 3...)


@needs_runc
def test_runc_stop_uses_the_stop_signal(busybox_store: Store) -> None:
    script = "trap 'exit 42' TERM; echo ready; sleep 60 & wait"
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", script], runtime="runc")
    runtime.start_detached(c)
    assert eventually(lambda: b"ready" in logged(c))  # the trap is set
    containers.stop(c, timeout=5)
    assert c.reload().state["exit_code"] == 42


def store_mounts(store: Store) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if str(store.home) in line]


@needs_runc
def test_runc_writes_into_the_writable_layer_that_diff_commit_and_restart_see(busybox_store: Store) -> None:
    """runc's root is the native overlayfs (mounted in the monitor's own mount namespace): what the container
    writes is in upper/, so `diff` and `commit` see it, a second start finds it, and nothing is copied."""
    script = "echo hi >> /newfile; rm -f /etc/group; cat /newfile"
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", script], runtime="runc")
    assert list((c.dir / "bundle" / "rootfs").iterdir()) == []  # a mount point, not a copy of the image
    assert runtime.run_attached(c)[:2] == (0, b"hi\n")
    expected = [("C", "/etc"), ("D", "/etc/group"), ("A", "/newfile")]
    assert containers.diff(c) == expected
    native = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", script], runtime="native")
    assert runtime.run_attached(native)[:2] == (0, b"hi\n")
    assert containers.diff(native) == expected  # the very same writable layer as natively
    image = containers.commit(c, "committed:runc")
    from_image = containers.create_from_image(busybox_store, image.id, ["sh", "-c", "cat /newfile; ls /etc/group"],
                                              runtime="runc")
    code, out, err = runtime.run_attached(from_image)
    assert (code, out) == (1, b"hi\n") and b"/etc/group" in err  # the file is in the image, the deletion too
    assert runtime.run_attached(c)[:2] == (0, b"hi\nhi\n")  # a restart: the writable layer is kept
    assert list((c.dir / "bundle" / "rootfs").iterdir()) == [] and store_mounts(busybox_store) == []
    for each in (c, native, from_image):
        containers.remove(each)
    assert store_mounts(busybox_store) == [] and not (busybox_store.home / "runc" / c.id).exists()


@needs_runc
def test_runc_bundle_export_still_copies_the_image(busybox_store: Store, tmp_path: Path) -> None:
    """`pycontainers bundle` makes a standalone bundle: a real rootfs, no cgroupsPath, no container files."""
    import json

    from pycontainers.bundle import export_bundle
    from pycontainers.image import get_image
    from pycontainers.spec import make_spec

    image = get_image(busybox_store, "busybox")
    dest = export_bundle(busybox_store, image, make_spec(image, "busybox", ["true"]), tmp_path / "bundle")
    assert (dest / "rootfs" / "bin" / "busybox").is_file()
    config = json.loads((dest / "config.json").read_text())
    assert config["root"]["path"] == "rootfs" and "cgroupsPath" not in config["linux"]
    assert not [m for m in config["mounts"] if m["destination"].startswith("/etc/")]


@needs_runc
def test_runc_top_finds_the_processes_in_runcs_cgroup(busybox_store: Store) -> None:
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "sleep 60 & sleep 61"], runtime="runc")
    assert runtime.start_detached(c)["event"] == "started"
    try:
        def commands() -> set[str]:
            return {row["CMD"] for row in containers.top(c)}

        assert eventually(lambda: {"sleep 60", "sleep 61"} <= commands())
        assert comm(c.reload().state["pid"]) == "runc"
        assert c.state["pid"] not in containers.processes(c)  # runc's own process is not the container's
    finally:
        containers.remove(c, force=True)
    assert not (busybox_store.home / "runc" / c.id).exists()


@needs_runc
def test_runc_records_an_oom_kill(busybox_store: Store) -> None:
    import glob

    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "x=0123456789; while :; do x=$x$x; done"],
                                     runtime="runc", memory="10m")
    assert runtime.run_attached(c)[0] == 137
    assert c.reload().state["oom_killed"] is True  # read from runc's cgroup, kept by --keep until then
    assert glob.glob(f"/sys/fs/cgroup/*/pycontainers/{c.id}") + glob.glob(f"/sys/fs/cgroup/pycontainers/{c.id}") == []
    assert not (busybox_store.home / "runc" / c.id).exists()  # runc deleted it once the counter was read
    ended = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "exit 137"], runtime="runc",
                                         memory="10m")
    assert runtime.run_attached(ended)[0] == 137
    assert ended.reload().state["oom_killed"] is False  # 137 alone is not an OOM kill
    containers.remove(c)
    containers.remove(ended)


@pytest.mark.parametrize("backend", [pytest.param("runc", marks=needs_runc), pytest.param("proot", marks=needs_proot)])
@pytest.mark.parametrize(("command", "code", "message"), [
    (["/nope"], 127, 'exec: "/nope": stat /nope: no such file or directory'),
    (["nosuchcmd"], 127, 'exec: "nosuchcmd": executable file not found in $PATH'),
    (["/etc/passwd"], 126, 'exec: "/etc/passwd": permission denied'),
    (["/etc"], 126, 'exec: "/etc": permission denied'),
    (["/data/tool"], 0, ""),  # found through a volume, not in the image
    (["/bin/true"], 0, ""),  # /bin/true -> busybox: a symlink, followed inside the image
])
def test_runc_and_proot_give_dockers_exit_codes_for_a_command_that_cannot_run(
        busybox_store: Store, tmp_path: Path, backend: str, command: list[str], code: int, message: str) -> None:
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\nexit 0\n")
    tool.chmod(0o755)
    c = containers.create_from_image(busybox_store, "busybox", command, runtime=backend,
                                     volumes=[f"{tmp_path}:/data"])
    got, out, err = runtime.run_attached(c)
    assert (got, out) == (code, b"")
    assert err.decode().strip() == message  # Docker's words, not a line of runc's log or proot's
    containers.remove(c)
    assert store_mounts(busybox_store) == []


@needs_runc
def test_an_auto_removed_runc_container_leaves_nothing_whether_it_ran_or_not(busybox_store: Store) -> None:
    """--rm: the monitor unmounts runc's root in its own namespace before the directory is deleted (else the
    deletion would walk into the container's files), and runc's state and cgroup go too."""
    import glob

    for command, code in ((["sh", "-c", "echo x > /x; exit 3"], 3), (["nosuchcmd"], 127)):
        c = containers.create_from_image(busybox_store, "busybox", command, runtime="runc", auto_remove=True)
        assert runtime.run_attached(c)[0] == code
        assert eventually(lambda c=c: not c.dir.exists() and containers.list_containers(busybox_store) == [])
        assert eventually(lambda c=c: not glob.glob(f"{busybox_store.home}/containers/.{c.id}.removing"))
        assert not (busybox_store.home / "runc" / c.id).exists() and store_mounts(busybox_store) == []
        assert glob.glob(f"/sys/fs/cgroup/*/pycontainers/{c.id}") == []
    assert not list((busybox_store.home / "layers").rglob("x"))  # the image's layers are untouched


@needs_proot
def test_proot_back_end_fakes_root_without_a_pid_namespace(busybox_store: Store) -> None:
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "echo $$; id -u; cat /etc/hostname"],
                                     runtime="proot", user="1000")
    code, out, err = runtime.run_attached(c)
    assert code == 0, err
    pid, uid, hostname = out.decode().split()
    assert pid != "1" and uid == "1000" and hostname == c.spec.hostname
    assert os.path.isdir(c.dir / "rootfs" / "bin")  # proot works on a private copy of the image
    from pycontainers.api import container_inspect

    assert container_inspect(c)["Driver"] == "vfs"  # a copy, as Docker's vfs storage driver makes: no overlay


@needs_proot
def test_proot_kill_leaves_no_traced_process_behind(busybox_store: Store) -> None:
    # Killing only proot would leave the processes it traces running, untraced, on the host's files.
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "sleep 60 & sleep 60"], runtime="proot")
    runtime.start_detached(c)
    # proot, sh and two sleeps (a process proot has just started shows as "prooted-..." for a moment)
    assert eventually(lambda: sum(comm(p) == "sleep" for p in containers.processes(c.reload())) == 2)
    inside = containers.processes(c)
    containers.kill(c, signal.SIGKILL)
    assert containers.wait(c, 10) == 137
    assert eventually(lambda: not any(alive(p) for p in inside))
    containers.remove(c)


@needs_proot
def test_proot_stop_signals_the_command_not_proot(busybox_store: Store) -> None:
    script = "trap 'echo got-term; exit 42' TERM; echo ready; sleep 60 & wait"
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", script], runtime="proot")
    runtime.start_detached(c)
    assert eventually(lambda: b"ready" in logged(c))
    containers.stop(c, timeout=5)
    assert c.reload().state["exit_code"] == 42 and b"got-term" in logged(c)
    containers.remove(c)


@needs_proot
def test_a_proot_command_ended_by_stop_or_kill_exits_128_plus_the_signal(busybox_store: Store) -> None:
    # proot itself exits 255 for a command killed by a signal, and prints a line about it ("proot info:
    # ... terminated with signal 15") into the container's output: neither is what Docker users see.
    c = containers.create_from_image(busybox_store, "busybox", ["sleep", "60"], runtime="proot")
    for ending, expected in ((lambda: containers.stop(c, timeout=5), 143),
                             (lambda: containers.send_signal(c, signal.SIGUSR1), 138)):
        runtime.start_detached(c)
        assert eventually(lambda: bool(containers.child_pids(c.reload().state["pid"])))
        ending()
        assert containers.wait(c, 10) == expected
    assert b"proot" not in logged(c)
    suicide = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "kill -TERM $$"], runtime="proot")
    assert runtime.run_attached(suicide)[0] == 255  # no signal of ours: proot's own code, not a guess
    containers.remove(suicide)
    containers.remove(c)


@needs_proot
def test_proot_exit_codes_after_a_signal_a_shell_dies_of_or_catches(busybox_store: Store) -> None:
    # A shell whose last `sleep` exited 0: proot says 0 when the shell dies of stop's SIGTERM (Docker: 143);
    # a shell that catches USR1 and exits 255 ends with its own 255, not 128 + 10.
    for script, ending, expected in (
            ("echo ready; while :; do sleep 0.1; done", lambda c: containers.stop(c, timeout=5), 143),
            ('trap "exit 255" USR1; echo ready; while :; do sleep 0.1; done',
             lambda c: containers.send_signal(c.reload(), signal.SIGUSR1), 255)):
        c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", script], runtime="proot")
        runtime.start_detached(c)
        assert eventually(lambda c=c: b"ready" in logged(c))  # (its trap is set)
        ending(c)
        assert containers.wait(c, 10) == expected
        containers.remove(c)


@needs_proot
def test_ctrl_c_on_an_attached_proot_run_or_exec_reaches_the_command(busybox_store: Store) -> None:
    # proot passes no signal on: the CLI gives Ctrl-C to the command it started, as natively (sig-proxy).
    import subprocess
    import sys

    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
    script = ["sh", "-c", 'trap "exit 7" INT; echo ready; sleep 30 & wait']

    def interrupted(*args: str) -> int:
        proc = subprocess.Popen([sys.executable, "-m", "pycontainers", *args, *script], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGINT)
        return proc.wait(timeout=15)

    assert interrupted("run", "--rm", "--runtime", "proot", "busybox") == 7
    c = containers.create_from_image(busybox_store, "busybox", ["sleep", "60"], runtime="proot")
    runtime.start_detached(c)
    assert interrupted("exec", c.id) == 7  # the command of the second proot that exec runs
    assert c.reload().status == "running"  # the exec's Ctrl-C was not the container's
    containers.remove(c, force=True)


def test_the_monitor_names_itself(busybox_store: Store) -> None:
    c = containers.create_from_image(busybox_store, "busybox", ["sleep", "60"])
    runtime.start_detached(c)
    try:
        assert comm(c.reload().state["monitor_pid"]) == "pyc-monitor"  # in `ps -e` and `top`
    finally:
        containers.remove(c, force=True)


@needs_proot
def test_a_proot_container_ends_with_its_first_process(busybox_store: Store) -> None:
    # Docker's rule (PID 1 exits, its PID namespace goes): proot has no PID namespace, so the monitor
    # kills what the command left behind, and the exit code is still the command's.
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "sleep 100 & echo hi; exit 3"],
                                     runtime="proot")
    started = time.monotonic()
    assert runtime.run_attached(c)[:2] == (3, b"hi\n")
    assert time.monotonic() - started < 20
    assert not [p for p in os.listdir("/proc") if p.isdigit() and cmdline(int(p)) == b"sleep\0100\0"]
    containers.remove(c)


@needs_proot
def test_a_proot_command_that_ended_before_the_monitor_looked_still_ends_the_container(busybox_store: Store) -> None:
    """On a busy machine the command may run and end before the monitor first looks for it among proot's
    children, leaving a process behind: the container still ends then, with the command's exit code."""
    import subprocess

    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "sleep 100 & exit 3"], runtime="proot")
    argv, env = runtime.external_command(c)
    proot = subprocess.Popen(argv, env=env, process_group=0)  # as the monitor starts it: a group of its own
    try:
        # The monitor looks late: the command has ended, the sleep it left is all that runs under proot.
        assert eventually(lambda: not containers.child_pids(proot.pid)
                          and len(containers.processes_in_group(proot.pid)) == 2, timeout=20)
        started = time.monotonic()
        runtime.end_with_the_first_tracee(proot.pid)
        assert proot.wait(timeout=20) == 3
        assert time.monotonic() - started < 10
        left = [p for p in containers.processes_in_group(proot.pid) if containers._stat_field(p, 0) != "Z"]
        assert left == []  # (killed; a zombie is this sandbox's first process failing to reap it)
    finally:
        proot.kill()
        runtime.remove_temp_files_when_proot_ends(proot.pid)  # as the monitor does after a SIGKILL
        proot.wait()
        containers.remove(c)


@needs_proot
def test_proot_killed_from_outside_takes_its_processes_along(busybox_store: Store) -> None:
    c = containers.create_from_image(busybox_store, "busybox", ["sleep", "60"], runtime="proot")
    runtime.start_detached(c)
    proot = c.reload().state["pid"]
    assert eventually(lambda: bool(containers.child_pids(proot)))
    inside = containers.child_pids(proot)
    os.kill(proot, signal.SIGKILL)  # not through pycontainers: untraced, `sleep` would run on the host's files
    assert containers.wait(c, 10) == 137
    assert eventually(lambda: not any(alive(p) for p in inside))
    containers.remove(c)


def proot_leftovers(proot_pid: int) -> list[str]:
    """What proot *proot_pid* has in /tmp: its glue directory (proot-PID-XXXXXX) and loader (prooted-PID-XXXXXX)."""
    return sorted(n for n in os.listdir("/tmp") if n.startswith((f"proot-{proot_pid}-", f"prooted-{proot_pid}-")))


@needs_proot
@pytest.mark.parametrize("how", ["rm -f", "proot killed from outside"])
def test_a_killed_proot_container_leaves_nothing_in_tmp(busybox_store: Store, how: str) -> None:
    # proot deletes its temporary files when it exits, not when it is SIGKILLed: the monitor does then.
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "env; echo ready; sleep 60"],
                                     runtime="proot")
    runtime.start_detached(c)
    proot = c.reload().state["pid"]
    try:
        assert eventually(lambda: b"ready" in logged(c))
        assert proot_leftovers(proot)  # there is something to leave behind
        assert b"PROOT_" not in logged(c)  # proot's own settings are not the container's
        if how == "rm -f":
            containers.remove(c, force=True)  # returns once the monitor has recorded the exit, /tmp clean
        else:
            os.kill(proot, signal.SIGKILL)
            assert containers.wait(c, 10) == 137
        assert proot_leftovers(proot) == []
    finally:
        containers.remove(c, force=True)


@needs_proot
def test_a_proot_container_that_ends_leaves_nothing_in_tmp(busybox_store: Store) -> None:
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "sleep 100 & exit 3"], runtime="proot")
    assert runtime.run_attached(c)[0] == 3
    assert proot_leftovers(c.reload().state["pid"]) == []
    containers.remove(c)


def test_prune_deletes_the_temp_files_of_dead_proots_only(store: Store, tmp_path: Path) -> None:
    import secrets

    with open("/proc/sys/kernel/pid_max") as f:
        dead = int(f.read()) + 1  # no process can have this PID
    alive = os.getpid()
    names = {kind: f"/tmp/{prefix}-{pid}-{secrets.token_hex(3)}" for kind, prefix, pid in [
        ("dead glue", "proot", dead), ("dead loader", "prooted", dead), ("live glue", "proot", alive),
        ("link", "proot", dead)]}
    os.makedirs(names["dead glue"] + "/etc")
    os.chmod(names["dead glue"] + "/etc", 0o500)  # what rmtree alone could not empty without root
    Path(names["dead loader"]).write_bytes(b"\x7fELF")
    os.mkdir(names["live glue"])
    (tmp_path / "kept").mkdir()
    os.symlink(tmp_path / "kept", names["link"])  # /tmp is everybody's: a link is nobody's proot's
    try:
        containers.remove_leftovers(store)  # what `container prune` and `system prune` begin with
        left = {kind for kind, path in names.items() if os.path.lexists(path)}
        assert left == {"live glue", "link"}
        assert (tmp_path / "kept").is_dir()
    finally:
        for path in names.values():
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)
            elif os.path.isdir(path):
                shutil.rmtree(path)


@needs_proot
def test_proot_refuses_what_it_cannot_do(busybox_store: Store) -> None:
    """No cgroup, no read-only mounts under proot: said at once, not silently left undone (a -m 10m hog grew
    to gigabytes, a :ro volume was written)."""
    from pycontainers.errors import InvalidArgument

    for options, message in (({"memory": "10m"}, "--memory needs a cgroup"),
                             ({"pids_limit": 5}, "--pids-limit needs a cgroup"),
                             ({"volumes": ["/tmp:/d:ro"]}, "-v /tmp:/d:ro: the proot back end cannot make"),
                             ({"read_only": True}, "--read-only: the proot back end cannot make")):
        with pytest.raises(InvalidArgument, match=message):
            containers.create_from_image(busybox_store, "busybox", ["true"], runtime="proot", **options)
    assert containers.list_containers(busybox_store) == []


@needs_proot
def test_proot_says_what_hostname_does_without_a_uts_namespace(busybox_store: Store,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "cat /etc/hostname; echo $HOSTNAME"],
                                     runtime="proot", hostname="box")
    assert capsys.readouterr().err == containers.PROOT_HOSTNAME_SENTENCE + "\n"
    assert runtime.run_attached(c)[:2] == (0, b"box\nbox\n")
    containers.remove(c)
    containers.create_from_image(busybox_store, "busybox", ["true"], runtime="proot")
    assert capsys.readouterr().err == ""  # only when --hostname is given


@pytest.mark.parametrize("backend", [pytest.param("runc", marks=needs_runc), pytest.param("proot", marks=needs_proot)])
def test_exec_runs_inside_the_container(busybox_store: Store, backend: str) -> None:
    """exec joins runc's container (not runc's own process, which is on the host), and under proot runs a
    second proot on the container's files, which dies with the container."""
    c = containers.create_from_image(busybox_store, "busybox", ["sleep", "60"], runtime=backend, hostname="inside")
    assert runtime.start_detached(c)["event"] == "started"
    c.reload()
    code, out, _ = runtime.capture(lambda stdio: runtime.exec_start(
        c, ["sh", "-c", "echo written > /by-exec; cat /etc/hostname"], stdio))
    assert (code, out) == (0, b"inside\n")
    assert not os.path.exists("/by-exec")  # on the container's files, not the host's
    if backend == "runc":
        assert ("A", "/by-exec") in containers.diff(c)
        # ... and in every cgroup runc made (devices, freezer...: "/" in the container's cgroup namespace)
        code, out, _ = runtime.capture(lambda stdio: runtime.exec_start(c, ["cat", "/proc/self/cgroup"], stdio))
        controllers = {line.split(":")[1]: line.split(":")[2] for line in out.decode().splitlines()}
        assert code == 0 and all(path == "/" for name, path in controllers.items() if not name.startswith("name="))
    else:
        assert (c.dir / "rootfs" / "by-exec").read_text() == "written\n"
        events = runtime.exec_start(c, ["sleep", "60"], (0, 1, 2))
        exec_pid = int(events.next()["pid"])
        containers.remove(c, force=True)
        assert eventually(lambda: not alive(exec_pid) or comm(exec_pid) == "")  # gone with its container
        assert events.next()["event"] == "exited"
        events.close()
        return
    containers.remove(c, force=True)


@needs_proot
def test_proot_diff_and_commit_see_the_containers_changes(busybox_store: Store) -> None:
    """proot writes into a plain copy, with no upper directory: diff and commit compare it with a snapshot
    taken at create (they saw nothing before), and give what the native runtime gives."""
    script = "echo hi > /newfile; rm /etc/group; echo x >> /etc/passwd; mkdir -p /d/e; touch /d/e/f"
    seen = {}
    for backend in ("native", "proot"):
        c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", script], runtime=backend)
        assert runtime.run_attached(c)[0] == 0
        seen[backend] = containers.diff(c)
        if backend == "proot":
            image = containers.commit(c, "proot-committed")
            check = containers.create_from_image(busybox_store, image.id, ["sh", "-c", "cat /newfile; ls /etc/group"],
                                                 runtime="proot")
            code, out, err = runtime.run_attached(check)
            assert (code, out) == (1, b"hi\n") and b"/etc/group" in err
            containers.remove(check)
        containers.remove(c)
    assert seen["proot"] == seen["native"] == [("A", "/d"), ("A", "/d/e"), ("A", "/d/e/f"), ("C", "/etc"),
                                               ("D", "/etc/group"), ("C", "/etc/passwd"), ("A", "/newfile")]


@needs_proot
def test_proot_makes_a_missing_working_directory_as_run_w_does(busybox_store: Store) -> None:
    c = containers.create_from_image(busybox_store, "busybox", ["pwd"], runtime="proot", workdir="/new/dir")
    assert runtime.run_attached(c)[:2] == (0, b"/new/dir\n")  # proot started in / when it was missing
    assert (c.dir / "rootfs" / "new" / "dir").is_dir()
    containers.remove(c)
    for workdir in ("/etc/passwd", "/etc/passwd/x"):  # as natively: 125, and no host path in the message
        c = containers.create_from_image(busybox_store, "busybox", ["pwd"], runtime="proot", workdir=workdir)
        assert runtime.run_attached(c) == (125, b"", f'chdir to cwd ("{workdir}") failed: not a directory\n'.encode())
        containers.remove(c)


@pytest.mark.parametrize("backend", [pytest.param("runc", marks=needs_runc), pytest.param("proot", marks=needs_proot)])
def test_runc_and_proot_log_an_attached_run_and_keep_a_detached_stdin_open(busybox_store: Store,
                                                                          backend: str) -> None:
    """Their monitor keeps the output as the native one does: `logs` after `run` (it was empty), and
    `run -di` waits on an open stdin."""
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", "echo out; echo err >&2"],
                                     runtime=backend)
    assert runtime.run_attached(c) == (0, b"out\n", b"err\n")
    assert sorted(logged(c).splitlines()) == [b"err", b"out"]
    containers.remove(c)
    listening = containers.create_from_image(busybox_store, "busybox", ["sh"], runtime=backend, interactive=True)
    assert runtime.start_detached(listening)["event"] == "started"
    time.sleep(0.5)
    assert listening.reload().status == "running"
    containers.remove(listening, force=True)


@needs_proot
def test_a_proot_container_removed_as_soon_as_it_started_leaves_no_proot(busybox_store: Store) -> None:
    """rm -f right after start: proot may not have its own process group yet (the monitor says "started"
    just after the fork), so it is killed by PID as well as by group (it ran on for good)."""
    for _ in range(10):
        c = containers.create_from_image(busybox_store, "busybox", ["sleep", "60"], runtime="proot")
        assert runtime.start_detached(c)["event"] == "started"
        pid = c.reload().state["pid"]
        containers.remove(c, force=True)
        assert eventually(lambda pid=pid: not alive(pid) or comm(pid) in ("", "pyc-monitor"))
    assert not [p for p in os.listdir("/proc") if p.isdigit() and str(busybox_store.home).encode() in cmdline(int(p))]


@needs_proot
def test_proots_stand_ins_for_bind_mounts_are_no_change_of_the_container(busybox_store: Store) -> None:
    """While proot runs, it has made empty stand-ins (mode 000) for the mount points the image lacks (/dev,
    /proc, /sys, /etc/hosts...): diff must not list them, nor commit keep them (it did)."""
    c = containers.create_from_image(busybox_store, "busybox", ["sleep", "60"], runtime="proot")
    assert runtime.start_detached(c)["event"] == "started"
    assert eventually(lambda: (c.dir / "rootfs" / "etc" / "hosts").exists())  # proot is up
    assert containers.diff(c) == []
    containers.remove(c, force=True)


@needs_runc
def test_runc_container_removed_as_soon_as_it_started_leaves_no_cgroup(busybox_store: Store) -> None:
    """rm -f right after run -d kills runc before it has its state: its cgroups (in every hierarchy) are
    removed all the same (3 in 10 were left)."""
    import glob

    ids = []
    for _ in range(10):
        c = containers.create_from_image(busybox_store, "busybox", ["sleep", "60"], runtime="runc")
        assert runtime.start_detached(c)["event"] == "started"
        containers.remove(c, force=True)
        ids.append(c.id)
    assert not [p for cid in ids for p in glob.glob(f"/sys/fs/cgroup/*/pycontainers/{cid}")
                + glob.glob(f"/sys/fs/cgroup/pycontainers/{cid}")]


@needs_proot
@needs_runc
def test_ps_size_is_the_bytes_the_container_wrote_on_every_back_end(busybox_store: Store, cli: Callable) -> None:
    """``ps -s``: the writable layer's files (a hard link once, whiteouts and directories nothing), and "virtual"
    that plus the image, measured the same way whatever keeps the layer (upper directory, or proot's copy)."""
    from pycontainers.image import get_image
    from pycontainers.units import human_size

    script = "head -c 100000 /dev/zero > /big; ln /big /big2; rm /etc/group; mkdir -p /d/e"
    for backend in ("native", "rootless", "runc", "proot"):
        c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", script], runtime=backend,
                                         name=f"wrote-{backend}")
        assert runtime.run_attached(c)[0] == 0, backend
        assert containers.writable_layer_size(c) == 100_000, backend
    virtual = human_size(100_000 + get_image(busybox_store, "busybox").size)
    code, out, _ = cli("ps", "-a", "--format", "{{.Names}} {{.Size}}")  # .Size alone asks for the sizes, as -s
    assert code == 0 and sorted(out.splitlines()) == [f"wrote-{b} 100kB (virtual {virtual})"
                                                      for b in ("native", "proot", "rootless", "runc")]
    code, out, _ = cli("ps", "-a", "-s")
    assert out.splitlines()[0].split()[-1] == "SIZE" and out.count(f"100kB (virtual {virtual})") == 4


def test_ps_mounts_and_local_volumes_are_docker_s(busybox_store: Store, cli: Callable, tmp_path: Path) -> None:
    code, _, err = cli("create", "--name", "m", "-v", "named:/a", "-v", "/b", "-v", f"{tmp_path}:/c", "busybox")
    assert code == 0, err
    anonymous = next(m.volume for m in containers.get_container(busybox_store, "m").spec.mounts
                     if m.destination == "/b")
    code, out, _ = cli("ps", "-a", "--format", "{{.Mounts}}|{{.LocalVolumes}}")
    short = [name if len(name) <= 15 else name[:14] + "…" for name in ("named", anonymous, str(tmp_path))]
    assert (code, out) == (0, f"{','.join(short)}|2\n")
    code, out, _ = cli("ps", "-a", "--no-trunc", "--format", "{{.Mounts}}")
    assert out == f"named,{anonymous},{tmp_path}\n"
