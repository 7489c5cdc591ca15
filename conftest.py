"""Test-session set-up shared by pytest and nbval: a private store, never the user's.

``PYCONTAINERS_HOME`` points at a fresh temporary store before anything runs, so notebook kernels
(which inherit this process's environment) and tests both use it. The base images are copied in from
the set-up cache, which takes milliseconds.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys
import tempfile
import time

import pytest

_HOME = tempfile.mkdtemp(prefix="pycontainers-test-")
os.environ["PYCONTAINERS_HOME"] = _HOME
# Every command runs in its own process, as with PYCONTAINERS_SERVER=0: tests/test_server.py tests the CLI's
# command server, with servers of its own (a server per test store would outlive the test by minutes).
os.environ.setdefault("PYCONTAINERS_SERVER", "0")
# Notebooks call `!pycontainers ...`: make the console script of this environment the one found.
_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


def container_cgroups() -> set[str]:
    """Every cgroup named after a container ID, in every tree (cgroup v1 hierarchies, or the v2 one)."""
    found = glob.glob("/sys/fs/cgroup/pycontainers/*") + glob.glob("/sys/fs/cgroup/*/pycontainers/*")
    return {d for d in found if re.fullmatch(r"[0-9a-f]{64}", os.path.basename(d))}


def network_devices(prefix: str) -> set[str]:
    """This machine's network devices whose names start with *prefix* (pv: a container's veth end on the
    host; pyc-: a network's bridge)."""
    return {d for d in os.listdir("/sys/class/net") if d.startswith(prefix)}


_CGROUPS_BEFORE = container_cgroups()
_VETHS_BEFORE, _BRIDGES_BEFORE = network_devices("pv"), network_devices("pyc-")


def pytest_sessionstart(session: object) -> None:
    from pycontainers.bases import ensure_bases
    from pycontainers.store import Store

    ensure_bases(Store(_HOME), log=lambda message: None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from pycontainers import server

    server.stop()  # the CLI's command server the notebooks' `!pycontainers` started (pycontainers/server.py)
    from pycontainers.network import remove_bridges

    remove_bridges(_HOME)
    shutil.rmtree(_HOME, ignore_errors=True)
    # No container may leave its cgroup behind (issue 4: clean-up). Removals in flight get some seconds (the
    # kernel frees a network namespace, and with it a veth pair, in a work queue: slow on a busy machine).
    deadline = time.monotonic() + 30
    while (left := container_cgroups() - _CGROUPS_BEFORE) and time.monotonic() < deadline:
        time.sleep(0.1)
    # ... nor its veth pair (which goes when its network namespace does: a moment after its last process).
    while (veths := network_devices("pv") - _VETHS_BEFORE) and time.monotonic() < deadline:
        time.sleep(0.1)
    bridges = network_devices("pyc-") - _BRIDGES_BEFORE  # each test removes its store's (remove_bridges)
    for what, found in (("container cgroup(s)", left), ("veth device(s)", veths), ("bridge(s)", bridges)):
        if found:
            print(f"\nleaked: {len(found)} {what} outlived the tests: {' '.join(sorted(found))}", file=sys.stderr)
            if session.exitstatus == pytest.ExitCode.OK:  # (a worse status already said stays)
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
