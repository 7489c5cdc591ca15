"""Base images made offline, named as on Docker Hub, so lecture commands read the same.

There is no Docker Hub here, yet every lesson needs a base:

* ``busybox`` is Debian's statically linked BusyBox plus its applet links: one binary that is ``sh``,
  ``ls``, ``cat`` and 260 more. Same package, same digest, on every machine.
* ``debian:bookworm-slim`` is a minimal Debian made by ``debootstrap`` (needs root and a Debian mirror),
  trimmed like Docker's slim images, and ``python:3.11-slim`` adds Debian's Python 3 as a second layer
  on top of it, so the two images share their base layer exactly as the lectures describe.

Built once into a cache (``~/.cache/pycontainers/bases``, an image store of its own) and copied from
there into any store, so set-up is fast the second time and tests get bases in milliseconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from . import layer as layers
from . import oci
from .errors import PyContainersError
from .host import is_static_elf
from .image import Image, add_layer, add_metadata_step, commit_image, empty_config, get_image, write_layer
from .store import Store

LABEL_MADE_BY = "io.pycontainers.base.made-by"
LABEL_RECIPE = "io.pycontainers.base.recipe"
RECIPE_VERSION = 3
DEBIAN_SUITE = "bookworm"
PYTHON_TAG = "python:3.11-slim"
DEBIAN_TAG = "debian:bookworm-slim"


class BaseUnavailable(PyContainersError):
    """This machine lacks what a base image is made from (a package, root, or a mirror)."""


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")) / "pycontainers"


def wheelhouse() -> Path:
    """Python wheels downloaded at set-up (Flask and friends), so builds can ``pip install`` offline."""
    return cache_dir() / "wheelhouse"


# What the build-cache notebook's images pip-install (for python:3.11-slim's Python and machine).
WHEELS = ("flask==3.0.3", "requests==2.32.3")


def ensure_wheelhouse() -> str:
    """Download ``WHEELS`` into the wheelhouse once (PyPI is reachable at set-up, not in the course);
    return one sentence on the outcome."""
    folder = wheelhouse()
    done = folder / ".done"
    want = " ".join(WHEELS)
    if done.exists() and done.read_text().strip() == want:
        return f"{want} (already downloaded)"
    folder.mkdir(parents=True, exist_ok=True)
    import sys

    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                           "--dest", str(folder), "--only-binary=:all:", "--python-version", "3.11",
                           "--implementation", "cp", "--platform", "manylinux2014_x86_64", *WHEELS],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip download failed"]
        return f"not available: {last[0]} (no access to PyPI?); the build-cache notebook cannot pip install"
    done.write_text(want + "\n")
    return f"{want} (downloaded)"


def cache_store() -> Store:
    # bump the version when a recipe changes, so every machine remakes its bases
    return Store(cache_dir() / f"bases-v{RECIPE_VERSION}")


def _run(cmd: list[str], what: str, **kw: object) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise BaseUnavailable(f"{what} failed ({' '.join(cmd[:3])} ...): {' | '.join(tail)}")
    return proc.stdout


def _deb_version(package: str) -> str | None:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", package],
                             capture_output=True, text=True)
    except FileNotFoundError:
        return None
    words = out.stdout.split()
    return words[-1] if out.returncode == 0 and "installed" in words[:3] else None


# --------------------------------------------------------------------------------------------- busybox


def find_busybox() -> str:
    for path in (os.environ.get("PYCONTAINERS_BUSYBOX"), "/bin/busybox", "/usr/bin/busybox"):
        if path and os.path.exists(path) and is_static_elf(path):
            return path
    raise BaseUnavailable("no statically linked busybox found: install Debian's busybox-static "
                          "(apt-get install busybox-static)")


def busybox_entries(binary: str) -> tuple[list[layers.Entry], str, int]:
    """The busybox root file system: the binary, one symlink per applet, and a minimal /etc."""
    banner = subprocess.run([binary], capture_output=True, text=True).stdout.splitlines()[0]
    version = re.search(r"v(\d+(?:\.\d+)+)", banner)
    applets = _run([binary, "--list-full"], "busybox --list-full").split()
    ch = layers.Changes()
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "home", "var", "var/tmp"):
        ch.mkdir(d)
    ch.mkdir("root", mode=0o700)
    ch.mkdir("tmp", mode=0o1777)
    ch.add_file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                              "nobody:x:65534:65534:nobody:/home:/bin/false\n")
    ch.add_file("etc/group", "root:x:0:\nnogroup:x:65534:\n")
    entries = ch.entries()
    size = os.stat(binary).st_size
    info = layers.new_info("bin/busybox", layers.tarfile.REGTYPE, mode=0o755, size=size)
    entries.append(layers.Entry(info, binary))
    links = 0
    for applet in applets:
        path = applet.strip("/")
        if path != "bin/busybox":
            entries.append(layers.Entry(layers.new_info(path, layers.tarfile.SYMTYPE, mode=0o777,
                                                        linkname="/bin/busybox")))
            links += 1
    return entries, version.group(1) if version else "unknown", links


def build_busybox(store: Store) -> Image:
    binary = find_busybox()
    entries, version, links = busybox_entries(binary)
    deb = _deb_version("busybox-static")
    source = f"Debian busybox-static {deb}" if deb else binary
    with store.writing():
        desc = write_layer(store, entries)
        config = add_layer(empty_config(), desc, f"pycontainers bases: /bin/busybox ({source}) "
                                                 f"and its {links} applet links")
        config = add_metadata_step(config, '/bin/sh -c #(nop)  CMD ["sh"]', Cmd=["sh"],
                                   Labels={LABEL_RECIPE: str(RECIPE_VERSION),
                                           LABEL_MADE_BY: f"BusyBox {version} from {source}, "
                                                          "statically linked, one symlink per applet"})
        return commit_image(store, config, [desc], ["busybox:latest", f"busybox:{version}"])


# ------------------------------------------------------------------------------------- debian, python

# What Docker's slim images leave out: documentation, manuals, translations, package lists and caches.
_SLIM_PATHS = ("dev", "usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "usr/share/lintian",
               "var/lib/apt/lists", "var/cache/apt", "var/cache/debconf/templates.dat-old",
               "var/log", "etc/resolv.conf", "etc/hostname", "etc/machine-id", "var/cache/ldconfig")


def debian_mirror() -> str:
    """The Debian mirror apt already uses here (so no new host is contacted), else deb.debian.org."""
    for path in ["/etc/apt/sources.list", *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for url in re.findall(r"(https?://\S+/debian)/?\s", text + "\n"):
            if "security" not in url:
                return url
    return "http://deb.debian.org/debian"


def _slim(root: Path) -> None:
    for rel in _SLIM_PATHS:
        path = root / rel
        if path.is_dir() and not path.is_symlink():
            for child in path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        elif path.exists() or path.is_symlink():
            path.unlink()


def _require_root_tools(*tools: str) -> None:
    if os.geteuid() != 0:
        raise BaseUnavailable("debian and python bases are made with debootstrap, which needs root; "
                              "busybox works without them")
    for tool in tools:
        if shutil.which(tool) is None:
            raise BaseUnavailable(f"{tool} is not installed (apt-get install {tool})")


def build_debian_and_python(store: Store, log: Callable[[str], None] = print) -> tuple[Image, Image]:
    """debootstrap a minimal bookworm (layer 1), then apt-get install python3 over it (layer 2)."""
    _require_root_tools("debootstrap", "unshare", "chroot")
    mirror = debian_mirror()
    with tempfile.TemporaryDirectory(prefix="bases-", dir=store.tmp_dir) as tmp:
        rootfs, upper, work, merged = (Path(tmp) / n for n in ("rootfs", "upper", "work", "merged"))
        for d in (upper, work, merged):
            d.mkdir()
        log(f"debootstrap --variant=minbase {DEBIAN_SUITE} from {mirror} (about a minute, once)")
        _run(["debootstrap", "--variant=minbase", DEBIAN_SUITE, str(rootfs), mirror], "debootstrap")
        _slim(rootfs)
        log("installing python3 into an overlay on top of it (the second layer)")
        # A private mount namespace: the overlay and /proc vanish with the process, even if it is killed.
        script = (
            f"mount -t overlay overlay -o lowerdir={rootfs},upperdir={upper},workdir={work} {merged} && "
            f"mount -t proc proc {merged}/proc && mount --rbind /dev {merged}/dev && "
            f"cp /etc/resolv.conf {merged}/etc/resolv.conf && "
            f"DEBIAN_FRONTEND=noninteractive chroot {merged} sh -c 'apt-get update -qq && "
            "apt-get install -y -qq --no-install-recommends python3 python3-pip >/dev/null && apt-get clean && "
            # like Docker Hub's python images: pip may install into the image's Python (PEP 668 marker off)
            "rm -f /usr/lib/python3*/EXTERNALLY-MANAGED'"
        )
        _run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], "apt-get install python3")
        _slim(upper)
        with store.writing():
            base_desc = write_layer(store, layers.tree_entries(str(rootfs)))
            epoch = layers.source_date_epoch()
            deb_config = add_layer(empty_config(), base_desc,
                                   f"pycontainers bases: debootstrap --variant=minbase {DEBIAN_SUITE}, "
                                   "docs and package lists removed", epoch=epoch)
            deb_config = add_metadata_step(
                deb_config, '/bin/sh -c #(nop)  CMD ["bash"]', Cmd=["bash"],
                Labels={LABEL_RECIPE: str(RECIPE_VERSION),
                        LABEL_MADE_BY: f"debootstrap --variant=minbase {DEBIAN_SUITE} from {mirror}, "
                                       "trimmed like Docker's slim images"})
            debian = commit_image(store, deb_config, [base_desc], [DEBIAN_TAG, "debian:12-slim"])
            py_desc = write_layer(store, layers.tree_entries(str(upper), overlay_upper=True))
            py_config = add_layer(debian.config, py_desc,
                                  "/bin/sh -c apt-get update && apt-get install -y --no-install-recommends "
                                  "python3 python3-pip && apt-get clean && rm /usr/lib/python3*/EXTERNALLY-MANAGED",
                                  epoch=epoch)
            py_config = add_metadata_step(
                py_config, '/bin/sh -c #(nop)  CMD ["python3"]', Cmd=["python3"],
                Labels={LABEL_RECIPE: str(RECIPE_VERSION),
                        LABEL_MADE_BY: f"{DEBIAN_TAG} plus Debian's python3 and python3-pip, installed with apt"})
            python = commit_image(store, py_config, [base_desc, py_desc], [PYTHON_TAG, "python:3.11"])
    return debian, python


# --------------------------------------------------------------------------------------------- import


def copy_image(src: Store, image: Image, dst: Store) -> Image:
    """Copy an image's blobs from one store to another (verifying each) and give it the same tags."""
    with dst.writing():
        for desc in [*image.layers, oci.Descriptor(oci.MEDIA_CONFIG, image.id, 0)]:
            if not dst.has_blob(desc.digest):
                with src.open_blob(desc.digest) as f:
                    dst.put_stream(f, desc.media_type, expected=desc.digest)
        manifest = dst.put_bytes(src.read_blob(image.manifest_digest), oci.MEDIA_MANIFEST,
                                 expected=image.manifest_digest)
        for tag in image.tags:
            dst.set_tag(tag, manifest)
    return Image(dst, manifest.digest, image.tags)


BASES = ("busybox", DEBIAN_TAG, PYTHON_TAG)


def _outdated(image: Image) -> bool:
    """A base this module made with an older recipe (a user's own image of that name is left alone)."""
    labels = image.labels
    return LABEL_MADE_BY in labels and labels.get(LABEL_RECIPE) != str(RECIPE_VERSION)


def ensure_bases(store: Store, names: tuple[str, ...] = BASES,
                 log: Callable[[str], None] = print) -> dict[str, str]:
    """Make sure *store* has each base; return ``{name: outcome}`` (one sentence each)."""
    cache = cache_store()
    outcome: dict[str, str] = {}
    for name in names:
        try:
            present = get_image(store, name)
            if not _outdated(present):
                outcome[name] = f"{present.short_id} (already in the store)"
                continue
            log(f"{name}: made by an older recipe, remaking it")
        except PyContainersError:
            pass
        try:
            try:
                cached = get_image(cache, name)
                if _outdated(cached):
                    raise BaseUnavailable("outdated")
            except PyContainersError:
                if name == "busybox":
                    build_busybox(cache)
                else:
                    build_debian_and_python(cache, log)
                cached = get_image(cache, name)
            image = copy_image(cache, cached, store)
            outcome[name] = f"{image.short_id} (imported)"
        except BaseUnavailable as exc:
            outcome[name] = f"not available: {exc}"
    return outcome
