"""Test-session set-up shared by pytest and nbval: a private store, never the user's.

``PYCONTAINERS_HOME`` points at a fresh temporary store before anything runs, so notebook kernels
(which inherit this process's environment) and tests both use it. The base images are copied in from
the set-up cache, which takes milliseconds.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

_HOME = tempfile.mkdtemp(prefix="pycontainers-test-")
os.environ["PYCONTAINERS_HOME"] = _HOME
# Every command runs in its own process, as with PYCONTAINERS_SERVER=0: tests/test_server.py tests the CLI's
# command server, with servers of its own (a server per test store would outlive the test by minutes).
os.environ.setdefault("PYCONTAINERS_SERVER", "0")
# Notebooks call `!pycontainers ...`: make the console script of this environment the one found.
_BIN = os.path.dirname(sys.executable)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


def pytest_sessionstart(session: object) -> None:
    from pycontainers.bases import ensure_bases
    from pycontainers.store import Store

    ensure_bases(Store(_HOME), log=lambda message: None)


def pytest_sessionfinish(session: object, exitstatus: int) -> None:
    from pycontainers import server

    server.stop()  # the CLI's command server the notebooks' `!pycontainers` started (pycontainers/server.py)
    shutil.rmtree(_HOME, ignore_errors=True)
