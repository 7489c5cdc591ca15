"""The Python API against docker-py's (the ``docker`` package): argument names, return values and errors.

Each test uses a store of its own holding busybox (``busybox_store``) and removes what it made.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from processes import wait_for

import pycontainers.api
import pycontainers.container
from pycontainers import errors
from pycontainers.api import Client
from pycontainers.container import list_containers, log_entries
from pycontainers.errors import PyContainersError
from pycontainers.logs import _tail_start
from pycontainers.store import Store

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the native runtime needs root")
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(busybox_store: Store) -> Iterator[Client]:
    client = Client(busybox_store.home)
    yield client
    for c in list_containers(busybox_store):
        with contextlib.suppress(PyContainersError):
            pycontainers.container.remove(c, force=True)
    assert list_containers(busybox_store) == []


# ------------------------------------------------------------------------------------------------- errors


def test_error_classes_have_docker_pys_family() -> None:
    assert issubclass(errors.ImageNotFound, errors.NotFound)
    assert issubclass(errors.NotFound, errors.APIError)
    assert issubclass(errors.ContainerNotFound, errors.NotFound)
    assert not issubclass(errors.ContainerError, errors.APIError)  # as docker-py: a command that failed
    assert issubclass(errors.ContainerStartError, errors.ContainerError)
    assert issubclass(errors.ContainerStartError, errors.APIError)  # docker-py raises APIError there
    assert issubclass(errors.ContainerTimeout, errors.APIError)
    # The names others import still name the same classes.
    assert pycontainers.api.ContainerError is errors.ContainerError
    assert pycontainers.container.ContainerNotFound is errors.ContainerNotFound
    assert pycontainers.container.ContainerError is errors.EngineError
    assert errors.NotFound("x").status_code == 404 and errors.NotFound("x").is_client_error()
    assert errors.APIError("boom").explanation == "boom"


def test_errors_are_an_attribute_of_the_package_as_docker_errors_is() -> None:
    code = "import pycontainers; print(pycontainers.errors.NotFound.__name__, pycontainers.errors.APIError.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["NotFound", "APIError"]


@root_only  # (a network's bridge)
def test_objects_for_the_same_container_volume_or_network_are_equal_as_docker_py_s(client: Client) -> None:
    c = client.containers.create("busybox", ["true"])
    assert client.containers.get(c.id) == c and client.containers.list(all=True) == [c] and {c, c} == {c}
    assert c != client.containers.create("busybox", ["true"])
    v = client.volumes.create("same")
    assert client.volumes.get("same") == v and v in client.volumes.list()
    n = client.networks.create("same")
    assert client.networks.get("same") == n and hash(client.networks.get(n.id)) == hash(n)


def test_missing_image_and_container_are_not_found(client: Client) -> None:
    with pytest.raises(errors.NotFound, match="No such container: nosuch"):
        client.containers.get("nosuch")
    with pytest.raises(errors.ImageNotFound):
        client.images.get("nosuch")
    with pytest.raises(errors.NotFound):
        client.containers.run("nosuch-image", ["true"])


@root_only
def test_non_zero_exit_is_docker_pys_container_error(client: Client) -> None:
    with pytest.raises(errors.ContainerError) as failed:
        client.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 3"], name="fails")
    assert failed.value.exit_status == 3
    assert failed.value.stderr == b"oops\n"
    assert failed.value.container is not None and failed.value.container.name == "fails"
    assert not isinstance(failed.value, errors.APIError)


@root_only
def test_a_start_failure_is_both_container_error_and_api_error(client: Client) -> None:
    c = client.containers.create("busybox", ["/nope"])
    with pytest.raises(errors.APIError) as failed:
        c.start()
    assert isinstance(failed.value, errors.ContainerError)
    assert failed.value.exit_status == 127
    with pytest.raises(errors.APIError):
        client.containers.run("busybox", ["/nope"], detach=True)


@root_only
def test_wait_timeout_is_an_api_error_saying_timed_out(client: Client) -> None:
    c = client.containers.run("busybox", ["sleep", "30"], detach=True)
    with pytest.raises(errors.APIError, match="timed out") as timed_out:
        c.wait(timeout=0.2)
    assert isinstance(timed_out.value, errors.ContainerTimeout)
    assert c.status == "running"
    c.remove(force=True)


# ----------------------------------------------------------------------------------------- run / create


@root_only
@pytest.mark.parametrize("option", ["remove", "auto_remove"])
def test_detached_run_with_remove_removes_the_container_when_it_exits(client: Client, option: str) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "sleep 1; exit 3"], detach=True, **{option: True})
    assert c.attrs["HostConfig"]["AutoRemove"] is True
    assert c.wait(timeout=30)["StatusCode"] == 3
    wait_for(lambda: client.containers.list(all=True) == [], "the container to be removed")
    with pytest.raises(errors.NotFound):
        client.containers.get(c.id)


@root_only
def test_attached_run_with_auto_remove(client: Client) -> None:
    assert client.containers.run("busybox", ["echo", "hi"], auto_remove=True) == b"hi\n"
    assert client.containers.list(all=True) == []


def test_docker_py_option_names_reach_the_container(client: Client) -> None:
    c = client.containers.create(
        "busybox", "echo hi", name="named", working_dir="/tmp", network_mode="host", stdin_open=True,
        auto_remove=True, user="nobody", hostname="box", entrypoint=["sh", "-c"], mem_limit="64m",
        nano_cpus=500_000_000, pids_limit=50, read_only=True, tty=True, init=True, environment={"A": "1"},
        labels={"course": "cs107"})
    attrs = c.attrs
    assert c.name == "named" and attrs["Name"] == "/named"
    assert attrs["Path"] == "sh" and attrs["Args"] == ["-c", "echo", "hi"]
    config, host = attrs["Config"], attrs["HostConfig"]
    assert (config["WorkingDir"], config["User"], config["Hostname"]) == ("/tmp", "nobody", "box")
    assert config["Tty"] is True and config["OpenStdin"] is True
    assert "A=1" in config["Env"]
    assert config["Labels"]["course"] == "cs107" == c.labels["course"]
    assert host["NetworkMode"] == "host"
    assert host["Memory"] == 64 << 20
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 50
    assert host["ReadonlyRootfs"] is True and host["Init"] is True and host["AutoRemove"] is True
    c.remove()


def test_memory_and_mem_limit_are_one_option(client: Client) -> None:
    c = client.containers.create("busybox", "true", memory="32m")
    assert c.attrs["HostConfig"]["Memory"] == 32 << 20
    c.remove()
    same = client.containers.create("busybox", "true", memory="32m", mem_limit="32m")
    assert same.attrs["HostConfig"]["Memory"] == 32 << 20
    same.remove()
    with pytest.raises(errors.InvalidArgument, match="same option"):
        client.containers.create("busybox", "true", memory="32m", mem_limit="64m")
    with pytest.raises(errors.InvalidArgument, match="same option"):
        client.containers.create("busybox", "true", cpus=1, nano_cpus=500_000_000)
    assert client.containers.list(all=True) == []


def test_labels_as_a_list_and_without_labels(client: Client) -> None:
    listed = client.containers.create("busybox", "true", labels=["flag"])
    assert listed.attrs["Config"]["Labels"]["flag"] == ""
    assert client.containers.get(listed.id).labels["flag"] == ""
    plain = client.containers.create("busybox", "true")
    assert "flag" not in plain.attrs["Config"]["Labels"]
    with pytest.raises(errors.InvalidArgument, match="labels"):
        client.containers.create("busybox", "true", labels="flag")


def test_unsupported_and_unknown_options_are_refused(client: Client) -> None:
    with pytest.raises(errors.InvalidArgument, match="privileged= is not supported"):
        client.containers.run("busybox", "true", privileged=True)
    with pytest.raises(errors.InvalidArgument, match="cap_add= is not supported"):
        client.containers.create("busybox", "true", cap_add=["NET_ADMIN"])
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        client.containers.create("busybox", "true", bogus=1)
    assert client.containers.list(all=True) == []  # nothing was made
    quiet = client.containers.create("busybox", "true", privileged=False, cap_add=None)  # empty: as not given
    quiet.remove()


# ------------------------------------------------------------------------------------------------- logs


@root_only
def test_logs_tail(client: Client) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "for i in 1 2 3 4; do echo $i; done"], detach=True)
    assert c.wait(timeout=30)["StatusCode"] == 0
    assert c.logs() == c.logs(tail="all") == b"1\n2\n3\n4\n"
    assert c.logs(tail=2) == b"3\n4\n"
    assert c.logs(tail="1") == b"4\n"
    assert c.logs(tail=0) == b""
    assert c.logs(tail=10) == b"1\n2\n3\n4\n"
    with pytest.raises(errors.InvalidArgument, match="tail"):
        c.logs(tail="last")
    with pytest.raises(errors.InvalidArgument, match="since"):
        c.logs(since="yesterday")


@root_only
def test_logs_keep_the_streams_apart_in_order_with_their_times(client: Client) -> None:
    script = "echo out1; sleep 0.5; echo err1 >&2; sleep 0.5; echo out2; sleep 0.5; printf 'no newline' >&2"
    c = client.containers.run("busybox", ["sh", "-c", script], detach=True)  # (pauses: two pipes have no order)
    assert c.wait(timeout=30)["StatusCode"] == 0
    assert c.logs() == b"out1\nerr1\nout2\nno newline"  # both, in the order the monitor read them
    assert c.logs(stderr=False) == b"out1\nout2\n"
    assert c.logs(stdout=False) == b"err1\nno newline"
    assert c.logs(stdout=False, stderr=False) == b""
    stamped = c.logs(timestamps=True).split(b"\n")
    assert [line.split(b" ", 1)[1] for line in stamped] == [b"out1", b"err1", b"out2", b"no newline"]
    times = [datetime.strptime(line.split(b" ")[0].decode()[:26], "%Y-%m-%dT%H:%M:%S.%f") for line in stamped]
    started = datetime.fromisoformat(c.attrs["State"]["StartedAt"].replace("Z", "+00:00")).replace(tzinfo=None)
    assert times == sorted(times) and all(abs((t - started).total_seconds()) < 30 for t in times)
    later = time.time() + 3600
    assert c.logs(since=later) == b"" and c.logs(until=later) == c.logs()
    assert c.logs(until=datetime(2000, 1, 1, tzinfo=UTC)) == b""


@root_only
def test_logs_stream_follows_until_the_container_exits(client: Client) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "echo early; sleep 1; echo late >&2"], detach=True)
    wait_for(lambda: c.logs() == b"early\n", "the first line")
    assert b"".join(c.logs(stream=True, follow=False)) == b"early\n"  # what is there: no waiting
    chunks = c.logs(stream=True)  # docker-py: follow defaults to stream
    assert not isinstance(chunks, bytes)
    assert b"".join(chunks) == b"early\nlate\n"
    assert c.status == "exited"
    assert c.logs(follow=True, tail=1) == b"late\n"


@root_only
def test_logs_follow_an_auto_removed_container_to_its_end(client: Client) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "echo a; sleep 1; echo b"], detach=True, remove=True)
    assert b"".join(c.logs(stream=True)) == b"a\nb\n"
    wait_for(lambda: client.containers.list(all=True) == [], "the container to be removed")


@pytest.mark.parametrize("final_newline", [True, False])
def test_tail_start_across_blocks(final_newline: bool) -> None:
    lines = [b"%06d" % i + b"x" * 1000 for i in range(200)]  # ~200 KB: several 64 KiB blocks
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    f = io.BytesIO(data)
    for n in (1, 2, 65, 66, 199):
        f.seek(_tail_start(f, n))
        assert f.read().splitlines() == lines[-n:]
    assert _tail_start(f, 200) == _tail_start(f, 1000) == 0
    assert _tail_start(f, 0) == len(data)
    assert _tail_start(io.BytesIO(b""), 3) == 0


def test_log_entries_of_a_container_never_started(client: Client) -> None:
    c = client.containers.create("busybox", "true")
    assert list(log_entries(c._c, follow=True)) == []
    assert c.logs(stream=True, tail=3) is not None and c.logs() == b""


# ------------------------------------------------------------------------------------------------- exec


@root_only
def test_exec_run_docker_py_arguments(client: Client) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True)
    both = "sh -c 'echo out; echo err >&2'"
    assert c.exec_run(["sh", "-c", "echo $X $Y"], environment={"X": "1", "Y": "2"}) == (0, b"1 2\n")
    assert c.exec_run(["sh", "-c", "echo $X"], environment=["X=3"]) == (0, b"3\n")
    assert c.exec_run(both) == (0, b"out\nerr\n")
    assert c.exec_run(both, stderr=False) == (0, b"out\n")
    assert c.exec_run(both, stdout=False) == (0, b"err\n")
    assert c.exec_run(both, demux=True) == (0, (b"out\n", b"err\n"))
    assert c.exec_run("echo only", demux=True) == (0, (b"only\n", None))
    assert c.exec_run(both, tty=True) == (0, b"out\r\nerr\r\n")  # one stream, as a terminal shows it
    assert c.exec_run("pwd", workdir="/tmp") == (0, b"/tmp\n")
    assert c.exec_run("id -u", user="nobody").output.strip() != b"0"
    assert c.exec_run("cat", stdin=b"fed") == (0, b"fed")
    assert c.exec_run("sh -c 'sleep 0.2; echo done > /tmp/flag'", detach=True) == (None, None)
    wait_for(lambda: c.exec_run("cat /tmp/flag") == (0, b"done\n"), "the detached exec to finish")
    assert c.exec_run("no-such-command").exit_code == 127
    with pytest.raises(errors.APIError, match="executable file not found"):
        c.exec_run("no-such-command", detach=True)
    with pytest.raises(errors.InvalidArgument):
        c.exec_run("true", privileged=True)
    assert c.logs() == b""  # an exec's output is not the container's
    c.remove(force=True)


def test_a_container_that_removed_itself_is_not_found(busybox_store: Store) -> None:
    """docker-py raises NotFound for logs() and remove() of an auto-removed container (they gave b'' and None)."""
    from pycontainers.errors import NotFound

    client = Client(busybox_store.home)
    gone = client.containers.run("busybox", ["true"], detach=True, auto_remove=True)
    assert gone.wait(timeout=10)["StatusCode"] == 0
    with pytest.raises(NotFound):
        gone.logs()
    with pytest.raises(NotFound):
        gone.remove()


def test_volumes_as_docker_pys(client: Client) -> None:
    volume = client.volumes.create("notes")
    assert (volume.name, volume.attrs["Mountpoint"]) == ("notes", str(client.store.home / "volumes/notes/_data"))
    assert [v.name for v in client.volumes.list()] == ["notes"]
    client.containers.run("busybox", ["sh", "-c", "echo hello > /n/f"], volumes=["notes:/n"], remove=True)
    user = client.containers.run("busybox", ["cat", "/n/f"], volumes=["notes:/n"], detach=True)
    with pytest.raises(errors.APIError, match="volume is in use"):
        client.volumes.get("notes").remove()  # as Docker: not while a container (even exited) uses it
    assert client.volumes.prune() == {"VolumesDeleted": [], "SpaceReclaimed": 0}
    user.remove(force=True)
    assert client.volumes.prune() == {"VolumesDeleted": [], "SpaceReclaimed": 0}  # anonymous ones only (API 1.42)
    assert client.volumes.prune({"all": ["true"]}) == {"VolumesDeleted": ["notes"], "SpaceReclaimed": len("hello\n")}
    with pytest.raises(errors.NotFound):
        client.volumes.get("notes")
    with pytest.raises(errors.InvalidArgument, match="only .local. volumes"):
        client.volumes.create("x", driver="nfs")


def test_prune_builds_as_docker_pys(client: Client, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo cached > /step\n")
    image, _ = client.images.build(path=str(tmp_path), tag="cached")
    client.images.remove("cached")
    pruned = client.images.prune_builds()
    assert len(pruned["CachesDeleted"]) == 1 and pruned["SpaceReclaimed"] > 0
    assert client.images.prune_builds() == {"CachesDeleted": [], "SpaceReclaimed": 0}
