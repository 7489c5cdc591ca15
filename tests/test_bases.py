"""The offline base images' recipe: what is left out of them, and how mmdebstrap is told to check the mirror.

Making the images themselves is tested where it happens: set-up makes them as root (the whole suite then
runs on them), and ``test_rootless`` makes them again as an ordinary user and compares the image IDs.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from pycontainers import bases


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
    """Ubuntu 22.04 (Binder's image) has a Debian keyring older than bookworm: apt could not check the mirror."""
    monkeypatch.setattr(bases, "HOST_KEYRINGS", (str(tmp_path / "nothing-here.gpg"),))
    options = bases.keyring_options()
    assert options == [f"--keyring={bases.SHIPPED_KEYRINGS}"]
    keys = list(bases.SHIPPED_KEYRINGS.glob("*.asc"))
    assert [k.name for k in keys] == ["debian-archive-bookworm-automatic.asc"]
    assert keys[0].read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    (tmp_path / "nothing-here.gpg").write_bytes(b"")
    assert bases.keyring_options() == []  # the host's own key, when it has one


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
