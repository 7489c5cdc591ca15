"""`start` runs a stopped container again, on the same writable layer, in the background."""

from __future__ import annotations

import os

import pytest

from pycontainers import container as c
from pycontainers.cli import main
from pycontainers.store import Store

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native runtime needs root")


def test_start_reruns_on_the_same_writable_layer(busybox_store: Store, monkeypatch: pytest.MonkeyPatch,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    script = "echo run >> /count; wc -l < /count"
    assert main(["run", "--name", "again", "busybox", "sh", "-c", script]) == 0
    assert capfd.readouterr().out.strip() == "1"
    assert main(["start", "again"]) == 0
    again = c.get_container(busybox_store, "again")
    assert c.wait(again, timeout=10) == 0
    assert again.log_path().read_text().strip() == "2"  # the file written by the first run is still there
    assert main(["rm", "again"]) == 0
    assert c.list_containers(busybox_store) == []
