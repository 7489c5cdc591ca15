"""The rootless back end: user namespaces, id maps, overlayfs with userxattr, and no cgroups.

Most tests run as a real unprivileged user (see ``unprivileged.py``), through the CLI a student would
type; a few run the same back end as root in-process (``--runtime rootless``), which is quicker.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import signal
import tarfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import unprivileged
from processes import children, cmdline, containers_left

from pycontainers import container as containers
from pycontainers import layer, rootfs, runtime, userns
from pycontainers.archive import save
from pycontainers.bases import DEBIAN_TAG, PYTHON_TAG, cache_store, copy_image
from pycontainers.errors import InvalidArgument, LayerError, PyContainersError
from pycontainers.image import ImageBuilder, get_image, write_layer
from pycontainers.store import Store
from pycontainers.userns import IdMap, IdMaps, subordinate_ranges


@pytest.fixture(scope="module")
def student() -> Iterator[unprivileged.Student]:
    with unprivileged.student_with_busybox() as someone:
        yield someone


def ok(result: object) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    return result.stdout  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------ as an ordinary user


def test_an_ordinary_user_gets_the_rootless_back_end_and_is_root_only_inside(student: unprivileged.Student) -> None:
    first = student.run("run", "--rm", "busybox", "id", "-u")
    assert ok(first) == "0\n"
    assert "run rootless" in first.stderr  # said once, in one sentence ...
    assert student.run("run", "--rm", "busybox", "true").stderr == ""  # ... and not again
    maps = ok(student.run("run", "--rm", "busybox", "cat", "/proc/self/uid_map")).split()
    assert maps[:3] == ["0", str(student.uid), "1"]  # root inside is the student outside
    assert maps[3:6] == ["1", "100000", "65536"]  # the rest comes from /etc/subuid, through newuidmap


def test_rootless_containers_have_their_own_pid_uts_and_network_namespaces(student: unprivileged.Student) -> None:
    out = ok(student.run("run", "--rm", "busybox", "sh", "-c", "echo $$; hostname; ls /sys/class/net; ps | wc -l"))
    pid, hostname, nets, lines = out.split("\n")[:4]
    assert pid == "1"
    assert re.fullmatch(r"[0-9a-f]{12}", hostname)
    assert nets == "lo"
    assert int(lines) <= 4  # header, sh, ps, wc: no host process is visible


def test_a_rootless_container_can_switch_to_another_user(student: unprivileged.Student) -> None:
    out = ok(student.run("run", "--rm", "-u", "1000:1000", "busybox", "sh", "-c", "id -u; id -g; touch /tmp/x"))
    assert out.split() == ["1000", "1000"]


def test_rm_removes_files_made_by_other_container_users(student: unprivileged.Student) -> None:
    # uid 1000 inside is a subordinate uid outside: the student cannot delete its directories directly.
    ok(student.run("run", "--name", "owned", "-u", "1000", "busybox", "sh", "-c",
                   "mkdir -p /tmp/a/b && touch /tmp/a/b/c"))
    cid = ok(student.run("inspect", "--format", "{{.Id}}", "owned")).strip()
    cdir = student.store_home / "containers" / cid
    assert (cdir / "upper" / "tmp" / "a" / "b" / "c").exists()
    ok(student.run("rm", "owned"))
    assert not cdir.exists()


def test_resource_limits_are_refused_in_one_sentence(student: unprivileged.Student) -> None:
    result = student.run("run", "--rm", "--memory", "64m", "busybox", "true")
    assert result.returncode == 125
    assert result.stderr.count("\n") == 1 and "needs a cgroup" in result.stderr


def test_detached_rootless_container_lifecycle_leaves_nothing_behind(student: unprivileged.Student) -> None:
    ok(student.run("run", "-d", "--name", "sleeper", "busybox", "sleep", "60"))
    assert "Up " in ok(student.run("ps"))
    assert ok(student.run("exec", "sleeper", "sh", "-c", "echo $$ $(id -u)")).split()[1] == "0"
    assert "sleep 60" in ok(student.run("top", "sleeper"))
    ok(student.run("rm", "-f", "sleeper"))
    assert ok(student.run("ps", "-aq")) == ""
    assert not any("sleep 60" in p for p in student.processes())


def test_exec_into_a_rootless_container_on_the_hosts_network(student: unprivileged.Student) -> None:
    """Its net namespace is the host's, which the container's user namespace does not own: exec must not try to
    join it (setns failed with EPERM, and compose's services, on the host's network without root, could not be
    entered)."""
    ok(student.run("run", "-d", "--name", "hostnet", "--network", "host", "busybox", "sleep", "60"))
    try:
        assert ok(student.run("exec", "hostnet", "sh", "-c", "echo $$")).strip() != "1"  # sleep is PID 1
    finally:
        ok(student.run("rm", "-f", "hostnet"))


def test_escapes_are_denied_in_a_rootless_container(student: unprivileged.Student) -> None:
    script = ("mount -t tmpfs none /mnt 2>/dev/null && echo mounted; "
              "echo 1 > /proc/sys/kernel/panic 2>/dev/null && echo wrote-proc; "
              "hostname h 2>/dev/null; ls /work 2>/dev/null && echo host-files; echo done")
    assert ok(student.run("run", "--rm", "busybox", "sh", "-c", script)) == "done\n"


def test_rootless_build_runs_run_steps_and_records_container_owners(student: unprivileged.Student) -> None:
    context = student.base / "context"
    context.mkdir(mode=0o755)
    (context / "Dockerfile").write_text("FROM busybox\nRUN echo built > /built && mkdir /owned && "
                                        "chown 1000:1000 /owned\nCMD [\"cat\", \"/built\"]\n")
    (context / "Dockerfile").chmod(0o644)
    ok(student.run("build", "-t", "made", str(context)))
    assert ok(student.run("run", "--rm", "made")) == "built\n"
    store = Store(student.store_home)
    image = get_image(store, "made")
    with store.open_blob(image.layers[-1].digest) as f, tarfile.open(fileobj=f) as tar:
        owners = {m.name: (m.uid, m.gid) for m in tar}
    # the student (root inside) and subordinate uid 100999 (1000 inside) are recorded as the container saw them
    assert owners == {"built": (0, 0), "owned": (1000, 1000)}


def test_rootless_commit_makes_a_layer(student: unprivileged.Student) -> None:
    ok(student.run("run", "--name", "writer", "busybox", "sh", "-c", "echo hi > /hello"))
    ok(student.run("commit", "writer", "committed:1"))
    ok(student.run("rm", "writer"))
    assert ok(student.run("run", "--rm", "committed:1", "cat", "/hello")) == "hi\n"


def layer_members(store: Store, digest: str) -> dict[str, tuple[int, int, int]]:
    """The layer blob's members: name -> (uid, gid, mode)."""
    with store.open_blob(digest) as f, tarfile.open(fileobj=f) as tar:
        return {m.name: (m.uid, m.gid, m.mode) for m in tar}


# `adduser -D bob`, by hand: Debian's busybox has no adduser applet
PRIVATE_CACHE = """FROM busybox
RUN echo "bob:x:1000:1000::/home/bob:/bin/sh" >> /etc/passwd && echo "bob:x:1000:" >> /etc/group && \\
    mkdir -p -m 755 /home/bob && chown bob:bob /home/bob
USER bob
RUN mkdir -p /home/bob/.cache && chmod 700 /home/bob/.cache && \\
    echo hi > /home/bob/.cache/f && chmod 600 /home/bob/.cache/f
"""


def test_a_rootless_build_keeps_a_private_directory_another_user_made(student: unprivileged.Student) -> None:
    # bob's 700 directory and 600 file belong to a subordinate uid on the host, which the student cannot read:
    # the step's layer is archived inside a user namespace (pip's 700 cache under USER app is the same case)
    context = student.base / "cache-context"
    context.mkdir(mode=0o755)
    (context / "Dockerfile").write_text(PRIVATE_CACHE)
    (context / "Dockerfile").chmod(0o644)
    ok(student.run("build", "-t", "cached", str(context)))
    assert ok(student.run("run", "--rm", "-u", "bob", "cached", "cat", "/home/bob/.cache/f")) == "hi\n"
    bob = ok(student.run("run", "--rm", "cached", "id", "-u", "bob")).strip()
    stats = ok(student.run("run", "--rm", "cached", "stat", "-c", "%u:%a", "/home/bob/.cache", "/home/bob/.cache/f"))
    assert stats == f"{bob}:700\n{bob}:600\n"
    store = Store(student.store_home)
    members = layer_members(store, get_image(store, "cached").layers[-1].digest)
    assert members["home/bob/.cache"][::2] == (int(bob), 0o700)
    assert members["home/bob/.cache/f"][::2] == (int(bob), 0o600)
    ok(student.run("image", "rm", "cached"))


def test_rootless_commit_keeps_another_users_private_files_byte_for_byte(student: unprivileged.Student) -> None:
    script = "mkdir -m 700 /tmp/p && echo secret > /tmp/p/f && chmod 600 /tmp/p/f"
    ok(student.run("run", "--name", "private", "-u", "1000:1000", "busybox", "sh", "-c", script))
    ok(student.run("commit", "private", "private:1"))
    assert ok(student.run("diff", "private")) == "C /tmp\nA /tmp/p\nA /tmp/p/f\n"  # read in the namespace too
    store = Store(student.store_home)
    digest = get_image(store, "private:1").layers[-1].digest
    members = layer_members(store, digest)
    assert members["tmp/p"] == (1000, 1000, 0o700)
    assert members["tmp/p/f"] == (1000, 1000, 0o600)
    # Root reads the same upper directory in-process, owners translated by the container's maps: the same bytes
    c = containers.get_container(store, "private")
    assert len(containers.id_maps(c).uids) > 1
    entries = layer.tree_entries(str(c.dir / "upper"), overlay_upper=True, userxattr=True, epoch=0,
                                 id_map=containers.id_maps(c).host_to_container)
    in_process = io.BytesIO()
    layer.write_tar(entries, in_process)
    assert digest == "sha256:" + hashlib.sha256(in_process.getvalue()).hexdigest()
    ok(student.run("rm", "private"))
    assert ok(student.run("run", "--rm", "-u", "1000", "private:1", "cat", "/tmp/p/f")) == "secret\n"
    ok(student.run("image", "rm", "private:1"))
    assert list((student.store_home / "tmp").iterdir()) == []


STUDENT_API = """
import os, pycontainers
from pycontainers.zygote import Zygote
client = pycontainers.from_env()
first = client.containers.run("busybox", ["true"], remove=True)  # cold; the zygote then warms monitors
c = client.containers.run("busybox", ["sh", "-c", "id -u; readlink /proc/self/ns/user; sleep 30"], detach=True)
st = c._c.reload().state
with open(f"/proc/{st['monitor_pid']}/stat") as f:
    parent = int(f.read().rpartition(")")[2].split()[1])
print("warm" if parent == Zygote._instance.process.pid else "cold", st["backend"], "cgroup" in st)
code, out = c.exec_run(["sh", "-c", "id -u; readlink /proc/self/ns/user"])
print(code, *out.decode().split(), os.readlink("/proc/self/ns/user"))
c.remove(force=True)
try:
    client.containers.run("busybox", ["/nope"], remove=True)
except pycontainers.api.ContainerError as exc:
    print(exc.exit_status)
"""


def test_a_students_api_containers_start_from_warm_rootless_monitors(student: unprivileged.Student) -> None:
    result = student.script(STUDENT_API)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "warm rootless False"  # a warm monitor of the zygote's, in no cgroup
    code, uid, inside_ns, host_ns = lines[1].split()
    assert code == "0" and uid == "0" and inside_ns != host_ns  # root, but of its own user namespace
    assert lines[2] == "127"
    # The script's end takes its zygote along, and the zygote's end its warm monitors.
    deadline = time.monotonic() + 10
    while student.processes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert student.processes() == []


def test_proot_runs_as_an_ordinary_user_too(student: unprivileged.Student) -> None:
    out = ok(student.run("run", "--rm", "--runtime", "proot", "busybox", "sh", "-c", "id -u; echo $$"))
    uid, pid = out.split()
    assert uid == "0"  # proot fakes root ...
    assert pid != "1"  # ... but makes no PID namespace


def image_for_the_student(student: unprivileged.Student, tmp_path: Path, tag: str,
                          extra: tuple[layer.Entry, ...] = ()) -> str:
    """busybox plus a layer with bob's home (uid 1000: a 700 directory, a 600 file) and a file of uid and
    gid 70000, beyond the student's 65536 subordinate ids; saved where the student can read and load it."""
    store = Store(tmp_path / "maker")
    cache = cache_store()
    copy_image(cache, get_image(cache, "busybox"), store)
    changes = layer.Changes()
    changes.mkdir("/home/bob", mode=0o700, uid=1000, gid=1000)
    changes.add_file("/home/bob/f", "bob's\n", mode=0o600, uid=1000, gid=1000)
    changes.add_file("/opt/far", "far\n", uid=70000, gid=70000)
    builder = ImageBuilder(store, "busybox")
    builder.add_layer([*changes.entries(), *extra], "bob's home")
    builder.commit(tag)
    archive = student.base / f"{tag}.tar"
    with open(archive, "wb") as f:
        save(store, [tag], f)
    archive.chmod(0o644)
    ok(student.run("load", "-i", str(archive)))
    return get_image(store, tag).layers[-1].digest.split(":", 1)[1]


def test_a_rootless_store_keeps_the_owners_of_image_files(student: unprivileged.Student, tmp_path: Path) -> None:
    top = image_for_the_student(student, tmp_path, "owned")
    out = ok(student.run("run", "--rm", "-u", "1000", "owned", "sh", "-c",
                         "touch /home/bob/x && stat -c %u:%g /home/bob/f && cat /home/bob/f"))
    assert out == "1000:1000\nbob's\n"  # bob writes his own home and reads his own 600 file
    owners = ok(student.run("run", "--rm", "owned", "stat", "-c", "%u:%g", "/home/bob/f", "/opt/far"))
    assert owners == "1000:1000\n0:0\n"  # uid and gid 70000 are beyond the maps: root's inside
    [layers] = (student.store_home / "layers").glob(rootfs.IDMAPPED + "*")  # the layers of the student's maps
    assert (layers / top / "home" / "bob").stat().st_uid == 100999  # on disk: the student's subordinate uid
    assert (layers / top / "opt" / "far").stat().st_uid == student.uid  # beyond the maps: root's inside
    recorded = json.loads((layers / rootfs.MAPS_FILE).read_text())
    assert recorded["uid"] == [[0, student.uid, 1], [1, 100000, 65536]]
    # A build step as bob, and a new volume over his home, get his files as he owns them too
    context = student.base / "bob-context"
    context.mkdir(mode=0o755)
    (context / "Dockerfile").write_text("FROM owned\nUSER 1000\nRUN cat /home/bob/f > /tmp/copy\n")
    (context / "Dockerfile").chmod(0o644)
    ok(student.run("build", "-t", "bobs", str(context)))
    script = "touch /home/bob/y && stat -c %u:%a /home/bob && cat /home/bob/f /tmp/copy && ls /home/bob"
    out = ok(student.run("run", "--rm", "-v", "bobvol:/home/bob", "-u", "1000", "bobs", "sh", "-c", script))
    assert out == "1000:700\nbob's\nbob's\nf\ny\n"
    built = get_image(Store(student.store_home), "bobs").layers[-1].digest.split(":", 1)[1]
    assert (layers / built / "tmp" / "copy").stat().st_uid == 100999
    assert ok(student.run("volume", "rm", "bobvol")) == "bobvol\n"  # bob's files in it: a namespace deletes them
    assert not (student.store_home / "volumes" / "bobvol").exists()
    ok(student.run("image", "rm", "bobs", "owned"))
    for gone in (top, built):  # deleted from inside a user namespace: the student alone may not
        assert not (layers / gone).exists()
    assert list((student.store_home / "tmp").iterdir()) == []


def test_a_broken_layer_unpacked_in_a_user_namespace_is_one_error_and_leaves_nothing(
        student: unprivileged.Student, tmp_path: Path) -> None:
    # After bob's files (subordinate ids, in a 700 directory) comes a hard link to nothing: extraction fails
    dangling = layer.Entry(layer.new_info("zz-link", tarfile.LNKTYPE, mode=0o644, linkname="nowhere"))
    top = image_for_the_student(student, tmp_path, "broken", (dangling,))
    result = student.run("run", "--rm", "broken", "true")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (  # (after the first rootless run's notice, if this is it)
        f"pycontainers: layer sha256:{top}: entry 'zz-link' is a hard link to 'nowhere', which does not exist; "
        "the layer was not extracted (the caller discards the partial directory)")
    assert not (student.store_home / "layers" / top).exists()
    assert list((student.store_home / "tmp").iterdir()) == []
    assert ok(student.run("ps", "-aq")) == ""  # run --rm removed the container it could not start
    ok(student.run("image", "rm", "broken"))


# ---------------------------------------------------------------------------- as root, in-process


def test_rootless_back_end_as_root_has_a_user_namespace_and_no_cgroup(busybox_store: Store) -> None:
    script = "cat /proc/self/uid_map; readlink /proc/self/ns/user"
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", script], runtime="rootless")
    code, out, err = runtime.run_attached(c)
    assert code == 0, err
    uid_map, user_ns = out.decode().rsplit("\n", 2)[:2]
    assert uid_map.split() == ["0", "0", "65536"]
    assert user_ns != os.readlink("/proc/self/ns/user")
    assert not list(Path("/sys/fs/cgroup").glob(f"*/pycontainers/{c.id}"))


def test_ctrl_c_in_a_user_namespace_helper_is_a_keyboard_interrupt_not_its_error() -> None:
    # Ctrl-C in a terminal reaches the helper too (one process group): the caller is interrupted, quietly
    read_end, write_end = os.pipe()  # nothing is ever written: the helper waits on input() until interrupted
    caught: list[BaseException] = []

    def call() -> None:
        try:
            with os.fdopen(read_end, "rb") as stdin:
                userns.run_inside(TWO_LINE_IDENTITY, "waiting", "builtins.input", stdin=stdin)
        except BaseException as exc:  # noqa: BLE001 (inspected below)
            caught.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    helper = None
    for _ in range(500):
        helper = next((pid for pid in children(os.getpid()) if b"call_inside" in cmdline(pid)), None)
        if helper is not None and os.readlink(f"/proc/{helper}/ns/user") != os.readlink("/proc/self/ns/user"):
            break  # inside its namespace: the call is made, or about to be
        time.sleep(0.01)
    assert helper is not None
    time.sleep(0.2)
    os.kill(helper, signal.SIGINT)
    thread.join(10)
    os.close(write_end)
    assert len(caught) == 1 and type(caught[0]) is KeyboardInterrupt


TWO_LINE_IDENTITY = IdMaps((IdMap(0, 0, 1), IdMap(1, 1, 65535)), (IdMap(0, 0, 1), IdMap(1, 1, 65535)))


def test_a_writable_layer_archived_in_a_user_namespace_is_byte_identical(busybox_store: Store) -> None:
    script = ("mkdir -m 700 /tmp/p && echo secret > /tmp/p/f && chmod 600 /tmp/p/f && chown -R 1000:1000 /tmp/p "
              "&& rm /bin/true")  # (as root: a user other than root may not delete /bin/true)
    c = containers.create_from_image(busybox_store, "busybox", ["sh", "-c", script], runtime="rootless")
    code, _out, err = runtime.run_attached(c)
    assert code == 0, err
    assert isinstance(containers.upper_entries(c), list)  # root's one-line map: read in this process
    in_process = containers.commit(c, "in-process").layers[-1].digest
    c.save(id_maps=TWO_LINE_IDENTITY.to_json())  # the same ids, in two lines: as a student's maps are
    assert callable(containers.upper_entries(c))  # archived by a helper in a user namespace
    in_namespace = containers.commit(c, "in-namespace").layers[-1].digest
    assert in_namespace == in_process
    members = layer_members(busybox_store, in_namespace)
    assert members["tmp/p"] == (1000, 1000, 0o700) and members["tmp/p/f"] == (1000, 1000, 0o600)
    assert members["bin/.wh.true"] == (0, 0, 0o644)  # the overlay's whiteout, seen from inside too
    containers.remove(c)


def test_a_layer_that_cannot_be_archived_in_a_user_namespace_is_one_error_and_no_blob(busybox_store: Store,
                                                                                     tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "tmp").mkdir(parents=True)
    (upper / "tmp" / "a").write_bytes(b"x" * (3 << 20))  # some of the tar reaches the blob before the error
    (upper / "tmp" / "z").write_text("beyond the maps\n")
    os.chown(upper / "tmp" / "z", 5000, 5000)  # outside [0, 1000): the namespace's root may not read it
    (upper / "tmp" / "z").chmod(0o600)
    maps = IdMaps((IdMap(0, 0, 1), IdMap(1, 1, 999)), (IdMap(0, 0, 1), IdMap(1, 1, 999)))
    blobs = set(busybox_store.blobs.iterdir())
    with pytest.raises(LayerError) as failure, busybox_store.writing():
        write_layer(busybox_store, partial(containers.upper_tar_from_namespace, maps, str(upper), 0))
    assert str(failure.value) == f"{upper}/tmp/z: Permission denied"
    assert set(busybox_store.blobs.iterdir()) == blobs
    assert list(busybox_store.tmp_dir.iterdir()) == []
    # A caller that cannot take the tar (a full disk) ends the helper, which is not left behind
    class Full(io.RawIOBase):
        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    (upper / "tmp" / "z").unlink()
    with pytest.raises(OSError, match="No space left"):
        containers.upper_tar_from_namespace(maps, str(upper), 0, Full())  # type: ignore[arg-type]
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if b"write_upper_tar" in _read(p)]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def test_rootless_refuses_limits_before_creating_anything(busybox_store: Store) -> None:
    with pytest.raises(InvalidArgument, match="--pids-limit needs a cgroup"):
        containers.create_from_image(busybox_store, "busybox", ["true"], runtime="rootless", pids_limit=10)
    assert containers.list_containers(busybox_store) == []


def test_falls_back_to_proot_when_user_namespaces_do_not_work(store: Store, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from pycontainers import host

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(host, "probe_rootless_overlayfs",
                        lambda where=None: host.Capability(host.ROOTLESS_OVERLAYFS, False, "no", "proot"))
    assert containers.default_backend(store) == "proot"
    assert "proot" in capsys.readouterr().err
    assert containers.default_backend(store) == "proot"  # remembered for this kernel
    assert capsys.readouterr().err == ""


def test_id_maps_translate_host_owners_back_to_container_owners() -> None:
    maps = IdMaps((IdMap(0, 1001, 1), IdMap(1, 100000, 65536)), (IdMap(0, 1001, 1), IdMap(1, 100000, 65536)))
    assert maps.host_to_container(1001, 1001) == (0, 0)
    assert maps.host_to_container(100999, 100999) == (1000, 1000)
    assert maps.host_to_container(0, 5) == (65534, 65534)  # not mapped: the overflow id
    assert IdMaps.from_json(maps.to_json()) == maps


def test_subordinate_ranges_are_read_by_name_or_uid(tmp_path: Path) -> None:
    f = tmp_path / "subuid"
    f.write_text("alice:100000:65536\n1001:300000:10\nbob:x:1\nalice:500000:5\n")
    assert subordinate_ranges(str(f), "alice", 1001) == [(100000, 65536), (300000, 10), (500000, 5)]
    assert subordinate_ranges(str(f), "carol", 7) == []


def test_rootless_host_network_read_only_root_and_volumes(student: unprivileged.Student) -> None:
    shared = student.base / "shared"
    shared.mkdir(mode=0o755)
    (shared / "note").write_text("from the host\n")
    (shared / "note").chmod(0o644)
    script = ("ls /sys/class/net | grep -qx lo && echo sys; cat /data/note; touch /data/x 2>/dev/null || echo vol-ro; "
              "touch /x 2>/dev/null || echo root-ro")
    out = ok(student.run("run", "--rm", "--network", "host", "--read-only", "-v", f"{shared}:/data:ro",
                         "busybox", "sh", "-c", script))
    # sysfs cannot be mounted without owning the network namespace: the host's is bind-mounted read-only
    assert out == "sys\nfrom the host\nvol-ro\nroot-ro\n"


def test_proot_rm_removes_a_directory_the_command_locked(student: unprivileged.Student) -> None:
    forced = {"PYCONTAINERS_BACKEND": "proot"}
    script = "mkdir -p /locked/in && touch /locked/in/f && chmod 555 /locked /locked/in && echo done"
    result = student.run("run", "--rm", "busybox", "sh", "-c", script, env=forced)
    assert (result.returncode, result.stdout) == (0, "done\n"), result.stderr
    assert containers_left(student.store_home) == []  # its copy of the image is gone too
    ok(student.run("run", "--name", "locker", "busybox", "sh", "-c", script, env=forced))
    ok(student.run("rm", "locker"))
    assert containers_left(student.store_home) == []


def test_a_user_outside_a_one_line_map_is_refused_in_one_sentence(busybox_store: Store) -> None:
    # Without /etc/subuid ranges (or newuidmap), only root exists inside: USER 1000 cannot be honoured.
    c = containers.create_from_image(busybox_store, "busybox", ["id"], runtime="rootless", user="1000")
    only_root = IdMaps((IdMap(0, 0, 1),), (IdMap(0, 0, 1),))
    c.save(id_maps=only_root.to_json())
    code, out, err = runtime.run_attached(c)
    message = err.decode()
    assert (code, out) == (125, b"")
    assert message.count("\n") == 1 and "does not exist in this rootless container's user namespace" in message
    containers.remove(c)


def test_layers_unpacked_with_other_id_maps_live_apart_and_are_pruned_with_their_own(busybox_store: Store) -> None:
    # The same layer unpacked as oneself and as root of a namespace with maps (an /etc/subuid that changed,
    # a back end that changed): two directories, each with its owners, each deleted with its own maps.
    changes = layer.Changes()
    changes.mkdir("/home/bob", mode=0o700, uid=1000, gid=1000)
    builder = ImageBuilder(busybox_store, "busybox")
    builder.add_layer(changes.entries(), "bob's home")
    image = builder.commit("bobs")
    digest = image.layers[-1].digest
    plain = rootfs.unpack_layer(busybox_store, digest)
    # (host uid 0 stays 0: root's helper, root inside, must still reach the store and its own Python)
    shifted_maps = IdMaps((IdMap(0, 0, 1), IdMap(1, 200001, 65535)), (IdMap(0, 0, 1), IdMap(1, 200001, 65535)))
    shifted = rootfs.unpack_layer(busybox_store, digest, shifted_maps)
    assert shifted.parent.name.startswith(rootfs.IDMAPPED) and shifted.name == plain.name
    assert (plain / "home" / "bob").stat().st_uid == 1000 and (shifted / "home" / "bob").stat().st_uid == 201000
    assert rootfs.lower_dirs(busybox_store, image, "rootless")[1] == str(plain)  # root's rootless: its own files
    assert rootfs.remove_unused_layers(busybox_store, set()) == 3  # busybox's and bob's, bob's with the maps
    assert not plain.exists() and not shifted.parent.exists()


def test_layers_of_maps_no_longer_granted_are_left_in_one_line_and_the_rest_pruned(
        busybox_store: Store, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # /etc/subuid changed: newuidmap now refuses the maps some layers were unpacked with. Pruning (rmi)
    # deletes everything else, and says in one line what only root can delete, instead of failing.
    from pycontainers import userns

    image = get_image(busybox_store, "busybox")
    digest = image.layers[0].digest
    plain = rootfs.unpack_layer(busybox_store, digest)
    old_maps = IdMaps((IdMap(0, 0, 1), IdMap(1, 300001, 65535)), (IdMap(0, 0, 1), IdMap(1, 300001, 65535)))
    stranded = rootfs.unpack_layer(busybox_store, digest, old_maps)
    real_remove_tree = userns.remove_tree

    def refused(path: str, maps: IdMaps | None) -> None:
        if maps is not None:
            raise userns.UserNamespaceError("newuidmap 1234 0 1001 1 1 300001 65535: not allowed")
        real_remove_tree(path, maps)

    monkeypatch.setattr(userns, "remove_tree", refused)
    assert rootfs.remove_unused_layers(busybox_store, set()) == 1
    assert not plain.exists() and stranded.exists()
    said = capsys.readouterr().err
    assert said.count("\n") == 1 and said.startswith(f"pycontainers: {stranded} is left behind: it holds files of "
                                                      "subordinate ids that this user cannot delete")
    # The maps' record deleted by hand (an `rm -rf` of the store that stopped half way): pruning still works
    monkeypatch.setattr(userns, "remove_tree", real_remove_tree)
    (stranded.parent / rootfs.MAPS_FILE).unlink()
    assert rootfs.remove_unused_layers(busybox_store, set()) == 1
    assert not stranded.parent.exists()


def test_pruning_layers_removes_those_a_killed_process_left_half_unpacked(busybox_store: Store) -> None:
    image = get_image(busybox_store, "busybox")
    rootfs.lower_dirs(busybox_store, image)
    half = busybox_store.tmp_dir / f"{rootfs.UNPACKING}layers-killed"
    (half / "etc").mkdir(parents=True)
    assert rootfs.remove_unused_layers(busybox_store, {d.digest for d in image.layers}) == 0
    assert not half.exists()  # (unpacking holds the layers' lock, which pruning took: nobody was at it)
    assert rootfs.remove_unused_layers(busybox_store, set()) == 1
    assert [p.name for p in rootfs.layers_dir(busybox_store).iterdir() if not p.name.startswith(".")] == ["init"]


def test_a_student_without_root_makes_the_same_debian_and_python_images(student: unprivileged.Student) -> None:
    """As on Binder or a laptop without sudo: mmdebstrap under fakechroot and fakeroot, no privilege at all,
    gives the images root made with chroot (set-up's), ID for ID: a reproducible build, owners included."""
    try:
        made_by_root = {name: get_image(cache_store(), name).id for name in (DEBIAN_TAG, PYTHON_TAG)}
    except PyContainersError:
        pytest.skip("the debian and python bases are not in root's base cache (./setup.sh makes them)")
    result = student.run("system", "bases", DEBIAN_TAG, PYTHON_TAG, timeout=900,
                         env={"XDG_CACHE_HOME": str(student.home / "cache")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--mode=fakechroot" in result.stdout
    made = {name: ok(student.run("images", "-q", "--no-trunc", name)).strip() for name in made_by_root}
    assert made == made_by_root
    assert ok(student.run("run", "--rm", PYTHON_TAG, "python3", "-c", "import os; print(os.getuid())")) == "0\n"


def test_compose_without_root_puts_the_services_on_the_hosts_network_found_by_name(
        student: unprivileged.Student) -> None:
    project = student.home / "duo"
    project.mkdir()
    (project / "compose.yaml").write_text(
        "services:\n"
        "  api: {image: busybox, command: [httpd, -f, -p, '127.0.0.1:18081', -h, /etc]}\n"
        "  web:\n"
        "    image: busybox\n"
        "    command: [sh, -c, 'sleep 0.5; wget -qO- http://api:18081/hostname']\n"
        "    depends_on: [api]\n")
    os.chown(project, student.uid, student.gid)
    up = student.run("compose", "-f", str(project / "compose.yaml"), "up", "-d")
    assert up.returncode == 0, up.stderr
    assert "Without root there are no networks" in up.stdout and " Container duo-web-1  Started" in up.stdout
    logs = ""
    for _ in range(50):
        logs = student.run("compose", "-f", str(project / "compose.yaml"), "logs", "web").stdout
        if logs:
            break
        time.sleep(0.1)
    assert logs.startswith("web-1  | ") and logs.strip() != "web-1  |"  # api's hostname, through "api"
    down = student.run("compose", "-f", str(project / "compose.yaml"), "down")
    assert down.returncode == 0 and " Container duo-api-1  Removed" in down.stdout, down.stderr
    assert ok(student.run("ps", "-aq")) == ""
