"""Docker's default seccomp profile: which system calls a container may make at all.

Capabilities decide what a *permitted* system call may do; seccomp decides which system calls reach the
kernel in the first place. A classic-BPF program, attached to the process just before ``execve`` and
inherited by everything it starts, looks at each system call's number (and a few arguments) and either
lets it through or makes it fail at once. Much of the kernel a container never needs (the keyring,
``kexec``, modules, new namespaces, ``bpf``) is thereby out of reach, even through a bug in the kernel.

The profile below is Docker's (moby ``profiles/seccomp/default.json``, the same as containerd's), in our
own order, grouped by purpose. Like Docker's it is an allowlist:

* everything not listed fails with ``EPERM`` (moby: ``"defaultAction": "SCMP_ACT_ERRNO"``,
  ``"defaultErrnoRet": 1``);
* some rules apply only when the container has a capability (``CAP_SYS_ADMIN`` unlocks ``mount``,
  ``unshare``, ``clone`` with namespace flags, ...), some only when it lacks one (without
  ``CAP_SYS_ADMIN``, ``clone`` may not create namespaces and ``clone3`` fails with ``ENOSYS``, because
  a filter cannot read ``clone3``'s flags, which live in memory, and glibc falls back to ``clone`` on
  ``ENOSYS`` but not on ``EPERM``);
* ``personality`` only with the harmless personas, ``socket`` with any family but ``AF_VSOCK``.

"Newer Docker returns ENOSYS for unknown system calls": moby's profile still says EPERM. The ``ENOSYS``
comes from runc, which puts a small stub in front of libseccomp's program (its ``patchbpf``): a system
call numbered above the highest one the profile names gets ``ENOSYS``, as on a kernel that lacks it, so
a new glibc running on a new kernel falls back to the old call (``fchmodat2`` to ``fchmodat``, say)
instead of failing on ``EPERM``. ``compile_filter`` adds the same stub, so our containers and runc's
answer alike. Known but unlisted system calls (``keyctl``, ``mount``, ...) still get ``EPERM``.

Two outputs come from the one ``PROFILE`` below: ``runtime_spec_seccomp`` writes the ``linux.seccomp``
object of an OCI ``config.json`` (runc compiles it itself), and ``compile_filter`` compiles the BPF
program with libseccomp (through ctypes) once per capability set, in the process that forks
containers. ``load_filter`` needs no libseccomp: it is one ``seccomp(2)`` call in the container's init,
just before ``execve``.

Only x86_64 hosts are supported; as in Docker, the filter also covers the two other ABIs an x86_64
kernel offers to the same process (i386 through ``int 0x80``, and x32, whose system call numbers carry
bit 30), so neither is a way around it. Differences from moby kept on purpose: the rules moby has for
arm, ppc64le, s390 and riscv64 are left out, since those hosts are refused anyway.

Source: moby's profile as of Docker 28 (2025): its ``default.json``, then io_uring removed (moby#46762),
the system calls of kernels 5.17-6.7 and 6.8-6.13 added (moby#47341, moby#50077), ``lsm_*`` put behind
CAP_SYS_ADMIN (moby#50097). A name the installed libseccomp does not know is skipped, as runc does, and
then falls under the ENOSYS stub.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import InvalidArgument, SeccompError
from .linux import (
    BPF_MAXINSNS,
    CAPABILITY_NUMBERS,
    DEFAULT_CAPABILITIES,
    NAMESPACE_FLAGS,
    SOCK_FILTER,
    load_seccomp_filter,
)

# Loading a filter is one system call, in linux.py: the container's PID 1 does it without this module.
load_filter = load_seccomp_filter

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from typing import Any


class SeccompUnavailable(SeccompError):
    """This host cannot build the filter: libseccomp is missing or the architecture is not supported."""


# ------------------------------------------------------------------------------------------ the profile

ALLOW = "SCMP_ACT_ALLOW"
ERRNO = "SCMP_ACT_ERRNO"
DEFAULT_ACTION = ERRNO
DEFAULT_ERRNO = errno.EPERM


@dataclass(frozen=True)
class Arg:
    """A condition on argument *index* of the system call, as in the runtime-spec (``op`` is SCMP_CMP_*)."""

    index: int
    op: str
    value: int
    value_two: int = 0


@dataclass(frozen=True)
class Rule:
    """System calls that get *action* (when their *args* match), possibly only for some containers.

    *needs*: the rule applies only if the container has this capability (Docker's ``includes.caps``).
    *unless*: it applies only if the container lacks it (``excludes.caps``).
    *min_kernel*: only on kernels at least this recent (``includes.minKernel``).
    """

    names: tuple[str, ...]
    action: str = ALLOW
    args: tuple[Arg, ...] = ()
    errno_ret: int | None = None
    needs: str | None = None
    unless: str | None = None
    min_kernel: tuple[int, int] | None = None


def _allow(names: str, **kw: Any) -> Rule:
    return Rule(tuple(names.split()), **kw)


# Names with a 32/64/time64 suffix are the i386 variants of the same calls (the filter covers i386 too).
PROCESSES = _allow("""
    fork vfork execve execveat exit exit_group wait4 waitid waitpid restart_syscall
    getpid getppid gettid getpgid getpgrp setpgid getsid setsid set_tid_address
    set_robust_list get_robust_list rseq membarrier prctl capget capset seccomp
    landlock_add_rule landlock_create_ruleset landlock_restrict_self
    kill tkill tgkill pidfd_open pidfd_send_signal process_mrelease
    getrlimit setrlimit ugetrlimit prlimit64 getrusage times getpriority setpriority
    uname sysinfo getcpu getrandom get_thread_area set_thread_area
""")
SCHEDULING = _allow("""
    sched_yield sched_getaffinity sched_setaffinity sched_getattr sched_setattr sched_getparam sched_setparam
    sched_getscheduler sched_setscheduler sched_get_priority_max sched_get_priority_min
    sched_rr_get_interval sched_rr_get_interval_time64 ioprio_get ioprio_set
""")
# Changing identity is safe to allow: the kernel checks CAP_SETUID / CAP_SETGID itself.
IDENTITY = _allow("""
    getuid getuid32 geteuid geteuid32 getgid getgid32 getegid getegid32 getgroups getgroups32
    getresuid getresuid32 getresgid getresgid32 setuid setuid32 setgid setgid32 setreuid setreuid32
    setregid setregid32 setresuid setresuid32 setresgid setresgid32 setfsuid setfsuid32 setfsgid setfsgid32
    setgroups setgroups32
""")
SIGNALS = _allow("""
    rt_sigaction rt_sigprocmask rt_sigpending rt_sigsuspend rt_sigqueueinfo rt_tgsigqueueinfo rt_sigreturn
    rt_sigtimedwait rt_sigtimedwait_time64 sigaltstack sigprocmask sigreturn signalfd signalfd4 pause alarm
""")
# Reading the clocks, sleeping and timers. adjtimex / clock_adjtime only *read* without CAP_SYS_TIME.
TIME = _allow("""
    time gettimeofday clock_gettime clock_gettime64 clock_getres clock_getres_time64
    clock_nanosleep clock_nanosleep_time64 nanosleep adjtimex clock_adjtime clock_adjtime64
    getitimer setitimer timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
    timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
    timerfd_settime64
""")
MEMORY = _allow("""
    brk mmap mmap2 munmap mremap mprotect madvise mincore msync remap_file_pages
    mlock mlock2 mlockall munlock munlockall memfd_create memfd_secret
    pkey_alloc pkey_free pkey_mprotect map_shadow_stack mseal
""")
FILE_IO = _allow("""
    open openat openat2 creat close close_range read readv pread64 preadv preadv2
    write writev pwrite64 pwritev pwritev2 lseek _llseek dup dup2 dup3 fcntl fcntl64 flock ioctl
    fsync fdatasync sync syncfs sync_file_range fallocate truncate truncate64 ftruncate ftruncate64
    fadvise64 fadvise64_64 readahead cachestat sendfile sendfile64 splice tee vmsplice copy_file_range
    name_to_handle_at
""")
FILE_METADATA = _allow("""
    stat stat64 lstat lstat64 fstat fstat64 fstatat64 newfstatat statx statfs statfs64 fstatfs fstatfs64
    access faccessat faccessat2 chmod fchmod fchmodat fchmodat2 chown chown32 fchown fchown32 fchownat
    lchown lchown32 umask utime utimes utimensat utimensat_time64 futimesat
    getcwd chdir fchdir mkdir mkdirat mknod mknodat rmdir rename renameat renameat2
    link linkat symlink symlinkat unlink unlinkat readlink readlinkat getdents getdents64
    getxattr lgetxattr fgetxattr getxattrat setxattr lsetxattr fsetxattr setxattrat
    listxattr llistxattr flistxattr listxattrat removexattr lremovexattr fremovexattr removexattrat
    statmount listmount
""")
# Waiting for many things at once, and being told about files changing.
EVENTS = _allow("""
    select _newselect pselect6 pselect6_time64 poll ppoll ppoll_time64
    epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_wait epoll_wait_old epoll_pwait epoll_pwait2
    eventfd eventfd2 inotify_init inotify_init1 inotify_add_watch inotify_rm_watch fanotify_mark
    futex futex_time64 futex_waitv futex_wait futex_wake futex_requeue
""")
# Linux AIO only: the io_uring_* calls were dropped in Docker 25, since operations submitted through a
# ring are never seen by seccomp.
ASYNC_IO = _allow("io_setup io_destroy io_submit io_cancel io_getevents io_pgetevents io_pgetevents_time64")
IPC = _allow("""
    pipe pipe2 ipc msgget msgctl msgsnd msgrcv semget semctl semop semtimedop semtimedop_time64
    shmget shmctl shmat shmdt mq_open mq_unlink mq_getsetattr mq_notify mq_timedsend mq_timedsend_time64
    mq_timedreceive mq_timedreceive_time64
""")
SOCKETS = _allow("""
    socketpair socketcall bind listen accept accept4 connect shutdown getsockname getpeername
    getsockopt setsockopt send sendto sendmsg sendmmsg recv recvfrom recvmsg recvmmsg recvmmsg_time64
""")
X86_ONLY = _allow("arch_prctl modify_ldt")
# The uprobe return trampoline calls this one itself; blocking it would kill traced programs.
TRACING = _allow("uretprobe")

AF_VSOCK = 40
# Any address family but vsock (host <-> virtual machine sockets reach past the container's network).
SOCKET = Rule(("socket",), args=(Arg(0, "SCMP_CMP_NE", AF_VSOCK),))

# personality(2): Linux itself (0), PER_LINUX32 (8), UNAME26 (0x20000), both, and 0xffffffff, which only
# asks for the current persona. Others (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC...) weaken the process.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
PERSONALITY = tuple(Rule(("personality",), args=(Arg(0, "SCMP_CMP_EQ", p),)) for p in PERSONALITIES)

# Before Linux 4.8 a tracer could rewrite a system call after seccomp had approved it.
PTRACE = _allow("ptrace process_vm_readv process_vm_writev", min_kernel=(4, 8))

NAMESPACE_MASK = sum(NAMESPACE_FLAGS.values())  # CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP
# Without CAP_SYS_ADMIN: clone for threads and processes, never for namespaces; clone3 -> ENOSYS.
CLONE_WITHOUT_NAMESPACES = Rule(("clone",), args=(Arg(0, "SCMP_CMP_MASKED_EQ", NAMESPACE_MASK, 0),),
                                unless="CAP_SYS_ADMIN")
CLONE3_ENOSYS = Rule(("clone3",), action=ERRNO, errno_ret=errno.ENOSYS, unless="CAP_SYS_ADMIN")

# What each capability unlocks, beyond the kernel's own check of that capability.
WITH_CAPABILITY = (
    _allow("""
        mount umount umount2 mount_setattr move_mount open_tree fsopen fsconfig fsmount fspick
        unshare setns clone clone3 sethostname setdomainname quotactl quotactl_fd
        bpf perf_event_open fanotify_init lookup_dcookie syslog
        lsm_get_self_attr lsm_set_self_attr lsm_list_modules
    """, needs="CAP_SYS_ADMIN"),
    _allow("open_by_handle_at", needs="CAP_DAC_READ_SEARCH"),
    _allow("reboot", needs="CAP_SYS_BOOT"),
    _allow("chroot", needs="CAP_SYS_CHROOT"),
    _allow("init_module finit_module delete_module", needs="CAP_SYS_MODULE"),
    _allow("acct", needs="CAP_SYS_PACCT"),
    _allow("ptrace process_vm_readv process_vm_writev kcmp pidfd_getfd process_madvise", needs="CAP_SYS_PTRACE"),
    _allow("iopl ioperm", needs="CAP_SYS_RAWIO"),
    _allow("settimeofday stime clock_settime clock_settime64", needs="CAP_SYS_TIME"),
    _allow("vhangup", needs="CAP_SYS_TTY_CONFIG"),
    _allow("mbind get_mempolicy set_mempolicy set_mempolicy_home_node", needs="CAP_SYS_NICE"),
    _allow("syslog", needs="CAP_SYSLOG"),
    _allow("bpf", needs="CAP_BPF"),
    _allow("perf_event_open", needs="CAP_PERFMON"),
)

PROFILE: tuple[Rule, ...] = (
    PROCESSES, SCHEDULING, IDENTITY, SIGNALS, TIME, MEMORY, FILE_IO, FILE_METADATA, EVENTS, ASYNC_IO, IPC,
    SOCKETS, X86_ONLY, TRACING, SOCKET, *PERSONALITY, PTRACE, CLONE_WITHOUT_NAMESPACES, CLONE3_ENOSYS,
    *WITH_CAPABILITY,
)
# Never allowed, whatever the capabilities (for reference and tests): the keyring is not namespaced,
# kexec and swap act on the whole machine, pivot_root and userfaultfd are classic exploit helpers.
NEVER_ALLOWED = ("keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load", "swapon", "swapoff",
                 "pivot_root", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
                 "move_pages", "migrate_pages", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl", "vm86",
                 "vm86old", "create_module", "get_kernel_syms", "query_module")

# OCI architecture names; the first is the native one (x86_64 hosts only, see module docstring).
ARCHITECTURES = ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
SUPPORTED_MACHINES = ("x86_64",)


def check_architecture() -> None:
    """Refuse hosts whose system call numbers this profile does not describe."""
    machine = os.uname().machine
    if machine not in SUPPORTED_MACHINES:
        raise SeccompUnavailable(f"seccomp: architecture {machine} is not supported (only "
                                 f"{', '.join(SUPPORTED_MACHINES)})")


def normalize_capabilities(capabilities: Iterable[str]) -> frozenset[str]:
    """``SYS_ADMIN`` or ``cap_sys_admin`` -> ``CAP_SYS_ADMIN``; unknown names are an error, not ignored."""
    out = set()
    for cap in capabilities:
        name = cap.upper() if cap.upper().startswith("CAP_") else f"CAP_{cap.upper()}"
        if name not in CAPABILITY_NUMBERS:
            raise InvalidArgument(f"seccomp: unknown capability {cap!r}")
        out.add(name)
    return frozenset(out)


def kernel_version() -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def applies(rule: Rule, capabilities: frozenset[str]) -> bool:
    """Docker's includes/excludes, decided when the container is created (as moby does)."""
    if rule.needs is not None and rule.needs not in capabilities:
        return False
    if rule.unless is not None and rule.unless in capabilities:
        return False
    return rule.min_kernel is None or kernel_version() >= rule.min_kernel


def rules_for(capabilities: Iterable[str]) -> list[Rule]:
    """The rules of ``PROFILE`` that apply to a container with these (bounding) capabilities."""
    caps = normalize_capabilities(capabilities)
    return [rule for rule in PROFILE if applies(rule, caps)]


# ------------------------------------------------------------------------------ OCI runtime-spec output


def runtime_spec_seccomp(capabilities: Iterable[str] = DEFAULT_CAPABILITIES) -> dict[str, Any]:
    """The ``linux.seccomp`` object of ``config.json`` (runtime-spec ``config-linux.md``), for runc.

    Names that runc's libseccomp does not know are skipped by runc, as for Docker's profile.
    """
    check_architecture()
    syscalls = []
    for rule in rules_for(capabilities):
        entry: dict[str, Any] = {"names": list(rule.names), "action": rule.action}
        if rule.args:
            entry["args"] = [{"index": a.index, "value": a.value, "valueTwo": a.value_two, "op": a.op}
                             for a in rule.args]
        if rule.errno_ret is not None:
            entry["errnoRet"] = rule.errno_ret
        syscalls.append(entry)
    return {"defaultAction": DEFAULT_ACTION, "defaultErrnoRet": DEFAULT_ERRNO,
            "architectures": list(ARCHITECTURES), "syscalls": syscalls}


# ------------------------------------------------------------------------------ libseccomp, via ctypes

# <seccomp.h> (libseccomp 2.5)
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
SCMP_ARCH = {"SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X32": 0x4000003E}
SCMP_CMP = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
            "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
SCMP_FLTATR_CTL_OPTIMIZE = 8
NR_SCMP_ERROR = -1


class _ScmpVersion(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


class _ScmpArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


@functools.cache
def _libseccomp() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        raise SeccompUnavailable("seccomp: libseccomp is not installed (apt-get install libseccomp2), so "
                                 "the default seccomp profile cannot be compiled") from None
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_release.argtypes = [ctypes.c_void_p]
    lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ScmpArgCmp)]
    lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.seccomp_version.restype = ctypes.POINTER(_ScmpVersion)
    return lib


def _fail(call: str, rc: int) -> SeccompError:
    """libseccomp returns -errno: ``seccomp_rule_add(clone): Invalid argument``, as crun words it."""
    return SeccompError(f"{call}: {os.strerror(-rc) if rc < 0 else 'failed'}")


def _action(rule: Rule) -> int:
    if rule.action == ALLOW:
        return SCMP_ACT_ALLOW
    if rule.action == ERRNO:
        return SCMP_ACT_ERRNO | ((DEFAULT_ERRNO if rule.errno_ret is None else rule.errno_ret) & 0xFFFF)
    raise SeccompError(f"seccomp: action {rule.action} is not supported")


def seccomp_init(lib: ctypes.CDLL) -> int:
    ctx = lib.seccomp_init(SCMP_ACT_ERRNO | DEFAULT_ERRNO)
    if not ctx:
        raise SeccompError("seccomp_init: failed")
    return ctx


def seccomp_arch_add(lib: ctypes.CDLL, ctx: int, arch: str) -> None:
    rc = lib.seccomp_arch_add(ctx, SCMP_ARCH[arch])
    if rc < 0 and rc != -errno.EEXIST:  # the native architecture is already in a new filter
        raise _fail(f"seccomp_arch_add({arch})", rc)


def seccomp_optimize(lib: ctypes.CDLL, ctx: int) -> None:
    """A binary tree instead of a linear scan: ~9 comparisons per system call instead of up to ~400.

    Optional (libseccomp >= 2.5); an older library just builds the linear program."""
    lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)


def seccomp_rule_add(lib: ctypes.CDLL, ctx: int, name: str, rule: Rule) -> bool:
    """Add *rule* for system call *name*; False when this libseccomp does not know the name (skipped, as runc)."""
    nr = lib.seccomp_syscall_resolve_name(name.encode())
    if nr == NR_SCMP_ERROR:
        return False
    if _action(rule) == SCMP_ACT_ERRNO | DEFAULT_ERRNO:
        return True  # what the filter does anyway (libseccomp would refuse it, runc skips it)
    args = (_ScmpArgCmp * max(len(rule.args), 1))(
        *[_ScmpArgCmp(a.index, SCMP_CMP[a.op], a.value, a.value_two) for a in rule.args])
    rc = lib.seccomp_rule_add_array(ctx, _action(rule), nr, len(rule.args), args)
    if rc < 0:
        raise _fail(f"seccomp_rule_add({name})", rc)
    return True


def seccomp_export_bpf(lib: ctypes.CDLL, ctx: int) -> bytes:
    """The program as an array of ``struct sock_filter``, through an anonymous in-memory file."""
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        rc = lib.seccomp_export_bpf(ctx, fd)
        if rc < 0:
            raise _fail("seccomp_export_bpf", rc)
        size = os.fstat(fd).st_size
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------ the ENOSYS stub (runc's idea)

# <linux/filter.h> opcodes, <linux/seccomp.h> offsets into struct seccomp_data
BPF_LD_W_ABS, BPF_JEQ_K, BPF_JGT_K, BPF_JSET_K, BPF_RET_K = 0x20, 0x15, 0x25, 0x45, 0x06
SECCOMP_DATA_NR, SECCOMP_DATA_ARCH = 0, 4
X32_SYSCALL_BIT = 0x40000000
CACHE_FORMAT = 1  # bump when the way the program is built changes (the stub, the attributes...)

Insn = tuple[int, str | None, str | None, int]  # opcode, label if true, label if false, constant


def last_syscalls(lib: ctypes.CDLL, names: Iterable[str]) -> dict[str, int]:
    """Per ABI, the highest system call number among *names* that this libseccomp knows."""
    last = {}
    for arch in ARCHITECTURES:
        numbers = [lib.seccomp_syscall_resolve_name_arch(SCMP_ARCH[arch], n.encode()) for n in names]
        last[arch] = max(n for n in numbers if n >= 0)  # negative: unknown, or a multiplexed pseudo-call
    return last


def enosys_stub(last: dict[str, int]) -> list[Insn | str]:
    """Give ENOSYS to system calls newer than the profile, before libseccomp's program (which follows).

    x86_64 and x32 share one AUDIT_ARCH value; x32 numbers have bit 30 set. i386 has its own value."""
    enosys = SCMP_ACT_ERRNO | errno.ENOSYS
    return [
        (BPF_LD_W_ABS, None, None, SECCOMP_DATA_ARCH),
        (BPF_JEQ_K, "x86_64", None, SCMP_ARCH["SCMP_ARCH_X86_64"]),
        (BPF_JEQ_K, "i386", "filter", SCMP_ARCH["SCMP_ARCH_X86"]),
        "x86_64",
        (BPF_LD_W_ABS, None, None, SECCOMP_DATA_NR),
        (BPF_JSET_K, "x32", None, X32_SYSCALL_BIT),
        (BPF_JGT_K, "enosys", "filter", last["SCMP_ARCH_X86_64"]),
        "x32",
        (BPF_JGT_K, "enosys", "filter", last["SCMP_ARCH_X32"]),
        "i386",
        (BPF_LD_W_ABS, None, None, SECCOMP_DATA_NR),
        (BPF_JGT_K, "enosys", "filter", last["SCMP_ARCH_X86"]),
        "enosys",
        (BPF_RET_K, None, None, enosys),
        "filter",
    ]


def assemble(code: list[Insn | str]) -> bytes:
    """Instructions and labels -> ``struct sock_filter`` array; jumps are relative to the next instruction."""
    labels, pc = {}, 0
    for item in code:
        if isinstance(item, str):
            labels[item] = pc
        else:
            pc += 1
    out, pc = [], 0
    for item in code:
        if isinstance(item, str):
            continue
        op, jt, jf, k = item
        out.append(SOCK_FILTER.pack(op, _jump(labels, jt, pc), _jump(labels, jf, pc), k))
        pc += 1
    return b"".join(out)


def _jump(labels: dict[str, int], label: str | None, pc: int) -> int:
    return 0 if label is None else labels[label] - pc - 1


# --------------------------------------------------------------------------------------- compile, load


def compile_filter(capabilities: Iterable[str] = DEFAULT_CAPABILITIES,
                   cache_dir: str | os.PathLike[str] | None = None) -> bytes:
    """The BPF program for a container with these capabilities, built once per set and then cached.

    Call it in the process that forks containers (the zygote, the monitor), before forking: the child
    then only needs ``load_filter``, which is cheap and needs no libseccomp. Building takes tens of
    milliseconds, so a short-lived process (the CLI) should pass *cache_dir*, a directory only the engine's
    user can write (under the store): the program is kept there under a name derived from everything it
    depends on, and read back in about a millisecond.
    """
    check_architecture()
    caps = normalize_capabilities(capabilities)
    if cache_dir is None:
        return _compile(caps)
    return _cached_on_disk(caps, os.fspath(cache_dir))


@functools.lru_cache(maxsize=16)
def _compile(capabilities: frozenset[str]) -> bytes:
    check_architecture()
    lib = _libseccomp()
    rules = rules_for(capabilities)
    ctx = seccomp_init(lib)
    try:
        for arch in ARCHITECTURES:
            seccomp_arch_add(lib, ctx, arch)
        seccomp_optimize(lib, ctx)
        added: set[tuple[object, ...]] = set()
        for rule in rules:
            for name in rule.names:
                key = (name, rule.action, rule.args, rule.errno_ret)  # ptrace with CAP_SYS_PTRACE comes twice
                if key not in added and seccomp_rule_add(lib, ctx, name, rule):
                    added.add(key)
        program = seccomp_export_bpf(lib, ctx)
    finally:
        lib.seccomp_release(ctx)
    stub = assemble(enosys_stub(last_syscalls(lib, {name for rule in rules for name in rule.names})))
    full = stub + program
    if len(full) // SOCK_FILTER.size > BPF_MAXINSNS:
        raise SeccompError(f"seccomp: the filter has {len(full) // SOCK_FILTER.size} instructions, more than "
                           f"the kernel's {BPF_MAXINSNS}")
    return full


@functools.lru_cache(maxsize=16)
def _cached_on_disk(caps: frozenset[str], cache_dir: str) -> bytes:
    path = os.path.join(cache_dir, f"{cache_key(caps)}.bpf")
    try:
        with open(path, "rb") as f:
            program = f.read()
        if program and len(program) % SOCK_FILTER.size == 0:
            return program
    except OSError:
        pass
    program = _compile(caps)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(program)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the whole program or none
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)  # a cache we cannot write only costs the next process a rebuild
    return program


def cache_key(caps: frozenset[str]) -> str:
    """A digest of what the program depends on: the profile, the capabilities, the kernel (for
    ``min_kernel``), the machine and libseccomp's version (it decides which names it knows)."""
    check_architecture()
    version = _libseccomp().seccomp_version().contents
    facts = (CACHE_FORMAT, PROFILE, sorted(caps), kernel_version(), os.uname().machine,
             (version.major, version.minor, version.micro))
    return hashlib.sha256(repr(facts).encode()).hexdigest()[:32]
