"""The Linux system calls a container is made of, one small function each.

Python 3.11's ``os`` module has no ``unshare``, ``setns``, ``mount`` or ``pivot_root``, so they are
called from libc through ctypes. Every failure raises ``KernelError`` naming the system call and the
path or flag it was given, the way crun reports errors: ``mount("proc", "/x/proc"): Permission denied``.
"""

from __future__ import annotations

import array
import ctypes
import errno
import fcntl
import os
import socket
import struct

from .errors import PyContainersError, SeccompError

try:  # glibc's name: find_library would run ``ldconfig -p`` (a few ms at every start) to tell us so
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # another C library (musl...)
    import ctypes.util

    _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

# <sched.h>: namespace flags for unshare(2), setns(2) and clone(2).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS = {
    "mnt": CLONE_NEWNS, "uts": CLONE_NEWUTS, "ipc": CLONE_NEWIPC, "pid": CLONE_NEWPID,
    "net": CLONE_NEWNET, "cgroup": CLONE_NEWCGROUP, "user": CLONE_NEWUSER,
}

# <sys/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2
# The new mount API (Linux 5.2): one number on every architecture, as for every system call since 5.1.
SYS_OPEN_TREE, SYS_MOVE_MOUNT = 428, 429
OPEN_TREE_CLONE = 1
AT_RECURSIVE = 0x8000
AT_FDCWD = -100
MOVE_MOUNT_F_EMPTY_PATH = 0x4
# openat2(2) (Linux 5.6): a lookup the kernel itself confines to a directory, whatever symlinks it meets.
SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10  # the directory is "/" for the lookup: absolute symlinks and ".." stay inside it

# <sys/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36


class KernelError(PyContainersError):
    """A system call failed; the message names the call, its argument and the kernel's reason."""

    def __init__(self, call: str, errno_: int) -> None:
        self.errno = errno_
        super().__init__(f"{call}: {os.strerror(errno_)}")


def _check(result: int, call: str) -> int:
    if result == -1:
        raise KernelError(call, ctypes.get_errno())
    return result


def _b(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({fd})")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    result = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(result, f"mount({source!r}, {target!r}, {fstype!r})")


def umount2(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount2({target!r})")


def open_tree(path: str, clone: bool = True) -> int:
    """A detached copy of the mount at *path* and of everything mounted under it (``mount --rbind`` to
    nowhere): it stays mounted, reachable only through the returned descriptor, until ``move_mount``.
    *clone* False: no copy, a mere handle on *path* (to learn whether this kernel has ``open_tree``)."""
    flags = (OPEN_TREE_CLONE | AT_RECURSIVE if clone else 0) | os.O_CLOEXEC
    return _check(_libc.syscall(ctypes.c_long(SYS_OPEN_TREE), ctypes.c_int(AT_FDCWD), _b(path), ctypes.c_uint(flags)),
                  f"open_tree({path!r})")


def move_mount(tree: int, target: str) -> None:
    """Attach a detached mount tree (from ``open_tree``) at *target*."""
    _check(_libc.syscall(ctypes.c_long(SYS_MOVE_MOUNT), ctypes.c_int(tree), b"", ctypes.c_int(AT_FDCWD),
                         _b(target), ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH)), f"move_mount({target!r})")


class _OpenHow(ctypes.Structure):  # struct open_how
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dir_fd: int, path: str, flags: int, resolve: int) -> int:
    """open *path* relative to *dir_fd* with the ``RESOLVE_*`` rules *resolve*; a new descriptor (close-on-exec)."""
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    return _check(_libc.syscall(ctypes.c_long(SYS_OPENAT2), ctypes.c_int(dir_fd), _b(path), ctypes.byref(how),
                                ctypes.c_size_t(ctypes.sizeof(how))), f"openat2({path!r})")


# <linux/fs.h>: a file's attribute flags (``lsattr``/``chattr``); the ioctls read and write an int
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_TOPDIR_FL = 0x00020000  # chattr +T: "top of a directory hierarchy", for ext2/3/4's Orlov allocator


def set_top_directory(path: str) -> bool:
    """Mark the directory *path* ``chattr +T``, so that ext2/3/4 spread its subdirectories over the disk's
    block groups, as they spread those of ``/``; False where the file system has no such flag.

    Why: ext4 puts a new directory, and the files in it, in its parent's block group, where each new inode
    is looked for from the group's start. Without a journal (these course machines' disk), every inode freed
    in the last minute is skipped, after reading it: ``recently_deleted`` in the kernel. So a stream of
    containers, each making and deleting some twenty inodes in ``containers/``, made each new file cost up
    to a millisecond. Spread, each container's directory is in a group of its own."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, flags, True)
        if not flags[0] & FS_TOPDIR_FL:
            flags[0] |= FS_TOPDIR_FL
            fcntl.ioctl(fd, FS_IOC_SETFLAGS, flags)
        return True
    except OSError:  # ENOTTY, EOPNOTSUPP, EINVAL...: not ext2/3/4 (tmpfs, xfs, btrfs, overlayfs)
        return False
    finally:
        os.close(fd)


def pivot_root(new_root: str, put_old: str) -> None:
    # glibc has no wrapper: syscall(SYS_pivot_root = 155 on x86_64, 41 on aarch64)
    nr = 41 if os.uname().machine == "aarch64" else 155
    _check(_libc.syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)),
           f"pivot_root({new_root!r}, {put_old!r})")


class _KernelSigaction(ctypes.Structure):  # the kernel's struct sigaction (x86_64, arm64), not glibc's
    _fields_ = [("handler", ctypes.c_void_p), ("flags", ctypes.c_ulong), ("restorer", ctypes.c_void_p),
                ("mask", ctypes.c_ulong)]


def default_signal_action(sig: int) -> None:
    """rt_sigaction(sig, SIG_DFL) straight to the kernel, for the two real-time signals glibc keeps for
    itself (32, 33): its sigaction() refuses them, yet a program started through posix_spawn(3) inherits
    them ignored (glibc ignores them in the child before execve), and so would a container's command."""
    nr = 134 if os.uname().machine == "aarch64" else 13
    action = _KernelSigaction(None, 0, None, 0)
    _check(_libc.syscall(ctypes.c_long(nr), ctypes.c_int(sig), ctypes.byref(action), None, ctypes.c_size_t(8)),
           f"rt_sigaction({sig}, SIG_DFL)")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), f"sethostname({name!r})")


def set_process_name(name: str) -> None:
    """The name ``ps -e``, ``top`` and /proc/PID/comm show (at most 15 bytes), like runc's "runc:[2:INIT]"."""
    raw = ctypes.create_string_buffer(name.encode()[:15])
    _check(_libc.prctl(ctypes.c_int(PR_SET_NAME), raw, ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)),
           f"prctl(PR_SET_NAME, {name!r})")


def prctl(option: int, arg2: int = 0) -> None:
    _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(0), ctypes.c_ulong(0),
                       ctypes.c_ulong(0)), f"prctl({option}, {arg2})")


# ------------------------------------------------------------------------------------- capabilities

# Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
CAPABILITY_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3, "CAP_FSETID": 4,
    "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8, "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11, "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15, "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19, "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27, "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31, "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35, "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39, "CAP_CHECKPOINT_RESTORE": 40,
}


def last_capability() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return max(CAPABILITY_NUMBERS.values())


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capability_mask(names: tuple[str, ...]) -> int:
    mask = 0
    for name in names:
        mask |= 1 << CAPABILITY_NUMBERS[name]
    return mask


def drop_capabilities(keep: tuple[str, ...] = DEFAULT_CAPABILITIES) -> None:
    """Shrink the bounding set to *keep*, then set effective = permitted = *keep*, inheritable = none.

    After ``execve`` a root process keeps exactly these: ``mount``, ``insmod`` or writing
    ``/proc/sysrq-trigger`` need capabilities (SYS_ADMIN, SYS_MODULE) that are not in Docker's list.
    """
    shrink_bounding_set(keep)
    set_capabilities(keep)


def shrink_bounding_set(keep: tuple[str, ...] = DEFAULT_CAPABILITIES) -> None:
    """prctl(PR_CAPBSET_DROP) every capability not in *keep*: no later ``execve`` can gain them back.

    The capabilities this process has now stay usable (mounting, for one) until ``set_capabilities``.
    """
    mask = capability_mask(keep)
    for cap in range(last_capability() + 1):
        if not mask & (1 << cap):
            prctl(PR_CAPBSET_DROP, cap)


def set_capabilities(keep: tuple[str, ...] = DEFAULT_CAPABILITIES) -> None:
    """capset(2): effective = permitted = *keep*, inheritable = none."""
    mask = capability_mask(keep)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    data = (_CapData * 2)()
    for i in range(2):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = data[i].permitted = word
        data[i].inheritable = 0  # empty, as Docker since CVE-2022-24769
    _check(_libc.capset(ctypes.byref(header), data), "capset()")


def receive_fds(sock: socket.socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    """recvmsg(2) a message and the file descriptors sent with it (SCM_RIGHTS), close-on-exec.

    ``socket.recv_fds`` would do, but before Python 3.13 it drops its *flags* argument, so the
    descriptors it returns would be inherited by whatever the receiver execs (a container's command).
    """
    fds = array.array("i")
    msg, ancdata, _flags, _addr = sock.recvmsg(bufsize, socket.CMSG_LEN(maxfds * fds.itemsize),
                                               socket.MSG_CMSG_CLOEXEC)
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return msg, list(fds)


# ------------------------------------------------------------------------------------------- seccomp

# <linux/filter.h>, <linux/seccomp.h>, <linux/prctl.h>, and the seccomp(2) system call number per machine
SOCK_FILTER = struct.Struct("=HBBI")  # struct sock_filter {u16 code; u8 jt; u8 jf; u32 k}, host byte order
BPF_MAXINSNS = 4096
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_MODE_FILTER = 2
PR_SET_SECCOMP = 22
SYS_SECCOMP = {"x86_64": 317}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def load_seccomp_filter(program: bytes) -> None:
    """Attach a seccomp BPF *program* (``seccomp.compile_filter``) to this process, and so to what it
    ``execve``s and forks; irreversible.

    Meant for the container's init, single-threaded, just before ``execve``: only the calling thread
    is filtered. Sets no_new_privs first (the runtime already has; setting it again is harmless), which
    lets a process without CAP_SYS_ADMIN install a filter. Takes about half a millisecond for Docker's
    profile, nearly all of it in the kernel, which checks the ~1250 instructions, JIT-compiles them and
    works out which system calls it can allow without running the filter at all.
    """
    count, rest = divmod(len(program), SOCK_FILTER.size)
    if rest or not 0 < count <= BPF_MAXINSNS:
        raise SeccompError(f"seccomp: {len(program)} bytes is not a BPF program of 1 to {BPF_MAXINSNS} "
                           "instructions")
    # The kernel copies the program; pointing at the bytes object itself saves a copy and, on the first
    # call, the creation of a ctypes array type (tens of microseconds).
    fprog = _SockFprog(count, ctypes.cast(ctypes.c_char_p(program), ctypes.c_void_p))
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    seccomp_set_mode_filter(fprog)


def seccomp_set_mode_filter(fprog: _SockFprog) -> None:
    """seccomp(SECCOMP_SET_MODE_FILTER, 0, prog); on kernels before 3.17, prctl(PR_SET_SECCOMP)."""
    nr = SYS_SECCOMP.get(os.uname().machine)
    if nr is not None:
        result = _libc.syscall(ctypes.c_long(nr), ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(0),
                               ctypes.byref(fprog))
        if result != -1 or ctypes.get_errno() != errno.ENOSYS:
            _check(result, "seccomp(SECCOMP_SET_MODE_FILTER)")
            return
    _check(_libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(fprog),
                       ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl(PR_SET_SECCOMP)")
