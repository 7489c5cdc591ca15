"""Health checks (pycontainers/health.py): HEALTHCHECK and run's --health-* flags, run by each container's
monitor as dockerd runs them; State.Health as Docker's inspect shows it; ps; compose's depends_on conditions."""

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

from pycontainers import compose, runtime
from pycontainers import container as containers
from pycontainers.compose import ComposeError
from pycontainers.errors import InvalidArgument, PyContainersError
from pycontainers.spec import healthcheck_from_flags
from pycontainers.store import Store
from pycontainers.units import go_duration, parse_duration

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the native runtime needs root")
MS = 10**6


@pytest.fixture(autouse=True)
def _nothing_left_running(request: pytest.FixtureRequest) -> Iterator[None]:
    store = request.getfixturevalue("busybox_store") if "busybox_store" in request.fixturenames else None
    yield
    if store is not None:
        for c in containers.list_containers(store, all=True):
            with contextlib.suppress(PyContainersError):
                containers.remove(c, force=True, volumes=True)


def started(store: Store, command: list[str] | None = None, image: str = "busybox", **options: Any) -> Any:
    """A container started in the background (from this single-threaded process: a cold monitor)."""
    c = containers.create_from_image(store, image, command or ["sleep", "30"], **options)
    first = runtime.start_detached(c)
    assert first["event"] == "started", first
    return c


def health(c: Any) -> dict[str, Any]:
    return c.reload().state.get("health") or {}


def status_becomes(c: Any, status: str) -> dict[str, Any]:
    return wait_for(lambda: (h := health(c)).get("Status") == status and h, f"{c.name} to be {status}")


def check(test: str, interval: str = "100ms", **flags: Any) -> dict[str, Any] | None:
    return healthcheck_from_flags(test, interval, **flags)


def health_processes(c: Any) -> list[int]:
    """The container's health process: the child of its monitor named pyc-health."""
    monitor = c.state["monitor_pid"]
    return [pid for pid in containers.child_pids(monitor)
            if Path(f"/proc/{pid}/comm").read_text().strip() == "pyc-health"]


# -------------------------------------------------------------------------------------------- settings


def test_flags_become_dockers_health_config_with_its_messages() -> None:
    assert healthcheck_from_flags("curl -f localhost", "1m30s", "5s", 4, "10s", "500ms") == {
        "Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 90 * 10**9, "Timeout": 5 * 10**9, "Retries": 4,
        "StartPeriod": 10 * 10**9, "StartInterval": 500 * MS}
    assert healthcheck_from_flags() is None and healthcheck_from_flags(disable=True) == {"Test": ["NONE"]}
    with pytest.raises(InvalidArgument, match="--no-healthcheck conflicts with --health-\\* options"):
        healthcheck_from_flags("true", disable=True)
    with pytest.raises(InvalidArgument, match="--health-interval cannot be negative"):
        healthcheck_from_flags(interval="-1s")
    with pytest.raises(InvalidArgument, match='invalid argument "5 sec" for "--health-timeout" flag'):
        healthcheck_from_flags(timeout="5 sec")
    assert [go_duration(parse_duration(t)) for t in ("100ms", "90s", "1h", "1.5s")] == ["100ms", "1m30s", "1h0m0s",
                                                                                        "1.5s"]


# ------------------------------------------------------------------------------------------ the checks


def test_a_passing_check_makes_it_healthy_as_inspect_and_ps_show(busybox_store: Store) -> None:
    from pycontainers.api import container_inspect

    c = started(busybox_store, healthcheck=check("echo ok from $HOSTNAME"))
    assert c.reload().state["health"]["Status"] in ("starting", "healthy")  # starting from the running state on
    h = status_becomes(c, "healthy")
    assert h["FailingStreak"] == 0
    last = h["Log"][-1]
    assert set(last) == {"Start", "End", "ExitCode", "Output"} and last["ExitCode"] == 0
    assert last["Output"] == f"ok from {c.short_id}\n" and last["Start"] <= last["End"]  # it ran in the container
    state = container_inspect(c)["State"]
    assert set(state["Health"]) == {"Status", "FailingStreak", "Log"} and state["Health"]["Status"] == "healthy"
    assert container_inspect(c)["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "echo ok from $HOSTNAME"],
                                                             "Interval": 100 * MS}
    assert c.status_text().startswith("Up ") and c.status_text().endswith(" (healthy)")
    assert containers.filter_containers([c], {"health": ["healthy"]}) == [c]
    assert containers.filter_containers([c], {"health": ["none", "starting"]}) == []
    wait_for(lambda: len(health(c)["Log"]) == 5, "five results")
    wait_for(lambda: health(c)["Log"][0] != h["Log"][0], "the oldest result to go")
    assert len(health(c)["Log"]) == 5  # the last five only

    # The health process is on the host's side of the PID namespace (not in the container's ps), and goes
    # with the container; the container's end makes it unhealthy, as Docker's.
    [checker] = health_processes(c)
    assert os.readlink(f"/proc/{checker}/ns/pid") == os.readlink("/proc/self/ns/pid")
    checker_start = containers.process_start_time(checker)
    containers.stop(c, timeout=1)
    assert not containers.pid_alive(checker, checker_start)
    assert health(c)["Status"] == "unhealthy" and c.status_text().startswith("Exited")


def test_failures_in_a_row_make_it_unhealthy_and_output_is_cut_as_dockers(busybox_store: Store) -> None:
    c = started(busybox_store, healthcheck=check("head -c 5000 /dev/zero | tr '\\0' x; exit 1", retries=2))
    h = status_becomes(c, "unhealthy")
    assert h["FailingStreak"] >= 2 and all(r["ExitCode"] == 1 for r in h["Log"])
    assert h["Log"][0]["Output"] == "x" * 4096 + "..."
    assert c.status_text().endswith(" (unhealthy)")
    assert containers.filter_containers([c], {"health": ["unhealthy"]}) == [c]
    with pytest.raises(InvalidArgument, match="Unrecognised filter value for health: sick"):
        containers.filter_containers([c], {"health": ["sick"]})


def test_a_reserved_exit_code_is_a_failure_and_a_missing_command_says_why(busybox_store: Store) -> None:
    c = started(busybox_store, healthcheck={"test": ["CMD", "sh", "-c", "exit 2"], "interval": 100 * MS,
                                            "retries": 1})
    assert status_becomes(c, "unhealthy")["Log"][0]["ExitCode"] == 2
    missing = started(busybox_store, healthcheck={"test": ["CMD", "no-such-check"], "interval": 100 * MS,
                                                  "retries": 1})
    result = status_becomes(missing, "unhealthy")["Log"][0]
    assert result["ExitCode"] == -1 and "no-such-check" in result["Output"]


def test_a_check_past_its_timeout_is_killed_and_fails(busybox_store: Store) -> None:
    c = started(busybox_store, healthcheck=check("echo started; exec sleep 60", timeout="1s", retries=1))
    h = status_becomes(c, "unhealthy")
    assert h["Log"][0]["ExitCode"] == -1
    assert h["Log"][0]["Output"] == "Health check exceeded timeout (1s): started\n"
    # Killed, and reaped by its runner (not left to the container's PID 1, a sleep that reaps nothing): at most
    # the check in flight now runs in the container, and no zombie stays.
    pids = containers.processes(c)
    assert sum(b"sleep\x0060" in Path(f"/proc/{pid}/cmdline").read_bytes() for pid in pids) <= 1
    assert [pid for pid in pids if Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"] == []


def test_failures_in_the_start_period_do_not_count(busybox_store: Store) -> None:
    c = started(busybox_store, healthcheck=check("test -e /ready", retries=1, start_period="60s",
                                                 start_interval="100ms"))
    h = wait_for(lambda: len(health(c).get("Log", [])) >= 2 and health(c), "two checks in the start period")
    assert h["Status"] == "starting" and h["FailingStreak"] == 0 and h["Log"][0]["ExitCode"] == 1
    assert c.status_text().endswith(" (health: starting)")
    assert containers.filter_containers([c], {"health": ["starting"]}) == [c]
    assert runtime.capture(lambda stdio: runtime.exec_start(c, ["touch", "/ready"], stdio))[0] == 0
    assert status_becomes(c, "healthy")["FailingStreak"] == 0


def test_the_images_healthcheck_is_the_default_and_flags_override_it(busybox_store: Store, tmp_path: Path) -> None:
    from pycontainers.build import build

    (tmp_path / "Dockerfile").write_text('FROM busybox\n'
                                         'HEALTHCHECK --interval=100ms --start-interval=50ms --retries=4 '
                                         'CMD ["sh", "-c", "echo image"]\n')
    build(busybox_store, tmp_path, tags=["checked"])
    image_check = {"Test": ["CMD", "sh", "-c", "echo image"], "Interval": 100 * MS, "StartInterval": 50 * MS,
                   "Retries": 4}
    c = started(busybox_store, image="checked")
    assert c.spec.healthcheck == image_check
    assert status_becomes(c, "healthy")["Log"][-1]["Output"] == "image\n"

    # Field by field: --health-retries replaces the image's retries only.
    more = containers.create_from_image(busybox_store, "checked", ["true"], healthcheck=healthcheck_from_flags(
        retries=9))
    assert more.spec.healthcheck == {**image_check, "Retries": 9}

    # --no-healthcheck: no check, no health, nothing in ps; no health process is forked.
    off = started(busybox_store, image="checked", healthcheck=healthcheck_from_flags(disable=True))
    assert off.spec.healthcheck["Test"] == ["NONE"]
    assert "health" not in off.reload().state and health_processes(off) == []
    assert not off.status_text().endswith(")")
    assert containers.filter_containers([off, c], {"health": ["none"]}) == [off]


def test_no_process_is_left_after_rm_f(busybox_store: Store) -> None:
    c = started(busybox_store, healthcheck=check("sleep 40", interval="50ms", timeout="30s"))
    wait_for(lambda: any(p["CMD"] == "sleep 40" for p in containers.top(c)), "a check running")
    ours = [(pid, containers.process_start_time(pid)) for pid in [*health_processes(c), *containers.processes(c)]]
    assert len(ours) >= 3  # the health process, the container's PID 1, the check (its runner is in neither)
    containers.remove(c, force=True)  # (it returns once the exit is recorded: after the health process ended)
    assert [pid for pid, start in ours if containers.pid_alive(pid, start)] == []


def test_docker_pys_healthcheck_dict_through_a_warm_monitor(busybox_store: Store) -> None:
    from pycontainers import api

    client = api.Client(busybox_store.home)
    c = client.containers.run("busybox", ["sleep", "30"], detach=True, healthcheck={
        "test": "exit 0", "interval": 100 * MS, "timeout": 1000 * MS, "retries": 2, "start_period": 0})
    assert c.attrs["RuntimeBackend"] == "native"  # (network none, no limits: a warm monitor's, as the API starts)
    wait_for(lambda: c.reload() or c.attrs["State"]["Health"]["Status"] == "healthy", "healthy")
    assert c.attrs["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "exit 0"], "Interval": 100 * MS,
                                                "Timeout": 1000 * MS, "Retries": 2}
    with pytest.raises(InvalidArgument, match="unknown key 'every'"):
        client.containers.run("busybox", detach=True, healthcheck={"every": 5})
    c.remove(force=True)


def test_the_cli_flags_and_ps(busybox_store: Store) -> None:
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pycontainers", *args], env=env, capture_output=True,
                              text=True, timeout=60)

    run = cli("run", "-d", "--name", "web", "--health-cmd", "true", "--health-interval", "100ms", "busybox",
              "sleep", "30")
    assert run.returncode == 0, run.stderr
    wait_for(lambda: "(healthy)" in cli("ps").stdout, "ps to show it healthy")
    assert cli("ps", "--filter", "health=healthy", "--format", "{{.Names}}").stdout.split() == ["web"]
    assert cli("ps", "--filter", "health=unhealthy", "-q").stdout == ""
    bad = cli("run", "--no-healthcheck", "--health-retries", "3", "busybox", "true")
    assert bad.returncode == 125 and "--no-healthcheck conflicts with --health-* options" in bad.stderr
    assert "Traceback" not in bad.stderr


def running_check(c: Any, command: str) -> list[int]:
    return [p for p in containers.processes(c) if Path(f"/proc/{p}/cmdline").read_bytes() == command.encode()]


def warm_started(client: Any, command: list[str], **options: Any) -> Any:
    """A container started by a warm monitor (a subreaper): the API's first container starts cold, and fills
    the zygote's pool."""
    client.containers.run("busybox", ["true"], remove=True)
    api = client.containers.run("busybox", command, detach=True, **options)
    c = containers.get_container(client.store, api.id)
    assert c.state["cgroup"].startswith("warm-"), c.state
    return c


def test_a_warm_monitor_reaps_a_check_whose_health_process_was_killed(client: Any) -> None:
    """A warm monitor is a subreaper: a check orphaned by its runner's death becomes its child. The check dies
    with its runner; unreaped, its zombie would keep PID 1's exit waiting (zap_pid_ns_processes) while the
    monitor waits for PID 1: a container nobody can stop."""
    import signal
    import time

    c = warm_started(client, ["sleep", "1000"], healthcheck={
        "test": "sleep 30", "interval": 200 * MS, "timeout": 60_000 * MS})
    wait_for(lambda: running_check(c, "sleep\x0030\x00"), "a check running")
    [checker] = health_processes(c)
    os.kill(checker, signal.SIGKILL)
    wait_for(lambda: not running_check(c, "sleep\x0030\x00"), "the check to die with its runner")
    began = time.monotonic()
    containers.stop(c, timeout=1)
    assert time.monotonic() - began < 5 and c.reload().status == "exited"


def test_a_pause_during_a_check_cancels_it_and_leaves_the_monitor_able_to_stop(client: Any) -> None:
    """A check whose time is up while its container is paused is cancelled, as Docker's: nothing recorded, no
    failure counted. It is frozen: its runner is not killed (which would orphan it), it ends once thawed."""
    import time

    c = warm_started(client, ["sleep", "1000"], healthcheck={
        "test": "sleep 1", "interval": 100 * MS, "timeout": 3000 * MS, "retries": 1})
    wait_for(lambda: running_check(c, "sleep\x001\x00"), "a check running")
    containers.pause(c)
    time.sleep(4)  # past the check's timeout
    assert c.status_text().endswith("(Paused)")
    containers.unpause(c)
    wait_for(lambda: len(health(c).get("Log") or []) >= 2, "two checks after the pause")
    h = health(c)
    assert [r["ExitCode"] for r in h["Log"]] == [0] * len(h["Log"]) and h["Status"] == "healthy", h
    began = time.monotonic()
    containers.stop(c, timeout=1)
    assert time.monotonic() - began < 5 and c.reload().status == "exited"


def test_the_start_interval_is_used_in_a_start_period_shorter_than_the_interval(busybox_store: Store) -> None:
    from pycontainers.health import next_wait

    config = {"Interval": 30 * 10**9, "StartPeriod": 5 * 10**9, "StartInterval": 500 * MS}
    assert next_wait(config, 100.0, "starting", 100.0) == 0.5  # (was 5: the period's end)
    assert next_wait(config, 100.0, "starting", 104.75) == pytest.approx(0.25)  # never past the period's end
    assert next_wait(config, 100.0, "healthy", 101.0) == 4  # the interval, capped by the period's end
    assert next_wait(config, 100.0, "starting", 105.0) == 30
    c = started(busybox_store, healthcheck=healthcheck_from_flags("true", start_period="5s", start_interval="200ms"))
    wait_for(lambda: health(c).get("Status") == "healthy", "healthy at the start interval", timeout=3)


def test_a_check_killed_by_its_containers_end_records_nothing(busybox_store: Store) -> None:
    c = started(busybox_store, ["sleep", "1"], healthcheck=check("sleep 5", interval="200ms"))
    wait_for(lambda: c.reload().status == "exited", "the container to end")
    h = health(c)
    assert h["Status"] == "unhealthy" and h["FailingStreak"] == 0 and h["Log"] == [], h  # (was [137])


def test_a_command_that_cannot_start_leaves_it_unhealthy(busybox_store: Store, client: Any) -> None:
    from pycontainers.errors import PyContainersError

    c = containers.create_from_image(busybox_store, "busybox", ["/nonexistent"], healthcheck=check("true"))
    assert runtime.start_detached(c)["event"] == "error"  # (a cold monitor)
    # never ran: "created" as Docker keeps a failed first start, and its health says it failed
    assert c.reload().status == "created" and health(c)["Status"] == "unhealthy"
    with pytest.raises(PyContainersError):  # a warm monitor's
        client.containers.run("busybox", ["/nonexistent"], detach=True, name="warm-fail",
                              healthcheck={"test": "true", "interval": 100 * MS})
    warm = containers.get_container(busybox_store, "warm-fail")
    assert warm.status == "created" and health(warm)["Status"] == "unhealthy"


# ------------------------------------------------------------------------------------------------ compose


def project(tmp_path: Path, text: str, name: str = "shop") -> compose.Project:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    (directory / "compose.yaml").write_text(textwrap.dedent(text))
    return compose.load(directory, environ={})


def test_compose_reads_healthcheck_and_depends_on_conditions(tmp_path: Path) -> None:
    p = project(tmp_path, """
        services:
          db:
            image: busybox
            healthcheck: {test: [CMD, pg_isready], interval: 1m30s, timeout: 5s, retries: 4, start_period: 2s}
          web:
            image: busybox
            depends_on: {db: {condition: service_healthy}, init: {condition: service_completed_successfully}}
            healthcheck: {disable: true}
          init: {image: busybox, healthcheck: {test: "true"}}
        """)
    assert p.services["db"].options["healthcheck"] == {"Test": ["CMD", "pg_isready"], "Interval": 90 * 10**9,
                                                       "Timeout": 5 * 10**9, "Retries": 4, "StartPeriod": 2 * 10**9}
    assert p.services["web"].options["healthcheck"] == {"Test": ["NONE"]}
    assert p.services["init"].options["healthcheck"] == {"Test": ["CMD-SHELL", "true"]}
    assert p.services["web"].conditions == {"db": "service_healthy", "init": "service_completed_successfully"}
    assert list(p.services) == ["db", "init", "web"]
    for bad, message in [
        ("{test: 'true', interval: soon}", "interval: 'soon' is not a duration"),
        ("{test: true}", "test: give a command line or a list of strings, not True"),
        ("{test: [curl, x]}", "a list starts with CMD, CMD-SHELL or NONE"),
        ("{test: 'true', disable: true}", "test and disable cannot both be set"),
        ("{test: 'true', retries: -1}", "retries: give a whole number"),
        ("{test: 'true', every: 5s}", "'every' is not supported"),
        ("{test: 'true', interval: 1us}", "Interval in Healthcheck cannot be less than 1ms"),
    ]:
        with pytest.raises(ComposeError, match="compose.yaml: service 's': healthcheck: .*" + re.escape(message)):
            project(tmp_path, f"services: {{s: {{image: busybox, healthcheck: {bad}}}}}")
    with pytest.raises(ComposeError, match="depends_on: 'db': give a mapping with a condition"):
        project(tmp_path, "services: {db: {image: busybox}, s: {image: busybox, depends_on: {db: {required: false}}}}")


def test_up_waits_for_a_healthy_dependency_before_its_dependents(busybox_store: Store, tmp_path: Path) -> None:
    p = project(tmp_path, """
        services:
          web:
            image: busybox
            command: [sleep, "30"]
            network_mode: none
            depends_on: {db: {condition: service_healthy}}
          db:
            image: busybox
            command: [sh, -c, "sleep 0.3; touch /ready; exec sleep 30"]
            network_mode: none
            healthcheck: {test: test -e /ready, interval: 100ms, retries: 30}
        """)
    said: list[str] = []
    db, web = compose.up(busybox_store, p, say=said.append)
    assert said == [" Container shop-db-1  Created", " Container shop-db-1  Started",
                    " Container shop-db-1  Waiting", " Container shop-db-1  Healthy",
                    " Container shop-web-1  Created", " Container shop-web-1  Started"]
    assert db.reload().state["health"]["Status"] == "healthy" and web.reload().status == "running"


def test_up_stops_at_a_dependency_that_fails(busybox_store: Store, tmp_path: Path) -> None:
    p = project(tmp_path, """
        services:
          web: {image: busybox, network_mode: none, depends_on: {db: {condition: service_healthy}}}
          db:
            image: busybox
            command: [sleep, "30"]
            network_mode: none
            healthcheck: {test: exit 1, interval: 100ms, retries: 2}
        """)
    said: list[str] = []
    with pytest.raises(ComposeError, match="^dependency failed to start: container shop-db-1 is unhealthy$"):
        compose.up(busybox_store, p, say=said.append)
    assert not any("shop-web-1" in line for line in said)
    p = project(tmp_path, """
        services:
          web: {image: busybox, network_mode: none, depends_on: {migrate: {condition: service_completed_successfully}}}
          migrate: {image: busybox, command: [sh, -c, "exit 3"], network_mode: none}
        """, name="jobs")
    with pytest.raises(ComposeError, match="^service \"migrate\" didn't complete successfully: exit 3$"):
        compose.up(busybox_store, p, say=said.append)
    p = project(tmp_path, """
        services:
          web: {image: busybox, command: ["true"], network_mode: none, depends_on: {db: {condition: service_healthy}}}
          db: {image: busybox, command: [sleep, "30"], network_mode: none}
        """, name="plain")
    with pytest.raises(ComposeError, match="container plain-db-1 has no healthcheck configured"):
        compose.up(busybox_store, p, say=said.append)


def test_up_through_a_pipe_says_waiting_while_it_waits(busybox_store: Store, tmp_path: Path) -> None:
    import time

    directory = tmp_path / "piped"
    directory.mkdir()
    (directory / "compose.yaml").write_text(textwrap.dedent("""
        services:
          db:
            image: busybox
            command: [sh, -c, "sleep 1.5; touch /ready; exec sleep 30"]
            network_mode: none
            healthcheck: {test: test -e /ready, interval: 100ms, retries: 30}
          web:
            image: busybox
            command: [sleep, "30"]
            network_mode: none
            depends_on: {db: {condition: service_healthy}}
        """))
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"},  # (stdout a pipe: block-buffered)
           "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
    up = subprocess.Popen([sys.executable, "-m", "pycontainers", "compose", "-f", str(directory / "compose.yaml"),
                           "up", "-d"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    heard = {line.split()[-1]: time.monotonic() for line in up.stdout}  # type: ignore[union-attr]
    assert up.wait(timeout=30) == 0, up.stderr.read()  # type: ignore[union-attr]
    assert heard["Healthy"] - heard["Waiting"] > 0.5  # (buffered, all came at the end)
