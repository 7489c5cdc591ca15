from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
