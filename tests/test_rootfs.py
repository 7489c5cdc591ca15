"""The container's /proc, /dev and /sys, made before its image is known and attached in its root afterwards
(``pid1.make_kernel_file_systems`` / ``attach_kernel_file_systems``), with and without the new mount API.

Each case runs in a child process of its own, in new mount and PID namespaces, as PID 1 does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")

CHILD = r"""
import errno, json, os, sys
from pycontainers import pid1
from pycontainers.linux import CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, KernelError, mount, unshare

def mounts():
    out = {}
    for line in open("/proc/self/mountinfo"):
        fields, _, fs = line.partition(" - ")
        parts = fields.split()
        out[parts[4]] = [fs.split()[0], parts[5].split(",")[0]]  # mount point -> [type, rw/ro]
    return out

if sys.argv[1] == "without-open_tree":  # a kernel older than 5.2
    def no_open_tree(path, clone=True):
        raise KernelError(f"open_tree({path!r})", errno.ENOSYS)
    pid1.open_tree = no_open_tree
root, network = sys.argv[2], sys.argv[3]
unshare(CLONE_NEWNS | CLONE_NEWPID | (CLONE_NEWNET if network == "none" else 0))
pid = os.fork()
if pid == 0:
    pid1.make_mounts_private()
    trees = pid1.make_kernel_file_systems()
    meanwhile = mounts()
    mount("tmpfs", root, "tmpfs")  # stands for the image's root
    for d in ("proc", "dev", "sys"):
        os.mkdir(f"{root}/{d}")
    pid1.attach_kernel_file_systems(trees, root)
    print(json.dumps({"trees": trees, "meanwhile": meanwhile, "after": mounts(),
                      "pid_1": os.listdir(f"{root}/proc/1") != [] and os.readlink(f"{root}/proc/self") == "1"}))
    os._exit(0)
os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def host_mounts() -> dict[str, list[str]]:
    out = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, fs = line.partition(" - ")
        parts = fields.split()
        out[parts[4]] = [fs.split()[0], parts[5].split(",")[0]]
    return out


def run_child(mode: str, root: Path, network: str = "none") -> dict:
    root.mkdir()
    package_parent = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", CHILD, mode, str(root), network], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": package_parent})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("mode", ["open_tree", "without-open_tree"])
def test_kernel_file_systems_are_made_first_and_attached_in_the_root(mode: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    seen = run_child(mode, root)
    after, r = seen["after"], str(root)
    assert after[f"{r}/proc"] == ["proc", "rw"]
    assert after[f"{r}/dev"] == ["tmpfs", "rw"]
    assert after[f"{r}/sys"] == ["sysfs", "ro"]
    assert after[f"{r}/dev/pts"][0] == "devpts" and after[f"{r}/dev/shm"][0] == "tmpfs"
    assert after[f"{r}/dev/null"][1] == "rw"  # the host's device, bound
    assert after[f"{r}/proc/sys"] == ["proc", "ro"]  # Docker's read-only paths
    assert after[f"{r}/sys/firmware"] == ["tmpfs", "ro"]  # and its masked ones
    assert seen["pid_1"]  # the proc mount shows the new PID namespace, where its maker is PID 1
    host = host_mounts()
    for path in ("/proc", "/dev", "/sys"):
        assert after[path] == host[path]  # the mount namespace's own copies of the host's are back in view
    # Meanwhile (the image's root being mounted) the host's /dev is in view: a store or a bind mount's
    # source under /dev (say /dev/shm) stays reachable. With open_tree they were made and held aside as
    # detached trees; without it, nothing was made ahead and they were mounted in the root at once.
    assert seen["meanwhile"]["/dev"] == host["/dev"]
    assert not any(p.startswith(("/dev/", "/proc/", "/sys/")) and p not in host for p in seen["meanwhile"])
    assert seen["trees"] is None if mode == "without-open_tree" else len(seen["trees"]) == 3


def test_in_the_hosts_network_namespace_sys_is_the_hosts_read_only(tmp_path: Path) -> None:
    """sysfs shows a network namespace's devices; in the host's (``--network host``) it is the host's own
    sysfs, already mounted at /sys (a second mount of it there is refused), so it is bound read-only."""
    after = run_child("open_tree", tmp_path / "root", network="host")["after"]
    assert after[f"{tmp_path}/root/sys"] == ["sysfs", "ro"]
    assert host_mounts()["/sys"] == ["sysfs", "rw"]
    assert not [p for p in after if p.startswith(f"{tmp_path}/root/sys/fs/")]  # not the host's cgroup trees


def test_host_path_follows_symlinks_in_a_bind_mount_as_the_container_sees_them(tmp_path: Path) -> None:
    """proot's missing-command check: a venv mounted at /venv has bin/python -> /usr/bin/python3.11, which is the
    container's /usr (absent from busybox), not the host's. Bind sources themselves are mounted, not followed."""
    from pycontainers.rootfs import host_path

    root, venv = tmp_path / "root", tmp_path / "venv"
    (root / "usr" / "bin").mkdir(parents=True)
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3.11")
    (venv / "bin" / "relative").symlink_to("python")
    (tmp_path / "link-to-venv").symlink_to(venv)
    binds = {"/venv": str(tmp_path / "link-to-venv"), "/etc/hostname": str(tmp_path / "hostname")}
    assert host_path(str(root), "/venv/bin/python", binds) == f"{root}/usr/bin/python3.11"
    assert host_path(str(root), "/venv/bin/relative", binds) == f"{root}/usr/bin/python3.11"
    assert host_path(str(root), "/venv/bin", binds) == f"{tmp_path}/link-to-venv/bin"
    assert host_path(str(root), "/etc/hostname", binds) == f"{tmp_path}/hostname"
    assert host_path(str(root), "/usr/../venv/./bin", binds) == f"{tmp_path}/link-to-venv/bin"
