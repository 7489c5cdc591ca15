"""Self-checking exercises of the Compose notebook (09): a service added to a running application, the
containers a second ``up`` replaces, and a volume that outlives ``down`` but not ``down -v``.

The same pattern as ``pycontainers.exercises`` and ``pycontainers.netexercises``: a notebook cell ends with
``check_...(client, ..., answer)``, which returns a ``Check`` (✓, ✗ with a hint, "not answered yet", or
"cannot be checked here") and never raises for a student's mistake. The truth comes from the engine itself:
the page the application serves now, the configuration hashes ``compose.up`` compares
(``compose.config_hash``), and a real run of the student's file (up, down, up, down -v, up), each read from
the containers' logs.

Core code: no IPython import.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import compose
from .errors import PyContainersError
from .exercises import Check, _shown, cannot_check, is_unanswered, not_answered
from .netexercises import _backend, _container_names, _get, fetch

if TYPE_CHECKING:
    from .api import Client
    from .store import Store


def service_url(client: Client, container_name: str, port: int, path: str = "/") -> str | None:
    """Where a program on this machine reaches *port* of a container: through the port it publishes, or, on
    this machine's own network (a service of a project run without root, or any container under proot), at
    127.0.0.1 itself. None if the container is not running or neither applies."""
    container = _get(client, container_name)
    if container is None or container.status != "running":
        return None
    for binding in container.ports.get(f"{port}/tcp") or []:
        host_ip = binding["HostIp"]
        return f"http://{'127.0.0.1' if host_ip in ('0.0.0.0', '') else host_ip}:{binding['HostPort']}{path}"
    attrs = container.attrs
    if attrs["HostConfig"].get("NetworkMode") == "host" or attrs.get("RuntimeBackend") == "proot":
        return f"http://127.0.0.1:{port}{path}"
    return None


def _load(compose_file: str | Path) -> compose.Project | Check:
    try:
        return compose.load(compose_file)
    except PyContainersError as error:
        return Check(False, f"the file cannot be used: {error}", "Fix what the sentence names, then run the cell "
                                                                 "that writes the file again.")


# ------------------------------------------------------------------------------------ a service added


def _problem_hint(line: str, service: str, port: int) -> str:
    """What to do about the reason the page gives for having no answer from *service*."""
    lower = line.lower()
    if any(words in lower for words in ("no such name", "name resolution", "not known", "bad address")):
        return (f"The frontend cannot look up the name {service}: the service must be called exactly {service}, "
                "on the project's network (no network_mode), and be started with `up -d`.")
    if "refused" in lower:
        return (f"Nothing listens on port {port} in {service}: its command must start a web server on that port "
                f"and keep it in the foreground, e.g. busybox's `httpd -f -p {port} -h DIRECTORY`.")
    if "not found" in lower or "404" in lower:
        return (f"{service} answers, but has no page at /: its server must serve the directory that holds the "
                "offer's index.html (mount that folder into the container with `volumes:` and give httpd that "
                "directory with -h).")
    return f"Its output may say why: `pycontainers compose logs {service}`."


def check_service_added(client: Client, compose_file: str | Path, service: str, frontend: str, port: int,
                        expected: str, service_port: int = 8000, wait: float = 5.0) -> Check:
    """Add a service *service* to *compose_file* (and ``up -d`` it) so that the page of *frontend*'s *port*
    shows *expected*. The page is fetched as a visitor would; when *expected* is not on it, the line of the
    page that names *service* says why (the name is unknown, nothing listens, no such page)."""
    if _backend() == "none":
        return cannot_check("containers cannot run here, so the application is not running.")
    project = _load(compose_file)
    if isinstance(project, Check):
        return project
    file = Path(compose_file)
    if service not in project.services:
        return not_answered(f"add a service named {service!r} to {file}, then start it with "
                            f"`!pycontainers compose -f {file} up -d`.")
    if frontend not in project.services:
        return Check(False, f"{file} has no service {frontend!r} any more.",
                     "Keep the services of the file as they were, and add one.")
    name = project.services[service].container_name
    container = _get(client, name)
    if container is None:
        return Check(False, f"{service} is in the file, but it has no container yet.",
                     f"Start it: `!pycontainers compose -f {file} up -d`.")
    if container.status != "running":
        return Check(False, f"{name} is not running (it is {container.status}).",
                     "A server must stay in the foreground, or its container ends at once (busybox's httpd needs "
                     f"-f). Its output says more: `!pycontainers compose -f {file} logs {service}`.")
    url = service_url(client, project.services[frontend].container_name, port)
    if url is None:
        return Check(False, f"the {frontend} service is not running, so there is no page to look at.",
                     f"Start the application: `!pycontainers compose -f {file} up -d`.")
    deadline = time.monotonic() + wait
    while True:  # a server that has just started may need a moment
        page, problem = fetch(url)
        if (page is not None and expected in page) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if page is None:
        return Check(False, f"{url} gives no page ({problem}).",
                     f"Look at the frontend's output: `!pycontainers compose -f {file} logs {frontend}`.")
    if expected in page:
        return Check(True, f"Right: {url} shows {expected!r}. The frontend found the new service by its name, "
                           "and nobody had to publish a port: services reach each other on the project's own "
                           "network.")
    lines = [li.strip() for li in page.splitlines() if li.strip()]
    line = next((li for li in lines if service in li), lines[-1] if lines else "")
    shown = line if len(line) <= 160 else line[:157] + "..."
    return Check(False, f"the page does not show {expected!r}; it says: {shown}",
                 _problem_hint(line, service, service_port))


# ----------------------------------------------------------------------------- what a second up replaces


_KEYS = {**{engine: key for key, engine in compose.OPTIONS.items()}, "env_files": "env_file",
         "network_aliases": "aliases", "extra_hosts": "extra_hosts"}


def _image_id(store: Store, name: str) -> str:
    """The ID of the image *name* names in the store now (what ``up`` without ``--build`` runs), or the name."""
    from .image import get_image

    try:
        return get_image(store, name).id
    except PyContainersError:
        return name


def _changes(store: Store, before: compose.Service, after: compose.Service) -> list[str]:
    """What differs between two versions of a service among what its configuration hash covers."""
    found = []
    if _image_id(store, before.image) != _image_id(store, after.image):
        found.append("image")
    if before.command != after.command:
        found.append("command")
    found += [_KEYS.get(key, key) for key in sorted(set(before.options) | set(after.options))
              if before.options.get(key) != after.options.get(key)]
    if before.labels != after.labels:
        found.append("labels")
    if before.container_name != after.container_name:
        found.append("container_name")
    return found


def replaced_by_up(store: Store, before: compose.Project, after: compose.Project) -> dict[str, list[str]]:
    """{service: what changed} for each service whose container ``up -d`` (without ``--build``) would replace,
    if the running containers were made from *before* and the file now says *after*: those whose
    configuration hash differs (``compose.config_hash``: image ID, command, options, labels, name)."""
    replaced = {}
    for name, new in after.services.items():
        old = before.services.get(name)
        if old is None:
            continue
        was = compose.config_hash(old, _image_id(store, old.image))
        if was != compose.config_hash(new, _image_id(store, new.image)) or old.container_name != new.container_name:
            replaced[name] = _changes(store, old, new)
    return replaced


def _why_kept(service: compose.Service) -> str:
    built = (" (without --build, up runs the image it built before, whatever changed in the build context)"
             if service.build is not None else "")
    return (f"{service.name}: its image ID{built} and its settings are the same, so its configuration hash is too "
            "(comments, and the order of a service's keys, are not part of it)")


def check_recreated(store: Store, before_file: str | Path, after_file: str | Path, answer: object) -> Check:
    """Which services' containers does ``up -d`` replace when the file changes from *before_file* to
    *after_file*? Answer: a set of service (or container) names. The truth is ``replaced_by_up``."""
    if is_unanswered(answer):
        return not_answered("set `answer` to the set of services whose containers `up -d` replaces, e.g. "
                            '{"api"} (or set() for none).')
    before = _load(before_file)
    if isinstance(before, Check):
        return before
    after = _load(after_file)
    if isinstance(after, Check):
        return after
    chosen = _container_names(answer)
    services = list(after.services)
    if chosen is None:
        return Check(False, f"{_shown(answer)} is not a set of service names.",
                     'Write a set of names, such as {"' + services[0] + '"}, or set() for none.')
    by_container = {s.container_name: s.name for s in (*before.services.values(), *after.services.values())}
    chosen = {by_container.get(n, n) for n in chosen}
    if unknown := sorted(chosen - set(services) - set(before.services)):
        return Check(False, f"{', '.join(unknown)}: not a service of this project ({', '.join(services)}).",
                     "Name services as the file does (a container's name works too).")
    truth = replaced_by_up(store, before, after)
    why = {name: f"{name}: its {', '.join(changed)} changed" for name, changed in truth.items()}
    why |= {name: f"{name}: new, so up creates its first container" if name not in before.services
            else _why_kept(svc) for name, svc in after.services.items() if name not in truth}
    if chosen == set(truth):
        listed = ", ".join(sorted(truth)) or "no container"
        return Check(True, f"Right: up -d replaces {listed}. " + "; ".join(why[n] for n in services) + ".")
    wrong = sorted(chosen ^ set(truth))
    first = wrong[0]
    if first not in after.services:
        hint = (f"{first} is no longer in the file: up leaves its container alone (and warns about an orphan), "
                "unless you give --remove-orphans.")
    elif first not in before.services:
        hint = why[first] + ", and replaces nothing."
    elif first in truth:
        hint = (why[first] + ", and a container is replaced when anything its configuration hash covers "
                "changes (the image ID, command, environment, ports, volumes...).")
    else:
        hint = why[first] + "."
    return Check(False, f"Not quite: you are wrong about {', '.join(wrong)}.", hint)


# -------------------------------------------------------------------- a volume that outlives down


def _printed(client: Client, name: str, timeout: float) -> str | None:
    """What container *name* printed once it has ended (its last line), or None if it did not end in time."""
    container = _get(client, name)
    if container is None:
        return ""
    try:
        container.wait(timeout=timeout)
    except PyContainersError:
        return None
    container.reload()
    if container.status == "running":
        return None
    lines = container.logs().decode(errors="replace").strip().splitlines()
    return lines[-1].strip() if lines else ""


def _keeping(service: compose.Service, mount: str, project: compose.Project) -> str:
    """What the service mounts at *mount*: "named", "anonymous", "bind" or "" (nothing)."""
    for volume in service.options.get("volumes") or []:
        source, colon, rest = str(volume).partition(":")
        target = rest.partition(":")[0] if colon else source
        if target.rstrip("/") != mount.rstrip("/"):
            continue
        if not colon:
            return "anonymous"
        if source.startswith("/"):
            return "bind"
        return "external" if source in project.external else "named"
    return ""


def check_volume_outlives_down(client: Client, answer: object, project: str = "guestbook", service: str = "book",
                               mount: str = "/data", timeout: float = 30.0) -> Check:
    """*answer*: the text of a compose file for a project named *project* whose service *service* counts its
    runs in a file under *mount* (it prints the count and ends). The file is run for real, as a student would:
    up, then down and up (the count must go on: the volume was kept), then down -v and up (it must start again:
    the volume was removed); everything goes at the end."""
    if is_unanswered(answer):
        return not_answered(f"set `answer` to the text of your compose file (a string) for the project {project}.")
    if not isinstance(answer, str):
        return Check(False, f"{_shown(answer)} is not the text of a compose file.",
                     'Write the file as a string: answer = """services: ..."""')
    if _backend() == "none":
        return cannot_check("containers cannot run here, so the file cannot be run.")
    directory = Path(tempfile.mkdtemp(prefix="pycontainers-exercise-"))
    try:
        (directory / "compose.yaml").write_text(answer)
        loaded = _load(directory / "compose.yaml")
        if isinstance(loaded, Check):
            return loaded
        if loaded.name != project:
            return Check(False, f"the project is called {loaded.name!r}, not {project!r}.",
                         f"Without a name of its own, a project is named after its directory. Give it one on the "
                         f"first line of the file: name: {project}")
        if service not in loaded.services:
            return Check(False, f"the file has no service {service!r}.",
                         f"Keep the service {service} of the exercise, with its image and command.")
        return _run_three_times(client, loaded, service, mount, timeout)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _quiet(line: str) -> None:
    """Where compose's own messages go while a check runs a student's file: they are not the exercise's."""


def _run_three_times(client: Client, project: compose.Project, service: str, mount: str, timeout: float) -> Check:
    from .container import volume_list, volume_remove, volume_users

    store = client.store
    name = project.services[service].container_name
    volumes_before = set(volume_list(store))
    counts: list[str] = []
    steps = ("after up", "after down and up", "after down -v and up")
    try:
        compose.down(store, project, volumes=True, say=_quiet)  # whatever an interrupted check left
        for step in range(3):
            if step == 1:
                compose.down(store, project, say=_quiet)
            elif step == 2:
                compose.down(store, project, volumes=True, say=_quiet)
            compose.up(store, project, say=_quiet)
            printed = _printed(client, name, timeout)
            if printed is None:
                return Check(False, f"{service} did not end within {timeout:.0f} s.",
                             "Keep the command of the exercise: it counts, prints the count and ends.")
            counts.append(printed)
    except PyContainersError as error:
        return Check(False, f"running the file failed: {error}", "Fix what the sentence names.")
    finally:
        with contextlib.suppress(PyContainersError):
            compose.down(store, project, volumes=True, say=_quiet)
        for left in set(volume_list(store)) - volumes_before:  # anonymous volumes a plain down kept
            if re.fullmatch(r"[0-9a-f]{64}", left) and not volume_users(store, left):
                with contextlib.suppress(PyContainersError):
                    volume_remove(store, left)
    said = ", ".join(f"{_short(c) or 'nothing'} {s}" for c, s in zip(counts, steps, strict=True))
    if counts == ["1", "2", "1"]:
        volume = next(iter(project.volumes.values()), "its volume")
        return Check(True, f"Right: {service} printed {said}. The volume {volume} kept the file through down, and "
                           "down -v removed it with the containers and the network.")
    kept = _keeping(project.services[service], mount, project)
    mount_one = (f"Mount a named volume there: `volumes: [\"NAME:{mount}\"]` in the service, and `NAME: {{}}` under "
                 "a top-level `volumes:` section.")
    if not all(c.isdigit() for c in counts):
        if not kept:
            return Check(False, f"{service} printed {said}: not a count.",
                         f"Nothing is mounted at {mount}, and the image has no such folder. " + mount_one)
        return Check(False, f"{service} printed {said}: not a count.",
                     "Keep the command of the exercise: it prints how many times it has run.")
    if counts[1] == "1":
        hint = {"anonymous": f"{mount} is an anonymous volume: each new container gets a new, empty one. Give the "
                             "volume a name, and declare that name in a top-level `volumes:` section.",
                "": f"Nothing is mounted at {mount}, so the file is in the container's own writable layer, which "
                    "goes with the container. " + mount_one}.get(kept, f"Mount the volume at {mount}, where the "
                                                                       "command writes.")
        return Check(False, f"{service} printed {said}: the count started again after down.", hint)
    if counts[2] != "1":
        hint = {"bind": "That is a folder of this machine (a bind mount): down -v removes volumes, never your own "
                        "folders. Use a named volume, declared in a top-level `volumes:` section.",
                "external": "An external volume belongs to no project: down -v leaves it. Let the project make its "
                            "own (leave out external)."}.get(kept, "Use a volume the file declares, without external.")
        return Check(False, f"{service} printed {said}: the count survived down -v.", hint)
    return Check(False, f"{service} printed {said}.", "Run it as the exercise says, and look at each count.")


def _short(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["check_recreated", "check_service_added", "check_volume_outlives_down", "replaced_by_up", "service_url"]
