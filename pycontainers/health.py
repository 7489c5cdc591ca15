"""Health checks (``HEALTHCHECK``, ``run --health-*``): a command run inside the container now and then,
whose exit code says whether the service in it works, as dockerd runs them (its daemon/health.go).

There is no daemon here, so each container's monitor runs them, through a process of its own::

    monitor ──fork──> "pyc-health"          waits for the container to run, then every interval:
                        └──fork──> runner   ``runtime.exec_monitor``, as ``exec`` runs a command: joins the
                                            container's namespaces and cgroup, forks the check, reports
                                            ``started`` and ``exited`` (proot: a second proot on its files)

The check dies with its runner (``runtime.die_with_parent``; not under proot, whose monitor adopts nothing),
the runner with the health process: no check lives on orphaned, except one frozen by ``pause`` (it dies at the
thaw). A warm monitor, a subreaper, adopts what is orphaned, and reaps it (``runtime.wait_for_pid1``).

Only a container that has a check gets one (``runtime.health_checks_wanted`` is a dictionary lookup): the
others start exactly as before. The monitor never waits for a check: it waits for the container, and when
that ends it closes the pipe the health process watches; the health process kills the check in flight (its
process group) and exits, and the monitor reaps it (``Checker.end``) before it records the exit. Should the
monitor be killed, the kernel kills the health process (``PR_SET_PDEATHSIG``), and it the runner.

The cold native monitor forks it before it unshares its PID namespace (its later children are born inside the
container's): the health process stays on the host's side, out of the container's ``ps``. Warm monitors and
runc's or proot's fork it once the container runs.

The state, in state.json's ``health`` as Docker's inspect shows ``State.Health``: ``Status`` (starting,
healthy, unhealthy), ``FailingStreak`` and the ``Log`` of the last 5 results (``Start``, ``End``,
``ExitCode``, ``Output``: at most 4096 bytes, then "..."). Exit code 0 is healthy; anything else is a
failure (1 is unhealthy, the rest reserved), and ``retries`` failures in a row, outside the start period,
make the container unhealthy. A timed-out check is killed and gets -1 with "Health check exceeded timeout
(30s)". When the container ends its status becomes unhealthy, as Docker's does. The health process writes
only this key, under the state file's lock (``Container.save``): no other writer's change is lost.

Where Docker's choices are followed, and where not:

* ``pause``: no check starts while the container is paused, and the status stays what it was (Docker's
  ``ps`` shows ``Up 5 minutes (Paused)`` then, and inspect the last status). A check whose time is up while
  the container is paused is cancelled, as Docker cancels it: killed once thawed (frozen, it could not die),
  and nothing recorded, no failure counted.
* A check killed by a signal because its container ended (PID 1's exit kills the rest of its PID namespace)
  has no result: only the end itself makes the container unhealthy. So does a command that could not start.
* The start interval: see ``next_wait``.
* No daemon: should the monitor or the health process be killed (``kill -9``), nobody checks the container
  any longer, and its health stays as last recorded (``(health: starting)`` for ever, if no check had ended):
  ``ps`` and inspect show the last status, as Docker's would after its daemon died. A container whose monitor
  was killed is itself beyond the engine's reach (see ``Container.status``); one whose health process was
  killed becomes unhealthy when it ends, as any other.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
from typing import Any

from .container import Container, now_iso, read_state
from .errors import PyContainersError

MAX_OUTPUT = 4096  # bytes of a check's output kept (Docker's maxOutputLen)
MAX_LOG = 5  # results kept (maxLogEntries)
SECOND = 10**9
DEFAULTS = {"Interval": 30 * SECOND, "Timeout": 30 * SECOND, "StartPeriod": 0, "StartInterval": 5 * SECOND,
            "Retries": 3}
EXEC_START_LIMIT = 30.0  # seconds a check may take to start: that time is not the check's (as Docker)
STOP_PATIENCE = 2.0  # seconds the monitor gives the health process to end before it kills it
PAUSE_POLL = 0.1  # seconds between looks at the freezer while a check waits for its container's unpause
CANCELLED = "cancelled"  # ``probe``'s outcome for a check the container's pause cancelled: nothing is recorded
PF_EXITING = 0x4  # /proc/PID/stat's flags: the process is in do_exit


def setting(config: dict[str, Any], key: str) -> int:
    """A field of the HealthConfig, or Docker's default where it is left out (zero)."""
    return config.get(key) or DEFAULTS[key]


def starting(previous: dict[str, Any] | None) -> dict[str, Any]:
    """The health of a container that has just started: starting, no failures, the last run's log kept
    (Docker's initHealthMonitor)."""
    return {"Status": "starting", "FailingStreak": 0, "Log": list((previous or {}).get("Log") or [])}


def status_suffix(health: dict[str, Any] | None) -> str:
    """What ``ps`` adds to ``Up 5 seconds``: `` (healthy)``, `` (unhealthy)``, `` (health: starting)``."""
    if not health:
        return ""
    status = health.get("Status") or "unhealthy"
    return f" (health: {status})" if status == "starting" else f" ({status})"


# ------------------------------------------------------------------------------------- the monitor's end


class Checker:
    """The monitor's end of its health process: ``begin`` once the container runs, ``end`` when it ended."""

    def __init__(self, pid: int, go_w: int) -> None:
        self.pid, self.go_w = pid, go_w

    @classmethod
    def fork(cls, container: Container) -> Checker:
        """Fork the health process, which waits for ``begin``. The caller must be single-threaded."""
        go_r, go_w = os.pipe2(os.O_CLOEXEC)
        monitor = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.close(go_w)
                serve(container, go_r, monitor)
            except BaseException:  # noqa: BLE001 (nobody to tell: the container runs on without checks)
                code = 1
            finally:
                os._exit(code)
        os.close(go_r)
        from .runtime import keep_status_of

        keep_status_of(pid)  # (reaped for us should the monitor reap all its children: runtime.wait_for_pid1)
        return cls(pid, go_w)

    def begin(self) -> None:
        """The container runs (its state says so, with its PID): checks may start."""
        with contextlib.suppress(OSError):
            os.write(self.go_w, b"1")

    def end(self, container: Container | None = None) -> dict[str, Any]:
        """Stop the checks and reap the health process; the state to record with the container's exit
        (its health, now unhealthy, as Docker's after a container stops), given *container*."""
        from .runtime import reap, reaped_already

        with contextlib.suppress(OSError):
            os.close(self.go_w)
        if not (reaped_already(self.pid) or _ended_within(self.pid, STOP_PATIENCE)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            reap(self.pid)
        return {} if container is None else ended(container)


def ended(container: Container) -> dict[str, Any]:
    """The health to record with the container's exit: unhealthy, as Docker's after a container stops (also
    when its command could not start), its last results kept. (Read once its health process has ended.)"""
    health = container.state.get("health")
    with contextlib.suppress(PyContainersError, OSError):
        health = read_state(container.dir).get("health") or health
    return {"health": {**starting(health), **(health or {}), "Status": "unhealthy"}}


def _ended_within(pid: int, seconds: float) -> bool:
    """Has *pid* (a child of ours) ended, or does it within *seconds*? (It stays a zombie, to be reaped.)"""
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return True  # gone already
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(seconds * 1000))
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------ the health process


def serve(container: Container, go_r: int, monitor: int) -> None:
    """The health process: wait for the container to run, then check it at each interval, recording each
    result, until *go_r* closes (the container has ended)."""
    from .linux import PR_SET_PDEATHSIG, prctl, set_process_name
    from .pid1 import keep_only

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the monitor...
    if os.getppid() != monitor:  # ... which may have died already
        return
    set_process_name("pyc-health")
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # (a warm monitor's handler reaps its forker)
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    keep_only(go_r)  # nothing of the container's: its output pipes must reach EOF when it ends
    if os.read(go_r, 1) != b"1":
        return
    container.reload()
    config = container.spec.healthcheck or {}
    argv = probe_argv(container, config["Test"])
    started = _epoch(container.state.get("started_at"))
    init = _init_process(container)
    health = container.state.get("health") or starting(None)
    while not _stop_within(go_r, next_wait(config, started, health["Status"], time.time())):
        if _paused(container):  # frozen: a check would freeze too and time out (Docker checks none then)
            continue
        outcome = probe(container, argv, setting(config, "Timeout"), go_r)
        if outcome is None:  # the container ended meanwhile
            return
        if outcome == CANCELLED:  # paused past its deadline: Docker cancels the check and records nothing
            continue
        result, began = outcome
        if _killed_with_its_container(result, init):  # no result of the check's: the container has ended
            return
        health = record(health, result, began, config, started)
        try:
            container.save(health=health)
        except (OSError, PyContainersError):  # removed meanwhile
            return


def probe_argv(container: Container, test: list[str]) -> list[str]:
    """``CMD`` runs its argv; ``CMD-SHELL`` its line with the image's SHELL (``/bin/sh -c``)."""
    if test[0] == "CMD":
        return list(test[1:])
    shell = None
    with contextlib.suppress(PyContainersError, OSError):
        from .image import get_image

        shell = get_image(container.store, container.spec.image_id).settings.get("Shell")
    return [*(shell or ["/bin/sh", "-c"]), test[1]]


def next_wait(config: dict[str, Any], started: float, status: str, now: float) -> float:
    """Seconds until the next check (Docker's getInterval, with moby#52317): after the start period, the
    interval; during it, the start interval while starting (else the interval), but never past the period's
    end, so that the interval takes over then. (Capping only the interval, as moby did before, made a start
    period shorter than the interval ignore the start interval altogether.)"""
    interval = setting(config, "Interval") / SECOND
    period = setting(config, "StartPeriod") / SECOND
    elapsed = now - started
    if elapsed >= period:
        return interval
    every = setting(config, "StartInterval") / SECOND if status == "starting" else interval
    return min(every, period - elapsed)


def record(health: dict[str, Any], result: dict[str, Any], began: float, config: dict[str, Any],
           started: float) -> dict[str, Any]:
    """The health after *result* (Docker's handleProbeResult): 0 makes it healthy; any other code is a
    failure, which counts unless the container is still starting within its start period; ``Retries``
    failures in a row make it unhealthy."""
    status, streak = health.get("Status", "starting"), int(health.get("FailingStreak") or 0)
    if result["ExitCode"] == 0:
        status, streak = "healthy", 0
    elif not (status == "starting" and began - started < setting(config, "StartPeriod") / SECOND):
        streak += 1
        if streak >= setting(config, "Retries"):
            status = "unhealthy"
    return {"Status": status, "FailingStreak": streak, "Log": [*(health.get("Log") or []), result][-MAX_LOG:]}


def _init_process(container: Container) -> tuple[int, int | None]:
    """The container's PID 1 and its start time (under runc, runc's container's, not runc's own)."""
    from .runtime import container_init_process

    with contextlib.suppress(Exception):  # (runc's state file unreadable: runc's own PID, which ends with it)
        return container_init_process(container)
    return int(container.state["pid"]), container.state.get("pid_start")


def _killed_with_its_container(result: dict[str, Any], init: tuple[int, int | None]) -> bool:
    """Was the check killed by a signal (128 + N) because its container ended? When PID 1 exits, the kernel
    kills every other process of its PID namespace, the check among them, before the monitor tells us to
    stop: Docker, which stops the checks first, records no such result, nor do we."""
    return result["ExitCode"] > 128 and not _running(*init)


def _running(pid: int, start: int | None) -> bool:
    """Is *pid* (with that start time) running, neither exiting nor a zombie? (PID 1 kills the rest of its PID
    namespace from do_exit: it is still there then, with PF_EXITING.)"""
    from .container import _proc_stat

    fields = _proc_stat(pid)
    return bool(fields) and (start is None or int(fields[19]) == start) and fields[0] not in ("Z", "X") \
        and not int(fields[6]) & PF_EXITING


def _paused(container: Container) -> bool:
    try:
        return bool(container.paused)
    except (OSError, PyContainersError, AttributeError):
        return False


def _stop_within(go_r: int, seconds: float) -> bool:
    """Wait *seconds* for the monitor to close the pipe (the container has ended): has it?"""
    poller = select.poll()
    poller.register(go_r, select.POLLIN)
    return bool(poller.poll(max(seconds, 0) * 1000))


def _epoch(text: str | None) -> float:
    from .container import _parse

    return _parse(text).timestamp()


# ------------------------------------------------------------------------------------------ one check


def probe(container: Container, argv: list[str], timeout: int,
          stop_fd: int) -> tuple[dict[str, Any], float] | str | None:
    """Run the check once in the container, as ``exec`` (``runtime.exec_monitor``, in a child: it joins the
    container's namespaces for good); its result and when it began. None if *stop_fd* said stop meanwhile,
    ``CANCELLED`` if the container was paused when its time was up."""
    from .linux import PR_SET_PDEATHSIG, prctl
    from .runtime import exec_monitor

    began, start = time.time(), now_iso()
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    events_r, events_w = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    spec = container.spec
    runner = os.fork()
    if runner == 0:
        try:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            exec_monitor(container, argv, spec.env, spec.workdir, spec.user, False, (null, out_w, out_w), events_w,
                         die_with_runner=True)
        finally:
            os._exit(0)
    for fd in (out_w, events_w, null):
        os.close(fd)
    run = Run(container, runner, out_r, events_r)
    try:
        ended = run.watch(timeout, stop_fd)
    finally:
        run.close()
    if ended is None or ended == CANCELLED:
        return ended
    code, message = ended
    return {"Start": start, "End": now_iso(), "ExitCode": code, "Output": message}, began


class Run:
    """One check in flight: its runner's report pipe, its output (the first ``MAX_OUTPUT`` bytes kept)."""

    def __init__(self, container: Container, runner: int, out_r: int, events_r: int) -> None:
        self.container, self.runner, self.out_r, self.events_r = container, runner, out_r, events_r
        self.command: int | None = None  # the check's PID, once started
        self.output, self.truncated, self.pending = bytearray(), False, b""

    def watch(self, timeout: int, stop_fd: int) -> tuple[int, str] | str | None:
        """Until the check ends (its exit code, its output), times out (-1, Docker's message: it is killed),
        *stop_fd* says stop (None: it is killed) or its time is up while the container is paused
        (``CANCELLED``: killed once thawed)."""
        poller = select.poll()
        for fd in (self.out_r, self.events_r, stop_fd):
            poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + EXEC_START_LIMIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                if _paused(self.container):
                    return self.cancel_when_thawed(stop_fd)
                self.kill()
                if self.command is None:
                    return -1, "timed out starting the health check"
                from .units import go_duration

                self.drain()  # (what it wrote just before its time was up)
                said = self.text()
                return -1, f"Health check exceeded timeout ({go_duration(timeout)})" + (f": {said}" if said else "")
            for fd, _ in poller.poll(left * 1000):
                if fd == stop_fd:
                    self.kill()
                    return None
                if fd == self.out_r:
                    if not self.take_output():
                        poller.unregister(fd)
                    continue
                data = os.read(fd, 65536)
                if not data:
                    self.kill()
                    return -1, "the health check's process ended without reporting"
                for event in self.events(data):
                    if event["event"] == "started":
                        self.command = int(event["pid"])
                        deadline = time.monotonic() + timeout / SECOND  # (starting it was not the check's time)
                    elif event["event"] == "exited":
                        self.drain()
                        return int(event["exit_code"]), self.text()
                    else:  # could not start (no such command...): Docker's -1 with the error
                        return -1, str(event.get("message", ""))

    def cancel_when_thawed(self, stop_fd: int) -> str | None:
        """The check's time is up while its container is paused: Docker cancels it and records nothing. It is
        frozen: SIGKILL does not end it before the thaw (cgroup v1's freezer), and killing its runner instead
        would leave it, when it ends, to the nearest subreaper (a warm monitor). So wait for the thaw (or the
        container's end: it is thawed to end), then end it as any other; ``CANCELLED`` (None: stop)."""
        stopping = False
        while _paused(self.container) and not stopping:
            stopping = _stop_within(stop_fd, PAUSE_POLL)
        self.kill()
        return None if stopping else CANCELLED

    def events(self, data: bytes) -> list[dict[str, Any]]:
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        return [json.loads(line) for line in lines if line]

    def take_output(self) -> bool:
        """Read what the check wrote; False at its end."""
        try:
            data = os.read(self.out_r, 65536)
        except BlockingIOError:
            return True
        keep = data[:MAX_OUTPUT - len(self.output)]
        self.output += keep
        self.truncated = self.truncated or len(keep) < len(data)
        return bool(data)

    def drain(self) -> None:
        """What the check wrote before it exited, without waiting for what it left running to close the pipe."""
        os.set_blocking(self.out_r, False)
        for _ in range(64):  # (bounded: something it left behind may write on and on)
            if not self.take_output():
                return
            if not select.select([self.out_r], [], [], 0)[0]:
                return

    def text(self) -> str:
        """The output as Docker keeps it: the first 4096 bytes, then "..." if there was more."""
        return self.output.decode(errors="replace") + ("..." if self.truncated else "")

    def kill(self) -> None:
        """End the check: its command and what it started in its process group (the runner's; under proot the
        second proot's own), but not the runner, which reaps the command as the shim reaps a Docker exec (killed
        with it, the command would be left to the container's PID 1, a ``sleep`` that reaps nothing) and, under
        proot, deletes proot's temporary files. A runner that does not end then, or has no command yet, is
        killed with its group."""
        from .container import processes_in_group

        if self.command is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.command, signal.SIGKILL)  # (proot's group; natively there is none of that ID)
            for pid in processes_in_group(self.runner):
                if pid != self.runner:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            if _ended_within(self.runner, STOP_PATIENCE):
                return
        for kill in (os.killpg, os.kill):  # (a runner killed before its setsid has no group yet)
            with contextlib.suppress(ProcessLookupError):
                kill(self.runner, signal.SIGKILL)

    def close(self) -> None:
        os.close(self.out_r)
        os.close(self.events_r)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.runner, 0)
