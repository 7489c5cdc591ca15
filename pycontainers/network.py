"""Container networks: a Linux bridge per network, a veth pair per container, published ports.

Docker's bridge driver, made of the same kernel parts::

    host network namespace                                 container's network namespace
    ┌────────────────────────────────────────┐             ┌──────────────────────────────┐
    │ bridge pyc-<id> 10.89.0.1/24 (gateway) │             │ lo     127.0.0.1             │
    │   └── veth pv<container id> ───────────┼── a pair ───┼── eth0 10.89.0.2/24          │
    │ port forwarder 0.0.0.0:8080 ───────────┼── TCP ──────┼─> 10.89.0.2:80               │
    └────────────────────────────────────────┘             └──────────────────────────────┘

A *network* is a record in the store (``networks/<name>.json``, below) and a bridge device, made again
whenever it is missing (after a reboot). Each container on it gets an address when it is created (its
*lease*, freed when it is removed) and, when it starts, a veth pair: one end on the bridge, the other
moved into the container's network namespace as ``eth0``. On networks made with ``network create`` (not
on the default ``bridge``, as in Docker) containers find each other by name: each one's ``/etc/hosts``
lists the others, and is rewritten in place when one joins or leaves.

A container may be on several networks (tiers kept apart: an api on ``front`` and ``back``, a database on
``back`` only). Its state's ``networks`` lists them in the order of its interfaces (eth0, eth1...: see
container.py); ``network connect`` adds one, ``network disconnect`` takes one away. A created or stopped
container gets its interfaces at its next start; a running one at once (``plug``): a veth pair whose
container end is made right inside the namespace of its PID 1, as the next free ethN, then given its
address (its subnet's route comes with it) from a thread that has entered that namespace (setns(2)).
The default route and the published ports stay with the first network. Each pair's host end has a name of
its own (``veth_names``): ``pv<12 hex of the container ID>`` on the network it was created on,
``pv<8 hex><5 hex of the network ID>`` on the others (15 characters, the kernel's most). Its /etc/hosts
lists the members of each user-defined network it is on.

Published ports (``-p 8080:80``) go through a forwarder in the container's monitor, as Docker's
``docker-proxy`` does: it listens on the host and opens a connection to the container for each client.

Where there is no root (no veth pairs in the host's namespace), a container asking for a network gets its
own namespace with only ``lo``, and the forwarder reaches its published ports on the container's
loopback; under proot the container shares the host's network and the forwarder connects to 127.0.0.1.

``networks/<name>.json``::

    {"Name": "app", "Id": "<64 hex>", "Driver": "bridge", "Created": "<RFC 3339>",
     "Subnet": "10.89.0.0/24", "Gateway": "10.89.0.1", "Bridge": "pyc-<10 hex>",
     "Leases": {"<container id>": "10.89.0.2", ...}}

The kernel work is done with pyroute2 (netlink), imported only by processes that set a network up: it
costs a quarter of a second to import.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import selectors
import socket
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ContainerNotFound, InvalidArgument, NetworkError, NetworkNotFound, PyContainersError
from .spec import _NETWORK_NAME, check_network_name
from .spec import NETWORK_MODES as MODES
from .store import Store, atomic_write

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .container import Container

DEFAULT = "bridge"  # the network of `run -p` and `--network bridge`, as Docker's docker0
PREDEFINED = (DEFAULT, *MODES)
DEFAULT_SUBNETS = [f"10.{n}.0.0/16" for n in range(88, 80, -1)]
USER_SUBNETS = [f"10.89.{n}.0/24" for n in range(256)]
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")  # RFC 1918
_NAME = _NETWORK_NAME
NO_ROOT_SENTENCE = ("Without root this container gets a network namespace of its own with only loopback: "
                    "published ports reach it through pycontainers' port forwarder, but containers cannot "
                    "reach each other (a bridge and veth pairs need root).")
PROOT_SENTENCE = ("Under proot the container shares this machine's network: a published port is forwarded to "
                  "127.0.0.1 here, where the container's server listens.")


# --------------------------------------------------------------------------------------- the records


@dataclass
class Network:
    """One network's record (``networks/<name>.json``)."""

    name: str
    id: str
    subnet: str
    gateway: str
    bridge: str
    created: str
    leases: dict[str, str] = field(default_factory=dict)  # container ID -> its address
    subnet_given: bool | None = None  # made with --subnet? (None: a record older than this field)

    @property
    def prefixlen(self) -> int:
        return ipaddress.ip_network(self.subnet).prefixlen

    @property
    def resolves_names(self) -> bool:
        """Docker's rule: containers find each other by name on user-defined networks only."""
        return self.name != DEFAULT

    def to_json(self) -> dict[str, Any]:
        return {"Name": self.name, "Id": self.id, "Driver": "bridge", "Created": self.created,
                "Subnet": self.subnet, "Gateway": self.gateway, "Bridge": self.bridge, "Leases": self.leases,
                "SubnetGiven": self.subnet_given}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Network:
        return cls(obj["Name"], obj["Id"], obj["Subnet"], obj["Gateway"], obj["Bridge"], obj["Created"],
                   dict(obj.get("Leases") or {}), obj.get("SubnetGiven"))


def networks_dir(store: Store) -> Path:
    return store.home / "networks"


@contextlib.contextmanager
def locked(store: Store) -> Iterator[Path]:
    """Serialise changes to the network records (leases, /etc/hosts files) across processes (flock)."""
    d = networks_dir(store)
    d.mkdir(parents=True, exist_ok=True)
    fd = os.open(d / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield d
    finally:
        os.close(fd)


def _read(path: Path) -> Network:
    try:
        return Network.from_json(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise NetworkError(f"network record {path} is damaged: {exc}") from None


def _save(store: Store, net: Network) -> None:
    atomic_write(networks_dir(store) / f"{net.name}.json", json.dumps(net.to_json(), indent=1).encode(),
                 durable=False)


def list_networks(store: Store) -> list[Network]:
    """The store's networks (the default ``bridge`` once a container has used it), oldest first."""
    d = networks_dir(store)
    if not d.is_dir():
        return []
    return sorted((_read(p) for p in d.glob("*.json")), key=lambda n: (n.created, n.name))


def get_network(store: Store, ref: str) -> Network:
    """A network by name, full ID or unique ID prefix (the default ``bridge`` once a container has used it).

    Takes no lock: a reader sees a record as a whole (records are replaced by a rename)."""
    path = networks_dir(store) / f"{ref}.json"
    if _NAME.match(ref) and path.is_file():
        return _read(path)
    matches = [n for n in list_networks(store) if len(ref) >= 3 and n.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    raise NetworkNotFound(f"network {ref} not found" + (" (the ID prefix is ambiguous)" if matches else ""))


def create_network(store: Store, name: str, subnet: str | None = None) -> Network:
    """``docker network create NAME [--subnet CIDR]``: a record now, a bridge when a container needs it."""
    if name in PREDEFINED:
        raise InvalidArgument(f"{name} is a pre-defined network and cannot be created")
    check_network_name(name)
    with locked(store) as d:
        if (d / f"{name}.json").exists():
            raise NetworkError(f"network with name {name} already exists")
        net = _new_network(store, name, USER_SUBNETS, subnet)
        _save_then_make_bridge(store, net)
        return net


def _save_then_make_bridge(store: Store, net: Network) -> None:
    """The record first, then its bridge: a process killed between the two leaves a network that ``network rm``
    removes (and whose bridge a container joining it makes), never a bridge no record names."""
    _save(store, net)
    try:
        make_bridge(net)
    except BaseException:
        with contextlib.suppress(OSError, NetworkError):
            delete_bridge(net.bridge)
        (networks_dir(store) / f"{net.name}.json").unlink(missing_ok=True)
        raise


def _default_network(store: Store) -> Network:
    """The store's ``bridge`` network, made on first use (call with the lock held)."""
    path = networks_dir(store) / f"{DEFAULT}.json"
    if path.is_file():
        return _read(path)
    net = _new_network(store, DEFAULT, DEFAULT_SUBNETS, None)
    _save_then_make_bridge(store, net)
    return net


def _new_network(store: Store, name: str, candidates: list[str], subnet: str | None) -> Network:
    from .container import now_iso

    taken = [ipaddress.ip_network(n.subnet) for n in list_networks(store)] + host_routes()
    if subnet is not None:
        try:
            chosen = ipaddress.ip_network(subnet)
        except ValueError as exc:
            raise InvalidArgument(f"invalid subnet {subnet!r}: {exc}") from None
        if chosen.version != 4 or chosen.prefixlen > 29:
            raise InvalidArgument(f"subnet {subnet}: use an IPv4 network of at least 8 addresses (/29 or wider)")
        if not any(chosen.subnet_of(ipaddress.IPv4Network(r)) for r in PRIVATE_RANGES):
            raise InvalidArgument(f"subnet {subnet}: use a private range (10.0.0.0/8, 172.16.0.0/12 or "
                                  "192.168.0.0/16): any other would take over this machine's traffic to it")
        clash = next((t for t in taken if t.overlaps(chosen)), None)
        if clash is not None:
            raise NetworkError(f"subnet {subnet} overlaps {clash}, which this machine or another network uses")
    else:
        free = [c for c in map(ipaddress.ip_network, candidates) if not any(c.overlaps(t) for t in taken)]
        if not free:
            raise NetworkError("no free subnet left for a new network: remove one (network rm) or give --subnet")
        chosen = free[0]
    net_id = os.urandom(32).hex()
    return Network(name, net_id, str(chosen), str(next(chosen.hosts())), f"pyc-{net_id[:10]}", now_iso(),
                   subnet_given=subnet is not None)


def host_routes() -> list[ipaddress.IPv4Network]:
    """The IPv4 networks this machine routes to directly (/proc/net/route), default route excepted."""
    out = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            f = line.split()
            dest, mask = (ipaddress.IPv4Address(int(x, 16).to_bytes(4, "little")) for x in (f[1], f[7]))
            if int(mask):
                out.append(ipaddress.IPv4Network(f"{dest}/{mask}", strict=False))
    return out


def remove_network(store: Store, ref: str) -> str:
    """``docker network rm``: refused while a container is on it; the bridge device goes with it."""
    if ref in PREDEFINED:
        raise NetworkError(f"{ref} is a pre-defined network and cannot be removed")
    with locked(store) as d:
        net = get_network(store, ref)
        if net.name in PREDEFINED:  # (named by its ID)
            raise NetworkError(f"{net.name} is a pre-defined network and cannot be removed")
        _forget_removed(store, net)
        if net.leases:
            users = ", ".join(sorted(_container_names(store, net)))
            raise NetworkError(f"error while removing network {net.name}: it has active endpoints ({users})")
        delete_bridge(net.bridge)
        (d / f"{net.name}.json").unlink()
        return net.name


def prune_networks(store: Store) -> list[str]:
    """``docker network prune``: the user-defined networks no container uses."""
    removed = []
    for net in list_networks(store):
        if net.name in PREDEFINED:
            continue
        with contextlib.suppress(NetworkError, NetworkNotFound):
            removed.append(remove_network(store, net.name))
    return removed


def _container_names(store: Store, net: Network) -> list[str]:
    from .container import containers_dir, read_state

    names = []
    for cid in net.leases:
        with contextlib.suppress(Exception):
            names.append(read_state(containers_dir(store) / cid)["name"])
    return names


def _forget_removed(store: Store, net: Network) -> None:
    """Drop the leases of containers whose directory is gone (a process killed while removing one), or whose
    state does not list *net* (killed between the lease and the state: every writer of both holds the lock)."""
    from .container import containers_dir, read_state

    for cid in list(net.leases):
        try:
            listed = net.name in (read_state(containers_dir(store) / cid).get("networks") or {})
        except ContainerNotFound:
            listed = False
        except (PyContainersError, OSError):  # (unreadable: not ours to judge)
            listed = True
        if not listed:
            del net.leases[cid]


# ---------------------------------------------------------------------- containers joining and leaving


def endpoints(container: Container) -> dict[str, dict[str, Any]]:
    """The networks the container is on (its state's ``networks``), in the order of its interfaces: the
    first one's is eth0, with the default route, and its published ports lead to that address."""
    return container.state.get("networks") or {}


def host_veth(container: Container, network: str, info: dict[str, Any]) -> str:
    """The host end's name of the container's veth pair on *network* (``veth_names``)."""
    return veth_names(container.id, "" if network == container.spec.network else info["id"])[0]


def _lease(net: Network, container_id: str, wanted: str | None = None) -> str:
    """A free address on *net* (or the one asked for, if it is free), recorded in its leases (not yet saved)."""
    subnet = ipaddress.ip_network(net.subnet)
    used = {ipaddress.ip_address(a) for c, a in net.leases.items() if c != container_id}
    used.add(ipaddress.ip_address(net.gateway))
    if wanted is None:
        address = next((a for a in subnet.hosts() if a not in used), None)
        if address is None:
            raise NetworkError(f"network {net.name} has no free address left in {net.subnet}")
    else:
        check_ip_wanted(net.name, wanted)
        if net.subnet_given is False:  # (Docker's rule: the address a network chose may change with it)
            raise InvalidArgument(f"invalid config for network {net.name}: user specified IP address is supported "
                                  "only when connecting to networks with user configured subnets (--subnet)")
        address = ipaddress.IPv4Address(wanted)
        if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument(f"no configured subnet or ip-range contain the IP address {wanted}")
        if address in used:
            raise NetworkError(f"Address already in use: {wanted} on network {net.name}")
    net.leases[container_id] = str(address)
    return str(address)


def check_ip_wanted(network: str, wanted: str) -> None:
    """``--ip``: an IPv4 address, asked for on a user-defined network (Docker's two refusals)."""
    try:
        ipaddress.IPv4Address(wanted)
    except ValueError:
        raise InvalidArgument(f"invalid IPv4 address: {wanted}") from None
    if network in PREDEFINED:
        raise InvalidArgument("user specified IP address is supported on user defined networks only")


def _endpoint(net: Network, address: str, aliases: list[str]) -> dict[str, Any]:
    """What the container's state keeps of its place on *net* (an entry of ``networks``)."""
    return {"id": net.id, "address": address, "prefixlen": net.prefixlen, "gateway": net.gateway,
            "bridge": net.bridge, "aliases": aliases}


def join(store: Store, container: Container) -> None:
    """At ``create``: lease the container an address on its network and, on a user-defined network, tell
    the others its name (and it theirs) in /etc/hosts. Recorded in its state's ``networks``."""
    spec = container.spec
    if not spec.on_a_network or container.state.get("backend") in ("rootless", "proot"):
        return
    with locked(store):
        net = _default_network(store) if spec.network == DEFAULT else get_network(store, spec.network)
        _forget_removed(store, net)
        address = _lease(net, container.id, spec.ip)
        _save(store, net)
        container.save(networks={net.name: _endpoint(net, address, list(spec.aliases))})
        _rewrite_for(store, container, net)


HOST_CONFLICT = "container cannot be disconnected from host network or connected to host network"
NONE_CONFLICT = "container cannot be connected to multiple networks with one of the networks in private (none) mode"


def _refuse_modes(container: Container, ref: str) -> None:
    """Docker's refusals: ``host`` and ``none`` are no networks to join or leave, and a container on one of
    them (its own namespace with only loopback, or the host's) joins no other; nor does one without bridges."""
    backend = container.state.get("backend")
    if backend in ("rootless", "proot"):
        raise NetworkError(f"container {container.name} uses the {backend} back end, which has no bridges or "
                           "veth pairs (they need root): its containers cannot be connected to networks")
    if "host" in (ref, container.spec.network):
        raise NetworkError(HOST_CONFLICT)
    if "none" in (ref, container.spec.network):
        hint = ("" if ref == "none" else f" (container {container.name} is on none, only loopback: pycontainers' "
                "default without --network, where Docker's is bridge; create it with --network bridge or NAME)")
        raise NetworkError(NONE_CONFLICT + hint)


def connect(store: Store, container: Container, ref: str, aliases: list[str] | None = None,
            ip: str | None = None) -> None:
    """``docker network connect [--alias A] [--ip IP] NETWORK CONTAINER``: an address on one more network,
    the names of its members in /etc/hosts, and, while the container runs, its interface at once (``plug``);
    otherwise at its next start.

    Under the container's start lock first (a start reads the networks once, when it makes the interfaces:
    it ends before the list changes), then the store's network lock, in the order ``rm`` takes them."""
    from .container import holding_start_lock
    from .spec import parse_aliases

    _refuse_modes(container, ref)
    wanted = parse_aliases(list(aliases or []))
    with holding_start_lock(container), locked(store):
        net = _default_network(store) if ref == DEFAULT else get_network(store, ref)
        container.reload()
        joined = endpoints(container)
        if net.name in joined:
            raise NetworkError(f"endpoint with name {container.name} already exists in network {net.name}")
        if not net.resolves_names and wanted:
            raise InvalidArgument("network-scoped aliases are supported only for containers on user-defined networks")
        _forget_removed(store, net)
        info = _endpoint(net, _lease(net, container.id, ip), wanted)
        if host_veth(container, net.name, info) in {host_veth(container, n, e) for n, e in joined.items()}:
            raise NetworkError(f"container {container.name} is on a network whose ID begins as {net.name}'s: "
                               "their interfaces would have the same name")
        _save(store, net)
        try:
            _save_networks(container, {**joined, net.name: info})
            if container.status == "running":
                plug(container, net.name, info)
        except BaseException:
            with contextlib.suppress(Exception):
                _save_networks(container, joined)
            net.leases.pop(container.id, None)
            _save(store, net)
            raise
        _rewrite_for(store, container, net)


def disconnect(store: Store, container: Container, ref: str, force: bool = False) -> None:
    """``docker network disconnect [-f] NETWORK CONTAINER``: its interface there goes at once if it runs
    (``unplug``), its address is freed and its name leaves the members' /etc/hosts. With *force*, a network
    whose record has gone is still let go of. The locks as ``connect``'s."""
    from .container import holding_start_lock

    _refuse_modes(container, ref)
    with holding_start_lock(container), locked(store):
        container.reload()
        joined = endpoints(container)
        try:
            net: Network | None = get_network(store, ref)
        except NetworkNotFound:
            if ref == DEFAULT or (force and ref in joined):  # (the default network is made on first use only)
                net = None
            else:
                raise
        name = net.name if net else ref
        info = joined.get(name)
        if info is None:
            raise NetworkError(f"container {container.name} is not connected to network {name}")
        left = {n: e for n, e in joined.items() if n != name}
        if container.status == "running":
            first = next(iter(joined))
            if name == first and container.spec.ports:
                raise NetworkError(f"container {container.name} publishes ports at its address on network {name}: "
                                   "stop it before disconnecting it from that network")
            unplug(host_veth(container, name, info))
            if name == first and left:  # the default route went with that interface: through the next network
                reroute(container, next(iter(left.values()))["gateway"])
        _save_networks(container, left)
        if net is not None and net.leases.pop(container.id, None) is not None:
            _save(store, net)
        _rewrite_for(store, container, net)


def _save_networks(container: Container, networks: dict[str, dict[str, Any]]) -> None:
    """Record the container's networks; a container removed meanwhile is said to be gone."""
    try:
        container.save(networks=networks)
    except FileNotFoundError:
        raise ContainerNotFound(f"No such container: {container.name}") from None


def leave(store: Store, ref: str, container_id: str) -> None:
    """Free a container's address on network *ref* (at its removal, or when its creation failed half-way)
    and take its name out of the others' /etc/hosts."""
    if not networks_dir(store).is_dir():
        return
    with locked(store), contextlib.suppress(NetworkNotFound):
        net = get_network(store, ref)
        if net.leases.pop(container_id, None) is not None:
            _save(store, net)
            if net.resolves_names:
                rewrite_hosts_files(store, net)


def leave_all(store: Store, container: Container) -> None:
    """At the container's removal: ``leave`` every network it is on (one damaged record spares the others)."""
    for name in endpoints(container):
        with contextlib.suppress(PyContainersError, OSError):
            leave(store, name, container.id)


def renamed(store: Store, container: Container) -> None:
    """After ``rename``: the /etc/hosts files that name the container (every member's of each user-defined
    network it is on; its own) say its new name."""
    with locked(store):
        for name in endpoints(container):
            with contextlib.suppress(NetworkNotFound):
                net = get_network(store, name)
                if net.resolves_names:
                    rewrite_hosts_files(store, net)
        with contextlib.suppress(OSError):
            rewrite_hosts_file(store, container)


def _rewrite_for(store: Store, container: Container, net: Network | None) -> None:
    """After the container joined or left *net* (the lock held): the /etc/hosts of *net*'s members, and its own."""
    if net is not None and net.resolves_names:
        rewrite_hosts_files(store, net)
    with contextlib.suppress(OSError):
        rewrite_hosts_file(store, container)


def _members(store: Store, net: Network, known: dict[str, Container]) -> list[tuple[Container, str]]:
    """The containers on *net* and their addresses there (read once each, into *known*)."""
    from .container import Container, containers_dir, read_state

    found = []
    for cid, address in net.leases.items():
        if cid not in known:
            with contextlib.suppress(Exception):
                known[cid] = Container(store, cid, read_state(containers_dir(store) / cid))
        if cid in known:
            found.append((known[cid], address))
    return found


def rewrite_hosts_files(store: Store, net: Network) -> None:
    """Every container on *net* gets an /etc/hosts naming the members of each of its user-defined networks
    (a bind mount of a file in its directory: rewritten in place, so the running container sees the change)."""
    known: dict[str, Container] = {}
    for container, _ in _members(store, net, known):
        with contextlib.suppress(OSError):
            rewrite_hosts_file(store, container, known)


def _others(store: Store, container: Container, known: dict[str, Container]) -> list[tuple[str, list[tuple[str, str]]]]:
    """For each user-defined network the container is on: its name, and its other members' addresses and
    names there (their name, their aliases on it, their short ID)."""
    groups = []
    for name in endpoints(container):
        if name == DEFAULT:
            continue
        try:
            net = get_network(store, name)
        except NetworkNotFound:
            continue
        others = [(a, " ".join([c.name, *endpoints(c).get(name, {}).get("aliases", []), c.id[:12]]))
                  for c, a in _members(store, net, known) if c.id != container.id]
        groups.append((name, others))
    return groups


HOSTS_END = "# (end of the lines pycontainers keeps: yours may follow)"


def hosts_text(hostname: str, address: str | None, groups: list[tuple[str, list[tuple[str, str]]]], name: str = "",
               tail: str = "", extra: list[list[str]] = ()) -> str:  # type: ignore[assignment]
    """/etc/hosts: loopback, the container itself (its hostname, and its names on its networks), the *extra*
    lines of ``--add-host``, then for each user-defined network it is on, the others there (*groups*: the
    network's name, and its members' addresses and names), then a comment line and *tail* (lines added inside)."""
    own = hostname if name in ("", hostname) else f"{hostname} {name}"
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback", f"{address or '127.0.1.1'}\t{own}"]
    lines += [f"{a}\t{n}" for n, a in extra]
    for network, others in groups:
        lines.append(f"# the other containers on network {network}")
        lines += [f"{a}\t{names}" for a, names in sorted(others, key=lambda o: ipaddress.ip_address(o[0]))]
    if groups:
        lines.append(HOSTS_END)
    return "\n".join(lines) + "\n" + tail


def rewrite_hosts_file(store: Store, container: Container, known: dict[str, Container] | None = None) -> None:
    """Write the container's /etc/hosts in place (the same inode: its bind mount shows the change at once),
    keeping the lines added inside after ours (``echo "1.2.3.4 db" >> /etc/hosts``), as Docker keeps them.

    Never blocks: the container's root owns the file and could hold a lease on it, which would make an
    ordinary open wait (``lease-break-time``, 45 s) with the store's network lock held; such a file is
    left as it was (O_NONBLOCK: EWOULDBLOCK). O_NOFOLLOW: a symbolic link there is not followed."""
    joined = endpoints(container)
    first = next(iter(joined.values()), {})
    groups = _others(store, container, {} if known is None else known)
    aliases = [a for n, e in joined.items() if n != DEFAULT for a in e.get("aliases", [])]
    try:
        fd = os.open(container.dir / "hosts", os.O_RDWR | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except BlockingIOError:
        return
    try:
        current = os.pread(fd, 1 << 20, 0).decode(errors="replace")
        _, end, tail = current.partition(HOSTS_END + "\n")
        if not end:  # no other containers listed yet: ours are the first lines, then any added inside
            tail = "".join(current.splitlines(keepends=True)[3 + len(container.spec.extra_hosts):])
        text = hosts_text(container.spec.hostname, first.get("address"), groups,
                          " ".join(dict.fromkeys([container.name, *aliases])) if groups else "",  # (its own too)
                          tail, container.spec.extra_hosts).encode()
        os.pwrite(fd, text, 0)
        os.ftruncate(fd, len(text))
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------- published ports


@dataclass(frozen=True)
class PortBinding:
    """``-p [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp]``; host port 0: any free one, chosen at start."""

    container_port: int
    host_port: int = 0
    host_ip: str = "0.0.0.0"

    def to_json(self) -> list[object]:
        return [self.host_ip, self.host_port, self.container_port]


def parse_publish(text: str) -> PortBinding:
    """Docker's ``-p`` syntax, TCP only (UDP is refused in one line)."""
    spec, _, proto = text.partition("/")
    if proto.lower() not in ("", "tcp"):
        raise InvalidArgument(f"-p {text}: only TCP ports can be published here")
    if "-" in spec.rsplit(":", 2)[-1] or (spec.count(":") and "-" in spec.rsplit(":", 2)[-2]):
        raise InvalidArgument(f"-p {text}: port ranges are not supported here: publish each port with its own -p")
    parts = spec.rsplit(":", 2)
    host_ip = parts[0].strip("[]") if len(parts) == 3 else "0.0.0.0"
    try:
        if host_ip:
            ipaddress.IPv4Address(host_ip)
        numbers = [int(p) if p else 0 for p in parts[-2:]] if len(parts) > 1 else [0, int(parts[0])]
    except ValueError:
        raise InvalidArgument(f"invalid port specification: {text!r} (use [HOST_IP:][HOST_PORT:]PORT)") from None
    host_port, container_port = numbers
    if not 0 < container_port < 65536 or not 0 <= host_port < 65536:
        raise InvalidArgument(f"invalid port specification: {text!r}: ports are 1-65535")
    return PortBinding(container_port, host_port, host_ip or "0.0.0.0")


def ports_from_docker_py(ports: dict[str, Any]) -> list[PortBinding]:
    """docker-py's ``ports={"80/tcp": 8080}`` (also ``None``, ``(ip, port)`` and lists of those)."""
    out = []
    for key, value in ports.items():
        container_port = str(key).partition("/")[0]
        for v in value if isinstance(value, list) else [value]:
            if v is None:
                out.append(parse_publish(container_port))
            elif isinstance(v, tuple):  # (host ip,) or (host ip, host port or None)
                host = v[1] if len(v) > 1 and v[1] is not None else ""
                out.append(parse_publish(f"{v[0]}:{host}:{container_port}"))
            else:
                out.append(parse_publish(f"{v}:{key}"))
    return out


MAX_CONNECTIONS = 512  # per container: beyond it a new client is closed at once (each one holds two sockets)
DRAIN_SECONDS = 2.0  # after the container's end, what its last connections still carry reaches their clients
BUFFER = 256 << 10  # bytes read ahead in each direction before reading waits for the other side


class PortForwarder:
    """The published ports of one container: host listeners, served by a small process of their own.

    The listening sockets are made first, in the host's network namespace, by the monitor; connections to
    the container are opened from inside its namespace (the monitor's by then), to its address on the
    bridge or its loopback. The serving process (``pyc-ports``: one thread, one ``selectors`` loop over
    every socket: ``Relay``) is forked by the monitor before anything else, while it is single-threaded
    (a container's PID 1 must not be the fork of a threaded process). It ends when the monitor closes
    its end of a pipe (the container's end, or the monitor's death): the ports are free at once, and the
    connections still open get ``DRAIN_SECONDS`` to deliver what the container sent before it ended.
    """

    def __init__(self, bindings: list[PortBinding], target: str, served: list[PortBinding] | None = None) -> None:
        """*served*: bindings the container's server answers itself (proot: it is on this machine)."""
        self.target = target
        self.listeners: list[tuple[socket.socket, int]] = []
        self.pid: int | None = None
        self._stop_w: int | None = None
        self._ack_r: int | None = None
        try:
            for b in bindings:
                s = self._listen(b)
                while target.startswith("127.") and s.getsockname()[1] == b.container_port:
                    s.close()  # (a free port chosen by the kernel that is the target's: it would loop)
                    s = self._listen(b)
                self.listeners.append((s, b.container_port))
        except BaseException:
            self.close()
            raise
        self._bindings = [[s.getsockname()[0], s.getsockname()[1], port] for s, port in self.listeners]
        self._bindings += [[b.host_ip, b.host_port, b.container_port] for b in served or []]

    @staticmethod
    def _listen(b: PortBinding) -> socket.socket:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((b.host_ip, b.host_port))
        except OSError as exc:
            s.close()
            reason = "port is already allocated" if exc.errno == 98 else exc.strerror
            raise NetworkError(f"Bind for {b.host_ip}:{b.host_port} failed: {reason}") from None
        s.listen(128)
        s.setblocking(False)
        return s

    def bindings(self) -> list[list[Any]]:
        """What is published, the host ports chosen by the kernel included: ``[[ip, host port, port]]``."""
        return self._bindings

    def start(self) -> None:
        """Fork the serving process; from then on, only it holds the listening sockets."""
        if not self.listeners:
            return
        stop_r, stop_w = os.pipe2(os.O_CLOEXEC)
        ack_r, ack_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(stop_w)
                os.close(ack_r)
                from .linux import set_process_name

                set_process_name("pyc-ports")
                _keep_only({stop_r, ack_w, *(s.fileno() for s, _ in self.listeners)})
                Relay(self.listeners, self.target, stop_r, ack_w).run()
            except BaseException:  # noqa: BLE001 (a forwarder that fails stops forwarding; nobody to tell)
                code = 1
            finally:
                os._exit(code)
        os.close(stop_r)
        os.close(ack_w)
        self.pid, self._stop_w, self._ack_r = pid, stop_w, ack_r
        for s, _ in self.listeners:
            s.close()
        self.listeners = []

    def stop_listening(self, timeout: float = 2.0) -> None:
        """The container has ended: the ports are free again when this returns (the serving process has
        closed its listening sockets, or is gone); its open connections may still deliver their last bytes."""
        for s, _ in self.listeners:
            s.close()
        self.listeners = []
        if self._stop_w is not None:
            os.close(self._stop_w)
            self._stop_w = None
        if self._ack_r is not None:
            import select

            select.select([self._ack_r], [], [], timeout)  # a byte, or the end of the pipe (it is gone)
            os.close(self._ack_r)
            self._ack_r = None

    def close(self) -> None:
        """Stop forwarding: the serving process ends (and the ports are free again) before this returns."""
        self.stop_listening()
        if self.pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = None


class Half:
    """One direction of a relayed connection: bytes read from *source*, waiting to be sent to *sink*."""

    def __init__(self, source: socket.socket, sink: socket.socket) -> None:
        self.source, self.sink = source, sink
        self.pending = bytearray()
        self.ended = False  # the source said EOF (or failed): nothing more is read from it
        self.shut = False  # the sink's writing side is shut: this direction is over

    @property
    def done(self) -> bool:
        return self.ended and not self.pending

    def source_failed(self) -> None:
        """A receive failed (ECONNRESET): nothing more comes, but what was read before is still delivered
        (a server that answers and closes at once, as with HTTP 413, resets after its answer)."""
        self.ended = True

    def sink_failed(self) -> None:
        """A send failed (EPIPE, ECONNRESET): this direction is over, the other goes on."""
        self.pending.clear()
        self.ended = self.shut = True


class Relay:
    """The forwarder's loop: accept clients, connect each to the container, copy both ways; no threads
    (a thread per copy costs a process limit's worth of tasks to a few hundred idle clients)."""

    def __init__(self, listeners: list[tuple[socket.socket, int]], target: str, stop_r: int,
                 ack_w: int | None = None) -> None:
        self.target, self.ack_w = target, ack_w
        self.sel = selectors.DefaultSelector()
        self.sel.register(stop_r, selectors.EVENT_READ, "stop")
        self.listeners = listeners
        self.listening = False
        self.connections: dict[socket.socket, tuple[Half, Half]] = {}  # each end of each, to its halves
        self.connecting: set[socket.socket] = set()  # connections to the container not yet made
        self.paused_until = 0.0  # accepting paused (out of file descriptors) until this monotonic time
        self._listen(True)

    def _listen(self, on: bool) -> None:
        if on != self.listening:
            for s, port in self.listeners:
                if on:
                    self.sel.register(s, selectors.EVENT_READ, port)
                else:
                    self.sel.unregister(s)
            self.listening = on

    def _pause(self) -> None:
        """Out of file descriptors: stop accepting for a moment (clients wait in the backlog) rather than
        spin on accept or turn them all away."""
        import time

        self._listen(False)
        self.paused_until = time.monotonic() + 0.1

    def run(self) -> None:
        import time

        deadline = None  # once the container has ended: when the last connections are cut
        while deadline is None or (self.connections and time.monotonic() < deadline):
            if self.paused_until and time.monotonic() >= self.paused_until:
                self.paused_until = 0.0
                if deadline is None:
                    self._listen(True)
            timeout = 0.1 if self.paused_until or deadline else None
            for key, mask in self.sel.select(timeout=timeout):
                if key.data == "stop":  # the monitor closed its end: the container has ended
                    self.sel.unregister(key.fileobj)
                    self.stop_listening()
                    deadline = time.monotonic() + DRAIN_SECONDS
                elif isinstance(key.data, int):
                    if self.listening:
                        self.accept(key.fileobj, key.data)  # type: ignore[arg-type]
                else:
                    self.transfer(key.fileobj, mask)  # type: ignore[arg-type]
        for sock in list(self.connections):  # cut at the deadline: a reset, not an end that looks complete
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        self.connections.clear()

    def stop_listening(self) -> None:
        """Close the listening sockets (the ports are free at once) and tell the monitor so."""
        self._listen(False)
        for s, _ in self.listeners:
            s.close()
        self.listeners = []
        if self.ack_w is not None:
            with contextlib.suppress(OSError):
                os.write(self.ack_w, b"x")
                os.close(self.ack_w)
            self.ack_w = None

    def accept(self, listener: socket.socket, port: int) -> None:
        try:
            client, _ = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._pause()
            return
        if len(self.connections) >= 2 * MAX_CONNECTIONS:
            client.close()
            return
        try:
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
        except OSError:
            client.close()
            self._pause()
            return
        client.setblocking(False)
        if upstream.connect_ex((self.target, port)) not in (0, errno.EINPROGRESS):
            client.close()  # nothing listens in the container: the client sees the connection close
            upstream.close()
            return
        halves = (Half(client, upstream), Half(upstream, client))
        self.connections[client] = self.connections[upstream] = halves
        self.connecting.add(upstream)
        self.watch(halves)

    def transfer(self, sock: socket.socket, mask: int) -> None:
        halves = self.connections.get(sock)
        if halves is None:
            return
        if sock in self.connecting:  # writable: connected, or refused (SO_ERROR says which)
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error and error != errno.ECONNRESET:  # (reset: it was connected, and answered: read that)
                self.drop(halves)
                return
            self.connecting.discard(sock)
        for half in halves:  # (a failure ends one direction; the other still delivers what it has)
            if half.source is sock and mask & selectors.EVENT_READ and not half.ended:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    data = None
                except OSError:
                    half.source_failed()
                    data = None
                if data:
                    half.pending += data
                elif data is not None:
                    half.ended = True
            try:
                if half.sink is sock and mask & selectors.EVENT_WRITE and half.pending:
                    del half.pending[:sock.send(half.pending)]
                if half.done and not half.shut and half.sink not in self.connecting:
                    half.shut = True
                    half.sink.shutdown(socket.SHUT_WR)  # the other side sees the end of this direction
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                half.sink_failed()
        if all(h.shut for h in halves):
            self.drop(halves)
        else:
            self.watch(halves)

    def watch(self, halves: tuple[Half, Half]) -> None:
        """What each end waits for now: data to read while its buffer has room, room to write its data."""
        for sock in (halves[0].source, halves[1].source):
            if sock in self.connecting:
                events = selectors.EVENT_WRITE
            else:
                events = 0
                for half in halves:
                    if half.source is sock and not half.ended and len(half.pending) < BUFFER:
                        events |= selectors.EVENT_READ
                    if half.sink is sock and (half.pending or (half.done and not half.shut)):
                        events |= selectors.EVENT_WRITE
            registered = sock in self.sel.get_map()
            if events and registered:
                self.sel.modify(sock, events, "conn")
            elif events:
                self.sel.register(sock, events, "conn")
            elif registered:  # nothing to wait for on it now (its peer's buffer is full, or it has ended)
                self.sel.unregister(sock)

    def drop(self, halves: tuple[Half, Half]) -> None:
        for sock in (halves[0].source, halves[1].source):
            self.connections.pop(sock, None)
            self.connecting.discard(sock)
            if sock in self.sel.get_map():
                self.sel.unregister(sock)
            sock.close()


def _keep_only(fds: set[int]) -> None:
    """Close every inherited descriptor but *fds* (the caller's stdio and the monitor's report pipe must
    not stay open in the forwarder: their readers wait for the end of them); 0-2 become /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in fds:
            with contextlib.suppress(OSError):
                os.close(fd)


# ------------------------------------------------------------------------------ the kernel's side


def load_netlink() -> None:
    """Import pyroute2 in a long-lived process before it forks monitors, so each monitor does not."""
    import pyroute2.iproute.linux  # noqa: F401


def _netlink(what: str, device: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    """One netlink request; a refusal becomes one line naming the device and the request."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        return call(*args, **kwargs)
    except NetlinkError as exc:
        raise NetworkError(f"cannot {what} {device}: {os.strerror(exc.code) if exc.code else exc} "
                           f"(netlink {args[0] if args else ''})") from None


def ensure_bridge(ipr: Any, bridge: str, gateway: str, prefixlen: int, route: bool = True) -> int:
    """The network's bridge, made (with the gateway's address, and with *route* its way out: ``route_outside``)
    if it is missing; its interface index."""
    from pyroute2.netlink.exceptions import NetlinkError

    index = link_index(ipr, bridge)
    if index is None:
        if route:
            route_outside(bridge, str(ipaddress.ip_interface(f"{gateway}/{prefixlen}").network))
        try:
            ipr.link("add", ifname=bridge, kind="bridge", address=mac_address(gateway))  # (see mac_address)
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:  # (EEXIST: another container's monitor made it just now)
                raise NetworkError(f"cannot create bridge {bridge}: {os.strerror(exc.code)} (netlink add)") from None
        index = link_index(ipr, bridge)
        if index is None:
            raise NetworkError(f"cannot create bridge {bridge}: it went as soon as it was made (netlink add)")
    if not any(a.get_attr("IFA_ADDRESS") == gateway for a in ipr.get_addr(index=index, family=socket.AF_INET)):
        with contextlib.suppress(NetlinkError):  # EEXIST, as above
            ipr.addr("add", index=index, address=gateway, prefixlen=prefixlen)
    _netlink("bring up", bridge, ipr.link, "set", index=index, state="up")
    return index


NAT_MISSING_SENTENCE = ("Containers on this network reach this machine and each other but nothing beyond it: "
                        "routing them out needs nftables (apt-get install nftables) and IP forwarding.")


def route_outside(bridge: str, subnet: str) -> bool:
    """Let the network's containers reach beyond this machine, as Docker's bridge driver does: IPv4
    forwarding on, and a masquerade rule (source NAT: what leaves carries this machine's address, so the
    answers find their way back). Each network's rules are an nftables table named after its bridge (gone
    with it: ``delete_bridge``), which also drops new connections forwarded into the network from anywhere
    else (another network's containers included): as Docker, networks are kept apart, and the way in is a
    published port. False if that cannot be done (no ``nft``, no nf_tables): the network then stays within this
    machine."""
    import shutil
    import subprocess

    if shutil.which("nft") is None:
        return False
    try:
        with open("/proc/sys/net/ipv4/ip_forward", "r+") as f:  # (this namespace's: the host's, here)
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1")
    except OSError:  # (a read-only /proc/sys: a container without the right to route)
        return False
    rules = (f"add table ip {bridge}\ndelete table ip {bridge}\n"  # (made anew, in one transaction)
             f"table ip {bridge} {{\n"
             f"  chain postrouting {{ type nat hook postrouting priority srcnat; policy accept;\n"
             f'    ip saddr {subnet} oifname != "{bridge}" masquerade\n  }}\n'
             f"  chain forward {{ type filter hook forward priority filter; policy accept;\n"
             f'    oifname "{bridge}" iifname != "{bridge}" ct state new drop\n  }}\n}}\n')
    done = subprocess.run(["nft", "-f", "-"], input=rules, capture_output=True, text=True, check=False)
    return done.returncode == 0


def forget_routes(bridge: str) -> None:
    """Delete the network's nftables table (``route_outside``), if there is one."""
    import shutil
    import subprocess

    if shutil.which("nft") is not None:
        subprocess.run(["nft", "delete", "table", "ip", bridge], capture_output=True, check=False)


def link_index(ipr: Any, name: str) -> int | None:
    """A device's interface index, None if there is none of that name (one request, not a dump)."""
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        return int(ipr.link("get", ifname=name)[0]["index"])
    except NetlinkError:
        return None


def make_bridge(net: Network) -> None:
    """As root, the network's bridge is made with its record: its address's route then keeps the subnet
    from being chosen again (by another store on this machine: each only knows its own records)."""
    if os.geteuid() != 0:
        return

    def make(ipr: Any) -> None:
        ensure_bridge(ipr, net.bridge, net.gateway, net.prefixlen, route=False)

    if not route_outside(net.bridge, net.subnet):
        print(NAT_MISSING_SENTENCE, file=sys.stderr)
    with_netlink(make)


def delete_bridge(bridge: str) -> None:
    """Remove a network's bridge device, if this machine has it (and we may: root)."""
    if os.geteuid() != 0:
        return

    def delete(ipr: Any) -> None:
        index = link_index(ipr, bridge)
        if index is not None:
            _netlink("delete bridge", bridge, ipr.link, "del", index=index)

    with_netlink(delete)
    forget_routes(bridge)


def remove_bridges(home: str | os.PathLike[str]) -> None:
    """Delete the bridges of a store's networks: before its directory is deleted, since devices outlive
    it (as docker0 outlives Docker's data)."""
    for path in (Path(home) / "networks").glob("*.json"):
        with contextlib.suppress(ValueError, KeyError, TypeError, OSError, NetworkError):  # (the others still go)
            bridge = json.loads(path.read_text())["Bridge"]
            if isinstance(bridge, str) and bridge.startswith("pyc-"):
                delete_bridge(bridge)


def with_netlink(work: Callable[[Any], None]) -> None:
    """``work(ipr)`` with a pyroute2 ``IPRoute``. Its synchronous API runs an asyncio loop of its own,
    which Python refuses in a thread already running one (a Jupyter kernel's): there, a thread of its
    own does the work (a thread, not a fork: the kernel is multithreaded)."""
    import asyncio

    from pyroute2.iproute.linux import IPRoute

    def run() -> None:
        with IPRoute() as ipr:
            work(ipr)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        run()
        return
    in_a_thread(run, "pycontainers-netlink")


def in_a_thread(work: Callable[[], Any], name: str) -> Any:
    """``work()``'s result, computed in a thread of its own (whose exception is raised again here)."""
    import threading

    result: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # noqa: BLE001 (raised again in the caller's thread)
            failure.append(exc)

    worker = threading.Thread(target=run, name=name)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return result[0]


def veth_names(container_id: str, network_id: str = "") -> tuple[str, str]:
    """The names of a container's veth pair: on the host (15 characters at most, the kernel's limit), and
    the first one's inside. On the network it was created on (no *network_id*): ``pv`` and 12 hex digits of
    its ID (14 characters); on each network connected later: ``pv``, 8 of its ID and 5 of the network's (15)."""
    if not network_id:
        return f"pv{container_id[:12]}", "eth0"
    return f"pv{container_id[:8]}{network_id[:5]}", "eth0"


def attach(container: Container) -> PortForwarder | None:
    """In the monitor, before PID 1 is forked: give the container its networks, and return the forwarder
    of its published ports (not yet started), which lead to its first network's address. Afterwards the
    monitor is in the container's network namespace (made here, and inherited by PID 1): it goes away with
    the container's last process, and the veth pairs with it.
    """
    spec = container.spec
    bindings = [PortBinding(c, h, ip) for ip, h, c in spec.ports]
    backend = container.state.get("backend")
    if backend == "proot":  # the host's network: connect to the server where it listens, on this machine
        return proot_forwarder(bindings)
    if "networks" not in container.state and backend in ("native", "runc"):
        raise NetworkError(f"container {container.name} has no address on network {spec.network} (its creation "
                           "was interrupted): remove it and create it again")
    joined = endpoints(container)
    first = next(iter(joined.values()), None)
    forwarder = PortForwarder(bindings, first["address"] if first else "127.0.0.1") if bindings else None
    try:
        if joined:
            join_bridges(container, joined)
        else:  # rootless (or every network disconnected): a namespace of its own, whose loopback the forwarder reaches
            from .linux import CLONE_NEWNET, unshare
            from .pid1 import bring_up_loopback

            unshare(CLONE_NEWNET)
            bring_up_loopback()
    except BaseException:
        if forwarder:
            forwarder.close()
        raise
    return forwarder


def mac_address(address: str) -> str:
    """Docker's rule: the MAC address is 02:42 and the IPv4 address, so an address given to a new container
    keeps the MAC its neighbours have cached for it (a new random one would be unreachable until the
    neighbours' ARP entries expire, half a minute or more). The bridge gets its gateway's, once: a bridge
    without an address of its own takes its lowest port's, which changes as containers come and go."""
    return "02:42:" + ":".join(f"{b:02x}" for b in ipaddress.IPv4Address(address).packed)


def proot_forwarder(bindings: list[PortBinding]) -> PortForwarder | None:
    """Under proot the server in the container listens on this machine itself: ``-p 8000:8000`` needs no
    forwarding (a listener there would take the server's port, and connect to itself), ``-p 8080:8000``
    forwards 8080 to 127.0.0.1:8000."""
    same = [b for b in bindings if b.host_port == b.container_port]
    moved = [b for b in bindings if b.host_port != b.container_port]
    forwarder = PortForwarder(moved, "127.0.0.1", same)
    return forwarder if bindings else None


_made_here: int | None = None  # the inode of the network namespace join_bridges made in this process (a monitor)


def join_bridges(container: Container, joined: dict[str, dict[str, Any]]) -> None:
    """A network namespace of our own, then a veth pair per network: made by a netlink socket still in the
    host's namespace, with the container end created right inside ours as eth0, eth1... (moving a device
    between namespaces afterwards costs tens of milliseconds of RCU waits); then their addresses, and the
    default route through the first network's gateway."""
    from pyroute2.iproute.linux import IPRoute

    from .linux import CLONE_NEWNET, unshare
    from .pid1 import bring_up_loopback

    with IPRoute() as host:  # its netlink socket stays in the host's namespace after unshare below
        pairs = []
        for n, (name, info) in enumerate(joined.items()):
            host_end = host_veth(container, name, info)
            bridge = ensure_bridge(host, info["bridge"], info["gateway"], info["prefixlen"])
            stale = link_index(host, host_end)
            if stale is not None:  # the pair of this container's last run, whose namespace is still going away
                from .container import running_elsewhere

                if running_elsewhere(container):  # ... or of a start of the same container at the same time
                    raise NetworkError(f"container {container.name} is already running")
                _netlink("delete stale veth", host_end, host.link, "del", index=stale)
            pairs.append((host_end, f"eth{n}", bridge, info))
        unshare(CLONE_NEWNET)
        global _made_here
        _made_here = os.stat("/proc/self/ns/net").st_ino  # (for unplug_from_inside, at the container's end)
        bring_up_loopback()
        for host_end, inside_end, bridge, info in pairs:
            make_veth_pair(host, host_end, inside_end, {"net_ns_pid": os.getpid()}, bridge, info["address"])
    with IPRoute() as inside:  # opened now: in the container's namespace
        for _, inside_end, _, info in pairs:
            configure_inside(inside, inside_end, info)
        _netlink("add the default route on", "eth0", inside.route, "add", gateway=pairs[0][3]["gateway"])


def make_veth_pair(host: Any, host_end: str, inside_end: str, namespace: dict[str, int], bridge: int,
                   address: str) -> None:
    """A veth pair: *host_end* on the bridge (index *bridge*), up; *inside_end* made in the network namespace
    *namespace* names (``{"net_ns_pid": PID}`` or ``{"net_ns_fd": FD}``), with *address*'s MAC (``mac_address``)."""
    _netlink("create veth pair", host_end, host.link, "add", ifname=host_end, kind="veth",
             peer={"ifname": inside_end, **namespace, "address": mac_address(address)})
    end = link_index(host, host_end)
    if end is None:
        raise NetworkError(f"cannot create veth pair {host_end}: the kernel did not make it (netlink add)")
    try:
        _netlink("attach", host_end, host.link, "set", index=end, master=bridge, state="up")
    except BaseException:
        with contextlib.suppress(Exception):
            host.link("del", index=end)
        raise


def configure_inside(inside: Any, ifname: str, info: dict[str, Any]) -> None:
    """The container's end of a pair: its address (the subnet's route comes with it), and up."""
    index = link_index(inside, ifname)
    if index is None:
        raise NetworkError(f"cannot configure {ifname}: the container's namespace has no such device")
    _netlink("give an address to", ifname, inside.addr, "add", index=index, address=info["address"],
             prefixlen=info["prefixlen"])
    _netlink("bring up", ifname, inside.link, "set", index=index, state="up")


def container_netns(container: Container) -> int | None:
    """An open descriptor of the running container's network namespace, or None if its PID 1 has ended (or
    its PID is another process's by now: the start time recorded tells, checked after the open)."""
    from .container import pid_alive
    from .runtime import container_init_process

    pid, start = container_init_process(container)
    try:
        ns_fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    ours = os.stat("/proc/self/ns/net")
    theirs = os.fstat(ns_fd)
    if not pid_alive(pid, start) or (theirs.st_dev, theirs.st_ino) == (ours.st_dev, ours.st_ino):
        os.close(ns_fd)
        return None
    return ns_fd


def plug(container: Container, network: str, info: dict[str, Any]) -> None:
    """``network connect`` of a running container: a veth pair whose container end is made right in the
    namespace of its PID 1, as the next free ethN, then given its address. Undone if a step fails. A
    container that has just ended gets it at its next start."""
    ns_fd = container_netns(container)
    if ns_fd is None:
        return
    host_end = host_veth(container, network, info)
    try:
        names = in_namespace(ns_fd, lambda ipr: {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()})
        inside_end = next(f"eth{n}" for n in range(len(names) + 1) if f"eth{n}" not in names)

        def make(host: Any) -> None:
            bridge = ensure_bridge(host, info["bridge"], info["gateway"], info["prefixlen"])
            stale = link_index(host, host_end)
            if stale is not None:  # (left by a disconnect that could not finish)
                _netlink("delete stale veth", host_end, host.link, "del", index=stale)
            make_veth_pair(host, host_end, inside_end, {"net_ns_fd": ns_fd}, bridge, info["address"])

        with_netlink(make)
        try:
            in_namespace(ns_fd, lambda ipr: configure_inside(ipr, inside_end, info))
        except BaseException:
            unplug(host_end)
            raise
    finally:
        os.close(ns_fd)


def reroute(container: Container, gateway: str) -> None:
    """The running container's default route, through *gateway* (its first network left it without one)."""
    ns_fd = container_netns(container)
    if ns_fd is None:
        return
    try:
        in_namespace(ns_fd, lambda ipr: _netlink("add the default route through", gateway, ipr.route, "replace",
                                                 dst="0.0.0.0/0", gateway=gateway))
    finally:
        os.close(ns_fd)


def unplug(host_end: str) -> None:
    """``network disconnect`` of a running container: delete the host end of its pair (its end in the
    container goes with it), if it is there."""

    def delete(ipr: Any) -> None:
        index = link_index(ipr, host_end)
        if index is not None:
            _netlink("delete veth", host_end, ipr.link, "del", index=index)

    with_netlink(delete)


def unplug_from_inside() -> None:
    """At the container's end, from its monitor, which lives in the container's network namespace: delete each
    veth end there (eth0, eth1...), and with it its host end. Only in the namespace ``join_bridges`` made in
    this process, never in another (the host's own veths are not ours)."""
    if _made_here is None or os.stat("/proc/self/ns/net").st_ino != _made_here:
        return

    def delete(ipr: Any) -> None:
        for link in ipr.get_links():
            kind = link.get_attr("IFLA_LINKINFO")
            if kind is not None and kind.get_attr("IFLA_INFO_KIND") == "veth":
                _netlink("delete veth", link.get_attr("IFLA_IFNAME"), ipr.link, "del", index=link["index"])

    with_netlink(delete)


def in_namespace(ns_fd: int, work: Callable[[Any], Any]) -> Any:
    """``work(ipr)`` with an ``IPRoute`` opened inside the network namespace *ns_fd*: from a thread of its own,
    which enters it (setns(2) moves the calling thread only) and ends with the work."""
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    from .linux import CLONE_NEWNET, setns

    def run() -> Any:
        try:
            setns(ns_fd, CLONE_NEWNET)
            with IPRoute() as ipr:
                return work(ipr)
        except (OSError, NetlinkError) as exc:  # (one line for the caller, not a traceback)
            code = getattr(exc, "code", None) or getattr(exc, "errno", None)
            raise NetworkError("cannot work in the container's network namespace: "
                               f"{os.strerror(code) if code else exc}") from None

    return in_a_thread(run, "pycontainers-netns")
