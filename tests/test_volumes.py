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
