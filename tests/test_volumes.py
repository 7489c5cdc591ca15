"""Named volumes: create, use from two containers in turn, refuse removal while used, remove."""

from __future__ import annotations

import os

import pytest

from pycontainers import container as c
from pycontainers.api import Client
from pycontainers.errors import InvalidArgument, PyContainersError
from pycontainers.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native runtime needs root")


def test_a_named_volume_outlives_the_containers_that_use_it(busybox_store: Store) -> None:
    client = Client(busybox_store.home)
    assert c.volume_create(busybox_store, "notes") == "notes"
    client.containers.run("busybox", ["sh", "-c", "echo kept > /data/f"], volumes=["notes:/data"], remove=True)
    assert client.containers.run("busybox", ["cat", "/data/f"], volumes=["notes:/data"], remove=True) == b"kept\n"
    assert c.volume_list(busybox_store) == ["notes"]
    assert c.volume_inspect(busybox_store, "notes")["Mountpoint"].endswith("volumes/notes/_data")


def test_a_volume_in_use_is_not_removed_without_force(busybox_store: Store) -> None:
    client = Client(busybox_store.home)
    stopped = client.containers.create("busybox", ["true"], volumes=["data:/data"], name="user")
    with pytest.raises(PyContainersError, match="volume is in use"):
        c.volume_remove(busybox_store, "data")
    assert c.volume_list(busybox_store) == ["data"]
    stopped.remove()
    c.volume_remove(busybox_store, "data")
    assert c.volume_list(busybox_store) == []


def test_bad_volume_names_are_refused(busybox_store: Store) -> None:
    with pytest.raises(InvalidArgument, match="invalid volume name"):
        c.volume_create(busybox_store, "../escape")
    with pytest.raises(PyContainersError, match="no such volume"):
        c.volume_remove(busybox_store, "missing")


def test_a_new_named_volume_starts_with_what_the_image_has_there(busybox_store: Store, tmp_path) -> None:
    """As Docker's: an empty named volume mounted over /etc gets the image's /etc first (owners and modes
    kept); after that it is the volume's own (a non-empty one is never overwritten), and a host
    directory (-v /host:/etc) is never filled."""
    client = Client(busybox_store.home)
    run = client.containers.run
    etc_files = {"hostname", "hosts", "resolv.conf"}  # the container's own, mounted on top of the volume
    listed = run("busybox", ["sh", "-c", "ls /etc; echo mine > /etc/mine; rm /etc/group"],
                 volumes=["etcvol:/etc"], remove=True)
    assert set(listed.decode().split()) == {"group", "passwd", *etc_files}
    data = busybox_store.home / "volumes" / "etcvol" / "_data"
    assert {p.name for p in data.iterdir()} - etc_files == {"mine", "passwd"}
    assert (data / "passwd").read_text().startswith("root:x:0:0:") and oct(data.stat().st_mode)[-3:] == "755"
    listed = run("busybox", ["ls", "/etc"], volumes=["etcvol:/etc"], remove=True)
    assert set(listed.decode().split()) == {"mine", "passwd", *etc_files}  # not refilled: no group
    host = tmp_path / "etc"
    host.mkdir()
    assert set(run("busybox", ["ls", "/etc"], volumes=[f"{host}:/etc"], remove=True).decode().split()) == etc_files
    assert run("busybox", ["ls", "/data"], volumes=["fresh:/data"], remove=True) == b""  # nothing there in the image


def test_a_volume_filled_from_the_image_keeps_owners_of_hard_links_and_fifos(busybox_store: Store, tmp_path) -> None:
    from pycontainers.build import build

    (tmp_path / "Dockerfile").write_text(
        "FROM busybox\nRUN mkdir -p /data/sub && echo hello > /data/sub/f && ln /data/sub/f /data/hard && "
        "mkfifo /data/fifo && chown -R 1000:1000 /data/sub\n")
    build(busybox_store, tmp_path, tags=["linked"], on_event=lambda e: None)
    run = Client(busybox_store.home).containers.run
    # /data/sub/f is a hard link in the layer (to /data/hard, outside this volume), owned by 1000
    assert run("linked", ["stat", "-c", "%u:%g %F %s", "/data/sub/f"], volumes=["sub:/data/sub"],
               remove=True) == b"1000:1000 regular file 6\n"
    assert run("linked", ["stat", "-c", "%F", "/data/fifo"], volumes=["whole:/data"], remove=True) == b"fifo\n"


@pytest.mark.parametrize("backend", ["native", "runc"])
def test_etc_files_go_on_top_of_a_volume_on_etc(busybox_store: Store, backend: str) -> None:
    """Mounts parents first, as Docker: a volume on /etc, then the container's /etc/hostname on top of it
    (the volume hid it)."""
    import shutil

    if backend == "runc" and shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    out = Client(busybox_store.home).containers.run("busybox", ["cat", "/etc/hostname"], hostname="on-top",
                                                   volumes=["etc:/etc"], remove=True, runtime=backend)
    assert out == b"on-top\n"
