"""The same 5-step Dockerfile built cold and fully cached, by pycontainers and by buildah, in one run.

buildah runs with the vfs storage driver and chroot isolation (what works without a daemon here); both
start from the same busybox image, exported from our store as an OCI archive. Medians of several runs,
and the ratios: goals are a cached rebuild at least 3x faster than buildah's, a cold build no slower.

    sudo python benchmarks/build.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_seconds  # noqa: E402

from pycontainers import archive  # noqa: E402
from pycontainers.bases import ensure_bases  # noqa: E402
from pycontainers.build import build, prune_cache  # noqa: E402
from pycontainers.store import Store  # noqa: E402

DOCKERFILE = """\
FROM busybox
WORKDIR /app
COPY requirements.txt .
RUN cat requirements.txt > /app/installed && mkdir -p /app/data
COPY . .
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("build benchmark: RUN steps need the native runtime (root); run it as root")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-build-"))
    try:
        context = tmp / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text(DOCKERFILE)
        (context / "requirements.txt").write_text("flask==3.0\n")
        (context / "app.py").write_text("print('hello')\n")
        store = Store(tmp / "store")
        ensure_bases(store, ("busybox",), log=lambda m: None)

        def ours_cold() -> None:
            build(store, context, tags=["bench:latest"], no_cache=True)

        def ours_cached() -> None:
            build(store, context, tags=["bench:latest"])

        results = {"pycontainers cold": median_seconds(ours_cold, args.runs, lambda: prune_cache(store)),
                   "pycontainers cached": median_seconds(ours_cached, args.runs)}
        if shutil.which("buildah"):
            root, runroot = tmp / "buildah-root", tmp / "buildah-runroot"
            common = ["buildah", "--root", str(root), "--runroot", str(runroot), "--storage-driver", "vfs"]
            with open(tmp / "busybox.tar", "wb") as f:
                archive.save(store, ["busybox"], f, fmt="oci")
            subprocess.run([*common, "pull", "-q", f"oci-archive:{tmp / 'busybox.tar'}"], check=True,
                           capture_output=True)
            subprocess.run([*common, "tag", subprocess.run([*common, "images", "-q"], check=True, capture_output=True,
                                                           text=True).stdout.split()[0], "busybox"], check=True)
            bud = [*common, "bud", "--isolation", "chroot", "-q", "-t", "bench", str(context)]
            cold = [*bud[:-1], "--no-cache", str(context)]
            results["buildah cold"] = median_seconds(lambda: subprocess.run(cold, check=True, capture_output=True),
                                                     args.runs)
            results["buildah cached"] = median_seconds(lambda: subprocess.run(bud, check=True, capture_output=True),
                                                       args.runs)
        print(f"a 5-step Dockerfile, median of {args.runs} builds (seconds)")
        for name, secs in results.items():
            print(f"  {name:<22} {secs:6.3f}")
        if "buildah cached" in results:
            print(f"  cached: buildah / pycontainers = {results['buildah cached'] / results['pycontainers cached']:.1f}"
                  " (goal >= 3)")
            print(f"  cold:   pycontainers / buildah = {results['pycontainers cold'] / results['buildah cold']:.2f}"
                  " (goal <= 1)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
