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
from pycontainers.api import Client
from pycontainers.bases import copy_image
from pycontainers.image import Image, commit_image, get_image, list_images
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


def fake_mmdebstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """An ``mmdebstrap`` on PATH that runs *script* (sh, with $out its tarball, $name debian or python)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "mmdebstrap"
    tool.write_text("#!/bin/sh\n"
                    '[ "$1" = --version ] && echo "mmdebstrap 0.0-test" && exit 0\n'
                    'for a; do case $a in *.tar) out=$a;; esac; done\n'
                    'case "$*" in *--include*) name=python;; *) name=debian;; esac\n' + script)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setattr(bases, "STOP_SECONDS", 2)
    monkeypatch.setattr(bases, "bootstrap_mode", lambda: "fakechroot")
    monkeypatch.setattr(bases, "_require_tools", lambda mode: None)
    monkeypatch.setattr(bases, "cache_dir", lambda: tmp_path / "cache")


# A run whose main process outlives the one we started, and shrugs off SIGTERM: as mmdebstrap under
# fakechroot (a wrapper shell that dies at once, mmdebstrap cleaning up first). It writes its PID to <tarball>.child.
STUBBORN = """sh -c 'trap "" TERM; echo $$ > "$0.child"; exec sleep 60' "$out" &
wait
"""


def stubborn_pids(store: Store) -> list[int]:
    return [int(text) for p in store.tmp_dir.glob("bases-*/*.tar.child") if (text := p.read_text().strip())]


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_one_run_failing_stops_the_other_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first failure ends the build at once: the other run is stopped, to its last process, and the
    one line names apt's reason, not mmdebstrap's last words, and where the whole output is."""
    fake_mmdebstrap(tmp_path, monkeypatch, 'if [ $name = python ]; then\n' + STUBBORN + 'fi\n'
                    'while [ ! -s "${out%debian.tar}python.tar.child" ]; do sleep 0.05; done\n'
                    'cp "${out%debian.tar}python.tar.child" "' + str(tmp_path) + '/python.child"\n'
                    'echo "I: downloading"\n'
                    'echo "Err:1 http://deb.debian.org/debian bookworm InRelease"\n'
                    'echo "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  404"\n'
                    'echo "E: apt-get update -oAPT::Status-Fd=<$fd> failed"\n'
                    'echo "E: mmdebstrap failed to run"\n'
                    'exit 1\n')
    store = Store(tmp_path / "store")
    started = time.monotonic()
    with pytest.raises(bases.BaseUnavailable) as failure:
        bases.build_debian_and_python(store, log=lambda line: None)
    kept = tmp_path / "cache" / "mmdebstrap-debian.log"
    assert str(failure.value) == (
        "mmdebstrap (debian) failed (exit 1): Err:1 http://deb.debian.org/debian bookworm InRelease | "
        f"E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  404 (its output: {kept})")
    assert "E: mmdebstrap failed to run" in kept.read_text()
    assert time.monotonic() - started < 30  # not the 60 s of the other run
    assert not alive(int((tmp_path / "python.child").read_text()))  # SIGKILLed, though it ignores SIGTERM
    assert list(store.tmp_dir.iterdir()) == []  # the scratch directory went


def test_a_ctrl_c_stops_both_runs_to_their_last_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mmdebstrap(tmp_path, monkeypatch, STUBBORN)
    store = Store(tmp_path / "store")
    pids: list[int] = []
    real_sleep = time.sleep
    said: list[str] = []

    def interrupt(seconds: float) -> None:  # (time.sleep: while both run, and while they are stopped)
        if len(pids) < 2:
            pids[:] = stubborn_pids(store)
            if len(pids) == 2:
                raise KeyboardInterrupt  # once
        real_sleep(min(seconds, 0.05))

    monkeypatch.setattr(bases.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        bases.build_debian_and_python(store, log=said.append)
    assert len(pids) == 2 and not any(alive(pid) for pid in pids)
    assert said[-1] == "stopping mmdebstrap (it removes what it made first)"


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


def test_the_runs_are_told_the_mirror_the_key_and_to_leave_the_key_out_of_the_image(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a host without bookworm's key (Binder): the sources line names the shipped key, yet the images'
    own sources.list names the mirror alone (a host path in an image would break apt there, and its ID)."""
    fake_mmdebstrap(tmp_path, monkeypatch, 'printf "%s\\\\n" "$@" > "' + str(tmp_path) + '/$name.args"\n'
                    'tar -cf "$out" -T /dev/null\n')
    monkeypatch.setattr(bases, "HOST_KEYRINGS", ())
    monkeypatch.setattr(bases, "debian_mirror", lambda: "http://mirror.example/debian")
    store = Store(tmp_path / "store")
    debian, python = bases.build_debian_and_python(store, log=lambda line: None)
    assert bases.DEBIAN_TAG in debian.tags[1] and bases.PYTHON_TAG in python.tags[1]
    assert python.labels[bases.LABEL_MADE_BY].startswith("debian:bookworm-slim plus Debian's python3, python3-pip and "
                                                          "python-is-python3 (mmdebstrap 0.0-test --variant=minbase "
                                                          "bookworm")
    for name in ("debian", "python"):
        args = (tmp_path / f"{name}.args").read_text().splitlines()
        assert args[-1] == f"deb [signed-by={bases.SHIPPED_KEY}] http://mirror.example/debian bookworm main"
        assert ('--customize-hook=echo "deb http://mirror.example/debian bookworm main" > "$1/etc/apt/sources.list"'
                in args)
        assert "--mode=fakechroot" in args and "--variant=minbase" in args
    assert "--include=python3,python3-pip,python-is-python3" in (tmp_path / "python.args").read_text().splitlines()


# ------------------------------------------------------------------------- an outdated base, remade


def outdated_busybox(store: Store, tags: list[str]) -> Image:
    """The set-up's busybox as an older recipe made it: the same layer, another recipe label, hence another ID."""
    current = get_image(bases.cache_store(), "busybox")
    copy_image(bases.cache_store(), current, store)
    config = current.config
    config["config"]["Labels"] = {**config["config"]["Labels"], bases.LABEL_RECIPE: "1"}
    old = commit_image(store, config, current.layers, tags)
    assert old.id != current.id and bases._outdated(old)
    return old


def test_ensure_bases_removes_the_outdated_base_it_replaced(store: Store) -> None:
    old = outdated_busybox(store, ["busybox:latest", "busybox:1.35.0"])
    bases.ensure_bases(store, ("busybox",), log=lambda message: None)
    assert [image.id for image in list_images(store)] == [get_image(bases.cache_store(), "busybox").id]
    assert not store.has_blob(old.id)  # its config went with it; the layer, shared, stayed
    assert all(store.has_blob(layer.digest) for layer in old.layers)


def test_ensure_bases_keeps_an_outdated_base_that_is_still_used(store: Store) -> None:
    tagged = outdated_busybox(store, ["busybox:latest", "mine:kept"])  # a name of the user's own
    bases.ensure_bases(store, ("busybox",), log=lambda message: None)
    assert get_image(store, "mine:kept").id == tagged.id
    assert get_image(store, "busybox").id == get_image(bases.cache_store(), "busybox").id
    store.remove_entries(refs={"docker.io/library/mine:kept"})
    used = outdated_busybox(store, ["busybox:latest"])
    container = Client(store.home).containers.create("busybox:latest", ["true"], name="from-the-old-base")
    try:
        bases.ensure_bases(store, ("busybox",), log=lambda message: None)
        assert used.id in {image.id for image in list_images(store)}  # untagged, but a container was made from it
    finally:
        container.remove(force=True)


def test_the_python_base_runs_python_by_that_name(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """As Docker Hub's python images: ``CMD ["python", "app.py"]`` (every Flask tutorial's) finds ``python``."""
    cache = bases.cache_store()
    copy_image(cache, get_image(cache, bases.PYTHON_TAG), store)
    monkeypatch.delenv("PYCONTAINERS_BACKEND", raising=False)
    command = ["python", "-c", "import sys; print(sys.version_info[0])"]
    out = Client(store.home).containers.run(bases.PYTHON_TAG, command, remove=True)
    assert out == b"3\n"
