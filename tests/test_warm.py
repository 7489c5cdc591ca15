"""Warm monitors (pycontainers/warm.py): containers started ahead of time by the API's zygote.

A container that starts warm must be exactly as isolated as one that starts cold, and the warm monitors
must never outlive their zygote or leave a cgroup behind.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import wait_for

from pycontainers import Client, warm
from pycontainers.api import ContainerError
from pycontainers.cgroup import Cgroup, CgroupLayout
from pycontainers.container import cgroup_of, get_container, list_containers, remove
from pycontainers.store import Store
from pycontainers.zygote import Zygote

pytestmark = pytest.mark.skipif(not warm.available(), reason="warm monitors need root and cgroups")




def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[1])


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def exited(pid: int) -> bool:
    """Gone, or a zombie its new parent has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return True


def children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if parent_of(int(name)) == pid:
                    out.append(int(name))
            except (OSError, ValueError, IndexError):
                pass
    return out


def warm_cgroups() -> set[str]:
    parents = {d.parent for d in Cgroup("any").dirs.values()}
    return {str(d) for p in parents if p.exists() for d in p.glob(f"{warm.PREFIX}*")}


@pytest.fixture
def client(busybox_store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    """An API client with a zygote of its own; afterwards the zygote is closed and its warm monitors
    must be gone, with their cgroups."""
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    monkeypatch.setattr(Zygote, "_instance", None)
    yield Client(busybox_store.home)
    for c in list_containers(busybox_store):
        remove(c, force=True)
    zygote = Zygote._instance
    if zygote is None:
        return
    monitors = [p for p in children(zygote.process.pid) if comm(p) == "pyc-warm"]
    zygote.sock.close()  # the zygote exits when its client goes away, and closes its warm monitors' sockets
    zygote.process.wait(timeout=30)
    wait_for(lambda: not any(os.path.exists(f"/proc/{p}") and comm(p) == "pyc-warm" for p in monitors),
             "the warm monitors to exit")
    wait_for(lambda: not any(f"/{warm.PREFIX}{p}." in " ".join(warm_cgroups()) for p in monitors),
             "the warm monitors' cgroups to be removed")


def warm_monitors(client: Client) -> list[int]:
    """The zygote's warm monitors that are still waiting for a container."""
    client.containers.run("busybox", ["true"], remove=True)  # the zygote exists and has made its batch
    zygote = Zygote._instance
    assert zygote is not None
    return wait_for(lambda: [p for p in children(zygote.process.pid) if comm(p) == "pyc-warm"],
                    "the zygote's warm monitors")


def test_the_zygote_keeps_a_batch_of_warm_monitors_each_with_a_waiting_pid_1(client: Client) -> None:
    warm_monitors(client)
    zygote = Zygote._instance
    assert zygote is not None  # (the batch is forked after the answer: wait for all of it)
    monitors = wait_for(lambda: len(ms := [p for p in children(zygote.process.pid) if comm(p) == "pyc-warm"])
                        == warm.SIZE and ms, "a whole batch of warm monitors")
    for monitor in monitors:
        # (Forked by a child of the monitor that exits at once, PID 1 then names itself.)
        init = wait_for(lambda m=monitor: [p for p in children(m) if comm(p) == "pyc-warm-init"], "the monitor's PID 1")
        assert wait_for(lambda m=monitor: [comm(p) for p in children(m)] == ["pyc-warm-init"], "no other child")
        ns = {n: os.readlink(f"/proc/{init[0]}/ns/{n}") for n in ("mnt", "uts", "ipc", "net", "pid")}
        assert all(ns[n] != os.readlink(f"/proc/self/ns/{n}") for n in ns)  # its namespaces, made ahead
        cgroup = f"/pycontainers/{warm.PREFIX}{monitor}.0"
        wait_for(lambda i=init[0], cg=cgroup: cg in Path(f"/proc/{i}/cgroup").read_text(), "PID 1 in the warm cgroup")


def test_a_warm_start_is_as_isolated_as_a_cold_one(client: Client) -> None:
    warm_monitors(client)
    c = client.containers.run("busybox", ["sh", "-c", "sleep 30"], detach=True, name="warmed")
    st = get_container(client.store, "warmed").state
    assert comm(st["monitor_pid"]) == "pyc-monitor"
    assert parent_of(st["monitor_pid"]) == Zygote._instance.process.pid  # a warm monitor (cold ones are orphans)
    # Its cgroup is the warm monitor's, as state.json records; the engine finds its processes there.
    assert st["cgroup"].startswith(f"{warm.PREFIX}{st['monitor_pid']}.")  # the monitor's cgroup, for this container
    assert f"/pycontainers/{st['cgroup']}" in Path(f"/proc/{st['pid']}/cgroup").read_text()
    assert cgroup_of(get_container(client.store, "warmed")).pids() == [st["pid"]]
    code, out = c.exec_run(["sh", "-c", "hostname; echo $$; cat /proc/self/cgroup | grep pids; "
                                        "ls /sys/class/net; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status"])
    assert code == 0
    lines = out.decode().split("\n")
    assert lines[0] == c.id[:12]
    assert lines[2].endswith(":/")  # its cgroup namespace: its own cgroup is the root it sees
    assert lines[3] == "lo"
    assert lines[4:7] == ["CapEff:\t00000000a80425fb", "NoNewPrivs:\t1", "Seccomp:\t2"]
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{st['pid']}/fd"))
    assert fds == [0, 1, 2]  # nothing of the zygote's, the warm monitor's or the request's
    top = client.containers.run("busybox", ["sh", "-c", "echo $$; ps -o pid,comm | tail -n +2"], remove=True)
    assert top.decode().split()[:3] == ["1", "1", "sh"]  # PID 1 of its own PID namespace, alone there
    c.remove(force=True)


def mount_table(client: Client, **options: Any) -> list[tuple[str, str, str]]:
    """(mount point, type, rw/ro) of every mount a container sees, as ``mount`` prints them."""
    out = client.containers.run("busybox", ["mount"], remove=True, **options).decode()
    return sorted((line.split()[2], line.split()[4], line.split("(")[1].split(",")[0]) for line in out.splitlines())


def test_a_warm_container_sees_the_same_mounts_as_a_cold_one(client: Client) -> None:
    monitors = warm_monitors(client)
    # A waiting PID 1 holds /proc, /dev and /sys aside (made before it knows its image): its own mount
    # namespace still shows the host's there, so a store or a bind mount's source under /dev stays reachable.
    init = wait_for(lambda: [p for p in children(monitors[0]) if comm(p) == "pyc-warm-init"], "a waiting PID 1")[0]

    def fs_type(mountinfo: str, point: str) -> str:
        return [line.partition(" - ")[2].split()[0] for line in mountinfo.splitlines() if line.split()[4] == point][-1]

    def shows_the_hosts() -> bool:  # (once it has made them and set them aside: a moment after it is forked)
        waiting, host = Path(f"/proc/{init}/mountinfo").read_text(), Path("/proc/self/mountinfo").read_text()
        return all(fs_type(waiting, point) == fs_type(host, point) for point in ("/proc", "/dev", "/sys"))

    wait_for(shows_the_hosts, "the waiting PID 1's own /proc, /dev and /sys to be the host's")
    warm_table = mount_table(client)
    assert warm_table == mount_table(client, mem_limit="256m")  # a memory limit starts it cold
    assert {("/", "overlay", "rw"), ("/proc", "proc", "rw"), ("/proc/sys", "proc", "ro"), ("/dev", "tmpfs", "rw"),
            ("/dev/pts", "devpts", "rw"), ("/dev/shm", "tmpfs", "rw"), ("/sys", "sysfs", "ro"),
            ("/sys/firmware", "tmpfs", "ro")} <= set(warm_table)
    assert "/etc/hosts" in {point for point, _, _ in warm_table}


def test_a_warm_container_binds_a_directory_from_the_hosts_dev(client: Client) -> None:
    warm_monitors(client)
    shared = Path("/dev/shm") / f"pyc-test-{os.getpid()}"
    shared.mkdir()
    try:
        (shared / "note").write_text("from the host's /dev/shm\n")
        out = client.containers.run("busybox", ["cat", "/data/note"], remove=True, volumes=[f"{shared}:/data"])
        assert out == b"from the host's /dev/shm\n"
    finally:
        (shared / "note").unlink()
        shared.rmdir()


def test_warm_starts_report_docker_exit_codes_and_clean_up(client: Client) -> None:
    warm_monitors(client)
    store = client.store
    outcomes = {}
    for name, cmd in {"ok": ["true"], "fails": ["sh", "-c", "exit 3"], "missing": ["/nope"],
                      "not-exec": ["/etc/passwd"]}.items():
        c = client.containers.create("busybox", cmd, name=name)
        try:
            c.start()
            outcomes[name] = c.wait()["StatusCode"]
        except ContainerError as exc:  # could not start: docker-py raises too
            outcomes[name] = exc.exit_status
            assert get_container(store, name).state["exit_code"] == exc.exit_status
            # it never ran: Docker keeps it "created" (its StartedAt never set), with the code and why
            assert get_container(store, name).state["status"] == "created"
        else:
            assert get_container(store, name).state["status"] == "exited"
        cgroup = cgroup_of(get_container(store, name))
        wait_for(lambda cg=cgroup: not any(d.exists() for d in cg.dirs.values()), f"{name}'s cgroup to go")
    assert outcomes == {"ok": 0, "fails": 3, "missing": 127, "not-exec": 126}


def test_a_pids_limit_is_written_into_the_warm_cgroup(client: Client) -> None:
    warm_monitors(client)
    c = client.containers.run("busybox", ["sleep", "30"], detach=True, pids_limit=7)
    pids_dir = cgroup_of(get_container(client.store, c.id)).dirs.get("pids")
    if pids_dir is None:
        pytest.skip("no pids controller here")
    assert (pids_dir / "pids.max").read_text().strip() == "7"
    assert parent_of(get_container(client.store, c.id).state["monitor_pid"]) == Zygote._instance.process.pid
    c.remove(force=True)


def test_an_attached_warm_run_is_logged_and_a_detached_one_stops_like_any_other(client: Client) -> None:
    warm_monitors(client)
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2"], name="talker", stderr=True)
    assert out == b"out\nerr\n"
    talker = client.containers.get("talker")
    assert sorted(talker.logs().split()) == [b"err", b"out"]  # the monitor copied both into the log
    sleeper = client.containers.run("busybox", ["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 1; done"],
                                    detach=True, name="sleeper")
    st = get_container(client.store, "sleeper").state
    assert parent_of(st["monitor_pid"]) == Zygote._instance.process.pid
    wait_for(lambda: len(cgroup_of(get_container(client.store, "sleeper")).pids()) == 2, "the shell's sleep")
    sleeper.stop(timeout=10)  # SIGTERM reaches the shell, whose trap exits 42
    assert sleeper.wait()["StatusCode"] == 42
    sleeper.remove()
    wait_for(lambda: not any(os.path.exists(d) for d in warm_cgroups() if d.endswith(st["cgroup"])),
             "its cgroup to go")


@pytest.mark.parametrize("options", [{"network": "host"}, {"mem_limit": "64m"}])
def test_containers_that_do_not_fit_start_cold(client: Client, options: dict[str, Any]) -> None:
    before = set(warm_monitors(client))
    c = client.containers.run("busybox", ["sleep", "30"], detach=True, **options)
    monitor = get_container(client.store, c.id).state["monitor_pid"]
    assert parent_of(monitor) != Zygote._instance.process.pid  # double-forked: a cold start
    assert before <= set(children(Zygote._instance.process.pid))  # every warm monitor still waits
    c.remove(force=True)


def test_an_idle_zygote_reaps_a_killed_warm_monitor(client: Client) -> None:
    """No request comes after the kill: the zygote collects it all the same (``zygote.REAP_INTERVAL``), so no
    ``<defunct>`` monitor stays in ``ps`` while the notebook does something else."""
    monitors = warm_monitors(client)
    os.kill(monitors[0], signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{monitors[0]}"), "the killed monitor to be reaped", timeout=10)


def test_a_killed_warm_monitor_costs_nothing_but_a_cold_start(client: Client) -> None:
    monitors = warm_monitors(client)
    for m in monitors:
        os.kill(m, signal.SIGKILL)
    # Its PID 1 sees the socket close and exits; the launch falls back to a cold start.
    assert client.containers.run("busybox", ["echo", "still works"], remove=True) == b"still works\n"
    wait_for(lambda: not any(os.path.exists(f"/proc/{m}") and comm(m) for m in monitors), "the killed monitors")
    leftovers = {c for c in warm_cgroups() if any(f"/{warm.PREFIX}{m}." in c for m in monitors)}
    assert leftovers  # killed outright, they could not remove their cgroups ...
    warm.remove_abandoned()
    assert not {c for c in leftovers if os.path.exists(c)}  # ... which the next zygote or `prune` does


def test_a_warm_started_container_outlives_the_zygote_and_its_monitor_then_goes(client: Client) -> None:
    warm_monitors(client)
    c = client.containers.run("busybox", ["sh", "-c", "sleep 1; exit 7"], detach=True, name="survivor")
    st = get_container(client.store, "survivor").state
    zygote = Zygote._instance
    assert parent_of(st["monitor_pid"]) == zygote.process.pid  # it started warm
    zygote.process.send_signal(signal.SIGKILL)
    zygote.process.wait()
    assert c.wait()["StatusCode"] == 7  # its monitor saw it to the end and recorded how it ended
    # With no zygote to go back to, the monitor removes the container's cgroup and its own, and exits.
    wait_for(lambda: exited(st["monitor_pid"]), "the monitor to exit")
    assert not any(f"/{warm.PREFIX}{st['monitor_pid']}." in d for d in warm_cgroups())
    c.remove()
    Zygote._instance = None  # the fixture closes what is left: the next client gets a new zygote


def test_rootless_containers_start_from_monitors_in_a_user_namespace(client: Client) -> None:
    client.containers.run("busybox", ["true"], remove=True, runtime="rootless")  # cold; rootless ones warm
    zygote = Zygote._instance
    c = client.containers.run("busybox", ["sleep", "30"], detach=True, runtime="rootless", name="unprivileged")
    st = get_container(client.store, "unprivileged").state
    assert parent_of(st["monitor_pid"]) == zygote.process.pid and "cgroup" not in st
    own = os.readlink(f"/proc/{st['pid']}/ns/user")
    assert own != os.readlink("/proc/self/ns/user") == os.readlink(f"/proc/{zygote.process.pid}/ns/user")
    assert own == os.readlink(f"/proc/{st['monitor_pid']}/ns/user")  # the monitor became root of it first
    assert c.exec_run(["id", "-u"]) == (0, b"0\n")
    c.remove(force=True)
    with pytest.raises(ContainerError) as failed:
        client.containers.run("busybox", ["/nope"], remove=True, runtime="rootless")
    assert failed.value.exit_status == 127
    # Native and rootless containers take monitors from pools of their own: each gets its own kind.
    native = client.containers.run("busybox", ["cat", "/proc/self/uid_map"], remove=True)
    rootless = client.containers.run("busybox", ["cat", "/proc/self/uid_map"], remove=True, runtime="rootless")
    assert native.split() == [b"0", b"0", b"4294967295"]  # the host's own user namespace
    assert rootless.split() == [b"0", b"0", b"65536"]  # root's identity map of a rootless container


def rss_anon_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))


def monitor_of(client: Client, cmd: list[str], **options: Any) -> int:
    """The PID of the monitor that ran *cmd* in a container, which is then removed."""
    c = client.containers.run("busybox", cmd, detach=True, **options)
    monitor = get_container(client.store, c.id).state["monitor_pid"]
    c.wait()
    c.remove()
    return monitor


def test_while_containers_come_quickly_a_small_forker_makes_their_pid_1s(client: Client) -> None:
    warm_monitors(client)
    zygote = Zygote._instance.process.pid
    monitor = monitor_of(client, ["true"])  # a first container: PID 1 was forked by the monitor itself
    assert parent_of(monitor) == zygote

    def lean_pid_1s() -> list[tuple[int, dict[str, int]]]:
        """Waiting monitors whose PID 1 came from their forker: its child, in a PID namespace of its own
        (made by the forker's child, which handed it over) and well under the monitor's size."""
        found = []
        for m in [p for p in children(zygote) if comm(p) == "pyc-warm"]:
            kids = {comm(p): p for p in children(m) if not exited(p)}
            if set(kids) != {"pyc-forker", "pyc-warm-init"}:
                continue
            if rss_anon_kib(kids["pyc-warm-init"]) < 0.7 * rss_anon_kib(m):
                found.append((m, kids))
        return found

    # Its container was short: the monitor starts a forker, which makes its PID 1s from the next one on.
    for _ in range(3 * warm.MAX_IDLE):
        client.containers.run("busybox", ["true"], remove=True)
        if lean_pid_1s():
            break
    _, kids = wait_for(lean_pid_1s, "a warm PID 1 made by a forker")[0]
    init = kids["pyc-warm-init"]
    assert os.readlink(f"/proc/{init}/ns/pid") != os.readlink(f"/proc/{kids['pyc-forker']}/ns/pid")
    # Those PID 1s are as good as any: isolated, no signal ignored (the forker ignores some), Docker's exit codes.
    for _ in range(warm.MAX_IDLE):
        assert client.containers.run("busybox", ["sh", "-c", "echo $$"], remove=True) == b"1\n"
        status = client.containers.run("busybox", ["grep", "-E", "^Sig(Ign|Blk):", "/proc/self/status"], remove=True)
        assert status == b"SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    with pytest.raises(ContainerError) as failed:
        client.containers.run("busybox", ["/nope"], remove=True)
    assert failed.value.exit_status == 127


def test_a_forker_goes_once_its_monitor_is_busy_and_a_killed_one_costs_nothing(client: Client) -> None:
    warm_monitors(client)
    zygote = Zygote._instance.process.pid

    def live_forkers(monitor: int) -> list[int]:
        return [p for p in children(monitor) if comm(p) == "pyc-forker" and not exited(p)]

    def waiting_forkers() -> list[int]:
        return [f for m in children(zygote) if comm(m) == "pyc-warm" for f in live_forkers(m)]

    for _ in range(3 * warm.MAX_IDLE):  # monitors that ran a short container start a forker
        client.containers.run("busybox", ["true"], remove=True)
    os.kill(wait_for(waiting_forkers, "a waiting monitor's forker")[0], signal.SIGKILL)
    for _ in range(3 * warm.MAX_IDLE):  # its monitor starts another, or forks its PID 1 itself
        assert client.containers.run("busybox", ["echo", "ok"], remove=True) == b"ok\n"
    # A container that runs on: its monitor's forker exits within pid1.FORKER_LINGER (a second), and the
    # monitor, busy, collects its exit status at once (no <defunct> left in ps). (Whichever monitor takes it:
    # one with a forker.)
    for _ in range(3 * warm.MAX_IDLE):
        c = client.containers.run("busybox", ["sleep", "30"], detach=True)
        monitor = get_container(client.store, c.id).state["monitor_pid"]
        had = live_forkers(monitor)
        if had:
            wait_for(lambda h=had: not any(os.path.exists(f"/proc/{f}") for f in h), "the busy monitor's forker to go")
        c.remove(force=True)
        if had:
            break
    else:
        pytest.fail("no monitor with a forker took a container")


def test_a_forker_that_fails_after_taking_the_pipes_is_not_trusted_with_them_again() -> None:
    """The forker may have made a PID 1 on the descriptors it took before it failed: using them again
    for another PID 1 would give one container two (``Forker.fork_pid1`` raises; new ones are made)."""
    import socket
    import subprocess
    import threading

    from pycontainers.linux import receive_fds

    forker = warm.Forker(None)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    stand_in = subprocess.Popen(["sleep", "30"])  # plays the forker's process
    forker.sock, forker.pid = ours, stand_in.pid

    def take_and_die() -> None:
        _, fds = receive_fds(theirs, 64, 3)
        for fd in fds:
            os.close(fd)
        theirs.close()  # as if it died before its answer

    taker = threading.Thread(target=take_and_die)
    taker.start()
    r, w = os.pipe()
    try:
        with pytest.raises(OSError, match="the forker failed"):
            forker.fork_pid1([r, w, r], quick=True)
    finally:
        taker.join()
        os.close(r)
        os.close(w)
    assert forker.sock is None and forker.pid is None
    assert stand_in.poll() is not None  # killed and collected: a new forker comes next time


def test_rootless_warm_monitors_serve_one_container_after_another(client: Client) -> None:
    client.containers.run("busybox", ["true"], remove=True, runtime="rootless")  # cold; the pool is made
    monitors = [monitor_of(client, ["true"], runtime="rootless") for _ in range(warm.MAX_IDLE + 3)]
    assert len(set(monitors)) < len(monitors)  # some monitor came back for another container


def test_pid1_imports_nothing_heavy() -> None:
    """The forker is a fresh interpreter with pid1 only: it must stay small (no dataclasses, pathlib...)."""
    import subprocess
    import sys

    root = str(Path(__file__).resolve().parents[1])
    code = (f"import sys; sys.path.insert(0, {root!r}); import pycontainers.pid1; "
            "print(sorted(m for m in sys.modules if m.startswith('pycontainers') or m in "
            "('dataclasses', 'pathlib', 'typing', 'inspect', 'hashlib')))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['pycontainers', 'pycontainers.errors', 'pycontainers.linux', 'pycontainers.pid1']"


def test_no_cgroups_no_warm_monitors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm, "machine_layout", lambda: CgroupLayout("none"))
    assert not warm.available()
    pool = warm.WarmPool()
    pool.fill(None)
    assert pool.state == {} and pool.children == set()


def test_an_interrupted_request_leaves_its_helper(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C between a request and its answer: the answer would be taken for the next request's, so the
    helper is dropped and the next request gets a new one."""
    import socket

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)  # a helper that never answers
    monkeypatch.setattr(Zygote, "_instance", None)
    Zygote.adopt(ours)
    zygote = Zygote._instance
    assert zygote is not None

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    try:
        with open(os.devnull, "rb") as null, pytest.raises(KeyboardInterrupt):
            zygote.launch("/nowhere", "c0ffee", {}, [], (null.fileno(),) * 3, null.fileno())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        theirs.close()
    assert zygote.broken and ours.fileno() == -1  # closed: a helper would see its client gone
