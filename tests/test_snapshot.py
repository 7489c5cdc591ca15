"""Snapshot and diff (``pycontainers/snapshot.py``): the layers of RUN steps under proot.

The differ is tested on temporary trees: each test records a tree, changes it, and checks the entries;
every layer is also *applied* on top of a layer of the tree as it was, and the result must be the tree
as it is now (types, modes, contents, symlink targets, hard links). Then whole builds force the proot
back end: as root in-process (the image must run with the native runtime and match a native build),
and as a real unprivileged user through the CLI, as on Binder.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import stat
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import unprivileged
from processes import containers_left

from pycontainers import container as containers
from pycontainers import layer as layers
from pycontainers import snapshot
from pycontainers.api import Client
from pycontainers.bases import cache_store, copy_image
from pycontainers.build import BuildResult, build
from pycontainers.errors import InvalidArgument, LayerError, PyContainersError
from pycontainers.image import Image, get_image
from pycontainers.store import Store

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="forcing proot in-process and running the image natively need root")


# ------------------------------------------------------------------------------------------- helpers


def layer_bytes(entries: list[layers.Entry]) -> bytes:
    out = io.BytesIO()
    layers.write_tar(entries, out)
    return out.getvalue()


def contents(root: Path) -> dict[str, tuple[Any, ...]]:
    """What a tree holds, comparably: per path its type, mode, bytes or target, and its hard-link group
    (sockets left out, as layers leave them out)."""
    out: dict[str, tuple[Any, ...]] = {}
    first_of_inode: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISSOCK(st.st_mode):
                continue  # never in a layer
            if stat.S_ISREG(st.st_mode):
                group = first_of_inode.setdefault((st.st_dev, st.st_ino), rel) if st.st_nlink > 1 else None
                out[rel] = ("file", stat.S_IMODE(st.st_mode), Path(full).read_bytes(), group)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", os.readlink(full))
            else:
                out[rel] = ("dir" if stat.S_ISDIR(st.st_mode) else "other", stat.S_IMODE(st.st_mode))
    return out


class Tree:
    """A tree to change between ``start`` (a base layer and a snapshot) and ``finish`` (the diff)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "root"
        for rel, data in {"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/group": "root:x:0:\n",
                          "bin/tool": "#!/bin/sh\necho tool\n", "data/big/a": "a\n", "data/big/sub/b": "b\n",
                          "lib/one": "shared\n"}.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(data)
        (self.root / "bin/tool").chmod(0o755)
        (self.root / "bin/alias").symlink_to("tool")
        os.link(self.root / "lib/one", self.root / "lib/two")
        self.base = b""
        self.before: snapshot.Snapshot | None = None

    def start(self) -> None:
        # As flattening an image leaves them: every time is the layers' fixed epoch.
        for path in [self.root, *self.root.rglob("*")]:
            os.utime(path, (0, 0), follow_symlinks=False)
        self.base = layer_bytes(layers.tree_entries(str(self.root)))
        self.before = snapshot.take(self.root)

    def finish(self, **options: Any) -> dict[str, tarfile.TarInfo]:
        """The diff's entries by name, after checking that base + diff rebuilds the tree exactly."""
        assert self.before is not None
        entries = snapshot.changes(self.before, **options)
        applied = self.tmp / f"applied-{len(list(self.tmp.glob('applied-*')))}"
        applied.mkdir()
        for blob in (self.base, layer_bytes(entries)):
            layers.extract(io.BytesIO(blob), str(applied), "test layer", whiteouts="apply")
        assert contents(applied) == contents(self.root)
        names = [e.info.name for e in entries]
        assert len(names) == len(set(names)), names
        return {e.info.name: e.info for e in entries}


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


# ------------------------------------------------------------------------------------ the differ


def test_an_unchanged_tree_gives_no_entries_even_after_reads(tree: Tree) -> None:
    tree.start()
    (tree.root / "etc/passwd").read_bytes()
    os.listdir(tree.root / "data/big")
    assert tree.finish() == {}


def test_a_directory_whose_only_change_is_its_times_gives_no_entry(tree: Tree) -> None:
    # proot hangs its bind mounts on stubs it makes and removes again: /etc's times change, nothing else.
    tree.start()
    (tree.root / "etc/hostname").write_text("stub")
    (tree.root / "etc/hostname").unlink()
    assert tree.finish() == {}


def test_an_added_file_comes_with_its_parents_owned_by_the_new_owner(tree: Tree) -> None:
    tree.start()
    (tree.root / "data/new/deeper").mkdir(parents=True)
    (tree.root / "data/new/deeper/f").write_text("new\n")
    got = tree.finish(new_owner=(0, 0))
    assert list(got) == ["data", "data/new", "data/new/deeper", "data/new/deeper/f"]
    assert got["data/new/deeper/f"].size == 4 and got["data"].isdir()
    assert all(info.mtime == layers.source_date_epoch() for info in got.values())


def test_a_same_size_rewrite_with_its_mtime_put_back_is_seen(tree: Tree) -> None:
    tree.start()
    passwd = tree.root / "etc/passwd"
    old = passwd.stat()
    passwd.write_text("toor:x:0:0:root:/root:/bin/sh\n")
    os.utime(passwd, ns=(old.st_atime_ns, old.st_mtime_ns))  # as cp -p, touch -d or tar x would
    new = passwd.stat()
    assert (new.st_size, new.st_mtime_ns, new.st_ino) == (old.st_size, old.st_mtime_ns, old.st_ino)  # kaniko's
    got = tree.finish()  # ... redo rule (size, mtime, mode) would call this unchanged; ctime tells
    assert list(got) == ["etc", "etc/passwd"]


def test_a_change_right_after_the_snapshot_is_seen_even_if_only_its_ctime_moves(tree: Tree) -> None:
    tree.start()
    os.chmod(tree.root / "bin/tool", 0o755)  # the same mode: only the kernel's ctime changes
    assert list(tree.finish()) == ["bin", "bin/tool"]


def test_the_clock_wait_returns_only_once_new_changes_get_later_ctimes(tmp_path: Path) -> None:
    # Measured here: a change right after a stat always gets a newer ctime (fine-grained "multigrain"
    # timestamps, Linux 6.13+), so the tests above pass even without the wait; kernels that stamp coarse
    # ticks (Binder's may) need it. The wait itself: with a recorded ctime 30 ms ahead, it must outlast it.
    newest = time.time_ns() + 30_000_000
    snapshot._wait_for_clock(str(tmp_path), newest)
    probe = tmp_path / "after"
    probe.write_text("x")
    assert probe.stat().st_ctime_ns > newest
    assert os.listdir(tmp_path) == ["after"]  # the wait's own probe is gone


def test_a_mode_change_alone_is_an_entry_with_the_new_mode(tree: Tree) -> None:
    tree.start()
    (tree.root / "etc/group").chmod(0o600)
    (tree.root / "data/big").chmod(0o700)
    got = tree.finish()
    assert list(got) == ["data", "data/big", "etc", "etc/group"]
    assert got["etc/group"].mode == 0o600 and got["data/big"].mode == 0o700


def test_a_deleted_file_is_a_whiteout_in_its_directory(tree: Tree) -> None:
    tree.start()
    (tree.root / "etc/group").unlink()
    got = tree.finish()
    assert list(got) == ["etc", "etc/.wh.group"]
    assert got["etc"].isdir() and got["etc/.wh.group"].isreg() and got["etc/.wh.group"].size == 0


def test_a_deleted_tree_is_one_whiteout(tree: Tree) -> None:
    tree.start()
    for path in sorted((tree.root / "data/big").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    (tree.root / "data/big").rmdir()
    assert list(tree.finish()) == ["data", "data/.wh.big"]


def test_a_directory_emptied_and_made_again_whites_out_each_child_that_went(tree: Tree) -> None:
    tree.start()
    subprocess.run(["rm", "-rf", str(tree.root / "data/big")], check=True)
    (tree.root / "data/big").mkdir()
    (tree.root / "data/big/c").write_text("c\n")
    got = tree.finish()
    assert sorted(got) == ["data", "data/big", "data/big/.wh.a", "data/big/.wh.sub", "data/big/c"]


def test_a_file_replaced_by_a_directory_needs_no_whiteout(tree: Tree) -> None:
    tree.start()
    (tree.root / "etc/group").unlink()
    (tree.root / "etc/group").mkdir()
    (tree.root / "etc/group/inside").write_text("x\n")
    got = tree.finish()
    assert list(got) == ["etc", "etc/group", "etc/group/inside"] and got["etc/group"].isdir()


def test_a_directory_replaced_by_a_file_hides_its_old_children_without_whiteouts(tree: Tree) -> None:
    tree.start()
    subprocess.run(["rm", "-rf", str(tree.root / "data/big")], check=True)
    (tree.root / "data/big").write_text("now a file\n")
    got = tree.finish()
    assert list(got) == ["data", "data/big"] and got["data/big"].isreg()


def test_a_symlink_pointed_elsewhere_is_an_entry_with_the_new_target(tree: Tree) -> None:
    tree.start()
    (tree.root / "bin/alias").unlink()
    (tree.root / "bin/alias").symlink_to("/etc/passwd")
    got = tree.finish()
    assert list(got) == ["bin", "bin/alias"]
    assert got["bin/alias"].issym() and got["bin/alias"].linkname == "/etc/passwd"


def test_a_new_hard_link_brings_its_target_as_a_file_and_itself_as_a_link(tree: Tree) -> None:
    tree.start()
    os.link(tree.root / "bin/tool", tree.root / "data/tool-link")
    got = tree.finish()
    assert list(got) == ["bin", "bin/tool", "data", "data/tool-link"]
    assert got["bin/tool"].isreg() and got["bin/tool"].size > 0
    assert got["data/tool-link"].islnk() and got["data/tool-link"].linkname == "bin/tool"


def test_changing_a_hard_linked_file_writes_it_once_and_links_the_others(tree: Tree) -> None:
    tree.start()
    (tree.root / "lib/two").write_text("SHARED\n")  # the same inode as lib/one
    got = tree.finish()
    assert list(got) == ["lib", "lib/one", "lib/two"]
    assert got["lib/one"].isreg() and got["lib/two"].islnk() and got["lib/two"].linkname == "lib/one"


def test_owners_come_from_the_image_for_old_paths_and_the_new_owner_for_new_ones(tree: Tree) -> None:
    tree.start()
    (tree.root / "etc/passwd").write_text("changed\n")
    (tree.root / "etc/new").write_text("new\n")
    (tree.root / "bin/alias").unlink()
    (tree.root / "bin/alias").mkdir()  # the same path, another type: made by this step
    image_owners = {"etc": (0, 42), "etc/passwd": (7, 8), "bin": (0, 0), "bin/alias": (5, 5)}
    got = tree.finish(owners=image_owners, new_owner=(1000, 1001))
    assert {name: (info.uid, info.gid) for name, info in got.items()} == {
        "bin": (0, 0), "bin/alias": (1000, 1001), "etc": (0, 42), "etc/new": (1000, 1001), "etc/passwd": (7, 8)}


def test_sockets_are_left_out_as_docker_leaves_them_out(tree: Tree) -> None:
    tree.start()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tree.root / "data/daemon.sock"))
        assert tree.finish() == {}


def test_a_name_that_reads_as_a_whiteout_is_refused_in_one_line(tree: Tree) -> None:
    tree.start()
    (tree.root / "etc/.wh.passwd").write_text("not a deletion\n")
    with pytest.raises(LayerError, match=r"^/etc/\.wh\.passwd: .*means a deletion$"):
        tree.finish()


def test_a_missing_root_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match=r"^/.*/nowhere: no directory to snapshot$"):
        snapshot.take(tmp_path / "nowhere")


def test_take_leaves_nothing_beside_the_tree(tree: Tree) -> None:
    before = sorted(os.listdir(tree.tmp))
    tree.start()
    assert sorted(os.listdir(tree.tmp)) == before  # the clock probe went again


# ------------------------------------------------------------------------------ PYCONTAINERS_BACKEND


def test_the_backend_variable_forces_a_back_end_without_probing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")
    assert containers.default_backend(store) == "proot"
    assert not (store.home / "backend.json").exists()  # nothing probed, nothing remembered
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "docker")
    with pytest.raises(InvalidArgument, match=r"^PYCONTAINERS_BACKEND='docker': use one of native, rootless, runc, "
                                               r"proot$"):
        containers.default_backend(store)


# ------------------------------------------------------------------------- builds under proot (root)


def write_context(root: Path, files: dict[str, str]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(data)
    return root


def build_with_proot(store: Store, context: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> BuildResult:
    """Build with every RUN under proot (as on Binder); other containers stay native."""
    with monkeypatch.context() as m:
        m.setattr(containers, "default_backend", lambda _store: "proot")
        return build(store, context, **kwargs)


def assert_clean(store: Store) -> None:
    left = containers_left(store.home)
    assert left == [], f"containers left behind: {left}"
    assert sorted(os.listdir(store.tmp_dir)) == []
    assert store.check() == []


def members(image: Image, index: int) -> dict[str, tarfile.TarInfo]:
    return {m.name: m for m in image.layer_members(index % len(image.layers))}


def run(store: Store, image: str, *command: str) -> str:
    out = Client(store.home).containers.run(image, list(command) or None, remove=True)
    return out.decode()  # type: ignore[union-attr]


E2E_DOCKERFILE = """\
FROM busybox
COPY --chown=1000:1000 owned.txt /srv/owned.txt
RUN echo hello > /hello.txt && mkdir -p /app/sub && echo b > /app/sub/b && ln /hello.txt /app/hello-link && \
    echo "to stdout" && echo "to stderr" >&2
RUN rm /etc/group && rm -rf /app/sub && echo appended >> /srv/owned.txt && chmod 0600 /hello.txt
CMD ["cat", "/hello.txt"]
"""


@needs_root
def test_run_under_proot_makes_layers_that_run_natively(busybox_store: Store, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": E2E_DOCKERFILE, "owned.txt": "owned\n"})
    result = build_with_proot(busybox_store, context, monkeypatch, tags=["snap"])
    assert_clean(busybox_store)
    streamed = "".join(e["text"] for e in result.events if e["type"] == "output")
    assert "to stdout\n" in streamed and "to stderr\n" in streamed
    assert streamed.count("under proot this step shares the host's network") == 2  # said for each RUN
    image = result.image

    added = members(image, -2)
    assert sorted(added) == ["app", "app/hello-link", "app/sub", "app/sub/b", "hello.txt"]
    assert all((m.uid, m.gid, m.mtime) == (0, 0, 0) for m in added.values())
    linked = {added["app/hello-link"].type, added["hello.txt"].type}
    assert linked == {tarfile.REGTYPE, tarfile.LNKTYPE}  # one copy of the data, one hard link

    changed = members(image, -1)
    assert {"etc/.wh.group", "app/.wh.sub", "srv/owned.txt", "hello.txt"} <= set(changed)
    assert not any(name.startswith(("app/sub/", "etc/group")) for name in changed)
    assert (changed["srv/owned.txt"].uid, changed["srv/owned.txt"].gid) == (1000, 1000)  # the image's owner kept
    regular = changed["hello.txt"] if changed["hello.txt"].isreg() else changed["app/hello-link"]
    assert regular.mode == 0o600

    assert run(busybox_store, "snap") == "hello\n"  # the native runtime: overlayfs of these layers
    script = ("ls /etc/group /app/sub 2>&1; cat /srv/owned.txt; stat -c '%u:%g %a' /srv/owned.txt /hello.txt; "
              "stat -c %h /hello.txt")
    assert run(busybox_store, "snap", "sh", "-c", script) == (
        "ls: /etc/group: No such file or directory\nls: /app/sub: No such file or directory\n"
        "owned\nappended\n1000:1000 644\n0:0 600\n2\n")


@needs_root
def test_proot_and_native_builds_of_the_same_dockerfile_give_the_same_image(
        busybox_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dockerfile = ("FROM busybox\nRUN mkdir -p /out/d && echo a > /out/a && ln -s a /out/l && chmod 0600 /out/a "
                  "&& rm /etc/group && echo x >> /etc/passwd\nCMD [\"ls\", \"/out\"]\n")
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    native = build(busybox_store, context)
    other = Store(tmp_path / "other")
    copy_image(cache_store(), get_image(cache_store(), "busybox"), other)
    proot = build_with_proot(other, context, monkeypatch)
    assert proot.image.id == native.image.id
    assert_clean(other)


@needs_root
def test_new_files_belong_to_the_steps_user(busybox_store: Store, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nUSER 1000:1000\nRUN touch /tmp/mine\n"})
    image = build_with_proot(busybox_store, context, monkeypatch).image
    got = {name: (m.uid, m.gid) for name, m in members(image, -1).items()}
    assert got == {"tmp": (0, 0), "tmp/mine": (1000, 1000)}


def _failures() -> Iterator[Any]:
    yield pytest.param("RUN echo partial > /partial && exit 3\n", r"^Dockerfile:2: RUN .*returned a non-zero code: 3$",
                       id="failing-command")
    yield pytest.param("RUN touch /.wh.sneaky\n", r"^Dockerfile:2: RUN: .*/\.wh\.sneaky: a name starting with "
                       r"'\.wh\.' cannot go into a layer, where it means a deletion$", id="whiteout-name")
    yield pytest.param("USER nosuchuser\nRUN true\n", r"^Dockerfile:3: RUN true: returned a non-zero code: 1\d\d "
                       r"\(.*nosuchuser.*\)$", id="unknown-user")


@needs_root
@pytest.mark.parametrize(("steps", "message"), list(_failures()))
def test_a_failed_proot_step_is_one_line_and_leaves_the_store_as_it_was(
        busybox_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: str, message: str) -> None:
    index = (busybox_store.layout / "index.json").read_bytes()
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n" + steps})
    with pytest.raises(PyContainersError) as exc:
        build_with_proot(busybox_store, context, monkeypatch, tags=["never"])
    assert "\n" not in str(exc.value) and re.search(message, str(exc.value)), str(exc.value)
    assert (busybox_store.layout / "index.json").read_bytes() == index
    assert_clean(busybox_store)


# ---------------------------------------------------------------- builds under proot (ordinary user)


@pytest.fixture(scope="module")
def student() -> Iterator[unprivileged.Student]:
    with unprivileged.student_with_busybox() as someone:
        yield someone


def as_student(student: unprivileged.Student, *args: str, backend: str | None = "proot") -> str:
    """``pycontainers ARGS`` as the student, with ``PYCONTAINERS_BACKEND`` set as on a machine without
    user namespaces."""
    done = student.run(*args, env={"PYCONTAINERS_BACKEND": backend} if backend else None)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def lingering(student: unprivileged.Student, grace: float = 5.0) -> list[str]:
    """The student's build processes still there after *grace* seconds: proot (its ``-r`` names the store)
    or a step's monitor (a fork of the CLI). A monitor may take a moment to exit after its last report."""
    deadline = time.monotonic() + grace
    while True:
        left = [p for p in student.processes() if str(student.store_home) in p or "pycontainers build" in p]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


STUDENT_DOCKERFILE = """\
FROM busybox
RUN mkdir -p /app/locked /app/closed/in && echo inside > /app/locked/f && chmod 555 /app/locked && \
    echo secret > /app/secret && chmod 000 /app/secret /app/closed && echo hi > /app/hi && \
    chown 1000:1000 /app/hi && rm /etc/group && id -u
CMD ["cat", "/app/hi"]
"""


@needs_root
def test_an_ordinary_user_builds_run_steps_under_proot_like_root_does(
        student: unprivileged.Student, busybox_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context = student.base / "proot-context"
    context.mkdir(mode=0o755)
    (context / "Dockerfile").write_text(STUDENT_DOCKERFILE)
    (context / "Dockerfile").chmod(0o644)
    out = as_student(student, "build", "-t", "made-by-proot", str(context))
    assert "\n0\n" in out  # proot's fake root
    assert containers_left(student.store_home) == []  # the 555 directory did not stop the removal
    assert lingering(student) == []
    assert as_student(student, "run", "--rm", "made-by-proot", backend=None) == "hi\n"  # overlayfs, rootless

    store = Store(student.store_home)
    image = get_image(store, "made-by-proot")
    layer = {m.name: m for m in image.layer_members(len(image.layers) - 1)}
    assert sorted(layer) == ["app", "app/closed", "app/closed/in", "app/hi", "app/locked", "app/locked/f",
                             "app/secret", "etc", "etc/.wh.group"]
    # on disk everything is the student's; in the layer new files are root's (proot's chown only pretended)
    assert {(m.uid, m.gid) for m in layer.values()} == {(0, 0)}
    # what the student could not read was still archived, with the modes the step set
    assert (layer["app/secret"].mode, layer["app/secret"].size, layer["app/closed"].mode) == (0, 7, 0)
    assert layer["app/locked"].mode == 0o555
    # the same build as root gives the same image: nothing depends on who ran it
    as_root = build_with_proot(busybox_store, write_context(tmp_path / "ctx", {"Dockerfile": STUDENT_DOCKERFILE}),
                               monkeypatch)
    assert json.loads(store.blob_path(image.id).read_bytes())["rootfs"] == as_root.image.config["rootfs"]
    assert as_root.image.id == image.id
