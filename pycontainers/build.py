"""``pycontainers build``: Docker's classic builder, step by step, with a cache that explains itself.

Each instruction of the Dockerfile is one *step*, and each step produces an image: the previous one plus
a layer (RUN, COPY, ADD) or plus a changed config (CMD, ENV, WORKDIR, ...: an ``empty_layer`` history
line). A step is looked up in the *build cache* before it runs. The key is what Docker's classic builder
compares: the parent image ID and the instruction with its variables resolved, and for COPY/ADD a hash
of the content and mode of every copied file (never their mtimes). A hit reuses the step's image
("Using cache"); a miss runs it, and every later step misses too, because its parent is new.

Beyond Docker, every miss says why: "first build", "--no-cache", "parent changed because step 3 missed",
"/app/app.py changed (sha256 a1b2… → c3d4…)", "ARG VERSION changed (1.0 → 2.0)", "the instruction changed".

RUN steps run in a container (network ``none`` unless asked), and the step's layer is that container's
overlayfs upper directory. The mount points a container needs live in a shared init layer below it, so
no ``/dev``, ``/proc`` or ``/etc/hostname`` stubs ever land in an image. Under proot (no root, no user
namespaces: Binder) there is no overlayfs: the step runs on a flattened copy of the image, and its layer
is the difference between snapshots taken before and after it (``snapshot.py``, as kaniko does).

Intermediate images are kept out of index.json (so ``images`` lists only results, like Docker); the
cache file ``$PYCONTAINERS_HOME/buildcache.json`` keeps them, and the store's garbage collection treats
it as a root.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import dockerfile as df
from . import layer as layers
from . import oci, snapshot
from .dockerignore import DockerIgnore
from .errors import LayerError, PyContainersError, StoreError
from .image import Image, docker_list, empty_config, get_image, iso_time, write_layer
from .store import BUILD_CACHE_FILE as CACHE_FILE
from .store import Store, atomic_write, owned_prefix
from .units import human_size

if TYPE_CHECKING:
    from .container import Container

DEFAULT_SHELL = ["/bin/sh", "-c"]
Event = dict[str, Any]


# What a command prints when it finds no network (apt, pip, curl, wget, getaddrinfo): a failed RUN step that said
# one of these gets a hint that the build has none (its --network is none unless given).
_NO_NETWORK = re.compile(r"Temporary failure (in name )?resolution|Temporary failure resolving|Could not resolve|"
                         r"Name or service not known|Network is unreachable|bad address|NewConnectionError|"
                         r"Failed to establish a new connection|No address associated with hostname")


class BuildError(PyContainersError):
    """A build failed; the message starts with ``Dockerfile:LINE`` and says what failed."""


class BuildCancelled(BuildError):
    """``Builder.cancel`` stopped the build: its RUN step's container is gone, and no later step ran."""


_IN_PROGRESS: set[Builder] = set()  # the builds this process is running (cancel_builds)


def cancel_builds() -> bool:
    """Cancel every build this process is running (``Builder.cancel``); whether there was one.

    For a command server's worker whose client was killed (``server``): as Docker's daemon cancels the
    build of a client that went away, the build removes its RUN step's container and ends, instead of
    the worker dying and leaving that container behind."""
    running = list(_IN_PROGRESS)
    for builder in running:
        builder.cancel()
    return bool(running)


# ----------------------------------------------------------------------------------------------- cache


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class BuildCache:
    """The build cache on disk: step key -> resulting image, plus what explains a miss.

    ``steps``   key (parent ID + resolved instruction + content hash) -> {"manifest", "id"}
    ``seen``    parent ID + instruction as written -> what it resolved to and the files it copied, so a
                later miss can name what changed
    ``parents`` image ID -> the image ID of the step before it (``image history`` shows them)
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.path = store.home / CACHE_FILE
        try:
            data = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            data = {}
        # A cache is disposable: one that is not what this class writes (damaged by hand or by a crash) is
        # used as far as it is sound, and starts anew where it is not.
        data = data if isinstance(data, dict) else {}
        self.steps: dict[str, dict[str, str]] = {
            k: v for k, v in _dict(data.get("steps")).items()
            if isinstance(v, dict) and oci.is_digest(str(v.get("manifest"))) and isinstance(v.get("id"), str)}
        self.seen: dict[str, dict[str, Any]] = {k: v for k, v in _dict(data.get("seen")).items() if isinstance(v, dict)}
        self.parents: dict[str, str] = {k: v for k, v in _dict(data.get("parents")).items() if isinstance(v, str)}

    def lookup(self, key: str) -> Image | None:
        """The cached image of a step, if the store still has all of it (its manifest, config and layers)."""
        hit = self.steps.get(key)
        if not (hit and self.store.has_blob(hit["manifest"])):
            return None
        image = Image(self.store, hit["manifest"])
        try:
            if all(self.store.has_blob(d) for d in (image.id, *(layer.digest for layer in image.layers))):
                return image
        except PyContainersError:  # (a manifest that cannot be read: not a hit either)
            pass
        return None

    def record(self, key: str, seen_key: str, seen: dict[str, Any], image: Image, parent_id: str) -> None:
        self.steps[key] = {"manifest": image.manifest_digest, "id": image.id}
        self.seen[seen_key] = seen
        if parent_id != "scratch":
            self.parents[image.id] = parent_id

    def save(self) -> None:
        """Merge with what other builds wrote meanwhile, under the store's lock, then replace the file."""
        with self.store.lock():
            other = BuildCache(self.store)  # what is on disk now (as far as it is sound)
            steps = {**other.steps, **self.steps}
            merged = {
                "steps": steps,
                "seen": {**other.seen, **self.seen},
                "parents": {**other.parents, **self.parents},
                "manifests": sorted({s["manifest"] for s in steps.values()}),
            }
            atomic_write(self.path, json.dumps(merged, indent=1).encode(), self.store.tmp_dir)


def step_images(store: Store, image_id: str) -> list[str]:
    """The image IDs of *image_id*'s own build steps, newest first (what ``image history`` shows in IMAGE
    for a locally built image), from the cache's parent links; stops where the chain leaves this store's
    builds (the base image's steps show as ``<missing>``, as in Docker)."""
    parents = BuildCache(store).parents
    chain = [image_id]
    while chain[-1] in parents and len(chain) < 10_000:
        chain.append(parents[chain[-1]])
    return chain


def cached_steps(store: Store) -> list[str]:
    """The keys of the build cache's steps (what ``docker builder prune`` lists as cache objects)."""
    try:
        return sorted(BuildCache(store).steps)
    except (OSError, ValueError):
        return []


def prune_cache(store: Store) -> int:
    """``builder prune``: forget every cached step; gc then frees their blobs. Returns steps dropped."""
    with store.lock():
        count = len(cached_steps(store))
        (store.home / CACHE_FILE).unlink(missing_ok=True)
    return count


# ----------------------------------------------------------------------------------------------- state


@dataclass
class State:
    """The image a stage has built so far: config and layers, and the ID of the last step's image."""

    config: dict[str, Any]
    layers: list[oci.Descriptor]
    image_id: str  # "scratch" before the first step of a FROM scratch stage
    manifest: str | None = None
    cmd_set: bool = False  # CMD was set in this stage (ENTRYPOINT then keeps it)

    @classmethod
    def of(cls, image: Image | None) -> State:
        if image is None:
            return cls(empty_config(), [], "scratch")
        return cls(copy.deepcopy(image.config), list(image.layers), image.id, image.manifest_digest)


@dataclass
class StepResult:
    number: int
    instruction: str
    cached: bool
    reason: str
    image_id: str
    layer: str | None = None
    layer_size: int = 0
    line: int = 0
    stage: int = 0
    manifest: str = ""  # the step image's manifest (intermediate images are not in index.json)


@dataclass
class BuildResult:
    image: Image
    steps: list[StepResult] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


# ----------------------------------------------------------------------------------------- the builder


class Builder:
    def __init__(self, store: Store, context: Path, dockerfile: df.Dockerfile, *, build_args: dict[str, str],
                 no_cache: bool, network: str, on_event: Callable[[Event], None] | None) -> None:
        self.store = store
        self.context = context
        self.file = dockerfile
        self.args = df.BuildArgs(build_args, escape=dockerfile.escape)
        self.no_cache = no_cache
        self.network = network
        self.cache = BuildCache(store)
        self.events: list[Event] = []
        self.on_event = on_event
        self.steps: list[StepResult] = []
        self.stage_results: dict[int, Image] = {}
        self.missed_at: int | None = None  # the first step number that missed: later steps follow it
        ignore = DockerIgnore.from_file(context / ".dockerignore")
        self.ignore = ignore
        self.context_files = set(ignore.walk(context, dockerfile=dockerfile.filename))
        self.total = 0
        self.number = 0
        self.last_reason = ""
        self.cancelled = False
        self.step_container: str | None = None  # the ID of the RUN step's container, while it exists

    def cancel(self) -> None:
        """Stop the build: its RUN step's container is killed now (then removed as after any step), and
        the build raises ``BuildCancelled`` instead of going on. Safe in a signal handler: it only sets a
        flag, reads a state file and sends a signal."""
        self.cancelled = True
        self._kill_step_container()

    def _kill_step_container(self) -> None:
        from . import container as containers

        if self.step_container is None:
            return
        with contextlib.suppress(PyContainersError, OSError):  # not started yet (see _run_step), or ended
            containers.kill(containers.get_container(self.store, self.step_container))

    def _check_not_cancelled(self) -> None:
        if self.cancelled:
            raise BuildCancelled("the build was cancelled")

    def emit(self, kind: str, **data: Any) -> None:
        event = {"type": kind, **data}
        self.events.append(event)
        if self.on_event:
            self.on_event(event)

    # ------------------------------------------------------------------------------------ stages

    def run(self, target: str | None) -> Image:
        _IN_PROGRESS.add(self)
        try:
            return self._stages(target)
        finally:
            _IN_PROGRESS.discard(self)

    def _stages(self, target: str | None) -> Image:
        stages = list(self.file.stages)
        if target is not None:
            index = self.file.stage_index(target)
            if index is None:
                raise BuildError(f"failed to reach build target {target} in Dockerfile")
            stages = stages[: index + 1]
        self.total = len(self.file.args_before_from) + sum(1 + len(s.instructions) for s in stages)
        size = sum((self.context / p).lstat().st_size for p in self.context_files
                   if (self.context / p).is_file() and not (self.context / p).is_symlink())
        self.emit("context", files=len(self.context_files), size=size)
        for ins in self.file.args_before_from:
            self._step_header(ins)
            self.args.declare_global(ins)
            self.emit("done", image=None)
        final: Image | None = None
        for stage in stages:
            final = self._build_stage(stage)
            self.stage_results[stage.index] = final
        for warning in self.args.warnings():
            self.emit("warning", text=warning)
        assert final is not None
        return final

    def _step_header(self, ins: df.Instruction) -> None:
        self._check_not_cancelled()
        self.number += 1
        self.emit("step", number=self.number, total=self.total, instruction=ins.original.strip(),
                  line=ins.start_line)

    def _build_stage(self, stage: df.Stage) -> Image:
        ins = stage.from_instruction
        self._step_header(ins)
        base_name = self.args.base_image(stage)
        base = self._base_image(base_name, ins)
        state = State.of(base)
        self.emit("done", image=None if base is None else base.id)
        scope = self.args.stage(state.config.get("config", {}).get("Env") or [])
        triggers = (state.config.get("config") or {}).get("OnBuild") or []
        if triggers:
            self.emit("output", stream=1, text=f"# Executing {len(triggers)} build trigger(s)\n")
            for trigger in df.parse_triggers(triggers):
                state = self._instruction(trigger, state, scope, stage.index, count=False)
            state.config.setdefault("config", {})["OnBuild"] = None
        self.missed_at = None  # each stage starts from its base; its cache keys already name that base
        for instruction in stage.instructions:
            self._step_header(instruction)
            state = self._instruction(instruction, state, scope, stage.index)
        if state.manifest is None:  # FROM scratch with no step after it
            state = self._commit(state, state.config, None, "", "", stage.index, stage.from_instruction)
        return Image(self.store, state.manifest)  # type: ignore[arg-type]

    def _base_image(self, name: str, ins: df.FromInstruction) -> Image | None:
        if name == "scratch":
            return None
        index = self.file.stage_index(name)
        if index is not None and index in self.stage_results:
            return self.stage_results[index]
        try:
            return get_image(self.store, name)
        except StoreError as exc:  # the store itself cannot be read: not a missing image to pull
            raise ins.error(str(exc)) from None
        except PyContainersError:
            pass
        from . import registry
        from .reference import parse

        try:
            parse(name)  # (an ID prefix is no reference either, but was found above if it names an image)
        except PyContainersError as exc:
            raise ins.error(f"invalid reference format: {exc}") from None

        if not registry.names_a_registry(name):  # Docker Hub, which the course's machines cannot reach
            raise ins.error(f"pull access denied for {name}: the image is not in the store and there is no "
                            "registry to pull it from (try: pycontainers images)")
        try:
            return registry.pull(self.store, name, on_event=self._pull_event).image
        except PyContainersError as exc:
            raise ins.error(f"pulling {name}: {exc}") from None

    def _pull_event(self, event: dict[str, Any]) -> None:
        from .registry import progress_line

        line = progress_line(event)
        if line is not None:
            self.emit("output", stream=2, text=line + "\n")

    # ------------------------------------------------------------------------------ instructions

    def _instruction(self, ins: df.Instruction, state: State, scope: df.StageScope, stage: int,
                     count: bool = True) -> State:
        cfg = copy.deepcopy(state.config)
        settings = cfg.setdefault("config", {})
        shell = settings.get("Shell") or DEFAULT_SHELL
        if isinstance(ins, df.RunInstruction):
            return self._run(ins, state, scope, shell, stage)
        if isinstance(ins, df.CopyInstruction | df.AddInstruction):
            return self._copy(ins, state, scope, stage)
        shown = self.apply_metadata(ins, settings, scope, shell, state)
        if isinstance(ins, df.WorkdirInstruction):
            return self._workdir(ins, state, cfg, f"{' '.join(shell)} #(nop) {shown}", stage)
        created_by = f"{' '.join(shell)} #(nop) {shown}"
        return self._step(state, cfg, None, created_by, created_by, {}, stage, ins)

    @staticmethod
    def apply_metadata(ins: df.Instruction, settings: dict[str, Any], scope: df.StageScope,
                  shell: list[str], state: State) -> str:
        """Apply a config-only instruction to *settings*; return how history shows it. (Static: ``import -c``
        applies its changes with it too, ``cp.config_with_changes``.)"""
        if isinstance(ins, df.CmdInstruction | df.EntrypointInstruction):
            value = list(ins.command) if ins.exec_form else [*shell, ins.command[0]]
            key = "Cmd" if isinstance(ins, df.CmdInstruction) else "Entrypoint"
            settings[key] = value
            if key == "Cmd":
                state.cmd_set = True
            elif not state.cmd_set:
                settings["Cmd"] = None  # Docker: a new ENTRYPOINT drops the CMD inherited from the base
            return f" {key.upper()} {docker_list(value)}"
        if isinstance(ins, df.EnvInstruction):
            pairs = scope.set_env(ins)
            settings["Env"] = scope.env_list()
            return " ENV " + " ".join(f"{k}={v}" for k, v in pairs)
        if isinstance(ins, df.ArgInstruction):
            # History (and so the cache key) shows the declaration; a --build-arg value only reaches the
            # RUN steps that see it (their "|N K=V" prefix), so those are the steps that miss.
            env = scope.expansion_env()
            shown = [k if v is None else f"{df.expand(k, env)}={df.expand(v, env)}" for k, v in ins.pairs]
            scope.declare(ins)
            return " ARG " + " ".join(shown)
        if isinstance(ins, df.LabelInstruction):
            env = scope.expansion_env()
            labels = settings.get("Labels") or {}
            pairs = [(df.expand(k, env), df.expand(v, env)) for k, v in ins.pairs]
            labels.update(pairs)
            settings["Labels"] = labels
            return " LABEL " + " ".join(f"{k}={v}" for k, v in pairs)
        if isinstance(ins, df.WorkdirInstruction):
            path = scope.expand(ins.path)
            settings["WorkingDir"] = posixpath.normpath(posixpath.join(settings.get("WorkingDir") or "/", path))
            return f"WORKDIR {settings['WorkingDir']}"
        if isinstance(ins, df.UserInstruction):
            settings["User"] = scope.expand(ins.user)
            return f" USER {settings['User']}"
        if isinstance(ins, df.ExposeInstruction):
            ports = [w for p in ins.ports for w in scope.expand_words(p)]
            exposed = settings.get("ExposedPorts") or {}
            exposed.update({p: {} for p in _expand_ports(ins, ports)})
            settings["ExposedPorts"] = exposed
            return " EXPOSE " + " ".join(ports)
        if isinstance(ins, df.VolumeInstruction):
            volumes = settings.get("Volumes") or {}
            volumes.update({scope.expand(p): {} for p in ins.paths})
            settings["Volumes"] = volumes
            return f" VOLUME {docker_list(list(volumes))}"
        if isinstance(ins, df.StopsignalInstruction):
            from .container import parse_signal

            stop = scope.expand(ins.signal)
            try:
                parse_signal(stop)
            except PyContainersError as exc:
                raise ins.error(str(exc)) from None
            settings["StopSignal"] = stop
            return f" STOPSIGNAL {settings['StopSignal']}"
        if isinstance(ins, df.ShellInstruction):
            settings["Shell"] = list(ins.shell)
            return f" SHELL {docker_list(list(ins.shell))}"
        if isinstance(ins, df.HealthcheckInstruction):
            check: dict[str, Any] = {"Test": list(ins.test)}
            for key, value in (("Interval", ins.interval), ("Timeout", ins.timeout),
                               ("StartPeriod", ins.start_period), ("StartInterval", ins.start_interval),
                               ("Retries", ins.retries)):
                if value is not None:
                    check[key] = value
            settings["Healthcheck"] = check
            return f' HEALTHCHECK &{{{docker_list(list(ins.test))}}}'
        if isinstance(ins, df.OnbuildInstruction):
            settings["OnBuild"] = [*(settings.get("OnBuild") or []), ins.expression]
            return f" ONBUILD {ins.expression}"
        if isinstance(ins, df.MaintainerInstruction):
            return f" MAINTAINER {ins.maintainer}"
        raise ins.error(f"{ins.keyword} is not supported by this builder")

    def _workdir(self, ins: df.Instruction, state: State, cfg: dict[str, Any], created_by: str, stage: int) -> State:
        """WORKDIR creates its directory, as Docker's classic builder: a small layer when it is missing."""
        path = cfg["config"]["WorkingDir"].strip("/")
        image_fs = Image(self.store, state.manifest).filesystem() if state.manifest else {}
        if not path or path in image_fs:
            return self._step(state, cfg, None, created_by, created_by, {}, stage, ins)
        hit = self._cached(state, created_by, ins, {}, stage)
        if hit is not None:
            return hit
        entries = []
        for p in [*_parents(path), path]:
            rec = image_fs.get(p)
            mode, uid, gid = (rec.mode, rec.uid, rec.gid) if rec is not None else (0o755, 0, 0)
            entries.append(layers.Entry(layers.new_info(p, tarfile.DIRTYPE, mode=mode, uid=uid, gid=gid)))
        with self.store.writing():
            layer = write_layer(self.store, entries)
        return self._commit_step(state, cfg, layer, created_by, created_by, {}, stage, ins)

    # ---------------------------------------------------------------------------------------- RUN

    def _run(self, ins: df.RunInstruction, state: State, scope: df.StageScope, shell: list[str],
             stage: int) -> State:
        if ins.exec_form:
            argv = list(ins.command)
        else:
            text = ins.command[0]
            if ins.heredocs and text.strip().startswith("<<"):
                text = "\n".join(h.body for h in ins.heredocs)
            argv = [*shell, text]
        args_env = scope.run_env()
        shown = " ".join(argv) if not ins.exec_form else docker_list(argv)
        if args_env:  # the classic builder records the build args a RUN saw: they are part of its cache key
            shown = f"|{len(args_env)} " + " ".join(f"{k}={v}" for k, v in args_env.items()) + " " + shown
        key_text = shown
        hit = self._cached(state, key_text, ins, {}, stage)
        if hit is not None:
            return hit
        layer, output_size = self._run_container(ins, state, argv, args_env)
        cfg = copy.deepcopy(state.config)
        return self._commit_step(state, cfg, layer, key_text, shown, {}, stage, ins)

    def _run_container(self, ins: df.RunInstruction, state: State, argv: list[str],
                       args_env: dict[str, str]) -> tuple[oci.Descriptor, int]:
        """Run the step in a container and make its layer.

        With overlayfs (native, rootless) the layer is the container's upper directory. proot has none, so
        the step runs on a private flattened copy of the image, snapshotted before and compared after
        (``snapshot``). Either way the container goes at the end, whatever happened.
        """
        from . import container as containers
        from .spec import ContainerSpec, merge_env, new_container_id

        if state.manifest is None:
            raise ins.error("RUN needs a base image with a shell: FROM scratch has no files to run")
        image = Image(self.store, state.manifest)
        settings = state.config.get("config") or {}
        cid = new_container_id()
        spec = ContainerSpec(
            image_id=image.id, image_name=f"<build step {self.number}>", args=argv,
            env=merge_env(settings.get("Env") or [], [f"{k}={v}" for k, v in args_env.items()]),
            workdir=settings.get("WorkingDir") or "/", user=settings.get("User") or "",
            hostname=cid[:12], network=self._step_network(ins))
        backend = containers.default_backend(self.store)
        if backend not in ("native", "rootless", "proot"):
            raise ins.error(f"RUN cannot run its command with the {backend} back end: it needs native, rootless "
                            "or proot (check PYCONTAINERS_BACKEND)")
        me = os.getpid()
        container = containers.create(self.store, spec, cid, name=f"build-{cid[:12]}", backend=backend,
                                      labels={BUILDER_LABEL: f"{me}:{containers.process_start_time(me)}"})
        self.step_container = cid
        self.emit("running", container=cid)
        if backend == "proot" and spec.network == "none":
            self.emit("output", stream=2, text="note: under proot this step shares the host's network "
                                               "(--network none needs namespaces)\n")
        if ins.multi_flags.get("mount") or ins.flags.get("security") == "insecure":
            self.emit("output", stream=2, text="note: this builder runs RUN without --mount and --security (a cache "
                                               "mount's files go into the layer)\n")
        try:
            baseline = self._proot_baseline(container, image) if backend == "proot" else None
            self._run_step(ins, container, image)
            try:
                entries = self._step_entries(container, image, baseline)
                with self.store.writing():
                    layer = write_layer(self.store, entries)
            except LayerError as exc:
                raise ins.error(f"RUN: what the command left cannot become a layer: {exc}") from None
            except OSError as exc:  # a file that cannot be read, a full disk: one line, not a traceback
                raise ins.error(f"RUN: what the command left cannot become a layer: "
                                f"{_container_path(exc.filename, container.dir / 'rootfs')}: {exc.strerror}") from None
        finally:
            containers.remove(containers.get_container(self.store, cid), force=True)
            self.step_container = None
            self.emit("removed", container=cid)
        return layer, 0

    def _step_network(self, ins: df.Instruction) -> str:
        """A RUN step's network: the build's, or its own ``--network``; host only where the build allows it (as
        BuildKit's network.host entitlement), none whatever the build's."""
        wanted = ins.flags.get("network") or "default"
        if wanted == "host" and self.network != "host":
            raise ins.error("RUN --network=host needs a build that allows it: build --network host")
        return self.network if wanted == "default" else wanted

    def _run_step(self, ins: df.RunInstruction, container: Container, image: Image) -> None:
        """Run the container to its end, its output streamed as events; a non-zero exit fails the step."""
        from . import runtime

        code, out, err = runtime.capture(
            lambda stdio: runtime.start(container, stdio, image=image),
            on_output=lambda fd, chunk: self.emit("output", stream=fd, text=chunk.decode(errors="replace")),
            on_started=lambda: self.cancelled and self._kill_step_container())  # cancelled while it started
        self._check_not_cancelled()
        if code != 0:
            why = err.decode(errors="replace").strip().splitlines()[-1:] if code in (125, 126, 127) else []
            hint = ""
            if self.network == "none" and _NO_NETWORK.search((out + err).decode(errors="replace")):
                hint = (" (RUN steps have no network unless the build is given one, where Docker's have the "
                        "default bridge: build --network host)")
            raise ins.error(f"RUN {ins.command[0] if not ins.exec_form else docker_list(list(ins.command))}"
                            f": returned a non-zero code: {code}" + (f" ({why[0]})" if why else "") + hint)

    def _proot_baseline(self, container: Container, image: Image) -> tuple[snapshot.Snapshot, tuple[int, int]]:
        """proot has no overlayfs: flatten the image into the container's rootfs (as ``create_from_image``
        does for ``run``) and snapshot it; also who owns what the step creates (its USER, root by default),
        resolved before the command can change /etc/passwd."""
        from .bundle import flatten
        from .pid1 import StartError, resolve_user

        rootfs = container.dir / "rootfs"
        flatten(self.store, image, rootfs)
        try:
            user = resolve_user(container.spec.user, str(rootfs))
            new_owner = (user.uid, user.gid)
        except StartError:
            new_owner = (0, 0)  # the run fails on the same unknown user, with the runtime's message
        return snapshot.take(rootfs), new_owner

    def _step_entries(self, container: Container, image: Image,
                      baseline: tuple[snapshot.Snapshot, tuple[int, int]] | None,
                      ) -> list[layers.Entry] | layers.TarWriter:
        """The step's layer entries: the overlayfs upper directory (or, rootless with subordinate ids, the
        function that has a user namespace write its tar: ``container.upper_entries``), or the snapshot's
        differences."""
        from . import container as containers

        if baseline is None:
            return containers.upper_entries(container)
        before, new_owner = baseline
        owners = {path: (rec.uid, rec.gid) for path, rec in image.filesystem().items()}
        return snapshot.changes(before, owners=owners, new_owner=new_owner)

    # ------------------------------------------------------------------------------------- COPY/ADD

    def _copy(self, ins: df.CopyInstruction | df.AddInstruction, state: State, scope: df.StageScope,
              stage: int) -> State:
        keyword = ins.keyword.upper()
        settings = state.config.get("config") or {}
        dest = scope.expand(ins.dest)
        # "dir/", ".", "dir/." all name a directory (Docker's rule); normpath would drop the hint
        as_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
        dest = posixpath.normpath(posixpath.join(settings.get("WorkingDir") or "/", dest))
        dest = dest.rstrip("/") + "/" if as_dir else dest
        sources = [scope.expand(s) for s in ins.sources]
        from_ref = scope.expand(ins.from_ref) if isinstance(ins, df.CopyInstruction) and ins.from_ref else None
        chown = scope.expand(ins.chown) if ins.chown else None
        with tempfile.TemporaryDirectory(prefix=owned_prefix("copy"), dir=self.store.tmp_dir) as tmp:
            if ins.inline_files:  # COPY <<EOF /dest: here-documents become files of their own
                if sources or from_ref:
                    raise ins.error(f"{keyword}: mixing here-documents with other sources is not supported")
                root = Path(tmp) / "inline"
                root.mkdir()
                for doc in ins.inline_files:
                    text = scope.expand(doc.body) if doc.expand else doc.body
                    (root / doc.name).write_text(text)
                    (root / doc.name).chmod(0o644)
                matched = [doc.name for doc in ins.inline_files]
            else:
                root, files = self._copy_source_root(ins, from_ref, Path(tmp))
                matched = self._match_sources(ins, keyword, sources, root, files)
            entries, digests = self._copy_entries(ins, state, matched, root, dest, chown)
            content = hashlib.sha256(json.dumps(sorted(digests.items())).encode()).hexdigest()
            kind = "file" if len(matched) == 1 and (root / matched[0]).is_file() else "dir"
            flags = "".join(f"--{k}={v} " for k, v in (("chown", chown), ("chmod", getattr(ins, "chmod", None))) if v)
            shown = f"{keyword} {flags}{kind}:{content} in {dest} "
            shell = (state.config.get("config") or {}).get("Shell") or DEFAULT_SHELL
            created_by = f"{' '.join(shell)} #(nop) {shown}"
            key_text = created_by + (f" from {from_ref}" if from_ref else "")
            hit = self._cached(state, key_text, ins, digests, stage)
            if hit is not None:
                return hit
            with self.store.writing():
                layer = write_layer(self.store, entries)
        return self._commit_step(state, copy.deepcopy(state.config), layer, key_text, created_by, digests, stage, ins)

    def _copy_source_root(self, ins: df.Instruction, from_ref: str | None, tmp: Path) -> tuple[Path, set[str]]:
        """Where COPY reads from: the build context (minus .dockerignore) or another stage's or image's files."""
        if from_ref is None:
            return self.context, self.context_files
        from .bundle import flatten

        index = self.file.stage_index(from_ref)
        if index is not None:
            if index not in self.stage_results:
                raise ins.error(f"COPY --from={from_ref}: that stage is not built before this one")
            image = self.stage_results[index]
        else:
            try:
                image = get_image(self.store, from_ref)
            except PyContainersError:
                raise ins.error(f"COPY --from={from_ref}: no stage or image of that name") from None
        root = tmp / "from"
        root.mkdir()
        flatten(self.store, image, root)
        files = {os.path.relpath(os.path.join(d, n), root) for d, dirs, names in os.walk(root)
                 for n in dirs + names}
        return root, files

    def _match_sources(self, ins: df.Instruction, keyword: str, sources: list[str], root: Path,
                       files: set[str]) -> list[str]:
        matched: list[str] = []
        for src in sources:
            if "://" in src:
                if keyword == "ADD":
                    raise ins.error(f"ADD {src}: downloading needs the network, which this build does not have; "
                                    "download it into the build context and ADD the file instead")
                raise ins.error(f"COPY {src}: COPY cannot fetch URLs (ADD can, with a network)")
            pattern = os.path.normpath(src.lstrip("/")) if src not in ("", ".", "/") else "."
            if pattern == ".":
                matched.append(".")
                continue
            hits = sorted(f for f in files if _glob_match(pattern, f))
            if not hits:
                raise ins.error(f"{keyword} failed: file not found in build context or excluded by "
                                f".dockerignore: stat {src}: file does not exist")
            matched += hits
        return matched

    def _copy_entries(self, ins: df.Instruction, state: State, matched: list[str], root: Path, dest: str,
                      chown: str | None) -> tuple[list[layers.Entry], dict[str, str]]:
        """Docker's COPY rules: a directory's *contents* are copied; several sources need a directory dest."""
        uid, gid = self._owner(ins, state, chown)
        chmod = int(ins.chmod, 8) if getattr(ins, "chmod", None) else None
        image_fs = Image(self.store, state.manifest).filesystem() if state.manifest else {}
        dest_rel = _resolve_in_image(image_fs, dest.strip("/"), ins)  # the links among its directories followed
        with contextlib.suppress(PyContainersError):  # and the last, if it is a link to a directory
            followed = _resolve_in_image(image_fs, dest_rel, ins, follow_last=True)
            if followed != dest_rel and getattr(image_fs.get(followed), "kind", None) == "directory":
                dest_rel = followed
        if len(matched) > 1 and not dest.endswith("/"):
            raise ins.error(f"When using {ins.keyword.upper()} with more than one source file, the destination "
                            "must be a directory and end with a /")
        dest_is_dir = (dest.endswith("/") or len(matched) > 1 or (root / matched[0]).is_dir()
                       or (dest_rel in image_fs and image_fs[dest_rel].kind == "directory"))
        planned: dict[str, Path | None] = {}  # path in the image -> host source (None: a directory)
        for src in matched:
            host = root / src if src != "." else root
            if host.is_dir() and not host.is_symlink():
                for dirpath, dirnames, filenames in os.walk(host):
                    dirnames.sort()
                    for name in sorted(dirnames + filenames):
                        full = Path(dirpath) / name
                        rel = full.relative_to(host).as_posix()
                        if root == self.context and self.ignore.matches(full.relative_to(root).as_posix()):
                            continue
                        planned[_join(dest_rel, rel)] = full
            else:
                target = _join(dest_rel, Path(src).name) if dest_is_dir else dest_rel
                if isinstance(ins, df.AddInstruction) and _is_local_archive(host):
                    planned.update(_archive_plan(ins, host, dest_rel))
                    continue
                planned[target] = host
        entries: list[layers.Entry] = []
        digests: dict[str, str] = {}
        for parent in sorted({p for path in planned for p in _parents(path)} - set(planned)):
            rec = image_fs.get(parent)  # an existing directory keeps its mode and owner; a new one is --chown's
            mode, owner = (rec.mode, (rec.uid, rec.gid)) if rec is not None else (0o755, (uid, gid))
            entries.append(layers.Entry(layers.new_info(parent, tarfile.DIRTYPE, mode=mode, uid=owner[0],
                                                        gid=owner[1])))
        for path, host in sorted(planned.items()):
            if isinstance(host, layers.Entry):  # from an ADDed archive
                entries.append(host)
                info = host.info
                data = host.source if isinstance(host.source, bytes) else b""
                digests[path] = (f"{info.mode:o}:{info.uid}:{info.gid}:{info.linkname}:"
                                 f"{hashlib.sha256(data).hexdigest()}")
                continue
            st = host.lstat()  # type: ignore[union-attr]
            info = layers.info_from_stat(path, str(host), st, (uid, gid), layers.source_date_epoch())
            if chmod is not None and not info.issym():
                info.mode = chmod
            if info.isreg():
                entries.append(layers.Entry(info, str(host)))
                digests[path] = f"{info.mode:o}:{info.uid}:{info.gid}:{_file_sha(host)}"  # type: ignore[arg-type]
            else:
                entries.append(layers.Entry(info))
                digests[path] = f"{info.mode:o}:{info.uid}:{info.gid}:{info.type.decode()}:{info.linkname}"
        return entries, digests

    def _owner(self, ins: df.Instruction, state: State, chown: str | None) -> tuple[int, int]:
        if not chown:
            return 0, 0
        user, _, group = chown.partition(":")
        if user.isdigit() and (not group or group.isdigit()):
            return int(user), int(group or user)
        from .bundle import flatten
        from .pid1 import StartError, resolve_user

        with tempfile.TemporaryDirectory(prefix="chown-", dir=self.store.tmp_dir) as tmp:
            if state.manifest:
                flatten(self.store, Image(self.store, state.manifest), Path(tmp))
            try:
                account = resolve_user(chown, tmp)
            except StartError as exc:
                raise ins.error(f"--chown={chown}: {exc}") from None
        return account.uid, account.gid

    # ------------------------------------------------------------------------------- cache + commit

    def _cached(self, state: State, key_text: str, ins: df.Instruction, files: dict[str, str],
                stage: int) -> State | None:
        """The cached result of this step, or None after recording (as an event) why it missed."""
        key = _key(state.image_id, key_text)
        if not self.no_cache and self.missed_at is None:
            image = self.cache.lookup(key)
            if image is not None:
                self.emit("cache", hit=True, image=image.id)
                # the next miss of this line is explained against what this build used, not an older one
                self.cache.seen[_key(state.image_id, ins.original.strip())] = {
                    "instruction": ins.original.strip(), "resolved": key_text, "files": files,
                    "parent": state.image_id, "where": self._where(ins)}
                history = image.config.get("history") or []
                made_layer = bool(history) and not history[-1].get("empty_layer") and image.layers
                self._record_step(ins, stage, True, "", image, image.layers[-1] if made_layer else None)
                return State(copy.deepcopy(image.config), list(image.layers), image.id, image.manifest_digest,
                             state.cmd_set)
        self.last_reason = self._miss_reason(state, key_text, ins, files)
        self.emit("cache", hit=False, reason=self.last_reason)
        return None

    def _miss_reason(self, state: State, key_text: str, ins: df.Instruction, files: dict[str, str]) -> str:
        if self.no_cache:
            return "--no-cache"
        if self.missed_at is not None:
            return f"parent changed because step {self.missed_at} missed"
        before = self.cache.seen.get(_key(state.image_id, ins.original.strip()))
        if before is None:
            if any(s.get("instruction") == ins.original.strip() for s in self.cache.seen.values()):
                return "the base image changed"
            earlier = [s["instruction"] for s in self.cache.seen.values()
                       if s.get("parent") == state.image_id and s.get("where") == self._where(ins)]
            if earlier:
                return f"the instruction changed (was: {earlier[-1]})"
            return "first build"
        changed = [p for p in sorted(set(files) | set(before.get("files", {})))
                   if files.get(p) != before.get("files", {}).get(p)]
        if changed:
            shown = [_file_change(path, before.get("files", {}).get(path), files.get(path)) for path in changed[:3]]
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            return "; ".join(shown) + more
        if before.get("resolved") != key_text:
            old_args = _build_args_of(before.get("resolved", ""))
            new_args = _build_args_of(key_text)
            diffs = [f"ARG {k} changed ({old_args.get(k, 'unset')} → {new_args.get(k, 'unset')})"
                     for k in sorted(set(old_args) | set(new_args)) if old_args.get(k) != new_args.get(k)]
            return "; ".join(diffs) if diffs else "the instruction resolves differently now (a variable changed)"
        return "the cached result is gone from the store (pruned)"

    def _step(self, state: State, cfg: dict[str, Any], layer: oci.Descriptor | None, key_text: str,
              created_by: str, files: dict[str, str], stage: int, ins: df.Instruction) -> State:
        hit = self._cached(state, key_text, ins, files, stage)
        if hit is not None:
            hit.cmd_set = state.cmd_set
            return hit
        return self._commit_step(state, cfg, layer, key_text, created_by, files, stage, ins)

    def _commit_step(self, state: State, cfg: dict[str, Any], layer: oci.Descriptor | None, key_text: str,
                     created_by: str, files: dict[str, str], stage: int, ins: df.Instruction) -> State:
        if self.missed_at is None:
            self.missed_at = self.number
        new = self._commit(state, cfg, layer, key_text, created_by, stage, ins)
        image = Image(self.store, new.manifest)  # type: ignore[arg-type]
        self.cache.record(_key(state.image_id, key_text), _key(state.image_id, ins.original.strip()),
                          {"instruction": ins.original.strip(), "resolved": key_text, "files": files,
                           "parent": state.image_id, "where": self._where(ins)},
                          image, state.image_id)
        self._record_step(ins, stage, False, self.last_reason, image, layer)
        return new

    def _commit(self, state: State, cfg: dict[str, Any], layer: oci.Descriptor | None, key_text: str,
                created_by: str, stage: int, ins: df.Instruction) -> State:
        epoch = layers.source_date_epoch()
        step: dict[str, Any] = {"created": iso_time(epoch), "created_by": created_by}
        layer_list = list(state.layers)
        if layer is None:
            step["empty_layer"] = True
        else:
            layer_list.append(layer)
            cfg["rootfs"]["diff_ids"] = [*cfg["rootfs"]["diff_ids"], layer.digest]
        if created_by:
            cfg["history"] = [*cfg.get("history", []), step]
        cfg["created"] = iso_time(epoch)
        with self.store.writing():
            config_desc = self.store.put_json(cfg, oci.MEDIA_CONFIG)
            manifest = self.store.put_json(oci.manifest_json(config_desc, layer_list), oci.MEDIA_MANIFEST)
        return State(cfg, layer_list, config_desc.digest, manifest.digest, state.cmd_set)

    def _where(self, ins: df.Instruction) -> str:
        """Which Dockerfile line an instruction is: a changed line is "the instruction changed"."""
        return f"{self.context}/{ins.filename}:{ins.start_line}"

    def _record_step(self, ins: df.Instruction, stage: int, cached: bool, reason: str, image: Image,
                     layer: oci.Descriptor | None = None) -> None:
        self.steps.append(StepResult(self.number, ins.original.strip(), cached, reason, image.id,
                                     layer.digest if layer else None, layer.size if layer else 0,
                                     ins.start_line, stage, image.manifest_digest))
        self.emit("done", image=image.id, layer_size=layer.size if layer else None)


def _key(parent_id: str, text: str) -> str:
    return hashlib.sha256(f"{parent_id}\n{text}".encode()).hexdigest()


def _build_args_of(text: str) -> dict[str, str]:
    """The ``|N K=V ...`` prefix the classic builder puts in front of a RUN that saw build args."""
    if not text.startswith("|"):
        return {}
    head, _, rest = text.partition(" ")
    count = int(head[1:] or 0)
    return dict(item.partition("=")[::2] for item in rest.split(" ")[:count])


def _file_change(path: str, old: str | None, new: str | None) -> str:
    """One changed file, as a miss reason: its content (short digests) or its mode or owner."""
    path = "/" + path.lstrip("/")  # where it lands in the image, as the container will see it
    if old is None:
        return f"{path} is new"
    if new is None:
        return f"{path} was removed"
    old_mode, old_rest = old.split(":", 1)
    new_mode, new_rest = new.split(":", 1)
    if old_rest.rpartition(":")[2] != new_rest.rpartition(":")[2]:
        return f"{path} changed (sha256 {old_rest.rpartition(':')[2][:4]}… → {new_rest.rpartition(':')[2][:4]}…)"
    if old_mode != new_mode:
        return f"{path}: mode {old_mode} → {new_mode}"
    return f"{path}: owner changed"


def _expand_ports(ins: df.Instruction, ports: list[str]) -> list[str]:
    """``8000-8002/tcp`` -> three ports, each ``N/proto``, as Docker stores ExposedPorts."""
    out = []
    for port in ports:
        number, _, proto = port.partition("/")
        first, _, last = number.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            raise ins.error(f"invalid containerPort: {port}")
        if not 0 < int(first) <= int(last or first) <= 65535:  # (Docker's check, at build)
            raise ins.error(f"invalid containerPort: {port}")
        if proto not in ("", "tcp", "udp", "sctp"):
            raise ins.error(f"invalid proto: {proto}")
        for n in range(int(first), int(last or first) + 1):
            out.append(f"{n}/{proto or 'tcp'}")
    return out


def _glob_match(pattern: str, path: str) -> bool:
    """Go's filepath.Match per path component: ``*`` never crosses a ``/``."""
    pattern_parts, path_parts = pattern.split("/"), path.split("/")
    return len(pattern_parts) == len(path_parts) and all(
        fnmatch.fnmatchcase(name, pat) for name, pat in zip(path_parts, pattern_parts, strict=True))


def _resolve_in_image(image_fs: dict[str, Any], rel: str, ins: df.Instruction, follow_last: bool = False) -> str:
    """A path in the image (without its leading /) with the symlinks on its way followed inside the image, as
    Docker's COPY follows them: ``COPY f /bin/`` on debian, whose /bin is a link to usr/bin, writes usr/bin/f
    (a directory ``bin`` in the new layer would hide the link, and /bin/sh with it). A file on the way is
    refused, as Docker refuses it. The last name is followed only with *follow_last*."""
    todo, done, hops = [p for p in rel.split("/") if p], [], 0
    while todo:
        name = todo.pop(0)
        here = "/".join([*done, name])
        rec = image_fs.get(here)
        if rec is not None and rec.kind == "symlink" and (todo or follow_last):
            hops += 1
            if hops > 40:
                raise ins.error(f"{ins.keyword.upper()}: too many levels of symbolic links at /{here}")
            target = posixpath.normpath("/" + posixpath.join("/".join(done), rec.linkname))  # (.. stops at /)
            todo, done = [p for p in target.split("/") if p] + todo, []
            continue
        if rec is not None and rec.kind != "directory" and todo:
            raise ins.error(f"{ins.keyword.upper()}: cannot copy to non-directory: /{here}")
        done.append(name)
    return "/".join(done)


def _join(base: str, rel: str) -> str:
    return f"{base}/{rel}".strip("/") if base else rel


def _parents(path: str) -> list[str]:
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _container_path(host_path: Any, rootfs: Path) -> str:
    """A host path inside a container's flattened root file system as the container sees it."""
    text = os.fsdecode(host_path) if host_path is not None else "?"
    rel = os.path.relpath(text, rootfs)
    return text if rel.startswith("..") else "/" + rel.removeprefix(".").lstrip("/")


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _is_local_archive(path: Path) -> bool:
    try:
        return path.is_file() and tarfile.is_tarfile(path)
    except OSError:
        return False


def _archive_plan(ins: df.Instruction, archive: Path, dest_rel: str) -> dict[str, Any]:
    """ADD of a local tar (plain, gzip, bzip2, xz): its entries, checked like a layer, under *dest*."""
    checker = layers.LayerChecker(f"{ins.location}: ADD {archive.name}", allow_devices=False)
    plan: dict[str, Any] = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            path = checker.check(member)
            if not path:
                continue
            target = _join(dest_rel, path)
            info = layers.new_info(target, member.type, mode=member.mode, uid=member.uid, gid=member.gid,
                                   size=member.size if member.isreg() else 0, linkname=member.linkname)
            if member.islnk():
                info.linkname = _join(dest_rel, layers.clean_path(member.linkname))
            data = tar.extractfile(member).read() if member.isreg() else None  # type: ignore[union-attr]
            plan[target] = layers.Entry(info, data)
    return plan


# ------------------------------------------------------------------------------------------- entry


# A RUN step's container says which process builds: one killed outright (SIGKILL: no `finally` ran) leaves it
# behind, and the next build removes it (``remove_orphaned_steps``).
BUILDER_LABEL = "pycontainers.builder"


def remove_orphaned_steps(store: Store) -> None:
    """Remove the RUN steps' containers of builds whose process is gone."""
    from . import container as containers

    for c in containers.list_containers(store):
        pid, _, start = (c.state.get("labels") or {}).get(BUILDER_LABEL, "").partition(":")
        if pid.isdigit() and not containers.pid_alive(int(pid), int(start) if start.isdigit() else None):
            with contextlib.suppress(PyContainersError):
                containers.remove(c, force=True)


def build(store: Store, context: str | os.PathLike[str], *, dockerfile: str = "Dockerfile",
          tags: Iterable[str] = (), build_args: dict[str, str] | None = None, target: str | None = None,
          no_cache: bool = False, network: str = "none",
          on_event: Callable[[Event], None] | None = None) -> BuildResult:
    """Build the Dockerfile in *context*; tag the result; return it with its steps and events."""
    from .image import commit_manifest, normalize_tag

    ctx = Path(context).resolve()
    if not ctx.is_dir():
        raise BuildError(f"unable to prepare context: path {str(context)!r} not found")
    tag_refs = [normalize_tag(t) for t in tags]  # a bad -t fails before any work
    path = Path(dockerfile) if os.path.isabs(dockerfile) else ctx / dockerfile
    parsed = df.parse_file(path, Path(dockerfile).name)
    remove_orphaned_steps(store)
    builder = Builder(store, ctx, parsed, build_args=dict(build_args or {}), no_cache=no_cache, network=network,
                      on_event=on_event)
    # Writing from the first step to the tag: its steps' blobs are referenced by nothing until the cache is
    # saved, and its RUN steps' containers run on unpacked layers of images no tag names, so a gc (image prune)
    # waits until the build is over.
    with store.writing():
        try:
            image = builder.run(target)
        finally:
            builder.cache.save()
        builder._check_not_cancelled()  # (cancelled after its last step: nothing is tagged either)
        final = commit_manifest(store, oci.Descriptor(oci.MEDIA_CONFIG, image.id,
                                                      store.blob_path(image.id).stat().st_size),
                                image.layers, tag_refs)
    builder.emit("built", image=final.id)
    for ref in tag_refs:
        builder.emit("tagged", name=ref)
    return BuildResult(final, builder.steps, builder.events)


@contextlib.contextmanager
def context_from_stream(data: bytes, dockerfile_only: bool | None = None) -> Iterator[Path]:
    """``docker build -``: standard input holds either a tar archive of the context (plain or compressed) or
    a Dockerfile alone, whose context is then empty. Yields a temporary directory holding that context,
    gone afterwards. An archive is unpacked with tarfile's "data" filter, which refuses what a context has
    no business holding (absolute paths, ``..``, links out of it, devices): one error names the member.
    *dockerfile_only*: True or False when the caller knows (the API's ``custom_context``), else guessed."""
    with tempfile.TemporaryDirectory(prefix="pycontainers-context-") as tmp:
        root = Path(tmp)
        if dockerfile_only is not True and _is_archive(data):
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                try:
                    archive.extractall(root, filter="data")
                except tarfile.FilterError as exc:
                    raise BuildError(f"the build context on standard input: member {exc.tarinfo.name!r} is refused "
                                     "(an absolute path, a path out of the context, a link out of it or a device)"
                                     ) from None
                except (tarfile.TarError, OSError) as exc:
                    raise BuildError(f"the build context on standard input is a broken archive: {exc}") from None
        elif dockerfile_only is False:
            raise BuildError("the build context on standard input is not a tar archive")
        else:
            (root / "Dockerfile").write_bytes(data)
        yield root


def _is_archive(data: bytes) -> bool:
    """Does *data* open as a tar archive (plain, gzip, bzip2 or xz)? A Dockerfile does not."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*"):
            return True
    except tarfile.TarError:
        return False


@contextlib.contextmanager
def dockerfile_from_stream(data: bytes) -> Iterator[str]:
    """``docker build -f - DIR``: the Dockerfile comes on standard input, the context from DIR. Yields the
    path of a temporary copy named Dockerfile (so errors still say ``Dockerfile:LINE``)."""
    with tempfile.TemporaryDirectory(prefix="pycontainers-dockerfile-") as tmp:
        path = Path(tmp) / "Dockerfile"
        path.write_bytes(data)
        yield str(path)


def transcript_line(event: Event) -> str | None:
    """The classic ``docker build`` transcript, one event at a time (None: the event prints nothing)."""
    from .reference import parse

    kind = event["type"]
    if kind == "context":
        files = event["files"]
        return (f"Sending build context to pycontainers  {human_size(event['size'])} "
                f"({files} file{'' if files == 1 else 's'})")
    if kind == "step":
        return f"Step {event['number']}/{event['total']} : {event['instruction']}"
    if kind == "cache":
        return " ---> Using cache" if event["hit"] else f" ---> Cache miss: {event['reason']}"
    if kind == "running":
        return f" ---> Running in {event['container'][:12]}"
    if kind == "output":
        return event["text"].rstrip("\n")
    if kind == "removed":
        return f"Removing intermediate container {event['container'][:12]}"
    if kind == "done":
        return f" ---> {event['image'].split(':')[1][:12]}" if event.get("image") else None
    if kind == "warning":
        return event["text"]
    if kind == "built":
        return f"Successfully built {event['image'].split(':')[1][:12]}"
    if kind == "tagged":
        return f"Successfully tagged {parse(event['name']).familiar}"
    return None


__all__ = ["BuildError", "BuildResult", "build", "prune_cache", "transcript_line"]
