"""The store: verified blobs, fsck, crash safety, concurrent writers, tags, removal and the builder."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pycontainers import api, oci
from pycontainers import layer as L
from pycontainers.cli import main
from pycontainers.errors import ImageNotFound, InvalidArgument, StoreError
from pycontainers.image import Image, ImageBuilder, commit_manifest, get_image, list_images
from pycontainers.reference import InvalidReference
from pycontainers.store import Store

MEDIA = oci.MEDIA_LAYER


def blob_names(store: Store) -> set[str]:
    return {p.name for p in store.blobs.iterdir()}


def tmp_files(store: Store) -> list[str]:
    return sorted(p.name for p in store.tmp_dir.iterdir())


def corrupt(path: Path) -> None:
    os.chmod(path, 0o644)  # blobs are read-only
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def build(store: Store, tag: str | None, files: dict[str, bytes], base: str = "busybox") -> Image:
    b = ImageBuilder(store, base)
    with b.layer(f"add {', '.join(files)}") as fs:
        for path, data in files.items():
            fs.add_file(path, data)
    return b.commit(*([tag] if tag else []))


def descriptor(store: Store, image: Image) -> oci.Descriptor:
    return oci.Descriptor(oci.MEDIA_MANIFEST, image.manifest_digest,
                          store.blob_path(image.manifest_digest).stat().st_size)


# ---------------------------------------------------------------------------------------------- blobs


def test_put_bytes_and_stream_store_verified_blobs(store: Store) -> None:
    data = b"hello blob\n"
    digest = oci.sha256_digest(data)
    desc = store.put_bytes(data, MEDIA, expected=digest)
    assert desc == oci.Descriptor(MEDIA, digest, len(data))
    assert store.read_blob(digest) == data
    assert store.blob_path(digest).stat().st_mode & 0o777 == 0o444
    big = os.urandom(3 << 20)  # more than one chunk
    desc = store.put_stream(io.BytesIO(big), MEDIA, expected=oci.sha256_digest(big))
    assert desc.size == len(big) and store.verify_blob(desc.digest)
    assert tmp_files(store) == []


def test_put_bytes_refuses_a_wrong_digest(store: Store) -> None:
    before = blob_names(store)
    wrong = oci.sha256_digest(b"something else")
    with pytest.raises(StoreError, match="does not match its digest"):
        store.put_bytes(b"data", MEDIA, expected=wrong)
    assert blob_names(store) == before
    assert not store.has_blob(wrong) and not store.has_blob(oci.sha256_digest(b"data"))
    assert tmp_files(store) == []


def test_put_stream_refuses_a_wrong_digest(store: Store) -> None:
    data = os.urandom(2 << 20)
    wrong = oci.sha256_digest(b"not it")
    with pytest.raises(StoreError, match="does not match its digest"):
        store.put_stream(io.BytesIO(data), MEDIA, expected=wrong)
    assert blob_names(store) == set()
    assert tmp_files(store) == []


def test_put_stream_failing_source_leaves_nothing(store: Store) -> None:
    class Broken(io.RawIOBase):
        calls = 0

        def read(self, n: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk on fire")
            return b"x" * 1000

    with pytest.raises(OSError, match="disk on fire"):
        store.put_stream(Broken(), MEDIA)  # type: ignore[arg-type]
    assert blob_names(store) == set() and tmp_files(store) == []


def test_read_blob_detects_corruption_and_absence(store: Store) -> None:
    desc = store.put_bytes(b'{"a": 1}', oci.MEDIA_CONFIG)
    corrupt(store.blob_path(desc.digest))
    with pytest.raises(StoreError, match="corrupt"):
        store.read_blob(desc.digest)
    assert not store.verify_blob(desc.digest)
    missing = oci.sha256_digest(b"never stored")
    with pytest.raises(StoreError, match="missing"):
        store.read_blob(missing)
    with pytest.raises(StoreError, match="not a sha256 digest"):
        store.blob_path("sha256:../../etc/passwd")


# ----------------------------------------------------------------------------------------------- fsck


def test_clean_store_checks_ok(busybox_store: Store) -> None:
    build(busybox_store, "app:1", {"/app/x": b"x"})
    assert busybox_store.check() == []


def test_check_reports_a_corrupt_blob(busybox_store: Store) -> None:
    layer = get_image(busybox_store, "busybox").layers[0].digest
    corrupt(busybox_store.blob_path(layer))
    problems = busybox_store.check()
    assert any(layer in p and "corrupt" in p for p in problems), problems


def test_check_reports_a_missing_layer(busybox_store: Store) -> None:
    layer = get_image(busybox_store, "busybox").layers[0].digest
    busybox_store.blob_path(layer).unlink()
    problems = busybox_store.check()
    assert any(f"layer {layer} is missing" in p for p in problems), problems
    assert any(p.startswith("docker.io/library/busybox:latest") for p in problems)


def test_check_reports_a_diff_ids_mismatch(busybox_store: Store) -> None:
    bb = get_image(busybox_store, "busybox")
    config = json.loads(json.dumps(bb.config))
    config["rootfs"]["diff_ids"] = [oci.sha256_digest(b"another layer")]
    config_desc = busybox_store.put_json(config, oci.MEDIA_CONFIG)
    commit_manifest(busybox_store, config_desc, bb.layers, ["liar:1"])
    problems = busybox_store.check()
    assert any(p.startswith("docker.io/library/liar:1") and "diff_ids" in p for p in problems), problems
    assert not any("busybox" in p for p in problems)


def test_cli_system_check_exit_codes(busybox_store: Store, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    assert main(["system", "check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ok: ") and str(busybox_store.home) in out
    corrupt(busybox_store.blob_path(get_image(busybox_store, "busybox").id))
    assert main(["system", "check"]) == 1
    captured = capsys.readouterr()
    assert "corrupt" in captured.out
    assert "problem(s)" in captured.err


# ----------------------------------------------------------------------------------------- atomicity

CRASH_CHILD = r"""
import os, sys, tarfile, threading, time
from pycontainers import layer as L, oci
from pycontainers.image import add_layer, commit_image, get_image, write_layer
from pycontainers.store import Store

store = Store(sys.argv[1])
big = sys.argv[2]
busybox = get_image(store, "busybox")
desc = oci.Descriptor(oci.MEDIA_MANIFEST, busybox.manifest_digest,
                      store.blob_path(busybox.manifest_digest).stat().st_size)

def tagger():
    i = 0
    while True:
        store.set_tag(f"docker.io/library/loop:{i % 25}", desc)
        i += 1

threading.Thread(target=tagger, daemon=True).start()

with store.writing():
    for n in range(3):  # whole images, committed and tagged while the tagger runs
        info = L.new_info(f"f{n}", tarfile.REGTYPE, mode=0o644, size=1 << 20)
        layer = write_layer(store, [L.Entry(info, bytes([n]) * (1 << 20))])
        commit_image(store, add_layer(busybox.config, layer, f"n={n}"), [*busybox.layers, layer], [f"img:{n}"])

    class Slow:  # a large layer that takes far longer to write than the test waits
        def __init__(self, w):
            self.w = w
        def write(self, b):
            time.sleep(0.01)
            return self.w.write(b)

    writer = store.blob_writer(oci.MEDIA_LAYER)
    info = L.new_info("big.bin", tarfile.REGTYPE, mode=0o644, size=os.path.getsize(big))
    L.write_tar([L.Entry(info, big)], Slow(writer))
    writer.commit()
    print("finished", flush=True)
"""


def _size(path: Path) -> int:
    """A temporary blob's size; 0 once it is gone (committed: renamed into blobs/ between glob and stat)."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def test_sigkill_mid_write_leaves_a_consistent_store(busybox_store: Store, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(1 << 30)  # sparse: 1 GiB of zeros, read fast, written slowly by the child
    proc = subprocess.Popen([sys.executable, "-c", CRASH_CHILD, str(busybox_store.home), str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            partial = [p for p in busybox_store.tmp_dir.glob("blob-*") if _size(p) >= (8 << 20)]
            if partial:
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        assert partial, "the child never started writing its large layer"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    assert b"finished" not in out

    index = json.loads((busybox_store.layout / "index.json").read_bytes())
    assert index["schemaVersion"] == 2
    assert busybox_store.check() == []
    bb = get_image(busybox_store, "busybox")
    refs = {e.ref for e in busybox_store.entries()}
    assert {f"docker.io/library/img:{n}" for n in range(3)} <= refs
    loops = [r for r in refs if r and r.startswith("docker.io/library/loop:")]
    assert loops and all(get_image(busybox_store, r) == bb for r in loops)
    leftovers = [p.name for p in busybox_store.tmp_dir.iterdir()]
    assert any(n.startswith("blob-") for n in leftovers), leftovers

    blobs = blob_names(busybox_store)
    busybox_store.gc(tmp_older_than=0)
    assert tmp_files(busybox_store) == []
    assert blob_names(busybox_store) == blobs  # everything left is referenced
    assert busybox_store.check() == []


def test_gc_keeps_fresh_temp_files(store: Store) -> None:
    (store.tmp_dir / "blob-inflight").write_bytes(b"partial")
    store.gc()  # default: only temp files older than an hour
    assert tmp_files(store) == ["blob-inflight"]
    old = time.time() - 7200
    os.utime(store.tmp_dir / "blob-inflight", (old, old))
    store.gc()
    assert tmp_files(store) == []


# --------------------------------------------------------------------------------------- concurrency

BUILD_CHILD = r"""
import os, sys, time
from pycontainers.image import ImageBuilder
from pycontainers.store import Store

home, prefix, go = sys.argv[1:4]
while not os.path.exists(go):
    time.sleep(0.005)
store = Store(home)
for n in range(20):
    b = ImageBuilder(store, "busybox")
    with b.layer(f"{prefix} {n}") as fs:
        fs.add_file(f"/{prefix}/{n}.txt", f"{prefix}{n}\n")
    b.commit(f"{prefix}:{n}")
"""


def test_two_processes_build_and_tag_at_once(busybox_store: Store, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_CHILD, str(busybox_store.home), prefix, str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for prefix in ("a", "b")]
    go.touch()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    tags = {e.ref for e in busybox_store.entries()}
    expected = {f"docker.io/library/{p}:{n}" for p in "ab" for n in range(20)}
    assert expected <= tags
    assert len(list_images(busybox_store)) == 41  # 40 new images and busybox
    assert list_images(busybox_store, dangling=True) == []
    for p in "ab":
        for n in (0, 19):
            fs = get_image(busybox_store, f"{p}:{n}").filesystem()
            assert f"{p}/{n}.txt" in fs and "bin/busybox" in fs
    assert busybox_store.check() == []


# ----------------------------------------------------------------------------------------------- tags


def test_moving_a_tag_leaves_the_old_image_dangling(busybox_store: Store) -> None:
    first = build(busybox_store, "app:1", {"/app/v": b"one"})
    second = build(busybox_store, None, {"/app/v": b"two"})
    old = busybox_store.set_tag("docker.io/library/app:1", descriptor(busybox_store, second))
    assert old == first.manifest_digest
    assert get_image(busybox_store, "app:1") == second
    dangling = list_images(busybox_store, dangling=True)
    assert dangling == [first] and dangling[0].tags == []
    assert get_image(busybox_store, first.id) == first  # still there, by ID
    assert busybox_store.check() == []


def _dangling_setup(store: Store) -> tuple[Image, set[str], int]:
    first = build(store, "app:1", {"/app/v": b"one" * 1000})
    unique = {first.manifest_digest, first.id, first.layers[-1].digest}
    unique_bytes = sum(store.blob_path(d).stat().st_size for d in unique)
    build(store, "app:1", {"/app/v": b"two"})  # moves the tag
    assert list_images(store, dangling=True) == [first]
    return first, unique, unique_bytes


def _assert_only_unique_blobs_gone(store: Store, unique: set[str]) -> None:
    bb = get_image(store, "busybox")
    names = blob_names(store)
    assert not any(d.split(":")[1] in names for d in unique)
    for d in (bb.manifest_digest, bb.id, bb.layers[0].digest):
        assert d.split(":")[1] in names  # the shared base stays
    assert list_images(store, dangling=True) == []
    assert get_image(store, "app:1").filesystem()["app/v"].size == 3
    assert store.check() == []


def test_gc_frees_only_the_unique_blobs_of_a_removed_image(busybox_store: Store) -> None:
    first, unique, unique_bytes = _dangling_setup(busybox_store)
    assert busybox_store.gc() == (0, 0)  # still referenced by its untagged index line
    busybox_store.remove_entries(manifests={first.manifest_digest})
    assert busybox_store.gc() == (len(unique), unique_bytes)
    _assert_only_unique_blobs_gone(busybox_store, unique)


def test_prune_images_removes_dangling_images(busybox_store: Store) -> None:
    first, unique, unique_bytes = _dangling_setup(busybox_store)
    result = api.prune_images(busybox_store)
    assert result == {"ImagesDeleted": [{"Deleted": first.id}], "SpaceReclaimed": unique_bytes}
    _assert_only_unique_blobs_gone(busybox_store, unique)


def test_prune_images_with_nothing_dangling(busybox_store: Store) -> None:
    build(busybox_store, "app:1", {"/app/v": b"one"})
    blobs = blob_names(busybox_store)
    assert api.prune_images(busybox_store) == {"ImagesDeleted": [], "SpaceReclaimed": 0}
    assert blob_names(busybox_store) == blobs


def test_remove_image_by_tag_and_id(busybox_store: Store) -> None:
    bb = get_image(busybox_store, "busybox")
    tags = bb.familiar_tags
    assert len(tags) == 2 and "busybox:latest" in tags
    other = next(t for t in tags if t != "busybox:latest")

    with pytest.raises(InvalidArgument, match="must be forced"):
        api.remove_image(busybox_store, bb.short_id)
    assert get_image(busybox_store, bb.id).tags == bb.tags  # nothing changed

    assert api.remove_image(busybox_store, "busybox") == [{"Untagged": "busybox:latest"}]
    assert get_image(busybox_store, bb.id).familiar_tags == [other]
    with pytest.raises(ImageNotFound):
        get_image(busybox_store, "busybox:latest")

    report = api.remove_image(busybox_store, other)
    assert report == [{"Untagged": other}, {"Deleted": bb.id}]
    assert list_images(busybox_store) == []
    assert blob_names(busybox_store) == set()  # pruned
    assert busybox_store.check() == []


def test_remove_image_by_id_with_force(busybox_store: Store) -> None:
    bb = get_image(busybox_store, "busybox")
    report = api.remove_image(busybox_store, bb.id, force=True, prune=False)
    assert report == [*({"Untagged": t} for t in bb.familiar_tags), {"Deleted": bb.id}]
    assert list_images(busybox_store) == []
    assert bb.id.split(":")[1] in blob_names(busybox_store)  # --no-prune keeps the blobs
    with pytest.raises(ImageNotFound):
        api.remove_image(busybox_store, bb.id)


def test_get_image_lookups(busybox_store: Store) -> None:
    bb = get_image(busybox_store, "busybox")
    hexid = bb.id.split(":")[1]
    assert get_image(busybox_store, bb.id) == bb
    assert get_image(busybox_store, hexid) == bb
    assert get_image(busybox_store, hexid[:12]) == bb
    assert get_image(busybox_store, f"busybox@{bb.manifest_digest}") == bb
    assert get_image(busybox_store, "docker.io/library/busybox:latest") == bb
    with pytest.raises(ImageNotFound, match="No such image: nosuch"):
        get_image(busybox_store, "nosuch")
    with pytest.raises(ImageNotFound, match="No such image"):
        get_image(busybox_store, "busybox:nosuchtag")
    with pytest.raises(InvalidReference, match='invalid reference "Not_A:Valid::Name"'):
        get_image(busybox_store, "Not_A:Valid::Name")
    with pytest.raises(ImageNotFound):
        get_image(busybox_store, "   ")


def test_get_image_ambiguous_prefix(busybox_store: Store) -> None:
    images = [get_image(busybox_store, "busybox")]
    prefix = None
    for n in range(40):  # 17 images would be enough by the pigeonhole principle
        images.append(build(busybox_store, f"amb:{n}", {"/n": str(n).encode()}))
        for c in "0123456789abcdef":
            hits = [i for i in images if i.id[7:].startswith(c) or i.manifest_digest[7:].startswith(c)]
            if len(hits) > 1:
                prefix = c
                break
        if prefix:
            break
    assert prefix is not None
    with pytest.raises(ImageNotFound, match="ambiguous"):
        get_image(busybox_store, prefix)


# -------------------------------------------------------------------------------------------- builder


def test_builder_layers_metadata_and_history(busybox_store: Store) -> None:
    bb = get_image(busybox_store, "busybox")
    b = ImageBuilder(busybox_store, "busybox")
    with b.layer("COPY hello.txt /app/") as fs:
        fs.add_file("/app/hello.txt", "hello\n")
    with b.layer("RUN rm /etc/group") as fs:
        fs.remove("/etc/group")
    b.set(Cmd=["cat", "/app/hello.txt"])
    image = b.commit("hello:by-hand")

    assert [d.digest for d in image.layers[:1]] == [d.digest for d in bb.layers]
    assert len(image.layers) == 3 and image.diff_ids == [d.digest for d in image.layers]
    assert image.settings["Cmd"] == ["cat", "/app/hello.txt"]
    steps = image.config["history"]
    assert steps[-1]["empty_layer"] is True and "CMD" in steps[-1]["created_by"]
    assert len(steps) == len(bb.config["history"]) + 3

    rows = image.history()
    assert [r.created_by for r in rows[:3]] == [steps[-1]["created_by"], "RUN rm /etc/group",
                                                "COPY hello.txt /app/"]
    assert rows[0].image_id == image.id and all(r.image_id is None for r in rows[1:])
    assert rows[0].empty_layer and rows[0].size == 0 and rows[0].layer is None
    assert rows[1].size == image.layers[2].size and rows[1].layer == image.layers[2].digest
    assert rows[2].size == image.layers[1].size and rows[2].layer == image.layers[1].digest
    assert rows[-1].size == bb.layers[0].size
    assert sum(r.size for r in rows) == image.size

    fs = image.filesystem()
    assert fs["app/hello.txt"].size == 6 and fs["app/hello.txt"].layer == 1
    assert "etc/group" not in fs and "etc/passwd" in fs
    assert busybox_store.check() == []


def test_inspect_layers_counts_deleted_bytes_as_wasted(busybox_store: Store) -> None:
    payload = os.urandom(100_000)
    b = ImageBuilder(busybox_store, "busybox")
    with b.layer("ADD big.bin") as fs:
        fs.add_file("/data/big.bin", payload)
        fs.add_file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")  # overwrites busybox's
    one = b.commit("waste:1")
    b = ImageBuilder(busybox_store, one)
    with b.layer("RUN rm /data/big.bin") as fs:
        fs.remove("/data/big.bin")
    two = b.commit("waste:2")

    fs, reports = two.inspect_layers()
    assert [r.index for r in reports] == [0, 1, 2]
    assert "data/big.bin" not in fs
    assert reports[1].added == ["data", "data/big.bin"]
    assert reports[1].modified == ["etc/passwd"]
    assert reports[2].deleted == ["data/big.bin"]
    assert reports[2].added == [] and reports[2].modified == []
    assert reports[1].wasted == len(payload)
    bb_passwd = get_image(busybox_store, "busybox").filesystem()["etc/passwd"].size
    assert reports[0].wasted == bb_passwd
    assert reports[2].wasted == 0
    assert two.size > one.size  # deleting a file never shrinks an image
    assert two.size - one.size == two.layers[2].size


def test_builder_on_scratch_and_untagged_commit(store: Store) -> None:
    b = ImageBuilder(store)
    with b.layer("ADD /hello") as fs:
        fs.add_file("/hello", "hi\n")
    image = b.commit()
    assert image.tags == [] and list_images(store, dangling=True) == [image]
    assert [L.clean_path(m.name) for m in image.layer_members(0)] == ["hello"]
    assert store.check() == []


def test_tilde_shows_the_home_directory_as_a_shell_prompt_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from pycontainers.store import tilde

    monkeypatch.setenv("HOME", "/home/jovyan")
    assert tilde("/home/jovyan/.pyenv/bin/python3") == "~/.pyenv/bin/python3"
    assert tilde("/home/jovyan") == "~"
    assert tilde("/home/jovyanx/python") == "/home/jovyanx/python"  # another directory that starts alike
    assert tilde("/usr/bin/python3") == "/usr/bin/python3"


@pytest.mark.parametrize("content", ["[]", "null", '{"manifests": "x"}', '{"manifests": [{}]}',
                                     '{"manifests": [{"mediaType": "m", "digest": "x", "size": 1}]}'])
def test_an_index_of_the_wrong_shape_is_named_not_a_traceback(store: Store, content: str) -> None:
    (store.layout / "index.json").write_text(content)
    with pytest.raises(StoreError, match=r"oci/index\.json is not an OCI image index \("):
        store.entries()


def test_a_store_whose_index_went_missing_is_damaged_not_new(busybox_store: Store) -> None:
    """Made anew, an empty index.json would let the next prune delete every blob (and the layers of running
    containers with them): the store refuses to open instead, saying what to do."""
    (busybox_store.layout / "index.json").rename(busybox_store.home / "index.json.away")
    with pytest.raises(StoreError, match="index.json is missing, yet the store holds blobs: it is damaged"):
        Store(busybox_store.home)
    (busybox_store.home / "index.json.away").rename(busybox_store.layout / "index.json")
    assert [i.familiar_tags for i in list_images(Store(busybox_store.home))] == [["busybox:1.35.0", "busybox:latest"]]


def test_tag_of_an_image_whose_manifest_is_gone_is_one_line(busybox_store: Store,
                                                             capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    busybox_store.blob_path(get_image(busybox_store, "busybox").manifest_digest).unlink()
    assert main(["tag", "busybox", "other:1"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is missing from the store" in err and "internal error" not in err


def test_a_layer_being_deleted_leaves_its_place_at_once(busybox_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unpacked layer no image needs goes out of its place in one step before it is deleted: a deletion
    killed half-way must not leave a half-empty directory that the next container takes for the whole layer."""
    from pycontainers import rootfs, userns

    where = rootfs.unpack_layer(busybox_store, get_image(busybox_store, "busybox").layers[-1].digest)
    original, removals = userns.remove_tree_or_say, []

    def watched(path: str, maps: object = None) -> bool:
        assert not where.exists()  # out of its place before a single file of it goes
        removals.append(path)
        return original(path, maps)  # type: ignore[arg-type]

    monkeypatch.setattr(userns, "remove_tree_or_say", watched)
    assert rootfs.remove_unused_layers(busybox_store, keep=set()) == 1
    assert removals[0].startswith(str(busybox_store.tmp_dir)) and not Path(removals[0]).exists()


def test_a_corrupt_layer_is_refused_before_it_is_unpacked(busybox_store: Store) -> None:
    """Unpacked once, a layer serves every container after: its blob is checked against its digest first."""
    from pycontainers import rootfs

    digest = get_image(busybox_store, "busybox").layers[-1].digest
    blob = busybox_store.blob_path(digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=f"blob {digest} is corrupt"):
        rootfs.unpack_layer(busybox_store, digest)
    assert not (rootfs.layers_dir(busybox_store) / digest.split(":", 1)[1]).exists()
    assert not any(busybox_store.tmp_dir.iterdir())  # nothing half unpacked either


def test_gc_removes_the_temporary_files_of_processes_gone_at_once(store: Store) -> None:
    """A process killed outright (SIGKILL: no clean-up ran) in the middle of a commit, a load or a pull leaves
    its temporary file; its name says whose it is, so the next gc removes it, not an hour later."""
    from pycontainers.container import process_start_time
    from pycontainers.store import owned_prefix

    killed = subprocess.Popen(["sleep", "60"])
    theirs = store.tmp_dir / f"blob-{killed.pid}.{process_start_time(killed.pid)}-x"
    killed.kill()
    killed.wait()
    theirs.write_bytes(b"half a blob")
    mine = store.tmp_dir / (owned_prefix("blob") + "y")  # a writer still at work
    mine.write_bytes(b"being written")
    older = store.tmp_dir / "blob-z"  # named as before: only its age tells
    older.write_bytes(b"?")
    store.gc()
    assert not theirs.exists() and mine.exists() and older.exists()


def test_an_image_whose_manifest_is_gone_blocks_no_other_and_rmi_removes_it(
        busybox_store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A damaged image (its manifest blob gone) is listed as such; images, image prune and rmi go on working."""
    monkeypatch.setenv("PYCONTAINERS_HOME", str(busybox_store.home))
    b = ImageBuilder(busybox_store)
    with b.layer("ADD /hello") as fs:
        fs.add_file("/hello", "hi\n")
    solo = b.commit("solo:1")
    busybox_store.blob_path(solo.manifest_digest).unlink()
    capsys.readouterr()
    assert main(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]) == 0
    assert capsys.readouterr().out.splitlines() == ["busybox:1.35.0 16069cf11a86", "busybox:latest 16069cf11a86",
                                                    "solo:1 <damaged>"]
    assert main(["image", "prune", "-f"]) == 0
    assert main(["rmi", "solo:1"]) == 0
    assert "Untagged: solo:1" in capsys.readouterr().out
    assert [i.familiar_tags for i in list_images(busybox_store)] == [["busybox:1.35.0", "busybox:latest"]]


def test_a_layer_is_deleted_in_place_when_remains_of_an_earlier_removal_block_its_way(
        busybox_store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from pycontainers import rootfs, userns

    where = rootfs.unpack_layer(busybox_store, get_image(busybox_store, "busybox").layers[-1].digest)
    remains = busybox_store.tmp_dir / f"{rootfs.UNPACKING}{where.parent.name}-{where.name}"
    (remains / "stuck").mkdir(parents=True)
    original = userns.remove_tree_or_say
    monkeypatch.setattr(userns, "remove_tree_or_say",  # the remains cannot be deleted (files of another user)
                        lambda path, maps=None: False if path == str(remains) else original(path, maps))
    assert rootfs.remove_unused_layers(busybox_store, keep=set()) == 1  # not ENOTEMPTY from the rename
    assert not where.exists() and (remains / "stuck").is_dir()
