"""Isolation, drawn and checked: namespace_graph and notebook 05's exercises, on real running containers."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest

from pycontainers.api import Client, Container, ContainerError
from pycontainers.container import ContainerError as EngineContainerError
from pycontainers.container import cgroup_of
from pycontainers.exercises import Check, check_host_pid, check_oom_killed, check_own_namespaces
from pycontainers.store import Store
from pycontainers.views import _limit_text, namespace_graph, namespace_inodes, own_namespaces

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native runtime needs root")

OWN = {"mnt", "pid", "net", "uts", "ipc", "cgroup"}  # what the native runtime unshares by default


@pytest.fixture
def client(busybox_store: Store) -> Iterator[Client]:
    client = Client(busybox_store.home)
    yield client
    for c in client.containers.list(all=True):  # every container a test started, whatever happened
        c.remove(force=True)
    assert client.containers.list(all=True) == []


def start(client: Client, name: str, command: str = "sleep 300; true", **options: object) -> Container:
    """A detached busybox container; with ``; true`` its shell stays PID 1 and ``sleep`` is a child."""
    return client.containers.run("busybox", ["sh", "-c", command], detach=True, name=name, **options)


def node_label(source: str, node: str) -> str:
    match = re.search(rf'^\t+{node} \[label="([^"]*)"', source, re.MULTILINE)
    assert match, f"no node {node} in\n{source}"
    return match.group(1)


def assert_unanswered(check: Check) -> None:
    assert not check.ok and not check.answered and str(check).startswith("… Not answered yet:")


def assert_wrong(check: Check, *words: str) -> None:
    assert not check.ok and check.answered and check.hint and str(check).startswith("✗")
    for word in words:
        assert word in check.message + " " + check.hint, check


def assert_right(check: Check) -> None:
    assert check.ok and check.answered and str(check).startswith("✓"), check


# ------------------------------------------------------------------------------------ namespace_graph


def test_namespace_graph_of_a_running_container(client: Client) -> None:
    web = start(client, "web", mem_limit="16m")
    g = namespace_graph(web)
    source = g.source
    for ns in OWN:
        assert node_label(source, f"ns_{ns}").startswith(f"{ns}: own ["), ns
        assert f"process -> ns_{ns}" in source
    assert node_label(source, "ns_user").startswith("user: host's [")
    pid = web.attrs["State"]["Pid"]
    process = node_label(source, "process")
    assert "PID 1 inside the container" in process and f"PID {pid} on the host" in process
    memory = node_label(source, "cgroup_memory" if "cgroup_memory" in source else "cgroup_unified")
    assert re.search(r"memory\.(limit_in_bytes|max) = 16777216 \(16 MiB\)", memory), memory
    assert web.id[:12] in memory and web.id not in memory  # the long ID is shortened
    # the inode shown is the one in /proc, and differs from this process's for an own namespace
    inodes, host = namespace_inodes(pid), namespace_inodes()
    assert f"[{inodes['mnt']}]" in node_label(source, "ns_mnt") and inodes["mnt"] != host["mnt"]
    assert inodes["user"] == host["user"]


def test_namespace_graph_of_a_rootless_container(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "rootless")
    source = namespace_graph(start(client, "quiet")).source
    for ns in {*OWN, "user"}:  # a user namespace of its own too, and it owns the others
        assert node_label(source, f"ns_{ns}").startswith(f"{ns}: own ["), ns
    assert "no cgroup of its own" in node_label(source, "cgroup_none") and "process -> cgroup_none" in source


def test_namespace_graph_refuses_a_proot_container_in_one_sentence(client: Client,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")
    with pytest.raises(EngineContainerError, match="runs under proot: namespace_graph draws native and rootless"):
        namespace_graph(start(client, "faked"))


def test_namespace_graph_is_deterministic_and_has_no_address(client: Client) -> None:
    web = start(client, "web")
    first, second = namespace_graph(web), namespace_graph(client.containers.get("web")._c)  # API or engine object
    assert first.source == second.source
    assert repr(first) == "<namespace graph: web>" and "0x" not in repr(first)
    nodes = set(re.findall(r"^\t+(\w+) \[label=", first.source, re.MULTILINE))
    assert {"process", *(f"ns_{ns}" for ns in [*OWN, "user"])} <= nodes
    assert all(re.fullmatch(r"process|ns_\w+|cgroup_\w+", n) for n in nodes)
    pids = node_label(first.source, "cgroup_pids" if "cgroup_pids" in first.source else "cgroup_unified")
    assert "pids.max = max (no limit)" in pids  # no --pids-limit: the kernel's "unlimited" is named as such
    if "cgroup_unused" in first.source:  # cgroup v1: no -m, no --cpus, so no memory or cpu cgroup of its own
        assert node_label(first.source, "cgroup_unused").startswith("cpu, memory: no cgroup of its own")
        assert "process -> cgroup_unused" in first.source
    assert "<svg" in first.pipe(format="svg").decode()  # graphviz can draw it


def test_namespace_graph_host_network_and_stopped_container(client: Client) -> None:
    hostnet = start(client, "hostnet", network="host")
    source = namespace_graph(hostnet).source
    assert node_label(source, "ns_net").startswith("net: host's [")
    assert node_label(source, "ns_uts").startswith("uts: own [")
    hostnet.kill()
    hostnet.wait(timeout=10)
    with pytest.raises(EngineContainerError, match="not running"):
        namespace_graph(hostnet)


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("memory.max", "max", "memory.max = max (no limit)"),  # cgroup v2
    ("cpu.max", "max 100000", "cpu.max = max 100000 (no limit)"),
    ("cpu.max", "50000 100000", "cpu.max = 50000 100000"),
    ("memory.limit_in_bytes", "9223372036854771712", "memory.limit_in_bytes = 9223372036854771712 (no limit)"),
    ("memory.max", "33554432", "memory.max = 33554432 (32 MiB)"),
    ("cpu.cfs_quota_us", "-1", "cpu.cfs_quota_us = -1 (no limit)"),
    ("pids.max", "20", "pids.max = 20"),
])
def test_limit_text_names_both_cgroup_versions(name: str, value: str, expected: str) -> None:
    assert _limit_text(name, value) == expected


# -------------------------------------------------------------------------------- the host's PID


def test_check_host_pid(client: Client) -> None:
    assert_unanswered(check_host_pid(client, "web", ...))
    assert_unanswered(check_host_pid(client, "web", None))
    assert_wrong(check_host_pid(client, "web", 4242), "no container")
    web = start(client, "web")
    pid = web.attrs["State"]["Pid"]
    assert_right(check_host_pid(client, "web", pid))
    assert_right(check_host_pid(client, "web", str(pid)))
    assert_wrong(check_host_pid(client, "web", 1), "top web")
    child = next(p for p in _cgroup_pids(web) if p != pid)
    assert_wrong(check_host_pid(client, "web", child), "not its PID 1")
    assert_wrong(check_host_pid(client, "web", os.getpid()), "not a process of web")
    assert_wrong(check_host_pid(client, "web", "pid one"), "not a PID")
    assert_wrong(check_host_pid(client, "web", True), "not a PID")
    web.kill()
    web.wait(timeout=10)
    assert_wrong(check_host_pid(client, "web", pid), "not running")


def _cgroup_pids(container: Container) -> list[int]:
    for _ in range(200):  # the shell forks sleep right after it starts
        pids = cgroup_of(container._c).pids()
        if len(pids) >= 2:
            return pids
        time.sleep(0.01)
    raise AssertionError("the container's shell never started its child")


# ---------------------------------------------------------------------------------- own namespaces


def test_check_own_namespaces(client: Client) -> None:
    assert_unanswered(check_own_namespaces(client, "web", ...))
    web = start(client, "web")
    assert set(own_namespaces(web.attrs["State"]["Pid"])) == OWN
    assert_right(check_own_namespaces(client, "web", OWN))
    assert_right(check_own_namespaces(client, "web", sorted(OWN)))
    assert_right(check_own_namespaces(client, "web", "mnt, pid network uts ipc cgroup"))
    assert_wrong(check_own_namespaces(client, "web", OWN | {"user"}), "root on the host")
    # What is missing is counted, never named: the message must not give the answer away.
    for answer, missing in ((OWN - {"net"}, "misses 1 namespace"), (OWN - {"cgroup"}, "misses 1 namespace"),
                            ({"mnt", "pid", "net", "uts"}, "misses 2 namespaces")):
        check = check_own_namespaces(client, "web", answer)
        assert_wrong(check, missing)
        assert not any(name in str(check) for name in OWN - set(answer))
    assert_wrong(check_own_namespaces(client, "web", {"mnt", "clock"}), "'clock' is not a namespace")
    assert_wrong(check_own_namespaces(client, "web", 42), "not a set")
    assert_wrong(check_own_namespaces(client, "nobody", OWN), "no container")


def test_check_own_namespaces_follows_the_network_mode(client: Client) -> None:
    start(client, "hostnet", network="host")
    assert_right(check_own_namespaces(client, "hostnet", OWN - {"net"}))
    assert_wrong(check_own_namespaces(client, "hostnet", OWN), "--network host")


# ---------------------------------------------------------------------------------------- OOM kill


HOG = "x=a; while true; do x=$x$x; done"  # doubles a shell string until the kernel says no


def test_check_oom_killed(client: Client) -> None:
    assert_unanswered(check_oom_killed(client, "ex-oom", "16m"))
    with pytest.raises(ContainerError) as caught:
        client.containers.run("busybox", ["sh", "-c", HOG], name="ex-oom", mem_limit="16m")
    assert caught.value.exit_status == 137
    assert_right(check_oom_killed(client, "ex-oom", "16m"))
    assert_wrong(check_oom_killed(client, "ex-oom", "32m"), "16,777,216 bytes", "-m 32m")


def test_check_oom_killed_says_where_it_cannot_be_done(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "rootless")  # a student without root: no cgroup, no -m
    check = check_oom_killed(client, "ex-oom", "16m")
    assert not check.checkable and str(check).startswith("– Cannot be checked here:")  # grey, not a red cross
    assert "needs a memory limit, hence a cgroup, and rootless containers have none" in check.message


def test_check_oom_killed_wrong_containers(client: Client) -> None:
    client.containers.run("busybox", ["true"], name="no-limit")
    assert_wrong(check_oom_killed(client, "no-limit", "16m"), "no memory limit")
    client.containers.run("busybox", ["true"], name="polite", mem_limit="16m")
    assert_wrong(check_oom_killed(client, "polite", "16m"), "exit code 0", "was not OOM-killed")
    start(client, "sleepy", "sleep 300", mem_limit="16m")
    assert_wrong(check_oom_killed(client, "sleepy", "16m"), "still running")
