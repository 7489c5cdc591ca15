"""What a container will run: the image's config merged with ``run``'s flags, by Docker's rules.

This is the *spec* of runc's vocabulary (its ``config.json``): everything decided before any process
exists. ``ENTRYPOINT`` and ``CMD`` combine into one argv; a command given to ``run`` replaces the
image's ``CMD`` (so ``hello_world_cmd Pavlos`` prints "Hello Pavlos"); ``--entrypoint`` replaces the
entrypoint and drops the image's ``CMD``.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from dataclasses import asdict, dataclass, field

from .errors import InvalidArgument
from .image import Image
from .units import parse_size

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETWORK_MODES = ("none", "host")  # no bridge: only loopback (none), or the host's own network (host)
_VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,254}$")  # (each is a directory: 255 bytes at most)
_NETWORK_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$")
# A name in /etc/hosts: RFC 1123's, and '_' (Compose's service names have it, and resolvers take it)
_HOSTNAME = re.compile(r"^[a-zA-Z0-9_]([a-zA-Z0-9_.-]{0,251}[a-zA-Z0-9_])?$")


class NoCommand(InvalidArgument):
    """Neither the image nor ``run`` says what to run."""


@dataclass
class Mount:
    """A bind mount of a host path, or of a volume's directory, into the container."""

    source: str
    destination: str
    readonly: bool = False
    volume: str | None = None  # the volume's name when this is a volume
    anonymous: bool = False  # a volume made for this container (``-v /path``, the image's VOLUME): see make_spec


@dataclass
class ContainerSpec:
    image_id: str
    image_name: str
    args: list[str]
    env: list[str]
    workdir: str = "/"
    user: str = ""
    hostname: str = ""
    mounts: list[Mount] = field(default_factory=list)
    read_only: bool = False
    memory: int | None = None  # bytes
    pids_limit: int | None = None
    cpus: float | None = None
    network: str = "none"
    tty: bool = False
    interactive: bool = False
    stop_signal: str = "SIGTERM"
    init: bool = False  # --init: Docker's tini is PID 1 and runs ``args`` (see process_args)
    ports: list[list[Any]] = field(default_factory=list)  # -p: [[host ip, host port (0: any), port], ...]
    aliases: list[str] = field(default_factory=list)  # --network-alias: more names on a user-defined network
    ip: str | None = None  # --ip: its address on that network (default: the first free one)
    extra_hosts: list[list[str]] = field(default_factory=list)  # --add-host: [[name, address], ...] in /etc/hosts
    healthcheck: dict[str, Any] | None = None  # Docker's Config.Healthcheck (Test, Interval... in ns): health.py

    @property
    def on_a_network(self) -> bool:
        """On a bridge (``bridge`` or a network's name), rather than ``none`` or the ``host``'s."""
        return self.network not in NETWORK_MODES

    def process_args(self) -> list[str]:
        """The argv of the container's PID 1: the command, behind Docker's tini with ``--init``.

        Only the runtime sees tini: ``inspect``, ``ps`` and ``commit`` show the command, as Docker's do."""
        return [INIT_PATH, "--", *self.args] if self.init else list(self.args)

    def process_mounts(self) -> list[Mount]:
        """The bind mounts made in the container: the volumes, and the host's tini with ``--init`` (which
        ``inspect`` does not list, as Docker's does not)."""
        return [*self.mounts, Mount(find_tini(), INIT_PATH, readonly=True)] if self.init else list(self.mounts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ContainerSpec:
        obj = dict(obj)
        obj["mounts"] = [Mount(**m) for m in obj.get("mounts", [])]
        return cls(**obj)


def combine_command(image_entrypoint: list[str] | None, image_cmd: list[str] | None,
                    command: list[str] | None, entrypoint: str | list[str] | None) -> list[str]:
    """Docker's rule: argv = ENTRYPOINT + CMD, where ``run IMAGE ARGS...`` replaces CMD."""
    if entrypoint is not None:
        ep = [entrypoint] if isinstance(entrypoint, str) else list(entrypoint)
        ep = [e for e in ep if e]  # --entrypoint "" clears it
        args = ep + list(command or [])
    else:
        args = list(image_entrypoint or []) + list(command if command else (image_cmd or []))
    if not args:
        raise NoCommand("no command specified: the image has no ENTRYPOINT or CMD, and none was given")
    return args


def parse_env(items: list[str], env_files: list[str] = ()) -> list[str]:  # type: ignore[assignment]
    """``-e K=V``, ``-e K`` (taken from this environment, like Docker) and ``--env-file`` lines."""
    out: list[str] = []
    for path in env_files:
        try:
            with open(path) as f:
                lines = [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as exc:
            raise InvalidArgument(f"--env-file {path}: {exc.strerror}") from None
        out += _env_items(lines, f"--env-file {path}")
    return out + _env_items(items, "-e")


def _env_items(items: list[str], where: str) -> list[str]:
    out = []
    for item in items:
        key, eq, value = item.partition("=")
        if not key or any(c.isspace() for c in key):
            raise InvalidArgument(f"{where} {item!r}: variable name is empty or has spaces")
        if not eq:
            if key not in os.environ:
                continue
            value = os.environ[key]
        out.append(f"{key}={value}")
    return out


def merge_env(image_env: list[str], extra: list[str]) -> list[str]:
    """Image ENV first, then ``-e`` values overriding by name; PATH always set."""
    merged: dict[str, str] = {}
    for item in [*image_env, *extra]:
        key, _, value = item.partition("=")
        merged[key] = value
    merged.setdefault("PATH", DEFAULT_PATH)
    return [f"{k}={v}" for k, v in merged.items()]


def parse_volume(text: str, volumes_dir: str, reuse: dict[str, str] | None = None) -> Mount:
    """``-v /host:/ctr[:ro]`` (bind), ``-v NAME:/ctr[:ro]`` (named volume, created on first use) or
    ``-v /ctr`` (an anonymous volume: a new one, with a random name, for this container)."""
    if text.startswith("/") and ":" not in text:
        return anonymous_volume(text, volumes_dir, reuse)
    parts = text.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: {text!r} (use HOST:CONTAINER[:ro])")
    source, dest = parts[0], parts[1]
    mode = parts[2] if len(parts) == 3 else "rw"
    if mode not in ("ro", "rw"):
        raise InvalidArgument(f"invalid volume specification: {text!r}: mode must be ro or rw")
    if not dest.startswith("/") or ".." in dest.split("/"):
        raise InvalidArgument(f"invalid volume specification: {text!r}: the container path must be absolute")
    if container_path(dest) == "/":  # over the whole image: nothing of it would be left to run
        raise InvalidArgument(f"invalid volume specification: {text!r}: destination can't be '/'")
    if source.startswith("/") or source.startswith("."):
        path = os.path.abspath(source)
        return Mount(path, container_path(dest), mode == "ro")  # created at create time, as docker run -v
    check_volume_name(source)
    return Mount(os.path.join(volumes_dir, source, "_data"), container_path(dest), mode == "ro", source)


def check_volume_name(name: str) -> None:
    """Docker's characters for a volume's name; and at most 255 of them (each is a directory of the store)."""
    if not _VOLUME_NAME.match(name):
        why = "at most 255 characters" if len(name) > 255 else "use letters, digits, '_', '.', '-'"
        raise InvalidArgument(f"invalid volume name {name if len(name) < 80 else name[:77] + '...'!r}: {why}")


def check_network_name(name: str) -> None:
    """A network's name: Docker's characters, and at most 64 of them (pycontainers' limit: a record's file name)."""
    if not _NETWORK_NAME.match(name):
        why = "at most 64 characters" if len(name) > 64 else "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        raise InvalidArgument(f"invalid network name {name if len(name) < 80 else name[:77] + '...'!r}: {why}")


def container_path(path: str) -> str:
    """An absolute path inside the container, normalised as Docker's (Go's filepath.Clean): unlike
    os.path.normpath, a leading ``//`` becomes ``/``."""
    return "/" + os.path.normpath(path).lstrip("/")


def anonymous_volume(destination: str, volumes_dir: str, reuse: dict[str, str] | None = None) -> Mount:
    """A volume of this container's own at *destination*, named by 64 random hex digits, as Docker's: it
    goes with the container when the container is removed with ``rm -v`` or was started with ``--rm``.
    *reuse*: destination -> the name of a replaced container's volume there, taken over (compose's recreate)."""
    if ".." in destination.split("/") or container_path(destination) == "/":
        raise InvalidArgument(f"invalid volume specification: {destination!r}: use an absolute path below /")
    name = (reuse or {}).get(container_path(destination)) or os.urandom(32).hex()
    return Mount(os.path.join(volumes_dir, name, "_data"), container_path(destination), False, name, True)


def image_volumes(declared: dict[str, Any] | None, mounts: list[Mount], volumes_dir: str,
                  reuse: dict[str, str] | None = None) -> list[Mount]:
    """The image's ``VOLUME`` paths that no ``-v`` covers, each an anonymous volume (as ``docker run`` does:
    what the container writes there goes to the volume, not to its writable layer or a ``commit``)."""
    taken = {m.destination for m in mounts}
    paths = sorted({container_path(p) for p in declared or {} if p.startswith("/")} - taken - {"/"})
    return [anonymous_volume(p, volumes_dir, reuse) for p in paths]


def make_spec(image: Image, image_name: str, command: list[str] | None = None, *,
              entrypoint: str | list[str] | None = None, environment: list[str] = (),  # type: ignore[assignment]
              env_files: list[str] = (), workdir: str | None = None,  # type: ignore[assignment]
              user: str | None = None, volumes: list[str] = (),  # type: ignore[assignment]
              volumes_dir: str = "", hostname: str | None = None, read_only: bool = False,
              memory: str | int | None = None, pids_limit: int | None = None, cpus: float | None = None,
              network: str | None = None, tty: bool = False, interactive: bool = False, init: bool = False,
              ports: list[str] | dict[str, Any] | None = None, publish_all: bool = False,
              container_id: str = "", with_image_volumes: bool = True,
              network_aliases: list[str] = (),  # type: ignore[assignment]
              ip: str | None = None,
              extra_hosts: list[str] | dict[str, str] | None = None,
              reuse_volumes: dict[str, str] | None = None,
              healthcheck: dict[str, Any] | None = None) -> ContainerSpec:
    """The container's spec from the image's settings and ``run``'s options. *with_image_volumes*: make the
    image's VOLUME paths anonymous volumes (not for an exported bundle, which has no store to keep them).
    *healthcheck*: ``run``'s (``healthcheck_from_flags``) or docker-py's, over the image's HEALTHCHECK."""
    cfg = image.settings
    check = merge_healthcheck(None if healthcheck is None else healthcheck_from_dict(healthcheck),
                              cfg.get("Healthcheck"))
    args = combine_command(cfg.get("Entrypoint"), cfg.get("Cmd"), command, entrypoint)
    mounts = [parse_volume(v, volumes_dir, reuse_volumes) for v in volumes]
    seen: set[str] = set()
    for m in mounts:
        if m.destination in seen:
            raise InvalidArgument(f"Duplicate mount point: {m.destination}")
        if m.destination == "/proc" or m.destination.startswith("/proc/"):  # (runc's refusal, before it runs)
            raise InvalidArgument(f'invalid mount config: "{m.destination}" cannot be mounted because it is '
                                  "/proc or inside it (the container's own /proc is mounted there)")
        seen.add(m.destination)
    if with_image_volumes:
        mounts += image_volumes(cfg.get("Volumes"), mounts, volumes_dir, reuse_volumes)
    if init:
        find_tini()  # missing: say so now, not when the container starts
    bindings = parse_ports(ports)
    if publish_all:  # -P: every port the image EXPOSEs (TCP), on a free port of this machine each
        from .network import PortBinding

        given = {b.container_port for b in bindings}
        exposed = sorted(int(key.partition("/")[0]) for key in cfg.get("ExposedPorts") or {}
                         if key.partition("/")[2] in ("", "tcp"))
        bindings += [PortBinding(port) for port in exposed if port not in given]
    network = network or ("bridge" if bindings else "none")  # (Docker's default is bridge: see README)
    if not _NETWORK_NAME.match(network):
        raise InvalidArgument(f"--network {network!r}: use none, host, bridge or the name of a network")
    if network_aliases and network in ("bridge", *NETWORK_MODES):
        raise InvalidArgument("network-scoped aliases are supported only for containers on user-defined networks")
    aliases = parse_aliases(network_aliases)
    if ip:
        from .network import check_ip_wanted

        check_ip_wanted(network, ip)
    if bindings and network == "none":
        raise InvalidArgument("published ports need a network, and --network none has only loopback")
    if bindings and network == "host":
        print("WARNING: Published ports are discarded when using host network mode", file=sys.stderr)
        bindings = []
    wd = workdir if workdir is not None else (cfg.get("WorkingDir") or "/")
    if not wd.startswith("/"):
        raise InvalidArgument(f"the working directory {wd!r} is invalid, it needs to be an absolute path")
    mem = parse_size(memory) if isinstance(memory, str) else memory
    mem = mem or None  # (Docker: -m 0 is no limit)
    if mem is not None and mem < 6 << 20:
        raise InvalidArgument("minimum memory limit allowed is 6MB")
    cpus = cpus or None  # (Docker: --cpus 0 is no limit)
    if cpus is not None and not 0.01 <= cpus <= (os.cpu_count() or 1):  # (the kernel's least quota: 1 ms)
        raise InvalidArgument(f"--cpus must be between 0.01 and {os.cpu_count()} (this machine's CPUs)")
    if pids_limit is not None and pids_limit <= 0:
        pids_limit = None  # Docker: 0 or -1 means unlimited
    return ContainerSpec(
        image_id=image.id, image_name=image_name, args=args,
        env=merge_env(cfg.get("Env") or [], parse_env(list(environment), list(env_files))),
        workdir=wd, user=user if user is not None else (cfg.get("User") or ""),
        hostname=hostname or (socket.gethostname() if network == "host" else container_id[:12]),
        mounts=mounts, read_only=read_only, memory=mem, pids_limit=pids_limit, cpus=cpus, network=network,
        tty=tty, interactive=interactive, stop_signal=cfg.get("StopSignal") or "SIGTERM", init=init,
        ports=[b.to_json() for b in bindings], aliases=aliases, ip=ip or None,
        extra_hosts=parse_extra_hosts(extra_hosts), healthcheck=check,
    )


# ------------------------------------------------------------------------------------------ health checks
# Docker's HealthConfig: {"Test": [...], "Interval": ns, "Timeout": ns, "StartPeriod": ns, "StartInterval": ns,
# "Retries": n}, each left out when zero (Go's omitempty). Test is [] (the image's), ["NONE"] (none at all),
# ["CMD", argv...] or ["CMD-SHELL", "command line"]. What runs them: health.py.

HEALTH_DURATIONS = {"Interval": "interval", "Timeout": "timeout", "StartPeriod": "start_period",
                    "StartInterval": "start_interval"}  # Docker's key -> docker-py's (and Compose's)
MIN_HEALTH_DURATION = 10**6  # ns: Docker refuses a non-zero duration under 1ms


def healthcheck_from_flags(cmd: str | None = None, interval: str | None = None, timeout: str | None = None,
                           retries: int | None = None, start_period: str | None = None,
                           start_interval: str | None = None, disable: bool = False) -> dict[str, Any] | None:
    """``run``'s ``--health-*`` flags and ``--no-healthcheck`` as a HealthConfig, by the Docker CLI's rules:
    None when none is given (the image's check, as it is); a flag left out keeps the image's value."""
    texts = {"Interval": ("health-interval", interval), "Timeout": ("health-timeout", timeout),
             "StartPeriod": ("health-start-period", start_period),
             "StartInterval": ("health-start-interval", start_interval)}
    config: dict[str, Any] = {key: _flag_duration(flag, text) for key, (flag, text) in texts.items()}
    if retries:
        if retries < 0:
            raise InvalidArgument("--health-retries cannot be negative")
        config["Retries"] = retries
    if cmd:
        config["Test"] = ["CMD-SHELL", cmd]
    config = {key: value for key, value in config.items() if value}
    if disable:
        if config:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    return config or None


def _flag_duration(flag: str, text: str | None) -> int:
    from .units import parse_duration

    if not text:
        return 0
    try:
        value = parse_duration(text)
    except ValueError:
        raise InvalidArgument(f'invalid argument "{text}" for "--{flag}" flag: time: invalid duration "{text}"') \
            from None
    if value < 0:
        raise InvalidArgument(f"--{flag} cannot be negative")
    return value


def healthcheck_from_dict(given: dict[str, Any], where: str = "healthcheck") -> dict[str, Any]:
    """docker-py's ``healthcheck=`` dict (``test``, ``interval``... in ns, or Docker's own ``Test``,
    ``Interval``...) as a HealthConfig; a string ``test`` is a ``CMD-SHELL`` command, as docker-py makes it."""
    if not isinstance(given, dict):
        raise InvalidArgument(f"{where}: give a dict (test, interval, timeout, retries, start_period)")
    names = {"test": "Test", "retries": "Retries"} | {ours: docker for docker, ours in HEALTH_DURATIONS.items()}
    config: dict[str, Any] = {}
    for key, value in given.items():
        docker = names.get(key, key if key in names.values() else None)
        if docker is None:
            raise InvalidArgument(f"{where}: unknown key {key!r} (use {', '.join(names)})")
        if value is None:
            continue
        if docker == "Test":
            test = ["CMD-SHELL", value] if isinstance(value, str) else value
            if not isinstance(test, list | tuple) or not all(isinstance(v, str) for v in test):
                raise InvalidArgument(f"{where}: test is a command line or a list of strings, not {value!r}")
            config["Test"] = list(test)
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0:
            unit = "a count" if docker == "Retries" else "nanoseconds"
            raise InvalidArgument(f"{where}: {key} must be a whole number of {unit}, not below 0: {value!r}")
        elif value:
            config[docker] = value
    return config


def merge_healthcheck(user: dict[str, Any] | None, image: dict[str, Any] | None) -> dict[str, Any] | None:
    """The container's check: the image's, each field that ``run`` gives replacing its own (Docker's merge,
    daemon/commit.go), checked as Docker's daemon checks it."""
    if user is None:
        return dict(image) if image else None
    merged = {**(image or {}), **{key: value for key, value in user.items() if value}}
    test = merged.get("Test") or []
    if test and (test[0] not in ("NONE", "CMD", "CMD-SHELL") or (test[0] == "NONE") != (len(test) == 1)
                 or test[0] == "CMD-SHELL" and len(test) != 2):
        raise InvalidArgument(f"healthcheck test {test!r}: give [\"CMD\", program, args...], "
                              "[\"CMD-SHELL\", \"command line\"] or [\"NONE\"]")
    for key in HEALTH_DURATIONS:
        if 0 < merged.get(key, 0) < MIN_HEALTH_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms")
    return merged


def has_healthcheck(check: dict[str, Any] | None) -> bool:
    """Is there a check to run (not none, not ``NONE``, not only settings without a test)?"""
    test = (check or {}).get("Test") or [""]
    return test[0] in ("CMD", "CMD-SHELL")


def parse_aliases(names: list[str]) -> list[str]:
    """``--network-alias NAME``: host names (once each) that others on a user-defined network find it by."""
    bad = next((a for a in names if not _HOSTNAME.match(a)), None)
    if bad is not None:
        raise InvalidArgument(f"network alias {bad!r} is not a host name: use letters, digits, '-', '_', '.'")
    return list(dict.fromkeys(names))


def parse_extra_hosts(given: list[str] | dict[str, str] | None) -> list[list[str]]:
    """``--add-host NAME:ADDRESS`` (docker-py's ``extra_hosts={NAME: ADDRESS}``): more lines of /etc/hosts."""
    import ipaddress

    pairs = list(given.items()) if isinstance(given, dict) else [str(g).partition(":")[::2] for g in given or []]
    out = []
    for name, address in pairs:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise InvalidArgument(f"invalid argument {name}:{address} for --add-host: give NAME:IP-ADDRESS") from None
        if not _HOSTNAME.match(name):
            raise InvalidArgument(f"invalid argument {name}:{address} for --add-host: {name!r} is not a host name")
        out.append([name, address])
    return out


def parse_ports(ports: list[str] | dict[str, Any] | None) -> list[Any]:
    """``-p`` strings (the CLI's) or docker-py's ``ports={"80/tcp": 8080}``, as ``network.PortBinding``s."""
    if not ports:
        return []
    from .network import parse_publish, ports_from_docker_py

    return ports_from_docker_py(ports) if isinstance(ports, dict) else [parse_publish(p) for p in ports]


INIT_PATH = "/sbin/docker-init"  # where Docker binds the host's static tini, read-only, for --init
TINI_PATHS = ("/usr/bin/tini-static", "/usr/local/bin/tini-static")  # static: it runs in any image


def find_tini() -> str:
    """The host's static tini, for ``--init``: a PID 1 that passes signals on and reaps zombies (a command
    run as PID 1 ignores every signal it has no handler for, Ctrl-C included)."""
    for path in TINI_PATHS:
        if os.access(path, os.X_OK):
            return path
    raise InvalidArgument("--init needs tini-static on this machine (apt-get install tini; ./setup.sh does)")


def new_container_id() -> str:
    return os.urandom(32).hex()  # 256 random bits, as Docker's IDs
