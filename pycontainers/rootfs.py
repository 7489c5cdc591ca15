"""A container's root file system, on the host's side: image layers unpacked for overlayfs to stack.

Each layer is unpacked once into ``$PYCONTAINERS_HOME/layers/<digest>/`` and shared, read-only, by every
container of every image that has it. overlayfs stacks them (``lowerdir``) under a per-container
writable directory (``upperdir``): reading finds the topmost copy of a file; writing first copies it
up. That *is* the lectures' copy-on-write, done by the kernel. A small shared *init layer* between the
image and the writable layer holds the mount points (``/proc``, ``/dev``, ``/etc/hosts``...), so they
never show up in ``diff`` or in a committed layer.

Owners are kept. Root unpacks a layer itself. A student with subordinate ids (/etc/subuid) unpacks it, for
the rootless back end, as root of a user namespace with the maps its rootless containers get (``userns``),
so the files of uid 1000 in the image belong to a subordinate id on disk and to 1000 again in the
container; without them, every file is the student's (root's inside). Layers unpacked with maps live in a
directory of their own per set of maps, ``layers/idmapped-<hash>/`` (with ``maps.json``): should the maps
change (an administrator edits /etc/subuid) the layers are simply unpacked again there, and those of the
old maps wait for ``image prune``, which deletes them through ``userns.remove_tree`` with their own maps
(the student alone may not delete subordinate ids' files).

The mounting itself happens inside the container, in its PID 1 (``pid1.py``); here is what the proot back
end, which mounts nothing, needs instead: where a path inside the image is on the host (``host_path``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from .errors import PyContainersError, StoreError
from .image import Image
from .store import Store, atomic_write

TYPE_CHECKING = False  # typing's, without importing typing
if TYPE_CHECKING:
    from typing import BinaryIO

    from .userns import IdMaps

INIT_LAYER_DIRS = ("dev", "proc", "sys", "etc", "tmp")
INIT_LAYER_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")


# ------------------------------------------------------------------------------------ on the host


def layers_dir(store: Store) -> Path:
    return store.home / "layers"


IDMAPPED = "idmapped-"  # layers/idmapped-<hash of the maps>/: the layers unpacked with one set of id maps
MAPS_FILE = "maps.json"  # ... and those maps, in that directory
UNPACKING = "unpack-"  # the prefix of a layer being unpacked in the store's tmp dir (under the layers' lock)


def unpacking_maps(backend: str, maps: IdMaps | None = None) -> IdMaps | None:
    """The user namespace this user unpacks layers in for a container of *backend* whose id maps are *maps*
    (recorded in its state at create; else this user's now), or None: as itself. Root keeps owners anyway;
    a user without subordinate ids has no other id to give a file; and only the rootless back end has user
    namespaces (proot's machines forbid them, or give them no capabilities, as Ubuntu 24.04 does, and proot
    reads the image's blobs, not these directories)."""
    if os.geteuid() == 0 or backend != "rootless":
        return None
    if maps is None:
        from .userns import default_maps  # rootless only

        maps = default_maps()
    return maps if len(maps.uids) > 1 or len(maps.gids) > 1 else None


def unpacked_dir(store: Store, maps: IdMaps | None) -> Path:
    """Where the layers unpacked with *maps* are: ``layers/`` itself without, else a directory of their own
    named for them, which holds them too (``maps.json``). Layers unpacked with other maps (the student's
    /etc/subuid changed, or a machine that stopped allowing user namespaces) stay apart and correct."""
    if maps is None:
        return layers_dir(store)
    text = json.dumps(maps.to_json(), sort_keys=True)
    where = layers_dir(store) / f"{IDMAPPED}{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    if not (where / MAPS_FILE).exists():
        where.mkdir(parents=True, exist_ok=True)
        atomic_write(where / MAPS_FILE, text.encode() + b"\n", store.tmp_dir)
    return where


def unpack_layer(store: Store, digest: str, maps: IdMaps | None = None) -> Path:
    """The directory holding one layer for overlayfs, unpacked on first use (whiteouts as 0/0 devices), as
    oneself or as root of a user namespace with *maps*."""
    target = unpacked_dir(store, maps) / digest.split(":", 1)[1]
    if target.exists():
        return target
    layers_dir(store).mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(layers_dir(store) / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # two containers starting at once unpack a layer once
        if target.exists():
            return target
        # Checked against its digest first, as containerd checks a layer it applies: a blob damaged on disk
        # would be unpacked once and then served to every container, however often it is repaired after.
        if not store.verify_blob(digest):
            raise StoreError(f"blob {digest} is corrupt: its content has another digest (pycontainers system check "
                             "lists what is damaged; pull or load the image again)")
        tmp = Path(tempfile.mkdtemp(prefix=UNPACKING + target.parent.name + "-", dir=store.tmp_dir))
        try:
            with store.open_blob(digest) as f:
                _extract(f, tmp, f"layer {digest}", maps)
            os.chmod(tmp, 0o755)
            os.rename(tmp, target)
        except BaseException:
            _discard(tmp, maps)
            raise
    finally:
        os.close(lock_fd)
    return target


def _extract(blob: BinaryIO, tmp: Path, where: str, maps: IdMaps | None) -> None:
    """layer.extract into *tmp*, in a user namespace with *maps* if any: a fresh process (never a fork of a
    possibly multithreaded caller) reads the blob as its stdin."""
    if maps is None:
        from . import layer as layers  # tarfile and all: only when a layer is unpacked

        layers.extract(blob, str(tmp), where, whiteouts="overlay")
        return
    from .userns import run_inside

    run_inside(maps, f"unpacking {where}", "pycontainers.rootfs.extract_stdin", str(tmp), where, stdin=blob)


def extract_stdin(dest: str, where: str) -> None:
    """(In ``run_inside``'s process.) Extract the layer on stdin, a blob of the store, into *dest*."""
    from . import layer as layers

    with open(0, "rb", closefd=False) as blob:
        layers.extract(blob, dest, where, whiteouts="overlay")


def _discard(path: Path, maps: IdMaps | None) -> None:
    """Remove a half-unpacked layer: files of subordinate ids from inside a user namespace. The error that
    got us here is the one to tell: a failure to clean up is not."""
    from .userns import remove_tree

    with contextlib.suppress(OSError, PyContainersError):
        remove_tree(str(path), maps)


def init_layer(store: Store) -> Path:
    """The shared layer of mount points that sits between the image and the writable layer."""
    target = layers_dir(store) / "init"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="init-", dir=store.tmp_dir))
    for d in INIT_LAYER_DIRS:
        (tmp / d).mkdir()
    (tmp / "tmp").chmod(0o1777)
    for f in INIT_LAYER_FILES:
        (tmp / f).touch()
    os.chmod(tmp, 0o755)
    try:
        os.rename(tmp, target)
    except OSError:  # another process made it first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def lower_dirs(store: Store, image: Image, backend: str = "native", maps: IdMaps | None = None) -> list[str]:
    """overlayfs lowerdir, topmost first: the init layer, then the image's layers from the top down, for a
    container of *backend* with id maps *maps* (see ``unpacking_maps``)."""
    maps = unpacking_maps(backend, maps)
    dirs = [str(unpack_layer(store, d.digest, maps)) for d in image.layers]
    # A layer the image has twice (the same COPY again, higher up) is one directory: overlayfs refuses a
    # lowerdir given twice (ELOOP). Its topmost place alone gives the same view: whatever it holds, hides or
    # makes opaque is decided there, above its lower place, which it would otherwise leave untouched.
    return [str(init_layer(store)), *dict.fromkeys(reversed(dirs))]


def remove_unused_layers(store: Store, keep: set[str]) -> int:
    """Delete unpacked layers whose digest is not in *keep* (with whatever maps they were unpacked), and
    layers a killed process left half unpacked in the store's tmp dir; return how many of the first."""
    base = layers_dir(store)
    if not base.exists():
        return 0
    from .userns import remove_tree_or_say

    removed = 0
    lock_fd = os.open(base / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # no layer is being unpacked: any in tmp is a dead one's
        for where, maps in _unpacked_dirs(store):
            for d in store.tmp_dir.glob(f"{UNPACKING}{where.name}-*"):
                remove_tree_or_say(str(d), maps)
            for d in where.iterdir():
                if _is_layer(d) and f"sha256:{d.name}" not in keep:
                    # Out of its place first, in one step: a deletion killed half-way must not leave a
                    # half-empty layer that the next container takes for a whole one (it is never checked).
                    # (A layer unpacked in a user namespace is deleted in place, from inside one: its ".." is
                    # not this user's to move, and what cannot be deleted must stay where it is said to be.)
                    doomed = store.tmp_dir / f"{UNPACKING}{where.name}-{d.name}" if maps is None else d
                    if doomed != d:
                        try:
                            os.rename(d, doomed)
                        except OSError:  # (the remains of an earlier removal, which could not be deleted above)
                            doomed = d
                    if remove_tree_or_say(str(doomed), maps):
                        removed += 1
            if where != base and not any(_is_layer(d) for d in where.iterdir()):
                shutil.rmtree(where)  # an idmapped-* directory: only maps.json is left
    finally:
        os.close(lock_fd)
    return removed


def _unpacked_dirs(store: Store) -> list[tuple[Path, IdMaps | None]]:
    """Each directory of unpacked layers, with the maps they were unpacked with."""
    from .userns import IdMaps

    found: list[tuple[Path, IdMaps | None]] = [(layers_dir(store), None)]
    for d in layers_dir(store).glob(IDMAPPED + "*"):
        try:
            found.append((d, IdMaps.from_json(json.loads((d / MAPS_FILE).read_bytes()))))
        except (OSError, ValueError, KeyError, TypeError):  # deleted by hand (rm -rf of the store stopped)
            found.append((d, unpacking_maps("rootless")))  # most likely the maps this user has now
    return found


def _is_layer(d: Path) -> bool:
    return len(d.name) == 64 and d.is_dir()  # a digest's hex: not init/, .lock, maps.json or idmapped-*/


# ------------------------------------------------------------------------------- for proot


def host_path(root: str, path: str, binds: dict[str, str] | None = None) -> str:
    """Where *path*, as a container rooted at *root* sees it, is on the host: symlinks are followed
    inside *root* (an absolute target starts again from *root*, as in a chroot), and a path under a bind
    mount's destination leads to its source, where symlinks are followed the same way (a venv's
    ``bin/python -> /usr/bin/python3`` points into the container's /usr, not the host's). For checks made
    from outside, before proot enters *root*.
    """
    binds = binds or {}

    def on_host(here: str) -> str:  # *here* has no symlink in it: under the deepest bind that holds it, or root
        for destination in sorted(binds, key=len, reverse=True):
            inner = destination.rstrip("/")
            if here == inner or here.startswith(inner + "/"):
                return binds[destination] + here[len(inner):]
        return root + here

    parts, inside, hops = [p for p in path.split("/") if p], [], 40
    while parts:
        part = parts.pop(0)
        if part in (".", ".."):
            if part == ".." and inside:
                inside.pop()
            continue
        here = "/" + "/".join([*inside, part])
        candidate = on_host(here)
        if here not in binds and os.path.islink(candidate) and hops > 0:  # (a bind's source is mounted, not read)
            hops -= 1
            target = os.readlink(candidate)
            if target.startswith("/"):
                inside = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        inside.append(part)
    return on_host("/" + "/".join(inside))


