from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycontainers.bases import cache_store, copy_image
from pycontainers.image import get_image
from pycontainers.network import remove_bridges
from pycontainers.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An empty store of the test's own (the bridges of its networks go with it)."""
    yield Store(tmp_path / "store")
    remove_bridges(tmp_path / "store")


@pytest.fixture
def busybox_store(store: Store) -> Store:
    """A store of the test's own holding only busybox (copied from the set-up cache)."""
    cache = cache_store()
    copy_image(cache, get_image(cache, "busybox"), store)
    return store


@pytest.fixture
def client(busybox_store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The API on the test's own busybox store (and the CLI, through PYCONTAINERS_HOME); its containers are
    removed afterwards."""
    from pycontainers.api import Client

    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    monkeypatch.delenv("PYCONTAINERS_BACKEND", raising=False)
    c = Client(busybox_store.home)
    yield c
    for container in c.containers.list(all=True):
        container.remove(force=True)


@pytest.fixture
def cli(busybox_store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """Run ``pycontainers ARGS`` in-process on the test's own store: (exit code, stdout, stderr)."""
    from pycontainers.cli import main

    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    monkeypatch.delenv("NO_COLOR", raising=False)
    capsys.readouterr()

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def network_client(busybox_store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A client of the test's own store for network tests; afterwards its containers go, with their veth
    pairs and port forwarders, and its networks' bridges."""
    from processes import forwarders, veths, wait_for

    from pycontainers.api import Client

    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    monkeypatch.delenv("PYCONTAINERS_BACKEND", raising=False)
    c = Client(busybox_store.home)
    yield c
    ours = tuple(f"pv{container.id[:8]}" for container in c.containers.list(all=True))  # (network.veth_names)
    for container in c.containers.list(all=True):
        container.remove(force=True)
    remove_bridges(busybox_store.home)
    # (the kernel frees a network namespace in a work queue of its own: seconds on a busy machine)
    wait_for(lambda: not any(v.startswith(ours) for v in veths()), "the veth pairs to go with their containers", 60)
    wait_for(lambda: not forwarders(), "the port forwarders to end")
