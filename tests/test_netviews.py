"""The network picture (drawn from inspect documents alone: no container here) and the /proc readers."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from pycontainers.netviews import (
    BRIDGE_COLOUR,
    PORT_COLOUR,
    _proc_address,
    listening_sockets,
    network_graph,
    port_owner,
)

WEB_ID = "3ded6a4163c3" + "a" * 52
PROBE_ID = "3efd9749d4d5" + "b" * 52
API_ID = "0c2605df0001" + "c" * 52
FRONT_ID = "6d7fa11581f7" + "d" * 52


def container(name: str, cid: str, mode: str, address: str = "", prefixlen: int = 0, gateway: str = "",
              ports: dict[str, list[dict[str, str]] | None] | None = None, backend: str = "native",
              running: bool = True) -> dict[str, Any]:
    """What ``Container.attrs`` holds about a container's network (``api.container_inspect``)."""
    networks: dict[str, Any] = {}
    if address:
        networks[mode] = {"NetworkID": "f" * 64, "IPAddress": address, "IPPrefixLen": prefixlen, "Gateway": gateway,
                          "Aliases": None if mode == "bridge" else [name, cid[:12]]}
    elif mode in ("none", "host"):
        networks[mode] = {"NetworkID": "", "IPAddress": "", "IPPrefixLen": 0, "Gateway": ""}
    return {"Id": cid, "Name": f"/{name}", "State": {"Running": running, "Status": "running" if running else "exited"},
            "HostConfig": {"NetworkMode": mode},
            "NetworkSettings": {"Ports": ports or {}, "IPAddress": address, "Gateway": gateway, "Networks": networks},
            "RuntimeBackend": backend}


def network(name: str, subnet: str, gateway: str, bridge: str) -> dict[str, Any]:
    """What ``Network.attrs`` holds (``api.network_inspect``)."""
    return {"Name": name, "Id": "e" * 64, "Driver": "bridge",
            "IPAM": {"Driver": "default", "Config": [{"Subnet": subnet, "Gateway": gateway}]},
            "Options": {"com.docker.network.bridge.name": bridge}, "Labels": {}, "Containers": {}}


BRIDGE = network("bridge", "10.88.0.0/16", "10.88.0.1", "pyc-51a2f4c271")
SHOP = network("shop", "10.89.0.0/24", "10.89.0.1", "pyc-9ebd59b510")
NONE_DOC = {"Name": "none", "Id": "none", "Driver": "null", "IPAM": {"Config": []}, "Containers": {}}
PUBLISHED = {"8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "41155"}]}


def web(**changes: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"address": "10.88.0.2", "prefixlen": 16, "gateway": "10.88.0.1", "ports": PUBLISHED}
    options.update(changes)
    return container("web", WEB_ID, "bridge", **options)


def node_line(source: str, node: str) -> str:
    """The node's statement (its label may take several lines: up to the closing bracket)."""
    start = source.index(f"\t{node} [")
    return source[start:source.index("]", start) + 1]


def edges(source: str) -> list[str]:
    """Every edge statement, in order (a label may take several lines)."""
    return re.findall(r"^\t(\S+ -> \S+ \[.*?\])$", source, re.MULTILINE | re.DOTALL)


# ------------------------------------------------------------------------------------------ picture


def test_a_published_container_on_the_default_bridge() -> None:
    g = network_graph([web()], [BRIDGE])
    source = g.source
    bridge = node_line(source, "net0")
    assert "bridge pyc-51a2f4c271" in bridge and "network bridge (the default)" in bridge
    assert "10.88.0.1/16: the gateway" in bridge and "no names: addresses only" in bridge
    assert f'fillcolor="{BRIDGE_COLOUR}"' in bridge
    assert "pv3ded6a4163c3" in node_line(source, "c0_veth")  # the host's end, named as network.veth_names does
    assert "eth0\n10.88.0.2/16" in node_line(source, "c0_eth0") and "lo\n127.0.0.1" in node_line(source, "c0_lo")
    port = node_line(source, "c0_port0")
    assert "0.0.0.0:41155" in port and "pyc-ports" in port and f'fillcolor="{PORT_COLOUR}"' in port
    assert edges(source)[:2] == ["net0 -> c0_veth [dir=none]",
                                 'c0_veth -> c0_eth0 [label="veth pair" dir=none penwidth=2]']
    assert edges(source)[2].startswith('c0_port0 -> c0_eth0 [label="connects to\n10.88.0.2:8080"')
    assert "cluster_host" in source and 'label="web: its own network namespace"' in source
    assert repr(g) == "<network graph: 1 container on 1 network>"  # no memory address in the notebook


def test_a_user_network_names_its_members_and_the_default_bridge_does_not() -> None:
    api = container("api", API_ID, "shop", "10.89.0.3", 24, "10.89.0.1")
    front = container("frontend", FRONT_ID, "shop", "10.89.0.2", 24, "10.89.0.1", PUBLISHED)
    probe = container("probe", PROBE_ID, "bridge", "10.88.0.3", 16, "10.88.0.1")
    source = network_graph([web(), probe, front, api], [BRIDGE, SHOP, NONE_DOC], title="the shop").source
    assert "names: api, frontend" in node_line(source, "net1") and "no names" in node_line(source, "net0")
    assert "probe" not in node_line(source, "net0") and "web" not in node_line(source, "net0")
    assert "net2" not in source  # `none` has no bridge: not drawn
    for tail, head in [("net0", "c0_veth"), ("net0", "c1_veth"), ("net1", "c2_veth"), ("net1", "c3_veth")]:
        assert f"{tail} -> {head} [dir=none]" in edges(source)
    assert "c1_port0" not in source and "c3_port0" not in source  # probe and api publish nothing
    assert 'c2_port0 -> c2_eth0 [label="connects to\n10.89.0.2:8080"' in "\n".join(edges(source))
    assert "<b>the shop</b>" in source


def test_the_same_documents_give_the_same_source_and_objects_with_attrs_work() -> None:
    class Doc:  # an API object: Container and Network have .attrs
        def __init__(self, attrs: dict[str, Any]) -> None:
            self.attrs = attrs

    assert network_graph([web()], [BRIDGE]).source == network_graph([Doc(web())], [Doc(BRIDGE)]).source


def test_a_container_without_a_network_has_only_its_loopback() -> None:
    source = network_graph([container("alone", PROBE_ID, "none")]).source
    assert 'label="alone: --network none: only lo"' in source
    assert "c0_lo" in source and "c0_eth0" not in source and "c0_veth" not in source and edges(source) == []


def test_a_network_not_given_is_drawn_from_the_containers_document() -> None:
    source = network_graph([web()]).source  # no Network documents: the bridge device's name is unknown
    bridge = node_line(source, "net0")
    assert "a bridge\nnetwork bridge (the default)" in bridge and "10.88.0.1/16: the gateway" in bridge
    assert "net0 -> c0_veth [dir=none]" in edges(source)


def test_rootless_and_proot_publish_to_a_loopback() -> None:
    rootless = container("web", WEB_ID, "bridge", ports=PUBLISHED, backend="rootless")
    source = network_graph([rootless]).source
    assert "rootless: its own namespace, only lo" in source and "veth" not in source and "net0" not in source
    assert edges(source)[0].startswith('c0_port0 -> c0_lo [label="connects to\n127.0.0.1:8080"')
    proot = container("web", WEB_ID, "bridge", ports=PUBLISHED, backend="proot")
    source = network_graph([proot]).source
    assert "proot: it shares this machine's network" in node_line(source, "c0")
    assert "cluster_c0" not in source  # no namespace of its own: drawn on the host's side
    assert edges(source)[0].startswith('c0_port0 -> c0 [label="connects to\n127.0.0.1:8080"')


def test_host_network_containers_are_drawn_in_the_host() -> None:
    source = network_graph([container("hostnet", WEB_ID, "host")]).source
    assert "--network host" in node_line(source, "c0") and "cluster_c0" not in source


def test_a_stopped_container_has_no_veth_and_no_forwarder() -> None:
    source = network_graph([web(running=False)], [BRIDGE]).source
    assert "web (not running): no namespace while it is not running, but its address is kept" in source
    assert "c0_veth" not in source and "c0_port0" not in source and "dashed" in node_line(source, "c0_eth0")


def test_text_from_documents_is_escaped_in_the_html_title() -> None:
    assert "&lt;script&gt;" in network_graph([], title="<script>").source


# ------------------------------------------------------------------------------------------- /proc


@pytest.mark.parametrize(("text", "expected"), [
    ("0100007F:1F90", ("127.0.0.1", 8080)),
    ("00000000:0050", ("0.0.0.0", 80)),
    ("0000000000000000FFFF00000100007F:1F90", ("127.0.0.1", 8080)),  # IPv4's loopback, met through IPv6
    ("00000000000000000000000001000000:0016", ("::1", 22)),
])
def test_proc_addresses_are_read_in_the_machines_byte_order(text: str, expected: tuple[str, int]) -> None:
    assert _proc_address(text) == expected


@pytest.fixture
def listener() -> Iterator[int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    yield s.getsockname()[1]
    s.close()


def test_a_listening_socket_is_found_with_its_process(listener: int) -> None:
    assert ("127.0.0.1", listener) in listening_sockets()
    assert ("127.0.0.1", listener) in listening_sockets(os.getpid())
    with open("/proc/self/comm") as f:
        assert port_owner(listener) == (os.getpid(), f.read().strip())


def test_a_closed_port_has_no_owner() -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]  # bound, never listening
    try:
        assert port_owner(port) is None and all(p != port for _, p in listening_sockets())
    finally:
        s.close()
    assert listening_sockets(2**22 + 12345) == []  # no such process: nothing, not an error
