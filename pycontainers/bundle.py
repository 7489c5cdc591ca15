"""OCI runtime bundles: an image as runc (or crun, youki...) takes it, proving our images are standard.

A bundle (runtime-spec ``bundle.md``) is a directory with ``config.json``, which says what to run and how
to isolate it, and the root file system it names (``rootfs/``). ``export_bundle`` flattens an image's
layers into ``rootfs/`` (applying whiteouts) and writes a ``config.json`` from the same ``ContainerSpec``
the native runtime uses, so ``runc run`` and ``pycontainers run`` start the very same container.

The runc *back end* (``run --runtime runc``) uses the same ``config.json`` (``runtime_config``) but no
copy: its ``rootfs/`` is the native overlayfs mount, which the monitor makes at each start
(``runtime.prepare_runc_bundle``), so ``diff``, ``commit`` and a restart see the writable layer as natively.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import layer as layers
from .errors import InvalidArgument
from .image import Image
from .linux import DEFAULT_CAPABILITIES
from .pid1 import MASKED_PATHS, READONLY_PATHS
from .seccomp import SeccompUnavailable, runtime_spec_seccomp
from .spec import ContainerSpec
from .store import Store

OCI_RUNTIME_VERSION = "1.0.2"


def flatten(store: Store, image: Image, dest: Path) -> None:
    """Apply the image's layers in order into *dest* (what overlayfs shows, as a plain directory)."""
    symlinks: set[str] = set()
    for desc in image.layers:
        with store.open_blob(desc.digest) as f:
            symlinks = layers.check_layer(f, f"layer {desc.digest}", lower_symlinks=symlinks)
        with store.open_blob(desc.digest) as f:
            layers.extract(f, str(dest), f"layer {desc.digest}", whiteouts="apply")


def oci_config(spec: ContainerSpec, uid: int, gid: int, groups: list[int], env: list[str], *,
               files: Iterable[tuple[str, str]] = (), cgroups_path: str | None = None) -> dict[str, Any]:
    """config.json (runtime-spec ``config.md`` and ``config-linux.md``) for *spec*.

    *files*: (host file, path inside) bind-mounted before the volumes (the runc back end's /etc/hostname,
    /etc/hosts, /etc/resolv.conf, as natively). *cgroups_path*: where runc makes the container's cgroup
    (absolute: under each hierarchy's root); without it runc chooses (a standalone bundle)."""
    caps = list(DEFAULT_CAPABILITIES)
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]
    kernel_mounts = len(mounts)
    for source, destination in files:
        mounts.append({"destination": destination, "type": "bind", "source": source, "options": ["rbind", "rw"]})
    for m in spec.process_mounts():
        mounts.append({"destination": m.destination, "type": "bind", "source": m.source,
                       "options": ["rbind", "ro" if m.readonly else "rw"]})
    # Parents before children, as Docker orders them: a volume on /etc, then /etc/hosts on top of it.
    mounts[kernel_mounts:] = sorted(mounts[kernel_mounts:], key=lambda m: m["destination"].rstrip("/").count("/"))
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "cgroup")]
    if spec.network == "none":
        namespaces.append({"type": "network"})
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    if spec.memory is not None:
        resources["memory"] = {"limit": spec.memory, "swap": spec.memory}
    if spec.pids_limit is not None:
        resources["pids"] = {"limit": spec.pids_limit}
    if spec.cpus is not None:
        resources["cpu"] = {"quota": int(spec.cpus * 100_000), "period": 100_000}
    linux: dict[str, Any] = {"cgroupsPath": cgroups_path} if cgroups_path is not None else {}
    return {
        "ociVersion": OCI_RUNTIME_VERSION,
        "process": {
            "terminal": spec.tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": groups},
            "args": spec.process_args(),
            "env": env,
            "cwd": spec.workdir,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": spec.read_only},
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": {
            **linux,
            "namespaces": namespaces,
            "resources": resources,
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
            **seccomp_config(caps),
        },
    }


def export_bundle(store: Store, image: Image, spec: ContainerSpec, dest: Path) -> Path:
    """Write ``dest/config.json`` and ``dest/rootfs/``; *dest* must not exist or be empty."""
    from .pid1 import StartError

    if dest.exists() and any(dest.iterdir()):
        raise InvalidArgument(f"{dest} is not empty: a bundle needs a directory of its own")
    rootfs = dest / "rootfs"
    rootfs.mkdir(parents=True)
    try:
        flatten(store, image, rootfs)
        try:
            config = runtime_config(spec, str(rootfs))
        except StartError as exc:
            raise InvalidArgument(str(exc)) from None
        write_config(dest, config)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return dest


def runtime_config(spec: ContainerSpec, root: str, *, files: Iterable[tuple[str, str]] = (),
                   cgroups_path: str | None = None) -> dict[str, Any]:
    """config.json for *spec*, its user (``-u``, USER) looked up in the root file system at *root*: runc
    takes numbers only. Raises ``pid1.StartError`` for a user the image does not know."""
    from .pid1 import default_env, resolve_user

    user = resolve_user(spec.user, root)
    env = default_env(spec.env, user.home, spec.hostname, spec.tty)
    return oci_config(spec, user.uid, user.gid, list(user.groups), env, files=files, cgroups_path=cgroups_path)


def write_config(bundle: Path, config: dict[str, Any]) -> None:
    (bundle / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def seccomp_config(caps: list[str]) -> dict[str, Any]:
    """Docker's default seccomp profile, for runc to compile; none on hosts the profile does not describe."""
    try:
        return {"seccomp": runtime_spec_seccomp(caps)}
    except SeccompUnavailable:
        return {}
