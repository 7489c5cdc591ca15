"""Self-checking exercises: each check looks at the real image store, never at a stored answer string.

A notebook cell ends with ``check_...(client, ..., answer)``; the returned ``Check`` prints one line
(✓ right, ✗ wrong plus a hint, "not answered yet", or "cannot be checked here" where this machine cannot
measure what the exercise is about, as containers under proot) and renders green, red or grey in Jupyter. Checks never
raise for a student's mistake: an unanswered placeholder (``...`` or ``None``), a missing image or an answer
in the wrong unit all come back as a ``Check``, so a notebook full of placeholders runs top to bottom
(which is how nbval tests it).

Core code: no IPython import. The numbers come from ``pycontainers.views`` (which imports its notebook
libraries lazily), so an exercise and the table a student looks at can never disagree.
"""

from __future__ import annotations

import hashlib
import html
import math
import numbers
import re
import reprlib
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import PyContainersError
from .image import Image
from .layer import clean_path
from .units import human_size, parse_size
from .views import Waste, layer_sharing, waste

if TYPE_CHECKING:
    from .api import Client
    from .compare import Comparison, DensityReport, RaceReport
    from .container import Container
    from .store import Store

_SHOWN = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHOWN.maxstring = _SHOWN.maxother = 40


@dataclass(frozen=True, repr=False)
class Check:
    """The outcome of one exercise: ``ok``, a one-line ``message``, and a ``hint`` when it is wrong."""

    ok: bool
    message: str
    hint: str = ""
    answered: bool = True
    checkable: bool = True  # False: this machine cannot measure the truth, so a right answer is not marked wrong

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if not self.checkable:
            return f"– Cannot be checked here: {self.message}"
        if not self.answered:
            return f"… Not answered yet: {self.message}"
        if self.ok:
            return f"✓ {self.message}"
        return f"✗ {self.message}" + (f"\n  Hint: {self.hint}" if self.hint else "")

    __repr__ = __str__  # what Jupyter shows as text/plain, and what a plain print shows

    def _repr_html_(self) -> str:
        if not self.checkable:
            mark, colour, background = "–", "#555555", "#f3f3f3"
        elif not self.answered:
            mark, colour, background = "…", "#555555", "#f3f3f3"
        elif self.ok:
            mark, colour, background = "✓", "#1a7f37", "#e6f4ea"
        else:
            mark, colour, background = "✗", "#b3261e", "#fdecea"
        lead = "Cannot be checked here: " if not self.checkable else "Not answered yet: " if not self.answered else ""
        body = f"<b>{mark}</b> {lead}{html.escape(self.message)}"
        if self.checkable and self.answered and not self.ok and self.hint:
            body += f"<br/><i>Hint:</i> {html.escape(self.hint)}"
        return (f'<div style="border-left:4px solid {colour};background:{background};color:{colour};'
                f'padding:4px 10px">{body}</div>')


def not_answered(what: str) -> Check:
    """A placeholder is not a mistake: say what is still to do, without a hint or a red cross."""
    return Check(False, what, answered=False)


def cannot_check(why: str) -> Check:
    """This machine cannot measure what the exercise is about (no VM, containers under proot): say why, in grey,
    never with a red cross that a right answer does not deserve."""
    return Check(False, why, checkable=False)


def is_unanswered(answer: object) -> bool:
    """The placeholders a notebook leaves for students: ``...`` and ``None``."""
    return answer is Ellipsis or answer is None


def _shown(answer: object) -> str:
    """A student's answer as a message quotes it: its repr, cut short, so a message stays one short line."""
    return _SHOWN.repr(answer)


def _whole_number(answer: object) -> int | None:
    """A whole number from ``42``, ``numpy.int64(42)`` or ``"42"``; None otherwise.

    Strings must be ASCII digits: ``str.isdigit()`` also accepts ``"²"``, which ``int()`` refuses.
    """
    if isinstance(answer, numbers.Integral) and not isinstance(answer, bool):
        return int(answer)
    if isinstance(answer, str) and re.fullmatch(r"\s*[0-9]{1,18}\s*", answer):
        return int(answer)
    return None


def _pair(answer: object) -> tuple[int, int] | None:
    """Two whole numbers from ``(4, 2)``, ``[4, 2]`` or ``("4", "2")``; None otherwise."""
    if not isinstance(answer, tuple | list) or len(answer) != 2:
        return None
    first, second = _whole_number(answer[0]), _whole_number(answer[1])
    return (first, second) if first is not None and second is not None else None


def _read_size(answer: object) -> tuple[int | None, str]:
    """(bytes, "") for a size a student may write, or (None, why not, one sentence).

    Numbers are bytes (``12345678``, ``12_345_678``, a numpy integer); strings go through ``units.parse_size``
    with decimal units, as ``pycontainers images`` prints them (``"12.3MB"`` is 12,300,000 bytes), while
    ``"11.8MiB"`` is binary.
    """
    if isinstance(answer, numbers.Real) and not isinstance(answer, bool):
        value = int(answer) if isinstance(answer, numbers.Integral) else float(answer)
        if isinstance(value, float) and not math.isfinite(value):
            return None, f"{_shown(answer)} is not a size."
        if value < 0:
            return None, f"{_shown(answer)} is not a size: a size is never negative."
        if value >= 1 << 63:
            return None, f"{_shown(answer)} is not a size: that is more bytes than any disk holds."
        return round(value), ""
    if not isinstance(answer, str):
        return None, f"{_shown(answer)} is not a size."
    try:
        return parse_size(answer, decimal=True), ""
    except ValueError as exc:
        why = str(exc).removeprefix(f"invalid size {answer!r}: ")
        return None, f"{_shown(answer)} is not a size I can read: {why}."


def as_bytes(answer: object) -> int | None:
    """A size as a student may write it (see ``_read_size``); None: not a size."""
    return _read_size(answer)[0]


# The examples of a size in messages are neutral: none of them is near the answer of an exercise.
_SIZE_HINT = "Write a number of bytes (12_345_678) or a string with a unit, like '12.3MB'."
_BINARY_UNIT = re.compile(r"([kmgtp])i", re.IGNORECASE)


def _decimal_reading(answer: object) -> int | None:
    """What *answer* would be if its binary unit (MiB) were the decimal one (MB): the usual mix-up."""
    if not isinstance(answer, str) or not _BINARY_UNIT.search(answer):
        return None
    return as_bytes(_BINARY_UNIT.sub(r"\1", answer))


def _unit_mixup(answer: object) -> Check:
    return Check(False, f"{_shown(answer)} uses a binary unit: 1 MiB is 1,048,576 bytes, not 1,000,000.",
                 "`pycontainers images` prints decimal units (1MB = 1,000,000 bytes): write the number with MB, "
                 "or convert it to MiB.")


def _find(client: Client, name: str) -> Image | None:
    try:
        return client.images.get(name).core
    except (PyContainersError, ValueError):  # not in the store, or not even a valid name
        return None


def _unit_hint(answer: object) -> str:
    return (f"{_shown(answer)} bytes is tiny: give the answer in bytes (e.g. 12_345_678) or as a string with a "
            "unit (e.g. '12.3MB').")


def _close(value: int, target: int, tolerance: float) -> bool:
    return abs(value - target) <= tolerance * max(target, 1)


def _same_size(answer: object, value: int, target: int) -> bool:
    """Exact for a number of bytes; for a string with a unit, equal as Docker prints it ('2.14MB')."""
    if isinstance(answer, str) and re.search(r"[a-z]", answer, re.IGNORECASE):
        return human_size(value) == human_size(target)
    return value == target


# ----------------------------------------------------------------------------------------- notebook 03


def check_image_size_after_delete(client: Client, image_name: str, answer: object) -> Check:
    """Predict the SIZE of an image whose later layer deletes a big file.

    Right within 1%: a prediction from the layer sizes is exact, and 1% leaves room only for the rounding
    of a size written as ``pycontainers images`` prints it (3 digits, at most 0.5% off). A round guess such
    as "7MB" for 7.14MB is not a prediction. The tell-tale wrong answer is the size *without* the deleted
    file: it gets its own hint.
    """
    if is_unanswered(answer):
        return not_answered(f"set `answer` to the size you expect for {image_name}, in bytes or like '12.3MB'.")
    image = _find(client, image_name)
    if image is None:
        return Check(False, f"there is no image {image_name!r} in the store.",
                     "Run the cells above that build it first.")
    value, why = _read_size(answer)
    if value is None:
        return Check(False, why, _SIZE_HINT)
    fs, reports = image.inspect_layers()
    if not any(r.deleted for r in reports):
        return Check(False, f"{image_name} deletes no file in a later layer, so there is nothing to predict.",
                     "Use the image whose last layer removes a file (changes.remove(...)).")
    actual, wasted = image.size, Waste.from_inspection(fs, reports).wasted
    # 1% covers a size rounded to 3 digits, and is never so wide that "deleting freed the bytes" would pass.
    tolerance = min(0.01, wasted / (3 * actual))
    if _close(value, actual, tolerance):
        return Check(True, f"Right: {image_name} is {actual:,} bytes ({human_size(actual)}). The "
                           f"{human_size(wasted)} you deleted are still stored in the layer that added them.")
    if _close(value, actual - wasted, tolerance):
        return Check(False, f"{human_size(value)} is what {image_name} would weigh if deleting a file freed "
                            "its bytes.",
                     "The delete layer only adds a whiteout (.wh.) entry; the layer below still holds the file "
                     "and the image's size is the sum of all its layers.")
    decimal = _decimal_reading(answer)
    if decimal is not None and _close(decimal, actual, tolerance):
        return _unit_mixup(answer)
    if 0 < value < 1000:
        return Check(False, f"{_shown(answer)} is not the size of {image_name}.", _unit_hint(answer))
    direction = "small" if value < actual else "big"
    return Check(False, f"{human_size(value)} is too {direction} for {image_name}.",
                 "Add up every layer: the base image's size plus each layer on top, including the one that "
                 "added the big file.")


def check_no_wasted_bytes(client: Client, image_name: str, like: str) -> Check:
    """Rebuild *like* as *image_name*: the same files with the same content, but nothing wasted.

    Unanswered until the image exists. Compares the two file systems path by path (kind, and content
    hashes for files) and requires zero wasted bytes, so tagging the old image again does not pass.
    """
    image = _find(client, image_name)
    if image is None:
        return not_answered(f"build and commit {image_name!r}; this check looks for it in the store.")
    reference = _find(client, like)
    if reference is None:
        return Check(False, f"there is no image {like!r} to compare with.", "Run the cells above that build it.")
    mine, theirs = _file_signatures(image), _file_signatures(reference)
    missing = sorted(set(theirs) - set(mine))
    extra = sorted(set(mine) - set(theirs))
    different = sorted(p for p in set(mine) & set(theirs) if mine[p] != theirs[p])
    if missing or extra or different:
        problems = [f"{label} {', '.join('/' + p for p in paths[:3])}{' ...' if len(paths) > 3 else ''}"
                    for label, paths in (("missing", missing), ("extra", extra), ("different", different))
                    if paths]
        return Check(False, f"{image_name} does not end with the same files as {like}: {'; '.join(problems)}.",
                     f"Start from the same base as {like} and write each file with its final content.")
    w = waste(image)
    if w.wasted:
        return Check(False, f"{image_name} has the right files but still wastes {w.wasted:,} bytes "
                            f"(efficiency {w.efficiency:.1%}).",
                     "A file you delete later still costs its bytes: never add it, or add and remove it "
                     "inside one layer. Write greeting.txt once, with its final text.")
    saved = reference.size - image.size
    return Check(True, f"Same files as {like}, nothing wasted (efficiency 100%): {human_size(image.size)} "
                       f"instead of {human_size(reference.size)}, {saved:,} bytes smaller.")


def _file_signatures(image: Image) -> dict[str, tuple[str, str]]:
    """Path -> (kind, content digest or link target) of the image's final file system."""
    fs = image.filesystem()
    out: dict[str, tuple[str, str]] = {p: (rec.kind, rec.linkname) for p, rec in fs.items()}
    for index in sorted({rec.layer for rec in fs.values() if rec.kind == "file"}):
        with image.open_layer(index) as f, tarfile.open(fileobj=f, mode="r:") as tar:
            for member in tar:
                path = clean_path(member.name)
                rec = fs.get(path)
                if rec is not None and rec.layer == index and member.isreg():
                    data = tar.extractfile(member)
                    assert data is not None  # a regular member always has a data stream
                    out[path] = (rec.kind, hashlib.sha256(data.read()).hexdigest())
    return out


def check_stored_bytes(client: Client, image_names: Iterable[str], answer: object) -> Check:
    """How many bytes the store needs for these images' layers: each distinct layer counted once.

    A number of bytes must be exact (it is computed, not estimated); a string with a unit must match
    the way ``pycontainers images`` would print the number ('2.14MB').

    The expected number is measured twice, from the manifests (``layer_sharing``) and from the blob
    files on disk, so the exercise also shows that the store really keeps one copy.
    """
    names = list(image_names)
    if is_unanswered(answer):
        return not_answered(f"set `answer` to the bytes the layers of {', '.join(names)} take in the store.")
    images: list[Image] = []
    for name in names:
        image = _find(client, name)
        if image is None:
            return Check(False, f"there is no image {name!r} in the store.", "Run the cells above that build it.")
        images.append(image)
    value, why = _read_size(answer)
    if value is None:
        return Check(False, why, "Write a number of bytes, e.g. 12_345_678.")
    sharing = layer_sharing(images)
    on_disk = sum(client.store.blob_path(d.digest).stat().st_size for d in sharing.layers)
    if on_disk != sharing.stored:
        return Check(False, f"the store's blobs ({on_disk:,} bytes) disagree with the manifests "
                            f"({sharing.stored:,} bytes).", "Run `pycontainers system check`: the store is damaged.")
    if _same_size(answer, value, on_disk):
        return Check(True, f"Right: {len(sharing.layers)} distinct layers, {on_disk:,} bytes on disk, while the "
                           f"images' sizes add up to {sharing.unshared:,} bytes.")
    if _same_size(answer, value, sharing.unshared):
        return Check(False, f"{value:,} bytes is the sum of the images' sizes.",
                     "That counts a shared base layer once per image; the store keeps each layer (blob) once.")
    decimal = _decimal_reading(answer)
    if decimal is not None and _same_size(answer, decimal, on_disk):
        return _unit_mixup(answer)
    if 0 < value < 1000:
        return Check(False, f"{_shown(answer)} is not the number of bytes stored.", _unit_hint(answer))
    return Check(False, f"{value:,} bytes is not what the store holds for these layers.",
                 "Collect the distinct layer digests (image.core.layers) and add up their sizes, once each.")


__all__ = ["Check", "as_bytes", "check_image_size_after_delete", "check_no_wasted_bytes", "check_stored_bytes",
           "is_unanswered", "not_answered"]


# ----------------------------------------------------------------------------------------- notebook 05

# Linux's eight namespace types, by the names of /proc/PID/ns and their long forms. The eighth, time (Linux
# 5.6+), is one that neither Docker nor pycontainers gives a container, so an answer naming it is wrong but valid.
_NAMESPACE_ALIASES = {"mount": "mnt", "mnt": "mnt", "network": "net", "net": "net", "uts": "uts", "ipc": "ipc",
                      "pid": "pid", "cgroup": "cgroup", "user": "user", "time": "time"}


def _running(client: Client, name: str) -> tuple[Container, dict[str, Any]] | Check:
    """A running container and its ``docker inspect`` document, or the Check to return instead."""
    from . import host
    from .compare import container_unavailable

    try:
        container = client.containers.get(name)
    except PyContainersError:
        if container_unavailable():  # the cells that start it did nothing here
            _backend, why = host.backend_choice()
            return cannot_check(f"there is no container {name!r}, since the cells above start none here. {why}")
        return Check(False, f"there is no container {name!r}.", "Run the cells above that start it.")
    attrs = container.attrs
    if not attrs["State"]["Running"]:
        return Check(False, f"{name} is not running (it is {attrs['State']['Status']}).",
                     "Run the cells above that start it; only a running container has a PID and namespaces.")
    return container._c, attrs


def _never_started(client: Client, name: str) -> Check | None:
    """Why the exercise about *name* cannot be done here (under proot the cells that start it do nothing), said
    before the student answers; None where it can."""
    running = _running(client, name)
    return running if isinstance(running, Check) and not running.checkable else None


def _not_answered_about(client: Client, name: str, what: str) -> Check:
    """No answer yet: why it cannot be checked here, if it cannot (``_never_started``), else what to set."""
    never = _never_started(client, name)
    return never if never is not None else not_answered(f"set `answer` to {what}")


def check_host_pid(client: Client, container_name: str, answer: object) -> Check:
    """What PID does the host give the container's PID 1? Read live: ``state.json``'s ``pid``.

    Its other processes are found as ``pycontainers top`` finds them (``container.processes``), so a child
    is recognised with every back end, with a cgroup (native) or without (rootless: its PID namespace).
    """
    from .container import processes

    if is_unanswered(answer):
        return _not_answered_about(client, container_name, f"the host's PID of {container_name}'s PID 1.")
    running = _running(client, container_name)
    if isinstance(running, Check):
        return running
    container, attrs = running
    value = _whole_number(answer)
    if value is None or value < 1:
        return Check(False, f"{_shown(answer)} is not a PID.",
                     f"A PID is a whole number above 0, like 4242: `pycontainers top {container_name}` lists them.")
    if attrs["RuntimeBackend"] == "proot":
        return cannot_check(f"{container_name} runs under proot here, which gives it no PID namespace: its processes "
                            "have the host's PIDs only, so there is no PID 1 to find. Run this notebook where "
                            "containers get namespaces: as root, or rootless (see notebook 00).")
    pid = attrs["State"]["Pid"]
    if value == pid:
        return Check(True, f"Right: PID 1 of {container_name} is PID {pid} on the host. One process, two numbers: "
                           "its PID namespace numbers it from 1.")
    if value == 1:
        return Check(False, "1 is its PID inside the container, in its own PID namespace.",
                     f"The host numbers the same process differently: `pycontainers top {container_name}` lists the "
                     "host's PIDs.")
    if value in processes(container):
        return Check(False, f"{value} is a process of {container_name}, but not its PID 1.",
                     "PID 1 is the one started with the container's command; the others are its children "
                     "(their PPID is PID 1's host PID).")
    return Check(False, f"{value} is not a process of {container_name}.",
                 f"`pycontainers top {container_name}` lists its processes with the host's PIDs.")


def _namespace_names(answer: object) -> tuple[set[str] | None, str]:
    """A set of namespace names from ``{"mnt", "pid"}``, ``["mnt", "pid"]`` or ``"mnt pid"``; or why not."""
    items = re.split(r"[\s,{}\[\]()'\"]+", answer) if isinstance(answer, str) else answer
    if not isinstance(items, list | tuple | set | frozenset) or not all(isinstance(i, str) for i in items):
        return None, f"{_shown(answer)} is not a set of namespace names."
    names = set()
    for item in items:
        if not item.strip():
            continue
        name = _NAMESPACE_ALIASES.get(item.strip().lower())
        if name is None:
            return None, f"{_shown(item)} is not a namespace."
        names.add(name)
    return names, ""


def _namespaces(count: int) -> str:
    return f"{count} namespace{'s' if count != 1 else ''}"


def check_own_namespaces(client: Client, container_name: str, answer: object) -> Check:
    """Which namespaces does the container *not* share with the host? Measured from /proc, not remembered.

    A wrong answer is told which of its names are wrong and how many are missing, never which: naming
    them would give the answer away.
    """
    from .views import own_namespaces

    if is_unanswered(answer):
        return _not_answered_about(client, container_name, f"the set of namespaces {container_name} has of its own, "
                                   'e.g. {"mnt", "uts"}.')
    names, why = _namespace_names(answer)
    if names is None:
        return Check(False, why, "Use the names in /proc/PID/ns: mnt, uts, ipc, pid, net, cgroup, user, time.")
    running = _running(client, container_name)
    if isinstance(running, Check):
        return running
    _container, attrs = running
    own = set(own_namespaces(attrs["State"]["Pid"]))
    if names == own:
        return Check(True, f"Right: {container_name} has its own {', '.join(sorted(own))}; it shares the others "
                           "with the host.")
    missing, extra = own - names, sorted(names - own)
    if "user" in extra:
        return Check(False, "the user namespace is the host's: root in this container is root on the host.",
                     "It was started without a user namespace (as root, like Docker by default); compare "
                     "`readlink /proc/PID/ns/user` with `readlink /proc/self/ns/user`.")
    if "net" in extra:
        mode = attrs["HostConfig"]["NetworkMode"]
        return Check(False, f"look again at the network: {container_name} runs with --network {mode}.",
                     "--network none gives a container a network namespace of its own (only lo); --network host "
                     "keeps it in the host's.")
    if "time" in extra:
        return Check(False, "the time namespace is the host's: neither Docker nor pycontainers gives a container "
                            "clocks of its own.",
                     "Compare `readlink /proc/PID/ns/time` of the container's PID 1 with "
                     "`readlink /proc/self/ns/time`.")
    compare = ("Compare each `readlink /proc/PID/ns/NAME` of the container's PID 1 with the notebook's "
               "(/proc/self/ns/NAME), or draw namespace_graph.")
    if not names:
        return Check(False, f"your answer names no namespace, but {container_name} has {_namespaces(len(own))} of "
                            "its own.", compare)
    if extra and missing:
        return Check(False, f"not quite: it shares {', '.join(extra)} with the host, and your answer misses "
                            f"{_namespaces(len(missing))} it has of its own.", compare)
    if extra:
        return Check(False, f"not quite: it shares {', '.join(extra)} with the host.", compare)
    return Check(False, f"not quite: your answer misses {_namespaces(len(missing))} {container_name} has of its "
                        "own.", compare)


def check_oom_killed(client: Client, container_name: str, memory: str) -> Check:
    """Run a container named *container_name*, limited to *memory*, that the kernel OOM-kills.

    Unanswered until the container exists; then its recorded limit, exit code and OOMKilled flag are read.
    """
    from .container import default_backend
    from .units import parse_size

    try:
        attrs = client.containers.get(container_name).attrs
    except PyContainersError:
        if (backend := default_backend(client.store)) in ("rootless", "proot"):
            return cannot_check(f"this exercise needs a memory limit, hence a cgroup, and {backend} containers have "
                                "none on this machine: it can be done only where containers run as root.")
        return not_answered(f"run a container named {container_name!r} with a {memory} memory limit that uses more "
                            "memory than that, without --rm (a --rm container is removed when it stops, so this "
                            "check could not read how it ended).")
    limit, wanted = attrs["HostConfig"]["Memory"], parse_size(memory)
    state = attrs["State"]
    if limit != wanted:
        return Check(False, f"{container_name} has {'no memory limit' if not limit else f'a limit of {limit:,} bytes'}"
                            f", not {memory} ({wanted:,} bytes).",
                     f"Remove it (`pycontainers rm -f {container_name}`) and run it again with `-m {memory}`.")
    if state["Running"]:
        return Check(False, f"{container_name} is still running: it has not used up its {memory} yet.",
                     "Give it a command that keeps allocating memory, such as the shell loop above.")
    if not state["OOMKilled"]:
        return Check(False, f"{container_name} ended with exit code {state['ExitCode']} and was not OOM-killed.",
                     "Its command must use more than the limit; `sleep` or `echo` never will.")
    return Check(True, f"Right: the kernel killed {container_name} when it reached {memory}: exit code "
                       f"{state['ExitCode']} (128 + 9, SIGKILL) and OOMKilled true.")


_NO_LIMIT_WORDS = {"0", "none", "no limit", "unlimited", "max", "infinite", "inf", "-1"}


def check_stats_limit(client: Client, container_name: str, answer: object) -> Check:
    """What LIMIT does ``stats`` give a container started without ``-m``? Read live, from a stats reading: all of
    the machine's memory (MemTotal), as Docker shows it.

    Right within 1%, so that the size as ``stats`` prints it (four digits, binary units: '23.54GiB') passes; the
    usual slips (no number at all, decimal units for binary ones) get hints of their own.
    """
    from .stats import machine_memory, sample
    from .units import bytes_size

    if is_unanswered(answer):
        return _not_answered_about(client, container_name,
                                   f"the LIMIT `stats` shows for {container_name}, e.g. '1.5GiB'.")
    if isinstance(answer, str) and answer.strip().lower() in _NO_LIMIT_WORDS or answer == 0:
        return Check(False, f"{_shown(answer)} is not what `stats` shows: it prints a number as the LIMIT of every "
                            "running container.",
                     f"Run `!pycontainers stats --no-stream {container_name}` and look at MEM USAGE / LIMIT.")
    value, why = _read_size(answer)
    if value is None:
        return Check(False, why, "Write the limit as stats prints it, with its unit (e.g. '1.5GiB'), or in bytes.")
    running = _running(client, container_name)
    if isinstance(running, Check):
        return running
    container, _attrs = running
    limit = (sample(container).get("memory_stats") or {}).get("limit", 0)
    if _close(value, limit, 0.01):
        everything = " all of this machine's memory (MemTotal in /proc/meminfo)" if limit == machine_memory() else ""
        return Check(True, f"Right: {bytes_size(limit)},{everything}. Without -m nothing but the machine itself "
                           f"limits {container_name}; when the machine runs out, the OOM killer chooses among all of "
                           "its processes.")
    if isinstance(answer, str) and re.search(r"[kmgtp]b", answer, re.IGNORECASE) \
            and _close(as_bytes(re.sub(r"([kmgtp])b", r"\1iB", answer, flags=re.IGNORECASE)) or 0, limit, 0.01):
        return Check(False, f"{_shown(answer)} has a decimal unit (1 GB = 1,000,000,000 bytes), but stats prints "
                            "binary ones.", "Write the unit as stats prints it: GiB (1,073,741,824 bytes), MiB, KiB.")
    return Check(False, f"{_shown(answer)} is not the LIMIT stats shows for {container_name}.",
                 f"Run `!pycontainers stats --no-stream {container_name}`: a container started without -m may use "
                 "as much memory as the whole machine has (`!head -1 /proc/meminfo`).")


__all__ += ["check_host_pid", "check_oom_killed", "check_own_namespaces", "check_stats_limit"]


# ----------------------------------------------------------------------------------------- notebook 02


def _printed(client: Client, image_name: str, command: list[str] | None) -> str | None:
    """What ``run IMAGE [COMMAND]`` really prints (stripped), or None when no container can run here."""
    from .api import ContainerError

    try:
        out = client.containers.run(image_name, command, remove=True)
    except ContainerError as exc:
        return exc.stderr.decode(errors="replace").strip()  # what a failing command said instead
    except PyContainersError:
        return None
    return out.decode(errors="replace").strip() if isinstance(out, bytes) else ""


def check_default_greeting(client: Client, image_name: str, greeting: str, name: str = "Pavlos") -> Check:
    """Build *image_name* so that ``run IMAGE`` prints *greeting* and ``run IMAGE NAME`` still prints "Hello NAME".

    Both commands are run, and their real output compared. The image's ENTRYPOINT and CMD, combined by the
    engine's own rule (``spec.combine_command``: arguments given to ``run`` replace CMD and are appended to
    ENTRYPOINT), explain a wrong answer.
    """
    from .spec import combine_command

    image = _find(client, image_name)
    if image is None:
        return not_answered(f"build {image_name!r} with a %%dockerfile cell; this check runs it.")
    settings = image.settings
    entrypoint, cmd = settings.get("Entrypoint"), settings.get("Cmd")
    if not entrypoint and not cmd:
        return Check(False, f"{image_name} has neither ENTRYPOINT nor CMD, so `run` does not know what to start.",
                     'Keep ENTRYPOINT ["/bin/echo", "Hello"] from Dockerfile_cmd and change one line.')
    default = combine_command(entrypoint, cmd, None, None)
    if entrypoint and entrypoint[:2] == ["/bin/sh", "-c"]:
        return Check(False, f"{image_name}'s ENTRYPOINT is in shell form: it runs {default!r}, which ignores CMD "
                            "and the arguments of `run`.",
                     'Write it in exec form, a JSON list: ENTRYPOINT ["/bin/echo", "Hello"].')
    if entrypoint and cmd and cmd[:2] == ["/bin/sh", "-c"]:
        return Check(False, f"{image_name}'s CMD is in shell form: the builder wrapped it in /bin/sh -c, so "
                            f"`run {image_name}` runs {default!r} and echo prints those words too.",
                     'Write CMD in exec form, as a JSON list of strings, as Dockerfile_cmd does: CMD ["world"].')
    if default[0].rpartition("/")[2] != "echo":
        return Check(False, f"a container of {image_name} runs {default!r}, which is not an echo.",
                     'Start from Dockerfile_cmd: ENTRYPOINT ["/bin/echo", "Hello"] and a CMD.')
    said, said_to_name = _printed(client, image_name, None), _printed(client, image_name, [name])
    if said is None or said_to_name is None:
        return cannot_check("no container can run on this machine, so the check cannot see what the image prints. "
                            "Run this notebook where containers work (see notebook 00).")
    hello = f"Hello {name}"
    if said == greeting and said_to_name == hello:
        return Check(True, f"Right: `run {image_name}` ran {default!r} and printed {greeting!r}; `run {image_name} "
                           f"{name}` replaced CMD and printed {hello!r}. ENTRYPOINT is the part that always runs, "
                           "CMD the default arguments.")
    if said != greeting:
        return Check(False, f"`run {image_name}` printed {said!r}, not {greeting!r}.",
                     "The words after Hello come from CMD: change CMD, keep ENTRYPOINT.")
    if said_to_name == f"{greeting} {name}":
        return Check(False, f"`run {image_name} {name}` printed {said_to_name!r}: the new words are in ENTRYPOINT, "
                            "which always runs.",
                     "Arguments given to `run` replace CMD only. Keep ENTRYPOINT [\"/bin/echo\", \"Hello\"] and put "
                     "the rest of the greeting in CMD.")
    return Check(False, f"`run {image_name} {name}` printed {said_to_name!r}, not {hello!r}.",
                 "Arguments given to `run` replace all of CMD: \"Hello\" has to stay in ENTRYPOINT.")


def _step_numbers(answer: object) -> tuple[set[int] | None, str]:
    """A set of step numbers from ``{3, 4}``, ``[3, 4]``, ``"3 4"``, ``"3,4"`` or ``"{3, 4}"``; or why not."""
    if _whole_number(answer) is not None and not isinstance(answer, str):
        items: object = [answer]
    elif isinstance(answer, str):
        if not answer.strip():
            return None, "your answer is an empty string."
        items = re.split(r"[\s,{}\[\]()]+", answer)
    else:
        items = answer
    if not isinstance(items, list | tuple | set | frozenset):
        return None, f"{_shown(answer)} is not a set of step numbers."
    found = set()
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        number = _whole_number(item)
        if number is None:
            return None, f"{_shown(item)} is not a step number."
        if number < 1:
            return None, f"{number} is not a step number: steps are numbered from 1."
        found.add(number)
    return found, ""


def _spans(numbers: Iterable[int]) -> str:
    return ", ".join(str(n) for n in sorted(numbers)) or "none"


def _steps_word(numbers: set[int]) -> str:
    return "step" if len(numbers) == 1 else "steps"


def check_cache_misses(result: object, answer: object) -> Check:
    """Predict which steps of a rebuild miss the cache. *result* is the rebuild's ``BuildResult`` (``_build``
    after a ``%%dockerfile`` cell); the truth is its steps' ``cached`` flags, with the engine's reasons."""
    from .buildviews import build_stages, step_reasons

    if is_unanswered(answer):
        return not_answered("set `answer` to the step numbers you expect to miss the cache, e.g. {2, 5}.")
    steps = getattr(result, "steps", None)
    if steps is None:
        return Check(False, "there is no build result to compare with.",
                     "Run the %%dockerfile cell of this exercise first: it leaves its result in `_build`.")
    predicted, why = _step_numbers(answer)
    if predicted is None:
        return Check(False, why, "Give the numbers of the transcript's steps (Step 3/6 is step 3), e.g. {3, 4}, "
                                 "or set() if none misses.")
    total = max((s.number for s in steps), default=0)
    if predicted and max(predicted) > total:
        return Check(False, f"this build has no step {max(predicted)}: it has {total} steps.",
                     "Give the numbers of the transcript's steps (Step 3/6 is step 3).")
    missed = {s.number for s in steps if not s.cached}
    if predicted == missed:
        if not missed:
            return Check(True, "Right: nothing missed, every step came from the cache.")
        first = min((i for i, s in enumerate(steps) if not s.cached), key=lambda i: steps[i].number)
        reason = step_reasons(result)[first]  # type: ignore[arg-type]
        after = "; each one after it because its parent image was new" if len(missed) > 1 else ""
        return Check(True, f"Right: {_steps_word(missed)} {_spans(missed)} missed. Step {steps[first].number} "
                           f"because {reason}{after}.")
    if not missed:
        return Check(False, "this build missed nothing: every step came from the cache, because exactly this "
                            "content was built before (did the build cell run twice?).",
                     "Give the file this exercise writes a text you have not built yet (or empty the cache with "
                     "prune_cache(client.store)), run its cells again, then check.")
    if not predicted:
        return Check(False, f"you predicted that every step comes from the cache, but {len(missed)} "
                            f"{_steps_word(missed)} missed.",
                     "Find the first step that depends on what changed (a COPY compares the files' content); it and "
                     "every step after it miss.")
    froms = {stage.number for stage in build_stages(result)}  # type: ignore[arg-type]
    if predicted & froms:
        return Check(False, f"step {_spans(predicted & froms)} is a FROM, which only picks the base image: it is "
                            "never a cache miss.",
                     "Leave FROM out and look at the steps after it.")
    first_miss = min(missed)
    if predicted and min(predicted) < first_miss:
        early = {n for n in predicted if n < first_miss}
        return Check(False, f"{_steps_word(early)} {_spans(early)} came from the cache.",
                     "A step above the change has the same parent image and the same instruction as last time, "
                     "so its cached result is reused.")
    if predicted < missed:
        return Check(False, f"{_steps_word(missed - predicted)} {_spans(missed - predicted)} missed too.",
                     "Once one step misses, every later step misses as well: its parent is a new image, and the "
                     "parent's ID is part of each step's cache key.")
    return Check(False, f"{_spans(predicted)} is not the set of steps that missed.",
                 "Find the first step that depends on what changed (a COPY compares the files' content); it and "
                 "every step after it miss.")


def check_history_and_layers(client: Client, image_name: str, answer: object) -> Check:
    """How many lines does ``history IMAGE`` print (without the header), and how many layers has the image?"""
    if is_unanswered(answer):
        return not_answered(f"set `answer` to (history lines, layers) of {image_name}, e.g. (4, 2).")
    image = _find(client, image_name)
    if image is None:
        return Check(False, f"there is no image {image_name!r} in the store.", "Run the cells above that build it.")
    given = _pair(answer)
    if given is None:
        return Check(False, f"{_shown(answer)} is not a pair of whole numbers.",
                     "Write two whole numbers: (lines, layers).")
    lines, layer_count = len(image.history()), len(image.layers)
    empty = sum(row.empty_layer for row in image.history())
    if given == (lines, layer_count):
        return Check(True, f"Right: {lines} history lines, {layer_count} layers. The other {empty} lines are "
                           "#(nop) steps that changed only the config (0B, no layer).")
    if given[0] == given[1]:
        return Check(False, "an image has fewer layers than history lines.",
                     "Only steps that change files (RUN, COPY, ADD) make a layer; steps that change settings "
                     "(ENV, LABEL, ENTRYPOINT, CMD, ...) are 0B #(nop) lines.")
    if given[0] != lines:
        return Check(False, f"{given[0]} is not the number of history lines of {image_name}.",
                     "Count the base image's lines too (the ones at the bottom, marked <missing> or with the "
                     "base's ID): history lists every step since the very first one.")
    return Check(False, f"{given[1]} is not the number of layers of {image_name}.",
                 "Count the base image's layer and one per step that changed files (RUN, COPY, ADD).")


__all__ += ["check_cache_misses", "check_default_greeting", "check_history_and_layers"]


# ----------------------------------------------------------------------------------------- notebook 04


def check_install_stays_cached(client: Client, context: object, dockerfile: object, edit: str = "app.py",
                               tag: str = "pycontainers-check:install-cached") -> Check:
    """Order a Dockerfile so that editing *edit* leaves its ``RUN pip install`` step in the cache.

    Builds *dockerfile* (the text of a Dockerfile) in a copy of the build context *context*, appends a unique
    comment to *edit* there, builds again, and reads the second build's steps: the install step must come from
    the cache, and a later step must miss because *edit* changed (so the edited file still reaches the image).
    The builds are tagged *tag*; afterwards both images are removed (the first, untagged by the second, would
    stay as a dangling image of a few hundred MB), unless the store had them before: a build is reproducible, so
    it may well be the student's own image. The build cache keeps their steps.
    """
    import contextlib
    import shutil
    import tempfile
    import uuid
    from pathlib import Path

    from .build import build
    from .buildviews import step_reasons

    if is_unanswered(dockerfile):
        return not_answered("set `dockerfile` to your reordered Dockerfile (a string), then run this cell.")
    if not isinstance(dockerfile, str) or not re.search(r"^\s*FROM\b", dockerfile, re.IGNORECASE | re.MULTILINE):
        return Check(False, "`dockerfile` is not the text of a Dockerfile.",
                     'Write the whole Dockerfile in a string, starting with """FROM python:3.11-slim.')
    source = Path(str(context))
    if not (source / edit).is_file():
        return Check(False, f"there is no {edit} in {source}.", "Run the cell above that makes the build context.")
    built: list[str] = []
    had = {image.id for image in client.images.list()}
    try:
        with tempfile.TemporaryDirectory(prefix="pycontainers-check-") as tmp:
            work = Path(tmp) / "context"
            shutil.copytree(source, work, symlinks=True)
            (work / "Dockerfile").write_text(dockerfile if dockerfile.endswith("\n") else dockerfile + "\n")
            built.append(build(client.store, work, tags=[tag]).image.id)
            with (work / edit).open("a") as f:
                f.write(f"# edited by the check: {uuid.uuid4().hex}\n")
            second = build(client.store, work, tags=[tag])
            built.append(second.image.id)
    except PyContainersError as exc:
        error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Check(False, f"your Dockerfile does not build: {error}", _build_error_hint(error))
    finally:
        with contextlib.suppress(PyContainersError, ValueError):
            client.images.remove(tag)
        for image_id in set(built) - had:
            with contextlib.suppress(PyContainersError, ValueError):
                client.images.remove(image_id)
    installs = [s for s in second.steps if _runs_pip_install(s.instruction)]
    if not installs:
        return Check(False, "your Dockerfile has no `RUN pip install ...` step.",
                     "Keep the install step of the original: RUN pip install --no-cache-dir --no-index "
                     "--find-links /app/wheels -r requirements.txt")
    reasons = step_reasons(second)
    missed = [(s, r) for s, r in zip(second.steps, reasons, strict=True) if not s.cached]
    install = installs[0]
    if not install.cached:
        first, why = missed[0]
        return Check(False, f"after editing {edit}, step {install.number} ({install.instruction[:24]}…) ran again: "
                            f"the cache stopped at step {first.number} because {why}.",
                     f"Copy only what the install needs (requirements.txt and wheels/) before the install step, and "
                     f"{edit} with the rest of the code (COPY . .) after it.")
    if not any(re.match(rf"(.*/)?{re.escape(edit)} changed", why) for _, why in missed):
        return Check(False, f"editing {edit} changed nothing in the image: no step missed because of it.",
                     f"The image still needs the app: keep a COPY that copies {edit} (e.g. COPY . .) after the "
                     "install step.")
    first, why = missed[0]
    return Check(True, f"Right: after editing {edit}, the install step (step {install.number}) came from the cache; "
                       f"the cache held until step {first.number}, which missed because {edit} changed.")


# A build error's own words -> what to do about it (the first that matches). Without a match, the error
# message (which names the line) says it all and the hint only points at that line.
_BUILD_ERROR_HINTS = (
    (r"COPY failed|ADD failed|file not found in build context",
     "Each COPY source must exist in the build context (app.py, requirements.txt, wheels/)."),
    (r"unknown instruction",
     "Each line starts with an instruction such as FROM, WORKDIR, COPY, RUN or CMD: check its spelling."),
    (r"\bFROM requires|no FROM|must begin with",
     "Start with the base image: FROM python:3.11-slim."),
    (r"pull access denied|not in the store|ImageNotFound|no such image",
     "Build on the base image this notebook put in the store: FROM python:3.11-slim."),
    (r"\bpip.*returned a non-zero code",
     "That RUN command failed inside the image: pip needs requirements.txt and wheels/ copied in before it runs."),
    (r"returned a non-zero code",
     "That RUN command failed inside the image: the error names it and its exit code."),
)


def _build_error_hint(error: str) -> str:
    """A hint that fits the failure the build reported, not always the one about COPY."""
    for pattern, hint in _BUILD_ERROR_HINTS:
        if re.search(pattern, error, re.IGNORECASE):
            return hint
    where = re.match(r"\S*?:(\d+):", error)
    return (f"Fix line {where.group(1)} of your Dockerfile, as the error says." if where else
            "Fix what the error names, then run this cell again.")


_PIP_INSTALL = re.compile(r"(?:^|[\s;&|(/])(?:pip[0-9.]*|python[0-9.]*\s+-m\s+pip)\s+(?:-\S+\s+)*install\b")


def _runs_pip_install(instruction: str) -> bool:
    """Whether a step is a RUN of ``pip install``, however written: ``pip3``, ``python3 -m pip`` or exec form
    (``RUN ["pip", "install", ...]``)."""
    if not re.match(r"\s*RUN\b", instruction, re.IGNORECASE):
        return False
    words = re.sub(r'\\\n|[\[\]",]', " ", instruction)  # exec form's JSON and line continuations: plain words
    return bool(_PIP_INSTALL.search(words))


__all__ += ["check_install_stays_cached"]


# ------------------------------------------------- venv, VM and container, measured (notebooks 01 and 06)


def _names(answer: object) -> set[str] | None:
    """A set of kinds from {"vm"}, ["VM", "container"], "vm, container"; None when it is not one."""
    items = re.split(r"[\s,]+", answer.strip()) if isinstance(answer, str) else answer
    if not isinstance(items, list | tuple | set | frozenset):
        return None
    names = {str(item).strip().lower() for item in items if str(item).strip()}
    from .compare import KINDS

    return names if names <= set(KINDS) else None


def check_own_kernel(comparison: Comparison, answer: object) -> Check:
    """Which of venv, container and VM ran its own kernel? The truth is the boot IDs measured in *comparison*."""
    from .compare import KINDS, LABELS

    if is_unanswered(answer):
        return not_answered('set `answer` to the set of those with a kernel of their own, e.g. {"venv"}.')
    chosen = _names(answer)
    if chosen is None:
        return Check(False, f"{_shown(answer)} is not a set of names.", 'Use names from "venv", "container", "vm".')
    unmeasured = [comparison[k] for k in KINDS if not comparison[k].measured]
    if unmeasured:
        return cannot_check("this machine could not measure all three. "
                            + " ".join(env.unavailable or "" for env in unmeasured))
    truth = comparison.having("own kernel")
    if chosen == truth:
        return Check(True, f"Right: only {', '.join(sorted(LABELS[k] for k in truth))} booted a kernel of its own "
                           "(another boot ID); the others asked this machine's kernel.")
    if "container" in chosen:
        return Check(False, "the container saw the host's boot ID: it is a process of this machine's kernel.",
                     "An image holds a user space only (files, libraries, programs), never a running kernel.")
    return Check(False, f"{', '.join(sorted(chosen)) or 'nothing'} is not what was measured.",
                 "Compare each column's boot ID (or uname -r) with the host's in the table above.")


def image_python_version(store: Store, image: str) -> str:
    """The Python version *image* carries, asked from a container of it (measured now)."""
    from .compare import CompareError, run_container

    run = run_container(store, image, ["python3", "-c", "import platform; print(platform.python_version())"])
    if run.exit_code != 0:
        raise CompareError(f"python3 did not run in {image} (exit code {run.exit_code})")
    return run.output.strip()


def check_image_python(client: Client, image: str, answer: object) -> Check:
    """Which Python version does *image* carry? Asked from a container of it while checking."""
    if is_unanswered(answer):
        return not_answered(f"set `answer` to the Python version inside {image}, as a string like \"3.9.2\".")
    try:
        truth = image_python_version(client.store, image)
    except PyContainersError as exc:
        return Check(False, f"could not ask {image}: {str(exc).rstrip('.')}.",
                     "This check needs an image with python3 in it, such as python:3.11-slim.")
    given = str(answer).strip().removeprefix("Python").strip()
    if given == truth:
        return Check(True, f"Right: {image} carries Python {truth}, whatever Python the host has.")
    import platform

    if given == platform.python_version():
        return Check(False, f"{given} is this notebook's Python, the one the host (and its venvs) use.",
                     f"Ask the image itself: run python3 --version in a container of {image}.")
    return Check(False, f"{_shown(given)} is not the Python inside {image}.",
                 f"Run `python3 --version` in a container of {image} (pycontainers run --rm {image} ...).")


def check_slowest_vm_phase(report: RaceReport, answer: object) -> Check:
    """Which phase of the VM's start took longest (median over the races)? Within 10% of the longest counts."""
    from .compare import VM_PHASES, phase_meaning

    if is_unanswered(answer):
        return not_answered(f"set `answer` to one of {', '.join(repr(p) for p in VM_PHASES)}.")
    if not report.measured:
        return cannot_check(f"there was no race to look at: {report.unavailable}")
    name = str(answer).strip().lower()
    if name not in VM_PHASES:
        return Check(False, f"{_shown(answer)} is not a VM phase.", f"Use one of {', '.join(VM_PHASES)}.")
    medians = {p: report.median_phase("vm", p) or 0.0 for p in VM_PHASES}
    longest = max(medians, key=lambda p: medians[p])
    if medians[name] >= 0.9 * medians[longest]:
        return Check(True, f"Right: {name} took {medians[name]:.2f} s of the VM's {report.median('vm'):.2f} s "
                           f"({phase_meaning('vm', name)}). A container has no such phase: its kernel is already "
                           "running.")
    return Check(False, f"{name} took {medians[name]:.2f} s, less than {longest} ({medians[longest]:.2f} s).",
                 "Read the VM's bar in the race above: each colour is one phase.")


def check_containers_per_vm(density: DensityReport, answer: object) -> Check:
    """How many of the measured containers use the memory of one measured VM? Within 25% is right."""
    if is_unanswered(answer):
        return not_answered("set `answer` to how many containers use as much memory as one VM (a number).")
    ratio = density.containers_per_vm
    if ratio is None:
        return cannot_check("this machine could not measure both containers and VMs: "
                            f"{' '.join(density.unavailable.values())}")
    if not isinstance(answer, numbers.Real) or isinstance(answer, bool) or not math.isfinite(answer):
        return Check(False, f"{_shown(answer)} is not a number.", "Write a number, e.g. 42.")
    given = float(answer)
    c, v = density.container.per_instance.cost, density.vm.per_instance.cost  # type: ignore[union-attr]
    if abs(given - ratio) <= 0.25 * ratio:
        return Check(True, f"Right: one VM used {human_size(v)}, one container {human_size(c)}: about "
                           f"{ratio:.0f} containers per VM.")
    return Check(False, f"{given:g} is not close to what was measured.",
                 "Divide one VM's memory by one container's (monitor included), both from the table above.")


def cpu_counts(store: Store, image: str = "busybox") -> tuple[int, int]:
    """(CPUs a container of *image* sees, CPUs a VM booted from it sees), by running ``nproc`` in both."""
    from .compare import run_container, run_vm

    container_run = run_container(store, image, ["nproc"])
    vm_run = run_vm(store, image, ["nproc"])
    return int(container_run.output.strip()), int(vm_run.output.strip())


def check_cpu_counts(store: Store, answer: object, image: str = "busybox") -> Check:
    """How many CPUs does a container see, and how many a VM? Measured with ``nproc`` while checking."""
    from .compare import container_unavailable, vm_unavailable

    if is_unanswered(answer):
        return not_answered("set `answer` to (CPUs a container sees, CPUs a VM sees), a pair like (3, 5).")
    given = _pair(answer)
    if given is None:
        return Check(False, f"{_shown(answer)} is not a pair of whole numbers.", "Write (container CPUs, VM CPUs).")
    why = container_unavailable() or vm_unavailable()
    if why:
        return cannot_check(why)
    try:
        truth = cpu_counts(store, image)
    except PyContainersError as exc:
        return Check(False, f"nproc could not be run in both: {str(exc).rstrip('.')}.", "")
    if given == truth:
        return Check(True, f"Right: the container sees this machine's {truth[0]} CPUs, the VM the {truth[1]} its QEMU "
                           "emulates. A container uses the real hardware; a VM gets the hardware it is given.")
    if given[0] != truth[0]:
        return Check(False, f"{given[0]} is not what a container sees.",
                     "A container's processes run on the host's CPUs: compare with len(os.sched_getaffinity(0)) "
                     "here, the CPUs this process may use, which is what nproc counts.")
    return Check(False, f"{given[1]} is not what the VM sees.",
                 "Look at QEMU's command line in pycontainers.vm.qemu_command: -smp says how many CPUs it emulates.")


# ----------------------------------------------------------------------------------------- notebook 07


def _reference_error(text: str, exc: Exception) -> str:
    """What a reference error says after its quoted input (which can be long), cut to a short clause."""
    import json

    reason = str(exc).removeprefix(f"invalid reference {json.dumps(text, ensure_ascii=False)}: ")
    if len(reason) > 90:
        reason = reason.split(" (", 1)[0]  # the rule in brackets goes first, then what the input repeats
    return reason if len(reason) <= 90 else reason[:89] + "…"


def _written_domain(text: str) -> bool:
    """Whether *text* starts with a registry host, by Docker's rule: a first part with a dot or a port, or
    ``localhost``, followed by a slash."""
    first, slash, _ = text.partition("/")
    return bool(slash) and ("." in first or ":" in first or first == "localhost")


def _full_name_mistake(short: str, given: object) -> Check | None:
    """None when *given* is *short* written in full; otherwise the Check that says what is wrong with it."""
    from .reference import DEFAULT_DOMAIN, OFFICIAL_PREFIX, InvalidReference, parse

    truth = parse(short)
    full = str(truth)
    if not isinstance(given, str):
        return Check(False, f"{_shown(given)} is not a name.",
                     'Write each full name as a string, like "docker.io/library/busybox:latest".')
    text = given.strip()
    if text == full:
        return None
    try:
        ref = parse(text, default_tag=None)
    except InvalidReference as exc:
        return Check(False, f"{_shown(given)} is not an image name: {_reference_error(text, exc)}.",
                     "A full name reads registry/repository:tag, like docker.io/library/busybox:latest.")
    if ref.digest is not None:
        return Check(False, f"{_shown(given)} has a digest, but {short!r} names a tag.",
                     "Write registry/repository:tag, without @sha256:...")
    if ref.with_tag(ref.tag or "latest") == truth:  # the same image, written short
        missing, hints = [], []
        if not _written_domain(text):
            missing.append(f"{truth.domain}/")
            hints.append("A name whose first part is no host (no '.', no ':port', not localhost) is on Docker "
                         "Hub, docker.io.")
        if truth.path.startswith(OFFICIAL_PREFIX) and OFFICIAL_PREFIX not in text:
            missing.append(OFFICIAL_PREFIX)
            hints.append("A one-word repository on Docker Hub is an official image, kept under library/.")
        if ref.tag is None:
            missing.append(f":{truth.tag}")
            hints.append("Without a tag, Docker means latest.")
        if missing:
            return Check(False, f"{_shown(given)} names the same image as {short!r}, but leaves out "
                                f"{' and '.join(missing)}.", " ".join(hints))
        return Check(False, f"{_shown(given)} names the same image as {short!r}, but not the way Docker writes it.",
                     f"Write it as Docker stores it: registry/repository:tag, with {truth.domain} as the registry.")
    if ref.domain != truth.domain:
        return Check(False, f"{_shown(given)} is on the registry {ref.domain}, but {short!r} is not.",
                     "The first part of a name is a registry host only if it has a '.' or a ':port' or is "
                     f"localhost; otherwise the name is on Docker Hub ({DEFAULT_DOMAIN}).")
    if ref.path == OFFICIAL_PREFIX + truth.path:
        return Check(False, f"{_shown(given)} puts {short!r} under library/.",
                     "Only official images (a one-word name on Docker Hub) are kept under library/; a name with a "
                     "user or organisation before the slash is not.")
    if ref.path != truth.path:
        return Check(False, f"{_shown(given)} is the repository {ref.path!r}, not the one {short!r} names.",
                     "The repository is everything between the registry host and the tag.")
    return Check(False, f"{_shown(given)} has another tag than {short!r}.",
                 "The tag follows the last ':' after the last '/'; without one, Docker means latest.")


def check_full_names(answers: object) -> Check:
    """Write short image names in full (``registry/repository:tag``) as Docker stores them.

    *answers* maps each short name (the notebook's keys) to the student's full name for it. The truth is the
    engine's parser, which follows Docker's normalisation (``reference.parse``); each kind of slip (the registry,
    ``library/`` or the tag left out, ``library/`` added to a user's repository, a port taken for a tag) gets a
    hint of its own. Names still ``...`` are "not answered yet", the others are checked already.
    """
    from .reference import InvalidReference, parse

    if is_unanswered(answers):
        return not_answered("set `answers` to a dict from each short name to its full name.")
    if not isinstance(answers, dict) or not answers:
        return Check(False, f"{_shown(answers)} is not a dict of names.",
                     'Keep the dict of the cell and replace each ... with a full name, like "docker.io/...".')
    todo = []
    for short, given in answers.items():
        try:
            known = isinstance(short, str) and parse(short) is not None
        except InvalidReference:
            known = False
        if not known:
            return Check(False, f"{_shown(short)} is not one of the short names of the cell.",
                         "Keep the keys of `answers` as they were and change only the values (the ...).")
        if is_unanswered(given):
            todo.append(short)
            continue
        mistake = _full_name_mistake(short, given)
        if mistake is not None:
            return mistake
    if todo:
        return not_answered(f"write {', '.join(todo)} in full too.")
    return Check(True, "Right: every name in full. A name is an address: Docker fills in docker.io for the registry, "
                       "library/ for official images and latest for the tag.")


def push_outcome(progress: object) -> dict[str, str] | None:
    """Each layer's last word in a push's progress: short layer ID -> ``Pushed``, ``Layer already exists`` or
    ``Mounted from ...``. *progress* is what ``client.images.push`` returns (JSON lines; with ``stream`` and
    ``decode`` an iterable of dicts) or the printed lines (``"01f8cdde1605: Pushed"``); None if it holds no
    layer's outcome."""
    import json

    if isinstance(progress, str):
        items: Iterable[object] = progress.splitlines()
    elif isinstance(progress, bytes):
        items = progress.decode(errors="replace").splitlines()
    elif isinstance(progress, Iterable) and not isinstance(progress, dict):
        items = progress
    else:
        return None
    outcome: dict[str, str] = {}
    for item in items:
        event: object = item
        if isinstance(item, bytes):
            item = item.decode(errors="replace")
        if isinstance(item, str):
            try:
                event = json.loads(item)
            except ValueError:
                layer, colon, status = item.partition(": ")
                event = {"id": layer.strip(), "status": status.strip()} if colon else {}
        if not isinstance(event, dict) or not isinstance(event.get("id"), str):
            continue
        status = str(event.get("status", ""))
        if status in ("Pushed", "Layer already exists") or status.startswith("Mounted from"):
            outcome[event["id"]] = status
    return outcome or None


def _layers(count: int) -> str:
    return f"{count} layer{'s' if count != 1 else ''}"


def check_push_prediction(progress: object, answer: object) -> Check:
    """Predict a push: how many layers does it upload, and how many does the registry have already?

    *answer* is ``(uploaded, already there)``; the truth is the push's own progress (``push_outcome``), what
    ``client.images.push`` returned. A push that uploaded nothing gets its own message: the image was pushed
    before (a push cell run twice), and no prediction about a first push can be checked against it.
    """
    if is_unanswered(answer):
        return not_answered("set `answer` to (layers uploaded, layers the registry already had), e.g. (3, 0).")
    given = _pair(answer)
    if given is None:
        return Check(False, f"{_shown(answer)} is not a pair of whole numbers.",
                     "Write (layers uploaded, layers already there), e.g. (3, 0).")
    outcome = None if is_unanswered(progress) else push_outcome(progress)
    if outcome is None:
        return Check(False, "there is no push to compare with.",
                     "Run the cell that pushes, and keep what client.images.push returns.")
    uploaded = sum(status == "Pushed" for status in outcome.values())
    there = len(outcome) - uploaded
    if given == (uploaded, there):
        return Check(True, f"Right: {_layers(uploaded)} uploaded, {_layers(there)} already there. The registry "
                           "was asked about each layer's digest, and a layer whose bytes it has is never sent again.")
    if not uploaded:
        return Check(False, "this push uploaded nothing: the registry had every layer, because this very image was "
                            "pushed before (did the push cell run twice?).",
                     "Give the release new content (another model text), run the push cell once, then check.")
    if sum(given) != len(outcome):
        return Check(False, f"the image has {_layers(len(outcome))}, and your numbers add up to {sum(given)}.",
                     "Count every layer, the base image's too: the push either uploads it or finds it there.")
    if given[0] > uploaded:
        return Check(False, "fewer layers were uploaded than you predicted.",
                     "A push is no build: the registry does not care which layer sits on which. It is asked about "
                     "each layer's digest, and a layer with unchanged bytes has its old digest, wherever it sits.")
    return Check(False, "more layers were uploaded than you predicted.",
                 "A layer whose bytes changed has a new digest, one the registry has never seen: it must be uploaded.")


def check_pulled_by_digest(build_server: Client, tag: str, production: Client, reference: object) -> Check:
    """Pin the image *tag* names by its digest (``repository@sha256:...``) and pull it into *production*.

    The truth: the build server's image under *tag*, whose manifest is the one its push sent (so the registry's
    digest is that manifest's), and the production store, which must hold an image under *reference*. Giving the
    image ID (the config's digest) instead of the manifest's, the digest of another release, a tag, or a reference
    not pulled yet each get a message of their own.
    """
    from .reference import InvalidReference, parse

    want = parse(tag)
    if is_unanswered(reference):
        return not_answered(f"set `pinned` to {want.familiar_name}@sha256:... (the digest of {want.tag}), pull it "
                            "into the production store and run this check.")
    expected = _find(build_server, tag)
    if expected is None:
        return Check(False, f"the build server has no image {want.familiar!r}.", "Run the cells above that build "
                     "and push it.")
    if not isinstance(reference, str):
        return Check(False, f"{_shown(reference)} is not an image reference.",
                     'Write it as a string: "registry/repository@sha256:...".')
    text = reference.strip()
    try:
        ref = parse(text, default_tag=None)
    except InvalidReference as exc:
        return Check(False, f"{_shown(reference)} is not an image reference: {_reference_error(text, exc)}.",
                     "Write registry/repository@sha256: and the 64 hex digits of the digest.")
    if ref.digest is None:
        return Check(False, f"{_shown(reference)} names a tag, and a tag can be moved to other content at any time.",
                     "Pin the content: registry/repository@sha256:..., with the digest of the push's last line "
                     f"({want.tag}: digest: sha256:... size: ...).")
    if ref.name != want.name:
        return Check(False, f"{_shown(reference)} is in the repository {ref.familiar_name}, not in "
                            f"{want.familiar_name}.",
                     "Keep the registry and repository of the tag; replace :tag with @ and the digest.")
    if ref.digest == expected.id:
        return Check(False, "that digest is the image ID: the digest of the image's config.",
                     "A registry names an image by the digest of its manifest: the 'digest:' line of the push "
                     "(or 'Digest:' of a pull), not the IMAGE ID column.")
    if ref.digest != expected.manifest_digest:
        other = next((i for i in build_server.images.list() if i.core.manifest_digest == ref.digest), None)
        named = f"the image tagged {', '.join(other.tags)}" if other is not None and other.tags else "no image"
        return Check(False, f"that digest names {named} on the build server, not {want.familiar}.",
                     f"Take the digest of the last line of the push of {want.tag}: "
                     f"'{want.tag}: digest: sha256:... size: ...'.")
    try:
        pulled = production.images.get(str(ref)).core
    except (PyContainersError, ValueError):
        return Check(False, "the right reference, but the production store does not have that image yet.",
                     "Pull it with the production server's client (its images.pull), then check again.")
    if pulled.id != expected.id:
        return Check(False, f"the production store's image for that digest has another ID than {want.familiar}.",
                     "Pull the reference again into the production store.")
    return Check(True, f"Right: production has {want.familiar} pinned by its digest. {ref.digest[:19]}… names "
                       "these bytes and no others, wherever the tag is moved later.")


__all__ += ["check_full_names", "check_pulled_by_digest", "check_push_prediction", "push_outcome"]
