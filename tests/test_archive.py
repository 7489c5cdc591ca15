"""save and load: round trips, interop with skopeo and umoci, and archives that lie."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from pycontainers import archive, oci
from pycontainers import layer as L
from pycontainers.bases import cache_store, copy_image
from pycontainers.cli import main
from pycontainers.errors import ArchiveError, LayerError, PyContainersError, StoreError
from pycontainers.image import ImageBuilder, empty_config, get_image, list_images
from pycontainers.store import Store

BUSYBOX_REF = "docker.io/library/busybox:latest"
needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
needs_umoci = pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed")


def saved(store: Store, names: list[str], fmt: str = "docker") -> bytes:
    buf = io.BytesIO()
    archive.save(store, names, buf, fmt=fmt)
    return buf.getvalue()


def load(store: Store, data: bytes) -> list:
    return archive.load(store, io.BytesIO(data))


def state(store: Store) -> list[tuple[str, str]]:
    """Every file of the store with its content hash, ignoring tmp/ and lock files."""
    out = []
    for path in sorted(store.home.rglob("*")):
        rel = path.relative_to(store.home)
        if rel.parts[0] == "tmp" or rel.name in ("lock", "gc.lock") or path.is_dir():
            continue
        out.append((str(rel), hashlib.sha256(path.read_bytes()).hexdigest()))
    return out


def with_busybox(home: Path) -> Store:
    store = Store(home)
    cache = cache_store()
    copy_image(cache, get_image(cache, "busybox"), store)
    return store


@pytest.fixture
def app_store(busybox_store: Store) -> Store:
    """busybox plus app:1, an image with one more layer (so loading it adds new blobs)."""
    b = ImageBuilder(busybox_store, "busybox")
    with b.layer("COPY app /app") as fs:
        fs.add_file("/app/main.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    b.set(Cmd=["/app/main.sh"])
    b.commit("app:1")
    return busybox_store


@pytest.fixture
def dest(tmp_path: Path) -> Store:
    """The store archives are loaded into: it already has busybox, which a failed load must keep."""
    return with_busybox(tmp_path / "dest")


# ---------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("fmt", ["docker", "oci"])
def test_save_load_round_trip(app_store: Store, tmp_path: Path, fmt: str) -> None:
    original = get_image(app_store, "app:1")
    data = saved(app_store, ["app:1"], fmt)
    assert saved(app_store, ["app:1"], fmt) == data  # reproducible, byte for byte
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = set(tar.getnames())
    assert {"oci-layout", "index.json", f"blobs/sha256/{original.id[7:]}"} <= names
    assert ("manifest.json" in names) == (fmt == "docker")

    other = Store(tmp_path / "other")
    (loaded,) = load(other, data)
    assert loaded.id == original.id
    assert loaded.manifest_digest == original.manifest_digest
    assert loaded.tags == ["docker.io/library/app:1"]
    again = get_image(other, "app:1")
    assert again == loaded and again.settings["Cmd"] == ["/app/main.sh"]
    assert [e.ref for e in other.entries()] == ["docker.io/library/app:1"]
    assert other.check() == []
    assert saved(other, ["app:1"], fmt) == data  # the copy saves to the very same bytes


def test_save_by_id_keeps_every_tag_and_loads_twice_idempotently(busybox_store: Store, tmp_path: Path) -> None:
    bb = get_image(busybox_store, "busybox")
    data = saved(busybox_store, [bb.short_id])
    other = Store(tmp_path / "other")
    load(other, data)
    first = state(other)
    assert sorted(get_image(other, "busybox").tags) == sorted(bb.tags)
    load(other, data)
    assert state(other) == first


def test_save_rejects_unknown_format_and_image(busybox_store: Store) -> None:
    with pytest.raises(ArchiveError, match="unknown archive format"):
        saved(busybox_store, ["busybox"], "zip")
    with pytest.raises(PyContainersError, match="No such image"):
        saved(busybox_store, ["nosuch"])


# --------------------------------------------------------------------------------------------- interop


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(cmd)}: {proc.stderr}"
    return proc


@needs_skopeo
@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive"])
def test_skopeo_reads_saved_archive(busybox_store: Store, tmp_path: Path, transport: str) -> None:
    bb = get_image(busybox_store, "busybox")
    path = tmp_path / "busybox.tar"
    path.write_bytes(saved(busybox_store, ["busybox"], "docker"))
    info = json.loads(run(["skopeo", "inspect", f"{transport}:{path}"]).stdout)
    assert info["Layers"] == [d.digest for d in bb.layers]
    config = json.loads(run(["skopeo", "inspect", "--config", f"{transport}:{path}"]).stdout)
    assert config["rootfs"]["diff_ids"] == bb.diff_ids
    if transport == "oci-archive":
        assert info["Digest"] == bb.manifest_digest


@needs_skopeo
def test_skopeo_reads_the_live_store(busybox_store: Store) -> None:
    bb = get_image(busybox_store, "busybox")
    info = json.loads(run(["skopeo", "inspect", f"oci:{busybox_store.layout}:{BUSYBOX_REF}"]).stdout)
    assert info["Digest"] == bb.manifest_digest
    assert info["Layers"] == [d.digest for d in bb.layers]
    assert info["Os"] == "linux" and info["Architecture"] == "amd64"


@needs_umoci
def test_umoci_unpacks_the_live_store(busybox_store: Store, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    run(["umoci", "unpack", "--image", f"{busybox_store.layout}:{BUSYBOX_REF}", str(bundle)])
    busybox = bundle / "rootfs/bin/busybox"
    assert busybox.is_file() and os.access(busybox, os.X_OK)
    assert os.readlink(bundle / "rootfs/bin/sh") == "/bin/busybox"
    assert json.loads((bundle / "config.json").read_text())["process"]["args"] == ["sh"]


@needs_skopeo
@pytest.mark.parametrize("dest_spec", [
    ["docker-archive:{path}:busybox:copied"],
    ["--dest-compress", "--dest-compress-format", "gzip", "oci-archive:{path}:busybox:copied"],
], ids=["docker-archive", "oci-archive-gzip"])
def test_load_what_skopeo_writes(busybox_store: Store, tmp_path: Path, dest_spec: list[str]) -> None:
    bb = get_image(busybox_store, "busybox")
    path = tmp_path / "copied.tar"
    run(["skopeo", "copy", "-q", f"oci:{busybox_store.layout}:{BUSYBOX_REF}",
         *[a.format(path=path) for a in dest_spec]])
    if "gzip" in dest_spec:
        with tarfile.open(path) as tar:
            index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
            manifest = json.load(tar.extractfile(f"blobs/sha256/{index['manifests'][0]['digest'][7:]}"))  # type: ignore[arg-type]
        assert manifest["layers"][0]["mediaType"] == oci.MEDIA_LAYER_GZIP  # really compressed
    other = Store(tmp_path / "other")
    with open(path, "rb") as f:
        (loaded,) = archive.load(other, f)
    assert loaded.id == bb.id  # the config, hence the image ID, is unchanged
    assert loaded.tags == ["docker.io/library/busybox:copied"]
    assert loaded.diff_ids == bb.diff_ids
    assert [d.digest for d in loaded.layers] == [d.digest for d in bb.layers]  # stored uncompressed
    assert other.check() == []


# ------------------------------------------------------------------------------------ lying archives


def rewrite(data: bytes, change: Callable[[str, bytes], bytes | None], add: dict[str, bytes] | None = None) -> bytes:
    """Copy an archive, passing each regular file through *change* (None drops it), then add files."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as tin, tarfile.open(fileobj=out, mode="w",
                                                                     format=tarfile.PAX_FORMAT) as tout:
        for m in tin:
            if not m.isreg():
                tout.addfile(m)
                continue
            new = change(m.name, tin.extractfile(m).read())  # type: ignore[union-attr]
            if new is not None:
                m.size = len(new)
                tout.addfile(m, io.BytesIO(new))
        for name, content in (add or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tout.addfile(info, io.BytesIO(content))
    return out.getvalue()


def blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest.split(':')[1]}"


def tar_of(*items: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in items:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def consistent_image(layer: bytes, tag: str) -> tuple[dict[str, bytes], dict]:
    """The blobs of an image whose every digest is right, and its index.json entry."""
    config = empty_config()
    config["rootfs"]["diff_ids"] = [oci.sha256_digest(layer)]
    config["history"] = [{"created_by": "crafted"}]
    config_bytes = oci.canonical_json(config)
    manifest = oci.canonical_json(oci.manifest_json(
        oci.Descriptor(oci.MEDIA_CONFIG, oci.sha256_digest(config_bytes), len(config_bytes)),
        [oci.Descriptor(oci.MEDIA_LAYER, oci.sha256_digest(layer), len(layer))]))
    blobs = {blob_name(oci.sha256_digest(b)): b for b in (layer, config_bytes, manifest)}
    entry = {"mediaType": oci.MEDIA_MANIFEST, "digest": oci.sha256_digest(manifest), "size": len(manifest),
             "annotations": {oci.ANNOTATION_IMAGE_NAME: tag}}
    return blobs, entry


def archive_of(images: list[tuple[dict[str, bytes], dict]]) -> bytes:
    blobs: dict[str, bytes] = {}
    for b, _ in images:
        blobs.update(b)
    index = {"schemaVersion": 2, "mediaType": oci.MEDIA_INDEX, "manifests": [e for _, e in images]}
    return tar_of(("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), *blobs.items(),
                  ("index.json", json.dumps(index).encode()))


def evil_layer() -> bytes:
    return tar_of(("app/ok.txt", b"fine\n"), ("../../../evil", b"escaped\n"))


def flip(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def lying_archives(app: Store) -> dict[str, tuple[bytes, type[Exception], str]]:
    image = get_image(app, "app:1")
    good = saved(app, ["app:1"])
    new_layer = image.layers[-1].digest

    def lie_about(name: str) -> bytes:
        def change(n: str, b: bytes) -> bytes:
            if n != name:
                return b
            if n.endswith(image.id[7:]):  # keep the config valid JSON
                return b.replace(b'"/app/main.sh"', b'"/bin/evil"')
            return flip(b)
        return rewrite(good, change)

    # A different (valid) layer, named by its own digest and listed by a manifest that index.json
    # names correctly; only the config's diff_id disagrees.
    other_layer = tar_of(("app/other.txt", b"other\n"))
    manifest = json.loads(app.read_blob(image.manifest_digest))
    manifest["layers"][-1] = oci.Descriptor(oci.MEDIA_LAYER, oci.sha256_digest(other_layer),
                                            len(other_layer)).to_json()
    manifest_bytes = oci.canonical_json(manifest)

    def swap(n: str, b: bytes) -> bytes | None:
        if n == "index.json":
            return b.replace(image.manifest_digest.encode(), oci.sha256_digest(manifest_bytes).encode()) \
                .replace(f'"size": {len(app.read_blob(image.manifest_digest))}'.encode(),
                         f'"size": {len(manifest_bytes)}'.encode())
        return None if n == "manifest.json" else b
    diff_id_lie = rewrite(good, swap, {blob_name(oci.sha256_digest(other_layer)): other_layer,
                                       blob_name(oci.sha256_digest(manifest_bytes)): manifest_bytes})

    # docker save's manifest.json only (no index.json), naming a layer the archive does not hold.
    docker_missing = rewrite(good, lambda n, b: None if n in ("index.json", blob_name(new_layer)) else b)

    evil = archive_of([consistent_image(evil_layer(), "docker.io/library/evil:1")])
    return {
        "layer-blob-lies": (lie_about(blob_name(new_layer)), ArchiveError, "does not match its digest"),
        "config-blob-lies": (lie_about(blob_name(image.id)), ArchiveError, "does not match its digest"),
        "manifest-blob-lies": (lie_about(blob_name(image.manifest_digest)), ArchiveError,
                               "does not match its digest"),
        "layer-is-not-its-diff-id": (diff_id_lie, ArchiveError, "diff_id"),
        "manifest-json-names-missing-file": (docker_missing, ArchiveError, "does not contain"),
        "not-a-tar": (b"GIF89a this is a picture, not an archive\n" * 50, ArchiveError, "not a readable"),
        "empty-tar": (tar_of(), ArchiveError, "neither index.json"),
        "traversal-in-layer": (evil, LayerError, "'../../../evil'"),
    }


LYING = ["layer-blob-lies", "config-blob-lies", "manifest-blob-lies", "layer-is-not-its-diff-id",
         "manifest-json-names-missing-file", "not-a-tar", "empty-tar", "traversal-in-layer"]


@pytest.mark.parametrize("case", LYING)
def test_lying_archive_is_refused_and_leaves_store_unchanged(app_store: Store, dest: Store, case: str) -> None:
    data, error, message = lying_archives(app_store)[case]
    before = state(dest)
    with pytest.raises(error) as err:
        load(dest, data)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert state(dest) == before
    assert [i.tags for i in list_images(dest)] == [get_image(dest, "busybox").tags]
    assert dest.check() == []
    assert not any(dest.tmp_dir.iterdir())
    assert not os.path.exists(dest.home.parent / "evil")


def test_the_untouched_archive_loads(app_store: Store, dest: Store) -> None:
    """The lying archives are all derived from this one, which is fine."""
    (loaded,) = load(dest, saved(app_store, ["app:1"]))
    assert loaded.id == get_image(app_store, "app:1").id
    assert dest.check() == []


def test_consistent_crafted_archive_loads(dest: Store) -> None:
    """The crafted-archive helper makes loadable images: only the evil layer is what fails above."""
    (loaded,) = load(dest, archive_of([consistent_image(tar_of(("app/ok.txt", b"fine\n")),
                                                        "docker.io/library/fine:1")]))
    assert loaded.tags == ["docker.io/library/fine:1"]
    assert dest.check() == []


def test_failed_load_adds_no_image_at_all(busybox_store: Store, tmp_path: Path) -> None:
    good = consistent_image(tar_of(("app/ok.txt", b"fine\n")), "docker.io/library/fine:1")
    bad = consistent_image(evil_layer(), "docker.io/library/evil:1")
    empty = Store(tmp_path / "empty")
    before = state(empty)
    with pytest.raises(LayerError):
        load(empty, archive_of([good, bad]))
    assert state(empty) == before


def test_failed_load_spares_a_concurrent_writers_blobs(dest: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    builders: list[ImageBuilder] = []
    real_check = L.check_layer

    def check_while_another_process_builds(*args: object, **kw: object) -> set[str]:
        # What another process might do at this very moment: write a layer it will commit later.
        b = ImageBuilder(Store(dest.home), "busybox")
        with b.layer("concurrent") as fs:
            fs.add_file("/concurrent.txt", "written while the load ran\n")
        builders.append(b)
        return real_check(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(archive.layers, "check_layer", check_while_another_process_builds)
    with pytest.raises(LayerError):
        load(dest, archive_of([consistent_image(evil_layer(), "docker.io/library/evil:1")]))
    monkeypatch.undo()
    image = builders[0].commit("concurrent:1")
    assert dest.check() == []
    assert "concurrent.txt" in image.filesystem()


# ------------------------------------------------------------------------------------------------- CLI


def test_cli_save_and_load(busybox_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "busybox.tar"
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    assert main(["save", "-o", str(out), "busybox"]) == 0
    assert capsys.readouterr().out == ""
    assert out.read_bytes() == saved(busybox_store, ["busybox"])
    assert not Path(str(out) + ".partial").exists()

    target = Store(tmp_path / "target")
    monkeypatch.setenv("PYCONTAINERS_HOME", str(target.home))
    assert main(["load", "-i", str(out)]) == 0
    assert capsys.readouterr().out == "Loaded image: busybox:latest\n"
    assert get_image(target, "busybox").id == get_image(busybox_store, "busybox").id

    assert main(["save", "--format", "oci", "-o", str(tmp_path / "oci.tar"), "busybox"]) == 0
    with tarfile.open(tmp_path / "oci.tar") as tar:
        assert "manifest.json" not in tar.getnames()

    (tmp_path / "junk.tar").write_bytes(b"junk" * 300)
    assert main(["load", "-i", str(tmp_path / "junk.tar")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: not a readable image archive") and err.count("\n") == 1


def _replaced(archive_bytes: bytes, name: str, content: object, drop: str = "") -> io.BytesIO:
    """*archive_bytes* with member *name* replaced by *content* as JSON (and member *drop* left out)."""
    out = io.BytesIO()
    data = json.dumps(content).encode()
    with tarfile.open(fileobj=io.BytesIO(archive_bytes)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for member in src.getmembers():
            if member.name == drop:
                continue
            if member.name == name:
                member.size = len(data)
                dst.addfile(member, io.BytesIO(data))
            else:
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    out.seek(0)
    return out


@pytest.mark.parametrize(("fmt", "name", "content", "said"), [
    ("docker", "manifest.json", {"a": 1}, "manifest.json is not a list"),
    ("docker", "manifest.json", ["x"], "manifest.json: an entry is not an object"),
    ("docker", "manifest.json", [{"Config": None, "RepoTags": None, "Layers": None}], "Config is not a string"),
    ("docker", "manifest.json", [{"Config": 5, "RepoTags": [5], "Layers": [5]}], "Config is not a string"),
    ("docker", "manifest.json", [{"Config": "x.json", "RepoTags": "abc", "Layers": []}], "RepoTags is not a list"),
    ("oci", "index.json", [], "index.json is not an object"),
    ("oci", "index.json", {"manifests": None}, "index.json: manifests is not a list"),
    ("oci", "index.json", {"manifests": ["x"]}, "a manifest entry is not an object"),
    ("oci", "index.json", {"manifests": [{"size": 3}]}, "a manifest entry's digest is not a string"),
])
def test_a_malformed_archive_is_one_error_naming_the_field(busybox_store: Store, fmt: str, name: str,
                                                         content: object, said: str) -> None:
    saved = io.BytesIO()
    archive.save(busybox_store, ["busybox"], saved, fmt=fmt)
    before = sorted(p.name for p in busybox_store.blobs.iterdir())
    with pytest.raises(ArchiveError, match=said):
        # (docker save writes index.json too, which load reads first: without it, manifest.json is read)
        archive.load(busybox_store, _replaced(saved.getvalue(), name, content,
                                              drop="index.json" if name == "manifest.json" else ""))
    assert sorted(p.name for p in busybox_store.blobs.iterdir()) == before and busybox_store.check() == []


def test_load_says_the_archive_s_tags_once_each(busybox_store: Store, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    assert main(["tag", "busybox", "elsewhere:1"]) == 0  # a tag of the store's, not of the archive's
    with open(tmp_path / "two.tar", "wb") as f:
        archive.save(busybox_store, ["busybox:latest", "busybox:1.35.0"], f)
    capsys.readouterr()
    assert main(["load", "-i", str(tmp_path / "two.tar")]) == 0
    assert capsys.readouterr().out == "Loaded image: busybox:latest\nLoaded image: busybox:1.35.0\n"


def test_save_of_a_damaged_image_names_the_blob_and_writes_nothing(busybox_store: Store, tmp_path: Path) -> None:
    """Not "cannot write x.tar": the store's missing or corrupt blob is the problem, and it is named first."""
    layer = get_image(busybox_store, "busybox").layers[-1].digest
    blob = busybox_store.blob_path(layer)
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    out = io.BytesIO()
    with pytest.raises(StoreError, match=f"blob {layer} is corrupt"):
        archive.save(busybox_store, ["busybox"], out)
    assert out.getvalue() == b""
    blob.unlink()
    with pytest.raises(StoreError, match=f"blob {layer} is missing from the store"):
        archive.save(busybox_store, ["busybox"], out)
