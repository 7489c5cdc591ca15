"""Layers: reproducible writing, Changes, overlay uppers, extraction, and refusing malicious layers."""

from __future__ import annotations

import contextlib
import io
import os
import random
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from pycontainers import layer as L
from pycontainers import oci
from pycontainers.errors import LayerError
from pycontainers.image import ImageBuilder, add_layer
from pycontainers.store import Store

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (chown, mknod, trusted.* xattrs)")
TESTS_DIR = str(Path(__file__).resolve().parent)


# ------------------------------------------------------------------------------------------ helpers


def layer_bytes(entries: list[L.Entry]) -> bytes:
    buf = io.BytesIO()
    L.write_tar(entries, buf)
    return buf.getvalue()


def changes_bytes(changes: L.Changes) -> bytes:
    return layer_bytes(changes.entries())


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getmembers()


def names(data: bytes) -> list[str]:
    return [m.name for m in members(data)]


def ti(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes | None = None, mode: int = 0o644,
       linkname: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    """A hand-made member (no sanitising of any kind: this is how an attacker writes a layer)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    if data is not None:
        info.size = len(data)
    return info, data


def craft(*items: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in items:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def extract(data: bytes, dest: Path, **kw: object) -> None:
    L.extract(io.BytesIO(data), str(dest), "test layer", **kw)  # type: ignore[arg-type]


def tree(root: Path) -> dict[str, str]:
    """path -> kind (and link target / content) for everything below *root*."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = str(full.relative_to(root))
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "-> " + os.readlink(full)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISREG(st.st_mode):
                out[rel] = full.read_bytes().decode(errors="replace")
            else:
                out[rel] = "special"
    return out


# ------------------------------------------------------------------------------------ reproducibility

# (path, kind, mode, content): the same tree is made twice, under different umask, TZ, owner and times.
TREE_SPEC = [
    ("bin", "dir", 0o755, None),
    ("bin/tool", "file", 0o4755, b"#!/bin/sh\necho tool\n"),
    ("bin/tool-alias", "hardlink", 0, "bin/tool"),
    ("etc", "dir", 0o755, None),
    ("etc/passwd", "file", 0o644, b"root:x:0:0:root:/root:/bin/sh\n"),
    ("etc/secret", "file", 0o600, b"s3cret\n"),
    ("etc/link", "symlink", 0, "passwd"),
    ("etc/pipe", "fifo", 0o640, None),
    ("tmp", "dir", 0o1777, None),
    ("a-b", "file", 0o644, b"sorts between a and a/x as a string\n"),
    ("a", "dir", 0o750, None),
    ("a/x", "file", 0o444, b"x" * 1500),
    ("a/empty", "file", 0o644, b""),
    ("data", "dir", 0o700, None),
    ("data/" + "long-name-" * 12, "file", 0o644, b"a name longer than ustar's 100 bytes\n"),
    ("data/h\u00e9llo-\u65e5\u672c", "file", 0o644, b"non-ASCII name\n"),
    ("data/z-link-to-a-x", "hardlink", 0, "a/x"),
]


def build_tree(root: str, seed: int, owner: tuple[int, int] | None) -> None:
    """Create TREE_SPEC below *root*, chmod every entry explicitly, chown, then scramble all times."""
    os.makedirs(root)
    for path, kind, _mode, content in sorted(TREE_SPEC, key=lambda e: e[1] == "hardlink"):
        full = os.path.join(root, path)
        if kind == "dir":
            os.makedirs(full, exist_ok=True)
        elif kind == "file":
            with open(full, "wb") as f:
                f.write(content)
        elif kind == "symlink":
            os.symlink(content, full)
        elif kind == "fifo":
            os.mkfifo(full)
        elif kind == "hardlink":
            os.link(os.path.join(root, content), full)
    rng = random.Random(seed)
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in [*filenames, *dirnames, None]:
            full = dirpath if name is None else os.path.join(dirpath, name)
            if not os.path.islink(full):
                rel = os.path.relpath(full, root)
                spec = {p: m for p, k, m, _ in TREE_SPEC if k != "hardlink"}
                if owner is not None:
                    os.chown(full, *owner)  # before chmod: chown clears the setuid bit
                os.chmod(full, spec.get(rel, 0o755))
            elif owner is not None:
                os.chown(full, *owner, follow_symlinks=False)
            times = (rng.randrange(1, 2**31), rng.randrange(1, 2**31))
            os.utime(full, times, follow_symlinks=False)


def archive_tree(root: str, owner: tuple[int, int] | None = (0, 0)) -> bytes:
    return layer_bytes(L.tree_entries(root, owner=owner))


def _child_build_and_archive(root: str, out: str, seed: str, uid: str) -> None:
    """Run in a subprocess (umask 077, TZ=Asia/Tokyo): make the copy there and archive it."""
    os.umask(0o077)
    owner = (int(uid), int(uid)) if IS_ROOT else None
    build_tree(root, int(seed), owner)
    Path(out).write_bytes(archive_tree(root))
    Path(out + ".own").write_bytes(archive_tree(root, owner=None))


def test_same_tree_gives_same_bytes_across_umask_tz_times_and_owner(tmp_path: Path) -> None:
    first = tmp_path / "first"
    build_tree(str(first), seed=1, owner=None)
    a = archive_tree(str(first))
    assert archive_tree(str(first)) == a  # twice in a row

    out = tmp_path / "second.tar"
    env = {**os.environ, "TZ": "Asia/Tokyo"}
    env.pop("SOURCE_DATE_EPOCH", None)
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import test_layer as t; "
              "t._child_build_and_archive(*sys.argv[2:])")
    subprocess.run([sys.executable, "-c", script, TESTS_DIR, str(tmp_path / "second"), str(out), "2", "1000"],
                   check=True, env=env, timeout=60)
    second = tmp_path / "second"
    # The copies really differ on disk: times, and (as root) owners and the umask the child used.
    assert os.lstat(first / "etc/passwd").st_mtime != os.lstat(second / "etc/passwd").st_mtime
    assert stat.S_IMODE(os.stat(second / "bin/tool").st_mode) == 0o4755
    assert stat.S_IMODE(os.stat(second / "tmp").st_mode) == 0o1777
    b = out.read_bytes()
    assert a == b
    if IS_ROOT:
        # ... and forcing the owner is what made them equal: the owners on disk differ.
        owned = Path(str(out) + ".own").read_bytes()
        assert owned != b
        assert {m.uid for m in members(owned)} == {1000}


def test_headers_are_normalised(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    build_tree(str(root), seed=3, owner=None)
    data = archive_tree(str(root))
    ms = members(data)
    assert ms, "the layer is empty"
    for m in ms:
        assert m.uname == "" and m.gname == "", m.name
        assert m.uid == 0 and m.gid == 0, m.name
        assert m.mtime == 0, m.name
        assert "atime" not in m.pax_headers and "ctime" not in m.pax_headers, m.name
    assert b"atime=" not in data and b"ctime=" not in data
    by_name = {m.name: m for m in ms}
    assert by_name["bin/tool"].mode == 0o4755
    assert by_name["tmp"].mode == 0o1777
    assert by_name["etc/link"].issym() and by_name["etc/link"].linkname == "passwd"
    assert by_name["etc/pipe"].isfifo()
    assert by_name["data/h\u00e9llo-\u65e5\u672c"].size == len(b"non-ASCII name\n")


def test_entries_sorted_parents_first(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    build_tree(str(root), seed=4, owner=None)
    order = names(archive_tree(str(root)))
    assert order == sorted(order, key=lambda n: tuple(n.split("/")))
    assert order.index("a") < order.index("a/x") < order.index("a-b")  # not plain string order
    seen: set[str] = set()
    for name in order:
        parent = name.rpartition("/")[0]
        assert not parent or parent in seen, f"{name} comes before its parent {parent}"
        seen.add(name)


def test_hard_links_are_written_as_lnktype(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    build_tree(str(root), seed=5, owner=None)
    by_name = {m.name: m for m in members(archive_tree(str(root)))}
    alias = by_name["bin/tool-alias"]
    assert alias.type == tarfile.LNKTYPE and alias.linkname == "bin/tool" and alias.size == 0
    assert by_name["bin/tool"].type == tarfile.REGTYPE and by_name["bin/tool"].size > 0
    # a-x is reached first in the walk, so the later name is the link
    assert by_name["data/z-link-to-a-x"].type == tarfile.LNKTYPE
    assert by_name["data/z-link-to-a-x"].linkname == "a/x"


def test_source_date_epoch_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "tree"
    build_tree(str(root), seed=6, owner=None)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    default = archive_tree(str(root))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    custom = archive_tree(str(root))
    assert {m.mtime for m in members(default)} == {L.DEFAULT_SOURCE_DATE_EPOCH}
    assert {m.mtime for m in members(custom)} == {1700000000}
    assert default != custom
    ch = L.Changes()
    ch.add_file("x", b"x")
    assert {m.mtime for m in members(changes_bytes(ch))} == {1700000000}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(LayerError, match="SOURCE_DATE_EPOCH"):
        L.source_date_epoch()


# -------------------------------------------------------------------------------------------- Changes


def test_changes_produce_expected_members() -> None:
    ch = L.Changes()
    ch.add_file("/app/hello.txt", b"hello\n", mode=0o600, uid=5, gid=6)
    ch.mkdir("/data", mode=0o700)
    ch.symlink("/app/link", "hello.txt")
    ch.remove("/etc/motd")
    ch.clear_directory("/var/cache")
    ch.add_file("deep/er/still/file.txt", "text")
    by_name = {m.name: m for m in members(changes_bytes(ch))}
    assert set(by_name) == {
        "app", "app/hello.txt", "app/link", "data", "etc", "etc/.wh.motd", "var", "var/cache",
        "var/cache/.wh..wh..opq", "deep", "deep/er", "deep/er/still", "deep/er/still/file.txt",
    }
    hello = by_name["app/hello.txt"]
    assert hello.isreg() and hello.size == 6 and hello.mode == 0o600 and (hello.uid, hello.gid) == (5, 6)
    assert by_name["data"].isdir() and by_name["data"].mode == 0o700
    assert by_name["app/link"].issym() and by_name["app/link"].linkname == "hello.txt"
    for auto in ("app", "etc", "var", "deep", "deep/er", "deep/er/still"):
        assert by_name[auto].isdir() and by_name[auto].mode == 0o755, auto
    for marker in ("etc/.wh.motd", "var/cache/.wh..wh..opq"):
        assert by_name[marker].isreg() and by_name[marker].size == 0, marker
    assert by_name["deep/er/still/file.txt"].size == 4
    with tarfile.open(fileobj=io.BytesIO(changes_bytes(ch))) as tar:
        assert tar.extractfile("app/hello.txt").read() == b"hello\n"  # type: ignore[union-attr]


def test_changes_remove_replaces_a_pending_add_and_top_level_whiteout() -> None:
    ch = L.Changes()
    ch.add_file("/app/tmp.txt", b"scratch")
    ch.remove("/app/tmp.txt")
    ch.remove("/motd")
    got = names(changes_bytes(ch))
    assert "app/tmp.txt" not in got
    assert "app/.wh.tmp.txt" in got and ".wh.motd" in got
    assert len(ch) == 3  # app, app/.wh.tmp.txt, .wh.motd


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/", "", "a\0b"])
def test_changes_refuse_bad_paths(bad: str) -> None:
    with pytest.raises(LayerError, match="path"):
        L.Changes().add_file(bad, b"x")


# ------------------------------------------------------------------------------------ overlay uppers


@needs_root
def test_tree_entries_turn_overlay_marks_into_whiteouts(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/new.conf").write_text("new\n")
    os.mknod(upper / "gone", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    os.mknod(upper / "etc/motd", stat.S_IFCHR | 0o600, os.makedev(0, 0))
    (upper / "opaque").mkdir()
    (upper / "opaque/kept").write_text("kept\n")
    (upper / "xwh").touch()
    try:
        os.setxattr(upper / "opaque", "trusted.overlay.opaque", b"y")
        os.setxattr(upper / "xwh", "trusted.overlay.whiteout", b"")
    except OSError as exc:
        pytest.skip(f"this file system does not take trusted.* xattrs: {exc}")

    got = {e.info.name: e.info for e in L.tree_entries(str(upper), overlay_upper=True)}
    assert set(got) == {"etc", "etc/new.conf", "etc/.wh.motd", ".wh.gone", "opaque", "opaque/.wh..wh..opq",
                        "opaque/kept", ".wh.xwh"}
    assert got[".wh.gone"].isreg() and got[".wh.gone"].size == 0
    assert got["opaque"].isdir()
    # The real layer has the opaque marker right after its directory and before the kept child.
    order = names(layer_bytes(L.tree_entries(str(upper), overlay_upper=True)))
    assert order.index("opaque") < order.index("opaque/.wh..wh..opq") < order.index("opaque/kept")

    # Without overlay_upper the same tree is archived as it is: a device and a plain directory.
    plain = {e.info.name: e.info for e in L.tree_entries(str(upper))}
    assert plain["gone"].ischr() and (plain["gone"].devmajor, plain["gone"].devminor) == (0, 0)
    assert "opaque/.wh..wh..opq" not in plain


# ---------------------------------------------------------------------------------------- extraction

EPOCH = 1_234_567_890


def base_layer() -> bytes:
    ch = L.Changes()
    ch.add_file("etc/passwd", b"root:x:0:0\n")
    ch.add_file("etc/motd", b"welcome\n")
    ch.add_file("lib/a.so", b"A")
    ch.add_file("lib/sub/b.so", b"B")
    ch.add_file("var/cache/old1", b"1")
    ch.add_file("var/cache/deep/old2", b"2")
    ch.add_file("keep/me", b"kept")
    entries = ch.entries()
    entries.append(L.Entry(L.new_info("bin", tarfile.DIRTYPE, mode=0o755, epoch=EPOCH)))
    entries.append(L.Entry(L.new_info("bin/tool", tarfile.REGTYPE, mode=0o755, size=4, epoch=EPOCH), b"tool"))
    entries.append(L.Entry(L.new_info("bin/zz-alias", tarfile.LNKTYPE, mode=0o755, linkname="bin/tool",
                                      epoch=EPOCH)))
    entries.append(L.Entry(L.new_info("bin/sh", tarfile.SYMTYPE, mode=0o777, linkname="tool", epoch=EPOCH)))
    entries.append(L.Entry(L.new_info("private", tarfile.DIRTYPE, mode=0o700, uid=1234, gid=5678,
                                      epoch=EPOCH)))
    entries.append(L.Entry(L.new_info("private/ro", tarfile.REGTYPE, mode=0o400, uid=1234, gid=5678, size=2,
                                      epoch=EPOCH), b"ro"))
    entries.append(L.Entry(L.new_info("readonly", tarfile.DIRTYPE, mode=0o555, epoch=EPOCH)))
    entries.append(L.Entry(L.new_info("readonly/inside", tarfile.REGTYPE, mode=0o644, size=1, epoch=EPOCH),
                           b"i"))
    return layer_bytes(entries)


def upper_layer() -> bytes:
    ch = L.Changes()
    ch.remove("etc/motd")
    ch.remove("lib")  # a whole directory
    ch.clear_directory("var/cache")
    ch.add_file("var/cache/new", b"new")  # same layer as the opaque marker: stays
    ch.add_file("etc/passwd", b"root:x:0:0\nme:x:1000:1000\n")  # modified
    return changes_bytes(ch)


def test_extract_applies_layers_in_order(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    extract(base_layer(), root)
    assert tree(root)["etc/motd"] == "welcome\n"
    extract(upper_layer(), root)
    got = tree(root)
    assert got == {
        "bin": "dir", "bin/tool": "tool", "bin/zz-alias": "tool", "bin/sh": "-> tool",
        "etc": "dir", "etc/passwd": "root:x:0:0\nme:x:1000:1000\n",
        "keep": "dir", "keep/me": "kept",
        "private": "dir", "private/ro": "ro",
        "readonly": "dir", "readonly/inside": "i",
        "var": "dir", "var/cache": "dir", "var/cache/new": "new",
    }


def test_extract_restores_metadata(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    extract(base_layer(), root)
    tool, alias = os.lstat(root / "bin/tool"), os.lstat(root / "bin/zz-alias")
    assert (tool.st_dev, tool.st_ino) == (alias.st_dev, alias.st_ino) and tool.st_nlink == 2
    assert stat.S_IMODE(tool.st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(root / "private").st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(root / "private/ro").st_mode) == 0o400
    assert stat.S_IMODE(os.lstat(root / "readonly").st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(root / "etc/passwd").st_mode) == 0o644
    assert os.readlink(root / "bin/sh") == "tool"
    for rel in ("bin", "bin/tool", "bin/sh", "private", "private/ro", "readonly", "readonly/inside"):
        assert os.lstat(root / rel).st_mtime == EPOCH, rel  # directories too, after their children
    if IS_ROOT:
        st = os.lstat(root / "private/ro")
        assert (st.st_uid, st.st_gid) == (1234, 5678)


def test_extract_replaces_types(tmp_path: Path) -> None:
    """A file over a directory, a directory over a symlink: the later layer's entry wins."""
    root = tmp_path / "rootfs"
    root.mkdir()
    low = L.Changes()
    low.add_file("x/inner", b"i")
    low.symlink("y", "/etc")
    up = L.Changes()
    up.add_file("x", b"now a file")
    up.add_file("y/z", b"z")  # y was a symlink below; a plain directory now
    up.mkdir("y")
    extract(changes_bytes(low), root)
    extract(changes_bytes(up), root)
    assert tree(root) == {"x": "now a file", "y": "dir", "y/z": "z"}


def test_opaque_hides_lower_children_of_a_recreated_sibling(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    low = L.Changes()
    low.add_file("dir/-sub/old", b"lower")
    low.add_file("dir/zsub/old", b"lower")
    up = L.Changes()
    up.mkdir("dir/-sub")  # '-' sorts before '.', so this entry precedes the opaque marker
    up.mkdir("dir/zsub")
    up.clear_directory("dir")
    extract(changes_bytes(low), root)
    extract(changes_bytes(up), root)
    assert tree(root) == {"dir": "dir", "dir/-sub": "dir", "dir/zsub": "dir"}


def test_whiteout_never_hides_an_entry_of_its_own_layer(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    low = L.Changes()
    low.add_file("-foo", b"old")
    up = L.Changes()
    up.remove("-foo")
    up.add_file("-foo", b"new")  # replace: hide the lower one, add a new one
    extract(changes_bytes(low), root)
    extract(changes_bytes(up), root)
    assert tree(root) == {"-foo": "new"}


def test_write_tar_puts_whiteouts_before_their_siblings() -> None:
    ch = L.Changes()
    ch.add_file("dir/-a", b"a")
    ch.mkdir("dir/-sub")
    ch.remove("dir/zz")
    ch.clear_directory("dir")
    ch.add_file("-foo", b"x")
    ch.remove("-bar")
    data = changes_bytes(ch)
    assert names(data) == [".wh.-bar", "-foo", "dir", "dir/.wh..wh..opq", "dir/.wh.zz", "dir/-a", "dir/-sub"]
    shuffled = ch.entries()
    random.Random(7).shuffle(shuffled)
    assert layer_bytes(shuffled) == data  # still one order whatever the input order


def test_whiteouts_after_their_siblings_hide_only_lower_entries(tmp_path: Path) -> None:
    """A layer of another tool may put whiteouts last: they still never touch their own layer."""
    root = tmp_path / "rootfs"
    root.mkdir()
    low = L.Changes()
    low.add_file("a/b/c/bar", b"bar")
    low.add_file("-foo", b"old")
    low.add_file("d/old", b"old")
    up = craft(
        # layer.md's own example: the opaque marker applies first "regardless of the ordering".
        ti("a", tarfile.DIRTYPE, mode=0o755), ti("a/b", tarfile.DIRTYPE, mode=0o755),
        ti("a/b/c", tarfile.DIRTYPE, mode=0o755), ti("a/b/c/foo", data=b"foo"), ti("a/.wh..wh..opq"),
        ti("-foo", data=b"new"), ti(".wh.-foo"),
        ti("d", tarfile.DIRTYPE, mode=0o755), ti("d/new", data=b"new"), ti(".wh.d"),
    )
    extract(changes_bytes(low), root)
    extract(up, root)
    assert tree(root) == {"a": "dir", "a/b": "dir", "a/b/c": "dir", "a/b/c/foo": "foo", "-foo": "new",
                          "d": "dir", "d/new": "new"}


@needs_root
def test_overlay_whiteouts_keep_entries_of_their_own_layer(tmp_path: Path) -> None:
    """Unpacked alone for overlayfs: a same-layer file is not turned into a whiteout device, and a directory
    that replaces a lower one is marked opaque (else overlayfs would merge the two)."""
    late = craft(ti("-foo", data=b"new"), ti(".wh.-foo"), ti("d", tarfile.DIRTYPE, mode=0o755),
                 ti("d/new", data=b"new"), ti(".wh.d"), ti(".wh.gone"))
    ch = L.Changes()
    ch.remove("e")
    ch.mkdir("e")  # .wh.e comes first, then e/
    for name, data in (("late", late), ("changes", changes_bytes(ch))):
        (tmp_path / name).mkdir()
        try:
            extract(data, tmp_path / name, whiteouts="overlay")
        except OSError as exc:
            pytest.skip(f"this file system does not take trusted.* xattrs: {exc}")
    late_root = tmp_path / "late"
    assert (late_root / "-foo").read_bytes() == b"new"
    assert os.getxattr(late_root / "d", "trusted.overlay.opaque") == b"y"
    assert (late_root / "d/new").read_bytes() == b"new"
    gone = os.lstat(late_root / "gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == 0
    assert os.path.isdir(tmp_path / "changes/e")
    assert os.getxattr(tmp_path / "changes/e", "trusted.overlay.opaque") == b"y"


def test_inspect_layers_agrees_with_extraction_on_late_whiteouts(store: Store, tmp_path: Path) -> None:
    """A whiteout after an entry of its own layer hides only the lower one, in the file list as on disk."""
    b = ImageBuilder(store)
    with b.layer("lower") as ch:
        ch.add_file("/-x", b"lower")
        ch.add_file("/d/old", b"old")
    late = craft(ti("-x", data=b"upper!"), ti(".wh.-x"), ti("d", tarfile.DIRTYPE, mode=0o755),
                 ti("d/new", data=b"n"), ti(".wh.d"))
    desc = store.put_bytes(late, oci.MEDIA_LAYER)
    b.layer_descs.append(desc)
    b.config = add_layer(b.config, desc, "hand-made: entries before their whiteouts")
    image = b.commit("late-whiteouts")

    fs, reports = image.inspect_layers()
    assert sorted(fs) == ["-x", "d", "d/new"]
    assert (fs["-x"].layer, fs["-x"].size) == (1, 6)
    assert reports[1].modified == ["-x"] and reports[1].added == ["d/new"] and reports[1].deleted == ["d/old"]
    assert reports[0].wasted == len(b"lower") + len(b"old")
    root = tmp_path / "rootfs"
    root.mkdir()
    for i in range(len(image.layers)):
        with image.open_layer(i) as f:
            L.extract(f, str(root), f"layer {i}")
    assert set(tree(root)) == set(fs)


def test_write_tar_puts_a_hard_link_after_its_target(tmp_path: Path) -> None:
    def entry(path: str, kind: bytes, data: bytes | None = None, link: str = "") -> L.Entry:
        return L.Entry(L.new_info(path, kind, mode=0o755, size=len(data or b""), linkname=link), data)

    entries = [
        entry("bin", tarfile.DIRTYPE), entry("bin/tool", tarfile.REGTYPE, b"tool"),
        entry("bin/alias", tarfile.LNKTYPE, link="bin/tool"),  # 'alias' sorts before 'tool'
        entry("a", tarfile.DIRTYPE), entry("a/first", tarfile.LNKTYPE, link="a/second"),  # a chain of links
        entry("a/second", tarfile.LNKTYPE, link="z/file"),
        entry("z", tarfile.DIRTYPE), entry("z/file", tarfile.REGTYPE, b"z"),
    ]
    data = layer_bytes(entries)
    assert names(data) == ["a", "bin", "bin/tool", "bin/alias", "z", "z/file", "a/second", "a/first"]
    assert layer_bytes(list(reversed(entries))) == data
    root = tmp_path / "rootfs"
    root.mkdir()
    extract(data, root)
    assert os.lstat(root / "bin/alias").st_ino == os.lstat(root / "bin/tool").st_ino
    assert os.lstat(root / "a/first").st_ino == os.lstat(root / "z/file").st_ino
    assert os.lstat(root / "z/file").st_nlink == 3


# ---------------------------------------------------------------------------------- malicious layers


def snapshot(box: Path, skip: Path) -> list[tuple[str, int, int, int, int]]:
    """Everything in *box* except *skip* and what it holds: path, mode, links, size, mtime."""
    out = []
    for dirpath, dirnames, filenames in os.walk(box):
        if Path(dirpath) == skip:
            dirnames[:] = []
            continue
        for name in [".", *dirnames, *filenames]:
            full = Path(dirpath) / name
            if full == skip:
                continue
            st = full.lstat()
            out.append((str(full.relative_to(box)), st.st_mode, st.st_nlink, st.st_size, st.st_mtime_ns))
    return sorted(out)


@pytest.fixture
def box(tmp_path: Path) -> Path:
    """tmp/box/{target, sentinel/secret}: layers go into target; sentinel must never change."""
    b = tmp_path / "box"
    (b / "target").mkdir(parents=True)
    (b / "sentinel").mkdir()
    (b / "sentinel/secret").write_bytes(b"do not touch\n")
    os.chmod(b / "sentinel", 0o755)
    return b


def absurd_size_layer() -> bytes:
    info = tarfile.TarInfo("huge.bin")
    info.size = L.MAX_ENTRY_SIZE + 1  # > 64 GiB, and no data at all
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape") + b"\0" * (2 * tarfile.BLOCKSIZE)


def malicious_cases(sentinel: Path) -> dict[str, tuple[bytes, str]]:
    """name -> (layer bytes, the entry the error must name)."""
    return {
        "dotdot": (craft(ti("../evil", data=b"x")), "../evil"),
        "dotdot-inside": (craft(ti("a", tarfile.DIRTYPE, mode=0o755), ti("a/../../evil", data=b"x")),
                          "a/../../evil"),
        "absolute": (craft(ti("/abs/evil", data=b"x")), "/abs/evil"),
        "symlink-root-then-write": (craft(ti("link", tarfile.SYMTYPE, linkname="/"),
                                          ti("link/evil", data=b"x")), "link/evil"),
        "symlink-dotdot-then-write": (craft(ti("link", tarfile.SYMTYPE, linkname=".."),
                                            ti("link/evil", data=b"x")), "link/evil"),
        "symlink-sentinel-then-write": (craft(ti("link", tarfile.SYMTYPE, linkname=str(sentinel)),
                                              ti("link/evil", data=b"x")), "link/evil"),
        "symlink-sentinel-then-mkdir": (craft(ti("link", tarfile.SYMTYPE, linkname=str(sentinel)),
                                              ti("link/evildir", tarfile.DIRTYPE, mode=0o777)), "link/evildir"),
        "hardlink-dotdot": (craft(ti("h", tarfile.LNKTYPE, linkname="../sentinel/secret")), "h"),
        "hardlink-absolute": (craft(ti("h", tarfile.LNKTYPE, linkname="/etc/passwd")), "h"),
        "hardlink-through-symlink": (craft(ti("link", tarfile.SYMTYPE, linkname=str(sentinel)),
                                           ti("h", tarfile.LNKTYPE, linkname="link/secret")), "h"),
        "absurd-size": (absurd_size_layer(), "huge.bin"),
        # '.wh...' names '..': applied, it would delete the target's parent and everything beside it.
        "whiteout-of-dotdot": (craft(ti(".wh...")), ".wh..."),
        "whiteout-of-dot": (craft(ti("a", tarfile.DIRTYPE, mode=0o755), ti("a/.wh..")), "a/.wh.."),
        "whiteout-of-nothing": (craft(ti(".wh.")), ".wh."),
        "hardlink-to-directory": (craft(ti("d", tarfile.DIRTYPE, mode=0o755), ti("h", tarfile.LNKTYPE, linkname="d")),
                                  "h"),
    }


CASES = list(malicious_cases(Path("/x")))


@pytest.mark.parametrize("case", CASES)
def test_extract_refuses_malicious_layer(box: Path, case: str) -> None:
    target, sentinel = box / "target", box / "sentinel"
    data, entry = malicious_cases(sentinel)[case]
    abs_existed = os.path.lexists("/abs")
    before = snapshot(box, target)
    with pytest.raises(LayerError) as err:
        extract(data, target)
    assert repr(entry) in str(err.value), str(err.value)
    assert snapshot(box, target) == before
    assert sorted(os.listdir(sentinel)) == ["secret"]
    assert (sentinel / "secret").read_bytes() == b"do not touch\n"
    assert os.path.lexists("/abs") == abs_existed
    assert not os.path.lexists("/evil")
    for dirpath, _dirs, files in os.walk(target):
        assert "evil" not in files, dirpath


@pytest.mark.parametrize("case", CASES)
def test_check_layer_refuses_malicious_layer(box: Path, case: str) -> None:
    data, entry = malicious_cases(box / "sentinel")[case]
    with pytest.raises(LayerError) as err:
        L.check_layer(io.BytesIO(data), "test layer")
    assert repr(entry) in str(err.value)
    assert str(err.value).startswith("test layer: ")
    assert os.listdir(box / "target") == []


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_absurd_size_is_refused_before_any_read(fmt: int) -> None:
    info = tarfile.TarInfo("huge.bin")
    info.size = 100 << 30
    raw = info.tobuf(fmt, "utf-8", "surrogateescape")
    with pytest.raises(LayerError, match="absurd size"):
        L.check_layer(io.BytesIO(raw), "w")


@pytest.mark.parametrize("junk", [b"this is not a tar archive\n" * 40, b"\x1f\x8b\x08" + b"\x00" * 600, b""])
def test_non_tar_is_refused(box: Path, junk: bytes) -> None:
    with pytest.raises(LayerError, match="not a valid tar archive"):
        L.check_layer(io.BytesIO(junk), "junk")
    with pytest.raises(LayerError, match="not a valid tar archive"):
        extract(junk, box / "target")
    assert os.listdir(box / "target") == []


def test_tar_members_are_never_mistaken_for_bytes_on_a_short_read(box: Path) -> None:
    """A header promising more data than the archive holds is an error, not a short file."""
    data = craft(ti("file", data=b"y" * 5000))[: tarfile.BLOCKSIZE * 3]
    with pytest.raises(LayerError, match="not a valid tar archive"):
        extract(data, box / "target")


@pytest.mark.parametrize("link_target", ["..", "SENTINEL"])
def test_symlink_from_a_lower_layer_is_not_followed(box: Path, link_target: str) -> None:
    target, sentinel = box / "target", box / "sentinel"
    lower = craft(ti("etc", tarfile.SYMTYPE,
                     linkname=str(sentinel) if link_target == "SENTINEL" else link_target))
    upper = craft(ti("etc/evil", data=b"x"))
    before = snapshot(box, target)

    # check_layer alone cannot know; with the lower layer's symlinks it refuses.
    L.check_layer(io.BytesIO(upper), "upper")
    lower_links = L.check_layer(io.BytesIO(lower), "lower")
    assert lower_links == {"etc"}
    with pytest.raises(LayerError, match="'etc/evil'"):
        L.check_layer(io.BytesIO(upper), "upper", lower_symlinks=lower_links)

    extract(lower, target)
    with pytest.raises(LayerError, match="'etc/evil'"):
        extract(upper, target, lower_symlinks=lower_links)
    # Even a caller that forgets lower_symlinks is safe: directories are opened with O_NOFOLLOW.
    with pytest.raises(LayerError, match="'etc/evil'"):
        extract(upper, target)
    assert snapshot(box, target) == before
    assert not (box / "evil").exists()


def test_lower_symlink_can_be_replaced_by_a_directory(box: Path) -> None:
    lower = craft(ti("etc", tarfile.SYMTYPE, linkname=".."))
    upper = craft(ti("etc", tarfile.DIRTYPE, mode=0o755), ti("etc/ok", data=b"ok"))
    links = L.check_layer(io.BytesIO(lower), "lower")
    assert L.check_layer(io.BytesIO(upper), "upper", lower_symlinks=links) == set()
    extract(lower, box / "target")
    extract(upper, box / "target", lower_symlinks=links)
    assert tree(box / "target") == {"etc": "dir", "etc/ok": "ok"}


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_devices_refused_without_root(box: Path, monkeypatch: pytest.MonkeyPatch, kind: bytes) -> None:
    info, _ = ti("dev/null", kind, mode=0o666)
    info.devmajor, info.devminor = 1, 3
    data = craft(ti("dev", tarfile.DIRTYPE, mode=0o755), (info, None))
    with pytest.raises(LayerError, match="'dev/null'.*only root"):
        L.LayerChecker("w", allow_devices=False).check(info)
    assert L.LayerChecker("w", allow_devices=True).check(info) == "dev/null"
    with pytest.raises(LayerError, match="'dev/null'"):
        L.check_layer(io.BytesIO(data), "w", allow_devices=False)
    L.check_layer(io.BytesIO(data), "w", allow_devices=True)
    monkeypatch.setattr(L, "is_root", lambda: False)
    with pytest.raises(LayerError, match="'dev/null'"):
        extract(data, box / "target")
    assert not (box / "target/dev/null").exists()


def test_directory_replaced_by_symlink_does_not_chmod_outside(box: Path) -> None:
    target, sentinel = box / "target", box / "sentinel"
    before = snapshot(box, target)
    data = craft(ti("d", tarfile.DIRTYPE, mode=0o777), ti("d", tarfile.SYMTYPE, linkname=str(sentinel)))
    with contextlib.suppress(LayerError):  # refusing the layer is fine too
        extract(data, target)
    assert stat.S_IMODE(os.stat(sentinel).st_mode) == 0o755
    assert snapshot(box, target) == before


@pytest.mark.parametrize("replacement", ["symlink-nested", "file", "whiteout-then-symlink"])
def test_deferred_directory_metadata_never_reaches_what_replaced_it(box: Path, replacement: str) -> None:
    target, sentinel = box / "target", box / "sentinel"
    before = snapshot(box, target)
    d = ti("d", tarfile.DIRTYPE, mode=0o777)
    layer = {
        "symlink-nested": [d, ti("d/sub", tarfile.DIRTYPE, mode=0o777),
                           ti("d", tarfile.SYMTYPE, linkname=str(sentinel))],
        "file": [d, ti("d", data=b"now a file", mode=0o600)],
        "whiteout-then-symlink": [d, ti(".wh.d"), ti("d", tarfile.SYMTYPE, linkname=str(sentinel))],
    }[replacement]
    with contextlib.suppress(LayerError):
        extract(craft(*layer), target)
    assert stat.S_IMODE(os.stat(sentinel).st_mode) == 0o755
    assert snapshot(box, target) == before
    if replacement == "file":
        assert stat.S_IMODE(os.lstat(target / "d").st_mode) == 0o600


def test_hard_link_to_a_directory_is_a_layer_error(box: Path) -> None:
    data = craft(ti("d", tarfile.DIRTYPE, mode=0o755), ti("h", tarfile.LNKTYPE, linkname="d"))
    with pytest.raises(LayerError, match="'h'"):
        extract(data, box / "target")
    with pytest.raises(LayerError, match="'h' is a hard link to the directory 'd'"):
        L.check_layer(io.BytesIO(data), "w")
    implied = craft(ti("p/q/file", data=b"x"), ti("h", tarfile.LNKTYPE, linkname="p/q"))  # p/q: a parent
    with pytest.raises(LayerError, match="'h' is a hard link to the directory 'p/q'"):
        L.check_layer(io.BytesIO(implied), "w")
    # A directory the layer replaced by a file is a file again.
    L.check_layer(io.BytesIO(craft(ti("d", tarfile.DIRTYPE, mode=0o755), ti("d", data=b"f"),
                                   ti("h", tarfile.LNKTYPE, linkname="d"))), "w")


def test_hard_link_to_a_directory_of_a_lower_layer(tmp_path: Path) -> None:
    """check_layer cannot know what the lower layers hold; extraction still names the entry."""
    root = tmp_path / "rootfs"
    root.mkdir()
    extract(craft(ti("d", tarfile.DIRTYPE, mode=0o755)), root)
    upper = craft(ti("h", tarfile.LNKTYPE, linkname="d"))
    L.check_layer(io.BytesIO(upper), "upper")
    with pytest.raises(LayerError, match="'h' is a hard link to 'd', which cannot be linked"):
        extract(upper, root)


def test_hard_link_to_a_missing_file(box: Path) -> None:
    data = craft(ti("h", tarfile.LNKTYPE, linkname="nowhere"))
    with pytest.raises(LayerError, match="'h'.*does not exist"):
        extract(data, box / "target")


def test_error_message_does_not_claim_nothing_was_extracted(box: Path) -> None:
    data = craft(ti("fine", data=b"ok"), ti("../evil", data=b"x"))
    with pytest.raises(LayerError) as err:
        extract(data, box / "target")
    assert os.listdir(box / "target") == [] or "nothing was extracted" not in str(err.value)
    assert "'../evil'" in str(err.value) and "not extracted" in str(err.value)
    with pytest.raises(LayerError, match="nothing was extracted"):  # check_layer writes nothing: it may say so
        L.check_layer(io.BytesIO(data), "test layer")


def test_tree_entries_leave_sockets_out(tmp_path: Path) -> None:
    import socket

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "kept").write_text("x")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "run" / "app.sock"))
        names = [e.info.name for e in L.tree_entries(str(tmp_path))]
    assert names == ["run", "run/kept"]  # as Docker's commit: a socket is nothing without its process


# --------------------------------------------------------------------- an archive re-read, two compared


def owned(name: str, kind: bytes = tarfile.REGTYPE, *, data: bytes | None = None, mode: int = 0o644,
          uid: int = 0, gid: int = 0, linkname: str = "") -> tuple[tarfile.TarInfo, bytes | None]:
    info, data = ti(name, kind, data=data, mode=mode, linkname=linkname)
    info.uid, info.gid, info.mtime = uid, gid, 1_700_000_000
    return info, data


def rootfs(tmp_path: Path, name: str, *items: tuple[tarfile.TarInfo, bytes | None], **kw: object) -> L.RootFs:
    archive = tmp_path / f"{name}.tar"
    archive.write_bytes(craft(*items))
    scratch = tmp_path / f"{name}-files"
    scratch.mkdir()
    return L.archive_entries(str(archive), str(scratch), epoch=0, **kw)  # type: ignore[arg-type]


def test_archive_entries_take_owners_and_types_from_the_headers(tmp_path: Path) -> None:
    """mmdebstrap's archive, as an ordinary user reads it: root's files stay root's, without any chown."""
    fs = rootfs(tmp_path, "a",
                owned("./", tarfile.DIRTYPE, mode=0o755),
                owned("./etc/", tarfile.DIRTYPE, mode=0o755),
                owned("./etc/shadow", data=b"root:*:19000::::::\n", mode=0o640, gid=42),
                owned("./usr/bin/passwd", data=b"\x7fELF", mode=0o4755),
                owned("./usr/bin/chfn", tarfile.LNKTYPE, linkname="./usr/bin/passwd"),
                owned("./bin", tarfile.SYMTYPE, mode=0o777, linkname="usr/bin"),
                owned("./dev/null", tarfile.CHRTYPE, mode=0o666),
                owned("./usr/share/doc/x/copyright", data=b"(c)"),
                leave_out=lambda rel, info: rel.startswith("usr/share/doc/"))
    assert list(fs.entries) == ["etc", "etc/shadow", "usr/bin/passwd", "usr/bin/chfn", "bin", "dev/null"]
    shadow = fs.entries["etc/shadow"]
    assert (shadow.info.uid, shadow.info.gid, shadow.info.mode, shadow.info.mtime) == (0, 42, 0o640, 0)
    assert Path(str(shadow.source)).read_bytes() == b"root:*:19000::::::\n"
    assert fs.entries["usr/bin/passwd"].info.mode == 0o4755
    assert (fs.entries["usr/bin/chfn"].info.type, fs.entries["usr/bin/chfn"].info.linkname) == (
        tarfile.LNKTYPE, "usr/bin/passwd")
    assert fs.entries["bin"].info.linkname == "usr/bin"
    assert fs.entries["dev/null"].info.type == tarfile.CHRTYPE
    assert set(fs.digests) == {"etc/shadow", "usr/bin/passwd"}


def test_archive_entries_refuse_a_member_leaving_the_root(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match=r"a\.tar: member '\.\./escape' contains '\.\.'"):
        rootfs(tmp_path, "a", owned("../escape", data=b"x"))


def test_diff_is_what_turns_lower_into_upper(tmp_path: Path) -> None:
    """Applied over the lower tree with the engine's own extractor, the difference gives the upper tree:
    what was added or changed (with its parents), a whiteout for what went, nothing else."""
    lower_items = [
        owned("etc", tarfile.DIRTYPE, mode=0o755),
        owned("etc/keep", data=b"same\n"),
        owned("etc/edit", data=b"old!\n"),
        owned("etc/mode", data=b"m\n", mode=0o644),
        owned("etc/gone", data=b"bye\n"),
        owned("old", tarfile.DIRTYPE, mode=0o755),
        owned("old/a", data=b"a"),
        owned("old/sub", tarfile.DIRTYPE, mode=0o755),
        owned("old/sub/b", data=b"b"),
        owned("was-dir", tarfile.DIRTYPE, mode=0o755),
        owned("was-dir/child", data=b"c"),
        owned("lib", tarfile.DIRTYPE, mode=0o755),
        owned("lib/libx.so", data=b"v1"),
        owned("lib/libx-alias.so", tarfile.LNKTYPE, linkname="lib/libx.so"),
    ]
    upper_items = [
        owned("etc", tarfile.DIRTYPE, mode=0o755),
        owned("etc/keep", data=b"same\n"),
        owned("etc/edit", data=b"new!\n"),  # the same size: only the digest tells
        owned("etc/mode", data=b"m\n", mode=0o600),
        owned("etc/new", data=b"hello\n", gid=42),
        owned("was-dir", data=b"now a file\n"),
        owned("lib", tarfile.DIRTYPE, mode=0o755),
        owned("lib/libx.so", data=b"v2"),
        owned("lib/libx-alias.so", tarfile.LNKTYPE, linkname="lib/libx.so"),
    ]
    lower = rootfs(tmp_path, "lower", *lower_items)
    upper = rootfs(tmp_path, "upper", *upper_items)
    layer = L.diff(lower, upper, epoch=0)
    assert sorted(e.info.name for e in layer) == sorted([
        "etc", "etc/edit", "etc/mode", "etc/new", "etc/.wh.gone", ".wh.old", "was-dir",
        "lib", "lib/libx.so", "lib/libx-alias.so"])  # nothing of old/ but its whiteout; no etc/keep
    applied, expected = tmp_path / "applied", tmp_path / "expected"
    for d in (applied, expected):
        d.mkdir()
    extract(layer_bytes(list(lower.entries.values())), applied)
    extract(layer_bytes(layer), applied)
    extract(layer_bytes(list(upper.entries.values())), expected)
    assert tree(applied) == tree(expected)
    if IS_ROOT:
        assert (applied / "etc/new").stat().st_gid == 42
        assert stat.S_IMODE((applied / "etc/mode").stat().st_mode) == 0o600
        assert (applied / "lib/libx.so").stat().st_ino == (applied / "lib/libx-alias.so").stat().st_ino


def test_diff_of_a_tree_with_itself_is_empty(tmp_path: Path) -> None:
    items = [owned("a", tarfile.DIRTYPE, mode=0o755), owned("a/f", data=b"x"),
             owned("a/l", tarfile.SYMTYPE, mode=0o777, linkname="f")]
    assert L.diff(rootfs(tmp_path, "one", *items), rootfs(tmp_path, "two", *items)) == []


def test_a_hard_link_to_a_file_left_out_becomes_the_file(tmp_path: Path) -> None:
    """The slim filter drops usr/share/doc; a link kept elsewhere to a file there must not dangle."""
    fs = rootfs(tmp_path, "a",
                owned("usr/share/doc/x/README", data=b"read me\n", mode=0o755, uid=5),
                owned("usr/lib/x/README", tarfile.LNKTYPE, linkname="usr/share/doc/x/README"),
                owned("usr/lib/y/README", tarfile.LNKTYPE, linkname="usr/share/doc/x/README"),
                owned("usr/lib/z/README", tarfile.LNKTYPE, linkname="usr/share/doc/x/README"),
                leave_out=lambda rel, info: rel.startswith("usr/share/doc/"))
    first = fs.entries["usr/lib/x/README"].info
    assert (first.type, first.size, first.mode, first.uid) == (tarfile.REGTYPE, 8, 0o755, 5)  # the file's own
    for other in ("y", "z"):  # each links to the first kept name
        link = fs.entries[f"usr/lib/{other}/README"].info
        assert (link.type, link.linkname) == (tarfile.LNKTYPE, "usr/lib/x/README")
    out = tmp_path / "out"
    out.mkdir()
    extract(layer_bytes(list(fs.entries.values())), out)
    assert (out / "usr/lib/z/README").read_bytes() == b"read me\n"


def test_a_name_the_archive_repeats_keeps_its_last_data(tmp_path: Path) -> None:
    fs = rootfs(tmp_path, "a", owned("a", data=b"first"), owned("a", data=b"again"), owned("b", data=b"bbbbb"))
    assert Path(str(fs.entries["a"].source)).read_bytes() == b"again"
    assert Path(str(fs.entries["b"].source)).read_bytes() == b"bbbbb"


def test_a_hard_link_to_nothing_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(LayerError, match=r"member 'b' is a hard link to 'a', which comes nowhere before it"):
        rootfs(tmp_path, "a", owned("b", tarfile.LNKTYPE, linkname="a"))
