"""The course as a Binder student gets it: no root and no user namespaces, so images run under proot.

nbval runs every notebook as root (native containers). Here notebook 05 runs with the proot back end, as on
Binder: its cells about a container's files and about one image with many commands must work there, and the
cells about isolation must say nothing rather than fail.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from processes import containers_left

from pycontainers.bases import cache_store, copy_image
from pycontainers.image import get_image
from pycontainers.store import Store

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

needs_proot = pytest.mark.skipif(shutil.which("proot") is None, reason="proot is not installed")


def outputs(cell: nbformat.NotebookNode) -> str:
    """What a cell showed: its streams and its plain-text results, one string."""
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))


@needs_proot
def test_notebook_05_under_proot_runs_its_file_cells_and_skips_isolation(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "store")
    cache = cache_store()
    copy_image(cache, get_image(cache, "busybox"), store)
    monkeypatch.setenv("PYCONTAINERS_HOME", str(store.home))
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")
    monkeypatch.setenv("PYCONTAINERS_SERVER", "0")
    nb = nbformat.read(NOTEBOOKS / "05-isolation.ipynb", as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    shown = {i: outputs(cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    everything = "\n".join(shown.values())
    assert "Traceback" not in everything
    assert "falls back to proot" in everything and "run under proot" in everything
    for expected in ("written inside", "kept in a volume", "A /note.txt", "D /bin/vi", "part of an image now",
                     "Hello world", "Hello Pavlos"):
        assert expected in everything, expected
    assert "box-a" not in everything  # isolation's cells did nothing: no hostname, no PID 1 shown
    assert "Cannot be checked here" in everything  # the OOM exercise, without a cgroup
    assert containers_left(store.home) == []  # its clean-up cell removed what it made
