"""What the two Docker lectures show, typed with ``pycontainers`` in place of ``docker``: one test per topic.

The lectures' own images (ubuntu, alpine) are not in the offline store, so busybox stands in for them; the
commands, flags, messages, columns and exit codes are the lectures' (and the variants a student tries next).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Run = Callable[..., tuple[int, str, str]]

DOCKERFILE_CMD = """\
FROM busybox
RUN printf W && sleep 0.2 && printf ': Failed to fetch\\n'
ENTRYPOINT ["/bin/echo", "Hello"]
CMD ["world"]
"""


def test_checking_the_version(cli: Run) -> None:
    """"Check what version of Docker": docker --version, docker -v and docker version."""
    for flag in ("--version", "-v", "version"):
        code, out, _ = cli(flag)
        assert code == 0 and out.startswith("pycontainers version ")


def test_entrypoint_and_cmd_build_run_cache_and_history(cli: Run, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """docker build -t hello_world_cmd:first -f Dockerfile_cmd ., "Hello world", "Hello Pavlos", a rebuild all
    "Using cache", and docker image history; -f is read from the current directory, as Docker's CLI reads it."""
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile_cmd").write_text(DOCKERFILE_CMD)
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("build", "-t", "hello_world_cmd:first", "-f", "ctx/Dockerfile_cmd", "ctx")
    assert code == 0 and "Step 1/4 : FROM busybox\n" in out and "Successfully tagged hello_world_cmd:first\n" in out
    assert "\nW: Failed to fetch\nRemoving intermediate container " in out  # RUN output as it came, mid-line too
    monkeypatch.chdir(context)
    code, out, _ = cli("build", "-t", "hello_world_cmd:first", "-f", "Dockerfile_cmd", ".")
    assert code == 0 and out.count(" ---> Using cache\n") == 3
    assert cli("run", "--name", "world", "hello_world_cmd:first")[0] == 0
    assert cli("run", "--name", "pavlos", "hello_world_cmd:first", "Pavlos")[0] == 0
    assert cli("logs", "world")[1] == "Hello world\n" and cli("logs", "pavlos")[1] == "Hello Pavlos\n"
    code, out, _ = cli("image", "history", "hello_world_cmd:first")
    header, cmd, entrypoint, run, *_ = out.splitlines()
    assert header.split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert '/bin/sh -c #(nop)  CMD ["world"]' in cmd and "ENTRYPOINT" in entrypoint and "printf W" in run
    assert cli("container", "rm", "world", "pavlos")[1] == "world\npavlos\n"


def test_listing_containers_and_images(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """docker ps -a / -q, docker container ls (list, ps), docker images -q, --format templates and json; plain
    columns on a terminal too, as Docker's."""
    assert cli("run", "--name", "done", "busybox", "true")[0] == 0
    assert cli("container", "create", "--name", "made", "busybox", "true")[0] == 0
    assert cli("ps")[1].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    ids = cli("ps", "-aq")[1].split()
    assert len(ids) == 2 and all(cli("container", alias, "-aq")[1].split() == ids for alias in ("ls", "list", "ps"))
    code, out, _ = cli("ps", "-a", "--format", "table {{.Names}}\t{{.RunningFor}}")
    assert code == 0 and out.splitlines()[0].split() == ["NAMES", "CREATED"]
    rows = [json.loads(line) for line in cli("ps", "-a", "--format", "json")[1].splitlines()]
    assert sorted(r["Names"] for r in rows) == ["done", "made"] and all("CreatedAt" in r for r in rows)
    assert cli("images", "--format", "json")[1].startswith('{"Repository":"busybox"')
    assert len(cli("images", "-q")[1].split()) == 1
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli("images")[1].splitlines()[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert cli("container", "remove", "done", "made")[0] == 0


def test_clearing_everything_with_system_prune(cli: Run) -> None:
    """"Exit from all containers and let us clear all images": docker system prune -af, in Docker's sections."""
    assert cli("tag", "busybox", "mine:1")[0] == 0
    assert cli("run", "--name", "done", "busybox", "true")[0] == 0
    code, out, _ = cli("system", "prune", "-af")
    assert code == 0 and out.startswith("Deleted Containers:\n")
    images = out.partition("Deleted Images:\n")[2].partition("\n\n")[0].splitlines()
    assert "untagged: mine:1" in images and images[-1].startswith("deleted: sha256:")
    assert out.endswith("\n\n" + out.splitlines()[-1] + "\n") and out.splitlines()[-1].startswith("Total reclaimed")
    assert cli("images", "-q") == (0, "", "") and cli("ps", "-aq") == (0, "", "")


def test_what_needs_a_daemon_or_docker_hub_says_so(cli: Run) -> None:
    """docker login, search, attach, run --restart always and run registry:2: one sentence each, no traceback."""
    for args, code in ((["login", "localhost:5000"], 1), (["search", "ubuntu"], 1), (["attach", "web"], 1),
                       (["run", "--restart", "always", "busybox", "true"], 125),
                       (["run", "-d", "-p", "5000:5000", "registry:2"], 125)):
        got, out, err = cli(*args)
        said = err.removeprefix("Unable to find image 'registry:2' locally\n")  # (Docker's first line, then why not)
        assert (got, out, said.count("\n")) == (code, "", 1), args
    assert "pycontainers registry serve" in cli("run", "-d", "-p", "5000:5000", "registry:2")[2]
    assert "needs a daemon" in cli("run", "--restart", "always", "busybox", "true")[2]
    assert cli("run", "--rm", "--restart", "no", "busybox", "true")[0] == 0
