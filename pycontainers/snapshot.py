"""Snapshot and diff: a build step's layer without overlayfs, as kaniko and buildah's vfs driver make it.

Where there is neither root nor a user namespace (Binder), a RUN step runs under proot on a plain copy of
the image's files, and no overlayfs upper directory collects what it wrote. So the builder records the
tree before the command (``take``), runs it, and compares the tree after it with that record
(``changes``): what is new or changed becomes an ordinary layer entry, what is gone a whiteout.

The change-detection rule. A path is unchanged when its ``lstat`` says the same thing before and after:

* a file, symlink, device or fifo: type, mode, owner, size, mtime, **ctime**, inode, device, link
  count, device number, and a symlink's target, all equal. No content is hashed. kaniko's "redo" mode
  compares mtime, size and mode only, and that misses a same-size rewrite whose mtime is then put back
  (``cp -p``, ``touch -d``, ``tar x``): the files of a flattened image all carry the layers' fixed mtime
  (``SOURCE_DATE_EPOCH``, 0 by default), so putting it back is easy (tested: after such a rewrite under
  proot, size, mtime and inode are all unchanged; only ctime moved). ctime is stamped by the kernel on
  every write, chmod, chown, link or rename and cannot be set from user space (only by stepping the
  system clock back), so comparing it catches every such change. The one gap would be a change within
  the same clock tick as the snapshot: ``take`` closes it by waiting until the file system stamps times
  later than any it recorded (milliseconds), so a later change always gets a newer ctime. Hashing every
  file instead would read the whole image at each RUN, for no case this rule misses.
* a directory: type, mode and owner only. Its times, size and link count change whenever an entry is
  added or removed, and the entries speak for themselves (proot even touches ``/`` and ``/etc`` to hang
  its bind mounts and takes them away again); a layer stores no directory times anyway.

Owners. proot's fake root records no ownership: under ``proot -0`` an ordinary user's files belong to
that user on disk, and a ``chown`` in the RUN only pretends. So owners on disk never go into the layer: a
path the image already had (with the same type) keeps the image's owner, and anything new belongs to the
step's user (root, 0:0, unless the Dockerfile set ``USER``), as it would in Docker. The same build gives
the same layer whoever runs it, root included. ``chown`` inside such a RUN is therefore lost (use
``COPY --chown``).

Deletions become one whiteout (``.wh.NAME``) for the highest path that went; a directory replaced by a
file or symlink needs none (the new entry hides the whole directory), and a directory emptied or
recreated (``rm -rf d && mkdir d``) gets a whiteout for each child that went, which is as valid as an
opaque marker (``.wh..wh..opq``) and never hides more than what was removed. Every entry's parent
directories are written too (image-spec ``layer.md``), with their mode and owner from the image.
Sockets are left out, as Docker leaves them out: they mean nothing without the process that made them.
The root directory itself is never an entry, as in every layer.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from . import layer as layers
from .errors import LayerError

# The longest ``take`` waits for the file system's clock to tick (coarse timestamps tick every few ms;
# a file system with whole-second times needs up to a second).
CLOCK_WAIT = 2.5


class Record(NamedTuple):
    """One path as a snapshot saw it: its ``lstat`` result and, for a symlink, its target."""

    st: os.stat_result
    target: str = ""


@dataclass
class Snapshot:
    """The paths below *root* (relative, ``/``-separated, walk order: parents first, names sorted)."""

    root: str
    records: dict[str, Record]


def take(root: str | os.PathLike[str], *, wait_for_clock: bool = True, unlock: bool = False) -> Snapshot:
    """Record every path below *root* (sockets excepted).

    With *wait_for_clock*, return only once the file system would stamp a change made now with a ctime
    later than every ctime recorded (see the module's docstring): that is what lets ``changes`` trust
    ctime alone. With *unlock*, what this user cannot read (``chmod 000`` under proot, where the fake
    root is really the student) is given owner read (and search) permission *after* its mode was
    recorded, so that it can be walked and archived: only for the final look at a throwaway copy.
    Raises ``LayerError`` when a directory cannot be read.
    """
    top = os.fspath(root)
    if not os.path.isdir(top):
        raise LayerError(f"{top}: no directory to snapshot")
    records: dict[str, Record] = {}
    _walk(top, "", records, unlock)
    if wait_for_clock:
        newest = max((r.st.st_ctime_ns for r in records.values()), default=0)
        _wait_for_clock(os.path.dirname(os.path.abspath(top)), newest)
    return Snapshot(top, records)


def _walk(top: str, rel_dir: str, records: dict[str, Record], unlock: bool) -> None:
    full_dir = os.path.join(top, rel_dir) if rel_dir else top
    try:
        names = sorted(os.listdir(full_dir))
    except OSError as exc:
        raise LayerError(f"cannot read directory /{rel_dir}: {exc.strerror}") from None
    for name in names:
        rel = f"{rel_dir}/{name}" if rel_dir else name
        full = os.path.join(full_dir, name)
        st = os.lstat(full)
        if stat.S_ISSOCK(st.st_mode):
            continue
        records[rel] = Record(st, os.readlink(full) if stat.S_ISLNK(st.st_mode) else "")
        if unlock:
            _unlock(full, st)
        if stat.S_ISDIR(st.st_mode):
            _walk(top, rel, records, unlock)


def _unlock(full: str, st: os.stat_result) -> None:
    """Let the owner read a file, or list and enter a directory, it could not (``take(unlock=True)``)."""
    if stat.S_ISDIR(st.st_mode):
        need, access = 0o500, os.R_OK | os.X_OK
    elif stat.S_ISREG(st.st_mode):
        need, access = 0o400, os.R_OK
    else:
        return
    if not os.access(full, access):
        with contextlib.suppress(OSError):  # not ours: reading it fails next, with its name
            os.chmod(full, stat.S_IMODE(st.st_mode) | need)


def _wait_for_clock(where: str, newest_ns: int) -> None:
    """Return once an inode changed in *where* gets a ctime after *newest_ns* (at most ``CLOCK_WAIT`` s).

    A probe file is created and chmod-ed (which always stamps a new ctime) until its ctime has passed.
    *where* is the directory holding the snapshot's root, on the same file system, so with the same
    timestamp granularity. Where it cannot be written the wait is skipped: the rule then has the
    theoretical gap of a change within one clock tick of the snapshot.
    """
    with contextlib.suppress(OSError):
        fd, probe = tempfile.mkstemp(prefix=".snapshot-clock-", dir=where)
        try:
            deadline = time.monotonic() + CLOCK_WAIT
            while os.fstat(fd).st_ctime_ns <= newest_ns and time.monotonic() < deadline:
                time.sleep(0.001)
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
            os.unlink(probe)


def _signature(record: Record) -> tuple[object, ...]:
    """What must be equal for a path to count as unchanged (the module's docstring says why)."""
    st = record.st
    if stat.S_ISDIR(st.st_mode):
        return st.st_mode, st.st_uid, st.st_gid
    return (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev,
            st.st_nlink, st.st_rdev, record.target)


def changes(before: Snapshot, *, owners: Mapping[str, tuple[int, int]] | None = None,
            new_owner: tuple[int, int] = (0, 0), epoch: int | None = None) -> list[layers.Entry]:
    """The layer entries that turn the tree *before* recorded into the tree now at its root.

    The tree is looked at one last time: what the owner cannot read is unlocked (``take``), so a
    ``chmod 000`` in a step run without root still makes a layer, with the mode it set.
    """
    after = take(before.root, wait_for_clock=False, unlock=True)
    return diff(before, after, owners=owners, new_owner=new_owner, epoch=epoch)


def diff(before: Snapshot, after: Snapshot, *, owners: Mapping[str, tuple[int, int]] | None = None,
         new_owner: tuple[int, int] = (0, 0), epoch: int | None = None) -> list[layers.Entry]:
    """The layer entries from *before* to *after* (two snapshots of one root), whiteouts included.

    *owners* gives the image's owner of each path it had (``None``: the owners *before* saw on disk);
    a path the image had keeps that owner, a new one (or one whose type changed) gets *new_owner*.
    An unchanged tree gives no entries at all. Raises ``LayerError`` for a name that would read as a
    whiteout (``.wh.*``), or for a file that cannot go into a layer.
    """
    epoch = layers.source_date_epoch() if epoch is None else epoch
    old, new = before.records, after.records
    changed = [p for p, rec in new.items() if p not in old or _signature(old[p]) != _signature(rec)]
    gone = [p for p in old if p not in new and _parent_is_directory(p, new)]
    wanted = set(changed)
    for path in [*changed, *gone]:
        wanted.update(layers._parents(path))

    def owner(path: str) -> tuple[int, int]:
        was = old.get(path)
        if was is None or stat.S_IFMT(was.st.st_mode) != stat.S_IFMT(new[path].st.st_mode):
            return new_owner  # made by this step
        return (was.st.st_uid, was.st.st_gid) if owners is None else owners.get(path, new_owner)

    entries: list[layers.Entry] = []
    first_link: dict[tuple[int, int], str] = {}
    for path in sorted(wanted, key=layers.sort_key):
        if path.rpartition("/")[2].startswith(layers.WHITEOUT_PREFIX):
            raise LayerError(f"/{path}: a name starting with {layers.WHITEOUT_PREFIX!r} cannot go into a layer, "
                             "where it means a deletion")
        full = os.path.join(after.root, path)
        entries.append(layers.stat_entry(path, full, new[path].st, owner(path), epoch, first_link))
    entries += [layers.Entry(layers.whiteout_info(path, epoch)) for path in sorted(gone, key=layers.sort_key)]
    return entries


# A snapshot kept on disk (a proot container's files as they were at ``create``, for ``diff`` and
# ``commit`` later): per path, the stat fields ``_signature`` and ``diff`` read, and a symlink's target.
_SAVED_FIELDS = ("st_mode", "st_uid", "st_gid", "st_size", "st_mtime_ns", "st_ctime_ns", "st_ino", "st_dev",
                 "st_nlink", "st_rdev")


class SavedStat(NamedTuple):
    """The part of an ``os.stat_result`` a saved snapshot keeps (same attribute names)."""

    st_mode: int
    st_uid: int
    st_gid: int
    st_size: int
    st_mtime_ns: int
    st_ctime_ns: int
    st_ino: int
    st_dev: int
    st_nlink: int
    st_rdev: int


def save(snap: Snapshot, path: str | os.PathLike[str]) -> None:
    """Write *snap* as JSON (written aside, then renamed: never half a snapshot)."""
    import json

    doc = {"root": snap.root,
           "records": {p: [*(getattr(r.st, f) for f in _SAVED_FIELDS), r.target] for p, r in snap.records.items()}}
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    os.replace(tmp, path)


def load(path: str | os.PathLike[str]) -> Snapshot:
    """A snapshot ``save`` wrote; ``diff`` takes it as *before* like one just taken."""
    import json

    with open(path) as f:
        doc = json.load(f)
    records = {p: Record(SavedStat(*values[:-1]), values[-1]) for p, values in doc["records"].items()}  # type: ignore[arg-type]
    return Snapshot(doc["root"], records)


def _parent_is_directory(path: str, records: Mapping[str, Record]) -> bool:
    """Does *path*'s parent still exist as a directory? If not, the parent's own change covers *path*."""
    parent = path.rpartition("/")[0]
    return not parent or (parent in records and stat.S_ISDIR(records[parent].st.st_mode))


__all__ = ["Record", "SavedStat", "Snapshot", "changes", "diff", "load", "save", "take"]
