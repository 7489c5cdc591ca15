"""Compose (pycontainers/compose.py): reading compose files (every refusal is one sentence naming the file,
the service and the key), then real projects: up, a second up, down, builds, the CLI."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import wait_for

from pycontainers import compose
from pycontainers import container as containers
from pycontainers.compose import ComposeError
from pycontainers.errors import PyContainersError
from pycontainers.network import list_networks
from pycontainers.store import Store

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="networks need root")


@pytest.fixture(autouse=True)
def _nothing_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that fails half-way leaves no container running (its project's down never came)."""
    store = request.getfixturevalue("busybox_store") if "busybox_store" in request.fixturenames else None
    yield  # (asked for first, the store is torn down after this)
    if store is not None:
        for c in containers.list_containers(store, all=True):
            with contextlib.suppress(PyContainersError):
                containers.remove(c, force=True, volumes=True)


def project(tmp_path: Path, text: str, name: str = "shop", env: dict[str, str] | None = None,
            file: str = "compose.yaml") -> compose.Project:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    (directory / file).write_text(textwrap.dedent(text))
    return compose.load(directory, environ=env or {})


# ------------------------------------------------------------------------------------------ reading


def test_a_project_is_read_in_start_order_with_its_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("B", "from the shell")
    p = project(tmp_path, """
        services:
          web:
            image: busybox
            command: sh -c 'echo "$$HOME is ${WHO:-nobody}"'
            ports: [8080, "127.0.0.1:9090:90/tcp"]
            volumes: ["./site:/srv:ro", "data:/data", "/tmp/cache"]
            environment: {A: "1", B: null, C: true}
            depends_on: [api]
          api:
            build: ./api
            depends_on: {db: {condition: service_started}}
            networks: {default: {aliases: [backend]}}
          db:
            image: busybox
            network_mode: none
        volumes:
          data: {}
        """, name="My Shop!")
    assert p.name == "myshop" and list(p.services) == ["db", "api", "web"]
    web, api, db = p.services["web"], p.services["api"], p.services["db"]
    assert web.container_name == "myshop-web-1" and web.network == "myshop_default"
    assert web.command == ["sh", "-c", 'echo "$HOME is nobody"']  # $$ is a dollar; WHO unset: the default
    assert web.options["ports"] == ["8080", "127.0.0.1:9090:90"]
    assert web.options["volumes"] == [f"{tmp_path / 'My Shop!' / 'site'}:/srv:ro", "myshop_data:/data", "/tmp/cache"]
    assert web.options["environment"] == ["A=1", "B=from the shell", "C=true"]  # (B: null takes this one's)
    assert web.options["network_aliases"] == ["web"]
    assert api.image == "myshop-api" and api.build is not None and api.build.context == tmp_path / "My Shop!" / "api"
    assert api.options["network_aliases"] == ["api", "backend"]
    assert db.network == "none" and "network_aliases" not in db.options
    assert p.volumes == {"data": "myshop_data"} and p.networks == {"default": "myshop_default"}


def test_variables_come_from_the_environment_over_the_dot_env_file(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / ".env").write_text("# settings\nTAG=from-file\nPORT='8081'\n")
    p = project(tmp_path, """
        name: ${NAME-fromname}
        services:
          s:
            image: "busybox:${TAG}"
            ports: ["${PORT}:80"]
        """, name="app", env={"TAG": "from-env"})
    assert p.name == "fromname" and p.services["s"].image == "busybox:from-env"
    assert p.services["s"].options["ports"] == ["8081:80"]
    with pytest.raises(ComposeError, match="variable TAG is required: give a tag"):
        project(tmp_path, "services: {s: {image: 'busybox:${TAG:?give a tag}'}}", name="strict")


@pytest.mark.parametrize(("text", "message"), [
    ("services: {}", "needs a 'services' section"),
    ("services: {s: {image: busybox}}\nconfigs: {}", "top-level key 'configs' is not supported"),
    ("services: {s: {image: busybox, deploy: {}}}", "service 's': 'deploy' is not supported"),
    ("services: {s: {image: busybox, restart: always}}", "needs a daemon"),
    ("services: {s: {command: x}}", "give an 'image' to run or a 'build'"),
    ("services: {a: {image: busybox, depends_on: [b]}, b: {image: busybox, depends_on: [a]}}",
     "in a circle: a -> b -> a"),
    ("services: {a: {image: busybox, depends_on: [nope]}}", "depends on 'nope', which is not a service"),
    ("services: {a: {image: busybox, depends_on: {b: {condition: service_ready}}}, b: {image: busybox}}",
     "condition 'service_ready' is not one of service_started, service_healthy"),
    ("services: {s: {image: busybox, volumes: ['data:/data']}}", "volume 'data' is not declared"),
    ("services: {s: {image: busybox, volumes: [{type: volume}]}}", "use the short syntax"),
    ("services: {s: {image: busybox, networks: [back]}}", "network 'back' is not declared"),
    ("services: {s: {image: busybox, networks: [a, c]}}\nnetworks: {a: {}, b: {}}", "network 'c' is not declared"),
    ("services: {s: {image: busybox, ports: ['53:53/udp']}}", "only TCP ports"),
    ("services: {s: {image: busybox, command: [true]}}", "True is not a string: quote it"),
    ("services: {s: {image: busybox}, s: {image: busybox}}", "mapping key 's' is given twice"),
    ("services: {s: {image: busybox, depends_on: db}}", "depends_on: give a list of strings"),
    ("services: {s: {image: busybox, networks: {default: {aliases: web2}}}}", "aliases: give a list of strings"),
    ("services: {s: {image: busybox, extra_hosts: 'a:1.2.3.4'}}", "extra_hosts: give a list of strings"),
    ("services: {s: {image: busybox, extra_hosts: ['a:host-gateway']}}", "service 's': extra_hosts: invalid arg"),
    ("services: {s: {image: busybox, networks: {default: {aliases: ['a b']}}}}",
     "service 's': networks: aliases: network alias 'a b' is not a host name"),
    ("services: {s: {image: busybox, ports: ['8080:80:90']}}", "service 's': ports: "),
    ("services: {s: {image: busybox, env_file: [{path: a.env}]}}", "env_file: give a list of strings"),
    ("services: {s: {image: busybox, env_file: [missing.env]}}", "service 's': --env-file"),
    ("services: {s: {image: busybox, labels: 5}}", "labels: give a mapping"),
    ("services: {s: {build: {context: ., args: 5}}}", "args: give a mapping"),
    ("services: {s: {image: 'busybox${'}}", "invalid interpolation format"),
    ("services: {s: {image: '${busy box}'}}", "invalid interpolation format for"),
    ("services: {s: {image: '${1x}'}}", "'1x' is not a variable name"),
    ("services: {s: {image: busybox, command: \"sh -c 'unclosed\"}}", "command: No closing quotation"),
    ("services: {s: {image: busybox, build: {context: ., ssh: [default]}}}", "'ssh' is not supported"),
    ("services:\n  s:\n    image: [unclosed\n", "compose.yaml (line 4): not valid YAML"),
    ("services: {'bad name': {image: busybox}}", "a service name may have only"),
])
def test_what_cannot_be_run_is_refused_in_one_sentence(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ComposeError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        project(tmp_path, text)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("compose.yaml")


def test_yaml_is_read_as_compose_reads_it(tmp_path: Path) -> None:
    """YAML 1.2, as Compose: 22:22 is not the sexagesimal 1342 of YAML 1.1, yes/on/no are words."""
    p = project(tmp_path, """
        services:
          my_db:
            image: busybox
            ports: [22:22, 8000:50]
            environment: {E: 10:30, D: yes, G: on, N: 0755, F: 1.5}
            restart: no
        """)
    db = p.services["my_db"]
    assert db.options["ports"] == ["22:22", "8000:50"]
    assert db.options["environment"] == ["E=10:30", "D=yes", "G=on", "N=0755", "F=1.5"]
    assert db.options["network_aliases"] == ["my_db"]  # (a '_' is fine in a name to look up)


def test_interpolation_and_dot_env_follow_composes_rules(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / ".env").write_text(
        "export EXPORTED=yes\nCOMMENTED=value # a comment\nQUOTED=\"a # b\" # c\nEMPTY=\n")
    p = project(tmp_path, """
        services:
          s:
            image: busybox
            environment:
              - NESTED=${UNSET:-${ALSO_UNSET:-deep}}
              - PLUS=${EXPORTED:+was set}
              - PLUS_EMPTY=${EMPTY:+not shown}
              - DASH_EMPTY=${EMPTY-kept empty}
              - COLON_EMPTY=${EMPTY:-replaced}
              - DEFAULT_VAR=${UNSET-$EXPORTED}
              - DOLLARS=$$x ${UNSET:-$$y}
              - FILE=${EXPORTED} ${COMMENTED} ${QUOTED}
        """, name="app")
    assert p.services["s"].options["environment"] == [
        "NESTED=deep", "PLUS=was set", "PLUS_EMPTY=", "DASH_EMPTY=", "COLON_EMPTY=replaced", "DEFAULT_VAR=yes",
        "DOLLARS=$x $y", "FILE=yes value a # b"]
    with pytest.raises(ComposeError, match="variable EMPTY is required: it is empty"):
        project(tmp_path, "services: {s: {image: '${EMPTY:?}'}}", name="app")


def test_the_file_is_found_by_composes_names(tmp_path: Path) -> None:
    p = project(tmp_path, "services: {s: {image: busybox}}", file="docker-compose.yml")
    assert p.file.name == "docker-compose.yml"
    with pytest.raises(ComposeError, match="no compose file in"):
        compose.load(tmp_path)


# ------------------------------------------------------------------------------------------ running


SHOP = """
    services:
      web:
        image: busybox
        command: ["sh", "-c", "wget -qO- http://api:8000/hostname && wget -qO- http://backend:8000/hostname"]
        depends_on: [api]
        volumes: ["notes:/notes"]
      api:
        image: busybox
        command: ["httpd", "-f", "-p", "8000", "-h", "/etc"]
        networks: {default: {aliases: [backend]}}
    volumes:
      notes: {}
    """


def names(store: Store) -> list[str]:
    return sorted(c.name for c in containers.list_containers(store, all=True))


@root_only
def test_up_starts_the_services_in_order_where_they_find_each_other_by_name(busybox_store: Store,
                                                                           tmp_path: Path) -> None:
    p = project(tmp_path, SHOP)
    said: list[str] = []
    started = compose.up(busybox_store, p, say=said.append)
    assert [c.name for c in started] == ["shop-api-1", "shop-web-1"]
    assert said == [" Network shop_default  Created", " Volume shop_notes  Created",
                    " Container shop-api-1  Created", " Container shop-api-1  Started",
                    " Container shop-web-1  Created", " Container shop-web-1  Started"]
    api, web = started
    assert containers.wait(web, 30) == 0
    assert [e.data for e in containers.log_entries(web)] == [f"{api.id[:12]}\n".encode()] * 2  # by both names
    labels = api.state["labels"]
    assert labels[compose.PROJECT_LABEL] == "shop" and labels[compose.SERVICE_LABEL] == "api"
    lines = list(compose.log_lines(busybox_store, p, ["web"]))
    assert lines == [("web-1  | ", "stdout", f"{api.id[:12]}\n".encode())] * 2

    # Again: api is as the file says and runs on; web has ended, and starts again. Nothing is made anew.
    said.clear()
    again = compose.up(busybox_store, p, say=said.append)
    assert [c.id for c in again] == [api.id, web.id]
    assert said == [" Container shop-api-1  Running", " Container shop-web-1  Started"]

    # A changed file: the changed service's container is replaced, the other left alone.
    p = project(tmp_path, SHOP.replace("http://backend:8000/hostname", "http://api:8000/passwd"))
    said.clear()
    changed = compose.up(busybox_store, p, say=said.append)
    assert changed[0].id == api.id and changed[1].id != web.id
    assert " Container shop-web-1  Recreated" in said

    said.clear()
    compose.down(busybox_store, p, volumes=True, say=said.append)
    assert said[-2:] == [" Network shop_default  Removed", " Volume shop_notes  Removed"]
    assert names(busybox_store) == [] and [n.name for n in list_networks(busybox_store)] == []
    assert containers.volume_list(busybox_store) == []


@root_only
def test_a_service_is_built_and_one_that_cannot_start_is_named(busybox_store: Store, tmp_path: Path) -> None:
    (tmp_path / "shop" / "api").mkdir(parents=True)
    dockerfile = 'FROM busybox\nRUN echo built > /built\nCMD ["cat", "/built"]\n'
    (tmp_path / "shop" / "api" / "Dockerfile").write_text(dockerfile)
    p = project(tmp_path, """
        services:
          api: {build: ./api}
          broken: {image: busybox, command: [no-such-command], network_mode: none}
        """)
    said: list[str] = []
    with pytest.raises(ComposeError, match="service broken: container shop-broken-1 could not start: .*no-such"):
        compose.up(busybox_store, p, say=said.append)
    assert said[:2] == [" Building api (shop-api)", "  api  Step 1/3 : FROM busybox"]  # (images first, as Compose)
    assert said.index(" Image shop-api  Built") < said.index(" Network shop_default  Created")
    assert "  api   ---> Cache miss: not built before" in said or any("RUN echo built" in line for line in said)
    assert " Image shop-api  Built" in said
    api = containers.get_container(busybox_store, "shop-api-1")
    assert containers.wait(api, 30) == 0 and b"".join(e.data for e in containers.log_entries(api)) == b"built\n"
    said.clear()
    compose.up(busybox_store, p, ["api"], say=said.append)  # (only api: broken is not tried again)
    assert " Building api (shop-api)" not in said  # the image is there: no build without --build
    compose.down(busybox_store, p, say=lambda line: None)
    assert names(busybox_store) == []


@root_only
def test_services_removed_from_the_file_are_orphans(busybox_store: Store, tmp_path: Path) -> None:
    both = project(tmp_path, "services: {a: {image: busybox, command: ['true'], network_mode: none},"
                             " b: {image: busybox, command: ['true'], network_mode: none}}")
    compose.up(busybox_store, both, say=lambda line: None)
    only_a = project(tmp_path, "services: {a: {image: busybox, command: ['true'], network_mode: none}}")
    said: list[str] = []
    compose.up(busybox_store, only_a, say=said.append)
    assert said[0].startswith("WARN Found orphan containers (shop-b-1)")
    compose.up(busybox_store, only_a, remove_orphans=True, say=said.append)
    assert names(busybox_store) == ["shop-a-1"]
    compose.down(busybox_store, only_a, say=lambda line: None)
    assert names(busybox_store) == []


def test_ctrl_c_stops_an_attached_up_gracefully_and_exits_0(busybox_store: Store, tmp_path: Path) -> None:
    """Compose's documented behaviour: Ctrl-C during ``up`` stops the containers (SIGTERM first) and exits 0;
    "Attaching to" comes before any log line, into a pipe too."""
    import signal

    directory = tmp_path / "idle"
    directory.mkdir()
    (directory / "compose.yaml").write_text(
        "services:\n  waits: {image: busybox, network_mode: none,\n"
        "          command: [sh, -c, 'trap \"exit 7\" TERM; echo ready; sleep 60 & wait']}\n")
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
    up = subprocess.Popen([sys.executable, "-m", "pycontainers", "compose", "up"], cwd=directory, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert up.stdout is not None
        while (line := up.stdout.readline()).startswith(" Container "):  # (its progress: Created, Started)
            pass
        assert line == "Attaching to idle-waits-1\n"
        assert up.stdout.readline() == "waits-1  | ready\n"
        up.send_signal(signal.SIGINT)
        out, err = up.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            up.kill()
    assert up.returncode == 0, err
    assert "Gracefully stopping... (press Ctrl+C again to force)" in err
    [c] = containers.list_containers(busybox_store)
    assert c.status == "exited" and c.state["exit_code"] == 7  # its trap ran: SIGTERM came first


@root_only
def test_the_cli_runs_a_project_attached_and_detached(busybox_store: Store, tmp_path: Path) -> None:
    directory = tmp_path / "hello"
    directory.mkdir()
    (directory / "compose.yaml").write_text(textwrap.dedent("""
        services:
          one: {image: busybox, command: [echo, from one], network_mode: none}
          two: {image: busybox, command: [sh, -c, "echo from two >&2; exit 3"], network_mode: none}
        """))

    def cli(*args: str) -> Any:
        env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
        return subprocess.run([sys.executable, "-m", "pycontainers", "compose", *args], cwd=directory, env=env,
                              capture_output=True, text=True, timeout=120)

    up = cli("up")
    assert up.returncode == 0, up.stderr
    assert "Attaching to hello-one-1, hello-two-1" in up.stdout
    assert "one-1  | from one\n" in up.stdout and "two-1  | from two\n" in up.stderr
    assert "hello-two-1 exited with code 3" in up.stdout
    ps = cli("ps", "-a")
    assert ps.stdout.splitlines()[0].split() == ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"]
    assert {line.split()[0] for line in ps.stdout.splitlines()[1:]} == {"hello-one-1", "hello-two-1"}
    assert [line.split()[0] for line in ps.stdout.splitlines()[1:]] == ["hello-one-1", "hello-two-1"]  # by name
    one = ps.stdout.splitlines()[1]
    assert '"echo from one"' in one and " ago " in one and "Exited (0)" in one
    ids = cli("ps", "-a", "-q").stdout.split()  # Compose's -q: the containers' full IDs
    assert len(ids) == 2 and all(re.fullmatch("[0-9a-f]{64}", i) for i in ids), ids
    assert cli("logs", "two").stderr == "two-1  | from two\n"
    assert cli("-p", "other", "ps", "-a").stdout.splitlines()[1:] == []  # another project: none of these
    bad = cli("-f", "missing.yaml", "up")
    assert bad.returncode != 0 and bad.stderr.startswith("Error: cannot read") and "Traceback" not in bad.stderr
    down = cli("down")
    assert down.returncode == 0 and " Container hello-one-1  Removed" in down.stdout
    wait_for(lambda: names(busybox_store) == [], "the containers to go")


def test_network_aliases_are_for_user_defined_networks(busybox_store: Store) -> None:
    from pycontainers.errors import InvalidArgument
    from pycontainers.image import get_image
    from pycontainers.spec import make_spec

    image = get_image(busybox_store, "busybox")
    for network in ("bridge", "none", "host"):
        with pytest.raises(InvalidArgument, match="only for containers on user-defined networks"):
            make_spec(image, "busybox", ["true"], network=network, network_aliases=["db"])
    with pytest.raises(InvalidArgument, match="network alias 'no way' is not a host name"):
        make_spec(image, "busybox", ["true"], network="shop", network_aliases=["no way"])
    assert make_spec(image, "busybox", ["true"], network="shop", network_aliases=["db", "db", "cache"]).aliases == [
        "db", "cache"]


@root_only
def test_add_host_lines_stay_in_etc_hosts_through_network_rewrites(busybox_store: Store, tmp_path: Path) -> None:
    from pycontainers.api import Client
    from pycontainers.errors import InvalidArgument

    client = Client(busybox_store.home)
    hosts = client.containers.run("busybox", ["cat", "/etc/hosts"], extra_hosts={"db": "10.1.2.3"}, remove=True)
    assert b"10.1.2.3\tdb\n" in hosts
    p = project(tmp_path, """
        services:
          a: {image: busybox, command: [sleep, "30"], extra_hosts: ["cache:10.9.9.9"]}
          b: {image: busybox, command: [sleep, "30"]}
        """)
    a, _ = compose.up(busybox_store, p, say=lambda line: None)  # b joined after a: a's file was rewritten
    text = (a.dir / "hosts").read_text()
    assert "10.9.9.9\tcache\n" in text and "\tshop-b-1 b " in text
    assert client.containers.get("shop-a-1").attrs["HostConfig"]["ExtraHosts"] == ["cache:10.9.9.9"]
    compose.down(busybox_store, p, say=lambda line: None)
    with pytest.raises(InvalidArgument, match="for --add-host: give NAME:IP-ADDRESS"):
        client.containers.create("busybox", ["true"], extra_hosts=["db:not-an-address"])


@root_only
def test_a_recreated_service_is_stopped_gently_and_keeps_its_anonymous_volumes(busybox_store: Store,
                                                                               tmp_path: Path) -> None:
    directory = tmp_path / "db"
    directory.mkdir()
    (directory / "out").mkdir()
    (directory / "app.env").write_text("FOO=1\n")
    text = """
        services:
          db:
            image: busybox
            command: [sh, -c, "trap 'echo stopped >> /out/log; exit 0' TERM; echo $$FOO >> /data/seen; ping -c1 db
              > /out/self; while :; do sleep 0.1; done"]
            env_file: app.env
            volumes: [/data, ./out:/out]
        """
    first = project(tmp_path, text, name="db")
    (db,) = compose.up(busybox_store, first, say=lambda line: None)
    ping = directory / "out" / "self"  # (written as ping goes: the shell makes it empty first)
    wait_for(lambda: ping.exists() and "packets received" in ping.read_text(), "the ping of its own name")
    assert "1 packets received" in ping.read_text()  # its service name is its own too
    (directory / "app.env").write_text("FOO=2\n")  # the file's content, not its name, is in the hash
    said: list[str] = []
    (again,) = compose.up(busybox_store, project(tmp_path, text, name="db"), say=said.append)
    assert " Container db-db-1  Recreated" in said and again.id != db.id
    assert (directory / "out" / "log").read_text() == "stopped\n"  # SIGTERM first: its trap ran
    (volume,) = [m.volume for m in again.spec.mounts if m.anonymous]
    assert volume == next(m.volume for m in db.spec.mounts if m.anonymous)  # the same anonymous volume
    data = busybox_store.home / "volumes" / str(volume) / "_data" / "seen"
    wait_for(lambda: data.read_text() == "1\n2\n", "the new container's line after the old one's")
    said.clear()
    compose.down(busybox_store, first, volumes=True, say=said.append)
    assert containers.volume_list(busybox_store) == []


@root_only
def test_down_leaves_orphans_and_their_network_with_a_warning(busybox_store: Store, tmp_path: Path) -> None:
    both = project(tmp_path, "services: {a: {image: busybox, command: [sleep, '30']},"
                             " b: {image: busybox, command: [sleep, '30']}}")
    compose.up(busybox_store, both, say=lambda line: None)
    only_a = project(tmp_path, "services: {a: {image: busybox, command: [sleep, '30']}}")
    said: list[str] = []
    compose.down(busybox_store, only_a, say=said.append)
    assert said[0].startswith("WARN Found orphan containers (shop-b-1)")
    assert said[-1] == " Network shop_default  Resource is still in use"
    assert names(busybox_store) == ["shop-b-1"]
    with pytest.raises(ComposeError, match="no such service: c"):
        compose.log_lines(busybox_store, only_a, ["c"])
    said.clear()
    compose.down(busybox_store, only_a, remove_orphans=True, say=said.append)
    assert names(busybox_store) == [] and said[-1] == " Network shop_default  Removed"


@root_only
def test_a_failed_build_names_its_service(busybox_store: Store, tmp_path: Path) -> None:
    (tmp_path / "shop" / "api").mkdir(parents=True)
    (tmp_path / "shop" / "api" / "Dockerfile").write_text("FROM busybox\nRUN echo about to fail; exit 3\n")
    p = project(tmp_path, "services: {api: {build: ./api, network_mode: none}}")
    said: list[str] = []
    with pytest.raises(ComposeError, match="service api: the build failed: .*returned a non-zero code: 3"):
        compose.up(busybox_store, p, say=said.append)
    assert any("about to fail" in line for line in said)  # the step's output was shown
    assert names(busybox_store) == []


def test_the_order_of_environment_keys_is_no_change(tmp_path: Path) -> None:
    one = project(tmp_path, "services: {s: {image: busybox, environment: {A: '1', B: '2'}}}")
    other = project(tmp_path, "services: {s: {image: busybox, environment: [B=2, A=1]}}")
    changed = project(tmp_path, "services: {s: {image: busybox, environment: [B=2, A=3]}}")
    digest = compose.config_hash(one.services["s"], "sha256:x")
    assert compose.config_hash(other.services["s"], "sha256:x") == digest
    assert compose.config_hash(changed.services["s"], "sha256:x") != digest


@root_only
def test_a_forced_rootless_or_proot_back_end_takes_the_no_network_path(busybox_store: Store, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_BACKEND", "proot")
    p = project(tmp_path, "services: {a: {image: busybox, command: [sh, -c, 'grep -w b /etc/hosts']},"
                          " b: {image: busybox, command: ['true']}}")
    said: list[str] = []
    a, _ = compose.up(busybox_store, p, say=said.append)
    assert said[0] == compose.NO_ROOT_SENTENCE and not any("Network" in line for line in said)
    assert containers.wait(a, 30) == 0
    assert b"".join(e.data for e in containers.log_entries(a)) == b"127.0.0.1\tb\n"
    compose.down(busybox_store, p, say=lambda line: None)
    assert names(busybox_store) == [] and list_networks(busybox_store) == []


def test_services_are_stopped_after_those_that_depend_on_them_and_the_others_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As Compose: web and worker depend on db; db and cache on nothing. web and worker stop together, then db
    and cache together: two stop timeouts in all, not four."""
    import threading
    import time
    from types import SimpleNamespace

    (tmp_path / "compose.yaml").write_text(textwrap.dedent("""\
        services:
          db: {image: busybox}
          cache: {image: busybox}
          web: {image: busybox, depends_on: [db]}
          worker: {image: busybox, depends_on: [db]}
        """))
    project = compose.load(tmp_path / "compose.yaml")
    running: set[str] = set()
    together: list[set[str]] = []
    lock = threading.Lock()

    def stop(c: Any, timeout: float) -> None:
        with lock:
            running.add(c.name)
        time.sleep(0.3)
        with lock:
            together.append(set(running))
            running.discard(c.name)

    monkeypatch.setattr(containers, "stop", stop)
    mine = [SimpleNamespace(name=n, status="running", state={"labels": {compose.SERVICE_LABEL: n}})
            for n in ("db", "cache", "web", "worker")]
    said: list[str] = []
    compose.stop_in_order(project, mine, say=said.append)
    assert {"web", "worker"} in together and {"db", "cache"} in together  # each pair at once
    assert not any({"web", "db"} <= seen or {"worker", "db"} <= seen for seen in together)  # db after them
    assert [line.split()[1] for line in said][:2] in (["worker", "web"], ["web", "worker"])



def test_a_build_that_fails_leaves_no_network_or_volume(busybox_store: Store, tmp_path: Path) -> None:
    (tmp_path / "shop" / "api").mkdir(parents=True)
    (tmp_path / "shop" / "api" / "Dockerfile").write_text("FROM busybox\nRUN exit 3\n")
    p = project(tmp_path, """
        services:
          api: {build: ./api, volumes: ["data:/data"]}
        volumes:
          data: {}
        """)
    with pytest.raises(PyContainersError):
        compose.up(busybox_store, p, say=lambda line: None)
    assert "shop_default" not in [n.name for n in list_networks(busybox_store)]
    assert "shop_data" not in containers.volume_list(busybox_store) and names(busybox_store) == []


def test_stop_start_restart_kill_and_exec_of_a_project(busybox_store: Store, tmp_path: Path) -> None:
    """``compose stop``, ``start``, ``restart``, ``kill`` and ``exec``: the project's containers, kept,
    dependents stopped first and dependencies started first; a service without a container is one error."""
    loop = "trap 'exit 0' TERM; while :; do sleep 0.05; done"
    directory = tmp_path / "life"
    directory.mkdir()
    (directory / "compose.yaml").write_text(textwrap.dedent(f"""
        services:
          db: {{image: busybox, command: [sh, -c, "{loop}"], network_mode: none}}
          web: {{image: busybox, command: [sh, -c, "{loop}"], network_mode: none, depends_on: [db]}}
        """))

    def cli(*args: str) -> Any:
        env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
        return subprocess.run([sys.executable, "-m", "pycontainers", "compose", *args], cwd=directory, env=env,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    def status() -> dict[str, str]:
        return {c.name: c.status for c in containers.list_containers(busybox_store, all=True)}

    assert cli("up", "-d").returncode == 0
    stopped = cli("stop")
    assert stopped.stdout.splitlines() == [" Container life-web-1  Stopped", " Container life-db-1  Stopped"]
    assert status() == {"life-web-1": "exited", "life-db-1": "exited"}
    started = cli("start")
    assert [line for line in started.stdout.splitlines() if line.endswith("Started")] == [
        " Container life-db-1  Started", " Container life-web-1  Started"]
    first = containers.get_container(busybox_store, "life-web-1").state["started_at"]
    assert cli("restart", "web").returncode == 0
    assert containers.get_container(busybox_store, "life-web-1").state["started_at"] != first
    done = cli("exec", "web", "sh", "-c", "echo here; exit 3")
    assert (done.returncode, done.stdout) == (3, "here\n")
    assert cli("kill", "-s", "TERM", "db").stdout == " Container life-db-1  Killed\n"
    wait_for(lambda: status()["life-db-1"] == "exited", "db to end on SIGTERM")
    refused = cli("exec", "db", "true")
    assert refused.returncode == 1 and "service 'db' is not running" in refused.stderr
    assert "no such service: nope" in cli("start", "nope").stderr
    assert cli("down").returncode == 0
    gone = cli("start", "web")
    assert gone.returncode == 1 and "has no container: run `compose up` first" in gone.stderr
