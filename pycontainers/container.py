"""Containers: their life cycle, and the state each one keeps in one JSON file.

Daemonless, like runc or podman: no service runs in the background. Each container has a directory
``$PYCONTAINERS_HOME/containers/<id>/``::

    state.json     the container's state (below); rewritten atomically at every change, each writer
                   writing only what it changes, under ``state.lock`` (see ``Container.save``)
    start.lock monitor.lock   flock'ed by a start, and by the monitor until it has cleaned up (``starting``)
    upper/ work/   overlayfs's writable layer and its scratch space (deleted with the container)
    rootfs/        the mount point of the merged file system (mounted only inside the container)
    hostname hosts resolv.conf   bind-mounted over /etc/... inside
    container-json.log   its output, each line with its stream and time, as Docker's json-file (``logs.py``)
    name           a symlink to its own ID, hard-linked as ``containers/.names/<its name>`` (see names)

A removed container's directory is first renamed ``.<id>.removing`` (one atomic step: it is gone from
``ps -a`` at once), then deleted; ``container prune`` finishes any that a killed process left behind.
``containers/.names/<name>`` is a symlink to the ID of the container that has that name;
``containers/.exits/<minute>`` holds the exit codes of the ``--rm`` containers that ended in that minute, for
``wait`` (see ``record_exit``).

``state.json`` (cf. runc's state.json / the OCI runtime-spec ``state``)::

    {"id": "<64 hex>", "name": "...", "status": "created|running|exited",
     "pid": <host pid of the container's PID 1>, "pid_start": <its start time, clock ticks>,
     "monitor_pid": <pid of the process that waits for it>, "created": "<RFC 3339>",
     "started_at": "...", "finished_at": "...", "exit_code": <int|null>, "oom_killed": <bool>,
     "error": "<why it could not start>", "auto_remove": <bool>,
     "backend": "native|rootless|runc|proot", "spec": {<ContainerSpec>},
     "cgroup": "<name>"           (its cgroup's: its ID, or warm-<PID>.<N> when it started warm)
     "entrypoint": [...]          (only with --entrypoint: the part of the command it is, for commit)
     "health": {"Status": "starting|healthy|unhealthy", "FailingStreak": N, "Log": [...]}
                                  (only with a health check: Docker's State.Health, kept by health.py)
     "networks": {"<network name>": {"id": "<its ID>", "address": "10.89.0.2", "prefixlen": 24,
                  "gateway": "10.89.0.1", "bridge": "pyc-<10 hex>", "aliases": ["db", ...]}, ...}
                                  (only on a bridge, root only: the networks it is on, in the order of its
                                  interfaces eth0, eth1...; the first one's address gets its published ports.
                                  Made at create, changed by network connect/disconnect under the network
                                  lock (network.py); {} once it has left them all. State files written
                                  before this held one "network": {"name": ..., <the same keys>}, without
                                  "aliases" (the spec's were used): read_state converts them.)
     "id_maps": {"uid": [[inside, host, count], ...], "gid": [...]}}   (rootless only)

A *monitor* process (a fork of a clean, single-threaded process: the CLI itself, or the zygote for
the Python API and notebooks, whose monitors are made ahead of time: see ``warm.py``) owns each running
container: it creates the cgroup (rootless: enters a new user namespace instead), forks the container's
PID 1, logs its output, waits for it, records how it ended, and cleans up. It runs in its own session, so
the container outlives the CLI, the notebook kernel and every other helper; ``ps`` checks that the recorded
PID is still the same process (its start time) so a container whose monitor was killed is shown truthfully.
Such a container runs on, but its output has nowhere to go: the monitor read it from pipes, so its next write
fails (EPIPE, or SIGPIPE, which ends a command that does not ignore it), as under conmon or containerd's shim.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import logs
from .errors import ContainerNotFound, ContainerTimeout, EngineError, ImageNotFound, InvalidArgument, PyContainersError
from .spec import ContainerSpec
from .store import Store, atomic_write

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from datetime import datetime
    from typing import Any, BinaryIO

    from . import layer as layers
    from .cgroup import Cgroup
    from .image import Image
    from .userns import IdMaps

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
# Docker's kind of random name (``adjective_scientist``): 48 x 48 of them, so that a class's hundreds of
# containers rarely draw a name that is taken (each draw that is costs a failed symlink(2)).
_ADJECTIVES = ("admiring", "agile", "amazing", "bold", "brave", "bright", "calm", "clever", "cool", "curious",
               "daring", "dazzling", "eager", "elated", "epic", "fervent", "festive", "focused", "gentle",
               "gifted", "happy", "hopeful", "jolly", "keen", "kind", "lucid", "lucky", "merry", "modest",
               "nifty", "noble", "patient", "peaceful", "quiet", "relaxed", "serene", "sharp", "silly", "stoic",
               "sunny", "swift", "tender", "trusting", "upbeat", "vibrant", "vivid", "witty", "zen")
_SCIENTISTS = ("agnesi", "babbage", "bell", "bohr", "boole", "carson", "curie", "darwin", "dijkstra",
               "einstein", "euclid", "euler", "faraday", "fermat", "fermi", "feynman", "franklin", "galileo",
               "gauss", "goodall", "hamilton", "hawking", "hopper", "hypatia", "johnson", "kepler", "knuth",
               "lamarr", "leakey", "lovelace", "maxwell", "meitner", "mendel", "newton", "noether", "pascal",
               "pasteur", "raman", "ritchie", "shannon", "somerville", "tesla", "thompson", "torvalds",
               "turing", "wilson", "wozniak", "yonath")


ContainerError = EngineError
"""The engine's errors about a container (could not start it, it is not running...): the older name of
``errors.EngineError``, kept for its importers. docker-py's ``ContainerError`` (a command that exited
non-zero in ``run()``) is ``errors.ContainerError``. ``ContainerNotFound`` comes from ``errors`` too."""


def now_iso() -> str:
    """Now, in UTC, as RFC 3339 with microseconds. With ``time``: ``run`` needs no ``datetime`` (~2 ms)."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns // 1000 % 10**6:06d}Z"


def containers_dir(store: Store) -> Path:
    return store.home / "containers"


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()
    except OSError:
        return None


def process_start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: tells a live process from a new one that reused its PID."""
    fields = _proc_stat(pid)
    return int(fields[19]) if fields else None


def pid_alive(pid: int | None, start: int | None) -> bool:
    """Is *pid* still the process we recorded (same start time), and not a zombie?"""
    fields = _proc_stat(pid) if pid else None
    if not fields:
        return False
    return (start is None or int(fields[19]) == start) and fields[0] != "Z"


@dataclass
class Container:
    """A container on disk; ``state`` is read fresh from state.json by ``reload``."""

    store: Store
    id: str
    state: dict[str, Any]
    image: Image | None = field(default=None, repr=False, compare=False)
    """The image, when this process has just read it (``create_from_image``): starting need not read it again."""

    @property
    def dir(self) -> Path:
        return containers_dir(self.store) / self.id

    @property
    def name(self) -> str:
        return self.state["name"]

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def spec(self) -> ContainerSpec:
        return ContainerSpec.from_json(self.state["spec"])

    def reload(self) -> Container:
        self.state = read_state(self.dir)
        return self

    def save(self, **changes: Any) -> None:
        """Write *changes* to state.json: what is on disk now, with *changes* applied (the whole of
        ``state`` when there is no file yet), all at once (a temporary file renamed over it).

        Several processes write one container's state: its monitor records the exit while ``rename``
        gives it a new name. So each writes only what it changes, reading the file afresh under the
        state lock (flock), and nobody's change is lost. No fsync: the state describes processes, which a
        power cut ends anyway (runc writes its state.json the same way)."""
        with self.state_lock():
            self.save_locked(**changes)

    def save_locked(self, **changes: Any) -> None:
        """``save``, by a caller that holds the state lock already (``state_lock``)."""
        with contextlib.suppress(ContainerNotFound):
            self.state = read_state(self.dir)
        self.state.update(changes)
        tmp = self.dir / f".state.json.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, json.dumps(self.state, indent=2).encode())
        finally:
            os.close(fd)
        os.replace(tmp, self.dir / "state.json")

    @contextlib.contextmanager
    def state_lock(self) -> Iterator[None]:
        """flock ``state.lock``: one writer of the state at a time (``save``), or one reader-then-writer
        (``rename``, ``discard_directory``). ContainerNotFound if its directory is gone."""
        with flocked(self, "state.lock"):
            yield

    @property
    def status(self) -> str:
        """created / running / exited, checked against the kernel, not just the file."""
        st = self.state.get("status", "created")
        if st == "running" and not pid_alive(self.state.get("pid"), self.state.get("pid_start")):
            if pid_alive(self.state.get("monitor_pid"), self.state.get("monitor_start")):
                return "running"  # the monitor is about to record the exit
            # The monitor may have recorded the exit and gone since we read the file: read it again.
            try:
                self.state = read_state(self.dir)
            except ContainerNotFound:  # auto-removed meanwhile: it exited
                return "exited"
            if self.state.get("status") != "running":
                return self.state.get("status", "exited")
            return "dead"  # neither the container nor its monitor exists, and nobody recorded why
        return st

    @property
    def paused(self) -> bool:
        """Frozen by ``pause`` (its cgroup's freezer says so: the kernel, not the file)."""
        return self.state.get("status") == "running" and self.state.get("backend") in ("native", "runc") \
            and cgroup_of(self).frozen()

    @property
    def docker_status(self) -> str:
        """Docker's State.Status: ``status``, or "paused" for a running container that is."""
        status = self.status
        return "paused" if status == "running" and self.paused else status

    def status_text(self) -> str:
        """Docker's STATUS column: ``Up 3 seconds``, ``Up 3 seconds (Paused)``, ``Exited (0) 5 seconds ago``."""
        from datetime import UTC, datetime

        from .units import human_duration, since

        st = self.status
        if st == "running":
            started = _parse(self.state.get("started_at"))
            up = "Up " + human_duration((datetime.now(UTC) - started).total_seconds())
            if self.paused:
                return f"{up} (Paused)"
            if self.state.get("health"):  # Docker's `Up 5 seconds (healthy)`, `(health: starting)`
                from .health import status_suffix

                up += status_suffix(self.state["health"])
            return up
        if st == "exited":
            code = self.state.get("exit_code")
            return f"Exited ({code}) {since(_parse(self.state.get('finished_at')))}"
        if st == "dead":
            return "Dead (its monitor was killed; exit status unknown)"
        return "Created"

    def log_path(self) -> Path:
        return self.dir / logs.LOG_NAME


def log_entries(container: Container, *, follow: bool = False, tail: int | None = None,
                since: str | None = None, until: str | None = None) -> Iterator[logs.Entry]:
    """``docker logs``: the entries of the container's log (``logs.py``), oldest first; with *follow*
    (``-f``), then those that come until it is no longer running (or is removed). *tail*, *since*, *until*:
    see ``logs.read_entries``. The CLI and the API both read logs here."""
    path = container.log_path()
    legacy = container.dir / "container.log"  # (the raw output, as logged before logs.py)
    if not path.exists() and legacy.exists() and since is None and until is None:
        return iter([logs.Entry("stdout", "", legacy.read_bytes())])
    return logs.read_entries(path, tail=tail, since=since, until=until,
                             running=(lambda: _still_running(container)) if follow else None)


def _still_running(container: Container) -> bool:
    try:
        return container.reload().status == "running"
    except ContainerNotFound:  # auto-removed (--rm) once it exited
        return False


def _parse(text: str | None) -> datetime:
    from datetime import UTC, datetime

    if not text:
        return datetime.now(UTC)
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


@contextlib.contextmanager
def starting(container: Container) -> Iterator[bool]:
    """Serialise the starts of one container (``start`` twice at once, from two processes): flock on its
    directory's ``start.lock``, held until the caller has its first event, by which time a started container's
    state says running. Yields whether it is still to be started."""
    import fcntl

    fd = open_lock(container, "start.lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # (the monitor forked meanwhile closes its copy: runtime.keep_only_fds)
        to_start = container.reload().status != "running"
        if to_start:
            wait_for_last_monitor(container)
        yield to_start
    finally:
        os.close(fd)


@contextlib.contextmanager
def holding_start_lock(container: Container) -> Iterator[None]:
    """The start lock, waited for: no start of the container is under way while the body runs (``network
    connect`` changes the list of networks a start reads once, when it makes the interfaces)."""
    with flocked(container, "start.lock"):
        yield


@contextlib.contextmanager
def flocked(container: Container, lock: str) -> Iterator[None]:
    """flock the container's file *lock* (made if missing), waiting for it; ContainerNotFound if its
    directory is gone."""
    import fcntl

    fd = open_lock(container, lock)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def open_lock(container: Container, lock: str) -> int:
    """A descriptor of the container's lock file *lock* (made if missing), to flock; ContainerNotFound if the
    container's directory is gone (removed meanwhile: ``rm -f``, or a ``--rm`` container that ended)."""
    try:
        return os.open(container.dir / lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise ContainerNotFound(f"No such container: {container.name}") from None


@contextlib.contextmanager
def not_starting(container: Container, patience: float = 30.0) -> Iterator[None]:
    """The start lock, waited for (up to *patience* seconds): a start in progress, or a ``cp`` working on the
    stopped container's file system (its helper holds the lock), ends before the directory goes from under it.
    Still running after the wait, or started meanwhile: one clear error, nothing removed."""
    import fcntl

    try:
        fd = os.open(container.dir / "start.lock", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:  # never started, or gone already
        yield
        return
    busy = ContainerError(f"cannot remove container {container.name}: it is being started, committed, or copied to "
                          f"or from (still after {patience:g} s); try again when that is done")
    try:
        deadline, waited = time.monotonic() + patience, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise busy from None
                waited = True
                time.sleep(0.05)
        with contextlib.suppress(ContainerNotFound):
            if waited and container.reload().status == "running":
                raise ContainerError(f"cannot remove container {container.name}: it was started meanwhile")
        yield
    finally:
        os.close(fd)


# A monitor holds its container's ``monitor.lock`` (flock) from before the container runs until it has
# cleaned up after it (``monitoring``). Cleaning up empties the cgroup named after the container with
# SIGKILL and removes it, after the exit is recorded: a new start of the same container (``restart``, or
# ``start`` just after ``stop``) waits for that first (``wait_for_last_monitor``), or its processes would
# be killed in the cgroup they share with the last run.


@contextlib.contextmanager
def monitoring(container: Container) -> Iterator[None]:
    """Hold the container's monitor lock while the body follows it; without waiting: should another
    monitor hold it still (one stuck for longer than a start waits), this one goes on without it."""
    import fcntl

    fd = None
    with contextlib.suppress(OSError):
        fd = os.open(container.dir / "monitor.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)


def wait_for_last_monitor(container: Container, patience: float = 10.0) -> None:
    """Wait until no monitor holds the container's monitor lock: the last run is cleaned up."""
    import fcntl

    try:
        fd = os.open(container.dir / "monitor.lock", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:  # never started
        return
    try:
        deadline = time.monotonic() + patience
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # (a monitor stuck for that long: start anyway, as before this lock existed)
                time.sleep(0.002)
    finally:
        os.close(fd)


def running_elsewhere(container: Container) -> bool:
    """The container's state on disk says another monitor than this process runs it now."""
    with contextlib.suppress(Exception):
        state = read_state(container.dir)
        return bool(state.get("status") == "running" and state.get("monitor_pid") != os.getpid()
                    and pid_alive(state.get("pid"), state.get("pid_start")))
    return False


def read_state(cdir: Path) -> dict[str, Any]:
    try:
        state = json.loads((cdir / "state.json").read_bytes())
    except FileNotFoundError:
        raise ContainerNotFound(f"No such container: {cdir.name[:12]}") from None
    except ValueError as exc:
        raise PyContainersError(f"{cdir / 'state.json'} is not valid JSON: {exc}") from None
    if not isinstance(state, dict) or not isinstance(state.get("spec", {}), dict):
        raise PyContainersError(f"{cdir / 'state.json'} is not a container's state (a JSON object)")
    if "network" in state:
        _upgrade_network(state)
    return state


def _upgrade_network(state: dict[str, Any]) -> None:
    """A state written before containers joined several networks: its one ``network`` becomes ``networks``
    (written so at its next save)."""
    old = state.pop("network")
    if old and "networks" not in state:
        aliases = list((state.get("spec") or {}).get("aliases") or [])
        state["networks"] = {old["name"]: {**{k: old[k] for k in ("id", "address", "prefixlen", "gateway", "bridge")},
                                           "aliases": aliases}}


# ------------------------------------------------------------------------------------------- names
# A name belongs to one container at a time, as with Docker. ``containers/.names/<name>`` is a symlink to
# the container's ID: making it claims the name in one step (of two ``run --name x`` at once, one wins),
# and removing the container deletes it. A link whose container is gone is stale and may be claimed.
# The symlink is made in the container's own directory (``<id>/name``) and hard-linked into ``.names``: a
# new inode in a directory all containers share is what costs most on these machines' disk
# (``linux.set_top_directory``), and a hard link makes none.


def names_dir(store: Store) -> Path:
    return containers_dir(store) / ".names"


def claim_name(store: Store, name: str, container_id: str) -> bool:
    """Make *name* the container's; False if another container has it."""
    base = names_dir(store)
    if not base.is_dir():
        _index_names(store)
    link, mine = base / name, containers_dir(store) / container_id / "name"
    with contextlib.suppress(FileExistsError):
        os.symlink(container_id, mine)
    for _ in range(3):
        try:
            os.link(mine, link, follow_symlinks=False)  # (the symlink itself, not what it points to)
            return True
        except FileExistsError:
            try:
                owner, claimed = os.readlink(link), os.lstat(link).st_mtime
            except FileNotFoundError:  # released meanwhile: try again
                continue
            # Taken, unless its container is gone: not being made right now (claimed a minute ago or more)
            # and without a state.json.
            if claimed > time.time() - 60 or (containers_dir(store) / owner / "state.json").exists():
                return False
            with contextlib.suppress(FileNotFoundError):
                os.unlink(link)  # stale
    return False


def release_name(store: Store, name: str, container_id: str) -> None:
    link = names_dir(store) / name
    with contextlib.suppress(OSError):
        if os.readlink(link) == container_id:
            os.unlink(link)


def _named(store: Store, name: str) -> str | None:
    """The ID of the container that has *name*, if a link says so."""
    try:
        return os.readlink(names_dir(store) / name) if name else None
    except OSError:
        return None


def _index_names(store: Store) -> None:
    """Link the names of containers made before names were links (a store from an older version)."""
    base = names_dir(store)
    base.mkdir(parents=True, exist_ok=True)
    for c in list_containers(store):
        with contextlib.suppress(FileExistsError):
            os.symlink(c.id, base / c.name)


def rename(container: Container, new_name: str) -> None:
    """``docker rename``: claim *new_name*, write it to the state, let the old name go; on a network, the
    other containers' /etc/hosts learn it (and forget the old one) at once."""
    new_name = new_name.lstrip("/")  # (Docker's names may be written as /name)
    with container.state_lock():  # (two renames at once: one after the other; a removal: before or after)
        container.reload()
        old = container.name
        if new_name == old:
            raise InvalidArgument(f"renaming container {old}: it has that name already")
        check_name(container.store, new_name, container.id)
        try:
            container.save_locked(name=new_name)
        except BaseException:
            release_name(container.store, new_name, container.id)
            raise
        release_name(container.store, old, container.id)
    if container.state.get("networks"):
        from . import network

        network.renamed(container.store, container)


MAX_NAME = 253  # (Docker has no limit of its own; a DNS name, as one on a network is, has at most 253)


def check_name(store: Store, name: str, container_id: str) -> None:
    """A name given by the user: Docker's characters, and free (then it is this container's: ``claim_name``)."""
    if not name or not set(name) <= NAME_CHARS or not name[0].isalnum():
        raise InvalidArgument(f"invalid container name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
    if len(name) > MAX_NAME:  # (each name is a file of the store's: a file name has at most 255 bytes)
        raise InvalidArgument(f"invalid container name {name[:20]}...: at most {MAX_NAME} characters, "
                              f"not {len(name)}")
    if not claim_name(store, name, container_id):
        raise InvalidArgument(f'Conflict. The container name "/{name}" is already in use by container '
                              f'"{_named(store, name)}". You have to remove (or rename) that container to be '
                              "able to reuse that name.")


def claim_random_name(store: Store, container_id: str) -> str:
    """Docker's kind of name (``adjective_scientist``), one no other container has."""
    import random

    for _ in range(100):
        name = f"{random.choice(_ADJECTIVES)}_{random.choice(_SCIENTISTS)}"
        if claim_name(store, name, container_id):
            return name
    name = f"container_{container_id[:12]}"
    claim_name(store, name, container_id)
    return name


def list_containers(store: Store, all: bool = True) -> list[Container]:  # noqa: A002 (docker's name)
    base = containers_dir(store)
    out = []
    if base.exists():
        for d in base.iterdir():
            if d.name.startswith("."):  # being removed (see discard_directory)
                continue
            with contextlib.suppress(ContainerNotFound, PyContainersError):
                out.append(Container(store, d.name, read_state(d)))
    out.sort(key=lambda c: c.state.get("created", ""), reverse=True)
    return [c for c in out if all or c.status == "running"]


def get_container(store: Store, ref: str) -> Container:
    """By full ID, name or unique ID prefix, as Docker."""
    if len(ref.encode()) > 255:  # (no ID or name is that long: it names no file of the store either)
        raise ContainerNotFound(f"No such container: {ref if len(ref) < 80 else ref[:77] + '...'}")
    for cid in (ref, _named(store, ref)):  # the quick ways first: no need to read every container
        if cid and "/" not in cid and not cid.startswith("."):
            with contextlib.suppress(PyContainersError):
                return Container(store, cid, read_state(containers_dir(store) / cid))
    containers = list_containers(store)
    for c in containers:
        if c.name == ref or c.id == ref:
            return c
    matches = [c for c in containers if c.id.startswith(ref)] if ref else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ContainerNotFound(f"container ID prefix {ref!r} is ambiguous: {len(matches)} containers match")
    raise ContainerNotFound(f"No such container: {ref}")


BACKENDS = ("native", "rootless", "runc", "proot")
ROOTLESS_SENTENCE = ("pycontainers: there is no root here, so containers run rootless: you are root only inside "
                     "a user namespace, with the same namespaces and overlayfs as root gets, but no cgroup "
                     "limits (this machine does not delegate cgroups to ordinary users).")
PROOT_SENTENCE = ("pycontainers: there is neither root nor user namespaces here, so containers run under "
                  "proot: the image's real files and a fake root user, but no namespaces, hence no PID, "
                  "hostname, network or resource isolation.")
PROOT_HOSTNAME_SENTENCE = ("pycontainers: under proot, --hostname only sets /etc/hostname and $HOSTNAME: without a UTS "
                           "namespace, the `hostname` command shows this machine's name.")


def default_backend(store: Store) -> str:
    """native as root; rootless where user namespaces and overlayfs in them work; else proot.

    Probed once per store and kernel (a few milliseconds of ``unshare``), said once in one sentence.
    ``PYCONTAINERS_BACKEND=native|rootless|proot|runc`` overrides the choice, unprobed and unsaid: an
    instructor can show as root what a Binder student gets (proot), and tests can force a back end.
    """
    forced = os.environ.get("PYCONTAINERS_BACKEND", "")
    if forced:
        if forced not in BACKENDS:
            raise InvalidArgument(f"PYCONTAINERS_BACKEND={forced!r}: use one of {', '.join(BACKENDS)}")
        return forced
    if os.geteuid() == 0:
        return "native"
    marker = store.home / "backend.json"
    with contextlib.suppress(OSError, ValueError, KeyError):
        saved = json.loads(marker.read_text())
        if saved["kernel"] == os.uname().release:
            return str(saved["backend"])
    backend, sentence = _probe_backend()
    print(sentence, file=sys.stderr)
    atomic_write(marker, json.dumps({"backend": backend, "kernel": os.uname().release}).encode())
    return backend


def _probe_backend() -> tuple[str, str]:
    import shutil as sh

    from .host import probe_rootless_overlayfs

    if probe_rootless_overlayfs(str(Path(tempfile.gettempdir()))).available:
        return "rootless", ROOTLESS_SENTENCE
    if sh.which("proot") is None:
        raise ContainerError("containers need root, user namespaces or proot here (apt-get install proot); "
                             "images can still be built, stored and inspected")
    return "proot", PROOT_SENTENCE


def create_from_image(store: Store, image_name: str, command: list[str] | None = None, *,
                      name: str | None = None, auto_remove: bool = False, runtime: str | None = None,
                      labels: dict[str, str] | None = None, **options: Any) -> Container:
    """``docker create``: resolve the image, merge its config with the options, make the container.

    *labels*: the container's own, over the image's (as Docker's ``Config.Labels``).

    *runtime* ``"runc"`` makes an OCI bundle in the container's directory and lets runc run it.
    """
    import shutil as sh

    from .image import get_image
    from .spec import make_spec, new_container_id

    backend = runtime or default_backend(store)
    if backend not in BACKENDS:
        raise InvalidArgument(f"unknown runtime {backend!r}: use one of {', '.join(BACKENDS)}")
    if backend == "runc" and sh.which("runc") is None:
        raise InvalidArgument("the runc runtime is not installed (apt-get install runc)")
    if backend == "proot" and options.get("init"):
        raise InvalidArgument("--init is not supported by the proot back end: it has no PID namespace, so the "
                              "command is not PID 1 anyway")
    limits = [flag for flag, key in (("--memory", "memory"), ("--cpus", "cpus"), ("--pids-limit", "pids_limit"))
              if options.get(key) not in (None, 0, "0") and not (key == "pids_limit" and options[key] < 0)]
    if backend == "rootless" and limits:
        raise InvalidArgument(f"{limits[0]} needs a cgroup, and rootless containers have none here "
                              "(cgroups are not delegated to ordinary users on this machine)")
    net = options.get("network")
    if backend in ("rootless", "proot") and net not in (None, "none", "host", "bridge"):
        raise InvalidArgument(f"--network {net}: networks of containers need root (a bridge and veth pairs); "
                              f"the {backend} back end has only --network none, host and bridge")
    if backend == "proot":  # what proot cannot do is refused, not silently left undone
        if limits:
            raise InvalidArgument(f"{limits[0]} needs a cgroup, and the proot back end has none (no limits)")
        read_only = [v for v in options.get("volumes") or () if v.endswith(":ro")]
        if options.get("read_only") or read_only:
            what = "--read-only" if options.get("read_only") else f"-v {read_only[0]}"
            raise InvalidArgument(f"{what}: the proot back end cannot make a file system read-only")
    try:
        image = get_image(store, image_name)
    except ImageNotFound as exc:
        if not str(exc).startswith("No such image"):
            raise
        from . import registry

        if not registry.names_a_registry(image_name):  # Docker Hub: not reachable from the course's machines
            from .image import similar_tags

            registry.say_missing_locally(image_name)
            near = similar_tags(store, image_name)
            hint = registry.instead_of_image(image_name)
            if near and not hint:  # (`debian` for debian:bookworm-slim, `pyhton` for python)
                raise ImageNotFound(f"{exc}: this store has {', '.join(near)} (pycontainers images lists every "
                                    "image here)") from None
            raise ImageNotFound(f"{exc}: it is not in this store (pycontainers images lists what is; "
                                "pycontainers system bases makes busybox, debian and python)"
                                + (f"; {hint}" if hint else "")) from None
        image = registry.pull_missing(store, image_name)
    if backend in ("native", "rootless"):  # its layers unpacked before the container exists: an interrupted
        from .rootfs import lower_dirs  # first unpacking (seconds, for python) leaves no container behind

        lower_dirs(store, image, backend)
    cid = new_container_id()
    spec = make_spec(image, image_name, command, volumes_dir=str(store.home / "volumes"), container_id=cid,
                     **options)
    container = create(store, spec, cid, name, auto_remove, backend, {**image.labels, **(labels or {})})
    container.image = image
    if backend == "proot" and options.get("hostname"):  # (once it is made: not before another error)
        print(PROOT_HOSTNAME_SENTENCE, file=sys.stderr)
    if backend in ("rootless", "proot") and spec.on_a_network:
        from . import network

        print(network.NO_ROOT_SENTENCE if backend == "rootless" else network.PROOT_SENTENCE, file=sys.stderr)
    try:
        if options.get("entrypoint") is not None:  # for commit: which of the args are the entrypoint
            container.save(entrypoint=spec.args[:len(spec.args) - len(command or [])])
        if backend == "runc":
            # runc's bundle: rootfs/ is where the monitor mounts the native overlayfs and config.json is
            # written then, at each start (runtime.prepare_runc_bundle): no copy of the image is made.
            (container.dir / "bundle" / "rootfs").mkdir(parents=True)
        elif backend == "proot":
            from .bundle import flatten

            flatten(store, image, container.dir / "rootfs")  # no overlayfs without root: a private copy
            # ... and no upper directory to read changes from: its files as they are now, for diff and commit
            from . import snapshot

            snapshot.save(snapshot.take(container.dir / "rootfs"), container.dir / PROOT_BASELINE)
        fill_new_volumes(store, image, spec, backend, id_maps(container))
    except BaseException:
        if container.state.get("networks"):
            from . import network

            network.leave_all(store, container)
        sh.rmtree(container.dir, ignore_errors=True)
        release_name(store, container.name, container.id)
        with contextlib.suppress(OSError, PyContainersError):  # (not those taken over from a replaced container)
            remove_anonymous_volumes(container, keep=set((options.get("reuse_volumes") or {}).values()))
        raise
    return container


def fill_new_volumes(store: Store, image: Any, spec: ContainerSpec, backend: str, container_maps: Any) -> None:
    """As Docker does, an empty named volume mounted where the image has files gets a copy of them first
    (``-v pkgs:/usr/lib/python3/dist-packages`` starts with the image's packages, then keeps its own).
    Copied from the image's unpacked layers, owners and modes as the image has them. A student's layers
    hold files of subordinate ids (``rootfs``), which only root of a namespace with its maps may read: the
    copy is made there, owners kept for a rootless container (proot's are the student's own)."""
    from .rootfs import unpack_layer, unpacking_maps

    files = None
    maps = unpacking_maps(backend, container_maps)
    for m in spec.mounts:
        data = Path(m.source)
        if not m.volume or any(data.iterdir()):
            continue
        files = files if files is not None else image.filesystem()
        prefix = m.destination.strip("/") + "/"
        copies = []
        for path in sorted((p for p in files if p.startswith(prefix)), key=lambda p: p.count("/")):
            source = unpack_layer(store, image.layers[files[path].layer].digest, maps) / path
            copies.append((str(source), str(data / path[len(prefix):]), asdict(files[path])))
        if (top := files.get(prefix[:-1])) is not None and top.kind == "directory":
            copies.append(("", str(data), asdict(top)))  # the volume's own directory: owner and mode
        owners = os.geteuid() == 0 or maps is not None
        plan = json.dumps({"volume": m.volume, "destination": m.destination, "copies": copies, "owners": owners})
        if maps is None:
            fill_volume(plan.encode())
        else:
            from .userns import run_inside

            run_inside(maps, f"filling the volume {m.volume}", "pycontainers.container.fill_volume_from_stdin",
                       stdin=plan.encode())


def fill_volume_from_stdin() -> None:
    """(In ``userns.run_inside``'s process.) ``fill_volume`` with the plan on stdin."""
    fill_volume(sys.stdin.buffer.read())


def fill_volume(plan_json: bytes) -> None:
    """Copy image paths, as ``fill_new_volumes`` planned (JSON), into a new volume."""
    from .image import FileRecord

    plan = json.loads(plan_json)
    try:
        for source, target, record in plan["copies"]:
            _copy_image_path(Path(source), Path(target), FileRecord(**record), plan["owners"])
    except OSError as exc:
        raise InvalidArgument(f"could not fill the new volume {plan['volume']!r} with the image's "
                              f"{plan['destination']}: {exc.strerror or exc}") from None


def _copy_image_path(source: Path, target: Path, record: Any, owners: bool) -> None:
    """One path of an image (a ``FileRecord`` and its file in an unpacked layer) copied to *target*."""
    if record.kind == "directory":
        target.mkdir(exist_ok=True)
    elif record.kind == "symlink":
        os.symlink(record.linkname, target)
        return
    elif record.kind == "file":
        shutil.copyfile(source, target, follow_symlinks=False)
    elif record.kind == "hard link":  # (a copy: the other name may be outside the volume)
        shutil.copyfile(source, target, follow_symlinks=False)
        linked = os.stat(source)  # (a hard link's own header may carry no mode or owner: its file's count)
        record = type(record)(record.path, "file", linked.st_size, record.layer, linked.st_mode,
                              uid=linked.st_uid, gid=linked.st_gid)
    elif record.kind == "fifo":
        os.mkfifo(target)
    else:
        return  # a device: not something a volume holds
    _give_image_owner(target, record, owners)


def _give_image_owner(target: Path, record: Any, owners: bool) -> None:
    if owners:  # (else the files are the student's: root's inside a rootless container, or proot's)
        from .layer import chown_mapped

        chown_mapped(lambda uid, gid: os.lchown(target, uid, gid), record.uid, record.gid)  # before chmod: chown
    os.chmod(target, record.mode & 0o7777)  # clears the set-user-ID bit


def create(store: Store, spec: ContainerSpec, container_id: str, name: str | None = None,
           auto_remove: bool = False, backend: str = "native", labels: dict[str, str] | None = None) -> Container:
    """Make the container's directory and its state (status ``created``); nothing runs yet."""
    cdir = containers_dir(store) / container_id
    _make_containers_dir(str(cdir.parent))
    os.mkdir(cdir)  # (first: the name is claimed from it)
    try:
        if name is not None:
            check_name(store, name, container_id)
        else:
            name = claim_random_name(store, container_id)
    except BaseException:
        shutil.rmtree(cdir, ignore_errors=True)
        raise
    taken_over = {m.volume for m in spec.mounts if m.anonymous and (volumes_dir(store) / str(m.volume)).is_dir()}
    try:
        container = _make_directory(store, spec, container_id, name, auto_remove, backend, labels or {})
        if spec.on_a_network:
            from . import network

            network.join(store, container)  # an address on its network, its name in the others' /etc/hosts
        return container
    except BaseException:
        if spec.on_a_network:
            from . import network

            network.leave(store, spec.network, container_id)
        release_name(store, name, container_id)
        shutil.rmtree(containers_dir(store) / container_id, ignore_errors=True)
        for m in spec.mounts:  # its new anonymous volumes are nobody else's (a replaced container's stay)
            if m.anonymous and m.volume and m.volume not in taken_over:
                shutil.rmtree(volumes_dir(store) / m.volume, ignore_errors=True)
        raise


def resolv_conf_for_a_network() -> str:
    """A networked container's /etc/resolv.conf, by Docker's rule for its default bridge: this machine's, without
    the name servers on its loopback (unreachable from the container's own); behind systemd-resolved's stub,
    the servers it forwards to. No servers left: none (Docker would name Google's; a course machine has no
    internet, and a failed lookup should fail at once)."""
    for path in ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"):
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        kept = [line for line in lines if not (line.split()[:1] == ["nameserver"] and len(line.split()) > 1
                                              and line.split()[1].startswith(("127.", "::1")))]
        if any(line.split()[:1] == ["nameserver"] for line in kept):
            return "\n".join(kept) + "\n"
    return ""


_SPREAD: set[str] = set()  # the containers/ directories this process has made sure of


def _make_containers_dir(path: str) -> None:
    """``containers/``, made if missing, its subdirectories spread over the disk (``linux.set_top_directory``:
    a stream of short containers ran 1.7 times slower without)."""
    if path not in _SPREAD or not os.path.isdir(path):  # (once per process, unless a store was made anew)
        from .linux import set_top_directory  # (not imported by the CLI otherwise)

        os.makedirs(path, exist_ok=True)
        set_top_directory(path)
        _SPREAD.add(path)


def _make_directory(store: Store, spec: ContainerSpec, container_id: str, name: str, auto_remove: bool,
                    backend: str, labels: dict[str, str]) -> Container:
    cdir = containers_dir(store) / container_id  # (made by create)
    # os.* rather than pathlib's: this is on the way of every start, and each pathlib call costs more
    for d in ("upper", "work", "rootfs"):
        os.mkdir(f"{cdir}/{d}")
    _write_new(f"{cdir}/hostname", spec.hostname + "\n")
    _write_new(f"{cdir}/hosts", f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                                 f"127.0.1.1\t{spec.hostname}\n" + "".join(f"{a}\t{n}\n" for n, a in spec.extra_hosts))
    resolv = ""
    if spec.network == "host":
        with contextlib.suppress(OSError):
            resolv = Path("/etc/resolv.conf").read_text()
    elif spec.on_a_network:
        resolv = resolv_conf_for_a_network()
    _write_new(f"{cdir}/resolv.conf", resolv)
    make_mount_sources(spec)
    container = Container(store, container_id, {
        "id": container_id, "name": name, "status": "created",
        "pid": None, "pid_start": None, "monitor_pid": None, "monitor_start": None, "created": now_iso(),
        "started_at": None, "finished_at": None, "exit_code": None, "oom_killed": False, "error": "",
        "auto_remove": auto_remove, "backend": backend, "spec": spec.to_json(),
    })
    if labels:
        container.state["labels"] = labels
    if backend == "rootless":
        from .userns import default_maps

        container.state["id_maps"] = default_maps().to_json()
    container.save()
    return container


def make_mount_sources(spec: ContainerSpec) -> None:
    """Make each volume's directory, and each ``-v`` host path that does not exist, as Docker's ``-v`` does: at
    create, and again at every start (a host directory deleted meanwhile comes back, empty)."""
    for m in spec.mounts:
        if m.volume or not os.path.exists(m.source):
            try:
                os.makedirs(m.source, exist_ok=True)
            except OSError as exc:
                raise InvalidArgument(f"-v {m.source}:{m.destination}: cannot create {m.source}: "
                                      f"{exc.strerror}") from None


def _write_new(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def wait(container: Container, timeout: float | None = None) -> int:
    """Block until the container has exited; return its exit code (``docker wait``)."""
    for _ in _polling(container, timeout):
        try:
            container.reload()
        except ContainerNotFound:  # removed (--rm) after it exited: its monitor leaves the exit code behind
            code = _exit_left_behind(container)
            if code is None:
                code = container.state.get("exit_code")
            return int(code) if code is not None else 0
        status = container.status
        if status == "exited":
            return int(container.state["exit_code"])
        if status == "dead":
            raise ContainerError(f"container {container.name} died with its monitor; its exit status is unknown")
    raise AssertionError("unreachable")  # (_polling raises ContainerTimeout at the deadline)


def _polling(container: Container, timeout: float | None) -> Iterator[None]:
    """The turns of a poll of *container*'s state: the first at once, then each a little later (1 ms, doubling up
    to 50 ms); ContainerTimeout once *timeout* seconds have passed (None: never)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.001
    while True:
        yield
        if deadline is not None and time.monotonic() > deadline:
            raise ContainerTimeout(f"timed out after {timeout} s waiting for {container.name}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def wait_until(container: Container, condition: str | None, timeout: float | None = None) -> int:
    """The Engine API's ``wait`` conditions (docker-py's ``wait(condition=...)``): "not-running" is ``wait``;
    "next-exit" waits for the end of the run under way, or else of the next one to start; "removed" waits
    until the container is gone (``rm``, or ``--rm``). Each returns the exit code of the run it saw end."""
    if condition in (None, "", "not-running"):
        return wait(container, timeout)
    if condition not in WAIT_CONDITIONS:
        raise InvalidArgument(f"invalid condition {condition!r}: use one of {', '.join(WAIT_CONDITIONS)}")
    container.reload()
    seen = container.state.get("started_at")  # with "next-exit", a run that started after this one, if it ended
    awaited = seen if container.status == "running" else None
    for _ in _polling(container, timeout):
        try:
            container.reload()
        except ContainerNotFound:
            code = _exit_left_behind(container)
            return int(code if code is not None else container.state.get("exit_code") or 0)
        run, running = container.state.get("started_at"), container.status == "running"
        if condition == "next-exit":
            if awaited is None and running and run != seen:
                awaited = run  # the next run has started: its end is the one awaited
            ended = (awaited is not None and (run != awaited or not running)) or \
                    (awaited is None and not running and run != seen)  # (it started and ended between two looks)
            if ended:  # (a restart that started it again meanwhile kept no code of that run: 0 then)
                return int(container.state.get("exit_code") or 0)
    raise AssertionError("unreachable")  # (_polling raises ContainerTimeout at the deadline)


# An auto-removed (``--rm``) container takes its state.json along, and with it its exit code, which
# ``docker wait`` still gives to those waiting for it: its monitor leaves the code behind for a minute or
# two, as a line ``<id> <code>`` appended to ``containers/.exits/<minute>``. One file a minute, not one a
# container: on a disk like these course machines' (``linux.set_top_directory``), each new inode in a
# directory every container shares costs a stream of containers dearly. Files older than two minutes go.


def _exit_left_behind(container: Container, patience: float = 2.0) -> int | None:
    """The code the monitor of a just-removed container records; it reports its exit first, then writes."""
    deadline = time.monotonic() + patience
    while (code := read_exit(container)) is None and time.monotonic() < deadline:
        if not pid_alive(container.state.get("monitor_pid"), container.state.get("monitor_start")):
            return read_exit(container)
        time.sleep(0.002)
    return code


def record_exit(container: Container, exit_code: int) -> None:
    base = containers_dir(container.store) / ".exits"
    minute = int(time.time() // 60)
    with contextlib.suppress(FileExistsError):
        os.mkdir(base)  # (not parents: a store deleted meanwhile is not made again)
    # O_APPEND: lines appended at once by several monitors each land whole, one after the other
    fd = os.open(base / str(minute), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, f"{container.id} {exit_code}\n".encode())
    finally:
        os.close(fd)
    for old in os.listdir(base):
        if old.isdigit() and int(old) < minute - 2:
            with contextlib.suppress(OSError):
                if os.path.isdir(base / old):  # (a directory of symlinks: how stores made before kept them)
                    shutil.rmtree(base / old)
                else:
                    os.unlink(base / old)


def read_exit(container: Container) -> int | None:
    """The exit code an auto-removed container's monitor left behind, if it is still there."""
    base = containers_dir(container.store) / ".exits"
    with contextlib.suppress(OSError):
        for minute in sorted(os.listdir(base), reverse=True):
            with contextlib.suppress(OSError, ValueError):
                text = (base / minute).read_text()
                # (only whole lines: one being appended may be seen half-written)
                for line in reversed(text[: text.rfind("\n") + 1].splitlines()):
                    cid, _, code = line.partition(" ")
                    if cid == container.id:
                        return int(code)
    return None


def kill(container: Container, sig: int = signal.SIGKILL) -> None:
    container.reload()
    if container.status != "running":
        raise ContainerError(f"cannot kill container {container.name}: it is not running")
    signal_waking(container, sig)


def parse_signal(text: str | int) -> int:
    """A signal as Docker's ``ParseSignal`` reads one (``kill -s``, STOPSIGNAL, the API's ``kill``): a number,
    or a name with or without ``SIG``, in any case (``usr1``, ``SIGTERM``, ``RTMIN+3``). InvalidArgument else."""
    word = str(text).strip()
    number: int | None = None
    if word.isdigit():
        number = int(word)
    else:
        name = word.upper().removeprefix("SIG")
        rt, sign, offset = name.partition("+") if "+" in name else name.partition("-")
        if rt in ("RTMIN", "RTMAX") and (not sign or offset.isdigit()):
            base = signal.SIGRTMIN if rt == "RTMIN" else signal.SIGRTMAX
            number = base + (int(offset) if sign == "+" else -int(offset) if sign else 0)
        elif name and hasattr(signal.Signals, "SIG" + name) and not name.startswith(("_", "RT")):
            number = int(signal.Signals["SIG" + name])
    if number is None or not 1 <= number <= signal.SIGRTMAX:
        raise InvalidArgument(f"Invalid signal: {text}")
    return number


def stop_signal(container: Container) -> int:
    """The signal ``stop`` sends first: SIGTERM, or the image's STOPSIGNAL (checked when it was built; one that
    is not a signal here, from an image built elsewhere, falls back to SIGTERM rather than make the container
    impossible to stop)."""
    try:
        return parse_signal(container.spec.stop_signal)
    except InvalidArgument:
        return signal.SIGTERM


def signal_waking(container: Container, sig: int) -> None:
    """``send_signal``; a paused container is then thawed if *sig* is SIGKILL or its stop signal, as Docker
    does: frozen, it could not act on them (other signals wait for ``unpause``)."""
    paused = container.paused
    send_signal(container, sig)
    if paused and sig in (signal.SIGKILL, stop_signal(container)):
        with contextlib.suppress(PyContainersError):
            cgroup_of(container).thaw()


# ---------------------------------------------------------------------------------- pause and unpause
NO_FREEZER = {"rootless": "a rootless container has no cgroup of its own to freeze",
              "proot": "a proot container has no cgroup of its own to freeze"}


def pause(container: Container) -> None:
    """``docker pause``: freeze every process of the container in its cgroup (``Cgroup.freeze``)."""
    container.reload()
    if container.status != "running":
        raise ContainerError(f"container {container.name} is not running")
    if container.paused:
        raise ContainerError(f"container {container.name} is already paused")
    backend = container.state.get("backend", "native")
    if backend in NO_FREEZER:
        raise ContainerError(f"cannot pause container {container.name}: {NO_FREEZER[backend]}")
    from .cgroup import CgroupError

    try:
        cgroup_of(container).freeze()
    except CgroupError as exc:
        if container.reload().status != "running":  # it ended meanwhile
            raise ContainerError(f"container {container.name} is not running") from None
        raise ContainerError(f"cannot pause container {container.name}: {exc}") from None


def unpause(container: Container) -> None:
    """``docker unpause``: thaw its processes; they go on where they stood."""
    container.reload()
    if not container.paused:
        raise ContainerError(f"container {container.name} is not paused")
    cgroup_of(container).thaw()


def send_signal(container: Container, sig: int) -> None:
    """Signal the container's PID 1.

    runc passes catchable signals on, but SIGKILL would kill runc and orphan the container, so runc is
    asked to deliver that one itself. proot passes nothing on, and its traced processes outlive it,
    untraced, on the host's files: a signal goes to the command it started, and SIGKILL to its whole
    process group (proot runs in one of its own, which its processes inherit).
    """
    pid = container.state["pid"]
    backend = container.state.get("backend")
    if backend == "runc" and sig == signal.SIGKILL:
        runc(container, "kill", container.id, "KILL")
    if backend == "proot":
        if sig == signal.SIGKILL:
            start = container.state.get("pid_start")
            if start is not None and process_start_time(pid) != start:
                return  # (a group has no pidfd: proot's PID is checked, then its group signalled)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)
            signal_process(pid, start, sig)  # started an instant ago: no group of its own yet
            return
        signal_process(proot_command_for(container, pid, sig), None, sig)
        return
    signal_process(pid, container.state.get("pid_start"), sig)


def signal_process(pid: int, start: int | None, sig: int) -> None:
    """Send *sig* to *pid* if it is still the process that started at *start* (``process_start_time``;
    None: any). Through a pidfd, which holds on to that one process: should it have ended meanwhile and its
    PID gone to another process, the signal is lost rather than sent to a stranger."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # no pidfd_open (Linux before 5.3, or refused by a seccomp filter): the PID itself
        if start is None or process_start_time(pid) == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        return
    try:
        if start is None or process_start_time(pid) == start:  # (the pidfd is this process's, or fails)
            signal.pidfd_send_signal(fd, sig)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def forward_signal(container: Container, pid: int, sig: int, exec_: bool = False) -> None:
    """An attached ``run``'s (or *exec_*'s) Ctrl-C (Docker's sig-proxy) to *pid*, the process that started:
    proot passes nothing on, so there its command gets it, as from ``send_signal``."""
    if container.state.get("backend") == "proot":
        pid = proot_command_for(container, pid, sig, note=not exec_)  # (an exec's end is not the container's)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def proot_command_for(container: Container, proot_pid: int, sig: int, note: bool = True) -> int:
    """The command proot started (its first child), which *sig* is for; a fatal one is *note*d first."""
    pid = next(iter(child_pids(proot_pid)), proot_pid)
    if note:
        note_fatal_signal(container, pid, sig)
    return pid


# When the command proot started dies of a signal, proot does not say which: it exits 255, or with the status
# of the last of its processes that exited (a shell's last `sleep`: 0). So a signal that ``stop``, ``kill`` or
# an attached ``run``'s Ctrl-C sends it, and that will end it (neither caught nor ignored), is noted in the
# container's directory first, and the monitor reports Docker's 128 + the signal (143 after ``stop``).
# Killed by a signal from anywhere else, the container exits with what proot says.
PROOT_SIGNAL_FILE = "proot-signal"
# Signals whose default action is not to end the process: ignored (SIGCHLD...) or stopping it (SIGTSTP...).
NOT_FATAL_BY_DEFAULT = {signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH, signal.SIGSTOP,
                        signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU}


def note_fatal_signal(container: Container, pid: int, sig: int) -> None:
    path = container.dir / PROOT_SIGNAL_FILE
    if signal_ends(pid, sig):
        path.write_text(str(sig))
    else:  # caught: what the command then does is its own exit code (a handler may well exit 255)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def signal_ends(pid: int, sig: int) -> bool:
    """Will *sig* end *pid*? Not if it catches or ignores it (the SigCgt and SigIgn masks of
    /proc/PID/status: bit N-1 for signal N), nor if the signal's default action is not to end it."""
    if sig in NOT_FATAL_BY_DEFAULT:
        return False
    try:
        with open(f"/proc/{pid}/status") as f:
            masks = {key: int(value, 16) for key, _, value in (line.partition(":\t") for line in f)
                     if key in ("SigCgt", "SigIgn")}
    except (OSError, ValueError):
        return False
    return not any(mask >> (sig - 1) & 1 for mask in masks.values())


def signal_sent_to_proot(container: Container) -> int | None:
    try:
        return int((container.dir / PROOT_SIGNAL_FILE).read_text())
    except (OSError, ValueError):
        return None


def child_pids(pid: int) -> list[int]:
    """The children of *pid* (of any of its threads), oldest first."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in sorted(os.listdir(f"/proc/{pid}/task")):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    return sorted(found)


def runc(container: Container, *args: str) -> None:
    """Run a runc command on this store's runc state directory; failures (already gone) are ignored."""
    import subprocess

    subprocess.run(["runc", "--root", str(container.store.home / "runc"), *args], capture_output=True,
                   check=False, timeout=30)


def stop(container: Container, timeout: float | None = 10.0, sig: int | None = None) -> None:
    """SIGTERM (or the image's STOPSIGNAL, or *sig*: ``stop -s``), then SIGKILL after *timeout* seconds, like
    ``docker stop``; None (or a negative number, as ``stop -t -1``) waits for as long as it takes, as Docker
    25's does."""
    container.reload()
    if container.status != "running":
        return
    run = container.state.get("started_at")
    first = stop_signal(container) if sig is None else sig
    signal_waking(container, first)
    if container.paused and first != signal.SIGKILL and first != stop_signal(container):
        with contextlib.suppress(PyContainersError):  # (signal_waking thaws for those two only)
            cgroup_of(container).thaw()
    try:
        _wait_run_ended(container, run, None if timeout is None or timeout < 0 else timeout)
    except ContainerError:
        if container.status == "running" and container.state.get("started_at") == run:
            signal_waking(container, signal.SIGKILL)
        _wait_run_ended(container, run, 10)


def _wait_run_ended(container: Container, run: object, timeout: float | None) -> None:
    """``wait``, for the run that started at *run* only: a ``start`` from elsewhere right after it ended is a
    new run, which this stop must neither wait for nor kill."""
    for _ in _polling(container, timeout):
        try:
            container.reload()
        except ContainerNotFound:  # (an ended --rm container)
            return
        if container.status != "running" or container.state.get("started_at") != run:
            if container.status == "dead":
                raise ContainerError(f"container {container.name} died with its monitor; its exit status is unknown")
            return


RESTARTING = "restarting."  # a file per ``restart`` under way: while one is there, a --rm container is kept


@contextlib.contextmanager
def kept_through_restart(container: Container) -> Iterator[None]:
    """``docker restart`` of a ``--rm`` container stops it without removing it, then starts it again (moby's
    ``HasBeenManuallyRestarted``): its monitor finds this restart's file when the container ends
    (``auto_removing``). One file per restart, so that two at once each keep the container."""
    marker = container.dir / f"{RESTARTING}{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}"
    if container.state.get("auto_remove"):
        try:
            marker.touch()
        except FileNotFoundError:
            raise ContainerNotFound(f"No such container: {container.name}") from None
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            marker.unlink()


def auto_removing(container: Container) -> bool:
    """Is this container to be removed now that it has ended: ``--rm``, and not stopped by a ``restart``?
    Asked once, before its end is saved: a ``restart`` lets its file go as soon as it sees that end."""
    if not container.state.get("auto_remove"):
        return False
    try:
        return not any(name.startswith(RESTARTING) for name in os.listdir(container.dir))
    except FileNotFoundError:  # (removed already)
        return True


def remove(container: Container, force: bool = False, volumes: bool = False) -> None:
    """Delete the container and its writable layer (``docker rm``); ``force`` kills it first; *volumes*
    (``rm -v``) removes its anonymous volumes too."""
    with contextlib.suppress(ContainerNotFound):
        container.reload()
    if container.status == "running":
        if not force:  # (Docker's words, since its 25)
            what = ("paused and must be unpaused first" if container.paused else
                    "running: stop the container before removing or force remove")
            raise ContainerError(f'cannot remove container "/{container.name}": container is {what}')
        with contextlib.suppress(ContainerError):  # it may have ended on its own since: nothing to kill
            kill(container)
        with contextlib.suppress(ContainerError):
            code = wait(container, 10)
            with contextlib.suppress(OSError):  # for a `wait` in another process, which may look only now
                record_exit(container, code)
    with contextlib.suppress(PyContainersError, OSError):
        cgroup_of(container).remove()  # normally the monitor did this; a killed monitor could not
    if container.state.get("backend") == "runc":
        runc(container, "delete", "--force", container.id)  # `runc run` normally does this when it ends
        remove_runc_cgroups(container)
    with not_starting(container):
        delete_directory(container)
    if volumes or container.state.get("auto_remove"):  # (a --rm container whose monitor could not do it)
        remove_anonymous_volumes(container)


def remove_runc_cgroups(container: Container) -> None:
    """runc makes the container's cgroup in every hierarchy (devices, freezer, cpuset...), and removes them
    at its end; killed before it had written its state (``rm -f`` just after ``run -d``), nobody does, and
    ``runc delete`` finds nothing to delete. Empty by now, they are simply removed (rmdir)."""
    import glob

    from .cgroup import PARENT

    for path in glob.glob(f"/sys/fs/cgroup/*/{PARENT}/{container.id}") + glob.glob(
            f"/sys/fs/cgroup/{PARENT}/{container.id}"):
        with contextlib.suppress(OSError):
            os.rmdir(path)


def delete_directory(container: Container) -> None:
    """Remove the container's directory: first from sight (a rename), then from the disk."""
    try:
        trash = discard_directory(container)
    except FileNotFoundError:  # a --rm container's monitor got there first (rm -f): it deletes the rest
        return
    remove_discarded(container, trash)


def discard_directory(container: Container) -> Path:
    """Rename the container's directory ``.<id>.removing``: no longer a container, not yet deleted.

    One rename, so ``run --rm`` can return as soon as the container is gone from ``ps -a``; deleting its
    files (milliseconds: the writable layer, overlayfs's work directory) comes after.
    """
    trash = containers_dir(container.store) / f".{container.id}.removing"
    try:
        with container.state_lock():
            with contextlib.suppress(ContainerNotFound):  # renamed meanwhile: its name now is the one to let go
                container.reload()
            os.rename(container.dir, trash)
    except ContainerNotFound:  # (removed by another process already: as os.rename would say)
        raise FileNotFoundError(2, "No such file or directory", str(container.dir)) from None
    release_name(container.store, container.name, container.id)
    if container.state.get("networks"):
        from . import network

        with contextlib.suppress(PyContainersError, OSError):  # (a lease left behind is dropped by the next join)
            network.leave_all(container.store, container)
    return trash


def remove_discarded(container: Container, trash: Path) -> None:
    """rm -rf a discarded container directory, whatever its command left in it.

    A rootless container's other users' files are removed from inside a user namespace (``userns``).
    Without root, a proot container (or build step) may have left a non-empty directory without write
    permission (``chmod 555 /d``): the owner's rights come back first, or its copy of the image stays.
    """
    if container.state.get("backend") == "proot":
        make_removable(trash / "rootfs")
    if "id_maps" not in container.state:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(trash)
        return
    from .userns import remove_tree_or_say  # rootless only

    remove_tree_or_say(str(trash), id_maps(container))


def remove_leftovers(store: Store) -> None:
    """Finish removals that a killed process left half done (``.<id>.removing`` directories), and delete
    what proot processes killed along with their monitor left in /tmp (``runtime.proot_temp_files``)."""
    from .runtime import remove_stale_proot_temp_files

    remove_stale_proot_temp_files()
    for volume in volumes_dir(store).glob(".*.removing"):
        with contextlib.suppress(PyContainersError, OSError):
            remove_volume_directory(volume)
    base = containers_dir(store)
    if not base.exists():
        return
    for d in base.iterdir():  # a state a crash left empty or cut (it is not fsync'ed): nothing can use it
        if not d.name.startswith(".") and _unreadable_for_a_minute(d):
            with contextlib.suppress(OSError):
                os.rename(d, base / f".{d.name}.removing")
                for name in os.listdir(names_dir(store)):  # (its name: only the link says which it was)
                    release_name(store, name, d.name)
    for d in base.glob(".*.removing"):
        state: dict[str, Any] = {}
        with contextlib.suppress(PyContainersError, OSError):
            state = read_state(d)
        with contextlib.suppress(PyContainersError, OSError):
            remove_discarded(Container(store, d.name[1:-len(".removing")], state), d)


def _unreadable_for_a_minute(cdir: Path) -> bool:
    """A container directory whose state.json is missing or cannot be read, and has not changed for a minute
    (so not one being made right now: its state comes a moment after its directory)."""
    try:
        read_state(cdir)
        return False
    except PyContainersError:
        pass
    with contextlib.suppress(OSError):
        latest = max(cdir.stat().st_mtime, *(p.stat().st_mtime for p in [cdir / "state.json"] if p.exists()))
        return time.time() - latest > 60
    return False


def make_removable(root: Path) -> None:
    """Give the owner write and search permission on every directory below *root* (not needed as root)."""
    if os.geteuid() == 0 or not root.is_dir():
        return
    with contextlib.suppress(OSError):
        os.chmod(root, stat.S_IMODE(root.lstat().st_mode) | 0o700)
    for dirpath, dirnames, _files in os.walk(root):
        for name in dirnames:
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                info = os.lstat(path)
                if stat.S_ISDIR(info.st_mode) and info.st_mode & 0o700 != 0o700:
                    os.chmod(path, stat.S_IMODE(info.st_mode) | 0o700)


def id_maps(container: Container) -> Any:
    """A rootless container's user-namespace id maps (``userns.IdMaps``), or None."""
    saved = container.state.get("id_maps")
    if not saved:
        return None
    from .userns import IdMaps

    return IdMaps.from_json(saved)


def cgroup_of(container: Container) -> Cgroup:
    """The container's cgroup, ``pycontainers/<name>`` in each hierarchy: named after the container, or
    ``warm-<PID>`` when it started from a warm monitor (``warm.py``), as state.json's ``cgroup`` says. runc
    makes a runc container's itself, where config.json's ``cgroupsPath`` says: this very path (see
    ``runtime.prepare_runc_bundle``)."""
    from .cgroup import Cgroup

    return Cgroup(container.state.get("cgroup") or container.id)


def processes(container: Container) -> list[int]:
    """Host PIDs of the container's processes: its cgroup's; without a cgroup, its PID namespace's
    (rootless) or proot's process group (proot and the processes it traces)."""
    backend = container.state.get("backend")
    if backend not in ("rootless", "proot"):
        return cgroup_of(container).pids()
    pid = container.state.get("pid")
    if not pid:
        return []
    if backend == "proot":
        return processes_in_group(pid)
    try:
        ns = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return []
    found = []
    for p in _all_pids():
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{p}/ns/pid") == ns:
                found.append(p)
    return sorted(found)


def processes_in_group(pgid: int) -> list[int]:
    return sorted(p for p in _all_pids() if _stat_field(p, 2) == str(pgid))


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _stat_field(pid: int, index: int) -> str | None:
    """Field *index* after the command name in /proc/PID/stat (0: state, 1: ppid, 2: pgrp)."""
    fields = _proc_stat(pid)
    return fields[index] if fields and len(fields) > index else None


# ---------------------------------------------------------------------------------- diff and commit


def diff(container: Container) -> list[tuple[str, str]]:
    """``docker diff``: (kind, path) for each path the container changed, kind A, C or D.

    The answer is simply overlayfs's upper directory read against the image: a file there that the
    image has was changed (copied up), one it lacks was added, and a whiteout (a 0/0 character device)
    marks a deletion. A rootless container's with subordinate ids is read from inside a user namespace
    with its maps (``reads_upper_in_namespace``).
    """
    from .image import get_image

    container.reload()  # (removed meanwhile: No such container, not an empty list)
    image_paths = get_image(container.store, container.spec.image_id).filesystem()
    if container.state.get("backend") == "proot":
        return _proot_diff(container, image_paths)
    upper = str(container.dir / "upper")
    printed = _printed_in_namespace(container, "reading the writable layer", "print_upper_paths", upper)
    if printed is not None:
        paths = [(rel, deleted) for rel, deleted in json.loads(printed)]
    else:
        paths = upper_paths(upper, is_rootless(container))
    changes = [("D" if deleted else "C" if rel in image_paths else "A", "/" + rel) for rel, deleted in paths]
    return sorted(changes, key=lambda c: c[1])


def upper_paths(upper: str, userxattr: bool) -> list[tuple[str, bool]]:
    """Each path in overlayfs's upper directory *upper*, and whether it is a whiteout (a deletion): a 0/0
    character device, or an empty file marked so in an xattr (*userxattr*: ``user.overlay.*``)."""
    import stat as st

    from .layer import overlay_xattr_prefixes

    found: list[tuple[str, bool]] = []
    for root, dirs, files in os.walk(upper):
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            info = os.lstat(full)
            deleted = (st.S_ISCHR(info.st_mode) and info.st_rdev == 0) or any(
                _has_xattr(full, p + "whiteout") for p in overlay_xattr_prefixes(userxattr))
            found.append((os.path.relpath(full, upper), deleted))
        dirs[:] = [d for d in dirs if not _is_whiteout_dev(os.path.join(root, d))]
    return found


def writable_layer_size(container: Container) -> int:
    """``docker ps -s``'s size: the bytes of the files the container wrote (its writable layer: overlayfs's upper
    directory, or for proot what changed since ``create``), each hard-linked file once. A rootless container's
    with subordinate ids is measured from inside a user namespace with its maps, as ``diff`` reads it."""
    if container.state.get("backend") == "proot":
        from . import snapshot

        before, after = _proot_changes(container)
        return sum(e.info.size for e in snapshot.diff(before, after) if e.info.isreg())
    upper = str(container.dir / "upper")
    printed = _printed_in_namespace(container, "measuring the writable layer", "print_upper_size", upper)
    return int(printed) if printed is not None else upper_size(upper)


def _printed_in_namespace(container: Container, what: str, function: str, upper: str) -> bytes | None:
    """What this module's *function* prints about *upper*, run inside a user namespace with the container's
    maps, where the writable layer must be read there (``reads_upper_in_namespace``); None where it can be
    read from here."""
    maps = id_maps(container)
    if not reads_upper_in_namespace(container) or maps is None:
        return None
    import io

    from .userns import run_inside

    out = io.BytesIO()
    run_inside(maps, f"{what} {upper}", f"pycontainers.container.{function}", upper, stdout=out)
    return out.getvalue()


def upper_size(upper: str) -> int:
    """The bytes of every file under *upper* but directories, a hard-linked one once (as Docker's
    ``directory.Size``); 0 if there is no such directory."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [upper]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
                continue
            st = entry.stat(follow_symlinks=False)
            if st.st_nlink > 1:
                if (st.st_dev, st.st_ino) in seen:
                    continue
                seen.add((st.st_dev, st.st_ino))
            total += st.st_size
    return total


def print_upper_size(upper: str) -> None:
    """(In ``userns.run_inside``'s process, as ``print_upper_paths``.) ``upper_size`` on stdout."""
    sys.stdout.write(str(upper_size(upper)))


def print_upper_paths(upper: str) -> None:
    """(In ``userns.run_inside``'s process, root of a rootless container's user namespace.) ``upper_paths``
    of its overlay upper directory, as JSON on stdout."""
    sys.stdout.write(json.dumps(upper_paths(upper, userxattr=True)))


def reads_upper_in_namespace(container: Container) -> bool:
    """Must the container's writable layer be read from inside a user namespace with its maps? When it is
    rootless with subordinate ids: what its other users made belongs to those ids on the host, and the
    student cannot read their 700 directories or 600 files."""
    maps = id_maps(container)
    return is_rootless(container) and maps is not None and (len(maps.uids) > 1 or len(maps.gids) > 1)


PROOT_BASELINE = "rootfs.snapshot.json"  # a proot container's files as they were created (snapshot.save)


def _proot_changes(container: Container) -> tuple[Any, Any]:
    """A proot container's files when it was created, and now (proot writes into a plain copy): two
    ``snapshot.Snapshot``."""
    from . import snapshot

    try:
        before = snapshot.load(container.dir / PROOT_BASELINE)
    except (OSError, ValueError, KeyError, TypeError):
        raise ContainerError(f"container {container.name} has no record of its files as created (made by an "
                             "older pycontainers?): its changes cannot be told") from None
    after = snapshot.take(container.dir / "rootfs", wait_for_clock=False)
    # proot makes a stand-in (mode 000) where a bind mount's destination is missing, and removes it only
    # when it exits normally: not the container's doing, and not part of its changes.
    for destination in ("dev", "proc", "sys", "etc/hostname", "etc/hosts", "etc/resolv.conf",
                        *(m.destination.strip("/") for m in container.spec.mounts)):
        if destination not in before.records:
            after.records.pop(destination, None)
    return before, after


def _proot_diff(container: Container, image_paths: dict[str, Any]) -> list[tuple[str, str]]:
    """``diff`` of a proot container: its files now against their snapshot at ``create``, with the same
    rule as a proot build step (``snapshot``); directories count as changed when their entries did."""
    from . import snapshot

    before, after = _proot_changes(container)
    entries = snapshot.diff(before, after)
    changes = []
    for entry in entries:
        path = entry.info.name
        parent, _, name = path.rpartition("/")
        if name.startswith(".wh."):
            changes.append(("D", "/" + (f"{parent}/" if parent else "") + name[len(".wh."):]))
        else:
            changes.append(("C" if path in image_paths else "A", "/" + path))
    return sorted(changes, key=lambda c: c[1])


def _has_xattr(path: str, name: str) -> bool:
    try:
        os.getxattr(path, name, follow_symlinks=False)
        return True
    except OSError:
        return False


def _is_whiteout_dev(path: str) -> bool:
    import stat as st

    info = os.lstat(path)
    return st.S_ISCHR(info.st_mode) and info.st_rdev == 0


def commit(container: Container, repository: str | None = None, *, message: str = "",
           author: str = "") -> Any:
    """``docker commit``: the container's writable layer becomes a new image layer on top of its image,
    and the container's configuration the new image's (``committed_settings``)."""
    from .image import add_layer, commit_image, get_image, write_layer

    container.reload()  # (removed meanwhile: No such container, not a layer that cannot be read)
    store = container.store
    image = get_image(store, container.spec.image_id)
    # The start lock, as cp holds it: an `rm -f` meanwhile waits (``not_starting``) before the writable layer
    # goes, rather than delete its files while they are being read.
    with store.writing():
        with holding_start_lock(container):
            if container.state.get("backend") == "proot":
                from . import snapshot

                before, after = _proot_changes(container)
                owners = {path: (rec.uid, rec.gid) for path, rec in image.filesystem().items()}
                entries = snapshot.diff(before, after, owners=owners)
            else:
                entries = upper_entries(container)
            desc = write_layer(store, entries)
        config = add_layer(image.config, desc, " ".join(container.spec.args), comment=message)
        settings = config.setdefault("config", {})
        for key, value in committed_settings(container, image.settings).items():
            if value is None:
                settings.pop(key, None)
            else:
                settings[key] = value
        if author:
            config["author"] = author
        return commit_image(store, config, [*image.layers, desc], [repository] if repository else [])


def entrypoint_and_cmd(container: Container, image_settings: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The container's argv split back into Docker's Entrypoint and Cmd: ``--entrypoint``'s (recorded at
    create), else the image's ENTRYPOINT when the argv begins with it; the rest is the Cmd."""
    args = container.spec.args
    entrypoint = container.state.get("entrypoint")
    if entrypoint is None:  # no --entrypoint: the image's, which the args begin with
        image_entrypoint = list(image_settings.get("Entrypoint") or [])
        entrypoint = image_entrypoint if args[:len(image_entrypoint)] == image_entrypoint else []
    return list(entrypoint), args[len(entrypoint):]


def committed_settings(container: Container, image_settings: dict[str, Any]) -> dict[str, Any]:
    """What ``commit`` changes in the image's settings, as Docker's commit: the container's Entrypoint, Cmd,
    Env, User and WorkingDir where ``run``'s options (a command, ``--entrypoint``, ``-e``, ``-u``, ``-w``)
    made them differ from the image's (None: no longer set). A container run with the image's defaults
    changes nothing: its image's settings stay exactly as they were."""
    from .spec import merge_env

    spec = container.spec
    image_entrypoint = list(image_settings.get("Entrypoint") or [])
    entrypoint, cmd = entrypoint_and_cmd(container, image_settings)
    changes: dict[str, Any] = {}
    if entrypoint != image_entrypoint:
        changes["Entrypoint"] = entrypoint or None
    if cmd != list(image_settings.get("Cmd") or []):
        changes["Cmd"] = cmd or None
    if spec.env != merge_env(list(image_settings.get("Env") or []), []):
        changes["Env"] = spec.env
    if spec.user != (image_settings.get("User") or ""):
        changes["User"] = spec.user or None
    if spec.workdir != (image_settings.get("WorkingDir") or "/"):
        changes["WorkingDir"] = spec.workdir
    return changes


def is_rootless(container: Container) -> bool:
    return container.state.get("backend") == "rootless"


def upper_entries(container: Container) -> list[layers.Entry] | layers.TarWriter:
    """The container's writable layer (overlayfs's upper directory), for ``image.write_layer``: ``commit`` and
    ``build``'s RUN steps. A rootless container's overlay keeps its markers in ``user.*`` attributes, and its
    files' host owners are turned back into the container's.

    Where a rootless container has subordinate ids (maps of more than one line), what its other users made
    belongs to those ids on the host, and the student cannot read their 700 directories or 600 files (pip's
    cache): the tar is then written by a helper process, root of a user namespace with the container's maps
    (``write_upper_tar``), and what comes back is the function copying its output into the blob. Root, and a
    student without subordinate ids (every file their own), get the entries, read in this process; both ways
    give the same bytes for the same files.
    """
    from . import layer as layers

    maps = id_maps(container)
    upper = str(container.dir / "upper")
    if reads_upper_in_namespace(container) and maps is not None:
        from functools import partial

        return partial(upper_tar_from_namespace, maps, upper, layers.source_date_epoch())
    return layers.tree_entries(upper, overlay_upper=True, userxattr=is_rootless(container),
                               id_map=maps.host_to_container if maps else None)


def upper_tar_from_namespace(maps: IdMaps, upper: str, epoch: int, out: BinaryIO) -> None:
    """Write the layer tar of the rootless overlay upper directory *upper* to *out*, as ``write_upper_tar``
    writes it inside a user namespace with *maps*. A failure there is raised here in one line (and
    ``write_layer`` then discards the blob it was writing)."""
    from .userns import run_inside

    run_inside(maps, f"archiving the writable layer {upper}", "pycontainers.container.write_upper_tar", upper,
               str(epoch), stdout=out)


def write_upper_tar(upper: str, epoch: str) -> None:
    """(In ``userns.run_inside``'s process, root of the container's user namespace.) Write the layer tar of
    the rootless overlay upper directory *upper* to stdout.

    The owners seen here are the container's already, the namespace's maps being the container's: they are
    kept as they are (no id map), and an id beyond the maps shows as the overflow id, as
    ``IdMaps.host_to_container`` gives it outside. A file that cannot be read becomes a ``LayerError``, the
    one line ``run_inside`` raises again in the caller.
    """
    from . import layer as layers
    from .errors import LayerError

    try:
        entries = layers.tree_entries(upper, overlay_upper=True, userxattr=True, epoch=int(epoch))
        with open(1, "wb", buffering=1 << 20, closefd=False) as out:
            layers.write_tar(entries, out)
    except OSError as exc:
        where = f"{os.fsdecode(exc.filename)}: " if exc.filename else "writing the layer: "
        raise LayerError(f"{where}{exc.strerror}") from None


def top(container: Container) -> list[dict[str, str]]:
    """``docker top``: the container's processes as the host sees them (host PIDs), from its cgroup."""
    import pwd

    if container.reload().status != "running":
        raise ContainerError(f"container {container.name} is not running")
    rows = []
    for pid in processes(container):
        fields = _proc_stat(pid)
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            uid = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
        rows.append({"UID": user, "PID": str(pid), "PPID": fields[1] if fields else "?", "CMD": cmd})
    return rows


# ------------------------------------------------------------------------------------------- volumes


def volumes_dir(store: Store) -> Path:
    return store.home / "volumes"


def volume_create(store: Store, name: str | None = None) -> str:
    """``docker volume create``: a directory ``volumes/NAME/_data`` that containers mount with -v NAME:/path."""
    from .spec import check_volume_name

    name = name or os.urandom(32).hex()
    check_volume_name(name)
    (volumes_dir(store) / name / "_data").mkdir(parents=True, exist_ok=True)
    return name


def volume_list(store: Store) -> list[str]:
    base = volumes_dir(store)  # (a name starting with "." is being removed: discard_anonymous_volumes)
    return sorted(d.name for d in base.iterdir()
                  if not d.name.startswith(".") and (d / "_data").is_dir()) if base.exists() else []


def volume_prune(store: Store, all_volumes: bool = False) -> list[str]:
    """``docker volume prune``: remove the anonymous volumes no container (running or not) uses, and with
    *all_volumes* (``-a``) the named ones too, as Docker 23 and later; their names."""
    removed = [name for name in unused_volumes(store) if all_volumes or is_anonymous_volume(name)]
    for name in removed:
        remove_volume_directory(volumes_dir(store) / name)
    return removed


def remove_volume_directory(path: Path) -> None:
    """rm -rf a volume: a rootless container's users (subordinate ids) may have made files in it that only
    root of a namespace with the student's maps may delete (see userns)."""
    if os.geteuid() == 0:
        shutil.rmtree(path)
        return
    from .userns import default_maps, remove_tree

    remove_tree(str(path), default_maps())


FILTERS = ("id", "name", "label", "status", "ancestor", "exited", "health")
HEALTH_STATUSES = ("starting", "healthy", "unhealthy", "none")  # none: no health check
STATUSES = ("created", "running", "paused", "exited", "dead")


def filter_containers(containers: list[Container], filters: dict[str, list[str]]) -> list[Container]:
    """``docker ps --filter``: keep the containers that match every key (any of its values): ``id`` and
    ``name`` (a prefix, a part), ``status`` (created, running, exited...), ``ancestor`` (the image, as
    named or by ID prefix), ``exited`` (the exit code), ``health`` (starting, healthy, unhealthy, none),
    ``label`` (``KEY`` or ``KEY=VALUE``; every label given must match, as Docker's)."""
    unknown = set(filters) - set(FILTERS)
    if unknown:
        raise InvalidArgument(f"invalid filter '{sorted(unknown)[0]}' (use {', '.join(FILTERS)})")
    for value in filters.get("status", []):
        if value not in STATUSES:
            raise InvalidArgument(f"invalid filter 'status={value}' (use {', '.join(STATUSES)})")
    for value in filters.get("health", []):
        if value not in HEALTH_STATUSES:
            raise InvalidArgument(f"Unrecognised filter value for health: {value} (use {', '.join(HEALTH_STATUSES)})")
    for value in filters.get("exited", []):
        if not value.lstrip("-").isdigit():
            raise InvalidArgument(f"invalid filter 'exited={value}': an exit code is a number")
    import re

    try:  # Docker's name filter is a regular expression, searched in the name
        names = [re.compile(value.lstrip("/")) for value in filters.get("name", [])]
    except re.error as exc:
        raise InvalidArgument(f"invalid filter 'name': {exc}") from None

    def matches(c: Container, key: str, value: str) -> bool:
        if key == "id":
            return c.id.startswith(value)
        if key == "name":
            return any(pattern.search(c.name) for pattern in names)
        if key == "status":
            return c.docker_status == value
        if key == "ancestor":
            image_id = c.spec.image_id.removeprefix("sha256:")
            return value in (c.spec.image_name, f"{c.spec.image_name}:latest") or image_id.startswith(
                value.removeprefix("sha256:"))
        if key == "health":
            return (c.state.get("health") or {}).get("Status", "none") == value
        if key == "label":
            name, has_value, wanted = value.partition("=")
            labels = c.state.get("labels") or {}
            return name in labels and (not has_value or labels[name] == wanted)
        return c.status == "exited" and str(c.state.get("exit_code")) == value  # exited

    def all_or_any(key: str) -> Callable[[Iterable[bool]], bool]:
        return all if key == "label" else any

    return [c for c in containers
            if all(all_or_any(key)(matches(c, key, v) for v in values) for key, values in filters.items())]


def select_containers(store: Store, all: bool = False, filters: dict[str, list[str]] | None = None,  # noqa: A002
                      limit: int | None = None) -> list[Container]:
    """``docker ps``'s list, newest first: the running containers (every one with *all*, a ``status`` or
    ``exited`` filter, or a *limit*: ``-n``, ``-l``), those *filters* keep, then the first *limit* of them
    (0 or less: no limit), as the daemon's ``reduceContainers`` counts only the containers it keeps."""
    filters = filters or {}
    everything = all or "status" in filters or "exited" in filters or limit is not None
    chosen = filter_containers(list_containers(store, all=everything), filters)
    return chosen[:limit] if limit is not None and limit > 0 else chosen


def is_anonymous_volume(name: str) -> bool:
    """Made for a container (``-v /path``, an image's VOLUME): named by 64 random hex digits
    (``spec.anonymous_volume``), as Docker names them (Docker also labels them; the name is what tells here)."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def unused_volumes(store: Store) -> list[str]:
    used = {m.volume for c in list_containers(store) for m in c.spec.mounts if m.volume}
    return [name for name in volume_list(store) if name not in used]


def volume_users(store: Store, name: str) -> list[Container]:
    return [c for c in list_containers(store) if any(m.volume == name for m in c.spec.mounts)]


def volume_remove(store: Store, name: str, force: bool = False) -> None:
    """``docker volume rm``: refuses a volume that a container (running or not) uses, even with *force*, as
    Docker's does (its ``-f`` only makes a missing volume nothing to do: see the CLI)."""
    path = volume_path(store, name)
    users = volume_users(store, name)
    if users:
        raise ContainerError(f"remove {name}: volume is in use - [{', '.join(c.id for c in users)}]", 1)
    remove_volume_directory(path)


def remove_anonymous_volumes(container: Container, keep: set[str] | None = None) -> list[str]:
    """Remove the volumes made for *container* alone (``-v /path``, the image's VOLUME) once it is gone, as
    ``docker rm -v`` and ``--rm`` do; their names. One that another container mounts too (by name) stays,
    and so do those named in *keep*."""
    discarded = discard_anonymous_volumes(container, keep)
    for path in discarded:
        remove_volume_directory(path)
    return [path.name[1:-len(".removing")] for path in discarded]


def discard_anonymous_volumes(container: Container, keep: set[str] | None = None) -> list[Path]:
    """``remove_anonymous_volumes``' first half: rename them ``.<name>.removing`` (gone from ``volume ls`` at
    once, as ``discard_directory``); the paths left to delete."""
    mine = [m.volume for m in container.spec.mounts if m.anonymous and m.volume and m.volume not in (keep or ())]
    if not mine:
        return []
    store = container.store
    used = {m.volume for c in list_containers(store) if c.id != container.id for m in c.spec.mounts}
    discarded = []
    for name in mine:
        if name in used:
            continue
        trash = volumes_dir(store) / f".{name}.removing"
        with contextlib.suppress(FileNotFoundError):
            os.rename(volumes_dir(store) / name, trash)
            discarded.append(trash)
    return discarded


def volume_path(store: Store, name: str) -> Path:
    """The directory of the volume *name*; ContainerNotFound ("no such volume") if there is none."""
    from .spec import _VOLUME_NAME

    path = volumes_dir(store) / name
    if not _VOLUME_NAME.match(name) or not (path / "_data").is_dir():
        raise ContainerNotFound(f"no such volume: {name if len(name) < 80 else name[:77] + '...'}")
    return path


def volume_inspect(store: Store, name: str) -> dict[str, Any]:
    path = volume_path(store, name)
    return {"Name": name, "Driver": "local", "Mountpoint": str(path / "_data"), "Scope": "local",
            "UsedBy": [c.name for c in volume_users(store, name)]}
