"""Names and shapes from the OCI image-spec, so the code reads next to the spec.

An image is a *manifest* (JSON) that points at a *config* (JSON: environment, command, history, and the
``rootfs.diff_ids`` of its layers) and at the *layers* (tar archives of file-system changes). Each of these
is a *blob* named by its *digest*, ``sha256:`` plus the hex SHA-256 of its bytes. A *descriptor* is the
small JSON object one blob uses to point at another: media type, digest and size.

pycontainers stores layers uncompressed (``...layer.v1.tar``), so a layer's digest is also its
``diff_id``: the same string a student sees in the manifest, the config and the store.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from typing import Any

OCI_LAYOUT_VERSION = "1.0.0"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

# Docker's own (schema 2) names for the same things, met in `docker save` archives and registries.
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


# Annotation keys of the image-spec (annotations.md).
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
# containerd and Docker 25+ also record the full image name on index entries.
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(text: str) -> bool:
    return bool(_DIGEST_RE.match(text))


def canonical_json(obj: Any) -> bytes:
    """Serialise JSON the same way every time (sorted keys, no spaces), so equal content has equal digest."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Descriptor:
    """descriptor.md: what one blob says about another."""

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Descriptor:
        return cls(obj["mediaType"], obj["digest"], int(obj["size"]), dict(obj.get("annotations") or {}))


def short_id(digest: str) -> str:
    """Docker's 12-character IMAGE ID column: the config digest without ``sha256:``, cut."""
    return digest.split(":", 1)[-1][:12]


def manifest_json(config: Descriptor, layers: list[Descriptor],
                  annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """manifest.md: schemaVersion 2, the config descriptor, the layer descriptors in order (base first)."""
    out: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        out["annotations"] = dict(annotations)
    return out
