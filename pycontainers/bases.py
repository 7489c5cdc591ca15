"""Base images made offline, named as on Docker Hub, so lecture commands read the same.

There is no Docker Hub here, yet every lesson needs a base:

* ``busybox`` is Debian's statically linked BusyBox plus its applet links: one binary that is ``sh``,
  ``ls``, ``cat`` and 260 more. Same package, same digest, on every machine.
* ``debian:bookworm-slim`` is a minimal Debian made by ``mmdebstrap`` from a Debian mirror (as root, or
  as anyone under fakechroot: Binder too), trimmed like Docker's slim images, and ``python:3.11-slim`` adds
  Debian's Python 3 as a second layer on top of it, so the two images share their base layer exactly as
  the lectures describe.

Built once into a cache (``~/.cache/pycontainers/bases``, an image store of its own) and copied from
there into any store, so set-up is fast the second time and tests get bases in milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from . import layer as layers
from . import oci
from .errors import PyContainersError
from .host import is_static_elf
from .image import Image, add_layer, add_metadata_step, commit_image, empty_config, get_image, write_layer
from .store import Store, owned_prefix

LABEL_MADE_BY = "io.pycontainers.base.made-by"
LABEL_RECIPE = "io.pycontainers.base.recipe"
RECIPE_VERSION = 4  # busybox's and debian's (and the cache's folder: bases-v4)
PYTHON_RECIPE_VERSION = 5  # 5: python-is-python3, so that `python` runs, as in Docker Hub's python images
PYTHON_PACKAGES = "python3,python3-pip,python-is-python3"
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


def slimmed(rel: str, info: layers.tarfile.TarInfo) -> bool:
    """Is *rel* something a slim image leaves out? (The directories stay, empty.)"""
    return any(rel.startswith(p + "/") or (rel == p and not info.isdir()) for p in _SLIM_PATHS)


def bootstrap_mode() -> str:
    """How mmdebstrap makes a root file system here: with chroot as root; as anyone else (a laptop
    without sudo, Binder) under fakechroot and fakeroot, libraries that make the package scripts believe
    they run as root in a chroot: no privilege, no namespace needed."""
    return "root" if os.geteuid() == 0 else "fakechroot"


def _require_tools(mode: str) -> None:
    for tool in ("mmdebstrap", *(("fakechroot", "fakeroot") if mode == "fakechroot" else ())):
        if shutil.which(tool) is None:
            raise BaseUnavailable(f"{tool} is not installed (apt-get install {tool})")


def private_mounts() -> list[str]:
    """``unshare --mount`` before mmdebstrap as root, where root may make a mount namespace (not in a
    container without CAP_SYS_ADMIN: mmdebstrap then mounts nothing, and needs none)."""
    try:
        ok = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True,
                            timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return ["unshare", "--mount", "--propagation", "private"] if ok else []


# mmdebstrap's hooks (1.0 and later) that merge /usr as debootstrap does (/bin -> usr/bin, ...) and install
# usr-is-merged; an older mmdebstrap lets apt satisfy "usrmerge | usr-is-merged" with usrmerge, which brings
# Perl along: a bigger image, otherwise the same.
MERGED_USR_HOOKS = "/usr/share/mmdebstrap/hooks/merged-usr"

# The key that signs bookworm's package lists (debian-archive-keyring 2023.3+deb12u2's, public): a copy for
# hosts whose Debian keyring predates bookworm, as Ubuntu 22.04 (Binder's base image), where apt could not
# check the mirror. Such a host gets a sources line that names this key; one that has the key uses its own.
SHIPPED_KEY = Path(__file__).with_name("keyrings") / "debian-archive-bookworm-automatic.asc"
HOST_KEYRINGS = ("/usr/share/keyrings/debian-archive-bookworm-automatic.gpg",
                 "/etc/apt/trusted.gpg.d/debian-archive-bookworm-automatic.asc",
                 "/etc/apt/trusted.gpg.d/debian-archive-bookworm-automatic.gpg")
STOP_SECONDS = 30  # how long mmdebstrap may take to clean up after SIGTERM (it unmounts, removes its root)


def sources(mirror: str) -> str:
    """mmdebstrap's MIRROR argument: the mirror's URL, or a sources line naming the shipped key."""
    if any(os.path.exists(path) for path in HOST_KEYRINGS):
        return mirror
    return f"deb [signed-by={SHIPPED_KEY}] {mirror} {DEBIAN_SUITE} main"


def mmdebstrap_version() -> str:
    try:
        out = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True, errors="replace",
                             timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        out = ""
    return out.strip() or "mmdebstrap"


def mmdebstrap(mode: str, mirror: str, tarball: str, extra: list[str], tmp: str,
               private: list[str]) -> subprocess.Popen[bytes]:
    """Start mmdebstrap: a minimal bookworm (plus *extra* options) written as the tar archive *tarball*.

    In a process group of its own (``stop`` ends it all), its scratch root in *tmp*, its output in
    ``<tarball>.log``. As root in a mount namespace of its own (*private*: ``private_mounts``), so the /proc
    and /dev it mounts in its root vanish with it, even if it is killed. The image's sources.list names the
    mirror alone, whatever key this host checked it with."""
    # Reproducible: fixed timestamps, and no .pyc written by Python's imports while the package scripts run
    # (their bytes vary from run to run); the scripts' own byte-compiling (py3compile) is deterministic.
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(layers.source_date_epoch()), "PYTHONDONTWRITEBYTECODE": "1",
           "TMPDIR": tmp}
    hooks = [f"--hook-dir={MERGED_USR_HOOKS}"] if os.path.isdir(MERGED_USR_HOOKS) else []
    hooks.append(f'--customize-hook=echo "deb {mirror} {DEBIAN_SUITE} main" > "$1/etc/apt/sources.list"')
    with open(f"{tarball}.log", "wb") as log:
        return subprocess.Popen([*private, "mmdebstrap", f"--mode={mode}", "--variant=minbase", "--format=tar",
                                 *hooks, *extra, DEBIAN_SUITE, tarball, sources(mirror)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def wait_all(runs: dict[str, subprocess.Popen[bytes]], tarballs: dict[str, str]) -> None:
    """Wait for every run; at the first that fails, raise ``BaseUnavailable`` saying why, in one line."""
    while True:
        running = [proc for proc in runs.values() if proc.poll() is None]
        failed = next((name for name, proc in runs.items() if proc.returncode), None)
        if failed:
            raise _failure(failed, runs[failed].returncode, f"{tarballs[failed]}.log")
        if not running:
            return
        time.sleep(0.5)


# mmdebstrap's last words when apt failed: the cause (a name that does not resolve, a 404) comes before them
_GENERIC = re.compile(r"^E: (mmdebstrap failed to run|setup failed|apt-get .* failed|run_chroot failed)")


def _failure(name: str, code: int, log: str) -> BaseUnavailable:
    """One line: the lines that say why, and where the whole output is kept (the scratch dir goes)."""
    with open(log, errors="replace") as f:
        lines = f.read().splitlines()
    said = [line for line in lines if line.startswith(("E: ", "Err:", "W: Failed")) and not _GENERIC.match(line)]
    kept = cache_dir() / f"mmdebstrap-{name}.log"
    with contextlib.suppress(OSError):
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(log, kept)
    return BaseUnavailable(f"mmdebstrap ({name}) failed (exit {code}): "
                           f"{' | '.join(said[-3:] or lines[-1:]) or 'no message'} (its output: {kept})")


def stop(runs: Iterable[subprocess.Popen[bytes]], log: Callable[[str], None]) -> None:
    """End each run's whole process group: SIGTERM, ``STOP_SECONDS`` for mmdebstrap to clean up (its main
    process outlives a wrapper that dies at once: fakechroot's), then SIGKILL; a second Ctrl-C meanwhile
    goes straight to SIGKILL."""
    groups = [proc for proc in runs if _group_alive(proc)]
    if groups:
        log("stopping mmdebstrap (it removes what it made first)")
    for sig, patience in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, 5.0)):
        for proc in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + patience
        try:
            while (groups := [proc for proc in groups if _group_alive(proc)]) and time.monotonic() < deadline:
                time.sleep(0.1)
        except KeyboardInterrupt:
            if sig == signal.SIGKILL:
                raise
    for proc in runs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1)


def _group_alive(proc: subprocess.Popen[bytes]) -> bool:
    """Is any process of *proc*'s group (its PGID is its PID: ``start_new_session``) left? Its leader is reaped
    on the way; while others remain, the kernel keeps the group's ID from being reused."""
    proc.poll()
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    return True


def build_debian_and_python(store: Store, log: Callable[[str], None] = print) -> tuple[Image, Image]:
    """Two root file systems from mmdebstrap, a minimal bookworm and the same with Debian's python3: the
    first is debian's layer; what the second adds and changes is python's second layer."""
    mode = bootstrap_mode()
    _require_tools(mode)
    mirror = debian_mirror()
    made_by = f"{mmdebstrap_version()} --variant=minbase {DEBIAN_SUITE}"  # (not the mode: it makes no difference)
    epoch = layers.source_date_epoch()
    with tempfile.TemporaryDirectory(prefix=owned_prefix("bases"), dir=store.tmp_dir) as tmp:
        log(f"{made_by} --mode={mode} from {mirror}, without and with python3 (a minute or two, once)")
        tarballs = {name: os.path.join(tmp, f"{name}.tar") for name in ("debian", "python")}
        runs: dict[str, subprocess.Popen[bytes]] = {}
        private = private_mounts() if mode == "root" else []
        try:
            runs["debian"] = mmdebstrap(mode, mirror, tarballs["debian"], [], tmp, private)
            runs["python"] = mmdebstrap(mode, mirror, tarballs["python"], [
                f"--include={PYTHON_PACKAGES}",
                # like Docker Hub's python images: pip may install into the image's Python (PEP 668 marker off)
                '--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED'], tmp, private)
            wait_all(runs, tarballs)
        except BaseException:  # a failure, or Ctrl-C: nothing of either run may outlive this
            stop(runs.values(), log)
            raise
        trees = {}
        for name, tarball in tarballs.items():
            os.mkdir(os.path.join(tmp, name))
            trees[name] = layers.archive_entries(tarball, os.path.join(tmp, name), epoch=epoch, leave_out=slimmed)
            os.unlink(tarball)
        with store.writing():
            base_desc = write_layer(store, list(trees["debian"].entries.values()))
            deb_config = add_layer(empty_config(), base_desc,
                                   f"pycontainers bases: mmdebstrap --variant=minbase {DEBIAN_SUITE}, "
                                   "docs and package lists removed", epoch=epoch)
            deb_config = add_metadata_step(
                deb_config, '/bin/sh -c #(nop)  CMD ["bash"]', Cmd=["bash"],
                Labels={LABEL_RECIPE: str(RECIPE_VERSION),
                        LABEL_MADE_BY: f"{made_by} from {mirror}, trimmed like Docker's slim images"})
            debian = commit_image(store, deb_config, [base_desc], [DEBIAN_TAG, "debian:12-slim"])
            py_desc = write_layer(store, layers.diff(trees["debian"], trees["python"], epoch=epoch))
            py_config = add_layer(debian.config, py_desc,
                                  "pycontainers bases: Debian's python3, python3-pip and python-is-python3, what "
                                  f"mmdebstrap --include={PYTHON_PACKAGES} adds to the same bookworm", epoch=epoch)
            py_config = add_metadata_step(
                py_config, '/bin/sh -c #(nop)  CMD ["python3"]', Cmd=["python3"],
                Labels={LABEL_RECIPE: str(PYTHON_RECIPE_VERSION),
                        LABEL_MADE_BY: f"{DEBIAN_TAG} plus Debian's python3, python3-pip and python-is-python3 "
                                       f"({made_by} --include={PYTHON_PACKAGES}), with pip allowed to install "
                                       "system-wide"})
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
    python = any(tag.startswith("python:") for tag in image.familiar_tags)
    return LABEL_MADE_BY in labels and labels.get(LABEL_RECIPE) != str(PYTHON_RECIPE_VERSION if python
                                                                       else RECIPE_VERSION)


def _remove_if_unused(store: Store, image: Image) -> None:
    """Delete an outdated base that a remade one has just replaced, unless something still uses it: a tag of its
    own (the remade base took the base's names), or a container made from it. Otherwise `images` would go on
    listing it as <none>. Blobs that other images share stay; only those nothing else reaches are freed."""
    from .container import list_containers

    if any(e.ref is not None for e in store.entries() if e.manifest.digest == image.manifest_digest):
        return
    if any(c.spec.image_id == image.id for c in list_containers(store)):
        return
    store.remove_entries(manifests={image.manifest_digest})
    store.gc()


def ensure_bases(store: Store, names: tuple[str, ...] = BASES,
                 log: Callable[[str], None] = print) -> dict[str, str]:
    """Make sure *store* has each base; return ``{name: outcome}`` (one sentence each)."""
    cache = cache_store()
    outcome: dict[str, str] = {}
    for name in names:
        replaced = None
        try:
            present = get_image(store, name)
            if not _outdated(present):
                outcome[name] = f"{present.short_id} (already in the store)"
                continue
            log(f"{name}: made by an older recipe, remaking it")
            replaced = present
        except PyContainersError:
            pass
        try:
            stale = None
            try:
                cached = get_image(cache, name)
                if _outdated(cached):
                    stale = cached
                    raise BaseUnavailable("outdated")
            except PyContainersError:
                if name == "busybox":
                    build_busybox(cache)
                else:
                    build_debian_and_python(cache, log)
                cached = get_image(cache, name)
                if stale is not None and stale.manifest_digest != cached.manifest_digest:
                    _remove_if_unused(cache, stale)  # (the cache keeps the current recipe's bases only)
            image = copy_image(cache, cached, store)
            outcome[name] = f"{image.short_id} (imported)"
            if replaced is not None and replaced.manifest_digest != image.manifest_digest:
                _remove_if_unused(store, replaced)
        except BaseUnavailable as exc:
            outcome[name] = f"not available: {exc}"
    return outcome
