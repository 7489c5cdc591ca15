"""How long it takes to run `true` in a container: pycontainers' API and CLI against runc, in one run.

(a) ``client.containers.run("busybox", ["true"], remove=True)``, full isolation, from this process (through
    the API's helper process, whose warm monitors have the namespaces and cgroup ready: pycontainers/warm.py);
(b) ``pycontainers run --rm busybox true`` as a command (a fresh Python process each time), which hands
    the command to the CLI's command server (pycontainers/server.py: the engine already imported, and
    warm monitors); (b0) the same with ``PYCONTAINERS_SERVER=0``, the command doing everything itself;
(c) ``runc run`` of the same image exported as an OCI bundle (``pycontainers bundle``);
(d) for comparison, (a) with the rootless back end;
(e) the issue's other reference point, a bare Python fork/unshare/chroot/exec with no isolation beyond the
    namespaces (benchmarks/bare_prototype.py): the floor under any start written in Python. The issue
    measured it at about 5 ms beside its 8 ms goal, so the goal reads "(a) at most 1.6 times (e)" here;
(f) the same prototype as a warm start (``--warm``): namespaces made ahead, then only what depends on the
    container (overlayfs, pivot_root, capabilities, seccomp, exec, wait): the floor under (a) one at a time.
(a) and (c) are also measured one run at a time, 50 ms apart, in turn: the latency a notebook sees, without
the last run's clean-up competing for the two CPUs (the goal's ratio uses the back-to-back runs).
Back-to-back runs are measured in blocks, each after ``WARMUP`` runs that are not: the steady state of a
stream (a fresh client's first ten or so runs are slower while its warm monitors and their forkers are made).
Medians and 90th percentiles, then the ratios. Then 100 detached ``sleep`` containers: time to start
and remove them all, and the memory each one costs (the monitor and the container's processes).

    sudo python benchmarks/run_latency.py [--runs 50]

Run it on a quiet machine. These course machines' disk is ext4 without a journal, where the inode allocator
skips, checking each one, every inode freed in the last minute (``recently_deleted`` in the kernel). Before the
engine spread containers' directories over the disk's block groups (``linux.set_top_directory``), each file a
start created cost up to a millisecond while many files had just been deleted near it, as a stream of
containers itself does: (a) went from 7.8 ms to 21-23 ms right after the test suite. Measured since, right
after the test suite: 7.5 ms. The benchmark says when the store is on such a disk.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pycontainers  # noqa: E402
from pycontainers import seccomp, server  # noqa: E402
from pycontainers.bases import ensure_bases  # noqa: E402
from pycontainers.image import get_image  # noqa: E402
from pycontainers.rootfs import unpack_layer  # noqa: E402
from pycontainers.store import Store, default_home  # noqa: E402

ROUNDS = 5
# Runs before each block of measured ones, every subject alike: the steady state of a stream, not its first
# runs. (a)'s helper then has its warm monitors and their forkers (pycontainers/warm.py), which a quiet
# second lets go and the first runs of a block would pay for again; runc and the CLI get the same page cache.
WARMUP = 20
PROTOTYPE = Path(__file__).with_name("bare_prototype.py")
GOAL_MS, PROTOTYPE_MS = 8.0, 5.0  # the goal for (a), and what it measured (e) at


def sample(fn: Callable[[], object], runs: int) -> list[float]:
    for _ in range(WARMUP):  # not measured: see WARMUP
        fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def sample_prototype(rootfs: Path, runs: int, warm: list[str] | None = None) -> list[float]:
    """(e), or (f) with *warm* (``--warm PROGRAM``): the prototype times its own runs, in a fresh
    single-threaded process (it forks)."""
    out = subprocess.run([sys.executable, str(PROTOTYPE), *(warm or []), str(rootfs), str(runs), "/bin/true"],
                         check=True, capture_output=True, text=True).stdout
    return [float(line) for line in out.split()]


def busy_jiffies() -> int:
    """CPU time all processes have used since boot, in clock ticks (/proc/stat: everything but idle, iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4]


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def pss_kib(pid: int) -> int:
    """Proportional set size: shared pages (a forked monitor shares most of Python) counted fairly."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def without_a_journal(path: Path) -> bool:
    """Is *path* on an ext4 file system without a journal (see the module's docstring)?"""
    st = os.stat(path)
    try:
        device = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}").resolve().name
        return Path(f"/sys/fs/ext4/{device}/journal_task").read_text().strip() == "<none>"
    except OSError:  # not ext4 (or not a block device)
        return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--detached", type=int, default=100)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run_latency: the native runtime needs root; run this benchmark as root")
        return 1
    # Beside the user's store (~/.local/share), where a real one lives, not in /tmp, whose block groups the test
    # suites fill with just-deleted inodes (see the docstring).
    parent = default_home().parent
    parent.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="pycontainers-bench-", dir=parent))
    os.environ["PYCONTAINERS_HOME"] = str(home)
    try:
        store = Store(home)
        ensure_bases(store, ("busybox",), log=lambda m: None)
        busybox = get_image(store, "busybox")
        busybox_rootfs = unpack_layer(store, busybox.layers[-1].digest)  # one layer: the whole image
        client = pycontainers.from_env()
        cli = str(Path(sys.executable).with_name("pycontainers"))
        bundle = home / "bundle"
        subprocess.run([cli, "bundle", "busybox", str(bundle), "true"], check=True, capture_output=True)
        runc_root = home / "runc-state"

        # The first command starts the command server (and runs by itself meanwhile).
        os.environ["PYCONTAINERS_SERVER"] = "1"
        subprocess.run([cli, "version"], check=True, capture_output=True)
        while server.running() is None:
            time.sleep(0.05)
        subprocess.run([cli, "run", "--rm", "busybox", "true"], check=True)  # it loads the engine
        alone = {**os.environ, "PYCONTAINERS_SERVER": "0"}

        counter = iter(range(10**9))
        subjects: dict[str, Callable[[], object]] = {
            "(a) API run": lambda: client.containers.run("busybox", ["true"], remove=True),
            "(b) CLI run --rm": lambda: subprocess.run([cli, "run", "--rm", "busybox", "true"], check=True),
            "(b0) CLI, no server": lambda: subprocess.run([cli, "run", "--rm", "busybox", "true"], check=True,
                                                          env=alone),
            # Not a goal, for comparison: the same run in a user namespace (no cgroup to join, a map to write).
            "(d) API run, rootless": lambda: client.containers.run("busybox", ["true"], remove=True,
                                                                  runtime="rootless"),
        }
        if shutil.which("runc"):
            subjects["(c) runc run"] = lambda: subprocess.run(
                ["runc", "--root", str(runc_root), "run", "--bundle", str(bundle), f"bench{next(counter)}"],
                check=True)
        # Not back to back: one at a time, as in a notebook, after the last run's clean-up (unmounting, removing
        # its files and cgroup, a new warm PID 1) has had the CPUs to itself. First: the rounds below create and
        # delete some 100,000 files, which this disk makes every later file creation pay for (see the docstring).
        alone_runs: list[float] = []
        runc_alone: list[float] = []
        for fn in (subjects["(a) API run"], subjects.get("(c) runc run")):  # (the API's helper starts here)
            if fn is not None:
                fn()
        for _ in range(args.runs):  # (runc too, interleaved: the same quiet and the same noise for both)
            for fn, out in ((subjects["(a) API run"], alone_runs), (subjects.get("(c) runc run"), runc_alone)):
                if fn is None:
                    continue
                time.sleep(0.05)
                t0 = time.perf_counter()
                fn()
                out.append((time.perf_counter() - t0) * 1000)
        # In rounds (a block of each, then again), so that a slow minute of this shared machine falls on
        # every subject alike and the ratios stay fair. Each block is back-to-back runs of one subject.
        results: dict[str, list[float]] = {name: [] for name in subjects}
        api_cpu = 0.0
        block = max(1, args.runs // ROUNDS)
        results["(e) bare prototype"] = []
        results["(f) warm prototype"] = []
        program = home / "seccomp.bpf"  # Docker's profile, as the engine loads it
        program.write_bytes(seccomp.compile_filter())
        for _ in range(ROUNDS):
            results["(e) bare prototype"] += sample_prototype(busybox_rootfs, block)
            results["(f) warm prototype"] += sample_prototype(busybox_rootfs, block, ["--warm", str(program)])
            for name, fn in subjects.items():
                jiffies = busy_jiffies()
                results[name] += sample(fn, block)
                if name == "(a) API run":
                    time.sleep(0.2)  # the last monitor's clean-up counts too
                    api_cpu += (busy_jiffies() - jiffies) * 1000 / os.sysconf("SC_CLK_TCK")
        cpu_per_run = api_cpu / (ROUNDS * (block + WARMUP))
        args.runs = block * ROUNDS
        if without_a_journal(home):
            print("(the store is on ext4 without a journal, where a new file costs more right after many were "
                  "deleted; see this file's docstring)")
        print(f"running `true` in busybox, {args.runs} runs each, in {ROUNDS} blocks of back-to-back runs, each "
              f"after {WARMUP} unmeasured ones (milliseconds)")
        for name, values in results.items():
            print(f"  {name:<22} median {statistics.median(values):7.1f}   p90 {p90(values):7.1f}")
        print(f"  (a) one at a time      median {statistics.median(alone_runs):7.1f}   p90 {p90(alone_runs):7.1f}"
              "   (50 ms apart, not in the ratio)")
        if runc_alone:
            print(f"  (c) one at a time      median {statistics.median(runc_alone):7.1f}   p90 {p90(runc_alone):7.1f}"
                  f"   (runc / API one at a time = "
                  f"{statistics.median(runc_alone) / statistics.median(alone_runs):.2f})")
        if "(c) runc run" in results:
            runc = statistics.median(results["(c) runc run"])
            api = statistics.median(results["(a) API run"])
            cli_ms = statistics.median(results["(b) CLI run --rm"])
            print(f"  runc / API = {runc / api:.2f} (goal >= 4);  CLI / runc = {cli_ms / runc:.2f} (goal <= 1)")
        bare = statistics.median(results["(e) bare prototype"])
        print(f"  API / bare prototype = {statistics.median(results['(a) API run']) / bare:.2f} back to back, "
              f"{statistics.median(alone_runs) / bare:.2f} one at a time "
              f"(the {GOAL_MS:.0f} ms goal beside the issue's {PROTOTYPE_MS:.0f} ms prototype: "
              f"<= {GOAL_MS / PROTOTYPE_MS:.1f})")
        floor = statistics.median(results["(f) warm prototype"])
        print(f"  (a) one at a time - (f) warm prototype = {statistics.median(alone_runs) - floor:.1f} ms: what the "
              "engine adds to the least a warm start in Python costs (/proc /dev /sys, /etc files, user lookup, "
              "state, monitor, hand-overs, report)")
        print(f"  (a) used {cpu_per_run:.1f} ms of CPU per run, all processes together, on {os.cpu_count()} CPUs")

        t0 = time.perf_counter()
        started = [client.containers.run("busybox", ["sleep", "300"], detach=True) for _ in range(args.detached)]
        t_start = time.perf_counter() - t0
        memory = 0
        for c in started:
            state = c._c.reload().state
            memory += pss_kib(state["pid"]) + pss_kib(state["monitor_pid"])
        t0 = time.perf_counter()
        for c in started:
            c.remove(force=True)
        t_rm = time.perf_counter() - t0
        print(f"{args.detached} detached `sleep` containers: started in {t_start:.2f} s, removed in {t_rm:.2f} s, "
              f"{memory / args.detached / 1024:.1f} MiB PSS each (monitor + container)")
    finally:
        server.stop()
        for c in pycontainers.from_env().containers.list(all=True):
            c.remove(force=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
