"""Docker's default seccomp profile, checked where it matters: in a process that has loaded it.

The filter is compiled here, in the test process, as the zygote would; a fresh Python started with
subprocess loads it (``load_filter``) and then makes system calls through ctypes. The same probes run
without a filter give the kernel's own answer, so an EPERM can be pinned on seccomp rather than on a
missing capability or a bad argument (the tests run as root, which could do all of these).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from pycontainers import seccomp
from pycontainers.bundle import export_bundle
from pycontainers.errors import InvalidArgument, PyContainersError
from pycontainers.image import get_image
from pycontainers.linux import CAPABILITY_NUMBERS, DEFAULT_CAPABILITIES
from pycontainers.spec import make_spec
from pycontainers.store import Store

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64",
                       reason="the profile describes x86_64 system call numbers"),
    pytest.mark.timeout(120),
]
needs_libseccomp = pytest.mark.skipif(ctypes.util.find_library("seccomp") is None,
                                      reason="libseccomp2 is not installed")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the control probes need root's capabilities")
ALL_CAPABILITIES = tuple(CAPABILITY_NUMBERS)

# The child: load the program given on stdin (if any), make each system call named in argv[1], print
# {name: "ok" | errno name} as JSON. x86_64 numbers from <asm/unistd_64.h>; x32 adds bit 30.
PROBE = r'''
import ctypes, errno, json, mmap, os, socket, subprocess, sys, threading

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
X32 = 0x40000000
NOWHERE = 0x7FFFFFF0  # a PID that does not exist: allowed calls say ESRCH, denied ones EPERM
ULONG = (1 << 64) - 1


def sc(nr, *args):
    conv = [ctypes.c_ulong(a & ULONG) if isinstance(a, int) else a for a in args]
    return "ok" if libc.syscall(ctypes.c_long(nr), *conv) != -1 else errno.errorcode[ctypes.get_errno()]


def clone_newns():
    pid = libc.syscall(ctypes.c_long(56), ctypes.c_ulong(0x00020000 | 17), None, None, None, None)
    if pid == 0:
        os._exit(0)  # the raw clone's child: leave at once
    if pid < 0:
        return errno.errorcode[ctypes.get_errno()]
    os.waitpid(pid, 0)
    return "ok"


def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return "ok" if os.waitpid(pid, 0)[1] == 0 else "failed"


def posix_spawn():  # glibc tries clone3 first and falls back to clone only on ENOSYS
    pid = os.posix_spawn("/bin/true", ["true"], {})
    return "ok" if os.waitpid(pid, 0)[1] == 0 else "failed"


def thread():
    seen = []
    t = threading.Thread(target=lambda: seen.append(1))
    t.start()
    t.join()
    return "ok" if seen else "failed"


def shell_pipe():
    out = subprocess.run(["/bin/sh", "-c", "echo piped | cat"], capture_output=True)
    return "ok" if out.stdout == b"piped\n" else "failed"


def vsock():
    try:
        socket.socket(40, socket.SOCK_STREAM).close()  # AF_VSOCK
        return "ok"
    except OSError as exc:
        return errno.errorcode[exc.errno]


def i386(nr):
    """int 0x80 from 64-bit code: the kernel takes it as an i386 system call (AUDIT_ARCH_I386).

    No arguments are set (ebx, ecx... hold whatever they hold): denied calls never get that far."""
    code = b"\xb8" + nr.to_bytes(4, "little") + b"\xcd\x80\xc3"  # mov eax, nr; int 0x80; ret
    page = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(code)
    result = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))()
    return result if result >= 0 else errno.errorcode[-result]


def i386_ok(nr):
    result = i386(nr)
    return "ok" if isinstance(result, int) else result


def seccomp_mode():
    status = open("/proc/self/status").read()
    return status.split("Seccomp:")[1].split()[0]


beyond = int(os.environ.get("PROBE_BEYOND", "1000"))
PROBES = {
    "getpid": lambda: "ok" if libc.syscall(39) == os.getpid() else "wrong",
    "write": lambda: "ok" if os.write(os.open("/dev/null", os.O_WRONLY), b"x") == 1 else "failed",
    "fork": fork,
    "posix_spawn": posix_spawn,
    "thread": thread,
    "shell_pipe": shell_pipe,
    "seccomp_mode": seccomp_mode,
    "keyctl": lambda: sc(250, 0, -3, 0),  # KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING
    "add_key": lambda: sc(248, b"user", b"seccomp-probe", b"v", 1, -2),  # into KEY_SPEC_PROCESS_KEYRING
    "unshare_user": lambda: sc(272, 0x10000000),  # CLONE_NEWUSER: no capability needed without seccomp
    "unshare_mnt": lambda: sc(272, 0x00020000),
    "clone_newns": clone_newns,
    "clone3": lambda: sc(435, 0, 0),  # size 0: EINVAL from the kernel, ENOSYS from Docker's filter
    "mount": lambda: sc(165, b"none", b"/nonexistent-seccomp-probe", b"tmpfs", 0, 0),
    "reboot": lambda: sc(169, 0, 0, 0, 0),  # wrong magic numbers: EINVAL from the kernel
    "kexec_load": lambda: sc(246, 0, 0, 0, 0xFFFFFFFF),  # invalid flags: EINVAL (or ENOSYS) from the kernel
    "init_module": lambda: sc(175, 0, 0, b""),
    "personality_query": lambda: sc(135, 0xFFFFFFFF),
    "personality_no_aslr": lambda: sc(135, 0x0040000),  # ADDR_NO_RANDOMIZE
    "socket_inet": lambda: sc(41, 2, 2, 0),  # AF_INET, SOCK_DGRAM
    "socket_vsock": vsock,
    "ptrace": lambda: sc(101, 16, NOWHERE, 0, 0),  # PTRACE_ATTACH
    "process_vm_readv": lambda: sc(310, NOWHERE, 0, 1, 0, 1, 0),  # NULL iovecs: EFAULT once allowed
    "kcmp": lambda: sc(312, os.getpid(), os.getpid(), 0, 0, 0),  # KCMP_FILE 0 vs 0
    "chroot": lambda: sc(161, b"/"),
    "fchmodat2": lambda: sc(452, -100, 0, 0, 0),  # NULL path: EFAULT once past the filter
    "beyond_profile": lambda: sc(beyond, 0, 0, 0, 0),
    "x32_getpid": lambda: sc(X32 | 39),
    "x32_keyctl": lambda: sc(X32 | 250, 0, -3, 0),
    "x32_unshare_user": lambda: sc(X32 | 272, 0x10000000),
    "i386_getpid": lambda: "ok" if i386(20) == os.getpid() else "wrong",
    "i386_keyctl": lambda: i386_ok(288),
    "i386_unshare": lambda: i386_ok(310),
}

program = sys.stdin.buffer.read()
if program:
    if os.environ.get("PROBE_NO_LIBSECCOMP"):  # load_filter must not need libseccomp
        real_cdll = ctypes.CDLL
        def refuse(name, *args, **kw):
            if name and "seccomp" in str(name):
                raise OSError(f"{name}: not here")
            return real_cdll(name, *args, **kw)
        ctypes.CDLL = refuse
    from pycontainers.seccomp import load_filter
    if os.environ.get("PROBE_AS_NOBODY"):  # no capabilities left: only no_new_privs permits a filter
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    load_filter(program)
results = {name: PROBES[name]() for name in sys.argv[1].split(",") if name}
print(json.dumps(results), flush=True)
if len(sys.argv) > 2 and sys.argv[2] == "exec":
    os.execv("/bin/true", ["true"])
'''


def run_probe(names: list[str], program: bytes | None, *, exec_after: bool = False,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    argv = [sys.executable, "-c", PROBE, ",".join(names)] + (["exec"] if exec_after else [])
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(argv, input=program or b"", capture_output=True, timeout=60, cwd=ROOT, env=child_env)


def probe(names: list[str], program: bytes | None, **kw: Any) -> dict[str, Any]:
    proc = run_probe(names, program, **kw)
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout.decode().splitlines()[-1])


def default_program() -> bytes:
    return seccomp.compile_filter(DEFAULT_CAPABILITIES)


# --------------------------------------------------------------------------------- the profile data


def allowed_names(capabilities: tuple[str, ...]) -> set[str]:
    return {name for rule in seccomp.rules_for(capabilities) if rule.action == seccomp.ALLOW for name in rule.names}


def test_never_allowed_calls_stay_out_even_with_every_capability() -> None:
    for caps in (DEFAULT_CAPABILITIES, ALL_CAPABILITIES):
        assert not allowed_names(caps) & set(seccomp.NEVER_ALLOWED)


def test_capability_gated_calls_follow_the_capabilities() -> None:
    default = allowed_names(DEFAULT_CAPABILITIES)
    for name in ("mount", "umount2", "unshare", "setns", "bpf", "kcmp", "reboot", "init_module", "acct",
                 "iopl", "settimeofday", "vhangup", "mbind", "syslog", "open_by_handle_at", "perf_event_open"):
        assert name not in default, name
    assert "chroot" in default  # CAP_SYS_CHROOT is in Docker's default set
    assert {"ptrace", "process_vm_readv"} <= default  # Docker allows them on kernels >= 4.8
    admin = allowed_names((*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"))
    assert {"mount", "unshare", "setns", "clone", "clone3"} <= admin
    assert "kcmp" in allowed_names((*DEFAULT_CAPABILITIES, "SYS_PTRACE"))  # Docker's --cap-add spelling
    with pytest.raises(InvalidArgument, match="CAP_SYS_TYPO"):
        seccomp.rules_for(("CAP_SYS_TYPO",))


def test_clone_and_clone3_rules_without_sys_admin() -> None:
    rules = {rule.names: rule for rule in seccomp.rules_for(DEFAULT_CAPABILITIES) if rule.names[0].startswith("clone")}
    (arg,) = rules[("clone",)].args
    assert (arg.index, arg.op, arg.value) == (0, "SCMP_CMP_MASKED_EQ", 0x7E020000)  # moby's 2114060288
    assert rules[("clone3",)].action == seccomp.ERRNO and rules[("clone3",)].errno_ret == 38
    admin = [r for r in seccomp.rules_for(("CAP_SYS_ADMIN",)) if "clone" in r.names]
    assert len(admin) == 1 and not admin[0].args and "clone3" in admin[0].names


# ------------------------------------------------------------------------------- runtime-spec output

# runtime-spec's schema for linux.seccomp (config-linux.json, defs-linux.json), with the actions and
# fields added since 1.0 (errnoRet, defaultErrnoRet, KILL_PROCESS, LOG...), and stricter than upstream:
# no unknown keys, so a misspelt field fails here instead of being ignored by runc.
UINT32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
UINT64 = {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
ACTIONS = ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
           "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"]
SECCOMP_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["defaultAction"],
    "properties": {
        "defaultAction": {"enum": ACTIONS},
        "defaultErrnoRet": UINT32,
        "architectures": {"type": "array", "items": {"enum": [
            "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
            "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
            "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390",
            "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64"]}},
        "syscalls": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "required": ["names", "action"],
            "properties": {
                "names": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": "^[a-z_0-9]+$"}},
                "action": {"enum": ACTIONS},
                "errnoRet": UINT32,
                "args": {"type": "array", "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["index", "value", "op"],
                    "properties": {
                        "index": UINT32, "value": UINT64, "valueTwo": UINT64,
                        "op": {"enum": ["SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE",
                                        "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ"]},
                    },
                }},
            },
        }},
    },
}


@pytest.mark.parametrize("caps", [DEFAULT_CAPABILITIES, ALL_CAPABILITIES, ()])
def test_runtime_spec_matches_the_oci_schema(caps: tuple[str, ...]) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    spec = json.loads(json.dumps(seccomp.runtime_spec_seccomp(caps)))  # plain JSON types only
    jsonschema.validate(spec, SECCOMP_SCHEMA)
    assert spec["defaultAction"] == "SCMP_ACT_ERRNO" and spec["defaultErrnoRet"] == 1  # moby: EPERM
    assert spec["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    for entry in spec["syscalls"]:
        assert len(set(entry["names"])) == len(entry["names"])


def test_runtime_spec_carries_the_argument_rules() -> None:
    entries = seccomp.runtime_spec_seccomp()["syscalls"]
    personas = sorted(e["args"][0]["value"] for e in entries if e["names"] == ["personality"])
    assert personas == [0, 8, 0x20000, 0x20008, 0xFFFFFFFF]
    (sock,) = [e for e in entries if e["names"] == ["socket"]]
    assert sock["args"] == [{"index": 0, "value": 40, "valueTwo": 0, "op": "SCMP_CMP_NE"}]  # not AF_VSOCK
    (clone3,) = [e for e in entries if e["names"] == ["clone3"]]
    assert clone3 == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}


def test_unsupported_architecture_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.uname()
    fake = os.uname_result((real.sysname, real.nodename, real.release, real.version, "aarch64"))
    monkeypatch.setattr(seccomp.os, "uname", lambda: fake)
    with pytest.raises(seccomp.SeccompUnavailable, match="architecture aarch64 is not supported"):
        seccomp.runtime_spec_seccomp()
    with pytest.raises(seccomp.SeccompUnavailable, match="aarch64"):
        seccomp.compile_filter(("CAP_KILL",))


# ------------------------------------------------------------------------------ compiling the program


def test_missing_libseccomp_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_library(name: str, *args: object, **kw: object) -> object:
        raise OSError(f"{name}: cannot open shared object file")

    seccomp._libseccomp.cache_clear()
    monkeypatch.setattr(seccomp.ctypes, "CDLL", no_library)
    try:
        with pytest.raises(seccomp.SeccompUnavailable) as info:
            seccomp.compile_filter(("CAP_CHOWN", "CAP_NET_RAW"))  # a set no other test has cached
    finally:
        seccomp._libseccomp.cache_clear()
    assert isinstance(info.value, PyContainersError)
    message = str(info.value)
    assert "libseccomp" in message and "\n" not in message and message.count(". ") == 0


@needs_libseccomp
def test_compiled_once_and_shaped_like_a_bpf_program() -> None:
    program = default_program()
    assert default_program() is program  # cached: the zygote builds it once
    count, rest = divmod(len(program), 8)
    assert rest == 0 and 100 < count <= 4096
    code, _jt, _jf, k = seccomp.SOCK_FILTER.unpack_from(program, 0)
    assert (code, k) == (seccomp.BPF_LD_W_ABS, seccomp.SECCOMP_DATA_ARCH)  # the ENOSYS stub comes first
    admin = seccomp.compile_filter((*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"))
    assert admin != program


@needs_libseccomp
def test_disk_cache_serves_the_next_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    caps = ("CAP_KILL", "CAP_SETUID")
    program = seccomp.compile_filter(caps, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("*.bpf")
    assert cached.read_bytes() == program

    def no_compiling(capabilities: frozenset[str]) -> bytes:
        raise AssertionError("should have come from the disk cache")

    seccomp._cached_on_disk.cache_clear()  # as in a new process
    monkeypatch.setattr(seccomp, "_compile", no_compiling)
    assert seccomp.compile_filter(caps, cache_dir=tmp_path) == program
    monkeypatch.undo()
    cached.write_bytes(b"garbage")  # not a whole number of instructions: rebuilt
    seccomp._cached_on_disk.cache_clear()
    assert seccomp.compile_filter(caps, cache_dir=tmp_path) == program
    seccomp._cached_on_disk.cache_clear()


@needs_libseccomp
def test_errors_name_the_failing_call() -> None:
    lib = seccomp._libseccomp()
    ctx = seccomp.seccomp_init(lib)
    try:
        bad = seccomp.Rule(("personality",), args=(seccomp.Arg(9, "SCMP_CMP_EQ", 0),))  # only 6 arguments exist
        with pytest.raises(seccomp.SeccompError, match=r"^seccomp_rule_add\(personality\): Invalid argument$"):
            seccomp.seccomp_rule_add(lib, ctx, "personality", bad)
    finally:
        lib.seccomp_release(ctx)
    with pytest.raises(seccomp.SeccompError, match="not a BPF program"):
        seccomp.load_filter(b"\x06\x00")


def test_the_kernel_refusing_a_program_is_named() -> None:
    jump_past_the_end = seccomp.SOCK_FILTER.pack(0x15, 5, 5, 0)  # jeq to nowhere: the kernel says EINVAL
    proc = subprocess.run([sys.executable, "-c", "import sys; from pycontainers.seccomp import load_filter; "
                           "load_filter(sys.stdin.buffer.read())"], input=jump_past_the_end, capture_output=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode != 0
    assert b"KernelError: seccomp(SECCOMP_SET_MODE_FILTER): Invalid argument" in proc.stderr


# -------------------------------------------------------------------------- the filter in the kernel

DENIED = ["keyctl", "add_key", "unshare_user", "unshare_mnt", "clone_newns", "mount", "reboot", "kexec_load",
          "init_module", "personality_no_aslr", "socket_vsock", "kcmp", "x32_keyctl", "x32_unshare_user"]
ALLOWED = ["getpid", "write", "fork", "socket_inet", "personality_query", "chroot"]


@needs_libseccomp
@needs_root
def test_docker_denials_get_eperm_and_the_kernel_alone_would_not() -> None:
    filtered = probe(DENIED + ALLOWED + ["clone3", "seccomp_mode"], default_program())
    assert {name: filtered[name] for name in DENIED} == dict.fromkeys(DENIED, "EPERM")
    assert {name: filtered[name] for name in ALLOWED} == dict.fromkeys(ALLOWED, "ok")
    assert filtered["clone3"] == "ENOSYS"  # so that glibc falls back to clone
    assert filtered["seccomp_mode"] == "2"  # SECCOMP_MODE_FILTER
    # Without the filter, root gets past these (or fails for another reason): the EPERM was seccomp's.
    # (unshare_user last: once in a new user namespace, the probe has no capabilities over the host's.)
    control = probe(["keyctl", "add_key", "clone_newns", "mount", "reboot", "personality_no_aslr", "kcmp", "clone3",
                     "seccomp_mode", "unshare_user"], None)
    assert control == {"keyctl": "ok", "add_key": "ok", "clone_newns": "ok", "mount": "ENOENT", "reboot": "EINVAL",
                       "personality_no_aslr": "ok", "kcmp": "ok", "clone3": "EINVAL", "seccomp_mode": "0",
                       "unshare_user": "ok"}


@needs_libseccomp
def test_ptrace_is_allowed_on_modern_kernels_as_in_docker() -> None:
    assert seccomp.kernel_version() >= (4, 8)
    result = probe(["ptrace", "process_vm_readv"], default_program())
    assert result == {"ptrace": "ESRCH", "process_vm_readv": "EFAULT"}  # both reached the kernel


@needs_libseccomp
@needs_root
def test_capabilities_unlock_their_system_calls() -> None:
    wider = seccomp.compile_filter((*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN", "CAP_SYS_PTRACE"))
    result = probe(["mount", "unshare_mnt", "clone_newns", "clone3", "kcmp", "keyctl"], wider)
    assert result == {"mount": "ENOENT", "unshare_mnt": "ok", "clone_newns": "ok", "clone3": "EINVAL",
                      "kcmp": "ok", "keyctl": "EPERM"}
    narrower = seccomp.compile_filter(tuple(c for c in DEFAULT_CAPABILITIES if c != "CAP_SYS_CHROOT"))
    assert probe(["chroot"], narrower) == {"chroot": "EPERM"}


@needs_libseccomp
def test_ordinary_programs_still_work_under_the_filter() -> None:
    names = ["posix_spawn", "thread", "shell_pipe", "fchmodat2", "getpid"]
    proc = run_probe(names, default_program(), exec_after=True)
    assert proc.returncode == 0, proc.stderr.decode()  # and the final execve of /bin/true worked
    result = json.loads(proc.stdout.decode().splitlines()[-1])
    fchmodat2 = result.pop("fchmodat2")
    assert result == {"posix_spawn": "ok", "thread": "ok", "shell_pipe": "ok", "getpid": "ok"}
    assert fchmodat2 in ("EFAULT", "ENOSYS")  # allowed, or newer than this libseccomp: never EPERM


@needs_libseccomp
def test_system_calls_newer_than_the_profile_get_enosys() -> None:
    lib = seccomp._libseccomp()
    names = {n for rule in seccomp.rules_for(DEFAULT_CAPABILITIES) for n in rule.names}
    beyond = seccomp.last_syscalls(lib, names)["SCMP_ARCH_X86_64"] + 1
    env = {"PROBE_BEYOND": str(beyond)}
    assert probe(["beyond_profile", "keyctl"], default_program(), env=env) == {
        "beyond_profile": "ENOSYS", "keyctl": "EPERM"}  # new: ENOSYS (glibc falls back); known: EPERM


@needs_libseccomp
def test_x32_numbers_are_no_way_around() -> None:
    result = probe(["x32_getpid", "x32_keyctl", "x32_unshare_user"], default_program())
    assert result["x32_keyctl"] == result["x32_unshare_user"] == "EPERM"
    assert result["x32_getpid"] in ("ok", "ENOSYS")  # allowed: the kernel answers (ENOSYS without x32 support)


@needs_libseccomp
def test_i386_system_calls_are_filtered_too() -> None:
    control = run_probe(["i386_getpid"], None)
    if control.returncode != 0:
        pytest.skip("this kernel runs no i386 system calls (IA32 emulation is off)")
    result = probe(["i386_getpid", "i386_keyctl", "i386_unshare"], default_program())
    assert result == {"i386_getpid": "ok", "i386_keyctl": "EPERM", "i386_unshare": "EPERM"}


@needs_libseccomp
def test_load_filter_needs_no_libseccomp() -> None:
    result = probe(["keyctl", "getpid"], default_program(), env={"PROBE_NO_LIBSECCOMP": "1"})
    assert result == {"keyctl": "EPERM", "getpid": "ok"}


@needs_libseccomp
@needs_root
def test_load_filter_sets_no_new_privs_for_an_unprivileged_process() -> None:
    result = probe(["keyctl", "getpid"], default_program(), env={"PROBE_AS_NOBODY": "1"})
    assert result == {"keyctl": "EPERM", "getpid": "ok"}


# ------------------------------------------------------------------------------------------ with runc

SCRIPT = "grep Seccomp: /proc/self/status; unshare -U true; echo unshare=$?; echo hello"


def runc_run(bundle: Path, state: Path) -> subprocess.CompletedProcess[str]:
    name = f"seccomp-{uuid.uuid4().hex[:12]}"
    return subprocess.run(["runc", "--root", str(state), "run", "--bundle", str(bundle), name],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed")
@needs_root
def test_runc_loads_the_profile_from_config_json(busybox_store: Store, tmp_path: Path) -> None:
    image = get_image(busybox_store, "busybox")
    spec = make_spec(image, "busybox", ["sh", "-c", SCRIPT], hostname="seccomp")
    plain, filtered = tmp_path / "plain", tmp_path / "filtered"
    for bundle in (plain, filtered):
        export_bundle(busybox_store, image, spec, bundle)
        config = json.loads((bundle / "config.json").read_text())
        config["linux"].pop("seccomp", None)  # whether or not bundle.py writes one already
        if bundle == filtered:
            config["linux"]["seccomp"] = seccomp.runtime_spec_seccomp(config["process"]["capabilities"]["bounding"])
        (bundle / "config.json").write_text(json.dumps(config))

    without = runc_run(plain, tmp_path / "state")
    assert without.returncode == 0, without.stderr
    assert without.stdout.split() == ["Seccomp:", "0", "unshare=0", "hello"]  # a user namespace needs no capability

    proc = runc_run(filtered, tmp_path / "state")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["Seccomp:", "2", "unshare=1", "hello"]
    assert "unshare(0x10000000): Operation not permitted" in proc.stderr


# ------------------------------------------------------------------------- in pycontainers' own containers


def test_run_and_exec_are_filtered(busybox_store: Store) -> None:
    from pycontainers import container as containers
    from pycontainers import runtime

    script = "grep Seccomp: /proc/self/status; unshare -U true 2>&1 || echo denied"
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", script], auto_remove=True)
    code, out, _ = runtime.run_attached(c)
    assert code == 0
    lines = out.decode().splitlines()
    assert lines[0].split() == ["Seccomp:", "2"]  # mode 2: a filter is attached
    assert "Operation not permitted" in lines[1] and lines[-1] == "denied"

    c = containers.create_from_image(busybox_store, "busybox", ["sleep", "60"])
    runtime.start_detached(c)
    try:
        code, out, _ = runtime.capture(lambda stdio: runtime.exec_start(c, ["grep", "Seccomp:", "/proc/self/status"],
                                                                         stdio))
        assert (code, out.split()) == (0, [b"Seccomp:", b"2"])
    finally:
        containers.remove(c, force=True)
