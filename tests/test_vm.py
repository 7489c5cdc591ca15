"""The VM side of the VM-versus-container race: a real kernel booted in QEMU runs an image's command.

Each TCG boot costs ~3 s, so the module boots four times (plus a KVM probe that fails in a fraction
of a second on machines with broken nested KVM).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import qemu_children

from pycontainers import vm
from pycontainers.store import Store

if vm.find_qemu() is None:
    pytest.skip("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)", allow_module_level=True)
if vm.find_kernel() is None:
    pytest.skip("no guest kernel (run ./setup.sh, or set PYCONTAINERS_KERNEL)", allow_module_level=True)


@pytest.fixture(scope="module", autouse=True)
def no_qemu_left() -> Iterator[None]:
    yield
    assert qemu_children() == [], "a qemu-system process outlived the VM tests"


def test_echo_hello(busybox_store: Store) -> None:
    result = vm.run(busybox_store, "busybox", ["echo", "hello"], timeout=30)
    assert result.output == "hello\n"
    assert result.exit_code == 0
    assert result.accel in ("kvm", "tcg")
    t = result.timings
    assert 0 == t["process_start"] < t["first_console_line"] <= t["ready_marker"] <= t["exit_marker"] <= t["vm_exited"]
    assert result.guest_uptime > 0


def test_exit_code_through_the_cli(busybox_store: Store, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from pycontainers.cli import main

    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    assert main(["vm", "run", "--timings", "busybox", "sh", "-c", "echo out; exit 3"]) == 3
    captured = capsys.readouterr()
    assert captured.out == "out\n"
    assert "guest uptime" in captured.err and "vm_exited" in captured.err


def test_guest_has_its_own_kernel(busybox_store: Store) -> None:
    result = vm.run(busybox_store, "busybox", ["uname", "-r"], timeout=30)
    assert result.exit_code == 0
    release = result.output.strip()
    assert release and release != os.uname().release
    assert result.kernel_release == release


def test_initramfs_is_reproducible(busybox_store: Store, tmp_path: Path) -> None:
    a = vm.build_initramfs(busybox_store, "busybox", tmp_path / "a.cpio.gz", ["echo", "hi"])
    time.sleep(1.1)  # a different wall-clock second must not change a byte
    b = vm.build_initramfs(busybox_store, "busybox", tmp_path / "b.cpio.gz", ["echo", "hi"])
    c = vm.build_initramfs(busybox_store, "busybox", tmp_path / "c.cpio.gz", ["echo", "ho"])
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert a.read_bytes()[:2] == b"\x1f\x8b"


def test_hanging_guest_is_killed(busybox_store: Store) -> None:
    started = time.monotonic()
    with pytest.raises(vm.VMError, match=r"did not finish within 8 s and was killed"):
        vm.run(busybox_store, "busybox", ["sleep", "1000"], timeout=8)
    assert time.monotonic() - started < 8 + 10  # + building the initramfs and reaping
    assert qemu_children() == []


def test_kvm_probe_answers_quickly() -> None:
    started = time.monotonic()
    ok, reason = vm.kvm_usable()
    assert time.monotonic() - started < vm.KVM_PROBE_TIMEOUT + 5
    assert reason.endswith(".") and "\n" not in reason
    if Path("/work/shared/PLATFORM.md").exists():  # the project's machines: nested KVM is known broken
        assert ok is False, reason
    assert vm.kvm_usable() == (ok, reason)  # cached: no second boot
    assert qemu_children() == []


def test_missing_kernel_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          busybox_store: Store) -> None:
    monkeypatch.setenv("PYCONTAINERS_KERNEL", str(tmp_path / "nope"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(vm.VMError, match=r"^no guest kernel: run \./setup\.sh$"):
        vm.run(busybox_store, "busybox", ["true"])


def test_missing_qemu_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, busybox_store: Store) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(vm.VMError, match=r"qemu-system-x86_64 is not installed \(apt-get install qemu-system-x86\)"):
        vm.run(busybox_store, "busybox", ["true"])


def test_bigger_images_get_more_guest_memory() -> None:
    mib = 1 << 20
    assert vm.memory_for(2 * mib) == vm.MIN_MEMORY_MIB  # busybox: the smallest machine
    python_like = vm.memory_for(148 * mib)
    assert python_like % 64 == 0 and python_like >= 2.5 * 148  # the unpacked tmpfs may fill only half of RAM


def test_a_guest_that_panics_is_reported_as_a_panic_not_a_timeout() -> None:
    log = vm.ConsoleLog()
    log.lines += [(0.5, "[    5.50] Initramfs unpacking failed: write error"),
                  (0.6, "[    6.26] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)")]
    message = vm.unfinished(log, 0, "tcg", 20)
    assert message == ("the VM's kernel panicked before the command ran: Kernel panic - not syncing: VFS: Unable to "
                       "mount root fs on unknown-block(0,0)")
    quit_early = vm.ConsoleLog()
    quit_early.lines.append((0.1, "something"))
    assert vm.unfinished(quit_early, 1, "kvm", 20).startswith("QEMU (kvm) exited with code 1 before")
    assert "did not finish within 20 s and was killed" in vm.unfinished(quit_early, None, "tcg", 20)
