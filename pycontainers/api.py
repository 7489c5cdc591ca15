"""The Python API, shaped like docker-py (``docker.from_env()``), over the same core as the CLI.

    client = pycontainers.from_env()
    for image in client.images.list():
        print(image.short_id, image.tags)

Objects render as HTML tables in Jupyter (through ``pycontainers.views``, imported only there).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from . import archive
from . import container as core_container
from . import image as core
from . import network as core_network
from .errors import (
    ContainerError,
    ContainerStartError,
    ImageNotFound,
    InvalidArgument,
    NotFound,
    PyContainersError,
)
from .image import ImageBuilder
from .logs import parse_time
from .spec import parse_env
from .store import Store
from .units import human_size

DEFAULT_DATA_CHUNK_SIZE = 2 * 1024 * 1024  # docker-py's: get_archive's and export's chunks


class Image:
    """One image, as docker-py's ``Image``: ``id``, ``short_id``, ``tags``, ``labels``, ``attrs``."""

    def __init__(self, client: Client, image: core.Image) -> None:
        self.client = client
        self._image = image

    def __repr__(self) -> str:
        return f"<Image: '{', '.join(self.tags) or '<none>'}'>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def _repr_html_(self) -> str:
        from .views import image_html

        return image_html(self._image)

    @property
    def core(self) -> core.Image:
        """The engine's own object (manifest, config, layers) behind this API object."""
        return self._image

    @property
    def id(self) -> str:
        return self._image.id

    @property
    def short_id(self) -> str:
        return self._image.id[:19]  # "sha256:" + 12 hex digits, as docker-py

    @property
    def tags(self) -> list[str]:
        return self._image.familiar_tags

    @property
    def labels(self) -> dict[str, str]:
        return self._image.labels

    @property
    def attrs(self) -> dict[str, Any]:
        return inspect(self._image)

    def history(self) -> list[dict[str, Any]]:
        """Build steps newest first, with docker-py's keys (``Id``, ``Created``, ``CreatedBy``, ``Size``)."""
        return [{"Id": step.image_id or "<missing>", "Created": int(step.created.timestamp()),
                 "CreatedBy": step.created_by, "Tags": self.tags if step.image_id else None,
                 "Size": step.size, "Comment": step.comment} for step in self._image.history()]

    def tag(self, repository: str, tag: str | None = None) -> bool:
        self.client.images._store.set_tag(core.normalize_tag(f"{repository}:{tag}" if tag else repository),
                                          self.client.images._store.manifest_descriptor(
                                              self._image.manifest_digest))
        self.reload()
        return True

    def save(self, fmt: str = "docker") -> bytes:
        buf = io.BytesIO()
        archive.save(self.client.images._store, [self.id], buf, fmt=fmt)
        return buf.getvalue()

    def reload(self) -> None:
        self._image = core.get_image(self.client.images._store, self._image.manifest_digest)



def inspect(image: core.Image) -> dict[str, Any]:
    """``docker image inspect``'s JSON for one image."""
    cfg = image.config
    return {
        "Id": image.id,
        "RepoTags": image.familiar_tags,
        "RepoDigests": repo_digests(image),
        "Created": cfg.get("created"),
        "Comment": (cfg.get("history") or [{}])[-1].get("comment", ""),
        "Author": cfg.get("author", ""),
        # Docker lists every field, set or not (so --format '{{.Config.Entrypoint}}' works on any image)
        "Config": {"User": "", "ExposedPorts": None, "Env": None, "Cmd": None, "Volumes": None, "WorkingDir": "",
                   "Entrypoint": None, "Labels": None, "StopSignal": None, **image.settings},
        "Architecture": cfg.get("architecture"),
        "Os": cfg.get("os"),
        "Size": image.size,
        "RootFS": {"Type": "layers", "Layers": image.diff_ids},
        "Metadata": {"ManifestDigest": image.manifest_digest},
    }


class ImageCollection:
    """``client.images``: list, get, remove, prune, load, and the low-level builder."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._store = client.store

    def list(self, name: str | None = None, all: bool = False,  # noqa: A002 (docker-py's name)
             filters: dict[str, Any] | None = None) -> list[Image]:
        """Images, newest first. Like ``docker images``, untagged (``<none>``) images are included; *all*
        will also show intermediate build-cache images once the builder keeps them."""
        images = core.list_images(self._store)
        if filters and "dangling" in filters:
            want = str(filters["dangling"]).lower() in ("1", "true")
            images = [i for i in images if (not i.tags) == want]
        if name:
            images = [i for i in images if any(tag_matches(t, name) for t in i.tags)]
        return [Image(self.client, i) for i in sorted(images, key=_created_or_never, reverse=True)]

    def get(self, name: str) -> Image:
        return Image(self.client, core.get_image(self._store, name))

    def remove(self, image: str, force: bool = False, noprune: bool = False) -> list[dict[str, str]]:
        """Untag (and delete, once no tag is left) like ``docker rmi``; returns Docker's report lines."""
        return remove_image(self._store, image, force=force, prune=not noprune)

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Remove dangling (untagged) images, and with ``filters={"dangling": False}`` unused ones too."""
        return prune_images(self._store, all_images=bool(filters) and
                            str(filters.get("dangling", True)).lower() in ("0", "false"))

    def prune_builds(self) -> dict[str, Any]:
        """docker-py's: the whole build cache (``docker builder prune -a``)."""
        return prune_build_cache(self._store)

    def load(self, data: bytes | str | os.PathLike[str] | BinaryIO) -> list[Image]:
        if isinstance(data, bytes):
            f: BinaryIO = io.BytesIO(data)
        elif isinstance(data, str | os.PathLike):
            f = open(data, "rb")  # noqa: SIM115 (closed below)
        else:
            f = data
        try:
            return [Image(self.client, i) for i in archive.load(self._store, f)]
        finally:
            if f is not data:
                f.close()

    def pull(self, repository: str, tag: str | None = None, all_tags: bool = False,
             echo: bool = False) -> Image:
        """docker-py's: download *repository* (``tag`` or ``latest``; ``repository@sha256:...`` pins one
        content) from its registry, verify it and tag it. ``echo=True`` prints ``docker pull``'s lines."""
        from . import registry

        if all_tags:
            raise InvalidArgument("pull(all_tags=True) is not supported: name one tag or digest")
        name = f"{repository}:{tag}" if tag and not tag.startswith("sha256:") else (
            f"{repository}@{tag}" if tag else repository)
        return Image(self.client, registry.pull(self._store, name, on_event=registry.line_printer() if echo else None
                                                ).image)

    def push(self, repository: str, tag: str | None = None, stream: bool = False, decode: bool = False,
             echo: bool = False) -> Any:
        """docker-py's: upload the image tagged *repository*[:*tag*] to its registry. Returns the progress
        as docker-py does: one string of JSON lines, or with *stream* an iterator of them (dicts with
        *decode*). ``echo=True`` also prints ``docker push``'s lines as they happen."""
        from . import registry

        events: list[dict[str, Any]] = []
        show = registry.line_printer()

        def record(event: dict[str, Any]) -> None:
            events.append(event)
            if echo:
                show(event)

        registry.push(self._store, f"{repository}:{tag}" if tag else repository, on_event=record)
        if stream:
            return iter(events) if decode else (json.dumps(e) + "\r\n" for e in events)
        return "".join(json.dumps(e) + "\r\n" for e in events)

    def build(self, path: str | os.PathLike[str] | None = None, tag: str | list[str] | None = None,
              dockerfile: str = "Dockerfile", buildargs: dict[str, str] | None = None, nocache: bool = False,
              target: str | None = None, network_mode: str = "none", echo: bool = False,
              fileobj: BinaryIO | None = None, custom_context: bool = False) -> tuple[Image, list[dict[str, Any]]]:
        """Like docker-py: build the Dockerfile in *path*; return (image, the build's structured events). Or, as
        docker-py's, *fileobj*: a Dockerfile (its context empty), or with *custom_context* a tar archive of the
        context (``docker build -``).

        ``echo=True`` prints the classic transcript as the build goes (into the notebook cell). A failed
        build raises ``pycontainers.build.BuildError`` naming ``Dockerfile:LINE``; nothing is tagged.
        """
        from .build import build, context_from_stream, transcript_line

        if (path is None) == (fileobj is None):
            raise InvalidArgument("images.build(): give either path or fileobj")
        if fileobj is not None:
            with context_from_stream(fileobj.read(), dockerfile_only=not custom_context) as context:
                return self.build(context, tag, dockerfile if custom_context else "Dockerfile", buildargs, nocache,
                                  target, network_mode, echo)
        assert path is not None  # (for the type checker)

        def show(event: dict[str, Any]) -> None:
            line = transcript_line(event)
            if line is not None:
                print(line, flush=True)

        tags = [tag] if isinstance(tag, str) else list(tag or [])
        result = build(self._store, path, dockerfile=dockerfile, tags=tags, build_args=buildargs,
                       target=target, no_cache=nocache, network=network_mode, on_event=show if echo else None)
        return Image(self.client, result.image), result.events

    def builder(self, base: str = "scratch") -> ImageBuilder:
        """Build an image by hand, layer by layer (see ``ImageBuilder``)."""
        return ImageBuilder(self._store, base)

    def _repr_html_(self) -> str:
        from .views import images_html

        return images_html(core.list_images(self._store))


def tag_matches(tag: str, pattern: str) -> bool:
    """``images busybox`` matches every busybox tag; ``images busybox:1.35.0`` only that one."""
    ref = core.parse(pattern, default_tag=None)
    if ref.tag is None:
        return tag.rpartition(":")[0] == ref.name
    return tag == str(ref)


def images_in_use(store: Store) -> dict[str, str]:
    """Image ID -> the ID of one container (of any state) created from it."""
    return {c.spec.image_id: c.id for c in core_container.list_containers(store)}


def remove_image(store: Store, name: str, *, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
    """``docker rmi NAME``: a tag is untagged; the image goes when its last tag does.

    As in Docker, deleting an image that a container (running or stopped) was created from, or removing
    by ID an image with several tags, needs ``force``; and forced, an image a container uses is only untagged
    (it stays, ``<none>``, until no container needs it: ``image prune``), so that container can still start.
    """
    image = core.get_image(store, name)
    if not store.has_blob(image.manifest_digest):  # damaged (system check): its name can still go, and only that
        store.remove_entries(manifests={image.manifest_digest})
        return [{"Untagged": core.parse(t).familiar} for t in image.tags]
    try:
        ref = core.normalize_tag(name)
        by_tag = ref if ref in image.tags else None
    except PyContainersError:  # an ID, not a name
        by_tag = None
    if by_tag and len(image.tags) > 1:
        store.remove_entries(refs={by_tag})
        return [{"Untagged": core.parse(by_tag).familiar}]
    user = images_in_use(store).get(image.id)
    if user and not force:
        raise InvalidArgument(f'conflict: unable to remove repository reference "{name}" (must force) - '
                              f"container {user[:12]} is using its referenced image {image.short_id}")
    if not by_tag and len(image.tags) > 1 and not force:
        raise InvalidArgument(f"conflict: unable to delete {image.short_id} (must be forced) - image is "
                              "referenced in multiple repositories")
    report = [{"Untagged": core.parse(t).familiar} for t in image.tags]
    if user:  # (forced) its container needs its layers and config to start, commit, diff
        store.untag(set(image.tags), store.manifest_descriptor(image.manifest_digest))
        return report
    store.remove_entries(manifests={image.manifest_digest})
    report.append({"Deleted": image.id})
    if prune:
        collect_garbage(store)
    return report


def collect_garbage(store: Store) -> int:
    """Delete unreferenced blobs and the unpacked copies of layers no image or container needs."""
    from . import rootfs

    def remove_unused_layers() -> None:
        keep: set[str] = set()
        for i in core.list_images(store):
            with contextlib.suppress(PyContainersError):  # (a damaged image: nothing of it can be read)
                keep.update(d.digest for d in i.layers)
        for c in core_container.list_containers(store):
            try:  # by its image's config, not by a tag: a build step's image has none, nor one untagged since
                keep.update(store.read_json(c.spec.image_id)["rootfs"]["diff_ids"])
            except (PyContainersError, KeyError, TypeError):
                return  # a container whose layers cannot be known: none goes (it may be running on them)
        rootfs.remove_unused_layers(store, keep)

    _count, freed = store.gc(and_then=remove_unused_layers)
    return freed


def prune_containers(store: Store) -> dict[str, Any]:
    """``docker container prune``: remove every container that is not running."""
    from .warm import remove_abandoned

    removed = []
    core_container.remove_leftovers(store)  # directories a killed process left half removed
    remove_abandoned()  # cgroups of warm monitors killed outright
    for c in core_container.list_containers(store):
        if c.status != "running":
            core_container.remove(c, force=True)
            removed.append(c.id)
    return {"ContainersDeleted": removed, "SpaceReclaimed": 0}


def _created_or_never(image: core.Image) -> datetime:
    """When the image was made, for sorting; a damaged one (its config unreadable) sorts last."""
    try:
        return image.created
    except PyContainersError:
        return datetime.min.replace(tzinfo=UTC)


def _readable(image: core.Image) -> bool:
    """Can its manifest and config be read? A damaged image is left to ``rmi`` (``system check`` names it)."""
    try:
        return bool(image.id)
    except PyContainersError:
        return False


def prune_images(store: Store, all_images: bool = False) -> dict[str, Any]:
    """``docker image prune``: delete untagged images (``-a``: every image), then unreferenced blobs."""
    used = images_in_use(store)
    victims = core.list_images(store) if all_images else core.list_images(store, dangling=True)
    victims = [i for i in victims if _readable(i) and i.id not in used]  # one a container uses is never pruned
    # read before gc deletes their manifests; as Docker's report, each tag's removal first (prune -a)
    deleted = [line for i in victims for line in ([{"Untagged": t} for t in i.familiar_tags] + [{"Deleted": i.id}])]
    store.remove_entries(manifests={i.manifest_digest for i in victims})
    return {"ImagesDeleted": deleted, "SpaceReclaimed": collect_garbage(store)}


def prune_build_cache(store: Store) -> dict[str, Any]:
    """``docker builder prune -a``: forget every cached build step, then free the blobs only they kept."""
    from .build import cached_steps, prune_cache

    steps = cached_steps(store)
    prune_cache(store)
    return {"CachesDeleted": steps, "SpaceReclaimed": collect_garbage(store)}


def build_cache_size(store: Store) -> int:
    """Bytes of the blobs that only the build cache keeps (its steps' layers, configs and manifests)."""
    only_cache = store.reachable() - store.reachable(build_cache=False)
    return sum(store.blob_path(d).stat().st_size for d in only_cache if store.has_blob(d))


def disk_usage(store: Store) -> list[dict[str, str]]:
    """``docker system df`` rows, as Docker's: images (active: used by a container), containers (active:
    running; their size: what they wrote), local volumes (active: mounted by a container) and the build cache.
    Reclaimable is what pruning would free: the layers of no active image, what stopped containers wrote,
    the volumes nobody mounts."""
    def row(kind: str, total: int, active: int, size: int, reclaim: int, percent: bool = True) -> dict[str, str]:
        share = f" ({100 * reclaim // size if size else 0}%)" if percent else ""
        return {"Type": kind, "TotalCount": str(total), "Active": str(active), "Size": human_size(size),
                "Reclaimable": human_size(reclaim) + share}

    images = core.list_images(store)
    containers = core_container.list_containers(store)
    used = {c.spec.image_id for c in containers}
    blob_sizes = {d.digest: d.size for img in images for d in img.layers}
    kept = {d.digest for i in images if i.id in used for d in i.layers}
    layer_bytes = sum(blob_sizes.values())
    sizes = {c.id: _written(c) for c in containers}
    running = [c for c in containers if c.status == "running"]
    volumes = core_container.volume_list(store)
    mounted = {m.volume for c in containers for m in c.spec.mounts if m.volume}
    volume_sizes = {name: _tree_size(core_container.volumes_dir(store) / name) for name in volumes}
    cache = build_cache_size(store)
    return [
        row("Images", len(images), sum(1 for i in images if i.id in used), layer_bytes,
            sum(size for digest, size in blob_sizes.items() if digest not in kept)),
        row("Containers", len(containers), len(running), sum(sizes.values()),
            sum(sizes[c.id] for c in containers if c not in running)),
        row("Local Volumes", len(volumes), sum(1 for v in volumes if v in mounted), sum(volume_sizes.values()),
            sum(size for name, size in volume_sizes.items() if name not in mounted)),
        row("Build Cache", len(store.extra_roots()), 0, cache, cache, percent=False),
    ]


def _written(c: core_container.Container) -> int:
    """What container *c* wrote (``ps -s``), 0 if it is gone or cannot be read now."""
    try:
        return core_container.writable_layer_size(c)
    except (OSError, PyContainersError):
        return 0


class Container:
    """One container, as docker-py's ``Container``: ``id``, ``name``, ``status``, ``logs()``, ``wait()``..."""

    def __init__(self, client: Client, container: core_container.Container) -> None:
        self.client = client
        self._c = container

    def __repr__(self) -> str:
        return f"<Container: {self._c.short_id}>"

    def __eq__(self, other: object) -> bool:  # (docker-py's Model: the same object if the same ID)
        return isinstance(other, Container) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def id(self) -> str:
        return self._c.id

    @property
    def short_id(self) -> str:
        return self._c.short_id

    @property
    def name(self) -> str:
        return self._c.name

    @property
    def status(self) -> str:
        return self._c.reload().docker_status if self._c.dir.exists() else "removed"

    @property
    def attrs(self) -> dict[str, Any]:
        return container_inspect(self._c.reload())

    @property
    def ports(self) -> dict[str, list[dict[str, str]] | None]:
        """docker-py's ``ports``: ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`` while it runs."""
        return network_settings(self._c.reload())["Ports"]

    @property
    def labels(self) -> dict[str, str]:
        """The container's labels (``labels=`` of ``run``/``create``, over the image's), as docker-py's."""
        return dict(self._c.state.get("labels") or {})

    def reload(self) -> None:
        self._c.reload()

    def logs(self, stdout: bool = True, stderr: bool = True, stream: bool = False, timestamps: bool = False,
             tail: str | int = "all", since: datetime | int | float | None = None, follow: bool | None = None,
             until: datetime | int | float | None = None) -> bytes | Iterator[bytes]:
        """The container's output, as docker-py's ``logs``: bytes, or with *stream* an iterator of lines.

        *stdout*, *stderr*: which streams (the log keeps them apart, as Docker's ``json-file``). *timestamps*:
        each line begins with when it was logged. *tail*: ``"all"`` or the number of last lines. *since*,
        *until*: a ``datetime`` or a Unix time. *follow* (by default: *stream*, as docker-py) goes on reading
        until the container exits.
        """
        self._c.reload()  # gone (auto-removed): NotFound, as docker-py's, not an empty log
        lines: int | None = None
        if tail != "all" and tail is not None:
            try:
                lines = int(tail)
            except (TypeError, ValueError):
                raise InvalidArgument(f"logs(tail={tail!r}): give 'all' or a number of lines") from None
            if lines < 0:
                lines = None  # as Docker: a negative number means all
        try:
            window = [None if t is None else parse_time(t) for t in (since, until)]
        except (ValueError, TypeError, OverflowError, OSError):
            raise InvalidArgument(f"logs(since={since!r}, until={until!r}): give a datetime or a Unix time") from None
        streams = {name for name, asked in (("stdout", stdout), ("stderr", stderr)) if asked}
        entries = core_container.log_entries(self._c, follow=stream if follow is None else follow, tail=lines,
                                             since=window[0], until=window[1])
        chunks = ((f"{e.time} ".encode() + e.data if timestamps else e.data) for e in entries if e.stream in streams)
        return chunks if stream else b"".join(chunks)

    def attach(self, stdout: bool = True, stderr: bool = True, stream: bool = False, logs: bool = False,
               demux: bool = False) -> bytes | Iterator[bytes]:
        """docker-py's: what the running container writes from now on (and, with *logs*, what it wrote before),
        as one bytes once it ends, or chunk by chunk with *stream*; through its monitor (``attach.py``)."""
        from . import attach

        if demux:
            raise InvalidArgument("attach(demux=True) is not supported by pycontainers: give stdout= or stderr=")
        self._c.reload()
        attach.check_attachable(self._c.status, self._c.paused)
        sock = attach.connect(self._c.dir, self._c.name)  # (before the log is read: nothing falls in between)
        streams = (attach.STDOUT if stdout else b"") + (attach.STDERR if stderr else b"")

        def chunks() -> Iterator[bytes]:
            try:
                if logs:
                    for entry in core_container.log_entries(self._c):
                        if (entry.stream == "stdout" and stdout) or (entry.stream == "stderr" and stderr):
                            yield entry.data
                yield from attach.output(sock, streams)
            finally:
                sock.close()

        return chunks() if stream else b"".join(chunks())

    def start(self) -> None:
        """Start a created container in the background (docker-py raises if it cannot start; so do we)."""
        from . import runtime

        with core_container.starting(self._c) as to_start:
            if not to_start:  # running already: as docker-py (and `docker start`), nothing to do
                return
            first = runtime.start_detached(self._c, helper=True)
        if first["event"] == "error":
            raise ContainerStartError(self, int(first["exit_code"]), self._c.spec.args,  # type: ignore[call-overload]
                                      self._c.spec.image_name, str(first["message"]).encode())

    def restart(self, timeout: float | None = 10) -> None:
        """``docker restart``: stop (SIGKILL after *timeout* seconds; None: docker-py's default, 10), then start
        in the background again."""
        from . import runtime

        first = runtime.restart(self._c, 10 if timeout is None else timeout, helper=True)
        if first is not None and first["event"] == "error":
            raise ContainerStartError(self, int(first["exit_code"]), self._c.spec.args,  # type: ignore[call-overload]
                                      self._c.spec.image_name, str(first["message"]).encode())

    def pause(self) -> None:
        """Freeze every process of the container (the cgroup freezer); ``unpause`` thaws them."""
        core_container.pause(self._c)

    def unpause(self) -> None:
        core_container.unpause(self._c)

    def rename(self, name: str) -> None:
        core_container.rename(self._c, name)

    def stats(self, decode: bool | None = None, stream: bool = True,
              one_shot: bool | None = None) -> dict[str, Any] | Iterator[bytes] | Iterator[dict[str, Any]]:
        """Resource use as Docker's stats API reports it (``stats.py``): with *stream*, a reading a second
        (JSON bytes, or dicts with *decode*), else one dict; CPU % needs two readings a second apart
        (``precpu_stats``), so a single one takes a second, unless *one_shot*."""
        import time

        from . import stats as core_stats

        if decode and not stream:
            raise InvalidArgument("decode is only available in conjunction with stream=True")
        if one_shot and stream:
            raise InvalidArgument("one_shot is only available in conjunction with stream=False")
        if not stream:
            previous = None if one_shot else core_stats.sample(self._c)
            if not one_shot:
                time.sleep(1.0)
            return core_stats.sample(self._c, previous)

        def readings() -> Iterator[Any]:
            previous = None
            while True:
                try:
                    previous = core_stats.sample(self._c, previous)
                except NotFound:  # removed meanwhile: the stream ends, as Docker's
                    return
                yield previous if decode else json.dumps(previous).encode()
                if previous["cpu_stats"] == {}:  # it has stopped: Docker's stream ends too
                    return
                time.sleep(1.0)

        return readings()

    def top(self, ps_args: str | None = None) -> dict[str, Any]:
        """docker-py's: the container's processes as ``docker top`` lists them (``Titles`` and ``Processes``)."""
        if ps_args:
            raise InvalidArgument("top(ps_args=...) is not supported by pycontainers: its columns are ps -ef's")
        rows = core_container.top(self._c)
        titles = ["UID", "PID", "PPID", "CMD"]
        return {"Titles": titles, "Processes": [[row[t] for t in titles] for row in rows]}

    @property
    def health(self) -> str:
        """docker-py's: the health check's status (starting, healthy, unhealthy), or "unknown" without one."""
        return str(((self.attrs.get("State") or {}).get("Health") or {}).get("Status") or "unknown")

    def wait(self, timeout: float | None = None, condition: str | None = None) -> dict[str, Any]:
        """``{"StatusCode": exit code, "Error": None}`` once it exits; ``errors.ContainerTimeout`` (an
        ``APIError``) if *timeout* seconds pass first. *condition*: "not-running" (the default), "next-exit"
        or "removed", as the Engine API's (``container.wait_until``)."""
        code = core_container.wait_until(self._c, condition, timeout)
        return {"StatusCode": code, "Error": None}

    def stop(self, timeout: float | None = 10) -> None:
        """SIGTERM (or the image's STOPSIGNAL), SIGKILL after *timeout* seconds (None: docker-py's default, 10)."""
        core_container.stop(self._c, 10 if timeout is None else timeout)

    def kill(self, signal: int | str = "SIGKILL") -> None:
        """Send *signal* (a number, or a name as Docker takes it: ``"SIGTERM"``, ``"usr1"``, ``"RTMIN+3"``)."""
        core_container.kill(self._c, core_container.parse_signal(signal))

    def remove(self, v: bool = False, link: bool = False, force: bool = False) -> None:
        """docker-py's: *v* removes the container's anonymous volumes too (``rm -v``); *link* is refused
        (no legacy links here)."""
        if link:
            raise InvalidArgument("remove(link=True): legacy container links are not supported")
        self._c.reload()  # gone already (auto-removed): NotFound, as docker-py's
        core_container.remove(self._c, force=force, volumes=v)

    def exec_run(self, cmd: str | list[str], stdout: bool = True, stderr: bool = True, stdin: bytes | bool = False,
                 tty: bool = False, privileged: bool = False, user: str = "", detach: bool = False,
                 stream: bool = False, socket: bool = False, environment: dict[str, str] | list[str] | None = None,
                 workdir: str | None = None, demux: bool = False) -> ExecResult:
        """Run a command in the running container, as docker-py: ``ExecResult(exit_code, output)``.

        *output* is what the command wrote to the streams asked for (*stdout*, *stderr*), in the order it
        came; with *demux*, a tuple ``(stdout, stderr)``, each None when nothing came; with *tty*, what its
        terminal showed (one stream). *detach* starts it and returns ``ExecResult(None, None)`` at once.
        *stdin*: bytes to feed the command (docker-py's flag attaches a socket, which this engine has not).
        """
        import shlex

        from . import runtime

        if privileged:
            raise InvalidArgument("exec_run(privileged=True) is not supported: containers here never get "
                                  "every capability and device")
        if stream or socket:
            raise InvalidArgument("exec_run(stream=True) and exec_run(socket=True) are not supported: the output "
                                  "comes back all at once, when the command ends")
        args = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
        env = environment_list(environment)

        def starter(stdio: tuple[int, int, int], terminal: bool = tty) -> runtime.Events:
            return runtime.exec_start(self._c, args, stdio, env=env, workdir=workdir, user=user or None, tty=terminal)

        if detach:  # no terminal then: nobody would read it
            runtime.exec_detached(self._c, args, env=env, workdir=workdir, user=user or None)
            return ExecResult(None, None)
        if tty:  # (not logged: Docker does not log an exec's output either)
            code, out, _ = runtime.capture_terminal(starter, console_socket=True)
            return ExecResult(code, (out or None, None) if demux else out)
        chunks: list[tuple[int, bytes]] = []
        code, out, err = runtime.capture(starter, stdin if isinstance(stdin, bytes) else None,
                                         lambda fd, data: chunks.append((fd, data)))
        if sum(len(data) for _fd, data in chunks) != len(out) + len(err):  # a start error: its message only
            chunks = [(1, out), (2, err)]
        if demux:
            return ExecResult(code, ((out or None) if stdout else None, (err or None) if stderr else None))
        wanted = {fd for fd, asked in ((1, stdout), (2, stderr)) if asked}
        return ExecResult(code, b"".join(data for fd, data in chunks if fd in wanted))

    def diff(self) -> list[dict[str, Any]]:
        kinds = {"C": 0, "A": 1, "D": 2}  # docker-py's Kind numbers
        return [{"Path": path, "Kind": kinds[kind]} for kind, path in core_container.diff(self._c)]

    def commit(self, repository: str | None = None, tag: str | None = None, message: str = "",
               author: str = "") -> Image:
        name = f"{repository}:{tag}" if repository and tag else repository
        image = core_container.commit(self._c, name, message=message, author=author)
        return Image(self.client, image)

    def get_archive(self, path: str, chunk_size: int | None = DEFAULT_DATA_CHUNK_SIZE,
                    encode_stream: bool = False) -> tuple[Iterator[bytes], dict[str, Any]]:
        """docker-py's: a tar of *path* in the container, in chunks, and its stat (``name``, ``size``,
        ``mode`` as Go's FileMode, ``mtime``, ``linkTarget``). A missing path raises ``NotFound``."""
        from . import cp

        spool = tempfile.SpooledTemporaryFile(max_size=DEFAULT_DATA_CHUNK_SIZE)  # noqa: SIM115 (its chunks close it)
        try:
            stat = cp.get_archive(self._c, path, spool)  # type: ignore[arg-type]
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return _chunks(spool, chunk_size), stat  # type: ignore[arg-type]

    def put_archive(self, path: str, data: bytes | BinaryIO) -> bool:
        """docker-py's: extract the tar *data* (bytes or a file) into the directory *path*; True when done."""
        from . import cp

        if not isinstance(data, bytes):
            try:
                data.fileno()
            except (AttributeError, OSError, io.UnsupportedOperation):
                data = data.read()  # (the helper process reads a file descriptor, or bytes)
        cp.put_archive(self._c, path, data)
        return True

    def export(self, chunk_size: int | None = DEFAULT_DATA_CHUNK_SIZE) -> Iterator[bytes]:
        """docker-py's: the container's file system as a tar, in chunks."""
        from . import cp

        spool = tempfile.SpooledTemporaryFile(max_size=DEFAULT_DATA_CHUNK_SIZE)  # noqa: SIM115 (its chunks close it)
        try:
            cp.export(self._c, spool)  # type: ignore[arg-type]
        except BaseException:
            spool.close()
            raise
        spool.seek(0)
        return _chunks(spool, chunk_size)  # type: ignore[arg-type]


def still_there(*containers: Container) -> bool:
    """Whether each of *containers* still exists. A notebook cell that removes its containers at its end, run a
    second time (Shift-Enter twice), would fail inside the engine with "No such container": it asks this
    first, and if one is gone this says so in one sentence and the cell skips its work."""
    gone = []
    for c in containers:
        try:
            c.reload()
        except NotFound:
            gone.append(c.name)
    if gone:
        it = "it" if len(gone) == 1 else "them"
        print(f"{', '.join(gone)} {'is' if len(gone) == 1 else 'are'} gone: this cell removed {it} when it last ran. "
              f"Run the cell that starts {it} again, then this one.")
    return not gone


def _chunks(f: BinaryIO, chunk_size: int | None) -> Iterator[bytes]:
    """*f*'s bytes in pieces of *chunk_size* (None: all at once), as docker-py streams a response; closes *f*."""
    with f:
        while chunk := f.read(chunk_size or -1):
            yield chunk


class ExecResult(NamedTuple):
    """docker-py's: the exit code (None when detached) and the output (bytes, ``(stdout, stderr)`` with
    ``demux=True``, None when detached)."""

    exit_code: int | None
    output: Any


def environment_list(environment: dict[str, str] | list[str] | None) -> list[str]:
    """docker-py's ``environment``, a dict or a list of ``KEY=VALUE``, as a list; a key alone (or None as its
    value, as docker-py writes it) takes its value from this process's environment, as ``-e KEY`` does."""
    if isinstance(environment, dict):
        environment = [k if v is None else f"{k}={v}" for k, v in environment.items()]
    return parse_env(list(environment or []))


def repo_digests(image: core.Image) -> list[str]:
    """``RepoDigests``: the names registries know this image by (pushed or pulled), as Docker's: a manifest
    pulled from a registry that compresses its layers is kept uncompressed here, under another digest."""
    from .reference import parse

    return sorted(f"{parse(key).familiar_name}@{key.rpartition('@')[2]}"
                  for key, here in image.store.repo_digests().items() if here == image.manifest_digest)


def container_inspect(c: core_container.Container) -> dict[str, Any]:
    """``docker container inspect``'s JSON, with the parts this engine has."""
    spec = c.spec
    st = c.state
    try:
        image_settings = core.get_image(c.store, spec.image_id).settings
    except PyContainersError:  # its image was deleted meanwhile (docker rmi -f): no ENTRYPOINT to tell apart
        image_settings = {}
    entrypoint, cmd = core_container.entrypoint_and_cmd(c, image_settings)
    running = c.status == "running"
    return {
        "Id": c.id, "Name": "/" + c.name, "Created": st["created"], "Image": spec.image_id,
        "Path": spec.args[0], "Args": spec.args[1:],
        "State": {"Status": c.docker_status, "Running": running, "Paused": running and c.paused,
                  "Pid": (st.get("pid") or 0) if running else 0,
                  "ExitCode": st.get("exit_code") or 0, "OOMKilled": bool(st.get("oom_killed")),
                  "Error": st.get("error", ""), "StartedAt": st.get("started_at"),
                  "FinishedAt": st.get("finished_at"), "Dead": c.status == "dead",
                  **({"Health": st["health"]} if st.get("health") else {})},
        "Config": {"Image": spec.image_name, "Entrypoint": entrypoint or None, "Cmd": cmd or None,
                   "Env": spec.env, "WorkingDir": spec.workdir,
                   "User": spec.user, "Hostname": spec.hostname, "Tty": spec.tty, "OpenStdin": spec.interactive,
                   "Labels": dict(st.get("labels") or {}),
                   **({"Healthcheck": spec.healthcheck} if spec.healthcheck else {})},
        "HostConfig": {"Memory": spec.memory or 0, "PidsLimit": spec.pids_limit, "NanoCpus":
                       int((spec.cpus or 0) * 1e9), "NetworkMode": spec.network, "ReadonlyRootfs": spec.read_only,
                       "AutoRemove": bool(st.get("auto_remove")), "Init": spec.init,
                       "PortBindings": {f"{cp}/tcp": [{"HostIp": ip, "HostPort": str(hp or "")}]
                                        for ip, hp, cp in spec.ports},
                       "Binds": [f"{m.volume or m.source}:{m.destination}{':ro' if m.readonly else ''}"
                                 for m in spec.mounts],
                       "ExtraHosts": [f"{name}:{address}" for name, address in spec.extra_hosts] or None},
        "Mounts": [{"Type": "volume" if m.volume else "bind", "Name": m.volume or "", "Source": m.source,
                    "Destination": m.destination, "RW": not m.readonly} for m in spec.mounts],
        "NetworkSettings": network_settings(c),
        # Docker's storage driver names: overlayfs over the layers, or (proot) a plain copy, as its vfs driver makes
        "Driver": "vfs" if st.get("backend") == "proot" else "overlay", "RuntimeBackend": st.get("backend", "native"),
    }


def network_settings(c: core_container.Container) -> dict[str, Any]:
    """``NetworkSettings``: the ports published now (none once it has stopped), an entry for each network it
    is on, first the one its ports lead to (``IPAddress`` at the top only on the default bridge, as Docker's)."""
    ports: dict[str, list[dict[str, str]] | None] = {}
    if c.status == "running":
        ports = {f"{cp}/tcp": None for _, _, cp in c.spec.ports}
        for ip, hp, cp in c.state.get("ports") or []:
            ports[f"{cp}/tcp"] = [*(ports.get(f"{cp}/tcp") or []), {"HostIp": ip, "HostPort": str(hp)}]
    joined = core_network.endpoints(c)
    networks: dict[str, dict[str, Any]] = {}
    for name, e in joined.items():
        networks[name] = {"NetworkID": e["id"], "IPAddress": e["address"], "IPPrefixLen": e["prefixlen"],
                          "Gateway": e["gateway"], "MacAddress": core_network.mac_address(e["address"]),
                          "Aliases": [c.name, *e.get("aliases", []), c.short_id] if name != core_network.DEFAULT
                          else None}
    if not joined and c.spec.network in ("none", "host"):
        networks[c.spec.network] = {"NetworkID": "", "IPAddress": "", "IPPrefixLen": 0, "Gateway": "",
                                    "MacAddress": ""}
    default = joined.get(core_network.DEFAULT) or {}
    return {"Ports": ports, "IPAddress": default.get("address", ""), "Gateway": default.get("gateway", ""),
            "MacAddress": core_network.mac_address(default["address"]) if default else "", "Networks": networks}


RENAMED_OPTIONS = {"working_dir": "workdir", "network_mode": "network", "stdin_open": "interactive",
                   "mem_limit": "memory", "auto_remove": "remove", "publish_all_ports": "publish_all"}
"""docker-py's names for ``run``/``create`` options -> this engine's (``spec.make_spec``'s, as the CLI's flags);
both are accepted."""
ENGINE_OPTIONS = {"entrypoint", "environment", "env_files", "workdir", "user", "volumes", "hostname", "read_only",
                  "memory", "pids_limit", "cpus", "network", "tty", "interactive", "init", "runtime", "ports",
                  "publish_all", "extra_hosts", "healthcheck"}
UNSUPPORTED_OPTIONS = {
    "privileged", "cap_add", "cap_drop", "devices", "device_requests", "device_cgroup_rules",
    "links", "network", "dns", "dns_opt", "dns_search", "extra_hosts",
    "domainname", "mac_address", "network_disabled", "healthcheck", "stop_signal", "restart_policy", "ipc_mode",
    "pid_mode", "uts_mode", "userns_mode", "cgroupns", "cgroup_parent", "security_opt", "sysctls", "tmpfs",
    "ulimits", "shm_size", "mounts", "volumes_from", "volume_driver", "group_add", "log_config", "oom_kill_disable",
    "oom_score_adj", "mem_reservation", "mem_swappiness", "memswap_limit", "kernel_memory", "cpu_count",
    "cpu_percent", "cpu_period", "cpu_quota", "cpu_shares", "cpuset_cpus", "cpuset_mems", "cpu_rt_period",
    "cpu_rt_runtime", "blkio_weight", "blkio_weight_device", "device_read_bps", "device_read_iops",
    "device_write_bps", "device_write_iops", "storage_opt", "isolation", "init_path", "platform",
    "use_config_proxy", "lxc_conf", "version",
} - ENGINE_OPTIONS
"""docker-py options this engine has no counterpart for: refused when given a value other than an empty one."""


def networking_endpoints(config: dict[str, Any] | None, network: str | None,
                         caller: str) -> dict[str, tuple[str | None, list[str]]]:
    """docker-py's ``networking_config`` ({network: EndpointConfig}, or the low-level API's
    ``{"EndpointsConfig": {...}}``) as {network: (IPv4 address or None, aliases)}. As docker-py, it counts
    only with ``network=`` given and among its networks; the others are joined too."""
    config = (config or {}).get("EndpointsConfig", config) or {}
    if not network or network not in config:
        return {}
    out = {}
    for net, endpoint in config.items():
        endpoint = dict(endpoint or {})
        ipam = dict(endpoint.pop("IPAMConfig", None) or {})
        ip = ipam.pop("IPv4Address", None) or endpoint.pop("ipv4_address", None)
        aliases = endpoint.pop("Aliases", None) or endpoint.pop("aliases", None) or []
        unsupported = sorted(k for k, v in {**endpoint, **ipam}.items() if v not in (None, "", [], {}))
        if unsupported:
            raise InvalidArgument(f"{caller}(networking_config=...): {net}: {', '.join(unsupported)} is not "
                                  "supported by pycontainers (Aliases and IPAMConfig's IPv4Address are)")
        if isinstance(aliases, str):
            raise InvalidArgument(f"{caller}(networking_config=...): {net}: Aliases takes a list of names")
        out[str(net)] = (ip, list(aliases))
    return out


class ContainerCollection:
    """``client.containers``: run, create, get, list, prune."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, image: str, command: str | list[str] | None = None, **kwargs: Any) -> Container:
        """``docker create``, with docker-py's arguments (``working_dir``, ``mem_limit``, ``labels``...)."""
        return Container(self.client, self._create(image, command, **kwargs))

    def _create(self, image: str, command: str | list[str] | None, *, name: str | None = None,
                labels: dict[str, str] | list[str] | None = None, nano_cpus: int | None = None,
                volumes: dict[str, dict[str, str]] | list[str] | None = None, _caller: str = "create",
                networking_config: dict[str, Any] | None = None, **options: Any) -> core_container.Container:
        if isinstance(command, str):
            import shlex

            command = shlex.split(command)
        for key in ("detach", "stdout", "stderr", "stream", "echo"):  # run()'s, not the container's
            options.pop(key, None)
        for docker_name, ours in RENAMED_OPTIONS.items():
            if docker_name in options:
                value = options.pop(docker_name)
                if options.get(ours) not in (None, value):
                    raise InvalidArgument(f"{_caller}(): {docker_name}= and {ours}= are the same option: give one")
                options[ours] = value
        if nano_cpus is not None:
            if options.get("cpus") is not None:
                raise InvalidArgument(f"{_caller}(): nano_cpus= and cpus= are the same option: give one")
            options["cpus"] = nano_cpus / 1e9
        for key in sorted(set(options) - ENGINE_OPTIONS - {"remove"}):
            if key not in UNSUPPORTED_OPTIONS:
                raise TypeError(f"{_caller}() got an unexpected keyword argument {key!r}")
            if options.pop(key) not in (None, False, "", [], {}, ()):
                raise InvalidArgument(f"{_caller}(): docker-py's {key}= is not supported by pycontainers")
        options["environment"] = environment_list(options.get("environment"))
        if isinstance(volumes, dict):  # docker-py: {"/host": {"bind": "/ctr", "mode": "ro"}}
            volumes = [f"{src}:{v['bind']}:{v.get('mode', 'rw')}" for src, v in volumes.items()]
        if isinstance(labels, list | tuple):  # docker-py: a list of names means empty values
            labels = dict.fromkeys(labels, "")
        if labels is not None and not (isinstance(labels, dict) and all(isinstance(k, str) for k in labels)):
            raise InvalidArgument(f"{_caller}(labels={labels!r}): give a dict of strings or a list of names")
        remove = bool(options.pop("remove", False))
        endpoints = networking_endpoints(networking_config, options.get("network"), _caller)
        first = endpoints.pop(options.get("network"), None)
        if first is not None:
            options["ip"], options["network_aliases"] = first
        created = core_container.create_from_image(self.client.store, image, command or None, name=name,
                                                   auto_remove=remove, volumes=volumes or [],
                                                   labels={k: str(v) for k, v in (labels or {}).items()}, **options)
        try:
            for net, (ip, aliases) in endpoints.items():  # (as Docker's API since 1.44: every network at create)
                core_network.connect(self.client.store, created, net, aliases, ip)
        except BaseException:
            with contextlib.suppress(Exception):
                core_container.remove(created, force=True)
            raise
        return created

    def run(self, image: str, command: str | list[str] | None = None, stdout: bool = True, stderr: bool = False,
            remove: bool = False, *, detach: bool = False, echo: bool = False, **kwargs: Any) -> bytes | Container:
        """Like docker-py: the output (bytes) of a finished container, or the Container if *detach*.

        ``echo=True`` also writes the output to this process's stdout/stderr as it arrives, so it
        streams into a notebook cell. A non-zero exit raises ``ContainerError`` (with stderr). *remove*
        (or docker-py's ``auto_remove``) removes the container once it exits, detached or not.
        """
        from . import runtime

        remove = remove or bool(kwargs.pop("auto_remove", False))
        c = self._create(image, command, remove=remove, _caller="run", **kwargs)
        if detach:
            first = runtime.start_detached(c, helper=True)
            if first["event"] == "error":
                raise ContainerStartError(None, int(first["exit_code"]), c.spec.args,  # type: ignore[call-overload]
                                          image, str(first["message"]).encode())
            return Container(self.client, c)

        def show(fd: int, chunk: bytes) -> None:
            stream = sys.stdout if fd == 1 else sys.stderr
            stream.write(chunk.decode(errors="replace"))
            stream.flush()

        # The zygote, even from a single thread: its warm monitors make the next start faster.
        code, out, err = runtime.run_attached(c, on_output=show if echo else None, helper=True)
        handle = None if remove else Container(self.client, c)
        if code != 0:
            raise ContainerError(handle, code, c.spec.args, image, err)
        return (out if stdout else b"") + (err if stderr else b"")

    def get(self, container_id: str) -> Container:
        return Container(self.client, core_container.get_container(self.client.store, container_id))

    def list(self, all: bool = False, filters: dict[str, Any] | None = None,  # noqa: A002 (docker-py's name)
             limit: int = -1) -> list[Container]:
        """docker-py's: newest first; *filters* as ``ps --filter`` (``{"status": "exited"}``, a value or a list
        of them), *limit* the newest N (-1: all), each as ``docker ps`` (``container.select_containers``)."""
        wanted = {key: [str(v) for v in (values if isinstance(values, list | tuple) else [values])]
                  for key, values in (filters or {}).items()}
        chosen = core_container.select_containers(self.client.store, all, wanted, limit if limit >= 0 else None)
        return [Container(self.client, c) for c in chosen]

    def prune(self) -> dict[str, Any]:
        return prune_containers(self.client.store)


class Volume:
    """docker-py's ``Volume``: a named volume (``-v NAME:/path``), a directory of the store."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = self.id = name

    def __repr__(self) -> str:
        return f"<Volume: {self.name}>"

    def __eq__(self, other: object) -> bool:  # (docker-py's Model: the same object if the same ID)
        return isinstance(other, Volume) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def attrs(self) -> dict[str, Any]:
        return core_container.volume_inspect(self.client.store, self.name)

    def reload(self) -> None:
        self.attrs  # noqa: B018 (NotFound if it has gone)

    def remove(self, force: bool = False) -> None:
        """``docker volume rm``: refused while a container uses it, unless *force*."""
        core_container.volume_remove(self.client.store, self.name, force)


class VolumeCollection:
    """docker-py's ``client.volumes``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, name: str | None = None, driver: str | None = None) -> Volume:
        if driver not in (None, "local"):
            raise InvalidArgument(f"volume driver {driver!r}: only 'local' volumes (directories of the store) "
                                  "exist here")
        return Volume(self.client, core_container.volume_create(self.client.store, name))

    def get(self, volume_id: str) -> Volume:
        volume = Volume(self.client, volume_id)
        volume.reload()
        return volume

    def list(self) -> list[Volume]:
        return [Volume(self.client, name) for name in core_container.volume_list(self.client.store)]

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """``docker volume prune``: the anonymous volumes no container uses are removed, and the named ones too
        with ``filters={"all": True}`` (Docker's API since 1.42). SpaceReclaimed counts the bytes of the files
        this user could see in them (a rootless container's other users' may be hidden)."""
        filters = dict(filters or {})
        everything = filters.pop("all", False)
        if filters:
            raise InvalidArgument(f"volumes.prune(filters=...): {', '.join(filters)} is not supported (all is)")
        if isinstance(everything, list | tuple):
            everything = everything[0] if everything else False
        everything = str(everything).lower() in ("true", "1")
        store = self.client.store
        sizes = {name: _tree_size(core_container.volumes_dir(store) / name)
                 for name in core_container.unused_volumes(store)}
        removed = core_container.volume_prune(store, all_volumes=everything)
        return {"VolumesDeleted": removed, "SpaceReclaimed": sum(sizes.get(name, 0) for name in removed)}


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


class Network:
    """docker-py's ``Network``: a bridge that containers join (``network=``) and find each other on by name."""

    def __init__(self, client: Client, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<Network: {self.short_id}>"

    def __eq__(self, other: object) -> bool:  # (docker-py's Model: the same object if the same ID)
        return isinstance(other, Network) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def attrs(self) -> dict[str, Any]:
        return network_inspect(self.client.store, self.name)

    @property
    def id(self) -> str:
        return str(self.attrs["Id"])

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def containers(self) -> list[Container]:
        return [self.client.containers.get(cid) for cid in self.attrs["Containers"]]

    def reload(self) -> None:
        self.attrs  # noqa: B018 (NotFound if it has gone)

    def connect(self, container: Container | str, ipv4_address: str | None = None, ipv6_address: str | None = None,
                aliases: list[str] | None = None, links: Any = None, link_local_ips: Any = None,
                driver_opt: Any = None, mac_address: str | None = None) -> None:
        """``docker network connect``: the container (created, stopped or running) joins this network too,
        with *aliases* there and, if given, the address *ipv4_address* (docker-py's parameters, in its order)."""
        unsupported = {"ipv6_address": ipv6_address, "links": links, "link_local_ips": link_local_ips,
                       "driver_opt": driver_opt, "mac_address": mac_address}
        if any(v is not None for v in unsupported.values()):
            raise InvalidArgument(f"connect({next(k for k, v in unsupported.items() if v is not None)}=...) "
                                  "is not supported here: aliases and ipv4_address are")
        if isinstance(aliases, str):
            raise InvalidArgument("connect(aliases=...) takes a list of names, not one string")
        core_network.connect(self.client.store, self._core(container), self.name, aliases, ipv4_address)

    def disconnect(self, container: Container | str, force: bool = False) -> None:
        """``docker network disconnect``: the container leaves this network (its interface at once if it runs)."""
        core_network.disconnect(self.client.store, self._core(container), self.name, force)

    def _core(self, container: Container | str) -> core_container.Container:
        ref = container.id if isinstance(container, Container) else container
        return core_container.get_container(self.client.store, ref)

    def remove(self) -> None:
        """``docker network rm``: refused while a container is on it."""
        core_network.remove_network(self.client.store, self.name)


class NetworkCollection:
    """docker-py's ``client.networks``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def create(self, name: str, driver: str | None = None, ipam: dict[str, Any] | None = None) -> Network:
        """``docker network create``; *ipam* as docker-py's ``{"Config": [{"Subnet": "10.89.7.0/24"}]}``."""
        if driver not in (None, "bridge"):
            raise InvalidArgument(f"network driver {driver!r}: only 'bridge' networks exist here")
        subnet = ((ipam or {}).get("Config") or [{}])[0].get("Subnet")
        return Network(self.client, core_network.create_network(self.client.store, name, subnet).name)

    def get(self, network_id: str) -> Network:
        if network_id in core_network.PREDEFINED:  # always there, as Docker's (bridge: made at first use)
            return Network(self.client, network_id)
        return Network(self.client, core_network.get_network(self.client.store, network_id).name)

    def list(self, names: list[str] | None = None) -> list[Network]:
        found = [Network(self.client, n) for n in network_names(self.client.store)]
        return [n for n in found if names is None or n.name in names]

    def prune(self) -> dict[str, Any]:
        return {"NetworksDeleted": core_network.prune_networks(self.client.store)}


def network_names(store: Store) -> list[str]:
    """``network ls``'s order: the pre-defined networks, then the store's own."""
    return [*core_network.PREDEFINED, *(n.name for n in core_network.list_networks(store)
                                         if n.name not in core_network.PREDEFINED)]


def network_inspect(store: Store, ref: str) -> dict[str, Any]:
    """``docker network inspect``'s JSON: the subnet, the bridge, and each container's address."""
    if ref in core_network.MODES:
        return {"Name": ref, "Id": ref, "Driver": "null" if ref == "none" else "host", "IPAM": {"Config": []},
                "Containers": {c.id: {"Name": c.name} for c in core_container.list_containers(store)
                               if c.spec.network == ref}}
    try:
        net = core_network.get_network(store, ref)
    except NotFound:
        if ref != core_network.DEFAULT:
            raise
        return {"Name": ref, "Id": "", "Driver": "bridge", "IPAM": {"Driver": "default", "Config": []},
                "Containers": {}, "Comment": "made when a container first uses it"}
    containers = {}
    for cid, address in net.leases.items():
        with contextlib.suppress(PyContainersError):
            containers[cid] = {"Name": core_container.get_container(store, cid).name,
                               "MacAddress": core_network.mac_address(address),
                               "IPv4Address": f"{address}/{net.prefixlen}"}
    return {"Name": net.name, "Id": net.id, "Created": net.created, "Driver": "bridge",
            "IPAM": {"Driver": "default", "Config": [{"Subnet": net.subnet, "Gateway": net.gateway}]},
            "Options": {"com.docker.network.bridge.name": net.bridge},
            "Labels": {}, "Containers": containers}


class Client:
    """docker-py's ``DockerClient``, daemonless: it works on the store directly."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.store = Store(home)
        self.images = ImageCollection(self)
        self.containers = ContainerCollection(self)
        self.volumes = VolumeCollection(self)
        self.networks = NetworkCollection(self)

    def __repr__(self) -> str:
        return f"<pycontainers.Client store={str(self.store.home)!r}>"

    def df(self) -> list[dict[str, str]]:
        return disk_usage(self.store)

    def check(self) -> list[str]:
        return self.store.check()


__all__ = ["Client", "Container", "ContainerCollection", "ContainerError", "ExecResult", "Image",
           "ImageCollection", "ImageNotFound", "Network", "NetworkCollection", "Volume", "VolumeCollection", "inspect"]
