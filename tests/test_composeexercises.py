"""Notebook 09's self-checking exercises: right answers pass, wrong and missing ones get a hint, nothing raises.

The projects are busybox ones. The shop's frontend is busybox's httpd running a CGI script that asks
``http://offers:8000/`` for the offer of the day, as the notebook's Python frontend does; the guestbook is the
exercise's own command. Projects with a network of their own need root (bridges); each test's containers and
bridges go with the ``network_client`` fixture, its volumes with its store.
"""

from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import pytest
from processes import wait_for

from pycontainers import compose
from pycontainers.api import Client
from pycontainers.composeexercises import (
    check_recreated,
    check_service_added,
    check_volume_outlives_down,
    replaced_by_up,
    service_url,
)
from pycontainers.exercises import Check
from pycontainers.netexercises import fetch

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="a project's network needs root")
needs_proot = pytest.mark.skipif(shutil.which("proot") is None, reason="proot is not installed")
OFFER = "Two moka pots for the price of one"


@pytest.fixture
def client(network_client: Client) -> Client:
    return network_client


def assert_unanswered(check: Check) -> None:
    assert not check.ok and not check.answered and str(check).startswith("… Not answered yet:")


def assert_wrong(check: Check, *words: str) -> None:
    assert not check.ok and check.answered and check.checkable and check.hint, str(check)
    assert str(check).startswith("✗") and "Hint:" in str(check)
    for word in words:
        assert word in str(check), (word, str(check))


def assert_right(check: Check) -> None:
    assert check.ok and str(check).startswith("✓"), str(check)


def write(folder: Path, text: str, name: str = "compose.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(text))
    return folder / name


def quiet(line: str) -> None:
    pass


# ------------------------------------------------------------------------------------------ service_url


@root_only
def test_service_url_is_the_published_port_or_none(client: Client) -> None:
    web = client.containers.run("busybox", ["sleep", "300"], detach=True, name="web", ports={"8080/tcp": None})
    port = web.ports["8080/tcp"][0]["HostPort"]
    assert service_url(client, "web", 8080) == f"http://127.0.0.1:{port}/"
    assert service_url(client, "web", 8080, "/products") == f"http://127.0.0.1:{port}/products"
    assert service_url(client, "web", 9090) is None  # not published, and web has a network of its own
    client.containers.run("busybox", ["sleep", "300"], detach=True, name="local", network="host")
    assert service_url(client, "local", 8080) == "http://127.0.0.1:8080/"  # this machine's own port
    assert service_url(client, "nobody", 8080) is None
    client.containers.run("busybox", ["true"], name="ended", ports={"8080/tcp": None})
    assert service_url(client, "ended", 8080) is None


@needs_proot
def test_service_url_under_proot_is_this_machines_port(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")
    client.containers.run("busybox", ["sleep", "300"], detach=True, name="web")
    assert service_url(client, "web", 8080) == "http://127.0.0.1:8080/"


# -------------------------------------------------------------------------------- a service added


CGI = """\
#!/bin/sh
echo Content-Type: text/plain
echo
echo Our shop
if offer=$(wget -qO- http://offers:8000/ 2>&1); then
    echo "Offer of the day: $offer"
else
    echo "No offer today (http://offers:8000/: $offer)"
fi
"""

SHOP = """\
services:
  frontend:
    image: busybox
    init: true
    command: httpd -f -p 8080 -h /www
    volumes: ["./www:/www:ro"]
    ports: ["8080"]
"""

OFFERS = """\
  offers:
    image: busybox
    init: true
    command: httpd -f -p 8000 -h /offers
    volumes: ["./offers:/offers:ro"]
"""


@pytest.fixture
def shop(tmp_path: Path, client: Client) -> Path:
    """The shop's folder, with a frontend that shows the offer of the day (or why there is none), started."""
    folder = tmp_path / "shop"
    (folder / "www" / "cgi-bin").mkdir(parents=True)
    (folder / "www" / "cgi-bin" / "index.cgi").write_text(CGI)
    (folder / "www" / "cgi-bin" / "index.cgi").chmod(0o755)
    (folder / "offers").mkdir()
    (folder / "offers" / "index.html").write_text(OFFER + "\n")
    compose.up(client.store, compose.load(write(folder, SHOP)), say=quiet)
    url = service_url(client, "shop-frontend-1", 8080)
    assert url is not None
    wait_for(lambda: "Our shop" in (fetch(url)[0] or ""), "the frontend to answer")
    return folder


def offers_added(folder: Path, client: Client, offers: str = OFFERS) -> Path:
    file = write(folder, SHOP + offers)
    compose.up(client.store, compose.load(file), say=quiet)
    return file


@root_only
def test_service_added_right(shop: Path, client: Client) -> None:
    assert_unanswered(check_service_added(client, shop / "compose.yaml", "offers", "frontend", 8080, OFFER))
    file = offers_added(shop, client)
    check = check_service_added(client, file, "offers", "frontend", 8080, OFFER)
    assert_right(check)
    assert OFFER in check.message and "by its name" in check.message


@root_only
def test_service_added_to_the_file_but_not_started(shop: Path, client: Client) -> None:
    file = write(shop, SHOP + OFFERS)
    assert_wrong(check_service_added(client, file, "offers", "frontend", 8080, OFFER), "no container yet",
                 "up -d")


@root_only
@pytest.mark.parametrize(("offers", "words"), [
    (OFFERS.replace("-p 8000", "-p 8001"), ("No offer today", "Connection refused", "Nothing listens on port 8000")),
    (OFFERS.replace("-h /offers", "-h /etc"), ("No offer today", "404", "no page at /")),
    (OFFERS.replace("    init: true\n", "    init: true\n    network_mode: none\n"),
     ("No offer today", "bad address", "cannot look up the name offers")),
    (OFFERS.replace("httpd -f", "httpd").replace("    init: true\n", ""),  # httpd goes into the background...
     ("shop-offers-1 is not running (it is exited)", "-f")),  # ... so PID 1 exits, and the container with it
])
def test_service_added_says_what_is_wrong(shop: Path, client: Client, offers: str, words: tuple[str, ...]) -> None:
    file = offers_added(shop, client, offers)
    if "httpd -f" not in offers:
        wait_for(lambda: client.containers.get("shop-offers-1").status == "exited", "httpd's first process to end")
    assert_wrong(check_service_added(client, file, "offers", "frontend", 8080, OFFER, wait=0.5), *words)


@root_only
def test_service_added_without_a_frontend_running(shop: Path, client: Client) -> None:
    file = offers_added(shop, client)
    client.containers.get("shop-frontend-1").remove(force=True)
    assert_wrong(check_service_added(client, file, "offers", "frontend", 8080, OFFER),
                 "frontend service is not running", "up -d")


def test_service_added_to_a_file_that_cannot_be_read(tmp_path: Path, client: Client) -> None:
    broken = write(tmp_path / "shop", SHOP + "  offers:\n    image: busybox\n    restart: always\n")
    assert_wrong(check_service_added(client, broken, "offers", "frontend", 8080, OFFER),
                 "the file cannot be used", "needs a daemon", "Fix what the sentence names")
    no_frontend = write(tmp_path / "shop", OFFERS.join(["services:\n", ""]))
    assert_wrong(check_service_added(client, no_frontend, "offers", "frontend", 8080, OFFER),
                 "no service 'frontend' any more")
    check = check_service_added(client, tmp_path / "elsewhere" / "compose.yaml", "offers", "frontend", 8080, OFFER)
    assert_wrong(check, "cannot read")


# ------------------------------------------------------------------------- what a second up replaces


BEFORE = """\
services:
  a:
    image: busybox
    init: true
    command: [sleep, "300"]       # a comment
    environment: {WHO: world}
  b:
    image: busybox
    init: true
    command: [sleep, "300"]
    environment: {SHOP_NAME: The coffee shop}
    depends_on: [a]
  c:
    build: ./c
    init: true
    command: [sleep, "300"]
  e:
    image: busybox
    init: true
    command: [sleep, "300"]
"""

AFTER = """\
services:
  b:
    depends_on: [a]
    init: true
    environment: {SHOP_NAME: The coffee corner}
    command: [sleep, "300"]
    image: busybox
  a:
    init: true
    environment: {WHO: world}
    image: busybox:1.35.0         # another tag of the same image
    command: [sleep, "300"]
  c:
    build: {context: ./c, dockerfile: Dockerfile}
    init: true
    command: [sleep, "300"]
  d:
    image: busybox
    init: true
    command: [sleep, "300"]
"""


@pytest.fixture
def versions(tmp_path: Path, busybox_store: object) -> tuple[Path, Path]:
    folder = tmp_path / "proj"
    write(folder / "c", "FROM busybox\nLABEL version=1\n", "Dockerfile")
    return write(folder, BEFORE), write(folder, AFTER, "compose.next.yaml")


def test_recreated_right(busybox_store: object, versions: tuple[Path, Path]) -> None:
    before, after = versions
    (before.parent / "c" / "Dockerfile").write_text("FROM busybox\nLABEL version=2\n")  # no --build: no matter
    for right in ({"b"}, ["b"], "b", {"proj-b-1"}):
        check = check_recreated(busybox_store, before, after, right)  # type: ignore[arg-type]
        assert_right(check)
        assert "b: its environment changed" in check.message and "a: its image ID" in check.message
        assert "without --build" in check.message  # said of c, which has a build section
        assert "d: new, so up creates its first container" in check.message


@pytest.mark.parametrize(("answer", "words"), [
    ({"b", "c"}, ("wrong about c", "without --build", "build context")),
    ({"b", "a"}, ("wrong about a", "image ID", "the order of a service's keys")),
    (set(), ("wrong about b", "b: its environment changed", "configuration hash covers")),
    ({"b", "d"}, ("wrong about d", "d: new, so up creates its first container", "replaces nothing")),
    ({"b", "e"}, ("wrong about e", "no longer in the file", "--remove-orphans")),
    ({"zzz"}, ("zzz: not a service of this project", "a, b, c, d")),
    (42, ("42 is not a set of service names", "set() for none")),
])
def test_recreated_wrong(busybox_store: object, versions: tuple[Path, Path], answer: object,
                         words: tuple[str, ...]) -> None:
    assert_wrong(check_recreated(busybox_store, *versions, answer), *words)  # type: ignore[arg-type]


def test_recreated_placeholder_and_missing_files(busybox_store: object, versions: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    for placeholder in (..., None):
        assert_unanswered(check_recreated(busybox_store, *versions, placeholder))  # type: ignore[arg-type]
    assert_wrong(check_recreated(busybox_store, versions[0], tmp_path / "nope.yaml", {"b"}),  # type: ignore[arg-type]
                 "cannot read")


@root_only
def test_recreated_is_what_up_does(client: Client, versions: tuple[Path, Path]) -> None:
    """The prediction and the engine agree: up the first file, then the second, and compare container IDs."""
    before, after = (compose.load(path) for path in versions)
    predicted = replaced_by_up(client.store, before, after)
    assert set(predicted) == {"b"} and predicted["b"] == ["environment"]
    compose.up(client.store, before, ["a", "b", "e"], say=quiet)  # (c's image is never built here)
    ids = {c.name: c.id for c in client.containers.list(all=True)}
    compose.up(client.store, after, ["a", "b", "d"], say=quiet)
    now = {c.name: c.id for c in client.containers.list(all=True)}
    replaced = {name.split("-")[1] for name in ids if name in now and now[name] != ids[name]}
    assert replaced == set(predicted)


# --------------------------------------------------------------------- a volume that outlives down


BOOK = """\
name: guestbook
services:
  book:
    image: busybox
    command: sh -c 'echo signed >> /data/book.txt; wc -l < /data/book.txt'
"""


def leftovers(client: Client) -> tuple[list[str], list[str], list[str]]:
    return ([c.name for c in client.containers.list(all=True)], [v.name for v in client.volumes.list()],
            [n.name for n in client.networks.list() if n.name.startswith("guestbook")])


@root_only
def test_volume_outlives_down_right(client: Client) -> None:
    answer = BOOK + '    volumes: ["pages:/data"]\nvolumes:\n  pages: {}\n'
    check = check_volume_outlives_down(client, answer)
    assert_right(check)
    assert "1 after up, 2 after down and up, 1 after down -v and up" in check.message
    assert "guestbook_pages" in check.message
    assert leftovers(client) == ([], [], [])


@root_only
@pytest.mark.parametrize(("volumes", "words"), [
    ("", ("not a count", "Nothing is mounted at /data", "no such folder")),
    ('    volumes: ["/data"]\n', ("the count started again after down", "anonymous volume")),
    ('    volumes: ["pages:/data"]\nvolumes:\n  pages: {external: true, name: shared}\n',
     ("the count survived down -v", "external volume")),
    ('    volumes: ["pages:/elsewhere"]\nvolumes:\n  pages: {}\n', ("not a count", "Nothing is mounted at /data")),
])
def test_volume_outlives_down_wrong(client: Client, volumes: str, words: tuple[str, ...]) -> None:
    client.volumes.create("shared")
    assert_wrong(check_volume_outlives_down(client, BOOK + volumes), *words)
    assert leftovers(client) == ([], ["shared"], [])  # anonymous volumes too: none is left


@root_only
def test_volume_outlives_down_with_a_folder_of_this_machine(client: Client, tmp_path: Path) -> None:
    folder = tmp_path / "book"
    folder.mkdir()
    check = check_volume_outlives_down(client, BOOK + f'    volumes: ["{folder}:/data"]\n')
    assert_wrong(check, "the count survived down -v", "bind mount")
    assert leftovers(client) == ([], [], [])


@root_only
@pytest.mark.parametrize(("answer", "words"), [
    (BOOK.replace("name: guestbook\n", ""), ("the project is called 'pycontainers-exercise-", "name: guestbook")),
    (BOOK.replace("name: guestbook", "name: notes"), ("called 'notes', not 'guestbook'",)),
    (BOOK.replace("book:", "pages:"), ("no service 'book'", "Keep the service book")),
    (BOOK + "    restart: always\n", ("the file cannot be used", "needs a daemon")),
    (BOOK + "  oops\n", ("the file cannot be used", "not valid YAML")),
    (BOOK.replace("book.txt'", "book.txt; echo done'") + '    volumes: ["pages:/data"]\nvolumes:\n  pages: {}\n',
     ("not a count", "command of the exercise")),
    ("name: guestbook\nservices:\n  book: {image: busybox, init: true, command: [sleep, '300']}\n",
     ("did not end within 3 s",)),
    (BOOK.replace("busybox", "no-such-image"), ("running the file failed", "no-such-image")),
    (42, ("42 is not the text of a compose file", 'answer = """')),
])
def test_volume_outlives_down_odd_answers(client: Client, answer: object, words: tuple[str, ...]) -> None:
    assert_wrong(check_volume_outlives_down(client, answer, timeout=3), *words)
    assert leftovers(client) == ([], [], [])


def test_volume_outlives_down_placeholder(client: Client) -> None:
    for placeholder in (..., None):
        check = check_volume_outlives_down(client, placeholder)
        assert_unanswered(check)
        assert "guestbook" in check.message


def test_where_containers_cannot_run_nothing_is_marked_wrong(client: Client, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "none")
    file = write(tmp_path / "shop", SHOP + OFFERS)
    for check in (check_service_added(client, file, "offers", "frontend", 8080, OFFER),
                  check_volume_outlives_down(client, BOOK)):
        assert not check.ok and not check.checkable and str(check).startswith("– Cannot be checked here:")
        assert "containers cannot run here" in check.message
