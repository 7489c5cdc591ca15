"""User namespaces: how an ordinary user becomes root inside a container, and nowhere else (rootless).

A new user namespace starts with no user ids at all; its *id maps* say which host ids appear inside,
and as which. Each map line is ``container-id host-id count`` (user_namespaces(7)):

    0     1001    1        the student (host uid 1001) is root (uid 0) inside
    1     100000  65536    uids 1..65536 inside are the student's subordinate ids from /etc/subuid

A process may write a one-line map of its own uid by itself. Anything more (a container user other
than root, say) needs the set-user-ID helpers ``newuidmap``/``newgidmap``, which check /etc/subuid and
/etc/subgid, and they must run *outside* the namespace. Root needs neither: it may write any map.

Image layers keep their owners in a rootless store, as podman's do: a student with subordinate ids
unpacks each layer as root of a namespace with these same maps (``rootfs.unpack_layer``), so a file of
uid 1000 in the image belongs to host uid 100999 on disk and to 1000 again in the container. An id
beyond the maps (chown gives EINVAL) stays the namespace's root's, like podman's ``ignore_chown_errors``.
Without subordinate ids (a one-line map) every unpacked file is the student's, hence root's inside.
Files of subordinate ids are neither deletable nor always readable by the student outside a namespace:
whatever removes, copies or archives them does it through ``run_inside`` (``remove_tree``, say, or the
tar of a container's writable layer that ``commit`` and ``build`` store: ``container.upper_entries``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from .errors import PyContainersError
from .linux import CLONE_NEWUSER, unshare

TYPE_CHECKING = False  # typing's, without importing typing
if TYPE_CHECKING:
    from typing import IO

OVERFLOW_ID = 65534  # how an unmapped id shows up (/proc/sys/kernel/overflowuid)
ROOT_RANGE = 65536  # ids root maps (identity) when it runs a rootless container itself, as tests do


class UserNamespaceError(PyContainersError):
    """A user namespace could not be created or its id maps not written."""


@dataclass(frozen=True)
class IdMap:
    """One line of /proc/PID/uid_map or gid_map."""

    container_id: int
    host_id: int
    size: int

    def line(self) -> str:
        return f"{self.container_id} {self.host_id} {self.size}"


@dataclass(frozen=True)
class IdMaps:
    uids: tuple[IdMap, ...]
    gids: tuple[IdMap, ...]

    def to_json(self) -> dict[str, list[list[int]]]:
        return {kind: [[m.container_id, m.host_id, m.size] for m in maps]
                for kind, maps in (("uid", self.uids), ("gid", self.gids))}

    @classmethod
    def from_json(cls, obj: dict[str, list[list[int]]]) -> IdMaps:
        return cls(tuple(IdMap(*m) for m in obj["uid"]), tuple(IdMap(*m) for m in obj["gid"]))

    def written_from_outside(self) -> bool:
        """Whether a process outside the new namespace must write the maps.

        From inside, a process may only map its own id (one line): it has no capability left in the
        parent namespace. Root writes any map from outside; a user runs newuidmap/newgidmap there.
        """
        return os.geteuid() == 0 or len(self.uids) > 1 or len(self.gids) > 1

    def host_to_container(self, uid: int, gid: int) -> tuple[int, int]:
        """The owner a host file shows inside (used to record a rootless container's files in a layer)."""
        return _translate(self.uids, uid), _translate(self.gids, gid)


def _translate(maps: tuple[IdMap, ...], host_id: int) -> int:
    for m in maps:
        if m.host_id <= host_id < m.host_id + m.size:
            return m.container_id + host_id - m.host_id
    return OVERFLOW_ID


# ------------------------------------------------------------------------------------- choosing maps


def subordinate_ranges(path: str, name: str, ident: int) -> list[tuple[int, int]]:
    """The (start, count) ranges /etc/subuid or /etc/subgid grants *name* (or its numeric id)."""
    ranges = []
    with contextlib.suppress(OSError), open(path) as f:
        for line in f:
            parts = line.strip().split(":")
            if len(parts) == 3 and parts[0] in (name, str(ident)) and parts[1].isdigit() and parts[2].isdigit():
                ranges.append((int(parts[1]), int(parts[2])))
    return ranges


def _maps_for(own: int, ranges: list[tuple[int, int]]) -> tuple[IdMap, ...]:
    maps = [IdMap(0, own, 1)]
    inside = 1
    for start, count in ranges:
        maps.append(IdMap(inside, start, count))
        inside += count
    return tuple(maps)


def default_maps() -> IdMaps:
    """Root inside = this user; the rest of the ids from /etc/subuid and /etc/subgid, if newuidmap exists."""
    uid, gid = os.geteuid(), os.getegid()
    if uid == 0:
        identity = (IdMap(0, 0, ROOT_RANGE),)
        return IdMaps(identity, identity)
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    helpers = shutil.which("newuidmap") and shutil.which("newgidmap")
    sub_u = subordinate_ranges("/etc/subuid", name, uid) if helpers else []
    sub_g = subordinate_ranges("/etc/subgid", name, uid) if helpers else []
    if not (sub_u and sub_g):
        return IdMaps((IdMap(0, uid, 1),), (IdMap(0, gid, 1),))
    return IdMaps(_maps_for(uid, sub_u), _maps_for(gid, sub_g))


# --------------------------------------------------------------------------------- entering one


def write_maps(pid: str, maps: IdMaps) -> None:
    """Write the maps directly: root may write any, a user one line of its own ids (setgroups denied)."""
    base = f"/proc/{pid}"
    if os.geteuid() != 0:
        # An unprivileged gid_map requires giving up setgroups(2) first: otherwise a user could drop a
        # group that was denying it access to a file.
        _write(f"{base}/setgroups", "deny")
    _write(f"{base}/uid_map", "\n".join(m.line() for m in maps.uids))
    _write(f"{base}/gid_map", "\n".join(m.line() for m in maps.gids))


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise UserNamespaceError(f"write {text!r} to {path}: {exc.strerror}") from None


def map_from_outside(pid: int, maps: IdMaps) -> str:
    """Write *pid*'s maps from the parent namespace: directly as root, else with the helpers."""
    if os.geteuid() == 0:
        try:
            write_maps(str(pid), maps)
        except UserNamespaceError as exc:
            return str(exc)
        return ""
    return map_with_helpers(pid, maps)


def map_with_helpers(pid: int, maps: IdMaps) -> str:
    """Run newuidmap and newgidmap for *pid* (from outside its namespace); return their error, or ""."""
    for tool, lines in (("newuidmap", maps.uids), ("newgidmap", maps.gids)):
        argv = [tool, str(pid)] + [str(v) for m in lines for v in (m.container_id, m.host_id, m.size)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return f"{' '.join(argv)}: {done.stderr.strip() or f'exit status {done.returncode}'}"
    return ""


def enter_user_namespace(maps: IdMaps) -> None:
    """unshare(CLONE_NEWUSER), then get *maps* written; afterwards we are root inside, with every
    capability, but only over what the namespace owns (its mounts, its PID and network namespaces)."""
    if not maps.written_from_outside():
        unshare(CLONE_NEWUSER)
        write_maps("self", maps)
        return
    # The writer must be in the parent namespace: a child forked *before* unshare does it, when told.
    me = os.getpid()
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    helper = os.fork()
    if helper == 0:
        code = 1
        try:
            os.close(go_w)
            os.close(done_r)
            if os.read(go_r, 1):
                os.write(done_w, map_from_outside(me, maps).encode() or b"ok")
            code = 0
        finally:
            os._exit(code)
    os.close(go_r)
    os.close(done_w)
    try:
        unshare(CLONE_NEWUSER)
        os.write(go_w, b"1")
    finally:
        os.close(go_w)
        answer = os.read(done_r, 4096).decode(errors="replace")
        os.close(done_r)
        os.waitpid(helper, 0)
    if answer != "ok":
        raise UserNamespaceError(answer or "the id-map helper process died")


def join_user_namespace(pid: int) -> None:
    """setns(2) into the user namespace of *pid*: root there, with every capability over what it owns. Its
    creator may (the owner of a namespace holds every capability in it), and so may root."""
    from .linux import setns

    try:
        fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise UserNamespaceError(f"the user namespace of process {pid}: {exc.strerror}") from None
    try:
        setns(fd, CLONE_NEWUSER)
    finally:
        os.close(fd)


def remove_tree(path: str, maps: IdMaps | None) -> None:
    """rm -rf *path*; what a rootless container's other users made is removed from inside a namespace.

    The student cannot delete a directory that a container user (a subordinate uid) made; root of a
    namespace with the same maps can, as ``podman unshare rm`` does.
    """
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except PermissionError:
        if maps is None or os.geteuid() == 0:
            raise
        run_inside(maps, f"removing {path}", "shutil.rmtree", path)


def remove_tree_or_say(path: str, maps: IdMaps | None) -> bool:
    """``remove_tree``, except that files only a namespace the helpers now refuse could delete (ids from an
    /etc/subuid range this user no longer has) are left for root, and said so in one line: deleting an
    image or a container must not fail on what only its clean-up cannot do. Whether *path* is gone."""
    try:
        remove_tree(path, maps)
    except (UserNamespaceError, PermissionError) as exc:
        print(f"pycontainers: {path} is left behind: it holds files of subordinate ids that this user cannot "
              f"delete ({exc}); root can: rm -rf {path}", file=sys.stderr)
        return False
    return True


# ------------------------------------------------------------------------- working inside one


_INSIDE = ("import sys; sys.path.insert(0, sys.argv[1]); from pycontainers import userns; "
           "userns.call_inside(*sys.argv[2:])")
_REPORT = "pycontainers-error: "  # how the helper's last line of stderr carries a PyContainersError
EXIT_INTERRUPTED = 130  # the helper was interrupted (Ctrl-C), as a shell reports it: 128 + SIGINT
EXIT_ORPHANED = 137  # the helper's caller ended before it began: as if killed with it (128 + SIGKILL)
_COPY_CHUNK = 1 << 20  # the helper's output is copied to the caller's file in pieces of this size


def run_inside(maps: IdMaps | None, what: str, function: str, *args: str, stdin: IO[bytes] | bytes | None = None,
               stdout: IO[bytes] | None = None, join: int | None = None, pass_fds: tuple[int, ...] = ()) -> None:
    """Call ``module.function(*args)`` as root of a new user namespace with *maps*, in a fresh Python process
    whose stdin is *stdin* (a file, or bytes).

    Exec'ed, never forked: the caller may be multithreaded (a notebook kernel, an API client), and only a
    single-threaded process may unshare(CLONE_NEWUSER). A ``PyContainersError`` raised there is raised here
    again, same class and line; anything else becomes a ``UserNamespaceError`` saying *what* failed.

    What the call writes to its standard output is discarded, or with *stdout* (any object with ``write``:
    a blob being written) copied there as it comes: files only the namespace may read reach the caller as a
    stream (``container.upper_entries``). An error raised while copying ends the helper too.

    *join* (a PID): join that process's user namespace instead of making one (a running rootless container's:
    ``cp``). *maps* None (and no *join*): no user namespace at all, for work that must still not be done in a
    possibly multithreaded caller (a private mount namespace: ``cp`` into a stopped container as root).

    The helper dies with its caller (SIGKILL, ``PR_SET_PDEATHSIG``): killed, the caller cannot leave it working
    on a container behind its back. *pass_fds* are inherited by it: a lock the caller holds (an flock belongs
    to the open file, so the helper then holds it too, until it ends however it ends).
    """
    how = {"join": join} if join is not None else maps.to_json() if maps is not None else None
    # -P: no current directory on sys.path, where a container's files may have been copied (``cp``)
    argv = [sys.executable, "-P", "-c", _INSIDE, _package_parent(), str(os.getpid()), json.dumps(how), function,
            *args]
    if stdout is None:
        feed = {"input": stdin} if isinstance(stdin, bytes) else {"stdin": stdin}
        done = subprocess.run(argv, capture_output=True, check=False, pass_fds=pass_fds,  # type: ignore[call-overload]
                              **feed)
        code, err = done.returncode, done.stderr
    else:
        if isinstance(stdin, bytes):
            raise TypeError("run_inside: stdin given as bytes cannot be combined with a stdout to copy to")
        code, err = _copy_output(argv, stdin, stdout, pass_fds)
    if code in (EXIT_INTERRUPTED, -signal.SIGINT):
        raise KeyboardInterrupt  # Ctrl-C in a terminal reaches the helper too (one process group): not its error
    if code != 0:
        raise _failure(what, code, err.decode(errors="replace"))


def _package_parent() -> str:
    """The directory the helper imports ``pycontainers`` from: this very copy of it."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _copy_output(argv: list[str], stdin: IO[bytes] | None, out: IO[bytes], pass_fds: tuple[int, ...] = (),
                 ) -> tuple[int, bytes]:
    """Run *argv*, copying its stdout to *out*; return its exit status and stderr. stderr goes to a file, not a
    pipe: a helper writing a long traceback there while we wait on its stdout could otherwise block us both."""
    with tempfile.TemporaryFile() as err:
        with subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=err, pass_fds=pass_fds) as helper:
            assert helper.stdout is not None
            try:
                shutil.copyfileobj(helper.stdout, out, _COPY_CHUNK)
            except BaseException:
                helper.kill()  # (Popen's exit then reaps it)
                raise
        err.seek(0)
        return helper.returncode, err.read()


def _failure(what: str, code: int, err: str) -> PyContainersError:
    """The helper's error: ours again if its last line of stderr reports one, else what failed and why."""
    ending = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
    last = (err.strip().splitlines() or [ending])[-1]
    if last.startswith(_REPORT):
        return _error_from(json.loads(last[len(_REPORT):]))
    return UserNamespaceError(f"{what} inside a user namespace failed: {last}")


def call_inside(parent: str, maps_json: str, function: str, *args: str) -> None:
    """(In ``run_inside``'s process.) Become root of a namespace with these maps (or join one: ``run_inside``'s
    *join*), then make the call, dying with *parent* (the caller's PID)."""
    try:
        how = json.loads(maps_json)
        if how is not None and "join" in how:
            join_user_namespace(int(how["join"]))
        elif how is not None:
            enter_user_namespace(IdMaps.from_json(how))
        die_with_parent(int(parent))
        module, _, name = function.rpartition(".")
        getattr(importlib.import_module(module), name)(*args)
    except PyContainersError as exc:
        kind = type(exc)
        report = {"module": kind.__module__, "class": kind.__qualname__, "message": str(exc)}
        sys.stderr.write(_REPORT + json.dumps(report) + "\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)  # no traceback: the caller raises KeyboardInterrupt again


def die_with_parent(parent: int) -> None:
    """SIGKILL when *parent* ends. Set after the namespace is entered, which changes our credentials: the kernel
    clears the setting then. A parent that ended already (we are someone else's child now): end at once."""
    from .linux import PR_SET_PDEATHSIG, prctl

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(EXIT_ORPHANED)


def _error_from(report: dict[str, str]) -> PyContainersError:
    """The helper's error again: its class if it is one of ours and takes a message, else ours."""
    kind: object = None
    if report["module"].startswith("pycontainers."):
        kind = getattr(importlib.import_module(report["module"]), report["class"], None)
    if isinstance(kind, type) and issubclass(kind, PyContainersError):
        with contextlib.suppress(TypeError):
            return kind(report["message"])
    return UserNamespaceError(report["message"])
