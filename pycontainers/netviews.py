"""Network views: who listens where, and a picture of bridges, veth pairs, containers and published ports.

Everything drawn here comes from the documents the API already returns: ``Container.attrs`` (``docker
inspect``: ``NetworkSettings``, ``HostConfig.NetworkMode``, ``RuntimeBackend``) and ``Network.attrs``
(``docker network inspect``: the subnet, the gateway, the bridge device). Nothing is asked of the kernel
to draw, so a drawing can be made from saved documents, and tested without a container.

The two small readers of ``/proc`` below answer what those documents do not say: which process holds a
listening port on this machine (the port forwarder, ``pyc-ports``), and on which addresses a server inside
a container listens (``127.0.0.1`` only, or every address).

Like ``pycontainers.views``, graphviz is imported inside the function that draws.
"""

from __future__ import annotations

import html
import ipaddress
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .network import DEFAULT, veth_names
from .views import named_digraph

if TYPE_CHECKING:
    import graphviz

BRIDGE_COLOUR, BRIDGE_BORDER = "#fde9c9", "#a84300"  # orange: a network's bridge, on the host
CONTAINER_COLOUR, CONTAINER_BORDER = "#cfe2f3", "#3d6fa5"  # blue: a container, as in the other views
PORT_COLOUR, PORT_BORDER = "#c7e9c0", "#1a7f37"  # green: a published port and its forwarder
VETH_COLOUR = "#ffffff"
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column


# ------------------------------------------------------------------------------------------ listening


def _proc_address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` -> ("127.0.0.1", 8080). /proc prints each 32-bit word of the address in the
    machine's byte order, and the port in hex; an IPv4 address mapped into IPv6 is given as IPv4."""
    address, port = text.split(":")
    raw = bytes.fromhex(address)
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(raw)
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is IPv4's loopback, met through IPv6
    return str(mapped or ip), int(port, 16)


def _listening(pid: int | str) -> list[tuple[str, int, str]]:
    """(address, port, socket inode) of each listening TCP socket in the network namespace of *pid*."""
    found = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                lines = f.read().splitlines()[1:]
        except OSError:  # no IPv6 on this machine, or the process has gone
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN:
                address, port = _proc_address(fields[1])
                found.append((address, port, fields[9]))
    return found


def listening_sockets(pid: int | str = "self") -> list[tuple[str, int]]:
    """The TCP addresses and ports that something listens on in the network namespace of process *pid*
    (``ss -ltn`` run there), sorted: ``[("0.0.0.0", 8080)]``, or ``[("127.0.0.1", 8080)]`` for a server
    that only its own container can reach. Reading another process's needs root (or the same owner)."""
    return sorted({(address, port) for address, port, _ in _listening(pid)},
                  key=lambda a: (a[1], ipaddress.ip_address(a[0]).version, a[0]))


def port_owner(port: int) -> tuple[int, str] | None:
    """(PID, name) of the process holding a listening TCP socket on *port* in this process's network
    namespace (``ss -ltnp 'sport = :PORT'``); None if nothing listens there, or it is not ours to see."""
    inodes = {inode for _, p, inode in _listening("self") if p == port}
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                with open(f"/proc/{pid}/comm") as f:
                    return int(pid), f.read().strip()
        except OSError:  # gone meanwhile, or not readable
            continue
    return None


# --------------------------------------------------------------------------------------------- picture


def _attrs(item: Any) -> dict[str, Any]:
    """A document, or the API object (``Container``, ``Network``) whose ``attrs`` is one."""
    return item if isinstance(item, dict) else item.attrs


@dataclass
class _Net:
    """One bridge network as the picture needs it."""

    name: str
    gateway: str
    prefixlen: int | None
    bridge: str  # the device on the host ("" when only a container's document named the network)
    members: list[str]


def _network_from_doc(doc: dict[str, Any]) -> _Net:
    config = (doc.get("IPAM", {}).get("Config") or [{}])[0]
    subnet = config.get("Subnet")
    prefixlen = ipaddress.ip_network(subnet).prefixlen if subnet else None
    return _Net(doc["Name"], config.get("Gateway", ""), prefixlen,
                (doc.get("Options") or {}).get("com.docker.network.bridge.name", ""), [])


def _port_bindings(doc: dict[str, Any]) -> list[tuple[str, str, int]]:
    """(host IP, host port, container port) of each port *doc*'s container publishes now."""
    out = []
    for key, bindings in sorted((doc.get("NetworkSettings") or {}).get("Ports", {}).items()):
        for b in bindings or []:
            out.append((b["HostIp"], b["HostPort"], int(key.partition("/")[0])))
    return out


def network_graph(containers: Iterable[Any], networks: Iterable[Any] = (), *,
                  title: str | None = None) -> graphviz.Digraph:
    """Bridges, veth pairs, containers with their addresses, and published ports, in one drawing.

    *containers*: ``Container.attrs`` documents (or the containers); *networks*: ``Network.attrs`` documents
    (or the networks), for the bridge devices' names; networks without a bridge (``none``, ``host``) are left
    out, and a network a container is on but that is not given is drawn from the container's document.

    Left, the host's network namespace: each network's bridge with the gateway's address, the host's end of
    each container's veth pair, and each published port's listening socket, held by the forwarder. Right, each
    container's own network namespace: ``eth0``, ``eth1``... (the other ends of its veth pairs, one per
    network it is on) with their addresses, and ``lo``.
    A published port points at where the forwarder connects: the container's address on its bridge; its
    loopback for a rootless container; this machine's 127.0.0.1 under proot, whose containers share the
    host's network, like those of ``--network host``. Node names are positions (``net0``, ``c1_eth0``), so
    the same documents always give the same DOT source.
    """
    docs = [_attrs(c) for c in containers]
    nets: dict[str, _Net] = {}
    for doc in map(_attrs, networks):
        if doc.get("Driver") == "bridge":
            nets.setdefault(doc["Name"], _network_from_doc(doc))
    for doc in docs:
        for name, info in ((doc.get("NetworkSettings") or {}).get("Networks") or {}).items():
            if info.get("IPAddress") and name not in nets:
                nets[name] = _Net(name, info.get("Gateway", ""), info.get("IPPrefixLen"), "", [])
            if name in nets:
                nets[name].members.append(doc["Name"].lstrip("/"))
    net_ids = {name: f"net{i}" for i, name in enumerate(nets)}

    count = f"{len(docs)} container{'s' if len(docs) != 1 else ''}"
    label = f"<b>{html.escape(title)}</b>" if title else html.escape(count)
    g = named_digraph(
        "network graph", f"{count} on {len(nets)} network{'s' if len(nets) != 1 else ''}",
        graph_attr={"rankdir": "LR", "label": f"<{label}>", "labelloc": "t", "fontname": "Helvetica",
                    "nodesep": "0.25", "ranksep": "0.9", "newrank": "true"},
        node_attr={"fontname": "Helvetica", "fontsize": "10", "shape": "box", "style": "rounded,filled",
                   "fillcolor": "#eeeeee", "color": "#888888"},
        edge_attr={"color": "#888888", "arrowsize": "0.6", "fontname": "Helvetica", "fontsize": "9"},
    )
    host_nodes: list[tuple[str, str, dict[str, str]]] = []  # drawn inside the host's cluster
    edges: list[tuple[str, str, dict[str, str]]] = []
    clusters: list[tuple[str, str, list[tuple[str, str, dict[str, str]]], dict[str, str]]] = []

    for name, net in nets.items():
        lines = [f"bridge {net.bridge}" if net.bridge else "a bridge", f"network {name}"
                 + (" (the default)" if name == DEFAULT else "")]
        if net.gateway:
            lines.append(f"{net.gateway}{f'/{net.prefixlen}' if net.prefixlen else ''}: the gateway")
        if name == DEFAULT:
            lines.append("no names: addresses only")
        elif net.members:
            lines.append("names: " + ", ".join(sorted(net.members)))
        host_nodes.append((net_ids[name], "\n".join(lines),
                           {"fillcolor": BRIDGE_COLOUR, "color": BRIDGE_BORDER}))

    for k, doc in enumerate(docs):
        cname = doc["Name"].lstrip("/")
        running = bool((doc.get("State") or {}).get("Running"))
        mode = (doc.get("HostConfig") or {}).get("NetworkMode", "none")
        backend = doc.get("RuntimeBackend", "native")
        attached = [(n, i) for n, i in ((doc.get("NetworkSettings") or {}).get("Networks") or {}).items()
                    if i.get("IPAddress")]
        state = "" if running else " (not running)"
        style = {} if running else {"style": "rounded,dashed", "fillcolor": "#ffffff"}
        target = ""  # where the forwarder of a published port connects
        target_text = ""
        if backend == "proot" or mode == "host":
            why = "proot: it shares this machine's network" if backend == "proot" else "--network host"
            node = f"c{k}"
            host_nodes.append((node, f"{cname}{state}\n{why}",
                               {"fillcolor": CONTAINER_COLOUR, "color": CONTAINER_BORDER, **style}))
            target, target_text = node, "127.0.0.1"
        else:
            inside: list[tuple[str, str, dict[str, str]]] = []
            for n, (network_name, info) in enumerate(attached):  # eth0, eth1...: one per network it is on
                prefix = f"/{info['IPPrefixLen']}" if info.get("IPPrefixLen") else ""
                inside.append((f"c{k}_eth{n}", f"eth{n}\n{info['IPAddress']}{prefix}",
                               {"fillcolor": CONTAINER_COLOUR, "color": CONTAINER_BORDER, **style}))
                if running:  # the namespace, and the pair with it, exist only while it runs
                    veth = f"c{k}_veth" + (str(n) if n else "")
                    host_end = veth_names(doc["Id"], "" if network_name == mode else info["NetworkID"])[0]
                    host_nodes.append((veth, f"{host_end}\n{cname}'s veth, host end", {"fillcolor": VETH_COLOUR}))
                    edges.append((net_ids[network_name], veth, {"dir": "none"}))
                    edges.append((veth, f"c{k}_eth{n}", {"dir": "none", "penwidth": "2", "label": "veth pair"}))
                if not n:  # published ports lead to the first network's address
                    target, target_text = f"c{k}_eth0", info["IPAddress"]
            inside.append((f"c{k}_lo", "lo\n127.0.0.1", {"fillcolor": VETH_COLOUR, **style}))
            if not target:
                target, target_text = f"c{k}_lo", "127.0.0.1"
            if not running:
                what = "no namespace while it is not running" + (", but its address is kept" if attached else "")
            elif backend == "rootless":
                what = "rootless: its own namespace, only lo"
            elif not attached:
                what = "--network none: only lo" if mode == "none" else f"network {mode}"
            else:
                what = "its own network namespace"
            clusters.append((f"cluster_c{k}", f"{cname}{state}: {what}", inside,
                             {"color": CONTAINER_BORDER, "style": "rounded" + (",dashed" if not running else "")}))
        for j, (host_ip, host_port, container_port) in enumerate(_port_bindings(doc) if running else []):
            port = f"c{k}_port{j}"
            host_nodes.append((port, f"{host_ip}:{host_port}\nforwarder of {cname} (pyc-ports)",
                               {"fillcolor": PORT_COLOUR, "color": PORT_BORDER}))
            edges.append((port, target, {"label": f"connects to\n{target_text}:{container_port}",
                                         "color": PORT_BORDER, "fontcolor": PORT_BORDER}))

    with g.subgraph(name="cluster_host") as sub:
        sub.attr(label="this machine: the host's network namespace", fontsize="10", color="#bbbbbb",
                 style="rounded")
        for node, text, attrs in host_nodes:
            sub.node(node, text, **attrs)
    for name, text, inside, attrs in clusters:
        with g.subgraph(name=name) as sub:
            sub.attr(label=text, fontsize="10", **attrs)
            for node, label, node_attrs in inside:
                sub.node(node, label, **node_attrs)
    if clusters:  # every container's interfaces in one column, right of the host's (newrank allows it)
        with g.subgraph() as column:
            column.attr(rank="same")
            for _, _, inside, _ in clusters:
                for node, _, _ in inside:
                    column.node(node)
    for tail, head, attrs in edges:
        g.edge(tail, head, **attrs)
    return g


__all__ = ["listening_sockets", "network_graph", "port_owner"]
