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


# ------------------------------------------------------------------------------------- anonymous volumes


def anonymous(store: Store) -> list[str]:
    return [name for name in c.volume_list(store) if len(name) == 64]


def test_an_anonymous_volume_keeps_writes_out_of_the_layer_and_goes_with_rm_v(busybox_store: Store) -> None:
    client = Client(busybox_store.home)
    first = client.containers.run("busybox", ["sh", "-c", "echo kept > /data/f"], volumes=["/data"], detach=True)
    assert first.wait(timeout=30)["StatusCode"] == 0
    (name,) = anonymous(busybox_store)
    mounts = first.attrs["Mounts"]
    assert [(m["Type"], m["Name"], m["Destination"]) for m in mounts] == [("volume", name, "/data")]
    assert (busybox_store.home / "volumes" / name / "_data" / "f").read_text() == "kept\n"
    assert not [d for d in c.diff(first._c) if d[1].startswith("/data/")]  # the volume's, not the layer's
    # Another container may mount it by its name; while one does, rm -v leaves it.
    second = client.containers.create("busybox", ["cat", "/more/f"], volumes=[f"{name}:/more"])
    first.remove(v=True)
    assert anonymous(busybox_store) == [name]
    second.start()
    assert second.wait(timeout=30)["StatusCode"] == 0 and second.logs() == b"kept\n"
    second.remove(v=True)  # (not its own anonymous volume: mounted by name, it is a named one to it)
    assert anonymous(busybox_store) == [name]
    c.volume_remove(busybox_store, name)
    third = client.containers.create("busybox", ["true"], volumes=["/scratch"])
    third.remove()  # rm without -v: kept, as Docker's
    assert len(anonymous(busybox_store)) == 1
    c.volume_prune(busybox_store)


def test_rm_and_a_failed_start_take_the_anonymous_volume_along(busybox_store: Store) -> None:
    client = Client(busybox_store.home)
    assert client.containers.run("busybox", ["sh", "-c", "echo x > /tmpdata/y; cat /tmpdata/y"],
                                 volumes=["/tmpdata"], remove=True) == b"x\n"
    assert anonymous(busybox_store) == []
    with pytest.raises(PyContainersError):
        client.containers.run("busybox", ["no-such-command"], volumes=["/tmpdata"], remove=True)
    assert anonymous(busybox_store) == [] and c.list_containers(busybox_store, all=True) == []
    with pytest.raises(InvalidArgument, match="absolute path below /"):
        client.containers.create("busybox", ["true"], volumes=["/a/../.."])


def test_the_images_volume_paths_become_anonymous_volumes_filled_from_the_image(busybox_store: Store,
                                                                                 tmp_path) -> None:
    from pycontainers.build import build

    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN mkdir /db && echo seed > /db/seed\nVOLUME /db /cache\n")
    build(busybox_store, tmp_path, tags=["withvol"], on_event=lambda e: None)
    client = Client(busybox_store.home)
    db = client.containers.run("withvol", ["sh", "-c", "cat /db/seed; echo new > /db/new"], detach=True)
    assert db.wait(timeout=30)["StatusCode"] == 0 and db.logs() == b"seed\n"  # filled from the image first
    assert sorted(m["Destination"] for m in db.attrs["Mounts"]) == ["/cache", "/db"]
    assert len(anonymous(busybox_store)) == 2
    snapshot = db.commit("withvol-snapshot")
    shown = client.containers.run(snapshot.id, ["ls", "/db"], remove=True)
    assert shown == b"seed\n"  # what went to the volume is not in the commit, as Docker's
    assert len(anonymous(busybox_store)) == 2  # (that run's own two went with it: --rm)
    db.remove(v=True)
    assert anonymous(busybox_store) == []
    # A -v over a declared path replaces its anonymous volume.
    named = client.containers.run("withvol", ["ls", "/db"], volumes=["dbdata:/db"], remove=True)
    assert named == b"seed\n" and anonymous(busybox_store) == [] and c.volume_list(busybox_store) == ["dbdata"]


def test_anonymous_volume_edge_cases(busybox_store: Store) -> None:
    client = Client(busybox_store.home)
    with pytest.raises(PyContainersError):  # -v /proc/nope/x cannot be made: nothing of the container stays
        client.containers.create("busybox", ["true"], volumes=["/data", "/proc/nope/x:/x"])
    assert anonymous(busybox_store) == [] and c.list_containers(busybox_store, all=True) == []
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /data"):
        client.containers.create("busybox", ["true"], volumes=["/data", "//data/"])
    with pytest.raises(InvalidArgument, match="below /"):
        client.containers.create("busybox", ["true"], volumes=["//"])
    odd = client.containers.create("busybox", ["true"], volumes=["//data//sub/"])
    assert [m["Destination"] for m in odd.attrs["Mounts"]] == ["/data/sub"]  # as Go's filepath.Clean
    odd.remove(v=True)
    # A --rm container removed by someone else (its monitor was killed, say): its volumes go too.
    orphan = client.containers.create("busybox", ["true"], volumes=["/data"], auto_remove=True)
    assert len(anonymous(busybox_store)) == 1
    orphan.remove()
    assert anonymous(busybox_store) == []
