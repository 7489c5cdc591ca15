"""The measured VM-versus-container comparison (``pycontainers.compare``) and its views (``raceviews``).

Everything measured here is real: a race of two rounds (two VM boots) and one comparison (a probe boot and one
sleeping VM), shared by the tests through module fixtures; four TCG boots in all, ~20 s. The paths where QEMU
or root is missing are tested by taking them away (monkeypatch), and then nothing may be booted or started.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from processes import qemu_children

from pycontainers import compare, exercises, host, raceviews, vm
from pycontainers.bases import cache_store, copy_image
from pycontainers.container import list_containers
from pycontainers.image import get_image
from pycontainers.store import Store

HAVE_VM = vm.find_qemu() is not None and vm.find_kernel() is not None
IS_ROOT = os.geteuid() == 0
needs_both = pytest.mark.skipif(not (HAVE_VM and IS_ROOT), reason="needs QEMU, a guest kernel and root")
MISSING_QEMU = "No VM was measured: qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)."


@pytest.fixture(scope="module")
def mstore(tmp_path_factory: pytest.TempPathFactory) -> Store:
    """A store of this module's own holding busybox, shared by the measuring fixtures."""
    store = Store(tmp_path_factory.mktemp("compare") / "store")
    cache = cache_store()
    copy_image(cache, get_image(cache, "busybox"), store)
    return store


@pytest.fixture(scope="module")
def raced(mstore: Store) -> Iterator[tuple[compare.RaceReport, list[compare.RaceEvent]]]:
    """Two real races running ``uname -r; nproc``, with every progress event recorded."""
    if not (HAVE_VM and IS_ROOT):
        pytest.skip("needs QEMU, a guest kernel and root")
    events: list[compare.RaceEvent] = []
    report = compare.race(mstore, "busybox", ["sh", "-c", "uname -r; nproc"], repeat=2, progress=events.append)
    yield report, events


@pytest.fixture(scope="module")
def compared(mstore: Store) -> compare.Comparison:
    """One real comparison: a venv, a container (and 3 sleeping), a VM (and 1 sleeping)."""
    if not (HAVE_VM and IS_ROOT):
        pytest.skip("needs QEMU, a guest kernel and root")
    return compare.compare(mstore, "busybox", containers=3, vms=1)


# ------------------------------------------------------------------------------------------------- race


@needs_both
def test_race_runs_both_sides_from_the_same_moment(raced: tuple[compare.RaceReport, list]) -> None:
    report, _ = raced
    assert report.measured and report.unavailable is None
    assert len(report.samples) == 2
    for s in report.samples:
        assert [p.name for p in s.container.phases] == list(compare.CONTAINER_PHASES)
        assert [p.name for p in s.vm.phases] == list(compare.VM_PHASES)
        for run in (s.container, s.vm):
            assert run.exit_code == 0
            assert 0 <= run.start < 1.0, "both sides are released by one barrier"
            for before, after in zip(run.phases, run.phases[1:], strict=False):
                assert before.end == after.start and before.seconds >= 0
        assert s.container.total < s.vm.total and s.ratio > 1 and s.winner == "container"
    assert report.ratio == report.median("vm") / report.median("container") > 1


@needs_both
def test_the_vm_runs_its_own_kernel_and_cpus(raced: tuple[compare.RaceReport, list]) -> None:
    report, _ = raced
    kernel_file = vm.find_kernel()
    assert kernel_file is not None
    release_file = kernel_file.with_name("release")
    for s in report.samples:
        container_kernel, container_cpus = s.container.output.split()
        vm_kernel, vm_cpus = s.vm.output.split()
        assert container_kernel == os.uname().release  # a container asks the host's kernel
        assert int(container_cpus) == len(os.sched_getaffinity(0))
        assert vm_kernel == s.vm.kernel  # what the guest's /init read from /proc agrees with uname
        assert int(vm_cpus) == 1  # QEMU is started with -smp 1
        if release_file.exists():  # set-up records which kernel it fetched: the guest booted exactly that one
            cached = release_file.read_text().strip().removeprefix("vmlinuz-")
            assert vm_kernel == cached
            if cached != os.uname().release:
                assert vm_kernel != container_kernel


@needs_both
def test_progress_callback_sees_every_phase_live(raced: tuple[compare.RaceReport, list]) -> None:
    report, events = raced
    for sample in (0, 1):
        mine = [e for e in events if e.sample == sample]
        for side in ("container", "vm"):
            seen = [e for e in mine if e.side == side]
            assert [e for e in seen if e.done] == [seen[-1]], "exactly one final event, the last"
            times = [e.elapsed for e in seen]
            assert times == sorted(times)
        phases = {e.phase for e in mine if e.side == "container"}
        assert set(compare.CONTAINER_PHASES) <= phases
        vm_phases = [e.phase for e in mine if e.side == "vm"]
        assert "booting" in vm_phases, "the live timer notices QEMU running"
        vm_total = report.samples[sample].vm.total
        assert len(vm_phases) > vm_total / compare.TICK / 2, "ticks keep coming while the VM boots"


@needs_both
def test_a_race_leaves_no_qemu_and_no_container(raced: tuple[compare.RaceReport, list], mstore: Store) -> None:
    assert qemu_children() == []
    assert list_containers(mstore) == []


# ------------------------------------------------------------------------------------------ comparison


@needs_both
def test_verdicts_come_from_the_probes(compared: compare.Comparison) -> None:
    assert compared.having("own kernel") == {"vm"}
    assert compared.having("own processes") == {"container", "vm"}
    assert compared.having("own network") == {"container", "vm"}
    assert compared.having("own files") == {"container", "vm"}


@needs_both
def test_what_each_probe_saw(compared: compare.Comparison) -> None:
    h, venv, box, machine = (compared.host, compared["venv"].probe, compared["container"].probe,
                             compared["vm"].probe)
    assert venv is not None and box is not None and machine is not None
    assert box.pid == 1 and box.processes < 10 and box.interfaces == ("lo",)
    assert box.kernel == h.kernel == venv.kernel and box.boot_id == h.boot_id
    assert venv.pid != 1 and venv.pid_ns == h.pid_ns and venv.interfaces == h.interfaces
    assert venv.interpreter == h.interpreter, "a venv's python is the host's interpreter"
    assert machine.boot_id != h.boot_id and machine.interfaces == ("lo",)
    assert machine.processes > box.processes, "a whole kernel's threads, not just the command"


@needs_both
def test_memory_and_disk_are_measured(compared: compare.Comparison, mstore: Store) -> None:
    box, machine = compared["container"].density, compared["vm"].density
    assert box is not None and machine is not None
    assert box.count == 3 and len(box.instances) == 3 and machine.count == 1
    assert all(f.rss > 0 and f.pss > 0 and f.helper_pss > 0 for f in box.instances)
    assert machine.per_instance.rss > box.per_instance.rss
    assert machine.per_instance.cost > box.per_instance.cost
    assert box.fits > machine.fits >= 0
    disk = dict(compared["vm"].disk)
    kernel = vm.find_kernel()
    assert kernel is not None and disk["guest kernel"] == kernel.stat().st_size
    assert dict(compared["container"].disk)["image in the store"] == get_image(mstore, "busybox").size
    assert compared["venv"].disk_total > 0
    startup = {kind: compared[kind].startup for kind in compare.KINDS}
    assert all(run is not None and run.exit_code == 0 for run in startup.values())
    assert startup["container"].total < startup["vm"].total  # type: ignore[union-attr]


@needs_both
def test_comparison_leaves_nothing_running(compared: compare.Comparison, mstore: Store) -> None:
    assert qemu_children() == []
    assert list_containers(mstore) == []


# --------------------------------------------------------------------------------- missing QEMU or root


def test_missing_qemu_is_one_sentence_and_nothing_runs(monkeypatch: pytest.MonkeyPatch,
                                                       busybox_store: Store) -> None:
    monkeypatch.setattr(vm, "find_qemu", lambda: None)
    assert compare.vm_unavailable() == MISSING_QEMU
    if not IS_ROOT:
        pytest.skip("the rest measures a container, which needs root")
    report = compare.race(busybox_store, "busybox")
    assert report.unavailable == MISSING_QEMU and not report.measured
    assert raceviews.race_text(report) == MISSING_QEMU
    c = compare.compare(busybox_store, "busybox", containers=1, vms=1)
    assert c["vm"].unavailable == MISSING_QEMU and c["vm"].startup is None and c["vm"].density is None
    assert c["container"].measured and c["venv"].measured  # the rest is still measured
    assert c.verdict("vm", "own kernel") is None
    text = raceviews.comparison_text(c)
    assert text.count(MISSING_QEMU) == 1 and "not measured" in text
    assert MISSING_QEMU in raceviews.comparison_html(c)
    density = compare.measure_density(busybox_store, "busybox", containers=1, vms=1)
    assert density.vm is None and density.unavailable == {"vm": MISSING_QEMU}
    assert density.containers_per_vm is None
    assert not exercises.check_own_kernel(c, {"vm"}).checkable  # (a right answer, which nothing here can confirm)
    assert qemu_children() == [] and list_containers(busybox_store) == []


def test_without_root_no_container_is_measured(monkeypatch: pytest.MonkeyPatch, busybox_store: Store) -> None:
    proot = "Without root, images run under proot, which fakes root and chroot but isolates nothing."
    monkeypatch.setattr(host, "backend_choice", lambda caps=None: ("proot", proot))
    monkeypatch.setattr(vm, "find_qemu", lambda: None)
    expected = f"No container was measured: {proot}"
    assert compare.container_unavailable() == expected
    assert compare.race(busybox_store, "busybox").unavailable == expected
    c = compare.compare(busybox_store, "busybox", containers=2, vms=1)
    assert c["container"].unavailable == expected and c["venv"].measured
    assert list_containers(busybox_store) == [], "not a single container was created"


def test_core_imports_no_notebook_library() -> None:
    code = ("import sys, pycontainers.compare; "
            "print([m for m in ('IPython', 'ipywidgets', 'graphviz', 'matplotlib', 'rich') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------------------------------------ views


def _slower(run: compare.TimedRun, factor: float) -> compare.TimedRun:
    phases = tuple(compare.Phase(p.name, p.start * factor, p.end * factor) for p in run.phases)
    return dataclasses.replace(run, phases=phases)


@needs_both
def test_race_views_text_has_no_numbers(raced: tuple[compare.RaceReport, list]) -> None:
    report, _ = raced
    other = dataclasses.replace(report, samples=tuple(
        compare.RaceSample(_slower(s.container, 1.5), _slower(s.vm, 1.1)) for s in report.samples))
    assert raceviews.race_text(report) == raceviews.race_text(other)  # the text fallback nbval compares
    assert raceviews.race_text(report).endswith("The container finished first in all 2 races.")
    assert raceviews.race_html(report) != raceviews.race_html(other)  # the numbers are in the HTML
    assert f"{report.ratio:.0f}×" in raceviews.race_html(report)
    view = raceviews.distribution_view(report)
    assert repr(view) == "<race distributions: 2 races of busybox `sh -c 'uname -r; nproc'`>"
    assert view._repr_png_().startswith(b"\x89PNG")
    left = view.figure.axes[0]
    assert left.get_xscale() == "log"
    assert [t.get_text() for t in left.get_yticklabels()] == ["container", "VM"]


@needs_both
def test_comparison_views(compared: compare.Comparison) -> None:
    text = raceviews.comparison_text(compared)
    assert not re.search(r"\d", text), "the text fallback holds no number"
    assert text.splitlines()[1].split() == ["own", "kernel", "no", "no", "yes"]
    page = raceviews.comparison_html(compared)
    for heading in ("cost", "deployment", "versatility", "isolation", "portability"):
        assert f"<b>{heading}</b>" in page
    assert compared.host.kernel in page and "PID 1 " in page
    assert not re.search(r"\d", raceviews.wishlist_text(compared))
    assert "✅" in raceviews.wishlist_html(compared) and "❌" in raceviews.wishlist_html(compared)
    density = compare.DensityReport(compared.budget, compared["container"].density, compared["vm"].density)
    assert raceviews.density_text(density) == "Measured 3 containers and 1 VM running at once, then removed them all."
    assert "fit in 1 GiB" in raceviews.density_html(density)
    assert "One VM used the memory of" not in raceviews.density_html(density)  # exercise 3's answer: not given


def test_race_widget_moves_its_timers() -> None:
    w = raceviews.RaceWidget("busybox", ["uname", "-r"], repeat=2)
    w.update(compare.RaceEvent(0, "container", "start", 0.02))
    assert w.bars["container"].value == pytest.approx(0.02) and "start" in w.labels["container"].value
    w.update(compare.RaceEvent(1, "vm", "booting", raceviews.LIVE_SCALE + 1))
    assert w.bars["container"].max == w.bars["vm"].max > raceviews.LIVE_SCALE + 1, "both bars share one scale"
    assert w.status.value == "race 2 of 2"
    w.update(compare.RaceEvent(1, "vm", "done", 6.5, done=True))
    assert "done" in w.labels["vm"].value
    bundle = raceviews._Shown(w.box, w.text)._repr_mimebundle_()
    assert bundle["text/plain"] == w.text == raceviews.race_intro("busybox", ["uname", "-r"], 2)
    assert "application/vnd.jupyter.widget-view+json" in bundle


# ---------------------------------------------------------------------------------------------- exercises


@needs_both
def test_exercise_checks_use_the_measurements(compared: compare.Comparison, raced: tuple[compare.RaceReport, list],
                                              mstore: Store) -> None:
    assert not exercises.check_own_kernel(compared, ...).answered
    assert exercises.check_own_kernel(compared, {"vm"})
    assert exercises.check_own_kernel(compared, "VM")
    wrong = exercises.check_own_kernel(compared, {"container", "vm"})
    assert not wrong and "host's boot ID" in wrong.message
    report, _ = raced
    medians = {p: report.median_phase("vm", p) or 0.0 for p in compare.VM_PHASES}
    longest = max(medians, key=lambda p: medians[p])
    assert exercises.check_slowest_vm_phase(report, longest)
    assert not exercises.check_slowest_vm_phase(report, "command")
    assert not exercises.check_slowest_vm_phase(report, "compile")
    density = compare.DensityReport(compared.budget, compared["container"].density, compared["vm"].density)
    ratio = density.containers_per_vm
    assert ratio is not None and ratio > 1
    assert exercises.check_containers_per_vm(density, round(ratio))
    assert not exercises.check_containers_per_vm(density, ratio * 3)
    assert not exercises.check_cpu_counts(mstore, (1, 2, 3))  # not a pair: refused before anything boots
    assert not exercises.check_cpu_counts(mstore, ...).answered


def test_python_check_asks_the_image(busybox_store: Store) -> None:
    from pycontainers.api import Client

    client = Client(busybox_store.home)
    assert not exercises.check_image_python(client, "busybox", ...).answered
    if not IS_ROOT:
        pytest.skip("asking the image runs a container, which needs root")
    check = exercises.check_image_python(client, "busybox", "3.11.2")
    assert not check and check.message.startswith("could not ask busybox: the container did not start (exit code 127)")
    assert "python3" in check.message and "python:3.11-slim" in check.hint


@needs_both
def test_a_vm_that_fails_is_one_sentence_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                         busybox_store: Store) -> None:
    def hang(*args: object, **kwargs: object) -> compare.TimedRun:
        raise vm.VMError("the VM (tcg) did not finish within 1 s and was killed")

    monkeypatch.setattr(compare, "run_vm", hang)
    c = compare.compare(busybox_store, "busybox", containers=1, vms=1)
    assert c["vm"].unavailable == "The VM could not be measured: the VM (tcg) did not finish within 1 s and was killed."
    assert c["container"].measured and c["venv"].measured
    monkeypatch.setattr(raceviews, "race", lambda *args, **kwargs: hang())
    report = raceviews.race_widget(busybox_store, "busybox")
    assert report.unavailable == "The race stopped: the VM (tcg) did not finish within 1 s and was killed."
    assert qemu_children() == [] and list_containers(busybox_store) == []


def test_clean_up_goes_on_through_an_interrupt_and_raises_it_at_the_end() -> None:
    """The stop button during the density cell's clean-up: every container still goes (each one's removal is
    tried again), and the interrupt comes once all are done (it left 15 sleeping containers behind)."""
    from pycontainers.compare import each_to_the_end
    from pycontainers.errors import PyContainersError

    done: list[int] = []
    interrupts = iter([True])  # the first removal of item 1 is interrupted

    def clean_up(item: int) -> None:
        if item == 1 and next(interrupts, False):
            raise KeyboardInterrupt
        if item == 2:
            raise PyContainersError("already gone")
        done.append(item)

    with pytest.raises(KeyboardInterrupt):
        each_to_the_end([0, 1, 2, 3], clean_up)
    assert done == [0, 1, 3]
