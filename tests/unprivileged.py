"""An ordinary user for tests: a real unprivileged account running the pycontainers CLI.

Tests run as root, and root cannot show what a student without root sees. So a user is created
(``useradd``, which also grants it subordinate ids in /etc/subuid), and it runs a copy of the package and
its pure-Python dependencies with Debian's own interpreter: this venv's may live under /root, which
other users cannot read.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pycontainers

NAME = "pycstudent"
DEPENDENCIES = ("rich", "pygments", "markdown_it", "mdurl", "dockerfile", "yaml")


def system_python() -> str | None:
    """A Python >= 3.11 every user may run (``dockerfile``'s extension is built for the stable ABI)."""
    for candidate in ("/usr/bin/python3.11", "/usr/bin/python3", "/usr/local/bin/python3"):
        if os.access(candidate, os.X_OK):
            version = subprocess.run([candidate, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                                     capture_output=True, text=True, check=False).stdout.strip()
            if version == "True":
                return candidate
    return None


def why_not() -> str | None:
    """Why an unprivileged user cannot be set up here, or None."""
    if os.geteuid() != 0:
        return "creating a test user needs root"
    if shutil.which("useradd") is None:
        return "useradd is not installed"
    if system_python() is None:
        return "no Python >= 3.11 outside /root for the test user to run"
    return None


def copy_package(lib: Path) -> None:
    shutil.copytree(Path(pycontainers.__file__).parent, lib / "pycontainers",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin is not None, name
        if spec.submodule_search_locations:
            shutil.copytree(next(iter(spec.submodule_search_locations)), lib / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(spec.origin, lib)


@dataclass
class Student:
    """The test user, its private store and a way to run ``pycontainers`` as it."""

    uid: int
    gid: int
    base: Path  # readable by everyone: lib/ (the code) and home/ (the user's, holding its store)
    python: str
    created: bool

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def store_home(self) -> Path:
        return self.home / "store"

    def run(self, *args: str, timeout: float = 120, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """``pycontainers ARGS`` as the user, in a clean environment (plus *env*)."""
        return self.python_run(["-m", "pycontainers", *args], timeout, env)

    def script(self, code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Python *code* as the user (the API, as a student's notebook or script uses it)."""
        return self.python_run(["-c", code], timeout)

    def python_run(self, args: list[str], timeout: float = 120, env: dict[str, str] | None = None,
                   ) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(self.home),
               "PYCONTAINERS_HOME": str(self.store_home), "PYTHONPATH": str(self.base / "lib"),
               "LANG": "C.UTF-8", **(env or {})}
        return subprocess.run([self.python, *args], user=self.uid, group=self.gid, extra_groups=[], env=env,
                              cwd=self.home, capture_output=True, text=True, timeout=timeout, check=False)

    def processes(self) -> list[str]:
        """Processes left running as the user or as its subordinate ids (leak check)."""
        out = subprocess.run(["ps", "-eo", "uid=,stat=,args="], capture_output=True, text=True, check=True).stdout
        mine = []
        for line in out.splitlines():
            uid, stat, cmd = line.split(None, 2)
            if (int(uid) == self.uid or 100000 <= int(uid) < 200000) and not stat.startswith("Z"):
                mine.append(cmd)
        return mine

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            ids = self.run("ps", "-aq").stdout.split()
            if ids:
                self.run("rm", "-f", *ids)
        shutil.rmtree(self.base, ignore_errors=True)
        if self.created:
            subprocess.run(["userdel", NAME], capture_output=True, check=False)


def make_student() -> Student:
    created = False
    try:
        pwd.getpwnam(NAME)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", NAME],
                       capture_output=True, text=True, check=True)
        created = True
    entry = pwd.getpwnam(NAME)
    subids = Path("/etc/subuid").read_text() if Path("/etc/subuid").exists() else ""
    if not any(line.startswith(f"{NAME}:") for line in subids.splitlines()):
        subprocess.run(["usermod", "--add-subuids", "100000-165535", "--add-subgids", "100000-165535", NAME],
                       capture_output=True, check=True)
    python = system_python()
    assert python is not None
    base = Path(tempfile.mkdtemp(prefix="pycontainers-student-"))
    base.chmod(0o755)
    (base / "lib").mkdir()
    copy_package(base / "lib")
    subprocess.run([python, "-m", "compileall", "-q", str(base / "lib")], capture_output=True, check=False)
    for root, dirs, files in os.walk(base / "lib"):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o755 if name in dirs else 0o644)
    (base / "home").mkdir()
    os.chown(base / "home", entry.pw_uid, entry.pw_gid)
    return Student(entry.pw_uid, entry.pw_gid, base, python, created)


def without_user_namespaces(uid: int, gid: int, argv: list[str]) -> list[str]:
    """A command line (for root to start) that runs *argv* as *uid*:*gid* where no user namespace can be made,
    as on Binder, without changing the machine for anyone else: in a user namespace of its own (mapping only root
    and that user, each to itself) whose ``user.max_user_namespaces`` is 0. Its ``unshare --user`` then fails
    (ENOSPC), so pycontainers falls back to proot. Exits 125 with one line where the kernel does not allow this."""
    return [sys.executable, __file__, "--without-user-namespaces", str(uid), str(gid), *argv]


def _exec_without_user_namespaces(uid: int, gid: int, argv: list[str]) -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    ready_r, ready_w = os.pipe()
    helper = os.fork()
    if helper == 0:  # stays in root's user namespace: only from there may a map hold two lines
        os.close(ready_w)
        os.read(ready_r, 1)
        try:
            for name, own in (("uid_map", uid), ("gid_map", gid)):
                with open(f"/proc/{os.getppid()}/{name}", "w") as f:
                    f.write(f"0 0 1\n{own} {own} 1\n" if own != 0 else "0 0 1\n")
        except OSError:
            os._exit(1)
        os._exit(0)
    os.close(ready_r)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        raise OSError(ctypes.get_errno(), f"unshare: {os.strerror(ctypes.get_errno())}")
    os.write(ready_w, b"x")
    os.close(ready_w)
    if os.waitpid(helper, 0)[1] != 0:
        raise OSError("the user namespace's id maps could not be written")
    with open("/proc/sys/user/max_user_namespaces", "w") as f:  # this namespace's own limit, not the machine's
        f.write("0")
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
    os.execvp(argv[0], argv)


@contextlib.contextmanager
def student_with_busybox() -> Iterator[Student]:
    """The test user, with busybox loaded into its store (``pytest.skip`` where it cannot exist)."""
    import pytest

    from pycontainers.archive import save
    from pycontainers.bases import cache_store

    reason = why_not()
    if reason:
        pytest.skip(reason)
    someone = make_student()
    try:
        archive = someone.base / "busybox.tar"
        with open(archive, "wb") as f:
            save(cache_store(), ["busybox"], f)
        archive.chmod(0o644)
        loaded = someone.run("load", "-i", str(archive))
        assert loaded.returncode == 0, loaded.stderr
        yield someone
    finally:
        someone.close()


if __name__ == "__main__" and sys.argv[1:2] == ["--without-user-namespaces"]:
    try:
        _exec_without_user_namespaces(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:])
    except OSError as exc:
        print(f"cannot run without user namespaces here: {exc}", file=sys.stderr)
        sys.exit(125)
