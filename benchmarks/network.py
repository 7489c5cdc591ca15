"""What a network costs a container, measured side by side in one run (ratios, not absolute goals).

(a) starting ``true`` with ``network="none"`` (only loopback), on the default ``bridge``, and on a
    user-defined network (a veth pair, an address, /etc/hosts names): the price of a network at start;
(b) the same bridge set-up done by iproute2's ``ip`` commands in a shell (``ip netns add``, ``ip link add
    ... type veth peer ... netns``, addresses, route, ``ip link del``, ``ip netns del``): the reference for
    the kernel work
    alone, as a CNI bridge plugin does it (and no container in it);
(c) an HTTP request to busybox's httpd in a container, through the published port (the ``pyc-ports``
    forwarder, as Docker's ``docker-proxy``) and straight to the container's address on the bridge;
(d) bulk throughput of 64 MiB through the forwarder and straight to the container.

    sudo python benchmarks/network.py [--runs 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _timing import median_seconds  # noqa: E402

import pycontainers  # noqa: E402
from pycontainers import network  # noqa: E402
from pycontainers.bases import cache_store, copy_image, ensure_bases  # noqa: E402
from pycontainers.image import get_image  # noqa: E402
from pycontainers.store import Store  # noqa: E402

IP_SETUP = """
set -e
ip netns add {ns}
ip link add {host} type veth peer name eth0 netns {ns}
ip link set {host} master {bridge} up
ip -n {ns} link set lo up
ip -n {ns} addr add 10.77.0.2/24 dev eth0
ip -n {ns} link set eth0 up
ip -n {ns} route add default via 10.77.0.1
ip netns exec {ns} true
ip link del {host}
ip netns del {ns}
"""


def start_times(client: pycontainers.Client, runs: int) -> dict[str, float]:
    out = {}
    for mode in ("none", "bridge", "bench"):
        client.containers.run("busybox", ["true"], network=mode, remove=True)  # a first one: warm-up
        out[mode] = median_seconds(lambda m=mode: client.containers.run("busybox", ["true"], network=m,
                                                                         remove=True), runs)
    return out


def ip_reference(runs: int) -> float:
    """The same kernel work by ``ip``: a namespace, a veth pair into it, address, route, and away again."""
    from pyroute2.iproute.linux import IPRoute

    bridge = "pyc-benchref"
    with IPRoute() as ipr:
        network.ensure_bridge(ipr, bridge, "10.77.0.1", 24)
    script = IP_SETUP.format(ns="pycbench", host="pvbenchref", bridge=bridge)
    try:
        return median_seconds(lambda: subprocess.run(["sh", "-c", script], check=True), runs)
    finally:
        network.delete_bridge(bridge)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def bulk(address: tuple[str, int], size: int) -> float:
    """Seconds to receive *size* bytes from a container's ``nc`` server (its /dev/zero). nc listens again
    a moment after its last client went: a refused or cut-short try (the forwarder closes a client whose
    connection to the container is refused) is tried again."""
    deadline = time.monotonic() + 10
    while True:
        t0 = time.perf_counter()
        got = 0
        with contextlib.suppress(ConnectionRefusedError), socket.create_connection(address, timeout=30) as s:
            while got < size and (chunk := s.recv(1 << 20)):
                got += len(chunk)
        if got >= size:
            return time.perf_counter() - t0
        if time.monotonic() > deadline:
            raise RuntimeError(f"could not read {size} bytes from {address}")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("this benchmark needs root (bridges and veth pairs) and iproute2's ip")
        return 1
    home = Path(tempfile.mkdtemp(prefix="pyc-net-bench-"))
    store = Store(home)
    ensure_bases(cache_store(), ("busybox",), log=lambda _: None)
    copy_image(cache_store(), get_image(cache_store(), "busybox"), store)
    client = pycontainers.Client(home)
    client.networks.create("bench")
    try:
        starts = start_times(client, args.runs)
        reference = ip_reference(args.runs)
        web = client.containers.run("busybox", ["httpd", "-f", "-p", "8000", "-h", "/etc"], detach=True,
                                    ports={"8000/tcp": ("127.0.0.1", None)})
        port = int(web.ports["8000/tcp"][0]["HostPort"])
        address = web.attrs["NetworkSettings"]["IPAddress"]
        deadline = time.monotonic() + 10
        while True:
            try:
                fetch(f"http://127.0.0.1:{port}/hostname")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        through = median_seconds(lambda: fetch(f"http://127.0.0.1:{port}/hostname"), args.runs * 5)
        direct = median_seconds(lambda: fetch(f"http://{address}:8000/hostname"), args.runs * 5)
        size = 64 << 20
        zero = client.containers.run("busybox", ["sh", "-c", "while true; do nc -l -p 9000 < /dev/zero; done"],
                                     detach=True, ports={"9000/tcp": ("127.0.0.1", None)})
        zport = int(zero.ports["9000/tcp"][0]["HostPort"])
        zaddress = zero.attrs["NetworkSettings"]["IPAddress"]
        time.sleep(0.3)
        bulk_through = min(bulk(("127.0.0.1", zport), size) for _ in range(3))
        bulk_direct = min(bulk((zaddress, 9000), size) for _ in range(3))
    finally:
        for c in client.containers.list(all=True):
            c.remove(force=True)
        for net in network.list_networks(store):
            network.delete_bridge(net.bridge)
        shutil.rmtree(home, ignore_errors=True)
    ms = {k: v * 1000 for k, v in starts.items()}
    print(f"(a) run true, median of {args.runs}: none {ms['none']:.1f} ms, bridge {ms['bridge']:.1f} ms, "
          f"user network {ms['bench']:.1f} ms: a network costs {ms['bridge'] - ms['none']:.1f} ms "
          f"({ms['bridge'] / ms['none']:.2f}x none)")
    print(f"(b) the same kernel work by ip commands: {reference * 1000:.1f} ms; pycontainers' whole bridge start "
          f"is {starts['bridge'] / reference:.2f}x that")
    print(f"(c) HTTP GET through the published port {through * 1000:.2f} ms, straight to the container "
          f"{direct * 1000:.2f} ms: {through / direct:.2f}x")
    mib = size / (1 << 20)
    print(f"(d) {mib:.0f} MiB through the forwarder {mib / bulk_through:.0f} MiB/s, straight "
          f"{mib / bulk_direct:.0f} MiB/s: the forwarder gives {bulk_direct / bulk_through:.2f}x the straight rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
