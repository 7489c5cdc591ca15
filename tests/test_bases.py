"""The offline base images' recipe: what is left out of them, and how mmdebstrap is told to check the mirror.

Making the images themselves is tested where it happens: set-up makes them as root (the whole suite then
runs on them), and ``test_rootless`` makes them again as an ordinary user and compares the image IDs.
"""

from __future__ import annotations

import os
import tarfile
import time
from pathlib import Path

import pytest

from pycontainers import bases
from pycontainers.store import Store


def member(name: str, kind: bytes = tarfile.REGTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


@pytest.mark.parametrize("path, kind, left_out", [
    ("usr/share/doc/bash/copyright", tarfile.REGTYPE, True),
    ("usr/share/doc", tarfile.DIRTYPE, False),  # the directory stays, empty, as in Docker's slim images
    ("var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease", tarfile.REGTYPE, True),
    ("etc/machine-id", tarfile.REGTYPE, True),
    ("dev/null", tarfile.CHRTYPE, True),  # the runtime makes /dev
    ("usr/share/docs-of-something-else", tarfile.REGTYPE, False),  # a prefix of the name is not the directory
    ("usr/bin/bash", tarfile.REGTYPE, False),
])
def test_slim_images_leave_out_docs_package_lists_and_devices(path: str, kind: bytes, left_out: bool) -> None:
    assert bases.slimmed(path, member(path, kind)) is left_out


def test_a_host_without_bookworm_s_key_gets_the_shipped_one(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Ubuntu 22.04 (Binder's image) has a Debian keyring older than bookworm: apt could not check the mirror.
    The sources line then names the shipped key (its own signed-by, which no keyring of the host overrides)."""
    monkeypatch.setattr(bases, "HOST_KEYRINGS", (str(tmp_path / "nothing-here.gpg"),))
    assert bases.sources("http://deb.debian.org/debian") == (
        f"deb [signed-by={bases.SHIPPED_KEY}] http://deb.debian.org/debian bookworm main")
    assert bases.SHIPPED_KEY.read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    (tmp_path / "nothing-here.gpg").write_bytes(b"")
    assert bases.sources("http://deb.debian.org/debian") == "http://deb.debian.org/debian"  # the host's own key


def fake_mmdebstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> Path:
    """An ``mmdebstrap`` on PATH that runs *script* (sh); it records its PID in <its tarball>.pid."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "mmdebstrap"
    tool.write_text("#!/bin/sh\n"
                    '[ "$1" = --version ] && echo "mmdebstrap 0.0-test" && exit 0\n'
                    'for a; do case $a in *.tar) out=$a;; esac; done\n'
                    'echo $$ > "$out.pid"\n' + script)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(bases, "STOP_SECONDS", 2)
    return bin_dir


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_one_run_failing_stops_the_other_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first failure ends the build at once (the other run is stopped, not waited for) in one line."""
    fake_mmdebstrap(tmp_path, monkeypatch, 'case "$*" in\n'
                    '  *--include*) sleep 60;;\n'
                    '  *) echo "I: downloading"; echo "E: Failed to fetch http://deb.debian.org/x 404"; exit 1;;\n'
                    'esac\n')
    store = Store(tmp_path / "store")
    monkeypatch.setattr(bases, "bootstrap_mode", lambda: "fakechroot")
    monkeypatch.setattr(bases, "_require_tools", lambda mode: None)
    started = time.monotonic()
    with pytest.raises(bases.BaseUnavailable) as failure:
        bases.build_debian_and_python(store, log=lambda line: None)
    assert str(failure.value) == "mmdebstrap (debian) failed (exit 1): E: Failed to fetch http://deb.debian.org/x 404"
    assert time.monotonic() - started < 30  # not the 60 s of the other run
    assert list(store.tmp_dir.iterdir()) == []  # the scratch directory went, with both tarballs' logs


def test_a_ctrl_c_stops_both_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mmdebstrap(tmp_path, monkeypatch, "sleep 60\n")
    store = Store(tmp_path / "store")
    monkeypatch.setattr(bases, "bootstrap_mode", lambda: "fakechroot")
    monkeypatch.setattr(bases, "_require_tools", lambda mode: None)
    pids: list[int] = []
    real_sleep = time.sleep

    def interrupt(seconds: float) -> None:  # (time.sleep: while both run, and while they are stopped)
        if len(pids) < 2:
            pids[:] = [int(text) for p in store.tmp_dir.glob("bases-*/*.tar.pid") if (text := p.read_text().strip())]
            if len(pids) == 2:
                raise KeyboardInterrupt  # once
        real_sleep(min(seconds, 0.05))

    monkeypatch.setattr(bases.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        bases.build_debian_and_python(store, log=lambda line: None)
    assert len(pids) == 2 and not any(alive(pid) for pid in pids)


def test_the_mode_follows_the_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bases.os, "geteuid", lambda: 0)
    assert bases.bootstrap_mode() == "root"
    monkeypatch.setattr(bases.os, "geteuid", lambda: 1000)
    assert bases.bootstrap_mode() == "fakechroot"


def test_a_missing_tool_is_named_with_its_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bases.shutil, "which", lambda tool: None if tool == "fakechroot" else f"/usr/bin/{tool}")
    bases._require_tools("root")  # root needs no fakechroot
    with pytest.raises(bases.BaseUnavailable, match=r"^fakechroot is not installed \(apt-get install fakechroot\)$"):
        bases._require_tools("fakechroot")
