"""Notebook 08's self-checking exercises: each gets a right and a wrong answer, against real containers.

The containers are busybox ones: ``sleep`` where only the network matters, and busybox's ``httpd`` as the web
server (listening on every address, on the loopback only, or on another port than the published one). As in
tests/test_network.py, they need root (bridges, veth pairs); each test removes its containers and bridges.
"""

from __future__ import annotations

import os
import shutil
import socket

import pytest
from processes import wait_for

from pycontainers.api import Client, Container
from pycontainers.exercises import Check
from pycontainers.netexercises import (
    _port_number,
    check_connected,
    check_found_by_name,
    check_host_port,
    check_published_page,
    fetch,
    hosts_names,
)
from pycontainers.netviews import listening_sockets

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="bridges and veth pairs need root")
needs_proot = pytest.mark.skipif(shutil.which("proot") is None, reason="proot is not installed")
CANDIDATES = ["ex-shop", "ex-bridge", "ex-none"]


@pytest.fixture
def client(network_client: Client) -> Client:
    return network_client


def assert_unanswered(check: Check) -> None:
    assert not check.ok and not check.answered and str(check).startswith("… Not answered yet:")


def assert_wrong(check: Check, *words: str) -> None:
    assert not check.ok and check.answered and check.checkable and check.hint
    assert str(check).startswith("✗") and "Hint:" in str(check)
    for word in words:
        assert word in str(check), word


def assert_right(check: Check) -> None:
    assert check.ok and str(check).startswith("✓")


def assert_not_checkable(check: Check) -> None:
    assert not check.ok and not check.checkable and str(check).startswith("– Cannot be checked here:")


def sleeper(client: Client, name: str, **options: object) -> Container:
    return client.containers.run("busybox", ["sleep", "300"], detach=True, name=name, **options)


def server(client: Client, name: str, listen: str = "0.0.0.0:5000", publish: str | None = "5000",
           page: str = "Hello world!") -> Container:
    """busybox's httpd serving *page*, listening on *listen*, publishing *publish*; once it listens."""
    script = f"mkdir -p /www && echo '{page}' > /www/index.html && exec httpd -f -p {listen} -h /www"
    options = {"ports": {f"{publish}/tcp": None}} if publish else {}
    c = client.containers.run("busybox", ["sh", "-c", script], detach=True, name=name, **options)
    wait_for(lambda: listening_sockets(c.attrs["State"]["Pid"]), "httpd to listen")
    return c


# --------------------------------------------------------------------------------------- host port


@pytest.mark.parametrize(("answer", "port"), [
    (41234, 41234), ("41234", 41234), ("0.0.0.0:41234", 41234), (" localhost:41234 ", 41234),
    ("[::]:8080", 8080), (0, None), (70000, None), ("port 80", None), (8080.5, None), (True, None), ("", None),
])
def test_ports_are_read_as_pycontainers_port_prints_them(answer: object, port: int | None) -> None:
    assert _port_number(answer) == port


@pytest.mark.parametrize("placeholder", [..., None])
def test_host_port_placeholder(client: Client, placeholder: object) -> None:
    assert_unanswered(check_host_port(client, "web", 8080, placeholder))


@pytest.mark.parametrize("backend", [
    pytest.param("native", marks=root_only),
    pytest.param("proot", marks=needs_proot),  # Binder's: no network of its own, but the port is published
])
def test_host_port_right_and_wrong(client: Client, monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", backend)
    web = sleeper(client, "web", ports={"8080/tcp": None})
    port = int(web.ports["8080/tcp"][0]["HostPort"])
    for right in (port, str(port), f"0.0.0.0:{port}"):
        check = check_host_port(client, "web", 8080, right)
        assert_right(check)
        assert f"http://localhost:{port}/" in check.message and "the kernel picked a free one" in check.message
    assert_wrong(check_host_port(client, "web", 8080, 8080), "the port inside the container", "pycontainers port web",
                 "the kernel picked")
    assert_wrong(check_host_port(client, "web", 8080, port + 1 if port < 65535 else port - 1),
                 "is not published on port", "HOST_IP:HOST_PORT")
    assert_wrong(check_host_port(client, "web", 8080, "banana"), "'banana' is not a port", "1 to 65535")
    assert_wrong(check_host_port(client, "web", 9090, port), "does not publish port 9090", "-p 9090")


@root_only
def test_host_port_chosen_by_hand(client: Client) -> None:
    """-p HOST_PORT:PORT: the port is the one asked for, and the kernel picked nothing."""
    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeper(client, "web", ports={"8080/tcp": port})
    check = check_host_port(client, "web", 8080, port)
    assert_right(check)
    assert "kernel" not in check.message
    check = check_host_port(client, "web", 8080, 8080)
    assert_wrong(check, "the port inside the container")
    assert "kernel" not in check.hint


def test_host_port_without_the_container(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "native")  # (where containers cannot run at all: cannot be checked)
    assert_wrong(check_host_port(client, "web", 8080, 41234), "there is no container 'web'", "cells above")


@root_only
def test_host_port_of_a_container_that_has_ended(client: Client) -> None:
    client.containers.run("busybox", ["true"], name="web", ports={"8080/tcp": None})
    assert_wrong(check_host_port(client, "web", 8080, 41234), "web is not running (it is exited)")


# ------------------------------------------------------------------------------------------- names


def test_hosts_files_are_read_as_the_resolver_reads_them() -> None:
    text = "127.0.0.1\tlocalhost\n# api is here\n\n10.89.0.3\tapi 0c2605df0001  # a comment\n"
    assert hosts_names(text) == {"localhost", "api", "0c2605df0001"}


@pytest.fixture
def shop(client: Client) -> Client:
    """api on the network shop; ex-shop on shop too (started first: it learns api's name afterwards),
    ex-bridge on the default bridge, ex-none with no network."""
    client.networks.create("shop")
    sleeper(client, "ex-shop", network="shop")
    sleeper(client, "api", network="shop")
    sleeper(client, "ex-bridge", network="bridge")
    sleeper(client, "ex-none")
    return client


@root_only
def test_found_by_name_right_and_wrong(shop: Client) -> None:
    for right in ({"ex-shop"}, ["ex-shop"], "ex-shop", " {'ex-shop'} "):
        check = check_found_by_name(shop, "api", CANDIDATES, right)
        assert_right(check)
        assert "default bridge gives addresses but no names" in check.message
    check = check_found_by_name(shop, "api", CANDIDATES, {"ex-shop", "ex-bridge"})
    assert_wrong(check, "wrong about ex-bridge", "exec ex-bridge cat /etc/hosts", "NetworkMode")
    assert "ex-shop" not in check.message  # only what is wrong is named
    assert_wrong(check_found_by_name(shop, "api", CANDIDATES, set()), "wrong about ex-shop")
    assert_wrong(check_found_by_name(shop, "api", CANDIDATES, set(CANDIDATES)), "wrong about ex-bridge, ex-none")


@root_only
def test_found_by_name_follows_the_containers_not_the_rule(shop: Client) -> None:
    """The truth is measured: a candidate that leaves the network is no longer right."""
    shop.containers.get("ex-shop").remove(force=True)
    sleeper(shop, "ex-shop", network="bridge")
    assert_right(check_found_by_name(shop, "api", CANDIDATES, set()))
    assert_wrong(check_found_by_name(shop, "api", CANDIDATES, {"ex-shop"}), "wrong about ex-shop")


@root_only
@pytest.mark.parametrize(("answer", "words"), [
    ({"banana"}, "banana: not one of ex-shop, ex-bridge, ex-none"),
    ({"api"}, "api: not one of"),
    (42, "42 is not a set of container names"),
    ({1, 2}, "is not a set of container names"),
])
def test_found_by_name_odd_answers(shop: Client, answer: object, words: str) -> None:
    assert_wrong(check_found_by_name(shop, "api", CANDIDATES, answer), words)


@root_only
def test_found_by_name_needs_its_containers_running(client: Client) -> None:
    assert_unanswered(check_found_by_name(client, "api", CANDIDATES, ...))
    assert_unanswered(check_found_by_name(client, "api", CANDIDATES, None))
    assert_wrong(check_found_by_name(client, "api", CANDIDATES, {"ex-shop"}), "api is not running", "cell above")


def test_found_by_name_without_root_cannot_be_checked(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    for backend in ("proot", "rootless"):
        monkeypatch.setenv("PYCONTAINERS_BACKEND", backend)
        for answer in ({"ex-shop"}, ...):  # even before an answer: it cannot be done here
            check = check_found_by_name(client, "api", CANDIDATES, answer)
            assert_not_checkable(check)
            assert f"containers run {'under proot' if backend == 'proot' else backend} here" in check.message


# ------------------------------------------------------------------------------- a second network


@pytest.fixture
def tiers(client: Client) -> Client:
    """ex-db serving a page on ex-back; ex-report on ex-front, sleeping."""
    client.networks.create("ex-front")
    client.networks.create("ex-back")
    script = "mkdir -p /www && echo 'ex-db: 3 orders' > /www/index.html && exec httpd -f -p 80 -h /www"
    db = client.containers.run("busybox", ["sh", "-c", script], detach=True, name="ex-db", network="ex-back")
    wait_for(lambda: listening_sockets(db.attrs["State"]["Pid"]), "httpd to listen")
    sleeper(client, "ex-report", network="ex-front")
    return client


def connected(client: Client) -> Check:
    return check_connected(client, "ex-report", "ex-db", "3 orders", "ex-front")


@root_only
def test_connected_right_and_wrong(tiers: Client) -> None:
    assert_unanswered(connected(tiers))
    other = tiers.networks.create("ex-other")
    other.connect(tiers.containers.get("ex-report"))
    assert_wrong(connected(tiers), "on ex-front, ex-other", "still gets no page",
                 '.get("ex-db").attrs["NetworkSettings"]["Networks"]')
    other.disconnect(tiers.containers.get("ex-report"))
    tiers.networks.get("ex-back").connect(tiers.containers.get("ex-report"))
    check = connected(tiers)
    assert_right(check)
    assert "on ex-front and ex-back now" in check.message


@root_only
def test_connected_wants_a_network_added_not_swapped(tiers: Client) -> None:
    tiers.containers.get("ex-report").remove(force=True)
    sleeper(tiers, "ex-report", network="ex-back")  # it reaches ex-db, but the frontend lost it
    assert_wrong(connected(tiers), "not on ex-front any more", "do not swap")
    tiers.containers.get("ex-report").stop(timeout=0)
    assert_wrong(connected(tiers), "ex-report is not running", "cell above")


def test_connected_without_root_cannot_be_checked(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    for backend in ("proot", "rootless"):
        monkeypatch.setenv("PYCONTAINERS_BACKEND", backend)
        check = connected(client)
        assert_not_checkable(check)
        assert "networks need root" in check.message


# ------------------------------------------------------------------------------------ a published page


@root_only
def test_published_page_right_and_wrong(client: Client) -> None:
    unanswered = check_published_page(client, "ex-fixed", "Hello world!")
    assert_unanswered(unanswered)
    assert "in the background (-d)" in unanswered.message  # a server in the foreground would block the notebook
    server(client, "ex-fixed")
    check = check_published_page(client, "ex-fixed", "Hello world!")
    assert_right(check)
    assert "http://127.0.0.1:" in check.message
    client.containers.get("ex-fixed").remove(force=True)
    server(client, "ex-fixed", listen="127.0.0.1:5000")
    assert_wrong(check_published_page(client, "ex-fixed", "Hello world!", wait=0.5),
                 "listens on 127.0.0.1:5000 only", "0.0.0.0")


@root_only
@pytest.mark.parametrize(("listen", "publish", "page", "words"), [
    ("0.0.0.0:5000", "8080", "Hello world!", ("publishes port 8080, but its server listens on port 5000",
                                              "publish 5000")),
    ("0.0.0.0:5000", None, "Hello world!", ("ex-fixed publishes no port", "-p PORT")),
    ("0.0.0.0:5000", "5000", "Goodbye", ("answers, but with 'Goodbye'", "image of this exercise")),
])
def test_published_page_names_what_is_wrong(client: Client, listen: str, publish: str | None, page: str,
                                            words: tuple[str, str]) -> None:
    server(client, "ex-fixed", listen=listen, publish=publish, page=page)
    assert_wrong(check_published_page(client, "ex-fixed", "Hello world!", wait=0.5), *words)


@root_only
def test_published_page_of_a_container_without_a_server(client: Client) -> None:
    sleeper(client, "ex-fixed", ports={"5000/tcp": None})
    assert_wrong(check_published_page(client, "ex-fixed", "Hello world!", wait=0.5), "nothing listens", "logs")
    client.containers.get("ex-fixed").remove(force=True)
    client.containers.run("busybox", ["true"], name="ex-fixed", ports={"5000/tcp": None})
    assert_wrong(check_published_page(client, "ex-fixed", "Hello world!"), "is not running", "rm -f ex-fixed",
                 "in the background (-d)")


@needs_proot
def test_published_page_under_proot_cannot_be_checked(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """There the forwarder reaches 127.0.0.1, so a loopback-only server works: no mistake to find."""
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")
    check = check_published_page(client, "ex-fixed", "Hello world!")
    assert_not_checkable(check)
    assert "under proot" in check.message and "127.0.0.1" in check.message


def test_fetch_says_why_there_is_no_page() -> None:
    page, why = fetch("http://127.0.0.1:1/", timeout=2)
    assert page is None and "refused" in why.lower()
    page, why = fetch(None)  # (service_url of a container that is not running)
    assert page is None and "not running" in why
