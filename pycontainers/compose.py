"""Compose: a multi-container application described in one file, run as ``docker compose`` runs it.

A microservice application is several containers that must be started in the right order, on one network
where they find each other by name, with their ports, volumes and settings. Typing each ``run`` by hand is
what notebook 08 does once; ``compose.yaml`` writes it down::

    services:
      api:
        build: ./api              # an image built from ./api/Dockerfile, named <project>-api
      web:
        image: shop-web
        ports: ["8080:5000"]
        environment: {API_URL: "http://api:5000"}
        depends_on: [api]         # started after api
    volumes: {}
    networks: {}

``up`` makes (once) the project's network ``<project>_default`` and its named volumes ``<project>_<name>``,
builds what must be built, and starts one container per service, named ``<project>-<service>-1``, in the
order ``depends_on`` gives; on its network each is found by its service name too (a network alias). Each
container carries Compose's labels (project, service, a hash of its configuration), so a second ``up``
leaves a container whose configuration did not change as it is, and replaces one whose did. ``down``
removes the containers and the network (``-v``: the volumes too). No daemon watches over them: there are
no restart policies (``restart: "no"`` only), as pycontainers has nothing running in the background.

What this module understands is a subset of the Compose specification; anything else in the file is
refused in one sentence naming the file, the service and the key, never silently ignored. Values may use
``${VAR}``, ``${VAR:-default}`` and ``$$``, from the environment and the project's ``.env`` file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import PyContainersError
from .store import Store

FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
HASH_LABEL = "com.docker.compose.config-hash"
DIRECTORY_LABEL = "com.docker.compose.project.working_dir"
TOP_KEYS = {"name", "version", "services", "networks", "volumes"}
SERVICE_KEYS = {"image", "build", "command", "entrypoint", "environment", "env_file", "ports", "volumes",
                "depends_on", "working_dir", "user", "hostname", "container_name", "networks", "network_mode",
                "init", "read_only", "tty", "stdin_open", "mem_limit", "cpus", "pids_limit", "labels", "expose",
                "restart", "extra_hosts"}
BUILD_KEYS = {"context", "dockerfile", "args", "network", "target"}
OPTIONS = {"working_dir": "workdir", "user": "user", "hostname": "hostname", "init": "init",
           "read_only": "read_only", "tty": "tty", "stdin_open": "interactive", "mem_limit": "memory",
           "cpus": "cpus", "pids_limit": "pids_limit"}  # the service's key -> create_from_image's option


class ComposeError(PyContainersError):
    """The compose file cannot be run as written (one sentence: the file, the service, the key)."""


@dataclass
class Build:
    context: Path
    dockerfile: str = "Dockerfile"
    args: dict[str, str] = field(default_factory=dict)
    network: str = "none"
    target: str | None = None


@dataclass
class Service:
    name: str
    image: str  # what the container runs: the service's image, or the one its build makes
    container_name: str
    command: list[str] | None = None
    build: Build | None = None
    depends_on: list[str] = field(default_factory=list)
    network: str = "none"  # the engine's network (``<project>_default``...), or none/host/bridge
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # for container.create_from_image


@dataclass
class Project:
    name: str
    directory: Path
    file: Path
    services: dict[str, Service]  # in the order they start (each after what it depends on)
    networks: dict[str, str]  # the file's name -> the engine's (``default`` -> ``<project>_default``)
    volumes: dict[str, str]  # likewise (``data`` -> ``<project>_data``)
    external: set[str] = field(default_factory=set)  # engine names of networks and volumes made elsewhere


# ------------------------------------------------------------------------------------------- loading


def find_file(directory: str | os.PathLike[str] = ".") -> Path:
    """The compose file of *directory*, by Compose's names (``compose.yaml`` first)."""
    for name in FILE_NAMES:
        if (path := Path(directory) / name).is_file():
            return path
    raise ComposeError(f"no compose file in {Path(directory).resolve()} (looked for {', '.join(FILE_NAMES)})")


def load(path: str | os.PathLike[str] | None = None, project_name: str | None = None,
         environ: dict[str, str] | None = None) -> Project:
    """Read and check a compose file (a directory: its compose file; None: this directory's)."""
    import yaml

    file = Path(path) if path is not None else find_file()
    if file.is_dir():
        file = find_file(file)
    where = file.name
    try:
        document = yaml.safe_load(file.read_text())
    except OSError as exc:
        raise ComposeError(f"cannot read {file}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise ComposeError(f"{where}{at}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict) or not document["services"]:
        raise ComposeError(f"{where}: a compose file needs a 'services' section naming at least one service")
    unknown = sorted(set(document) - TOP_KEYS)
    if unknown:
        raise ComposeError(f"{where}: top-level key {unknown[0]!r} is not supported "
                           f"(use {', '.join(sorted(TOP_KEYS))})")
    directory = file.resolve().parent
    env = {**_dot_env(directory / ".env"), **(environ if environ is not None else os.environ)}
    document = _interpolate(document, env, where)
    name = _project_name(project_name or env.get("COMPOSE_PROJECT_NAME") or document.get("name") or directory.name,
                         where)
    networks, volumes, external = _declared(document, name, where)
    services = {svc: _service(svc, spec, name, directory, networks, volumes, where)
                for svc, spec in document["services"].items()}
    return Project(name, directory, file.resolve(), _in_start_order(services, where), networks, volumes, external)


def _dot_env(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of the project's ``.env`` (comments and blank lines skipped, quotes taken off)."""
    values = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, eq, value = line.strip().partition("=")
            if eq and key and not key.startswith("#"):
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    value = value[1:-1]
                values[key.strip()] = value
    return values


_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def _interpolate(value: Any, env: dict[str, str], where: str) -> Any:
    """``${VAR}``, ``$VAR``, ``${VAR:-default}`` (unset or empty), ``${VAR-default}`` (unset),
    ``${VAR:?message}`` (an error), ``$$`` (a dollar sign) in every string of the document."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, where) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        if m[1]:
            return "$"
        name = m[2] or m[5]
        given = env.get(name)
        if m[3] in (":-", ":?") and not given:
            given = None
        if given is not None:
            return given
        if m[3] and m[3].endswith("?"):
            raise ComposeError(f"{where}: variable {name} is required: {m[4] or 'it is not set'}")
        return m[4] if m[3] else ""

    return _VARIABLE.sub(substitute, value)


def _project_name(raw: str, where: str) -> str:
    """Compose's rule: lower case, only letters, digits, '-' and '_', starting with a letter or digit."""
    name = re.sub(r"[^a-z0-9_-]", "", str(raw).lower())
    if not name or not name[0].isalnum():
        raise ComposeError(f"{where}: {raw!r} does not make a project name: give one with -p (letters, digits, "
                           "'-', '_')")
    return name


def _declared(document: dict[str, Any], project: str, where: str) -> tuple[dict[str, str], dict[str, str], set[str]]:
    networks = {"default": f"{project}_default"}
    volumes: dict[str, str] = {}
    external: set[str] = set()
    for section, names in (("networks", networks), ("volumes", volumes)):
        entries = document.get(section) or {}
        if not isinstance(entries, dict):
            raise ComposeError(f"{where}: '{section}' must map names to settings")
        for key, settings in entries.items():
            settings = settings or {}
            if not isinstance(settings, dict) or set(settings) - {"external", "name", "driver"}:
                raise ComposeError(f"{where}: {section[:-1]} {key!r}: only 'external', 'name' and 'driver' are "
                                   "supported")
            if settings.get("driver") not in (None, "bridge" if section == "networks" else "local"):
                raise ComposeError(f"{where}: {section[:-1]} {key!r}: driver {settings['driver']!r} is not "
                                   "supported")
            names[key] = str(settings.get("name") or (key if settings.get("external") else f"{project}_{key}"))
            if settings.get("external"):
                external.add(names[key])
    return networks, volumes, external


def _service(svc: str, spec: Any, project: str, directory: Path, networks: dict[str, str],
             volumes: dict[str, str], where: str) -> Service:
    at = f"{where}: service {svc!r}"
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", str(svc)):
        raise ComposeError(f"{at}: a service name may have only letters, digits, '_', '.', '-'")
    if not isinstance(spec, dict):
        raise ComposeError(f"{at}: its settings must be a mapping")
    unknown = sorted(set(spec) - SERVICE_KEYS)
    if unknown:
        raise ComposeError(f"{at}: {unknown[0]!r} is not supported by pycontainers")
    if spec.get("restart") not in (None, "no"):
        raise ComposeError(f"{at}: restart {spec['restart']!r} needs a daemon to restart containers, and "
                           "pycontainers has none: leave it out (or write \"no\")")
    build = _build(spec["build"], directory, f"{at}: build") if "build" in spec else None
    if "image" not in spec and build is None:
        raise ComposeError(f"{at}: give an 'image' to run or a 'build' to make one")
    image = str(spec.get("image") or f"{project}-{svc}")
    options: dict[str, Any] = {engine: spec[key] for key, engine in OPTIONS.items() if key in spec}
    if "entrypoint" in spec:
        options["entrypoint"] = _words(spec["entrypoint"], f"{at}: entrypoint")
    options["environment"] = _environment(spec.get("environment"), f"{at}: environment")
    env_files = spec.get("env_file") or []
    options["env_files"] = [str(directory / f) for f in ([env_files] if isinstance(env_files, str) else env_files)]
    options["ports"] = [_port(p, f"{at}: ports") for p in spec.get("ports") or []]
    hosts = spec.get("extra_hosts") or []
    options["extra_hosts"] = ([f"{k}:{v}" for k, v in hosts.items()] if isinstance(hosts, dict)
                              else [str(h) for h in hosts])
    options["volumes"] = [_volume(v, directory, volumes, f"{at}: volumes") for v in spec.get("volumes") or []]
    network, aliases = _network(spec, networks, f"{at}")
    options["network"] = network
    if network not in ("none", "host", "bridge"):  # found by its service's name there, as under Compose
        options["network_aliases"] = list(dict.fromkeys([svc, *aliases]))
    depends = spec.get("depends_on") or []
    if isinstance(depends, dict):
        for other, condition in depends.items():
            wanted = (condition or {}).get("condition", "service_started") if isinstance(condition, dict) else None
            if wanted != "service_started":
                raise ComposeError(f"{at}: depends_on {other!r}: only condition service_started is supported "
                                   "(there are no health checks)")
        depends = list(depends)
    labels = spec.get("labels") or {}
    if isinstance(labels, list):
        labels = dict(item.partition("=")[::2] for item in map(str, labels))
    return Service(svc, image, str(spec.get("container_name") or f"{project}-{svc}-1"),
                   _words(spec["command"], f"{at}: command") if "command" in spec else None, build,
                   [str(d) for d in depends], network, {str(k): str(v) for k, v in labels.items()}, options)


def _build(value: Any, directory: Path, at: str) -> Build:
    if isinstance(value, str):
        value = {"context": value}
    if not isinstance(value, dict) or set(value) - BUILD_KEYS:
        extra = sorted(set(value) - BUILD_KEYS) if isinstance(value, dict) else []
        raise ComposeError(f"{at}: {repr(extra[0]) + ' is not supported' if extra else 'give a directory'}")
    args = value.get("args") or {}
    if isinstance(args, list):
        args = dict(item.partition("=")[::2] for item in map(str, args))
    network = str(value.get("network") or "none")
    if network not in ("none", "host"):
        raise ComposeError(f"{at}: network {network!r}: RUN steps have only none and host")
    return Build((directory / str(value.get("context", "."))).resolve(), str(value.get("dockerfile", "Dockerfile")),
                 {str(k): str(v) for k, v in args.items()}, network, value.get("target"))


def _words(value: Any, at: str) -> list[str]:
    """A command: a list as it is, a string split as a shell would (Compose's rule, not a shell's run)."""
    if isinstance(value, list):
        odd = next((v for v in value if isinstance(v, bool) or not isinstance(v, str | int | float)), None)
        if odd is not None:  # (YAML reads [true] as a boolean: Compose refuses it too)
            raise ComposeError(f"{at}: {odd!r} is not a string: quote it")
        return [str(v) for v in value]
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ComposeError(f"{at}: {exc}") from None
    raise ComposeError(f"{at}: give a string or a list")


def _environment(value: Any, at: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):  # KEY: null takes KEY from this environment, as -e KEY does
        return [k if v is None else f"{k}={'true' if v is True else 'false' if v is False else v}"
                for k, v in value.items()]
    if isinstance(value, list):
        return [str(v) for v in value]
    raise ComposeError(f"{at}: give a mapping or a list of KEY=VALUE")


def _port(value: Any, at: str) -> str:
    text = str(value)
    text, _, protocol = text.partition("/")
    if protocol not in ("", "tcp"):
        raise ComposeError(f"{at}: {value!r}: only TCP ports can be published here")
    return text


def _volume(value: Any, directory: Path, volumes: dict[str, str], at: str) -> str:
    """Compose's short syntax: ``./dir:/path`` (relative to the project), ``name:/path`` (a volume the file
    declares), ``/path`` (anonymous), each with ``:ro`` if wanted."""
    if not isinstance(value, str):
        raise ComposeError(f"{at}: {value!r}: use the short syntax, SOURCE:TARGET[:ro]")
    source, colon, rest = value.partition(":")
    if not colon:
        return value
    if source.startswith((".", "~")):
        source = str((directory / os.path.expanduser(source)).resolve())
    elif not source.startswith("/"):
        if source not in volumes:
            raise ComposeError(f"{at}: volume {source!r} is not declared in the top-level 'volumes' section")
        source = volumes[source]
    return f"{source}:{rest}"


def _network(spec: dict[str, Any], networks: dict[str, str], at: str) -> tuple[str, list[str]]:
    """The service's one network (the engine gives a container one) and its aliases there: its own name
    first, as Compose gives every service on every network."""
    mode = spec.get("network_mode")
    if mode is not None:
        if "networks" in spec or mode not in ("none", "host", "bridge"):
            raise ComposeError(f"{at}: network_mode {mode!r}: use none, host or bridge, without 'networks'")
        return str(mode), []
    wanted = spec.get("networks") or ["default"]
    names = list(wanted)
    if len(names) != 1:
        raise ComposeError(f"{at}: networks: a container joins one network here (it lists {len(names)})")
    net = str(names[0])
    if net not in networks:
        raise ComposeError(f"{at}: network {net!r} is not declared in the top-level 'networks' section")
    settings = wanted[net] if isinstance(wanted, dict) else None
    aliases = [str(a) for a in (settings or {}).get("aliases") or []] if isinstance(settings, dict) else []
    return networks[net], aliases


def _in_start_order(services: dict[str, Service], where: str) -> dict[str, Service]:
    """Each service after those it depends on (a depth-first walk), in the file's order otherwise."""
    ordered: dict[str, Service] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name):], name])
            raise ComposeError(f"{where}: services depend on each other in a circle: {cycle}")
        visiting.append(name)
        for other in services[name].depends_on:
            if other not in services:
                raise ComposeError(f"{where}: service {name!r} depends on {other!r}, which is not a service")
            visit(other)
        visiting.pop()
        ordered[name] = services[name]

    for name in services:
        visit(name)
    return ordered


# -------------------------------------------------------------------------------------------- running


Say = Callable[[str], None]


def project_containers(store: Store, project: str) -> list[Any]:
    """The project's containers (running or not), by their labels: also those of services since removed
    from the file."""
    from .container import list_containers

    return [c for c in list_containers(store, all=True) if (c.state.get("labels") or {}).get(PROJECT_LABEL) == project]


def config_hash(service: Service, image_id: str) -> str:
    """What the container was made from: a second ``up`` replaces it when this changes."""
    made_of = {"image": image_id, "command": service.command, "options": service.options,
               "labels": service.labels, "name": service.container_name}
    return hashlib.sha256(json.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()


def build(store: Store, project: Project, services: list[str] | None = None, say: Say = print) -> None:
    """``compose build``: the images of the services that have a ``build`` section."""
    for svc in _chosen(project, services):
        if svc.build is not None:
            _build_image(store, svc, say)


def _build_image(store: Store, svc: Service, say: Say) -> None:
    from . import build as builder

    b = svc.build
    assert b is not None
    say(f" Building {svc.name} ({svc.image})")
    builder.build(store, b.context, dockerfile=b.dockerfile, tags=[svc.image], build_args=b.args, target=b.target,
                  network=b.network, on_event=lambda e: None)
    say(f" Image {svc.image}  Built")


def up(store: Store, project: Project, services: list[str] | None = None, *, build: bool = False,
       remove_orphans: bool = False, say: Say = print) -> list[Any]:
    """``compose up -d``: the networks and volumes, the images, then each service's container started in
    turn; the containers (a container already as the file says is left running as it is)."""
    from . import container as containers
    from . import network as networks
    from .errors import ImageNotFound, NetworkNotFound
    from .image import get_image

    chosen = _chosen(project, services, with_dependencies=True)
    if os.geteuid() != 0 and any(s.network not in ("none", "host", "bridge") for s in chosen):
        say(NO_ROOT_SENTENCE)
        chosen = [_on_the_hosts_network(s, project) for s in chosen]
    orphans = [c for c in project_containers(store, project.name)
               if (c.state.get("labels") or {}).get(SERVICE_LABEL) not in project.services]
    if orphans and remove_orphans:
        for c in orphans:
            containers.remove(c, force=True, volumes=True)
            say(f" Container {c.name}  Removed")
    elif orphans:
        say(f"WARN Found orphan containers ({', '.join(c.name for c in orphans)}) for this project: remove them "
            "with --remove-orphans")
    for engine_name in sorted({s.network for s in chosen} - {"none", "host", "bridge"}):
        try:
            networks.get_network(store, engine_name)
        except NetworkNotFound:
            if engine_name in project.external:
                raise ComposeError(f"network {engine_name} is declared external but does not exist") from None
            networks.create_network(store, engine_name)
            say(f" Network {engine_name}  Created")
    for engine_name in sorted(project.volumes.values()):
        if engine_name not in containers.volume_list(store):
            if engine_name in project.external:
                raise ComposeError(f"volume {engine_name} is declared external but does not exist")
            containers.volume_create(store, engine_name)
            say(f" Volume {engine_name}  Created")
    started = []
    for svc in chosen:
        if svc.build is not None:
            try:
                get_image(store, svc.image)
                missing = False
            except ImageNotFound:
                missing = True
            if build or missing:
                _build_image(store, svc, say)
        started.append(_up_one(store, project, svc, say))
    return started


NO_ROOT_SENTENCE = ("Without root there are no networks: the services share this machine's network and find each "
                    "other by name at 127.0.0.1, so no two may listen on the same port (and ports need no publishing).")


def _on_the_hosts_network(svc: Service, project: Project) -> Service:
    """Without root (no bridges): the service on the host's network, with every service on its network named
    in its /etc/hosts as 127.0.0.1 (``--add-host``), where their servers listen."""
    if svc.network in ("none", "host", "bridge"):
        return svc
    names = [n for s in project.services.values() if s.network == svc.network
             for n in s.options.get("network_aliases") or [s.name]]
    options = {k: v for k, v in svc.options.items() if k not in ("ports", "network_aliases")}
    options["network"] = "host"
    options["extra_hosts"] = [*options.get("extra_hosts", []), *(f"{n}:127.0.0.1" for n in dict.fromkeys(names))]
    return replace(svc, network="host", options=options)


def _up_one(store: Store, project: Project, svc: Service, say: Say) -> Any:
    from . import container as containers
    from .errors import ImageNotFound
    from .image import get_image
    from .runtime import start_detached

    try:
        image_id = get_image(store, svc.image).id
    except ImageNotFound:
        image_id = svc.image  # (create pulls it, if a registry is named, or says why it cannot)
    digest = config_hash(svc, image_id)
    current = [c for c in project_containers(store, project.name)
               if (c.state.get("labels") or {}).get(SERVICE_LABEL) == svc.name]
    for c in current:
        if (c.state.get("labels") or {}).get(HASH_LABEL) == digest and c.name == svc.container_name:
            if c.status == "running":
                say(f" Container {c.name}  Running")
                return c
            _start(c, svc, start_detached)
            say(f" Container {c.name}  Started")
            return c
        containers.remove(c, force=True, volumes=True)
        say(f" Container {c.name}  Recreated")
    labels = {**svc.labels, PROJECT_LABEL: project.name, SERVICE_LABEL: svc.name, HASH_LABEL: digest,
              DIRECTORY_LABEL: str(project.directory)}
    c = containers.create_from_image(store, svc.image, svc.command, name=svc.container_name, labels=labels,
                                     **svc.options)
    say(f" Container {c.name}  Created")
    _start(c, svc, start_detached)
    say(f" Container {c.name}  Started")
    return c


def _start(c: Any, svc: Service, start_detached: Callable[[Any], dict[str, object]]) -> None:
    from .container import starting

    with starting(c) as to_start:
        first = start_detached(c) if to_start else {"event": "started"}
    if first["event"] == "error":
        raise ComposeError(f"service {svc.name}: container {c.name} could not start: {first['message']}")


def down(store: Store, project: Project, *, volumes: bool = False, remove_orphans: bool = True,
         say: Say = print) -> None:
    """``compose down``: stop and remove the project's containers (in reverse start order), then its
    networks; with *volumes*, the named volumes it declares and the containers' anonymous ones."""
    from . import container as containers
    from . import network as networks
    from .errors import NetworkNotFound

    order = list(project.services)
    mine = project_containers(store, project.name)
    if not remove_orphans:
        mine = [c for c in mine if (c.state.get("labels") or {}).get(SERVICE_LABEL) in project.services]

    def rank(c: Any) -> int:
        service = (c.state.get("labels") or {}).get(SERVICE_LABEL)
        return order.index(service) if service in order else len(order)

    for c in sorted(mine, key=rank, reverse=True):
        if c.status == "running":
            containers.stop(c, 10)
            say(f" Container {c.name}  Stopped")
        containers.remove(c, force=True, volumes=volumes)
        say(f" Container {c.name}  Removed")
    for engine_name in sorted(set(project.networks.values()) - project.external):
        with contextlib.suppress(NetworkNotFound):
            networks.remove_network(store, engine_name)
            say(f" Network {engine_name}  Removed")
    if volumes:
        for engine_name in sorted(set(project.volumes.values()) - project.external):
            if engine_name in containers.volume_list(store):
                containers.volume_remove(store, engine_name)
                say(f" Volume {engine_name}  Removed")


def _chosen(project: Project, names: list[str] | None, with_dependencies: bool = False) -> list[Service]:
    """The services named (all if none are), in start order; with what they depend on, if asked."""
    if not names:
        return list(project.services.values())
    unknown = [n for n in names if n not in project.services]
    if unknown:
        raise ComposeError(f"no such service: {unknown[0]}")
    wanted = set(names)
    if with_dependencies:
        stack = list(names)
        while stack:
            for other in project.services[stack.pop()].depends_on:
                if other not in wanted:
                    wanted.add(other)
                    stack.append(other)
    return [s for s in project.services.values() if s.name in wanted]


def log_lines(store: Store, project: Project, services: list[str] | None = None, *, follow: bool = False,
              timestamps: bool = False) -> Iterator[tuple[str, str, bytes]]:
    """The project's logs as ``compose logs`` shows them: (prefix, stream, line), the prefix naming the
    container (``api-1  | ``). Without *follow*, one container after the other; with it, as lines come,
    from all of them at once (a thread reads each log), until every container has stopped."""
    chosen = {s.name for s in _chosen(project, services)}
    mine = [c for c in project_containers(store, project.name)
            if (c.state.get("labels") or {}).get(SERVICE_LABEL) in chosen]
    return merged_logs(mine, follow=follow, timestamps=timestamps)


def merged_logs(mine: list[Any], *, follow: bool = False, timestamps: bool = False
                ) -> Iterator[tuple[str, str, bytes]]:
    """Several containers' logs, each line with its container's prefix (see ``log_lines``)."""
    import queue
    import threading

    from .container import log_entries

    width = max((len(_prefix_name(c)) for c in mine), default=0)

    def lines(c: Any) -> Iterator[tuple[str, str, bytes]]:
        prefix = f"{_prefix_name(c):<{width}}  | "
        for entry in log_entries(c, follow=follow):
            yield prefix, entry.stream, (f"{entry.time} ".encode() if timestamps else b"") + entry.data

    if not follow:
        for c in mine:
            yield from lines(c)
        return
    came: queue.Queue[tuple[str, str, bytes] | None] = queue.Queue()

    def read(c: Any) -> None:
        try:
            for line in lines(c):
                came.put(line)
        finally:
            came.put(None)  # this one has ended

    for c in mine:
        threading.Thread(target=read, args=(c,), daemon=True, name=f"logs-{c.name}").start()
    running = len(mine)
    while running:
        item = came.get()
        if item is None:
            running -= 1
        else:
            yield item


def _prefix_name(c: Any) -> str:
    """The name a line of *c*'s log is shown under: Compose's ``<service>-1``, else the container's name."""
    labels = c.state.get("labels") or {}
    service = labels.get(SERVICE_LABEL)
    return f"{service}-1" if service and c.name.endswith(f"{service}-1") else c.name
