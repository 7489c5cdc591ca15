"""pycontainers.spec: what a container will run, by Docker's rules (no root, no processes)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pycontainers.errors import InvalidArgument
from pycontainers.spec import (
    DEFAULT_PATH,
    ContainerSpec,
    Mount,
    NoCommand,
    combine_command,
    make_spec,
    merge_env,
    new_container_id,
    parse_env,
    parse_volume,
)

CID = "0123456789ab" + "c" * 52


def image(**settings: Any) -> Any:
    """Just what make_spec reads of an image: its ID and its config's settings."""
    return SimpleNamespace(id="sha256:" + "f" * 64, settings=settings)


def spec(command: list[str] | None = None, settings: dict[str, Any] | None = None, **options: Any) -> ContainerSpec:
    return make_spec(image(**(settings or {"Cmd": ["sh"]})), "img", command, volumes_dir="/volumes",
                     container_id=CID, **options)


# ------------------------------------------------------------------------------------ ENTRYPOINT and CMD


@pytest.mark.parametrize(("entrypoint", "cmd", "command", "flag", "expected"), [
    (None, ["sh"], None, None, ["sh"]),
    (None, ["sh"], ["echo", "hi"], None, ["echo", "hi"]),
    (["/bin/echo", "Hello"], ["world"], None, None, ["/bin/echo", "Hello", "world"]),
    (["/bin/echo", "Hello"], ["world"], ["Pavlos"], None, ["/bin/echo", "Hello", "Pavlos"]),
    (["/bin/echo", "Hello"], None, None, None, ["/bin/echo", "Hello"]),
    (["/bin/echo", "Hello"], ["world"], None, "/bin/cat", ["/bin/cat"]),
    (["/bin/echo", "Hello"], ["world"], ["x"], "/bin/cat", ["/bin/cat", "x"]),
    (["/bin/echo", "Hello"], ["world"], ["ls", "/"], "", ["ls", "/"]),
], ids=["cmd", "args-replace-cmd", "entrypoint+cmd", "args-replace-cmd-only", "entrypoint-only",
        "entrypoint-flag-drops-cmd", "entrypoint-flag+args", "empty-entrypoint-flag"])
def test_combine_command(entrypoint: list[str] | None, cmd: list[str] | None, command: list[str] | None,
                         flag: str | None, expected: list[str]) -> None:
    assert combine_command(entrypoint, cmd, command, flag) == expected


@pytest.mark.parametrize(("entrypoint", "cmd", "flag"), [(None, None, None), (["/e"], ["c"], "")])
def test_nothing_to_run(entrypoint: list[str] | None, cmd: list[str] | None, flag: str | None) -> None:
    with pytest.raises(NoCommand, match="no command specified"):
        combine_command(entrypoint, cmd, None, flag)


# ------------------------------------------------------------------------------------------ environment


def test_parse_env_values_from_flags_and_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_CALLER", "yes")
    monkeypatch.delenv("UNSET_EVERYWHERE", raising=False)
    assert parse_env(["A=1", "B=x=y", "EMPTY=", "FROM_CALLER", "UNSET_EVERYWHERE"]) == [
        "A=1", "B=x=y", "EMPTY=", "FROM_CALLER=yes"]


def test_env_file_comes_before_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_CALLER", "caller")
    path = tmp_path / "env"
    path.write_text("# comment\n\nX=file\nFROM_CALLER\n  Y=indented\n")
    assert parse_env(["X=flag"], [str(path)]) == ["X=file", "FROM_CALLER=caller", "Y=indented", "X=flag"]


@pytest.mark.parametrize("item", ["=value", "A B=1"])
def test_bad_variable_names(item: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_env([item])


def test_missing_env_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="--env-file"):
        parse_env([], [str(tmp_path / "absent")])


def test_merge_env_flags_override_image_and_path_is_set() -> None:
    assert merge_env(["A=image", "B=image"], ["A=flag"]) == ["A=flag", "B=image", f"PATH={DEFAULT_PATH}"]
    assert merge_env(["PATH=/only"], []) == ["PATH=/only"]


# ---------------------------------------------------------------------------------------------- volumes


def test_bind_volume(tmp_path: Path) -> None:
    assert parse_volume(f"{tmp_path}:/data", "/v") == Mount(str(tmp_path), "/data", False)
    assert parse_volume(f"{tmp_path}:/data/:ro", "/v") == Mount(str(tmp_path), "/data", True)


def test_named_volume() -> None:
    assert parse_volume("cache:/root/.cache:rw", "/v") == Mount("/v/cache/_data", "/root/.cache", False, "cache")


@pytest.mark.parametrize("text", ["only", ":/data", "name:", "name:relative", "name:/a:/b:ro", "name:/data:rx",
                                  "name:/../etc", "bad/name:/data", "-name:/data"])
def test_invalid_volume_specifications(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_volume(text, "/v")


# ------------------------------------------------------------------------------------------------ specs


def test_defaults_come_from_the_image() -> None:
    s = spec(settings={"Cmd": ["run"], "Env": ["A=1"], "WorkingDir": "/app", "User": "nobody",
                       "StopSignal": "SIGINT"})
    assert s.args == ["run"]
    assert s.env == ["A=1", f"PATH={DEFAULT_PATH}"]
    assert (s.workdir, s.user, s.stop_signal) == ("/app", "nobody", "SIGINT")
    assert s.hostname == CID[:12]
    assert (s.network, s.read_only, s.memory, s.pids_limit, s.cpus) == ("none", False, None, None, None)


def test_flags_override_the_image() -> None:
    s = spec(["true"], settings={"Cmd": ["run"], "WorkingDir": "/app", "User": "nobody"}, workdir="/w",
             user="0:0", hostname="h", memory="64m", pids_limit=10, cpus=0.5, read_only=True, network="host")
    assert (s.args, s.workdir, s.user, s.hostname) == (["true"], "/w", "0:0", "h")
    assert (s.memory, s.pids_limit, s.cpus, s.read_only, s.network) == (64 << 20, 10, 0.5, True, "host")


@pytest.mark.parametrize("options", [
    {"workdir": "relative"}, {"network": "no such/net"}, {"memory": "5m"}, {"cpus": 0.001},
    {"cpus": float((os.cpu_count() or 1) + 1)}, {"volumes": ["x"]},
], ids=["relative-workdir", "unknown-network", "memory-below-6m", "cpus-below-1ms", "more-cpus-than-machine",
        "volume"])
def test_invalid_options(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        spec(**options)


def test_spec_survives_json(tmp_path: Path) -> None:
    s = spec(["true"], volumes=[f"{tmp_path}:/data:ro", "named:/n"], environment=["A=1"], memory=7 << 20)
    assert ContainerSpec.from_json(s.to_json()) == s


def test_container_ids_are_64_hex_and_unique() -> None:
    ids = {new_container_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize("value", [-1, 0])
def test_pids_limit_minus_one_means_unlimited(value: int) -> None:
    assert spec(pids_limit=value).pids_limit is None


def test_host_network_uses_the_hosts_hostname() -> None:
    assert spec(network="host").hostname == socket.gethostname()
