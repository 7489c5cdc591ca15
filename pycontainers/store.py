"""The image store: an OCI image layout on disk (image-spec ``image-layout.md``).

::

    $PYCONTAINERS_HOME/              (default ~/.local/share/pycontainers)
        oci/                         an OCI image layout, readable by skopeo and umoci as it is
            oci-layout               {"imageLayoutVersion": "1.0.0"}
            index.json               one manifest descriptor per tag (annotation ...ref.name)
            blobs/sha256/<hex>       manifests, configs and layers, named by their digest
        tmp/                         blobs being written (same file system, so rename is atomic)
        lock, gc.lock                flock(2) files serialising writers
        repodigests.json             {"<registry>/<repository>@<digest>": "<manifest digest here>", ...}:
                                     the digest a registry knows an image by (pulled gzip layers are
                                     kept uncompressed, so the manifest here is another one)

Every write goes to a temporary file, is fsync'ed, then renamed over its final name, so a writer killed
at any instant leaves either the old state or the new one. Blobs are verified against their digest as
they are written; index.json changes happen under an exclusive lock, so two processes tagging at once
both succeed. Writers hold ``gc.lock`` shared while they add blobs not yet referenced by index.json;
garbage collection takes it exclusively, so it never deletes a blob that is about to be tagged.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import mmap
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import oci
from .errors import StoreError

TYPE_CHECKING = False  # typing's, without importing typing (~4 ms at start-up)
if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor
    from typing import Any, BinaryIO

HOME_ENV = "PYCONTAINERS_HOME"
BUILD_CACHE_FILE = "buildcache.json"  # written by build.py; its "manifests" are gc roots


def default_home() -> Path:
    """``$PYCONTAINERS_HOME``, else ``$XDG_DATA_HOME/pycontainers``, else ``~/.local/share/pycontainers``."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data) / "pycontainers"


def describe_home(home: Path | None = None) -> str:
    """Where the store is and why: ``~/.local/share/pycontainers``, or the path and ``(from $PYCONTAINERS_HOME)``."""
    home = home or default_home()
    if os.environ.get(HOME_ENV):
        return f"{home} (from ${HOME_ENV})"
    return tilde(str(home))


def tilde(path: str) -> str:
    """*path* as a shell prompt shows it, the user's home directory as ``~``: the same on every machine where
    the rest is (a notebook's saved output should not name this machine's /root or /home/jovyan)."""
    home = os.path.expanduser("~").rstrip("/")
    return "~" + path[len(home):] if home and (path == home or path.startswith(home + "/")) else path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, tmp_dir: Path | None = None, durable: bool = True) -> None:
    """Replace *path* with *data* all at once: temp file, fsync, rename, fsync the directory.

    *durable* False skips the fsyncs: readers still never see a half-written file, but a power cut may
    lose the change. Right for state that describes processes, which a power cut ends anyway (runc's
    state.json is written the same way).
    """
    fd, tmp = tempfile.mkstemp(dir=tmp_dir or path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def owned_prefix(kind: str) -> str:
    """The prefix of a temporary file or directory in the store's tmp/: ``<kind>-<PID>.<start time>-`` says whose
    it is, so that gc removes what a process killed outright (no ``finally`` ran) left, as soon as that process
    is gone, rather than an hour later (``Store.gc``)."""
    from .container import process_start_time  # (container imports this module)

    return f"{kind}-{os.getpid()}.{process_start_time(os.getpid())}-"


_OWNED = re.compile(r"[a-z]+-(\d+)\.(\d+)-")


def _owner_gone(name: str) -> bool | None:
    """Has the process whose temporary file *name* is (``owned_prefix``) ended? None: the name does not say."""
    from .container import pid_alive

    owner = _OWNED.match(name)
    return None if owner is None else not pid_alive(int(owner[1]), int(owner[2]))


class BlobWriter:
    """A file-like object that hashes what is written and becomes a blob on ``commit``.

    Large blobs (layers) are where the time goes, so data is gathered in page-aligned 4 MiB buffers:
    the caller's thread hashes one buffer while a second thread writes the previous one with
    ``O_DIRECT`` (no page-cache copy; on this kind of machine buffered writes are several times slower
    than the disk). File systems without ``O_DIRECT`` (tmpfs) get ordinary writes.
    """

    BUFFER = 4 << 20
    ALIGN = 4096

    def __init__(self, store: Store, media_type: str) -> None:
        self.store = store
        self.media_type = media_type
        fd, self.tmp = tempfile.mkstemp(dir=store.tmp_dir, prefix=owned_prefix("blob"))
        self.fd = fd
        self.hash = hashlib.sha256()
        self.size = 0
        self.closed = False
        self._buffers = [mmap.mmap(-1, self.BUFFER), mmap.mmap(-1, self.BUFFER)]
        self._current = 0
        self._fill = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future[None] | None = None
        self._direct = False

    def _start_direct_io(self) -> None:
        """Reopen the temp file with O_DIRECT once a blob turns out to be large."""
        try:
            direct = os.open(self.tmp, os.O_WRONLY | getattr(os, "O_DIRECT", 0))
        except OSError:
            direct = -1
        if direct >= 0:
            os.close(self.fd)
            self.fd, self._direct = direct, True
        from concurrent.futures import ThreadPoolExecutor  # only for large blobs: the CLI starts faster

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-writer")

    def _write_all(self, view: memoryview | mmap.mmap, length: int) -> None:
        done = 0
        while done < length:
            done += os.write(self.fd, memoryview(view)[done:length])

    def _flush_buffer(self) -> None:
        buf = self._buffers[self._current]
        if self._pool is None:
            self._start_direct_io()
        self.hash.update(memoryview(buf)[: self._fill])
        if self._pending is not None:
            self._pending.result()  # the other buffer must be on disk before it is reused
        assert self._pool is not None
        self._pending = self._pool.submit(self._write_all, buf, self._fill)
        self._current ^= 1
        self._fill = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data).cast("B")
        n = len(view)
        pos = 0
        while pos < n:
            take = min(n - pos, self.BUFFER - self._fill)
            self._buffers[self._current][self._fill:self._fill + take] = view[pos:pos + take]
            self._fill += take
            pos += take
            if self._fill == self.BUFFER:
                self._flush_buffer()
        self.size += n
        return n

    def _finish(self) -> None:
        """Hash and write what is left, wait for the writer thread, make the bytes durable."""
        if self._pending is not None:
            self._pending.result()
        tail = self._fill
        buf = self._buffers[self._current]
        self.hash.update(memoryview(buf)[:tail])
        if self._direct and tail:
            padded = -(-tail // self.ALIGN) * self.ALIGN  # O_DIRECT writes whole aligned blocks
            buf[tail:padded] = bytes(padded - tail)
            self._write_all(buf, padded)
            os.ftruncate(self.fd, self.size)
        else:
            self._write_all(buf, tail)
        os.fsync(self.fd)

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        os.close(self.fd)
        for b in self._buffers:
            b.close()

    def commit(self, expected: str | None = None) -> oci.Descriptor:
        try:
            self._finish()
        except BaseException:
            self.abort()  # a full disk or a Ctrl-C while the last bytes go out: no temporary file stays
            raise
        self._close()
        digest = "sha256:" + self.hash.hexdigest()
        if expected is not None and expected != digest:
            self.abort()
            raise StoreError(f"content does not match its digest: expected {expected}, got {digest}")
        final = self.store.blob_path(digest)
        os.chmod(self.tmp, 0o444)
        os.replace(self.tmp, final)  # an existing equal blob is replaced by identical bytes: harmless
        fsync_dir(final.parent)
        return oci.Descriptor(self.media_type, digest, self.size)

    def abort(self) -> None:
        if self._pending is not None:
            with contextlib.suppress(Exception):
                self._pending.result()
        self._close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


@dataclass(frozen=True)
class IndexEntry:
    """One line of index.json: a manifest, and the reference it is tagged with (None: untagged)."""

    ref: str | None
    manifest: oci.Descriptor


class Store:
    """A content-addressed OCI image layout plus the locks that keep it consistent."""

    def __init__(self, home: str | os.PathLike[str] | None = None, create: bool = True) -> None:
        """*create*: make the layout where it is missing. A container's monitor and PID 1 pass False:
        the store they were started from exists, and checking costs them a few system calls each."""
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.layout = self.home / "oci"
        self.blobs = self.layout / "blobs" / "sha256"
        self.tmp_dir = self.home / "tmp"
        if create:
            self._ensure()

    def __repr__(self) -> str:
        return f"Store({str(self.home)!r})"

    def _ensure(self) -> None:
        for d in (self.blobs, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        layout_file = self.layout / "oci-layout"
        if not layout_file.exists():
            atomic_write(layout_file, oci.canonical_json({"imageLayoutVersion": oci.OCI_LAYOUT_VERSION}),
                         self.tmp_dir)
        if not (self.layout / "index.json").exists():
            with self.lock():
                if not (self.layout / "index.json").exists():
                    if any(self.blobs.iterdir()):  # damaged, not new: an empty index would let gc delete them all
                        raise StoreError(f"{self.layout / 'index.json'} is missing, yet the store holds blobs: it "
                                         "is damaged, not new (put index.json back, or move "
                                         f"{self.home} away to start an empty store)")
                    self._write_index([])

    # ------------------------------------------------------------------------------------------ locks

    @contextlib.contextmanager
    def _flock(self, name: str, mode: int) -> Iterator[None]:
        fd = os.open(self.home / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock, also when the process dies

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock for changing index.json (short: held for a read-modify-write)."""
        return self._flock("lock", fcntl.LOCK_EX)

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Shared lock held while adding blobs that nothing references yet (keeps ``gc`` away)."""
        return self._flock("gc.lock", fcntl.LOCK_SH)

    @contextlib.contextmanager
    def _collecting(self) -> Iterator[None]:
        """``gc.lock`` exclusively: no writer at work. Waiting for one (a build lasts minutes) is said once."""
        fd = os.open(self.home / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print("waiting for a build, pull or load in progress to finish writing to the store...",
                      file=sys.stderr, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # ------------------------------------------------------------------------------------------ blobs

    def blob_path(self, digest: str) -> Path:
        if not oci.is_digest(digest):
            raise StoreError(f"{digest!r} is not a sha256 digest")
        return self.blobs / digest.split(":", 1)[1]

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).exists()

    def blob_writer(self, media_type: str) -> BlobWriter:
        return BlobWriter(self, media_type)

    def put_bytes(self, data: bytes, media_type: str, expected: str | None = None) -> oci.Descriptor:
        digest = oci.sha256_digest(data)
        if expected is not None and expected != digest:
            raise StoreError(f"content does not match its digest: expected {expected}, got {digest}")
        if self.has_blob(digest):
            return oci.Descriptor(media_type, digest, len(data))
        writer = self.blob_writer(media_type)
        try:
            writer.write(data)
        except BaseException:
            writer.abort()
            raise
        return writer.commit()

    def put_json(self, obj: Any, media_type: str) -> oci.Descriptor:
        return self.put_bytes(oci.canonical_json(obj), media_type)

    def put_stream(self, src: BinaryIO, media_type: str, expected: str | None = None) -> oci.Descriptor:
        """Copy *src* into a blob, verifying it against *expected* (untrusted input) before it lands."""
        writer = self.blob_writer(media_type)
        try:
            while chunk := src.read(1 << 20):
                writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.commit(expected)

    def read_blob(self, digest: str) -> bytes:
        """Read a (small) blob and verify it: manifests and configs are always checked on read."""
        try:
            data = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store {self.layout}") from None
        if oci.sha256_digest(data) != digest:
            raise StoreError(f"blob {digest} in {self.layout} is corrupt (its content has another digest)")
        return data

    def read_json(self, digest: str) -> Any:
        return json.loads(self.read_blob(digest))

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store {self.layout}") from None

    def verify_blob(self, digest: str) -> bool:
        h = hashlib.sha256()
        with self.open_blob(digest) as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return "sha256:" + h.hexdigest() == digest

    # ------------------------------------------------------------------------------------------ index

    def entries(self) -> list[IndexEntry]:
        """The manifests index.json lists, each with its tag (``None`` for an untagged image)."""
        try:
            index = json.loads((self.layout / "index.json").read_bytes())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.layout / 'index.json'} cannot be read: {exc}") from None
        out = []
        try:
            if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
                raise ValueError("not an object with a list of manifests")
            for m in index.get("manifests", []):
                desc = oci.Descriptor.from_json(m)
                if not oci.is_digest(desc.digest):
                    raise ValueError(f"{desc.digest!r} is not a sha256 digest")
                out.append(IndexEntry(desc.annotations.get(oci.ANNOTATION_REF_NAME), desc))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:  # valid JSON, not an OCI index
            what = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise StoreError(f"{self.layout / 'index.json'} is not an OCI image index ({what})") from None
        return out

    def _write_index(self, entries: list[IndexEntry]) -> None:
        manifests = []
        for e in entries:
            annotations = {}
            if e.ref is not None:
                annotations = {oci.ANNOTATION_REF_NAME: e.ref, oci.ANNOTATION_IMAGE_NAME: e.ref}
            desc = oci.Descriptor(e.manifest.media_type, e.manifest.digest, e.manifest.size, annotations)
            manifests.append(desc.to_json())
        index = {"schemaVersion": 2, "mediaType": oci.MEDIA_INDEX, "manifests": manifests}
        atomic_write(self.layout / "index.json", json.dumps(index, indent=2).encode() + b"\n", self.tmp_dir)

    def set_tag(self, ref: str, manifest: oci.Descriptor) -> str | None:
        """Point *ref* at *manifest*; return the manifest digest it pointed at before, if any.

        Like Docker, an image that loses its last tag this way stays in the store, untagged
        (``<none>``), until ``image prune`` removes it.
        """
        with self.lock():
            entries = self.entries()
            old = next((e.manifest.digest for e in entries if e.ref == ref), None)
            entries = [e for e in entries if e.ref != ref and not (e.ref is None and e.manifest == manifest)]
            entries.append(IndexEntry(ref, manifest))
            if old and old != manifest.digest and not any(e.manifest.digest == old for e in entries):
                previous = self.manifest_descriptor(old)
                entries.append(IndexEntry(None, previous))
            entries.sort(key=lambda e: (e.ref is None, e.ref or "", e.manifest.digest))
            self._write_index(entries)
            return old

    # ----------------------------------------------------------------------------- repository digests

    def repo_digests(self) -> dict[str, str]:
        """``<registry>/<repository>@<digest>`` -> the manifest digest of that image here, for the images
        still in index.json (``docker images --digests``' and ``RepoDigests``' source)."""
        try:
            recorded = json.loads((self.home / "repodigests.json").read_text())
        except (OSError, ValueError):
            return {}
        present = {e.manifest.digest for e in self.entries()}
        return {k: v for k, v in recorded.items() if isinstance(v, str) and v in present} if isinstance(
            recorded, dict) else {}

    def add_repo_digest(self, name_at_digest: str, manifest_digest: str) -> None:
        """Remember that a registry knows this store's manifest *manifest_digest* as *name_at_digest*."""
        with self.lock():
            digests = self.repo_digests()  # (entries of images removed meanwhile are dropped here)
            digests[name_at_digest] = manifest_digest
            atomic_write(self.home / "repodigests.json", json.dumps(digests, indent=1, sort_keys=True).encode(),
                         durable=False)

    def untag(self, refs: set[str], manifest: oci.Descriptor) -> None:
        """Drop the tags *refs* of *manifest*, keeping it in the store untagged (``<none>``) if they were its last."""
        with self.lock():
            entries = [e for e in self.entries() if e.ref not in refs]
            if not any(e.manifest.digest == manifest.digest for e in entries):
                entries.append(IndexEntry(None, manifest))
            self._write_index(entries)

    def add_untagged(self, manifest: oci.Descriptor) -> None:
        with self.lock():
            entries = self.entries()
            if not any(e.manifest.digest == manifest.digest for e in entries):
                entries.append(IndexEntry(None, manifest))
                self._write_index(entries)

    def remove_entries(self, *, refs: set[str] = frozenset(), manifests: set[str] = frozenset()) -> None:
        """Drop the index lines with these tags and/or these manifest digests."""
        with self.lock():
            entries = [e for e in self.entries() if e.ref not in refs and e.manifest.digest not in manifests]
            self._write_index(entries)

    def remove_unreferenced(self, digests: set[str]) -> None:
        """Undo a failed import (load, pull): delete these blobs, unless an index line has come to use them.

        Only while no other writer holds ``writing()``: one that does may have found these very blobs
        already here ("Already exists") and be about to tag an image that uses them. Then they stay, and
        ``image prune`` or gc removes them later. The caller must have left its own ``writing()``.
        """
        fd = os.open(self.home / "gc.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            with self.lock():
                keep = self.reachable()
                for digest in digests - keep:
                    with contextlib.suppress(FileNotFoundError):
                        self.blob_path(digest).unlink()
        finally:
            os.close(fd)

    def manifest_descriptor(self, digest: str) -> oci.Descriptor:
        """The descriptor index.json needs for a stored manifest (its size read from the blob)."""
        try:
            return oci.Descriptor(oci.MEDIA_MANIFEST, digest, self.blob_path(digest).stat().st_size)
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store {self.layout}") from None

    # ---------------------------------------------------------------------------------- reachability

    def reachable(self, build_cache: bool = True) -> set[str]:
        """Every blob digest that index.json reaches (manifests, their configs and layers), and with
        *build_cache* what the build cache's intermediate images reach."""
        seen: set[str] = set()
        for entry in self.entries():
            self._mark(entry.manifest.digest, seen)
        for digest in self.extra_roots() if build_cache else ():
            self._mark(digest, seen)
        return seen

    def extra_roots(self) -> list[str]:
        """Manifests kept alive outside index.json: the build cache's intermediate images."""
        try:
            manifests = json.loads((self.home / BUILD_CACHE_FILE).read_bytes()).get("manifests", [])
        except (OSError, ValueError, AttributeError):  # (a damaged cache keeps nothing alive)
            return []
        return [m for m in manifests if isinstance(m, str) and oci.is_digest(m)] if isinstance(manifests, list) else []

    def _mark(self, digest: str, seen: set[str]) -> None:
        if digest in seen:
            return
        seen.add(digest)
        if not self.has_blob(digest):
            return
        manifest = self.read_json(digest)
        for child in manifest.get("manifests", []):  # a nested index
            self._mark(child["digest"], seen)
        if "config" in manifest:
            seen.add(manifest["config"]["digest"])
        seen.update(layer["digest"] for layer in manifest.get("layers", []))

    def gc(self, tmp_older_than: float = 3600.0, and_then: Callable[[], object] | None = None) -> tuple[int, int]:
        """Delete blobs no index line reaches, and stale temp files; return (blobs, bytes) freed. *and_then* runs
        under the same exclusive lock (the unpacked layers' clean-up): no writer, a build above all, is at work.

        A build holds ``writing()`` from its first step to its tag, so gc waits for it, and says so."""
        count = freed = 0
        with self._collecting():
            with self.lock():
                keep = {d.split(":", 1)[1] for d in self.reachable()}
                for path in self.blobs.iterdir():
                    if path.name not in keep:
                        freed += path.stat().st_size
                        count += 1
                        path.unlink()
                now = time.time()
                for path in self.tmp_dir.iterdir():  # those of processes gone, and any left for an hour
                    with contextlib.suppress(FileNotFoundError):
                        if _owner_gone(path.name) or now - path.lstat().st_mtime > tmp_older_than:
                            if path.is_dir() and not path.is_symlink():
                                shutil.rmtree(path, ignore_errors=True)
                            else:
                                path.unlink()
            if and_then is not None:
                and_then()
        return count, freed

    # ------------------------------------------------------------------------------------------ fsck

    def check(self) -> list[str]:
        """Verify every blob against its digest and every reference down to its layers.

        Returns the problems found, one line each (empty: the store is sound).
        """
        problems: list[str] = []
        for path in sorted(self.blobs.iterdir()):
            if not self.verify_blob("sha256:" + path.name):
                problems.append(f"blob sha256:{path.name} is corrupt: its content has another digest")
        try:
            entries = self.entries()
        except StoreError as exc:
            return [*problems, str(exc)]
        for entry in entries:
            where = entry.ref or f"untagged {entry.manifest.digest}"
            problems.extend(self._check_manifest(where, entry.manifest.digest))
        return problems

    def _check_manifest(self, where: str, digest: str) -> list[str]:
        from .reference import InvalidReference, parse

        problems = []
        if where and not where.startswith("untagged"):
            try:
                parse(where)
            except InvalidReference as exc:
                problems.append(f"{where}: tag is not a valid reference ({exc})")
        try:
            manifest = self.read_json(digest)
            config = self.read_json(manifest["config"]["digest"])
        except (StoreError, KeyError, ValueError) as exc:
            return [*problems, f"{where}: {exc}"]
        layers = manifest.get("layers", [])
        for layer in layers:
            if not self.has_blob(layer["digest"]):
                problems.append(f"{where}: layer {layer['digest']} is missing")
            elif self.blob_path(layer["digest"]).stat().st_size != layer["size"]:
                problems.append(f"{where}: layer {layer['digest']} has another size than its manifest says")
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if [la["digest"] for la in layers] != diff_ids:
            problems.append(f"{where}: the config's rootfs.diff_ids do not match the manifest's layers")
        non_empty = [h for h in config.get("history", []) if not h.get("empty_layer")]
        if config.get("history") and len(non_empty) != len(layers):
            problems.append(f"{where}: history has {len(non_empty)} layer steps for {len(layers)} layers")
        return problems
