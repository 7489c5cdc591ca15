"""``pycontainers build`` against Docker's classic builder: transcript, history, cache, Dockerfile semantics,
failures that leave the store untouched, and the resulting root file systems compared with buildah's.

Tests whose Dockerfile has a RUN need root (the step runs in a real container); the others only write
layers and run anywhere. Small contexts are written into ``tmp_path``; ``tests/builds/`` holds the
lecture's example and a small app, copied before a test edits them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import containers_left

from pycontainers import archive
from pycontainers.api import Client, prune_images
from pycontainers.bases import cache_store, copy_image
from pycontainers.build import BuildCancelled, BuildResult, build, cancel_builds, prune_cache, transcript_line
from pycontainers.bundle import flatten
from pycontainers.cli import main
from pycontainers.container import list_containers
from pycontainers.errors import PyContainersError
from pycontainers.image import Image, ImageBuilder, get_image
from pycontainers.store import Store
from pycontainers.tables import history_table

BUILDS = Path(__file__).parent / "builds"
HEX12 = r"[0-9a-f]{12}"
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="RUN steps run in real containers: needs root")


# ------------------------------------------------------------------------------------------- helpers


class Link(str):
    """A context entry that is a symlink to this target."""


class Executable(str):
    """A context file with mode 0755."""


def write_context(root: Path, files: dict[str, str | bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, Link):
            os.symlink(data, path)
        elif isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
            if isinstance(data, Executable):
                os.chmod(path, 0o755)
    return root


def copy_context(name: str, dest: Path) -> Path:
    shutil.copytree(BUILDS / name, dest)
    return dest


def assert_no_containers(store: Store) -> None:
    left = containers_left(store.home)
    assert left == [], f"build left containers behind: {left}"


def do_build(store: Store, context: Path, **kwargs: Any) -> BuildResult:
    """Build, then check what every build must leave: no container, a sound store."""
    result = build(store, context, **kwargs)
    assert_no_containers(store)
    assert store.check() == []
    return result


def transcript(result: BuildResult) -> list[str]:
    return [line for event in result.events if (line := transcript_line(event)) is not None]


def outcomes(result: BuildResult) -> dict[int, str]:
    """Step number -> "cache" for a hit, else the miss reason (FROM and ARG-before-FROM have neither)."""
    out: dict[int, str] = {}
    number = 0
    for event in result.events:
        if event["type"] == "step":
            number = event["number"]
        elif event["type"] == "cache":
            out[number] = "cache" if event["hit"] else event["reason"]
    return out


def step_ids(result: BuildResult) -> list[str]:
    """The 12-hex image ID each step printed (`` ---> abc...``), FROM included."""
    return [m.group(1) for line in transcript(result) if (m := re.fullmatch(rf" ---> ({HEX12})", line))]


def run(store: Store, image: str, *command: str) -> str:
    out = Client(store.home).containers.run(image, list(command) or None, remove=True)
    assert_no_containers(store)
    return out.decode()  # type: ignore[union-attr]


def other_store(path: Path) -> Store:
    """A second, independent store holding busybox."""
    store = Store(path)
    cache = cache_store()
    copy_image(cache, get_image(cache, "busybox"), store)
    return store


def layer_names(image: Image, index: int = -1) -> list[str]:
    return [m.name for m in image.layer_members(index % len(image.layers))]


def layer_members(image: Image, index: int = -1) -> dict[str, tarfile.TarInfo]:
    return {m.name: m for m in image.layer_members(index % len(image.layers))}


def sha(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o640
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def output_of(result: BuildResult) -> str:
    return "".join(e["text"] for e in result.events if e["type"] == "output")


# ------------------------------------------------------------------------------- the lecture's example


@needs_root
def test_lecture_example_transcript_run_cache_and_history(busybox_store: Store, tmp_path: Path) -> None:
    store = busybox_store
    context = copy_context("hello", tmp_path / "hello")
    first = do_build(store, context, tags=["hello"])
    lines = transcript(first)
    base = get_image(store, "busybox")

    steps = [line for line in lines if line.startswith("Step ")]
    assert steps == ["Step 1/4 : FROM busybox",
                     'Step 2/4 : RUN mkdir -p /greetings && echo "built by pycontainers" > /greetings/note.txt',
                     'Step 3/4 : ENTRYPOINT ["/bin/echo", "Hello"]',
                     'Step 4/4 : CMD ["world"]']
    running = [line for line in lines if line.startswith(" ---> Running in ")]
    assert len(running) == 1 and re.fullmatch(rf" ---> Running in {HEX12}", running[0])
    ids = step_ids(first)
    assert len(ids) == 4 and ids[0] == base.short_id
    assert ids[-1] == first.image.short_id
    assert lines[-2:] == [f"Successfully built {first.image.short_id}", "Successfully tagged hello:latest"]
    # every step image is new, and the RUN step's line comes after its container ran
    assert len(set(ids)) == 4
    assert lines.index(running[0]) < lines.index(f" ---> {ids[1]}")

    assert run(store, "hello") == "Hello world\n"
    assert run(store, "hello", "Pavlos") == "Hello Pavlos\n"

    second = do_build(store, context, tags=["hello"])
    again = transcript(second)
    assert again.count(" ---> Using cache") == 3 == len(outcomes(second))
    assert set(outcomes(second).values()) == {"cache"}
    assert not [line for line in again if "Running in" in line]
    assert second.image.id == first.image.id
    assert step_ids(second) == ids

    image = get_image(store, "hello")
    rows = history_table(image).rows
    assert [r["ID"] for r in rows[:4]] == ids[::-1]  # the step images, newest first, then the base's own
    assert rows[4:] and all(r["ID"] == "<missing>" for r in rows[4:])  # the base's earlier steps

    history = image.config["history"]
    assert history[-1] == {"created": history[-1]["created"], "created_by": '/bin/sh -c #(nop)  CMD ["world"]',
                           "empty_layer": True}
    assert history[-2]["created_by"] == '/bin/sh -c #(nop)  ENTRYPOINT ["/bin/echo" "Hello"]'
    assert history[-2]["empty_layer"] is True
    assert history[-3]["created_by"] == ('/bin/sh -c mkdir -p /greetings && echo "built by pycontainers" > '
                                         "/greetings/note.txt")
    assert not history[-3].get("empty_layer")
    assert len(image.layers) == len(base.layers) + 1
    assert store.check() == []


@needs_root
def test_run_layer_holds_only_what_the_command_wrote(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo hi > /x\n"
                                                             "RUN rm /etc/passwd && mkdir /d && touch /d/f\n"})
    result = do_build(busybox_store, context)
    image = result.image
    assert layer_names(image, -2) == ["x"]  # no dev/, proc/, sys/, etc/hostname, etc/hosts, etc/resolv.conf
    members = layer_members(image, -1)
    assert sorted(members) == ["d", "d/f", "etc", "etc/.wh.passwd"]
    assert members["d/f"].mtime == 0 and (members["d/f"].uid, members["d/f"].gid) == (0, 0)
    stubs = {"dev", "proc", "sys", "etc/hostname", "etc/hosts", "etc/resolv.conf"}
    for index in range(1, len(image.layers)):
        assert not stubs & {m.name.rstrip("/") for m in image.layer_members(index)}


# ---------------------------------------------------------------------------------- reproducibility


def _context_with_mtimes(root: Path, files: dict[str, str | bytes], mtime: int) -> Path:
    write_context(root, files)
    for path in [root, *root.rglob("*")]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return root


REPRO_FILES: dict[str, str | bytes] = {
    "Dockerfile": "FROM busybox\nCOPY . /app/\nCOPY --chown=1000:1000 a.txt /owned/a.txt\nENV A=1\n"
                  'LABEL built="by a test"\nCMD ["cat", "/app/a.txt"]\n',
    "a.txt": "alpha\n",
    "sub/b.txt": "beta\n",
}


@needs_root
@pytest.mark.parametrize("when", ["starting", "running"])
def test_a_cancelled_build_removes_its_run_steps_container_and_runs_no_more_steps(
        busybox_store: Store, tmp_path: Path, when: str) -> None:
    """``cancel_builds`` (a command server's worker whose client was killed): whether the RUN step's container
    is being started or is running, it is killed and removed at once, and the build stops there."""
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo step running; sleep 30\nRUN touch /never\n")
    seen: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        seen.append(event["type"])
        if (when == "starting" and event["type"] == "running") or (
                when == "running" and "step running" in event.get("text", "")):
            assert cancel_builds()

    with pytest.raises(BuildCancelled, match="the build was cancelled"):
        build(busybox_store, tmp_path, tags=["cancelled"], on_event=on_event)
    assert_no_containers(busybox_store)
    assert seen.count("step") == 2 and "removed" in seen  # FROM and the first RUN, whose container went
    assert not cancel_builds()  # nothing left in progress


@needs_root
def test_a_build_cancelled_after_its_last_step_tags_nothing(busybox_store: Store, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo last step\n")

    def on_event(event: dict[str, Any]) -> None:
        if event["type"] == "removed":  # the RUN step is done: only tagging is left
            assert cancel_builds()

    with pytest.raises(BuildCancelled):
        build(busybox_store, tmp_path, tags=["cancelled"], on_event=on_event)
    assert [e.ref for e in busybox_store.entries() if e.ref and "cancelled" in e.ref] == []


def test_same_context_in_two_stores_gives_the_same_image_id(busybox_store: Store, tmp_path: Path) -> None:
    first = do_build(busybox_store, _context_with_mtimes(tmp_path / "one", REPRO_FILES, 1_000_000))
    second_store = other_store(tmp_path / "other-store")
    second = do_build(second_store, _context_with_mtimes(tmp_path / "two", REPRO_FILES, 1_700_000_000))
    assert outcomes(second) == {2: "first build", **{n: "parent changed because step 2 missed"
                                                     for n in range(3, 7)}}
    assert first.image.id == second.image.id
    assert first.image.manifest_digest == second.image.manifest_digest
    assert all(m.mtime == 0 for m in first.image.layer_members(len(first.image.layers) - 2))


@needs_root
def test_same_context_with_run_in_two_stores_gives_the_same_image_id(busybox_store: Store, tmp_path: Path) -> None:
    files = {**REPRO_FILES, "Dockerfile": "FROM busybox\nCOPY . /app/\n"
                                          "RUN mkdir -p /out/d && cp /app/a.txt /out/ && ln -s a.txt /out/l && "
                                          "chmod 0600 /out/a.txt\nCMD [\"ls\", \"/out\"]\n"}
    first = do_build(busybox_store, _context_with_mtimes(tmp_path / "one", files, 1_000_000))
    second_context = _context_with_mtimes(tmp_path / "two", files, 1_600_000_000)
    second = do_build(other_store(tmp_path / "other-store"), second_context)
    assert first.image.id == second.image.id
    no_cache = do_build(busybox_store, tmp_path / "one", no_cache=True)
    assert set(outcomes(no_cache).values()) == {"--no-cache"}
    assert no_cache.image.id == first.image.id


# --------------------------------------------------------------------------------------- cache rules


CACHE_DOCKERFILE = "FROM busybox\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nENV X=1\nCOPY . /all/\n"
CACHE_FILES: dict[str, str | bytes] = {
    "Dockerfile": CACHE_DOCKERFILE,
    "a.txt": "alpha\n",
    "b.txt": "beta\n",
    "ignored.log": "log\n",
    ".dockerignore": "*.log\n",
}


@pytest.fixture
def cached(busybox_store: Store, tmp_path: Path) -> tuple[Store, Path, BuildResult]:
    """A store that has built CACHE_FILES once, and that context."""
    context = write_context(tmp_path / "ctx", CACHE_FILES)
    first = do_build(busybox_store, context, tags=["cached"])
    assert set(outcomes(first)) == {2, 3, 4, 5}
    return busybox_store, context, first


def test_editing_a_copied_file_misses_that_step_and_the_later_ones(cached: tuple[Store, Path, BuildResult]) -> None:
    store, context, first = cached
    (context / "b.txt").write_text("beta, edited\n")
    result = do_build(store, context)
    old, new = sha("beta\n")[:4], sha("beta, edited\n")[:4]
    assert outcomes(result) == {
        2: "cache",
        3: f"/b.txt changed (sha256 {old}… → {new}…)",
        4: "parent changed because step 3 missed",
        5: "parent changed because step 3 missed",
    }
    assert " ---> Using cache" in transcript(result)
    assert any(line.startswith(" ---> Cache miss: /b.txt changed (sha256 ") for line in transcript(result))
    assert result.image.id != first.image.id


def test_touching_only_the_mtime_still_hits(cached: tuple[Store, Path, BuildResult]) -> None:
    store, context, first = cached
    for name in ("a.txt", "b.txt"):
        os.utime(context / name, (123456, 123456))
    result = do_build(store, context)
    assert set(outcomes(result).values()) == {"cache"}
    assert result.image.id == first.image.id


def test_chmod_of_a_copied_file_misses(cached: tuple[Store, Path, BuildResult]) -> None:
    store, context, first = cached
    os.chmod(context / "a.txt", 0o755)
    result = do_build(store, context)
    assert outcomes(result)[2] != "cache" and "a.txt" in outcomes(result)[2]
    assert outcomes(result)[3] == "parent changed because step 2 missed"
    assert layer_members(result.image, 1)["a.txt"].mode == 0o755
    assert result.image.id != first.image.id


def test_chmod_miss_reason_names_the_mode(cached: tuple[Store, Path, BuildResult]) -> None:
    store, context, _ = cached
    os.chmod(context / "a.txt", 0o755)
    reason = outcomes(do_build(store, context))[2]
    assert "644" in reason and "755" in reason


def test_changing_an_ignored_file_still_hits(cached: tuple[Store, Path, BuildResult]) -> None:
    store, context, first = cached
    (context / "ignored.log").write_text("many more log lines\n")
    (context / "new.log").write_text("a new ignored file\n")
    result = do_build(store, context)
    assert set(outcomes(result).values()) == {"cache"}
    assert result.image.id == first.image.id


def test_no_cache_misses_every_step_and_says_so(cached: tuple[Store, Path, BuildResult]) -> None:
    store, context, first = cached
    result = do_build(store, context, no_cache=True)
    assert outcomes(result) == {n: "--no-cache" for n in (2, 3, 4, 5)}
    assert " ---> Using cache" not in transcript(result)
    assert result.image.id == first.image.id  # nothing changed: the same image again


def test_editing_an_instruction_says_the_instruction_changed(cached: tuple[Store, Path, BuildResult]) -> None:
    store, context, _ = cached
    (context / "Dockerfile").write_text(CACHE_DOCKERFILE.replace("ENV X=1", "ENV X=2"))
    result = do_build(store, context)
    assert outcomes(result)[2] == outcomes(result)[3] == "cache"
    assert "instruction changed" in outcomes(result)[4]


def test_changing_chown_misses(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY --chown=1000:1000 a /a\n", "a": "A"})
    do_build(busybox_store, context)
    (context / "Dockerfile").write_text("FROM busybox\nCOPY --chown=2000:2000 a /a\n")
    result = do_build(busybox_store, context)
    assert layer_members(result.image)["a"].uid == 2000
    assert outcomes(result)[2] != "cache"


def test_changing_an_added_archive_misses(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nADD pkg.tar.gz /opt/\n",
                                               "pkg.tar.gz": tar_gz({"inner.txt": b"aaaa"})})
    do_build(busybox_store, context)
    (context / "pkg.tar.gz").write_bytes(tar_gz({"inner.txt": b"bbbb"}))  # same size, new content
    result = do_build(busybox_store, context)
    assert outcomes(result)[2] != "cache"
    with result.image.open_layer(-1 % len(result.image.layers)) as f, tarfile.open(fileobj=f) as tar:
        assert tar.extractfile("opt/inner.txt").read() == b"bbbb"  # type: ignore[union-attr]


@needs_root
def test_build_arg_change_misses_the_first_run_that_sees_it(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nARG VERSION=1.0\nENV E=1\n"
                                                             "RUN echo $VERSION > /version\nRUN echo after\n"})
    first = do_build(busybox_store, context)
    assert do_build(busybox_store, context).image.id == first.image.id
    changed = do_build(busybox_store, context, build_args={"VERSION": "2.0"})
    assert outcomes(changed) == {2: "cache", 3: "cache", 4: "ARG VERSION changed (1.0 → 2.0)",
                                 5: "parent changed because step 4 missed"}
    assert " ---> Cache miss: ARG VERSION changed (1.0 → 2.0)" in transcript(changed)
    history = changed.image.config["history"]
    assert history[-2]["created_by"] == "|1 VERSION=2.0 /bin/sh -c echo $VERSION > /version"
    assert history[-4]["created_by"] == "/bin/sh -c #(nop)  ARG VERSION=1.0"
    assert run(busybox_store, changed.image.id, "cat", "/version") == "2.0\n"
    assert do_build(busybox_store, context, build_args={"VERSION": "2.0"}).image.id == changed.image.id


def test_step_results_match_the_events(cached: tuple[Store, Path, BuildResult]) -> None:
    store, context, first = cached
    assert [(s.number, s.cached, s.reason, s.line) for s in first.steps] == [
        (2, False, "first build", 2), (3, False, "parent changed because step 2 missed", 3),
        (4, False, "parent changed because step 2 missed", 4), (5, False, "parent changed because step 2 missed", 5)]
    assert [s.image_id[7:19] for s in first.steps] == step_ids(first)[1:]
    created_by = [h["created_by"] for h in first.image.config["history"][-4:]]
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY file:[0-9a-f]{64} in /a\.txt ", created_by[0])
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY dir:[0-9a-f]{64} in /all/ ", created_by[3])
    again = do_build(store, context)
    assert [(s.cached, s.reason) for s in again.steps] == [(True, "")] * 4


@needs_root
def test_step_results_carry_the_miss_reason_of_run_steps(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo one\n"})
    result = do_build(busybox_store, context)
    assert outcomes(result) == {2: "first build"}
    assert [(s.number, s.cached, s.line) for s in result.steps] == [(2, False, 2)]
    assert result.steps[0].reason == "first build"


@needs_root
def test_dependency_manifest_pattern(busybox_store: Store, tmp_path: Path) -> None:
    store = busybox_store
    context = copy_context("pyapp", tmp_path / "pyapp")
    first = do_build(store, context, tags=["pyapp"])
    assert run(store, "pyapp") == 'print("hello from app.py")\n'
    files = sorted(p for p in get_image(store, "pyapp").filesystem() if p.startswith("app/"))
    assert files == ["app/.dockerignore", "app/app.py", "app/requirements.txt"]  # no *.log, no Dockerfile

    (context / "app.py").write_text('print("edited")\n')
    edited = do_build(store, context, tags=["pyapp"])
    old, new = sha((BUILDS / "pyapp" / "app.py").read_bytes())[:4], sha('print("edited")\n')[:4]
    assert outcomes(edited) == {2: "cache", 3: "cache", 4: "cache", 5: f"/app/app.py changed (sha256 {old}… → {new}…)",
                                6: "parent changed because step 5 missed"}
    assert not [e for e in edited.events if e["type"] == "running"]  # the dependency step did not run

    (context / "requirements.txt").write_text("flask==3.0\nrequests==2.32\n")
    deps = do_build(store, context, tags=["pyapp"])
    assert outcomes(deps)[2] == "cache"
    assert outcomes(deps)[3].startswith("/app/requirements.txt changed (sha256 ")
    assert outcomes(deps)[4] == outcomes(deps)[5] == "parent changed because step 3 missed"
    assert len([e for e in deps.events if e["type"] == "running"]) == 1
    assert run(store, deps.image.id, "cat", "/installed-count").strip() == "2"
    assert first.image.id != edited.image.id != deps.image.id


def test_cache_survives_a_new_store_object_and_prune_drops_it(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", CACHE_FILES)
    first = do_build(busybox_store, context, tags=["cached"])
    cache_manifests = json.loads((busybox_store.home / "buildcache.json").read_text())["manifests"]
    assert len(cache_manifests) == 4
    intermediate = [d for d in cache_manifests if d != first.image.manifest_digest]
    assert len(intermediate) == 3

    reopened = Store(busybox_store.home)  # a new process, as after a restart
    reopened.gc()  # the cache file is a gc root: the intermediate images stay
    assert all(reopened.has_blob(d) for d in cache_manifests)
    again = do_build(reopened, context, tags=["cached"])
    assert set(outcomes(again).values()) == {"cache"}
    assert again.image.id == first.image.id

    assert prune_cache(reopened) == 4
    reopened.gc()
    assert not any(reopened.has_blob(d) for d in intermediate)
    assert reopened.check() == []
    assert get_image(reopened, "cached").id == first.image.id  # the tagged result is kept
    after = do_build(reopened, context, tags=["cached"])
    assert outcomes(after)[2] == "first build"
    assert " ---> Using cache" not in transcript(after)
    assert after.image.id == first.image.id


def test_image_prune_keeps_the_cached_intermediate_images(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", CACHE_FILES)
    first = do_build(busybox_store, context, tags=["cached"])
    untagged = do_build(busybox_store, write_context(tmp_path / "other", {"Dockerfile": "FROM busybox\nENV Z=1\n"}))
    cache_manifests = json.loads((busybox_store.home / "buildcache.json").read_text())["manifests"]
    report = prune_images(busybox_store)
    assert {"Deleted": untagged.image.id} in report["ImagesDeleted"]  # a dangling result is pruned...
    assert all(busybox_store.has_blob(d) for d in cache_manifests)  # ...but not what the cache holds
    again = do_build(busybox_store, context, tags=["cached"])
    assert set(outcomes(again).values()) == {"cache"}
    assert again.image.id == first.image.id
    assert busybox_store.check() == []


def test_image_prune_during_a_build_waits_for_it(busybox_store: Store, tmp_path: Path,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    """A build's steps are referenced by nothing until it ends, and its RUN steps run on their unpacked layers:
    an ``image prune`` meanwhile (another terminal, another kernel) waits for the build, and says so, rather
    than delete them (the build then tagged an image whose layer was gone, or its step lost /one)."""
    import threading
    import time

    context = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nRUN echo one > /one\nRUN sleep 1.5 && cat /one > /two\n"})
    results: list[BuildResult] = []
    builder = threading.Thread(target=lambda: results.append(build(busybox_store, context, tags=["raced"])))
    builder.start()
    try:
        deadline = time.monotonic() + 60
        while not any(c.name.startswith("build-") and c.status == "running" for c in
                      list_containers(busybox_store)):  # step 3 runs on step 2's layer
            assert builder.is_alive() and time.monotonic() < deadline, "the RUN step never ran"
            time.sleep(0.02)
        prune_images(busybox_store, all_images=False)
    finally:
        builder.join(60)
    assert results, "the build failed"
    assert "waiting for a build, pull or load in progress to finish" in capfd.readouterr().err
    assert busybox_store.check() == []
    assert Client(busybox_store.home).containers.run("raced", ["cat", "/two"], remove=True) == b"one\n"


def test_the_next_build_removes_the_step_containers_of_a_killed_builder(busybox_store: Store,
                                                                         tmp_path: Path) -> None:
    """A builder killed outright (SIGKILL: no clean-up of its own ran) leaves its RUN step's container; the
    next build removes it, and leaves alone those of builds still under way."""
    from pycontainers.build import BUILDER_LABEL
    from pycontainers.container import create_from_image, process_start_time
    from pycontainers.container import remove as kept_remove

    gone = subprocess.Popen(["sleep", "60"])
    dead = f"{gone.pid}:{process_start_time(gone.pid)}"
    gone.kill()
    gone.wait()
    create_from_image(busybox_store, "busybox", ["true"], name="build-orphaned", labels={BUILDER_LABEL: dead})
    alive = f"{os.getpid()}:{process_start_time(os.getpid())}"
    create_from_image(busybox_store, "busybox", ["true"], name="build-under-way", labels={BUILDER_LABEL: alive})
    build(busybox_store, write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nENV A=1\n"}))
    [kept] = list_containers(busybox_store)
    assert kept.name == "build-under-way"
    kept_remove(kept)


def test_copy_follows_the_images_links_on_its_way_and_refuses_a_file(busybox_store: Store, tmp_path: Path) -> None:
    """As Docker's COPY: a destination through a link to a directory (debian's /bin -> usr/bin) lands where the
    link points, and the link stays (a directory in its place would hide /bin/sh); through a file: refused."""
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nRUN mkdir -p /usr/lib2 && ln -s usr/lib2 /lib2 && ln -s /usr/lib2 /abs\n"
                      "COPY f /lib2/\nCOPY f /abs/g\nCOPY f /lib2\n",
        "f": "content\n"})
    image = do_build(busybox_store, context, tags=["linked"]).image
    fs = image.filesystem()
    assert fs["lib2"].kind == "symlink" and fs["abs"].kind == "symlink"
    assert {"usr/lib2/f", "usr/lib2/g"} <= set(fs) and "lib2/f" not in fs
    out = Client(busybox_store.home).containers.run("linked", ["sh", "-c", "cat /lib2/f /abs/g"], remove=True)
    assert out == b"content\ncontent\n"
    (context / "Dockerfile").write_text("FROM busybox\nCOPY f /bin/busybox/x\n")
    with pytest.raises(PyContainersError, match="Dockerfile:2: COPY: cannot copy to non-directory: /bin/busybox"):
        build(busybox_store, context)


def test_an_image_with_the_same_layer_twice_runs(busybox_store: Store, tmp_path: Path) -> None:
    """The same COPY again after the file was deleted makes the very same layer twice; overlayfs refuses a
    lowerdir given twice (ELOOP), so it is mounted once, at its topmost place (the same view)."""
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY f /f\nRUN rm /f\nCOPY f /f\n",
                                               "f": "back again\n"})
    image = do_build(busybox_store, context, tags=["twice"]).image
    assert image.layers[1].digest == image.layers[3].digest
    out = Client(busybox_store.home).containers.run("twice", ["cat", "/f"], remove=True)
    assert out == b"back again\n"


def test_run_network_and_mount_flags(busybox_store: Store, tmp_path: Path) -> None:
    """RUN --network=none or default runs as the build does; host needs a build that allows it (BuildKit's
    network.host entitlement); --mount is not done here, and the step says so rather than pretend."""
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN --network=host true\n"})
    with pytest.raises(PyContainersError, match="Dockerfile:2: RUN --network=host needs a build that allows it"):
        build(busybox_store, context)
    (context / "Dockerfile").write_text("FROM busybox\nRUN --network=none --mount=type=cache,target=/c "
                                        "ls /sys/class/net > /nets\n")
    result = do_build(busybox_store, context, tags=["flags"])
    notes = "".join(e["text"] for e in result.events if e["type"] == "output")
    assert "note: this builder runs RUN without --mount" in notes
    assert Client(busybox_store.home).containers.run("flags", ["cat", "/nets"], remove=True) == b"lo\n"


def test_a_build_on_an_unreadable_store_says_so(busybox_store: Store, tmp_path: Path) -> None:
    """Not "pull access denied for busybox": the store's index cannot be read, and the build says that."""
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\n"})
    index = busybox_store.layout / "index.json"
    text = index.read_text()
    index.write_text(text[: len(text) // 2])
    try:
        with pytest.raises(PyContainersError, match=r"Dockerfile:1: .*index\.json cannot be read"):
            build(busybox_store, context)
    finally:
        index.write_text(text)


@pytest.mark.parametrize("content", ["[]", "null", '{"steps": []}', '{"steps": {"k": "x"}, "parents": 3}',
                                     '{"manifests": "abc"}'])
def test_a_damaged_build_cache_is_started_anew_not_an_internal_error(busybox_store: Store, tmp_path: Path,
                                                                      content: str) -> None:
    (busybox_store.home / "buildcache.json").write_text(content)
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nENV A=1\n"})
    first = do_build(busybox_store, context)
    assert outcomes(first) == {2: "first build"}
    prune_images(busybox_store)
    assert outcomes(do_build(busybox_store, context)) == {2: "cache"}  # (a sound cache again)


# ------------------------------------------------------------------------------ Dockerfile semantics


def test_env_is_used_by_later_instructions(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nENV DIR=/app\nWORKDIR $DIR\nCOPY a ${DIR}/\nENV a=1\nENV a=2 b=$a\n"
                      "LABEL dir=$DIR\n",
        "a": "A"})
    image = do_build(busybox_store, context).image
    assert image.settings["WorkingDir"] == "/app"
    assert "app/a" in image.filesystem()
    env = image.settings["Env"]
    assert env[1:] == ["DIR=/app", "a=2", "b=1"]  # one ENV line sees the env from before it: b gets the old a
    assert image.labels["dir"] == "/app"
    assert image.config["history"][-2]["created_by"] == "/bin/sh -c #(nop)  ENV a=2 b=1"


def test_arg_before_from_picks_the_base(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "ARG TAG=latest\nFROM busybox:${TAG}\nENV X=1\n"})
    result = do_build(busybox_store, context)
    assert [line for line in transcript(result) if line.startswith("Step")] == [
        "Step 1/3 : ARG TAG=latest", "Step 2/3 : FROM busybox:${TAG}", "Step 3/3 : ENV X=1"]
    assert step_ids(result)[0] == get_image(busybox_store, "busybox").short_id
    with pytest.raises(PyContainersError, match=r"^Dockerfile:2: .*busybox:1\.99.*no registry"):
        do_build(busybox_store, context, build_args={"TAG": "1.99"})


def test_workdir_is_relative_to_the_previous_one(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nWORKDIR /a\nWORKDIR b\nWORKDIR c\n"
                                                             "COPY f .\nCOPY f g/\n", "f": "F"})
    image = do_build(busybox_store, context).image
    assert image.settings["WorkingDir"] == "/a/b/c"
    assert {"a/b/c/f", "a/b/c/g/f"} <= set(image.filesystem())
    assert image.config["history"][-3]["created_by"] == "/bin/sh -c #(nop) WORKDIR /a/b/c"


def test_dot_dot_in_workdir_and_copy_destinations_is_cleaned(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nWORKDIR /a/b\nWORKDIR ..\n"
                                                             "COPY f ../y\nCOPY f /x/../z\n", "f": "F"})
    image = do_build(busybox_store, context).image
    assert image.settings["WorkingDir"] == "/a"
    assert layer_names(image, -2) == ["y"]
    assert layer_names(image, -1) == ["z"]


def test_workdir_creates_the_directory_in_the_image(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nWORKDIR /srv/app\nCMD [\"pwd\"]\n"})
    fs = do_build(busybox_store, context).image.filesystem()
    assert fs["srv/app"].kind == "directory" and fs["srv/app"].mode == 0o755


@needs_root
def test_user_applies_to_run_and_to_the_config(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nUSER 1000:1000\nRUN id -u; id -g\n"
                                                             "USER nobody\nRUN id -u; touch /tmp/made\n"
                                                             "COPY f /f\n", "f": "F"})
    result = do_build(busybox_store, context)
    assert output_of(result).split() == ["1000", "1000", "65534"]
    assert result.image.settings["User"] == "nobody"
    made = layer_members(result.image, -2)["tmp/made"]
    assert (made.uid, made.gid) == (65534, 65534)
    assert (layer_members(result.image)["f"].uid, layer_members(result.image)["f"].gid) == (0, 0)  # COPY ignores USER


@needs_root
def test_shell_changes_how_run_runs(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": 'FROM busybox\nSHELL ["/bin/sh", "-xc"]\n'
                                                             "RUN echo shelled\nCMD echo at run time\n"})
    result = do_build(busybox_store, context)
    assert "+ echo shelled" in output_of(result)
    image = result.image
    assert image.settings["Shell"] == ["/bin/sh", "-xc"]
    assert image.settings["Cmd"] == ["/bin/sh", "-xc", "echo at run time"]
    assert image.config["history"][-2]["created_by"] == "/bin/sh -xc echo shelled"


def test_shell_prefixes_metadata_history_lines(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": 'FROM busybox\nSHELL ["/bin/ash", "-c"]\nENV X=1\n'})
    history = do_build(busybox_store, context).image.config["history"]
    assert history[-1]["created_by"] == "/bin/ash -c #(nop)  ENV X=1"


def test_metadata_lands_in_the_config_with_dockers_keys(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": (
        "FROM busybox\nARG PORT=80\nEXPOSE $PORT 53/udp\nLABEL version=1.0 \"description\"=\"a demo\"\n"
        'VOLUME ["/data"]\nVOLUME /logs\nSTOPSIGNAL SIGTERM\n'
        "HEALTHCHECK --interval=5s --retries=3 CMD wget -q -O- http://localhost/ || exit 1\n")})
    image = do_build(busybox_store, context).image
    settings = image.settings
    assert settings["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert {k: v for k, v in settings["Labels"].items() if not k.startswith("io.pycontainers")} == {
        "version": "1.0", "description": "a demo"}
    assert settings["Volumes"] == {"/data": {}, "/logs": {}}
    assert settings["StopSignal"] == "SIGTERM"
    assert settings["Healthcheck"] == {"Test": ["CMD-SHELL", "wget -q -O- http://localhost/ || exit 1"],
                                       "Interval": 5_000_000_000, "Retries": 3}
    assert all(h.get("empty_layer") for h in image.config["history"][-8:])
    assert len(image.layers) == 1


def test_expose_a_port_range(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nEXPOSE 8000-8002\n"})
    assert do_build(busybox_store, context).image.settings["ExposedPorts"] == {
        "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}}


def test_entrypoint_resets_an_inherited_cmd_and_cmd_shell_form(busybox_store: Store, tmp_path: Path) -> None:
    def settings(dockerfile: str, name: str) -> dict[str, Any]:
        context = write_context(tmp_path / name, {"Dockerfile": dockerfile})
        return do_build(busybox_store, context).image.settings

    assert get_image(busybox_store, "busybox").settings["Cmd"] == ["sh"]
    only_entry = settings('FROM busybox\nENTRYPOINT ["/bin/echo"]\n', "entry")
    assert only_entry["Entrypoint"] == ["/bin/echo"] and not only_entry.get("Cmd")
    cmd_then_entry = settings('FROM busybox\nCMD ["x"]\nENTRYPOINT ["/bin/echo"]\n', "cmd-entry")
    assert cmd_then_entry["Cmd"] == ["x"]  # a CMD of this stage is kept
    shell_forms = settings("FROM busybox\nCMD echo $HOME\nENTRYPOINT exec top -b\n", "shell")
    assert shell_forms["Entrypoint"] == ["/bin/sh", "-c", "exec top -b"]
    # invalid JSON is not an error: Docker takes the text as shell form
    bad_json = settings('FROM busybox\nCMD ["echo", "hi"\n', "bad-json")
    assert bad_json["Cmd"] == ["/bin/sh", "-c", '["echo", "hi"']


@needs_root
def test_cmd_shell_form_runs_through_the_shell(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nENV WHO=shell\nCMD echo hello $WHO\n"})
    image = do_build(busybox_store, context).image
    assert image.settings["Cmd"] == ["/bin/sh", "-c", "echo hello $WHO"]
    assert run(busybox_store, image.id) == "hello shell\n"


MULTISTAGE = ("FROM busybox AS builder\nCOPY src/ /build/\nENV STAGE=builder\n"
              "FROM busybox\nCOPY --from=builder /build/main.txt /app/from-name.txt\n"
              "COPY --from=0 /build /app/all\nCMD [\"cat\", \"/app/from-name.txt\"]\n")


def test_multi_stage_copy_from_name_and_index(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": MULTISTAGE, "src/main.txt": "main\n",
                                               "src/lib/util.txt": "util\n"})
    image, events = Client(busybox_store.home).images.build(str(context), tag="multi")
    assert events[-1] == {"type": "tagged", "name": "docker.io/library/multi:latest"}
    assert_no_containers(busybox_store)
    fs = image.core.filesystem()
    assert fs["app/from-name.txt"].kind == "file"
    assert {"app/all/main.txt", "app/all/lib/util.txt"} <= set(fs)
    assert not any(p.startswith("build") for p in fs)  # the builder's files stay in the builder
    assert "STAGE=builder" not in image.core.settings["Env"]
    assert image.core.settings["Cmd"] == ["cat", "/app/from-name.txt"]
    assert [e["instruction"] for e in events if e["type"] == "step"][3] == "FROM busybox"


def test_target_stops_at_the_named_stage(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": MULTISTAGE, "src/main.txt": "main\n"})
    result = do_build(busybox_store, context, target="builder", tags=["builder-only"])
    assert "STAGE=builder" in result.image.settings["Env"]
    assert "build/main.txt" in result.image.filesystem()
    steps = [line for line in transcript(result) if line.startswith("Step")]
    assert steps == ["Step 1/3 : FROM busybox AS builder", "Step 2/3 : COPY src/ /build/",
                     "Step 3/3 : ENV STAGE=builder"]
    with pytest.raises(PyContainersError, match="target nope"):
        do_build(busybox_store, context, target="nope")


def test_copy_directory_rename_and_glob_rules(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY dir /dst\nCOPY a b /multi/\nCOPY a /newname\nCOPY *.txt /glob/\n",
        "dir/top": "t", "dir/sub/deep": "d", "a": "A", "b": "B", "x.txt": "x", "y.txt": "y", "z.md": "z",
        "dir/nested.txt": "not matched by *.txt at the top"})
    image = do_build(busybox_store, context).image
    assert sorted(layer_names(image, 1)) == ["dst", "dst/nested.txt", "dst/sub", "dst/sub/deep", "dst/top"]
    assert sorted(layer_names(image, 2)) == ["multi", "multi/a", "multi/b"]
    assert layer_names(image, 3) == ["newname"]
    assert sorted(layer_names(image, 4)) == ["glob", "glob/x.txt", "glob/y.txt"]
    assert "dst/dir" not in image.filesystem()


def test_copy_several_sources_needs_a_directory_destination(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY a b /dst\n", "a": "A", "b": "B"})
    with pytest.raises(PyContainersError, match=r"^Dockerfile:2: .*destination must be a directory and end with a /"):
        do_build(busybox_store, context)


def test_copy_chown_and_chmod(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nCOPY --chown=1000:1000 a /numeric\nCOPY --chown=nobody a /named\n"
                      "COPY --chmod=0755 a /executable\nCOPY --chown=1000:1000 d /tree/\n",
        "a": "A", "d/sub/f": "F"})
    image = do_build(busybox_store, context).image
    numeric, named, executable = (layer_members(image, i)[n] for i, n in ((1, "numeric"), (2, "named"),
                                                                        (3, "executable")))
    assert (numeric.uid, numeric.gid, numeric.mode) == (1000, 1000, 0o644)
    assert (named.uid, named.gid) == (65534, 65534)
    assert (executable.uid, executable.mode) == (0, 0o755)
    tree = layer_members(image, 4)
    assert {(tree[n].uid, tree[n].gid) for n in ("tree/sub", "tree/sub/f")} == {(1000, 1000)}
    with pytest.raises(PyContainersError, match=r"^Dockerfile:2: .*nosuchuser"):
        do_build(busybox_store, write_context(tmp_path / "bad", {
            "Dockerfile": "FROM busybox\nCOPY --chown=nosuchuser a /a\n", "a": "A"}))


def test_copy_keeps_owners_of_existing_dirs_and_chowns_new_parents(busybox_store: Store, tmp_path: Path) -> None:
    builder = ImageBuilder(busybox_store, "busybox")
    with builder.layer("RUN mkdir /home/app && chown 1000:1000 /home/app") as changes:
        changes.mkdir("/home/app", mode=0o750, uid=1000, gid=1000)
    builder.commit("owned")
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM owned\nCOPY a /home/app/a\n"
                                                             "COPY --chown=1000:1000 a /new/deep/a\n", "a": "A"})
    image = do_build(busybox_store, context).image
    existing = layer_members(image, -2)["home/app"]
    assert (existing.uid, existing.gid, existing.mode) == (1000, 1000, 0o750)
    new = layer_members(image, -1)
    assert {(new[n].uid, new[n].gid) for n in ("new", "new/deep")} == {(1000, 1000)}


def test_add_extracts_a_local_tar_gz_and_copy_does_not(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nADD pkg.tar.gz /opt/\nCOPY pkg.tar.gz /copied/\nADD plain.txt.gz /gz/\n",
        "pkg.tar.gz": tar_gz({"pkg/inner.txt": b"inner\n"}),
        "plain.txt.gz": gzip.compress(b"not a tar", mtime=0)})
    image = do_build(busybox_store, context).image
    added = layer_members(image, 1)
    assert added["opt/pkg/inner.txt"].mode == 0o640 and added["opt/pkg/inner.txt"].size == 6
    assert sorted(layer_names(image, 2)) == ["copied", "copied/pkg.tar.gz"]
    assert sorted(layer_names(image, 3)) == ["gz", "gz/plain.txt.gz"]  # compressed, not a tar: copied as is


def test_add_of_a_url_fails_without_network(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nADD https://example.com/a.tgz /a\n"})
    with pytest.raises(PyContainersError, match=r"^Dockerfile:2: ADD https://example.com/a.tgz: .*network") as exc:
        do_build(busybox_store, context)
    assert "\n" not in str(exc.value)


def test_dockerignore_with_exceptions_decides_what_copy_dot_copies(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {
        "Dockerfile": "FROM busybox\nWORKDIR /app\nCOPY . .\n",
        ".dockerignore": "# comment\n*.log\n!keep.log\nsecret\n!secret/public.txt\n**/*.tmp\n.dockerignore\n",
        "a.log": "x", "keep.log": "k", "secret/private": "s", "secret/public.txt": "p", "main.py": "m",
        "src/x.tmp": "t", "src/y.py": "y"})
    image = do_build(busybox_store, context).image
    assert sorted(layer_names(image)) == ["app", "app/Dockerfile", "app/keep.log", "app/main.py", "app/secret",
                                          "app/secret/public.txt", "app/src", "app/src/y.py"]


@needs_root
def test_arg_scoping_across_from(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "ARG V=global\nFROM busybox\nRUN echo \"[$V]\"\n"
                                                             "ARG V\nRUN echo \"[$V]\"\n"})
    result = do_build(busybox_store, context)
    assert output_of(result).split() == ["[]", "[global]"]
    warned = do_build(busybox_store, context, build_args={"UNUSED": "1"})
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in transcript(warned)


# ------------------------------------------------------------------------------------------ failures


def _failure_cases() -> Iterator[Any]:
    yield pytest.param({"Dockerfile": "FROM busybox\nENV A=1\nFROB x\n"}, {},
                       r"^Dockerfile:3: unknown instruction: FROB", id="unknown-instruction")
    yield pytest.param({"Dockerfile": "FROM busybox\nENV A=1\nCOPY missing.txt /x\n"}, {},
                       r"^Dockerfile:3: COPY failed: .*missing\.txt", id="missing-copy-source")
    yield pytest.param({"Dockerfile": "FROM busybox\nRUN echo ok > /ok\nRUN echo failing; \\\n  exit 3\n"}, {},
                       r"^Dockerfile:3: RUN .*returned a non-zero code: 3$", id="failing-run", marks=needs_root)
    yield pytest.param({"Dockerfile": 'FROM busybox\nRUN ["sh", "-c", "exit 4"\n'}, {},
                       r"^Dockerfile:2: RUN .*returned a non-zero code: 127", id="invalid-json-runs-as-shell",
                       marks=needs_root)
    yield pytest.param({"Dockerfile": "FROM busybox AS a\nFROM busybox\nCOPY --from=nope /x /x\n"}, {},
                       r"^Dockerfile:3: COPY --from=nope: ", id="unknown-from-stage")
    yield pytest.param({"Dockerfile": "FROM busybox\nENV A=1\nFROM alpine:3.19\n"}, {},
                       r"^Dockerfile:3: .*alpine:3\.19.*no registry", id="base-not-in-store")
    yield pytest.param({"Dockerfile": "FROM busybox\n"}, {"tags": ["keep", "Bad_Name:x:y"]}, r"Bad_Name",
                       id="bad-tag")
    yield pytest.param({"Dockerfile": "FROM busybox\nCOPY --chown=a:b:c f /f\n", "f": ""}, {}, r"^Dockerfile:2: ",
                       id="bad-chown")
    yield pytest.param({"Dockerfile": "FROM busybox\nRUN echo\n"}, {"target": "nope"}, r"nope", id="unknown-target")


@pytest.mark.parametrize(("files", "kwargs", "message"), list(_failure_cases()))
def test_failed_build_raises_one_line_and_leaves_the_store_as_it_was(
        busybox_store: Store, tmp_path: Path, files: dict[str, str], kwargs: dict[str, Any], message: str) -> None:
    store = busybox_store
    kept = do_build(store, write_context(tmp_path / "old", {"Dockerfile": "FROM busybox\nENV OLD=1\n"}), tags=["keep"])
    index = (store.layout / "index.json").read_bytes()
    context = write_context(tmp_path / "ctx", files)
    kwargs = {"tags": ["keep", "fresh"], **kwargs}
    with pytest.raises((PyContainersError, ValueError)) as exc:
        build(store, context, **kwargs)
    text = str(exc.value)
    assert "\n" not in text and re.search(message, text), text
    assert get_image(store, "keep").id == kept.image.id  # the old tag was not moved
    with pytest.raises(PyContainersError):
        get_image(store, "fresh")
    assert (store.layout / "index.json").read_bytes() == index
    assert_no_containers(store)
    assert store.check() == []
    assert isinstance(exc.value, PyContainersError), f"{type(exc.value).__name__} is no PyContainersError"


@needs_root
def test_failed_run_keeps_the_steps_before_it_cached(busybox_store: Store, tmp_path: Path) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN echo one > /one\nRUN exit 3\n"})
    events: list[dict[str, Any]] = []
    with pytest.raises(PyContainersError, match=r"^Dockerfile:3: .*code: 3"):
        build(busybox_store, context, on_event=events.append)
    assert [e["type"] for e in events].count("removed") == 2  # both containers went away
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo one > /one\nRUN echo fixed\n")
    result = do_build(busybox_store, context)
    assert outcomes(result) == {2: "cache", 3: "first build"}


def test_a_run_step_that_found_no_network_says_the_build_has_none(busybox_store: Store, tmp_path: Path) -> None:
    """A RUN that failed saying it could not resolve a name (apt's words here) gets one more sentence: the
    build's RUN steps have no network unless given one. Other failures do not."""
    said = "echo \"W: Failed to fetch http://deb.debian.org/  Temporary failure resolving 'deb.debian.org'\"; exit 100"
    context = write_context(tmp_path / "ctx", {"Dockerfile": f"FROM busybox\nRUN {said}\n"})
    with pytest.raises(PyContainersError, match=r"code: 100 \(RUN steps have no network .*build --network host\)$"):
        build(busybox_store, context)
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo fine; exit 4\n")
    with pytest.raises(PyContainersError, match=r"code: 4$"):
        build(busybox_store, context)
    assert_no_containers(busybox_store)


def test_cli_build_prints_the_transcript_and_q_the_id(busybox_store: Store, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nARG WHO\nLABEL who=$WHO\n"})
    assert main(["build", "-t", "cli:1", "--build-arg", "WHO=me", str(context)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Sending build context to pycontainers")
    assert out[-1] == "Successfully tagged cli:1"
    image = get_image(busybox_store, "cli:1")
    assert image.labels["who"] == "me"
    assert main(["build", "-q", "--build-arg", "WHO=me", str(context)]) == 0
    assert capsys.readouterr().out == image.id + "\n"
    (context / "Dockerfile").write_text("FROM busybox\nBOGUS x\n")
    assert main(["build", "-t", "cli:1", str(context)]) != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["Error: Dockerfile:2: unknown instruction: BOGUS"]
    assert get_image(busybox_store, "cli:1").id == image.id


# ---------------------------------------------------------------------------------- against buildah

STUBS = ("dev", "proc", "sys", "run", "etc/hostname", "etc/hosts", "etc/resolv.conf")
CONFIG_FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Labels")


class Buildah:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.argv = ["buildah", "--root", str(root / "root"), "--runroot", str(root / "runroot"),
                     "--storage-driver", "vfs"]

    def __call__(self, *args: str, cwd: Path | None = None) -> str:
        proc = subprocess.run([*self.argv, *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, f"buildah {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def build(self, context: Path, name: str) -> tuple[dict[str, Any], dict[str, tuple[Any, ...]]]:
        """buildah bud CONTEXT; return the image's config and its root file system's tree."""
        self("bud", "--isolation", "chroot", "--pull-never", "-t", name, ".", cwd=context)
        config = json.loads(self("inspect", "--type", "image", name))["OCIv1"]["config"]
        container = self("from", "--pull-never", "--name", f"{name}-ctr", name).strip()
        try:
            mount = Path(self("mount", container).strip())
            files = tree(mount)
        finally:
            self("umount", container)
            self("rm", container)
        return config, files


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """path -> (kind, permission bits, uid, gid, symlink target / sha256 of the content / None)."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            rel = os.path.relpath(full, root)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", mode, st.st_uid, st.st_gid, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, st.st_uid, st.st_gid, None)
            elif stat.S_ISREG(st.st_mode):
                with open(full, "rb") as f:
                    out[rel] = ("file", mode, st.st_uid, st.st_gid, hashlib.sha256(f.read()).hexdigest())
            else:
                out[rel] = ("other", mode, st.st_uid, st.st_gid, st.st_rdev)
    return out


def without_stubs(theirs: dict[str, tuple[Any, ...]], ours: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    """buildah's tree less the empty mount-point stubs its RUN leaves (and parents that only hold them)."""
    empty = hashlib.sha256(b"").hexdigest()
    drop = {p for p in STUBS if p in theirs and p not in ours
            and (theirs[p][0] == "dir" and not any(q.startswith(p + "/") for q in theirs)
                 or theirs[p][0] == "file" and theirs[p][4] == empty)}
    for path in sorted((p for p in theirs if theirs[p][0] == "dir" and p not in ours), key=len, reverse=True):
        inside = [q for q in theirs if q.startswith(path + "/")]
        if inside and all(q in drop for q in inside):
            drop.add(path)
    return {p: v for p, v in theirs.items() if p not in drop}


def config_fields(config: dict[str, Any]) -> dict[str, Any]:
    out = {key: config.get(key) or None for key in CONFIG_FIELDS}
    if out["Labels"]:
        out["Labels"] = {k: v for k, v in out["Labels"].items() if k != "io.buildah.version"}
    return out


@pytest.fixture(scope="module")
def buildah(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Buildah]:
    if shutil.which("buildah") is None:
        pytest.skip("buildah is not installed (apt-get install buildah)")
    if not IS_ROOT:
        pytest.skip("comparing owners with buildah needs root")
    root = tmp_path_factory.mktemp("buildah")
    tool = Buildah(root)
    cache = cache_store()
    archive_path = root / "busybox.tar"
    with open(archive_path, "wb") as f:
        archive.save(cache, ["busybox"], f, fmt="oci")  # tagged docker.io/library/busybox:latest
    tool("pull", f"oci-archive:{archive_path}")
    yield tool
    subprocess.run([*tool.argv, "rm", "--all"], capture_output=True, check=False)
    subprocess.run([*tool.argv, "rmi", "--all", "--force"], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


BUILDAH_CASES: dict[str, dict[str, str | bytes]] = {
    "run-tree": {
        "Dockerfile": (
            "FROM busybox\n"
            "RUN mkdir -p /data/sub /data/empty && echo hello > /data/f && chmod 0600 /data/f \\\n"
            " && ln -s /data/f /data/abs && ln -s f /data/rel && ln /data/f /data/hard \\\n"
            " && chmod 1777 /data/sub && chown 1000:100 /data/sub && printf 'no newline' > /data/sub/n \\\n"
            " && echo s > /usr/bin/suid && chmod 4755 /usr/bin/suid && chmod 0700 /data/empty && echo 1 > /data/mod\n"
            "RUN echo more >> /data/mod && chmod 0640 /data/mod && rm /etc/group && rm -r /var \\\n"
            " && mkdir -p /var/new && rm /data/rel\n"
            "RUN rm -r /data/sub && mkdir /data/sub && touch /data/sub/fresh\n"),
    },
    "copy": {
        "Dockerfile": (
            "FROM busybox\n"
            "COPY --chown=1000:1000 a.txt /home/\n"
            "COPY --chown=nobody tool.sh /usr/bin/tool\n"
            "COPY dir /tmp/\n"
            "COPY *.txt /srv/texts/\n"
            "COPY a.txt /srv/renamed\n"
            "COPY --chmod=0750 a.txt /usr/bin/private\n"
            "ADD pkg.tar.gz /usr/share/\n"),
        "a.txt": "alpha\n", "b.txt": "beta\n", "tool.sh": Executable("#!/bin/sh\necho tool\n"),
        "dir/one": "1", "dir/sub/two": "2", "dir/link": Link("one"),
        "pkg.tar.gz": tar_gz({"pkg/inner.txt": b"inner\n"}),
    },
    "config": {
        "Dockerfile": (
            "FROM busybox\n"
            "ENV APP=/srv/app GREETING=\"hello world\"\n"
            "RUN mkdir -p /srv/app/data && echo \"$GREETING\" > /srv/app/greeting\n"
            "WORKDIR $APP\nWORKDIR data\n"
            "USER 1000:1000\n"
            "EXPOSE 8080 53/udp\n"
            "LABEL org.example.title=\"demo app\" version=1\n"
            "ENTRYPOINT [\"/bin/echo\"]\n"
            "CMD [\"hello\"]\n"),
    },
    "multi-stage": {
        "Dockerfile": (
            "FROM busybox AS builder\n"
            "RUN mkdir /out && echo built > /out/artifact && chmod 0751 /out/artifact && ln -s artifact /out/l\n"
            "FROM busybox\n"
            "COPY --from=builder /out /opt/out\n"
            "COPY --from=0 /out/artifact /usr/local/bin/artifact\n"
            "ENTRYPOINT [\"cat\"]\n"),
    },
}


@pytest.mark.parametrize("case", list(BUILDAH_CASES))
def test_same_result_as_buildah(buildah: Buildah, busybox_store: Store, tmp_path: Path, case: str) -> None:
    compare_with_buildah(buildah, busybox_store, tmp_path, case, BUILDAH_CASES[case])


BUILDAH_FIXED: dict[str, tuple[str, dict[str, str | bytes]]] = {  # each was a bug once
    "workdir-creates-dir": ("WORKDIR creates the directory in the image", {
        "Dockerfile": "FROM busybox\nWORKDIR /srv/app\n"}),
    "copy-chown-new-parents": ("directories COPY --chown creates belong to that user", {
        "Dockerfile": "FROM busybox\nCOPY --chown=1000:1000 a /new/deep/a\n", "a": "A"}),
    "copy-into-owned-dir": ("COPY into a directory owned by a user keeps its owner", {
        "Dockerfile": "FROM busybox\nRUN mkdir -p /home/app && chown 1000:1000 /home/app && chmod 0750 /home/app\n"
                      "COPY a /home/app/a\n", "a": "A"}),
}


@pytest.mark.parametrize("case", list(BUILDAH_FIXED))
def test_same_result_as_buildah_for_directories(buildah: Buildah, busybox_store: Store, tmp_path: Path,
                                                case: str) -> None:
    compare_with_buildah(buildah, busybox_store, tmp_path, case, BUILDAH_FIXED[case][1])


def compare_with_buildah(buildah: Buildah, store: Store, tmp_path: Path, case: str,
                         files: dict[str, str | bytes]) -> None:
    """Build *files* with both; the root file systems and the main config fields must be the same."""
    context = write_context(tmp_path / "ctx", files)
    ours_image = do_build(store, context).image
    ours_root = tmp_path / "ours"
    ours_root.mkdir()
    flatten(store, ours_image, ours_root)
    ours = tree(ours_root)
    assert len(ours) > 100 and "bin/busybox" in ours  # the base is there, not just the steps' files
    their_config, theirs = buildah.build(context, f"case-{case}")
    theirs = without_stubs(theirs, ours)
    only_ours, only_theirs = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
    assert (only_ours, only_theirs) == ([], []), "the trees have different paths"
    differ = {p: (ours[p], theirs[p]) for p in ours if ours[p] != theirs[p]}
    assert differ == {}, "same paths, different kind, mode, owner, target or content"
    assert config_fields(ours_image.settings) == config_fields(their_config)


@pytest.mark.skipif(os.geteuid() != 0, reason="RUN needs the native runtime (root)")
def test_heredocs_in_copy_and_run(busybox_store: Store, tmp_path: Path) -> None:
    dockerfile = ("FROM busybox\nENV WHO=class\nCOPY <<EOF /greeting.txt\nhello $WHO\nEOF\n"
                  "RUN <<EOT\ncat /greeting.txt > /copy.txt\nEOT\n")
    context = tmp_path / "hd"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    result = build(busybox_store, context, tags=["hd:1"])
    out = Client(busybox_store.home).containers.run("hd:1", ["cat", "/greeting.txt", "/copy.txt"], remove=True)
    assert out == b"hello class\nhello class\n"
    assert [s.cached for s in result.steps] == [False, False, False]


@pytest.mark.parametrize("runtime", ["native", "rootless"])
def test_run_into_an_opaque_directory_keeps_the_lower_files(busybox_store: Store, tmp_path: Path,
                                                             runtime: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The base's top layer replaced /d (an opaque directory). Its unpacked copy carries both overlay
    # markers (trusted.* for native, user.* for rootless); the one the mount does not use is copied up
    # like any attribute when RUN writes into /d, and must not become an opaque marker of the new layer.
    from pycontainers import container as containers

    b = ImageBuilder(busybox_store, "busybox")
    with b.layer("ADD d/a") as ch:
        ch.add_file("/d/a", "a\n")
    with b.layer("replace d") as ch:
        ch.clear_directory("/d")
        ch.add_file("/d/b", "b\n")
    b.commit("opaque-base")
    monkeypatch.setattr(containers, "default_backend", lambda store: runtime)
    context = write_context(tmp_path / "ctx", {"Dockerfile": "FROM opaque-base\nRUN touch /d/c\n"})
    do_build(busybox_store, context, tags=["opaque-child"])
    assert "d/.wh..wh..opq" not in layer_names(get_image(busybox_store, "opaque-child"))
    assert run(busybox_store, "opaque-child", "ls", "/d").split() == ["b", "c"]


@pytest.mark.parametrize(("dockerfile", "said"), [
    ("FROM Busybox\n", r"^Dockerfile:1: invalid reference format: .*must be lowercase"),
    ("ARG V\nFROM busybox:$V\n", r"^Dockerfile:2: invalid reference format"),
    ("FROM busybox\nEXPOSE 99999\n", r"^Dockerfile:2: invalid containerPort: 99999"),
    ("FROM busybox\nEXPOSE 0\n", r"^Dockerfile:2: invalid containerPort: 0"),
    ("FROM busybox\nEXPOSE 80/xyz\n", r"^Dockerfile:2: invalid proto: xyz"),
])
def test_what_docker_refuses_at_build_is_refused_with_the_line(busybox_store: Store, tmp_path: Path,
                                                               dockerfile: str, said: str) -> None:
    context = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    with pytest.raises(PyContainersError, match=said):
        do_build(busybox_store, context)
    assert_no_containers(busybox_store)


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    import sys

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def _tar(files: dict[str, bytes], compress: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if compress else "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_build_from_standard_input(cli: Any, client: Client, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``build -``: a Dockerfile alone (an empty context), or a tar archive of the context; ``-f -``: the
    Dockerfile on stdin, the context a directory. A member out of the context, or stdin asked for twice:
    one line, nothing built."""
    _stdin(monkeypatch, b"FROM busybox\nCMD [\"echo\", \"alone\"]\n")
    assert cli("build", "-q", "-t", "alone", "-")[0] == 0
    assert client.containers.run("alone", remove=True) == b"alone\n"
    _stdin(monkeypatch, _tar({"Dockerfile": b"FROM busybox\nCOPY f /f\nCMD [\"cat\", \"/f\"]\n", "f": b"packed\n"},
                             compress=True))
    assert cli("build", "-q", "-t", "packed", "-")[0] == 0
    assert client.containers.run("packed", remove=True) == b"packed\n"
    (tmp_path / "f").write_text("from the directory\n")
    _stdin(monkeypatch, b"FROM busybox\nCOPY f /g\nCMD [\"cat\", \"/g\"]\n")
    assert cli("build", "-q", "-t", "dir", "-f", "-", str(tmp_path))[0] == 0
    assert client.containers.run("dir", remove=True) == b"from the directory\n"
    _stdin(monkeypatch, _tar({"../evil": b"x"}))
    code, _, err = cli("build", "-t", "evil", "-")
    assert code == 1 and "member '../evil' is refused" in err and err.count("\n") == 1
    _stdin(monkeypatch, b"FROM busybox\n")
    code, _, err = cli("build", "-f", "-", "-")
    assert code == 125 and "stdin for both" in err
    assert cli("image", "inspect", "evil")[0] != 0


def test_api_build_from_a_file_object(client: Client) -> None:
    """docker-py's ``fileobj``: a Dockerfile, or with ``custom_context`` a tar archive of the context."""
    image, _ = client.images.build(fileobj=io.BytesIO(b"FROM busybox\nENV WHERE=fileobj\n"), tag="fo")
    assert "WHERE=fileobj" in image.attrs["Config"]["Env"]
    archive_ = _tar({"Dockerfile.dev": b"FROM busybox\nCOPY a /a\n", "a": b"1"})
    image, _ = client.images.build(fileobj=io.BytesIO(archive_), custom_context=True, dockerfile="Dockerfile.dev")
    assert client.containers.run(image.id, ["cat", "/a"], remove=True) == b"1"
    with pytest.raises(PyContainersError, match="not a tar archive"):
        client.images.build(fileobj=io.BytesIO(b"FROM busybox\n"), custom_context=True)
    with pytest.raises(PyContainersError, match="either path or fileobj"):
        client.images.build()
