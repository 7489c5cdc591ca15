"""A container's root file system, on the host's side: image layers unpacked for overlayfs to stack.

Each layer is unpacked once into ``$PYCONTAINERS_HOME/layers/<digest>/`` and shared, read-only, by every
container of every image that has it. overlayfs stacks them (``lowerdir``) under a per-container
writable directory (``upperdir``): reading finds the topmost copy of a file; writing first copies it
up. That *is* the lectures' copy-on-write, done by the kernel. A small shared *init layer* between the
image and the writable layer holds the mount points (``/proc``, ``/dev``, ``/etc/hosts``...), so they
never show up in ``diff`` or in a committed layer.

Owners are kept. Root unpacks a layer itself. A student with subordinate ids (/etc/subuid) unpacks it as
root of a user namespace with the maps its rootless containers get (``userns``), so the files of uid 1000
in the image belong to a subordinate id on disk and to 1000 again in the container; without them, every
file is the student's (root's inside). The maps a store's layers were unpacked with are recorded in
``layers/.idmaps.json``: should they change (an administrator edits /etc/subuid), the unpacked layers
and new ones would disagree about owners, so every start refuses, in one line saying to delete the
directory (the layers are then unpacked again). Deleting an unpacked layer goes through
``userns.remove_tree`` with the recorded maps: the student alone may not delete subordinate ids' files.

The mounting itself happens inside the container, in its PID 1 (``pid1.py``); here is what the proot back
end, which mounts nothing, needs instead: where a path inside the image is on the host (``host_path``).
"""

from __future__ import annotations

import contextlib
import fcntl
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


MAPS_RECORD = ".idmaps.json"  # in layers_dir: {"maps": the IdMaps JSON the layers were unpacked with, or null}
UNPACKING = "unpack-"  # the prefix of a layer being unpacked in the store's tmp dir (under the layers' lock)


def unpacking_maps(store: Store) -> IdMaps | None:
    """The user namespace this user unpacks layers in, or None: as itself. Root keeps owners anyway; a user
    without subordinate ids has no other id to give a file; and only where containers run rootless do
    user namespaces work (proot's machines forbid them, or give them no capabilities: Ubuntu 24.04)."""
    if os.geteuid() == 0:
        return None
    from .container import default_backend
    from .userns import default_maps  # rootless only

    if default_backend(store) != "rootless":
        return None
    maps = default_maps()
    return maps if len(maps.uids) > 1 or len(maps.gids) > 1 else None


def checked_maps(store: Store) -> IdMaps | None:
    """``unpacking_maps()``, after checking that the layers unpacked already were unpacked with them."""
    maps = unpacking_maps(store)
    now = maps.to_json() if maps else None
    then = _recorded_maps(store, now)
    if then != now:
        raise StoreError(f"the image layers in {layers_dir(store)} were unpacked with other user-id maps "
                         f"({_describe(then)}) than this user has now ({_describe(now)}; /etc/subuid or /etc/subgid "
                         "changed?), and their files' owners would not match: delete that directory (as root if "
                         "need be: it may hold files of subordinate ids) and the layers are unpacked again")
    return maps


def _recorded_maps(store: Store, now: object) -> object:
    """The recorded maps (JSON). Layers unpacked before maps were recorded are the user's own files (null);
    with nothing unpacked yet, any maps will do (*now*)."""
    record = layers_dir(store) / MAPS_RECORD
    try:
        return json.loads(record.read_bytes())["maps"]
    except FileNotFoundError:
        return None if _unpacked_layers(store) else now
    except (ValueError, KeyError, TypeError):
        raise StoreError(f"{record} is not the JSON of id maps: delete it and {layers_dir(store)}") from None


def _describe(maps_json: object) -> str:
    if not isinstance(maps_json, dict):
        return "none: every file its unpacker's own"
    return " ".join(f"{kind}:" + ",".join(":".join(map(str, m)) for m in lines) for kind, lines in maps_json.items())


def _unpacked_layers(store: Store) -> list[Path]:
    base = layers_dir(store)
    if not base.exists():
        return []
    return [d for d in base.iterdir() if d.name != "init" and not d.name.startswith(".")]


def unpack_layer(store: Store, digest: str) -> Path:
    """The directory holding one layer for overlayfs, unpacked on first use (whiteouts as 0/0 devices)."""
    target = layers_dir(store) / digest.split(":", 1)[1]
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(target.parent / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # two containers starting at once unpack a layer once
        if target.exists():
            return target
        maps = checked_maps(store)
        _record_maps(store, maps)
        tmp = Path(tempfile.mkdtemp(prefix=UNPACKING, dir=store.tmp_dir))
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


def _record_maps(store: Store, maps: IdMaps | None) -> None:
    record = layers_dir(store) / MAPS_RECORD
    if not record.exists():
        atomic_write(record, json.dumps({"maps": maps.to_json() if maps else None}).encode() + b"\n", store.tmp_dir)


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


def lower_dirs(store: Store, image: Image) -> list[str]:
    """overlayfs lowerdir, topmost first: the init layer, then the image's layers from the top down."""
    checked_maps(store)  # layers unpacked already are used as they are: with the maps still in force
    dirs = [str(unpack_layer(store, d.digest)) for d in image.layers]
    return [str(init_layer(store)), *reversed(dirs)]


def remove_unused_layers(store: Store, keep: set[str]) -> int:
    """Delete unpacked layers whose digest is not in *keep*, and layers a killed process left half unpacked
    in the store's tmp dir; return how many of the first."""
    base = layers_dir(store)
    if not base.exists():
        return 0
    from .userns import IdMaps, remove_tree

    saved = _recorded_maps(store, None)
    maps = IdMaps.from_json(saved) if isinstance(saved, dict) else None  # the owners the files have
    lock_fd = os.open(base / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # no layer is being unpacked: any in tmp is a dead one's
        for d in store.tmp_dir.glob(UNPACKING + "*"):
            remove_tree(str(d), maps)
        unused = [d for d in _unpacked_layers(store) if f"sha256:{d.name}" not in keep]
        for d in unused:
            remove_tree(str(d), maps)
    finally:
        os.close(lock_fd)
    return len(unused)


# ------------------------------------------------------------------------------- for proot


def host_path(root: str, path: str, binds: dict[str, str] | None = None) -> str:
    """Where *path*, as a container rooted at *root* sees it, is on the host: symlinks are followed
    inside *root* (an absolute target starts again from *root*, as in a chroot), and a path under a bind
    mount's destination leads to its source. For checks made from outside, before proot enters *root*.
    """
    binds = binds or {}
    parts, inside, hops = [p for p in path.split("/") if p], [], 40
    while parts:
        part = parts.pop(0)
        if part in (".", ".."):
            if part == ".." and inside:
                inside.pop()
            continue
        here = "/" + "/".join([*inside, part])
        if here in binds:
            return os.path.join(binds[here], *parts)
        candidate = root + here
        if os.path.islink(candidate) and hops > 0:
            hops -= 1
            target = os.readlink(candidate)
            if target.startswith("/"):
                inside = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        inside.append(part)
    return root + "/" + "/".join(inside)


