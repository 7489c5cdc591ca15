"""Lifecycle edges an adversarial sweep found: commands racing a removal, signals named as Docker names them,
stop timeouts, long names, TERM for terminals, stats of a removed container. Each must end in one clear line
(or do what Docker does), never an internal error."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from processes import wait_for

from pycontainers import container as c
from pycontainers import runtime
from pycontainers.api import Client
from pycontainers.errors import ContainerNotFound, ContainerTimeout, InvalidArgument
from pycontainers.store import Store


def test_docker_s_signal_names_and_numbers() -> None:
    assert c.parse_signal("SIGTERM") == c.parse_signal("term") == c.parse_signal("15") == signal.SIGTERM
    assert c.parse_signal("usr1") == c.parse_signal("SIGusr1") == signal.SIGUSR1
    assert c.parse_signal(9) == signal.SIGKILL
    assert c.parse_signal("RTMIN") == signal.SIGRTMIN and c.parse_signal("SIGRTMIN+3") == signal.SIGRTMIN + 3
    assert c.parse_signal("RTMAX-1") == signal.SIGRTMAX - 1
    for bad in ("FOO", "SIGFOO", "0", "999", "", "RTMIN+x", "SIG", 0):
        with pytest.raises(InvalidArgument, match="Invalid signal"):
            c.parse_signal(bad)


def test_stopsignal_is_checked_at_build_and_a_docker_style_name_stops_the_container(
        cli: Any, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nSTOPSIGNAL SIGFOO\n")
    code, _, err = cli("build", "-q", "-t", "badsig", str(tmp_path))
    assert code == 1 and "Dockerfile:2" in err and "Invalid signal: SIGFOO" in err and err.count("\n") == 1
    (tmp_path / "Dockerfile").write_text("FROM busybox\nSTOPSIGNAL usr1\n")
    assert cli("build", "-q", "-t", "usr1", str(tmp_path))[0] == 0
    script = "trap 'exit 9' USR1; while :; do sleep 0.05; done"
    assert cli("run", "-d", "--name", "u", "usr1", "sh", "-c", script)[0] == 0
    time.sleep(0.3)  # (its trap set)
    assert cli("stop", "-t", "5", "u") == (0, "u\n", "")
    assert cli("inspect", "-f", "{{.State.ExitCode}}", "u")[1] == "9\n"  # USR1 ended it, not the SIGKILL
    assert cli("kill", "-s", "FOO", "u")[2] == "Error: Invalid signal: FOO\n"


def test_the_api_takes_signals_as_docker_does(client: Client) -> None:
    k = client.containers.run("busybox", ["sh", "-c", "trap 'exit 7' USR2; while :; do sleep 0.05; done"],
                              detach=True)
    time.sleep(0.3)
    for bad in ("FOO", 0):
        with pytest.raises(InvalidArgument, match="Invalid signal"):
            k.kill(signal=bad)
    k.kill(signal="usr2")
    assert k.wait(timeout=10)["StatusCode"] == 7


def test_a_stop_timeout_of_none_is_docker_py_s_default(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    k = client.containers.create("busybox", ["true"])
    asked: list[float | None] = []
    monkeypatch.setattr(c, "stop", lambda container, timeout=10.0: asked.append(timeout))
    k.stop(timeout=None)
    k.restart(timeout=None)
    assert asked == [10, 10]  # not None: that would wait for ever for a PID 1 that ignores SIGTERM


def test_stop_minus_one_waits_for_as_long_as_it_takes(busybox_store: Store) -> None:
    k = c.create_from_image(busybox_store, "busybox", ["sh", "-c", "trap 'sleep 1.5; exit 4' TERM; "
                                                                   "while :; do sleep 0.05; done"])
    runtime.start_detached(k)
    time.sleep(0.3)
    c.stop(k, -1)  # -1 s would have killed it at once (137)
    assert k.reload().state["exit_code"] == 4
    c.remove(k)


def test_commands_on_a_container_removed_meanwhile_say_so(client: Client) -> None:
    k = client.containers.run("busybox", ["sleep", "60"], detach=True, name="gone")
    client.containers.get("gone").remove(force=True)
    for call in (k.start, k.restart, lambda: k.get_archive("/etc"), lambda: k.put_archive("/", b""),
                 lambda: list(k.export()), lambda: k.commit("never"), k.diff):
        with pytest.raises(ContainerNotFound, match="No such container"):
            call()
    with pytest.raises(ContainerNotFound), c.starting(k._c):
        pass


def test_restarts_at_once_keep_a_rm_container(client: Client) -> None:
    """Each restart keeps the container with a file of its own: the first to finish must not let the others'
    stop remove it (as Docker, a restarted --rm container is never auto-removed)."""
    k = client.containers.run("busybox", ["sleep", "60"], detach=True, remove=True, name="thrice")
    errors: list[BaseException] = []

    def restart() -> None:
        try:
            runtime.restart(c.get_container(client.store, "thrice"), 1)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=restart) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and k.status == "running"
    assert not [p for p in k._c.dir.iterdir() if p.name.startswith(c.RESTARTING)]  # each let its own go
    k.stop(timeout=0)
    wait_for(lambda: not client.containers.list(all=True), "the --rm container to go once stopped")


def test_a_name_too_long_for_the_store_is_refused_in_one_line(cli: Any) -> None:
    code, _, err = cli("create", "--name", "a" * 300, "busybox")
    assert code == 125 and "at most 253 characters" in err and err.count("\n") == 1
    assert cli("run", "-d", "--name", "short", "busybox", "sleep", "30")[0] == 0
    code, _, err = cli("rename", "short", "b" * 300)
    assert code == 1 and "at most 253 characters" in err
    assert cli("ps", "--format", "{{.Names}}")[1] == "short\n"


def test_a_terminal_gets_term_xterm_as_docker_gives_it(client: Client) -> None:
    assert b"TERM=xterm" in client.containers.run("busybox", ["env"], tty=True, remove=True)
    assert b"TERM=" not in client.containers.run("busybox", ["env"], remove=True)
    assert b"TERM=vt100" in client.containers.run("busybox", ["env"], tty=True, remove=True,
                                                  environment=["TERM=vt100"])
    k = client.containers.run("busybox", ["sleep", "30"], detach=True)
    assert b"TERM=xterm" in k.exec_run(["env"], tty=True).output
    assert b"TERM=" not in k.exec_run(["env"]).output


def test_stats_of_a_container_removed_meanwhile_ends_with_an_error(client: Client, cli: Any) -> None:
    k = client.containers.run("busybox", ["sleep", "60"], detach=True, name="watched")
    threading.Timer(1.5, lambda: k.remove(force=True)).start()
    code, _, err = cli("stats", "watched")
    assert code == 1 and err.endswith("Error: No such container: watched\n")


def test_rmi_f_of_an_image_a_container_uses_only_untags_it(client: Client, cli: Any, tmp_path: Path) -> None:
    """As Docker: forced, the image loses its tags but stays (<none>) while a container needs it, so the
    container still starts and commits; image prune removes it once no container does."""
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo v > /v\n")
    assert cli("build", "-q", "-t", "victim", str(tmp_path))[0] == 0
    image_id = client.images.get("victim").id
    k = client.containers.run("victim", ["cat", "/v"], detach=True)
    k.wait()
    assert cli("rmi", "-f", "victim") == (0, "Untagged: victim:latest\n", "")
    assert client.images.get(image_id).tags == []
    k.start()
    assert k.wait()["StatusCode"] == 0 and k.logs() == b"v\nv\n"
    assert cli("image", "prune", "-f")[0] == 0 and client.images.get(image_id)  # still needed
    k.remove()
    assert cli("image", "prune", "-f")[0] == 0
    with pytest.raises(Exception, match="No such image"):
        client.images.get(image_id)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_build_ended_by_sigterm_or_sighup_cleans_up_as_after_ctrl_c(busybox_store: Store, tmp_path: Path,
                                                                      sig: int) -> None:
    """``timeout N pycontainers build`` sends SIGTERM, a closed terminal SIGHUP: the RUN step's container is
    removed, as after Ctrl-C, and the exit code is a shell's for that signal."""
    import os
    import subprocess
    import sys

    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo started; sleep 30\n")
    env = {**os.environ, "PYCONTAINERS_HOME": str(busybox_store.home), "PYCONTAINERS_SERVER": "0"}
    build = subprocess.Popen([str(Path(sys.executable).with_name("pycontainers")), "build", "-t", "never",
                              str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert build.stdout is not None
    for line in build.stdout:
        if line.startswith("started"):
            break
    build.send_signal(sig)
    rest = build.communicate(timeout=30)[0]
    assert build.returncode == 128 + sig and "Removing intermediate container" in rest
    assert c.list_containers(busybox_store, all=True) == []


def test_a_name_longer_than_any_file_name_is_no_container_and_no_volume(cli: Any) -> None:
    """``rm $(ps -aq --no-trunc | tr -d '\\n')`` glues IDs into one long word: No such container, not an
    internal error about a file name too long."""
    long = "z" * 300
    for command in ("rm", "stop", "logs", "start", "kill", "wait", "top", "port", "diff", "restart", "pause"):
        code, _, err = cli(command, long)
        assert code == 1 and err.startswith("Error: No such container: zzz") and err.count("\n") == 1, command
    for args in (("volume", "create", "v" * 300), ("run", "--rm", "-v", "v" * 300 + ":/d", "busybox", "true")):
        code, _, err = cli(*args)
        assert code in (1, 125) and "at most 255 characters" in err, args
    for args in (("volume", "inspect", "v" * 300), ("volume", "rm", "v" * 300)):
        code, _, err = cli(*args)
        assert code == 1 and "no such volume" in err, args


def test_memory_zero_is_no_limit_and_proc_is_no_mount_point(busybox_store: Store) -> None:
    from pycontainers.image import get_image
    from pycontainers.spec import make_spec

    image = get_image(busybox_store, "busybox")
    assert make_spec(image, "busybox", memory="0").memory is None  # Docker: -m 0 is unlimited
    assert make_spec(image, "busybox", memory=0).memory is None
    assert make_spec(image, "busybox", cpus=0).cpus is None  # --cpus 0: no limit either
    for dest in ("/proc", "/proc/sys", "/proc/"):
        with pytest.raises(InvalidArgument, match="cannot be mounted because it is /proc or inside it"):
            make_spec(image, "busybox", volumes=[f"/tmp:{dest}"])
    assert make_spec(image, "busybox", volumes=["/tmp:/procfs"]).mounts[0].destination == "/procfs"


def test_docker_py_s_top_and_health(client: Client) -> None:
    k = client.containers.run("busybox", ["sleep", "30"], detach=True)
    top = k.top()
    assert top["Titles"] == ["UID", "PID", "PPID", "CMD"] and [p[3] for p in top["Processes"]] == ["sleep 30"]
    assert k.health == "unknown"  # no health check
    with pytest.raises(InvalidArgument, match="ps_args"):
        k.top(ps_args="aux")


def test_exec_d_starts_a_command_in_the_background(client: Client, cli: Any) -> None:
    k = client.containers.run("busybox", ["sleep", "30"], detach=True, name="host")
    assert cli("exec", "-d", "host", "sh", "-c", "sleep 0.3; echo done > /marker") == (0, "", "")
    wait_for(lambda: k.exec_run(["cat", "/marker"]).output == b"done\n", "the background command's file")
    code, _, err = cli("exec", "-d", "host", "no-such-command")
    assert code == 127 and "no-such-command" in err
    assert k.exec_run(["true"], detach=True).exit_code is None  # (the API's, on the same core)


def test_a_stop_waits_for_the_run_it_stopped_not_for_a_start_after_it(busybox_store: Any) -> None:
    """A ``start`` from elsewhere right after the stopped run ended is a new run: the stop must not wait 10 s
    for it, nor kill it."""
    k = c.create_from_image(busybox_store, "busybox", ["sleep", "60"])
    runtime.start_detached(k)
    first = k.reload().state["started_at"]
    c.send_signal(k, signal.SIGKILL)
    c.wait(k, 10)
    runtime.start_detached(k)
    assert k.reload().status == "running" and k.state["started_at"] != first
    c._wait_run_ended(k, first, 0.5)  # the run it knew has ended: no ContainerTimeout
    assert k.reload().status == "running"
    with pytest.raises(ContainerTimeout):
        c._wait_run_ended(k, k.state["started_at"], 0.2)
    c.remove(k, force=True)


def test_wait_conditions_of_the_engine_api(client: Client) -> None:
    """docker-py's ``wait(condition=...)``: "next-exit" waits for a run that has not started yet, "removed"
    for the container to go, and a condition the Engine API does not have is refused."""
    k = client.containers.create("busybox", ["sh", "-c", "exit 3"], name="cond")
    result: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: result.update(k.wait(timeout=30, condition="next-exit")))
    waiter.start()
    time.sleep(0.2)
    assert waiter.is_alive()  # created, never run: its next exit is still to come
    k.start()
    waiter.join(30)
    assert result == {"StatusCode": 3, "Error": None}
    with pytest.raises(ContainerTimeout):
        k.wait(timeout=0.2, condition="next-exit")  # exited, and nothing starts it again
    assert k.wait(condition="not-running")["StatusCode"] == 3
    with pytest.raises(InvalidArgument, match="invalid condition 'gone'"):
        k.wait(condition="gone")
    r = client.containers.run("busybox", ["sh", "-c", "sleep 0.3; exit 5"], detach=True, remove=True)
    assert r.wait(timeout=30, condition="removed")["StatusCode"] == 5
    assert r.id not in [x.id for x in client.containers.list(all=True)]
    k.remove()


def test_environment_keys_without_a_value_come_from_this_process(client: Client,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-py writes ``{"K": None}`` as a bare ``K``: like ``-e K``, its value is this process's, and a key
    it does not have is left out (it was ``K=None``)."""
    monkeypatch.setenv("PYC_FROM_HERE", "here")
    monkeypatch.delenv("PYC_NOWHERE", raising=False)
    out = client.containers.run("busybox", ["env"], remove=True,
                                environment={"PYC_FROM_HERE": None, "PYC_NOWHERE": None, "B": "2"}).decode()
    assert "PYC_FROM_HERE=here\n" in out and "B=2\n" in out and "PYC_NOWHERE" not in out
    k = client.containers.run("busybox", ["sleep", "60"], detach=True, remove=True)
    assert k.exec_run(["env"], environment={"PYC_FROM_HERE": None}).output.decode().count("PYC_FROM_HERE=here") == 1
    k.stop(timeout=0)


def test_a_bind_source_deleted_after_create_is_made_again_at_start(cli: Any, tmp_path: Path) -> None:
    """As Docker's ``-v``: the host directory is made at create, and again at start if it went meanwhile."""
    source = tmp_path / "data"
    code, cid, _ = cli("create", "-v", f"{source}:/data", "busybox", "ls", "-a", "/data")
    assert code == 0 and source.is_dir()
    source.rmdir()
    code, _, err = cli("start", "-a", cid.strip())
    assert (code, err) == (0, "") and source.is_dir()
    cli("rm", cid.strip())


def test_listing_filters_then_keeps_the_newest_n(client: Client, cli: Any) -> None:
    """As the daemon's ``reduceContainers``: ``-n``/``limit`` counts only the containers the filters keep, and
    the API takes ``ps``'s filters (a value or a list of values)."""
    first = client.containers.run("busybox", ["true"], detach=True, labels={"pick": "yes"})
    first.wait()
    client.containers.run("busybox", ["true"], detach=True).wait()  # newer, but not picked
    assert [k.id for k in client.containers.list(filters={"label": "pick=yes"}, limit=1)] == [first.id]
    assert [k.id for k in client.containers.list(filters={"status": ["exited"]})][-1] == first.id
    code, out, _ = cli("ps", "-q", "--no-trunc", "-n", "1", "--filter", "label=pick")
    assert (code, out) == (0, f"{first.id}\n")
    assert len(client.containers.list(all=True, limit=-1)) == 2 and client.containers.list() == []
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        client.containers.list(filters={"colour": "red"})


def test_stop_of_several_containers_signals_them_all_at_once(cli: Any, client: Client, tmp_path: Path) -> None:
    """As Docker's CLI (``parallelOperation``): each container, told to stop, waits to see that the others were
    told too; one stop after the other would leave the first waiting until it is killed (137)."""
    shared = tmp_path / "told"
    script = ("trap 'touch /told/$HOSTNAME; until [ $(ls /told | wc -l) -ge 3 ]; do sleep 0.05; done; exit 0' TERM; "
              "while :; do sleep 0.05; done")
    names = ["p1", "p2", "p3"]
    for name in names:
        client.containers.run("busybox", ["sh", "-c", script], detach=True, name=name, hostname=name,
                              volumes=[f"{shared}:/told"])
    code, out, _ = cli("stop", "-t", "20", *names)
    assert (code, out) == (0, "p1\np2\np3\n")  # the lines in the order given
    assert [client.containers.get(n).attrs["State"]["ExitCode"] for n in names] == [0, 0, 0]
    code, out, err = cli("rm", "p1", "nosuch", "p2")
    assert (code, out) == (1, "p1\np2\n") and "No such container: nosuch" in err


def test_stop_with_a_signal_of_its_own(client: Client, cli: Any) -> None:
    """``stop -s``: that signal first, instead of the image's STOPSIGNAL or SIGTERM (Docker 23)."""
    k = client.containers.run("busybox", ["sh", "-c", "trap 'exit 7' USR1; while :; do sleep 0.05; done"],
                              detach=True, name="usr")
    time.sleep(0.2)
    assert cli("stop", "-s", "usr1", "usr")[:2] == (0, "usr\n")
    assert k.wait()["StatusCode"] == 7
    assert cli("stop", "-s", "NOPE", "usr")[0] == 1


def test_a_notebook_cell_run_again_after_removing_its_containers_says_so(client: Client,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """``still_there``: a cell that removes its containers at its end, run a second time, skips its work with
    one sentence instead of a "No such container" traceback."""
    from pycontainers.api import still_there

    kept = client.containers.create("busybox", ["true"], name="kept")
    gone = client.containers.create("busybox", ["true"], name="gone")
    assert still_there(kept, gone) and capsys.readouterr().out == ""
    gone.remove()
    assert not still_there(kept, gone)
    assert capsys.readouterr().out == ("gone is gone: this cell removed it when it last ran. Run the cell that starts "
                                       "it again, then this one.\n")
