"""A container's root file system: image layers stacked by overlayfs, then the kernel's own mounts.

Each layer is unpacked once into ``$PYCONTAINERS_HOME/layers/<digest>/`` and shared, read-only, by every
container of every image that has it. overlayfs stacks them (``lowerdir``) under a per-container
writable directory (``upperdir``): reading finds the topmost copy of a file; writing first copies it
up. That *is* the lectures' copy-on-write, done by the kernel. A small shared *init layer* between the
image and the writable layer holds the mount points (``/proc``, ``/dev``, ``/etc/hosts``...), so they
never show up in ``diff`` or in a committed layer.

The functions below ``# inside the container`` run in the container's new mount namespace, in the
order ``runtime.build_root`` calls them. The kernel's own file systems (/proc, /dev, /sys, with Docker's
masks) do not depend on the image, so they are made first (``make_kernel_file_systems``), kept aside as
detached mount trees, and attached in the image's root once it is mounted: a warm container
(``warm.py``) has them ready before it knows its image.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from pathlib import Path

from .errors import LayerError
from .image import Image
from .linux import (
    MNT_DETACH,
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    KernelError,
    mount,
    move_mount,
    open_tree,
    pivot_root,
    umount2,
)
from .store import Store

INIT_LAYER_DIRS = ("dev", "proc", "sys", "etc", "tmp")
INIT_LAYER_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# Docker's defaults (moby oci/defaults.go): hidden, and read-only, parts of /proc and /sys.
MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap")
# statvfs(3) ST_* flag -> mount(2) MS_* flag, for the flags a remount must keep.
_STATVFS_TO_MOUNT = ((2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, 1024), (2048, 2048), (4096, 1 << 21))
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


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


# ----------------------------------------------------------------------------- inside the container


def make_mounts_private() -> None:
    """Stop mount events from travelling back to the host (MS_PRIVATE, recursively)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def mount_overlay(lowers: list[str], upper: str, work: str, target: str, userxattr: bool = False) -> None:
    """Stack the layers. *userxattr*: inside a user namespace overlayfs may not use ``trusted.*``
    attributes, so its opaque markers are read from (and written as) ``user.overlay.*`` ones."""
    options = f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}" + (",userxattr" if userxattr else "")
    # nodev: a device node made inside (mknod needs only CAP_MKNOD) cannot be opened
    mount("overlay", target, "overlay", MS_NODEV, options)


def remount_read_only(path: str, recursive: bool = False) -> None:
    """Make a mount (or bind mount) read-only, keeping its other flags.

    In a user namespace the flags of a mount inherited from the host (nosuid, nodev, noexec, atime) are
    *locked*: a remount that drops one fails with EPERM. So they are read back (statvfs) and kept, as runc.
    """
    flags = os.statvfs(path).f_flag
    keep = sum(ms for st, ms in _STATVFS_TO_MOUNT if flags & st)
    mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | keep | (MS_REC if recursive else 0))


def make_root_read_only() -> None:
    """--read-only: after every mount point exists and is mounted, turn / itself read-only (as runc)."""
    remount_read_only("/")


KERNEL_FILE_SYSTEMS = ("/proc", "/dev", "/sys")


def make_kernel_file_systems() -> list[int] | None:
    """The container's /proc, /dev and /sys, with Docker's masks on them, before its image is known.

    They are mounted over this mount namespace's own /proc, /dev and /sys (a private copy of the host's:
    the host sees nothing), so the masks' paths are the real ones; then each tree is copied aside
    (``open_tree``) and the originals unmounted, which uncovers the host's again. Returns the detached
    trees, for ``attach_kernel_file_systems``; None on a kernel older than 5.2 (no ``open_tree``): then
    they stay where they are, covering the host's, and are moved into the root (MS_MOVE) instead.
    Must run in the container's PID namespace: a proc mount shows the PID namespace of whoever mounted it.
    """
    # The host's devices, held by descriptor: the new /dev covers the host's before they are bound into it.
    devices = {name: os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC) for name in DEVICES}
    try:
        mount_dev({name: f"/proc/self/fd/{fd}" for name, fd in devices.items()})
    finally:
        for fd in devices.values():
            os.close(fd)
    mount_proc()
    mount_sys()
    mask_paths()
    trees: list[int] = []
    try:
        for path in KERNEL_FILE_SYSTEMS:
            trees.append(open_tree(path))
    except KernelError as exc:
        for fd in trees:
            os.close(fd)
        if exc.errno not in (errno.ENOSYS, errno.EPERM):  # EPERM: a seccomp profile that does not know it
            raise
        return None
    for path in KERNEL_FILE_SYSTEMS:
        umount2(path, MNT_DETACH)
    return trees


def attach_kernel_file_systems(trees: list[int] | None, root: str) -> None:
    """Put /proc, /dev and /sys, each with what is mounted on it, in their places in *root*."""
    for i, path in enumerate(KERNEL_FILE_SYSTEMS):
        if trees is None:
            mount(path, f"{root}{path}", None, MS_MOVE)
        else:
            move_mount(trees[i], f"{root}{path}")
            os.close(trees[i])


def mount_proc() -> None:
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def mount_sys() -> None:
    """A read-only sysfs: the network namespace's view of the devices. Two cases need the host's instead:
    in the host's network namespace its sysfs *is* the host's, which the kernel will not mount a second
    time where it is mounted already (EBUSY): it is bound alone, without what the host mounted inside it
    (the cgroup trees); and only the owner of the network namespace may mount one (EPERM: a rootless
    container sharing the host's network): the host's /sys is bound, submounts and all, as the kernel
    requires there."""
    try:
        mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    except KernelError as exc:
        if exc.errno not in (errno.EPERM, errno.EBUSY):
            raise
        recursive = exc.errno == errno.EPERM
        mount("/sys", "/sys", None, MS_BIND | (MS_REC if recursive else 0))
        remount_read_only("/sys", recursive=recursive)


def mount_dev(devices: dict[str, str]) -> None:
    """A fresh tmpfs /dev with the few devices a program expects (bound from *devices*: name -> path
    of the host's), its own devpts, and /dev/shm."""
    dev = "/dev"
    # nodev too: the devices below are bind mounts of the host's (which keep their own flags); anything
    # else created here with mknod stays unusable. That is what Docker's device cgroup achieves.
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=65536k")
    for name, source in devices.items():
        path = f"{dev}/{name}"
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))  # the mount point
        mount(source, path, None, MS_BIND)
    for d in ("pts", "shm", "mqueue"):
        os.mkdir(f"{dev}/{d}")
    try:
        mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    except KernelError as exc:  # EINVAL: group 5 (tty) is not mapped in a one-line rootless map
        if exc.errno != errno.EINVAL:
            raise
        mount("devpts", f"{dev}/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    os.symlink("pts/ptmx", f"{dev}/ptmx")
    mount("shm", f"{dev}/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k")
    mount("mqueue", f"{dev}/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{fd}", f"{dev}/{name}")
    os.symlink("/proc/self/fd", f"{dev}/fd")
    os.symlink("/proc/kcore", f"{dev}/core")


def bind_file(source: str, root: str, dest: str, readonly: bool = False) -> None:
    """Bind-mount a host file or directory at *dest* inside *root*, refusing symlinks in the image."""
    target = _resolve_inside(root, dest)
    if not os.path.lexists(target):
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "a"):
                pass
    mount(source, target, None, MS_BIND | MS_REC)
    if readonly:
        remount_read_only(target, recursive=True)


def _resolve_inside(root: str, dest: str) -> str:
    """*dest* under *root*, refusing a path that crosses a symlink (it could point at the host)."""
    path = root
    for part in [p for p in dest.split("/") if p]:
        path = f"{path}/{part}"
        if os.path.islink(path):
            raise LayerError(f"mount point {dest!r} goes through a symlink in the image; refusing to follow it")
    return path


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


def enter_rootfs(root: str) -> None:
    """pivot_root, not chroot: the old root is detached entirely, so there is no way back to the host."""
    os.chdir(root)
    pivot_root(".", ".")  # stack the old root under the new one (runc's trick: no put_old directory)
    umount2(".", MNT_DETACH)
    os.chdir("/")


def mask_paths() -> None:
    for path in MASKED_PATHS:
        with contextlib.suppress(OSError):  # missing on this kernel: nothing to hide
            if stat.S_ISDIR(os.stat(path).st_mode):
                mount("tmpfs", path, "tmpfs", MS_RDONLY)
            else:
                mount("/dev/null", path, None, MS_BIND)
    for path in READONLY_PATHS:
        with contextlib.suppress(OSError):
            if os.path.exists(path):
                mount(path, path, None, MS_BIND | MS_REC)
                remount_read_only(path, recursive=True)
