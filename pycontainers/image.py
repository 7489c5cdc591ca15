"""Images: a manifest, a config and layers, read from and committed to the store.

The *image ID* Docker prints is the digest of the image's config: two images with the same layers and
the same settings have the same ID on every machine. The *manifest digest* (``name@sha256:...``) names
the manifest, which also lists how each layer is stored.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, partial

from . import oci
from .errors import ImageNotFound, InvalidArgument
from .reference import InvalidReference, parse
from .store import IndexEntry, Store

# ``layer`` (and with it tarfile) is imported by the functions that read or write layers: starting a
# container needs neither.
TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    import tarfile
    from datetime import datetime
    from typing import Any

    from . import layer as layers

ARCHITECTURE = "amd64"


def iso_time(epoch: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime:
    from datetime import UTC, datetime

    if not text:
        return datetime.fromtimestamp(0, UTC)
    text = text.replace("Z", "+00:00")
    if "." in text:  # Go writes nanoseconds; Python takes at most microseconds
        head, _, rest = text.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        text = f"{head}.{frac[:6]}{tz}"
    return datetime.fromisoformat(text)


def empty_config(epoch: int | None = None) -> dict[str, Any]:
    """The config of ``scratch``: no layers, no command (config.md's required fields)."""
    from . import layer as layers

    return {
        "created": iso_time(layers.source_date_epoch() if epoch is None else epoch),
        "architecture": ARCHITECTURE,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }


@dataclass(frozen=True)
class HistoryRow:
    """One line of ``image history``: a build step, newest first."""

    image_id: str | None  # the image this step produced, when the store still has it
    created: datetime
    created_by: str
    size: int
    comment: str
    empty_layer: bool
    layer: str | None  # the layer's digest, for steps that made one


@dataclass(frozen=True)
class FileRecord:
    """One path of an image's flattened file system, and the layer that put it there."""

    path: str
    kind: str  # file, directory, symlink, hard link, ...
    size: int
    layer: int  # index into the image's layers, base first
    mode: int
    linkname: str = ""
    uid: int = 0
    gid: int = 0


@dataclass
class LayerReport:
    """What one layer did to the file system below it (the lecture's copy-on-write, in numbers)."""

    index: int
    digest: str
    size: int
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    wasted: int = 0  # bytes of this layer that a later layer overwrote or deleted


class Image:
    """An image in a store. Cheap to create; reads its manifest and config on first use."""

    def __init__(self, store: Store, manifest_digest: str, tags: Iterable[str] = ()) -> None:
        self.store = store
        self.manifest_digest = manifest_digest
        self.tags = sorted(tags)

    def __repr__(self) -> str:
        return f"<Image {self.short_id} {' '.join(self.familiar_tags) or '<none>'}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Image) and other.manifest_digest == self.manifest_digest

    def __hash__(self) -> int:
        return hash(self.manifest_digest)

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return self.store.read_json(self.manifest_digest)

    @cached_property
    def config(self) -> dict[str, Any]:
        return self.store.read_json(self.manifest["config"]["digest"])

    @property
    def id(self) -> str:
        """The image ID: the digest of the config, as Docker defines it."""
        return self.manifest["config"]["digest"]

    @property
    def short_id(self) -> str:
        return oci.short_id(self.id)

    @property
    def familiar_tags(self) -> list[str]:
        out = []
        for tag in self.tags:
            try:
                out.append(parse(tag).familiar)
            except InvalidReference:
                out.append(tag)
        return out

    @property
    def layers(self) -> list[oci.Descriptor]:
        return [oci.Descriptor.from_json(d) for d in self.manifest.get("layers", [])]

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    @property
    def created(self) -> datetime:
        return parse_time(self.config.get("created"))

    @property
    def size(self) -> int:
        """Bytes of all layers (what ``docker images`` calls SIZE)."""
        return sum(d.size for d in self.layers)

    @property
    def settings(self) -> dict[str, Any]:
        """The runtime part of the config: Env, Cmd, Entrypoint, WorkingDir, User, Labels, ..."""
        return dict(self.config.get("config") or {})

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.settings.get("Labels") or {})

    def history(self) -> list[HistoryRow]:
        """Build steps, newest first, with each layer's size, like ``docker image history``."""
        layer_list = self.layers
        steps = self.config.get("history") or []
        rows: list[HistoryRow] = []
        n = 0
        for step in steps:
            empty = bool(step.get("empty_layer"))
            desc = None if empty or n >= len(layer_list) else layer_list[n]
            if not empty:
                n += 1
            rows.append(HistoryRow(None, parse_time(step.get("created")), step.get("created_by", ""),
                                   desc.size if desc else 0, step.get("comment", ""), empty,
                                   desc.digest if desc else None))
        rows.reverse()
        if rows:
            rows[0] = HistoryRow(self.id, *[getattr(rows[0], f) for f in
                                            ("created", "created_by", "size", "comment", "empty_layer",
                                             "layer")])
        return rows

    def open_layer(self, index: int) -> io.BufferedReader:
        return self.store.open_blob(self.layers[index].digest)  # type: ignore[return-value]

    def layer_members(self, index: int) -> list[tarfile.TarInfo]:
        from . import layer as layers

        desc = self.layers[index]
        with self.store.open_blob(desc.digest) as f:
            return list(layers.read_members(f, f"layer {desc.digest}"))

    def filesystem(self) -> dict[str, FileRecord]:
        """The file system a container of this image starts with: layers applied in order."""
        return self.inspect_layers()[0]

    def inspect_layers(self) -> tuple[dict[str, FileRecord], list[LayerReport]]:
        """Apply the layers' headers in order; report per layer what it added, changed, deleted, wasted."""
        from . import layer as layers

        fs: dict[str, FileRecord] = {}
        reports: list[LayerReport] = []
        for i, desc in enumerate(self.layers):
            report = LayerReport(i, desc.digest, desc.size)
            for m in self.layer_members(i):
                path = layers.clean_path(m.name)
                if not path:
                    continue
                parent, _, name = path.rpartition("/")
                if name == layers.OPAQUE_WHITEOUT:
                    for p in [p for p in fs if parent == "" or p.startswith(parent + "/")]:
                        self._drop(fs, p, reports, report)
                    continue
                if name.startswith(layers.WHITEOUT_PREFIX):
                    hidden = (parent + "/" if parent else "") + name[len(layers.WHITEOUT_PREFIX):]
                    for p in [p for p in fs if p == hidden or p.startswith(hidden + "/")]:
                        self._drop(fs, p, reports, report)
                    continue
                old = fs.get(path)
                if old is not None and old.layer < i and not (m.isdir() and old.kind == "directory"):
                    reports[old.layer].wasted += old.size
                    report.modified.append(path)
                elif old is None:
                    report.added.append(path)
                fs[path] = FileRecord(path, layers.describe(m), m.size if m.isreg() else 0, i, m.mode,
                                      m.linkname, m.uid, m.gid)
            reports.append(report)
        return fs, reports

    @staticmethod
    def _drop(fs: dict[str, FileRecord], path: str, reports: list[LayerReport], report: LayerReport) -> None:
        """A whiteout of *report*'s layer hides *path*, if a lower layer wrote it.

        Whiteouts apply to lower layers only (layer.md): what this layer wrote itself, even before its
        whiteout in the tar, stays.
        """
        rec = fs[path]
        if rec.layer >= report.index:
            return
        del fs[path]
        reports[rec.layer].wasted += rec.size
        report.deleted.append(path)


# ------------------------------------------------------------------------------------------- lookups


def list_images(store: Store, *, dangling: bool | None = None) -> list[Image]:
    """Images in the store, one per manifest, with all their tags."""
    by_digest: dict[str, list[str]] = {}
    for entry in store.entries():
        tags = by_digest.setdefault(entry.manifest.digest, [])
        if entry.ref:
            tags.append(entry.ref)
    images = [Image(store, d, tags) for d, tags in by_digest.items()]
    if dangling is not None:
        images = [i for i in images if (not i.tags) == dangling]
    return images


def similar_tags(store: Store, name: str) -> list[str]:
    """The store's tags a missing *name* may have meant: the other tags of its repository (``debian`` when
    only ``debian:bookworm-slim`` is here, as Docker would pull ``:latest``), else close spellings
    (``pyhton:3.11-slim``)."""
    import difflib

    try:
        wanted = parse(name)
    except (InvalidReference, ValueError):
        return []
    tags = sorted({tag for image in list_images(store) for tag in image.familiar_tags})
    same = [tag for tag in tags if tag.rpartition(":")[0] == wanted.familiar_name]
    return same or difflib.get_close_matches(wanted.familiar, tags, n=3, cutoff=0.75)


def get_image(store: Store, name: str) -> Image:
    """Find an image by reference (``busybox``, ``me/app:1.0``), image ID or a unique ID prefix."""
    name = name.strip()
    if not name:
        raise ImageNotFound("no image name was given")
    entries = store.entries()
    try:
        ref = parse(name)
    except InvalidReference:
        ref = None
    if ref is not None:
        if ref.digest:
            for e in entries:
                if e.manifest.digest == ref.digest:
                    return _image_for(store, entries, e.manifest.digest)
            here = store.repo_digests().get(f"{ref.name}@{ref.digest}")  # the registry's digest of a pull
            if here is not None:
                return _image_for(store, entries, here)
        else:
            for e in entries:
                if e.ref == str(ref):
                    return _image_for(store, entries, e.manifest.digest)
    hexpart = name.removeprefix("sha256:")
    an_id = bool(hexpart) and all(c in "0123456789abcdef" for c in hexpart)
    if an_id:
        matches = {img.manifest_digest: img for img in list_images(store)
                   if img.id.removeprefix("sha256:").startswith(hexpart)
                   or img.manifest_digest.removeprefix("sha256:").startswith(hexpart)}
        if len(matches) == 1:
            return next(iter(matches.values()))
        if len(matches) > 1:
            raise ImageNotFound(f"image ID prefix {name!r} is ambiguous: {len(matches)} images match")
    if ref is None and not an_id:  # (a 64-digit ID is no reference, but may be a container's: `inspect`)
        parse(name)  # re-raise the reference error: it explains what is wrong with the name
    raise ImageNotFound(f"No such image: {name}")


def _image_for(store: Store, entries: list[IndexEntry], digest: str) -> Image:
    return Image(store, digest, [e.ref for e in entries if e.manifest.digest == digest and e.ref])


def normalize_tag(name: str) -> str:
    """``hello`` -> ``docker.io/library/hello:latest``: the form stored in index.json."""
    ref = parse(name)
    if ref.digest:
        raise InvalidArgument(f"cannot tag with a digest: {name!r} (a tag is name[:tag])")
    return str(ref)


# ------------------------------------------------------------------------------------------ commits


def commit_image(store: Store, config: dict[str, Any], layer_descs: list[oci.Descriptor],
                 tags: Iterable[str] = ()) -> Image:
    """Write the config blob, then the manifest, then point each tag at it (or keep it untagged)."""
    if len(config["rootfs"]["diff_ids"]) != len(layer_descs):
        raise InvalidArgument("config.rootfs.diff_ids and the layers do not match")
    with store.writing():
        return commit_manifest(store, store.put_json(config, oci.MEDIA_CONFIG), layer_descs, tags)


def commit_manifest(store: Store, config_desc: oci.Descriptor, layer_descs: list[oci.Descriptor],
                    tags: Iterable[str] = ()) -> Image:
    """Write the manifest for an already stored config and layers, and tag it."""
    refs = [normalize_tag(t) for t in tags]
    with store.writing():
        manifest_desc = store.put_json(oci.manifest_json(config_desc, layer_descs), oci.MEDIA_MANIFEST)
        for ref in refs:
            store.set_tag(ref, manifest_desc)
        if not refs:
            store.add_untagged(manifest_desc)
    return Image(store, manifest_desc.digest, refs)


def write_layer(store: Store, layer: Iterable[layers.Entry] | layers.TarWriter) -> oci.Descriptor:
    """Write a reproducible layer straight into a blob (hashing as it goes). Hold ``store.writing()``.

    *layer* is its entries, or a function writing their tar (``layer.write_tar``'s bytes) to the file it is
    given: a rootless container's writable layer, archived by a helper process in its user namespace
    (``container.upper_entries``), whose output is copied into the blob as it comes. Either way the blob holds
    ``write_tar``'s bytes, so the same files give the same digest. A failure leaves no blob behind.
    """
    from . import layer as layers

    write = layer if callable(layer) else partial(layers.write_tar, layer)
    writer = store.blob_writer(oci.MEDIA_LAYER)
    try:
        write(writer)  # type: ignore[arg-type]
    except BaseException:
        writer.abort()
        raise
    return writer.commit()


def add_layer(config: dict[str, Any], desc: oci.Descriptor, created_by: str, *, comment: str = "",
              epoch: int | None = None) -> dict[str, Any]:
    """A new config: *config* plus one layer and the history line that explains it."""
    from . import layer as layers

    new = copy.deepcopy(config)
    new["rootfs"]["diff_ids"].append(desc.digest)
    step: dict[str, Any] = {"created": iso_time(layers.source_date_epoch() if epoch is None else epoch),
                            "created_by": created_by}
    if comment:
        step["comment"] = comment
    new.setdefault("history", []).append(step)
    new["created"] = step["created"]
    return new


def add_metadata_step(config: dict[str, Any], created_by: str, *, epoch: int | None = None,
                      **settings: Any) -> dict[str, Any]:
    """A new config with changed settings (CMD, ENV, ...) and an ``empty_layer`` history line."""
    from . import layer as layers

    new = copy.deepcopy(config)
    new.setdefault("config", {}).update(settings)
    step = {"created": iso_time(layers.source_date_epoch() if epoch is None else epoch),
            "created_by": created_by, "empty_layer": True}
    new.setdefault("history", []).append(step)
    new["created"] = step["created"]
    return new


# The Dockerfile instruction behind each config setting, for history lines.
INSTRUCTIONS = {"Cmd": "CMD", "Entrypoint": "ENTRYPOINT", "Env": "ENV", "WorkingDir": "WORKDIR", "User": "USER",
                "Labels": "LABEL", "ExposedPorts": "EXPOSE", "Volumes": "VOLUME", "StopSignal": "STOPSIGNAL",
                "Shell": "SHELL"}


def docker_list(items: list[str]) -> str:
    """A list as Docker's history prints it: ``["/bin/echo" "Hello"]`` (Go's %q, space separated)."""
    return "[" + " ".join(json.dumps(i) for i in items) + "]"


def nop_instruction(key: str, value: Any) -> str:
    """``CMD ["world"]``, ``ENV A=1``, ``WORKDIR /app``: a config setting as its Dockerfile line."""
    name = INSTRUCTIONS.get(key, key.upper())
    if isinstance(value, list) and key in ("Cmd", "Entrypoint", "Shell"):
        return f"{name} {docker_list(value)}"
    if isinstance(value, list):
        return f"{name} {' '.join(value)}"
    if isinstance(value, dict):
        return f"{name} " + " ".join(f"{k}={v}" if v else k for k, v in value.items())
    return f"{name} {value}"


class ImageBuilder:
    """Build an image by hand, one layer at a time: what a Dockerfile does, with nothing hidden.

    >>> b = ImageBuilder(store, "busybox")
    >>> with b.layer("add a greeting") as fs:
    ...     fs.add_file("/hello.txt", "hello\\n")
    >>> b.set(Cmd=["cat", "/hello.txt"])
    >>> image = b.commit("hello:by-hand")
    """

    def __init__(self, store: Store, base: str | Image = "scratch") -> None:
        self._writing = None  # set below; __del__ may run even if finding the base fails
        self.store = store
        if isinstance(base, Image):
            self.base: Image | None = base
        elif base == "scratch":
            self.base = None
        else:
            self.base = get_image(store, base)
        self.config = copy.deepcopy(self.base.config) if self.base else empty_config()
        self.layer_descs: list[oci.Descriptor] = list(self.base.layers) if self.base else []
        self._writing = store.writing()
        self._writing.__enter__()  # released by commit() or when the builder is garbage collected

    def __del__(self) -> None:
        self._release()

    def _release(self) -> None:
        if self._writing is not None:
            self._writing.__exit__(None, None, None)
            self._writing = None  # type: ignore[assignment]

    def layer(self, created_by: str) -> _LayerContext:
        """``with builder.layer("what this step does") as changes:`` adds one layer of changes."""
        return _LayerContext(self, created_by)

    def add_layer(self, changes: layers.Changes | Iterable[layers.Entry], created_by: str) -> oci.Descriptor:
        from . import layer as layers

        entries = changes.entries() if isinstance(changes, layers.Changes) else list(changes)
        desc = write_layer(self.store, entries)
        self.layer_descs.append(desc)
        self.config = add_layer(self.config, desc, created_by)
        return desc

    def set(self, **settings: Any) -> None:
        """Change runtime settings (``Cmd=[...]``, ``Env=[...]``, ``WorkingDir=...``): no new layer."""
        shown = " ".join(nop_instruction(k, v) for k, v in settings.items())
        self.config = add_metadata_step(self.config, f"/bin/sh -c #(nop)  {shown}", **settings)

    def commit(self, *tags: str) -> Image:
        try:
            return commit_image(self.store, self.config, self.layer_descs, tags)
        finally:
            self._release()


class _LayerContext:
    def __init__(self, builder: ImageBuilder, created_by: str) -> None:
        from . import layer as layers

        self.builder = builder
        self.created_by = created_by
        self.changes = layers.Changes()

    def __enter__(self) -> layers.Changes:
        return self.changes

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.builder.add_layer(self.changes, self.created_by)
