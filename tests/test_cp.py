"""``cp``, ``export`` and ``import``: Docker's path rules, every back end, symlinks that must not lead out of
the container, untrusted tars, and nothing left behind when something fails."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import unprivileged
from processes import children, cmdline

from pycontainers import cp, layer
from pycontainers.api import Client
from pycontainers.cli import main
from pycontainers.container import ContainerError, get_container
from pycontainers.errors import InvalidArgument, LayerError, NotFound
from pycontainers.image import get_image, list_images


def tar_of(*entries: tuple[str, bytes | None]) -> bytes:
    """A tar of files (bytes) and directories (None), in order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode, info.uid, info.gid = len(data), 0o640, 1234, 4321
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def members(chunks: Iterator[bytes] | bytes) -> dict[str, tarfile.TarInfo]:
    data = chunks if isinstance(chunks, bytes) else b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name.rstrip("/"): m for m in tar.getmembers()}


def read_member(chunks: Iterator[bytes] | bytes, name: str) -> bytes:
    data = chunks if isinstance(chunks, bytes) else b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def source_tree(base: Path) -> Path:
    src = base / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.txt").write_text("beta\n")
    os.chown(src / "a.txt", 1234, 4321)
    return src


def mounts_mentioning(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]


def helpers_left() -> list[int]:
    """Our children still running a copy's helper (``cp.serve``)."""
    return [pid for pid in children(os.getpid()) if b"pycontainers.cp.serve" in cmdline(pid)]


# ------------------------------------------------------------------------------------- Docker's rules


def test_container_and_local_paths_are_told_apart_as_docker_does() -> None:
    assert cp.split_cp_arg("web:/etc/hosts") == ("web", "/etc/hosts")
    assert cp.split_cp_arg("web:tmp") == ("web", "tmp")
    assert cp.split_cp_arg("/abs/file:name.txt") == ("", "/abs/file:name.txt")  # absolute: local
    assert cp.split_cp_arg("./file:name.txt") == ("", "./file:name.txt")  # explicit relative: local
    assert cp.split_cp_arg("plain") == ("", "plain")


def test_where_a_copy_lands_follows_dockers_table() -> None:
    file, directory = cp.CopyInfo("/src/f.txt", True, False), cp.CopyInfo("/src/d", True, True)
    contents = cp.CopyInfo("/src/d/.", True, True)
    assert cp.prepare_archive_copy(file, cp.CopyInfo("/dst", True, True)) == ("/dst", None)  # into the dir
    assert cp.prepare_archive_copy(file, cp.CopyInfo("/dst/new.txt")) == ("/dst", ("f.txt", "new.txt"))
    assert cp.prepare_archive_copy(file, cp.CopyInfo("/dst/old.txt", True)) == ("/dst", ("f.txt", "old.txt"))
    assert cp.prepare_archive_copy(directory, cp.CopyInfo("/dst/new")) == ("/dst", ("d", "new"))
    assert cp.prepare_archive_copy(contents, cp.CopyInfo("/dst/new")) == ("/dst", (".", "new"))
    with pytest.raises(cp.CopyError, match="destination directory must exist"):
        cp.prepare_archive_copy(file, cp.CopyInfo("/dst/missing/"))
    with pytest.raises(cp.CopyError, match="cannot copy directory"):
        cp.prepare_archive_copy(directory, cp.CopyInfo("/dst/file", True, False))
    assert cp.rebased("./sub/b.txt", (".", "new")) == "new/sub/b.txt"
    assert cp.rebased("d2/x", ("d", "new")) == "d2/x"  # a prefix of a name is not its first element
    assert cp.copy_summary(1536, 1536, "web:/tmp") == "Successfully copied 1.54kB to web:/tmp"
    assert cp.copy_summary(7, 2048, "/tmp/x") == "Successfully copied 7B (transferred 2.05kB) to /tmp/x"


# ------------------------------------------------------------------------------ stopped and running


def test_copy_into_a_stopped_container_and_back_out(client: Client, tmp_path: Path) -> None:
    src = source_tree(tmp_path)
    c = client.containers.create("busybox", ["sh", "-c", "cat /tmp/src/a.txt /opt/sub/b.txt; ls -n /tmp/kept"])
    core = get_container(client.store, c.id)
    cp.copy_to_container(core, str(src), "/tmp")  # an existing directory: src goes inside it
    cp.copy_to_container(core, f"{src}/.", "/opt")  # "/.": the contents
    cp.copy_to_container(core, str(src / "a.txt"), "/tmp/kept", archive=True)  # -a: the owners stay
    c.start()
    assert c.wait()["StatusCode"] == 0
    logs = c.logs().decode()
    assert "alpha\nbeta\n" in logs and " 1234 " in logs and " 4321 " in logs
    changes = {d["Path"] for d in c.diff()}
    assert {"/tmp/src/a.txt", "/opt/a.txt", "/opt/sub/b.txt", "/tmp/kept"} <= changes
    chunks, info = c.get_archive("/tmp/src")
    found = members(chunks)
    assert set(found) == {"src", "src/a.txt", "src/sub", "src/sub/b.txt"}
    assert (found["src/a.txt"].uid, found["src/a.txt"].gid) == (0, 0)  # copied in as root's
    assert info["name"] == "src" and info["mode"] & (1 << 31)  # Go's ModeDir
    assert not mounts_mentioning(c.id)  # the helper's overlay went with its mount namespace
    # back out to the host: a missing destination takes the source's place, contents included
    size, transferred, dest = cp.copy_from_container(core, "/tmp/src", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "beta\n"
    assert dest == str(tmp_path / "out") and size == transferred
    cp.copy_from_container(core, "/opt/.", str(tmp_path / "out"))
    assert (tmp_path / "out" / "a.txt").read_text() == "alpha\n"


def test_copy_into_a_running_container_and_stream_tars(client: Client, tmp_path: Path,
                                                       capsysbinary: pytest.CaptureFixture[bytes],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, name="busy")
    assert c.put_archive("/tmp", tar_of(("in", None), ("in/note.txt", b"hello\n")))
    assert c.exec_run(["cat", "/tmp/in/note.txt"]).output == b"hello\n"
    assert c.exec_run(["stat", "-c", "%u:%g %a", "/tmp/in/note.txt"]).output == b"0:0 640\n"  # root's
    stream = tmp_path / "stream.tar"
    stream.write_bytes(tar_of(("piped.txt", b"from stdin\n")))
    with open(stream) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert main(["cp", "-", "busy:/tmp"]) == 0  # "-": a tar on stdin, into a directory
    assert c.exec_run(["cat", "/tmp/piped.txt"]).output == b"from stdin\n"
    capsysbinary.readouterr()
    assert main(["cp", "busy:/tmp/piped.txt", "-"]) == 0  # "-": the tar on stdout
    assert read_member(capsysbinary.readouterr().out, "piped.txt") == b"from stdin\n"
    with open(stream) as stdin:
        monkeypatch.setattr(sys, "stdin", stdin)
        assert main(["cp", "-", "busy:/tmp/piped.txt"]) == 1  # a tar goes into a directory only
    assert 'destination "busy:/tmp/piped.txt" must be a directory' in capsysbinary.readouterr().err.decode()
    assert main(["container", "cp", "busy:/etc/hostname", str(tmp_path / "hostname")]) == 0
    assert (tmp_path / "hostname").read_text() == c.exec_run(["cat", "/etc/hostname"]).output.decode()


def test_a_missing_path_is_one_error_with_exit_code_1(client: Client, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    c = client.containers.create("busybox", ["true"], name="quiet")
    with pytest.raises(NotFound, match="Could not find the file /nope in container quiet"):
        c.get_archive("/nope")
    assert main(["cp", "quiet:/nope", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err == "Error: Could not find the file /nope in container quiet\n"
    assert main(["cp", "quiet:/etc", "quiet:/tmp"]) == 1
    assert "copying between containers is not supported" in capsys.readouterr().err
    assert main(["cp", str(tmp_path), str(tmp_path)]) == 1
    assert "must specify at least one container source" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------------- what must not leak


def test_container_symlinks_never_lead_to_host_files(client: Client, tmp_path: Path) -> None:
    secret = tmp_path / "shadow"
    secret.write_text("host secret\n")
    script = (f"echo container > /tmp/shadow; ln -s {secret} /abs; ln -s ../../../..{tmp_path} /rel; "
              "ln -s / /loop; sleep 300")
    c = client.containers.run("busybox", ["sh", "-c", script], detach=True)
    for _ in range(100):
        if c.exec_run(["test", "-L", "/loop"]).exit_code == 0:
            break
    core = get_container(client.store, c.id)
    chunks, info = c.get_archive("/abs")  # without -L: the link itself
    assert info["linkTarget"] == str(secret) and members(chunks)["abs"].issym()
    with pytest.raises(NotFound):  # -L follows it inside the container, which has no such file
        cp.get_archive(core, "/abs", io.BytesIO(), follow_link=True)
    with pytest.raises(NotFound):  # .. stops at the container's root
        cp.copy_from_container(core, "/rel/shadow", str(tmp_path / "stolen"))
    cp.copy_from_container(core, "/loop/loop/tmp/shadow", str(tmp_path / "got"))
    assert (tmp_path / "got").read_text() == "container\n" and not (tmp_path / "stolen").exists()
    # write: a destination link is followed, inside the container
    payload = tmp_path / "payload"
    payload.write_text("payload\n")
    with pytest.raises(NotFound):
        cp.copy_to_container(core, str(payload), "/abs")  # its directory does not exist in the container
    c.exec_run(["mkdir", "-p", str(tmp_path)])
    cp.copy_to_container(core, str(payload), "/abs")
    cp.copy_to_container(core, str(payload), f"/loop/..{tmp_path}/")
    assert secret.read_text() == "host secret\n"
    assert c.exec_run(["cat", str(secret)]).output == b"payload\n"
    assert c.exec_run(["cat", str(payload)]).output == b"payload\n"


def test_an_untrusted_tar_is_refused_whole_and_writes_nothing(client: Client, tmp_path: Path) -> None:
    c = client.containers.create("busybox", ["true"])
    before = sorted(d["Path"] for d in c.diff())
    escape = tar_of(("ok.txt", b"fine\n"), ("../../../../../../../../tmp/escaped", b"x"))
    with pytest.raises(LayerError, match="contains '..'; nothing was copied"):
        c.put_archive("/tmp", escape)
    absolute = tar_of((f"{tmp_path}/abs", b"x"))
    with pytest.raises(LayerError, match="is an absolute path"):
        c.put_archive("/tmp", absolute)
    through_link = io.BytesIO()
    with tarfile.open(fileobj=through_link, mode="w") as tar:
        link = tarfile.TarInfo("up")
        link.type, link.linkname = tarfile.SYMTYPE, "/"
        tar.addfile(link)
        tar.addfile(tarfile.TarInfo(f"up{tmp_path}/through"), io.BytesIO(b""))
    with pytest.raises(LayerError, match="written through the symlink 'up'"):
        c.put_archive("/", through_link.getvalue())
    with pytest.raises(LayerError, match="not a valid tar archive"):
        c.put_archive("/tmp", b"this is not a tar" * 100)
    assert sorted(d["Path"] for d in c.diff()) == before  # not even ok.txt, which came first
    assert not Path("/tmp/escaped").exists() and not (tmp_path / "abs").exists()
    assert not (tmp_path / "through").exists()
    assert not mounts_mentioning(c.id) and not helpers_left()
    c.start()  # the container's start lock was let go
    assert c.wait()["StatusCode"] == 0


def test_a_directory_is_not_replaced_by_a_file(client: Client) -> None:
    c = client.containers.create("busybox", ["true"])
    with pytest.raises(cp.CopyError, match='cannot overwrite directory "/etc" with non-directory "etc"'):
        c.put_archive("/", tar_of(("etc", b"not a directory\n")))
    chunks, _ = c.get_archive("/etc/passwd")
    assert read_member(chunks, "passwd").startswith(b"root:")


# ----------------------------------------------------------------------------------- export and import


def test_export_then_import_makes_an_image_that_runs(client: Client, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    c = client.containers.run("busybox", ["sh", "-c", "echo made > /made.txt; rm /etc/group"], detach=True)
    assert c.wait()["StatusCode"] == 0
    exported = b"".join(c.export())
    names = members(exported)
    assert "made.txt" in names and "bin/busybox" in names and "etc/group" not in names  # merged: deletions too
    listed = [m for m in members(exported)]
    assert listed == sorted(listed, key=lambda n: n.split("/"))  # a reproducible order
    tarball = tmp_path / "fs.tar"
    tarball.write_bytes(exported)
    assert main(["export", c.id, "-o", str(tmp_path / "again.tar")]) == 0
    assert (tmp_path / "again.tar").read_bytes() == exported
    with monkeypatch.context() as m:
        m.setattr(sys.stdout, "isatty", lambda: True)
        assert main(["export", c.id]) == 1  # never a tar on a terminal
    assert "cowardly refusing to save to a terminal" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["import", "-c", "CMD cat /made.txt", "-c", "ENV GREETING=hi", "-m", "round trip",
                 str(tarball), "roundtrip:v1"]) == 0
    image_id = capsys.readouterr().out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    image = get_image(client.store, "roundtrip:v1")
    assert image.id == image_id and len(image.layers) == 1
    assert image.config["config"]["Cmd"] == ["/bin/sh", "-c", "cat /made.txt"]
    assert "GREETING=hi" in image.config["config"]["Env"]
    assert image.config["history"][-1]["comment"] == "round trip"
    assert client.containers.run("roundtrip:v1", remove=True) == b"made\n"
    with open(tarball, "rb") as f:  # the same files give the same image
        assert cp.import_image(client.store, f, changes=["CMD cat /made.txt", "ENV GREETING=hi"],
                               message="round trip").id == image_id
    with pytest.raises(InvalidArgument, match="RUN is not a valid change command"):
        cp.import_image(client.store, io.BytesIO(exported), changes=["RUN rm -rf /"])


def test_an_untrusted_import_is_one_error_and_stores_nothing(client: Client, capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    blobs = sorted(os.listdir(client.store.blobs))
    images = [i.id for i in list_images(client.store)]
    with pytest.raises(LayerError, match="contains '..'; nothing was imported"):
        cp.import_image(client.store, io.BytesIO(tar_of(("../evil", b"x"))), "evil:1")
    with pytest.raises(LayerError, match="cannot decompress the archive"):
        cp.import_image(client.store, io.BytesIO(b"\x1f\x8b garbage"))
    with pytest.raises(LayerError, match="import -: not a valid tar archive"):
        cp.import_image(client.store, io.BytesIO(b"not a tar at all" * 64))
    assert sorted(os.listdir(client.store.blobs)) == blobs
    assert [i.id for i in list_images(client.store)] == images
    assert not os.listdir(client.store.tmp_dir)
    (tmp_path / "broken.tar").write_bytes(b"not a tar at all" * 64)  # the CLI names the file, not stdin
    assert main(["import", str(tmp_path / "broken.tar"), "x:1"]) == 1
    assert f"import {tmp_path / 'broken.tar'}: not a valid tar archive" in capsys.readouterr().err


# --------------------------------------------------------------------------------------- the back ends


@pytest.mark.parametrize("backend", ["rootless", "proot", "runc"])
def test_every_back_end_copies_in_and_out(client: Client, tmp_path: Path, backend: str) -> None:
    if backend == "runc" and subprocess.run(["which", "runc"], capture_output=True).returncode:
        pytest.skip("runc is not installed")
    src = source_tree(tmp_path)
    stopped = client.containers.create("busybox", ["sh", "-c", "ls -n /tmp/src/a.txt; cat /data/v.txt"],
                                       runtime=backend, volumes=["vol:/data"])
    core = get_container(client.store, stopped.id)
    cp.copy_to_container(core, str(src), "/tmp")
    cp.copy_to_container(core, str(src / "sub" / "b.txt"), "/data/v.txt")  # into its volume
    stopped.start()
    assert stopped.wait()["StatusCode"] == 0
    out = stopped.logs().decode()
    assert " 0 " in out.split("\n")[0] and "beta" in out
    running = client.containers.run("busybox", ["sleep", "300"], detach=True, runtime=backend)
    running_core = get_container(client.store, running.id)
    cp.copy_to_container(running_core, str(src / "a.txt"), "/tmp/a.txt")
    assert running.exec_run(["cat", "/tmp/a.txt"]).output == b"alpha\n"
    assert running.exec_run(["stat", "-c", "%u", "/tmp/a.txt"]).output == b"0\n"
    assert read_member(running.get_archive("/tmp/a.txt")[0], "a.txt") == b"alpha\n"
    assert "tmp/a.txt" in members(running.export())
    assert not mounts_mentioning(stopped.id)


# ------------------------------------------------------------------------------- as an ordinary user


@pytest.fixture(scope="module")
def student() -> Iterator[unprivileged.Student]:
    with unprivileged.student_with_busybox() as someone:
        yield someone


def test_a_student_copies_in_and_out_of_rootless_containers(student: unprivileged.Student) -> None:
    (student.home / "note.txt").write_text("from the student\n")
    os.chown(student.home / "note.txt", student.uid, student.gid)

    def ok(*args: str) -> str:
        done = student.run(*args)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    # a stopped container whose user 1000 keeps a private directory (a subordinate id on the host)
    ok("run", "--name", "made", "busybox", "sh", "-c", "mkdir -m 700 /priv; echo secret > /priv/s; chown -R 1000 /priv")
    ok("cp", "note.txt", "made:/priv/note.txt")
    ok("cp", "made:/priv", "copied")
    assert (student.home / "copied" / "s").read_text() == "secret\n"
    assert (student.home / "copied" / "note.txt").stat().st_uid == student.uid  # the copier's, as Docker
    ok("run", "-d", "--name", "up", "busybox", "sleep", "300")
    ok("cp", "note.txt", "up:/tmp/")
    assert ok("exec", "up", "stat", "-c", "%u %n", "/tmp/note.txt") == "0 /tmp/note.txt\n"  # root inside
    assert ok("exec", "up", "cat", "/tmp/note.txt") == "from the student\n"
    ok("rm", "-f", "made", "up")
    assert not student.processes()


# ------------------------------------------------------------------------------- without openat2


def refuse_openat2(monkeypatch: pytest.MonkeyPatch, errno_: int) -> None:
    """openat2 as an old kernel (ENOSYS) or a seccomp profile (EPERM) has it."""
    from pycontainers import linux

    def refused(*_args: object) -> int:
        raise linux.KernelError("openat2", errno_)

    monkeypatch.setattr(linux, "openat2", refused)


def read_in_root(root_fd: int, path: str) -> str:
    with open(cp.open_in_root(root_fd, path, os.O_RDONLY)) as f:
        return f.read()


@pytest.mark.parametrize("refusal", [errno.ENOSYS, errno.EPERM])
def test_without_openat2_symlinks_are_still_resolved_inside_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      refusal: int) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("container\n")
    (root / "sub").mkdir()
    (root / "file").write_text("")
    os.symlink("/etc", root / "abs")
    os.symlink("../../../../../../../etc", root / "sub" / "rel")
    os.symlink("loop", root / "loop")
    refuse_openat2(monkeypatch, refusal)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        for path in ("/abs/passwd", "/sub/rel/passwd", "../../../etc/passwd", "/sub/../../abs/../etc/passwd"):
            assert read_in_root(root_fd, path) == "container\n", path
        with pytest.raises(OSError) as looped:
            cp.open_in_root(root_fd, "/loop/x")
        assert looped.value.errno == errno.ELOOP
        with pytest.raises(NotADirectoryError):
            cp.open_in_root(root_fd, "/file/x", os.O_PATH)
        with pytest.raises(FileNotFoundError):
            cp.open_in_root(root_fd, "/abs/shadow", os.O_PATH)
        assert cp.resolved_path(root_fd, "/sub/rel/missing/../x") == "/etc/x"
    finally:
        os.close(root_fd)


def test_without_openat2_a_component_swapped_for_a_symlink_never_leads_out(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A running container swaps a directory and a symlink to / again and again while we open a path through
    it: whatever we open must be the container's file, never the host's (a path resolved in user space, then
    opened by name, would be)."""
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "passwd").write_text("container\n")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("container too\n")
    os.symlink("/etc", root / "a.link")
    host = os.stat("/etc/passwd")
    refuse_openat2(monkeypatch, errno.ENOSYS)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            os.rename(root / "a", root / "a.dir")
            os.rename(root / "a.link", root / "a")
            os.rename(root / "a", root / "a.link")
            os.rename(root / "a.dir", root / "a")

    swapper = threading.Thread(target=swap)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    escaped = opened = 0
    try:
        swapper.start()
        for _ in range(20000):
            try:
                fd = cp.open_in_root(root_fd, "/a/passwd", os.O_RDONLY)
            except OSError:  # (caught between two renames: no "a" at all)
                continue
            st = os.fstat(fd)
            os.close(fd)
            opened += 1
            escaped += (st.st_dev, st.st_ino) == (host.st_dev, host.st_ino)
    finally:
        stop.set()
        swapper.join()
        sys.setswitchinterval(interval)
        os.close(root_fd)
    assert opened and not escaped, f"{escaped} of {opened} opens reached the host's /etc/passwd"


# ----------------------------------------------------------------------- the helper and its container


def helpers_of(container_id: str) -> list[int]:
    """Every process (anyone's child) running a copy's helper for this container."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            line = cmdline(int(entry))
            if b"pycontainers.cp.serve" in line and container_id.encode() in line:
                found.append(int(entry))
    return found


def mounted_by_helper(container_id: str) -> int | None:
    """The helper of a copy into this stopped container, once it has the container's overlay mounted."""
    for pid in helpers_of(container_id):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/mountinfo") as f:
            if container_id in f.read():
                return pid
    return None


def wait_until(condition: Callable[[], object], seconds: float = 15) -> object:
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return found


def cli_copying_stdin(target: str) -> tuple[subprocess.Popen[bytes], int]:
    """``pycontainers cp - TARGET`` in its own process, its stdin a pipe we keep open: it copies until we close it."""
    read, write = os.pipe()
    cli = subprocess.Popen([sys.executable, "-m", "pycontainers", "cp", "-", target], stdin=read,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    os.close(read)
    return cli, write


def start_lock_is_free(container_dir: Path) -> bool:
    fd = os.open(container_dir / "start.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def test_a_copy_killed_with_its_caller_leaves_nothing_working_on_the_container(client: Client) -> None:
    c = client.containers.create("busybox", ["true"], name="slow")
    core = get_container(client.store, c.id)
    cli, write = cli_copying_stdin("slow:/tmp")
    try:
        wait_until(lambda: mounted_by_helper(c.id))
        assert not start_lock_is_free(core.dir)
        os.kill(cli.pid, signal.SIGKILL)  # (kill -9: no cleanup of its own)
        cli.wait()
        wait_until(lambda: not helpers_of(c.id), 5)  # it died with its caller, its overlay with it
        # (a dying process's command line is gone before its files are closed: do_exit frees its memory first)
        wait_until(lambda: start_lock_is_free(core.dir), 5)
    finally:
        os.close(write)
    c.start()
    assert c.wait()["StatusCode"] == 0


def test_rm_waits_for_a_copy_into_the_stopped_container(client: Client) -> None:
    c = client.containers.create("busybox", ["true"], name="copied")
    cli, write = cli_copying_stdin("copied:/tmp")
    try:
        wait_until(lambda: mounted_by_helper(c.id))
        rm = subprocess.Popen([sys.executable, "-m", "pycontainers", "rm", "copied"], stderr=subprocess.PIPE)
        time.sleep(1)
        assert rm.poll() is None  # waiting for the copy
        os.write(write, tar_of(("late.txt", b"late\n")))
    finally:
        os.close(write)
    _, cp_err = cli.communicate(timeout=30)
    assert cli.returncode == 0, cp_err
    _, rm_err = rm.communicate(timeout=30)
    assert rm.returncode == 0, rm_err
    assert not helpers_of(c.id) and not mounts_mentioning(c.id)
    with pytest.raises(NotFound):
        client.containers.get("copied")


def test_a_runc_container_is_reached_only_as_the_process_runc_started(client: Client) -> None:
    if subprocess.run(["which", "runc"], capture_output=True).returncode:
        pytest.skip("runc is not installed")
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, runtime="runc")
    with cp._reach(get_container(client.store, c.id)) as reach:
        view = reach.view
    proc = os.open(f"/proc/{view['pid']}", os.O_PATH | os.O_DIRECTORY)
    try:
        assert view["start"] == cp.process_start_time(proc)  # runc's init_process_start, checked
    finally:
        os.close(proc)
    with pytest.raises(ContainerError, match="is not running"):  # as if its PID had been given to another
        cp.open_view({**view, "start": view["start"] + 1}, c.name)


# ------------------------------------------------------------------------------------- the host's side


def test_a_full_or_read_only_destination_is_one_error_and_leaves_no_half_file(client: Client, tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str],
                                                                              ) -> None:
    client.containers.create("busybox", ["true"], name="big")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        assert main(["cp", "big:/bin/busybox", str(small / "bb")]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"Error: cannot copy big:/bin/busybox to {small}/bb: No space left on device")
        assert not (small / "bb").exists()
        subprocess.run(["mount", "-o", "remount,ro", str(small)], check=True)
        assert main(["cp", "big:/etc/passwd", str(small / "passwd")]) == 1
        assert "Read-only file system" in capsys.readouterr().err
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_the_summary_is_printed_when_stderr_is_a_terminal(client: Client, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    client.containers.create("busybox", ["true"], name="summed")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["cp", "summed:/etc/passwd", str(tmp_path / "passwd")]) == 0
    assert capsys.readouterr().err.startswith(f"Successfully copied {(tmp_path / 'passwd').stat().st_size}B ")


# ------------------------------------------------------------------------------- Docker's path rules, more


def test_container_paths_are_cleaned_and_links_followed_as_docker_does(client: Client, tmp_path: Path) -> None:
    script = ("mkdir -p /w/src/sub; echo a > /w/src/a; ln -s /etc /tmp/el; ln -s ../etc/passwd /tmp/rel; "
              "ln -s /tmp/rel /tmp/chain; echo wh > /w/.wh.file; sleep 300")
    c = client.containers.run("busybox", ["sh", "-c", script], detach=True)
    wait_until(lambda: c.exec_run(["test", "-e", "/w/.wh.file"]).exit_code == 0)
    core = get_container(client.store, c.id)
    cp.copy_from_container(core, "/tmp/el/", str(tmp_path / "y"))  # a trailing / follows the link
    assert (tmp_path / "y" / "passwd").read_text().startswith("root:")
    chunks, info = c.get_archive("/tmp/el/")
    assert info["name"] == "el" and cp.is_dir_mode(info["mode"]) and "el/passwd" in members(chunks)
    cp.copy_from_container(core, "/w/src/sub/..", str(tmp_path / "dest"))  # cleaned: /w/src
    assert (tmp_path / "dest" / "a").read_text() == "a\n"
    chunks, info = c.get_archive("/w/src/sub/../.")
    assert info["name"] == "." and "./a" in members(chunks)
    cp.copy_from_container(core, "/w/.wh.file", str(tmp_path))  # not a whiteout outside a layer
    assert (tmp_path / ".wh.file").read_text() == "wh\n"
    assert c.get_archive("/tmp/rel")[1]["linkTarget"] == "/etc/passwd"  # resolved in the container
    assert c.get_archive("/tmp/chain")[1]["linkTarget"] == "/etc/passwd"
    assert c.get_archive("/tmp/el")[1]["linkTarget"] == "/etc"
    assert cp.go_rfc3339_nano(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert cp.go_rfc3339_nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    with pytest.raises(NotFound, match="Could not find the file /nope"):
        c.put_archive("/nope", tar_of(("x", b"")))
    assert c.put_archive("/tmp", b"")  # an empty body: nothing to do, as Docker


def test_export_leaves_what_is_mounted_on_a_file_empty(client: Client, tmp_path: Path) -> None:
    secret = tmp_path / "hostsecret"
    secret.write_text("host secret\n")
    c = client.containers.run("busybox", ["sleep", "300"], detach=True, volumes=[f"{secret}:/secret"])
    exported = b"".join(c.export())
    assert members(exported)["secret"].isfile() and read_member(exported, "secret") == b""
    assert read_member(exported, "etc/hosts") == b""
    assert read_member(exported, "etc/passwd").startswith(b"root:")
    assert read_member(c.get_archive("/secret")[0], "secret") == b"host secret\n"  # cp follows volumes
    assert read_member(c.get_archive("/etc")[0], "etc/hosts") != b""  # and the files Docker mounts in /etc


# ----------------------------------------------------------------------------------- untrusted tars, more


def test_a_hard_link_to_nothing_is_refused_before_anything_is_written(client: Client) -> None:
    c = client.containers.create("busybox", ["true"])
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("first.txt"), io.BytesIO(b""))
        link = tarfile.TarInfo("second")
        link.type, link.linkname = tarfile.LNKTYPE, "missing"
        tar.addfile(link)
    with pytest.raises(LayerError, match="'second' is a hard link to 'missing', which is neither an earlier entry "
                                         "of the tar nor a file in /tmp; nothing was copied"):
        c.put_archive("/tmp", out.getvalue())
    with pytest.raises(NotFound):
        c.get_archive("/tmp/first.txt")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        link = tarfile.TarInfo("passwd2")
        link.type, link.linkname = tarfile.LNKTYPE, "passwd"
        tar.addfile(link)
    c.put_archive("/etc", out.getvalue())  # a file there already: as Docker, it may be linked
    assert read_member(c.get_archive("/etc/passwd2")[0], "passwd2").startswith(b"root:")


def test_names_no_file_system_takes_and_from_in_changes_are_refused(client: Client) -> None:
    images = [i.id for i in list_images(client.store)]
    with pytest.raises(LayerError, match="has a name longer than 255 bytes"):
        cp.import_image(client.store, io.BytesIO(tar_of(("d", None), ("d/" + "x" * 256, b"x"))), "long:1")
    assert [i.id for i in list_images(client.store)] == images
    assert layer.LayerChecker("w", allow_devices=False).check(tarfile.TarInfo("é" * 127)) == "é" * 127
    with pytest.raises(InvalidArgument, match="FROM is not a valid change command"):
        cp.config_with_changes({}, ["FROM busybox"])
    with pytest.raises(InvalidArgument) as bad:
        cp.config_with_changes({}, ["ENV"])
    assert str(bad.value) == "invalid --change 'ENV': ENV requires at least one argument"


def test_follow_links_copies_what_a_link_to_a_file_leads_to(client: Client, tmp_path: Path) -> None:
    """``cp -L``: a link to a file copies the file it leads to (as Debian's /etc/os-release ->
    ../usr/lib/os-release); a plain file, and a bind-mounted one, are copied as they are."""
    c = client.containers.run("busybox", ["sh", "-c", "echo real > /tmp/target; ln -s ../tmp/target /etc/link; "
                                          "echo plain > /tmp/plain; sleep 300"], detach=True)
    for _ in range(100):
        if c.exec_run(["test", "-e", "/etc/link"]).exit_code == 0:
            break
        time.sleep(0.05)
    assert main(["cp", "-L", f"{c.id}:/etc/link", str(tmp_path / "link")]) == 0
    assert (tmp_path / "link").read_text() == "real\n" and not (tmp_path / "link").is_symlink()
    assert main(["cp", "-L", f"{c.id}:/tmp/plain", str(tmp_path / "plain")]) == 0
    assert (tmp_path / "plain").read_text() == "plain\n"
    assert main(["cp", "-L", f"{c.id}:/etc/hostname", str(tmp_path / "hostname")]) == 0
    assert (tmp_path / "hostname").read_text() == c.exec_run(["cat", "/etc/hostname"]).output.decode()
    c.remove(force=True)
