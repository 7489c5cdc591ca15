"""What can this machine do for containers? Small, honest probes, and the backend they imply.

A container is an ordinary process that the kernel isolates (namespaces), limits (cgroups) and gives a
file system of its own (usually overlayfs over the image's layers). How much of that a machine allows
varies a lot: root on a Linux box gets everything, a laptop user gets user namespaces, a Binder pod gets
neither and can only fake it with ``proot``. So instead of assuming, each probe below *tries* the thing
(in a short-lived subprocess with a timeout) or reads the kernel's own report of it, and says in one
plain sentence what it found and what is used instead when the answer is no.

The runtime uses :func:`backend_choice` to pick how to run containers; the setup notebook and
``pycontainers info`` show the same sentences to people. Standard library only, so it works (and stays
fast) everywhere, including where the notebook extras are not installed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from .cgroup import CgroupLayout, _own_cgroup2_path, cgroup_layout, parse_cgroup_mountinfo  # noqa: F401 (re-exported)

PROBE_TIMEOUT = 3.0
"""Seconds any one probe subprocess may take; a hung ``unshare`` must not hang ``pycontainers info``."""

BACKENDS = ("native", "rootless", "proot", "none")

# Capability names: the table's first column, and the keys backend_choice looks up.
ROOT = "root"
USER_NAMESPACES = "user namespaces"
NAMESPACES = "namespaces"
OVERLAYFS = "overlayfs"
ROOTLESS_OVERLAYFS = "overlayfs (rootless)"
CGROUPS = "cgroups"
KVM = "KVM"
NETWORK = "network"
SECCOMP = "seccomp"
KERNEL = "kernel"

_NS_FLAGS = ("--mount", "--pid", "--net", "--uts", "--ipc", "--cgroup")
_LIMIT_CONTROLLERS = ("memory", "pids", "cpu")
# Capabilities a container engine leans on, by bit number (linux/capability.h), to name any that are missing.
_CAP_NAMES = {0: "CAP_CHOWN", 1: "CAP_DAC_OVERRIDE", 6: "CAP_SETGID", 7: "CAP_SETUID", 12: "CAP_NET_ADMIN",
              18: "CAP_SYS_CHROOT", 19: "CAP_SYS_PTRACE", 21: "CAP_SYS_ADMIN", 24: "CAP_SYS_RESOURCE",
              27: "CAP_MKNOD"}
_RTF_UP = 0x0001
_RTF_REJECT = 0x0200
_KVM_GET_API_VERSION = 0xAE00


@dataclass(frozen=True)
class Capability:
    """One thing this machine can or cannot do for containers.

    ``detail`` is one plain sentence about this machine; ``fallback`` one sentence saying what is used
    instead when the capability is missing ("" when it is available).
    """

    name: str
    available: bool
    detail: str
    fallback: str


def _yes(name: str, detail: str) -> Capability:
    return Capability(name, True, detail, "")


def _no(name: str, detail: str, fallback: str) -> Capability:
    return Capability(name, False, detail, fallback)


# ------------------------------------------------------------------------------------------ helpers


def _read(path: str) -> str:
    """A /proc or /sys file's text, or "" when it does not exist here (other kernels, other systems)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _run(argv: list[str], timeout: float = PROBE_TIMEOUT) -> tuple[int | None, str]:
    """Run *argv* quietly; (exit status or None if it could not run or timed out, its last message).

    ``LC_ALL=C`` so error messages are the kernel's English ones, whatever the user's locale.
    """
    env = dict(os.environ, LC_ALL="C")
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                              timeout=timeout, env=env)
    except FileNotFoundError:
        return None, f"{argv[0]} is not installed"
    except subprocess.TimeoutExpired:
        return None, f"it did not finish within {timeout:g} s"
    except OSError as exc:
        return None, exc.strerror or str(exc)
    text = (proc.stderr.strip() or proc.stdout.strip()) if proc.returncode else (proc.stdout + proc.stderr)
    return proc.returncode, text


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1].rstrip(".") if lines else "no message"


def _join(words: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _is_root() -> bool:
    return os.geteuid() == 0


def _sysctl_int(path: str) -> int | None:
    text = _read(path).strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else None


# --------------------------------------------------------------------------------- privileges


def probe_root() -> Capability:
    """Root (euid 0) may create every namespace, mount file systems and write cgroups directly.

    Being root is not the whole story inside another container, where root can lack capabilities:
    the sentence names any of the ones an engine needs that are missing.
    """
    euid = os.geteuid()
    if euid != 0:
        return _no(ROOT, f"This process runs as an ordinary user (euid {euid}), not as root.",
                   "Containers run rootless where user namespaces are allowed (below), else under proot "
                   "(the image's files with a fake root, but no isolation).")
    match = re.search(r"^CapEff:\s*([0-9a-fA-F]+)", _read("/proc/self/status"), re.MULTILINE)
    missing = [n for bit, n in _CAP_NAMES.items() if match and not int(match.group(1), 16) >> bit & 1]
    if missing:
        return _yes(ROOT, f"This process runs as root (euid 0), though without {_join(missing)}.")
    return _yes(ROOT, "This process runs as root (euid 0) with the capabilities a container engine needs.")


def _userns_blockers() -> list[str]:
    """Kernel switches that forbid unprivileged user namespaces (Debian, Ubuntu and generic ones)."""
    blockers = []
    if _sysctl_int("/proc/sys/user/max_user_namespaces") == 0:
        blockers.append("user.max_user_namespaces is 0")
    if _sysctl_int("/proc/sys/kernel/unprivileged_userns_clone") == 0:
        blockers.append("kernel.unprivileged_userns_clone is 0")
    if _sysctl_int("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == 1:
        blockers.append("AppArmor restricts unprivileged user namespaces")
    return blockers


def probe_user_namespaces() -> Capability:
    """User namespaces let an ordinary user be "root" inside a container and nowhere else (rootless).

    Tried for real with ``unshare --user --map-root-user true``: sysctls alone miss seccomp profiles and
    AppArmor, which forbid them in many CI runners and in Binder pods.
    """
    fallback = "Without root or user namespaces, images run under proot (ptrace), as on Binder."
    blockers = _userns_blockers()
    rc, out = _run(["unshare", "--user", "--map-root-user", "true"])
    if rc is None and "not installed" in out:
        if blockers:
            return _no(USER_NAMESPACES, f"Unprivileged user namespaces are switched off ({_join(blockers)}).",
                       fallback)
        return _yes(USER_NAMESPACES, "The kernel settings allow user namespaces, though util-linux's unshare "
                                     "is not installed to try one.")
    if rc != 0:
        reason = _join(blockers) if blockers else _last_line(out)
        return _no(USER_NAMESPACES, f"Creating a user namespace failed here ({reason}).", fallback)
    if _is_root() and blockers:
        return _yes(USER_NAMESPACES, f"User namespaces work for root, but ordinary users are blocked "
                                     f"({_join(blockers)}).")
    who = "for root and for ordinary users" if _is_root() else "for this user"
    return _yes(USER_NAMESPACES, f"User namespaces work {who}: unshare --user --map-root-user succeeded.")


def probe_namespaces() -> Capability:
    """Mount, pid, net, uts, ipc and cgroup namespaces are what isolates a container's view of the system.

    As root they are created directly; otherwise inside a user namespace, which is how rootless engines
    get them. When the combined attempt fails, each kind is tried alone to name the culprit.
    """
    prefix = ["unshare"] if _is_root() else ["unshare", "--user", "--map-root-user"]
    rc, out = _run([*prefix, *_NS_FLAGS, "--fork", "true"])
    kinds = _join([flag[2:] for flag in _NS_FLAGS])
    how = "as root" if _is_root() else "inside a user namespace"
    if rc == 0:
        return _yes(NAMESPACES, f"New {kinds} namespaces can be created {how}.")
    fallback = "Processes run under proot, which fakes the file system view but isolates no pids, network or hostname."
    if rc is None:
        return _no(NAMESPACES, f"Namespaces could not be tried: {out}.", fallback)
    failing = [flag[2:] for flag in _NS_FLAGS if _run([*prefix, flag, "--fork", "true"])[0] != 0]
    what = f"{_join(failing)} namespaces" if failing else "these namespaces together"
    return _no(NAMESPACES, f"Creating {what} {how} failed here ({_last_line(out)}).", fallback)


# ------------------------------------------------------------------------------------------ overlayfs

_OVERLAY_SCRIPT = """
set -e
mount -t overlay overlay -o "$1" "$2/merged"
rm "$2/merged/gone"
echo new > "$2/merged/new"
test "$(cat "$2/upper/new")" = new
if [ -c "$2/upper/gone" ]; then echo whiteout=chardev
elif [ -e "$2/upper/gone" ]; then echo whiteout=xattr
else echo whiteout=none; fi
"""


def _try_overlay(rootless: bool, where: str | None = None) -> tuple[bool, str]:
    """Mount a tiny overlay in a private mount namespace, write through it, and look at the upper dir.

    Returns (worked, whiteout kind or error). The mount dies with the namespace; the files are removed.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="pycontainers-overlay-", dir=where, ignore_cleanup_errors=True) as tmp:
        for sub in ("lower", "upper", "work", "merged"):
            os.mkdir(os.path.join(tmp, sub))
        with open(os.path.join(tmp, "lower", "gone"), "w") as f:
            f.write("a file the container deletes\n")
        options = f"lowerdir={tmp}/lower,upperdir={tmp}/upper,workdir={tmp}/work" + (",userxattr" if rootless else "")
        user = ["--user", "--map-root-user"] if rootless else []
        rc, out = _run(["unshare", *user, "--mount", "--propagation", "private",
                        "sh", "-c", _OVERLAY_SCRIPT, "sh", options, tmp])
        # The work dir's inner directory is mode 000; make sure the clean-up can enter everything.
        for dirpath, dirnames, _ in os.walk(tmp):
            for name in dirnames:
                with contextlib.suppress(OSError):
                    os.chmod(os.path.join(dirpath, name), 0o700)
    if rc != 0:
        return False, _last_line(out).replace(tmp, "<tmp>")
    match = re.search(r"whiteout=(\w+)", out)
    return True, match.group(1) if match else "none"


_WHITEOUT_WORDS = {"chardev": "a 0/0 character device", "xattr": "a file marked with an overlay xattr",
                   "none": "nothing visible"}


def probe_overlayfs(where: str | None = None) -> Capability:
    """overlayfs stacks an image's read-only layers under one writable layer, with no copying at start.

    Listed in /proc/filesystems is not enough (some kernels forbid it on some file systems), so root
    mounts a real one on temporary directories under *where* (default: the temp dir).
    """
    fallback = "Each container gets a plain copy of its image's layers in a directory instead."
    listed = "overlay" in _read("/proc/filesystems").split()
    if not _is_root():
        state = "is listed in" if listed else "is not listed in"
        return _no(OVERLAYFS, f"overlay {state} /proc/filesystems, but only root may mount it outside a "
                              "user namespace.", "Rootless containers mount it inside a user namespace "
                              "(see the rootless row), else get a plain copy of the layers.")
    ok, info = _try_overlay(rootless=False, where=where)
    if not ok:
        return _no(OVERLAYFS, f"A test overlay mount failed here ({info}).", fallback)
    return _yes(OVERLAYFS, f"A test overlay mount worked, and deleting a lower file left "
                           f"{_WHITEOUT_WORDS.get(info, info)} as its whiteout.")


def probe_rootless_overlayfs(where: str | None = None) -> Capability:
    """Rootless engines mount overlay inside a user namespace with ``userxattr`` (Linux 5.11+).

    Worth knowing separately, because what a deletion leaves behind (the whiteout) can differ there and
    the layer differ must read it back correctly.
    """
    fallback = "Rootless containers get a plain copy of their image's layers in a directory instead."
    rc, out = _run(["unshare", "--user", "--map-root-user", "true"])
    if rc != 0:
        return _no(ROOTLESS_OVERLAYFS, "A rootless overlay cannot be tried because user namespaces are not available "
                                       "here.", fallback)
    ok, info = _try_overlay(rootless=True, where=where)
    if not ok:
        return _no(ROOTLESS_OVERLAYFS, f"An overlay mount with userxattr inside a user namespace failed here "
                                       f"({info}).", fallback)
    return _yes(ROOTLESS_OVERLAYFS, f"An overlay mount with userxattr worked inside a user namespace, and a "
                                    f"deleted file left {_WHITEOUT_WORDS.get(info, info)} as its whiteout.")


# ------------------------------------------------------------------------------------------ cgroups


def probe_cgroups() -> Capability:
    """cgroups are how ``--memory``, ``--pids-limit`` and ``--cpus`` are enforced.

    v1, v2 and hybrid layouts all occur in the wild (this course's machines are hybrid, Binder and most
    laptops pure v2), so the engine must know which controller lives where and whether it may write there.
    """
    fallback = "Containers run without memory, process-count and CPU limits."
    layout = cgroup_layout()
    if layout.version == "none":
        return _no(CGROUPS, "No cgroup file system is mounted here.", fallback)
    places = {c: layout.where(c) for c in _LIMIT_CONTROLLERS}
    found = [f"{c} at {p}" for c, p in places.items() if p]
    missing = [c for c, p in places.items() if not p]
    names = {"v1": "Cgroup v1", "v2": "Cgroup v2", "hybrid": "A hybrid cgroup layout"}
    sentence = f"{names[layout.version]} is mounted"
    if layout.version == "hybrid":
        extra = _join(list(layout.v2_controllers)) if layout.v2_controllers else "no controllers"
        sentence += f" (its cgroup2 tree at {layout.v2_mount} has {extra})"
    sentence += f", with {_join(found)}" if found else ", with none of the memory, pids and cpu controllers"
    if missing and found:
        sentence += f" but no {_join(missing)} controller"
    writable = [p for p in places.values() if p and os.access(p, os.W_OK)]
    if not _is_root() and layout.v2_mount:
        own = os.path.join(layout.v2_mount, _own_cgroup2_path(_read("/proc/self/cgroup")).lstrip("/"))
        writable += [own] if os.access(own, os.W_OK) else []
    if not writable:
        return _no(CGROUPS, sentence + ", but this user may not create cgroups there.", fallback)
    if missing:
        return _no(CGROUPS, sentence + ".", fallback)
    return _yes(CGROUPS, sentence + ".")


# ------------------------------------------------------------------------------------------ KVM


def probe_kvm() -> Capability:
    """/dev/kvm lets QEMU run a virtual machine at near-native speed, for the VM-versus-container notebook.

    Opening the device proves little: nested KVM (a VM inside a VM, like these machines) can open fine
    and still crash every guest, so this only reports the device and leaves the verdict to a test boot.
    """
    fallback = "QEMU emulates the CPU in software (TCG), which still boots a tiny VM, only more slowly."
    if not os.path.exists("/dev/kvm"):
        return _no(KVM, "There is no /dev/kvm here, so hardware virtualisation is not offered to this machine.",
                   fallback)
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return _no(KVM, f"/dev/kvm exists but cannot be opened read-write here ({exc.strerror}).", fallback)
    try:
        api = f" (KVM API {fcntl.ioctl(fd, _KVM_GET_API_VERSION)})"
    except OSError:
        api = ""
    finally:
        os.close(fd)
    return _yes(KVM, f"/dev/kvm opens read-write{api}, but whether a guest actually boots on it is only "
                     "known after the short test boot in the VM notebook (06), as nested KVM can be broken.")


# ------------------------------------------------------------------------------------------ tools


@dataclass(frozen=True)
class _Tool:
    version_args: tuple[str, ...]
    purpose: str
    """What the tool does here, as a verb phrase: "unpacks OCI images, to cross-check the layers"."""
    fallback: str
    static: bool = False


TOOLS: dict[str, _Tool] = {
    "qemu-system-x86_64": _Tool(("--version",), "boots the tiny virtual machine of the VM notebook (06)",
                                "Notebook 06 cannot boot a real VM without it (apt-get install qemu-system-x86)."),
    "runc": _Tool(("--version",), "is an alternative OCI runtime for the same containers",
                  "pycontainers' own runtime runs the containers; runc would only be an alternative."),
    "proot": _Tool(("--version",), "runs images without root or user namespaces, as on Binder",
                   "Nothing can run images where neither root nor user namespaces exist (apt-get install proot)."),
    "skopeo": _Tool(("--version",), "copies and inspects OCI images, to cross-check the store",
                    "pycontainers reads and writes OCI layouts itself; only the cross-checks are skipped."),
    "umoci": _Tool(("--version",), "unpacks OCI images, to cross-check the layers",
                   "pycontainers unpacks layers itself; only the cross-checks are skipped."),
    "busybox": _Tool(("--help",), "is all there is in the busybox base image",
                     "The busybox base image cannot be made here (apt-get install busybox-static).", static=True),
    "dot": _Tool(("-V",), "draws the notebooks' diagrams (graphviz)",
                 "Notebook diagrams cannot be drawn as pictures (apt-get install graphviz)."),
    "mmdebstrap": _Tool(("--version",), "makes the debian and python base images (as root, or under fakechroot)",
                        "The debian and python base images cannot be made here (apt-get install mmdebstrap "
                        "fakechroot fakeroot); busybox images still work."),
    "docker-registry": _Tool(("--version",), "is Docker's own registry, the course's Docker Hub for pull and push (07)",
                             "Notebook 07 needs a registry to push to (apt-get install docker-registry); pull "
                             "and push still work with any other registry."),
}


def is_static_elf(path: str) -> bool:
    """True for a 64-bit ELF without a PT_INTERP header: it needs no dynamic loader or libc in the image."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
                return False
            order = "little" if head[5] == 1 else "big"
            phoff = int.from_bytes(head[32:40], order)
            phentsize = int.from_bytes(head[54:56], order)
            phnum = int.from_bytes(head[56:58], order)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    types = (int.from_bytes(table[i:i + 4], order) for i in range(0, len(table) - 3, max(phentsize, 4)))
    return all(t != 3 for t in types)


def parse_version(text: str) -> str | None:
    """The version in a tool's ``--version`` output ("runc version 1.1.5" -> "1.1.5"), if any."""
    match = (re.search(r"\bversion\s+v?(\d[\w.+~:-]*)", text, re.IGNORECASE)
             or re.search(r"\bv?(\d+\.\d+[\w.+~:-]*)", text))
    return match.group(1).rstrip(".:-") if match else None


def probe_tool(name: str) -> Capability:
    """Whether an external tool is on PATH, and its version (one quick ``--version`` run).

    pycontainers does its core work itself; these tools are alternatives, cross-checks, or the only
    way to do something (proot on Binder, QEMU for the VM notebook).
    """
    tool = TOOLS[name]
    # (root's tools, runc, are in sbin, which an ordinary user's PATH lacks: found there too)
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", os.defpath), "/usr/sbin", "/sbin"]))
    if path is None:
        return _no(name, f"{name} is not on PATH here; it {tool.purpose}.", tool.fallback)
    rc, out = _run([path, *tool.version_args])
    version = parse_version(out) if rc is not None else None
    label = f"{name} {version}" if version else name
    if tool.static and not is_static_elf(path):
        return _no(name, f"{label} at {path} is dynamically linked, so it cannot run alone in an empty image.",
                   tool.fallback)
    linked = ", statically linked," if tool.static else ""
    return _yes(name, f"{label} is at {path}{linked} and {tool.purpose}.")


# ------------------------------------------------------------------------------------------ network


def parse_default_route(route_text: str) -> tuple[str, str] | None:
    """(interface, gateway) of the IPv4 default route in a /proc/net/route text, or None (pure, for tests).

    Addresses there are hexadecimal in the machine's byte order.
    """
    for line in route_text.splitlines():
        fields = line.split()
        if len(fields) < 8 or fields[0] == "Iface":
            continue
        iface, destination, gateway, flags, mask = fields[0], fields[1], fields[2], fields[3], fields[7]
        try:
            up = int(flags, 16) & _RTF_UP
            via = socket.inet_ntoa(struct.pack("=I", int(gateway, 16)))
        except (ValueError, struct.error):
            continue
        if up and int(destination, 16) == 0 and int(mask, 16) == 0:
            return iface, via
    return None


def parse_default_route6(route_text: str) -> str | None:
    """The interface of a usable IPv6 default route in a /proc/net/ipv6_route text, or None (pure)."""
    for line in route_text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            flags = int(fields[8], 16)
        except ValueError:
            continue
        if (fields[0] == "0" * 32 and fields[1] == "00" and flags & _RTF_UP and not flags & _RTF_REJECT
                and fields[9] != "lo"):
            return fields[9]
    return None


def probe_network() -> Capability:
    """A default route is what lets a container with a network reach past this machine.

    Only the routing table is read: no packet is sent, so "a route exists" is all this can honestly say.
    """
    route4 = parse_default_route(_read("/proc/net/route"))
    route6 = parse_default_route6(_read("/proc/net/ipv6_route"))
    if route4:
        also = " (and an IPv6 one)" if route6 else ""
        return _yes(NETWORK, f"A default route leaves through {route4[0]} via {route4[1]}{also}; no traffic was "
                             "sent, so whether the internet answers is not known.")
    if route6:
        return _yes(NETWORK, f"An IPv6 default route leaves through {route6}; no traffic was sent, so whether "
                             "the internet answers is not known.")
    return _no(NETWORK, "There is no default route, so nothing leaves this machine.",
               "Containers reach each other and this machine (notebook 08), nothing beyond it; images come from a "
               "registry on this machine.")


# ------------------------------------------------------------------------------------------ kernel


def probe_seccomp() -> Capability:
    """seccomp filters forbid dangerous system calls inside a container (Docker's default profile).

    /proc/self/status also tells whether *this* process is already filtered, as inside another container.
    """
    fallback = "Containers run without a system-call filter."
    match = re.search(r"^Seccomp:\s*(\d+)", _read("/proc/self/status"), re.MULTILINE)
    if not match:
        return _no(SECCOMP, "This kernel reports no seccomp support.", fallback)
    mode = {"0": "is not filtered itself", "1": "itself runs in strict mode",
            "2": "itself already runs under a filter, as inside another container"}.get(match.group(1), "has an "
                                                                                            "unknown mode")
    if not _read("/proc/sys/kernel/seccomp/actions_avail").split():
        return _no(SECCOMP, f"This kernel has only strict seccomp, no filters, and this process {mode}.", fallback)
    return _yes(SECCOMP, f"This kernel supports seccomp filters, and this process {mode}.")


def probe_kernel() -> Capability:
    """Every container on a machine shares that machine's one kernel: that is the container/VM difference."""
    info = os.uname()
    if sys.platform != "linux":
        return _no(KERNEL, f"This is {info.sysname} {info.release}, not Linux, so it has no namespaces or cgroups.",
                   "Use Binder or a Linux virtual machine, where containers run on a Linux kernel.")
    return _yes(KERNEL, f"This machine runs Linux {info.release} ({info.machine}), and every container here "
                        "shares that kernel.")


# ------------------------------------------------------------------------------------------ all together

PROBES: tuple[Callable[[], Capability], ...] = (
    probe_kernel, probe_root, probe_user_namespaces, probe_namespaces, probe_overlayfs, probe_rootless_overlayfs,
    probe_cgroups, probe_seccomp, probe_network, probe_kvm, *(partial(probe_tool, name) for name in TOOLS),
)
_PROBE_NAMES = (KERNEL, ROOT, USER_NAMESPACES, NAMESPACES, OVERLAYFS, ROOTLESS_OVERLAYFS, CGROUPS, SECCOMP,
                NETWORK, KVM, *TOOLS)

_cache: dict[int, list[Capability]] = {}
_cache_lock = threading.Lock()


def _safely(probe: Callable[[], Capability], name: str) -> Capability:
    """A probe that crashes is a bug, but it must not take ``pycontainers info`` or the notebook down."""
    try:
        return probe()
    except Exception as exc:  # reported in the sentence, not hidden
        return _no(name, f"The probe itself failed ({type(exc).__name__}: {exc}).",
                   "pycontainers assumes the capability is missing.")


def probe_all(refresh: bool = False) -> list[Capability]:
    """Every probe, in a fixed order; run concurrently (well under a second) and cached per process."""
    from concurrent.futures import ThreadPoolExecutor

    pid = os.getpid()
    with _cache_lock:
        if refresh or pid not in _cache:
            with ThreadPoolExecutor(max_workers=len(PROBES)) as pool:
                _cache[pid] = list(pool.map(_safely, PROBES, _PROBE_NAMES))
        return list(_cache[pid])


def backend_choice(caps: Iterable[Capability] | None = None) -> tuple[str, str]:
    """How pycontainers will run containers here, and one sentence why.

    native as root (real namespaces, mounts, cgroups) -> rootless where user namespaces work -> proot
    (ptrace, no real isolation) where they are forbidden, as on Binder -> none. Without *caps* (this
    machine's, probed once per process), ``PYCONTAINERS_BACKEND`` overrides it, as it overrides the engine's
    own choice (``container.default_backend``).
    """
    forced = os.environ.get("PYCONTAINERS_BACKEND", "")
    if forced and caps is None:  # (given capabilities may be another machine's: notebook 00 asks about Binder)
        return forced, f"PYCONTAINERS_BACKEND is set, so containers run with the {forced} back end here."
    have = {c.name: c.available for c in (probe_all() if caps is None else caps)}
    if not have.get(KERNEL, True):
        return "none", "This is not Linux, so there is no kernel here that could run a container."
    also_runc = ", and runc is installed as an alternative runtime" if have.get("runc") else ""
    if have.get(ROOT) and have.get(NAMESPACES):
        files = "overlayfs" if have.get(OVERLAYFS) else "copied layers"
        return "native", (f"As root, pycontainers isolates each container itself with namespaces, {files} and "
                          f"cgroups{also_runc}.")
    if have.get(USER_NAMESPACES) and have.get(ROOTLESS_OVERLAYFS):
        return "rootless", ("Without root, each container gets a user namespace in which you are root, and nowhere "
                            "else: the same namespaces and overlayfs as with root, but no cgroup limits.")
    if have.get("proot"):
        return "proot", ("Neither root nor user namespaces are available (as on Binder), so images run under "
                         "proot, which fakes root and chroot by intercepting system calls but isolates nothing.")
    return "none", ("Neither root, user namespaces nor proot are available, so images can be stored and inspected "
                    "here but not run.")


def table_rows(caps: Iterable[Capability] | None = None) -> list[tuple[str, str, str, str]]:
    """(name, "yes"/"no", detail, fallback) per capability, for a notebook table (no display code here)."""
    return [(c.name, "yes" if c.available else "no", c.detail, c.fallback)
            for c in (probe_all() if caps is None else caps)]


def summary_lines(caps: Iterable[Capability] | None = None) -> list[str]:
    """One line per capability: yes/no, its name, its sentence, and the fallback when it is missing."""
    lines = []
    for c in probe_all() if caps is None else caps:
        line = f"{'yes' if c.available else 'no '} {c.name}: {c.detail}"
        lines.append(line if c.available else f"{line} Fallback: {c.fallback}")
    return lines
