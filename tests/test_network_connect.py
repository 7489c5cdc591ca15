"""A container on several networks: ``network connect`` / ``disconnect`` (CLI and docker-py API), of running,
stopped and created containers; names in /etc/hosts on each network; compose services on several networks;
Docker's refusals; and nothing left behind (veths, leases)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from processes import veths, wait_for

from pycontainers import compose, network
from pycontainers.api import Client
from pycontainers.errors import InvalidArgument, NetworkError, PyContainersError
from pycontainers.store import Store

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="bridges and veth pairs need root")
SLEEP = ["sleep", "300"]


@pytest.fixture
def client(network_client: Client) -> Client:
    return network_client


def interfaces(c: Any) -> list[str]:
    """The container's interfaces (``ip -o link``), loopback excepted."""
    out = c.exec_run(["ip", "-o", "link"]).output.decode()
    return sorted(line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ": lo:" not in line)


def reaches(c: Any, name: str) -> bool:
    return c.exec_run(["ping", "-c", "1", "-W", "2", name]).exit_code == 0


def leases(store: Store, name: str) -> dict[str, str]:
    return network.get_network(store, name).leases


def ours(c: Any) -> set[str]:
    return {v for v in veths() if v.startswith(f"pv{c.id[:8]}")}


# ------------------------------------------------------------------------------------ running containers


@root_only
def test_a_running_container_connected_reaches_a_peer_by_name_and_loses_it_on_disconnect(client: Client) -> None:
    front, back = client.networks.create("front"), client.networks.create("back")
    db = client.containers.run("busybox", SLEEP, detach=True, network="back", name="db")
    api = client.containers.run("busybox", SLEEP, detach=True, network="front", name="api")
    assert not reaches(api, "db")
    back.connect(api, aliases=["service"])
    assert interfaces(api) == ["eth0", "eth1"]
    address = api.attrs["NetworkSettings"]["Networks"]["back"]["IPAddress"]
    assert f"inet {address}/24" in api.exec_run(["ip", "-4", "addr", "show", "eth1"]).output.decode()
    assert reaches(api, "db") and reaches(db, "api") and reaches(db, "service")
    assert "default via " + front.attrs["IPAM"]["Config"][0]["Gateway"] in api.exec_run(["ip", "route"]).output.decode()
    nets = api.attrs["NetworkSettings"]["Networks"]
    assert list(nets) == ["front", "back"]
    assert nets["back"]["Aliases"] == ["api", "service", api.short_id]
    assert nets["back"]["NetworkID"] == back.id and nets["back"]["MacAddress"] == network.mac_address(address)
    assert sorted(c.name for c in back.containers) == ["api", "db"]
    assert len(ours(api)) == 2
    back.disconnect(api)
    assert interfaces(api) == ["eth0"]
    assert not reaches(api, "db") and "api" not in (client.store.home / "containers" / db.id / "hosts").read_text()
    assert list(api.attrs["NetworkSettings"]["Networks"]) == ["front"] and len(ours(api)) == 1
    assert api.id not in leases(client.store, "back")
    api.remove(force=True)
    wait_for(lambda: not ours(api), "the veth pairs to go")
    assert api.id not in leases(client.store, "front")


@root_only
def test_a_stopped_container_gets_both_interfaces_at_its_next_start(client: Client, cli: Any) -> None:
    client.networks.create("one")
    client.networks.create("two", ipam={"Config": [{"Subnet": "10.201.7.0/24"}]})  # (--ip needs --subnet)
    peer = client.containers.run("busybox", SLEEP, detach=True, network="two", name="peer")
    c = client.containers.create("busybox", SLEEP, network="one", name="late")
    code, out, err = cli("network", "connect", "--alias", "other", "--ip", "10.89.0.0", "two", "late")
    assert code == 1 and err.startswith("Error response from daemon: no configured subnet")  # (not two's)
    subnet = client.networks.get("two").attrs["IPAM"]["Config"][0]["Subnet"]
    ip = subnet.rsplit(".", 1)[0] + ".77"
    assert cli("network", "connect", "--alias", "other", "--ip", ip, "two", "late") == (0, "", "")
    c.start()
    assert interfaces(c) == ["eth0", "eth1"]
    assert f"inet {ip}/24" in c.exec_run(["ip", "-4", "addr", "show", "eth1"]).output.decode()
    assert reaches(c, "peer") and reaches(peer, "other") and reaches(peer, "late")
    c.stop(timeout=1)
    assert cli("network", "disconnect", "two", "late") == (0, "", "")
    c.start()
    assert interfaces(c) == ["eth0"] and not reaches(c, "peer")
    assert c.id not in leases(client.store, "two")


@root_only
def test_a_running_container_can_leave_its_first_network_and_join_it_again(client: Client) -> None:
    client.networks.create("a1")
    b1 = client.networks.create("b1")
    c = client.containers.run("busybox", SLEEP, detach=True, network="a1")
    b1.connect(c)
    client.networks.get("a1").disconnect(c)
    assert interfaces(c) == ["eth1"]
    gateway = b1.attrs["IPAM"]["Config"][0]["Gateway"]
    assert f"default via {gateway} dev eth1" in c.exec_run(["ip", "route"]).output.decode()  # the route moved
    client.networks.get("a1").connect(c)
    assert interfaces(c) == ["eth0", "eth1"] and len(ours(c)) == 2


@root_only
def test_names_follow_a_rename_and_go_with_an_auto_removed_container(client: Client) -> None:
    client.networks.create("n1")
    n2 = client.networks.create("n2")
    watcher = client.containers.create("busybox", SLEEP, network="n2", name="watcher")
    c = client.containers.run("busybox", SLEEP, detach=True, network="n1", name="brief", auto_remove=True)
    n2.connect(c, aliases=["short"])
    hosts = client.store.home / "containers" / watcher.id / "hosts"
    assert "\tbrief short " in hosts.read_text()
    own = (client.store.home / "containers" / c.id / "hosts").read_text()
    assert "the other containers on network n2" in own and "\twatcher " in own
    c.rename("renamed")
    assert "\trenamed short " in hosts.read_text() and "brief" not in hosts.read_text()
    c.kill()  # (it ends: auto-removed, it takes its names along)
    wait_for(lambda: c.status == "removed", "the container to end and go", timeout=15)
    wait_for(lambda: "renamed" not in hosts.read_text(), "its name to leave the others' /etc/hosts")  # (just after)
    assert leases(client.store, "n1") == {} and list(leases(client.store, "n2")) == [watcher.id]
    wait_for(lambda: not ours(c), "the veth pairs to go")


# ------------------------------------------------------------------------------------------- refusals


@root_only
def test_docker_s_refusals_are_one_line_each(client: Client, cli: Any) -> None:
    client.networks.create("lab")
    client.containers.create("busybox", SLEEP, network="lab", name="x")
    client.containers.create("busybox", SLEEP, network="host", name="h")
    client.containers.create("busybox", SLEEP, name="n")
    assert cli("network", "disconnect", "bridge", "x")[0] == 1
    assert not (client.store.home / "networks" / "bridge.json").exists()  # (a refusal makes no default network)
    for args, said in [
        (("connect", "lab", "x"), "endpoint with name x already exists in network lab"),
        (("disconnect", "bridge", "x"), "container x is not connected to network bridge"),
        (("connect", "none", "x"), network.NONE_CONFLICT),
        (("connect", "host", "x"), network.HOST_CONFLICT),
        (("connect", "lab", "h"), network.HOST_CONFLICT),
        (("connect", "lab", "n"), network.NONE_CONFLICT),
        (("connect", "nowhere", "x"), "network nowhere not found"),
        (("connect", "lab", "nobody"), "No such container: nobody"),
        (("connect", "--ip", "10.1.2.3", "bridge", "x"), "user specified IP address is supported on user defined"),
        (("connect", "--alias", "y", "bridge", "x"), "network-scoped aliases are supported only"),
        (("connect", "--ip", "nonsense", "lab", "h"), network.HOST_CONFLICT),
    ]:
        code, out, err = cli("network", *args)
        assert (code, out) == (1, "") and err.startswith("Error response from daemon: "), (args, err)
        assert said in err and err.count("\n") == 1, (args, err)
    assert list(leases(client.store, "lab")) == [client.containers.get("x").id]


@root_only
def test_the_network_a_running_container_publishes_ports_on_is_not_taken_from_under_them(client: Client) -> None:
    lab, other = client.networks.create("lab"), client.networks.create("other")
    c = client.containers.run("busybox", SLEEP, detach=True, network="lab", ports={"80/tcp": None})
    other.connect(c)
    with pytest.raises(NetworkError, match="publishes ports at its address on network lab: stop it"):
        lab.disconnect(c)
    assert interfaces(c) == ["eth0", "eth1"]
    other.disconnect(c)  # (not the first one: no ports there)
    assert interfaces(c) == ["eth0"]


@root_only
def test_lines_added_to_etc_hosts_inside_stay_when_the_container_joins_a_network(client: Client) -> None:
    lab = client.networks.create("lab")
    c = client.containers.run("busybox", SLEEP, detach=True, network="bridge")
    assert c.exec_run(["sh", "-c", "echo '1.2.3.4 db' >> /etc/hosts"]).exit_code == 0
    lab.connect(c)
    lab.disconnect(c)
    lab.connect(c)
    hosts = c.exec_run(["cat", "/etc/hosts"]).output.decode()
    assert hosts.count("1.2.3.4 db") == 1 and "the other containers on network lab" in hosts


@root_only
def test_the_api_takes_docker_py_s_arguments(client: Client) -> None:
    lab = client.networks.create("lab", ipam={"Config": [{"Subnet": "10.201.7.0/24"}]})
    c = client.containers.create("busybox", SLEEP, network="bridge")
    subnet = lab.attrs["IPAM"]["Config"][0]["Subnet"]
    wanted = subnet.rsplit(".", 1)[0] + ".77"
    with pytest.raises(InvalidArgument, match="a list of names"):
        lab.connect(c, aliases="db")
    lab.connect(c, wanted)  # docker-py's second argument: ipv4_address
    assert c.attrs["NetworkSettings"]["Networks"]["lab"]["IPAddress"] == wanted


def test_a_pid_that_is_not_the_container_s_any_more_has_no_namespace_to_plug_into(busybox_store: Store) -> None:
    """``container_netns``: the recorded start time must match (a PID used again is another process), and
    a namespace that is our own is no container's."""
    from pycontainers.container import Container, _proc_stat

    start = int(_proc_stat(os.getpid())[19])  # type: ignore[index]
    for recorded in (start + 1, start):  # another process now, or one in our own namespace
        c = Container(busybox_store, "f" * 64, {"backend": "native", "pid": os.getpid(), "pid_start": recorded})
        assert network.container_netns(c) is None


@root_only
def test_a_lease_that_no_state_lists_is_dropped(client: Client) -> None:
    """Killed between the lease and the state: the next change of that network drops the lease."""
    lab = client.networks.create("lab")
    c = client.containers.create("busybox", SLEEP, network="bridge")
    with network.locked(client.store):
        net = network.get_network(client.store, "lab")
        net.leases[c.id] = net.subnet.rsplit(".", 1)[0] + ".9"
        network._save(client.store, net)
    other = client.containers.create("busybox", SLEEP, network="lab")
    assert list(leases(client.store, "lab")) == [other.id]
    other.remove()
    lab.remove()  # (no "active endpoints" left)


@root_only
def test_failures_midway_leave_no_lease_entry_or_veth(client: Client) -> None:
    lab = client.networks.create("lab", ipam={"Config": [{"Subnet": "10.201.7.0/24"}]})
    first = client.containers.run("busybox", SLEEP, detach=True, network="lab")
    taken = first.attrs["NetworkSettings"]["Networks"]["lab"]["IPAddress"]
    c = client.containers.run("busybox", SLEEP, detach=True, network="bridge")
    with pytest.raises(NetworkError, match="Address already in use"):
        lab.connect(c, ipv4_address=taken)
    with pytest.raises(InvalidArgument, match="invalid IPv4 address"):
        lab.connect(c, ipv4_address="10.89.300.1")
    assert list(leases(client.store, "lab")) == [first.id] and interfaces(c) == ["eth0"] and len(ours(c)) == 1
    assert list(c.attrs["NetworkSettings"]["Networks"]) == ["bridge"]
    os.kill(json.loads((client.store.home / "containers" / c.id / "state.json").read_text())["pid"], 9)
    wait_for(lambda: c.status == "exited", "the container to end")
    lab.connect(c)  # (stopped now: recorded for its next start)
    with pytest.raises(NetworkError, match="active endpoints"):
        lab.remove()
    c.remove(force=True)
    first.remove(force=True)
    assert leases(client.store, "lab") == {}
    lab.remove()


@root_only
def test_disconnect_force_lets_go_of_a_network_whose_record_is_gone(client: Client) -> None:
    client.networks.create("gone")
    c = client.containers.create("busybox", SLEEP, network="bridge")
    client.networks.get("gone").connect(c)
    bridge = network.get_network(client.store, "gone").bridge
    (client.store.home / "networks" / "gone.json").unlink()
    network.delete_bridge(bridge)  # (remove_bridges knows only those the store has records of)
    with pytest.raises(PyContainersError, match="network gone not found"):
        network.disconnect(client.store, network_container(client, c), "gone")
    network.disconnect(client.store, network_container(client, c), "gone", force=True)
    assert list(c.attrs["NetworkSettings"]["Networks"]) == ["bridge"]


def network_container(client: Client, c: Any) -> Any:
    from pycontainers.container import get_container

    return get_container(client.store, c.id)


def test_rootless_and_proot_containers_cannot_be_connected(client: Client, cli: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "rootless")
    client.containers.create("busybox", ["true"], name="r")
    code, out, err = cli("network", "connect", "bridge", "r")
    assert (code, out) == (1, "") and err.count("\n") == 1 and "rootless back end, which has no bridges" in err


# ------------------------------------------------------------------------------------ older state files


@root_only
def test_a_state_file_with_one_network_is_still_read(client: Client, cli: Any) -> None:
    client.networks.create("old")
    assert cli("create", "--network", "old", "--network-alias", "legacy", "--name", "o", "busybox", *SLEEP)[0] == 0
    c = client.containers.get("o")
    path = client.store.home / "containers" / c.id / "state.json"
    state = json.loads(path.read_text())
    (name, info), = state.pop("networks").items()
    info.pop("aliases")
    state["network"] = {"name": name, **info}
    path.write_text(json.dumps(state))
    assert c.attrs["NetworkSettings"]["Networks"]["old"]["Aliases"] == ["o", "legacy", c.short_id]
    c.start()
    assert interfaces(c) == ["eth0"]
    assert "networks" in json.loads(path.read_text()) and "network" not in json.loads(path.read_text())


# ------------------------------------------------------------------------------------------------ compose


def project(tmp_path: Path, text: str, name: str = "tiers") -> compose.Project:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    (directory / "compose.yaml").write_text(textwrap.dedent(text))
    return compose.load(directory, environ={})


TIERS = """
    services:
      db: {image: busybox, command: sleep 300, networks: [back]}
      api:
        image: busybox
        command: sleep 300
        networks:
          front: {aliases: [gateway]}
          back: {aliases: [backend-api]}
      web: {image: busybox, command: sleep 300, networks: [front]}
    networks: {front: {}, back: {}}
"""


def test_a_service_may_list_several_networks(tmp_path: Path) -> None:
    p = project(tmp_path, TIERS)
    api = p.services["api"]
    assert api.network == "tiers_front" and api.options["network_aliases"] == ["api", "gateway"]
    assert api.more_networks == {"tiers_back": ["api", "backend-api"]}
    assert p.services["web"].more_networks == {}


@root_only
def test_compose_tiers_are_kept_apart_and_down_leaves_nothing(client: Client, tmp_path: Path) -> None:
    p = project(tmp_path, TIERS)
    compose.up(client.store, p, say=lambda line: None)
    api, web, db = (client.containers.get(f"tiers-{s}-1") for s in ("api", "web", "db"))
    assert interfaces(api) == ["eth0", "eth1"]
    assert reaches(web, "api") and reaches(web, "gateway") and reaches(api, "db") and reaches(db, "backend-api")
    assert not reaches(web, "db")  # no name for it on front ...
    db_address = db.attrs["NetworkSettings"]["Networks"]["tiers_back"]["IPAddress"]
    assert not reaches(web, db_address)  # ... and no way there: the networks are kept apart
    compose.up(client.store, p, say=lambda line: None)  # (a second up leaves them as they are)
    assert client.containers.get("tiers-api-1").id == api.id
    compose.down(client.store, p, say=lambda line: None)
    assert client.containers.list(all=True) == []
    assert [n.name for n in network.list_networks(client.store)] == []
    wait_for(lambda: not (ours(api) | ours(web) | ours(db)), "the veth pairs to go")


@root_only
def test_run_ip_takes_the_address_asked_for_on_a_network_made_with_a_subnet(client: Client, cli: Any) -> None:
    client.networks.create("fixed", ipam={"Config": [{"Subnet": "10.201.8.0/24"}]})
    client.networks.create("chosen")
    code, out, err = cli("run", "-d", "--name", "at50", "--network", "fixed", "--ip", "10.201.8.50", "busybox", *SLEEP)
    assert code == 0, err
    at50 = client.containers.get("at50")
    assert "inet 10.201.8.50/24" in at50.exec_run(["ip", "-4", "-o", "addr", "show", "eth0"]).output.decode()
    at50.remove(force=True)
    for args, said in [
        (("--network", "chosen", "--ip", "10.201.8.51"), "only when connecting to networks with user configured"),
        (("--network", "bridge", "--ip", "10.201.8.51"), "user specified IP address is supported on user defined"),
        (("--ip", "10.201.8.51"), "user specified IP address is supported on user defined"),  # (none)
        (("--network", "fixed", "--ip", "10.201.8.300"), "invalid IPv4 address: 10.201.8.300"),
        (("--network", "fixed", "--ip", "10.201.9.5"), "no configured subnet or ip-range contain the IP address"),
        (("--network", "fixed", "--ip", "10.201.8.255"), "no configured subnet or ip-range contain the IP address"),
    ]:
        code, out, err = cli("run", "--rm", *args, "busybox", "true")
        assert (code, out) == (125, "") and said in err and err.count("\n") == 1, (args, err)
    holder = client.containers.run("busybox", SLEEP, detach=True, network="fixed",
                                   networking_config={"fixed": {"IPAMConfig": {"IPv4Address": "10.201.8.60"}}})
    assert holder.attrs["NetworkSettings"]["Networks"]["fixed"]["IPAddress"] == "10.201.8.60"
    code, _, err = cli("create", "--network", "fixed", "--ip", "10.201.8.60", "busybox")
    assert code == 125 and "Address already in use: 10.201.8.60" in err
    assert client.containers.list(all=True) == [holder]  # nothing half-made
    assert list(leases(client.store, "fixed").values()) == ["10.201.8.60"]


@root_only
def test_docker_py_networking_config_joins_every_network_it_names_with_its_aliases(client: Client) -> None:
    client.networks.create("front", ipam={"Config": [{"Subnet": "10.201.10.0/24"}]})
    client.networks.create("back")
    config = {"EndpointsConfig": {  # (the low-level API's form: docker-py's create_networking_config)
        "front": {"IPAMConfig": {"IPv4Address": "10.201.10.9"}, "Aliases": ["web"]},
        "back": {"Aliases": ["api"]},
    }}
    c = client.containers.run("busybox", SLEEP, detach=True, network="front", networking_config=config)
    nets = c.attrs["NetworkSettings"]["Networks"]
    assert list(nets) == ["front", "back"] and nets["front"]["IPAddress"] == "10.201.10.9"
    assert "web" in nets["front"]["Aliases"] and "api" in nets["back"]["Aliases"]
    assert interfaces(c) == ["eth0", "eth1"]
    other = client.containers.run("busybox", SLEEP, detach=True, network="back")
    assert reaches(other, "api") and not reaches(other, "web")
    ignored = client.containers.create("busybox", SLEEP, network="back", networking_config={"front": {}})
    assert list(ignored.attrs["NetworkSettings"]["Networks"]) == ["back"]  # (docker-py: not among them, unused)
    with pytest.raises(InvalidArgument, match="front: Links is not supported"):
        client.containers.create("busybox", SLEEP, network="front", networking_config={"front": {"Links": ["x"]}})
    before = dict(leases(client.store, "front"))
    with pytest.raises(PyContainersError, match="Address already in use"):
        client.containers.create("busybox", SLEEP, network="back", networking_config={
            "back": {}, "front": {"IPAMConfig": {"IPv4Address": "10.201.10.9"}}})
    assert leases(client.store, "front") == before and len(client.containers.list(all=True)) == 3
