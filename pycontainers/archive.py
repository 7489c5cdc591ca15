"""``save`` and ``load``: images as one tar file, in the formats Docker, skopeo and umoci exchange.

``save`` writes what ``docker save`` writes since Docker 25: an OCI image layout (``oci-layout``,
``index.json``, ``blobs/sha256/...``) that also carries Docker's ``manifest.json``, so the same file is a
valid ``oci-archive:`` and ``docker-archive:`` for skopeo and loads into any Docker. ``format="oci"``
leaves out Docker's files. The tar itself is reproducible.

``load`` treats the archive as untrusted: every blob is checked against the digest it claims, every
layer against the config's ``diff_ids``, and every layer entry by the same checks as extraction.
Compressed layers (gzip) are stored uncompressed. If anything is wrong, nothing it added stays.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

from . import layer as layers
from . import oci
from .errors import ArchiveError, LayerError, PyContainersError, StoreError
from .image import Image, get_image
from .reference import InvalidReference, parse
from .store import Store, owned_prefix

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

# ----------------------------------------------------------------------------------------------- save


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes | None = None, path: Path | None = None) -> None:
    size = len(data) if data is not None else path.stat().st_size  # type: ignore[union-attr]
    info = layers.new_info(name, tarfile.REGTYPE, mode=0o644, size=size)
    if data is not None:
        tar.addfile(info, io.BytesIO(data))
    else:
        with open(path, "rb") as f:  # type: ignore[arg-type]
            tar.addfile(info, f)


def save(store: Store, names: list[str], out: BinaryIO, *, fmt: str = "docker") -> list[Image]:
    """Write the images named by *names* (tags or IDs) to *out* as one tar archive."""
    if fmt not in ("docker", "oci"):
        raise ArchiveError(f"unknown archive format {fmt!r}: use 'docker' or 'oci'")
    images: list[tuple[Image, str | None]] = []
    for name in names:
        image = get_image(store, name)
        ref = None
        try:
            parsed = parse(name)
            ref = str(parsed) if str(parsed) in image.tags else None
        except InvalidReference:
            pass
        images.append((image, ref))
    blobs: dict[str, None] = {}
    index_entries = []
    docker_manifest = []
    for image, ref in images:
        for digest in (image.manifest_digest, image.id, *[d.digest for d in image.layers]):
            blobs[digest] = None
        tags = [ref] if ref else list(image.tags)
        desc = store.manifest_descriptor(image.manifest_digest)
        for tag in tags or [None]:
            ann = {}
            if tag:
                ann = {oci.ANNOTATION_IMAGE_NAME: tag, oci.ANNOTATION_REF_NAME: parse(tag).tag or "latest"}
            index_entries.append(oci.Descriptor(desc.media_type, desc.digest, desc.size, ann).to_json())
        docker_manifest.append({
            "Config": f"blobs/sha256/{image.id.split(':')[1]}",
            "RepoTags": [parse(t).familiar for t in tags],
            "Layers": [f"blobs/sha256/{d.digest.split(':')[1]}" for d in image.layers],
        })
    index = {"schemaVersion": 2, "mediaType": oci.MEDIA_INDEX, "manifests": index_entries}
    for digest in blobs:  # a damaged store is said as such, before anything is written (not "cannot write FILE")
        if not store.has_blob(digest):
            raise StoreError(f"blob {digest} is missing from the store (pycontainers system check)")
        if not store.verify_blob(digest):
            raise StoreError(f"blob {digest} is corrupt: its content has another digest (pycontainers system check)")
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            tar.addfile(layers.new_info(d, tarfile.DIRTYPE, mode=0o755))
        for digest in sorted(blobs):
            _tar_add(tar, f"blobs/sha256/{digest.split(':')[1]}", path=store.blob_path(digest))
        _tar_add(tar, "index.json", json.dumps(index, indent=2).encode())
        if fmt == "docker":
            _tar_add(tar, "manifest.json", json.dumps(docker_manifest).encode())
        _tar_add(tar, "oci-layout", oci.canonical_json({"imageLayoutVersion": oci.OCI_LAYOUT_VERSION}))
    return [i for i, _ in images]


# ----------------------------------------------------------------------------------------------- load


class _Unpacked:
    """The regular files of an untrusted archive, copied into a private temp directory by clean name."""

    def __init__(self, fileobj: BinaryIO, tmp: Path) -> None:
        self.tmp = tmp
        self.files: dict[str, Path] = {}
        links: dict[str, str] = {}
        try:
            with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
                for n, member in enumerate(tar):
                    try:
                        name = layers.clean_path(member.name)
                    except ValueError as exc:
                        raise ArchiveError(f"archive entry {member.name!r} {exc}") from None
                    if member.issym() or member.islnk():
                        # old `docker save` links identical layer.tar files to each other
                        base = name.rpartition("/")[0]
                        target = member.linkname if member.islnk() else os.path.join(base, member.linkname)
                        links[name] = os.path.normpath(target)
                    elif member.isreg():
                        if member.size > layers.MAX_ENTRY_SIZE:
                            raise ArchiveError(f"archive entry {member.name!r} claims {member.size} bytes")
                        dest = tmp / f"f{n}"
                        with tar.extractfile(member) as src, open(dest, "wb") as out:  # type: ignore[union-attr]
                            shutil.copyfileobj(src, out, 1 << 20)
                        self.files[name] = dest
        except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
            raise ArchiveError(f"not a readable image archive: {exc}") from None
        for name, target in links.items():
            if target in self.files:
                self.files[name] = self.files[target]

    def has(self, name: str) -> bool:
        return name in self.files

    def open(self, name: str) -> IO[bytes]:
        try:
            return open(self.files[layers.clean_path(name)], "rb")
        except (KeyError, ValueError):
            raise ArchiveError(f"the archive refers to {name!r}, which it does not contain") from None

    def json(self, name: str) -> Any:
        with self.open(name) as f:
            try:
                return json.load(f)
            except ValueError as exc:
                raise ArchiveError(f"{name} in the archive is not valid JSON: {exc}") from None

    def blob(self, digest: str) -> IO[bytes]:
        if not oci.is_digest(digest):
            raise ArchiveError(f"the archive names a blob by {digest!r}, which is not a sha256 digest")
        return self.open(f"blobs/sha256/{digest.split(':')[1]}")


def _verified_bytes(f: IO[bytes], digest: str | None, what: str) -> bytes:
    data = f.read()
    if digest is not None and oci.sha256_digest(data) != digest:
        raise ArchiveError(f"{what} does not match its digest {digest}: the archive lies about its content")
    return data


@contextlib.contextmanager
def decompressed(f: IO[bytes], what: str, *, error: type[PyContainersError] = ArchiveError,
                 outcome: str = "") -> Iterator[IO[bytes]]:
    """*f* uncompressed if it is gzip, bzip2 or xz (``docker load`` and ``docker import`` read them all), as it
    is otherwise. Only its first bytes are read to tell, and given back: *f* need not be seekable (a pipe).
    zstd is refused with *error* naming *what*; *outcome* ends the message (what became of the work)."""
    import bz2
    import lzma

    head = f.read(6)
    stream: IO[bytes] = io.BufferedReader(PrefixedStream(head, f))  # type: ignore[arg-type]
    if head[:4] == ZSTD_MAGIC:
        ending = f"; {outcome}" if outcome else ""
        raise error(f"{what} is zstd-compressed, which pycontainers cannot read yet (use gzip, bzip2 or xz){ending}")
    if head[:2] == GZIP_MAGIC:
        stream = gzip.GzipFile(fileobj=stream)  # type: ignore[assignment]
    elif head[:3] == b"BZh":
        stream = bz2.BZ2File(stream)  # type: ignore[assignment]
    elif head == b"\xfd7zXZ\x00":
        stream = lzma.LZMAFile(stream)  # type: ignore[assignment]  # noqa: SIM115 (closed below)
    with stream:
        yield stream


class PrefixedStream(io.RawIOBase):
    """A stream whose first bytes, read already to see what it is, are given back first."""

    def __init__(self, head: bytes, rest: IO[bytes]) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        if self.head:
            n = min(len(buf), len(self.head))
            buf[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.rest.read(len(buf))
        buf[:len(data)] = data
        return len(data)


def _images_in(arc: _Unpacked) -> list[tuple[str | None, Any, str | None, list[str | None]]]:
    """(manifest digest or None, config path/digest, tag, compressed layer digests) per image.

    The archive's JSON is checked shape by shape (an object, a list, a string where the format says so):
    a malformed one is one ArchiveError naming the file and the field."""
    found = []
    if arc.has("index.json"):
        index = _shaped(arc.json("index.json"), dict, "index.json")
        todo = [(m, "index.json") for m in _shaped(index.get("manifests", []), list, "index.json: manifests")]
        while todo:
            desc, where = todo.pop(0)
            desc = _shaped(desc, dict, f"{where}: a manifest entry")
            digest = _shaped(desc.get("digest"), str, f"{where}: a manifest entry's digest")
            doc = _shaped(json.loads(_verified_bytes(arc.blob(digest), digest, f"manifest {digest}")), dict,
                          f"manifest {digest}")
            if "manifests" in doc:  # an image index: take the linux/amd64 entry
                entries = [_shaped(m, dict, f"index {digest}: an entry")
                           for m in _shaped(doc["manifests"], list, f"index {digest}: manifests")]
                todo += [(m, f"index {digest}") for m in entries
                         if (m.get("platform") or {}).get("architecture", "amd64") == "amd64"][:1]
                continue
            ann = _shaped(desc.get("annotations") or {}, dict, f"{where}: annotations")
            tag = ann.get(oci.ANNOTATION_IMAGE_NAME) or ann.get(oci.ANNOTATION_REF_NAME)
            tag = _shaped(tag, str, f"{where}: the image's name") if tag is not None else None
            if tag and not any(c in tag for c in ":/@") and oci.ANNOTATION_IMAGE_NAME not in ann:
                tag = None  # a bare tag ("latest") with no repository name: load the image untagged
            config = _shaped(doc.get("config"), dict, f"manifest {digest}: config")
            layers = _shaped(doc.get("layers", []), list, f"manifest {digest}: layers")
            found.append((digest, _shaped(config.get("digest"), str, f"manifest {digest}: config digest"), tag,
                          [_shaped(_shaped(la, dict, f"manifest {digest}: a layer").get("digest"), str,
                                   f"manifest {digest}: a layer's digest") for la in layers]))
    elif arc.has("manifest.json"):
        for item in _shaped(arc.json("manifest.json"), list, "manifest.json"):
            item = _shaped(item, dict, "manifest.json: an entry")
            config = _shaped(item.get("Config"), str, "manifest.json: Config")
            layers = [_shaped(la, str, "manifest.json: Layers") for la in
                      _shaped(item.get("Layers", []), list, "manifest.json: Layers")]
            tags = _shaped(item.get("RepoTags") or [], list, "manifest.json: RepoTags")
            for tag in tags or [None]:
                found.append((None, config, _shaped(tag, str, "manifest.json: RepoTags") if tag else None, layers))
    else:
        raise ArchiveError("the archive has neither index.json (OCI) nor manifest.json (docker save)")
    return found


def _shaped(value: Any, kind: type, where: str) -> Any:
    """*value* if it is a JSON *kind* (object, array, string), else one ArchiveError saying where."""
    if not isinstance(value, kind):
        names = {dict: "an object", list: "a list", str: "a string"}
        raise ArchiveError(f"{where} is not {names[kind]} (found {json.dumps(value)[:40]}): not an image archive "
                           "that docker save or an OCI layout would write")
    return value


def load(store: Store, fileobj: BinaryIO) -> list[Image]:
    """Load every image of a ``docker save`` or OCI archive into *store*; return them, tagged, each once."""
    images: dict[str, Image] = {}
    for image, _tags in load_tagged(store, fileobj):
        images.setdefault(image.id, image)
    return list(images.values())


def load_tagged(store: Store, fileobj: BinaryIO) -> list[tuple[Image, list[str]]]:
    """``load``, with the tags each image got from the archive (``docker load`` prints those, not every tag
    the image may have had in the store already).

    Two phases: every image is verified and its blobs written first; only when all of them passed
    are manifests tagged. A failure in any image leaves the index untouched and deletes the blobs
    this load created (and nothing else: another writer's new blobs are not ours to delete).
    """
    before = {p.name for p in store.blobs.iterdir()}
    written: set[str] = set()
    with tempfile.TemporaryDirectory(prefix=owned_prefix("load"), dir=store.tmp_dir) as tmp:
        try:
            with store.writing():
                arc = _Unpacked(fileobj, Path(tmp))
                staged = [_stage_image(store, arc, config_ref, tag, layer_refs, written)
                          for _manifest, config_ref, tag, layer_refs in _images_in(arc)]
                return [(_tag_image(store, manifest, tags), tags) for manifest, tags in staged]
        except BaseException:
            store.remove_unreferenced({d for d in written if d.split(":", 1)[1] not in before})
            raise


def _stage_image(store: Store, arc: _Unpacked, config_ref: str, tag: str | None,
                 layer_refs: list[str | None], written: set[str]) -> tuple[oci.Descriptor, list[str]]:
    """Verify one image and write its blobs; return its manifest descriptor and tags (not yet applied)."""
    if oci.is_digest(config_ref):
        config_bytes = _verified_bytes(arc.blob(config_ref), config_ref, f"config {config_ref}")
    else:  # docker-archive: "<hex>.json" or "blobs/sha256/<hex>"; its name is its digest
        hexname = Path(config_ref).name.removesuffix(".json")
        config_bytes = _verified_bytes(arc.open(config_ref), f"sha256:{hexname}" if len(hexname) == 64
                                       else None, f"config {config_ref}")
    try:
        config = json.loads(config_bytes)
    except ValueError as exc:
        raise ArchiveError(f"config {config_ref} is not an image config: {exc}") from None
    rootfs = _shaped(_shaped(config, dict, f"config {config_ref}").get("rootfs", {}), dict,
                     f"config {config_ref}: rootfs")
    diff_ids = _shaped(rootfs.get("diff_ids", []), list, f"config {config_ref}: rootfs.diff_ids")
    if len(diff_ids) != len(layer_refs):
        raise ArchiveError(f"config lists {len(diff_ids)} layers but the manifest has {len(layer_refs)}")
    descs = []
    symlinks: set[str] = set()
    for diff_id, ref in zip(diff_ids, layer_refs, strict=True):
        what = f"layer {diff_id}"
        f = arc.blob(ref) if ref and oci.is_digest(ref) else arc.open(ref or "")
        with f:
            if ref and oci.is_digest(ref):  # the compressed blob must match its own name too
                h = hashlib.sha256()
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                if "sha256:" + h.hexdigest() != ref:
                    raise ArchiveError(f"blob {ref} does not match its digest: the archive lies about it")
                f.seek(0)
            with decompressed(f, what) as plain:
                desc = store.put_stream(plain, oci.MEDIA_LAYER)
        written.add(desc.digest)
        if desc.digest != diff_id:
            raise ArchiveError(f"{what}: the uncompressed layer has digest {desc.digest}, not the diff_id "
                               "its config promises")
        with store.open_blob(desc.digest) as blob:
            symlinks = layers.check_layer(blob, what, lower_symlinks=symlinks)
        descs.append(desc)
    try:
        tags = [str(parse(tag))] if tag else []
    except InvalidReference as exc:
        raise ArchiveError(f"the archive tags an image {tag!r}: {exc}") from None
    # Our manifest lists the layers uncompressed; the image ID (the config's digest) stays the same.
    config_desc = store.put_bytes(config_bytes, oci.MEDIA_CONFIG)
    manifest = store.put_json(oci.manifest_json(config_desc, descs), oci.MEDIA_MANIFEST)
    written.update({config_desc.digest, manifest.digest})
    return manifest, tags


def _tag_image(store: Store, manifest: oci.Descriptor, tags: list[str]) -> Image:
    for tag in tags:
        store.set_tag(tag, manifest)
    if not tags:
        store.add_untagged(manifest)
    return get_image(store, manifest.digest.removeprefix("sha256:"))


__all__ = ["save", "load", "ArchiveError", "LayerError", "StoreError"]
