"""A container's first process, from its fork to ``execve`` of the command: what ``runc init`` is to runc.

PID 1 of the new PID namespace does, in this order::

    enter_namespaces          new mount, UTS, IPC (and network) namespaces; lo up
    make_mounts_private       nothing it mounts travels back to the host
    prepare_to_exec           default signal dispositions; a bounding set no execve can widen
    make_kernel_file_systems  /proc, /dev, /sys with Docker's masks, held aside (the image is not known yet)
    ---- the plan arrives (a warm PID 1 waits here; a cold one has it from the start) ----
    build_root                overlayfs of the image's layers, /proc /dev /sys attached, /etc files and
                              volumes bound, pivot_root; hostname; the user and the command looked up inside
    (go)                      the monitor has put it into its cgroup
    exec_command              stdio, no_new_privs, capabilities, user, seccomp, execve

A failure before ``execve`` is written to an error pipe as JSON with Docker's exit code (125 engine, 126
not executable, 127 not found); the pipe closes without a word when ``execve`` succeeds.

The *plan* is all PID 1 needs to know about its container, worked out by the monitor
(``runtime.init_plan``; cf. the OCI runtime-spec's ``config.json``, which ``runc init`` reads)::

    {"root": "<mount point of the image>", "lowers": ["<layer dir>", ...] (topmost first),
     "upper": "<writable layer>", "work": "<overlayfs scratch dir>", "userxattr": <rootless?>,
     "binds": [["<host path>", "<path inside>", <read-only?>], ...], "read_only": <--read-only?>,
     "hostname": "...", "user": "<uid|name>[:<gid|group>]", "env": ["K=V", ...], "workdir": "/...",
     "args": ["<command>", ...], "tty": <-t?>,
     "network": "none|host|given"}   (given: the monitor made the network namespace, with eth0, for us)

This module imports only the standard library's smallest parts and ``linux``: a warm monitor runs it in a
fresh, small interpreter (``forker``) whose forks are cheap to make and cheap to replace by ``execve``.
"""

from __future__ import annotations

import _signal
import contextlib
import errno
import fcntl
import json
import os
import signal
import socket
import stat
import struct
import termios

from .errors import LayerError
from .linux import (
    CLONE_NEWCGROUP,
    CLONE_NEWIPC,
    CLONE_NEWNET,
    CLONE_NEWNS,
    CLONE_NEWPID,
    CLONE_NEWUTS,
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    PR_SET_NO_NEW_PRIVS,
    KernelError,
    default_signal_action,
    load_seccomp_filter,
    mount,
    move_mount,
    open_tree,
    pivot_root,
    prctl,
    receive_fds,
    set_capabilities,
    set_process_name,
    sethostname,
    shrink_bounding_set,
    umount2,
    unshare,
)

TYPE_CHECKING = False  # typing's, without importing typing (half a megabyte in every PID 1)
if TYPE_CHECKING:
    from collections.abc import Callable

EXIT_ENGINE, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND = 125, 126, 127
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
# Docker's defaults (moby oci/defaults.go): hidden, and read-only, parts of /proc and /sys.
MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware", "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
KERNEL_FILE_SYSTEMS = ("/proc", "/dev", "/sys")
# statvfs(3) ST_* flag -> mount(2) MS_* flag, for the flags a remount must keep.
_STATVFS_TO_MOUNT = ((2, MS_NOSUID), (4, MS_NODEV), (8, MS_NOEXEC), (1024, 1024), (2048, 2048), (4096, 1 << 21))


class StartError(Exception):
    """Raised inside the container's PID 1 before execve; reported to the caller with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ENGINE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class User:
    """Who the command runs as, as the image's /etc/passwd and /etc/group say."""

    __slots__ = ("uid", "gid", "groups", "home")

    def __init__(self, uid: int, gid: int, groups: tuple[int, ...], home: str) -> None:
        self.uid, self.gid, self.groups, self.home = uid, gid, groups, home


class Command:
    """What PID 1 will execve, resolved inside the container's root."""

    __slots__ = ("path", "args", "env", "user", "tty")

    def __init__(self, path: str, args: list[str], env: list[str], user: User, tty: bool) -> None:
        self.path, self.args, self.env, self.user, self.tty = path, args, env, user, tty


# ------------------------------------------------------------------------------------------ the steps


def run_as_init(steps: Callable[[], None], err_w: int) -> None:
    """Run PID 1's *steps* (which end in execve); a failure goes to *err_w* with Docker's exit code."""
    code = EXIT_ENGINE
    try:
        steps()
    except StartError as exc:
        code = exc.exit_code
        os.write(err_w, json.dumps({"message": str(exc), "exit_code": code}).encode())
    except BaseException as exc:  # noqa: BLE001 (reported to the caller, never shown as a traceback)
        os.write(err_w, json.dumps({"message": str(exc) or type(exc).__name__, "exit_code": code}).encode())
    finally:
        os._exit(code)


def start_container(plan: dict, stdio: tuple[int, int, int], err_w: int, go_r: int,
                    seccomp_filter: bytes | None) -> None:
    """A cold start's PID 1: every step, with the plan known from the start; never returns."""

    def steps() -> None:
        kernel_trees = get_ready(plan["network"])
        command = build_root(plan, kernel_trees)
        wait_for_go(go_r)
        exec_command(command, stdio, seccomp_filter)

    run_as_init(steps, err_w)


def start_when_asked(sock: socket.socket, err_w: int, go_r: int, seccomp_filter: bytes | None) -> None:
    """A warm PID 1 (``warm.py``): every step that does not depend on the container, then wait for its
    plan and stdio on *sock*; never returns. Exits quietly if the socket closes instead."""

    def steps() -> None:
        set_process_name("pyc-warm-init")
        kernel_trees = get_ready("none")
        plan, fds = receive_fds(sock, 1 << 20, 3)
        if not plan or len(fds) != 3:  # no container after all (the warm monitor is cleaning up)
            os._exit(0)
        command = build_root(json.loads(plan), kernel_trees)
        wait_for_go(go_r)
        exec_command(command, (fds[0], fds[1], fds[2]), seccomp_filter)

    run_as_init(steps, err_w)


def get_ready(network: str) -> list[int] | None:
    """The steps before the image: namespaces, private mounts, signals and bounding set, /proc /dev /sys."""
    enter_namespaces(network)
    make_mounts_private()
    prepare_to_exec()
    return make_kernel_file_systems()


def wait_for_go(go_r: int) -> None:
    """Only the command must run inside the cgroup: moving a process between cgroup v1 hierarchies waits
    for an RCU grace period (milliseconds), so the monitor does it while we set up, then says go."""
    if not os.read(go_r, 1):
        raise StartError("the container could not be put into its cgroup, or its cgroup given its limits")
    os.close(go_r)
    unshare(CLONE_NEWCGROUP)  # now that we are in our cgroup, it becomes the root of what we see


def prepare_to_exec() -> None:
    """What the command's process needs whatever the container: default signal handling, and a
    bounding set that no later execve can gain a dropped capability from."""
    reset_signals()
    shrink_bounding_set()


def build_root(plan: dict, kernel_trees: list[int] | None) -> Command:
    """Mount the container's file system, make it the root, and find the command in it.

    *kernel_trees*: /proc, /dev and /sys, made already (``make_kernel_file_systems``)."""
    root = plan["root"]
    mount_overlay(plan["lowers"], plan["upper"], plan["work"], root, userxattr=plan["userxattr"],
                  volatile=plan["volatile"])
    attach_kernel_file_systems(kernel_trees, root)
    for source, destination, read_only in plan["binds"]:
        bind_file(source, root, destination, read_only)
    enter_rootfs(root)
    if plan["read_only"]:
        make_root_read_only()
    sethostname(plan["hostname"])
    user = resolve_user(plan["user"])
    env = default_env(plan["env"], user.home, plan["hostname"], plan["tty"])
    enter_workdir(plan["workdir"], user)
    return Command(find_executable(plan["args"][0], env), plan["args"], env, user, plan["tty"])


def exec_command(command: Command, stdio: tuple[int, int, int], seccomp_filter: bytes | None) -> None:
    """The last steps, in this order: stdio, no_new_privs, capabilities, user, seccomp, execve."""
    attach_stdio(stdio, command.tty, (command.user.uid, command.user.gid))
    prctl(PR_SET_NO_NEW_PRIVS, 1)  # setuid binaries cannot raise privileges again
    set_capabilities()
    switch_user(command.user)
    if seccomp_filter is not None:
        load_seccomp_filter(seccomp_filter)  # last: from here on, only the profile's system calls
    arg0 = command.args[0]
    try:
        os.execve(command.path, command.args, env_dict(command.env))
    except PermissionError:
        raise StartError(f'exec: "{arg0}": permission denied', EXIT_NOT_EXECUTABLE) from None
    except FileNotFoundError:
        raise StartError(f'exec: "{arg0}": no such file or directory (or its interpreter is missing)',
                         EXIT_NOT_FOUND) from None
    except OSError as exc:
        raise StartError(f'exec: "{arg0}": {exc.strerror}', EXIT_NOT_EXECUTABLE) from None


# ------------------------------------------------------------------------------------------ namespaces


def enter_namespaces(network: str) -> None:
    flags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC  # the cgroup namespace comes last (wait_for_go)
    if network == "none":
        flags |= CLONE_NEWNET
    unshare(flags)
    if network == "none":
        bring_up_loopback()


def bring_up_loopback() -> None:
    """A new network namespace has only ``lo``, and it is down: bring it up (SIOCSIFFLAGS)."""
    siocsifflags, iff_up, iff_loopback, iff_running = 0x8914, 0x1, 0x8, 0x40
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", iff_up | iff_loopback | iff_running))


# ------------------------------------------------------------------------------------------- mounts


def make_mounts_private() -> None:
    """Stop mount events from travelling back to the host (MS_PRIVATE, recursively)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)


def mount_overlay(lowers: list[str], upper: str, work: str, target: str, userxattr: bool = False,
                  volatile: bool = False) -> None:
    """Stack the layers. *userxattr*: inside a user namespace overlayfs may not use ``trusted.*``
    attributes, so its opaque markers are read from (and written as) ``user.overlay.*`` ones.
    *volatile*: the writable layer is thrown away when the container ends (``--rm``), so overlayfs need
    not sync it, which it otherwise does at unmount: a sync of the whole file system under it, waiting
    for the disk (as Podman does for ``--rm`` containers)."""
    options = (f"lowerdir={':'.join(lowers)},upperdir={upper},workdir={work}" + (",userxattr" if userxattr else "")
               + (",volatile" if volatile else ""))
    forget_volatile_marker(work)
    # nodev: a device node made inside (mknod needs only CAP_MKNOD) cannot be opened
    mount("overlay", target, "overlay", MS_NODEV, options)


def forget_volatile_marker(work: str) -> None:
    """A volatile mount leaves ``work/incompat/volatile/dirty`` behind, and overlayfs refuses every later
    mount of that work directory (after a crash, unsynced files may be lost). Ours are unmounted cleanly
    by the container's end: a container started again (``restart``) removes the marker first."""
    marker = f"{work}/work/incompat/volatile"
    try:
        os.unlink(f"{marker}/dirty")
    except FileNotFoundError:
        return
    os.rmdir(marker)
    os.rmdir(os.path.dirname(marker))


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


def make_kernel_file_systems() -> list[int] | None:
    """The container's /proc, /dev and /sys, with Docker's masks on them, before its image is known.

    They are mounted over this mount namespace's own /proc, /dev and /sys (a private copy of the host's:
    the host sees nothing), so the masks' paths are the real ones; then each tree is copied aside
    (``open_tree``) and the originals unmounted, which uncovers the host's again: a store or a bind
    mount's source under /dev (say /dev/shm) stays reachable. Returns the detached trees, for
    ``attach_kernel_file_systems``; None without ``open_tree`` (a kernel older than 5.2, or a seccomp
    profile that refuses it): then nothing is made ahead, and ``attach_kernel_file_systems`` mounts
    them in the root. Must run in the container's PID namespace: a proc mount shows the PID namespace of
    whoever mounted it.
    """
    try:
        os.close(open_tree("/", clone=False))  # can we? (a plain, unmounted handle on /)
    except KernelError as exc:
        if exc.errno not in (errno.ENOSYS, errno.EPERM):
            raise
        return None
    # The host's devices, held by descriptor: the new /dev covers the host's before they are bound into it.
    devices = {name: os.open(f"/dev/{name}", os.O_PATH | os.O_CLOEXEC) for name in DEVICES}
    try:
        mount_dev("", {name: f"/proc/self/fd/{fd}" for name, fd in devices.items()})
    finally:
        for fd in devices.values():
            os.close(fd)
    mount_proc("")
    mount_sys("")
    mask_paths("")
    trees: list[int] = []
    try:
        for path in KERNEL_FILE_SYSTEMS:
            trees.append(open_tree(path))
    except BaseException:
        for fd in trees:
            os.close(fd)
        raise
    for path in KERNEL_FILE_SYSTEMS:
        umount2(path, MNT_DETACH)
    return trees


def attach_kernel_file_systems(trees: list[int] | None, root: str) -> None:
    """Put /proc, /dev and /sys, each with what is mounted on it, in their places in *root*; or, with
    no *trees* made ahead, mount them there."""
    if trees is None:
        mount_dev(root, {name: f"/dev/{name}" for name in DEVICES})
        mount_proc(root)
        mount_sys(root)
        mask_paths(root)
        return
    for fd, path in zip(trees, KERNEL_FILE_SYSTEMS, strict=True):
        move_mount(fd, f"{root}{path}")
        os.close(fd)


def mount_proc(root: str) -> None:
    mount("proc", f"{root}/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def mount_sys(root: str) -> None:
    """A read-only sysfs: the network namespace's view of the devices. Two cases need the host's instead:
    in the host's network namespace its sysfs *is* the host's, which the kernel will not mount a second
    time where it is mounted already (EBUSY): it is bound alone, without what the host mounted inside it
    (the cgroup trees); and only the owner of the network namespace may mount one (EPERM: a rootless
    container sharing the host's network): the host's /sys is bound, submounts and all, as the kernel
    requires there."""
    try:
        mount("sysfs", f"{root}/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY)
    except KernelError as exc:
        if exc.errno not in (errno.EPERM, errno.EBUSY):
            raise
        recursive = exc.errno == errno.EPERM
        mount("/sys", f"{root}/sys", None, MS_BIND | (MS_REC if recursive else 0))
        remount_read_only(f"{root}/sys", recursive=recursive)


def mount_dev(root: str, devices: dict[str, str]) -> None:
    """A fresh tmpfs /dev with the few devices a program expects (bound from *devices*: name -> path
    of the host's), its own devpts, and /dev/shm."""
    dev = f"{root}/dev"
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


def mask_paths(root: str) -> None:
    """Docker's masked paths (a read-only tmpfs, or the container's /dev/null, over them) and read-only
    ones, under *root*'s /proc and /sys."""
    for path in (f"{root}{p}" for p in MASKED_PATHS):
        with contextlib.suppress(OSError):  # missing on this kernel: nothing to hide
            if stat.S_ISDIR(os.stat(path).st_mode):
                mount("tmpfs", path, "tmpfs", MS_RDONLY)
            else:
                mount(f"{root}/dev/null", path, None, MS_BIND)
    for path in (f"{root}{p}" for p in READONLY_PATHS):
        with contextlib.suppress(OSError):
            if os.path.exists(path):
                mount(path, path, None, MS_BIND | MS_REC)
                remount_read_only(path, recursive=True)


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
    """*dest* under *root*, the image's symbolic links followed as if *root* were / (as runc's securejoin
    does: ``/sbin`` -> ``usr/sbin`` in a merged-/usr image): an absolute target starts again at *root*, and
    ``..`` stops there, so no link leads out to the host. (Nothing of the container runs yet to change them.)"""
    parts = [p for p in dest.split("/") if p]
    resolved: list[str] = []
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        path = os.path.join(root, *resolved, part)
        if not os.path.islink(path):
            resolved.append(part)
            continue
        hops += 1
        if hops > 40:  # (the kernel's own limit: ELOOP)
            raise LayerError(f"mount point {dest!r}: too many symbolic links in the image (a loop?)")
        target = os.readlink(path)
        if target.startswith("/"):
            resolved = []
        parts = [p for p in target.split("/") if p] + parts
    return os.path.join(root, *resolved)


def enter_rootfs(root: str) -> None:
    """pivot_root, not chroot: the old root is detached entirely, so there is no way back to the host."""
    os.chdir(root)
    pivot_root(".", ".")  # stack the old root under the new one (runc's trick: no put_old directory)
    umount2(".", MNT_DETACH)
    os.chdir("/")


# ------------------------------------------------------------------------------- the user and the command


def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(spec_user: str, root: str = "/") -> User:
    """``USER``/``-u`` as Docker reads it: name or uid, optionally ``:group``, looked up in the image.

    *root* is the container's root directory (``/`` once inside it, after pivot_root)."""
    if not spec_user:
        spec_user = "0"
    name, _, group = spec_user.partition(":")
    passwd = _read_db(os.path.join(root, "etc/passwd"))
    entry = next((e for e in passwd if len(e) >= 7 and (e[0] == name or e[2] == name)), None)
    if entry is not None:
        uid, gid, home = int(entry[2]), int(entry[3]), entry[5] or "/"
    elif name.isdigit():
        uid, gid, home = int(name), 0, "/"  # a uid the image does not know: group root, as Docker
    else:
        raise StartError(f"unable to find user {name}: no matching entries in passwd file")
    groups_db = _read_db(os.path.join(root, "etc/group"))
    if group:
        g = next((e for e in groups_db if len(e) >= 3 and (e[0] == group or e[2] == group)), None)
        if g is not None:
            gid = int(g[2])
        elif group.isdigit():
            gid = int(group)
        else:
            raise StartError(f"unable to find group {group}: no matching entries in group file")
    user_name = entry[0] if entry else name
    extra = tuple(int(e[2]) for e in groups_db if len(e) >= 4 and user_name in e[3].split(","))
    return User(uid, gid, tuple(sorted({gid, *extra})), home)


def default_env(env: list[str], home: str, hostname: str, tty: bool = False) -> list[str]:
    """What Docker adds to a process's environment unless it sets them itself: HOSTNAME, HOME, and with a
    terminal (``-t``) ``TERM=xterm``, without which ``clear``, ``top`` or ``vi`` do not know how to draw."""
    keys = {item.partition("=")[0] for item in env}
    out = list(env)
    if "HOSTNAME" not in keys:
        out.append(f"HOSTNAME={hostname}")
    if "HOME" not in keys:
        out.append(f"HOME={home}")
    if tty and "TERM" not in keys:
        out.append("TERM=xterm")
    return out


def env_dict(env: list[str]) -> dict[str, str]:
    return dict(item.partition("=")[::2] for item in env)


def enter_workdir(workdir: str, user: User | None = None, exit_code: int = EXIT_ENGINE) -> None:
    """chdir into the working directory; with *user* (``run``), make it first if it is missing, owned
    by the user, as ``docker run -w`` does (``exec -w`` does not)."""
    try:
        if user is not None and not os.path.isdir(workdir):
            os.makedirs(workdir, 0o755, exist_ok=True)
            try:
                os.chown(workdir, user.uid, user.gid)
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EINVAL: a user outside a rootless map; switch_user says so
                    raise
        os.chdir(workdir)
    except OSError as exc:
        raise workdir_error(workdir, exc, exit_code) from None


def workdir_error(workdir: str, exc: OSError, exit_code: int = EXIT_ENGINE) -> StartError:
    """Docker's words for a working directory that cannot be made or entered (a file on the way: EEXIST,
    ENOTDIR), without the host path the failing call named."""
    reason = "not a directory" if exc.errno in (errno.EEXIST, errno.ENOTDIR) else (exc.strerror or str(exc)).lower()
    return StartError(f'chdir to cwd ("{workdir}") failed: {reason}', exit_code)


def find_executable(arg0: str, env: list[str], outside: Callable[[str], str] | None = None) -> str:
    """Look the command up in the container's PATH, with Docker's messages and exit codes.

    Called inside the container's root; *outside* maps a path as the container sees it to the host's,
    for proot, which is checked before proot enters the root (proot's own messages name host paths).
    """
    host = outside or (lambda p: p)
    if "/" in arg0:
        if not os.path.exists(host(arg0)):
            raise StartError(f'exec: "{arg0}": stat {arg0}: no such file or directory', EXIT_NOT_FOUND)
        if os.path.isdir(host(arg0)) or not os.access(host(arg0), os.X_OK):
            raise StartError(f'exec: "{arg0}": permission denied', EXIT_NOT_EXECUTABLE)
        return arg0
    path = env_dict(env).get("PATH", "")
    for d in path.split(":"):
        candidate = os.path.join(d or ".", arg0)
        if os.path.isfile(host(candidate)) and os.access(host(candidate), os.X_OK):
            return candidate
    raise StartError(f'exec: "{arg0}": executable file not found in $PATH', EXIT_NOT_FOUND)


# ------------------------------------------------------------------------------ stdio, signals, user


def open_console(console_socket: int, owner: tuple[int, int] | None = None) -> int:
    """runc's console socket: make the terminal in the container's own devpts, send its master out.

    A terminal made outside would work, but inside it has no name (``tty`` says "not a tty"), since its
    /dev/pts belongs to the host. A window size waiting on the socket (``struct winsize``, sent by the
    caller before the container started) is set first. Returns the slave end, which becomes stdin,
    stdout and stderr.
    """
    tiocsptlck, tiocgptn = 0x40045431, 0x80045430  # <asm-generic/ioctls.h>: unlock pty, get pty number
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, tiocsptlck, struct.pack("i", 0))
    number = struct.unpack("i", fcntl.ioctl(master, tiocgptn, b"\0" * 4))[0]
    slave = os.open(f"/dev/pts/{number}", os.O_RDWR | os.O_NOCTTY)
    if owner is not None and owner != (0, 0):  # the command's user may write to its own terminal (as runc)
        try:
            os.fchown(slave, *owner)
        except OSError as exc:
            if exc.errno != errno.EINVAL:  # EINVAL: a user outside a rootless map; switch_user says so
                raise
    with socket.socket(fileno=os.dup(console_socket)) as sock:
        with contextlib.suppress(BlockingIOError):
            window = sock.recv(8, socket.MSG_DONTWAIT)
            if len(window) == 8:
                fcntl.ioctl(master, termios.TIOCSWINSZ, window)
        socket.send_fds(sock, [b"console"], [master])
    os.close(master)
    return slave


def attach_stdio(stdio: tuple[int, int, int], tty: bool = False, owner: tuple[int, int] | None = None) -> None:
    """Make the given fds 0, 1 and 2. With *tty* and a Unix socket in place of stdin, the terminal is
    created inside the container (``open_console``), given to *owner* (uid, gid), and its master sent back
    over that socket."""
    if tty and stat.S_ISSOCK(os.fstat(stdio[0]).st_mode):
        slave = open_console(stdio[0], owner)
        stdio = (slave, slave, slave)
    for target, fd in enumerate(stdio):
        if fd != target:
            os.dup2(fd, target)  # dup2 clears close-on-exec: the command inherits 0, 1, 2
    if tty:
        # A new session whose controlling terminal is the pseudo-terminal: job control, Ctrl-C, window size.
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def reset_signals() -> None:
    """An ignored signal stays ignored across execve, and Python ignores SIGPIPE (the monitor, more):
    give the command the default dispositions a shell expects (a `trap ... TERM` must work)."""
    # _signal, not signal: the same functions without turning every number into an enum (0.3 ms).
    for sig in _signal.valid_signals():
        # getsignal is Python's own record (read from the kernel at start-up): no system call.
        if sig not in (signal.SIGKILL, signal.SIGSTOP) and _signal.getsignal(sig) != _signal.SIG_DFL:
            with contextlib.suppress(OSError, ValueError):
                _signal.signal(sig, _signal.SIG_DFL)
    for sig in set(range(1, _signal.NSIG)) - _signal.valid_signals():  # glibc's own (32, 33): see linux.py
        default_signal_action(sig)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])


def switch_user(user: User) -> None:
    try:
        os.setgroups(list(user.groups))
    except PermissionError:
        if not setgroups_denied():
            raise
        # A one-line rootless map gave up setgroups(2): keep the (single) group we have.
    try:
        os.setgid(user.gid)
        os.setuid(user.uid)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        raise StartError(f"user {user.uid}:{user.gid} does not exist in this rootless container's user namespace "
                         "(only root does: give this user ranges in /etc/subuid and /etc/subgid, with newuidmap "
                         "installed)") from None


def setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False


# ------------------------------------------------------------------------------------- warm PID 1s

FORKER_IDLE = 30.0  # seconds a forker waits for its monitor's next request before it exits
FORKER_LINGER = 1.0  # ... once its monitor is busy with a container (a detached one may run for days)


def fork_warm_pid1(fds: list[int], seccomp_filter: bytes | None) -> int:
    """Fork a warm PID 1 (``start_when_asked``) on *fds* (its socket, error pipe and go pipe); its PID.

    Through a child that makes a new PID namespace, forks PID 1 into it and exits at once: PID 1 is
    then handed to the nearest subreaper, the warm monitor, which waits for it like any child. (The
    monitor could make the namespace itself, but could not go back to its own for the next one
    without a capability over the host's user namespace, which a rootless monitor does not have.)
    """
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    middle = os.fork()
    if middle == 0:
        code = 1
        try:
            os.close(pid_r)
            unshare(CLONE_NEWPID)  # our next child is PID 1 of a new PID namespace
            pid = os.fork()
            if pid == 0:
                keep_only(*fds)  # nothing of the forker's or the monitor's
                init_sock, err_w, go_r = fds
                start_when_asked(socket.socket(fileno=init_sock), err_w, go_r, seccomp_filter)  # never returns
            os.write(pid_w, str(pid).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(pid_w)
    answer = os.read(pid_r, 32)
    os.close(pid_r)
    os.waitpid(middle, 0)
    if not answer:
        raise OSError("could not fork a PID 1 in a new PID namespace")
    return int(answer)


def keep_only(*fds: int) -> None:
    """Close every file descriptor above 2 but *fds*."""
    low = 3
    for fd in sorted(fds):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, os.sysconf("SC_OPEN_MAX"))


def forker(fd: int, seccomp_filter: bytes | None) -> None:
    """Make warm PID 1s for one warm monitor, from this small process; return when the monitor goes.

    A PID 1 forked from the monitor copies its whole Python (the engine imported: twice this one's
    memory), every page the monitor then writes is copied again, and ``execve`` tears it all down:
    a few ms of CPU and of waiting per container. This one is a fresh interpreter with only this module.
    Each request on *fd* ("fork", with PID 1's socket, error pipe and go pipe) gets ``fork_warm_pid1``;
    the answer is "pid <PID>", or "failed".

    "busy" says the monitor has a container now: unless it asks again within ``FORKER_LINGER``
    seconds, the forker exits (the monitor starts a new one when containers come quickly again), as it
    does after ``FORKER_IDLE`` seconds without a word: a forker costs its memory only while it pays.
    """
    sock = socket.socket(fileno=fd)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    sock.settimeout(FORKER_IDLE)
    while True:
        try:
            request, fds = receive_fds(sock, 64, 3)
        except OSError:  # (a timeout too)
            return
        if request == b"busy":
            sock.settimeout(FORKER_LINGER)
            continue
        if request != b"fork" or len(fds) != 3:
            return  # the monitor has gone (or let us go)
        sock.settimeout(FORKER_IDLE)
        try:
            answer = b"pid %d" % fork_warm_pid1(fds, seccomp_filter)
        except OSError:
            answer = b"failed"
        finally:
            for f in fds:
                os.close(f)
        try:
            sock.send(answer)
        except OSError:
            return


def serve_forker(fd: int) -> None:
    """The forker's entry point (``python -c``): its first message is the seccomp filter ("seccomp "
    and the program, or nothing after the space when there is none); then it serves (``forker``)."""
    set_process_name("pyc-forker")
    sock = socket.socket(fileno=fd)
    first, _ = receive_fds(sock, 1 << 20, 0)
    if not first.startswith(b"seccomp "):
        return
    forker(sock.detach(), first[len(b"seccomp "):] or None)
