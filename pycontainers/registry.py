"""``pull`` and ``push``: the OCI distribution API, which ``docker pull`` and ``docker push`` speak over HTTP.

A registry keeps, per repository (``localhost:5000/hello``), blobs named by digest and manifests named by
tag or digest. Pulling and pushing are a few plain HTTP requests (distribution-spec, "spec.md")::

    GET  /v2/<name>/manifests/<tag|digest>   the manifest, or an index of manifests (one per platform)
    GET  /v2/<name>/blobs/<digest>           the config, or one layer
    HEAD /v2/<name>/blobs/<digest>           does the registry have it already? (push skips those)
    POST /v2/<name>/blobs/uploads/           begin an upload: the answer's Location is where to send it
    PUT  <location>?digest=<digest>          the blob's bytes, in one request
    PUT  /v2/<name>/manifests/<tag>          the manifest last: it names blobs, which must be there first

A registry is untrusted input, like an archive: every manifest and blob is checked against its digest and
size as it arrives, each layer's uncompressed digest against the config's ``diff_ids``, and each layer's
entries by the same rules as extraction. Nothing is tagged until the whole image is in the store; a pull
that fails removes the blobs it added. Layers are kept uncompressed here (see ``oci``), so a pulled image
has the registry's image ID (its config digest) but a manifest of its own.

Registries on this machine (``localhost``, ``127.0.0.1``, ``[::1]``) are spoken to over plain HTTP, as
Docker does by default; every other one over HTTPS, plus any listed in ``PYCONTAINERS_INSECURE_REGISTRIES``
(comma-separated ``host:port``, Docker's ``insecure-registries``). Anonymous token authentication (Docker
Hub, ghcr.io) works; registries that need a login do not yet.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import ipaddress
import json
import os
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

from . import layer as layers
from . import oci
from .errors import APIError, ImageNotFound, InvalidArgument, StoreError
from .image import Image, get_image
from .reference import DEFAULT_DOMAIN, Reference, parse
from .store import Store

# Docker Hub's API lives on another host than the name people type.
HUB_API_HOST = "registry-1.docker.io"
TIMEOUT = 30.0  # seconds a registry may stay silent before the pull or push stops with an error
MAX_MANIFEST = 4 << 20  # as containerd: a manifest or index larger than this is refused unread
MAX_CONFIG = 16 << 20
CHUNK = 1 << 20
PLATFORM = ("linux", "amd64")  # the only platform this engine runs

MANIFEST_TYPES = (oci.MEDIA_MANIFEST, oci.DOCKER_MANIFEST)
INDEX_TYPES = (oci.MEDIA_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json")
LAYER_TYPES = {oci.MEDIA_LAYER: None, oci.DOCKER_LAYER: None,
               oci.MEDIA_LAYER_GZIP: "gzip", oci.DOCKER_LAYER_GZIP: "gzip", oci.MEDIA_LAYER_ZSTD: "zstd"}
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)

Event = dict[str, Any]  # Docker's JSON progress messages: {"status": ..., "id": ..., "progressDetail": ...}


class RegistryError(APIError):
    """The registry could not be reached, refused the request, or sent something that is not what it claims."""

    detail = ""  # the registry's own words (its JSON "errors"), when it gave any


def is_insecure(host: str) -> bool:
    """Plain HTTP for registries on this machine (Docker's default) and those the user lists."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name == "localhost" or _is_loopback(name.strip("[]")):
        return True
    listed = os.environ.get("PYCONTAINERS_INSECURE_REGISTRIES", "")
    return host in {h.strip() for h in listed.split(",") if h.strip()}


def _is_loopback(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback  # 127.example.com is a name, not an address
    except ValueError:
        return False


def _clean(text: object, limit: int = 200) -> str:
    """Words from a registry as one printable line: it may send newlines, terminal escapes, or a book."""
    flat = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def _check_url(url: str, what: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RegistryError(f"{what} is {_clean(url, 80)!r}, which is not an http(s) address")
    return url


# ---------------------------------------------------------------------------------------------- HTTP


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: http.client.HTTPResponse

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def length(self) -> int | None:
        """Content-Length as http.client parsed it: None when absent (chunked) or not a number."""
        return self.body.length if self.body.length is not None and not self.body.chunked else None

    def read_all(self, limit: int, what: str, timeout: float) -> bytes:
        """A small body (manifest, config, token, error), whole, within *limit* bytes and *timeout* seconds
        in all: a registry that trickles one byte at a time does not keep a pull waiting for hours."""
        if self.length is not None and self.length > limit:
            raise RegistryError(f"{what} is {self.length} bytes, more than the {limit} this engine accepts")
        deadline = time.monotonic() + timeout
        data = bytearray()
        try:
            while len(data) <= limit:
                if self.body.length == 0:
                    self.body.read()  # the end: lets http.client finish the response (the connection is reused)
                    break
                chunk = self.body.read1(1 << 16)  # what has arrived, not a fixed amount: a deadline can bite
                if not chunk:
                    break
                data += chunk
                if time.monotonic() > deadline:
                    raise RegistryError(f"{what}: the registry sends it too slowly (not whole after "
                                        f"{timeout:.0f} s)")
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"{what}: the download broke off: {_reason(exc)}") from None
        if len(data) > limit:
            raise RegistryError(f"{what} is larger than the {limit} bytes this engine accepts")
        return bytes(data)


DISCARD_SECONDS = 5.0


class _Watchdog:
    """A deadline for an answer's status line and headers as a whole: the socket's timeout only limits each
    wait, and a server that sends a byte a second (or a body where a HEAD has none, read as the next status
    line) would hold a push for hours. When it fires, the socket is shut down: the read fails at once."""

    def __init__(self, conn: http.client.HTTPConnection, seconds: float) -> None:
        self.conn, self.seconds, self.fired = conn, seconds, False
        self.timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError, AttributeError):
            self.conn.sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]

    def __enter__(self) -> None:
        self.timer = threading.Timer(self.seconds, self._fire)
        self.timer.daemon = True
        self.timer.start()

    def __exit__(self, *_: object) -> None:
        if self.timer is not None:
            self.timer.cancel()


class Registry:
    """One registry, reached over a kept-alive HTTP(S) connection, with Docker's token authentication.

    Connections to other hosts it sends us to (a CDN for blobs, a token server) are kept too, per host,
    and all are closed with the registry.
    """

    def __init__(self, domain: str, *, timeout: float = TIMEOUT) -> None:
        self.domain = domain
        self.host = HUB_API_HOST if domain == DEFAULT_DOMAIN else domain
        self.scheme = "http" if is_insecure(self.host) else "https"
        self.timeout = timeout
        self._conns: dict[tuple[str, str], http.client.HTTPConnection] = {}  # (scheme, host) -> connection
        self._used: set[tuple[str, str]] = set()  # connections that have answered before (may have gone stale)
        self._tokens: dict[str, str] = {}  # scope -> bearer token

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()
        self._used.clear()

    def _drop(self, key: tuple[str, str]) -> None:
        conn = self._conns.pop(key, None)
        self._used.discard(key)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}{path}"

    def request(self, method: str, url: str, *, scope: str, headers: dict[str, str] | None = None,
                body: bytes | Any = None, expect: tuple[int, ...] = (200,), what: str = "") -> Response:
        """Send one request (authenticating once if the registry asks to); the response must be in *expect*."""
        headers = dict(headers or {})
        for attempt in range(2):
            if scope in self._tokens:
                headers["Authorization"] = f"Bearer {self._tokens[scope]}"
            resp = self._send(method, url, headers, body)
            if resp.status == 401 and attempt == 0:
                challenge = resp.header("WWW-Authenticate") or ""
                self.discard(resp)
                self._authenticate(challenge, scope)
                if hasattr(body, "seek"):
                    body.seek(0)
                continue
            break
        if resp.status in expect:
            return resp
        raise self._refusal(resp, method, what or url)

    def discard(self, resp: Response) -> None:
        """Read and drop a body nobody needs, up to 64 KiB within ``DISCARD_SECONDS``; a longer or slower one
        (a registry trickling a byte a second) costs the connection instead, not the push's time."""
        deadline, read = time.monotonic() + DISCARD_SECONDS, 0
        try:
            while read <= 1 << 16 and time.monotonic() < deadline:
                if resp.body.length == 0:
                    resp.body.read()  # the end: lets http.client finish the response (the connection is reused)
                    return
                chunk = resp.body.read1(1 << 16)  # what has arrived: the deadline is checked between pieces
                if not chunk:
                    return
                read += len(chunk)
        except (OSError, http.client.HTTPException):
            pass
        self.close()

    def _connection(self, key: tuple[str, str]) -> http.client.HTTPConnection:
        if key not in self._conns:
            scheme, host = key
            if scheme == "https":
                self._conns[key] = http.client.HTTPSConnection(host, timeout=self.timeout, blocksize=CHUNK,
                                                               context=ssl.create_default_context())
            else:
                self._conns[key] = http.client.HTTPConnection(host, timeout=self.timeout, blocksize=CHUNK)
        return self._conns[key]

    def _send(self, method: str, url: str, headers: dict[str, str], body: Any) -> Response:
        """One request, following redirects of GET and HEAD (at most 4). A kept-alive connection the server
        has meanwhile closed is opened again once, as every HTTP client does."""
        for _redirect in range(5):
            parts = urlsplit(_check_url(url, "an address the registry gave"))
            key = (parts.scheme, parts.netloc)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            for retry in range(2):
                reused = key in self._used
                conn = self._connection(key)
                watchdog = _Watchdog(conn, self.timeout)
                try:
                    conn.request(method, target, body=body, headers=headers)
                    with watchdog:
                        raw = conn.getresponse()
                except (OSError, http.client.HTTPException) as exc:
                    if watchdog.fired:
                        self._drop(key)
                        raise RegistryError(f"cannot reach the registry {parts.netloc}: no answer in time ({method} "
                                            f"{parts.path} not answered within {self.timeout:g} s)") from None
                    if not isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                        self._drop(key)
                        raise RegistryError(f"cannot reach the registry {parts.netloc}: {_reason(exc)}") from None
                    self._drop(key)
                    rewindable = body is None or isinstance(body, bytes) or hasattr(body, "seek")
                    if reused and retry == 0 and rewindable:
                        if hasattr(body, "seek"):
                            body.seek(0)
                        continue
                    raise RegistryError(f"cannot reach the registry {parts.netloc}: {_reason(exc)}") from None
                self._used.add(key)
                break
            resp = Response(raw.status, raw.headers, raw)
            location = resp.header("Location")
            if resp.status not in (301, 302, 303, 307, 308) or method not in ("GET", "HEAD") or not location:
                return resp
            self.discard(resp)
            url = urljoin(url, location)
            if (urlsplit(url).scheme, urlsplit(url).netloc) != (self.scheme, self.host):
                # blobs often live elsewhere (a CDN): the registry's token does not go there
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
        raise RegistryError(f"the registry {self.host} redirects {method} {_clean(target, 80)} more than 4 times")

    def _authenticate(self, challenge: str, scope: str) -> None:
        """Docker's token flow: the 401 names a token server (realm); ask it for an anonymous token."""
        kind, _, params = challenge.partition(" ")
        if kind.lower() != "bearer":
            raise RegistryError(f"the registry {self.host} asks for a login ({_clean(kind, 20) or 'no challenge'}); "
                                "pycontainers can only use registries that allow anonymous access")
        fields = dict(_challenge_fields(params))
        realm = fields.get("realm")
        if not realm:
            raise RegistryError(f"the registry {self.host} asks for a token but names no token server")
        _check_url(realm, f"the token server the registry {self.host} names")
        query = {k: v for k, v in (("service", fields.get("service")), ("scope", scope)) if v}
        resp = self._send("GET", f"{realm}?{urlencode(query)}", {}, None)
        server = urlsplit(realm).netloc
        data = resp.read_all(1 << 20, f"the answer of the token server {server}", self.timeout)
        if resp.status != 200:
            raise RegistryError(f"the token server {server} refused access to {scope} (HTTP {resp.status})")
        try:
            answer = json.loads(data)
            token = answer.get("token") or answer["access_token"]
        except (ValueError, KeyError, AttributeError, TypeError):
            raise RegistryError(f"the token server {server} answered without a token") from None
        if not isinstance(token, str) or not token.isprintable() or not token or any(c.isspace() for c in token):
            raise RegistryError(f"the token server {server} answered with something that is not a token")
        self._tokens[scope] = token

    def _refusal(self, resp: Response, method: str, what: str) -> RegistryError:
        try:
            errors = json.loads(resp.read_all(1 << 16, "the registry's error", self.timeout)).get("errors") or []
            detail = _clean("; ".join(f"{str(e.get('code', '')).lower().replace('_', ' ')}: {e.get('message', '')}"
                                      for e in errors))
        except (ValueError, AttributeError, TypeError, RegistryError):
            detail = ""
        if resp.status in (401, 403):
            text = f"access to {what} denied by {self.host} (HTTP {resp.status})"
        else:
            text = f"{method} {what}: the registry {self.host} answered HTTP {resp.status}"
        self.close()  # whatever is left of that answer is not read: the connection cannot be reused
        error = RegistryError(text + (f" ({detail})" if detail else ""))
        error.status_code = resp.status if 400 <= resp.status < 600 else 500
        error.detail = detail
        return error


def _challenge_fields(params: str) -> Iterator[tuple[str, str]]:
    """``realm="https://auth",service="registry",scope="a,b"``: commas may sit inside the quotes."""
    rest = params.strip()
    while rest:
        key, _, rest = rest.partition("=")
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
        else:
            value, _, rest = rest.partition(",")
        yield key.strip().lower(), value
        rest = rest.lstrip(", ")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.gaierror):
        return "its name does not resolve (no network, or no such host)"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is the registry running, on that port?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "no answer in time"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({_clean(exc.reason or exc)}); a registry without TLS must be listed in " \
               "PYCONTAINERS_INSECURE_REGISTRIES"
    return _clean(exc) or type(exc).__name__


# ------------------------------------------------------------------------------------ verified reads


class VerifiedReader:
    """Reads exactly *size* bytes of a blob from a response, hashing them; ``finish`` checks the digest."""

    def __init__(self, resp: Response, desc: oci.Descriptor, what: str) -> None:
        self.resp, self.desc, self.what = resp, desc, what
        self.hash = hashlib.sha256()
        self.done = 0
        if resp.length is not None and resp.length != desc.size:
            raise RegistryError(f"{what}: the registry sends {resp.length} bytes, but its descriptor says "
                                f"{desc.size}: the registry lies about it")

    def read(self, n: int = CHUNK) -> bytes:
        want = min(n if n > 0 else CHUNK, self.desc.size - self.done)
        if want <= 0:
            return b""
        try:
            data = self.resp.body.read(want)
        except (OSError, http.client.HTTPException) as exc:
            raise RegistryError(f"{self.what}: the download broke off after {self.done} bytes: "
                                f"{_reason(exc)}") from None
        if not data:
            raise RegistryError(f"{self.what}: the registry sent {self.done} of its {self.desc.size} bytes")
        self.hash.update(data)
        self.done += len(data)
        return data

    def finish(self) -> None:
        while self.read():
            pass
        if self.resp.body.read(1):
            raise RegistryError(f"{self.what}: the registry sends more than the {self.desc.size} bytes "
                                "its descriptor says")
        if "sha256:" + self.hash.hexdigest() != self.desc.digest:
            raise RegistryError(f"{self.what} does not match its digest {self.desc.digest}: the registry "
                                "lies about its content")


def _descriptor(obj: Any, what: str) -> oci.Descriptor:
    try:
        desc = oci.Descriptor.from_json(obj)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        raise RegistryError(f"{what} is not a descriptor (mediaType, digest, size)") from None
    if not isinstance(desc.media_type, str) or not isinstance(desc.digest, str):
        raise RegistryError(f"{what} is not a descriptor (its mediaType and digest must be strings)")
    if not oci.is_digest(desc.digest) or desc.size < 0:
        raise RegistryError(f"{what} names {_clean(desc.digest, 80)!r} ({desc.size} bytes): not a sha256 blob")
    return desc


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise RegistryError(f"{what} is not a list")
    return value


def _json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise RegistryError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"{what} is not a JSON object")
    return doc


def progress_line(event: Event) -> str | None:
    """One event as the line ``docker pull`` / ``docker push`` print without a terminal (no progress bars)."""
    if "progressDetail" in event:
        return None
    return f"{event['id']}: {event['status']}" if event.get("id") else event["status"]


# ---------------------------------------------------------------------------------------------- pull


@dataclass
class Pulled:
    """What a pull brought: the image, the registry's manifest digest, and whether anything was new."""

    image: Image
    reference: Reference
    digest: str  # the manifest's digest in the registry (Docker's "Digest:" line and RepoDigests)
    updated: bool


def pull(store: Store, name: str, *, on_event: Callable[[Event], None] | None = None,
         timeout: float = TIMEOUT) -> Pulled:
    """``docker pull NAME[:TAG|@DIGEST]``: fetch and verify an image, then tag it (untagged when by digest)."""
    ref = parse(name)
    emit = on_event or (lambda event: None)
    repo = ref.path
    scope = f"repository:{repo}:pull"
    with Registry(ref.domain, timeout=timeout) as reg:
        emit({"status": f"Pulling from {ref.path}", "id": ref.digest or ref.tag})
        manifest_bytes, manifest_digest = _fetch_manifest(reg, ref, scope)
        manifest = _json(manifest_bytes, f"the manifest of {ref.familiar}")
        config_desc = _descriptor(manifest.get("config"), "the manifest's config")
        layer_descs = [_descriptor(d, f"layer {i} of the manifest")
                       for i, d in enumerate(_list(manifest.get("layers", []), "the manifest's layers"))]
        config_bytes = _fetch_small_blob(reg, repo, config_desc, scope, MAX_CONFIG, "the image config")
        config = _json(config_bytes, "the image config")
        rootfs = config.get("rootfs") or {}
        if not isinstance(rootfs, dict):
            raise RegistryError("the image config's rootfs is not an object")
        diff_ids = _list(rootfs.get("diff_ids", []), "the image config's rootfs.diff_ids")
        if not all(isinstance(d, str) and oci.is_digest(d) for d in diff_ids):
            raise RegistryError("the image config's rootfs.diff_ids are not all sha256 digests")
        if len(diff_ids) != len(layer_descs):
            raise RegistryError(f"the image config lists {len(diff_ids)} layers (diff_ids) but the manifest has "
                                f"{len(layer_descs)}")
        before_id = _current_image_id(store, ref)
        written: set[str] = set()
        before = {p.name for p in store.blobs.iterdir()}
        try:
            with store.writing():
                descs = _fetch_layers(reg, store, repo, scope, layer_descs, diff_ids, written, emit)
                written.add(oci.sha256_digest(config_bytes))
                config_out = store.put_bytes(config_bytes, oci.MEDIA_CONFIG)
                manifest_json = oci.manifest_json(config_out, descs)
                written.add(oci.sha256_digest(oci.canonical_json(manifest_json)))
                manifest_out = store.put_json(manifest_json, oci.MEDIA_MANIFEST)
                if ref.tag is not None:
                    store.set_tag(str(ref.with_tag(ref.tag)), manifest_out)
                else:
                    store.add_untagged(manifest_out)
                store.add_repo_digest(f"{ref.name}@{manifest_digest}", manifest_out.digest)
        except BaseException as exc:
            store.remove_unreferenced({d for d in written if d.split(":", 1)[1] not in before})
            if isinstance(exc, OSError):  # the store's disk, not the network (those are RegistryErrors)
                raise StoreError(f"cannot write to the store {store.home}: {exc.strerror or exc}") from None
            raise
    image = get_image(store, manifest_out.digest.removeprefix("sha256:"))
    updated = before_id != image.id
    emit({"status": f"Digest: {manifest_digest}"})
    emit({"status": f"Status: {'Downloaded newer image' if updated else 'Image is up to date'} for {ref.familiar}"})
    return Pulled(image, ref, manifest_digest, updated)


def names_a_registry(name: str) -> bool:
    """True for a name with a registry of its own (``localhost:5000/app``), which ``run`` and ``FROM`` pull
    when the image is missing. Plain names mean Docker Hub, which the course's machines cannot reach: those
    stay an error that says how to make the image here (``pycontainers pull`` still tries the Hub)."""
    try:
        return parse(name).domain != DEFAULT_DOMAIN
    except ValueError:
        return False


def instead_of_image(name: str) -> str | None:
    """What to run instead of Docker Hub's ``registry`` image (``docker run -d -p 5000:5000 registry:2``, as
    Docker's guides start a local registry): here the registry is a command of its own."""
    try:
        wanted = parse(name).familiar_name == "registry"
    except ValueError:
        return None
    return "a registry runs as: pycontainers registry serve (port 5000)" if wanted else None


def line_printer(file: Any = None) -> Callable[[Event], None]:
    """An ``on_event`` that prints each event's line as it happens (to *file*, else the current stdout)."""

    def show(event: Event) -> None:
        line = progress_line(event)
        if line is not None:
            print(line, file=file, flush=True)

    return show


def say_missing_locally(name: str) -> None:
    """Docker's first words when ``run`` does not find its image here, on stderr: before it pulls, or says why
    it cannot (a Docker Hub name, out of the course machines' reach)."""
    import sys

    print(f"Unable to find image '{parse(name).familiar}' locally", file=sys.stderr, flush=True)


def pull_missing(store: Store, name: str) -> Image:
    """``docker run``'s pull of a missing image: Docker's words on stderr, the image returned."""
    import sys

    say_missing_locally(name)
    return pull(store, name, on_event=line_printer(sys.stderr)).image


def _current_image_id(store: Store, ref: Reference) -> str | None:
    try:
        return get_image(store, str(ref)).id
    except (ImageNotFound, StoreError):
        return None


def _fetch_manifest(reg: Registry, ref: Reference, scope: str) -> tuple[bytes, str]:
    """The image's manifest for linux/amd64 (through an index if the registry has one), verified."""
    wanted = ref.digest or ref.tag or "latest"
    for hop in range(2):  # an index points at a manifest; an index of indexes is refused
        try:
            resp = reg.request("GET", reg.url(f"/v2/{ref.path}/manifests/{wanted}"), scope=scope,
                               headers={"Accept": ACCEPT}, what=f"the manifest of {ref.familiar}")
        except RegistryError as exc:
            if exc.status_code == 404:
                raise ImageNotFound(f"manifest for {ref.familiar} not found: {exc.detail or 'HTTP 404'} (the "
                                    f"registry {reg.host} has no such {'image' if oci.is_digest(wanted) else 'tag'})"
                                    ) from None
            raise
        data = resp.read_all(MAX_MANIFEST, f"the manifest of {ref.familiar}", reg.timeout)
        digest = oci.sha256_digest(data)
        claimed = resp.header("Docker-Content-Digest")
        if oci.is_digest(wanted) and digest != wanted or claimed and claimed != digest:
            raise RegistryError(f"the manifest of {ref.familiar} does not match its digest "
                                f"{wanted if oci.is_digest(wanted) else _clean(claimed, 80)}: the registry lies "
                                "about it")
        doc = _json(data, f"the manifest of {ref.familiar}")
        media_type = doc.get("mediaType") or resp.header("Content-Type") or ""
        if "manifests" in doc and (media_type in INDEX_TYPES or "layers" not in doc):
            if hop:
                break
            wanted = _platform_entry(doc, ref)
            continue
        if doc.get("schemaVersion") == 1 or "fsLayers" in doc:
            raise RegistryError(f"{ref.familiar} has a schema 1 manifest, which Docker no longer pulls either")
        if media_type not in MANIFEST_TYPES and "config" not in doc:
            raise RegistryError(f"the manifest of {ref.familiar} has media type {_clean(media_type, 80)!r}, "
                                "not an image's")
        return data, digest
    raise RegistryError(f"{ref.familiar}: an index that points at another index, which is not supported")


def _platform_entry(index: dict[str, Any], ref: Reference) -> str:
    entries = _list(index.get("manifests"), "the image index's manifests")
    platforms = []
    for entry in entries:
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if not isinstance(platform, dict):
            raise RegistryError("an entry of the image index has no platform object")
        if (platform.get("os"), platform.get("architecture")) == PLATFORM:
            return _descriptor(entry, "an entry of the image index").digest
        platforms.append(_clean(f"{platform.get('os')}/{platform.get('architecture')}", 40))
    have = ", ".join(sorted(set(platforms))[:10]) or "none"
    raise ImageNotFound(f"{ref.familiar} has no image for {'/'.join(PLATFORM)} (it has: {have})")


def _fetch_small_blob(reg: Registry, repo: str, desc: oci.Descriptor, scope: str, limit: int, what: str) -> bytes:
    if desc.size > limit:
        raise RegistryError(f"{what} is {desc.size} bytes, more than the {limit} this engine accepts")
    resp = reg.request("GET", reg.url(f"/v2/{repo}/blobs/{desc.digest}"), scope=scope, what=what)
    reader = VerifiedReader(resp, desc, what)
    data = b"".join(iter(reader.read, b""))
    reader.finish()
    return data


def _fetch_layers(reg: Registry, store: Store, repo: str, scope: str, descs: list[oci.Descriptor],
                  diff_ids: list[str], written: set[str], emit: Callable[[Event], None]) -> list[oci.Descriptor]:
    """Each layer not already in the store (by its diff_id), streamed in, verified and checked."""
    out = []
    symlinks: set[str] = set()
    for desc, diff_id in zip(descs, diff_ids, strict=True):
        short = oci.short_id(desc.digest)
        what = f"layer {desc.digest}"
        if desc.media_type not in LAYER_TYPES:
            raise RegistryError(f"{what} has media type {_clean(desc.media_type, 80)!r}, which is not an image "
                                "layer")
        if store.has_blob(diff_id):
            emit({"status": "Already exists", "id": short})
            out.append(oci.Descriptor(oci.MEDIA_LAYER, diff_id, store.blob_path(diff_id).stat().st_size))
        else:
            emit({"status": "Pulling fs layer", "id": short})
            out.append(_fetch_layer(reg, store, repo, scope, desc, diff_id, what, emit))
            written.add(diff_id)
        try:
            with store.open_blob(diff_id) as blob:
                symlinks = layers.check_layer(blob, what, lower_symlinks=symlinks)
        except layers.LayerError as exc:
            raise RegistryError(str(exc)) from None
        if diff_id in written:
            emit({"status": "Pull complete", "id": short})
    return out


def _fetch_layer(reg: Registry, store: Store, repo: str, scope: str, desc: oci.Descriptor, diff_id: str,
                 what: str, emit: Callable[[Event], None]) -> oci.Descriptor:
    """Download one layer into the store, uncompressing on the way: one pass, no temporary copy."""
    compression = LAYER_TYPES[desc.media_type]
    if compression == "zstd":
        raise RegistryError(f"{what} is zstd-compressed, which pycontainers cannot read yet (gzip or none)")
    resp = reg.request("GET", reg.url(f"/v2/{repo}/blobs/{desc.digest}"), scope=scope, what=what)
    reader = VerifiedReader(resp, desc, what)
    writer = store.blob_writer(oci.MEDIA_LAYER)
    inflate = zlib.decompressobj(wbits=31) if compression == "gzip" else None
    reported = 0
    try:
        while chunk := reader.read():
            if inflate is not None:
                try:
                    chunk = inflate.decompress(chunk)
                except zlib.error as exc:
                    raise RegistryError(f"{what} is not valid gzip: {exc}") from None
            writer.write(chunk)
            if reader.done - reported >= 4 * CHUNK or reader.done == desc.size:
                reported = reader.done
                emit({"status": "Downloading", "id": oci.short_id(desc.digest),
                      "progressDetail": {"current": reader.done, "total": desc.size}})
        reader.finish()
        if inflate is not None and not inflate.eof:
            raise RegistryError(f"{what} ends in the middle of its gzip stream")
    except BaseException:
        writer.abort()
        raise
    try:
        return writer.commit(expected=diff_id)
    except StoreError:
        raise RegistryError(f"{what}: its uncompressed content does not match the diff_id {diff_id} its "
                            "config promises: the registry lies about it") from None


# ---------------------------------------------------------------------------------------------- push


def push(store: Store, name: str, *, on_event: Callable[[Event], None] | None = None,
         timeout: float = TIMEOUT) -> str:
    """``docker push NAME[:TAG]``: upload the layers and config the registry lacks, then the manifest.

    Returns the manifest's digest. The image must carry that very name (``pycontainers tag`` it first), as
    with Docker: the name says which registry and repository the image goes to.
    """
    ref = parse(name)
    if ref.digest is not None:
        raise InvalidArgument(f"push {name}: push a tag, not a digest (the registry computes the digest)")
    emit = on_event or (lambda event: None)
    try:
        image = get_image(store, str(ref))
    except ImageNotFound:
        raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar_name}"
                            f"{':' + ref.tag if ref.tag != 'latest' else ''} (pycontainers tag SOURCE "
                            f"{ref.familiar} names one)") from None
    repo, scope = ref.path, f"repository:{ref.path}:pull,push"
    manifest_bytes = store.read_blob(image.manifest_digest)
    emit({"status": f"The push refers to repository [{ref.name}]"})
    with Registry(ref.domain, timeout=timeout) as reg:
        layers_top_first = list(reversed(image.layers))
        for desc in layers_top_first:
            emit({"status": "Preparing", "id": oci.short_id(desc.digest)})
        for desc in layers_top_first:
            pushed = _push_blob(reg, store, repo, scope, desc)
            emit({"status": "Pushed" if pushed else "Layer already exists", "id": oci.short_id(desc.digest)})
        config = image.manifest["config"]
        _push_blob(reg, store, repo, scope, oci.Descriptor.from_json(config))
        media_type = json.loads(manifest_bytes).get("mediaType", oci.MEDIA_MANIFEST)
        resp = reg.request("PUT", reg.url(f"/v2/{repo}/manifests/{ref.tag}"), scope=scope,
                           headers={"Content-Type": media_type}, body=manifest_bytes, expect=(201,),
                           what=f"the manifest of {ref.familiar}")
        reg.discard(resp)
        digest = oci.sha256_digest(manifest_bytes)
        claimed = resp.header("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise RegistryError(f"the registry stored the manifest of {ref.familiar} as {_clean(claimed, 80)}, not as "
                                f"{digest}: it changed what was sent")
    store.add_repo_digest(f"{ref.name}@{digest}", image.manifest_digest)
    emit({"status": f"{ref.tag}: digest: {digest} size: {len(manifest_bytes)}"})
    return digest


def _push_blob(reg: Registry, store: Store, repo: str, scope: str, desc: oci.Descriptor) -> bool:
    """Upload one blob unless the registry has it (HEAD); return whether it was sent. Monolithic upload."""
    what = f"blob {desc.digest}"
    head = reg.request("HEAD", reg.url(f"/v2/{repo}/blobs/{desc.digest}"), scope=scope, expect=(200, 404),
                       what=what)
    reg.discard(head)
    if head.status == 200:
        return False
    start = reg.request("POST", reg.url(f"/v2/{repo}/blobs/uploads/"), scope=scope, body=b"",
                        expect=(202,), what=f"an upload of {what}")
    reg.discard(start)
    location = start.header("Location")
    if not location:
        raise RegistryError(f"the registry {reg.host} began an upload of {what} but gave no Location for it")
    url = _check_url(urljoin(reg.url(f"/v2/{repo}/blobs/uploads/"), location), f"the upload address of {what}")
    url += ("&" if urlsplit(url).query else "?") + urlencode({"digest": desc.digest})
    with store.open_blob(desc.digest) as f:
        resp = reg.request("PUT", url, scope=scope, body=f, expect=(201,), what=what,
                           headers={"Content-Type": "application/octet-stream",
                                    "Content-Length": str(desc.size)})
    reg.discard(resp)
    return True


# ------------------------------------------------------------------------------ a registry on this machine

REGISTRY_PROGRAM = "docker-registry"  # Docker's own registry (distribution), as Debian packages it


class LocalRegistry:
    """Docker's registry (distribution) on a loopback port, storing under *root*: the course's Docker Hub.

    ``with LocalRegistry(root) as reg: push(store, f"{reg.address}/hello:v1")``. It is an ordinary child
    process of ours, in a session of its own, stopped on exit (and its port is only reachable from here).
    """

    def __init__(self, root: str | os.PathLike[str], port: int = 0) -> None:
        self.root = os.fspath(root)
        self.port = port
        self.process: Any = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> LocalRegistry:
        import shutil
        import subprocess

        program = shutil.which(REGISTRY_PROGRAM)
        if program is None:
            raise RegistryError(f"{REGISTRY_PROGRAM} is not installed (./setup.sh installs it; Debian: "
                                "apt install docker-registry)")
        os.makedirs(os.path.join(self.root, "data"), exist_ok=True)
        with socket.socket() as s:  # the port must be free (port 0: the kernel picks a free one)
            try:
                s.bind(("127.0.0.1", self.port))
            except OSError as exc:
                raise RegistryError(f"cannot serve a registry at {self.address}: {exc.strerror} (another "
                                    "registry? choose another port)") from None
            self.port = s.getsockname()[1]
        config = os.path.join(self.root, "config.yml")
        with open(config, "w") as f:
            json.dump({"version": 0.1, "log": {"level": "error", "accesslog": {"disabled": True}},
                       "storage": {"filesystem": {"rootdirectory": os.path.join(self.root, "data")},
                                   "delete": {"enabled": True}},
                       "http": {"addr": self.address}}, f)  # YAML is a superset of JSON
        log = open(os.path.join(self.root, "registry.log"), "ab")  # noqa: SIM115 (the child keeps it)
        with log:
            # setpriv --pdeathsig: the registry ends with the process that started it (a notebook kernel
            # that is restarted or killed leaves no registry behind), without running Python in the child.
            # The kernel delivers that signal when the *thread* that forked exits, so only the main thread
            # (where notebook cells and the CLI run) asks for it; others must stop() the registry themselves.
            import threading

            setpriv = shutil.which("setpriv")
            argv = [program, "serve", config]
            if setpriv and threading.current_thread() is threading.main_thread():
                argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True)
        try:
            self._wait_until_listening(timeout)
        except BaseException:  # also a Ctrl-C while waiting: no registry is left running
            self.stop()
            raise
        return self

    def _wait_until_listening(self, timeout: float) -> None:
        log = os.path.join(self.root, "registry.log")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RegistryError(f"{REGISTRY_PROGRAM} exited with status {self.process.returncode} at start "
                                    f"(its log: {log})")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                # Someone listens; that it is our registry shows in its still running a moment later (one
                # that lost the port to another exits at once, "address already in use").
                time.sleep(0.05)
                if self.process.poll() is None:
                    return
                continue
            time.sleep(0.02)
        raise RegistryError(f"{REGISTRY_PROGRAM} did not listen on {self.address} within {timeout:.0f} s")

    def stop(self) -> None:
        import subprocess

        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


__all__ = ["RegistryError", "Registry", "Pulled", "pull", "push", "is_insecure", "LocalRegistry", "progress_line"]
