"""A container's root file system, on the host's side: image layers unpacked for overlayfs to stack.

Each layer is unpacked once into ``$PYCONTAINERS_HOME/layers/<digest>/`` and shared, read-only, by every
container of every image that has it. overlayfs stacks them (``lowerdir``) under a per-container
writable directory (``upperdir``): reading finds the topmost copy of a file; writing first copies it
up. That *is* the lectures' copy-on-write, done by the kernel. A small shared *init layer* between the
image and the writable layer holds the mount points (``/proc``, ``/dev``, ``/etc/hosts``...), so they
never show up in ``diff`` or in a committed layer.

The mounting itself happens inside the container, in its PID 1 (``pid1.py``); here is what the proot back
end, which mounts nothing, needs instead: where a path inside the image is on the host (``host_path``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from .image import Image
from .store import Store

INIT_LAYER_DIRS = ("dev", "proc", "sys", "etc", "tmp")
INIT_LAYER_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")


# ------------------------------------------------------------------------------------ on the host


def layers_dir(store: Store) -> Path:
    return store.home / "layers"


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
        from . import layer as layers  # tarfile and all: only when a layer is unpacked

        tmp = Path(tempfile.mkdtemp(prefix="unpack-", dir=store.tmp_dir))
        try:
            with store.open_blob(digest) as f:
                layers.extract(f, str(tmp), f"layer {digest}", whiteouts="overlay")
            os.chmod(tmp, 0o755)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    finally:
        os.close(lock_fd)
    return target


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
    dirs = [str(unpack_layer(store, d.digest)) for d in image.layers]
    return [str(init_layer(store)), *reversed(dirs)]


def remove_unused_layers(store: Store, keep: set[str]) -> int:
    """Delete unpacked layers whose digest is not in *keep*; return how many."""
    count = 0
    base = layers_dir(store)
    if not base.exists():
        return 0
    for d in base.iterdir():
        if d.name not in ("init", ".lock") and f"sha256:{d.name}" not in keep:
            shutil.rmtree(d, ignore_errors=True)
            count += 1
    return count


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


