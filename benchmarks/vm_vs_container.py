"""How much longer a VM takes than a container, measured in one run: medians and the ratio.

(a) a container of busybox running ``true`` through the API (``client.containers.run(..., remove=True)``),
    warm: the image's layers are unpacked and, as in a notebook, the zygote helper forks it;
(b) a VM booted from the same image running ``true`` (``vm.run``), emulated CPU (TCG);
(c) the same with KVM, only where ``vm.kvm_usable()`` proved that a guest really boots under KVM;
(d) the race cell of notebook 06: ``compare.race`` of ``uname -r`` from the call to its return (the KVM probe
    already answered, as an earlier cell of the notebook asks it). Goal: at most 5 s.

    sudo .venv/bin/python benchmarks/vm_vs_container.py [--runs 5] [--container-runs 30]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_seconds  # noqa: E402

import pycontainers  # noqa: E402
from pycontainers import compare, vm  # noqa: E402
from pycontainers.bases import ensure_bases  # noqa: E402
from pycontainers.store import Store  # noqa: E402

RACE_GOAL = 5.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="VM boots and races per variant")
    ap.add_argument("--container-runs", type=int, default=30)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("vm_vs_container: containers need root here; run this benchmark as root")
        return 1
    why = compare.vm_unavailable()
    if why:
        print(f"vm_vs_container: {why}")
        return 1
    home = Path(tempfile.mkdtemp(prefix="bench-vm-"))
    os.environ["PYCONTAINERS_HOME"] = str(home)
    # Another thread for the whole run: the runtime then forks through the zygote, as in a Jupyter kernel.
    idle = threading.Event()
    helper = threading.Thread(target=idle.wait, daemon=True)
    helper.start()
    try:
        store = Store(home)
        ensure_bases(store, ("busybox",), log=lambda m: None)
        client = pycontainers.from_env()
        kvm_ok, kvm_why = vm.kvm_usable()
        print(kvm_why)
        client.containers.run("busybox", ["true"], remove=True)  # warm: layers unpacked, zygote started
        results = {"(a) container": median_seconds(
            lambda: client.containers.run("busybox", ["true"], remove=True), args.container_runs)}
        accels = ["tcg", "kvm"] if kvm_ok else ["tcg"]
        for label, accel in zip(("(b)", "(c)"), accels, strict=False):
            results[f"{label} VM, {accel}"] = median_seconds(
                lambda accel=accel: vm.run(store, "busybox", ["true"], accel=accel), args.runs)
        race_walls = []
        ratios = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            report = compare.race(store, "busybox", ["uname", "-r"])
            race_walls.append(time.perf_counter() - t0)
            ratios.append(report.ratio)
        median_race = statistics.median(race_walls)
        print(f"busybox `true`: {args.container_runs} container runs, {args.runs} VM boots per accelerator "
              "(median seconds)")
        for name, seconds in results.items():
            print(f"  {name:<20} {seconds:8.3f}")
        container = results["(a) container"]
        for name, seconds in results.items():
            if name.startswith(("(b)", "(c)")):
                print(f"  {name.split(' ', 1)[1]} / container = {seconds / container:.0f}")
        met = "met" if median_race <= RACE_GOAL else "NOT met"
        print(f"(d) race cell (compare.race, busybox `uname -r`), {args.runs} runs: median {median_race:.2f} s, "
              f"slowest {max(race_walls):.2f} s; goal <= {RACE_GOAL:g} s {met}; the race's own VM/container ratio: "
              f"median {statistics.median(ratios):.0f}")
    finally:
        idle.set()
        for c in pycontainers.from_env().containers.list(all=True):
            c.remove(force=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
