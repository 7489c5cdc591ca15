"""Layers: reproducible tar archives of file-system changes, and their safe extraction.

A layer (image-spec ``layer.md``) is a tar archive of the files one build step added or changed, plus
*whiteouts* for what it deleted: an empty file ``.wh.<name>`` hides ``<name>`` of the layers below, and
``.wh..wh..opq`` inside a directory hides everything the lower layers had in it. Nothing is ever removed
from a lower layer, which is why deleting a file in a later layer never makes an image smaller. A
whiteout hides only what the layers *below* have, never an entry of its own layer, wherever it comes in
the tar; the layers written here put the whiteouts first in each directory anyway.

Reproducible: the same files give the same bytes, hence the same digest, on any machine. Entries are
sorted, every mtime is set to ``SOURCE_DATE_EPOCH``, user and group names are dropped, and no access or
change times are written.

Safe: extraction refuses anything that could write outside the target directory (absolute paths,
``..``, writing through a symlink, hard links leaving the root, whiteouts of ``.`` or ``..``), device
nodes when not root, and absurd sizes. Every directory is opened relative to its parent with
``O_NOFOLLOW``, and owners, modes and times are set through descriptors or ``AT_SYMLINK_NOFOLLOW``, so
even a check that missed something could not be tricked into following a link.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .errors import LayerError

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from typing import BinaryIO

    # Writes a whole layer's tar (``write_tar``'s bytes) to the file it is given: how a layer whose files
    # only a helper process may read reaches ``image.write_layer`` (``container.upper_entries``).
    TarWriter = Callable[[BinaryIO], object]

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
DEFAULT_SOURCE_DATE_EPOCH = 0
# Larger than any file a teaching image holds; a header claiming more is a lie or an attack.
MAX_ENTRY_SIZE = 64 << 30
NAME_MAX = 255  # bytes in one name (a path component): longer, and no Linux file system can make it
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


def _rank(name: str) -> int:
    if name == OPAQUE_WHITEOUT:
        return 0
    return 1 if name.startswith(WHITEOUT_PREFIX) else 2


def sort_key(path: str) -> tuple[tuple[int, str], ...]:
    """Order entries component by component, so a directory always comes before what it holds.

    In each directory the whiteouts come first, the opaque marker first of all (layer.md: "whiteout files
    appear before sibling directory entries"): a reader then never meets this layer's ``-foo`` before the
    ``.wh.-foo`` that hides the lower one, although ``-`` sorts before ``.``.
    """
    return tuple((_rank(part), part) for part in path.split("/"))


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


def info_from_stat(rel: str, full: str, st: os.stat_result, owner: tuple[int, int] | None,
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


def stat_entry(rel: str, full: str, st: os.stat_result, owner: tuple[int, int] | None, epoch: int,
               first_link: dict[tuple[int, int], str]) -> Entry:
    """*full* (``lstat`` result *st*) as the layer entry *rel*, keeping hard links as links.

    *first_link* maps (device, inode) to the path that first went into the layer for a multiply-linked file;
    a later path of the same inode becomes a hard link to it, so the data is stored once and the link
    survives extraction. Callers pass the same dict for every path of one layer, in sorted order.
    """
    info = info_from_stat(rel, full, st, owner, epoch)
    if info.type == tarfile.REGTYPE and st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in first_link:
            info.type, info.linkname, info.size = tarfile.LNKTYPE, first_link[key], 0
            return Entry(info)
        first_link[key] = rel
    return Entry(info, full if info.type == tarfile.REGTYPE else None)


def _overlay_xattr(path: str, name: str, prefixes: tuple[str, ...] = OVERLAY_XATTR_PREFIXES) -> bytes | None:
    for prefix in prefixes:
        try:
            return os.getxattr(path, prefix + name, follow_symlinks=False)
        except OSError:
            continue
    return None


def overlay_xattr_prefixes(userxattr: bool) -> tuple[str, ...]:
    """The attributes an overlay mount reads and writes: ``trusted.overlay.*``, or with ``userxattr`` (in a
    user namespace) ``user.overlay.*``. The other kind is an ordinary attribute to it, copied up like any
    other, and must not be taken for a marker."""
    return ("user.overlay.",) if userxattr else ("trusted.overlay.",)


def _is_overlay_whiteout(full: str, st: os.stat_result, prefixes: tuple[str, ...] = OVERLAY_XATTR_PREFIXES) -> bool:
    # A 0/0 character device, or (overlayfs "xwhiteout", used without privileges) an empty file marked
    # with an xattr.
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
        return True
    return stat.S_ISREG(st.st_mode) and st.st_size == 0 and _overlay_xattr(full, "whiteout", prefixes) is not None


def tree_entries(root: str, *, owner: tuple[int, int] | None = None, overlay_upper: bool = False,
                 userxattr: bool = False, epoch: int | None = None,
                 id_map: Callable[[int, int], tuple[int, int]] | None = None) -> list[Entry]:
    """Everything below *root* as layer entries (sorted, hard links kept as links).

    *owner* forces every entry to one uid/gid (files copied from a student's home belong to root in the
    image, as with ``COPY``); ``None`` keeps the owners on disk (a container's root file system).
    With *overlay_upper*, *root* is an overlayfs upper directory and its whiteout devices and opaque
    markers become OCI whiteouts: this is how a container's writable layer becomes an image layer
    (*userxattr*: the markers of an overlay mounted with that option, in a user namespace).
    *id_map* turns a host owner into the container's (a rootless container's files belong to the
    student and to subordinate ids on the host, to root and its users in the image).
    """
    epoch = source_date_epoch() if epoch is None else epoch
    prefixes = overlay_xattr_prefixes(userxattr)
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
            if stat.S_ISSOCK(st.st_mode):
                continue  # a socket means nothing without the process that listens on it: Docker skips them too
            if overlay_upper and _is_overlay_whiteout(full, st, prefixes):
                entries.append(Entry(whiteout_info(rel, epoch)))
                continue
            entry = stat_entry(rel, full, st, owner or (id_map(st.st_uid, st.st_gid) if id_map else None), epoch,
                               first_link)
            entries.append(entry)
            info = entry.info
            if info.type == tarfile.DIRTYPE:
                if overlay_upper and _overlay_xattr(full, "opaque", prefixes) == b"y":
                    entries.append(Entry(opaque_info(rel, epoch)))
                walk(rel)

    walk("")
    return entries


def copy_exact(src: BinaryIO, out: BinaryIO, size: int, buf: memoryview, what: str) -> None:
    """Copy exactly *size* bytes of *src* to *out* through *buf*: a file that shrank since its size was taken
    is an error naming *what*, not a short entry that would shift every later one in the tar."""
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
    for entry in _links_after_targets(sorted(entries, key=lambda e: sort_key(e.info.name.rstrip("/")))):
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
                copy_exact(src, out, info.size, buf, entry.source)  # type: ignore[arg-type]
        else:
            raise LayerError(f"{info.name}: no data for a file of {info.size} bytes")
        pad = -info.size % _BLOCK
        out.write(b"\0" * pad)
        written += info.size + pad
    out.write(b"\0" * (2 * _BLOCK))  # end-of-archive marker
    return written + 2 * _BLOCK


def _entry_path(name: str) -> str:
    try:
        return clean_path(name)
    except ValueError:
        return name  # written as it is; extraction refuses it with the entry's name


def _links_after_targets(ordered: list[Entry]) -> Iterator[Entry]:
    """*ordered* with each hard link moved to just after its target, when the target comes later.

    A hard link names a path already extracted, but sorting may put ``bin/alias`` before ``data/tool``.
    The rest keeps its sorted order, so the result is as deterministic as the sort; a link's parent
    directory sorts before the link, so moving the link later keeps parents first. A link to a path the
    layer does not hold stays in place (a lower layer may have it); links in a cycle go last, for
    extraction to refuse.
    """
    pending = {_entry_path(e.info.name) for e in ordered}  # not written yet
    waiting: dict[str, list[Entry]] = {}  # target -> the links that must follow it
    for e in ordered:
        if e.info.type == tarfile.LNKTYPE and _entry_path(e.info.linkname) in pending:
            waiting.setdefault(_entry_path(e.info.linkname), []).append(e)
            continue
        yield from _with_waiting_links(e, pending, waiting)
    for links in waiting.values():  # targets that never came (a cycle of links): write them anyway
        yield from links


def _with_waiting_links(entry: Entry, pending: set[str], waiting: dict[str, list[Entry]]) -> Iterator[Entry]:
    """*entry*, then the links waiting for it, then those waiting for them (a stack: chains can be long)."""
    stack = [entry]
    while stack:
        e = stack.pop()
        yield e
        path = _entry_path(e.info.name)
        pending.discard(path)
        stack.extend(reversed(waiting.pop(path, [])))


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


# ------------------------------------------------------------------------- an archive, and two of them


@dataclass
class RootFs:
    """A root file system read from an archive (``archive_entries``): its entries, by path, in order, and
    the sha256 of each regular file's data, so that two of them can be compared (``diff``)."""

    entries: dict[str, Entry]
    digests: dict[str, str]


def archive_entries(path: str, scratch: str, *, epoch: int | None = None,
                    leave_out: Callable[[str, tarfile.TarInfo], bool] = lambda rel, info: False) -> RootFs:
    """The members of the tar archive *path* as layer entries, their data unpacked into *scratch*.

    For archives whose owners could not be reproduced on disk: mmdebstrap run by an ordinary user (under
    fakeroot) writes root's files as root's in its archive, which the user could never ``chown`` to. Owners,
    modes and types come from the headers, so reading needs no privilege; the data goes into numbered
    files in *scratch*. Timestamps become *epoch*, as in every layer here. *leave_out(rel, info)* drops
    members (``bases`` drops documentation, as Docker's slim images do); a hard link kept to a file left
    out becomes that file (the first such link; the others link to it).
    """
    epoch = source_date_epoch() if epoch is None else epoch
    entries: dict[str, Entry] = {}
    digests: dict[str, str] = {}
    left_out: dict[str, tarfile.TarInfo] = {}  # regular files left out, by path: a kept link may need one
    numbers = itertools.count()  # scratch files' names (a name the archive repeats must not share one)
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                try:
                    rel = clean_path(member.name)
                    target = clean_path(member.linkname) if member.islnk() else ""
                except ValueError as exc:
                    raise LayerError(f"{path}: member {member.name!r} {exc}") from None
                if not rel:
                    continue
                if leave_out(rel, member):
                    if member.isreg():
                        left_out[rel] = member
                    continue
                if member.islnk() and target in left_out:
                    stored = left_out[target]
                    if stored.isreg():  # the first kept name of a file left out: the file itself, from now on
                        left_out[target] = _link_to(rel)
                    member, target = stored, stored.linkname  # (the file, or a link to that first name)
                info = new_info(rel, member.type, mode=member.mode, uid=member.uid, gid=member.gid, epoch=epoch)
                source = None
                if member.isreg():
                    info.type, info.size = tarfile.REGTYPE, member.size
                    source = os.path.join(scratch, str(next(numbers)))
                    digests[rel] = _unpack_data(tar, member, source)
                elif member.islnk():
                    if target not in entries:
                        raise LayerError(f"{path}: member {rel!r} is a hard link to {target!r}, which comes "
                                         "nowhere before it")
                    info.linkname = target
                elif member.issym():
                    info.linkname = member.linkname
                elif member.isdev():
                    info.devmajor, info.devminor = member.devmajor, member.devminor
                elif not (member.isdir() or member.isfifo()):
                    raise LayerError(f"{path}: member {rel!r} is of a type a layer cannot hold ({member.type!r})")
                entries[rel] = Entry(info, source)
    except tarfile.TarError as exc:
        raise LayerError(f"{path}: not a valid tar archive ({exc})") from None
    return RootFs(entries, digests)


def _link_to(rel: str) -> tarfile.TarInfo:
    """A hard link to *rel*: what later links to a left-out file become, once *rel* holds its data."""
    link = tarfile.TarInfo(rel)
    link.type, link.linkname = tarfile.LNKTYPE, rel
    return link


def _unpack_data(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: str) -> str:
    """Copy *member*'s data to the file *dest*; its sha256."""
    import hashlib

    data, sha = tar.extractfile(member), hashlib.sha256()
    with open(dest, "wb") as out:
        while chunk := data.read(_CHUNK):  # type: ignore[union-attr]
            out.write(chunk)
            sha.update(chunk)
    return sha.hexdigest()


def _same(a: Entry, b: Entry, a_digests: dict[str, str], b_digests: dict[str, str]) -> bool:
    x, y = a.info, b.info
    return ((x.type, x.mode, x.uid, x.gid, x.size, x.linkname, x.devmajor, x.devminor)
            == (y.type, y.mode, y.uid, y.gid, y.size, y.linkname, y.devmajor, y.devminor)
            and a_digests.get(x.name) == b_digests.get(y.name))


def diff(lower: RootFs, upper: RootFs, *, epoch: int | None = None) -> list[Entry]:
    """The layer that turns the root file system *lower* into *upper*: Docker's differ in a few lines.

    What was added or changed goes in, with its parent directories (as they are in *upper*); what went
    gets a whiteout, only the topmost one (a removed directory's whiteout hides all it held). A hard link
    goes in with every other name of its file, or extracting it would have nothing to link to.
    """
    epoch = source_date_epoch() if epoch is None else epoch
    changed = {path for path, e in upper.entries.items()
               if path not in lower.entries or not _same(lower.entries[path], e, lower.digests, upper.digests)}
    names: dict[str, set[str]] = {}  # a hard-linked file's path -> all the names of that file
    for path, e in upper.entries.items():
        if e.info.type == tarfile.LNKTYPE:
            group = names.setdefault(e.info.linkname, {e.info.linkname})
            group.add(path)
            names[path] = group
    for path in list(changed):
        changed.update(names.get(path, ()))
    gone = [path for path in lower.entries if path not in upper.entries
            and _is_directory_in(upper, path.rpartition("/")[0])]
    layer = {path: upper.entries[path] for path in changed}
    for path in [*changed, *gone]:
        for parent in _parents(path):
            if parent not in layer and parent in upper.entries:
                layer[parent] = upper.entries[parent]
    return [*layer.values(), *(Entry(whiteout_info(path, epoch)) for path in gone)]


def _is_directory_in(rootfs: RootFs, path: str) -> bool:
    return not path or (path in rootfs.entries and rootfs.entries[path].info.type == tarfile.DIRTYPE)


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
    layer made ``etc`` a link to ``/`` is an escape just like doing it inside one layer. A whiteout hides
    only what the lower layers have (layer.md), so it never makes this layer's own symlink harmless.
    *outcome* ends every error: what became of the layer. *whiteouts* False: ``.wh.`` names are plain files
    (a tar that is no layer: the files ``cp`` copies out of a container).
    """

    def __init__(self, where: str, *, allow_devices: bool, lower_symlinks: Iterable[str] = (),
                 outcome: str = "nothing was extracted", whiteouts: bool = True) -> None:
        self.where = where
        self.allow_devices = allow_devices
        self.outcome = outcome
        self.whiteouts = whiteouts
        self.symlinks = set(lower_symlinks)
        self.own_symlinks: set[str] = set()  # the symlinks this layer wrote
        self.dirs: set[str] = set()  # directories this layer has (entries, or parents of entries)
        # Every directory that has (or had) a symlink somewhere below it: only replacing one of these can
        # drop symlinks, so other entries skip the scan of all symlinks (thousands in a distribution).
        self.above_symlinks: set[str] = {p for s in self.symlinks for p in _parents(s)}

    def fail(self, name: str, problem: str) -> LayerError:
        return LayerError(f"{self.where}: entry {name!r} {problem}; {self.outcome}")

    def check(self, member: tarfile.TarInfo) -> str:
        """Return the member's clean path, or raise naming the entry and the problem."""
        try:
            path = clean_path(member.name)
        except ValueError as exc:
            raise self.fail(member.name, str(exc)) from None
        if any(len(os.fsencode(part)) > NAME_MAX for part in path.split("/")):
            raise self.fail(member.name, f"has a name longer than {NAME_MAX} bytes, which no file system can hold")
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
            self._check_hard_link(member)
        parent, _, name = path.rpartition("/")
        if self.whiteouts and name == OPAQUE_WHITEOUT:
            self._hide_lower(parent, keep_top=True)
        elif self.whiteouts and name.startswith(WHITEOUT_PREFIX):
            hidden = name[len(WHITEOUT_PREFIX):]
            if hidden in ("", ".", ".."):  # would hide the directory itself, or its parent
                raise self.fail(member.name, f"is a whiteout of {hidden!r}, which is not an entry of its "
                                             "directory")
            self._hide_lower(f"{parent}/{hidden}" if parent else hidden, keep_top=False)
        else:
            self._replace(path, is_dir=member.type == tarfile.DIRTYPE)
            if member.type == tarfile.SYMTYPE:
                self.symlinks.add(path)
                self.own_symlinks.add(path)
                self.above_symlinks.update(_parents(path))
            elif member.type == tarfile.DIRTYPE:
                self.dirs.add(path)
        self.dirs.update(_parents(path))
        return path

    def _check_hard_link(self, member: tarfile.TarInfo) -> None:
        try:
            target = clean_path(member.linkname)
        except ValueError as exc:
            raise self.fail(member.name, f"is a hard link whose target {member.linkname!r} {exc}") from None
        if not target or any(p in self.symlinks for p in [*_parents(target), target]):
            raise self.fail(member.name, f"is a hard link to {member.linkname!r}, outside the layer's root")
        if target in self.dirs:  # link(2) refuses directories (a loop in the tree); say so by name
            raise self.fail(member.name, f"is a hard link to the directory {member.linkname!r}; only files "
                                         "can be hard-linked")

    def _replace(self, path: str, *, is_dir: bool) -> None:
        """An entry replaces what *path* was; a directory over a directory merges with it."""
        self.symlinks.discard(path)
        self.own_symlinks.discard(path)
        if is_dir:
            return
        if path in self.above_symlinks:
            self.symlinks = {s for s in self.symlinks if not s.startswith(path + "/")}
            self.own_symlinks = {s for s in self.own_symlinks if not s.startswith(path + "/")}
        if path in self.dirs:
            self.dirs = {d for d in self.dirs if d != path and not d.startswith(path + "/")}

    def _hide_lower(self, path: str, *, keep_top: bool) -> None:
        """A whiteout (*path* and below) or an opaque marker (below *path*): lower symlinks go."""
        below = path + "/" if path else ""
        self.symlinks = {s for s in self.symlinks
                         if s in self.own_symlinks or not (s.startswith(below) or (s == path and not keep_top))}


def check_layer(fileobj: BinaryIO, where: str, *, allow_devices: bool | None = None,
                lower_symlinks: Iterable[str] = ()) -> set[str]:
    """Check a whole layer without extracting it; return the symlinks the image has after it."""
    checker = LayerChecker(where, allow_devices=is_root() if allow_devices is None else allow_devices,
                           lower_symlinks=lower_symlinks)
    for member in read_members(fileobj, where):
        checker.check(member)
    return checker.symlinks


# ------------------------------------------------------------------------------------------ extraction


def is_root() -> bool:
    """Root of the host: may make devices and write trusted.* xattrs. Root of a user namespace may not."""
    return os.geteuid() == 0 and _in_initial_user_namespace()


def _in_initial_user_namespace() -> bool:
    with open("/proc/self/uid_map") as f:
        return f.read().split() == ["0", "0", "4294967295"]  # every id, as itself


def chown_mapped(chown: Callable[[int, int], None], uid: int, gid: int) -> None:
    """chown, where an id the user namespace does not map (EINVAL) stays its root's, as podman's
    ``ignore_chown_errors`` does: a layer of a rootless store keeps every owner its maps can hold."""
    try:
        chown(uid, gid)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        for one in ((uid, -1), (-1, gid)):  # each id that maps still lands
            try:
                chown(*one)
            except OSError as again:
                if again.errno != errno.EINVAL:
                    raise


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


_DIR_NOFOLLOW = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
# What an extraction error adds: entries before the bad one may be on disk already.
EXTRACT_OUTCOME = "the layer was not extracted (the caller discards the partial directory)"


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def open_dir(root_fd: int, path: str) -> int | None:
    """Open the directory *path* one component at a time, never following a symlink.

    ``None`` when *path* is not (or no longer) a directory: missing, a file, or a symlink that
    ``O_NOFOLLOW`` refuses with ``ELOOP``. Nothing is created.
    """
    fd = os.dup(root_fd)
    try:
        for part in path.split("/"):
            nfd = os.open(part, _DIR_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise
    return fd


def _remove_at(parent_fd: int, name: str) -> int | None:
    """Remove *name* (a whole tree if it is a directory); return the mode it had, or None if absent."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent_fd)  # rmtree opens each directory with O_NOFOLLOW too
    else:
        os.unlink(name, dir_fd=parent_fd)
    return st.st_mode


def _set_opaque(dir_fd: int) -> None:
    # overlayfs shows none of the lower directories' entries under a directory marked so. It reads
    # trusted.* as root, user.* in a user namespace (userxattr); root writes both, so a layer directory
    # serves native and rootless containers alike.
    os.setxattr(dir_fd, "user.overlay.opaque", b"y")
    if is_root():
        os.setxattr(dir_fd, "trusted.overlay.opaque", b"y")


class _Extractor:
    def __init__(self, dest: str, where: str, whiteouts: str, lower_symlinks: Iterable[str],
                 outcome: str = EXTRACT_OUTCOME) -> None:
        if whiteouts not in ("apply", "overlay", "plain"):
            raise ValueError(f"whiteouts={whiteouts!r}: 'apply', 'overlay' or 'plain'")
        self.root_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
        self.root = is_root()
        self.chown = os.geteuid() == 0  # root of the host or of a user namespace (a rootless store's)
        self.whiteouts = whiteouts
        self.checker = LayerChecker(where, allow_devices=self.root, lower_symlinks=lower_symlinks,
                                    outcome=outcome, whiteouts=whiteouts != "plain")
        # The paths this layer wrote, and their parents: its whiteouts never remove them (layer.md:
        # whiteouts apply to lower layers only). A path is never taken out again: once this layer
        # replaced or removed it, nothing of the lower layers is left there to hide.
        self.ours: set[str] = set()
        self.whited_out: set[str] = set()  # "overlay": where this layer put a whiteout device
        # Directories get owner, mode and time at the end (a 0555 directory must not block its children);
        # an entry goes as soon as its directory is replaced or removed.
        self.dir_modes: dict[str, tarfile.TarInfo] = {}
        # The parent directory of the last entry, still open: a layer lists a directory's entries one after
        # the other, and walking down to it component by component for each would cost most of the time.
        # Reusing it is safe: an entry only ever changes its own name in that directory, never the directory.
        self._parent: tuple[str, int] | None = None

    def _parent_fd(self, path: str, name: str) -> int:
        parent = path.rpartition("/")[0]
        if self._parent is None or self._parent[0] != parent:
            self._forget_parent()
            self._parent = (parent, _walk_to_parent(self.root_fd, path, self.checker, name))
        return self._parent[1]

    def _forget_parent(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None

    def close(self) -> None:
        self._forget_parent()
        os.close(self.root_fd)

    def extract(self, tar: tarfile.TarFile) -> None:
        buf = memoryview(bytearray(_CHUNK))
        while (member := tar.next()) is not None:
            path = self.checker.check(member)
            if not path:
                continue  # the "./" entry: the root directory is the target itself
            self._one(tar, member, path, self._parent_fd(path, member.name), buf)
        self._forget_parent()
        for path in sorted(self.dir_modes, key=lambda p: p.count("/"), reverse=True):  # deepest first
            self._set_dir_metadata(path, self.dir_modes[path])

    def _one(self, tar: tarfile.TarFile, m: tarfile.TarInfo, path: str, pfd: int, buf: memoryview) -> None:
        parent, _, name = path.rpartition("/")
        if self.whiteouts != "plain" and name == OPAQUE_WHITEOUT:
            self._opaque(parent, pfd)
            return
        if self.whiteouts != "plain" and name.startswith(WHITEOUT_PREFIX):
            self._whiteout(_join(parent, name[len(WHITEOUT_PREFIX):]), pfd)
            return
        self.ours.update([*_parents(path), path])
        if m.isdir():
            self._directory(m, path, name, pfd)
            return
        self._remove(pfd, name, path)
        if m.isreg():
            self._file(tar, m, name, pfd, buf)
            return
        if m.islnk():
            self._hard_link(m, name, pfd)
            return  # a hard link shares its target's owner, mode and time
        if m.issym():
            os.symlink(m.linkname, name, dir_fd=pfd)
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(name, kind | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
        elif m.isfifo():
            os.mkfifo(name, 0o600, dir_fd=pfd)
        self._set_metadata_at(pfd, name, m)

    def _file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, name: str, pfd: int, buf: memoryview) -> None:
        """A regular file, whole or not at all: one cut short (a full disk, a read-only file system) goes,
        so that no truncated file is left looking like a copy."""
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=pfd)
        try:
            with os.fdopen(fd, "wb") as out, tar.extractfile(m) as src:  # type: ignore[union-attr]
                copy_exact(src, out, m.size, buf, m.name)  # type: ignore[arg-type]
                out.flush()  # before the mtime is set: a later write would change it
                self._set_metadata_fd(out.fileno(), m)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=pfd)
            raise

    def _remove(self, pfd: int, name: str, path: str) -> None:
        """Remove *path* and forget the deferred metadata of the directories that went with it."""
        mode = _remove_at(pfd, name)
        if mode is not None and stat.S_ISDIR(mode):
            self.dir_modes = {p: m for p, m in self.dir_modes.items() if p != path and not p.startswith(path + "/")}
        elif mode is not None:
            self.dir_modes.pop(path, None)

    def _directory(self, m: tarfile.TarInfo, path: str, name: str, pfd: int) -> None:
        try:
            is_dir = stat.S_ISDIR(os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode)
        except FileNotFoundError:
            is_dir = False
        if not is_dir:  # a directory over a directory merges with it (layer.md); anything else goes
            self._remove(pfd, name, path)
            os.mkdir(name, 0o700, dir_fd=pfd)
            if path in self.whited_out:
                # It replaces this layer's whiteout device: without the mark, overlayfs would merge it
                # with the lower directory that the whiteout hid.
                self._make_opaque(pfd, name)
        self.dir_modes[path] = m

    def _hard_link(self, m: tarfile.TarInfo, name: str, pfd: int) -> None:
        target = clean_path(m.linkname)
        src_fd = _walk_to_parent(self.root_fd, target, self.checker, m.name)
        try:
            os.link(target.rpartition("/")[2], name, src_dir_fd=src_fd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise self.checker.fail(m.name, f"is a hard link to {m.linkname!r}, which does not exist") from None
        except OSError as exc:  # EPERM: link(2) refuses a directory (one a lower layer made, say)
            raise self.checker.fail(m.name, f"is a hard link to {m.linkname!r}, which cannot be linked "
                                            f"({exc.strerror})") from None
        finally:
            os.close(src_fd)

    def _set_metadata_fd(self, fd: int, m: tarfile.TarInfo) -> None:
        """Owner, mode and mtime through an open file: nothing is looked up by name, nothing followed."""
        if self.chown:  # before fchmod: chown clears the set-user-ID bit
            chown_mapped(lambda uid, gid: os.fchown(fd, uid, gid), m.uid, m.gid)
        os.fchmod(fd, m.mode & 0o7777)
        os.utime(fd, ns=(m.mtime * 10**9, m.mtime * 10**9))

    def _set_metadata_at(self, pfd: int, name: str, m: tarfile.TarInfo) -> None:
        """The same for a symlink, device or fifo just made (opening a fifo or device would block or act)."""
        if self.chown:
            chown_mapped(lambda uid, gid: os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False), m.uid, m.gid)
        if not m.issym():  # Linux has no lchmod; a symlink's mode means nothing
            # fchmodat(AT_SYMLINK_NOFOLLOW): glibc changes the file itself through an O_PATH descriptor.
            os.chmod(name, m.mode & 0o7777, dir_fd=pfd, follow_symlinks=False)
        os.utime(name, ns=(m.mtime * 10**9, m.mtime * 10**9), dir_fd=pfd, follow_symlinks=False)

    def _set_dir_metadata(self, path: str, m: tarfile.TarInfo) -> None:
        fd = open_dir(self.root_fd, path)
        if fd is None:
            return  # no longer a directory (replaced by a symlink, say): its metadata went with it
        try:
            self._set_metadata_fd(fd, m)
        finally:
            os.close(fd)

    def _whiteout(self, path: str, pfd: int) -> None:
        name = path.rpartition("/")[2]
        if self.whiteouts == "apply":
            self._remove_lower(pfd, path, name)
        elif path in self.ours:
            # This layer's own entry stays. A file hides the lower one in overlayfs already; a directory
            # would merge with it, so it is marked opaque.
            self._make_opaque(pfd, name)
        else:
            self._remove(pfd, name, path)  # an earlier whiteout of the same name
            os.mknod(name, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=pfd)
            self.whited_out.add(path)

    def _opaque(self, directory: str, dir_fd: int) -> None:
        # The marker's parent *is* the opaque directory. It hides the names of the *lower* layers only,
        # wherever it comes in the layer: keep what this layer made.
        if self.whiteouts == "overlay":
            _set_opaque(dir_fd)
            return
        for child in sorted(os.listdir(dir_fd)):
            self._remove_lower(dir_fd, _join(directory, child), child)

    def _remove_lower(self, dir_fd: int, path: str, name: str) -> None:
        """Remove what the lower layers have at *path* (*name* in *dir_fd*), keeping what this layer wrote.

        A directory holding entries of this layer stays, and its lower children go, recursively.
        """
        if path not in self.ours:
            self._remove(dir_fd, name, path)
            return
        try:
            fd = os.open(name, _DIR_NOFOLLOW, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return  # this layer's own file or symlink
            raise
        try:
            for child in sorted(os.listdir(fd)):
                self._remove_lower(fd, f"{path}/{child}", child)
        finally:
            os.close(fd)

    def _make_opaque(self, pfd: int, name: str) -> None:
        try:
            fd = os.open(name, _DIR_NOFOLLOW, dir_fd=pfd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return  # not a directory: nothing of a lower layer shows through it
            raise
        try:
            _set_opaque(fd)
        finally:
            os.close(fd)


def extract(fileobj: BinaryIO, dest: str, where: str, *, whiteouts: str = "apply",
            lower_symlinks: Iterable[str] = (), outcome: str = EXTRACT_OUTCOME) -> None:
    """Extract one layer into *dest*, an existing directory.

    ``whiteouts="apply"`` applies the layer on top of what *dest* holds (deleting what whiteouts name):
    several layers applied in order give the image's root file system. ``"overlay"`` turns whiteouts
    into overlayfs's own marks, for a layer unpacked alone as one ``lowerdir`` (needs root). ``"plain"``: no
    layer, ``.wh.`` names are files like any other (``cp`` out of a container). *outcome* ends every error.
    Raises ``LayerError`` naming the entry at the first unsafe member; the caller extracts into a fresh
    directory and removes it on failure, so a bad layer leaves nothing behind.
    """
    ex = _Extractor(dest, where, whiteouts, lower_symlinks, outcome)
    try:
        with tarfile.open(fileobj=fileobj, mode="r:") as tar:
            ex.extract(tar)
    except tarfile.TarError as exc:
        raise LayerError(f"{where}: not a valid tar archive ({exc})") from None
    finally:
        ex.close()
