"""`stats`, `pause`/`unpause`, `restart` and `rename`: a running container seen and steered through the
kernel (its cgroup's counters and freezer), from the CLI and from the API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from processes import wait_for

from pycontainers import container as c
from pycontainers import stats
from pycontainers.cgroup import Cgroup, CgroupLayout, machine_layout
from pycontainers.cli import main
from pycontainers.errors import InvalidArgument
from pycontainers.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native runtime needs root")

BUSY = ["sh", "-c", "while :; do :; done"]
COUNTER = ["sh", "-c", "i=0; while :; do i=$((i+1)); echo $i > /n; done"]


def counted(k: Any) -> int:
    """The counter COUNTER's shell has reached (read from outside, through /proc/PID/root)."""
    try:
        text = Path(f"/proc/{k.attrs['State']['Pid']}/root/n").read_text().strip()
    except FileNotFoundError:  # (not written yet)
        return 0
    return int(text) if text.isdigit() else 0


def frozen_dirs() -> list[Path]:
    where = machine_layout().where("freezer")
    return list(Path(where, "pycontainers").glob("*")) if where else []


# ------------------------------------------------------------------------------------------ pause


def test_pause_freezes_every_process_and_unpause_lets_them_go_on(client: Any) -> None:
    k = client.containers.run("busybox", COUNTER, detach=True)
    wait_for(lambda: counted(k) > 0, "the counter to start")
    k.pause()
    k.reload()
    assert k.status == "paused" and k.attrs["State"]["Paused"] is True and k.attrs["State"]["Running"] is True
    before = counted(k)
    time.sleep(0.3)
    assert counted(k) == before  # frozen: not one more step
    with pytest.raises(c.ContainerError, match="already paused"):
        k.pause()
    k.unpause()
    assert k.status == "running"
    wait_for(lambda: counted(k) > before, "the counter to go on after unpause")
    with pytest.raises(c.ContainerError, match="not paused"):
        k.unpause()


def test_a_paused_container_shows_in_ps_and_refuses_exec_rm_and_start(
        client: Any, busybox_store: Store, capfd: pytest.CaptureFixture[str]) -> None:
    k = client.containers.run("busybox", ["sleep", "60"], detach=True, name="napping")
    assert main(["pause", "napping"]) == 0
    capfd.readouterr()
    assert main(["ps", "--format", "{{.Names}}|{{.Status}}|{{.State}}"]) == 0
    names, status, state = capfd.readouterr().out.strip().split("|")
    assert names == "napping" and status.endswith("(Paused)") and state == "paused"
    assert main(["ps", "-q", "--filter", "status=paused"]) == 0
    assert capfd.readouterr().out.strip() == k.short_id
    assert main(["ps", "-q", "--filter", "status=running"]) == 0
    assert capfd.readouterr().out.strip() == ""
    assert main(["exec", "napping", "true"]) != 0
    assert "paused, unpause the container before exec" in capfd.readouterr().err
    assert main(["rm", "napping"]) == 1
    assert "container is paused and must be unpaused first" in capfd.readouterr().err
    assert main(["start", "napping"]) == 1
    assert "try unpause" in capfd.readouterr().err
    assert main(["unpause", "napping"]) == 0
    assert main(["exec", "napping", "true"]) == 0


def test_stop_and_kill_reach_a_paused_container(client: Any) -> None:
    """As Docker: SIGKILL, or the stop signal, thaws it after being sent, since a frozen process cannot act."""
    stopped = client.containers.run("busybox", ["sleep", "60"], detach=True)
    killed = client.containers.run("busybox", ["sleep", "60"], detach=True)
    stopped.pause()
    killed.pause()
    stopped.stop(timeout=5)  # sleep as PID 1 ignores SIGTERM: SIGKILL after the timeout
    killed.kill()
    assert stopped.wait(timeout=10)["StatusCode"] == 137
    assert killed.wait(timeout=10)["StatusCode"] == 137


def test_rm_force_of_a_paused_container_leaves_no_freezer_cgroup(client: Any) -> None:
    k = client.containers.run("busybox", ["sleep", "60"], detach=True)
    k.pause()
    cgroup = c.cgroup_of(k._c)
    assert cgroup.frozen()
    k.remove(force=True)
    wait_for(lambda: not any(d.exists() for d in (*cgroup.dirs.values(), cgroup.freezer) if d is not None),
             "the container's cgroups, the freezer's too, to go")


def test_pausing_a_container_that_has_ended_says_so_and_leaves_no_freezer_cgroup(client: Any) -> None:
    k = client.containers.run("busybox", ["true"], detach=True, mem_limit="64m")  # (cold: cgroup named after it)
    k.wait(timeout=10)
    with pytest.raises(c.ContainerError, match="is not running"):
        k.pause()
    group = c.cgroup_of(k._c)
    # Even the kernel call alone, after the end (a pause that lost the race with it), makes nothing.
    with pytest.raises(Exception, match="no process is left to freeze"):
        group.freeze()
    assert group.freezer is None or not group.freezer.exists()


def test_an_empty_frozen_freezer_cgroup_pauses_nobody(client: Any) -> None:
    """One left behind by a pause that met the container's end must not make its next run look paused."""
    k = client.containers.run("busybox", ["sleep", "60"], detach=True, mem_limit="64m")
    group = c.cgroup_of(k._c)
    if group.freezer is None:
        pytest.skip("no v1 freezer here")
    group.freezer.mkdir(parents=True)
    (group.freezer / "freezer.state").write_text("FROZEN")
    assert k.status == "running" and not group.frozen()
    k.pause()
    assert k.status == "paused"
    k.remove(force=True)
    assert not group.freezer.exists()


def test_rootless_containers_cannot_be_paused_and_say_why(client: Any) -> None:
    k = client.containers.run("busybox", ["sleep", "60"], detach=True, runtime="rootless")
    with pytest.raises(c.ContainerError, match="rootless container has no cgroup of its own"):
        k.pause()


def test_the_cgroup_v2_freezer_stops_a_process(tmp_path: Path) -> None:
    """The v2 code path, on this machine's cgroup2 tree (hybrid machines have one, without controllers)."""
    layout = machine_layout()
    if layout.v2_mount is None:
        pytest.skip("no cgroup2 tree here")
    group = Cgroup(f"test-freeze-{os.getpid()}", CgroupLayout("v2", (), layout.v2_mount, ()))
    group.create()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        group.add(sleeper.pid)
        group.freeze()
        assert group.frozen() and "frozen 1" in (group.dirs["unified"] / "cgroup.events").read_text()
        group.thaw()
        assert not group.frozen()
    finally:
        group.remove()  # kills the sleeper
        sleeper.wait()
    assert not group.dirs["unified"].exists()


# ------------------------------------------------------------------------------------------ stats


def test_stats_reads_the_kernels_counters(client: Any) -> None:
    busy = client.containers.run("busybox", BUSY, detach=True)
    limited = client.containers.run("busybox", ["sleep", "60"], detach=True, mem_limit="64m", pids_limit=50)
    reading = busy.stats(stream=False)
    assert {"read", "preread", "cpu_stats", "precpu_stats", "memory_stats", "pids_stats", "networks",
            "blkio_stats"} <= set(reading)
    assert reading["cpu_stats"]["cpu_usage"]["total_usage"] > reading["precpu_stats"]["cpu_usage"]["total_usage"]
    assert stats.cpu_percent(reading) > 0
    assert reading["pids_stats"]["current"] == 1
    assert reading["memory_stats"]["usage"] > 0 and reading["networks"] == {}  # network none: only lo
    one = limited.stats(stream=False, one_shot=True)
    assert one["precpu_stats"] == {} and stats.cpu_percent(one) == 0.0
    assert one["memory_stats"]["limit"] == 64 * 1024 * 1024  # from its memory cgroup
    assert one["pids_stats"] == {"current": 1, "limit": 50}
    assert 0 < stats.memory_percent(one) < 100


def test_stats_of_a_networked_container_counts_its_interface(network_client: Any) -> None:
    ping = "ping -c 3 -i 0.2 $(ip route | awk '/default/ {print $3}'); sleep 60"
    k = network_client.containers.run("busybox", ["sh", "-c", ping], detach=True, network="bridge")
    wait_for(lambda: "3 packets" in k.logs().decode(), "the pings")
    reading = k.stats(stream=False, one_shot=True)
    assert set(reading["networks"]) == {"eth0"}
    assert reading["networks"]["eth0"]["tx_packets"] >= 3 and reading["networks"]["eth0"]["rx_bytes"] > 0


def test_stats_follows_docker_pys_rules_and_a_runc_container_has_no_network_of_the_hosts(client: Any) -> None:
    k = client.containers.run("busybox", ["sleep", "60"], detach=True, runtime="runc")
    with pytest.raises(InvalidArgument, match="decode"):
        k.stats(stream=False, decode=True)
    with pytest.raises(InvalidArgument, match="one_shot"):
        k.stats(stream=True, one_shot=True)
    # (runc's recorded PID is runc's own, in our network namespace; runc places the container a moment later)
    reading = wait_for(lambda: (r := k.stats(stream=False, one_shot=True))["pids_stats"]["current"] and r,
                       "runc to put the container in its cgroup")
    assert reading["networks"] == {} and "CPU %" not in reading["summed"]  # runc joins every hierarchy
    stream = k.stats(decode=True)
    next(stream)
    k.remove(force=True)
    assert list(stream) == []  # removed: the stream ends


def test_stats_stream_ends_when_the_container_stops(client: Any) -> None:
    k = client.containers.run("busybox", ["sleep", "1"], detach=True)
    readings = list(k.stats(decode=True))
    assert readings[0]["cpu_stats"] and readings[-1]["cpu_stats"] == {}
    assert json.loads(next(iter(k.stats(stream=True))))["name"] == "/" + k.name  # bytes unless decode


def test_cli_stats_no_stream_prints_dockers_columns(client: Any, capfd: pytest.CaptureFixture[str]) -> None:
    client.containers.run("busybox", ["sleep", "60"], detach=True, name="quiet")
    client.containers.run("busybox", ["true"], detach=True, name="done").wait()
    assert main(["stats", "--no-stream"]) == 0
    out = capfd.readouterr().out.splitlines()
    assert out[0].split() == ["CONTAINER", "ID", "NAME", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                              "NET", "I/O", "BLOCK", "I/O", "PIDS"]
    assert [line.split()[1] for line in out[1:]] == ["quiet"]  # running ones only, without -a
    assert out[1].split()[-1] == "1"
    assert main(["stats", "--no-stream", "-a", "--format", "{{.Name}} {{.PIDs}}"]) == 0
    assert sorted(capfd.readouterr().out.splitlines()) == ["done --", "quiet 1"]
    assert main(["stats", "--no-stream", "nosuch"]) == 1
    assert "No such container: nosuch" in capfd.readouterr().err


def test_memory_used_leaves_out_the_cache_the_kernel_can_drop() -> None:
    reading = {"memory_stats": {"usage": 10_000, "limit": 40_000, "stats": {"inactive_file": 4_000}}}
    assert stats.memory_used(reading) == 6_000 and stats.memory_percent(reading) == 15.0
    v1 = {"memory_stats": {"usage": 10_000, "limit": 0, "stats": {"total_inactive_file": 1_000}}}
    assert stats.memory_used(v1) == 9_000 and stats.memory_percent(v1) == 0.0


# ------------------------------------------------------------------------------------------ restart


def test_restart_runs_again_on_the_same_layer_and_the_last_runs_clean_up_spares_it(client: Any) -> None:
    """stop, then start at once: the last monitor's clean-up (its cgroup emptied with SIGKILL) must not meet
    the new run, which has a cgroup of the same name (``container.monitoring``). A memory limit makes it
    start cold, from a monitor of its own, in a cgroup named after it (a warm monitor's is its own)."""
    k = client.containers.run("busybox", ["sh", "-c", "trap 'exit 3' TERM; echo x >> /runs; "
                                                     "while :; do sleep 0.05; done"], detach=True, mem_limit="64m")

    def runs() -> int:
        k.reload()
        try:
            return Path(f"/proc/{k.attrs['State']['Pid']}/root/runs").read_text().count("x")
        except OSError:
            return 0

    for run in range(1, 6):  # (each run has set its trap before it is stopped)
        wait_for(lambda n=run: runs() == n, f"run {run} to begin")
        k.restart(timeout=5)
        time.sleep(0.2)  # (time for a stray SIGKILL to land)
        assert k.status == "running"
    wait_for(lambda: runs() == 6, "six runs, each on the same writable layer")
    assert k.attrs["State"]["ExitCode"] == 3  # the last run ended by its TERM trap


def test_a_start_waits_until_the_last_monitor_has_cleaned_up(client: Any) -> None:
    """A monitor holds the container's monitor lock until its clean-up is done (``container.monitoring``);
    a start waits for it, so the two never meet in the cgroup named after the container."""
    import threading

    k = client.containers.create("busybox", ["sleep", "60"])
    with c.monitoring(k._c):  # as the last run's monitor, still cleaning up
        starter = threading.Thread(target=k.start)
        starter.start()
        time.sleep(1.0)  # (a start takes milliseconds)
        assert k.status == "created" and starter.is_alive()
    starter.join(timeout=15)
    assert k.status == "running"


def test_cli_restart_prints_the_names(client: Any, capfd: pytest.CaptureFixture[str]) -> None:
    pid = client.containers.run("busybox", ["sleep", "60"], detach=True, name="again").attrs["State"]["Pid"]
    assert main(["restart", "-t", "0", "again"]) == 0
    assert capfd.readouterr().out.strip() == "again"
    k = client.containers.get("again")
    assert k.status == "running" and k.attrs["State"]["Pid"] != pid


def test_restart_of_a_rm_container_keeps_it_and_its_layer_and_a_later_stop_removes_it(client: Any) -> None:
    """As Docker (moby's ``HasBeenManuallyRestarted``): ``restart`` stops a ``--rm`` container without removing
    it. Its writable layer was mounted ``volatile`` (no sync at unmount), whose marker would make overlayfs
    refuse the second mount: the restart must get past it."""
    k = client.containers.run("busybox", ["sh", "-c", "echo x >> /runs; exec sleep 60"], detach=True, remove=True,
                              name="rm-again")
    mounts = k.exec_run(["cat", "/proc/mounts"]).output.decode()
    assert "fsync=volatile" in next(line for line in mounts.splitlines() if line.startswith("overlay / "))
    first = k.attrs["State"]["Pid"]
    k.restart(timeout=0)
    k.reload()
    assert k.status == "running" and k.attrs["State"]["Pid"] != first
    assert k.exec_run(["cat", "/runs"]).output == b"x\nx\n"  # the same writable layer, twice written
    k.stop(timeout=0)
    wait_for(lambda: not any(c.id == k.id for c in client.containers.list(all=True)), "the --rm container to go")


def test_only_rm_containers_write_their_layer_without_syncing_it(client: Any) -> None:
    out = client.containers.run("busybox", ["grep", "^overlay / ", "/proc/mounts"], remove=True).decode()
    assert "fsync=volatile" in out
    kept = client.containers.run("busybox", ["grep", "^overlay / ", "/proc/mounts"], detach=True)
    kept.wait(timeout=10)
    assert "volatile" not in kept.logs().decode()  # docker start must find it as it was, even after a crash
    kept.remove()


# ------------------------------------------------------------------------------------------ rename


def test_rename_frees_the_old_name_and_survives_the_monitors_last_word(client: Any, busybox_store: Store) -> None:
    k = client.containers.run("busybox", ["sleep", "0.5"], detach=True, name="before")
    k.rename("after")
    assert client.containers.get("after").id == k.id
    with pytest.raises(Exception, match="No such container"):
        client.containers.get("before")
    client.containers.run("busybox", ["true"], name="before", remove=True)  # the old name is free again
    assert k.wait(timeout=10)["StatusCode"] == 0
    # The monitor recorded the exit after the rename: it wrote only what it changed.
    assert c.read_state(k._c.dir)["name"] == "after"


def test_a_renamed_auto_removed_container_lets_its_new_name_go(client: Any) -> None:
    k = client.containers.run("busybox", ["sleep", "3"], detach=True, remove=True, name="rmold")
    k.rename("rmnew")
    k.wait(timeout=10)
    wait_for(lambda: not k._c.dir.exists(), "the --rm container to go")
    again = client.containers.create("busybox", ["true"], name="rmnew")  # no "already in use"
    assert again.name == "rmnew"


def test_two_renames_at_once_leave_one_name_and_no_stray_claim(client: Any) -> None:
    import threading

    k = client.containers.create("busybox", ["true"], name="racer")
    errors: list[Exception] = []

    def rename(name: str) -> None:
        try:
            c.rename(c.get_container(k._c.store, k.id), name)
        except Exception as exc:  # noqa: BLE001 (the loser may be told the name changed under it)
            errors.append(exc)

    threads = [threading.Thread(target=rename, args=(name,)) for name in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = c.read_state(k._c.dir)["name"]
    assert final in ("left", "right")
    other = "right" if final == "left" else "left"
    assert client.containers.create("busybox", ["true"], name=other).name == other  # not held by a stray link


def test_rename_refuses_a_taken_or_invalid_name(client: Any, capfd: pytest.CaptureFixture[str]) -> None:
    one = client.containers.create("busybox", ["true"], name="one")
    client.containers.create("busybox", ["true"], name="two")
    with pytest.raises(InvalidArgument, match='"/two" is already in use'):
        one.rename("two")
    with pytest.raises(InvalidArgument, match="invalid container name"):
        one.rename("-bad")
    assert main(["rename", "one", "one"]) == 1
    assert "has that name already" in capfd.readouterr().err
    assert client.containers.get("one").id == one.id


def test_a_renamed_container_is_found_by_its_new_name_on_its_network(network_client: Any) -> None:
    network_client.networks.create("renamenet")
    server = network_client.containers.run("busybox", ["sleep", "60"], detach=True, network="renamenet",
                                           name="oldname")
    client_side = network_client.containers.run("busybox", ["sleep", "60"], detach=True, network="renamenet")
    server.rename("newname")
    hosts = client_side.exec_run(["cat", "/etc/hosts"]).output.decode()
    assert "newname" in hosts and "oldname" not in hosts
    assert client_side.exec_run(["ping", "-c", "1", "-W", "2", "newname"]).exit_code == 0


def test_concurrent_state_writers_lose_nothing(client: Any, busybox_store: Store) -> None:
    """Two processes save different keys of one container's state at once: both changes stay."""
    k = client.containers.create("busybox", ["true"], name="writers")._c
    code = ("import sys; sys.path.insert(0, {root!r}); from pycontainers import container as c; "
            "from pycontainers.store import Store; k = c.get_container(Store({home!r}), 'writers'); "
            "[k.save(**{{{key!r}: i}}) for i in range(200)]")
    root = str(Path(c.__file__).resolve().parents[1])
    procs = [subprocess.Popen([sys.executable, "-c", code.format(root=root, home=str(busybox_store.home), key=key)])
             for key in ("first", "second")]
    assert [p.wait() for p in procs] == [0, 0]
    state = c.read_state(k.dir)
    assert state["first"] == 199 and state["second"] == 199
