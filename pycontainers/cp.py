"""``cp``, ``export`` and ``import``: files between a container and the host, a container's whole file system
as one tar, and a tar as a one-layer image.

The container's side is always worked on in a helper process (``userns.run_inside``: exec'ed, never forked
from a possibly multithreaded caller), through one of three *views* of its root (``_reach``)::

    running (native, runc, rootless)  /proc/PID/root: the root of the container's own mount namespace, its
                                      overlay with its volumes bound, as its processes see it
    stopped (native, runc, rootless)  its overlayfs mounted again (the same layers, upper and work directories)
                                      with its volumes bound, in the helper's private mount namespace: the host
                                      never sees the mount, and it goes with the helper however that ends. The
                                      kernel keeps overlayfs's rules (whiteouts, opaque directories, copy-up);
                                      the container's start.lock is held meanwhile by the helper itself (it
                                      inherits the locked file), so it cannot start, nor be removed, on the
                                      same upper directory; and the helper dies with its caller (``run_inside``).
    proot                             its private copy of the image, a plain directory

A rootless container's helper is root of its user namespace (a running one's joined, a stopped one's made again
with its maps): what is copied in belongs to its root (the student, outside), and its other users' files can
be read. As Docker says, /proc, /sys, /dev and what the container mounted itself cannot be copied: only the
volumes (and /etc/hosts, hostname, resolv.conf) are followed below the root file system (``Mounts``); ``export``
follows none, a mount point there is an empty directory or an empty file.

Every container path is looked up by the kernel inside that root (openat2's ``RESOLVE_IN_ROOT``, as runc's
securejoin: an absolute symlink starts again at the container's /, ``..`` stops there; without openat2, the same
walk in user space, one descriptor per name, ``walk_in_root``), and everything below it is opened one name at a
time without following symlinks: a link the container made, even one it swaps while we copy, leads nowhere on
the host. A tar coming in is untrusted: it is checked whole by the layer module's
checks (``layer.LayerChecker``) before anything is written, and extracted by its extractor.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import posixpath
import stat
import tarfile
import tempfile
from dataclasses import asdict, dataclass

from . import layer as layers
from .errors import APIError, InvalidArgument, LayerError, NotFound, PyContainersError

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, BinaryIO

    from .container import Container
    from .image import Image
    from .store import Store

_CHUNK = 1 << 20
# The Dockerfile instructions ``import -c`` (and ``commit -c``) accept: Docker's validCommitCommands.
CHANGE_INSTRUCTIONS = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL",
                       "USER", "VOLUME", "WORKDIR")
NOTHING_COPIED = "nothing was copied"


class CopyError(APIError):
    """A copy could not be made as asked (the destination's kind, a file that changed meanwhile...)."""

    exit_code = 1


# ------------------------------------------------------------------------------------- Docker's path rules


def split_cp_arg(arg: str) -> tuple[str, str]:
    """Docker's ``splitCpArg``: (container, path), container "" for a local path. A local path with a ``:``
    must say it is one: absolute, or starting with ``.`` (``./file:name.txt``)."""
    if arg.startswith("/"):
        return "", arg
    container, colon, path = arg.partition(":")
    if not colon or container.startswith("."):
        return "", arg
    return container, path


def _go_base(path: str) -> str:
    """Go's ``filepath.Base``: the last element, trailing slashes ignored; "." for "", "/" for the root."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    return posixpath.basename(stripped)


def specifies_current_dir(path: str) -> bool:
    """The path's last element is ``.`` (``dir/.``: the directory's contents, not the directory)."""
    return _go_base(path) == "."


def asserts_directory(path: str) -> bool:
    """A trailing ``/`` or ``/.`` says the path must be a directory."""
    return path.endswith("/") or specifies_current_dir(path)


def split_path_dir_entry(path: str) -> tuple[str, str]:
    """Docker's ``SplitPathDirEntry``: (directory, entry) of the cleaned path, a trailing ``.`` kept; the root
    is its own entry ".", as ``/.`` (its contents)."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned.startswith("//"):  # (POSIX keeps a leading double slash; Go does not)
        cleaned = "/" + cleaned.lstrip("/")
    if specifies_current_dir(path) or cleaned == "/":
        cleaned = "/." if cleaned == "/" else cleaned + "/."
    directory, base = posixpath.split(cleaned)
    return directory or ".", base


@dataclass(frozen=True)
class CopyInfo:
    """Docker's ``archive.CopyInfo``: one side of a copy. *rebase_name*: the name the source's entries take
    (a followed symlink is copied under the link's name)."""

    path: str
    exists: bool = False
    is_dir: bool = False
    rebase_name: str = ""


def prepare_archive_copy(src: CopyInfo, dst: CopyInfo) -> tuple[str, tuple[str, str] | None]:
    """Docker's ``PrepareArchiveCopy``: the directory the source's tar is extracted into, and how its entries
    are renamed there (old first name, new one), from what the source is and what the destination is."""
    dst_dir, dst_base = split_path_dir_entry(dst.path)
    src_base = src.rebase_name or split_path_dir_entry(src.path)[1]
    if dst.exists and dst.is_dir:
        return dst.path, None  # into it, under the source's own name
    if dst.exists and src.is_dir:
        raise CopyError(f"cannot copy directory: {dst.path} exists and is not a directory "
                        "(a directory cannot be copied to a file)")
    if not dst.exists and not src.is_dir and asserts_directory(dst.path):
        raise CopyError(f"no such directory: {dst.path} (the destination directory must exist)")
    return dst_dir, (src_base, dst_base)


def rebased(name: str, rebase: tuple[str, str] | None) -> str:
    """An entry's name with the tar's first name *old* replaced by *new* (``RebaseArchiveEntries``)."""
    if rebase is None:
        return name
    old, new = rebase
    if name.rstrip("/") == old:
        return new
    if name.startswith(old + "/"):
        return new + name[len(old):]
    return name


def copy_summary(content_size: int, transferred: int, dest: str) -> str:
    """Docker's last line of a copy, sizes as ``HumanSizeWithPrecision(n, 3)``."""
    from .units import human_size

    if content_size != transferred:
        return f"Successfully copied {human_size(content_size)} (transferred {human_size(transferred)}) to {dest}"
    return f"Successfully copied {human_size(content_size)} to {dest}"


# --------------------------------------------------------------------------------------- the host's side


def local_path(path: str) -> str:
    """An absolute local path, its trailing ``/`` or ``/.`` kept (Docker's ``resolveLocalPath``)."""
    absolute = os.path.abspath(path)
    if specifies_current_dir(path) and not specifies_current_dir(absolute):
        absolute = absolute.rstrip("/") + "/."
    elif path.endswith("/") and not absolute.endswith("/"):
        absolute += "/"
    return absolute


def local_source(path: str, follow_link: bool) -> CopyInfo:
    """Docker's ``CopyInfoSourcePath``: symlinks before the last name are followed (the host's own), the last
    one only with ``-L``, and then the copy keeps the link's name."""
    rebase = ""
    if follow_link:
        resolved = os.path.realpath(path)
        if specifies_current_dir(path) and not specifies_current_dir(resolved):
            resolved += "/."
        if _go_base(path) != _go_base(resolved):
            rebase = _go_base(path)
    else:
        directory, _, base = path.rpartition("/")
        resolved = os.path.realpath(directory or "/").rstrip("/") + "/" + base
        if path.endswith("/") and _go_base(path) != _go_base(resolved):
            rebase = _go_base(path)
    try:
        st = os.lstat(resolved)
    except OSError as exc:
        raise CopyError(f"lstat {resolved.rstrip('/') or '/'}: {exc.strerror.lower()}") from None
    if resolved.endswith("/") and not stat.S_ISDIR(st.st_mode):
        raise CopyError(f"lstat {resolved}: not a directory")
    return CopyInfo(resolved, True, stat.S_ISDIR(st.st_mode), rebase)


def local_destination(path: str) -> CopyInfo:
    """Docker's ``CopyInfoDestinationPath``: a symlink is followed (up to 10 times) to what it names, which
    need not exist as long as its parent directory does."""
    original = path
    for _ in range(11):
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            break
        except OSError as exc:
            raise CopyError(f"lstat {path}: {exc.strerror.lower()}") from None
        if not stat.S_ISLNK(st.st_mode):
            return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))
        target = os.readlink(path)
        path = target if target.startswith("/") else posixpath.join(split_path_dir_entry(path)[0], target)
    else:
        raise CopyError(f"too many symlinks in {original}")
    parent = split_path_dir_entry(path)[0]
    try:
        if not stat.S_ISDIR(os.stat(parent).st_mode):
            raise CopyError(f"{parent}: not a directory")
    except OSError as exc:
        raise CopyError(f"stat {parent}: {exc.strerror.lower()}") from None
    return CopyInfo(path)


def local_content_size(path: str) -> int:
    """The bytes of the regular files *path* is or holds (what Docker's summary counts)."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size if stat.S_ISREG(st.st_mode) else 0
    total = 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(directory, name))
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
    return total


# ----------------------------------------------------------------------------------------- writing a tar


class TarOut:
    """A tar written entry by entry to *out*, its bytes counted. Owners and modes as found, real mtimes
    (``cp`` keeps them, as Docker's does); hard links within the tar stay links (``layer.stat_entry``)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.size = 0
        self.first_link: dict[tuple[int, int], str] = {}
        self.buf = memoryview(bytearray(_CHUNK))

    def _write(self, data: bytes | memoryview) -> None:
        self.out.write(data)
        self.size += len(data)

    def add(self, dir_fd: int, name: str, arcname: str, st: os.stat_result) -> tarfile.TarInfo:
        """The entry *name* in *dir_fd* (or, *name* "", the file *dir_fd* is), already ``lstat``-ed as *st*."""
        full = f"/proc/self/fd/{dir_fd}/{name}" if name else f"/proc/self/fd/{dir_fd}"  # (for readlink only)
        info = layers.stat_entry(arcname, full, st, None, int(st.st_mtime), self.first_link).info
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        if info.type == tarfile.REGTYPE and info.size:
            self._data(dir_fd, name, st, info)
        return info

    def _data(self, dir_fd: int, name: str, st: os.stat_result, info: tarfile.TarInfo) -> None:
        # O_NOFOLLOW: a name swapped for a symlink since the lstat is not followed; O_NONBLOCK: nor does a
        # fifo swapped in block us. The descriptor must then still be the file we looked at.
        flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags | os.O_NOFOLLOW, dir_fd=dir_fd) if name else os.open(f"/proc/self/fd/{dir_fd}",
                                                                                       flags)
        with open(fd, "rb", buffering=0) as src:
            now = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
                raise CopyError(f"{info.name}: replaced while it was being copied; {NOTHING_COPIED}")
            layers.copy_exact(src, self, info.size, self.buf, info.name)  # type: ignore[arg-type]
        self._write(b"\0" * (-info.size % tarfile.BLOCKSIZE))

    def add_placeholder(self, arcname: str, st: os.stat_result) -> None:
        """An empty file for a file something is mounted on (a file volume, /etc/hosts): what the container's
        own file system has there, as far as anyone can tell without unmounting it."""
        info = tarfile.TarInfo(arcname)
        info.mode, info.uid, info.gid, info.mtime = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def write(self, data: bytes | memoryview) -> int:  # (for copy_exact)
        self._write(data)
        return len(data)

    def close(self) -> None:
        self._write(b"\0" * (2 * tarfile.BLOCKSIZE))


def _lstat(dir_fd: int, name: str) -> os.stat_result:
    return os.stat(name, dir_fd=dir_fd, follow_symlinks=False) if name else os.fstat(dir_fd)


def archive_tree(tar: TarOut, dir_fd: int, name: str, arcname: str, mounts: Mounts | None = None,
                 where: str = "/", parent_dev: int | None = None) -> None:
    """Add *name* in *dir_fd* (or the directory *dir_fd* itself, *name* "") to *tar* as *arcname*, and what it
    holds, in sorted order (a directory before its entries), opening each directory by its name in its parent
    without following symlinks. *arcname* "": the directory's entries only, without an entry for itself.
    *mounts* (None: no limit, the host's side) says where to stop: a mount point there is an empty directory,
    or an empty file (a file bound over one), as in the container's own file system. *where*: the path of
    *name* in the container; *parent_dev*: the device of the directory holding it."""
    st = _lstat(dir_fd, name)
    if stat.S_ISSOCK(st.st_mode):
        return  # a socket means nothing without its listener: Docker leaves them out too
    stop = mounts is not None and mounts.stops_at(where, st, st.st_dev if parent_dev is None else parent_dev)
    if arcname and stop and not stat.S_ISDIR(st.st_mode):
        tar.add_placeholder(arcname, st)
        return
    if arcname:
        tar.add(dir_fd, name, arcname, st)
    if not stat.S_ISDIR(st.st_mode) or stop:
        return
    fd = os.open(name or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise CopyError(f"{where}: replaced while it was being copied; {NOTHING_COPIED}")
        for child in sorted(os.listdir(fd)):
            archive_tree(tar, fd, child, f"{arcname}/{child}" if arcname else child, mounts,
                         posixpath.join(where, child), st.st_dev)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------- reading a tar in


@dataclass
class CheckedTar:
    """What ``checked_copy`` found: each entry's clean path and whether it is a directory; the hard links whose
    target is not an earlier entry (their name and target), which must then exist where the tar goes."""

    entries: list[tuple[str, bool]]
    links_out: list[tuple[str, str]]


def checked_copy(src: BinaryIO, out: BinaryIO, *, where: str, rebase: tuple[str, str] | None = None,
                 owner: tuple[int, int] | None = None, allow_devices: bool = False,
                 whiteouts_allowed: bool = False) -> CheckedTar:
    """Copy the untrusted tar *src* to *out*, renamed (*rebase*) and owned by *owner* (None: as it says),
    checking every entry as a layer's (``layer.LayerChecker``: no absolute paths or ``..``, nothing written
    through a symlink, no hard link leaving the tree, sane sizes, devices only if *allow_devices*). Raises
    ``LayerError`` naming the first bad one. An empty *src* is no entries (Docker takes an empty body), and
    *out* stays empty. ``.wh.`` names are refused unless *whiteouts_allowed* (files copied out to the host):
    in a container they would become whiteouts in a ``commit``ted layer."""
    checker = layers.LayerChecker(where, allow_devices=allow_devices, outcome=NOTHING_COPIED,
                                  whiteouts=not whiteouts_allowed)
    found = CheckedTar([], [])
    head = src.read(tarfile.BLOCKSIZE)
    if not head:
        return found
    from .archive import PrefixedStream

    files: set[str] = set()  # the non-directories so far: what a hard link may point to within the tar
    try:
        with tarfile.open(fileobj=io.BufferedReader(PrefixedStream(head, src)), mode="r|*") as tar, \
                tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as copy:
            for member in tar:
                member.name = rebased(member.name, rebase)
                if member.islnk():
                    member.linkname = rebased(member.linkname, rebase)
                if not whiteouts_allowed and _go_base(member.name).startswith(layers.WHITEOUT_PREFIX):
                    raise checker.fail(member.name, "is named like a layer's whiteout (.wh.), which a copy "
                                                    "cannot write")
                path = checker.check(member)
                if member.islnk() and layers.clean_path(member.linkname) not in files:
                    found.links_out.append((member.name, layers.clean_path(member.linkname)))
                member.pax_headers = {}  # (else a "path" or "uid" there would override what was just set)
                member.uname = member.gname = ""
                if owner is not None:
                    member.uid, member.gid = owner
                copy.addfile(member, tar.extractfile(member) if member.isreg() else None)
                if path:
                    found.entries.append((path, member.isdir()))
                    (files.discard if member.isdir() else files.add)(path)
    except (tarfile.TarError, EOFError) as exc:
        raise LayerError(f"{where}: not a valid tar archive ({exc}); {NOTHING_COPIED}") from None
    return found


def _existing_non_directory(dir_fd: int, path: str) -> bool:
    """*path* below *dir_fd* is there and is not a directory (opened without following symlinks)."""
    parent, _, name = path.rpartition("/")
    pfd = layers.open_dir(dir_fd, parent) if parent else os.dup(dir_fd)
    if pfd is None:
        return False
    try:
        return not stat.S_ISDIR(os.stat(name, dir_fd=pfd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False
    finally:
        os.close(pfd)


def refuse_conflicts(dir_fd: int, checked: CheckedTar, shown: str, where: str) -> None:
    """Docker's ``NoOverwriteDirNonDir``: an entry may not replace a directory by a non-directory or the other
    way round (a symlink counts as a non-directory). And a hard link to a file not in the tar must find it in
    the destination. Checked before anything is written."""
    for path, is_dir in checked.entries:
        parent, _, name = path.rpartition("/")
        pfd = layers.open_dir(dir_fd, parent) if parent else os.dup(dir_fd)
        if pfd is None:
            continue  # not there yet (made by the copy), or under a symlink (which the extractor refuses)
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        finally:
            os.close(pfd)
        existing = posixpath.join(shown, path)
        if is_dir and not stat.S_ISDIR(st.st_mode):
            raise CopyError(f'cannot overwrite non-directory "{existing}" with directory "{path}"; {NOTHING_COPIED}')
        if not is_dir and stat.S_ISDIR(st.st_mode):
            raise CopyError(f'cannot overwrite directory "{existing}" with non-directory "{path}"; {NOTHING_COPIED}')
    for name, target in checked.links_out:
        if not _existing_non_directory(dir_fd, target):
            raise LayerError(f"{where}: entry {name!r} is a hard link to {target!r}, which is neither an earlier "
                             f"entry of the tar nor a file in {shown}; {NOTHING_COPIED}")


# What an error while extracting (a file system full) adds: the checks passed, the writing had begun.
COPY_CUT_SHORT = "the copy stopped there (the entries before it were written)"


def extract_checked(src: BinaryIO, dir_fd: int, *, where: str, shown: str, rebase: tuple[str, str] | None,
                    owner: tuple[int, int] | None, allow_devices: bool, whiteouts_allowed: bool = False) -> None:
    """Check the whole tar *src* (``checked_copy`` into an unnamed temporary file), then extract it into the
    directory *dir_fd* with the layer module's extractor, which opens every directory relative to its parent
    without following symlinks."""
    with tempfile.TemporaryFile() as spool:
        checked = checked_copy(src, spool, where=where, rebase=rebase, owner=owner,  # type: ignore[arg-type]
                               allow_devices=allow_devices, whiteouts_allowed=whiteouts_allowed)
        if not spool.tell():
            return  # an empty tar: nothing to do
        refuse_conflicts(dir_fd, checked, shown, where)
        spool.seek(0)
        layers.extract(spool, f"/proc/self/fd/{dir_fd}", where,  # type: ignore[arg-type]
                       whiteouts="plain" if whiteouts_allowed else "apply", outcome=COPY_CUT_SHORT)


# -------------------------------------------------------------------------------------- the container's root


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH | os.O_DIRECTORY) -> int:
    """Open *path* as the container sees it: the kernel resolves it inside *root_fd* (openat2
    ``RESOLVE_IN_ROOT``), so no symlink in it leads out. Without openat2 (ENOSYS before Linux 5.6, EPERM from a
    seccomp profile refusing it), the same walk is made in user space, as safely (``walk_in_root``)."""
    from .linux import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, KernelError, openat2

    rel = path.strip("/") or "."
    for _ in range(16):
        try:
            return openat2(root_fd, rel, flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
        except KernelError as exc:
            if exc.errno == errno.EAGAIN:  # a rename elsewhere raced with a "..": the kernel asks to retry
                continue
            if exc.errno not in (errno.ENOSYS, errno.EPERM):
                raise OSError(exc.errno, os.strerror(exc.errno), path) from None
            return _open_walked(root_fd, path, flags)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


_MAX_SYMLINKS = 40  # symlinks followed in one lookup: the kernel's own limit (more is ELOOP, a loop)


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def walk_in_root(root_fd: int, path: str, *, follow_last: bool = True, missing_ok: bool = False,
                 ) -> tuple[int | None, list[str]]:
    """``RESOLVE_IN_ROOT`` in user space, as runc's securejoin: (an ``O_PATH`` descriptor of *path* inside
    *root_fd*, the names of the path it resolved to). Each name is opened relative to the directory before it,
    ``O_NOFOLLOW``: a symlink is read through the descriptor of the very link opened, and its target walked from
    the root (absolute) or from where it is, so a component a running container swaps for a symlink meanwhile
    is seen as one and never followed by the kernel. ``..`` goes back to the directory walked before, never
    above the root. *missing_ok*: a missing name ends the walk, the rest taken as written (None, names)."""
    todo = _parts(path)
    trail: list[tuple[int, str]] = [(os.dup(root_fd), "")]  # the directories walked, from the root
    hops = 0
    try:
        while todo:
            part = todo.pop(0)
            if part == "..":
                if len(trail) > 1:
                    os.close(trail.pop()[0])
                continue
            try:
                fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=trail[-1][0])
            except FileNotFoundError:
                if not missing_ok:
                    raise
                return None, _lexically([name for _, name in trail[1:]], [part, *todo])
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode) and (todo or follow_last):
                target = os.readlink("", dir_fd=fd)  # (readlinkat on an O_PATH descriptor of the link)
                os.close(fd)
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                if target.startswith("/"):
                    while len(trail) > 1:
                        os.close(trail.pop()[0])
                todo = _parts(target) + todo
                continue
            trail.append((fd, part))
            if todo and not stat.S_ISDIR(st.st_mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        found, last = trail.pop() if len(trail) > 1 else (os.dup(root_fd), "")
        return found, [name for _, name in trail[1:]] + ([last] if last else [])
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from None
    finally:
        for fd, _ in trail:
            os.close(fd)


def _lexically(names: list[str], rest: list[str]) -> list[str]:
    """*names* followed by *rest* as written, ``..`` dropping the name before it (never above the root)."""
    names = list(names)
    for part in rest:
        if part == "..":
            if names:
                names.pop()
        else:
            names.append(part)
    return names


def _open_walked(root_fd: int, path: str, flags: int) -> int:
    """``open_in_root`` without openat2: walked (``walk_in_root``), then checked as the flags ask, and opened
    again through its descriptor (/proc/self/fd: the file itself, no lookup by name) unless ``O_PATH`` will do."""
    fd, _ = walk_in_root(root_fd, path, follow_last=not flags & os.O_NOFOLLOW)
    assert fd is not None
    try:
        st = os.fstat(fd)
        must_be_dir = flags & os.O_DIRECTORY or path.endswith("/")
        if must_be_dir and not stat.S_ISDIR(st.st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
        if flags & os.O_PATH:
            fd, found = -1, fd
            return found
        if stat.S_ISLNK(st.st_mode):
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
        return os.open(f"/proc/self/fd/{fd}", (flags & ~os.O_NOFOLLOW) | os.O_CLOEXEC)
    finally:
        if fd >= 0:
            os.close(fd)


def resolved_path(root_fd: int, path: str) -> str:
    """*path* with every symlink in it resolved inside the root (the last name too, whether or not it exists):
    Docker's ``linkTarget`` of a symlink, where it leads as the container's processes would see it."""
    fd, names = walk_in_root(root_fd, path, missing_ok=True)
    if fd is not None:
        os.close(fd)
    return "/" + "/".join(names)


def container_path(path: str) -> str:
    """*path* as an absolute, clean container path (Docker takes ``tmp/x`` for ``/tmp/x``)."""
    return posixpath.normpath("/" + path.lstrip("/"))


def _not_found(path: str, container: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {container}")


def _resource(root_fd: int, path: str, container: str, follow: bool) -> tuple[int, str]:
    """*path* in the container as (descriptor of its directory, its name): the directories on the way are
    resolved inside the root, the last name is not followed (unless *follow*: ``-L``, or a trailing ``/``,
    which asks for a directory: the kernel's rule, and Docker's). A path ending in ``/`` or ``/.``, the root,
    or a followed link is the descriptor itself, name ""."""
    cleaned = container_path(path)
    try:
        if follow or path.endswith("/") or specifies_current_dir(path) or cleaned == "/":
            return open_in_root(root_fd, cleaned, os.O_PATH), ""
        parent, name = posixpath.split(cleaned)
        fd = open_in_root(root_fd, parent)
        try:
            os.stat(name, dir_fd=fd, follow_symlinks=False)
        except BaseException:
            os.close(fd)
            raise
        return fd, name
    except (FileNotFoundError, NotADirectoryError):
        raise _not_found(path, container) from None


def go_file_mode(mode: int) -> int:
    """A stat mode as Go's ``os.FileMode``, which Docker's PathStat carries: permissions and type bits."""
    bits = mode & 0o777
    kinds = {stat.S_IFDIR: 1 << 31, stat.S_IFLNK: 1 << 27, stat.S_IFBLK: 1 << 26, stat.S_IFCHR: (1 << 26) | (1 << 21),
             stat.S_IFIFO: 1 << 25, stat.S_IFSOCK: 1 << 24}
    bits |= kinds.get(stat.S_IFMT(mode), 0)
    for flag, bit in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22), (stat.S_ISVTX, 1 << 20)):
        if mode & flag:
            bits |= bit
    return bits


def is_dir_mode(go_mode: int) -> bool:
    return bool(go_mode & (1 << 31))


def path_stat(dir_fd: int, name: str, shown_name: str, link_target: str = "") -> dict[str, Any]:
    """Docker's ``PathStat`` (the ``X-Docker-Container-Path-Stat`` header): name, size, mode, mtime (Go's
    RFC 3339 with nanoseconds, trailing zeros trimmed), linkTarget (for a symlink: where it leads, resolved in
    the container, ``resolved_path``)."""
    st = _lstat(dir_fd, name)
    return {"name": shown_name, "size": st.st_size, "mode": go_file_mode(st.st_mode),
            "mtime": go_rfc3339_nano(st.st_mtime_ns), "linkTarget": link_target if stat.S_ISLNK(st.st_mode) else ""}


def go_rfc3339_nano(ns: int) -> str:
    """A time (ns since the epoch) as Go's ``time.RFC3339Nano`` in UTC: the fraction without its trailing
    zeros, and no fraction at all for a whole second."""
    from datetime import UTC, datetime

    seconds = datetime.fromtimestamp(ns // 10**9, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ns % 10**9:09d}".rstrip("0")
    return f"{seconds}.{fraction}Z" if fraction else f"{seconds}Z"


@dataclass(frozen=True)
class Mounts:
    """Where a walk of the container's tree stops: at a mount point (*mounted*, container paths, from its
    mountinfo; or a directory on another device than its parent), unless it is one of *followed* (the volumes
    ``cp`` copies, as Docker's does). /proc, /sys, /dev, what the container mounted itself, and everything for
    ``export``: an empty directory, or an empty file."""

    mounted: frozenset[str] = frozenset()
    followed: frozenset[str] = frozenset()

    def stops_at(self, where: str, st: os.stat_result, parent_dev: int) -> bool:
        if where == "/" or where in self.followed:  # (the root is a mount point too: the one walked)
            return False
        if stat.S_ISDIR(st.st_mode) and st.st_dev != parent_dev:
            return True  # (whatever mountinfo said: a directory never leads onto another file system unasked)
        return where in self.mounted


# --------------------------------------------------------------------------------------- in the helper


def serve(request_json: str) -> None:
    """(In ``userns.run_inside``'s process.) Open the container's root as the request's view says, then do
    its ``op``: ``get`` (its stat as a line of JSON, then the tar, on stdout), ``put`` (the tar on stdin) or
    ``export`` (the tar of the whole root on stdout)."""
    request = json.loads(request_json)
    try:
        root_fd, mounted = open_view(request["view"], request["container"])
        root_fd, request = _through_bind(request, root_fd)
        if request.get("shown"):  # (proot: a volume's own directory, where nothing is mounted)
            mounted = frozenset()
        if request["op"] == "put":
            with open(0, "rb", closefd=False) as stdin:
                put_into(root_fd, request, stdin)
            return
        with open(1, "wb", buffering=_CHUNK, closefd=False) as stdout:
            if request["op"] == "get":
                followed = frozenset(posixpath.normpath(m) for m in request["view"].get("mounts", []))
                get_from(root_fd, request, stdout, Mounts(mounted, followed))
            else:
                export_root(root_fd, stdout, Mounts(mounted))
    except OSError as exc:  # (a PyContainersError is reported as it is by run_inside)
        entry = f" (at {os.fsdecode(exc.filename)!r})" if exc.filename else ""
        raise CopyError(f"{request['container']}:{request.get('path', '/')}: {exc.strerror}{entry}") from None


def open_view(view: dict[str, Any], container: str) -> tuple[int, frozenset[str]]:
    """The container's root as a descriptor (O_PATH), reached as *view* says (``_reach``), and where things
    are mounted in it (container paths)."""
    flags = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
    if view["kind"] == "dir":  # proot's copy of the image
        return os.open(view["root"], flags), frozenset()
    if view["kind"] == "process":
        return _process_root(view, container)
    from .linux import CLONE_NEWNS, unshare
    from .pid1 import bind_file, make_mounts_private, mount_overlay, remount_read_only

    unshare(CLONE_NEWNS)
    make_mounts_private()  # nothing mounted from here on reaches the host; all of it goes when we end
    root = view["root"]
    os.makedirs(root, exist_ok=True)
    mount_overlay(view["lowers"], view["upper"], view["work"], root, userxattr=view["userxattr"])
    for source, destination, read_only in view["binds"]:
        bind_file(source, root, destination, read_only)
    if view["read_only"]:
        remount_read_only(root)
    with open("/proc/self/mountinfo", "rb") as f:
        mounted = mount_points(f.read(), root)
    return os.open(root, flags), mounted


def mount_points(mountinfo: bytes, root: str = "/") -> frozenset[str]:
    """The mount points in *mountinfo* (proc(5)'s format: the 5th field, octal escapes for spaces) at or below
    *root*, as paths from it."""
    import re

    prefix = os.fsencode(root.rstrip("/"))
    found = set()
    for line in mountinfo.splitlines():
        fields = line.split(b" ")
        if len(fields) < 5:
            continue
        point = re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), fields[4])
        if point == prefix or point.startswith(prefix + b"/") or not prefix:
            found.add(os.fsdecode(point[len(prefix):]) or "/")
    return frozenset(found)


def _through_bind(request: dict[str, Any], root_fd: int) -> tuple[int, dict[str, Any]]:
    """Under proot, a volume (or /etc/hosts...) is not in the container's copy of the image: proot binds it there
    for the container's processes only. A path at or below one leads to its source, as proot's view would."""
    binds = request["view"].get("binds") or []
    if request["view"]["kind"] != "dir" or request["op"] == "export" or not binds:
        return root_fd, request
    path = request["path"]
    cleaned = container_path(path)
    for source, destination, _read_only in sorted(binds, key=lambda b: len(b[1]), reverse=True):
        destination = posixpath.normpath(destination)
        if cleaned != destination and not cleaned.startswith(destination + "/"):
            continue
        rest = cleaned[len(destination):] or "/"
        if os.path.isdir(source):
            inside = rest + ("/." if specifies_current_dir(path) else "/" if path.endswith("/") else "")
        elif rest == "/":  # a file bound over one (/etc/hosts): its directory, and its own name there
            source, inside = os.path.dirname(source), "/" + os.path.basename(source)
        else:
            continue
        os.close(root_fd)
        fd = os.open(source, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        return fd, {**request, "path": inside, "shown": shown_name(path)}
    return root_fd, request


def _process_root(view: dict[str, Any], container: str) -> tuple[int, frozenset[str]]:
    """/proc/PID/root of the container's PID 1, opened through its /proc directory: if the process has ended
    (and its PID been reused by another), the lookup in the old directory fails instead of reaching the
    other's root. It must be the recorded process (its start time) and be in a mount namespace of its own.
    With it, its mount points (its mountinfo's paths are seen from its root: the container's paths)."""
    from .container import ContainerError

    gone = ContainerError(f"container {container} is not running (it stopped while being copied from or to)", 1)
    try:
        proc = os.open(f"/proc/{view['pid']}", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise gone from None
    try:
        if view.get("start") is not None and process_start_time(proc) != view["start"]:
            raise gone
        if os.readlink("ns/mnt", dir_fd=proc) == os.readlink("/proc/self/ns/mnt"):
            raise gone  # (the host's namespace: not a container's process)
        root = os.open("root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=proc)
        with open(os.open("mountinfo", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc), "rb") as f:
            return root, mount_points(f.read())
    except (FileNotFoundError, ProcessLookupError):
        raise gone from None
    finally:
        os.close(proc)


def process_start_time(proc_fd: int) -> int:
    """The start time (clock ticks since boot) of the process whose /proc directory *proc_fd* is: with its PID,
    what tells it from a later process given the same PID."""
    with open(os.open("stat", os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd), "rb") as f:
        fields = f.read().rpartition(b")")[2].split()  # (after the name, which may hold spaces and parentheses)
    return int(fields[19])


def shown_name(path: str) -> str:
    """The name a copy of container *path* takes (Docker's, from the cleaned path): its last name, "." for
    ``dir/.`` (its contents), "/" for the root."""
    if specifies_current_dir(path):
        return "/" if container_path(path) == "/" else "."
    cleaned = container_path(path)
    return "/" if cleaned == "/" else posixpath.basename(cleaned)


def _parent_dev(root_fd: int, fd: int, name: str, where: str) -> int:
    """The device of the directory holding the resource (*name* in *fd*, or *fd* itself for name ""; *where*:
    its path, links resolved): whether the resource is a mount point. The root is none (its ".." is not in the
    container). A file reached through a followed link (``cp -L``) has no "..": its directory is opened."""
    if name:
        return os.fstat(fd).st_dev
    st, root = os.fstat(fd), os.fstat(root_fd)
    if (st.st_dev, st.st_ino) == (root.st_dev, root.st_ino):
        return st.st_dev
    if not stat.S_ISDIR(st.st_mode):
        parent = open_in_root(root_fd, posixpath.dirname(where))
        try:
            return os.fstat(parent).st_dev
        finally:
            os.close(parent)
    return os.stat("..", dir_fd=fd, follow_symlinks=False).st_dev


def get_from(root_fd: int, request: dict[str, Any], out: BinaryIO, mounts: Mounts) -> None:
    """The stat of ``request["path"]`` (one line of JSON), then its tar: named by its last name (``/.``: its
    entries, under "."), as Docker's archive of a container path; the volumes in it followed, other mounts not."""
    path, container = request["path"], request["container"]
    fd, name = _resource(root_fd, path, container, request.get("follow", False))
    try:
        shown = request.get("shown") or shown_name(path)
        parent, base = posixpath.split(container_path(path))
        where = resolved_path(root_fd, container_path(path)) if not name else \
            posixpath.join(resolved_path(root_fd, parent), base)
        info = path_stat(fd, name, shown, resolved_path(root_fd, container_path(path)) if name else "")
        if path.endswith("/") and not is_dir_mode(info["mode"]):
            raise CopyError(f"{container}:{path}: not a directory")
        out.write(json.dumps(info).encode() + b"\n")
        arcname = "." if shown == "/" else shown
        tar = TarOut(out)
        archive_tree(tar, fd, name, arcname, mounts, where, _parent_dev(root_fd, fd, name, where))
        tar.close()
    finally:
        os.close(fd)


def put_into(root_fd: int, request: dict[str, Any], src: BinaryIO) -> None:
    """Extract the tar *src* at ``request["path"]`` in the container, by Docker's rules: ``source`` (the
    local side's ``CopyInfo``) decides where and under which name; without one (``cp -``, ``put_archive``)
    the path must be a directory and the tar goes in as it is. Owners become the container's root, or stay
    as the tar says with ``archive`` (``-a``)."""
    path, container = request["path"], request["container"]
    dst = _destination(root_fd, path, container)
    if request.get("source") is None:
        if not dst.exists:
            raise _not_found(path, container)
        if not dst.is_dir:
            raise CopyError(f'destination "{container}:{path}" must be a directory')
        into, rebase = dst.path, None
    else:
        into, rebase = prepare_archive_copy(CopyInfo(**request["source"]), dst)
    try:
        dir_fd = open_in_root(root_fd, into)
    except FileNotFoundError:
        raise _not_found(into, container) from None
    except NotADirectoryError:
        raise CopyError(f"{container}:{into}: extraction point is not a directory") from None
    try:
        extract_checked(src, dir_fd, where=f"the tar copied to {container}:{path}",
                        shown=container_path(into), rebase=rebase,
                        owner=None if request.get("archive") else (0, 0), allow_devices=layers.is_root())
    finally:
        os.close(dir_fd)


def _destination(root_fd: int, path: str, container: str) -> CopyInfo:
    """What the destination is in the container (the Docker client's stat of it): a symlink there is
    followed once, inside the root, to what it names."""
    try:
        fd, name = _resource(root_fd, path, container, follow=False)
    except NotFound:
        return CopyInfo(path)
    try:
        st = _lstat(fd, name)
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(name, dir_fd=fd)
            path = target if target.startswith("/") else posixpath.join(split_path_dir_entry(path)[0], target)
            try:
                linked = open_in_root(root_fd, path, os.O_PATH)
            except (FileNotFoundError, NotADirectoryError):
                return CopyInfo(path)
            st = os.fstat(linked)
            os.close(linked)
    finally:
        os.close(fd)
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise CopyError(f'destination "{container}:{path}" must be a directory or a regular file')
    return CopyInfo(path, True, stat.S_ISDIR(st.st_mode))


def export_root(root_fd: int, out: BinaryIO, mounts: Mounts) -> None:
    """The whole root file system as one tar, in sorted order: no volumes, nothing mounted on it (a mount
    point is an empty directory, or an empty file), as ``docker export``."""
    tar = TarOut(out)
    archive_tree(tar, root_fd, "", "", mounts, "/", os.fstat(root_fd).st_dev)
    tar.close()


# ------------------------------------------------------------------------------------- the caller's side


@dataclass
class _Reach:
    """How a helper reaches a container's root: the user namespace it makes (*maps*) or joins (*join*: a
    PID), the view it opens (``open_view``), and the lock it must hold while it works (*lock*: a descriptor)."""

    maps: Any
    join: int | None
    view: dict[str, Any]
    lock: int | None = None


# What a running container's /etc has mounted from its directory: copied (Docker's cp does), never exported.
ETC_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


@contextlib.contextmanager
def _reach(container: Container, *, volumes: bool = True) -> Iterator[_Reach]:
    """The way to *container*'s root (see the module's docstring). A stopped container's start.lock is held
    until the helper is done: it cannot start meanwhile on the upper directory the helper has mounted."""
    from .container import id_maps, is_rootless

    backend = container.state.get("backend", "native")
    if backend == "proot":
        from .runtime import init_plan

        binds = init_plan(container, [])["binds"] if volumes else []
        yield _Reach(None, None, {"kind": "dir", "root": str(container.dir / "rootfs"), "binds": binds})
        return
    lock = lock_if_stopped(container)
    if lock is not None:
        try:
            yield _Reach(id_maps(container) if is_rootless(container) else None, None,
                         _overlay_view(container, volumes), lock)
        finally:
            os.close(lock)
        return
    from .runtime import container_init_process

    pid, start = container_init_process(container)
    followed = [*ETC_FILES, *(m.destination for m in container.spec.process_mounts())] if volumes else []
    yield _Reach(None, pid if is_rootless(container) else None,
                 {"kind": "process", "pid": pid, "start": start, "mounts": followed})


def lock_if_stopped(container: Container) -> int | None:
    """The container's start lock (``container.starting``'s), taken if it is not running: a descriptor the
    helper inherits, so that it holds the lock itself for as long as it lives (an flock belongs to the open
    file), whatever becomes of its caller. None, the lock let go, if it is running."""
    import fcntl

    from .container import open_lock, wait_for_last_monitor

    fd = open_lock(container, "start.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if container.reload().status == "running":
            os.close(fd)
            return None
        wait_for_last_monitor(container)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _overlay_view(container: Container, volumes: bool) -> dict[str, Any]:
    """A stopped container's overlayfs, as its PID 1 would mount it (``runtime.init_plan``)."""
    from . import rootfs
    from .container import id_maps
    from .image import get_image
    from .runtime import init_plan

    image = get_image(container.store, container.spec.image_id)
    lowers = rootfs.lower_dirs(container.store, image, container.state.get("backend", "native"), id_maps(container))
    plan = init_plan(container, lowers)
    view = {key: plan[key] for key in ("root", "lowers", "upper", "work", "userxattr", "binds", "read_only")}
    return {**view, "kind": "overlay", "binds": view["binds"] if volumes else [],
            "mounts": [destination for _, destination, _ in view["binds"]] if volumes else []}


def _in_container(container: Container, op: str, request: dict[str, Any], *, stdin: Any = None,
                  stdout: Any = None, volumes: bool = True) -> None:
    from .userns import run_inside

    what = {"get": "copying from", "put": "copying to", "export": "exporting"}[op]
    with _reach(container, volumes=volumes) as reach:
        full = {**request, "op": op, "container": container.name, "view": reach.view}
        run_inside(reach.maps, f"{what} container {container.name}", "pycontainers.cp.serve", json.dumps(full),
                   stdin=stdin, stdout=stdout, join=reach.join, pass_fds=() if reach.lock is None else (reach.lock,))


class _StatThenTar:
    """The helper's output for ``get``: one line of JSON (the stat), then the tar, which goes to *out*."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.head = b""
        self.stat: dict[str, Any] | None = None
        self.size = 0

    def write(self, data: bytes) -> int:
        if self.stat is None:
            self.head += data
            line, newline, rest = self.head.partition(b"\n")
            if not newline:
                return len(data)
            self.stat, self.head = json.loads(line), b""
            data = rest
        if data:
            self.out.write(data)
            self.size += len(data)
        return len(data)


def get_archive(container: Container, path: str, out: BinaryIO, *, follow_link: bool = False) -> dict[str, Any]:
    """``docker cp CONTAINER:PATH -`` (docker-py's ``get_archive``): the tar of *path* written to *out*; its
    stat (Docker's PathStat). A missing path raises ``NotFound``."""
    sink = _StatThenTar(out)
    _in_container(container, "get", {"path": path, "follow": follow_link}, stdout=sink)
    if sink.stat is None:
        raise CopyError(f"copying from {container.name}:{path} gave no answer")
    return sink.stat


def put_archive(container: Container, path: str, data: BinaryIO | bytes, *, archive: bool = False) -> None:
    """``docker cp - CONTAINER:PATH`` (docker-py's ``put_archive``): extract the tar *data* into the directory
    *path*; its files belong to the container's root (*archive*: to the owners the tar names)."""
    _in_container(container, "put", {"path": path, "source": None, "archive": archive}, stdin=data)


def copy_from_container(container: Container, path: str, dest: str, *, follow_link: bool = False,
                        ) -> tuple[int, int, str]:
    """``docker cp CONTAINER:PATH DEST``: *path* copied to the host by Docker's rules. The files belong to
    whoever copies (Docker's, too); the tar is checked as any other first (a container's files are untrusted:
    no device nodes on the host). Returns (the size Docker reports, bytes transferred, the destination)."""
    dest = local_path(dest)
    with tempfile.TemporaryFile() as spool:
        info = get_archive(container, path, spool, follow_link=follow_link)  # type: ignore[arg-type]
        transferred = spool.tell()
        spool.seek(0)
        src = CopyInfo(path, True, is_dir_mode(info["mode"]))
        into, rebase = prepare_archive_copy(src, local_destination(dest))
        try:
            dir_fd = os.open(into, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                extract_checked(spool, dir_fd, where=f"the tar of {container.name}:{path}", shown=into,  # type: ignore[arg-type]
                                rebase=rebase, owner=(os.geteuid(), os.getegid()), allow_devices=False,
                                whiteouts_allowed=True)
            finally:
                os.close(dir_fd)
        except OSError as exc:  # the host's side: a full disk, a read-only file system, no permission
            raise CopyError(f"cannot copy {container.name}:{path} to {dest}: {exc.strerror} "
                            f"(the file being written was removed; any written before it stay)") from None
    return (transferred if src.is_dir else info["size"]), transferred, dest


def copy_to_container(container: Container, src: str, path: str, *, archive: bool = False,
                      follow_link: bool = False) -> tuple[int, int]:
    """``docker cp SRC CONTAINER:PATH``: the local *src* copied into the container by Docker's rules (they
    are applied in the helper, which sees what *path* is). Returns (bytes of content, bytes transferred)."""
    info = local_source(local_path(src), follow_link)
    parent, base = split_path_dir_entry(info.path)
    arcname = info.rebase_name or base
    with tempfile.TemporaryFile() as spool:
        tar = TarOut(spool)  # type: ignore[arg-type]
        if base == ".":
            fd, name = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), ""
        else:
            fd, name = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), base
        try:
            archive_tree(tar, fd, name, arcname)
        finally:
            os.close(fd)
        tar.close()
        spool.seek(0)
        _in_container(container, "put", {"path": path, "source": asdict(info), "archive": archive}, stdin=spool)
        return local_content_size(info.path), tar.size


def export(container: Container, out: BinaryIO) -> None:
    """``docker export``: the container's file system (its image's layers and its own changes, merged) as one
    tar, in a reproducible order, to *out*."""
    _in_container(container, "export", {}, stdout=out, volumes=False)


# --------------------------------------------------------------------------------------------- import


def import_image(store: Store, fileobj: BinaryIO, repository: str | None = None, *, changes: list[str] = (),  # type: ignore[assignment]
                 message: str = "", source: str = "-") -> Image:
    """``docker import``: a one-layer image of the tar *fileobj* (gzip, bzip2 or xz too), tagged *repository*,
    its settings changed by *changes* (Dockerfile instructions, ``-c``). The tar is untrusted: it is checked as
    a layer's, and the layer is written by the layer module (sorted entries, every time set to
    ``SOURCE_DATE_EPOCH``), so the same files give the same image ID. Any problem: one error, nothing stored."""
    from .image import add_layer, commit_image, empty_config, normalize_tag, write_layer
    from .store import owned_prefix

    tags = [normalize_tag(repository)] if repository else []
    config = empty_config()
    config["config"] = config_with_changes(config["config"], changes)
    where = f"import {source}"
    with tempfile.TemporaryDirectory(prefix=owned_prefix("import"), dir=store.tmp_dir) as tmp:
        plain = os.path.join(tmp, "layer.tar")
        _decompressed_copy(fileobj, plain, where)
        os.mkdir(os.path.join(tmp, "data"))
        try:
            entries = layers.archive_entries(plain, os.path.join(tmp, "data")).entries
        except LayerError as exc:  # (it names our temporary copy: name what the user gave instead)
            raise LayerError(str(exc).replace(plain, where) + "; nothing was imported") from None
        checker = layers.LayerChecker(where, allow_devices=layers.is_root(), outcome="nothing was imported")
        for entry in entries.values():
            checker.check(entry.info)
        with store.writing():
            desc = write_layer(store, list(entries.values()))
            config = add_layer(config, desc, "", comment=message or f"Imported from {source}")
            return commit_image(store, config, [desc], tags)


def _decompressed_copy(fileobj: BinaryIO, dest: str, where: str) -> None:
    """Copy *fileobj* to *dest*, uncompressed if it is gzip, bzip2 or xz (``archive.decompressed``)."""
    import lzma

    from .archive import decompressed

    try:
        with decompressed(fileobj, f"{where}: the archive", error=LayerError, outcome="nothing was imported") \
                as stream, open(dest, "wb") as out:
            while chunk := stream.read(_CHUNK):
                out.write(chunk)
    except (EOFError, OSError, lzma.LZMAError) as exc:
        raise LayerError(f"{where}: cannot decompress the archive ({exc}); nothing was imported") from None


def config_with_changes(settings: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """An image's settings with ``-c`` changes applied, each a Dockerfile instruction read by the project's
    parser and applied as the builder applies it (so ``CMD echo hi`` is ``["/bin/sh", "-c", "echo hi"]``)."""
    if not changes:
        return settings
    from . import dockerfile as df
    from .build import DEFAULT_SHELL, Builder, State

    settings = json.loads(json.dumps(settings))
    env = dict(item.partition("=")[::2] for item in settings.get("Env") or [])
    scope = df.StageScope(df.BuildArgs(), env)
    state = State({"config": settings}, [], "scratch")
    for change in changes:
        for ins in _change_instructions(df, change):
            try:
                Builder.apply_metadata(ins, settings, scope, settings.get("Shell") or DEFAULT_SHELL, state)
            except PyContainersError as exc:
                raise InvalidArgument(f"invalid --change {change!r}: {_without_place(exc)}") from None
    return settings


def _change_instructions(df: Any, change: str) -> list[Any]:
    """The instructions of one ``-c`` change, read by the Dockerfile parser after a ``FROM scratch`` of ours
    (which it needs): every one must be a change command, a ``FROM`` included (it would start a stage)."""
    try:
        parsed = df.parse(f"FROM scratch\n{change}\n", filename="--change")
    except PyContainersError as exc:
        raise InvalidArgument(f"invalid --change {change!r}: {_without_place(exc)}") from None
    found = list(parsed.stages[0].instructions)
    for stage in parsed.stages[1:]:
        found += [stage.from_instruction, *stage.instructions]
    for ins in found:
        if ins.keyword.upper() not in CHANGE_INSTRUCTIONS:
            raise InvalidArgument(f"{ins.keyword.upper()} is not a valid change command (use one of "
                                  f"{', '.join(CHANGE_INSTRUCTIONS)})")
    return found


def _without_place(exc: Exception) -> str:
    """A parser's message without its ``--change:LINE:`` (the line of a text the user never wrote)."""
    import re

    return re.sub(r"^--change:\d+: ", "", str(exc))


__all__ = ["CopyError", "copy_from_container", "copy_to_container", "export", "get_archive", "import_image",
           "put_archive", "split_cp_arg"]
