"""The Python API, shaped like docker-py (``docker.from_env()``), over the same core as the CLI.

    client = pycontainers.from_env()
    for image in client.images.list():
        print(image.short_id, image.tags)

Objects render as HTML tables in Jupyter (through ``pycontainers.views``, imported only there).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from . import archive
from . import image as core
from .errors import ImageNotFound, InvalidArgument
from .image import ImageBuilder
from .store import Store
from .units import human_size


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
                                          self._manifest_descriptor())
        self.reload()
        return True

    def save(self, fmt: str = "docker") -> bytes:
        buf = io.BytesIO()
        archive.save(self.client.images._store, [self.id], buf, fmt=fmt)
        return buf.getvalue()

    def reload(self) -> None:
        self._image = core.get_image(self.client.images._store, self._image.manifest_digest)

    def _manifest_descriptor(self) -> Any:
        from . import oci

        store = self.client.images._store
        return oci.Descriptor(oci.MEDIA_MANIFEST, self._image.manifest_digest,
                              store.blob_path(self._image.manifest_digest).stat().st_size)


def inspect(image: core.Image) -> dict[str, Any]:
    """``docker image inspect``'s JSON for one image."""
    cfg = image.config
    return {
        "Id": image.id,
        "RepoTags": image.familiar_tags,
        "RepoDigests": [f"{t.rpartition(':')[0]}@{image.manifest_digest}" for t in image.familiar_tags],
        "Created": cfg.get("created"),
        "Author": cfg.get("author", ""),
        "Config": image.settings,
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
        images = core.list_images(self._store)
        if not all:
            images = [i for i in images if i.tags]
        if filters and "dangling" in filters:
            want = str(filters["dangling"]).lower() in ("1", "true")
            images = [i for i in core.list_images(self._store) if (not i.tags) == want]
        if name:
            ref = core.normalize_tag(name) if ":" in name.rpartition("/")[2] else None
            repo = core.parse(name).name
            images = [i for i in images if any(t == ref if ref else t.rpartition(":")[0] == repo
                                               for t in i.tags)]
        return [Image(self.client, i) for i in sorted(images, key=lambda i: i.created, reverse=True)]

    def get(self, name: str) -> Image:
        return Image(self.client, core.get_image(self._store, name))

    def remove(self, image: str, force: bool = False, noprune: bool = False) -> list[dict[str, str]]:
        """Untag (and delete, once no tag is left) like ``docker rmi``; returns Docker's report lines."""
        return remove_image(self._store, image, force=force, prune=not noprune)

    def prune(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        """Remove dangling (untagged) images, and with ``filters={"dangling": False}`` unused ones too."""
        return prune_images(self._store, all_images=bool(filters) and
                            str(filters.get("dangling", True)).lower() in ("0", "false"))

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

    def builder(self, base: str = "scratch") -> ImageBuilder:
        """Build an image by hand, layer by layer (see ``ImageBuilder``)."""
        return ImageBuilder(self._store, base)

    def _repr_html_(self) -> str:
        from .views import images_html

        return images_html(core.list_images(self._store))


def remove_image(store: Store, name: str, *, force: bool = False, prune: bool = True) -> list[dict[str, str]]:
    """``docker rmi NAME``: a tag is untagged; the image goes when its last tag does.

    Removing by ID an image that has several tags needs ``force``, as in Docker. (Refusing an image a
    container uses belongs to the runtime, which keeps its containers' image IDs.)
    """
    image = core.get_image(store, name)
    report: list[dict[str, str]] = []
    by_tag = None
    try:
        ref = core.normalize_tag(name)
        by_tag = ref if ref in image.tags else None
    except Exception:  # an ID, not a name
        by_tag = None
    if by_tag:
        store.remove_entries(refs={by_tag})
        report.append({"Untagged": core.parse(by_tag).familiar})
        if len(image.tags) > 1:
            return report
    elif len(image.tags) > 1 and not force:
        raise InvalidArgument(f"conflict: unable to delete {image.short_id} (must be forced) - image is "
                              "referenced in multiple repositories")
    else:
        report += [{"Untagged": core.parse(t).familiar} for t in image.tags]
    store.remove_entries(manifests={image.manifest_digest})
    report.append({"Deleted": image.id})
    if prune:
        store.gc()
    return report


def prune_images(store: Store, all_images: bool = False) -> dict[str, Any]:
    """``docker image prune``: delete untagged images (``-a``: every image), then unreferenced blobs."""
    victims = core.list_images(store) if all_images else core.list_images(store, dangling=True)
    store.remove_entries(manifests={i.manifest_digest for i in victims})
    _count, freed = store.gc()
    return {"ImagesDeleted": [{"Deleted": i.id} for i in victims], "SpaceReclaimed": freed}


def disk_usage(store: Store) -> list[dict[str, str]]:
    """``docker system df`` rows (images only until the runtime adds containers and volumes)."""
    images = core.list_images(store)
    blob_sizes: dict[str, int] = {}
    for img in images:
        for d in img.layers:
            blob_sizes[d.digest] = d.size
    total = sum(blob_sizes.values())
    dangling = core.list_images(store, dangling=True)
    kept = {d.digest for i in images if i.tags for d in i.layers}
    reclaim = sum(size for digest, size in blob_sizes.items() if digest not in kept)
    return [{"Type": "Images", "TotalCount": str(len(images)),
             "Active": str(len(images) - len(dangling)), "Size": human_size(total),
             "Reclaimable": f"{human_size(reclaim)} ({100 * reclaim // total if total else 0}%)"}]


class Client:
    """docker-py's ``DockerClient``, daemonless: it works on the store directly."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.store = Store(home)
        self.images = ImageCollection(self)

    def __repr__(self) -> str:
        return f"<pycontainers.Client store={str(self.store.home)!r}>"

    def df(self) -> list[dict[str, str]]:
        return disk_usage(self.store)

    def check(self) -> list[str]:
        return self.store.check()


def iter_chunks(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


__all__ = ["Client", "Image", "ImageCollection", "ImageNotFound", "inspect"]
