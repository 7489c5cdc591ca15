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
order ``depends_on`` gives; on its networks each is found by its service name too (a network alias). A
service may list several networks (tiers kept apart: the api on ``front`` and ``back``, the database on
``back`` only): its container is created on the first and connected to the others before it starts. Each
container carries Compose's labels (project, service, a hash of its configuration), so a second ``up``
leaves a container whose configuration did not change as it is, and replaces one whose did. ``down``
removes the containers and the networks (``-v``: the volumes too). No daemon watches over them: there are
no restart policies (``restart: "no"`` only), as pycontainers has nothing running in the background.

What this module understands is a subset of the Compose specification; anything else in the file is
refused in one sentence naming the file, the service and the key, never silently ignored, and every value is
checked when the file is read, before anything starts. The file is read as YAML 1.2, as Compose reads it
(``22:22`` is a string, not a number in base 60). Values may use ``${VAR}``, ``${VAR:-default}``,
``${VAR:+other}``, ``${VAR:?error}`` and ``$$``, from the environment and the project's ``.env`` file.
Without root there are no networks: the services then share this machine's network, and each finds the others
by name at 127.0.0.1 (``--add-host``), which ``up`` says in one sentence.
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
from .spec import parse_aliases, parse_env, parse_extra_hosts, parse_volume
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
                "restart", "extra_hosts", "healthcheck"}
HEALTH_KEYS = {"test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"}
CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")
COMPLETION_LIMIT = 300.0  # seconds `up` waits for a service_completed_successfully dependency to end
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
    conditions: dict[str, str] = field(default_factory=dict)  # depends_on's long syntax: service -> condition
    more_networks: dict[str, list[str]] = field(default_factory=dict)  # the others it joins -> its aliases there


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
        document = yaml.load(file.read_text(), Loader=_loader())  # noqa: S506 (a SafeLoader: see _loader)
    except OSError as exc:
        raise ComposeError(f"cannot read {file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ComposeError(f"{where}: not UTF-8 text") from None
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
    services = {str(svc): _service(str(svc), spec, name, directory, networks, volumes, where)
                for svc, spec in document["services"].items()}
    return Project(name, directory, file.resolve(), _in_start_order(services, where), networks, volumes, external)


def _loader() -> type:
    """PyYAML's SafeLoader read as YAML 1.2, as Compose reads its files: ``22:22`` is a string (not the
    sexagesimal 1342 of YAML 1.1), ``yes``/``no``/``on``/``off`` are strings (only true and false are
    booleans), ``0755`` is a string (not an octal number: no reading differs between YAML versions), and a
    key given twice in one mapping is an error (not the last one silently winning)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag not in (
            "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    for tag, pattern, first in (
            ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
            ("tag:yaml.org,2002:int", r"^(?:[-+]?(?:0|[1-9][0-9]*)|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
            ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][-+]?[0-9]+)?"
                                        r"|[-+]?[0-9]+[eE][-+]?[0-9]+"
                                        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ):
        Loader.add_implicit_resolver(tag, re.compile(pattern), list(first))

    def mapping(loader: Any, node: Any) -> dict[Any, Any]:
        loader.flatten_mapping(node)
        seen: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"mapping key {key!r} is given twice",
                                                        key_node.start_mark)
            seen[key] = loader.construct_object(value_node, deep=True)
        return seen

    Loader.add_constructor("tag:yaml.org,2002:map", mapping)
    return Loader


def _dot_env(path: Path) -> dict[str, str]:
    """The project's ``.env``, by Compose's rules: ``KEY=VALUE`` lines (``export KEY=VALUE`` too), blank lines
    and ``#`` comments skipped, a value in quotes taken as it is, an unquoted one up to a `` #`` comment."""
    values = {}
    with contextlib.suppress(OSError, UnicodeDecodeError):
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("export "):
                line = line[len("export "):].lstrip()
            key, eq, value = line.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key or key.startswith("#"):
                continue
            if value[:1] in ("'", '"') and value[0] in value[1:]:
                value = value[1:value.index(value[0], 1)]  # (what follows the closing quote: a comment)
            else:
                value = value.split(" #", 1)[0].rstrip()
            values[key] = value
    return values


def _interpolate(value: Any, env: dict[str, str], where: str) -> Any:
    """Compose's interpolation in every string of the document (see ``_substitute``)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, where) for v in value]
    if not isinstance(value, str):
        return value
    return _substitute(value, env, where)


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _substitute(text: str, env: dict[str, str], where: str) -> str:
    """``$$`` (a dollar sign), ``$VAR``, ``${VAR}``; ``${VAR:-default}`` (unset or empty) and ``${VAR-default}``
    (unset); ``${VAR:+other}`` (set and not empty) and ``${VAR+other}`` (set); ``${VAR:?message}`` and
    ``${VAR?message}`` (an error). Defaults are interpolated in turn, so they may nest: ``${A:-${B:-x}}``."""
    out, i = [], 0
    while (j := text.find("$", i)) >= 0:
        out.append(text[i:j])
        if text.startswith("$$", j):
            out.append("$")
            i = j + 2
            continue
        if text.startswith("${", j):
            end = _closing_brace(text, j + 2)
            if end < 0:
                raise ComposeError(f"{where}: invalid interpolation format for {text!r}: a '${{' is never closed")
            out.append(_expand(text[j + 2:end], env, where, text))
            i = end + 1
            continue
        name = _NAME.match(text, j + 1)
        if name is None:
            out.append("$")
            i = j + 1
            continue
        out.append(env.get(name[0], ""))
        i = name.end()
    out.append(text[i:])
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    for k in range(start, len(text)):
        if text.startswith("${", k):
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return -1


def _expand(inside: str, env: dict[str, str], where: str, text: str) -> str:
    name = _NAME.match(inside)
    if name is None:
        raise ComposeError(f"{where}: invalid interpolation format for {text!r}: {inside!r} is not a variable name")
    rest = inside[name.end():]
    value = env.get(name[0])
    if not rest:
        return value or ""
    for operator in (":-", ":+", ":?", "-", "+", "?"):
        if rest.startswith(operator):
            word = rest[len(operator):]
            break
    else:
        raise ComposeError(f"{where}: invalid interpolation format for {text!r}")
    is_set = value is not None and (value != "" or ":" not in operator)
    if operator.endswith("-"):
        return value if is_set else _substitute(word, env, where)  # type: ignore[return-value]
    if operator.endswith("+"):
        return _substitute(word, env, where) if is_set else ""
    if not is_set:
        raise ComposeError(f"{where}: variable {name[0]} is required: "
                           f"{_substitute(word, env, where) or ('it is empty' if value == '' else 'it is not set')}")
    return value  # type: ignore[return-value]


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
    env_files = [str(directory / f) for f in _strings(spec.get("env_file"), f"{at}: env_file", single=True)]
    try:  # read now, values from this environment included: a changed file or variable changes the hash
        options["environment"] = parse_env(_environment(spec.get("environment"), f"{at}: environment"), env_files)
    except PyContainersError as exc:
        raise ComposeError(f"{at}: {exc}") from None
    options["ports"] = [_port(p, f"{at}: ports") for p in _strings(spec.get("ports"), f"{at}: ports", numbers=True)]
    hosts = spec.get("extra_hosts") or []
    options["extra_hosts"] = ([f"{k}:{v}" for k, v in hosts.items()] if isinstance(hosts, dict)
                              else _strings(hosts, f"{at}: extra_hosts"))
    given = spec.get("volumes") or []
    if not isinstance(given, list):
        raise ComposeError(f"{at}: volumes: give a list")
    options["volumes"] = [_volume(v, directory, volumes, f"{at}: volumes") for v in given]
    joined = _networks(spec, networks, f"{at}")
    network, aliases = next(iter(joined.items()))
    options["network"] = network
    if network not in ("none", "host", "bridge"):  # found by its service's name there, as under Compose
        options["network_aliases"] = list(dict.fromkeys([svc, *aliases]))
    more = {n: list(dict.fromkeys([svc, *a])) for n, a in list(joined.items())[1:]}
    if "healthcheck" in spec:
        options["healthcheck"] = _healthcheck(spec["healthcheck"], f"{at}: healthcheck")
    depends = spec.get("depends_on") or []
    conditions = _conditions(depends, f"{at}: depends_on") if isinstance(depends, dict) else {}
    depends = _strings(list(conditions) if isinstance(depends, dict) else depends, f"{at}: depends_on")
    labels = _mapping(spec.get("labels"), f"{at}: labels")
    _check_options(options, f"{at}")
    return Service(svc, image, str(spec.get("container_name") or f"{project}-{svc}-1"),
                   _words(spec["command"], f"{at}: command") if "command" in spec else None, build,
                   depends, network, labels, options, conditions=conditions, more_networks=more)


def _conditions(depends: dict[Any, Any], at: str) -> dict[str, str]:
    """depends_on's long syntax: ``{db: {condition: service_healthy}}`` -> ``{"db": "service_healthy"}``."""
    conditions = {}
    for other, settings in depends.items():
        settings = {} if settings is None else settings
        if not isinstance(settings, dict) or set(settings) - {"condition"}:
            raise ComposeError(f"{at}: {other!r}: give a mapping with a condition (only 'condition' is supported)")
        condition = settings.get("condition", "service_started")
        if condition not in CONDITIONS:
            raise ComposeError(f"{at}: {other!r}: condition {condition!r} is not one of {', '.join(CONDITIONS)}")
        conditions[str(other)] = str(condition)
    return conditions


def _healthcheck(value: Any, at: str) -> dict[str, Any]:
    """The service's ``healthcheck`` as Docker's HealthConfig (``spec``'s), checked now: ``test`` (a command
    line for the shell, or a list starting with CMD, CMD-SHELL or NONE), ``interval``, ``timeout``,
    ``start_period``, ``start_interval`` (Go durations: 30s, 1m30s, 500ms), ``retries``, ``disable``."""
    from .spec import HEALTH_DURATIONS, merge_healthcheck
    from .units import parse_duration

    if not isinstance(value, dict):
        raise ComposeError(f"{at}: give a mapping ({', '.join(sorted(HEALTH_KEYS))})")
    unknown = sorted(set(value) - HEALTH_KEYS)
    if unknown:
        raise ComposeError(f"{at}: {unknown[0]!r} is not supported (use {', '.join(sorted(HEALTH_KEYS))})")
    if value.get("disable") not in (None, True, False):
        raise ComposeError(f"{at}: disable: give true or false")
    if value.get("disable"):
        if "test" in value:
            raise ComposeError(f"{at}: test and disable cannot both be set")
        return {"Test": ["NONE"]}
    config: dict[str, Any] = {}
    test = value.get("test")
    if isinstance(test, str):
        config["Test"] = ["CMD-SHELL", test]
    elif test is not None:
        if not isinstance(test, list):  # (YAML reads `test: true` as a boolean)
            raise ComposeError(f"{at}: test: give a command line or a list of strings, not {test!r}")
        config["Test"] = _strings(test, f"{at}: test")
        if not config["Test"] or config["Test"][0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ComposeError(f"{at}: test: a list starts with CMD, CMD-SHELL or NONE (or give a command line)")
    for docker, key in HEALTH_DURATIONS.items():
        if value.get(key) is not None:
            try:
                ns = parse_duration(value[key]) if isinstance(value[key], str) else -1
            except ValueError:
                ns = -1
            if ns < 0:
                raise ComposeError(f"{at}: {key}: {value[key]!r} is not a duration (use e.g. 30s, 1m30s, 500ms)")
            config[docker] = ns
    retries = value.get("retries")
    if retries is not None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ComposeError(f"{at}: retries: give a whole number, not {retries!r}")
        config["Retries"] = retries
    try:
        merge_healthcheck(config, None)
    except PyContainersError as exc:
        raise ComposeError(f"{at}: {exc}") from None
    return {key: item for key, item in config.items() if item}


def _strings(value: Any, at: str, single: bool = False, numbers: bool = False) -> list[str]:
    """A list of strings (a single string too, where Compose takes one: *single*; numbers, for ports)."""
    if value is None:
        return []
    if single and isinstance(value, str):
        return [value]
    kinds = (str, int) if numbers else (str,)
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, kinds) for v in value):
        raise ComposeError(f"{at}: give a list of strings")
    return [str(v) for v in value]


def _mapping(value: Any, at: str) -> dict[str, str]:
    """``KEY: value`` pairs, or a list of ``KEY=value`` strings."""
    if value is None:
        return {}
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return dict(item.partition("=")[::2] for item in value)
    if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    raise ComposeError(f"{at}: give a mapping or a list of KEY=VALUE")


def _check_options(options: dict[str, Any], at: str) -> None:
    """What ``create`` would refuse, refused now: before any service of the project has started."""
    from .network import parse_publish

    for key, shown, check in (("ports", "ports", parse_publish),
                              ("extra_hosts", "extra_hosts", lambda h: parse_extra_hosts([h])),
                              ("volumes", "volumes", lambda v: parse_volume(v, "/")),
                              ("network_aliases", "networks: aliases", lambda a: parse_aliases([a]))):
        for value in options.get(key) or []:
            try:
                check(value)
            except (PyContainersError, ValueError) as exc:
                raise ComposeError(f"{at}: {shown}: {exc}") from None


def _build(value: Any, directory: Path, at: str) -> Build:
    if isinstance(value, str):
        value = {"context": value}
    if not isinstance(value, dict) or set(value) - BUILD_KEYS:
        extra = sorted(set(value) - BUILD_KEYS) if isinstance(value, dict) else []
        raise ComposeError(f"{at}: {repr(extra[0]) + ' is not supported' if extra else 'give a directory'}")
    args = _mapping(value.get("args"), f"{at}: args")
    network = str(value.get("network") or "none")
    if network not in ("none", "host"):
        raise ComposeError(f"{at}: network {network!r}: RUN steps have only none and host")
    return Build((directory / str(value.get("context", "."))).resolve(), str(value.get("dockerfile", "Dockerfile")),
                 args, network, value.get("target"))


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
    if isinstance(value, dict) and all(not isinstance(v, dict | list) for v in value.values()):
        # KEY: null takes KEY from this environment, as -e KEY does
        return [str(k) if v is None else f"{k}={'true' if v is True else 'false' if v is False else v}"
                for k, v in value.items()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ComposeError(f"{at}: give a mapping or a list of KEY=VALUE")


def _port(value: str, at: str) -> str:
    text = value
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


def _networks(spec: dict[str, Any], networks: dict[str, str], at: str) -> dict[str, list[str]]:
    """The service's networks (the engine's names), each with its aliases there, in the file's order: its
    container is created on the first and connected to the others (``up``)."""
    mode = spec.get("network_mode")
    if mode is not None:
        if "networks" in spec or mode not in ("none", "host", "bridge"):
            raise ComposeError(f"{at}: network_mode {mode!r}: use none, host or bridge, without 'networks'")
        return {str(mode): []}
    wanted = spec.get("networks") or ["default"]
    if not isinstance(wanted, dict):
        wanted = _strings(wanted, f"{at}: networks")
    joined = {}
    for net in map(str, wanted):
        if net not in networks:
            raise ComposeError(f"{at}: network {net!r} is not declared in the top-level 'networks' section")
        settings = wanted[net] if isinstance(wanted, dict) else None
        if settings is not None and (not isinstance(settings, dict) or set(settings) - {"aliases"}):
            raise ComposeError(f"{at}: networks: {net}: only 'aliases' is supported there")
        joined[networks[net]] = _strings((settings or {}).get("aliases"), f"{at}: networks: {net}: aliases")
    return joined


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


def service_of(c: Any) -> str | None:
    """The service a container of a project runs (Compose's label on it), or None."""
    return (c.state.get("labels") or {}).get(SERVICE_LABEL)


def project_containers(store: Store, project: str) -> list[Any]:
    """The project's containers (running or not), by their labels: also those of services since removed
    from the file."""
    from .container import list_containers

    return [c for c in list_containers(store, all=True) if (c.state.get("labels") or {}).get(PROJECT_LABEL) == project]


def config_hash(service: Service, image_id: str) -> str:
    """What the container was made from: a second ``up`` replaces it when this changes."""
    environment = dict(item.partition("=")[::2] for item in service.options.get("environment", []))
    options = {**service.options, "environment": sorted(environment.items())}  # (the order of keys is no change)
    made_of = {"image": image_id, "command": service.command, "options": options,
               "labels": service.labels, "name": service.container_name}
    if service.more_networks:  # (only then: the hash of a service on one network is as before)
        made_of["more_networks"] = service.more_networks
    return hashlib.sha256(json.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()


def build(store: Store, project: Project, services: list[str] | None = None, say: Say = print) -> None:
    """``compose build``: the images of the services that have a ``build`` section."""
    for svc in services_named(project, services):
        if svc.build is not None:
            _build_image(store, svc, say)


def _build_image(store: Store, svc: Service, say: Say) -> None:
    from . import build as builder

    b = svc.build
    assert b is not None
    say(f" Building {svc.name} ({svc.image})")

    def show(event: Any) -> None:
        line = builder.transcript_line(event)
        if line is not None and event["type"] in ("step", "cache", "output"):
            say(f"  {svc.name}  {line.rstrip()}")

    try:
        builder.build(store, b.context, dockerfile=b.dockerfile, tags=[svc.image], build_args=b.args,
                      target=b.target, network=b.network, on_event=show)
    except PyContainersError as exc:
        raise ComposeError(f"service {svc.name}: the build failed: {exc}") from None
    say(f" Image {svc.image}  Built")


def up(store: Store, project: Project, services: list[str] | None = None, *, build: bool = False,
       remove_orphans: bool = False, say: Say = print) -> list[Any]:
    """``compose up -d``: the images, the networks and volumes, then each service's container started in
    turn; the containers (a container already as the file says is left running as it is)."""
    from . import container as containers
    from . import network as networks
    from .errors import ImageNotFound, NetworkNotFound
    from .image import get_image

    chosen = services_named(project, services, with_dependencies=True)
    networked = any(s.network not in ("none", "host", "bridge") for s in chosen)
    if networked and containers.default_backend(store) in ("rootless", "proot"):  # (no root: no bridges)
        say(NO_ROOT_SENTENCE)
        chosen = [_on_the_hosts_network(s, project) for s in chosen]
    orphans = [c for c in project_containers(store, project.name)
               if service_of(c) not in project.services]
    if orphans and remove_orphans:
        for c in orphans:
            if c.status == "running":
                containers.stop(c, 10)
            containers.remove(c, force=True, volumes=True)
            say(f" Container {c.name}  Removed")
    elif orphans:
        say(f"WARN Found orphan containers ({', '.join(c.name for c in orphans)}) for this project: remove them "
            "with --remove-orphans")
    for svc in chosen:  # images first, as Compose: a build that fails leaves no network or volume behind
        if svc.build is not None:
            try:
                get_image(store, svc.image)
                missing = False
            except ImageNotFound:
                missing = True
            if build or missing:
                _build_image(store, svc, say)
    for engine_name in sorted({n for s in chosen for n in (s.network, *s.more_networks)} - {"none", "host", "bridge"}):
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
    started: dict[str, Any] = {}
    for svc in chosen:
        for other, condition in svc.conditions.items():
            if condition != "service_started" and other in started:
                wait_for_dependency(started[other], other, condition, svc.name, say)
        started[svc.name] = _up_one(store, project, svc, say)
    return list(started.values())


def wait_for_dependency(c: Any, service: str, condition: str, dependent: str, say: Say) -> None:
    """Before *dependent* starts: wait until *service*'s container *c* is healthy (``service_healthy``) or
    has exited 0 (``service_completed_successfully``), as Compose waits; a dependency that turns unhealthy or
    fails stops ``up`` with Compose's sentence. Waiting has a limit: a check's whole course (its start period,
    then each of its retries at its interval, each taking up to its timeout), or ``COMPLETION_LIMIT``."""
    import time

    say(f" Container {c.name}  Waiting")
    limit = _wait_limit(c, condition)
    deadline = time.monotonic() + limit
    while not _condition_met(c, service, condition):
        if time.monotonic() > deadline:
            wanted = "become healthy" if condition == "service_healthy" else "complete"
            raise ComposeError(f"service {dependent}: gave up after {limit:.0f} s waiting for its dependency "
                               f"{service} (container {c.name}) to {wanted}")
        time.sleep(0.05)
    say(f" Container {c.name}  {'Healthy' if condition == 'service_healthy' else 'Exited'}")


def _wait_limit(c: Any, condition: str) -> float:
    if condition != "service_healthy":
        return COMPLETION_LIMIT
    from .health import SECOND, setting

    check = c.spec.healthcheck or {}
    cycle = setting(check, "Interval") + setting(check, "Timeout")
    return (setting(check, "StartPeriod") + (setting(check, "Retries") + 1) * cycle) / SECOND + 10


def _condition_met(c: Any, service: str, condition: str) -> bool:
    """Has the dependency met *condition*? ComposeError (Compose's words) if it never will."""
    from .errors import ContainerNotFound
    from .spec import has_healthcheck

    try:
        c.reload()
    except ContainerNotFound:
        raise ComposeError(f"dependency failed to start: container {c.name} was removed") from None
    status, code = c.status, c.state.get("exit_code")
    if condition == "service_completed_successfully":
        if status in ("exited", "dead") and code != 0:
            raise ComposeError(f'service "{service}" didn\'t complete successfully: exit {code}')
        return status == "exited"
    if status in ("exited", "dead"):
        raise ComposeError(f"dependency failed to start: container {c.name} exited ({code})")
    if not has_healthcheck(c.spec.healthcheck):
        raise ComposeError(f"dependency failed to start: container {c.name} has no healthcheck configured")
    health = (c.state.get("health") or {}).get("Status", "starting")
    if health == "unhealthy":
        raise ComposeError(f"dependency failed to start: container {c.name} is unhealthy")
    return health == "healthy"


NO_ROOT_SENTENCE = ("Without root there are no networks: the services share this machine's network and find each "
                    "other by name at 127.0.0.1, so no two may listen on the same port (and ports need no publishing).")


def _on_the_hosts_network(svc: Service, project: Project) -> Service:
    """Without root (no bridges): the service on the host's network, with every service on its network named
    in its /etc/hosts as 127.0.0.1 (``--add-host``), where their servers listen."""
    if svc.network in ("none", "host", "bridge"):
        return svc
    mine = {svc.network, *svc.more_networks}
    names = [n for s in project.services.values() if s.network in mine
             for n in s.options.get("network_aliases") or [s.name]]
    names += [n for s in project.services.values() for net, aliases in s.more_networks.items() if net in mine
              for n in aliases or [s.name]]
    options = {k: v for k, v in svc.options.items() if k not in ("ports", "network_aliases")}
    options["network"] = "host"
    options["extra_hosts"] = [*options.get("extra_hosts", []), *(f"{n}:127.0.0.1" for n in dict.fromkeys(names))]
    return replace(svc, network="host", options=options, more_networks={})


def _up_one(store: Store, project: Project, svc: Service, say: Say) -> Any:
    from . import container as containers
    from . import network as networks
    from .errors import ImageNotFound
    from .image import get_image
    from .runtime import start_detached

    try:
        image_id = get_image(store, svc.image).id
    except ImageNotFound as exc:
        from . import registry

        if not registry.names_a_registry(svc.image):
            raise ComposeError(f"service {svc.name}: {exc}") from None
        image_id = registry.pull_missing(store, svc.image).id
    digest = config_hash(svc, image_id)
    current = [c for c in project_containers(store, project.name)
               if service_of(c) == svc.name]
    kept: dict[str, str] = {}  # the anonymous volumes of the container replaced: destination -> name
    for c in current:
        if (c.state.get("labels") or {}).get(HASH_LABEL) == digest and c.name == svc.container_name:
            if c.status == "running":
                say(f" Container {c.name}  Running")
                return c
            _start(c, svc.name, start_detached)
            say(f" Container {c.name}  Started")
            return c
        if c.status == "running":
            containers.stop(c, 10)  # (SIGTERM first, as Compose: a database gets to close its files)
        kept.update({m.destination: m.volume for m in c.spec.mounts if m.anonymous and m.volume})
        containers.remove(c, force=True)  # its anonymous volumes go on, with the new container
        say(f" Container {c.name}  Recreated")
    labels = {**svc.labels, PROJECT_LABEL: project.name, SERVICE_LABEL: svc.name, HASH_LABEL: digest,
              DIRECTORY_LABEL: str(project.directory)}
    c = containers.create_from_image(store, svc.image, svc.command, name=svc.container_name, labels=labels,
                                     reuse_volumes=kept, **svc.options)
    try:
        for engine_name, aliases in svc.more_networks.items():  # (before it starts: all its interfaces at once)
            networks.connect(store, c, engine_name, aliases)
    except BaseException:
        containers.remove(c, force=True)
        raise
    say(f" Container {c.name}  Created")
    _start(c, svc.name, start_detached)
    say(f" Container {c.name}  Started")
    return c


def _start(c: Any, service: str, start_detached: Callable[[Any], dict[str, object]]) -> None:
    from .container import starting

    with starting(c) as to_start:
        first = start_detached(c) if to_start else {"event": "started"}
    if first["event"] == "error":
        raise ComposeError(f"service {service}: container {c.name} could not start: {first['message']}")


def down(store: Store, project: Project, *, volumes: bool = False, remove_orphans: bool = False,
         say: Say = print) -> None:
    """``compose down``: stop and remove the project's containers (in reverse start order), then its
    networks; with *volumes*, the named volumes it declares and the containers' anonymous ones."""
    from . import container as containers
    from . import network as networks
    from .errors import NetworkError, NetworkNotFound

    mine = project_containers(store, project.name)
    orphans = [c for c in mine if service_of(c) not in project.services]
    if orphans and not remove_orphans:
        say(f"WARN Found orphan containers ({', '.join(c.name for c in orphans)}) for this project: remove them "
            "with --remove-orphans")
        mine = [c for c in mine if c not in orphans]

    def remove(c: Any) -> None:
        containers.remove(c, force=True, volumes=volumes)
        say(f" Container {c.name}  Removed")

    stop_in_order(project, mine, say, then=remove)
    for engine_name in sorted(set(project.networks.values()) - project.external):
        try:
            networks.remove_network(store, engine_name)
            say(f" Network {engine_name}  Removed")
        except NetworkNotFound:
            pass
        except NetworkError:  # (an orphan, or a container of someone else's, is on it)
            say(f" Network {engine_name}  Resource is still in use")
    if volumes:
        for engine_name in sorted(set(project.volumes.values()) - project.external):
            if engine_name in containers.volume_list(store):
                containers.volume_remove(store, engine_name)
                say(f" Volume {engine_name}  Removed")


def stop_in_order(project: Project, mine: list[Any], say: Say = print, timeout: float = 10,
                  then: Callable[[Any], None] | None = None) -> None:
    """Stop the project's containers *mine* as Compose does: a service only after those that depend on it, and
    services that do not depend on each other at once (each may take its stop timeout: one after the other,
    five services that ignore SIGTERM would take 50 s). *then* is called with each container once it has
    stopped (``down`` removes it), in reverse start order within each round, so what is said stays in order."""
    from concurrent.futures import ThreadPoolExecutor

    from . import container as containers

    depth: dict[str, int] = {}
    for name, svc in project.services.items():  # (in start order: what it depends on comes first)
        depth[name] = 1 + max((depth.get(d, 0) for d in svc.depends_on), default=-1)
    order = list(project.services)

    def rank(c: Any) -> int:
        return order.index(service_of(c)) if service_of(c) in order else len(order)

    ordered = sorted(mine, key=rank, reverse=True)
    levels = sorted({depth.get(service_of(c) or "", len(order)) for c in ordered}, reverse=True)
    for level in levels:  # (those of no service of the file, orphans, first)
        batch = [c for c in ordered if depth.get(service_of(c) or "", len(order)) == level]
        running = [c for c in batch if c.status == "running"]
        pool = ThreadPoolExecutor(max_workers=max(1, len(running)))
        try:
            list(pool.map(lambda c: containers.stop(c, timeout), running))
        finally:  # (a second Ctrl-C must not wait for these stops: its caller kills the containers)
            pool.shutdown(wait=False, cancel_futures=True)
        for c in batch:
            if c in running:
                say(f" Container {c.name}  Stopped")
            if then is not None:
                then(c)


def service_containers(store: Store, project: Project, services: list[str] | None = None) -> list[Any]:
    """The containers of the services named (all if none are), in the file's start order: what ``compose
    stop``, ``start``, ``restart``, ``kill`` and ``exec`` act on. A service named that has no container yet
    is one error, as Compose's "has no container to start"."""
    chosen = services_named(project, services)
    mine = project_containers(store, project.name)
    found = []
    for svc in chosen:
        theirs = sorted((c for c in mine if service_of(c) == svc.name),
                        key=lambda c: c.name)
        if not theirs and services:
            raise ComposeError(f"service {svc.name!r} has no container: run `compose up` first")
        found += theirs
    return found


def stop(store: Store, project: Project, services: list[str] | None = None, timeout: float = 10,
         say: Say = print) -> None:
    """``compose stop [SERVICE...]``: as ``down`` stops them (dependents first, the others at once), kept."""
    stop_in_order(project, service_containers(store, project, services), say, timeout)


def start(store: Store, project: Project, services: list[str] | None = None, say: Say = print) -> None:
    """``compose start [SERVICE...]``: the existing containers started again, in start order (what a service
    depends on first); nothing is created (that is ``up``)."""
    from .runtime import start_detached

    for c in service_containers(store, project, services):
        if c.reload().status != "running":
            say(f" Container {c.name}  Starting")
            _start(c, service_of(c) or c.name, start_detached)
            say(f" Container {c.name}  Started")


def restart(store: Store, project: Project, services: list[str] | None = None, timeout: float = 10,
            say: Say = print) -> None:
    """``compose restart [SERVICE...]``: each container stopped (its signal, then SIGKILL after *timeout*) and
    started again, in start order, on its writable layer (the file's changes are ``up``'s business)."""
    from .runtime import restart as restart_container

    for c in service_containers(store, project, services):
        say(f" Container {c.name}  Restarting")
        first = restart_container(c, timeout)
        if first is not None and first.get("event") == "error":
            raise ComposeError(f"container {c.name} could not start: {first.get('message')}")
        say(f" Container {c.name}  Started")


def kill(store: Store, project: Project, services: list[str] | None = None, sig: int = 9,
         say: Say = print) -> None:
    """``compose kill [-s SIGNAL] [SERVICE...]``: *sig* (SIGKILL) to each running container."""
    from . import container as containers

    for c in service_containers(store, project, services):
        if c.reload().status == "running":
            containers.kill(c, sig)
            say(f" Container {c.name}  Killed")


def exec_target(store: Store, project: Project, service: str, index: int = 1) -> Any:
    """The container ``compose exec SERVICE`` runs in: the service's *index*-th (``--index``), running."""
    theirs = service_containers(store, project, [service])
    if not 1 <= index <= len(theirs):
        raise ComposeError(f"service {service!r} has no container number {index}")
    c = theirs[index - 1]
    if c.status != "running":
        raise ComposeError(f"service {service!r} is not running (container {c.name})")
    return c


def services_named(project: Project, names: list[str] | None, with_dependencies: bool = False) -> list[Service]:
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
    chosen = {s.name for s in services_named(project, services)}
    mine = [c for c in project_containers(store, project.name)
            if service_of(c) in chosen]
    return merged_logs(mine, follow=follow, timestamps=timestamps)


def merged_logs(mine: list[Any], *, follow: bool = False, timestamps: bool = False, since: str | None = None
                ) -> Iterator[tuple[str, str, bytes]]:
    """Several containers' logs, each line with its container's prefix (see ``log_lines``); *since*: only
    what was logged from then on (a ``logs.timestamp``)."""
    import queue
    import threading

    from .container import log_entries

    width = max((len(_prefix_name(c)) for c in mine), default=0)

    def lines(c: Any) -> Iterator[tuple[str, str, bytes]]:
        prefix = f"{_prefix_name(c):<{width}}  | "
        for entry in log_entries(c, follow=follow, since=since):
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
    service = service_of(c)
    return f"{service}-1" if service and c.name.endswith(f"{service}-1") else c.name
