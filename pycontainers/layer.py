"""Layers: reproducible tar archives of file-system changes, and their safe extraction.

A layer (image-spec ``layer.md``) is a tar archive of the files one build step added or changed, plus
*whiteouts* for what it deleted: an empty file ``.wh.<name>`` hides ``<name>`` of the layers below, and
``.wh..wh..opq`` inside a directory hides everything the lower layers had in it. Nothing is ever removed
from a lower layer, which is why deleting a file in a later layer never makes an image smaller.

Reproducible: the same files give the same bytes, hence the same digest, on any machine. Entries are
sorted, every mtime is set to ``SOURCE_DATE_EPOCH``, user and group names are dropped, and no access or
change times are written.

Safe: extraction refuses anything that could write outside the target directory (absolute paths,
``..``, writing through a symlink, hard links leaving the root), device nodes when not root, and
absurd sizes. Every directory is opened relative to its parent with ``O_NOFOLLOW``, so even a check
that missed something could not be tricked into following a link.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from .errors import LayerError

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
DEFAULT_SOURCE_DATE_EPOCH = 0
# Larger than any file a teaching image holds; a header claiming more is a lie or an attack.
MAX_ENTRY_SIZE = 64 << 30
_CHUNK = 1 << 20
_BLOCK = tarfile.BLOCKSIZE

# overlayfs marks (Documentation/filesystems/overlayfs.rst); "user." is used inside a user namespace.
OVERLAY_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")


def source_date_epoch() -> int:
    """The timestamp written into layers and configs: ``SOURCE_DATE_EPOCH`` or a fixed default."""
    value = os.environ.get("SOURCE_DATE_EPOCH", "")
    try:
        return int(value) if value else DEFAULT_SOURCE_DATE_EPOCH
    except ValueError:
        raise LayerError(f"SOURCE_DATE_EPOCH={value!r} is not a whole number of seconds") from None


# ---------------------------------------------------------------------------------------------- paths


def clean_path(name: str) -> str:
    """A member name as a relative path without ``./`` or trailing ``/`` ("" is the root itself)."""
    if "\0" in name:
        raise ValueError("contains a NUL byte")
    if name.startswith("/"):
        raise ValueError("is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError("contains '..'")
    return "/".join(parts)


def sort_key(path: str) -> tuple[str, ...]:
    """Order entries component by component, so a directory always comes before what it holds."""
    return tuple(path.split("/"))


# --------------------------------------------------------------------------------------------- writing


@dataclass
class Entry:
    """One member of a layer to write: its tar header and where its bytes come from."""

    info: tarfile.TarInfo
    source: str | bytes | None = None  # a host file path, the bytes themselves, or nothing


def new_info(path: str, kind: bytes, *, mode: int, uid: int = 0, gid: int = 0, size: int = 0,
             linkname: str = "", epoch: int | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.type = kind
    info.mode = mode & 0o7777
    info.uid, info.gid = uid, gid
    info.uname = info.gname = ""
    info.size = size
    info.linkname = linkname
    info.mtime = source_date_epoch() if epoch is None else epoch
    return info


def whiteout_info(path: str, epoch: int | None = None) -> tarfile.TarInfo:
    """The ``.wh.`` entry that deletes *path* from the layers below."""
    parent, _, name = path.rpartition("/")
    wh = f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name
    return new_info(wh, tarfile.REGTYPE, mode=0o644, epoch=epoch)


def opaque_info(directory: str, epoch: int | None = None) -> tarfile.TarInfo:
    """The ``.wh..wh..opq`` entry that hides everything the lower layers had in *directory*."""
    path = f"{directory}/{OPAQUE_WHITEOUT}" if directory else OPAQUE_WHITEOUT
    return new_info(path, tarfile.REGTYPE, mode=0o644, epoch=epoch)


def _info_from_stat(rel: str, full: str, st: os.stat_result, owner: tuple[int, int] | None,
                    epoch: int) -> tarfile.TarInfo:
    uid, gid = owner if owner is not None else (st.st_uid, st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        return new_info(rel, tarfile.REGTYPE, mode=mode, uid=uid, gid=gid, size=st.st_size, epoch=epoch)
    if stat.S_ISDIR(st.st_mode):
        return new_info(rel, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid, epoch=epoch)
    if stat.S_ISLNK(st.st_mode):
        return new_info(rel, tarfile.SYMTYPE, mode=0o777, uid=uid, gid=gid, linkname=os.readlink(full),
                        epoch=epoch)
    if stat.S_ISFIFO(st.st_mode):
        return new_info(rel, tarfile.FIFOTYPE, mode=mode, uid=uid, gid=gid, epoch=epoch)
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        kind = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info = new_info(rel, kind, mode=mode, uid=uid, gid=gid, epoch=epoch)
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        return info
    raise LayerError(f"{full}: a socket or other special file cannot go into a layer")


def _overlay_xattr(path: str, name: str) -> bytes | None:
    for prefix in OVERLAY_XATTR_PREFIXES:
        try:
            return os.getxattr(path, prefix + name, follow_symlinks=False)
        except OSError:
            continue
    return None


def _is_overlay_whiteout(full: str, st: os.stat_result) -> bool:
    # A 0/0 character device, or (overlayfs "xwhiteout", used without privileges) an empty file marked
    # with an xattr.
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    return stat.S_ISREG(st.st_mode) and st.st_size == 0 and _overlay_xattr(full, "whiteout") is not None


def tree_entries(root: str, *, owner: tuple[int, int] | None = None, overlay_upper: bool = False,
                 epoch: int | None = None) -> list[Entry]:
    """Everything below *root* as layer entries (sorted, hard links kept as links).

    *owner* forces every entry to one uid/gid (files copied from a student's home belong to root in the
    image, as with ``COPY``); ``None`` keeps the owners on disk (a container's root file system).
    With *overlay_upper*, *root* is an overlayfs upper directory and its whiteout devices and opaque
    markers become OCI whiteouts: this is how a container's writable layer becomes an image layer.
    """
    epoch = source_date_epoch() if epoch is None else epoch
    entries: list[Entry] = []
    first_link: dict[tuple[int, int], str] = {}

    def walk(rel_dir: str) -> None:
        full_dir = os.path.join(root, rel_dir) if rel_dir else root
        try:
            names = sorted(os.listdir(full_dir))
        except OSError as exc:
            raise LayerError(f"cannot read directory {full_dir}: {exc.strerror}") from None
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            full = os.path.join(full_dir, name)
            st = os.lstat(full)
            if overlay_upper and _is_overlay_whiteout(full, st):
                entries.append(Entry(whiteout_info(rel, epoch)))
                continue
            info = _info_from_stat(rel, full, st, owner, epoch)
            if info.type == tarfile.REGTYPE and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in first_link:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, first_link[key], 0
                    entries.append(Entry(info))
                    continue
                first_link[key] = rel
            entries.append(Entry(info, full if info.type == tarfile.REGTYPE else None))
            if info.type == tarfile.DIRTYPE:
                if overlay_upper and _overlay_xattr(full, "opaque") == b"y":
                    entries.append(Entry(opaque_info(rel, epoch)))
                walk(rel)

    walk("")
    return entries


def _copy_exact(src: BinaryIO, out: BinaryIO, size: int, buf: memoryview, what: str) -> None:
    remaining = size
    while remaining:
        n = src.readinto(buf[: min(remaining, len(buf))])  # type: ignore[attr-defined]
        if not n:
            raise LayerError(f"{what}: file shrank while it was being archived")
        out.write(buf[:n])
        remaining -= n


def write_tar(entries: Iterable[Entry], out: BinaryIO) -> int:
    """Write a reproducible tar of *entries* to *out*; return the number of bytes written.

    Headers come from ``tarfile`` (PAX where a name is too long for ustar); file data is streamed in
    1 MiB chunks, since hashing, not tar framing, should be what limits the speed.
    """
    buf = memoryview(bytearray(_CHUNK))
    written = 0
    for entry in sorted(entries, key=lambda e: sort_key(e.info.name.rstrip("/"))):
        info = entry.info
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        out.write(header)
        written += len(header)
        if info.type != tarfile.REGTYPE or not info.size:
            continue
        if isinstance(entry.source, bytes):
            out.write(entry.source)
        elif isinstance(entry.source, str):
            with open(entry.source, "rb", buffering=0) as src:
                _copy_exact(src, out, info.size, buf, entry.source)  # type: ignore[arg-type]
        else:
            raise LayerError(f"{info.name}: no data for a file of {info.size} bytes")
        pad = -info.size % _BLOCK
        out.write(b"\0" * pad)
        written += info.size + pad
    out.write(b"\0" * (2 * _BLOCK))  # end-of-archive marker
    return written + 2 * _BLOCK


class Changes:
    """A layer written by hand: the low-level way to see that a layer is just a list of changes.

    >>> changes = Changes()
    >>> changes.add_file("/app/hello.txt", b"hello\\n")
    >>> changes.remove("/etc/motd")           # becomes etc/.wh.motd
    """

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}

    def _put(self, info: tarfile.TarInfo, source: bytes | None = None) -> None:
        for parent in _parents(info.name):
            if parent not in self._entries:
                self._entries[parent] = Entry(new_info(parent, tarfile.DIRTYPE, mode=0o755))
        self._entries[info.name] = Entry(info, source)

    @staticmethod
    def _path(path: str) -> str:
        try:
            rel = clean_path(path.lstrip("/"))
        except ValueError as exc:
            raise LayerError(f"path {path!r} {exc}") from None
        if not rel:
            raise LayerError(f"path {path!r}: the root directory itself cannot be changed")
        return rel

    def add_file(self, path: str, data: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        self._put(new_info(self._path(path), tarfile.REGTYPE, mode=mode, uid=uid, gid=gid, size=len(raw)),
                  raw)

    def mkdir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        self._put(new_info(self._path(path), tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid))

    def symlink(self, path: str, target: str) -> None:
        self._put(new_info(self._path(path), tarfile.SYMTYPE, mode=0o777, linkname=target))

    def remove(self, path: str) -> None:
        """Delete *path* from the layers below: only a whiteout is added, nothing below shrinks."""
        info = whiteout_info(self._path(path))
        self._entries.pop(self._path(path), None)
        self._put(info)

    def clear_directory(self, path: str) -> None:
        """Hide everything the layers below have in *path* (an opaque whiteout)."""
        rel = self._path(path)
        self._put(new_info(rel, tarfile.DIRTYPE, mode=0o755))
        self._put(opaque_info(rel))

    def entries(self) -> list[Entry]:
        return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


# --------------------------------------------------------------------------------------------- reading


def read_members(fileobj: BinaryIO, where: str) -> Iterator[tarfile.TarInfo]:
    """The headers of a layer, in order, without reading file data (tarfile seeks over it)."""
    try:
        with tarfile.open(fileobj=fileobj, mode="r:") as tar:
            while True:
                member = tar.next()
                if member is None:
                    return
                yield member
    except tarfile.TarError as exc:
        raise LayerError(f"{where}: not a valid tar archive ({exc})") from None


def describe(member: tarfile.TarInfo) -> str:
    return {tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "directory",
            tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hard link", tarfile.CHRTYPE: "character device",
            tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "fifo"}.get(member.type, "entry")


class LayerChecker:
    """Checks each member of a layer before anything is written, tracking symlinks as it goes.

    *lower_symlinks* are the symlinks the layers below already have: writing ``etc/x`` where a lower
    layer made ``etc`` a link to ``/`` is an escape just like doing it inside one layer.
    """

    def __init__(self, where: str, *, allow_devices: bool, lower_symlinks: Iterable[str] = ()) -> None:
        self.where = where
        self.allow_devices = allow_devices
        self.symlinks = set(lower_symlinks)

    def fail(self, name: str, problem: str) -> LayerError:
        return LayerError(f"{self.where}: entry {name!r} {problem}; nothing was extracted")

    def check(self, member: tarfile.TarInfo) -> str:
        """Return the member's clean path, or raise naming the entry and the problem."""
        try:
            path = clean_path(member.name)
        except ValueError as exc:
            raise self.fail(member.name, str(exc)) from None
        if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE,
                               tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE,
                               tarfile.CONTTYPE):
            raise self.fail(member.name, f"has unsupported tar type {member.type!r}")
        if member.size < 0 or member.size > MAX_ENTRY_SIZE:
            raise self.fail(member.name, f"claims an absurd size of {member.size} bytes")
        if member.type in (tarfile.CHRTYPE, tarfile.BLKTYPE) and not self.allow_devices:
            raise self.fail(member.name, f"is a {describe(member)}, which only root may create")
        for parent in _parents(path):
            if parent in self.symlinks:
                raise self.fail(member.name, f"would be written through the symlink {parent!r}")
        if member.type == tarfile.LNKTYPE:
            try:
                target = clean_path(member.linkname)
            except ValueError as exc:
                raise self.fail(member.name, f"is a hard link whose target {member.linkname!r} {exc}") from None
            if not target or any(p in self.symlinks for p in [*_parents(target), target]):
                raise self.fail(member.name, f"is a hard link to {member.linkname!r}, outside the layer's root")
        name = path.rpartition("/")[2]
        if name.startswith(WHITEOUT_PREFIX) and name != OPAQUE_WHITEOUT:
            hidden = path[: len(path) - len(name)] + name[len(WHITEOUT_PREFIX):]
            self._forget(hidden)
        elif member.type == tarfile.SYMTYPE:
            self.symlinks.add(path)
        else:
            self._forget(path)
        return path

    def _forget(self, path: str) -> None:
        self.symlinks = {s for s in self.symlinks if s != path and not s.startswith(path + "/")}


def check_layer(fileobj: BinaryIO, where: str, *, allow_devices: bool | None = None,
                lower_symlinks: Iterable[str] = ()) -> set[str]:
    """Check a whole layer without extracting it; return the symlinks the image has after it."""
    checker = LayerChecker(where, allow_devices=_is_root() if allow_devices is None else allow_devices,
                           lower_symlinks=lower_symlinks)
    for member in read_members(fileobj, where):
        checker.check(member)
    return checker.symlinks


# ------------------------------------------------------------------------------------------ extraction


def _is_root() -> bool:
    return os.geteuid() == 0


def _walk_to_parent(root_fd: int, path: str, checker: LayerChecker, name: str) -> int:
    """Open the parent directory of *path* one component at a time, never following a symlink."""
    fd = os.dup(root_fd)
    try:
        for part in path.split("/")[:-1]:
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise checker.fail(name, f"would be written through {part!r}, which is not a directory") \
                        from None
                raise
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def _remove_at(parent_fd: int, name: str) -> None:
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent_fd)
    else:
        os.unlink(name, dir_fd=parent_fd)


class _Extractor:
    def __init__(self, dest: str, where: str, whiteouts: str, lower_symlinks: Iterable[str]) -> None:
        self.root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
        self.root = _is_root()
        self.whiteouts = whiteouts
        self.checker = LayerChecker(where, allow_devices=self.root, lower_symlinks=lower_symlinks)
        self.created: set[str] = set()
        self.dir_modes: list[tuple[str, tarfile.TarInfo]] = []

    def close(self) -> None:
        os.close(self.root_fd)

    def extract(self, tar: tarfile.TarFile) -> None:
        buf = memoryview(bytearray(_CHUNK))
        while (member := tar.next()) is not None:
            path = self.checker.check(member)
            if not path:
                continue  # the "./" entry: the root directory is the target itself
            parent_fd = _walk_to_parent(self.root_fd, path, self.checker, member.name)
            try:
                self._one(tar, member, path, parent_fd, buf)
            finally:
                os.close(parent_fd)
        for path, info in reversed(self.dir_modes):  # deepest first: a 0555 dir must not block its children
            self._set_owner_mode_time(path, info)

    def _one(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: str, pfd: int, buf: memoryview) -> None:
        name = path.rpartition("/")[2]
        parent = path[: -len(name) - 1] if "/" in path else ""
        if name == OPAQUE_WHITEOUT:
            self._opaque(parent, pfd)
            return
        if name.startswith(WHITEOUT_PREFIX):
            self._whiteout(name[len(WHITEOUT_PREFIX):], pfd)
            return
        if m.isdir():
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    _remove_at(pfd, name)
                    os.mkdir(name, 0o700, dir_fd=pfd)
            except FileNotFoundError:
                os.mkdir(name, 0o700, dir_fd=pfd)
            self.dir_modes.append((path, m))
            self.created.add(path)
            return
        _remove_at(pfd, name)
        if m.isreg():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=pfd)
            with os.fdopen(fd, "wb") as out, tar.extractfile(m) as src:  # type: ignore[union-attr]
                _copy_exact(src, out, m.size, buf, m.name)  # type: ignore[arg-type]
        elif m.issym():
            os.symlink(m.linkname, name, dir_fd=pfd)
        elif m.islnk():
            target = clean_path(m.linkname)
            src_fd = _walk_to_parent(self.root_fd, target, self.checker, m.name)
            try:
                os.link(target.rpartition("/")[2], name, src_dir_fd=src_fd, dst_dir_fd=pfd,
                        follow_symlinks=False)
            except FileNotFoundError:
                raise self.checker.fail(m.name, f"is a hard link to {m.linkname!r}, which does not exist") \
                    from None
            finally:
                os.close(src_fd)
            self.created.add(path)
            return  # a hard link shares its target's owner, mode and time
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
        elif m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=pfd)
        self.created.add(path)
        self._set_owner_mode_time(path, m, pfd, name)

    def _set_owner_mode_time(self, path: str, m: tarfile.TarInfo, pfd: int | None = None,
                             name: str | None = None) -> None:
        own_fd = pfd is None
        if own_fd:
            pfd = _walk_to_parent(self.root_fd, path, self.checker, m.name)
            name = path.rpartition("/")[2]
        assert pfd is not None and name is not None
        try:
            if self.root:
                os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            if not m.issym():  # Linux has no lchmod; a symlink's mode means nothing
                os.chmod(name, m.mode & 0o7777, dir_fd=pfd)
            os.utime(name, ns=(m.mtime * 10**9, m.mtime * 10**9), dir_fd=pfd, follow_symlinks=False)
        finally:
            if own_fd:
                os.close(pfd)

    def _whiteout(self, hidden: str, pfd: int) -> None:
        if self.whiteouts == "apply":
            _remove_at(pfd, hidden)
        elif self.whiteouts == "overlay":
            _remove_at(pfd, hidden)
            os.mknod(hidden, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
        else:
            raise ValueError(self.whiteouts)

    def _opaque(self, directory: str, dir_fd: int) -> None:
        # The marker's parent *is* the opaque directory. It hides the names of the *lower* layers only:
        # keep what this layer made.
        if self.whiteouts == "overlay":
            os.setxattr(f"/proc/self/fd/{dir_fd}", "trusted.overlay.opaque", b"y")
            return
        for child in os.listdir(dir_fd):
            if (f"{directory}/{child}" if directory else child) not in self.created:
                _remove_at(dir_fd, child)


def extract(fileobj: BinaryIO, dest: str, where: str, *, whiteouts: str = "apply",
            lower_symlinks: Iterable[str] = ()) -> None:
    """Extract one layer into *dest*, an existing directory.

    ``whiteouts="apply"`` applies the layer on top of what *dest* holds (deleting what whiteouts name):
    several layers applied in order give the image's root file system. ``"overlay"`` turns whiteouts
    into overlayfs's own marks, for a layer unpacked alone as one ``lowerdir`` (needs root).
    Raises ``LayerError`` naming the entry at the first unsafe member; the caller extracts into a fresh
    directory and removes it on failure, so a bad layer leaves nothing behind.
    """
    ex = _Extractor(dest, where, whiteouts, lower_symlinks)
    try:
        with tarfile.open(fileobj=fileobj, mode="r:") as tar:
            ex.extract(tar)
    except tarfile.TarError as exc:
        raise LayerError(f"{where}: not a valid tar archive ({exc})") from None
    finally:
        ex.close()
