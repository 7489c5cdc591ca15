"""Self-checking exercises of the networking notebook (08): published ports, names, the loopback pitfall,
a container joining a second network.

The same pattern as ``pycontainers.exercises``: a notebook cell ends with ``check_...(client, ..., answer)``,
which returns a ``Check`` (✓, ✗ with a hint, "not answered yet", or "cannot be checked here"), and never
raises for a student's mistake. Every check looks at the real containers: the ports published now (the
``docker inspect`` document), the ``/etc/hosts`` a container resolves names with, and a page fetched
through a published port, with the container's listening sockets read from ``/proc`` to say what is wrong.

Core code: no IPython import. The readers of ``/proc`` come from ``pycontainers.netviews``, so the
notebook's cells and its checks see the same sockets.
"""

from __future__ import annotations

import ipaddress
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .errors import PyContainersError
from .exercises import Check, _shown, _whole_number, cannot_check, is_unanswered, not_answered
from .netviews import listening_sockets

if TYPE_CHECKING:
    from .api import Client, Container

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # this machine's ports: never a proxy


def _backend(container: Container | None = None) -> str:
    """The back end *container* runs with, or the one a new container would get here ("none": no way)."""
    from . import host

    if container is not None:
        return str(container.attrs.get("RuntimeBackend", "native"))
    return host.backend_choice()[0]


def _how(backend: str) -> str:
    """How containers run, in a few words: "under proot", "rootless", "with runc"."""
    return {"proot": "under proot", "rootless": "rootless"}.get(backend, f"with {backend}")


def _get(client: Client, name: str) -> Container | None:
    try:
        return client.containers.get(name)
    except PyContainersError:
        return None


# ----------------------------------------------------------------------------------------- host port


def _port_number(answer: object) -> int | None:
    """A port from ``41234``, ``"41234"``, or an address as ``pycontainers port`` prints it, ``"0.0.0.0:41234"``."""
    if isinstance(answer, str) and re.fullmatch(r"\s*[\w.\[\]:-]*:[0-9]{1,5}\s*", answer):
        answer = answer.strip().rpartition(":")[2]
    value = _whole_number(answer)
    return value if value is not None and 0 < value < 65536 else None


def check_host_port(client: Client, container_name: str, container_port: int, answer: object) -> Check:
    """On which port of this machine is the container's *container_port* published? Read live from its
    ``NetworkSettings.Ports`` (the kernel chose it when the container started)."""
    if is_unanswered(answer):
        return not_answered(f"set `answer` to the port of this machine that {container_name}'s port "
                            f"{container_port} is published on.")
    container = _get(client, container_name)
    if container is None:
        if _backend() == "none":
            return cannot_check(f"there is no container {container_name!r}: containers cannot run here.")
        return Check(False, f"there is no container {container_name!r}.", "Run the cells above that start it.")
    attrs = container.attrs
    if not attrs["State"]["Running"]:
        return Check(False, f"{container_name} is not running (it is {attrs['State']['Status']}): a port is "
                            "published only while its container runs.", "Run the cells above that start it.")
    bindings = attrs["NetworkSettings"]["Ports"].get(f"{container_port}/tcp")
    if not bindings:
        return Check(False, f"{container_name} does not publish port {container_port}.",
                     f"Run it again with -p {container_port} (ports={{'{container_port}/tcp': None}}).")
    published = {int(b["HostPort"]) for b in bindings}
    asked = (attrs["HostConfig"].get("PortBindings") or {}).get(f"{container_port}/tcp") or [{}]
    chosen = not any(b.get("HostPort") for b in asked)  # -p PORT, no host port: the kernel picked one
    value = _port_number(answer)
    if value is None:
        return Check(False, f"{_shown(answer)} is not a port.",
                     f"A port is a whole number from 1 to 65535: `pycontainers port {container_name}` prints "
                     "HOST_IP:HOST_PORT.")
    if value in published:
        return Check(True, f"Right: port {container_port} of {container_name} is published on port {value} of this "
                           f"machine, so http://localhost:{value}/ reaches it."
                           + (f" -p {container_port} named no port of this machine, so the kernel picked a free one."
                              if chosen else ""))
    if value == container_port:
        return Check(False, f"{value} is the port inside the container, where its server listens.",
                     f"The port of this machine is the other one: `pycontainers port {container_name}` prints "
                     f"{container_port}/tcp -> HOST_IP:HOST_PORT"
                     + (f" (-p {container_port} named none, so the kernel picked a free one)." if chosen else "."))
    return Check(False, f"{container_name}'s port {container_port} is not published on port {value}.",
                 f"`pycontainers port {container_name}` prints where it is: HOST_IP:HOST_PORT.")


# ------------------------------------------------------------------------------------------- names


def _container_names(answer: object) -> set[str] | None:
    """A set of names from ``{"a", "b"}``, ``["a"]``, ``"a, b"`` or ``set()``; None if it is not one."""
    items = re.split(r"[\s,{}\[\]()'\"]+", answer) if isinstance(answer, str) else answer
    if not isinstance(items, list | tuple | set | frozenset) or not all(isinstance(i, str) for i in items):
        return None
    return {i.strip() for i in items if i.strip()}


def hosts_names(text: str) -> set[str]:
    """Every name an ``/etc/hosts`` file gives an address to (comments and blank lines skipped)."""
    names: set[str] = set()
    for line in text.splitlines():
        fields = line.partition("#")[0].split()
        names.update(fields[1:])
    return names


def check_found_by_name(client: Client, name: str, candidates: Sequence[str], answer: object) -> Check:
    """Which of *candidates* can find the container *name* by its name? Answer: a set of container names.

    The truth is what each candidate resolves names with: its ``/etc/hosts`` (these containers have no DNS
    server), read inside it with ``cat``.
    """
    listed = ", ".join(candidates)
    backend = _backend()
    if backend == "none":
        return cannot_check("containers cannot run here, so none of them can find another.")
    if backend != "native":
        return cannot_check("containers find each other by name on networks made with `network create`, and those "
                            f"need root (containers run {_how(backend)} here), so the cells that start these "
                            "containers did nothing.")
    if is_unanswered(answer):
        return not_answered(f"set `answer` to the set of containers among {listed} that can reach {name} by its "
                            'name, e.g. {"' + candidates[0] + '"} (or set() for none).')
    chosen = _container_names(answer)
    if chosen is None:
        return Check(False, f"{_shown(answer)} is not a set of container names.",
                     'Write a set of names, such as {"' + candidates[0] + '"}, or set() for none.')
    if unknown := sorted(chosen - set(candidates)):
        return Check(False, f"{', '.join(unknown)}: not one of {listed}.",
                     f"Choose among {listed} ({name} itself is not asked about).")
    truth = set()
    for candidate in (name, *candidates):
        container = _get(client, candidate)
        if container is None or container.status != "running":
            return Check(False, f"{candidate} is not running.", "Run the cell above that starts these containers.")
        if candidate == name:
            continue
        hosts = container.exec_run(["cat", "/etc/hosts"]).output or b""
        if name in hosts_names(hosts.decode(errors="replace")):
            truth.add(candidate)
    if chosen == truth:
        return Check(True, f"Right: {', '.join(sorted(truth)) or 'none of them'} can. A container's /etc/hosts lists "
                           "the other containers of its network only on networks made with `network create`; the "
                           "default bridge gives addresses but no names, and --network none gives no network at all.")
    wrong = sorted(chosen ^ truth)
    return Check(False, f"Not quite: you are wrong about {', '.join(wrong)}.",
                 f"Look at what {wrong[0]} resolves names with, `!pycontainers exec {wrong[0]} cat /etc/hosts`, and "
                 f"at its network: `client.containers.get(\"{wrong[0]}\").attrs[\"HostConfig\"][\"NetworkMode\"]`.")


# ---------------------------------------------------------------------------------- a published page


def check_connected(client: Client, name: str, target: str, page: str, home: str) -> Check:
    """Running container *name*, on network *home*, must fetch *target*'s page (which contains *page*) by
    *target*'s name, while it keeps its place on *home*: ``network connect``, not a new container elsewhere.

    Not answered while *name* is on *home* alone; then the truth is a ``wget`` inside *name*.
    """
    backend = _backend()
    if backend == "none":
        return cannot_check("containers cannot run here, so the cell that starts these two did nothing.")
    if backend != "native":
        return cannot_check(f"networks need root (containers run {_how(backend)} here), so the cell that starts "
                            f"{name} and {target} did nothing.")
    container, other = _get(client, name), _get(client, target)
    for who, c in ((name, container), (target, other)):
        if c is None or c.status != "running":
            return Check(False, f"{who} is not running.", "Run the cell above that starts these containers again.")
    assert container is not None and other is not None
    joined = list(container.attrs["NetworkSettings"]["Networks"])
    if joined == [home]:
        return not_answered(f"{name} is on {home} only: give it a way to {target}, while it runs, then run this check.")
    if home not in joined:
        return Check(False, f"{name} is not on {home} any more (it is on {', '.join(joined) or 'no network'}).",
                     f"The frontend still needs {name} on {home}: add a network to it, do not swap one for another "
                     f"(run the cell above again to start over).")
    got = container.exec_run(["timeout", "3", "wget", "-qO-", f"http://{target}/"]).output.decode(errors="replace")
    if page in got:
        return Check(True, f"Right: {name} is on {' and '.join(joined)} now, and finds {target} by its name on the "
                           "network they share, while its place on the first one stays: a second interface, at once.")
    return Check(False, f"{name} is on {', '.join(joined)}, and `wget http://{target}/` inside it still gets no page.",
                 f"Which networks is {target} on? "
                 f"`list(client.containers.get(\"{target}\").attrs[\"NetworkSettings\"][\"Networks\"])` says.")


def fetch(url: str | None, timeout: float = 5) -> tuple[str | None, str]:
    """(the page, "") or (None, why there is none, in a few words); an HTTP error's page counts as a page.
    *url* None (``composeexercises.service_url`` of a container that is not running): (None, that)."""
    if url is None:
        return None, "there is no address to ask: the container is not running, or publishes no port"
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            return response.read().decode(errors="replace"), ""
    except urllib.error.HTTPError as error:
        return error.read().decode(errors="replace"), ""
    except ConnectionResetError:  # http.client.RemoteDisconnected too: the forwarder found no server
        return None, "the connection was closed without an answer"
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, (ConnectionResetError, BrokenPipeError)):  # (the close came while sending)
            return None, "the connection was closed without an answer"
        return None, str(reason)


def _published(container: Container) -> list[tuple[str, int, int]]:
    """(host IP, host port, container port) of each port *container* publishes now."""
    return [(b["HostIp"], int(b["HostPort"]), int(key.partition("/")[0]))
            for key, bindings in container.ports.items() for b in bindings or []]


def _pages(published: list[tuple[str, int, int]], wait: float) -> dict[str, str]:
    """{url: page} for each published port that gives a page, waiting up to *wait* seconds for a server that is
    still starting."""
    deadline = time.monotonic() + wait
    while True:
        pages = {}
        for host_ip, host_port, _ in published:
            url = f"http://{'127.0.0.1' if host_ip in ('0.0.0.0', '') else host_ip}:{host_port}/"
            page, _why = fetch(url)
            if page is not None:
                pages[url] = page
        if pages or time.monotonic() > deadline:
            return pages
        time.sleep(0.2)


def check_published_page(client: Client, container_name: str, expected: str, wait: float = 3) -> Check:
    """Run a container named *container_name* whose page (containing *expected*) can be fetched through a
    port it publishes. Unanswered until it exists; then its pages are fetched, and if none comes, its listening
    sockets (in its own network namespace, from ``/proc``) tell whether the port or the address is wrong."""
    container = _get(client, container_name)
    backend = _backend(container)
    if backend == "none":
        return cannot_check("containers cannot run here, so there is no page to fetch.")
    if backend != "native":
        where = {"proot": "this machine's 127.0.0.1 (proot containers share its network)",
                 "rootless": "the container's own loopback (it has no other interface)"}.get(backend)
        return cannot_check(f"containers run {_how(backend)} here, where "
                            + (f"a published port is forwarded to {where}: a server that listens on 127.0.0.1 only "
                               "is reached anyway" if where else "there is no bridge to reach a server through")
                            + ", so the mistake of this exercise cannot happen. It can where containers run as root.")
    if container is None:
        return not_answered(f"run a container named {container_name!r} in the background (-d) whose page can be "
                            "fetched through a port it publishes; this check looks for it.")
    attrs = container.attrs
    if not attrs["State"]["Running"]:
        return Check(False, f"{container_name} is not running (it is {attrs['State']['Status']}).",
                     f"Its output says why: `!pycontainers logs {container_name}`. Then remove it "
                     f"(`!pycontainers rm -f {container_name}`) and run it again, in the background (-d): a server "
                     "never exits by itself.")
    published = _published(container)
    pages = _pages(published, wait) if published else {}
    if any(expected in page for page in pages.values()):
        url = next(u for u, page in pages.items() if expected in page)
        return Check(True, f"Right: {url} gives the page. The server listens on an address the port forwarder "
                           "reaches: the container's own address on its network, not only its loopback.")
    if pages:
        url, page = next(iter(pages.items()))
        return Check(False, f"{url} answers, but with {_shown(page.strip())}, not {expected!r}.",
                     "Start the container from the image of this exercise.")
    if not published:
        return Check(False, f"{container_name} publishes no port.",
                     "Publish the port its server listens on: ports={'PORT/tcp': None}, as -p PORT.")
    listening = listening_sockets(attrs["State"]["Pid"])
    ports = sorted({port for _, port in listening})
    inside = sorted({port for _, _, port in published})
    if not listening:
        return Check(False, f"nothing listens in {container_name}, so its published ports lead nowhere.",
                     f"Its output says what its server did: `!pycontainers logs {container_name}`.")
    if not set(ports) & set(inside):
        return Check(False, f"{container_name} publishes port {', '.join(map(str, inside))}, but its server "
                            f"listens on port {', '.join(map(str, ports))}.",
                     "-p maps a port of this machine to the port the server listens on inside the container: "
                     f"publish {ports[0]}.")
    on_published = [(address, port) for address, port in listening if port in inside]
    if all(ipaddress.ip_address(address).is_loopback for address, _ in on_published):
        return Check(False, f"its server listens on {', '.join(f'{a}:{p}' for a, p in on_published)} only: the "
                            "container's own loopback, which the port forwarder does not reach.",
                     "Make the server listen on 0.0.0.0, every address of the container (this app reads it "
                     "from its HOST environment variable).")
    return Check(False, f"no page came through {container_name}'s published ports.",
                 f"Its output may say why: `!pycontainers logs {container_name}`.")


__all__ = ["check_found_by_name", "check_host_port", "check_published_page", "fetch", "hosts_names"]
