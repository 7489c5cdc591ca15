"""pycontainers.host: every probe answers in sentences, the parsers read real /proc texts, and the backend
choice follows root -> user namespaces -> proot."""

from __future__ import annotations

import os
import time

import pytest

from pycontainers import host
from pycontainers.cli import main
from pycontainers.host import Capability

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
linux = pytest.mark.skipif(not os.path.exists("/proc/self/mountinfo"), reason="needs Linux /proc")

def by_name(caps: list[Capability]) -> dict[str, Capability]:
    return {c.name: c for c in caps}


# ------------------------------------------------------------------------------------------ probes


@pytest.mark.parametrize("probe", host.PROBES, ids=host._PROBE_NAMES)
def test_each_probe_answers_with_sentences(probe) -> None:
    cap = probe()
    assert isinstance(cap, Capability)
    assert cap.name and cap.detail.strip()
    assert cap.detail.rstrip().endswith((".", ")"))
    if cap.available:
        assert cap.fallback == ""
    else:
        assert cap.fallback.strip().endswith((".", ")"))


def test_capability_is_frozen() -> None:
    cap = Capability("x", True, "It works.", "")
    with pytest.raises(AttributeError):
        cap.available = False  # type: ignore[misc]


def test_probe_all_is_complete_ordered_cached_and_fast() -> None:
    start = time.perf_counter()
    caps = host.probe_all(refresh=True)
    elapsed = time.perf_counter() - start
    assert [c.name for c in caps] == list(host._PROBE_NAMES)
    assert len({c.name for c in caps}) == len(caps)
    assert elapsed < 3.0, f"probe_all took {elapsed:.2f} s"  # ~0.1 s here; generous for loaded CI machines
    again = host.probe_all()
    assert again == caps
    again.clear()  # callers get a copy, not the cache
    assert host.probe_all() == caps


def test_summary_lines_and_rows_cover_every_capability() -> None:
    caps = host.probe_all()
    lines = host.summary_lines(caps)
    assert len(lines) == len(caps)
    for line, cap in zip(lines, caps, strict=True):
        assert cap.name in line and cap.detail in line
        assert (cap.fallback in line) if not cap.available else "Fallback" not in line
    rows = host.table_rows(caps)
    assert [r[0] for r in rows] == [c.name for c in caps]
    assert {r[1] for r in rows} <= {"yes", "no"}


@as_root
def test_root_machine_has_root_namespaces_and_overlay() -> None:
    caps = by_name(host.probe_all())
    for name in (host.ROOT, host.NAMESPACES, host.OVERLAYFS, host.USER_NAMESPACES):
        assert caps[name].available, caps[name].detail
    assert "whiteout" in caps[host.OVERLAYFS].detail


@as_root
def test_overlay_probe_cleans_up(tmp_path) -> None:
    assert host.probe_overlayfs(where=str(tmp_path)).available
    assert host.probe_rootless_overlayfs(where=str(tmp_path)).name == host.ROOTLESS_OVERLAYFS
    assert list(tmp_path.iterdir()) == []


def test_not_root_is_reported_honestly() -> None:
    cap = host.probe_root()
    assert cap.available == (os.geteuid() == 0)
    if not cap.available:
        assert "rootless" in cap.fallback


def test_kvm_never_claims_a_guest_boots() -> None:
    cap = host.probe_kvm()
    if cap.available:
        assert "test boot" in cap.detail and "06" in cap.detail


def test_kernel_release_is_in_the_sentence() -> None:
    assert os.uname().release in host.probe_kernel().detail


def test_root_tools_in_sbin_are_found_without_sbin_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # An ordinary user's PATH has no /usr/sbin, where Debian puts root's tools (runc): looked for there too.
    if not os.path.exists("/usr/sbin/runc"):
        pytest.skip("runc is not installed in /usr/sbin (./setup.sh installs it)")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")

    def only_in_sbin(name: str, path: str | None = None) -> str | None:
        return "/usr/sbin/runc" if name == "runc" and "/usr/sbin" in (path or "").split(os.pathsep) else None

    monkeypatch.setattr(host.shutil, "which", only_in_sbin)
    cap = host.probe_tool("runc")
    assert cap.available and "/usr/sbin/runc" in cap.detail


def test_missing_tool_names_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host.shutil, "which", lambda name, path=None: None)
    cap = host.probe_tool("proot")
    assert not cap.available and "not on PATH" in cap.detail and "proot" in cap.fallback


@pytest.mark.parametrize("text, version", [
    ("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n", "1.1.5+ds1"),
    ("dot - graphviz version 2.43.0 (0)\n", "2.43.0"),
    ("BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary.\n", "1.35.0"),
    (" _____ _____\n|__|  |__|__\\_____/\\_____/\\____| 5.1.0\n", "5.1.0"),
    ("mmdebstrap 1.3.5\n", "1.3.5"),
    ("debootstrap 1.0.128+nmu2+deb12u2\n", "1.0.128+nmu2+deb12u2"),
    ("QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\n", "7.2.19"),
    ("no digits here\n", None),
])
def test_parse_version(text: str, version: str | None) -> None:
    assert host.parse_version(text) == version


def test_is_static_elf(tmp_path) -> None:
    assert not host.is_static_elf(str(tmp_path / "missing"))
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert not host.is_static_elf(str(tmp_path / "script"))
    if os.path.exists("/bin/sh"):
        assert not host.is_static_elf(os.path.realpath("/bin/sh"))  # dash/bash need ld.so


# ------------------------------------------------------------------------------------------ cgroups

HYBRID = """\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""

PURE_V2 = (
    "22 27 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
    "26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
)

PURE_V1 = """\
30 24 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/systemd rw,nosuid shared:10 - cgroup cgroup rw,xattr,name=systemd
34 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:14 - cgroup cgroup rw,cpu,cpuacct
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/pids rw,nosuid shared:16 - cgroup cgroup rw,pids
37 30 0:33 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:17 - cgroup cgroup rw,net_cls,net_prio
"""


def test_cgroup_hybrid() -> None:
    layout = host.parse_cgroup_mountinfo(HYBRID, v2_controllers="")
    assert layout.version == "hybrid"
    assert layout.v2_mount == "/sys/fs/cgroup/unified" and layout.v2_controllers == ()
    assert layout.where("memory") == "/sys/fs/cgroup/memory"
    assert layout.where("pids") == "/sys/fs/cgroup/pids"
    assert layout.where("cpu") == "/sys/fs/cgroup/cpu"
    assert layout.where("blkio") is None
    assert "systemd" not in dict(layout.v1_mounts)  # a named hierarchy, not a controller
    assert layout.describe().startswith("hybrid")


def test_cgroup_pure_v2() -> None:
    layout = host.parse_cgroup_mountinfo(PURE_V2, v2_controllers="cpuset cpu io memory hugetlb pids rdma misc\n")
    assert layout.version == "v2" and layout.v1_mounts == ()
    assert layout.v2_mount == "/sys/fs/cgroup"
    for controller in ("memory", "pids", "cpu"):
        assert layout.where(controller) == "/sys/fs/cgroup"
    assert layout.where("blkio") is None
    assert host.parse_cgroup_mountinfo(PURE_V2).where("memory") is None  # not delegated: not usable


def test_cgroup_pure_v1_with_comounted_controllers() -> None:
    layout = host.parse_cgroup_mountinfo(PURE_V1)
    assert layout.version == "v1" and layout.v2_mount is None
    assert layout.where("cpu") == layout.where("cpuacct") == "/sys/fs/cgroup/cpu,cpuacct"
    assert layout.where("memory") == "/sys/fs/cgroup/memory"
    assert layout.where("net_prio") == "/sys/fs/cgroup/net_cls,net_prio"


def test_cgroup_none_and_escaped_paths() -> None:
    assert host.parse_cgroup_mountinfo("").version == "none"
    text = r"41 31 0:38 / /mnt/my\040cgroups rw,relatime - cgroup2 cgroup2 rw" + "\n"
    assert host.parse_cgroup_mountinfo(text).v2_mount == "/mnt/my cgroups"


@linux
def test_this_machine_cgroup_layout_is_known() -> None:
    layout = host.cgroup_layout()
    assert layout.version in {"v1", "v2", "hybrid", "none"}
    cap = host.probe_cgroups()
    if layout.version != "none":
        assert layout.version in cap.detail.lower()


# ------------------------------------------------------------------------------------------ network

ROUTE = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""

ROUTE_NO_DEFAULT = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""

ZERO = "0" * 32


def ipv6_route(dest: str, prefix: str, nexthop: str, metric: str, flags: str, iface: str) -> str:
    """One /proc/net/ipv6_route line: dest, prefix, source, source prefix, next hop, metric, refs, use, flags."""
    return f"{dest} {prefix} {ZERO} 00 {nexthop} {metric} 00000002 00000000 {flags}     {iface}\n"


ROUTE6 = (ipv6_route("fe80" + "0" * 28, "40", ZERO, "00000100", "00000001", "eth0")
          + ipv6_route(ZERO, "00", "fd" + "0" * 29 + "1", "00000400", "00000003", "eth0"))
ROUTE6_UNREACHABLE = ipv6_route(ZERO, "00", ZERO, "ffffffff", "00200200", "lo")


def test_default_route_parsing() -> None:
    expected_gateway = "192.0.2.1" if host.sys.byteorder == "little" else "1.2.0.192"
    assert host.parse_default_route(ROUTE) == ("eth0", expected_gateway)
    assert host.parse_default_route(ROUTE_NO_DEFAULT) is None
    assert host.parse_default_route("") is None


def test_default_route6_parsing() -> None:
    assert host.parse_default_route6(ROUTE6) == "eth0"
    assert host.parse_default_route6(ROUTE6_UNREACHABLE) is None


# ------------------------------------------------------------------------------------------ backend


def caps_for(**available: bool) -> list[Capability]:
    """A synthetic capability list: every probe name, available only where given True."""
    return [Capability(name, available.get(name.replace(" ", "_"), False), f"{name} (synthetic).",
                       "" if available.get(name.replace(" ", "_"), False) else "Something else.")
            for name in host._PROBE_NAMES]


def test_backend_native_as_root() -> None:
    caps = caps_for(kernel=True, root=True, namespaces=True, overlayfs=True, user_namespaces=True, proot=True)
    backend, why = host.backend_choice(caps)
    assert backend == "native" and "root" in why


def test_backend_without_root_is_rootless_where_user_namespaces_work() -> None:
    caps = caps_for(kernel=True, user_namespaces=True, namespaces=True, proot=True, **{"overlayfs_(rootless)": True})
    backend, why = host.backend_choice(caps)
    assert backend == "rootless" and "user namespace" in why and "no cgroup" in why


def test_backend_without_root_is_proot_when_overlay_fails_in_a_user_namespace() -> None:
    backend, why = host.backend_choice(caps_for(kernel=True, user_namespaces=True, namespaces=True, proot=True))
    assert backend == "proot" and "proot" in why


def test_backend_choice_follows_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")  # what an instructor sets to show Binder's view
    backend, why = host.backend_choice()
    assert backend == "proot" and why.startswith("PYCONTAINERS_BACKEND is set")
    # ... but not for capabilities given, which may be another machine's (notebook 00's exercise: Binder's)
    caps = caps_for(kernel=True, user_namespaces=True, namespaces=True, proot=True, **{"overlayfs_(rootless)": True})
    assert host.backend_choice(caps)[0] == "rootless"


def test_backend_proot_without_root_or_user_namespaces() -> None:
    backend, why = host.backend_choice(caps_for(kernel=True, proot=True))
    assert backend == "proot" and "proot" in why


def test_backend_root_without_namespaces_falls_back() -> None:
    # root inside an unprivileged container: euid 0 but unshare is refused.
    assert host.backend_choice(caps_for(kernel=True, root=True, proot=True))[0] == "proot"


def test_backend_none() -> None:
    assert host.backend_choice(caps_for(kernel=True))[0] == "none"
    assert host.backend_choice(caps_for(root=True, namespaces=True))[0] == "none"  # not Linux


def test_backend_for_this_machine() -> None:
    backend, why = host.backend_choice()
    assert backend in host.BACKENDS and why.endswith(".")
    if os.geteuid() == 0 and by_name(host.probe_all())[host.NAMESPACES].available:
        assert backend == "native"


# ------------------------------------------------------------------------------------------ CLI


def test_cli_info(capsys: pytest.CaptureFixture[str]) -> None:
    from pycontainers import __version__
    from pycontainers.store import default_home

    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"Store: {default_home()}" in out
    assert f"Server Version: {__version__}" in out
    assert f"Kernel Version: {os.uname().release}" in out
    backend_lines = [line for line in out.splitlines() if line.strip().startswith("Backend: ")]
    assert len(backend_lines) == 1 and backend_lines[0].split(": ", 1)[1] in host.BACKENDS
    assert "Images: " in out and "Cgroup Version: " in out
    for cap in host.probe_all():
        assert cap.detail in out


def test_cli_info_names_the_back_end_the_override_chose(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")  # as an instructor shows Binder's view (it said rootless)
    assert main(["info"]) == 0
    assert " Backend: proot\n" in capsys.readouterr().out
