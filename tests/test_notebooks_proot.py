"""The course as a Binder student gets it: no root and no user namespaces, so images run under proot.

nbval runs every notebook as root (native containers). Here notebooks 04 and 05 run with the proot back
end, as on Binder: 04 builds and runs its Flask app on python:3.11-slim (which mmdebstrap makes without root
there), 05's cells about a container's files and about one image with many commands must work, and its
cells about isolation must say nothing rather than fail; 08 publishes its web app's port (proot containers
share this machine's network, and the forwarder connects to 127.0.0.1) and skips its bridges and networks;
09 runs its Compose projects on this machine's network, as compose does without root.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from processes import containers_left

from pycontainers.bases import PYTHON_TAG, cache_store, copy_image
from pycontainers.errors import PyContainersError
from pycontainers.image import get_image, list_images
from pycontainers.store import Store

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

needs_proot = pytest.mark.skipif(shutil.which("proot") is None, reason="proot is not installed")


def outputs(cell: nbformat.NotebookNode) -> str:
    """What a cell showed: its streams and its plain-text results, one string."""
    return "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.get("outputs", []))


def run_under_proot(name: str, store: Store, monkeypatch: pytest.MonkeyPatch,
                    bases: tuple[str, ...] = ("busybox",)) -> dict[int, str]:
    """Run notebook *name* top to bottom with the proot back end; what each code cell showed."""
    cache = cache_store()
    for base in bases:
        copy_image(cache, get_image(cache, base), store)
    monkeypatch.setenv("PYCONTAINERS_HOME", str(store.home))
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")
    monkeypatch.setenv("PYCONTAINERS_SERVER", "0")
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for cell in nb.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    return {i: outputs(cell) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}


@needs_proot
def test_notebook_05_under_proot_runs_its_file_cells_and_skips_isolation(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path / "store")
    everything = "\n".join(run_under_proot("05-isolation.ipynb", store, monkeypatch).values())
    assert "Traceback" not in everything
    assert "falls back to proot" in everything and "run under proot" in everything
    for expected in ("written inside", "kept in a volume", "A /note.txt", "D /bin/vi", "part of an image now",
                     "Hello world", "Hello Pavlos"):
        assert expected in everything, expected
    assert "box-a" not in everything  # isolation's cells did nothing: no hostname, no PID 1 shown
    assert "Cannot be checked here" in everything  # the OOM exercise, without a cgroup
    assert containers_left(store.home) == []  # its clean-up cell removed what it made


@needs_proot
def test_notebook_04_under_proot_builds_and_serves_the_flask_app(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Every build of the build-cache notebook, pip install included, and its app's answer, without root."""
    store = Store(tmp_path / "store")
    try:
        get_image(cache_store(), PYTHON_TAG)
    except PyContainersError:
        pytest.skip(f"{PYTHON_TAG} is not in the base cache (./setup.sh makes it)")
    everything = "\n".join(run_under_proot("04-build-cache.ipynb", store, monkeypatch,
                                           ("busybox", PYTHON_TAG)).values())
    assert "Traceback" not in everything and "Cannot be checked here" not in everything
    assert "run under proot" in everything
    for expected in ("Using cache", "cache miss: /app/requirements.txt changed", "(pip install from the cache)",
                     "Hello, CS107!", "flask, requests: 3.0.3 2.32.3"):
        assert expected in everything, expected
    assert containers_left(store.home) == []
    assert [i.tags for i in list_images(store) if any(t.startswith("flask-app") for t in i.tags)] == []


@needs_proot
def test_notebook_08_under_proot_publishes_the_web_app_and_skips_the_networks(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Binder's case: no bridge, no veth pair and no network of its own, but a published port still reaches the app
    (which listens on port 8080 of this machine: proot shares the host's network)."""
    store = Store(tmp_path / "store")
    try:
        get_image(cache_store(), PYTHON_TAG)
    except PyContainersError:
        pytest.skip(f"{PYTHON_TAG} is not in the base cache (./setup.sh makes it)")
    everything = "\n".join(run_under_proot("08-networking.ipynb", store, monkeypatch,
                                           ("busybox", PYTHON_TAG)).values())
    assert "Traceback" not in everything
    assert "Containers run under proot here" in everything
    assert "Server running at http://0.0.0.0:8080/" in everything
    assert re.search(r"http://localhost:\d+/ says: Hello world!", everything)  # through the published port
    assert re.search(r"hello +hello-web +running +0\.0\.0\.0:\d+->8080/tcp", everything)  # ps's PORTS column
    for skipped in ("eth0", "pyc-ports", "Our shop", "The shop is closed"):  # sections 2 and 3 did nothing
        assert skipped not in everything, skipped
    assert "Not answered yet" in everything  # exercise 1: a published port can be read here too
    assert everything.count("Cannot be checked here") == 3  # exercises 2, 3 and 4 need root
    assert containers_left(store.home) == []
    assert [i.tags for i in list_images(store) if any(t.startswith("hello-web") for t in i.tags)] == []


@needs_proot
def test_notebook_09_under_proot_runs_the_shop_on_this_machines_network(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Binder's case: no network of its own for a project, so compose says so in one sentence and runs every
    service on this machine's network, where the services find each other at 127.0.0.1 and the frontend's
    port needs no publishing; the builds, the second up, start order, down and down -v work as with root."""
    from pycontainers.compose import NO_ROOT_SENTENCE

    store = Store(tmp_path / "store")
    try:
        get_image(cache_store(), PYTHON_TAG)
    except PyContainersError:
        pytest.skip(f"{PYTHON_TAG} is not in the base cache (./setup.sh makes it)")
    everything = "\n".join(run_under_proot("09-compose.ipynb", store, monkeypatch, ("busybox", PYTHON_TAG)).values())
    assert "Traceback" not in everything and "Error:" not in everything.replace("Error: restart.yaml", "")
    assert "Containers run under proot here" in everything and NO_ROOT_SENTENCE in everything
    assert "Network shop_default" not in everything and "Network startorder_default" not in everything  # none made
    assert re.search(r"shop-frontend-1 +shop-frontend +running *\r?\n", everything)  # ps: no published port
    assert "http://127.0.0.1:8080/ says:" in everything  # the frontend's own port, on this machine's network
    for expected in ("The coffee shop (products from http://api:5000/products):", "moka pot",
                     "Container shop-api-1  Recreated", "Container shop-frontend-1  Running", "milk frother",
                     "patient-1  | slow is ready", "startorder-eager-1 exited with code 1",
                     "startorder-patient-1 exited with code 0", "Container startorder-slow-1  Healthy",
                     "startorder-eager-1 exited with code 0", "You are visitor number 5.",
                     "You are visitor number 1.", "needs a daemon",
                     "No container, network, volume or image of this notebook is left."):
        assert expected in everything, expected
    assert everything.count("Not answered yet") == 3
    assert containers_left(store.home) == []
    assert [i.tags for i in list_images(store) if any(t.startswith("shop-") for t in i.tags)] == []
    assert not (NOTEBOOKS / "contexts" / "shop").exists()
