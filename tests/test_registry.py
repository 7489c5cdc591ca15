"""pull and push: against Docker's own registry (distribution, on loopback), and against a scripted registry
that lies, stalls, redirects or asks for a token, to see each failure named and the store left as it was."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import socket
import subprocess
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pycontainers import Client, oci, registry
from pycontainers.api import inspect
from pycontainers.archive import save
from pycontainers.bases import cache_store, copy_image
from pycontainers.build import build
from pycontainers.cli import main
from pycontainers.errors import ImageNotFound, InvalidArgument, PyContainersError
from pycontainers.image import Image, ImageBuilder, get_image, list_images
from pycontainers.registry import LocalRegistry, RegistryError
from pycontainers.store import Store
from pycontainers.tables import images_table


@pytest.fixture(scope="module")
def local_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def blobs_of(store: Store) -> set[str]:
    return {p.name for p in store.blobs.iterdir()}


def with_layer(store: Store, tag: str, content: str) -> Image:
    b = ImageBuilder(store, "busybox")
    with b.layer(f"RUN echo {content} > /greeting") as fs:
        fs.add_file("/greeting", content + "\n")
    return b.commit(tag)


def test_push_then_pull_into_another_store_gives_the_same_image(
        local_registry: LocalRegistry, busybox_store: Store, tmp_path: Path) -> None:
    image = with_layer(busybox_store, f"{local_registry.address}/greeter:v1", "hello")
    events: list[dict[str, Any]] = []
    digest = registry.push(busybox_store, f"{local_registry.address}/greeter:v1", on_event=events.append)
    lines = [registry.progress_line(e) for e in events]
    assert lines[0] == f"The push refers to repository [{local_registry.address}/greeter]"
    assert lines.count(f"{oci.short_id(image.layers[1].digest)}: Pushed") == 1
    assert lines[-1] == f"v1: digest: {digest} size: {len(busybox_store.read_blob(image.manifest_digest))}"
    assert digest == image.manifest_digest  # layers go up uncompressed, so the manifest is byte for byte ours

    other = Store(tmp_path / "other")
    events.clear()
    pulled = registry.pull(other, f"{local_registry.address}/greeter:v1", on_event=events.append)
    assert pulled.image.id == image.id and pulled.digest == digest and pulled.updated
    assert [registry.progress_line(e) for e in events if "id" in e and "progressDetail" not in e][1:] == [
        line for layer in image.layers for line in (f"{oci.short_id(layer.digest)}: Pulling fs layer",
                                                    f"{oci.short_id(layer.digest)}: Pull complete")]
    assert registry.progress_line(events[-1]) == (
        f"Status: Downloaded newer image for {local_registry.address}/greeter:v1")
    assert get_image(other, f"{local_registry.address}/greeter:v1").diff_ids == image.diff_ids
    assert other.check() == []
    for store in (busybox_store, other):  # pushed from, and pulled into: both know its name in the registry
        assert inspect(get_image(store, image.id))["RepoDigests"] == [f"{local_registry.address}/greeter@{digest}"]


def test_a_second_push_and_pull_send_only_what_is_missing(
        local_registry: LocalRegistry, busybox_store: Store, tmp_path: Path) -> None:
    name = f"{local_registry.address}/layers"
    first = with_layer(busybox_store, f"{name}:v1", "one")
    registry.push(busybox_store, f"{name}:v1")
    other = Store(tmp_path / "other")
    registry.pull(other, f"{name}:v1")

    second = with_layer(busybox_store, f"{name}:v2", "two")
    pushed: list[str | None] = []
    registry.push(busybox_store, f"{name}:v2", on_event=lambda e: pushed.append(registry.progress_line(e)))
    base, top = (oci.short_id(layer.digest) for layer in second.layers)
    assert f"{base}: Layer already exists" in pushed and f"{top}: Pushed" in pushed

    pulled: list[str | None] = []
    result = registry.pull(other, f"{name}:v2", on_event=lambda e: pulled.append(registry.progress_line(e)))
    assert f"{base}: Already exists" in pulled and f"{top}: Pull complete" in pulled
    assert result.image.id == second.id != first.id

    again: list[str | None] = []
    registry.pull(other, f"{name}:v2", on_event=lambda e: again.append(registry.progress_line(e)))
    assert again[-1] == f"Status: Image is up to date for {name}:v2"


def test_pull_by_digest_leaves_the_image_untagged_and_checks_the_digest(
        local_registry: LocalRegistry, busybox_store: Store, tmp_path: Path) -> None:
    image = with_layer(busybox_store, f"{local_registry.address}/pinned:v1", "pinned")
    digest = registry.push(busybox_store, f"{local_registry.address}/pinned:v1")
    other = Store(tmp_path / "other")
    pulled = registry.pull(other, f"{local_registry.address}/pinned@{digest}")
    assert pulled.image.id == image.id
    assert [e.ref for e in other.entries()] == [None]
    # As Docker's `images`: its repository, tag <none> (not <none> <none>), also when asked for that repository
    for repository in (None, f"{local_registry.address}/pinned"):
        rows = images_table(list_images(other), digests=True, repository=repository).rows
        assert [(r["Repository"], r["Tag"], r["Digest"]) for r in rows] == [
            (f"{local_registry.address}/pinned", "<none>", digest)]
    assert images_table(list_images(other), repository=f"{local_registry.address}/pinned:v1").rows == []
    wrong = "sha256:" + "0" * 64
    with pytest.raises(ImageNotFound, match="manifest unknown"):
        registry.pull(other, f"{local_registry.address}/pinned@{wrong}")


def test_skopeo_reads_what_push_wrote(local_registry: LocalRegistry, busybox_store: Store) -> None:
    image = with_layer(busybox_store, f"{local_registry.address}/standard:v1", "standard")
    registry.push(busybox_store, f"{local_registry.address}/standard:v1")
    raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                          f"docker://{local_registry.address}/standard:v1"],
                         check=True, capture_output=True).stdout
    assert raw == busybox_store.read_blob(image.manifest_digest)
    info = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false",
                                      f"docker://{local_registry.address}/standard:v1"],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["Layers"] == [layer.digest for layer in image.layers]


def test_pull_of_a_gzipped_docker_schema2_image_pushed_by_skopeo(
        local_registry: LocalRegistry, busybox_store: Store, tmp_path: Path) -> None:
    """What Docker Hub serves: Docker's manifest type and gzip layers. Stored uncompressed, same image ID."""
    image = with_layer(busybox_store, "zipped:v1", "zipped")
    archive = tmp_path / "zipped.tar"
    with open(archive, "wb") as f:
        save(busybox_store, ["zipped:v1"], f, fmt="oci")
    subprocess.run(["skopeo", "copy", "--quiet", "--format", "v2s2", "--dest-compress", "--dest-tls-verify=false",
                    f"oci-archive:{archive}", f"docker://{local_registry.address}/zipped:v1"],
                   check=True, capture_output=True)
    raw = json.loads(subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                                     f"docker://{local_registry.address}/zipped:v1"],
                                    check=True, capture_output=True).stdout)
    assert raw["mediaType"] == oci.DOCKER_MANIFEST
    assert {layer["mediaType"] for layer in raw["layers"]} == {oci.DOCKER_LAYER_GZIP}

    other = Store(tmp_path / "other")
    pulled = registry.pull(other, f"{local_registry.address}/zipped:v1")
    assert pulled.image.id == image.id
    assert [d.digest for d in pulled.image.layers] == image.diff_ids  # kept uncompressed: digest = diff_id
    assert other.check() == []
    # The registry knows it by the digest of its gzip manifest, which is not the manifest kept here: the name
    # with that digest still finds it (no second pull), and RepoDigests gives the registry's digest.
    by_digest = f"{local_registry.address}/zipped@{pulled.digest}"
    assert pulled.digest != pulled.image.manifest_digest
    assert get_image(other, by_digest).id == image.id
    assert inspect(pulled.image)["RepoDigests"] == [by_digest]
    with pytest.raises(ImageNotFound):
        get_image(other, f"{local_registry.address}/elsewhere@{pulled.digest}")  # another repository's
    again = registry.pull(other, by_digest)
    assert not again.updated and again.image.id == image.id


def test_run_and_from_pull_a_missing_image_named_with_a_registry(
        local_registry: LocalRegistry, busybox_store: Store, tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    name = f"{local_registry.address}/auto:v1"
    with_layer(busybox_store, name, "auto")
    registry.push(busybox_store, name)

    other = Store(tmp_path / "other")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {name}\nCMD [\"cat\", \"/greeting\"]\n")
    result = build(other, context, tags=["derived:v1"])
    assert get_image(other, name).id == get_image(busybox_store, name).id
    assert any("Pull complete" in e.get("text", "") for e in result.events)

    third = Store(tmp_path / "third")
    capfd.readouterr()
    out = Client(third.home).containers.run(name, ["cat", "/greeting"], remove=True)
    err = capfd.readouterr().err
    assert out == b"auto\n"
    assert f"Unable to find image '{name}' locally" in err and "Pull complete" in err


def test_cli_pull_and_push_print_dockers_lines(
        local_registry: LocalRegistry, busybox_store: Store, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    name = f"{local_registry.address}/cli:v1"
    assert main(["tag", "busybox", name]) == 0
    assert main(["push", name]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"The push refers to repository [{local_registry.address}/cli]"
    assert out[-1].startswith("v1: digest: sha256:")
    digest = out[-1].split()[2]
    assert main(["images", "--digests", "--format", "{{.Repository}}:{{.Tag}} {{.Digest}}"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert f"{name} {digest}" in rows and "busybox:latest <none>" in rows  # (never pushed or pulled: none)
    assert main(["image", "pull", "-q", name]) == 0
    assert capsys.readouterr().out == f"{name}\n"
    assert main(["pull", f"{local_registry.address}/cli:nope"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "manifest unknown" in err and "cli:nope" in err
    assert main(["push", f"{local_registry.address}/never-tagged:v1"]) == 1
    assert "An image does not exist locally with the tag" in capsys.readouterr().err
    # No tag given: Docker's CLI says which it takes, first
    assert main(["tag", "busybox", f"{local_registry.address}/plain"]) == 0
    assert main(["push", f"{local_registry.address}/plain"]) == 0
    assert capsys.readouterr().out.splitlines()[:2] == [
        "Using default tag: latest", f"The push refers to repository [{local_registry.address}/plain]"]
    assert main(["pull", f"{local_registry.address}/plain"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Using default tag: latest" and out[-1] == f"{local_registry.address}/plain:latest"


def test_push_refuses_a_digest_and_an_unreachable_registry_is_named(busybox_store: Store) -> None:
    with pytest.raises(InvalidArgument, match="push a tag"):
        registry.push(busybox_store, "127.0.0.1:9/x@sha256:" + "a" * 64)
    busybox_store.set_tag("127.0.0.1:9/x:v1", busybox_store.manifest_descriptor(
        get_image(busybox_store, "busybox").manifest_digest))
    with pytest.raises(RegistryError, match=r"cannot reach the registry 127\.0\.0\.1:9: connection refused"):
        registry.push(busybox_store, "127.0.0.1:9/x:v1")
    with pytest.raises(RegistryError, match="connection refused"):
        registry.pull(busybox_store, "127.0.0.1:9/x:v1")


def test_only_this_machine_and_listed_registries_are_spoken_to_without_tls(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.is_insecure("localhost:5000") and registry.is_insecure("127.0.0.1:5000")
    assert registry.is_insecure("[::1]:5000") and not registry.is_insecure("ghcr.io")
    assert not registry.is_insecure("registry.lan:5000")
    monkeypatch.setenv("PYCONTAINERS_INSECURE_REGISTRIES", "registry.lan:5000, other:1")
    assert registry.is_insecure("registry.lan:5000") and not registry.is_insecure("registry.lan:5001")
    assert registry.Registry("docker.io").host == "registry-1.docker.io"
    assert registry.names_a_registry("localhost:5000/app") and not registry.names_a_registry("busybox")
    assert not registry.names_a_registry("docker.io/library/busybox") and not registry.names_a_registry("Bad!")


# ------------------------------------------------------------------------- a registry that misbehaves


class Scripted(BaseHTTPRequestHandler):
    """Answers from ``server.routes``: (method, path) -> (status, headers, body). Records each request."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self) -> None:
        server: Any = self.server
        path = self.path
        server.requests.append((self.command, path, self.headers.get("Authorization")))
        route = server.routes.get((self.command, path.split("?")[0]))
        if callable(route):
            route = route(self)
        status, headers, body = route or (404, {"Content-Type": "application/json"},
                                          b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that gave up on a long body
                self.wfile.write(body)

    do_GET = do_HEAD = _answer


class FakeRegistry:
    def __init__(self) -> None:
        self.server: Any = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
        self.server.routes, self.server.requests = {}, []
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def routes(self) -> dict[tuple[str, str], Any]:
        return self.server.routes

    @property
    def requests(self) -> list[tuple[str, str, str | None]]:
        return self.server.requests

    def serve_image(self, repo: str, tag: str, config: bytes, layers: list[tuple[bytes, str]],
                    media_type: str = oci.MEDIA_MANIFEST) -> bytes:
        """Routes for one image; *layers*: (blob bytes, media type). Returns the manifest's bytes."""
        config_desc = oci.Descriptor(oci.MEDIA_CONFIG, oci.sha256_digest(config), len(config))
        descs = [oci.Descriptor(mt, oci.sha256_digest(blob), len(blob)) for blob, mt in layers]
        manifest = oci.manifest_json(config_desc, descs)
        manifest["mediaType"] = media_type
        data = json.dumps(manifest).encode()
        self.routes[("GET", f"/v2/{repo}/manifests/{tag}")] = (200, {"Content-Type": media_type}, data)
        for blob, desc in [(config, config_desc), *zip((b for b, _ in layers), descs, strict=True)]:
            self.routes[("GET", f"/v2/{repo}/blobs/{desc.digest}")] = (200, {}, blob)
        return data

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry()
    yield reg
    reg.close()


@pytest.fixture
def parts(tmp_path: Path) -> tuple[bytes, bytes, bytes]:
    """busybox with one more layer, made in a store of its own: (config, busybox's layer, the new layer)."""
    source = Store(tmp_path / "source")
    cache = cache_store()
    copy_image(cache, get_image(cache, "busybox"), source)
    image = with_layer(source, "parts:v1", "parts")
    config = source.read_blob(image.manifest["config"]["digest"])
    base, top = (source.blob_path(d.digest).read_bytes() for d in image.layers)
    return config, base, top


@pytest.fixture
def target(tmp_path: Path) -> Store:
    """An empty store to pull into."""
    return Store(tmp_path / "target")


def assert_untouched(store: Store, before: set[str]) -> None:
    assert blobs_of(store) == before and store.entries() == [] and store.check() == []


def pull_fails(store: Store, name: str, match: str, error: type[Exception] = RegistryError) -> None:
    before = blobs_of(store)
    with pytest.raises(error, match=match) as info:
        registry.pull(store, name, timeout=5)
    assert "\n" not in str(info.value)
    assert_untouched(store, before)


def test_a_blob_that_does_not_match_its_digest_is_refused_and_nothing_stays(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], target: Store) -> None:
    config, base, top = parts
    fake.serve_image("app", "v1", config, [(base, oci.MEDIA_LAYER), (top, oci.MEDIA_LAYER)])
    fake.routes[("GET", f"/v2/app/blobs/{oci.sha256_digest(top)}")] = (200, {}, top[:-1] + b"\x01")
    pull_fails(target, f"{fake.address}/app:v1", "does not match its digest .*the registry lies")


def test_a_blob_longer_or_shorter_than_its_descriptor_is_refused(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], target: Store) -> None:
    config, base, top = parts
    fake.serve_image("app", "v1", config, [(base, oci.MEDIA_LAYER), (top, oci.MEDIA_LAYER)])
    route = ("GET", f"/v2/app/blobs/{oci.sha256_digest(top)}")
    fake.routes[route] = (200, {}, top + b"more")
    pull_fails(target, f"{fake.address}/app:v1", f"sends {len(top) + 4} bytes, but its descriptor says {len(top)}")
    # The length header agrees with the descriptor, but the connection closes early.
    fake.routes[route] = (200, {"Content-Length": str(len(top)), "Connection": "close"}, top[:100])
    pull_fails(target, f"{fake.address}/app:v1", f"sent 100 of its {len(top)} bytes")


def test_a_layer_whose_content_is_not_the_configs_diff_id_is_refused(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], target: Store) -> None:
    config, base, _top = parts
    other = io.BytesIO()
    with tarfile.open(fileobj=other, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("greeting"), io.BytesIO(b""))
    fake.serve_image("app", "v1", config, [(base, oci.MEDIA_LAYER), (other.getvalue(), oci.MEDIA_LAYER)])
    pull_fails(target, f"{fake.address}/app:v1", "does not match the diff_id .* its config promises")


def test_an_unsafe_layer_is_refused_by_the_extraction_rules(
        fake: FakeRegistry, target: Store) -> None:
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(tarfile.TarInfo("../../etc/evil"), io.BytesIO(b""))
    layer = evil.getvalue()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [oci.sha256_digest(layer)]}}).encode()
    fake.serve_image("evil", "v1", config, [(layer, oci.MEDIA_LAYER)])
    pull_fails(target, f"{fake.address}/evil:v1", r"\.\./")


def test_a_manifest_that_lies_about_its_digest_or_is_schema1_or_huge(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], target: Store) -> None:
    config, base, top = parts
    data = fake.serve_image("app", "v1", config, [(base, oci.MEDIA_LAYER), (top, oci.MEDIA_LAYER)])
    fake.routes[("GET", "/v2/app/manifests/v1")] = (
        200, {"Content-Type": oci.MEDIA_MANIFEST, "Docker-Content-Digest": "sha256:" + "1" * 64}, data)
    pull_fails(target, f"{fake.address}/app:v1", "the manifest of .* does not match its digest")
    fake.routes[("GET", f"/v2/app/manifests/{oci.sha256_digest(b'x')}")] = (200, {}, data)
    pull_fails(target, f"{fake.address}/app@{oci.sha256_digest(b'x')}", "registry lies")
    fake.routes[("GET", "/v2/old/manifests/v1")] = (200, {}, b'{"schemaVersion": 1, "fsLayers": []}')
    pull_fails(target, f"{fake.address}/old:v1", "schema 1")
    fake.routes[("GET", "/v2/huge/manifests/v1")] = (200, {}, b" " * (registry.MAX_MANIFEST + 1))
    pull_fails(target, f"{fake.address}/huge:v1", "more than the")
    fake.routes[("GET", "/v2/notjson/manifests/v1")] = (200, {}, b"<html>")
    pull_fails(target, f"{fake.address}/notjson:v1", "not valid JSON")


def test_a_config_that_disagrees_with_the_manifest_is_refused(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], target: Store) -> None:
    config, base, _top = parts
    fake.serve_image("app", "v1", config, [(base, oci.MEDIA_LAYER)])
    pull_fails(target, f"{fake.address}/app:v1", "lists 2 layers .* but the manifest has 1")


def test_an_index_is_followed_to_linux_amd64_and_a_missing_platform_is_named(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], target: Store) -> None:
    config, base, top = parts
    data = fake.serve_image("multi", "amd64", config, [(base, oci.MEDIA_LAYER), (top, oci.MEDIA_LAYER)])
    digest = oci.sha256_digest(data)
    fake.routes[("GET", f"/v2/multi/manifests/{digest}")] = (200, {}, data)

    def index(*platforms: tuple[str, str]) -> bytes:
        return json.dumps({"schemaVersion": 2, "mediaType": oci.MEDIA_INDEX, "manifests": [
            {"mediaType": oci.MEDIA_MANIFEST, "digest": digest if arch == "amd64" else oci.sha256_digest(arch.encode()),
             "size": len(data), "platform": {"os": os_, "architecture": arch}} for os_, arch in platforms]}).encode()

    fake.routes[("GET", "/v2/multi/manifests/latest")] = (
        200, {"Content-Type": oci.MEDIA_INDEX}, index(("linux", "arm64"), ("linux", "amd64")))
    pulled = registry.pull(target, f"{fake.address}/multi")
    assert pulled.digest == digest and pulled.image.id == oci.sha256_digest(config)
    fake.routes[("GET", "/v2/multi/manifests/arm")] = (
        200, {"Content-Type": oci.MEDIA_INDEX}, index(("linux", "arm64"), ("windows", "amd64")))
    with pytest.raises(ImageNotFound, match=r"no image for linux/amd64 \(it has: linux/arm64, windows/amd64\)"):
        registry.pull(target, f"{fake.address}/multi:arm")


def test_a_gzip_layer_that_is_not_gzip_and_zstd_layers_are_named(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], target: Store) -> None:
    config, base, top = parts
    fake.serve_image("bad", "v1", config, [(base, oci.MEDIA_LAYER), (top, oci.MEDIA_LAYER_GZIP)])
    pull_fails(target, f"{fake.address}/bad:v1", "is not valid gzip")
    cut = gzip.compress(top)[:-20]
    fake.serve_image("cut", "v1", config, [(base, oci.MEDIA_LAYER), (cut, oci.MEDIA_LAYER_GZIP)])
    pull_fails(target, f"{fake.address}/cut:v1", "ends in the middle of its gzip stream")
    fake.serve_image("zstd", "v1", config, [(base, oci.MEDIA_LAYER), (top, oci.MEDIA_LAYER_ZSTD)])
    pull_fails(target, f"{fake.address}/zstd:v1", "zstd")
    fake.serve_image("odd", "v1", config, [(base, oci.MEDIA_LAYER), (top, "application/x-something")])
    pull_fails(target, f"{fake.address}/odd:v1", "not an image layer")


def test_an_anonymous_token_is_fetched_when_the_registry_asks_and_blobs_may_redirect(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], target: Store) -> None:
    config, base, top = parts
    fake.serve_image("private", "v1", config, [(base, oci.MEDIA_LAYER), (top, oci.MEDIA_LAYER)])
    protected = dict(fake.routes)

    def guard(route: tuple[int, dict[str, str], bytes]) -> Callable[[BaseHTTPRequestHandler], Any]:
        def answer(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
            if handler.headers.get("Authorization") != "Bearer t0k3n":
                challenge = (f'Bearer realm="http://{fake.address}/token",service="fake",'
                             'scope="repository:private:pull"')
                return 401, {"WWW-Authenticate": challenge}, b""
            return route
        return answer

    for key, route in protected.items():
        fake.routes[key] = guard(route)
    # the top layer lives "on a CDN" (another host name): the token must not go there; the base layer is
    # redirected within the registry, which keeps it (as Docker's Go client does)
    port = fake.address.rsplit(":", 1)[1]
    top_path = f"/v2/private/blobs/{oci.sha256_digest(top)}"
    fake.routes[("GET", top_path)] = guard((307, {"Location": f"http://localhost:{port}/cdn/top"}, b""))
    fake.routes[("GET", "/cdn/top")] = (200, {}, top)
    base_path = f"/v2/private/blobs/{oci.sha256_digest(base)}"
    fake.routes[("GET", base_path)] = guard((307, {"Location": "/storage/base"}, b""))
    fake.routes[("GET", "/storage/base")] = guard((200, {}, base))
    fake.routes[("GET", "/token")] = (200, {}, b'{"token": "t0k3n"}')
    pulled = registry.pull(target, f"{fake.address}/private:v1")
    assert pulled.image.id == oci.sha256_digest(config)
    token_requests = [r for r in fake.requests if r[1].startswith("/token")]
    assert token_requests == [("GET", "/token?service=fake&scope=repository%3Aprivate%3Apull", None)]
    assert ("GET", "/cdn/top", None) in fake.requests
    assert ("GET", "/storage/base", "Bearer t0k3n") in fake.requests

    fake.routes[("GET", "/token")] = (403, {}, b"")
    with pytest.raises(RegistryError, match="refused access to repository:private:pull"):
        registry.pull(Store(target.home.parent / "s2"), f"{fake.address}/private:v1")


def test_a_registry_that_wants_a_password_is_named(fake: FakeRegistry, target: Store) -> None:
    fake.routes[("GET", "/v2/app/manifests/v1")] = (401, {"WWW-Authenticate": 'Basic realm="x"'}, b"")
    pull_fails(target, f"{fake.address}/app:v1", "asks for a login")


def test_a_registry_that_stalls_is_given_up_on(fake: FakeRegistry, target: Store) -> None:
    gate = threading.Event()

    def stall(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        gate.wait(10)
        return 500, {}, b""

    fake.routes[("GET", "/v2/slow/manifests/v1")] = stall
    before = blobs_of(target)
    with pytest.raises(RegistryError, match="no answer in time"):
        registry.pull(target, f"{fake.address}/slow:v1", timeout=0.5)
    gate.set()
    assert_untouched(target, before)


def test_a_failed_pull_keeps_the_layers_that_were_there_and_the_old_tag(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], busybox_store: Store) -> None:
    """The base layer is shared with busybox, already in the target: a failed pull must not delete it."""
    config, base, top = parts
    fake.serve_image("app", "v1", config, [(base, oci.MEDIA_LAYER), (top, oci.MEDIA_LAYER)])
    fake.routes[("GET", f"/v2/app/blobs/{oci.sha256_digest(top)}")] = (200, {}, bytes(len(top)))
    images_before = sorted(i.id for i in list_images(busybox_store))
    entries_before = busybox_store.entries()
    before = blobs_of(busybox_store)
    with pytest.raises(RegistryError, match="does not match its digest"):
        registry.pull(busybox_store, f"{fake.address}/app:v1")
    assert blobs_of(busybox_store) == before and busybox_store.entries() == entries_before
    assert sorted(i.id for i in list_images(busybox_store)) == images_before
    assert busybox_store.check() == []


def test_pull_errors_are_pycontainers_errors_with_one_line(fake: FakeRegistry, target: Store) -> None:
    for name in (f"{fake.address}/nothing:v1", f"{fake.address}/Bad:v1"):
        with pytest.raises(PyContainersError) as info:
            registry.pull(target, name)
        assert "\n" not in str(info.value)



def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_registry_serve_runs_until_ctrl_c_and_names_a_busy_port(tmp_path: Path) -> None:
    import signal
    import sys
    import urllib.request

    port = _free_port()
    argv = [sys.executable, "-m", "pycontainers", "registry", "serve", "--port", str(port), "--dir", str(tmp_path)]
    serve = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        assert serve.stdout.readline().startswith(f"A registry is serving at 127.0.0.1:{port}")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=5) as answer:
            assert answer.status == 200
        busy = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert busy.returncode == 1 and busy.stderr.count("\n") == 1 and "Address already in use" in busy.stderr
        serve.send_signal(signal.SIGINT)
        assert serve.wait(10) == 0
    finally:
        serve.kill()
        serve.wait()
    assert not registry_processes(tmp_path)


def registry_processes(root: Path) -> list[int]:
    """docker-registry processes serving from *root* (their command line names its config)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if status != "Z" and str(root / "config.yml").encode() in cmdline:
            found.append(int(entry.name))
    return found


def test_a_registry_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    """A notebook kernel killed or restarted leaves no registry behind (setpriv --pdeathsig)."""
    import sys
    import time

    code = ("import os, sys; from pycontainers.registry import LocalRegistry; "
            "LocalRegistry(sys.argv[1]).start(); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=30)
    deadline = time.monotonic() + 5
    while registry_processes(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not registry_processes(tmp_path)


def test_malformed_documents_and_registry_words_give_one_clean_line(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], target: Store) -> None:
    config, base, top = parts
    data = json.loads(fake.serve_image("app", "v1", config, [(base, oci.MEDIA_LAYER), (top, oci.MEDIA_LAYER)]))
    for change, message in ((lambda m: m.update(layers=5), "layers is not a list"),
                            (lambda m: m["layers"][0].update(digest=5), "must be strings"),
                            (lambda m: m["layers"][0].update(mediaType=["x"]), "must be strings"),
                            (lambda m: m["config"].update(size=1e400), "not a descriptor")):
        doc = json.loads(json.dumps(data))
        change(doc)
        fake.routes[("GET", "/v2/app/manifests/v1")] = (200, {}, json.dumps(doc).encode())
        pull_fails(target, f"{fake.address}/app:v1", message)
    bad_config = json.dumps({"rootfs": "x"}).encode()
    fake.serve_image("cfg", "v1", bad_config, [(base, oci.MEDIA_LAYER)])
    pull_fails(target, f"{fake.address}/cfg:v1", "rootfs is not an object")
    fake.routes[("GET", "/v2/msg/manifests/v1")] = (
        500, {}, b'{"errors":[{"code":"X","message":"line one\\nline two \\u001b[2J"}]}')
    pull_fails(target, f"{fake.address}/msg:v1", "line one line two")
    assert not registry.is_insecure("127.example.com") and not registry.is_insecure("127.attacker.net:443")


def test_a_kept_alive_connection_the_registry_closed_is_opened_again(
        fake: FakeRegistry, parts: tuple[bytes, bytes, bytes], target: Store) -> None:
    config, base, top = parts
    fake.serve_image("app", "v1", config, [(base, oci.MEDIA_LAYER), (top, oci.MEDIA_LAYER)])
    route = ("GET", f"/v2/app/blobs/{oci.sha256_digest(config)}")
    answer = fake.routes[route]

    def then_hang_up(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        """Answer, then close the connection without saying so (as a server whose keep-alive ran out)."""
        handler.close_connection = True
        return answer

    fake.routes[route] = then_hang_up
    pulled = registry.pull(target, f"{fake.address}/app:v1")
    assert pulled.image.id == oci.sha256_digest(config)


def test_an_endless_body_thrown_away_or_a_trickle_does_not_hold_a_pull(fake: FakeRegistry, target: Store) -> None:
    fake.routes[("GET", "/v2/big/manifests/v1")] = (
        401, {"WWW-Authenticate": f'Bearer realm="http://{fake.address}/token"'}, b"x" * (8 << 20))
    fake.routes[("GET", "/token")] = (403, {}, b"")
    pull_fails(target, f"{fake.address}/big:v1", "refused access")

    def trickle(handler: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        handler.send_response(200)
        handler.send_header("Content-Length", "1000")
        handler.end_headers()
        with contextlib.suppress(OSError):
            for _ in range(50):  # a byte each 0.1 s: every read is quick, the whole is not
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.1)
        raise ConnectionAbortedError  # (the fake's own answer is not sent)

    fake.routes[("GET", "/v2/slow/manifests/v1")] = trickle
    started = time.monotonic()
    with pytest.raises(RegistryError, match="too slowly"):
        registry.pull(target, f"{fake.address}/slow:v1", timeout=1)
    assert time.monotonic() - started < 3


def test_a_failed_import_leaves_blobs_another_writer_may_be_using(busybox_store: Store) -> None:
    """A pull that fails must not delete a layer a concurrent pull found "Already exists" and is about to tag."""
    stray = busybox_store.put_bytes(b"written by a pull that then failed", oci.MEDIA_LAYER).digest
    with busybox_store.writing():  # another writer at work
        busybox_store.remove_unreferenced({stray})
    assert busybox_store.has_blob(stray)
    busybox_store.remove_unreferenced({stray})  # alone: the failed import cleans up after itself
    assert not busybox_store.has_blob(stray)


def _trickling_server() -> tuple[socket.socket, int]:
    """A server that answers every request with headers promising a long body, then sends a byte every 0.1 s,
    for ever (a HEAD's answer too: read as the next answer's status line on a kept-alive connection)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n")
            while True:
                conn.sendall(b"x")
                time.sleep(0.1)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener, listener.getsockname()[1]


def test_a_registry_that_trickles_is_given_up_on_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each wait of the socket ends within its timeout, but a byte a second never lets it expire: a whole
    answer (its headers, a body nobody reads) has a deadline of its own."""
    monkeypatch.setattr(registry, "DISCARD_SECONDS", 0.5)
    listener, port = _trickling_server()
    try:
        with registry.Registry(f"localhost:{port}", timeout=1.0) as reg:
            start = time.monotonic()
            resp = reg.request("GET", reg.url("/v2/"), scope="")
            reg.discard(resp)  # a body that would take a day: the connection goes instead
            assert time.monotonic() - start < 3
            reg.discard(reg.request("HEAD", reg.url("/v2/x/blobs/sha256:00"), scope=""))  # (as a push does)
            with pytest.raises(RegistryError, match="no answer in time .GET /v2/ not answered within 1 s"):
                reg.request("GET", reg.url("/v2/"), scope="")  # its status line is the HEAD's trickle
            assert time.monotonic() - start < 6
    finally:
        listener.close()
