"""The course as a student without root runs it: notebooks executed by an ordinary user in a Jupyter kernel of
its own, once rootless (a laptop VM: user namespaces work) and once where user namespaces are forbidden too
(Binder), so pycontainers falls back to proot by itself, with nothing forced.

nbval runs every notebook as root, and test_notebooks_proot.py runs some with proot forced, also as root: neither
is what a student sees. Here the user ``pycstudent`` (unprivileged.py) runs Debian's Python with a copy of the
package and this venv's Jupyter packages, in a store of its own. Chosen for what only an ordinary user meets, at
about a minute in all: 05 and 09 rootless (``exec`` into a container on the host's network once failed there
with a traceback), 00, 01 and 05 without user namespaces (the back end probed and said, images still run under
proot in 01, and 05's exercises that cannot be done say so before an answer is typed).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from processes import containers_left
from unprivileged import Student, make_student, why_not, without_user_namespaces

from pycontainers.bases import PYTHON_TAG, cache_store, copy_image
from pycontainers.container import PROOT_SENTENCE, ROOTLESS_SENTENCE
from pycontainers.errors import PyContainersError
from pycontainers.image import get_image
from pycontainers.store import Store

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# Run as the student: execute each notebook in a new kernel (this Python's ipykernel), keep what every cell showed.
RUNNER = """\
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

folder = Path(sys.argv[1])
for name in sys.argv[2:]:
    nb = nbformat.read(folder / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    nbformat.write(nb, folder / f"ran-{name}")
"""


def readable_by_everyone(path: Path) -> bool:
    """Can any user read *path* (a directory): every directory above it searchable, itself readable?"""
    if not path.stat().st_mode & stat.S_IROTH:
        return False
    return all(parent.stat().st_mode & stat.S_IXOTH for parent in [path, *path.parents])


@pytest.fixture(scope="module")
def student() -> Iterator[tuple[Student, dict[str, str]]]:
    """The ordinary user, with a kernel of its own; and the environment its notebooks run in."""
    import nbclient

    reason = why_not()
    if reason:
        pytest.skip(reason)
    try:
        get_image(cache_store(), PYTHON_TAG)
    except PyContainersError:
        pytest.skip(f"{PYTHON_TAG} is not in the base cache (./setup.sh makes it)")
    someone = make_student()
    try:
        # Jupyter's packages: this venv's, where every user may read them (its Python may be under /root, which
        # they may not), else a copy of them (compiled for the same Python version, as the check below makes sure).
        site = Path(nbclient.__file__).resolve().parents[1]
        if not readable_by_everyone(site):
            shutil.copytree(site, someone.base / "site", symlinks=True)
            subprocess.run(["chmod", "-R", "a+rX", str(someone.base / "site")], check=True)
            site = someone.base / "site"
        bin_dir = someone.base / "bin"  # `!pycontainers ...` in a notebook: this copy of the package's CLI
        bin_dir.mkdir()
        (bin_dir / "pycontainers").write_text(f"#!{someone.python}\nimport sys\n\n"
                                              "from pycontainers.server import main\n\nsys.exit(main())\n")
        (bin_dir / "pycontainers").chmod(0o755)
        env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(someone.home),
               "PYTHONPATH": f"{someone.base / 'lib'}:{site}", "LANG": "C.UTF-8", "PYCONTAINERS_SERVER": "0"}
        (someone.home / "runner.py").write_text(RUNNER)
        version = subprocess.run([someone.python, "-c", "import sys, ipykernel; print(sys.version_info[:2])"],
                                 user=someone.uid, group=someone.gid, extra_groups=[], env=env, capture_output=True,
                                 text=True, check=False)
        if version.stdout.strip() != str(sys.version_info[:2]):
            pytest.skip(f"{someone.python} cannot run this venv's Jupyter packages: {version.stderr.strip()[-200:]}")
        yield someone, env
    finally:
        someone.close()


def run_as_student(student: tuple[Student, dict[str, str]], names: tuple[str, ...], store_name: str,
                   binder: bool = False) -> tuple[dict[str, str], Path]:
    """Run notebooks *names* top to bottom as the student, in a store of their own holding busybox and python
    (with *binder*, where user namespaces are forbidden); what each showed, and the store."""
    someone, env = student
    store = Store(someone.home / store_name)
    cache = cache_store()
    for base in ("busybox", PYTHON_TAG):
        copy_image(cache, get_image(cache, base), store)
    folder = someone.home / f"notebooks-{store_name}"  # where the notebooks write (contexts/ ...), as on Binder
    folder.mkdir()
    for name in names:
        shutil.copy(NOTEBOOKS / name, folder / name)
    subprocess.run(["chown", "-R", f"{someone.uid}:{someone.gid}", str(store.home), str(folder)], check=True)
    argv = [someone.python, str(someone.home / "runner.py"), str(folder), *names]
    env = {**env, "PYCONTAINERS_HOME": str(store.home)}
    if binder:
        proc = subprocess.run(without_user_namespaces(someone.uid, someone.gid, argv), env=env, cwd=someone.home,
                              capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode == 125:  # the helper's own failure, before any notebook ran
            pytest.skip(proc.stderr.strip())
    else:
        proc = subprocess.run(argv, user=someone.uid, group=someone.gid, extra_groups=[], env=env, cwd=someone.home,
                              capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = {}
    for name in names:
        nb = nbformat.read(folder / f"ran-{name}", as_version=4)
        errors = [f"cell {i}: {o.ename}: {o.evalue}" for i, cell in enumerate(nb.cells)
                  for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert errors == [], f"{name}: {errors}"
        shown[name] = "".join(o.get("text", "") or o.get("data", {}).get("text/plain", "")
                              for cell in nb.cells for o in cell.get("outputs", []))
        assert "Traceback" not in shown[name], name
    assert containers_left(store.home) == []  # every notebook's clean-up cell removed what it made
    assert someone.processes() == []  # nor did a container, a monitor or a kernel of the user outlive it
    return shown, store.home


def test_notebooks_05_and_09_rootless(student: tuple[Student, dict[str, str]]) -> None:
    """A laptop without root: the back end is probed and said once; isolation is real, limits are not; compose puts
    the shop on this machine's network, and exec into its containers works there."""
    shown, _store = run_as_student(student, ("05-isolation.ipynb", "09-compose.ipynb"), "store-rootless")
    isolation, compose = shown["05-isolation.ipynb"], shown["09-compose.ipynb"]
    assert (isolation + compose).count(ROOTLESS_SENTENCE) == 1  # said once for the store, by the first container
    assert "Without root, containers here are rootless" in isolation
    assert "box-a: /me.txt says 'I am box-a', its PID 1 is 'sleep'" in isolation  # namespaces of its own, exec
    assert isolation.count("Not answered yet") == 3 and isolation.count("Cannot be checked here") == 1  # OOM only
    assert "Containers run rootless here" in compose
    assert re.search(r"127\.0\.0\.1\s+api\b", compose)  # exec_run into a service on the host's network
    for expected in ("The coffee shop (products from http://api:5000/products):", "You are visitor number 5.",
                     "Container startorder-slow-1  Healthy", "startorder-eager-1 exited with code 0",
                     "No container, network, volume or image of this notebook is left."):
        assert expected in compose, expected
    assert compose.count("Not answered yet") == 3


@pytest.mark.skipif(shutil.which("proot") is None, reason="proot is not installed")
def test_notebooks_00_01_05_without_user_namespaces(student: tuple[Student, dict[str, str]]) -> None:
    """Binder: nothing forced, yet proot is chosen and said; images still run for what needs no isolation, and
    what does says so, exercises included, before an answer is typed."""
    names = ("00-setup.ipynb", "01-why-containers.ipynb", "05-isolation.ipynb")
    shown, _store = run_as_student(student, names, "store-binder", binder=True)
    setup, why, isolation = (shown[name] for name in names)
    assert "backend: proot" in setup and "Neither root nor user namespaces are available (as on Binder)" in setup
    assert "user.max_user_namespaces is 0" in setup
    assert "Sections 1 and 2 still run the images, under proot" in why
    assert 'exit code: 127\nexec: "/venv/bin/python": stat /venv/bin/python: no such file or directory' in why
    assert f"under proot:               {os.uname().release} " in why
    assert re.search(r"the image: +3\.\d+\.\d+ /usr/bin/python3", why)
    assert (why + isolation).count(PROOT_SENTENCE) == 1
    assert "falls back to proot" in isolation and "Hello Pavlos" in isolation and "box-a" not in isolation
    assert isolation.count("Cannot be checked here") == 4 and "Not answered yet" not in isolation  # web, hostnet, OOM,
    # hostnet's stats
    assert "there is no container 'web', since the cells above start none here" in isolation
