"""Networks: bridges, veth pairs, leases, names in /etc/hosts, published ports, and what is left after.

Containers here are real (native back end, as root); the forced back ends (rootless, proot, runc) get a
published port each. Every test ends with nothing of its containers left: no veth on the host, no
forwarder process, no lease (the session also fails on a leaked veth: see conftest.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import forwarders, veths, wait_for

from pycontainers import network
from pycontainers.api import Client, network_inspect
from pycontainers.cli import main
from pycontainers.errors import InvalidArgument, NetworkError, NetworkNotFound, PyContainersError
from pycontainers.network import PortBinding, parse_publish, ports_from_docker_py
from pycontainers.store import Store

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="bridges and veth pairs need root")
HTTPD = ["httpd", "-f", "-p", "8000", "-h", "/etc"]  # busybox's web server, serving the container's /etc


@pytest.fixture
def client(network_client: Client) -> Client:
    return network_client


def fetch(port: int, path: str = "/hostname", host: str = "127.0.0.1") -> str:
    with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=5) as response:
        return response.read().decode()


def host_port(container: object, port: str = "8000/tcp") -> int:
    return int(container.ports[port][0]["HostPort"])  # type: ignore[attr-defined]


def cli(capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capfd.readouterr()
    code = main(list(args))
    out, err = capfd.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------------- -p, parsed


@pytest.mark.parametrize(("text", "binding"), [
    ("8080:80", PortBinding(80, 8080)),
    ("80", PortBinding(80, 0)),
    ("127.0.0.1:8080:80", PortBinding(80, 8080, "127.0.0.1")),
    ("127.0.0.1::80", PortBinding(80, 0, "127.0.0.1")),
    ("8080:80/tcp", PortBinding(80, 8080)),
    ("8080:80/TCP", PortBinding(80, 8080)),
])
def test_publish_specifications_are_read_as_docker_reads_them(text: str, binding: PortBinding) -> None:
    assert parse_publish(text) == binding


@pytest.mark.parametrize("text", ["8080:80/udp", "web", "70000:80", "8080:0", "1.2.3:80:80", "a:b:c:d",
                                  "8080-8081:80-81"])
def test_bad_publish_specifications_are_one_clear_error(text: str) -> None:
    with pytest.raises(InvalidArgument, match="port"):
        parse_publish(text)


def test_docker_py_port_dictionaries() -> None:
    assert ports_from_docker_py({"80/tcp": 8080, "81": None, "82/tcp": ("127.0.0.1", 9000), "83/tcp": [1, 2]}) == [
        PortBinding(80, 8080), PortBinding(81, 0), PortBinding(82, 9000, "127.0.0.1"),
        PortBinding(83, 1), PortBinding(83, 2)]


# -------------------------------------------------------------------------------- the records


def test_networks_are_created_listed_inspected_and_removed(busybox_store: Store) -> None:
    app = network.create_network(busybox_store, "app")
    other = network.create_network(busybox_store, "other")
    assert app.subnet != other.subnet and app.bridge != other.bridge and len(app.bridge) <= 15
    assert network.get_network(busybox_store, app.id[:12]).name == "app"
    assert [n.name for n in network.list_networks(busybox_store)] == ["app", "other"]
    doc = network_inspect(busybox_store, "app")
    assert doc["IPAM"]["Config"] == [{"Subnet": app.subnet, "Gateway": app.gateway}] and doc["Containers"] == {}
    with pytest.raises(NetworkError, match="already exists"):
        network.create_network(busybox_store, "app")
    assert network.remove_network(busybox_store, "app") == "app"
    with pytest.raises(NetworkNotFound, match="network app not found"):
        network.get_network(busybox_store, "app")
    assert network.prune_networks(busybox_store) == ["other"]


@pytest.mark.parametrize(("name", "subnet", "error"), [
    ("bridge", None, "pre-defined"), ("../x", None, "invalid network name"), ("n" * 65, None, "at most 64 characters"),
    ("n", "10.1.0.0/30", "/29 or wider"),
    ("n", "nonsense", "invalid subnet"), ("n", "fd00::/64", "IPv4"), ("n", "8.8.8.0/24", "private range"),
    ("n", "127.0.0.0/24", "private range"), ("n", "169.254.0.0/24", "private range"),
    ("n", "240.0.0.0/24", "private range"), ("n", "198.18.0.0/24", "private range"),
])
def test_bad_networks_are_refused_in_one_line(busybox_store: Store, name: str, subnet: str | None,
                                               error: str) -> None:
    with pytest.raises(PyContainersError, match=error):
        network.create_network(busybox_store, name, subnet)
    assert network.list_networks(busybox_store) == []


def test_a_network_is_recorded_before_its_bridge_is_made(busybox_store: Store,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed between the two, ``network create`` must leave a record (which ``network rm`` removes), never a
    bridge device no record names; a bridge that cannot be made takes its record back."""
    recorded: list[bool] = []

    def refused(net: network.Network) -> None:
        recorded.append((network.networks_dir(busybox_store) / f"{net.name}.json").is_file())
        raise NetworkError("add bridge: Operation not permitted")

    monkeypatch.setattr(network, "make_bridge", refused)
    with pytest.raises(NetworkError, match="Operation not permitted"):
        network.create_network(busybox_store, "half")
    assert recorded == [True]
    assert network.list_networks(busybox_store) == []


def test_a_subnet_this_machine_routes_to_is_not_taken(busybox_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import ipaddress

    monkeypatch.setattr(network, "host_routes", lambda: [ipaddress.ip_network("10.89.0.0/23")])
    assert network.create_network(busybox_store, "a").subnet == "10.89.2.0/24"
    with pytest.raises(NetworkError, match="overlaps 10.89.0.0/23"):
        network.create_network(busybox_store, "b", "10.89.1.0/24")


def test_the_predefined_networks_cannot_be_removed(busybox_store: Store) -> None:
    for name in network.PREDEFINED:
        with pytest.raises(NetworkError, match="pre-defined"):
            network.remove_network(busybox_store, name)
    with network.locked(busybox_store):
        bridge = network._default_network(busybox_store)
    with pytest.raises(NetworkError, match="bridge is a pre-defined network"):
        network.remove_network(busybox_store, bridge.id[:12])  # (by its ID)
    network.delete_bridge(bridge.bridge)


def test_a_damaged_record_is_named(busybox_store: Store) -> None:
    net = network.create_network(busybox_store, "app")
    (network.networks_dir(busybox_store) / "app.json").write_text("{not json")
    try:
        with pytest.raises(NetworkError, match=r"network record .*app.json is damaged"):
            network.get_network(busybox_store, "app")
    finally:
        network.delete_bridge(net.bridge)  # (the store cannot say which bridge it was any more)


# ---------------------------------------------------------------------------- containers on networks


@root_only
def test_containers_on_a_network_find_each_other_by_name_and_the_names_follow_them(client: Client) -> None:
    client.networks.create("shop")
    api = client.containers.run("busybox", HTTPD, detach=True, network="shop", name="api")
    # the one started first learns the name of one started later: its /etc/hosts is rewritten in place
    later = client.containers.run("busybox", ["sleep", "60"], detach=True, network="shop", name="later")
    assert later.exec_run(["wget", "-qO-", "http://api:8000/hostname"]).output.decode() == api.short_id + "\n"
    api_hosts = api.exec_run(["cat", "/etc/hosts"]).output.decode()
    later_address = later.attrs["NetworkSettings"]["Networks"]["shop"]["IPAddress"]
    assert f"{later_address}\tlater {later.short_id}" in api_hosts
    assert f"\t{api.short_id} api\n" in api_hosts  # its own name too
    assert api.exec_run(["ping", "-c", "1", "-W", "2", "later"]).exit_code == 0
    assert api.exec_run(["sh", "-c", "echo '192.0.2.7 mydb' >> /etc/hosts"]).exit_code == 0  # a line of its own
    later.remove(force=True)
    hosts = api.exec_run(["cat", "/etc/hosts"]).output.decode()
    assert "later" not in hosts and hosts.endswith("192.0.2.7 mydb\n")  # kept, as Docker keeps it
    assert list(network_inspect(client.store, "shop")["Containers"]) == [api.id]


@root_only
def test_two_stores_do_not_choose_the_same_subnet(busybox_store: Store, tmp_path: Path) -> None:
    other = Store(tmp_path / "other")
    a = network.create_network(busybox_store, "a")  # its bridge is made now: its route reserves the subnet
    try:
        b = network.create_network(other, "b")
        assert a.subnet != b.subnet
        network.remove_network(other, "b")
    finally:
        network.remove_network(busybox_store, "a")
    assert not {a.bridge} & set(os.listdir("/sys/class/net"))


@root_only
def test_a_failed_create_gives_its_lease_back_without_waiting_for_itself(client: Client) -> None:
    with pytest.raises(InvalidArgument, match="sub: Not a directory"):  # the creation fails after the lease
        client.containers.create("busybox", ["true"], ports={"80/tcp": None}, volumes=["/etc/passwd/sub:/x"])
    assert network_inspect(client.store, "bridge")["Containers"] == {}
    assert client.containers.list(all=True) == []


@root_only
def test_a_container_whose_creation_was_cut_short_is_not_started_without_its_network(client: Client) -> None:
    c = client.containers.create("busybox", ["true"], network="bridge")
    state = json.loads((client.store.home / "containers" / c.id / "state.json").read_text())
    del state["networks"]  # as if killed between the lease and the container's state
    (client.store.home / "containers" / c.id / "state.json").write_text(json.dumps(state))
    with pytest.raises(PyContainersError, match="has no address on network bridge"):
        client.containers.get(c.id).start()


@root_only
def test_a_container_has_eth0_with_its_leased_address_and_a_route_out(client: Client) -> None:
    net = client.networks.create("lab")
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, network="lab")
    settings = c.attrs["NetworkSettings"]["Networks"]["lab"]
    address, gateway = settings["IPAddress"], settings["Gateway"]
    assert address.startswith(net.attrs["IPAM"]["Config"][0]["Subnet"].rsplit(".", 1)[0])
    shown = c.exec_run(["ip", "-4", "addr", "show", "eth0"]).output.decode()
    assert f"inet {address}/24" in shown
    assert f"default via {gateway} dev eth0" in c.exec_run(["ip", "route"]).output.decode()
    assert c.exec_run(["ping", "-c", "1", "-W", "2", gateway]).exit_code == 0  # the bridge, on the host
    assert network_inspect(client.store, "lab")["Containers"][c.id]["IPv4Address"] == f"{address}/24"


@pytest.fixture
def outside() -> Iterator[str]:
    """Another machine, as far as containers can tell: a network namespace behind a veth pair, 198.18.7.2
    (a benchmarking range), which knows no route to the containers' networks; its web server answers with the
    address the request came from."""
    ns = f"pyctest-out-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        for command in (f"link add natt-h{os.getpid() % 10000} type veth peer name eth0 netns {ns}",
                        f"addr add 198.18.7.1/24 dev natt-h{os.getpid() % 10000}",
                        f"link set natt-h{os.getpid() % 10000} up",
                        f"-n {ns} addr add 198.18.7.2/24 dev eth0", f"-n {ns} link set eth0 up",
                        f"-n {ns} link set lo up"):
            subprocess.run(["ip", *command.split()], check=True)
        code = ("import http.server as h\n"
                "class A(h.BaseHTTPRequestHandler):\n"
                "    def do_GET(self):\n"
                "        self.send_response(200); self.end_headers()\n"
                "        self.wfile.write(self.client_address[0].encode())\n"
                "    def log_message(self, *a): pass\n"
                "h.HTTPServer(('198.18.7.2', 8099), A).serve_forever()\n")
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", code])
        wait_for(lambda: subprocess.run(["ip", "netns", "exec", ns, "ss", "-ltn"], capture_output=True,
                                        text=True).stdout.count(":8099") > 0, "the outside server")
        yield "198.18.7.2:8099"
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", f"natt-h{os.getpid() % 10000}"], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@root_only
def test_containers_reach_beyond_this_machine_through_nat_and_networks_stay_apart(client: Client,
                                                                                  outside: str) -> None:
    client.networks.create("out")
    seen = client.containers.run("busybox", ["wget", "-qO-", f"http://{outside}/"], network="out", remove=True)
    assert seen == b"198.18.7.1"  # masqueraded: the outside saw this machine's address, and could answer it
    other = client.networks.create("other")
    web = client.containers.run("busybox", HTTPD, detach=True, network="other")
    address = web.attrs["NetworkSettings"]["Networks"]["other"]["IPAddress"]
    probe = ["sh", "-c", f"echo | nc -w 2 {address} 8000 && echo reached || echo kept apart"]
    assert client.containers.run("busybox", probe, network="out", remove=True) == b"kept apart\n"
    assert client.containers.run("busybox", probe, network="other", remove=True) == b"reached\n"
    other_bridge = other.attrs["Options"]["com.docker.network.bridge.name"]
    web.remove(force=True)
    other.remove()
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert other_bridge not in tables  # its rules went with its bridge


def test_a_networked_containers_resolv_conf_has_no_loopback_servers(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from pycontainers import container as containers

    stub = tmp_path / "stub"
    stub.write_text("nameserver 127.0.0.53\noptions edns0\nsearch lan\n")
    upstream = tmp_path / "upstream"
    upstream.write_text("nameserver 10.1.1.1\nnameserver ::1\nsearch lan\n")
    real = Path

    def fake(path: str) -> Path:
        return {"/etc/resolv.conf": stub, "/run/systemd/resolve/resolv.conf": upstream}.get(path, real(path))

    monkeypatch.setattr(containers, "Path", fake)
    assert containers.resolv_conf_for_a_network() == "nameserver 10.1.1.1\nsearch lan\n"
    upstream.write_text("nameserver 127.0.0.1\n")
    assert containers.resolv_conf_for_a_network() == ""


@root_only
def test_the_default_bridge_gives_addresses_but_no_names(client: Client) -> None:
    web = client.containers.run("busybox", HTTPD, detach=True, network="bridge", name="web")
    address = web.attrs["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]
    out = client.containers.run("busybox", ["sh", "-c", f"wget -qO- http://{address}:8000/hostname; "
                                                        "wget -qO- http://web:8000/hostname || echo no name"],
                                network="bridge", remove=True)
    assert out.decode() == f"{web.short_id}\nno name\n"


@root_only
def test_leases_are_unique_under_concurrent_creates_and_freed_on_removal(client: Client) -> None:
    client.networks.create("busy")
    made: list[object] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            made.append(client.containers.create("busybox", ["true"], network="busy"))
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    leases = network.get_network(client.store, "busy").leases
    assert len(leases) == 6 and len(set(leases.values())) == 6
    for c in made:
        c.remove()  # type: ignore[attr-defined]
    assert network.get_network(client.store, "busy").leases == {}


@root_only
def test_a_network_in_use_is_not_removed(client: Client) -> None:
    client.networks.create("busy")
    client.containers.create("busybox", ["true"], network="busy", name="user")
    with pytest.raises(NetworkError, match=r"has active endpoints \(user\)"):
        client.networks.get("busy").remove()
    client.containers.get("user").remove()
    client.networks.get("busy").remove()
    assert [n.name for n in client.networks.list()] == list(network.PREDEFINED)


@root_only
def test_a_lease_of_a_container_whose_directory_vanished_is_dropped(client: Client) -> None:
    import shutil

    client.networks.create("n")
    gone = client.containers.create("busybox", ["true"], network="n")
    shutil.rmtree(client.store.home / "containers" / gone.id)  # a process killed half-way through rm
    client.containers.create("busybox", ["true"], network="n", name="next")
    assert list(network.get_network(client.store, "n").leases) == [client.containers.get("next").id]


@root_only
def test_an_unknown_network_is_one_error_and_leaves_nothing(client: Client) -> None:
    with pytest.raises(NetworkNotFound, match="network nowhere not found"):
        client.containers.run("busybox", ["true"], network="nowhere", name="lost")
    assert client.containers.list(all=True) == []
    with pytest.raises(InvalidArgument, match="published ports need a network"):
        client.containers.run("busybox", ["true"], network="none", ports={"80/tcp": None})


# ----------------------------------------------------------------------------------- published ports


@root_only
def test_a_published_port_reaches_the_server_and_is_freed_when_the_container_ends(client: Client) -> None:
    web = client.containers.run("busybox", HTTPD, detach=True, ports={"8000/tcp": None})
    port = host_port(web)
    assert web.attrs["HostConfig"]["NetworkMode"] == "bridge"  # -p alone means the default bridge
    assert wait_for(lambda: _try_fetch(port), "the page through the published port") == web.short_id + "\n"
    assert forwarders(client.store)
    web.stop(timeout=1)
    assert web.ports == {}  # nothing published once it has stopped
    wait_for(lambda: not forwarders(client.store), "the forwarder to end with the container")
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (our connection's TIME_WAIT is no listener)
        s.bind(("0.0.0.0", port))  # free again: nobody listens there any more


def _try_fetch(port: int) -> str | None:
    try:
        return fetch(port)
    except OSError:
        return None


@root_only
def test_hundreds_of_idle_clients_do_not_stop_the_forwarder(client: Client) -> None:
    web = client.containers.run("busybox", HTTPD, detach=True, ports={"8000/tcp": ("127.0.0.1", None)})
    port = host_port(web)
    wait_for(lambda: _try_fetch(port), "the page")
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    try:
        assert fetch(port) == web.short_id + "\n"
        [forwarder] = forwarders(client.store)
        assert os.listdir(f"/proc/{forwarder}/task") == [str(forwarder)]  # one thread, however many clients
    finally:
        for s in idle:
            s.close()
    payload = os.urandom(3 << 20)  # both ways at once, more than the forwarder buffers
    echo = client.containers.run("busybox", ["nc", "-l", "-p", "9000", "-e", "cat"], detach=True,
                                 ports={"9000/tcp": ("127.0.0.1", None)})
    got = wait_for(lambda: _echo(host_port(echo, "9000/tcp"), payload), "the echo through the forwarder")
    assert got == payload


def _echo(port: int, payload: bytes) -> bytes | None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            def send() -> None:
                with contextlib.suppress(OSError):  # (nc not listening yet: the forwarder hangs up, we try again)
                    s.sendall(payload)
                    s.shutdown(socket.SHUT_WR)

            sender = threading.Thread(target=send)
            sender.start()
            chunks = []
            while chunk := s.recv(1 << 16):
                chunks.append(chunk)
            sender.join()
    except OSError:
        return None
    return b"".join(chunks) or None


@root_only
def test_a_port_published_twice_is_listed_twice(client: Client, capfd: pytest.CaptureFixture[str]) -> None:
    web = client.containers.run("busybox", HTTPD, detach=True, ports={"8000/tcp": [("127.0.0.1", None),
                                                                                   ("127.0.0.1", None)]})
    assert len(web.ports["8000/tcp"]) == 2
    code, out, _ = cli(capfd, "port", web.name)
    assert len(out.splitlines()) == 2 and all(line.startswith("8000/tcp -> 127.0.0.1:") for line in out.splitlines())


@root_only
def test_a_port_already_taken_is_one_error_and_leaves_nothing(client: Client) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PyContainersError, match=f"Bind for 127.0.0.1:{port} failed: port is already allocated"):
            client.containers.run("busybox", HTTPD, detach=True, ports={"8000/tcp": ("127.0.0.1", port)})
    assert not any(d[2:] for d in veths() if client.store.home.joinpath("containers", d[2:]).exists())
    assert forwarders() == []


@root_only
def test_a_server_listening_on_loopback_inside_is_not_reached_through_a_published_port(client: Client) -> None:
    """Docker's classic surprise: the forwarder connects to the container's address, not its loopback."""
    c = client.containers.run("busybox", ["httpd", "-f", "-p", "127.0.0.1:8000", "-h", "/etc"], detach=True,
                              ports={"8000/tcp": None})
    with pytest.raises(OSError):
        fetch(host_port(c))
    assert c.exec_run(["wget", "-qO-", "http://127.0.0.1:8000/hostname"]).output.decode() == c.short_id + "\n"


@root_only
def test_the_cli_publishes_lists_and_reports_ports(client: Client, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capfd, "run", "-d", "--name", "web", "-p", "127.0.0.1::8000", "busybox", *HTTPD)
    assert code == 0
    code, out, _ = cli(capfd, "port", "web")
    assert code == 0 and out.startswith("8000/tcp -> 127.0.0.1:")
    port = int(out.strip().rsplit(":", 1)[1])
    assert wait_for(lambda: _try_fetch(port), "the page") == client.containers.get("web").short_id + "\n"
    code, out, _ = cli(capfd, "ps", "--format", "{{.Ports}}")
    assert out.strip() == f"127.0.0.1:{port}->8000/tcp"
    code, out, err = cli(capfd, "port", "web", "9999")
    assert code == 1 and "No public port '9999/tcp' published for web" in err
    code, out, err = cli(capfd, "run", "--rm", "-p", "80", "--network", "none", "busybox", "true")
    assert code == 125 and "published ports need a network" in err


@root_only
def test_publish_all_publishes_what_the_image_exposes(client: Client) -> None:
    b = client.images.builder("busybox")
    b.set(ExposedPorts={"8000/tcp": {}, "53/udp": {}, "9000": {}}, Cmd=HTTPD)
    b.commit("exposed:v1")
    c = client.containers.run("exposed:v1", detach=True, publish_all_ports=True, ports={"9000/tcp": 9999})
    assert sorted(c.ports) == ["8000/tcp", "9000/tcp"]  # UDP is not published; -p wins over -P
    assert c.ports["9000/tcp"][0]["HostPort"] == "9999" and int(c.ports["8000/tcp"][0]["HostPort"]) > 0
    assert wait_for(lambda: _try_fetch(host_port(c)), "the page") == c.short_id + "\n"


@root_only
def test_the_cli_manages_networks(client: Client, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capfd, "network", "create", "--subnet", "10.89.200.0/24", "backend")
    assert code == 0 and len(out.strip()) == 64
    code, out, _ = cli(capfd, "network", "ls", "--format", "{{.Name}} {{.Driver}}")
    assert out.split("\n")[:4] == ["bridge bridge", "none null", "host host", "backend bridge"]
    code, out, _ = cli(capfd, "run", "--rm", "--network", "backend", "busybox", "hostname", "-i")
    assert code == 0 and out.startswith("10.89.200.")
    [doc] = json.loads(cli(capfd, "network", "inspect", "backend")[1])
    assert doc["IPAM"]["Config"][0]["Gateway"] == "10.89.200.1" and doc["Containers"] == {}
    code, out, err = cli(capfd, "network", "rm", "backend", "bridge")
    assert code == 1 and out == "backend\n" and "bridge is a pre-defined network" in err


# ------------------------------------------------------------------------------- other back ends


@pytest.mark.parametrize("backend", ["rootless", "proot", "runc"])
def test_other_back_ends_publish_ports_too(client: Client, backend: str, monkeypatch: pytest.MonkeyPatch,
                                           capfd: pytest.CaptureFixture[str]) -> None:
    import shutil as sh

    if backend in ("proot", "runc") and sh.which(backend) is None:
        pytest.skip(f"{backend} is not installed")
    if backend in ("runc",) and os.geteuid() != 0:
        pytest.skip("runc needs root here")
    monkeypatch.setenv("PYCONTAINERS_BACKEND", backend)
    inner = 18000 + os.getpid() % 1000 if backend == "proot" else 8000  # proot: the host's own port
    c = client.containers.run("busybox", ["httpd", "-f", "-p", str(inner), "-h", "/etc"], detach=True,
                              ports={f"{inner}/tcp": None})
    page = wait_for(lambda: _try_fetch(host_port(c, f"{inner}/tcp")), f"the page of a {backend} container")
    if backend == "proot":  # -p N:N: the server listens there itself, nothing in between
        same = client.containers.run("busybox", ["httpd", "-f", "-p", str(inner + 1), "-h", "/etc"], detach=True,
                                     ports={f"{inner + 1}/tcp": inner + 1})
        assert wait_for(lambda: _try_fetch(inner + 1), "the page on the same port") == same.short_id + "\n"
        assert same.status == "running" and same.ports == {f"{inner + 1}/tcp": [
            {"HostIp": "0.0.0.0", "HostPort": str(inner + 1)}]}
        same.remove(force=True)
    assert page.strip() == c.short_id  # (its /etc/hostname: proot shows the container's files too)
    err = capfd.readouterr().err
    if backend != "runc":
        assert ("loopback" if backend == "rootless" else "shares this machine's network") in err
    c.remove(force=True)


def test_user_networks_need_root(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "rootless")
    with pytest.raises(InvalidArgument, match="networks of containers need root"):
        client.containers.create("busybox", ["true"], network="app")


# ------------------------------------------------------------------------------------- no leaks


@root_only
def test_a_killed_monitor_takes_its_forwarder_along_and_rm_leaves_nothing(client: Client) -> None:
    web = client.containers.run("busybox", HTTPD, detach=True, ports={"8000/tcp": None}, network="bridge")
    port = host_port(web)
    wait_for(lambda: _try_fetch(port), "the page")
    monitor = json.loads((client.store.home / "containers" / web.id / "state.json").read_text())["monitor_pid"]
    os.kill(monitor, signal.SIGKILL)
    wait_for(lambda: not forwarders(client.store), "the forwarder to see its monitor die")
    web.remove(force=True)
    wait_for(lambda: f"pv{web.id[:12]}" not in veths(), "the veth pair to go")
    assert network.get_network(client.store, "bridge").leases == {}


@root_only
def test_many_runs_leave_no_veth_lease_or_forwarder(client: Client) -> None:
    client.networks.create("loop")
    before = veths()
    for _ in range(10):
        out = client.containers.run("busybox", ["cat", "/sys/class/net/eth0/operstate"], network="loop",
                                    ports={"8000/tcp": None}, remove=True)
        assert out == b"up\n"
    wait_for(lambda: veths() <= before, "every veth pair to go")
    assert network.get_network(client.store, "loop").leases == {} and forwarders() == []


@root_only
def test_networks_are_made_and_removed_from_a_thread_running_an_event_loop(client: Client) -> None:
    """As in a Jupyter kernel, whose thread runs asyncio's loop (pyroute2's own loop cannot run there)."""
    import asyncio

    async def in_a_kernel() -> list[str]:
        net = client.networks.create("kernel")
        web = client.containers.run("busybox", HTTPD, detach=True, ports={"8000/tcp": None})
        names = [n.name for n in client.networks.list()]
        web.remove(force=True)
        net.remove()
        return names

    assert asyncio.run(in_a_kernel()) == [*network.PREDEFINED, "kernel"]
    assert network.list_networks(client.store)[0].name == "bridge"  # made for the web server, at first use


@root_only
def test_a_bridge_keeps_one_mac_address_whatever_its_ports(client: Client) -> None:
    net = client.networks.create("steady")
    record = network.get_network(client.store, "steady")
    mac = Path(f"/sys/class/net/{record.bridge}/address").read_text().strip()
    assert mac == network.mac_address(record.gateway) == "02:42:0a:" + ":".join(
        f"{int(b):02x}" for b in record.gateway.split(".")[1:])
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, network="steady")
    assert Path(f"/sys/class/net/{record.bridge}/address").read_text().strip() == mac
    assert c.exec_run(["cat", "/sys/class/net/eth0/address"]).output.decode().strip() == network.mac_address(
        c.attrs["NetworkSettings"]["Networks"]["steady"]["IPAddress"])
    c.remove(force=True)
    net.remove()


def _free_port_below_the_ephemeral_range() -> int:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in range(low - 1000, low):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


@root_only
def test_a_published_port_is_free_as_soon_as_the_exit_is_reported(client: Client) -> None:
    port = _free_port_below_the_ephemeral_range()  # (an outgoing connection could take an ephemeral one)
    for _ in range(10):  # each run can take the same port again at once
        client.containers.run("busybox", ["true"], ports={"8000/tcp": ("127.0.0.1", port)}, remove=True)


@root_only
def test_starting_a_running_container_again_changes_nothing(client: Client) -> None:
    c = client.containers.run("busybox", ["sleep", "60"], detach=True, network="bridge")
    pid = c.attrs["State"]["Pid"]
    c.start()
    assert c.status == "running" and c.attrs["State"]["Pid"] == pid
    assert c.exec_run(["true"]).exit_code == 0


def _relay(listener: socket.socket, target: tuple[str, int]) -> tuple[network.Relay, int]:
    """A Relay serving *listener* in a thread of this process, towards *target*; its stop pipe's write end."""
    stop_r, stop_w = os.pipe()
    listener.setblocking(False)
    relay = network.Relay([(listener, target[1])], target[0], stop_r)
    threading.Thread(target=relay.run, daemon=True).start()
    return relay, stop_w


def _listener(host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket()
    s.bind((host, 0))
    s.listen()
    return s


def test_the_relay_delivers_an_answer_sent_before_the_server_stopped_reading() -> None:
    """A server that answers early and closes (HTTP 413) while the client is still sending: the client gets
    the answer through the relay, as it does straight from the server."""
    server = _listener("127.0.0.2")

    def answer_early() -> None:
        conn, _ = server.accept()
        conn.recv(100)
        conn.sendall(b"HTTP/1.0 413 Payload Too Large\r\n\r\n")
        conn.close()

    threading.Thread(target=answer_early, daemon=True).start()
    front = _listener()
    _, stop_w = _relay(front, server.getsockname())
    with socket.create_connection(front.getsockname(), timeout=10) as client:
        with contextlib.suppress(OSError):
            client.sendall(os.urandom(4 << 20))
        assert client.recv(100).startswith(b"HTTP/1.0 413")
    os.close(stop_w)


def test_the_relay_delivers_what_it_read_before_the_server_reset() -> None:
    """A server that answers and resets at once (close with SO_LINGER 0): the answer read before the reset
    still reaches the client, then the connection ends."""
    server = _listener("127.0.0.2")
    answer = b"HTTP/1.0 413 Payload Too Large\r\n\r\n" * 100

    def answer_and_reset() -> None:
        while True:
            conn, _ = server.accept()
            conn.sendall(answer)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    threading.Thread(target=answer_and_reset, daemon=True).start()
    front = _listener()
    _, stop_w = _relay(front, server.getsockname())
    for _ in range(20):
        received = b""
        with socket.create_connection(front.getsockname(), timeout=10) as client:
            while chunk := client.recv(65536):
                received += chunk
        assert received == answer
    os.close(stop_w)


def test_the_relay_waits_when_out_of_descriptors_on_two_ports_at_once() -> None:
    """accept() failing with EMFILE on two listeners in one batch: the relay pauses (once), listens again, and
    serves the clients that waited in the backlog."""
    import errno

    server = _listener("127.0.0.2")

    def echo_twice() -> None:
        for _ in range(2):
            conn, _ = server.accept()
            conn.sendall(conn.recv(100))
            conn.close()

    threading.Thread(target=echo_twice, daemon=True).start()
    fronts = [_listener(), _listener()]
    failures = {"left": 2}

    class Starved(socket.socket):
        def accept(self) -> tuple[socket.socket, object]:  # type: ignore[override]
            if failures["left"]:
                failures["left"] -= 1
                raise OSError(errno.EMFILE, "Too many open files")
            return super().accept()

    starved = []
    for front in fronts:
        s = Starved(fileno=os.dup(front.fileno()))
        s.setblocking(False)
        starved.append((s, server.getsockname()[1]))
    clients = [socket.create_connection(f.getsockname(), timeout=10) for f in fronts]  # both wait, at once
    stop_r, stop_w = os.pipe()
    relay = network.Relay(starved, "127.0.0.2", stop_r)
    runner = threading.Thread(target=relay.run, daemon=True)
    runner.start()
    for i, client in enumerate(clients):
        client.sendall(b"ping %d" % i)
        assert client.recv(100) == b"ping %d" % i
        client.close()
    assert failures["left"] == 0 and runner.is_alive()
    os.close(stop_w)
    runner.join(5)
    for front in fronts:
        front.close()


def test_connections_cut_at_the_drain_deadline_are_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "DRAIN_SECONDS", 0.3)
    server = _listener("127.0.0.2")

    def flood() -> None:
        with contextlib.suppress(OSError):  # (until the relay resets it)
            server.accept()[0].sendall(os.urandom(64 << 20))

    threading.Thread(target=flood, daemon=True).start()
    front = _listener()
    relay, stop_w = _relay(front, server.getsockname())
    with socket.create_connection(front.getsockname(), timeout=10) as client:
        client.recv(1)
        os.close(stop_w)  # the container ends; this client reads nothing more for longer than the drain
        wait_for(lambda: not relay.connections, "the drain deadline")
        with pytest.raises(ConnectionResetError):
            while client.recv(1 << 20):
                pass


@root_only
def test_a_containers_veth_pair_goes_when_it_ends_though_its_connections_are_still_closing(client: Client) -> None:
    """Killed while sending to a peer that reads nothing, a container's socket is left closing with data unsent
    (FIN_WAIT1, probing a zero window for minutes), which keeps its network namespace alive, and a veth pair left
    to the kernel with it. Its monitor deletes the pair when the container ends, as Docker's endpoints leave."""
    k = client.containers.run("busybox", ["sleep", "600"], detach=True, network="bridge")
    gateway = k.attrs["NetworkSettings"]["Networks"]["bridge"]["Gateway"]
    with socket.create_server((gateway, 0)) as server:
        port = server.getsockname()[1]
        client_side = client.containers.run("busybox", ["sh", "-c", f"nc {gateway} {port} < /dev/zero"],
                                            detach=True, network="bridge")
        server.settimeout(15)
        accepted, _ = server.accept()  # (never read: its window closes, and the container's side has data left)
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        time.sleep(0.5)
        try:
            pair = network.veth_names(client_side.id)[0]
            assert pair in veths()
            client_side.remove(force=True)
            wait_for(lambda: pair not in veths(), "the veth pair to go with its container", 10)
        finally:
            accepted.close()
    k.remove(force=True)
